//! Expansion snapshots (STYLE item 6): each input goes through the derive's
//! expansion function, and the pretty-printed output is compared with
//! `snapshots/<name>.snap`, whose header holds the input. They are the review
//! of what the derives generate: read a changed snapshot before accepting it
//! (`cargo insta review`, or `INSTA_UPDATE=always cargo test -p redis-state-derive`).

use proc_macro2::TokenStream;
use quote::quote;

/// Expands `input` with `derive` (the internal expansion function, not the
/// proc-macro entry point) and snapshots the result under `name`.
fn snapshot(
    name: &str,
    derive_name: &str,
    derive: fn(&syn::DeriveInput) -> TokenStream,
    input: TokenStream,
) {
    let parsed: syn::DeriveInput = syn::parse2(input.clone()).expect("the input is a derive input");
    let expansion = derive(&parsed);
    insta::with_settings!({
        prepend_module_to_snapshot => false,
        omit_expression => true,
        description => format!("#[derive({derive_name})]\n{}", pretty(input)),
    }, {
        insta::assert_snapshot!(name, pretty(expansion));
    });
}

fn pretty(tokens: TokenStream) -> String {
    let file: syn::File = syn::parse2(tokens).expect("the expansion parses as items");
    prettyplease::unparse(&file)
}

fn hash(name: &str, input: TokenStream) {
    snapshot(name, "RedisHash", crate::hash::derive, input);
}

fn field(name: &str, input: TokenStream) {
    snapshot(name, "RedisField", crate::field::derive, input);
}

#[test]
fn hash_plain() {
    hash(
        "hash_plain",
        quote! {
            pub struct User {
                #[redis(id)]
                pub id: u64,
                pub name: String,
                pub email: String,
            }
        },
    );
}

#[test]
fn hash_every_role() {
    hash(
        "hash_every_role",
        quote! {
            #[redis(key = "{{user}}:{id}", ttl = "30m")]
            pub struct User {
                #[redis(id)]
                pub id: u64,
                #[redis(index)]
                pub country: String,
                #[redis(unique)]
                pub email: String,
                pub nick: Option<String>,
                #[redis(json)]
                pub tags: Vec<String>,
                #[redis(counter)]
                pub logins: i64,
                #[redis(version)]
                pub version: u64,
                #[redis(expires_at)]
                pub expires_at: Option<DateTime<Utc>>,
                #[redis(skip)]
                pub cache: Vec<u8>,
            }
        },
    );
}

#[test]
fn hash_composite_id() {
    hash(
        "hash_composite_id",
        quote! {
            #[redis(key = "order:{customer}:{id}", hash_tag = "customer", rename_all = "camelCase")]
            pub struct Order {
                #[redis(id)]
                pub customer: CustomerId,
                #[redis(id)]
                pub id: u64,
                #[redis(index)]
                pub order_status: Status,
                #[redis(with = EpochMillis, default)]
                pub placed_at: DateTime<Utc>,
            }
        },
    );
}

#[test]
fn hash_generic() {
    hash(
        "hash_generic",
        quote! {
            #[redis(key = "setting:{id}", crate = "my_app::redis_state")]
            pub struct Setting<T: FieldValue> where T: Clone {
                #[redis(id)]
                pub id: String,
                pub value: T,
            }
        },
    );
}

#[test]
fn hash_error_fallback() {
    hash(
        "hash_error_fallback",
        quote! {
            #[redis(ttl = "5x")]
            pub struct User {
                #[redis(id)]
                pub id: u64,
                #[redis(with = EpochSeconds)]
                pub seen: DateTime<Utc>,
            }
        },
    );
}

/// The fallback beside an error takes the `crate` path even when it follows
/// a parenthesised entry (`invalidates(...)`) in the same attribute.
#[test]
fn hash_error_fallback_crate_after_invalidates() {
    hash(
        "hash_error_fallback_crate_after_invalidates",
        quote! {
            #[redis(ttl = "5x", invalidates(ProductView = "id"), crate = "my_state")]
            pub struct Product {
                #[redis(id)]
                pub id: u64,
            }
        },
    );
}

#[test]
fn field_newtype() {
    field(
        "field_newtype",
        quote! {
            pub struct UserId(pub u64);
        },
    );
}

