//! # Sharing data with other clients
//!
//! Services rarely start alone: a Python service already keeps locks,
//! quotas, sessions and plain values in Redis in the conventional layouts
//! (the ones the redis-py recipes write), and a Rust service joining it
//! must read and write the same keys, byte for byte. Each layout is an
//! option here; the defaults stay as they are (they are safer for keys
//! built from untrusted input, and Cluster-ready).
//!
//! | layout other clients use | written by (redis-py) | option here |
//! |---|---|---|
//! | `lock:<name>` holding a random token, `SET NX EX`, released by the compare-and-`DEL` script | `RedisLock(r, "resource:123")` | `Lock::new("resource:123").verbatim_keys("lock:")` |
//! | `lock:<resource>` on N servers | the `Redlock` recipe | `Redlock::new(..).verbatim_keys("lock:")` |
//! | `rate_limit:<id>`: `INCR`, `EXPIRE` on the first, every request counts | the `is_allowed` script | `FixedWindow::new(..).count_all_requests().verbatim_keys("rate_limit:")` |
//! | `session:<uuid4>` holding `{"user_id", "created_at", "data"}` JSON | `SessionManager` | `JsonSessions::new(ttl).id_format(IdFormat::Uuid4).user_index(false)` |
//! | `session:<uuid4>` as a hash of `str(v)` fields | `HashSessionManager` | `HashSessions::new(ttl).id_format(IdFormat::Uuid4).user_index(false)` |
//! | a plain string with a TTL per call | `StringCache.fetch` / `save` | `StringValue::<T>::new(key)`, `.set(v).ttl(d)` |
//! | a counter changed on the server | `INCR`, the increment script | `Counter::<i64>::new(key).incr(n)` |
//! | get-or-set | the `get_or_set` script | `StringValue::get_or_set(v).ttl(d)` |
//! | `user:profile:<id>` hash with the id in the key only | `save_user_profile` (`hset`, `expire`) | `#[redis(key = "user:profile:{id}", store_id = false)]` |
//! | `user:<id>` holding the JSON alone, `SETEX` | `get_user` / `update_user` (cache-aside, write-through) | `#[cache(key = "user:{id}", ttl = "1h", format = "plain")]` |
//! | one field of a hash | `r.hget(key, field)` | `Model::load_field(&id, Model::FIELD)` |
//!
//! What differs, and why the defaults are what they are:
//!
//! * **Verbatim keys** take the name as given. The default layouts escape
//!   every user value (so `a:b` and a name that would add a segment or a
//!   hash tag never collide) and put locks in a hash tag with their fence
//!   counter; keep verbatim names to ones the application makes. A
//!   verbatim lock still draws fencing tokens, from a counter kept in its
//!   slot (`{lock:resource:123}#fence`), which other clients ignore.
//! * **Counting every request** keeps a subject that retries while over
//!   the limit denied until the window ends, and `remaining` says 0 for all
//!   of them. The default counts admitted requests only, so a denied client
//!   gets in as soon as the window ends.
//! * **Without the per-user index** a session is exactly the one key other
//!   clients write; "log out everywhere" needs the index.
//! * **Ids in the key only**: a load takes an id field the hash lacks from
//!   the key, so hashes other clients wrote load with any model;
//!   `store_id = false` also leaves the id out of what saves write.
//! * **Plain cache entries** are the JSON alone: another client's entry is
//!   a hit, and bytes that are not the type's JSON are an error, never
//!   overwritten. They give up what the default envelope's header holds:
//!   the stale window, XFetch's early refresh and the format version.
//! * **Plain values keep their TTL** on `set` (`KEEPTTL`); `persist()` is
//!   what a bare `SET` (and `save(key, value)` without `ttl_seconds`) does.
//!   `INCRBY` keeps a counter's TTL, where the increment script's `SET`
//!   drops it.
//!
//! The test suite runs the redis-py code of these recipes against what
//! this library writes, and the other way round (`tests/interop_coord.rs`,
//! `tests/interop/`). This program writes each layout and shows the raw
//! data, standing in for the Python side with the commands it sends.
//!
//! This program uses `REDIS_URL` if it is set, and otherwise starts a private
//! `redis-server`. Run it with `cargo run --example sharing`.

use std::time::Duration;

