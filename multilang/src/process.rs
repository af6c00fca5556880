//! One child process: spawned in its own process group, with a writer thread (a
//! bounded, prioritised queue to its stdin, plus heartbeats), a reader thread (its
//! stdout framed and parsed into a channel) and a thread logging its stderr.

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use parking_lot::{Condvar, Mutex};
use serde_json::{json, Value as Json};
use squall_engine::Waker;
use tracing::{debug, info, warn};

use crate::codec::{frame, parse_child_message, ChildMsg, Framer, ProtocolError};

/// Longest stderr line logged as is; longer ones are cut.
const MAX_STDERR_LINE: usize = 16 * 1024;
/// Last stderr lines kept to explain a failed start.
const STDERR_TAIL: usize = 5;

/// What the reader thread reports.
#[derive(Debug)]
pub(crate) enum Event {
    /// A parsed message.
    Msg(ChildMsg),
    /// The child broke the protocol; the reader stopped.
    Protocol(ProtocolError),
    /// The child closed its stdout (it exited, most likely).
    Eof,
    /// Reading failed.
    ReadError(String),
}

/// How to start a child.
pub(crate) struct Launch<'a> {
    pub program: PathBuf,
    pub args: &'a [String],
    pub env: &'a BTreeMap<String, String>,
    pub cwd: PathBuf,
    pub component: &'a str,
    pub task: u32,
    /// Bolts get heartbeat tuples this often; spouts none.
    pub heartbeat: Option<Duration>,
    pub max_message_bytes: usize,
    pub waker: Waker,
}

#[derive(Default)]
struct Outgoing {
    /// Task-id replies and commands: written before any queued tuple.
    priority: VecDeque<String>,
    tuples: VecDeque<String>,
    closed: bool,
    broken: Option<String>,
}

struct WriterShared {
    q: Mutex<Outgoing>,
    cv: Condvar,
}

/// A running child.
pub(crate) struct ChildProcess {
    child: Child,
    /// OS pid, also the process group id.
    pub os_pid: u32,
    /// The pid the child reported in the handshake.
    pub reported_pid: Option<u32>,
    pid_dir: PathBuf,
    writer: Arc<WriterShared>,
    pub events: Receiver<Event>,
    last_seen_ns: Arc<AtomicU64>,
    epoch: Instant,
    threads: Vec<JoinHandle<()>>,
    killed: bool,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
}

