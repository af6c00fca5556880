//! One child process, spawned in its own process group. The task's own thread writes its
//! stdin and reads its stdout through non-blocking pipes, many messages per system call;
//! no thread sits between the executor and the child. A bolt's child gets a watcher
//! thread that only wakes the parked executor when output arrives, at most once per
//! time the executor drained the pipe. A third thread logs the child's stderr.

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use parking_lot::Mutex;
use squall_engine::Waker;
use tracing::{info, warn};

use squall_model::Serializer;

use crate::codec::{parse_framed, ChildMsg, ProtocolError, Splitter};
use crate::msgpack;
use crate::outbuf::OutBuf;

/// Longest stderr line logged as is; longer ones are cut.
const MAX_STDERR_LINE: usize = 16 * 1024;
/// Last stderr lines kept to explain a failed start.
const STDERR_TAIL: usize = 5;
/// Bytes read per system call (a pipe holds 64 KiB).
const READ_CHUNK: usize = 64 * 1024;
/// How often the watcher looks whether its child is gone.
const WATCH_RECHECK: Duration = Duration::from_millis(250);

/// What reading the child produced.
#[derive(Debug)]
pub(crate) enum Event {
    /// A parsed message.
    Msg(ChildMsg),
    /// The child broke the protocol; nothing after this is read.
    Protocol(ProtocolError),
    /// The child closed its stdout (it exited, most likely).
    Eof,
    /// Reading failed.
    ReadError(String),
}

/// How to start a child.
pub(crate) struct Launch<'a> {
    pub program: PathBuf,
    /// The child's `PATH` (the component's env and the venv already applied).
    pub path: std::ffi::OsString,
    pub args: &'a [String],
    pub env: &'a BTreeMap<String, String>,
    pub cwd: PathBuf,
    pub component: &'a str,
    pub task: u32,
    pub max_message_bytes: usize,
    /// Deepest nesting of a msgpack message.
    pub max_message_depth: usize,
    /// How the child's messages are framed and encoded.
    pub serializer: Serializer,
    /// Wakes the executor when output arrives (bolts); spouts read synchronously.
    pub waker: Option<Waker>,
}

/// Finds where each child message ends in the bytes read.
enum Framing {
    /// JSON text up to a line `end`.
    Json(Splitter),
    /// One msgpack object after another.
    Msgpack(msgpack::Splitter),
}

/// Shared with the watcher thread.
struct Watch {
    armed: AtomicBool,
    closed: AtomicBool,
}

/// A running child.
pub(crate) struct ChildProcess {
    child: Child,
    /// OS pid, also the process group id.
    pub os_pid: u32,
    /// The pid the child reported in the handshake.
    pub reported_pid: Option<u32>,
    pid_dir: PathBuf,
    /// `None` once closed (EOF for the child).
    stdin: Option<File>,
    stdout: Arc<File>,
    out: OutBuf,
    write_error: Option<String>,
    /// Child output read and not yet parsed: `inbuf[in_start..in_end]`.
    inbuf: Vec<u8>,
    in_start: usize,
    in_end: usize,
    framing: Framing,
    max_message_bytes: usize,
    max_message_depth: usize,
    /// The next message's length and the bytes it takes up, once framed and until parsed.
    ready: Option<(usize, usize)>,
    /// Set after EOF, a read error or a protocol error: nothing more is read.
    finished: bool,
    /// Why reading finished, delivered after the messages read before it.
    terminal: Option<Event>,
    /// The last read emptied the pipe: the next look for input ends the drain rather than
    /// making a read that would only say so.
    drained: bool,
    /// Since when the child owes a reply: the first write after its last message.
    owing_since: Option<Instant>,
    watch: Option<(Arc<Watch>, Thread)>,
    threads: Vec<JoinHandle<()>>,
    killed: bool,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
}