use redis_state::lock::{Lock, Release};
use redis_state::op::command;
use redis_state::prelude::*;
use redis_state::ratelimit::FixedWindow;
use redis_state::session::{HashSessions, IdFormat, JsonSessions};
use redis_state::value::{Counter, StringValue};
use serde::{Deserialize, Serialize};

#[derive(RedisHash, Debug, Clone, PartialEq)]
#[redis(key = "user:profile:{id}", store_id = false, ttl = "1d")]
struct Profile {
    #[redis(id)]
    id: u64,
    username: String,
    email: String,
    age: u16,
}

/// The recipes' cache-aside entries: `user:<id>`, the JSON alone.
#[derive(Cached, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cache(key = "user:{id}", ttl = "1h", format = "plain")]
struct User {
    id: u64,
    name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Cart {
    items: Vec<String>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (_server, client) = connect()?;
    let mut con = client.get_connection()?;
    // The conventional keys have no namespace; a unique name keeps this
    // program's keys apart on a shared server.
    let run = format!("demo{}", std::process::id());

    // ANCHOR: locks
    // redis-py: RedisLock(r, f"{run}:resource:123").acquire()
    //   -> SET lock:<name> <uuid4> NX EX 10
    let name = format!("{run}:resource:123");
    let lock = Lock::new(name.as_str())
        .verbatim_keys("lock:")
        .ttl(Duration::from_secs(10));
    let python_token = "0d5e7a4c-3a54-4d8e-9a7c-5e0b1f6a2c11";
    command::<()>("SET", lock.key())
        .arg(python_token)
        .arg("NX")
        .arg("EX")
        .arg(10)
        .run(&mut con)?;
    println!(
        "{} held by Python: Rust's try gets {:?}",
        lock.key(),
        lock.try_acquire().run(&mut con)?.map(|g| g.fence())
    );
    // The seed's owner-only release script is the same as Release's.
    assert!(Release::new(lock.key(), python_token).run(&mut con)?);
    let guard = lock.try_acquire().run(&mut con)?.expect("released");
    let stored: String = command("GET", lock.key()).run(&mut con)?;
    println!(
        "taken here: {} = {stored} (fence {})",
        lock.key(),
        guard.fence()
    );
    // Python's release with this token (RedisLock.release) frees it too.
    assert!(Release::new(lock.key(), guard.token()).run(&mut con)?);
    command::<i64>("DEL", lock.fence_key()).run(&mut con)?;
    // ANCHOR_END: locks

    // ANCHOR: rate_limit
    // redis-py: is_allowed(user_id, limit=3, window=60) -> rate_limit:<id>
    let api = FixedWindow::new("api", 3, Duration::from_secs(60))
        .count_all_requests()
        .verbatim_keys("rate_limit:");
    let user = format!("{run}-42");
    let mut answers = Vec::new();
    for _ in 0..4 {
        answers.push(api.check(user.as_str()).run(&mut con)?.allowed);
    }
    let counted: i64 = command("GET", format!("rate_limit:{user}")).run(&mut con)?;
    println!("rate_limit:{user}: {answers:?}, counter {counted} (every request counts)");
    // ANCHOR_END: rate_limit

    // ANCHOR: sessions
    // redis-py: SessionManager().create_session(42, {...}) and get_session(id)
    let sessions = JsonSessions::<Cart, u64>::new(Duration::from_secs(1800))
        .id_format(IdFormat::Uuid4)
        .user_index(false);
    let s = sessions
        .create(
            42,
            Cart {
                items: vec!["book".into()],
            },
        )
        .run(&mut con)?;
    let doc: String = command("GET", format!("session:{}", s.id)).run(&mut con)?;
    println!("session:{} = {doc}", s.id);
    // HashSessionManager's layout: str() of each field.
    let hashes = HashSessions::<Cart, u64>::new(Duration::from_secs(1800))
        .id_format(IdFormat::Uuid4)
        .user_index(false);
    let h = hashes.create(42, Cart { items: vec![] }).run(&mut con)?;
    let fields: Vec<(String, String)> =
        command("HGETALL", format!("session:{}", h.id)).run(&mut con)?;
    println!("session:{} = {fields:?}", h.id);
    sessions.delete(s.id.as_str()).run(&mut con)?;
    hashes.delete(h.id.as_str()).run(&mut con)?;
    // ANCHOR_END: sessions

    // ANCHOR: values
    // redis-py: StringCache().save(key, "hello", ttl_seconds=60); fetch(key)
    let greeting = StringValue::<String>::new(format!("{run}:greeting"));
    greeting
        .set(&"hello".to_owned())
        .ttl(Duration::from_secs(60))
        .run(&mut con)?;
    let raw: String = command("GET", greeting.key()).run(&mut con)?;
    println!(
        "{} = {raw:?}, {:?}",
        greeting.key(),
        greeting.ttl().run(&mut con)?
    );
    // The increment script and INCR agree with Counter on one number.
    let views = Counter::<i64>::new(format!("{run}:counter:views"));
    command::<i64>("INCR", views.key()).run(&mut con)?;
    println!("{} = {}", views.key(), views.incr(1).run(&mut con)?);
    // get_or_compute's script: the first value stored wins.
    let found = greeting.get_or_set(&"ignored".to_owned()).run(&mut con)?;
    println!("get-or-set found {found:?}");
    greeting.delete().run(&mut con)?;
    views.delete().run(&mut con)?;
    // ANCHOR_END: values

    // ANCHOR: hash_field
    // redis-py: r.hget(f"user:profile:{id}", "email") reads one field; so
    // does load_field, decoded as the model decodes it.
    let id: u64 = std::process::id().into();
    Profile {
        id,
        username: "ada".into(),
        email: "ada@example.com".into(),
        age: 36,
    }
    .save()
    .run(&mut con)?;
    command::<i64>("HSET", Profile::key_of(&id))
        .arg("age")
        .arg("37")
        .run(&mut con)?;
    let age = Profile::load_field(&id, Profile::AGE).run(&mut con)?;
    let email = Profile::load_field(&id, Profile::EMAIL).run(&mut con)?;
    println!("user:profile:{id}: age {age:?}, email {email:?}");
    // ANCHOR_END: hash_field

    // ANCHOR: profile
    // redis-py: save_user_profile(id, {...}) -> HSET without an id field;
    // the model stores the same fields and loads the id from the key.
    let fields: Vec<String> = command("HKEYS", Profile::key_of(&id)).run(&mut con)?;
    println!("user:profile:{id} fields: {fields:?}");
    command::<i64>("HSET", Profile::key_of(&(id + 1)))
        .arg(&["username", "bo", "email", "bo@example.com", "age", "41"])
        .run(&mut con)?;
    println!(
        "written by Python, loaded here: {:?}",
        Profile::load(&(id + 1)).run(&mut con)?
    );
    Profile::delete(&id).run(&mut con)?;
    Profile::delete(&(id + 1)).run(&mut con)?;
    // ANCHOR_END: profile

    // ANCHOR: plain_cache
    // redis-py: get_user(id) -> SETEX user:<id> 3600 json.dumps(user)
    command::<()>("SETEX", User::cache_key(&id))
        .arg(3600)
        .arg(format!(r#"{{"id": {id}, "name": "Ada"}}"#))
        .run(&mut con)?;
    let cache = Cache::<User>::new();
    let hit = cache.get_or_load(&mut con, &id, || {
        Ok::<_, std::io::Error>(Some(User {
            id,
            name: "from the database".into(),
        }))
    })?;
    println!("user:{id} written by Python is a hit: {hit:?}");
    // No hold: the next fill may be stored at once (see Invalidate::hold).
    User::invalidate(&id).hold(Duration::ZERO).run(&mut con)?;
    let filled = cache.get_or_load(&mut con, &id, || {
        Ok::<_, std::io::Error>(Some(User {
            id,
            name: "Ada".into(),
        }))
    })?;
    let raw: String = command("GET", User::cache_key(&id)).run(&mut con)?;
    println!("filled here: {filled:?}; json.loads reads {raw}");
    User::invalidate(&id).run(&mut con)?;
    // ANCHOR_END: plain_cache
    Ok(())
}

fn connect()
-> Result<(Option<redis_state::testing::RedisServer>, redis::Client), Box<dyn std::error::Error>> {
    match std::env::var("REDIS_URL") {
        Ok(url) => Ok((None, redis::Client::open(url)?)),
        Err(_) => {
            let server = redis_state::testing::RedisServer::start()?;
            let client = server.client();
            Ok((Some(server), client))
        }
    }
}
