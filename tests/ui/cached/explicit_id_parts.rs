use redis_state::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Cached, Serialize, Deserialize)]
#[cache(key = "report:{day}", id = "(String, u32)", ttl = "1h")]
struct Report {
    total: i64,
}

fn main() {}
