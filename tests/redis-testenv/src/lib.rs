//! A real redis-server for tests, on a loopback address and a free port.
//!
//! - [`RedisServer::start`] runs `redis-server` (Debian's package; `make redis-server`
//!   installs it as `/usr/bin/redis-server`) on a free port of `127.0.0.1`, or of another
//!   `127.0.0.N` given to [`RedisServer::start_on`], in a temporary directory and without
//!   persistence, and returns once it answers PING.
//! - [`Options`] ([`RedisServer::start_with`]): `durable` keeps an append-only file fsynced
//!   before every reply, so a kill -9 and [`RedisServer::restart`] keep every write Redis
//!   confirmed; `dir` puts the server's files in a directory of the test's.
//! - [`RedisServer::kill`] sends SIGKILL; [`RedisServer::restart`] starts it again on the
//!   same port and files.
//! - [`RedisServer::command`], [`RedisServer::zset`] and [`RedisServer::counts`] read what
//!   a test wrote, over a plain RESP connection (no redis-cli).
//!
//! The server runs in a process group of its own under a small `sh` watchdog that SIGKILLs
//! it once the test process's end of a pipe closes, so a server never outlives its test
//! binary; dropping a [`RedisServer`] kills its group.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// How long a start or restart waits for PING to be answered (a restart replays the
/// append-only file first).
pub const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Sorted sets by key, each member with its score as a whole number: what the examples'
/// counters leave in Redis.
pub type Counts = BTreeMap<String, BTreeMap<String, u64>>;

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file, socket or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// `redis-server` could not be run.
    #[error(
        "{program} could not be run ({source}): run `make redis-server`, which installs Debian's \
         redis-server package (/usr/bin/redis-server), and run the tests again"
    )]
    NotInstalled {
        /// The program tried.
        program: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The server did not come up in time, or exited.
    #[error("{0}")]
    Server(String),
    /// A reply was an error, malformed, or not of the kind asked for.
    #[error("{0}")]
    Reply(String),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

/// How to start a server.
#[derive(Clone, Debug)]
pub struct Options {
    /// The loopback address to listen on.
    pub host: Ipv4Addr,
    /// An append-only file fsynced before every reply (`appendfsync always`); otherwise no
    /// persistence at all.
    pub durable: bool,
    /// The directory of the server's files and `redis.log` (created if missing); a
    /// temporary one, removed on drop, when `None`.
    pub dir: Option<PathBuf>,
    /// The server program.
    pub program: PathBuf,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            host: Ipv4Addr::LOCALHOST,
            durable: false,
            dir: None,
            program: PathBuf::from("redis-server"),
        }
    }
}

impl Options {
    /// The defaults on `host`.
    pub fn on(host: Ipv4Addr) -> Self {
        Options {
            host,
            ..Options::default()
        }
    }
}

/// A reply to a command (RESP2).
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// `+OK`, `+PONG`...
    Status(String),
    /// `-ERR ...`: the server refused the command.
    Error(String),
    /// `:n`
    Int(i64),
    /// `$n`: a string, or `None` for a missing value.
    Bulk(Option<Vec<u8>>),
    /// `*n`: the elements, or `None` for a null array.
    Array(Option<Vec<Reply>>),
}

/// A redis-server child, killed on drop.
pub struct RedisServer {
    child: Option<Child>,
    options: Options,
    port: u16,
    dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

/// `sh -c` script: run "$@" (the server), SIGKILL it when stdin reaches end of file.
/// (An asynchronous list's stdin is /dev/null unless redirected: hence fd 3.)
const WATCHDOG: &str = "exec 3<&0; \"$@\" </dev/null & j=$!; trap '' TERM; { cat <&3 >/dev/null; kill -9 $j 2>/dev/null; } & exec 3<&-; wait $j";

impl RedisServer {
    /// A server on `127.0.0.1` without persistence.
    pub fn start() -> Result<Self, Error> {
        Self::start_with(Options::default())
    }

    /// A server on `host` (a loopback address) without persistence.
    pub fn start_on(host: Ipv4Addr) -> Result<Self, Error> {
        Self::start_with(Options::on(host))
    }

