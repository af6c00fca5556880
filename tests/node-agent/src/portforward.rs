//! The kubelet's `portForward` endpoint, behind the API server's pods/portforward
//! (`kubectl port-forward`): the API server sends `POST /portForward/{ns}/{pod}[/{uid}]`
//! with `Upgrade: SPDY/3.1` and the protocols it accepts in `X-Stream-Protocol-Version`;
//! the answer is 101 and SPDY/3.1 (see [`crate::spdy`]).
//!
//! Each forwarded connection is a pair of streams the client opens with the same
//! `requestid` header: `streamtype: error` and `streamtype: data`, both naming the
//! `port`. Once both are open the pod's `{pod IP}:{port}` is dialled and bytes are
//! copied both ways on the data stream; a failure is written as text on the error
//! stream. Every stream is closed with FIN at the end, since the client waits for the
//! error stream's end before it lets the local connection go.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::pods::PodAddrs;
use crate::server::{respond_text, Request};
use crate::spdy::{self, Frame, HeaderCompressor, HeaderDecompressor, SpdyError, FLAG_FIN};

/// The port-forward protocol spoken (the only one the kubelet has).
const PROTOCOL: &str = "portforward.k8s.io";
const DIAL_TIMEOUT: Duration = Duration::from_secs(5);
/// Once one direction of a forwarded connection has ended, how long the other gets to
/// finish before both are closed (what containerd's port-forward allows, like socat).
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// Streams waiting for their partner, and streams open, per connection.
const MAX_PENDING: usize = 256;
const MAX_OPEN: usize = 1024;
/// Frames queued towards one pod connection, and towards the client.
const INBOX_DEPTH: usize = 32;
const OUTBOX_DEPTH: usize = 64;
/// Largest read from a pod connection, so largest DATA frame sent.
const READ_CHUNK: usize = 32 * 1024;
/// How long the frames still queued for the client may take once the connection ends.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// `/portForward/{ns}/{pod}` or `/portForward/{ns}/{pod}/{uid}`, with any query.
fn parse_target(target: &str) -> Option<(&str, &str, Option<&str>)> {
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    let mut parts = path.strip_prefix("/portForward/")?.split('/');
    let (ns, pod) = (parts.next()?, parts.next()?);
    let uid = parts.next().filter(|u| !u.is_empty());
    (!ns.is_empty() && !pod.is_empty() && parts.next().is_none()).then_some((ns, pod, uid))
}

/// Answers one upgrade request and serves the SPDY connection until it ends.
pub async fn serve<S>(mut conn: BufReader<S>, req: &Request, pods: &PodAddrs) -> crate::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let stream = conn.get_mut();
    let Some((ns, pod, uid)) = parse_target(&req.target) else {
        return respond_text(stream, "404 Not Found", "", "not found\n").await;
    };
    let Some(ip) = pods.lookup(ns, pod, uid) else {
        let body = format!("pod {ns}/{pod} is not running on this node\n");
        return respond_text(stream, "404 Not Found", "", &body).await;
    };
    if !req
        .header_values("upgrade")
        .any(|u| u.eq_ignore_ascii_case("SPDY/3.1"))
    {
        return respond_text(
            stream,
            "400 Bad Request",
            "",
            "an upgrade to SPDY/3.1 is required\n",
        )
        .await;
    }
    let offered: Vec<&str> = req.header_values("x-stream-protocol-version").collect();
    if offered.is_empty() {
        let body = "unable to upgrade: X-Stream-Protocol-Version is required\n";
        return respond_text(stream, "400 Bad Request", "", body).await;
    }
    if !offered.contains(&PROTOCOL) {
        let body = format!("unable to upgrade: client offers {offered:?}, server accepts [{PROTOCOL}]\n");
        let accepted = format!("X-Accepted-Stream-Protocol-Versions: {PROTOCOL}\r\n");
        return respond_text(stream, "403 Forbidden", &accepted, &body).await;
    }
    stream
        .write_all(
            format!(
                "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\
                 X-Stream-Protocol-Version: {PROTOCOL}\r\n\r\n"
            )
            .as_bytes(),
        )
        .await?;
    stream.flush().await?;
    tracing::info!(%ns, %pod, %ip, "port-forward connection");
    let label = format!("{ns}/{pod}");
    if let Err(e) = Session::run(conn, ip, &label).await {
        tracing::info!(pod = %label, error = %e, "port-forward connection failed");
    }
    Ok(())
}

