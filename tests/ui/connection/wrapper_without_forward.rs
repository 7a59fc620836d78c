//! A wrapper of a connection that redis-state does not know: refused at
//! compile time with a note saying what to write, never sent as a plain
//! pipeline at run time.

use redis_state::Operation;

struct Traced(redis::aio::MultiplexedConnection);

impl std::ops::Deref for Traced {
    type Target = redis::aio::MultiplexedConnection;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Traced {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

async fn get(con: &mut Traced) -> redis_state::Result<i64> {
    redis_state::op::command::<i64>("GET", "k").run_async(con).await
}

fn main() {
    let _ = get;
}
