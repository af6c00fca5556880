//! Fuzz target bodies for Squall's parsers of untrusted input.
//!
//! Each `pub fn NAME(data: &[u8])` here is the body of `fuzz_targets/NAME.rs` (run by
//! cargo-fuzz on nightly) and is replayed on stable by `tests/replay.rs` over
//! `corpus/NAME/` and seeded pseudo-random inputs. A body returns normally for any input;
//! it panics only when a parser panics or breaks one of the properties it checks
//! (round trips, split-invariance, errors that name their input).
#![forbid(unsafe_code)]

mod events;
mod text;
mod wire;

pub use events::{edit_configs, edit_event, resp_reply, sse_stream, write_reply};
pub use text::{
    manifest, multilang_msgpack, multilang_stream, MANIFEST_ORIGIN, MULTILANG_MAX, MULTILANG_MAX_DEPTH,
};
pub use wire::{decode, encode, wire_frame, WIRE_PLAN};

/// A target body.
pub type Body = fn(&[u8]);

/// Every target, by name: the corpus directory and fuzz_targets/ binary of each.
pub const TARGETS: &[(&str, Body)] = &[
    ("wire_frame", wire_frame),
    ("multilang_stream", multilang_stream),
    ("multilang_msgpack", multilang_msgpack),
    ("manifest", manifest),
    ("sse_stream", sse_stream),
    ("resp_reply", resp_reply),
    ("edit_event", edit_event),
];

/// A cut point inside `data` chosen by its first byte, so a target can feed the same
/// bytes in two reads and the fuzzer controls where the boundary falls.
fn cut(data: &[u8]) -> usize {
    data.first().map_or(0, |b| usize::from(*b)) % (data.len() + 1)
}
