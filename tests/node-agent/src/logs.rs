//! The kubelet's `containerLogs` endpoint, so that the API server's pods/log (what
//! `kubectl logs` and `squall logs` read) works for the agent's pods: each container's
//! log file, whole, its last lines, or followed. Served by [`crate::server`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::Result;

/// How often a followed log is checked for new bytes.
const FOLLOW_POLL: Duration = Duration::from_millis(200);

/// What a `containerLogs` request asks for.
#[derive(Debug, PartialEq)]
struct Request {
    namespace: String,
    pod: String,
    container: String,
    follow: bool,
    tail_lines: Option<usize>,
}

/// `GET /containerLogs/{ns}/{pod}/{container}?follow=true&tailLines=N`.
fn parse(target: &str) -> Option<Request> {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut parts = path.strip_prefix("/containerLogs/")?.split('/');
    let (namespace, pod, container) = (parts.next()?, parts.next()?, parts.next()?);
    let mut req = Request {
        namespace: namespace.to_owned(),
        pod: pod.to_owned(),
        container: container.to_owned(),
        follow: false,
        tail_lines: None,
    };
    for kv in query.split('&') {
        match kv.split_once('=') {
            Some(("follow", v)) => req.follow = v == "true" || v == "1",
            Some(("tailLines", v)) => req.tail_lines = v.parse().ok(),
            _ => {}
        }
    }
    Some(req)
}

/// The log of the newest pod directory named `{ns}_{pod}_{uid}` (names have no `_`).
fn log_file(work_dir: &Path, req: &Request) -> Option<PathBuf> {
    let prefix = format!("{}_{}_", req.namespace, req.pod);
    std::fs::read_dir(work_dir)
        .ok()?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
        .map(|e| e.path().join(format!("{}.log", req.container)))
        .filter(|p| p.exists())
}

/// Answers `GET {target}` for a `/containerLogs/...` target.
pub async fn respond<S: tokio::io::AsyncWrite + Unpin>(
    stream: &mut S,
    target: &str,
    work_dir: &Path,
) -> Result<()> {
    let Some((path, req)) = parse(target).and_then(|req| log_file(work_dir, &req).map(|f| (f, req))) else {
        return crate::server::respond_text(stream, "404 Not Found", "", "no such container log\n").await;
    };
    // No length: the body ends when the connection closes, which a follow needs.
    stream
        .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n")
        .await?;
    let text = tokio::fs::read(&path).await?;
    let start = match req.tail_lines {
        Some(n) => tail_start(&text, n),
        None => 0,
    };
    stream.write_all(&text[start..]).await?;
    stream.flush().await?;
    if req.follow {
        follow(stream, &path, text.len() as u64).await?;
    }
    stream.shutdown().await?;
    Ok(())
}

/// Copies what is appended to `path` after `offset` until the reader goes away.
async fn follow<S: tokio::io::AsyncWrite + Unpin>(
    stream: &mut S,
    path: &Path,
    mut offset: u64,
) -> Result<()> {
    let mut file = tokio::fs::File::open(path).await?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        file.seek(std::io::SeekFrom::Start(offset)).await?;
        let n = file.read(&mut buf).await?;
        if n == 0 {
            tokio::time::sleep(FOLLOW_POLL).await;
            continue;
        }
        stream.write_all(&buf[..n]).await?;
        stream.flush().await?;
        offset += n as u64;
    }
}

/// Where the last `n` lines of `text` start.
fn tail_start(text: &[u8], n: usize) -> usize {
    if n == 0 {
        return text.len();
    }
    let body = text.strip_suffix(b"\n").unwrap_or(text);
    body.iter()
        .enumerate()
        .rev()
        .filter(|(_, b)| **b == b'\n')
        .nth(n - 1)
        .map_or(0, |(i, _)| i + 1)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn requests_parse_with_their_options() {
        let r = parse("/containerLogs/default/numbers-0/worker?follow=true&tailLines=5").unwrap();
        assert_eq!(
            r,
            Request {
                namespace: "default".into(),
                pod: "numbers-0".into(),
                container: "worker".into(),
                follow: true,
                tail_lines: Some(5),
            }
        );
        assert!(parse("/pods").is_none());
    }

    #[test]
    fn tails_start_at_the_right_line() {
        let text = b"a\nb\nc\n";
        assert_eq!(&text[tail_start(text, 2)..], b"b\nc\n");
        assert_eq!(&text[tail_start(text, 5)..], b"a\nb\nc\n");
        assert_eq!(&text[tail_start(text, 0)..], b"");
    }
}
