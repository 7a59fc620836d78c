//! The input as every derive sees it: the type, its named fields, their
//! Rust names and `Option` payloads. Each derive builds its own model on
//! top of this one.

use super::case::RenameRule;
use super::ctxt::Ctxt;
use super::ty::option_inner;

/// A derive input with named fields.
pub(crate) struct Container<'a> {
    pub(crate) ident: &'a syn::Ident,
    pub(crate) fields: Vec<Field<'a>>,
    /// False when the input is not a struct with named fields.
    pub(crate) named: bool,
}

/// A named field.
#[derive(Clone)]
pub(crate) struct Field<'a> {
    pub(crate) ident: &'a syn::Ident,
    pub(crate) ty: &'a syn::Type,
    /// `T` of `Option<T>`.
    pub(crate) option_inner: Option<&'a syn::Type>,
    /// The name as written in templates and messages (without `r#`).
    pub(crate) rust_name: String,
    pub(crate) attrs: &'a [syn::Attribute],
}

impl<'a> Container<'a> {
    /// The input of a derive that needs a struct with named fields; any
    /// other shape is reported at the type's name:
    /// ``<derive> cannot be derived for a tuple struct: <purpose>``.
    pub(crate) fn named_struct(
        cx: &Ctxt,
        input: &'a syn::DeriveInput,
        derive: &str,
        purpose: &str,
    ) -> Self {
        let container = Container::read(input);
        if !container.named {
            cx.error_spanned_by(
                &input.ident,
                format!("{derive} cannot be derived for {}: {purpose}", shape(input)),
            );
        }
        container
    }

    /// The input with whatever named fields it has, reporting nothing.
    pub(crate) fn read(input: &'a syn::DeriveInput) -> Self {
        let named = match &input.data {
            syn::Data::Struct(syn::DataStruct {
                fields: syn::Fields::Named(named),
                ..
            }) => Some(named),
            _ => None,
        };
        let fields = named
            .into_iter()
            .flat_map(|n| &n.named)
            .filter_map(Field::read)
            .collect();
        Container {
            ident: &input.ident,
            fields,
            named: named.is_some(),
        }
    }

    /// The field named `name` (its Rust name).
    pub(crate) fn field(&self, name: &str) -> Option<&Field<'a>> {
        self.fields.iter().find(|f| f.rust_name == name)
    }

    /// ``its fields are `a`, `b` ``, or that there are none, for messages.
    pub(crate) fn field_list(&self) -> String {
        if self.fields.is_empty() {
            return format!("`{}` has no named fields", self.ident);
        }
        let names: Vec<String> = self
            .fields
            .iter()
            .map(|f| format!("`{}`", f.ident))
            .collect();
        format!("its fields are {}", names.join(", "))
    }
}

impl<'a> Field<'a> {
    fn read(f: &'a syn::Field) -> Option<Self> {
        let ident = f.ident.as_ref()?;
        Some(Field {
            ident,
            ty: &f.ty,
            option_inner: option_inner(&f.ty),
            rust_name: rust_name(ident),
            attrs: &f.attrs,
        })
    }

    /// The type a present value has (`T` for `Option<T>`).
    pub(crate) fn value_ty(&self) -> &'a syn::Type {
        self.option_inner.unwrap_or(self.ty)
    }

    /// The name the field is stored under: the `rename` literal, else its
    /// Rust name under `rename_all`; an empty `rename` is reported as
    /// ``a <what> name cannot be empty``. Returns the name and the span
    /// errors about it go to.
    pub(crate) fn stored_name(
        &self,
        cx: &Ctxt,
        rename: Option<&syn::LitStr>,
        rule: Option<RenameRule>,
        what: &str,
    ) -> (String, proc_macro2::Span) {
        match rename {
            Some(lit) => {
                let v = lit.value();
                if v.is_empty() {
                    cx.error_spanned_by(lit, format!("a {what} name cannot be empty"));
                }
                (v, lit.span())
            }
            None => (
                RenameRule::field_name(rule, &self.rust_name),
                self.ident.span(),
            ),
        }
    }
}

/// A derive's field model over the shared [`Field`]: what every expansion
/// asks of a field, written once.
pub(crate) trait ModelField<'a> {
    fn field(&self) -> &Field<'a>;

    /// The Rust name without `r#`.
    fn rust_name<'s>(&'s self) -> &'s str
    where
        'a: 's,
    {
        &self.field().rust_name
    }

    fn ident(&self) -> &'a syn::Ident {
        self.field().ident
    }

    fn ty(&self) -> &'a syn::Type {
        self.field().ty
    }

    fn is_option(&self) -> bool {
        self.field().option_inner.is_some()
    }

    /// The type a present value has (`T` for `Option<T>`).
    fn value_ty(&self) -> &'a syn::Type {
        self.field().value_ty()
    }
}

fn shape(input: &syn::DeriveInput) -> &'static str {
    match &input.data {
        syn::Data::Struct(s) => match &s.fields {
            syn::Fields::Named(_) => "a struct",
            syn::Fields::Unnamed(_) => "a tuple struct",
            syn::Fields::Unit => "a unit struct",
        },
        syn::Data::Enum(_) => "an enum",
        syn::Data::Union(_) => "a union",
    }
}

/// A field's name as written in templates and messages (without `r#`).
pub(crate) fn rust_name(ident: &syn::Ident) -> String {
    let s = ident.to_string();
    s.strip_prefix("r#").map(str::to_owned).unwrap_or(s)
}
