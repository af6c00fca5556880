//! SPDY/3.1 framing, as much of it as the kubelet's port-forward needs: frames read
//! and written, and the zlib-compressed header blocks of SYN_STREAM and SYN_REPLY.
//!
//! Every length that comes from the peer is checked against a limit before anything
//! is allocated for it. Flow-control windows are not enforced (the Go peers,
//! moby/spdystream, do not enforce them either).

use std::sync::LazyLock;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use tokio::io::{AsyncRead, AsyncReadExt};

/// The only protocol version spoken.
pub const VERSION: u16 = 3;
/// Largest control-frame payload accepted; kubectl's are well under 1 KiB.
pub const MAX_CONTROL_LEN: usize = 64 * 1024;
/// Largest DATA payload accepted. The wire allows 16 MiB; Go peers send at most 32 KiB.
pub const MAX_DATA_LEN: usize = 1024 * 1024;
/// Largest decompressed header block accepted.
const MAX_HEADER_BLOCK: usize = 64 * 1024;
/// Most name/value pairs accepted in one header block.
const MAX_HEADERS: usize = 64;
/// The 24-bit length field of every frame.
const MAX_WIRE_LEN: usize = 0x00ff_ffff;

/// FIN on DATA, SYN_STREAM, SYN_REPLY and HEADERS: the sender's last frame on the stream.
pub const FLAG_FIN: u8 = 0x01;

/// RST_STREAM status codes used here.
pub const RST_PROTOCOL_ERROR: u32 = 1;
pub const RST_REFUSED_STREAM: u32 = 3;

const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const SETTINGS: u16 = 4;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const HEADERS: u16 = 8;
const WINDOW_UPDATE: u16 = 9;

/// Errors of the SPDY layer; all of them end the connection.
#[derive(Debug, thiserror::Error)]
pub enum SpdyError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("frame payload of {len} bytes exceeds the limit of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("unsupported SPDY version {0}")]
    Version(u16),
    #[error("malformed {0} frame")]
    Malformed(&'static str),
    #[error("header block: {0}")]
    Headers(String),
}

type Result<T, E = SpdyError> = std::result::Result<T, E>;

/// One frame, with header blocks still compressed (they must be inflated in arrival
/// order through the connection's single [`HeaderDecompressor`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Data {
        stream_id: u32,
        flags: u8,
        data: Vec<u8>,
    },
    SynStream {
        stream_id: u32,
        associated_id: u32,
        priority: u8,
        flags: u8,
        header_block: Vec<u8>,
    },
    SynReply {
        stream_id: u32,
        flags: u8,
        header_block: Vec<u8>,
    },
    RstStream {
        stream_id: u32,
        status: u32,
    },
    Settings {
        flags: u8,
        /// (flags, id, value)
        entries: Vec<(u8, u32, u32)>,
    },
    Ping {
        id: u32,
    },
    GoAway {
        last_good_stream_id: u32,
        status: u32,
    },
    Headers {
        stream_id: u32,
        flags: u8,
        header_block: Vec<u8>,
    },
    WindowUpdate {
        stream_id: u32,
        delta: u32,
    },
    /// A control frame of a type not listed above, which SPDY says to ignore.
    Unknown {
        kind: u16,
        flags: u8,
        payload: Vec<u8>,
    },
}

