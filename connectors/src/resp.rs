//! A small, blocking Redis client: RESP2 encoding, reply parsing and pipelining.
//!
//! Written here rather than taken from the `redis` crate because the sink needs exactly
//! one thing — write a batch of commands, read one reply per command, tell a Redis error
//! (a reply) from a broken connection (an I/O error) — on the bolt's own thread, with
//! timeouts, and without an async runtime per task.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

pub use squall_catalog::redis_counter::RedisAddr;

/// A reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`
    Simple(String),
    /// `-ERR ...`: the command failed; the connection is fine.
    Error(String),
    /// `:1`
    Int(i64),
    /// `$n` bulk string, `None` for `$-1`.
    Bulk(Option<Vec<u8>>),
    /// `*n` array, `None` for `*-1`.
    Array(Option<Vec<Reply>>),
}

/// The connection is unusable: drop it and reconnect.
#[derive(Debug, thiserror::Error)]
pub enum RespError {
    /// Reading, writing or connecting failed (including timeouts).
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The server sent something that is not RESP.
    #[error("protocol error: {0}")]
    Protocol(String),
}

/// Appends one command as a RESP array of bulk strings.
pub fn encode(args: &[&[u8]], out: &mut Vec<u8>) {
    out.push(b'*');
    out.extend_from_slice(args.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    for a in args {
        out.push(b'$');
        out.extend_from_slice(a.len().to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// Largest bulk reply accepted (the sink never asks for big values).
const MAX_BULK: usize = 512 * 1024 * 1024;
const MAX_DEPTH: usize = 16;

/// Reads one reply.
pub fn read_reply(r: &mut impl BufRead) -> Result<Reply, RespError> {
    read_depth(r, 0)
}

fn read_line(r: &mut impl BufRead) -> Result<String, RespError> {
    let mut line = Vec::new();
    let n = r.read_until(b'\n', &mut line)?;
    if n == 0 {
        return Err(RespError::Io(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "connection closed by Redis",
        )));
    }
    if !line.ends_with(b"\r\n") {
        return Err(RespError::Protocol("line not terminated by CRLF".to_owned()));
    }
    line.truncate(line.len() - 2);
    String::from_utf8(line).map_err(|_| RespError::Protocol("reply line is not UTF-8".to_owned()))
}

fn read_depth(r: &mut impl BufRead, depth: usize) -> Result<Reply, RespError> {
    if depth > MAX_DEPTH {
        return Err(RespError::Protocol("replies nested too deeply".to_owned()));
    }
    let line = read_line(r)?;
    let Some(kind) = line.chars().next() else {
        return Err(RespError::Protocol("empty reply line".to_owned()));
    };
    // The type may be any character the server sent, not only an ASCII one.
    let rest = &line[kind.len_utf8()..];
    let int = |s: &str| {
        s.parse::<i64>()
            .map_err(|_| RespError::Protocol(format!("bad integer {s:?}")))
    };
    match kind {
        '+' => Ok(Reply::Simple(rest.to_owned())),
        '-' => Ok(Reply::Error(rest.to_owned())),
        ':' => Ok(Reply::Int(int(rest)?)),
        '$' => {
            let n = int(rest)?;
            if n < 0 {
                return Ok(Reply::Bulk(None));
            }
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            if n > MAX_BULK {
                return Err(RespError::Protocol(format!("bulk reply of {n} bytes")));
            }
            let mut buf = vec![0u8; n + 2];
            r.read_exact(&mut buf)?;
            if !buf.ends_with(b"\r\n") {
                return Err(RespError::Protocol(
                    "bulk reply not terminated by CRLF".to_owned(),
                ));
            }
            buf.truncate(n);
            Ok(Reply::Bulk(Some(buf)))
        }
        '*' => {
            let n = int(rest)?;
            if n < 0 {
                return Ok(Reply::Array(None));
            }
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            let mut items = Vec::with_capacity(n.min(1024));
            for _ in 0..n {
                items.push(read_depth(r, depth + 1)?);
            }
            Ok(Reply::Array(Some(items)))
        }
        other => Err(RespError::Protocol(format!("unknown reply type {other:?}"))),
    }
}

/// One connection.
pub struct Connection {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Connection {
    /// Connects (each resolved address in turn), logs in and selects the database.
    pub fn open(addr: &RedisAddr, timeout: Duration) -> Result<Self, RespError> {
        let mut last = None;
        let mut stream = None;
        for a in addr.address.to_socket_addrs()? {
            match TcpStream::connect_timeout(&a, timeout) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let stream = match (stream, last) {
            (Some(s), _) => s,
            (None, Some(e)) => return Err(e.into()),
            (None, None) => {
                return Err(RespError::Protocol(format!(
                    "{} resolves to no address",
                    addr.address
                )))
            }
        };
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        let reader = BufReader::with_capacity(64 * 1024, stream.try_clone()?);
        let mut conn = Connection {
            writer: stream,
            reader,
        };
        let mut hello = Vec::new();
        let mut n = 0;
        if let Some(p) = &addr.password {
            encode(&[b"AUTH", p.as_bytes()], &mut hello);
            n += 1;
        }
        if let Some(db) = addr.db {
            encode(&[b"SELECT", db.to_string().as_bytes()], &mut hello);
            n += 1;
        }
        if n > 0 {
            for r in conn.pipeline(&hello, n)? {
                if let Reply::Error(e) = r {
                    return Err(RespError::Protocol(format!("logging in: {e}")));
                }
            }
        }
        Ok(conn)
    }

    /// Writes `commands` (already encoded, `n` of them) and reads their `n` replies.
    pub fn pipeline(&mut self, commands: &[u8], n: usize) -> Result<Vec<Reply>, RespError> {
        self.writer.write_all(commands)?;
        let mut replies = Vec::with_capacity(n);
        for _ in 0..n {
            replies.push(read_reply(&mut self.reader)?);
        }
        Ok(replies)
    }

    /// One command.
    pub fn command(&mut self, args: &[&[u8]]) -> Result<Reply, RespError> {
        let mut buf = Vec::new();
        encode(args, &mut buf);
        let mut r = self.pipeline(&buf, 1)?;
        r.pop().ok_or_else(|| RespError::Protocol("no reply".to_owned()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn encodes_commands_as_bulk_arrays() {
        let mut out = Vec::new();
        encode(&[b"ZINCRBY", b"anon", b"1", b"anon"], &mut out);
        assert_eq!(
            out,
            b"*4\r\n$7\r\nZINCRBY\r\n$4\r\nanon\r\n$1\r\n1\r\n$4\r\nanon\r\n"
        );
        out.clear();
        encode(&[b"SET", "clé".as_bytes(), b""], &mut out);
        assert_eq!(out, "*3\r\n$3\r\nSET\r\n$4\r\nclé\r\n$0\r\n\r\n".as_bytes());
    }

    #[test]
    fn decodes_every_reply_type() {
        let wire = b"+OK\r\n-WRONGTYPE Operation against a key\r\n:42\r\n$3\r\n1.5\r\n$-1\r\n*2\r\n:1\r\n$1\r\nx\r\n*-1\r\n*0\r\n";
        let mut r = &wire[..];
        let got: Vec<Reply> = (0..8).map(|_| read_reply(&mut r).unwrap()).collect();
        assert_eq!(
            got,
            [
                Reply::Simple("OK".into()),
                Reply::Error("WRONGTYPE Operation against a key".into()),
                Reply::Int(42),
                Reply::Bulk(Some(b"1.5".to_vec())),
                Reply::Bulk(None),
                Reply::Array(Some(vec![Reply::Int(1), Reply::Bulk(Some(b"x".to_vec()))])),
                Reply::Array(None),
                Reply::Array(Some(vec![])),
            ]
        );
        assert!(matches!(read_reply(&mut r), Err(RespError::Io(_))), "EOF");
    }

    #[test]
    fn rejects_garbage() {
        for wire in [&b"?x\r\n"[..], b":abc\r\n", b"+OK\n", b"$3\r\nabcd\r\n", b"\r\n"] {
            let mut r = wire;
            assert!(read_reply(&mut r).is_err(), "{:?}", String::from_utf8_lossy(wire));
        }
        let deep = "*1\r\n".repeat(20) + ":1\r\n";
        assert!(matches!(
            read_reply(&mut deep.as_bytes()),
            Err(RespError::Protocol(_))
        ));
    }
}