/// What the session passes to the task of one forwarded connection.
#[derive(Debug)]
enum Inbound {
    Data(Vec<u8>),
    /// The client will send no more on the data stream.
    Fin,
    /// The client reset one of the pair's streams.
    Reset {
        error_stream: bool,
    },
}

/// Where frames for an open stream go.
struct Route {
    inbox: mpsc::Sender<Inbound>,
    is_data: bool,
    /// Whether the forwarding task runs; until then nothing may wait on a full inbox,
    /// since the frame that completes the pair could not be read.
    paired: bool,
}

/// The first stream of a pair, until its partner arrives.
struct Half {
    stream_id: u32,
    is_data: bool,
    inbox: mpsc::Sender<Inbound>,
    rx: mpsc::Receiver<Inbound>,
}

struct Session {
    ip: Ipv4Addr,
    label: String,
    outbox: mpsc::Sender<Frame>,
    inflate: HeaderDecompressor,
    deflate: HeaderCompressor,
    pending: HashMap<String, Half>,
    routes: HashMap<u32, Route>,
    /// One task per forwarded connection; dropping the set ends them all.
    tasks: JoinSet<[u32; 2]>,
    gone_away: bool,
}

impl Session {
    async fn run<S>(conn: BufReader<S>, ip: Ipv4Addr, label: &str) -> Result<(), SpdyError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (mut rd, wr) = tokio::io::split(conn);
        let (outbox, rx) = mpsc::channel(OUTBOX_DEPTH);
        let mut writer = tokio::spawn(write_frames(wr, rx));
        let mut session = Session {
            ip,
            label: label.to_owned(),
            outbox,
            inflate: HeaderDecompressor::default(),
            deflate: HeaderCompressor::new()?,
            pending: HashMap::new(),
            routes: HashMap::new(),
            tasks: JoinSet::new(),
            gone_away: false,
        };
        let result = session.read_loop(&mut rd).await;
        // Ends every forwarded connection and lets the writer drain what they queued.
        drop(session);
        if tokio::time::timeout(DRAIN_TIMEOUT, &mut writer).await.is_err() {
            writer.abort();
        }
        result
    }

    async fn read_loop<R: AsyncRead + Unpin>(&mut self, rd: &mut R) -> Result<(), SpdyError> {
        loop {
            while let Some(done) = self.tasks.try_join_next() {
                if let Ok(ids) = done {
                    ids.iter().for_each(|id| drop(self.routes.remove(id)));
                }
            }
            let Some(frame) = spdy::read_frame(rd).await? else {
                return Ok(());
            };
            match frame {
                Frame::SynStream {
                    stream_id,
                    header_block,
                    ..
                } => {
                    // Inflated even for a stream that is then refused: the zlib
                    // context is shared by every block on the connection.
                    let headers = self.inflate.decompress(&header_block)?;
                    self.open(stream_id, &headers).await?;
                }
                Frame::SynReply { header_block, .. } | Frame::Headers { header_block, .. } => {
                    self.inflate.decompress(&header_block)?;
                }
                Frame::Data {
                    stream_id,
                    flags,
                    data,
                } => self.data(stream_id, flags, data).await,
                Frame::RstStream { stream_id, .. } => self.reset(stream_id).await,
                // Pings from the client carry odd ids; an even one would answer ours.
                Frame::Ping { id } if !id.is_multiple_of(2) => self.send(Frame::Ping { id }).await,
                Frame::GoAway { .. } => self.gone_away = true,
                Frame::Ping { .. }
                | Frame::Settings { .. }
                | Frame::WindowUpdate { .. }
                | Frame::Unknown { .. } => {}
            }
        }
    }

    async fn send(&self, frame: Frame) {
        // Fails only once the writer has stopped, when the connection is over anyway.
        let _ = self.outbox.send(frame).await;
    }

    async fn refuse(&self, stream_id: u32, status: u32, why: &str) {
        tracing::debug!(pod = %self.label, stream_id, why, "stream refused");
        self.send(Frame::RstStream { stream_id, status }).await;
    }

    /// A new stream: the first or second half of a forwarded connection.
    async fn open(&mut self, id: u32, headers: &[(String, String)]) -> Result<(), SpdyError> {
        let kind = spdy::header(headers, "streamtype");
        let port = spdy::header(headers, "port").and_then(|p| p.parse::<u16>().ok());
        let (is_data, port) = match (kind, port) {
            (Some("data"), Some(p)) if p > 0 => (true, p),
            (Some("error"), Some(p)) if p > 0 => (false, p),
            _ => {
                self.refuse(id, spdy::RST_REFUSED_STREAM, "bad streamtype or port")
                    .await;
                return Ok(());
            }
        };
        if self.gone_away || self.routes.len() >= MAX_OPEN || self.routes.contains_key(&id) {
            self.refuse(id, spdy::RST_REFUSED_STREAM, "no new streams").await;
            return Ok(());
        }
        // Old clients send no request id; their streams come in (error, data) pairs
        // with consecutive odd ids, as the kubelet assumes too.
        let request_id = match spdy::header(headers, "requestid") {
            Some(r) => r.to_owned(),
            None if is_data => id.saturating_sub(2).to_string(),
            None => id.to_string(),
        };
        match self.pending.remove(&request_id) {
            Some(first) if first.is_data == is_data => {
                self.pending.insert(request_id, first);
                self.refuse(id, spdy::RST_PROTOCOL_ERROR, "stream type already open")
                    .await;
            }
            Some(first) => {
                self.reply(id).await?;
                self.routes.insert(
                    id,
                    Route {
                        inbox: first.inbox.clone(),
                        is_data,
                        paired: true,
                    },
                );
                if let Some(r) = self.routes.get_mut(&first.stream_id) {
                    r.paired = true;
                }
                let (data_id, error_id) = if is_data {
                    (id, first.stream_id)
                } else {
                    (first.stream_id, id)
                };
                let (ip, label, outbox) = (self.ip, self.label.clone(), self.outbox.clone());
                tracing::debug!(pod = %label, port, %request_id, "forwarding a connection");
                self.tasks.spawn(async move {
                    forward(
                        SocketAddr::from((ip, port)),
                        &label,
                        data_id,
                        error_id,
                        first.rx,
                        outbox,
                    )
                    .await;
                    [data_id, error_id]
                });
            }
            None if self.pending.len() >= MAX_PENDING => {
                self.refuse(id, spdy::RST_REFUSED_STREAM, "too many unpaired streams")
                    .await;
            }
            None => {
                self.reply(id).await?;
                let (inbox, rx) = mpsc::channel(INBOX_DEPTH);
                let route = Route {
                    inbox: inbox.clone(),
                    is_data,
                    paired: false,
                };
                self.routes.insert(id, route);
                let half = Half {
                    stream_id: id,
                    is_data,
                    inbox,
                    rx,
                };
                self.pending.insert(request_id, half);
            }
        }
        Ok(())
    }

    /// Accepts a stream with an empty SYN_REPLY, as the kubelet does.
    async fn reply(&mut self, stream_id: u32) -> Result<(), SpdyError> {
        let header_block = self.deflate.compress(&[])?;
        self.send(Frame::SynReply {
            stream_id,
            flags: 0,
            header_block,
        })
        .await;
        Ok(())
    }

    async fn data(&mut self, id: u32, flags: u8, data: Vec<u8>) {
        // Frames for streams that are gone, and anything on an error stream (the
        // client only closes its side of it), need nothing.
        let Some(route) = self.routes.get(&id).filter(|r| r.is_data) else {
            return;
        };
        let (inbox, paired) = (route.inbox.clone(), route.paired);
        let mut items = Vec::with_capacity(2);
        if !data.is_empty() {
            items.push(Inbound::Data(data));
        }
        if flags & FLAG_FIN != 0 {
            items.push(Inbound::Fin);
        }
        for item in items {
            let sent = if paired {
                inbox.send(item).await.is_ok()
            } else {
                inbox.try_send(item).is_ok()
            };
            if !sent {
                self.routes.remove(&id);
                if !paired {
                    self.pending.retain(|_, h| h.stream_id != id);
                    self.refuse(id, spdy::RST_PROTOCOL_ERROR, "data before its pair was open")
                        .await;
                }
                return;
            }
        }
    }

    async fn reset(&mut self, id: u32) {
        self.pending.retain(|_, h| h.stream_id != id);
        if let Some(route) = self.routes.remove(&id) {
            let reset = Inbound::Reset {
                error_stream: !route.is_data,
            };
            if route.paired {
                let _ = route.inbox.send(reset).await;
            }
        }
    }
}

