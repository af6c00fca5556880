//! A real Apache Kafka broker for tests: one KRaft node (broker and controller in one
//! JVM) on a loopback address, from the jars of Maven Central.
//!
//! - [`ensure_jars`] fetches the jars the committed `pom.xml` names into
//!   `.cache/kafka/libs` (`mvn dependency:copy-dependencies`, offline first), once: a cache
//!   whose recorded pom equals the committed one is used without running Maven at all.
//! - [`KafkaBroker::start`] formats a data directory (`StorageTool format --standalone`),
//!   starts `kafka.Kafka` on two free ports of `127.0.0.1` (or of another `127.0.0.N`
//!   given to [`KafkaBroker::start_on`]) and returns once the broker listens and logged
//!   that it started.
//! - [`KafkaBroker::create_topic`] creates a topic with N partitions (`TopicCommand`).
//! - [`KafkaBroker::stop`] sends SIGTERM (a controlled shutdown) and SIGKILL after a
//!   grace period; [`KafkaBroker::kill`] sends SIGKILL; [`KafkaBroker::restart`] starts it
//!   again on the same data directory and ports.
//!
//! The JVM runs in a process group of its own, killed when the [`KafkaBroker`] is
//! dropped (unless [`KafkaBroker::detach`] handed it over, as `kafka-testenv up` does).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// The Kafka release the committed pom pins.
pub const KAFKA_VERSION: &str = "4.4.0";

/// How long [`KafkaBroker::start`] waits for the broker to listen.
pub const START_TIMEOUT: Duration = Duration::from_secs(120);

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A tool (mvn, java) is missing or exited with an error.
    #[error("{0}")]
    Tool(String),
    /// The broker did not come up in time, or exited.
    #[error("{0}")]
    Broker(String),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

/// The workspace's root directory.
pub fn workspace_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

/// The committed pom naming the broker's jars.
pub fn pom_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("pom.xml")
}

/// Where the jars are cached: `$KAFKA_CACHE_DIR` or `.cache/kafka` under the workspace.
pub fn cache_dir() -> PathBuf {
    match std::env::var_os("KAFKA_CACHE_DIR") {
        Some(d) => PathBuf::from(d),
        None => workspace_root().join(".cache/kafka"),
    }
}

/// Whether `dir` holds the jars of exactly this pom.
fn cache_is_current(dir: &Path, pom: &[u8]) -> bool {
    let jar = dir.join("libs").join(format!("kafka_2.13-{KAFKA_VERSION}.jar"));
    jar.is_file() && fs::read(dir.join("pom.xml")).is_ok_and(|p| p == pom)
}

