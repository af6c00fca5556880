//! tonic codecs for `Link.Exchange`. The dialer sends frames it has already encoded (see
//! [`crate::wire`]) and reads `FromPeer`; the receiver takes raw frames, decoded on its
//! own thread, and answers `FromPeer`.

use bytes::{Buf, BufMut, Bytes};
use prost::Message as _;
use squall_proto::wire::FromPeer;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::Status;

/// An encoded `ToPeer` message: a header and a body, written out back to back.
#[derive(Clone, Debug)]
pub struct Frame {
    header: [u8; 11],
    header_len: u8,
    body: Bytes,
    /// Engine messages inside, for accounting.
    pub messages: u32,
}

impl Frame {
    /// A frame of `messages` batch entries.
    pub fn batch(body: Bytes, messages: u32) -> Self {
        let (header, n) = crate::wire::batch_header(body.len());
        Frame {
            header,
            header_len: n as u8,
            body,
            messages,
        }
    }

    /// A frame that is already a complete message (the hello).
    pub fn whole(body: Bytes) -> Self {
        Frame {
            header: [0; 11],
            header_len: 0,
            body,
            messages: 0,
        }
    }

    /// Bytes on the wire.
    pub fn len(&self) -> usize {
        usize::from(self.header_len) + self.body.len()
    }

    /// Whether the frame is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Client side: frames out, `FromPeer` in.
#[derive(Clone, Copy, Debug, Default)]
pub struct DialerCodec;

/// Server side: raw frames in, `FromPeer` out.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReceiverCodec;

/// Writes frames as they are.
#[derive(Debug, Default)]
pub struct FrameEncoder;

impl Encoder for FrameEncoder {
    type Item = Frame;
    type Error = Status;

    fn encode(&mut self, item: Frame, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item.header[..usize::from(item.header_len)]);
        dst.put_slice(&item.body);
        Ok(())
    }
}

/// Hands each message over undecoded.
#[derive(Debug, Default)]
pub struct RawDecoder;

impl Decoder for RawDecoder {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        let n = src.remaining();
        Ok(Some(src.copy_to_bytes(n)))
    }
}

/// `FromPeer` through prost.
#[derive(Debug, Default)]
pub struct StatusCodec;

impl Encoder for StatusCodec {
    type Item = FromPeer;
    type Error = Status;

    fn encode(&mut self, item: FromPeer, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst)
            .map_err(|e| Status::internal(format!("encoding a status: {e}")))
    }
}

impl Decoder for StatusCodec {
    type Item = FromPeer;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<FromPeer>, Status> {
        FromPeer::decode(src)
            .map(Some)
            .map_err(|e| Status::invalid_argument(format!("malformed reply from peer: {e}")))
    }
}

impl Codec for DialerCodec {
    type Encode = Frame;
    type Decode = FromPeer;
    type Encoder = FrameEncoder;
    type Decoder = StatusCodec;

    fn encoder(&mut self) -> FrameEncoder {
        FrameEncoder
    }
    fn decoder(&mut self) -> StatusCodec {
        StatusCodec
    }
}

impl Codec for ReceiverCodec {
    type Encode = FromPeer;
    type Decode = Bytes;
    type Encoder = StatusCodec;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> StatusCodec {
        StatusCodec
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}