fn non_blocking(fd: &OwnedFd) -> Result<(), String> {
    let flags = fcntl(fd, FcntlArg::F_GETFL).map_err(|e| format!("reading pipe flags: {e}"))?;
    let flags = OFlag::from_bits_retain(flags) | OFlag::O_NONBLOCK;
    fcntl(fd, FcntlArg::F_SETFL(flags)).map_err(|e| format!("making a pipe non-blocking: {e}"))?;
    Ok(())
}

fn poll_timeout(d: Duration) -> PollTimeout {
    // Rounded up, so a short wait does not turn into a busy loop.
    let ms = d.as_micros().div_ceil(1000).min(u128::from(u16::MAX));
    PollTimeout::from(ms as u16)
}

impl ChildProcess {
    /// Starts the child. Its pid directory is `pid_dir`, created here.
    pub fn spawn(l: Launch<'_>, pid_dir: PathBuf) -> Result<ChildProcess, String> {
        std::fs::create_dir_all(&pid_dir)
            .map_err(|e| format!("creating pid directory {}: {e}", pid_dir.display()))?;
        let mut cmd = Command::new(&l.program);
        cmd.args(l.args)
            .envs(l.env)
            .env("PATH", &l.path)
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
        let pipes = match (child.stdin.take(), child.stdout.take(), child.stderr.take()) {
            (Some(i), Some(o), Some(e)) => Ok((OwnedFd::from(i), OwnedFd::from(o), e)),
            _ => Err("child started without pipes".to_owned()),
        };
        let (stdin, stdout, stderr) = match pipes.and_then(|(i, o, e)| {
            non_blocking(&i)?;
            non_blocking(&o)?;
            Ok((i, o, e))
        }) {
            Ok(p) => p,
            Err(e) => {
                kill_group(os_pid);
                let _ = child.wait();
                return Err(e);
            }
        };
        let stdout = Arc::new(File::from(stdout));
        let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
        let mut me = ChildProcess {
            child,
            os_pid,
            reported_pid: None,
            pid_dir,
            stdin: Some(File::from(stdin)),
            stdout: Arc::clone(&stdout),
            out: OutBuf::default(),
            write_error: None,
            inbuf: vec![0; READ_CHUNK],
            in_start: 0,
            in_end: 0,
            framing: match l.serializer {
                Serializer::Json => Framing::Json(Splitter::default()),
                Serializer::Msgpack => Framing::Msgpack(msgpack::Splitter::default()),
            },
            max_message_bytes: l.max_message_bytes,
            max_message_depth: l.max_message_depth,
            ready: None,
            finished: false,
            terminal: None,
            drained: false,
            owing_since: None,
            watch: None,
            threads: Vec::new(),
            killed: false,
            stderr_tail: Arc::clone(&stderr_tail),
        };
        let name = |what: &str| format!("{}-{}-{what}", l.component, l.task);
        let started = (|| -> Result<(), String> {
            let component = l.component.to_owned();
            let task = l.task;
            let h = std::thread::Builder::new()
                .name(name("stderr"))
                .spawn(move || stderr_loop(stderr, &component, task, os_pid, &stderr_tail))
                .map_err(|e| format!("starting a thread for the child: {e}"))?;
            me.threads.push(h);
            if let Some(waker) = l.waker {
                let w = Arc::new(Watch {
                    armed: AtomicBool::new(true),
                    closed: AtomicBool::new(false),
                });
                let shared = Arc::clone(&w);
                let h = std::thread::Builder::new()
                    .name(name("watch"))
                    .spawn(move || watch_loop(&stdout, &shared, &waker))
                    .map_err(|e| format!("starting a thread for the child: {e}"))?;
                me.watch = Some((w, h.thread().clone()));
                me.threads.push(h);
            }
            Ok(())
        })();
        started.inspect_err(|_| me.kill())?;
        Ok(me)
    }

