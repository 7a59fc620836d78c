//! Every container and field attribute of `#[derive(RedisHash)]` at once.

use chrono::{DateTime, Utc};
use redis_state::RedisHash;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Address {
    city: String,
}

fn unnamed() -> String {
    "(unnamed)".to_owned()
}

#[derive(RedisHash)]
#[redis(
    key = "{{user}}:{id}",
    ttl = "1h30m",
    namespace = "app:v1",
    collection = "users"
)]
#[redis(rename_all = "camelCase", crate = "redis_state")]
struct User {
    #[redis(id)]
    id: u64,
    #[redis(default = "unnamed")]
    display_name: String,
    #[redis(rename = "mail", unique)]
    email: String,
    #[redis(index)]
    country: String,
    #[redis(index)]
    team: Option<String>,
    #[redis(json)]
    address: Option<Address>,
    #[redis(with = redis_state::codec::EpochSeconds)]
    created_at: DateTime<Utc>,
    #[redis(counter)]
    logins: i64,
    #[redis(counter)]
    balance: f64,
    #[redis(version)]
    version: u64,
    #[redis(expires_at)]
    expires_at: Option<DateTime<Utc>>,
    #[redis(default)]
    score: u32,
    #[redis(skip)]
    cached: Vec<String>,
}

fn cached_len(user: &User) -> usize {
    user.cached.len()
}

fn main() {
    let _ = cached_len;
    let schema = User::SCHEMA;
    assert_eq!(schema.collection, "users");
    assert_eq!(schema.ttl_ms, Some(5_400_000));
    assert_eq!(schema.fields[1].name, "displayName");
    assert_eq!(schema.fields[2].name, "mail");
    assert_eq!(User::key_of(&7u64), "app:v1:{user}:7");

    let _ = User::find_by_country(&"NZ".to_owned());
    let _ = User::find_by_team(&"core".to_owned());
    let _ = User::find_by_email(&"a@example.com".to_owned());
    let _ = User::increment_logins(&7u64, 1);
    let _ = User::increment_balance(&7u64, 0.5);
    let _ = User::update(&7u64)
        .set(User::DISPLAY_NAME, "Ann")
        .set(User::TEAM, None)
        .set(User::EXPIRES_AT, None);
}
