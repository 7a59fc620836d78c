//! Parsing and expansion helpers shared by every derive: error collection,
//! attribute slots and lenient reading, durations, key templates, renaming
//! rules, type inspection, the derive driver and common generated code.

pub(crate) mod attr;
pub(crate) mod case;
pub(crate) mod ctxt;
pub(crate) mod derive;
pub(crate) mod duration;
pub(crate) mod expand;
pub(crate) mod template;
pub(crate) mod ty;
