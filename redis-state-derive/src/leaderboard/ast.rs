//! `#[derive(Leaderboard)]`: the model the expansion reads, normalised from
//! the attributes: each field's role, the choices as enums, the tie-break
//! worked out.

use proc_macro2::Span;

use super::attr::{ContainerAttrs, FieldAttrs, Order, RankMode, UpdatePolicy, Window};
use super::check;
use super::tie::{self, TieModel};
use crate::internals::ast::{Container, Field, ModelField};
pub(crate) use crate::internals::attr::DefaultKind;
use crate::internals::attr::check_namespace;
use crate::internals::case::{RenameRule, to_snake};
use crate::internals::ctxt::Ctxt;
use crate::internals::template::{KeyAttr, Template};

pub(crate) struct Model<'a> {
    pub(crate) ident: &'a syn::Ident,
    pub(crate) generics: &'a syn::Generics,
    pub(crate) krate: syn::Path,
    pub(crate) template: Template,
    pub(crate) namespace: Option<String>,
    pub(crate) order: Order,
    pub(crate) update: UpdatePolicy,
    pub(crate) rank: RankMode,
    pub(crate) tie: Option<TieModel>,
    /// Each window with how long its boards are kept, in milliseconds.
    pub(crate) windows: Vec<(Window, u64)>,
    pub(crate) cap: Option<u64>,
    pub(crate) fields: Vec<FieldModel<'a>>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Role {
    /// Named in the key template.
    Board,
    Member,
    Score,
    /// Member data.
    Data,
    /// Not stored.
    Skip,
}

pub(crate) struct FieldModel<'a> {
    pub(crate) field: Field<'a>,
    /// The JSON key of a data field.
    pub(crate) name: String,
    pub(crate) name_span: Span,
    pub(crate) role: Role,
    pub(crate) default: DefaultKind,
}

impl<'a> FieldModel<'a> {
    fn new(
        cx: &Ctxt,
        field: &Field<'a>,
        a: &FieldAttrs,
        role: Role,
        rename_all: Option<RenameRule>,
    ) -> Self {
        let (name, name_span) =
            field.stored_name(cx, a.common.rename.as_ref(), rename_all, "member data");
        FieldModel {
            field: field.clone(),
            name,
            name_span,
            role,
            default: a.common.default_kind(),
        }
    }
}

impl<'a> ModelField<'a> for FieldModel<'a> {
    fn field(&self) -> &Field<'a> {
        &self.field
    }
}

/// A field's role: `member` and `score` as marked, then the fields the key
/// names, then `skip`, then member data.
fn role(a: &FieldAttrs, in_key: bool) -> Role {
    if a.member.is_some() {
        Role::Member
    } else if a.score.is_some() {
        Role::Score
    } else if in_key {
        Role::Board
    } else if a.common.skip.is_some() {
        Role::Skip
    } else {
        Role::Data
    }
}

/// Reads, normalises and checks the input; `None` after an error.
pub(crate) fn parse<'a>(cx: &Ctxt, input: &'a syn::DeriveInput) -> Option<Model<'a>> {
    let container = Container::named_struct(
        cx,
        input,
        "Leaderboard",
        "it reads a struct with named fields as one entry of a board",
    );
    let attrs = ContainerAttrs::from_ast(cx, input);
    let field_attrs: Vec<FieldAttrs> = container
        .fields
        .iter()
        .map(|f| FieldAttrs::from_ast(cx, f))
        .collect();

    let key = KeyAttr::new(attrs.common.key.clone(), &input.ident, || {
        format!("{{{{{}}}}}", to_snake(&input.ident.to_string()))
    });
    let template = key.parse(cx, attrs.common.hash_tag.as_ref());
    let parts: Vec<&str> = template.iter().flat_map(Template::parts).collect();

    let mut fields = Vec::new();
    for (f, a) in container.fields.iter().zip(&field_attrs) {
        let in_key = parts.contains(&f.rust_name.as_str());
        let role = role(a, in_key);
        check::field(cx, &key, f, a, role, in_key);
        fields.push(FieldModel::new(cx, f, a, role, attrs.common.rename_all));
    }
    check::one_member_and_score(cx, &container, &field_attrs);
    if let Some(t) = &template {
        check::placeholders(cx, &container, &key, t, &fields);
    }
    let roles_known = field_attrs.iter().any(|a| a.member.is_some())
        && field_attrs.iter().any(|a| a.score.is_some())
        && parts.iter().all(|p| container.field(p).is_some());
    check::data_names(cx, &fields);
    let rank = attrs.rank.unwrap_or(RankMode::Ordinal);
    if let Some(t) = &template {
        check::hash_tag(cx, &key, t, &attrs, &fields, roles_known, rank);
    }
    let score_ty = fields
        .iter()
        .find(|f| f.role == Role::Score)
        .map(|f| f.ty());
    let tie = tie::tie_break(cx, &attrs.tie, score_ty);
    let namespace = check_namespace(cx, attrs.common.namespace.as_ref());

    if !container.named || cx.has_errors() {
        return None;
    }
    Some(Model {
        ident: &input.ident,
        generics: &input.generics,
        krate: attrs.common.krate,
        template: template?,
        namespace,
        order: attrs.order.unwrap_or(Order::HighFirst),
        update: attrs.update.unwrap_or(UpdatePolicy::Replace),
        rank,
        tie,
        windows: attrs.windows,
        cap: attrs.cap,
        fields,
    })
}
