//! Lua scripts: typed declarations and the statics behind them.
//!
//! Declare a script with [`script!`](crate::script!): its name, named `KEYS`,
//! typed `ARGV`, return type and source, once; calls are then typed
//! operations. Underneath, a [`Script`] is a `static`; its SHA1 is computed
//! on first use. Operations invoke it through [`Plan::script`](crate::op::Plan::script),
//! which passes every key through `KEYS` and checks, before anything is sent,
//! that all of them hash to one Cluster slot (DESIGN principle 4).
//!
//! The executors send `EVALSHA`. When a pipeline holds more than one command,
//! the first use of each script body (by SHA1) in it is sent as `EVAL` with
//! the body instead, unless it is the pipeline's last command,
//! so a server that has never seen the script (a fresh server, a restarted one,
//! a promoted replica) runs every command in order; a lone `EVALSHA` (or a
//! pipeline's last) that gets `NOSCRIPT` is re-sent once as `EVAL`.

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

// ---------------------------------------------------------------------------
// Typed scripts

/// Declares a typed Lua script: its name, its named `KEYS`, its typed `ARGV`,
/// its return type and its source, once. The declaration generates a struct
/// whose values are [`Operation`](crate::op::Operation)s: they run on every
/// executor (blocking and async, standalone and Cluster), batch with any other
/// operation, and go out as `EVALSHA` (re-sent as `EVAL` on `NOSCRIPT`; see
/// the [module docs](mod@crate::script)).
///
/// ```
/// redis_state::script! {
///     /// Adds `by` to a counter that must already exist; returns the new
///     /// value, or `nil` when the counter does not exist.
///     pub struct IncrExisting {
///         name: "app.incr_existing",
///         keys: [counter],
///         args: [by: i64],
///         returns: Option<i64>,
///         lua: r#"
///             if redis.call('EXISTS', KEYS[1]) == 0 then return false end
///             return redis.call('INCRBY', KEYS[1], ARGV[1])
///         "#,
///     }
/// }
///
/// # use redis_state::prelude::*;
/// # fn f(con: &mut redis::Connection) -> redis_state::Result<()> {
/// let n: Option<i64> = IncrExisting::new("visits:home", 5).run(con)?;
/// # Ok(()) }
/// ```
///
/// # The declaration
///
/// | part | meaning |
/// |---|---|
/// | `name: "..."` | appears in errors (`CrossSlot`, unexpected replies) |
/// | `keys: [a, b]` | the `KEYS`, in order: `new` takes one `impl AsRef<[u8]>` per name |
/// | `keys: [a, ..more]` | a variadic tail: `.more(key)` appends one key |
/// | `args: [x: u64, y: &str]` | the `ARGV`, in order, each one Redis argument (`redis::ToSingleRedisArg`): `new` takes them typed, after the keys |
/// | `args: [x: u64, ..rest]` | a variadic tail: `.rest(value)` appends any `redis::ToRedisArgs` |
/// | `returns: T` | the output, converted with `redis::FromRedisValue` |
/// | `returns: T => decode` | the output, converted by `decode: fn(redis::Value) -> redis_state::Result<T>` |
/// | `lua: "..."` | the source: a literal, `include_str!("file.lua")`, or `concat!(..)` of those |
///
/// The generated struct has `new`, the variadic methods, `namespace(&ns)`
/// (prefixes every key with `ns:`), the associated `script()` (the
/// [`Script`] static), and the constants `KEYS`, `ARGS` (the declared
/// names) and `LUA`.
///
/// # What is checked
///
/// * Every key goes through `KEYS`; all keys of one call must hash to one
///   Cluster slot, checked before anything is sent ([`Error::CrossSlot`]).
/// * Each declared argument is exactly one Redis argument (compile time).
/// * Without a variadic tail, a literal `KEYS[n]` or `ARGV[n]` in the source
///   beyond the declared ones is a compile error.
/// * The source is a constant: Lua is never built from runtime values.
///
/// [`Error::CrossSlot`]: crate::Error::CrossSlot
#[macro_export]
macro_rules! script {
    (
        $(#[$meta:meta])*
        $vis:vis struct $Name:ident {
            name: $script_name:expr,
            keys: [$($keys:tt)*],
            args: [$($args:tt)*],
            returns: $ret:ty $(=> $decode:expr)?,
            lua: $lua:expr $(,)?
        }
    ) => {
        $crate::script!(@keys [$($keys)*] [$($args)*]
            {$(#[$meta])*} $vis $Name {$script_name} {$ret} {$($decode)?} {$lua});
    };

    // KEYS: fixed names, optionally followed by `..tail`.
    (@keys [$($key:ident),* $(,)?] $args:tt $($rest:tt)*) => {
        $crate::script!(@args $args [$($key)*] [] $($rest)*);
    };
    (@keys [$($key:ident,)* .. $keys_rest:ident $(,)?] $args:tt $($rest:tt)*) => {
        $crate::script!(@args $args [$($key)*] [$keys_rest] $($rest)*);
    };

    // ARGV: typed names, optionally followed by `..tail`.
    (@args [$($arg:ident : $arg_ty:ty),* $(,)?] $($rest:tt)*) => {
        $crate::script!(@gen [$($arg : $arg_ty),*] [] $($rest)*);
    };
    (@args [$($arg:ident : $arg_ty:ty,)* .. $args_rest:ident $(,)?] $($rest:tt)*) => {
        $crate::script!(@gen [$($arg : $arg_ty),*] [$args_rest] $($rest)*);
    };

    (@gen
        [$($arg:ident : $arg_ty:ty),*] [$($args_rest:ident)?]
        [$($key:ident)*] [$($keys_rest:ident)?]
        {$(#[$meta:meta])*} $vis:vis $Name:ident
        {$script_name:expr} {$ret:ty} {$($decode:expr)?} {$lua:expr}
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone)]
        #[must_use = "an operation does nothing until it is run"]
        $vis struct $Name {
            __call: $crate::__private::ScriptCall,
        }

        #[allow(dead_code, clippy::too_many_arguments)]
        impl $Name {
            /// The declared names of `KEYS`, in order (a variadic tail last).
            $vis const KEYS: &'static [&'static str] =
                &[$(::core::stringify!($key),)* $(::core::concat!("..", ::core::stringify!($keys_rest)))?];
            /// The declared names of `ARGV`, in order (a variadic tail last).
            $vis const ARGS: &'static [&'static str] =
                &[$(::core::stringify!($arg),)* $(::core::concat!("..", ::core::stringify!($args_rest)))?];
            /// The Lua source.
            $vis const LUA: &'static str = $lua;

            /// The script (name, source, SHA1).
            $vis fn script() -> &'static $crate::script::Script {
                static SCRIPT: $crate::script::Script =
                    $crate::script::Script::new($script_name, $Name::LUA);
                &SCRIPT
            }

            /// A call with these keys and arguments.
            $vis fn new($($key: impl ::core::convert::AsRef<[u8]>,)* $($arg: $arg_ty),*) -> Self {
                // Unchanged when every key and argument is variadic.
                #[allow(unused_mut)]
                let mut call = $crate::__private::ScriptCall::new();
                $( call.key($key.as_ref()); )*
                $( call.arg(&$arg); )*
                $Name { __call: call }
            }

            $(
                /// Appends one key to the variadic `KEYS` tail.
                $vis fn $keys_rest(mut self, key: impl ::core::convert::AsRef<[u8]>) -> Self {
                    self.__call.key(key.as_ref());
                    self
                }
            )?

            $(
                /// Appends a value (one or more Redis arguments) to the
                /// variadic `ARGV` tail.
                $vis fn $args_rest(mut self, value: impl $crate::redis::ToRedisArgs) -> Self {
                    self.__call.arg(&value);
                    self
                }
            )?

            /// Runs the call in namespace `ns`: every key is prefixed with `ns:`.
            $vis fn namespace(mut self, ns: &$crate::Namespace) -> Self {
                self.__call.set_namespace(ns);
                self
            }
        }

        impl $crate::Namespaced for $Name {
            fn namespace(self, ns: &$crate::Namespace) -> Self {
                $Name::namespace(self, ns)
            }
        }

        impl $crate::Operation for $Name {
            type Output = $ret;

            fn prepare(&mut self, plan: &mut $crate::op::Plan) -> $crate::Result<()> {
                self.__call.prepare(plan, $Name::script())
            }

            fn complete(
                &mut self,
                replies: &mut $crate::op::Replies,
            ) -> $crate::Result<$crate::op::Step<$ret>> {
                $crate::__script_decode!(replies, $Name::script().name(), $ret $(, $decode)?)
                    .map($crate::op::Step::Done)
            }
        }

        // Each declared argument is one Redis argument (reported at its type).
        const _: fn() = || {
            $( $crate::__private::assert_single_arg::<$arg_ty>(); )*
        };

        const _: () = {
            let fixed_keys: usize = $Name::KEYS.len() $(- { let _ = ::core::stringify!($keys_rest); 1 })?;
            let fixed_args: usize = $Name::ARGS.len() $(- { let _ = ::core::stringify!($args_rest); 1 })?;
            let keys_variadic = false $(|| { let _ = ::core::stringify!($keys_rest); true })?;
            let args_variadic = false $(|| { let _ = ::core::stringify!($args_rest); true })?;
            ::core::assert!(
                keys_variadic
                    || $crate::__private::lua_max_index($Name::LUA, b"KEYS[") <= fixed_keys,
                "the Lua source reads a KEYS[n] beyond the declared keys"
            );
            ::core::assert!(
                args_variadic
                    || $crate::__private::lua_max_index($Name::LUA, b"ARGV[") <= fixed_args,
                "the Lua source reads an ARGV[n] beyond the declared args"
            );
        };
    };
}

/// Decodes a script reply; used by [`script!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __script_decode {
    ($replies:expr, $name:expr, $ret:ty) => {
        $replies.next::<$ret>($name)
    };
    ($replies:expr, $name:expr, $ret:ty, $decode:expr) => {
        match $replies.next_value() {
            ::core::result::Result::Ok(v) => {
                let decode: fn($crate::redis::Value) -> $crate::Result<$ret> = $decode;
                decode(v)
            }
            ::core::result::Result::Err(e) => ::core::result::Result::Err(e),
        }
    };
}

