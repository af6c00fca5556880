//! The kubelet's HTTPS endpoint, on a loopback port the Node reports as its
//! daemonEndpoints.kubeletEndpoint, which the API server calls for pods/log
//! (`containerLogs`, see [`crate::logs`]) and pods/portforward (`portForward`, see
//! [`crate::portforward`]). A small HTTP/1.1 reader: one request per connection.
//!
//! The API server does not verify a kubelet's certificate unless told a CA for it, and
//! this agent serves on loopback for tests, so a self-signed certificate does and no
//! client is authenticated.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader,
};
use tokio::net::TcpListener;
use tokio_rustls::rustls;

use crate::pods::PodAddrs;
use crate::{Error, Result};

/// Longest request or header line accepted.
const MAX_LINE: usize = 8 * 1024;
/// Most header lines accepted in one request.
const MAX_HEADER_LINES: usize = 100;

/// What the handlers need from the agent.
#[derive(Clone)]
pub struct Context {
    pub work_dir: PathBuf,
    pub pods: PodAddrs,
}

/// Starts serving; returns the port and the task.
pub async fn serve(ctx: Context) -> Result<(u16, tokio::task::JoinHandle<()>)> {
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls_config()?));
    let listener = TcpListener::bind((crate::node::HOST_IP, 0)).await?;
    let port = listener.local_addr()?.port();
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let ctx = ctx.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    if let Err(e) = handle(tls, &ctx).await {
                        tracing::debug!(error = %e, "kubelet endpoint request");
                    }
                }
            });
        }
    });
    Ok((port, task))
}

fn tls_config() -> Result<rustls::ServerConfig> {
    let bad = |e: String| Error::ConfigInvalid(format!("kubelet endpoint certificate: {e}"));
    let key = rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .map_err(|e| bad(e.to_string()))?;
    let cert = key.cert.der().clone();
    let private = rustls::pki_types::PrivateKeyDer::Pkcs8(key.signing_key.serialize_der().into());
    rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(vec![cert], private)
        .map_err(|e| bad(e.to_string()))
}

/// A request line and its headers (names lowercased).
#[derive(Debug, PartialEq)]
pub struct Request {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
}

impl Request {
    /// Every value of header `name`, comma-separated lists split up.
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n == name)
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
    }
}

fn invalid(msg: &str) -> Error {
    Error::Io(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        msg.to_owned(),
    ))
}

/// One line, at most [`MAX_LINE`] bytes; `None` at end of stream.
async fn read_line<R: AsyncBufRead + Unpin>(r: &mut R) -> Result<Option<String>> {
    let mut line = String::new();
    let n = (&mut *r).take(MAX_LINE as u64).read_line(&mut line).await?;
    if n == 0 {
        return Ok(None);
    }
    if !line.ends_with('\n') && n == MAX_LINE {
        return Err(invalid("request line too long"));
    }
    Ok(Some(line.trim_end_matches(['\r', '\n']).to_owned()))
}

/// Reads a request head up to its blank line; `None` if the client sent nothing.
pub async fn read_request<R: AsyncBufRead + Unpin>(r: &mut R) -> Result<Option<Request>> {
    let Some(first) = read_line(r).await? else {
        return Ok(None);
    };
    let mut parts = first.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Err(invalid("bad request line"));
    };
    let mut req = Request {
        method: method.to_owned(),
        target: target.to_owned(),
        headers: Vec::new(),
    };
    loop {
        let line = read_line(r)
            .await?
            .ok_or_else(|| invalid("request head cut short"))?;
        if line.is_empty() {
            return Ok(Some(req));
        }
        if req.headers.len() == MAX_HEADER_LINES {
            return Err(invalid("too many header lines"));
        }
        if let Some((name, value)) = line.split_once(':') {
            req.headers
                .push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
}

/// A complete plain-text response, after which the connection closes.
pub async fn respond_text<S: AsyncWrite + Unpin>(
    stream: &mut S,
    status: &str,
    extra_headers: &str,
    body: &str,
) -> Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{extra_headers}Connection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.flush().await?;
    Ok(())
}

async fn handle<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(stream: S, ctx: &Context) -> Result<()> {
    let mut reader = BufReader::new(stream);
    let Some(req) = read_request(&mut reader).await? else {
        return Ok(());
    };
    if req.target.starts_with("/containerLogs/") {
        crate::logs::respond(reader.get_mut(), &req.target, &ctx.work_dir).await
    } else if req.target.starts_with("/portForward/") {
        crate::portforward::serve(reader, &req, &ctx.pods).await
    } else {
        respond_text(reader.get_mut(), "404 Not Found", "", "not found\n").await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn request_heads_parse_and_stay_bounded() {
        let raw = b"POST /portForward/ns/pod HTTP/1.1\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: a, b\r\nx-stream-protocol-version: c\r\n\r\nrest";
        let mut r = BufReader::new(&raw[..]);
        let req = read_request(&mut r).await.unwrap().unwrap();
        assert_eq!(req.method, "POST");
        assert_eq!(req.target, "/portForward/ns/pod");
        assert_eq!(
            req.header_values("x-stream-protocol-version").collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
        // What follows the head stays in the reader.
        let mut rest = String::new();
        r.read_to_string(&mut rest).await.unwrap();
        assert_eq!(rest, "rest");

        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_LINE));
        assert!(read_request(&mut BufReader::new(long.as_bytes())).await.is_err());
        let many = format!(
            "GET / HTTP/1.1\r\n{}\r\n",
            "a: b\r\n".repeat(MAX_HEADER_LINES + 1)
        );
        assert!(read_request(&mut BufReader::new(many.as_bytes())).await.is_err());
        let cut = b"GET / HTTP/1.1\r\nHost: x\r\n";
        assert!(read_request(&mut BufReader::new(&cut[..])).await.is_err());
        assert!(read_request(&mut BufReader::new(&b""[..]))
            .await
            .unwrap()
            .is_none());
    }
}