/// The fixed 8-byte frame header.
#[derive(Debug, Clone, Copy)]
struct Head {
    /// Control frame type, or `None` for DATA.
    kind: Option<u16>,
    /// DATA frames' stream id.
    stream_id: u32,
    flags: u8,
    len: usize,
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn parse_head(b: &[u8; 8]) -> Result<Head> {
    let first = be32(&b[..4]);
    let second = be32(&b[4..]);
    let flags = (second >> 24) as u8;
    let len = (second & 0x00ff_ffff) as usize;
    if first & 0x8000_0000 != 0 {
        let version = ((first >> 16) & 0x7fff) as u16;
        if version != VERSION {
            return Err(SpdyError::Version(version));
        }
        if len > MAX_CONTROL_LEN {
            return Err(SpdyError::TooLarge {
                len,
                max: MAX_CONTROL_LEN,
            });
        }
        Ok(Head {
            kind: Some((first & 0xffff) as u16),
            stream_id: 0,
            flags,
            len,
        })
    } else {
        if len > MAX_DATA_LEN {
            return Err(SpdyError::TooLarge {
                len,
                max: MAX_DATA_LEN,
            });
        }
        Ok(Head {
            kind: None,
            stream_id: first & 0x7fff_ffff,
            flags,
            len,
        })
    }
}

/// A stream id field: 31 bits, the top bit reserved; zero is never a valid stream.
fn stream_id(b: &[u8], what: &'static str) -> Result<u32> {
    match be32(b) & 0x7fff_ffff {
        0 => Err(SpdyError::Malformed(what)),
        id => Ok(id),
    }
}

fn decode_payload(head: Head, p: Vec<u8>) -> Result<Frame> {
    let Some(kind) = head.kind else {
        if head.stream_id == 0 {
            return Err(SpdyError::Malformed("DATA"));
        }
        return Ok(Frame::Data {
            stream_id: head.stream_id,
            flags: head.flags,
            data: p,
        });
    };
    let exact = |n: usize, what| {
        if p.len() == n {
            Ok(())
        } else {
            Err(SpdyError::Malformed(what))
        }
    };
    let at_least = |n: usize, what| {
        if p.len() >= n {
            Ok(())
        } else {
            Err(SpdyError::Malformed(what))
        }
    };
    Ok(match kind {
        SYN_STREAM => {
            at_least(10, "SYN_STREAM")?;
            Frame::SynStream {
                stream_id: stream_id(&p[..4], "SYN_STREAM")?,
                associated_id: be32(&p[4..8]) & 0x7fff_ffff,
                priority: p[8] >> 5,
                flags: head.flags,
                header_block: p[10..].to_vec(),
            }
        }
        SYN_REPLY | HEADERS => {
            at_least(4, "SYN_REPLY/HEADERS")?;
            let stream_id = stream_id(&p[..4], "SYN_REPLY/HEADERS")?;
            let header_block = p[4..].to_vec();
            if kind == SYN_REPLY {
                Frame::SynReply {
                    stream_id,
                    flags: head.flags,
                    header_block,
                }
            } else {
                Frame::Headers {
                    stream_id,
                    flags: head.flags,
                    header_block,
                }
            }
        }
        RST_STREAM => {
            exact(8, "RST_STREAM")?;
            Frame::RstStream {
                stream_id: stream_id(&p[..4], "RST_STREAM")?,
                status: be32(&p[4..]),
            }
        }
        SETTINGS => {
            at_least(4, "SETTINGS")?;
            let n = be32(&p[..4]) as usize;
            // Checked against the payload's real size, so `n` cannot drive an allocation.
            if (p.len() - 4) / 8 != n || !(p.len() - 4).is_multiple_of(8) {
                return Err(SpdyError::Malformed("SETTINGS"));
            }
            let entries = p[4..]
                .chunks_exact(8)
                .map(|e| (e[0], be32(e) & 0x00ff_ffff, be32(&e[4..])))
                .collect();
            Frame::Settings {
                flags: head.flags,
                entries,
            }
        }
        PING => {
            exact(4, "PING")?;
            Frame::Ping { id: be32(&p) }
        }
        GOAWAY => {
            exact(8, "GOAWAY")?;
            Frame::GoAway {
                last_good_stream_id: be32(&p[..4]) & 0x7fff_ffff,
                status: be32(&p[4..]),
            }
        }
        WINDOW_UPDATE => {
            exact(8, "WINDOW_UPDATE")?;
            Frame::WindowUpdate {
                stream_id: be32(&p[..4]) & 0x7fff_ffff,
                delta: be32(&p[4..]) & 0x7fff_ffff,
            }
        }
        kind => Frame::Unknown {
            kind,
            flags: head.flags,
            payload: p,
        },
    })
}

/// Decodes the first frame in `buf`: `None` while it is incomplete, with the number
/// of bytes it used otherwise. An oversized frame is refused from its header alone.
#[cfg(test)]
pub fn decode(buf: &[u8]) -> Result<Option<(Frame, usize)>> {
    let Some(head) = buf.first_chunk::<8>() else {
        return Ok(None);
    };
    let head = parse_head(head)?;
    let Some(payload) = buf.get(8..8 + head.len) else {
        return Ok(None);
    };
    Ok(Some((decode_payload(head, payload.to_vec())?, 8 + head.len)))
}

/// Reads one frame; `None` on a clean end of stream between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<Frame>> {
    let mut head = [0u8; 8];
    let n = r.read(&mut head).await?;
    if n == 0 {
        return Ok(None);
    }
    r.read_exact(&mut head[n..]).await?;
    let head = parse_head(&head)?;
    let mut payload = vec![0u8; head.len];
    r.read_exact(&mut payload).await?;
    decode_payload(head, payload).map(Some)
}

