//! `#[derive(Leaderboard)]`: generate the schema and the field code;
//! everything else is generic runtime code.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use super::ast::{DefaultKind, FieldModel, Model, Role};
use super::attr::PATH;
use crate::internals::ast::Container;
use crate::internals::ast::ModelField;
use crate::internals::attr::{has_flag, lenient_str};
use crate::internals::expand::{
    Bounds, Chain, const_block, fallback_uses, int_lit, key_template, signed_lit, tuple,
};
use crate::internals::template::Template;

pub(crate) fn expand(m: &Model<'_>) -> TokenStream {
    let x = Expander::new(m);
    let (Some(member), Some(score)) = (x.role(Role::Member), x.role(Role::Score)) else {
        return TokenStream::new();
    };
    let p = &x.p;
    let ident = m.ident;
    let (impl_g, ty_g, where_c) = m.generics.split_for_impl();
    let board_ty = tuple(&x.board.iter().map(|f| f.ty()).collect::<Vec<_>>());
    let write_board = x.board.iter().map(|f| {
        let fi = f.ident();
        quote!(#p::KeyPart::write_key_part(&self.#fi, __out);)
    });
    let board_id = tuple(
        &x.board
            .iter()
            .map(|f| {
                let fi = f.ident();
                quote!(#p::Clone::clone(&self.#fi))
            })
            .collect::<Vec<_>>(),
    );
    let (member_ty, member_fi) = (member.ty(), member.ident());
    let (score_ty, score_fi) = (score.ty(), score.ident());
    let schema = x.schema();
    let write_data = x.write_data();
    let assemble = x.assemble();
    let trait_where = x.bounds(member_ty, score_ty).where_clause(m.generics);
    let asserts = x.asserts(member_ty, score_ty);

    const_block(quote! {
        #[automatically_derived]
        impl #impl_g #p::Leaderboard for #ident #ty_g #trait_where {
            type BoardId = #board_ty;
            type Member = #member_ty;
            type Score = #score_ty;

            const SCHEMA: &'static #p::LeaderboardSchema = &#schema;

            #[inline]
            fn write_board(&self, __out: &mut #p::IdBuf) {
                #(#write_board)*
            }

            #[inline]
            fn board_id(&self) -> Self::BoardId {
                #board_id
            }

            #[inline]
            fn member(&self) -> &Self::Member {
                &self.#member_fi
            }

            #[inline]
            fn score(&self) -> Self::Score {
                self.#score_fi
            }

            fn write_data(&self, __out: &mut #p::DataWriter) -> #p::Result<()> {
                #(#write_data)*
                #p::Ok(())
            }

            fn assemble(
                __board: &Self::BoardId,
                __member: Self::Member,
                __score: Self::Score,
                __data: #p::Option<&mut #p::DataReader<'_>>,
            ) -> #p::Result<#p::Option<Self>> {
                #assemble
            }
        }

        #[automatically_derived]
        impl #impl_g #ident #ty_g #where_c {
            #[doc(hidden)]
            #[allow(dead_code)]
            fn __redis_state_assert_leaderboard() {
                #(#asserts)*
            }
        }
    })
}

/// The model and what every part of the expansion needs from it.
struct Expander<'m, 'a> {
    m: &'m Model<'a>,
    /// The runtime's `__private` path.
    p: TokenStream,
    /// The board fields, in key template order.
    board: Vec<&'m FieldModel<'a>>,
    /// The member data fields.
    data: Vec<&'m FieldModel<'a>>,
}