    /// Sends the handshake and waits for the pid reply. Log messages before it are
    /// passed to `on_log`.
    pub fn handshake(
        &mut self,
        framed: &[u8],
        timeout: Duration,
        mut on_log: impl FnMut(ChildMsg),
    ) -> Result<u32, String> {
        self.handshake_inner(framed, timeout, &mut on_log).map_err(|e| {
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
        framed: &[u8],
        timeout: Duration,
        on_log: &mut impl FnMut(ChildMsg),
    ) -> Result<u32, String> {
        self.send_priority(|o| o.extend_from_slice(framed));
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.wait_event(left) {
                Some(Event::Msg(ChildMsg::Pid(pid))) => {
                    self.reported_pid = Some(pid);
                    return Ok(pid);
                }
                Some(Event::Msg(m @ ChildMsg::Log { .. })) => on_log(m),
                Some(Event::Msg(other)) => return Err(format!("expected the pid reply, got {other:?}")),
                Some(Event::Protocol(e)) => return Err(format!("during the handshake: {e}")),
                Some(Event::Eof) => {
                    return Err(format!("exited during the handshake ({})", self.exit_status()))
                }
                Some(Event::ReadError(e)) => return Err(format!("reading the handshake reply: {e}")),
                None => {
                    if let Some(e) = self.write_error() {
                        return Err(format!("writing the handshake: {e}"));
                    }
                    return Err(format!("no pid reply within {timeout:?}"));
                }
            }
        }
    }

    /// Queues a framed message ahead of every queued tuple not yet started.
    pub fn send_priority(&mut self, encode: impl FnOnce(&mut Vec<u8>)) {
        self.out.push_priority(encode);
    }

    /// Queues a framed tuple message.
    pub fn send_tuple(&mut self, encode: impl FnOnce(&mut Vec<u8>)) {
        self.out.push_tuple(encode);
    }

    /// Tuples queued and not completely written.
    pub fn queued_tuples(&self) -> usize {
        self.out.tuples()
    }

    /// Writes what the pipe takes now, without blocking.
    pub fn flush(&mut self) {
        if self.out.is_empty() || self.write_error.is_some() {
            return;
        }
        let Some(stdin) = self.stdin.as_ref() else { return };
        match self.out.write_to(stdin) {
            Ok(0) => {}
            Ok(_) => {
                self.owing_since.get_or_insert_with(Instant::now);
            }
            Err(e) => self.write_error = Some(e.to_string()),
        }
    }

    /// Why writing to the child failed, if it did.
    pub fn write_error(&self) -> Option<&str> {
        self.write_error.as_deref()
    }

    /// How long the child has owed a reply: time since the first write after its last
    /// message. A child that was sent nothing owes nothing, so time the executor spent
    /// elsewhere never counts against it.
    pub fn owing(&self) -> Option<Duration> {
        self.owing_since.map(|t| t.elapsed())
    }

    /// Whether an event is waiting to be taken (a complete message is buffered).
    pub fn has_events(&mut self) -> bool {
        match self.frame() {
            Ok(Some(_)) => true,
            Ok(None) => self.terminal.is_some(),
            Err(e) => {
                self.break_off(e);
                true
            }
        }
    }

    /// The next event: a message already buffered, else whatever the pipe holds now.
    /// Messages are decoded one at a time as they are taken, so none is queued or copied.
    pub fn next_event(&mut self) -> Option<Event> {
        loop {
            if let Some(m) = self.next_message() {
                return Some(m);
            }
            if self.finished {
                return self.terminal.take();
            }
            if std::mem::take(&mut self.drained) || !self.read_some() {
                return None;
            }
        }
    }

    /// The next event, waiting up to `timeout` for it while writing queued messages.
    pub fn wait_event(&mut self, timeout: Duration) -> Option<Event> {
        let deadline = Instant::now() + timeout;
        loop {
            self.flush();
            if let Some(e) = self.next_event() {
                return Some(e);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            let want_write = !self.out.is_empty() && self.write_error.is_none();
            self.wait_io(true, want_write, left);
        }
    }

    /// Waits up to `timeout` for room in the pipe to the child, then writes.
    pub fn wait_room(&mut self, timeout: Duration) {
        self.flush();
        if !self.out.is_empty() && self.write_error.is_none() {
            self.wait_io(false, true, timeout);
            self.flush();
        }
    }

    fn wait_io(&self, read: bool, write: bool, timeout: Duration) {
        let mut fds = Vec::with_capacity(2);
        if read && !self.finished {
            fds.push(PollFd::new(self.stdout.as_fd(), PollFlags::POLLIN));
        }
        if let (true, Some(stdin)) = (write, self.stdin.as_ref()) {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLOUT));
        }
        if fds.is_empty() {
            std::thread::sleep(timeout);
            return;
        }
        // An error (EINTR) just ends the wait early; the caller loops.
        let _ = poll(&mut fds, poll_timeout(timeout));
    }