async fn write_frames<W: AsyncWrite + Unpin>(mut wr: W, mut rx: mpsc::Receiver<Frame>) {
    while let Some(frame) = rx.recv().await {
        let Ok(bytes) = frame.encode() else {
            continue;
        };
        if wr.write_all(&bytes).await.is_err() {
            return;
        }
        // Frames queued together go out in one flush.
        if rx.is_empty() && wr.flush().await.is_err() {
            return;
        }
    }
    let _ = wr.shutdown().await;
}

fn fin(stream_id: u32) -> Frame {
    Frame::Data {
        stream_id,
        flags: FLAG_FIN,
        data: Vec::new(),
    }
}

/// One forwarded connection, from dialling the pod to closing both streams.
async fn forward(
    addr: SocketAddr,
    label: &str,
    data_id: u32,
    error_id: u32,
    mut inbox: mpsc::Receiver<Inbound>,
    outbox: mpsc::Sender<Frame>,
) {
    let dialled = match tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(tcp)) => Ok(tcp),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out".to_owned()),
    };
    let error_stream_reset = match dialled {
        Ok(tcp) => copy(tcp, data_id, &mut inbox, &outbox).await,
        Err(e) => {
            let msg = format!(
                "error forwarding port {} to pod {label}: dial {addr}: {e}",
                addr.port()
            );
            tracing::info!(pod = %label, port = addr.port(), error = %e, "port-forward dial failed");
            let _ = outbox
                .send(Frame::Data {
                    stream_id: error_id,
                    flags: 0,
                    data: msg.into_bytes(),
                })
                .await;
            let _ = outbox.send(fin(data_id)).await;
            false
        }
    };
    if !error_stream_reset {
        let _ = outbox.send(fin(error_id)).await;
    }
}

