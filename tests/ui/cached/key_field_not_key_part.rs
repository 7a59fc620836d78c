use redis_state::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Cached, Serialize, Deserialize)]
#[cache(key = "point:{x}", ttl = "10m")]
struct Point {
    x: f64,
}

fn main() {}