impl<'m, 'a> Expander<'m, 'a> {
    fn new(m: &'m Model<'a>) -> Self {
        let krate = &m.krate;
        let board = m
            .template
            .parts()
            .filter_map(|n| m.fields.iter().find(|f| f.rust_name() == n))
            .collect();
        Expander {
            m,
            p: quote!(#krate::__private),
            board,
            data: m.fields.iter().filter(|f| f.role == Role::Data).collect(),
        }
    }

    fn role(&self, role: Role) -> Option<&'m FieldModel<'a>> {
        self.m.fields.iter().find(|f| f.role == role)
    }

    /// `LeaderboardSchema::of("Run").with_key(..).with_order(..)...`.
    fn schema(&self) -> Chain {
        let (p, m) = (&self.p, self.m);
        let model_name = m.ident.to_string();
        let (order, update, rank) = (m.order.variant(), m.update.variant(), m.rank.variant());
        let tie = m.tie.as_ref().map(|t| {
            let winner = t.winner.variant();
            Chain::new(quote!(#p::TieBreak::of(#p::TieWinner::#winner)))
                .with("max_scaled", int_lit(t.max_scaled, "u64"))
                .with("decimals", int_lit(t.decimals, "u8"))
                .with("resolution_ms", int_lit(t.resolution_ms, "u64"))
                .with("epoch_ms", signed_lit(t.epoch_ms, "i64"))
                .with("time_bits", int_lit(t.time_bits, "u8"))
        });
        let windows = m.windows.iter().map(|(w, ms)| {
            let w = w.variant();
            Chain::new(quote!(#p::WindowSpec::of(#p::Window::#w)))
                .with("keep_ms", int_lit(*ms, "u64"))
        });
        let data_names = self.data.iter().map(|f| &f.name);
        Chain::new(quote!(#p::LeaderboardSchema::of(#model_name)))
            .with("key", key_template(p, &m.template, m.namespace.as_deref()))
            .with("order", quote!(#p::Order::#order))
            .with("update", quote!(#p::UpdatePolicy::#update))
            .with("rank", quote!(#p::RankMode::#rank))
            .with_some("tie_break", tie)
            .with("windows", quote!(&[#(#windows),*]))
            .with_some("cap", m.cap.map(|c| int_lit(c, "u64")))
            .with("data", quote!(&[#(#data_names),*]))
    }

    /// The member data as one JSON object: `None` fields are absent keys.
    fn write_data(&self) -> Vec<TokenStream> {
        self.data
            .iter()
            .map(|f| {
                let (fi, name, rust) = (f.ident(), &f.name, f.rust_name());
                if f.field.option_inner.is_some() {
                    quote!(__out.opt_field(#name, #rust, &self.#fi)?;)
                } else {
                    quote!(__out.field(#name, #rust, &self.#fi)?;)
                }
            })
            .collect()
    }

    /// The body of `assemble`: an entry from its board id, member, score
    /// and data; `None` when the data of a board with member data is gone.
    fn assemble(&self) -> TokenStream {
        let p = &self.p;
        let build = self.m.fields.iter().map(|f| self.build_field(f));
        if self.data.is_empty() {
            quote! {
                let _ = __data;
                #p::Ok(#p::Some(Self { #(#build)* }))
            }
        } else {
            quote! {
                let #p::Some(__d) = __data else {
                    return #p::Ok(#p::None);
                };
                #p::Ok(#p::Some(Self { #(#build)* }))
            }
        }
    }

    fn build_field(&self, f: &FieldModel<'_>) -> TokenStream {
        let p = &self.p;
        let (fi, ty) = (f.ident(), f.ty());
        match f.role {
            Role::Board => {
                let i = self
                    .board
                    .iter()
                    .position(|b| b.rust_name() == f.rust_name())
                    .unwrap_or(0);
                let access = if self.board.len() == 1 {
                    quote!(__board)
                } else {
                    let idx = syn::Index::from(i);
                    quote!(&__board.#idx)
                };
                quote!(#fi: #p::Clone::clone(#access),)
            }
            Role::Member => quote!(#fi: __member,),
            Role::Score => quote!(#fi: __score,),
            Role::Skip => match &f.default {
                DefaultKind::Path(path) => quote!(#fi: #path(),),
                _ => quote_spanned!(ty.span()=> #fi: ::core::default::Default::default(),),
            },
            Role::Data => {
                let name = &f.name;
                match (&f.default, f.field.option_inner.is_some()) {
                    (DefaultKind::Path(path), _) => quote!(#fi: __d.get_or::<#ty>(#name, #path)?,),
                    (DefaultKind::Default, _) => quote_spanned!(ty.span()=>
                        #fi: __d.get_or::<#ty>(#name, ::core::default::Default::default)?,
                    ),
                    (DefaultKind::None, true) => {
                        quote!(#fi: __d.get_or::<#ty>(#name, || #p::None)?,)
                    }
                    (DefaultKind::None, false) => quote!(#fi: __d.get::<#ty>(#name)?,),
                }
            }
        }
    }

    /// Requirements as `for<'__r>` bounds: an unmet one drops the impl
    /// instead of erroring in it; the assertions report it once, at the
    /// field type.
    fn bounds(&self, member_ty: &syn::Type, score_ty: &syn::Type) -> Bounds {
        let p = &self.p;
        let mut preds = Bounds::default();
        preds.push(quote!(#score_ty: #p::ScoreValue));
        preds.push(quote!(#member_ty: #p::MemberValue));
        for f in &self.board {
            let ty = f.ty();
            preds.push(
                quote!(#ty: #p::KeyPart + #p::Clone + ::core::marker::Send + ::core::marker::Sync + 'static),
            );
        }
        for f in &self.data {
            let ty = f.ty();
            preds.push(quote!(#ty: #p::serde::Serialize + #p::serde::de::DeserializeOwned));
        }
        preds
    }

    fn asserts(&self, member_ty: &syn::Type, score_ty: &syn::Type) -> Vec<TokenStream> {
        let p = &self.p;
        let mut a = vec![
            quote_spanned!(score_ty.span()=> #p::assert_score::<#score_ty>();),
            quote_spanned!(member_ty.span()=> #p::assert_member::<#member_ty>();),
        ];
        for f in &self.board {
            let ty = f.ty();
            a.push(quote_spanned!(ty.span()=> #p::assert_board_part::<#ty>();));
        }
        for f in &self.data {
            let ty = f.ty();
            a.push(quote_spanned!(ty.span()=> #p::assert_data::<#ty>();));
        }
        a
    }
}

/// A stand-in impl emitted beside compile errors, so that the user sees the
/// real error and not follow-on errors. It has the types the user meant (the
/// board fields the key template names, the member and score fields, read
/// leniently), so that `Model::board(..)` and reads elsewhere type-check.
pub(crate) fn fallback(input: &syn::DeriveInput, krate: &syn::Path) -> TokenStream {
    let ident = &input.ident;
    let p = quote!(#krate::__private);
    let (impl_g, ty_g, _) = input.generics.split_for_impl();
    let uses = fallback_uses(input, PATH, &["default"]);
    let container = Container::read(input);
    let marked = |name: &str| {
        container
            .fields
            .iter()
            .find(|f| has_flag(f.attrs, PATH, name))
            .map(|f| f.ty)
    };
    let member_ty = marked("member").map_or_else(|| quote!(#p::String), |t| quote!(#t));
    let score_ty = marked("score").map_or_else(|| quote!(i64), |t| quote!(#t));
    let board: Vec<&syn::Type> = lenient_str(&input.attrs, PATH, "key")
        .and_then(|lit| Template::parse_lenient(&lit.value()).ok())
        .map(|t| {
            t.parts()
                .filter_map(|name| {
                    container
                        .fields
                        .iter()
                        .find(|f| f.ident == name)
                        .map(|f| f.ty)
                })
                .collect()
        })
        .unwrap_or_default();
    let board_ty = tuple(&board);
    let mut preds = Bounds::default();
    preds.push(quote!(#board_ty: #p::IdValue + #p::Clone + ::core::marker::Send + ::core::marker::Sync + 'static));
    preds.push(quote!(#member_ty: #p::MemberValue));
    preds.push(quote!(#score_ty: #p::ScoreValue));
    let where_c = preds.where_clause(&input.generics);
    const_block(quote! {
        #[automatically_derived]
        impl #impl_g #p::Leaderboard for #ident #ty_g #where_c {
            type BoardId = #board_ty;
            type Member = #member_ty;
            type Score = #score_ty;
            const SCHEMA: &'static #p::LeaderboardSchema = &#p::FALLBACK_LEADERBOARD;
            fn write_board(&self, _: &mut #p::IdBuf) {}
            fn board_id(&self) -> Self::BoardId {
                ::core::unimplemented!()
            }
            fn member(&self) -> &Self::Member {
                ::core::unimplemented!()
            }
            fn score(&self) -> Self::Score {
                ::core::unimplemented!()
            }
            fn write_data(&self, _: &mut #p::DataWriter) -> #p::Result<()> {
                ::core::unimplemented!()
            }
            fn assemble(
                _: &Self::BoardId,
                _: Self::Member,
                _: Self::Score,
                _: #p::Option<&mut #p::DataReader<'_>>,
            ) -> #p::Result<#p::Option<Self>> {
                ::core::unimplemented!()
            }
        }
        #uses
    })
}
