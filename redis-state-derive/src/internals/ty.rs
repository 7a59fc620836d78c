//! Type inspection.

/// If `ty` is written `Option<T>` (or `std::option::Option<T>` /
/// `core::option::Option<T>`), returns `T`.
pub(crate) fn option_inner(ty: &syn::Type) -> Option<&syn::Type> {
    let syn::Type::Path(tp) = ty else {
        return None;
    };
    if tp.qself.is_some() {
        return None;
    }
    let segs: Vec<_> = tp.path.segments.iter().collect();
    let last = segs.last()?;
    let prefix_ok = match segs.len() {
        1 => tp.path.leading_colon.is_none(),
        3 => (segs[0].ident == "std" || segs[0].ident == "core") && segs[1].ident == "option",
        _ => false,
    };
    if !prefix_ok || last.ident != "Option" {
        return None;
    }
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    if args.args.len() != 1 {
        return None;
    }
    match args.args.first()? {
        syn::GenericArgument::Type(inner) => Some(inner),
        _ => None,
    }
}
