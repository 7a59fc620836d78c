#![allow(dead_code)]
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Event {
    kind: String,
}

struct Tenant;

#[derive(redis_state::Channel)]
#[channel(name = "tenant:{tenant}:events", message = Event)]
struct TenantEvents {
    tenant: Tenant,
}

fn main() {}
