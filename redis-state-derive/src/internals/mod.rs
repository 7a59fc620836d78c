//! What every derive shares, in the order a derive runs: reading attributes
//! into typed slots (`attr`), the input's shared container and field model
//! (`ast`), key templates and their common checks (`template`), durations,
//! renaming rules and choice attributes, the driver that reports errors
//! beside a fallback impl (`derive`), and the generated pieces every
//! expansion emits the same way (`expand`).

pub(crate) mod ast;
pub(crate) mod attr;
pub(crate) mod case;
pub(crate) mod choice;
pub(crate) mod ctxt;
pub(crate) mod derive;
pub(crate) mod duration;
pub(crate) mod expand;
pub(crate) mod template;
pub(crate) mod ty;
