//! Parsing helpers shared by every derive: error collection, attribute
//! slots, durations, key templates, renaming rules, type inspection.

pub(crate) mod attr;
pub(crate) mod case;
pub(crate) mod ctxt;
pub(crate) mod duration;
pub(crate) mod template;
pub(crate) mod ty;