    /// A server as `options` say.
    pub fn start_with(options: Options) -> Result<Self, Error> {
        if !options.host.is_loopback() {
            return Err(Error::Server(format!(
                "{} is not a loopback address",
                options.host
            )));
        }
        // The watchdog's sh starts whatever it is given: ask for the program first, so a
        // missing one is named rather than seen as a server that never answers.
        Command::new(&options.program)
            .arg("--version")
            .output()
            .map_err(|source| Error::NotInstalled {
                program: options.program.display().to_string(),
                source,
            })?;
        let (dir, tmp) = match &options.dir {
            Some(d) => {
                fs::create_dir_all(d).map_err(io(format!("creating {}", d.display())))?;
                (d.clone(), None)
            }
            None => {
                let t = tempfile::Builder::new()
                    .prefix("redis-testenv-")
                    .tempdir()
                    .map_err(io("creating the server's directory"))?;
                (t.path().to_path_buf(), Some(t))
            }
        };
        let port = TcpListener::bind((options.host, 0))
            .and_then(|l| l.local_addr())
            .map_err(io(format!("finding a free port on {}", options.host)))?
            .port();
        let mut server = RedisServer {
            child: None,
            options,
            port,
            dir,
            _tmp: tmp,
        };
        server.spawn()?;
        Ok(server)
    }

