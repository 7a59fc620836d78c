//! The named construction of the schemas the derives generate:
//! `Schema::of(..)` gives the unset values, and one `const` setter per
//! field sets the rest, so that a generated schema names every value it
//! sets (`.with_ttl_ms(600_000)`) and is still a constant.

/// `const_setters!(Type { with_name(name: &'static str); with_ttl_ms(ttl_ms: u64) => Some; })`:
/// hidden `const fn with_*(mut self, value) -> Self` setters on `Type`,
/// each storing its value in the field of the same name (wrapped in `Some`
/// where `=> Some` says so).
macro_rules! const_setters {
    ($ty:ty { $($method:ident($field:ident: $t:ty) $(=> $wrap:ident)?;)* }) => {
        impl $ty {
            $(
                #[doc = concat!("Sets [`", stringify!($field), "`](Self::", stringify!($field), ").")]
                #[doc(hidden)]
                pub const fn $method(mut self, $field: $t) -> Self {
                    self.$field = $($wrap)?($field);
                    self
                }
            )*
        }
    };
}
pub(crate) use const_setters;