/// The keys and arguments of one typed script call (see [`script!`]): two
/// flat buffers, copied once into the command when the call is prepared.
#[doc(hidden)]
#[derive(Debug, Clone, Default)]
pub struct ScriptCall {
    keys: redis::Cmd,
    args: redis::Cmd,
    ns: Option<crate::keys::Namespace>,
}

impl ScriptCall {
    /// An empty call.
    pub fn new() -> Self {
        ScriptCall {
            keys: redis::Cmd::with_capacity(2, 64),
            args: redis::Cmd::with_capacity(4, 64),
            ns: None,
        }
    }

    /// Appends a key.
    pub fn key(&mut self, key: &[u8]) {
        self.keys.arg(key);
    }

    /// Appends a value (one or more arguments).
    pub fn arg<T: redis::ToRedisArgs>(&mut self, value: &T) {
        self.args.arg(value);
    }

    /// Prefixes every key with `ns:` when the call is prepared.
    pub fn set_namespace(&mut self, ns: &crate::keys::Namespace) {
        self.ns = Some(ns.clone());
    }

    /// Writes the `EVALSHA` into `plan`, after checking that all keys share
    /// a Cluster slot.
    pub fn prepare(
        &self,
        plan: &mut crate::op::Plan,
        script: &'static Script,
    ) -> crate::Result<()> {
        plan.script_call(script, &self.keys, &self.args, self.ns.as_ref())
    }
}