impl Frame {
    /// The frame on the wire.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        let control = |out: &mut Vec<u8>, kind: u16, flags: u8, body: &[&[u8]]| -> Result<()> {
            let len: usize = body.iter().map(|b| b.len()).sum();
            if len > MAX_WIRE_LEN {
                return Err(SpdyError::TooLarge {
                    len,
                    max: MAX_WIRE_LEN,
                });
            }
            out.extend_from_slice(&(0x8000_0000 | u32::from(VERSION) << 16 | u32::from(kind)).to_be_bytes());
            out.extend_from_slice(&(u32::from(flags) << 24 | len as u32).to_be_bytes());
            body.iter().for_each(|b| out.extend_from_slice(b));
            Ok(())
        };
        match self {
            Frame::Data {
                stream_id,
                flags,
                data,
            } => {
                if data.len() > MAX_WIRE_LEN {
                    return Err(SpdyError::TooLarge {
                        len: data.len(),
                        max: MAX_WIRE_LEN,
                    });
                }
                out.extend_from_slice(&(stream_id & 0x7fff_ffff).to_be_bytes());
                out.extend_from_slice(&(u32::from(*flags) << 24 | data.len() as u32).to_be_bytes());
                out.extend_from_slice(data);
            }
            Frame::SynStream {
                stream_id,
                associated_id,
                priority,
                flags,
                header_block,
            } => control(
                &mut out,
                SYN_STREAM,
                *flags,
                &[
                    &stream_id.to_be_bytes(),
                    &associated_id.to_be_bytes(),
                    &[priority << 5, 0],
                    header_block,
                ],
            )?,
            Frame::SynReply {
                stream_id,
                flags,
                header_block,
            } => control(
                &mut out,
                SYN_REPLY,
                *flags,
                &[&stream_id.to_be_bytes(), header_block],
            )?,
            Frame::Headers {
                stream_id,
                flags,
                header_block,
            } => control(
                &mut out,
                HEADERS,
                *flags,
                &[&stream_id.to_be_bytes(), header_block],
            )?,
            Frame::RstStream { stream_id, status } => control(
                &mut out,
                RST_STREAM,
                0,
                &[&stream_id.to_be_bytes(), &status.to_be_bytes()],
            )?,
            Frame::Settings { flags, entries } => {
                let mut body = (entries.len() as u32).to_be_bytes().to_vec();
                for (f, id, value) in entries {
                    body.extend_from_slice(&(u32::from(*f) << 24 | (id & 0x00ff_ffff)).to_be_bytes());
                    body.extend_from_slice(&value.to_be_bytes());
                }
                control(&mut out, SETTINGS, *flags, &[&body])?
            }
            Frame::Ping { id } => control(&mut out, PING, 0, &[&id.to_be_bytes()])?,
            Frame::GoAway {
                last_good_stream_id,
                status,
            } => control(
                &mut out,
                GOAWAY,
                0,
                &[&last_good_stream_id.to_be_bytes(), &status.to_be_bytes()],
            )?,
            Frame::WindowUpdate { stream_id, delta } => control(
                &mut out,
                WINDOW_UPDATE,
                0,
                &[&stream_id.to_be_bytes(), &delta.to_be_bytes()],
            )?,
            Frame::Unknown { kind, flags, payload } => control(&mut out, *kind, *flags, &[payload])?,
        }
        Ok(out)
    }
}

/// An uncompressed header block: a count, then length-prefixed names and values
/// (all lengths 32-bit). Names go out lowercased, as SPDY/3 requires.
pub fn encode_header_block(headers: &[(&str, &str)]) -> Vec<u8> {
    let mut out = (headers.len() as u32).to_be_bytes().to_vec();
    for (name, value) in headers {
        for s in [name.to_ascii_lowercase().as_str(), value] {
            out.extend_from_slice(&(s.len() as u32).to_be_bytes());
            out.extend_from_slice(s.as_bytes());
        }
    }
    out
}