    fn spawn(&mut self) -> Result<(), Error> {
        let o = &self.options;
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(WATCHDOG)
            .arg("sh")
            .arg(&o.program)
            .args(["--port", &self.port.to_string(), "--bind", &o.host.to_string()])
            .args(["--save", "", "--daemonize", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(self.dir.join("redis.log"));
        if o.durable {
            cmd.args(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            cmd.args(["--appendonly", "no"]);
        }
        let child = cmd
            .current_dir(&self.dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(io("starting sh for redis-server"))?;
        self.child = Some(child);
        self.wait_ready()
    }

    /// Waits until PING is answered (not `-LOADING`: the append-only file is replayed).
    fn wait_ready(&mut self) -> Result<(), Error> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    self.child = None;
                    return Err(Error::Server(format!(
                        "redis-server exited ({status}) while starting on {}; its log:\n{}",
                        self.addr(),
                        self.log_tail(20)
                    )));
                }
            }
            if matches!(self.command(&["PING"]), Ok(Reply::Status(s)) if s == "PONG") {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::Server(format!(
                    "redis-server did not answer PING on {} within {START_TIMEOUT:?}; its log:\n{}",
                    self.addr(),
                    self.log_tail(20)
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The address it listens on.
    pub fn host(&self) -> Ipv4Addr {
        self.options.host
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `host:port`.
    pub fn addr(&self) -> String {
        format!("{}:{}", self.options.host, self.port)
    }

    /// `redis://host:port`, as the `redis-counter` bolt's `url` takes it.
    pub fn url(&self) -> String {
        format!("redis://{}", self.addr())
    }

    /// The directory of its files and `redis.log`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The watchdog's process id (and the group's), while the server runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The last `n` lines of `redis.log`.
    pub fn log_tail(&self, n: usize) -> String {
        let text = fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// SIGKILL: no shutdown, no final write.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
            let _ = child.wait();
            // The child is the watchdog shell; redis-server is its child and may close its
            // socket a moment after the shell is reaped.
            let addr = SocketAddr::from((self.options.host, self.port));
            let deadline = Instant::now() + Duration::from_secs(5);
            while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    /// Kills the server if it runs, then starts it again on the same port and files
    /// (reloading the append-only file when durable).
    pub fn restart(&mut self) -> Result<(), Error> {
        self.kill();
        // The port was ours: wait until the killed process's socket is gone.
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpListener::bind((self.options.host, self.port)).is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.spawn()
    }

    /// One command on a fresh connection. A refusal is `Ok(Reply::Error)`.
    pub fn command(&self, args: &[&str]) -> Result<Reply, Error> {
        let addr = SocketAddr::from((self.options.host, self.port));
        let what = format!("{} on {addr}", args.first().copied().unwrap_or_default());
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
            .map_err(io(format!("{what}: connecting")))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(io(what.clone()))?;
        let mut request = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            request.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
        }
        stream
            .write_all(&request)
            .map_err(io(format!("{what}: sending")))?;
        read_reply(&mut BufReader::new(stream)).map_err(|e| match e {
            Error::Io { source, .. } => Error::Io {
                what: format!("{what}: reading the reply"),
                source,
            },
            other => other,
        })
    }

    /// The members and scores of sorted set `key` (empty when it does not exist).
    pub fn zset(&self, key: &str) -> Result<BTreeMap<String, f64>, Error> {
        let reply = self.command(&["ZRANGE", key, "0", "-1", "WITHSCORES"])?;
        let Reply::Array(Some(items)) = reply else {
            return Err(Error::Reply(format!("ZRANGE {key}: {reply:?}")));
        };
        let text = |r: &Reply| match r {
            Reply::Bulk(Some(b)) => Ok(String::from_utf8_lossy(b).into_owned()),
            other => Err(Error::Reply(format!("ZRANGE {key}: {other:?} in the reply"))),
        };
        items
            .chunks(2)
            .map(|pair| {
                let [member, score] = pair else {
                    return Err(Error::Reply(format!("ZRANGE {key}: an odd number of elements")));
                };
                let score = text(score)?;
                let score = score
                    .parse::<f64>()
                    .map_err(|_| Error::Reply(format!("ZRANGE {key}: score {score:?}")))?;
                Ok((text(member)?, score))
            })
            .collect()
    }

    /// The sorted sets of `keys` that are not empty, with whole-number scores.
    pub fn counts(&self, keys: &[&str]) -> Result<Counts, Error> {
        let mut out = Counts::new();
        for key in keys {
            let set = self.zset(key)?;
            if !set.is_empty() {
                let set = set.into_iter().map(|(m, s)| (m, s as u64)).collect();
                out.insert((*key).to_owned(), set);
            }
        }
        Ok(out)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reads one RESP2 reply.
fn read_reply(r: &mut impl BufRead) -> Result<Reply, Error> {
    let mut line = String::new();
    r.read_line(&mut line).map_err(io("reading"))?;
    let Some(line) = line.strip_suffix("\r\n") else {
        return Err(Error::Reply(format!("a reply line without CRLF: {line:?}")));
    };
    let (kind, rest) = line.split_at(line.chars().next().map_or(0, char::len_utf8));
    let number = || {
        rest.parse::<i64>()
            .map_err(|_| Error::Reply(format!("not a number in the reply: {line:?}")))
    };
    Ok(match kind {
        "+" => Reply::Status(rest.to_owned()),
        "-" => Reply::Error(rest.to_owned()),
        ":" => Reply::Int(number()?),
        "$" => match usize::try_from(number()?) {
            Err(_) => Reply::Bulk(None),
            Ok(len) => {
                let mut bytes = vec![0; len + 2];
                r.read_exact(&mut bytes).map_err(io("reading"))?;
                bytes.truncate(len);
                Reply::Bulk(Some(bytes))
            }
        },
        "*" => match usize::try_from(number()?) {
            Err(_) => Reply::Array(None),
            Ok(n) => Reply::Array(Some((0..n).map(|_| read_reply(r)).collect::<Result<_, _>>()?)),
        },
        _ => return Err(Error::Reply(format!("an unknown reply: {line:?}"))),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parse(bytes: &[u8]) -> Result<Reply, Error> {
        read_reply(&mut BufReader::new(bytes))
    }

    #[test]
    fn replies_of_every_kind_are_read() {
        assert_eq!(parse(b"+PONG\r\n").unwrap(), Reply::Status("PONG".into()));
        assert_eq!(parse(b"-ERR no\r\n").unwrap(), Reply::Error("ERR no".into()));
        assert_eq!(parse(b":-3\r\n").unwrap(), Reply::Int(-3));
        assert_eq!(parse(b"$-1\r\n").unwrap(), Reply::Bulk(None));
        assert_eq!(parse(b"*-1\r\n").unwrap(), Reply::Array(None));
        assert_eq!(
            parse(b"*2\r\n$4\r\na\r\nb\r\n:1\r\n").unwrap(),
            Reply::Array(Some(vec![Reply::Bulk(Some(b"a\r\nb".to_vec())), Reply::Int(1)]))
        );
    }

    #[test]
    fn malformed_replies_are_errors() {
        for bad in [
            &b"+OK"[..],
            b"?\r\n",
            b":x\r\n",
            b"$5\r\nab\r\n",
            b"*2\r\n:1\r\n",
            b"",
        ] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
