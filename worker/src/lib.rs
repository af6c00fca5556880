//! `squall-worker`: runs the tasks an assignment gives this process and exchanges tuples
//! and acker traffic with the workers running the rest, over long-lived gRPC streams.
#![forbid(unsafe_code)]

pub mod wire;
