use redis_state::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Cached, Serialize, Deserialize)]
#[cache(key = "view:{id}", ttl = "10m")]
struct View {
    id: u64,
}

#[derive(RedisHash)]
#[redis(key = "row:{id}", invalidates(View = "ident"), invalidates_tag(View = "c:{category}"))]
struct Row {
    #[redis(id)]
    id: u64,
    #[redis(skip)]
    note: String,
}

#[derive(RedisHash)]
#[redis(key = "row2:{id}", invalidates_tag(View = "c:{note}"))]
struct Row2 {
    #[redis(id)]
    id: u64,
    #[redis(skip)]
    note: String,
}

fn main() {
    let _ = Row::load(&1u64);
}