#[test]
fn field_newtype_named_generic() {
    field(
        "field_newtype_named_generic",
        quote! {
            pub struct Tagged<T> {
                pub inner: T,
            }
        },
    );
}

#[test]
fn field_enum() {
    field(
        "field_enum",
        quote! {
            #[redis(rename_all = "snake_case")]
            pub enum Status {
                Active,
                OnHold,
                #[redis(rename = "gone")]
                Deleted,
            }
        },
    );
}

fn cached(name: &str, input: TokenStream) {
    snapshot(name, "Cached", crate::cached::derive, input);
}

#[test]
fn cached_every_option() {
    cached(
        "cached_every_option",
        quote! {
            #[cache(
                key = "product:{id}",
                ttl = "10m",
                jitter = "10%",
                stale = "1m",
                negative_ttl = "30s",
                tag = "category:{category}",
                version = 2
            )]
            pub struct Product {
                pub id: u64,
                pub category: String,
            }
        },
    );
}

#[test]
fn cached_explicit_id() {
    cached(
        "cached_explicit_id",
        quote! {
            #[cache(key = "report:{day}:{region}", id = "(String, u16)", ttl = "1h", beta = 0)]
            pub struct Report {
                pub total: i64,
            }
        },
    );
}

#[test]
fn hash_invalidates() {
    hash(
        "hash_invalidates",
        quote! {
            #[redis(key = "{{product}}:{id}", invalidates(ProductView = "id"), invalidates_tag(ProductList = "category:{category}", ProductFeed = "all"))]
            pub struct ProductRow {
                #[redis(id)]
                pub id: u64,
                pub category: String,
            }
        },
    );
}

fn leaderboard(name: &str, input: TokenStream) {
    snapshot(name, "Leaderboard", crate::leaderboard::derive, input);
}

#[test]
fn leaderboard_plain() {
    leaderboard(
        "leaderboard_plain",
        quote! {
            pub struct Score {
                #[leaderboard(member)]
                pub player: u64,
                #[leaderboard(score)]
                pub points: f64,
            }
        },
    );
}

#[test]
fn leaderboard_everything() {
    leaderboard(
        "leaderboard_everything",
        quote! {
            #[leaderboard(
                key = "lb:{{{game}}}:{region}",
                update = "keep_best",
                rank = "competition",
                tie_break = "earlier",
                max_score = 1_000_000,
                windows(daily = "7d", weekly),
                cap = 100,
            )]
            pub struct Run {
                pub game: String,
                pub region: String,
                #[leaderboard(member)]
                pub player: String,
                #[leaderboard(score)]
                pub points: u32,
                #[leaderboard(rename = "cc")]
                pub country: Option<String>,
                #[leaderboard(default)]
                pub level: u8,
                #[leaderboard(skip)]
                pub cache: Vec<u8>,
            }
        },
    );
}

#[test]
fn leaderboard_error_fallback() {
    leaderboard(
        "leaderboard_error_fallback",
        quote! {
            #[leaderboard(key = "lb:{game}", update = "best")]
            pub struct Run {
                pub game: String,
                #[leaderboard(member)]
                pub player: String,
                #[leaderboard(score)]
                pub points: u32,
            }
        },
    );
}

fn channel(name: &str, input: TokenStream) {
    snapshot(name, "Channel", crate::channel::derive, input);
}

#[test]
fn channel_json_parts() {
    channel(
        "channel_json_parts",
        quote! {
            #[channel(name = "org:{org}:user:{id}:events", message = UserEvent)]
            pub struct UserEvents {
                pub org: String,
                pub id: u64,
            }
        },
    );
}

#[test]
fn channel_plain_sharded_unit() {
    channel(
        "channel_plain_sharded_unit",
        quote! {
            #[channel(name = "announcements", message = String, format = "plain", sharded)]
            pub struct Announcements;
        },
    );
}

#[test]
fn channel_error_fallback() {
    channel(
        "channel_error_fallback",
        quote! {
            #[channel(name = "user:{user}:events", message = UserEvent)]
            pub struct UserEvents {
                pub id: u64,
            }
        },
    );
}