/// Parses an uncompressed header block. A value holding several values separated by
/// NUL is kept whole; [`header`] takes the first.
pub fn decode_header_block(raw: &[u8]) -> Result<Vec<(String, String)>> {
    fn take<'a>(rest: &mut &'a [u8], n: usize) -> Result<&'a [u8]> {
        if rest.len() < n {
            return Err(SpdyError::Headers("truncated".into()));
        }
        let (a, b) = rest.split_at(n);
        *rest = b;
        Ok(a)
    }
    let mut rest = raw;
    let count = be32(take(&mut rest, 4)?) as usize;
    if count > MAX_HEADERS {
        return Err(SpdyError::Headers("too many headers".into()));
    }
    let mut headers = Vec::with_capacity(count);
    for _ in 0..count {
        let mut pair = [String::new(), String::new()];
        for s in &mut pair {
            let len = be32(take(&mut rest, 4)?) as usize;
            *s = String::from_utf8(take(&mut rest, len)?.to_vec())
                .map_err(|_| SpdyError::Headers("not UTF-8".into()))?;
        }
        let [name, value] = pair;
        headers.push((name.to_ascii_lowercase(), value));
    }
    if !rest.is_empty() {
        return Err(SpdyError::Headers("trailing bytes".into()));
    }
    Ok(headers)
}

/// The first value of header `name` (names compare case-insensitively).
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.split('\0').next().unwrap_or_default())
}

/// SPDY/3's zlib dictionary for header blocks (draft 3, section 2.6.10.1): length-
/// prefixed common header names and values, then a run of common fragments. Built
/// from its parts rather than spelled out as 1423 bytes; a test pins its length and
/// Adler-32 (0xe3c6a7c2, the dictionary id zlib streams carry).
static DICTIONARY: LazyLock<Vec<u8>> = LazyLock::new(|| {
    const WORDS: &[&str] = &[
        "options",
        "head",
        "post",
        "put",
        "delete",
        "trace",
        "accept",
        "accept-charset",
        "accept-encoding",
        "accept-language",
        "accept-ranges",
        "age",
        "allow",
        "authorization",
        "cache-control",
        "connection",
        "content-base",
        "content-encoding",
        "content-language",
        "content-length",
        "content-location",
        "content-md5",
        "content-range",
        "content-type",
        "date",
        "etag",
        "expect",
        "expires",
        "from",
        "host",
        "if-match",
        "if-modified-since",
        "if-none-match",
        "if-range",
        "if-unmodified-since",
        "last-modified",
        "location",
        "max-forwards",
        "pragma",
        "proxy-authenticate",
        "proxy-authorization",
        "range",
        "referer",
        "retry-after",
        "server",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "vary",
        "via",
        "warning",
        "www-authenticate",
        "method",
        "get",
        "status",
        "200 OK",
        "version",
        "HTTP/1.1",
        "url",
        "public",
        "set-cookie",
        "keep-alive",
        "origin",
    ];
    const TAIL: &str = concat!(
        "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505",
        "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request",
        "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented",
        "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 ",
        "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,",
        "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=",
        "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.",
    );
    let mut d = Vec::with_capacity(1423);
    for w in WORDS {
        d.extend_from_slice(&(w.len() as u32).to_be_bytes());
        d.extend_from_slice(w.as_bytes());
    }
    d.extend_from_slice(TAIL.as_bytes());
    d
});

/// Compresses the header blocks one side sends: one zlib stream for the whole
/// connection, each block ending in a sync flush.
pub struct HeaderCompressor {
    z: Compress,
}

impl HeaderCompressor {
    pub fn new() -> Result<Self> {
        let mut z = Compress::new(Compression::default(), true);
        // Not needed by Go's reader (it honours FDICT either way), but SPDY/3 says so.
        z.set_dictionary(&DICTIONARY)
            .map_err(|e| SpdyError::Headers(e.to_string()))?;
        Ok(Self { z })
    }

    pub fn compress(&mut self, headers: &[(&str, &str)]) -> Result<Vec<u8>> {
        let raw = encode_header_block(headers);
        let mut out = Vec::with_capacity(raw.len() + 64);
        let mut pos = 0;
        loop {
            let before = self.z.total_in();
            self.z
                .compress_vec(&raw[pos..], &mut out, FlushCompress::Sync)
                .map_err(|e| SpdyError::Headers(e.to_string()))?;
            pos += (self.z.total_in() - before) as usize;
            // Done once all input is in and the flush did not run out of room.
            if pos == raw.len() && out.len() < out.capacity() {
                return Ok(out);
            }
            out.reserve(256);
        }
    }
}

