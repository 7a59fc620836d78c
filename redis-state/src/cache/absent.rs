//! The local cache and the cache waker when the `async` feature is left
//! out. Both are tokio tasks fed by RESP3 pushes, so a blocking-only build
//! has neither; the strategies in [`handle`](super::handle) are written once
//! for both builds and read `Option<LocalCache>` and `Option<CacheWaker>`,
//! which here are always `None`: these types have no values.

pub(crate) mod local {
    use std::convert::Infallible;

    /// No local cache exists without the `async` feature.
    #[derive(Debug, Clone)]
    pub(crate) struct LocalCache(Infallible);

    /// A read in progress of a local cache that cannot exist. Dropping one
    /// ends the read, as with the real ticket.
    pub(crate) struct Ticket(Infallible);

    impl Drop for Ticket {
        fn drop(&mut self) {
            match self.0 {}
        }
    }

    impl LocalCache {
        pub(crate) fn get<T>(&self, _: &str) -> Option<T> {
            match self.0 {}
        }

        pub(crate) fn begin(&self, _: &str) -> Option<Ticket> {
            match self.0 {}
        }

        pub(crate) fn complete<T>(&self, ticket: Ticket, _: T) -> bool {
            match ticket.0 {}
        }

        pub(crate) fn invalidate(&self, _: &str) {
            match self.0 {}
        }
    }
}

pub(crate) mod waker {
    use std::convert::Infallible;
    use std::time::Duration;

    use crate::error::Result;

    /// Unused without a waker; the same value as with one.
    pub(crate) const SAFETY_RECHECK: Duration = Duration::from_millis(500);

    /// No cache waker exists without the `async` feature.
    #[derive(Debug, Clone)]
    pub(crate) struct CacheWaker(Infallible);

    /// A subscription of a waker that cannot exist.
    pub(crate) struct Watch(Infallible);

    impl CacheWaker {
        pub(crate) async fn watch(&self, _: &str) -> Result<Watch> {
            match self.0 {}
        }
    }

    impl Watch {
        pub(crate) fn seen(&mut self) {
            match self.0 {}
        }

        pub(crate) async fn changed(&mut self, _: Duration) {
            match self.0 {}
        }
    }
}
