//! Engine messages in the protobuf wire format of `proto/squall/wire/v1/wire.proto`.
//!
//! Encoding and decoding go straight between engine [`Msg`](squall_engine::fabric::Msg)s
//! and bytes, without the generated structs in between: per tuple that saves an
//! allocation per value each way. The bytes are exactly what prost produces for the
//! generated `ToPeer` message (tests compare both), so the .proto stays the contract.

mod decode;
mod encode;
mod reader;

pub use decode::{decode_to_peer, Incoming};
pub use encode::{batch_header, encode_msg, hello_frame, MsgEncoder};

/// Why a frame was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    /// The bytes end inside a field.
    #[error("truncated frame: {0}")]
    Truncated(&'static str),
    /// A varint longer than ten bytes.
    #[error("malformed varint")]
    Varint,
    /// A wire type this format never uses (groups) or that does not fit the field.
    #[error("unexpected wire type {wire_type} for field {field} of {message}")]
    WireType {
        /// Message being read.
        message: &'static str,
        /// Field number.
        field: u32,
        /// Wire type found.
        wire_type: u8,
    },
    /// Text that is not UTF-8.
    #[error("invalid UTF-8 in a string value")]
    Utf8,
    /// Values nested deeper than we accept.
    #[error("values nested deeper than {0} levels")]
    TooDeep(usize),
    /// A tuple whose schema ids are not in this plan.
    #[error("unknown stream (component {component}, stream {stream})")]
    UnknownStream {
        /// Component index.
        component: u32,
        /// Stream index.
        stream: u32,
    },
    /// A tuple with more or fewer values than its stream has fields.
    #[error("tuple on {stream} has {got} values, the stream declares {want} fields")]
    Arity {
        /// Component/stream name.
        stream: String,
        /// Values found.
        got: usize,
        /// Fields declared.
        want: usize,
    },
    /// An envelope, value or frame with no content.
    #[error("empty {0}")]
    Empty(&'static str),
    /// A field number out of range.
    #[error("invalid field number")]
    Field,
    /// The Hello message did not decode.
    #[error("hello: {0}")]
    Hello(String),
}

/// Values nest (lists, maps) at most this deep; deeper frames are refused, so a hostile
/// peer cannot exhaust the receiver's stack.
pub const MAX_DEPTH: usize = 32;

#[cfg(test)]
mod tests;