/// Inflates the header blocks the peer sends, in arrival order.
pub struct HeaderDecompressor {
    z: Decompress,
}

impl Default for HeaderDecompressor {
    fn default() -> Self {
        Self {
            z: Decompress::new(true),
        }
    }
}

impl HeaderDecompressor {
    pub fn decompress(&mut self, block: &[u8]) -> Result<Vec<(String, String)>> {
        let bad = |m: String| SpdyError::Headers(m);
        let mut out = Vec::with_capacity(1024);
        let mut pos = 0;
        loop {
            let (in0, out0) = (self.z.total_in(), self.z.total_out());
            let res = self
                .z
                .decompress_vec(&block[pos..], &mut out, FlushDecompress::Sync);
            let consumed = (self.z.total_in() - in0) as usize;
            pos += consumed;
            let produced = self.z.total_out() - out0;
            match res {
                Ok(_) => {}
                Err(e) => match e.needs_dictionary() {
                    Some(id) => {
                        let got = self
                            .z
                            .set_dictionary(&DICTIONARY)
                            .map_err(|e| bad(e.to_string()))?;
                        if got != id {
                            return Err(bad(format!("dictionary id {id:#x}, expected {got:#x}")));
                        }
                        continue;
                    }
                    None => return Err(bad(e.to_string())),
                },
            }
            if pos == block.len() && out.len() < out.capacity() {
                break;
            }
            if out.len() >= MAX_HEADER_BLOCK {
                return Err(SpdyError::TooLarge {
                    len: out.len(),
                    max: MAX_HEADER_BLOCK,
                });
            }
            if consumed == 0 && produced == 0 {
                return Err(bad("no progress (data after the end of the stream?)".into()));
            }
            out.reserve(4096.min(MAX_HEADER_BLOCK - out.len()).max(1));
        }
        decode_header_block(&out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn adler32(data: &[u8]) -> u32 {
        let (mut a, mut b) = (1u32, 0u32);
        for &x in data {
            a = (a + u32::from(x)) % 65521;
            b = (b + a) % 65521;
        }
        b << 16 | a
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn dictionary_is_the_spdy3_one() {
        assert_eq!(DICTIONARY.len(), 1423);
        assert_eq!(adler32(&DICTIONARY), 0xe3c6_a7c2);
        assert!(DICTIONARY.starts_with(b"\0\0\0\x07options\0\0\0\x04head"));
        assert!(DICTIONARY.ends_with(b",*,enq=0."));
    }

    fn samples() -> Vec<Frame> {
        vec![
            Frame::Data {
                stream_id: 3,
                flags: FLAG_FIN,
                data: b"hello".to_vec(),
            },
            Frame::Data {
                stream_id: 5,
                flags: 0,
                data: Vec::new(),
            },
            Frame::SynStream {
                stream_id: 1,
                associated_id: 0,
                priority: 7,
                flags: 0,
                header_block: vec![1, 2, 3],
            },
            Frame::SynReply {
                stream_id: 1,
                flags: FLAG_FIN,
                header_block: vec![9; 40],
            },
            Frame::RstStream {
                stream_id: 7,
                status: RST_REFUSED_STREAM,
            },
            Frame::Settings {
                flags: 1,
                entries: vec![(0, 4, 100), (1, 7, 65536)],
            },
            Frame::Ping { id: 0xdead_beef },
            Frame::GoAway {
                last_good_stream_id: 9,
                status: 0,
            },
            Frame::Headers {
                stream_id: 3,
                flags: 0,
                header_block: vec![4, 5],
            },
            Frame::WindowUpdate {
                stream_id: 3,
                delta: 1000,
            },
            Frame::Unknown {
                kind: 0x42,
                flags: 0,
                payload: vec![1],
            },
        ]
    }

    #[test]
    fn frames_round_trip() {
        for f in samples() {
            let wire = f.encode().unwrap();
            let (back, used) = decode(&wire).unwrap().unwrap();
            assert_eq!(back, f);
            assert_eq!(used, wire.len());
        }
    }

    #[tokio::test]
    async fn frames_round_trip_through_a_reader() {
        let wire: Vec<u8> = samples().iter().flat_map(|f| f.encode().unwrap()).collect();
        let mut r = wire.as_slice();
        for f in samples() {
            assert_eq!(read_frame(&mut r).await.unwrap(), Some(f));
        }
        assert_eq!(read_frame(&mut r).await.unwrap(), None);
    }

    #[tokio::test]
    async fn truncated_frames_are_incomplete_and_fail_at_eof() {
        for f in samples() {
            let wire = f.encode().unwrap();
            for cut in 1..wire.len() {
                assert!(decode(&wire[..cut]).unwrap().is_none(), "{f:?} cut at {cut}");
                let mut r = &wire[..cut];
                assert!(read_frame(&mut r).await.is_err(), "{f:?} cut at {cut}");
            }
        }
    }

    #[test]
    fn oversized_frames_are_refused_from_their_header() {
        let data_head = [0, 0, 0, 1, 0, 0x10, 0, 1]; // DATA, 1 MiB + 1
        assert!(matches!(decode(&data_head), Err(SpdyError::TooLarge { .. })));
        let control_head = [0x80, 3, 0, 1, 0, 1, 0, 1]; // SYN_STREAM, 64 KiB + 1
        assert!(matches!(decode(&control_head), Err(SpdyError::TooLarge { .. })));
        let v2 = [0x80, 2, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1];
        assert!(matches!(decode(&v2), Err(SpdyError::Version(2))));
    }

    #[test]
    fn malformed_control_frames_are_refused() {
        // PING with 8 bytes, SYN_STREAM shorter than its fixed part, stream id 0,
        // SETTINGS claiming more entries than it carries.
        let cases: [&[u8]; 4] = [
            &[0x80, 3, 0, 6, 0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0, 1],
            &[0x80, 3, 0, 1, 0, 0, 0, 4, 0, 0, 0, 1],
            &[0x80, 3, 0, 3, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1],
            &[0x80, 3, 0, 4, 0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff],
        ];
        for c in cases {
            assert!(matches!(decode(c), Err(SpdyError::Malformed(_))), "{c:?}");
        }
    }

    #[test]
    fn kubectl_header_blocks_inflate_with_the_dictionary() {
        // Two consecutive blocks from one zlib stream, written by Go's compress/zlib
        // with the dictionary and a flush after each block, as moby/spdystream does.
        let first = hex(concat!(
            "78f9e3c6a7c202253a48f95b044eea160616060c0c0c9c4590f8ca04a5634603704a2c294a4d",
            "cc851636aca9a0a800000000ffff"
        ));
        let second = hex("225333a8a44a04000000ffff");
        let mut d = HeaderDecompressor::default();
        let h = d.decompress(&first).unwrap();
        assert_eq!(header(&h, "streamtype"), Some("error"));
        assert_eq!(header(&h, "port"), Some("8080"));
        assert_eq!(header(&h, "requestid"), Some("0"));
        let h = d.decompress(&second).unwrap();
        assert_eq!(header(&h, "streamtype"), Some("data"));
        assert_eq!(header(&h, "Port"), Some("8080"));
    }

    #[test]
    fn compressed_blocks_round_trip_in_one_context() {
        let mut c = HeaderCompressor::new().unwrap();
        let mut d = HeaderDecompressor::default();
        let first = c.compress(&[("streamtype", "error"), ("port", "80")]).unwrap();
        // The stream announces the dictionary (FDICT) by its id.
        assert_eq!(first[1] & 0x20, 0x20);
        assert_eq!(&first[2..6], &0xe3c6_a7c2u32.to_be_bytes());
        let empty = c.compress(&[]).unwrap();
        let long = "x".repeat(5000);
        let third = c.compress(&[("Value", long.as_str())]).unwrap();
        assert_eq!(
            d.decompress(&first).unwrap(),
            vec![
                ("streamtype".into(), "error".into()),
                ("port".into(), "80".into())
            ]
        );
        assert!(d.decompress(&empty).unwrap().is_empty());
        assert_eq!(d.decompress(&third).unwrap(), vec![("value".into(), long)]);
    }

    #[test]
    fn header_blocks_with_bad_lengths_are_refused() {
        assert!(decode_header_block(&[0, 0, 0, 1, 0, 0, 0, 9, b'a']).is_err());
        assert!(decode_header_block(&[0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(decode_header_block(&[0, 0, 0]).is_err());
        let mut ok = encode_header_block(&[("a", "b")]);
        assert_eq!(decode_header_block(&ok).unwrap(), vec![("a".into(), "b".into())]);
        ok.push(0);
        assert!(decode_header_block(&ok).is_err());
        let mut d = HeaderDecompressor::default();
        assert!(d.decompress(b"not zlib at all").is_err());
    }
}
