//! The local stand-in for the public Wikipedia edit feed: a bundled, deterministic data set
//! of edit events ([`DataSet`]) and a server replaying it over websocket and Server-Sent
//! Events ([`FeedServer`]), for the demo, the tests and the benchmarks.
//!
//! # Server specification
//! - MUST bind loopback addresses only; any other address is refused at start.
//! - Websocket (`--ws`): one text message per event, the event's JSON object. Every
//!   connection replays the data set from index 0, or from `N` with `?from=N` in the URL.
//! - SSE (`--sse`): Wikimedia EventStreams framing: per event an `event: message` line, an
//!   `id: <index>` line (the resume token) and a `data: <json>` line, then a blank line.
//!   A request with `Last-Event-ID: <index>` resumes at `index + 1`; otherwise at 0 or at
//!   `?from=N`. The response is `text/event-stream`, delimited by closing the connection.
//! - Each connection gets at most `rate` messages per second (0: as fast as it reads) and
//!   stops after message `count - 1` when `count` is set, then stays open and idle (SSE
//!   sends a comment every 15 s) until the client leaves or the server stops.
//! - With `malformed_every = K`, message `K-1`, `2K-1`, … is malformed (see
//!   [`MalformedKind`]): the same indices on every connection and in [`DataSet::message`].
//! - A slow client slows only its own connection (TCP back pressure); nothing is dropped.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod data;
mod server;

pub use data::{expected_counts, talk_keys, DataSet, Edit, GeoIp, MalformedKind, Message, DEFAULT_SEED};
pub use server::{sse_event, FeedError, FeedOptions, FeedServer};
