//! `#[channel(...)]` on a `Channel` type, read into typed slots. Nothing
//! here relates one attribute to another: that is `check`.

use syn::meta::ParseNestedMeta;

use crate::internals::attr::{
    Attr, AttrCx, Common, CommonAttrs, CommonKey, Flag, parse_lit_str, parse_type,
};
use crate::internals::ctxt::Ctxt;

/// The attribute `Channel` reads.
pub(crate) const PATH: &str = "channel";

/// How messages are written.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Json,
    Plain,
}

/// The type's attributes.
pub(crate) struct ContainerAttrs {
    pub(crate) common: CommonAttrs,
    pub(crate) name: Option<syn::LitStr>,
    pub(crate) message: Option<syn::Type>,
    pub(crate) format: Option<Format>,
    pub(crate) sharded: bool,
}

struct Slots<'c> {
    common: Common<'c>,
    name: Attr<'c, syn::LitStr>,
    message: Attr<'c, syn::Type>,
    format: Attr<'c, Format>,
    sharded: Flag<'c>,
}

impl ContainerAttrs {
    pub(crate) fn from_ast(cx: &Ctxt, input: &syn::DeriveInput) -> Self {
        let acx = AttrCx::new(cx, PATH);
        let mut s = Slots {
            common: Common::new(acx, &[CommonKey::Crate]),
            name: acx.slot("name"),
            message: acx.slot("message"),
            format: acx.slot("format"),
            sharded: acx.flag("sharded"),
        };
        acx.each(&input.attrs, |meta| s.parse(acx, &meta));
        ContainerAttrs {
            common: s.common.finish(),
            name: s.name.get(),
            message: s.message.get(),
            format: s.format.get(),
            sharded: s.sharded.get().is_some(),
        }
    }
}

impl Slots<'_> {
    fn parse(&mut self, acx: AttrCx<'_>, meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
        if self.common.parse(meta)? {
            return Ok(());
        }
        let path = &meta.path;
        if path.is_ident("name") {
            self.name.set(path, parse_lit_str(meta)?);
        } else if path.is_ident("message") {
            self.message.set(path, parse_type(meta)?);
        } else if path.is_ident("format") {
            let lit = parse_lit_str(meta)?;
            match lit.value().as_str() {
                "json" => self.format.set(path, Format::Json),
                "plain" => self.format.set(path, Format::Plain),
                other => acx.cx.error_spanned_by(
                    &lit,
                    format!("unknown channel format `{other}`; expected \"json\" (any serde type) or \"plain\" (a string, number or other plain field value)"),
                ),
            }
        } else if path.is_ident("sharded") {
            self.sharded.set(path);
        } else {
            return Err(acx.unknown(
                meta,
                "",
                "name, message, format, sharded, crate",
                &[
                    (
                        &["key", "channel", "template"],
                        " (the channel's name template is `name`)",
                    ),
                    (
                        &["payload", "msg", "ty", "type"],
                        " (the message type is `message`)",
                    ),
                    (
                        &["json", "plain"],
                        " (write `format = \"json\"` or `format = \"plain\"`)",
                    ),
                    (
                        &["shard", "sharded_channel"],
                        " (a sharded channel is `sharded`)",
                    ),
                ],
            ));
        }
        Ok(())
    }
}
