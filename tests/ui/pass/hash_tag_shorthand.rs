//! `hash_tag = "tenant"` wraps the `{tenant}` placeholder in a hash tag; the
//! default key template is `<snake_case name>:{id fields...}`.

use redis_state::RedisHash;

#[derive(RedisHash)]
#[redis(hash_tag = "tenant")]
struct TenantUser {
    #[redis(id)]
    tenant: String,
    #[redis(id)]
    id: u64,
    #[redis(unique)]
    email: String,
}

#[derive(RedisHash)]
#[redis(key = "session:{token}")]
struct Session {
    #[redis(id)]
    token: String,
    user: u64,
}

fn main() {
    let id = ("acme".to_owned(), 1u64);
    assert_eq!(TenantUser::key_of(&id), "tenant_user:{acme}:1");
    let _ = TenantUser::find_by_email(&"acme".to_owned(), &"a@example.com".to_owned());
    assert_eq!(Session::key_of("abc"), "session:abc");
}