/// Fails to compile, at the type, unless `T` is exactly one Redis argument.
#[doc(hidden)]
pub fn assert_single_arg<T: redis::ToSingleRedisArg>() {}

/// The largest literal index `n` in `<prefix>n]` found in `lua` (0 when none):
/// the compile-time check of [`script!`].
#[doc(hidden)]
pub const fn lua_max_index(lua: &str, prefix: &[u8]) -> usize {
    let s = lua.as_bytes();
    let mut max = 0;
    let mut i = 0;
    while i + prefix.len() < s.len() {
        let mut j = 0;
        while j < prefix.len() && s[i + j] == prefix[j] {
            j += 1;
        }
        if j == prefix.len() {
            let mut k = i + j;
            let mut n = 0usize;
            let mut digits = 0;
            while k < s.len() && s[k].is_ascii_digit() && digits < 9 {
                n = n * 10 + (s[k] - b'0') as usize;
                k += 1;
                digits += 1;
            }
            if digits > 0 && k < s.len() && s[k] == b']' && n > max {
                max = n;
            }
        }
        i += 1;
    }
    max
}

#[cfg(test)]
mod tests {
    use super::lua_max_index;

    #[test]
    fn max_index_reads_literal_indexes_only() {
        assert_eq!(lua_max_index("return KEYS[1] .. KEYS[12]", b"KEYS["), 12);
        assert_eq!(lua_max_index("KEYS[i] KEYS[1 + n] ARGV[3]", b"KEYS["), 0);
        assert_eq!(lua_max_index("ARGV[2]", b"ARGV["), 2);
        assert_eq!(lua_max_index("", b"ARGV["), 0);
    }
}