impl ChildProcess {
    /// Starts the child. Its pid directory is `pid_dir`, created here.
    pub fn spawn(l: Launch<'_>, pid_dir: PathBuf) -> Result<ChildProcess, String> {
        std::fs::create_dir_all(&pid_dir)
            .map_err(|e| format!("creating pid directory {}: {e}", pid_dir.display()))?;
        let mut cmd = Command::new(&l.program);
        cmd.args(l.args)
            .envs(l.env)
            .current_dir(&l.cwd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // Its own process group, so that everything it starts is killed with it.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = cmd.spawn().map_err(|e| {
            format!(
                "starting {} {:?} in {}: {e}",
                l.program.display(),
                l.args,
                l.cwd.display()
            )
        })?;
        let os_pid = child.id();
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            kill_group(os_pid);
            let _ = child.wait();
            return Err("child started without pipes".to_owned());
        };
        let epoch = Instant::now();
        let last_seen_ns = Arc::new(AtomicU64::new(0));
        let writer = Arc::new(WriterShared {
            q: Mutex::new(Outgoing::default()),
            cv: Condvar::new(),
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
        let mut threads = Vec::new();
        let name = |what: &str| format!("{}-{}-{what}", l.component, l.task);
        let spawn_thread = |n: String, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(n)
                .spawn(f)
                .map_err(|e| format!("starting a thread for the child: {e}"))
        };
        let started = (|| -> Result<(), String> {
            let w = Arc::clone(&writer);
            let hb = l.heartbeat;
            threads.push(spawn_thread(
                name("writer"),
                Box::new(move || write_loop(stdin, &w, hb)),
            )?);
            let seen = Arc::clone(&last_seen_ns);
            let waker = l.waker.clone();
            let max = l.max_message_bytes;
            threads.push(spawn_thread(
                name("reader"),
                Box::new(move || read_loop(stdout, max, &tx, &seen, epoch, &waker)),
            )?);
            let component = l.component.to_owned();
            let task = l.task;
            let tail = Arc::clone(&stderr_tail);
            threads.push(spawn_thread(
                name("stderr"),
                Box::new(move || stderr_loop(stderr, &component, task, os_pid, &tail)),
            )?);
            Ok(())
        })();
        let mut me = ChildProcess {
            child,
            os_pid,
            reported_pid: None,
            pid_dir,
            writer,
            events: rx,
            last_seen_ns,
            epoch,
            threads,
            killed: false,
            stderr_tail,
        };
        started.inspect_err(|_| me.kill())?;
        Ok(me)
    }

    /// Sends the handshake and waits for the pid reply. Log messages before it are
    /// passed to `on_log`.
    pub fn handshake(
        &mut self,
        msg: &Json,
        timeout: Duration,
        mut on_log: impl FnMut(ChildMsg),
    ) -> Result<u32, String> {
        self.handshake_inner(msg, timeout, &mut on_log).map_err(|e| {
            // The reason is usually on stderr (a missing module, a bad path): show it.
            std::thread::sleep(Duration::from_millis(50));
            let tail: Vec<String> = self.stderr_tail.lock().iter().cloned().collect();
            if tail.is_empty() {
                e
            } else {
                format!("{e}; its stderr ends with: {}", tail.join(" | "))
            }
        })
    }

    fn handshake_inner(
        &mut self,
        msg: &Json,
        timeout: Duration,
        on_log: &mut impl FnMut(ChildMsg),
    ) -> Result<u32, String> {
        self.send_priority(frame(msg));
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(Event::Msg(ChildMsg::Pid(pid))) => {
                    self.reported_pid = Some(pid);
                    return Ok(pid);
                }
                Ok(Event::Msg(m @ ChildMsg::Log { .. })) => on_log(m),
                Ok(Event::Msg(other)) => return Err(format!("expected the pid reply, got {other:?}")),
                Ok(Event::Protocol(e)) => return Err(format!("during the handshake: {e}")),
                Ok(Event::Eof) | Err(RecvTimeoutError::Disconnected) => {
                    return Err(format!("exited during the handshake ({})", self.exit_status()))
                }
                Ok(Event::ReadError(e)) => return Err(format!("reading the handshake reply: {e}")),
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!("no pid reply within {timeout:?}"));
                }
            }
        }
    }

    /// Queues a message ahead of every queued tuple.
    pub fn send_priority(&self, framed: String) {
        let mut q = self.writer.q.lock();
        q.priority.push_back(framed);
        self.writer.cv.notify_one();
    }

    /// Queues a tuple message.
    pub fn send_tuple(&self, framed: String) {
        let mut q = self.writer.q.lock();
        q.tuples.push_back(framed);
        self.writer.cv.notify_one();
    }

    /// Tuples queued and not yet written.
    pub fn queued_tuples(&self) -> usize {
        self.writer.q.lock().tuples.len()
    }

    /// Why writing to the child failed, if it did.
    pub fn write_error(&self) -> Option<String> {
        self.writer.q.lock().broken.clone()
    }

    /// Time since the child's last message (or since it started).
    pub fn silence(&self) -> Duration {
        let seen = Duration::from_nanos(self.last_seen_ns.load(Ordering::Acquire));
        self.epoch.elapsed().saturating_sub(seen)
    }

    /// A description of how the child ended, if it did.
    pub fn exit_status(&mut self) -> String {
        // The reader sees EOF a moment before the process is reapable.
        for _ in 0..20 {
            match self.child.try_wait() {
                Ok(Some(s)) => return s.to_string(),
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => return format!("status unknown: {e}"),
            }
        }
        "still running".to_owned()
    }

    /// Closes the child's stdin, gives it `grace` to exit, then kills its group.
    pub fn shutdown(&mut self, grace: Duration) {
        self.close_writer();
        let deadline = Instant::now() + grace;
        // Wait without reaping: while the child is an unreaped zombie its pid, and so the
        // group id, cannot be reused, so the group kill below cannot hit a stranger.
        while Instant::now() < deadline && !exited_unreaped(self.os_pid) {
            std::thread::sleep(Duration::from_millis(5));
        }
        self.kill();
    }

    fn close_writer(&self) {
        let mut q = self.writer.q.lock();
        q.closed = true;
        self.writer.cv.notify_all();
    }

    /// Kills the child's whole process group and reaps the child. Idempotent.
    pub fn kill(&mut self) {
        if std::mem::replace(&mut self.killed, true) {
            return;
        }
        self.close_writer();
        kill_group(self.os_pid);
        // SIGKILL cannot be caught, so the wait is short; bounded all the same.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() >= deadline => {
                    warn!(pid = self.os_pid, "child did not exit after SIGKILL");
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(2)),
            }
        }
        for pid in [Some(self.os_pid), self.reported_pid].into_iter().flatten() {
            let _ = std::fs::remove_file(self.pid_dir.join(pid.to_string()));
        }
        // The threads end on EOF or a broken pipe now that the group is gone; a
        // grandchild that escaped the group could hold a pipe open, so don't join.
        self.threads.clear();
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether `pid` has exited and waits to be reaped (Linux `/proc`; false elsewhere).
fn exited_unreaped(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // The state letter follows the command name, which is in parentheses.
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
    })
}

fn kill_group(pgid: u32) {
    let Ok(raw) = i32::try_from(pgid) else {
        return;
    };
    match killpg(Pid::from_raw(raw), Signal::SIGKILL) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
        Err(e) => warn!(pgid, error = %e, "killing the child's process group failed"),
    }
}

enum Next {
    Write(String),
    Idle(Option<Instant>),
    Closed,
}

