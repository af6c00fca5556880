//! Protobuf messages of Squall's worker-to-worker data plane.
//!
//! Generated from `proto/squall/wire/v1/wire.proto` by `make proto` (the
//! `squall-protogen` tool); `make proto-check` fails when the committed code is stale.
//! The `Link` service is served and dialled by `squall-worker` with its own codec, so
//! only the messages are generated here.
#![forbid(unsafe_code)]

/// `squall.wire.v1`: hello, batches of engine messages, back-pressure status.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod wire {
    include!("generated/squall.wire.v1.rs");
}

/// Wire protocol revision carried in `Hello.protocol`.
pub const PROTOCOL: u32 = 1;

/// gRPC path of `Link.Exchange`.
pub const EXCHANGE_PATH: &str = "/squall.wire.v1.Link/Exchange";
