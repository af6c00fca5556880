//! Frames and tonic codecs for `Link.Exchange`. The dialer sends frames it has already
//! encoded (see [`crate::wire`]) as the request body itself, and reads `FromPeer`; the
//! receiver takes raw frames, decoded on its own thread, and answers `FromPeer`.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures_util::{Stream, StreamExt as _};
use prost::Message as _;
use squall_proto::wire::FromPeer;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;
use tonic::Status;
use tower::{Service as _, ServiceExt as _};

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

    /// The frame as gRPC sends a message: its prefix (the uncompressed flag and the
    /// big-endian length) with the frame's header, then the body as it is. Only the few
    /// bytes of the first are copied.
    pub fn into_grpc(self) -> [Bytes; 2] {
        let header = &self.header[..usize::from(self.header_len)];
        let mut prefix = BytesMut::with_capacity(5 + header.len());
        prefix.put_u8(0);
        // Frames are far below 4 GiB (the receiver refuses more than 16 MiB).
        prefix.put_u32(u32::try_from(self.len()).unwrap_or(u32::MAX));
        prefix.put_slice(header);
        [prefix.freeze(), self.body]
    }
}

/// Opens a `Link.Exchange` call: `frames` are the request's messages, and the answer's
/// messages are the peer's status.
///
/// The request is written without tonic's encoder, which would copy every frame into a
/// buffer of its own: each frame's body goes to HTTP/2 as it is, after the few bytes of
/// gRPC's message prefix.
pub async fn exchange<S>(mut channel: Channel, frames: S) -> Result<tonic::Streaming<FromPeer>, Status>
where
    S: Stream<Item = Frame> + Send + 'static,
{
    let chunks = frames
        .flat_map(|f| futures_util::stream::iter(f.into_grpc()))
        .map(|b| Ok::<_, Status>(http_body::Frame::data(b)));
    let request = http::Request::builder()
        .method(http::Method::POST)
        .uri(squall_proto::EXCHANGE_PATH)
        .version(http::Version::HTTP_2)
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .header(http::header::TE, "trailers")
        .body(tonic::body::Body::new(http_body_util::StreamBody::new(chunks)))
        .map_err(|e| Status::internal(e.to_string()))?;
    let unavailable = |e: tonic::transport::Error| Status::unavailable(e.to_string());
    let response = channel
        .ready()
        .await
        .map_err(unavailable)?
        .call(request)
        .await
        .map_err(unavailable)?;
    // As tonic's client reads an answer: a status in the headers (a refusal) ends the
    // call at once; otherwise it comes in the trailers after the messages.
    if let Some(status) = Status::from_header_map(response.headers()) {
        if status.code() != tonic::Code::Ok {
            return Err(status);
        }
    }
    let code = response.status();
    Ok(tonic::Streaming::new_response(
        StatusCodec,
        response.into_body(),
        code,
        None,
        None,
    ))
}

/// Server side: raw frames in, `FromPeer` out.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReceiverCodec;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_goes_out_as_one_grpc_message_with_its_body_uncopied() {
        let body = Bytes::from_static(b"\x0a\x03abc");
        let [prefix, rest] = Frame::batch(body.clone(), 1).into_grpc();
        assert_eq!(rest.as_ptr(), body.as_ptr());
        // Uncompressed, 7 bytes: the batch field's key and length, then the body.
        let mut want = vec![0, 0, 0, 0, 7, 0x12, 5];
        want.extend_from_slice(&body);
        assert_eq!([prefix.as_ref(), rest.as_ref()].concat(), want);
    }
}