/// The directory of the broker's jars, fetching them with Maven when the cache is missing
/// or was filled from another pom. Offline first (a warm Maven repository suffices), then
/// from Maven Central. Maven's repository is `.cache/m2` beside the cache.
pub fn ensure_jars() -> Result<PathBuf, Error> {
    let dir = cache_dir();
    let pom = fs::read(pom_path()).map_err(io("reading kafka-testenv's pom.xml"))?;
    let libs = dir.join("libs");
    if cache_is_current(&dir, &pom) {
        return Ok(libs);
    }
    let repo = dir.join("../m2");
    let _ = fs::remove_dir_all(&libs);
    fs::create_dir_all(&libs).map_err(io(format!("creating {}", libs.display())))?;
    let run = |offline: bool| {
        let mut cmd = Command::new("mvn");
        cmd.args(["-q", "-B"]);
        if offline {
            cmd.arg("-o");
        }
        cmd.arg(format!("-Dmaven.repo.local={}", repo.display()))
            .arg("-f")
            .arg(pom_path())
            .arg("dependency:copy-dependencies")
            .arg(format!("-DoutputDirectory={}", libs.display()))
            .stdin(Stdio::null())
            .output()
    };
    let out = match run(true) {
        Ok(o) if o.status.success() => o,
        Ok(_) => run(false).map_err(io("running mvn"))?,
        Err(e) => {
            return Err(Error::Tool(format!(
                "mvn not found ({e}): install Maven and a JDK 17 (Debian: maven, openjdk-17-jdk-headless), or run `make kafka-jars`"
            )))
        }
    };
    if !out.status.success() {
        return Err(Error::Tool(format!(
            "mvn dependency:copy-dependencies failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    fs::write(dir.join("pom.xml"), &pom).map_err(io("recording the cached pom"))?;
    Ok(libs)
}

/// A port nobody listens on now, on `host`.
pub fn free_port(host: Ipv4Addr) -> Result<u16, Error> {
    let l = TcpListener::bind((host, 0)).map_err(io(format!("binding a port on {host}")))?;
    Ok(l.local_addr().map_err(io("local address"))?.port())
}

/// A single-node KRaft broker.
pub struct KafkaBroker {
    child: Option<Child>,
    host: Ipv4Addr,
    port: u16,
    controller_port: u16,
    dir: PathBuf,
    libs: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    detached: bool,
    watchdog: bool,
}

/// `sh -c` script: run "$@" (the JVM), SIGKILL it when stdin reaches end of file.
/// (An asynchronous list's stdin is /dev/null unless redirected: hence fd 3.)
const WATCHDOG: &str = "exec 3<&0; \"$@\" </dev/null & j=$!; trap '' TERM; { cat <&3 >/dev/null; kill -9 $j 2>/dev/null; } & exec 3<&-; wait $j";

const LOG4J: &str = "\
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = ${sys:kafka.logs.dir}/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = info
logger.apache.name = org.apache.kafka
logger.apache.level = info
";

impl KafkaBroker {
    /// A broker on `127.0.0.1` in a fresh temporary directory.
    pub fn start() -> Result<Self, Error> {
        Self::start_on(Ipv4Addr::LOCALHOST)
    }

    /// A broker on `host` (a loopback address) in a fresh temporary directory.
    pub fn start_on(host: Ipv4Addr) -> Result<Self, Error> {
        let tmp = tempfile::Builder::new()
            .prefix("kafka-testenv-")
            .tempdir()
            .map_err(io("creating the broker's directory"))?;
        let dir = tmp.path().to_path_buf();
        Self::start_in(host, &dir, Some(tmp))
    }

    /// A broker on `host` whose files live in `dir` (created; formatted if new), killed
    /// when this process exits.
    pub fn start_in(host: Ipv4Addr, dir: &Path, tmp: Option<tempfile::TempDir>) -> Result<Self, Error> {
        Self::start_with(host, dir, tmp, true)
    }

    /// A broker that outlives this process (`kafka-testenv up`): no watchdog; stop it
    /// with SIGTERM to its process group.
    pub fn start_detached(host: Ipv4Addr, dir: &Path) -> Result<Self, Error> {
        Self::start_with(host, dir, None, false)
    }

    fn start_with(
        host: Ipv4Addr,
        dir: &Path,
        tmp: Option<tempfile::TempDir>,
        watchdog: bool,
    ) -> Result<Self, Error> {
        if !host.is_loopback() {
            return Err(Error::Broker(format!("{host} is not a loopback address")));
        }
        let libs = ensure_jars()?;
        fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
        let mut b = KafkaBroker {
            child: None,
            host,
            port: free_port(host)?,
            controller_port: free_port(host)?,
            dir: dir.to_path_buf(),
            libs,
            _tmp: tmp,
            detached: false,
            watchdog,
        };
        b.write_config()?;
        b.format()?;
        b.spawn()?;
        Ok(b)
    }

    /// `host:port` for clients (`bootstrap.servers`).
    pub fn bootstrap(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The broker's directory (config, data under `data/`, `server.log`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The JVM's process id (and process group), while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn write_config(&self) -> Result<(), Error> {
        let (h, p, c) = (self.host, self.port, self.controller_port);
        let data = self.dir.join("data");
        let props = format!(
            "process.roles=broker,controller\n\
             node.id=1\n\
             controller.quorum.bootstrap.servers={h}:{c}\n\
             listeners=PLAINTEXT://{h}:{p},CONTROLLER://{h}:{c}\n\
             advertised.listeners=PLAINTEXT://{h}:{p}\n\
             controller.listener.names=CONTROLLER\n\
             inter.broker.listener.name=PLAINTEXT\n\
             listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT\n\
             log.dirs={}\n\
             num.partitions=1\n\
             offsets.topic.replication.factor=1\n\
             offsets.topic.num.partitions=1\n\
             transaction.state.log.replication.factor=1\n\
             transaction.state.log.min.isr=1\n\
             share.coordinator.state.topic.replication.factor=1\n\
             share.coordinator.state.topic.min.isr=1\n\
             group.initial.rebalance.delay.ms=0\n\
             auto.create.topics.enable=false\n",
            data.display()
        );
        fs::write(self.dir.join("server.properties"), props).map_err(io("writing server.properties"))?;
        fs::write(self.dir.join("log4j2.properties"), LOG4J).map_err(io("writing log4j2.properties"))
    }

    fn java(&self) -> Command {
        let mut cmd = Command::new("java");
        cmd.arg("-cp")
            .arg(format!("{}/*", self.libs.display()))
            .arg(format!("-Dkafka.logs.dir={}", self.dir.display()))
            .arg(format!(
                "-Dlog4j2.configurationFile={}",
                self.dir.join("log4j2.properties").display()
            ))
            .current_dir(&self.dir)
            .stdin(Stdio::null());
        cmd
    }

    /// Runs a tool class of the Kafka jars to completion.
    fn tool(&self, args: &[&str]) -> Result<String, Error> {
        let out = self.java().arg("-Xmx256m").args(args).output().map_err(|e| {
            Error::Tool(format!(
                "java not found ({e}): install a JDK 17 (Debian: openjdk-17-jdk-headless)"
            ))
        })?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if !out.status.success() {
            return Err(Error::Tool(format!(
                "java {}: {}\n{text}",
                args.join(" "),
                out.status
            )));
        }
        Ok(text)
    }

    fn format(&self) -> Result<(), Error> {
        if self.dir.join("data/meta.properties").is_file() {
            return Ok(());
        }
        let id = cluster_id();
        let config = self.dir.join("server.properties");
        let config = config.to_string_lossy();
        self.tool(&[
            "kafka.tools.StorageTool",
            "format",
            "--standalone",
            "-t",
            &id,
            "-c",
            &config,
        ])
        .map(drop)
    }

    fn spawn(&mut self) -> Result<(), Error> {
        let stdout = fs::File::create(self.dir.join("stdout.log")).map_err(io("creating stdout.log"))?;
        let stderr = stdout.try_clone().map_err(io("stdout.log"))?;
        let java = self.java();
        let mut cmd = if self.watchdog {
            // sh runs the JVM and a watchdog that SIGKILLs it once our end of the pipe on
            // its stdin closes: when this process exits, however it exits (a test binary
            // killed, a broker held in a static). It ignores SIGTERM after starting the
            // JVM, so `stop` reaches the JVM's shutdown hook and sh waits for it.
            let mut sh = Command::new("sh");
            sh.arg("-c")
                .arg(WATCHDOG)
                .arg("sh")
                .arg(java.get_program())
                .args(java.get_args())
                .current_dir(&self.dir)
                .stdin(Stdio::piped());
            sh
        } else {
            java
        };
        let child = cmd
            .arg("-Xmx512m")
            .arg("-XX:+UseSerialGC")
            .arg("kafka.Kafka")
            .arg(self.dir.join("server.properties"))
            .stdout(stdout)
            .stderr(stderr)
            .process_group(0)
            .spawn()
            .map_err(|e| Error::Tool(format!("starting java ({e}): install a JDK 17")))?;
        self.child = Some(child);
        self.wait_ready(START_TIMEOUT)
    }

    /// Waits until the broker listens for clients and logged that it started.
    fn wait_ready(&mut self, limit: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + limit;
        let addr = SocketAddr::from((self.host, self.port));
        loop {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    self.child = None;
                    return Err(Error::Broker(format!(
                        "the broker exited ({status}) while starting; its log:\n{}",
                        self.log_tail(40)
                    )));
                }
            }
            let listening = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok();
            if listening && self.log_contains("Kafka Server started") {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::Broker(format!(
                    "the broker did not start within {limit:?}; its log:\n{}",
                    self.log_tail(40)
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log_contains(&self, text: &str) -> bool {
        fs::read_to_string(self.dir.join("server.log")).is_ok_and(|l| l.contains(text))
    }

    /// The last `n` lines of the broker's `server.log` and its stdout.
    pub fn log_tail(&self, n: usize) -> String {
        let mut out = String::new();
        for f in ["server.log", "stdout.log"] {
            let text = fs::read_to_string(self.dir.join(f)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            out.push_str(&format!("--- {f}\n"));
            for l in &lines[lines.len().saturating_sub(n)..] {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }

    /// Creates `topic` with `partitions` partitions (replication factor 1).
    pub fn create_topic(&self, topic: &str, partitions: u32) -> Result<(), Error> {
        let bootstrap = self.bootstrap();
        let partitions = partitions.to_string();
        self.tool(&[
            "org.apache.kafka.tools.TopicCommand",
            "--bootstrap-server",
            &bootstrap,
            "--create",
            "--topic",
            topic,
            "--partitions",
            &partitions,
            "--replication-factor",
            "1",
        ])
        .map(drop)
    }

    /// Adds partitions to `topic`, up to `partitions` in all.
    pub fn add_partitions(&self, topic: &str, partitions: u32) -> Result<(), Error> {
        let bootstrap = self.bootstrap();
        let partitions = partitions.to_string();
        self.tool(&[
            "org.apache.kafka.tools.TopicCommand",
            "--bootstrap-server",
            &bootstrap,
            "--alter",
            "--topic",
            topic,
            "--partitions",
            &partitions,
        ])
        .map(drop)
    }

    /// SIGTERM (controlled shutdown), then SIGKILL if it is still running after `grace`.
    pub fn stop_within(&mut self, grace: Duration) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pgid = Pid::from_raw(child.id() as i32);
        let _ = killpg(pgid, Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if matches!(child.try_wait(), Ok(Some(_))) {
                let _ = killpg(pgid, Signal::SIGKILL);
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = killpg(pgid, Signal::SIGKILL);
        let _ = child.wait();
    }

    /// [`KafkaBroker::stop_within`] 20 s.
    pub fn stop(&mut self) {
        self.stop_within(Duration::from_secs(20));
    }

    /// SIGKILL: no shutdown at all.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
            let _ = child.wait();
        }
    }

    /// Stops the broker (if it runs) and starts it again on the same directory and ports.
    pub fn restart(&mut self) -> Result<(), Error> {
        self.stop();
        // The ports were ours; wait until the old process released them.
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpListener::bind((self.host, self.port)).is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        self.spawn()
    }

    /// Leaves the broker running after this value is dropped; returns its process id.
    pub fn detach(mut self) -> Option<u32> {
        self.detached = true;
        self.pid()
    }
}

impl Drop for KafkaBroker {
    fn drop(&mut self) {
        if !self.detached {
            self.kill();
        }
    }
}

/// A random KRaft cluster id: 16 bytes in URL-safe base64 without padding.
fn cluster_id() -> String {
    let mut bytes = [0u8; 16];
    if fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .is_err()
    {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        bytes = (t ^ u128::from(std::process::id())).to_le_bytes();
    }
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 6 {
            bits -= 6;
            out.push(ALPHABET[((acc >> bits) & 63) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((acc << (6 - bits)) & 63) as usize] as char);
    }
    // A leading '-' would read as an option to StorageTool.
    if out.starts_with(['-', '_']) {
        out.replace_range(..1, "A");
    }
    out
}

/// Writes `text` to `path` atomically enough for a state file (`kafka-testenv up`).
pub fn write_file(path: &Path, text: &str) -> Result<(), Error> {
    let tmp = path.with_extension("tmp");
    let mut f = fs::File::create(&tmp).map_err(io(format!("creating {}", tmp.display())))?;
    f.write_all(text.as_bytes()).map_err(io("writing"))?;
    fs::rename(&tmp, path).map_err(io(format!("renaming to {}", path.display())))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn cluster_ids_are_22_url_safe_characters() {
        let id = cluster_id();
        assert_eq!(id.len(), 22, "{id}");
        assert!(id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_ne!(id, cluster_id());
        for _ in 0..200 {
            assert!(!cluster_id().starts_with(['-', '_']));
        }
    }
}
