use redis_state::prelude::*;
use serde::{Deserialize, Serialize};

// A no-break space: refused here as `Namespace::new` refuses it at run time.
#[derive(Cached, Serialize, Deserialize)]
#[cache(key = "product:{id}", ttl = "10m", namespace = "shop\u{a0}eu")]
struct Product {
    id: u64,
}

fn main() {}
