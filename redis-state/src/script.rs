//! Lua scripts as statics.
//!
//! A [`Script`] is declared once as a `static`; its SHA1 is computed on first
//! use. Operations invoke it through [`Plan::script`](crate::op::Plan::script),
//! which passes every key through `KEYS` and checks, before anything is sent,
//! that all of them hash to one Cluster slot (DESIGN principle 4).
//!
//! The executors send `EVALSHA`. When a pipeline holds more than one command,
//! the first use of each script in it is sent as `EVAL` with the body instead,
//! so a server that has never seen the script (a fresh server, a restarted one,
//! a promoted replica) runs every command in order; a lone `EVALSHA` that gets
//! `NOSCRIPT` is re-sent once as `EVAL`.

use std::sync::OnceLock;

/// A Lua script known at compile time.
pub struct Script {
    name: &'static str,
    body: &'static str,
    sha: OnceLock<String>,
}

impl Script {
    /// Declares a script. `name` appears in errors; `body` is the Lua source.
    pub const fn new(name: &'static str, body: &'static str) -> Self {
        Script {
            name,
            body,
            sha: OnceLock::new(),
        }
    }

    /// The name given at declaration.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The Lua source.
    pub fn body(&self) -> &'static str {
        self.body
    }

    /// The SHA1 of the body, as `EVALSHA` and `SCRIPT LOAD` use it.
    pub fn sha(&self) -> &str {
        self.sha
            .get_or_init(|| redis::Script::new(self.body).get_hash().to_owned())
    }
}

impl std::fmt::Debug for Script {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Script")
            .field("name", &self.name)
            .field("sha", &self.sha())
            .finish()
    }
}
