//! `#[derive(Leaderboard)]`: generate the schema and the field code;
//! everything else is generic runtime code.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};

use super::ast::{DefaultKind, FieldModel, Model, Role};
use crate::internals::attr::{has_flag, lenient, parse_lit_str};
use crate::internals::expand::{Bounds, const_block, fallback_uses, key_template, option, tuple};
use crate::internals::template;

pub(crate) fn expand(m: &Model<'_>) -> TokenStream {
    let krate = &m.krate;
    let p = quote!(#krate::__private);
    let ident = m.ident;
    let (impl_g, ty_g, where_c) = m.generics.split_for_impl();
    let model_name = ident.to_string();

    // -- key template ---------------------------------------------------------
    let parts: Vec<&str> = m.template.parts().collect();
    let board_fields: Vec<&FieldModel<'_>> = parts
        .iter()
        .filter_map(|n| m.fields.iter().find(|f| f.rust_name() == *n))
        .collect();
    let key_template = key_template(&p, &m.template, m.namespace.as_deref());
    let board_ty = tuple(&board_fields.iter().map(|f| f.ty).collect::<Vec<_>>());
    let write_board = board_fields.iter().map(|f| {
        let fi = f.ident;
        quote!(#p::KeyPart::write_key_part(&self.#fi, __out);)
    });
    let board_id = tuple(
        &board_fields
            .iter()
            .map(|f| {
                let fi = f.ident;
                quote!(#p::Clone::clone(&self.#fi))
            })
            .collect::<Vec<_>>(),
    );

    let member = m.fields.iter().find(|f| f.role == Role::Member);
    let score = m.fields.iter().find(|f| f.role == Role::Score);
    let (Some(member), Some(score)) = (member, score) else {
        return TokenStream::new();
    };
    let member_ty = member.ty;
    let member_fi = member.ident;
    let score_ty = score.ty;
    let score_fi = score.ident;

    // -- schema -----------------------------------------------------------------
    let order = syn::Ident::new(m.order, Span::call_site());
    let update = syn::Ident::new(m.update, Span::call_site());
    let rank = syn::Ident::new(m.rank, Span::call_site());
    let tie = match &m.tie {
        None => quote!(#p::None),
        Some(t) => {
            let winner = syn::Ident::new(t.winner, Span::call_site());
            let (max, dec, res, epoch, bits) = (
                t.max_scaled,
                t.decimals,
                t.resolution_ms,
                t.epoch_ms,
                t.time_bits,
            );
            quote!(#p::Some(#p::TieBreak::new(#p::TieWinner::#winner, #max, #dec, #res, #epoch, #bits)))
        }
    };
    let windows = m.windows.iter().map(|(w, ms)| {
        let w = syn::Ident::new(w, Span::call_site());
        quote!(#p::WindowSpec::new(#p::Window::#w, #ms))
    });
    let cap = option(&p, m.cap);
    let data: Vec<&FieldModel<'_>> = m.fields.iter().filter(|f| f.role == Role::Data).collect();
    let data_names = data.iter().map(|f| &f.name);

    // -- member data --------------------------------------------------------------
    let write_data = data.iter().map(|f| {
        let fi = f.ident;
        let name = &f.name;
        let rust = f.rust_name();
        if f.option_inner.is_some() {
            quote!(__out.opt_field(#name, #rust, &self.#fi)?;)
        } else {
            quote!(__out.field(#name, #rust, &self.#fi)?;)
        }
    });
    let board_access = |i: usize| -> TokenStream {
        if board_fields.len() == 1 {
            quote!(__board)
        } else {
            let idx = syn::Index::from(i);
            quote!(&__board.#idx)
        }
    };
    let build = m.fields.iter().map(|f| {
        let fi = f.ident;
        let ty = f.ty;
        match f.role {
            Role::Board => {
                let i = board_fields
                    .iter()
                    .position(|b| b.rust_name() == f.rust_name())
                    .unwrap_or(0);
                let access = board_access(i);
                quote!(#fi: #p::Clone::clone(#access),)
            }
            Role::Member => quote!(#fi: __member,),
            Role::Score => quote!(#fi: __score,),
            Role::Skip => match &f.default {
                DefaultKind::Path(path) => quote!(#fi: #path(),),
                _ => quote_spanned!(ty_span(ty)=> #fi: ::core::default::Default::default(),),
            },
            Role::Data => {
                let name = &f.name;
                match (&f.default, f.option_inner.is_some()) {
                    (DefaultKind::Path(path), _) => quote!(#fi: __d.get_or::<#ty>(#name, #path)?,),
                    (DefaultKind::Default, _) => quote_spanned!(ty_span(ty)=>
                        #fi: __d.get_or::<#ty>(#name, ::core::default::Default::default)?,
                    ),
                    (DefaultKind::None, true) => {
                        quote!(#fi: __d.get_or::<#ty>(#name, || #p::None)?,)
                    }
                    (DefaultKind::None, false) => quote!(#fi: __d.get::<#ty>(#name)?,),
                }
            }
        }
    });
    let assemble_body = if data.is_empty() {
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
    };

    // -- requirements: `for<'__r>` bounds make an unmet one drop the impl
    // instead of erroring in it; the assertions below report it once, at
    // the field type.
    let mut preds = Bounds::default();
    preds.push(quote!(#score_ty: #p::ScoreValue));
    preds.push(quote!(#member_ty: #p::MemberValue));
    for f in &board_fields {
        let ty = f.ty;
        preds.push(
            quote!(#ty: #p::KeyPart + #p::Clone + ::core::marker::Send + ::core::marker::Sync + 'static),
        );
    }
    for f in &data {
        let ty = f.ty;
        preds.push(quote!(#ty: #p::serde::Serialize + #p::serde::de::DeserializeOwned));
    }
    let trait_where = preds.where_clause(m.generics);

    let asserts = {
        let mut a = Vec::new();
        a.push(quote_spanned!(ty_span(score_ty)=> #p::assert_score::<#score_ty>();));
        a.push(quote_spanned!(ty_span(member_ty)=> #p::assert_member::<#member_ty>();));
        for f in &board_fields {
            let ty = f.ty;
            a.push(quote_spanned!(ty_span(ty)=> #p::assert_board_part::<#ty>();));
        }
        for f in &data {
            let ty = f.ty;
            a.push(quote_spanned!(ty_span(ty)=> #p::assert_data::<#ty>();));
        }
        a
    };

    const_block(quote! {
        #[automatically_derived]
        impl #impl_g #p::Leaderboard for #ident #ty_g #trait_where {
            type BoardId = #board_ty;
            type Member = #member_ty;
            type Score = #score_ty;

            const SCHEMA: &'static #p::LeaderboardSchema = &#p::LeaderboardSchema::new(
                #model_name,
                #key_template,
                #p::Order::#order,
                #p::UpdatePolicy::#update,
                #p::RankMode::#rank,
                #tie,
                &[#(#windows),*],
                #cap,
                &[#(#data_names),*],
            );

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
                #assemble_body
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

fn ty_span(ty: &syn::Type) -> Span {
    syn::spanned::Spanned::span(ty)
}

/// A stand-in impl emitted beside compile errors, so that the user sees the
/// real error and not follow-on errors. It has the types the user meant (the
/// board fields the key template names, the member and score fields, read
/// leniently), so that `Model::board(..)` and reads elsewhere type-check.
pub(crate) fn fallback(input: &syn::DeriveInput, krate: &syn::Path) -> TokenStream {
    let ident = &input.ident;
    let p = quote!(#krate::__private);
    let (impl_g, ty_g, _) = input.generics.split_for_impl();
    let uses = fallback_uses(input, "leaderboard", &["default"]);
    let fields: Vec<&syn::Field> = match &input.data {
        syn::Data::Struct(data) => data.fields.iter().collect(),
        _ => Vec::new(),
    };
    let marked = |name: &str| {
        fields
            .iter()
            .find(|f| has_flag(&f.attrs, "leaderboard", name))
            .map(|f| &f.ty)
    };
    let member_ty = marked("member").map_or_else(|| quote!(#p::String), |t| quote!(#t));
    let score_ty = marked("score").map_or_else(|| quote!(i64), |t| quote!(#t));
    let mut key = None;
    lenient(&input.attrs, "leaderboard", |meta| {
        if meta.path.is_ident("key") {
            key = parse_lit_str(meta).ok();
        }
    });
    let board: Vec<&syn::Type> = key
        .and_then(|lit| template::parse_lenient(&lit.value()).ok())
        .map(|t| {
            t.parts()
                .filter_map(|name| {
                    fields
                        .iter()
                        .find(|f| f.ident.as_ref().is_some_and(|i| i == name))
                        .map(|f| &f.ty)
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
