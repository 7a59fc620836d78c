//! `#[derive(RedisField)]`: newtypes and unit enums as fields and ids. A
//! newtype over `f64` is a field but not an id (see
//! `ui/field/f64_newtype_as_id.rs`).

use redis_state::{RedisField, RedisHash};

#[derive(RedisField)]
struct UserId(u64);

#[derive(RedisField)]
struct Email {
    address: String,
}

#[derive(RedisField)]
struct Celsius(f64);

#[derive(RedisField, Clone, Copy, PartialEq, Debug)]
#[redis(rename_all = "snake_case")]
enum Status {
    Active,
    OnHold,
    #[redis(rename = "gone")]
    Deleted,
}

#[derive(RedisHash)]
#[redis(key = "{{reading}}:{user}:{status}")]
struct Reading {
    #[redis(id)]
    user: UserId,
    #[redis(id)]
    status: Status,
    #[redis(unique)]
    email: Email,
    temperature: Celsius,
    #[redis(index)]
    peak: Option<Celsius>,
}

fn main() {
    assert_eq!(
        Reading::key_of(&(UserId(7), Status::OnHold)),
        "{reading}:7:on_hold"
    );
    assert_eq!(
        Reading::key_of(&(UserId(7), Status::Deleted)),
        "{reading}:7:gone"
    );
    let _ = Reading::find_by_email(&Email {
        address: "a@example.com".to_owned(),
    });
    let _ = Reading::update(&(UserId(7), Status::Active)).set(Reading::TEMPERATURE, Celsius(21.5));
}
