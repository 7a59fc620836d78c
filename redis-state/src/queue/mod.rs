//! Job queues.