fn write_loop(stdin: ChildStdin, shared: &WriterShared, heartbeat: Option<Duration>) {
    let mut w = BufWriter::with_capacity(64 * 1024, stdin);
    let mut next_hb = heartbeat.map(|h| Instant::now() + h);
    let mut hb_seq = 0u64;
    loop {
        let next = {
            let mut q = shared.q.lock();
            if q.closed {
                Next::Closed
            } else if let Some(m) = q.priority.pop_front() {
                Next::Write(m)
            } else if let (Some(at), Some(h)) = (next_hb, heartbeat) {
                if Instant::now() >= at {
                    next_hb = Some(Instant::now() + h);
                    hb_seq += 1;
                    Next::Write(frame(&json!({
                        "id": format!("hb{hb_seq}"),
                        "comp": null,
                        "stream": "__heartbeat",
                        "task": -1,
                        "tuple": [],
                    })))
                } else {
                    q.tuples.pop_front().map_or(Next::Idle(next_hb), Next::Write)
                }
            } else {
                q.tuples.pop_front().map_or(Next::Idle(next_hb), Next::Write)
            }
        };
        let result = match next {
            Next::Closed => {
                let _ = w.flush();
                return;
            }
            Next::Write(m) => w.write_all(m.as_bytes()),
            Next::Idle(until) => {
                // Flush before waiting, so nothing sits in the buffer while idle.
                if let Err(e) = w.flush() {
                    Err(e)
                } else {
                    let mut q = shared.q.lock();
                    if q.priority.is_empty() && q.tuples.is_empty() && !q.closed {
                        let wait = until
                            .map(|u| u.saturating_duration_since(Instant::now()))
                            .unwrap_or(Duration::from_secs(1));
                        shared.cv.wait_for(&mut q, wait);
                    }
                    Ok(())
                }
            }
        };
        if let Err(e) = result {
            let mut q = shared.q.lock();
            q.broken = Some(e.to_string());
            debug!(error = %e, "writing to the child failed");
            return;
        }
    }
}

fn read_loop(
    stdout: impl Read,
    max: usize,
    tx: &Sender<Event>,
    last_seen_ns: &AtomicU64,
    epoch: Instant,
    waker: &Waker,
) {
    let mut r = BufReader::with_capacity(64 * 1024, stdout);
    let mut framer = Framer::new(max);
    let mut line = Vec::new();
    // A line can be at most the message bound plus its newline (and a '\r').
    let limit = max as u64 + 2;
    loop {
        line.clear();
        let event = match r.by_ref().take(limit).read_until(b'\n', &mut line) {
            Ok(0) => Some(Event::Eof),
            Ok(_) if !line.ends_with(b"\n") && line.len() as u64 >= limit => {
                Some(Event::Protocol(ProtocolError::TooLarge { max }))
            }
            Ok(_) => {
                if line.ends_with(b"\n") {
                    line.pop();
                }
                match std::str::from_utf8(&line) {
                    Err(_) => Some(Event::Protocol(ProtocolError::NotUtf8)),
                    Ok(text) => match framer.push_line(text) {
                        Ok(None) => None,
                        Ok(Some(msg)) => {
                            let now = epoch.elapsed().as_nanos() as u64;
                            last_seen_ns.store(now, Ordering::Release);
                            Some(match parse_child_message(&msg) {
                                Ok(m) => Event::Msg(m),
                                Err(e) => Event::Protocol(e),
                            })
                        }
                        Err(e) => Some(Event::Protocol(e)),
                    },
                }
            }
            Err(e) => Some(Event::ReadError(e.to_string())),
        };
        let Some(event) = event else { continue };
        // After a protocol error the stream cannot be trusted; the host restarts the child.
        let last = !matches!(event, Event::Msg(_));
        if tx.send(event).is_err() {
            return;
        }
        waker.wake();
        if last {
            return;
        }
    }
}

fn stderr_loop(stderr: impl Read, component: &str, task: u32, pid: u32, tail: &Mutex<VecDeque<String>>) {
    let mut r = BufReader::new(stderr);
    let mut line = Vec::new();
    loop {
        line.clear();
        match r
            .by_ref()
            .take(MAX_STDERR_LINE as u64)
            .read_until(b'\n', &mut line)
        {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let text = String::from_utf8_lossy(&line);
                let text = text.trim_end();
                if !text.is_empty() {
                    info!(component = %component, task, pid, line = %text, "child stderr");
                    let mut t = tail.lock();
                    if t.len() == STDERR_TAIL {
                        t.pop_front();
                    }
                    t.push_back(text.to_owned());
                }
            }
        }
    }
}

/// The program to run: a relative path with a slash is resolved against `base`
/// (the manifest's directory), a bare name is looked up on `PATH` by the OS.
pub(crate) fn resolve_program(command: &str, base: impl Fn(&str) -> PathBuf) -> PathBuf {
    let p = Path::new(command);
    if p.is_relative() && command.contains('/') {
        base(command)
    } else {
        p.to_path_buf()
    }
}