    /// Lets the watcher wake the executor at the next output. Call after draining.
    pub fn arm_watcher(&self) {
        if let Some((w, thread)) = &self.watch {
            if !w.armed.swap(true, Ordering::AcqRel) {
                thread.unpark();
            }
        }
    }

    /// One read of what the pipe holds; false when nothing came.
    fn read_some(&mut self) -> bool {
        if self.inbuf.len() - self.in_end < 4096 {
            self.make_room();
        }
        let space = self.inbuf.len() - self.in_end;
        match (&*self.stdout).read(&mut self.inbuf[self.in_end..]) {
            Ok(0) => {
                self.finished = true;
                self.terminal = Some(Event::Eof);
                true
            }
            Ok(n) => {
                self.in_end += n;
                self.drained = n < space;
                true
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => true,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
            Err(e) => {
                self.finished = true;
                self.terminal = Some(Event::ReadError(e.to_string()));
                true
            }
        }
    }

    /// Moves the unparsed tail to the front, growing the buffer for a message that
    /// does not fit (up to the bound, which `frame` enforces).
    fn make_room(&mut self) {
        if self.in_start > 0 {
            self.inbuf.copy_within(self.in_start..self.in_end, 0);
            self.in_end -= self.in_start;
            self.in_start = 0;
        }
        if self.in_end == self.inbuf.len() {
            let grown = self.inbuf.len() * 2;
            self.inbuf.resize(grown, 0);
        }
    }

    /// Where the next buffered message ends, remembered until it is taken.
    fn frame(&mut self) -> Result<Option<(usize, usize)>, ProtocolError> {
        if self.ready.is_some() {
            return Ok(self.ready);
        }
        let (max, depth) = (self.max_message_bytes, self.max_message_depth);
        let buf = &self.inbuf[self.in_start..self.in_end];
        let found = match &mut self.framing {
            Framing::Json(splitter) => match splitter.next(buf) {
                Some(found) => Ok(Some(found)),
                // The text so far plus a line `end` could not fit in the bound.
                None if buf.len() > max + 6 => Err(ProtocolError::TooLarge { max }),
                None => Ok(None),
            },
            Framing::Msgpack(splitter) => splitter.next(buf, max, depth).map(|n| n.map(|n| (n, n))),
        };
        if let Ok(Some(f)) = found {
            self.ready = Some(f);
        }
        found
    }

    /// Decodes the next buffered message, if one is complete.
    fn next_message(&mut self) -> Option<Event> {
        if let Some((m, used)) = self.next_common_msgpack() {
            self.consume(used);
            self.owing_since = None;
            return Some(Event::Msg(m));
        }
        let (len, used) = match self.frame() {
            Ok(Some(found)) => found,
            Ok(None) => return None,
            Err(e) => {
                self.break_off(e);
                return None;
            }
        };
        self.ready = None;
        let text = &self.inbuf[self.in_start..self.in_start + len];
        let parsed = match self.framing {
            Framing::Json(_) => parse_framed(text, self.max_message_bytes),
            Framing::Msgpack(_) => msgpack::parse_message(text, self.max_message_depth),
        };
        self.consume(used);
        match parsed {
            Ok(m) => {
                self.owing_since = None;
                Some(Event::Msg(m))
            }
            Err(e) => {
                self.break_off(e);
                None
            }
        }
    }

    /// A common msgpack message decoded in one pass (see [`crate::mpfast`]). Tried only
    /// where a message starts, so a large one arriving in pieces is scanned once, by the
    /// splitter.
    fn next_common_msgpack(&mut self) -> Option<(ChildMsg, usize)> {
        let Framing::Msgpack(splitter) = &self.framing else {
            return None;
        };
        if self.ready.is_some() || !splitter.is_fresh() {
            return None;
        }
        let buf = &self.inbuf[self.in_start..self.in_end];
        crate::mpfast::parse_prefix(buf, self.max_message_bytes, self.max_message_depth)
    }

    /// Drops the first `used` buffered bytes (a message taken).
    fn consume(&mut self, used: usize) {
        self.in_start += used;
        if self.in_start == self.in_end {
            self.in_start = 0;
            self.in_end = 0;
        }
    }

    /// After a protocol error the stream cannot be trusted: nothing more is read or
    /// parsed, and the error is the last event (the host restarts the child).
    fn break_off(&mut self, e: ProtocolError) {
        self.finished = true;
        self.terminal = Some(Event::Protocol(e));
        self.in_start = 0;
        self.in_end = 0;
        self.ready = None;
    }

    /// A description of how the child ended, if it did.
    pub fn exit_status(&mut self) -> String {
        // EOF on stdout comes a moment before the process is reapable.
        for _ in 0..20 {
            match self.child.try_wait() {
                Ok(Some(s)) => return s.to_string(),
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => return format!("status unknown: {e}"),
            }
        }
        "still running".to_owned()
    }

    /// Writes what is queued (within `grace`), closes the child's stdin, gives it the
    /// rest of `grace` to exit, then kills its group.
    pub fn shutdown(&mut self, grace: Duration) {
        let deadline = Instant::now() + grace;
        while !self.out.is_empty() && self.write_error.is_none() && Instant::now() < deadline {
            self.wait_room(deadline.saturating_duration_since(Instant::now()));
        }
        self.stdin = None;
        // Wait without reaping: while the child is an unreaped zombie its pid, and so the
        // group id, cannot be reused, so the group kill below cannot hit a stranger.
        while Instant::now() < deadline && !exited_unreaped(self.os_pid) {
            std::thread::sleep(Duration::from_millis(5));
        }
        self.kill();
    }

    /// Kills the child's whole process group and reaps the child. Idempotent.
    pub fn kill(&mut self) {
        if std::mem::replace(&mut self.killed, true) {
            return;
        }
        self.stdin = None;
        if let Some((w, thread)) = &self.watch {
            w.closed.store(true, Ordering::Release);
            thread.unpark();
        }
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
        // The threads end on EOF or at their next look at `closed`; a grandchild that
        // escaped the group could hold a pipe open, so don't join.
        self.threads.clear();
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits, while armed, for the child's stdout to become readable, then wakes the
/// executor and disarms: one wake-up per drain, however many messages arrive. A stale
/// disarm (the executor re-armed meanwhile) is harmless, because every disarm is
/// followed by a wake and every `poll` of the bolt re-arms.
fn watch_loop(stdout: &File, w: &Watch, waker: &Waker) {
    while !w.closed.load(Ordering::Acquire) {
        if !w.armed.load(Ordering::Acquire) {
            std::thread::park_timeout(WATCH_RECHECK);
            continue;
        }
        let mut fds = [PollFd::new(stdout.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, poll_timeout(WATCH_RECHECK)) {
            Ok(0) | Err(Errno::EINTR) => {}
            Ok(_) => {
                w.armed.store(false, Ordering::Release);
                waker.wake();
            }
            Err(_) => {
                w.armed.store(false, Ordering::Release);
                waker.wake();
                std::thread::park_timeout(WATCH_RECHECK);
            }
        }
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
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(e) => warn!(pgid, error = %e, "killing the child's process group failed"),
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