/// How the client side of a forwarded connection ended.
enum Upstream {
    Closed,
    Reset { error_stream: bool },
}

/// Copies between the pod connection and the data stream until both directions are
/// done, or one is and the other had [`CLOSE_GRACE`] to follow. Returns whether the
/// client reset the error stream (then nothing more may be sent on it).
async fn copy(
    tcp: TcpStream,
    data_id: u32,
    inbox: &mut mpsc::Receiver<Inbound>,
    outbox: &mpsc::Sender<Frame>,
) -> bool {
    let (mut rd, mut wr) = tcp.into_split();
    let down = async {
        let mut buf = vec![0u8; READ_CHUNK];
        while let Ok(n @ 1..) = rd.read(&mut buf).await {
            let frame = Frame::Data {
                stream_id: data_id,
                flags: 0,
                data: buf[..n].to_vec(),
            };
            if outbox.send(frame).await.is_err() {
                return;
            }
        }
        let _ = outbox.send(fin(data_id)).await;
    };
    let up = async {
        while let Some(item) = inbox.recv().await {
            match item {
                Inbound::Data(bytes) => {
                    if wr.write_all(&bytes).await.is_err() {
                        return Upstream::Closed;
                    }
                }
                Inbound::Fin => break,
                Inbound::Reset { error_stream } => return Upstream::Reset { error_stream },
            }
        }
        // Half-close: the pod sees the end of its input and may still answer.
        let _ = wr.shutdown().await;
        Upstream::Closed
    };
    tokio::pin!(down, up);
    tokio::select! {
        () = &mut down => match tokio::time::timeout(CLOSE_GRACE, &mut up).await {
            // The client answers the data stream's FIN by resetting it.
            Ok(Upstream::Reset { error_stream }) => error_stream,
            Ok(Upstream::Closed) | Err(_) => false,
        },
        ended = &mut up => match ended {
            Upstream::Reset { error_stream } => error_stream,
            Upstream::Closed => {
                if tokio::time::timeout(CLOSE_GRACE, &mut down).await.is_err() {
                    let _ = outbox.send(fin(data_id)).await;
                }
                false
            }
        },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Reads frames until `done` says so, or fails after a few seconds.
    async fn read_until<R: AsyncRead + Unpin>(
        r: &mut R,
        seen: &mut Vec<Frame>,
        done: impl Fn(&[Frame]) -> bool,
    ) {
        tokio::time::timeout(Duration::from_secs(5), async {
            while !done(seen) {
                seen.push(spdy::read_frame(r).await.unwrap().unwrap());
            }
        })
        .await
        .unwrap_or_else(|_| panic!("frames so far: {seen:?}"));
    }

    fn has_fin(frames: &[Frame], id: u32) -> bool {
        frames
            .iter()
            .any(|f| matches!(f, Frame::Data { stream_id, flags, .. } if *stream_id == id && flags & FLAG_FIN != 0))
    }

    #[tokio::test]
    async fn a_forwarded_connection_runs_and_every_stream_ends() {
        // The "pod": answers what it read, uppercased, once its input ends.
        let pod = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = pod.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut s, _) = pod.accept().await.unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).await.unwrap();
            s.write_all(&got.to_ascii_uppercase()).await.unwrap();
        });
        let (client, server) = tokio::io::duplex(64 * 1024);
        let session = tokio::spawn(Session::run(BufReader::new(server), Ipv4Addr::LOCALHOST, "t/pod"));
        let (mut rd, mut wr) = tokio::io::split(client);
        let mut deflate = HeaderCompressor::new().unwrap();
        let port = port.to_string();
        let mut send = Vec::new();
        for (id, kind) in [(1, "error"), (3, "data"), (5, "bogus")] {
            let header_block = deflate
                .compress(&[("streamtype", kind), ("port", &port), ("requestid", "0")])
                .unwrap();
            let syn = Frame::SynStream {
                stream_id: id,
                associated_id: 0,
                priority: 0,
                flags: 0,
                header_block,
            };
            send.extend(syn.encode().unwrap());
        }
        send.extend(Frame::Ping { id: 1 }.encode().unwrap());
        let hello = Frame::Data {
            stream_id: 3,
            flags: FLAG_FIN,
            data: b"hello".to_vec(),
        };
        send.extend(hello.encode().unwrap());
        wr.write_all(&send).await.unwrap();

        let mut seen = Vec::new();
        read_until(&mut rd, &mut seen, |f| has_fin(f, 3)).await;
        let mut inflate = HeaderDecompressor::default();
        let replies: Vec<u32> = seen
            .iter()
            .filter_map(|f| match f {
                Frame::SynReply {
                    stream_id,
                    header_block,
                    ..
                } => {
                    assert!(inflate.decompress(header_block).unwrap().is_empty());
                    Some(*stream_id)
                }
                _ => None,
            })
            .collect();
        assert_eq!(replies, [1, 3]);
        assert!(seen.contains(&Frame::RstStream {
            stream_id: 5,
            status: spdy::RST_REFUSED_STREAM
        }));
        assert!(seen.contains(&Frame::Ping { id: 1 }));
        let echoed: Vec<u8> = seen
            .iter()
            .filter_map(|f| match f {
                Frame::Data {
                    stream_id: 3, data, ..
                } => Some(data.clone()),
                _ => None,
            })
            .flatten()
            .collect();
        assert_eq!(echoed, b"HELLO");

        // As kubectl does: reset the data stream, then wait for the error stream's end.
        let rst = Frame::RstStream {
            stream_id: 3,
            status: 5,
        };
        wr.write_all(&rst.encode().unwrap()).await.unwrap();
        read_until(&mut rd, &mut seen, |f| has_fin(f, 1)).await;
        assert!(!seen
            .iter()
            .any(|f| matches!(f, Frame::Data { stream_id: 1, data, .. } if !data.is_empty())));

        // The client going away ends the session.
        drop((rd, wr));
        let ended = tokio::time::timeout(Duration::from_secs(5), session)
            .await
            .unwrap();
        ended.unwrap().unwrap();
    }

    #[test]
    fn targets_parse_with_and_without_uid() {
        assert_eq!(parse_target("/portForward/ns/p"), Some(("ns", "p", None)));
        assert_eq!(
            parse_target("/portForward/ns/p/u-1?port=80"),
            Some(("ns", "p", Some("u-1")))
        );
        assert_eq!(parse_target("/portForward/ns"), None);
        assert_eq!(parse_target("/portForward/ns/p/u/x"), None);
        assert_eq!(parse_target("/containerLogs/ns/p/c"), None);
    }
}
