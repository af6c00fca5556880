//! [`ShellBolt`]: a bolt whose work is done by a child process, asynchronously.
//!
//! The executor thread does all the I/O: `execute` encodes each input into the buffer to
//! the child, `poll` (after every batch of input) writes the buffer with one system call
//! and handles everything the child sent meanwhile. A full buffer makes `execute` wait
//! for the pipe, which is the back pressure.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::time::{Duration, Instant};

use smallvec::SmallVec;

use squall_engine::{Bolt, BoltOutput, ComponentError, TaskContext, Tuple};
use squall_model::{ShellSpec, DEFAULT_STREAM};

use crate::codec::{ChildMsg, Emit};
use crate::encode;
use crate::process::Event;
use crate::shell::{Kind, Shell};

/// Counter of acks/fails for ids the bolt does not hold (a child bug, reported).
pub const UNKNOWN_IDS: &str = "unknown_ids";

/// How long `execute` waits for room in the pipe at a time while the buffer is full;
/// the child's output is handled between waits, so it never blocks on a full stdout.
const ROOM_WAIT: Duration = Duration::from_millis(1);
/// Most child messages handled per `pump`, so a chatty child cannot keep the executor
/// from its input.
const PUMP_LIMIT: usize = 4096;

/// Hashes the ids the host hands out (a counter) with one multiplication: they are not
/// chosen by anyone, so SipHash's protection is not needed, and the odd multiplier keeps
/// consecutive ids in distinct buckets.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// An input handed to the child and not yet acked or failed by it.
enum Held {
    Tuple(Tuple),
    /// Tick tuples are acked by pystorm, but the engine does not track them.
    Tick,
}

/// A bolt run by a child process speaking Storm's multilang protocol.
///
/// See the crate documentation for its guarantees.
pub struct ShellBolt {
    spec: ShellSpec,
    tick_secs: Option<u64>,
    shell: Option<Shell>,
    /// Inputs held by the child, by the id it was given (decimal on the wire).
    inputs: HashMap<u64, Held, BuildHasherDefault<IdHasher>>,
    next_id: u64,
    next_heartbeat: Option<Instant>,
    heartbeats: u64,
}

impl ShellBolt {
    /// A bolt running `spec`; `tick_secs` is passed to the child as
    /// `topology.tick.tuple.freq.secs`.
    pub fn new(spec: ShellSpec, tick_secs: Option<u64>) -> Self {
        ShellBolt {
            spec,
            tick_secs,
            shell: None,
            inputs: HashMap::default(),
            next_id: 0,
            next_heartbeat: None,
            heartbeats: 0,
        }
    }

    /// The directory the child writes its pid file to (after `prepare`).
    pub fn pid_dir(&self) -> Option<&std::path::Path> {
        self.shell.as_ref().map(|s| s.pid_dir())
    }

    /// Kills the child, fails everything it held and starts a new one.
    fn restart(&mut self, reason: &str, out: &mut BoltOutput<'_>) {
        let mut failed = 0;
        for (_, held) in self.inputs.drain() {
            if let Held::Tuple(t) = held {
                out.fail(t);
                failed += 1;
            }
        }
        if let Some(shell) = self.shell.as_mut() {
            out.report_error(shell.restart_message(reason));
            shell.kill_for_restart(reason, failed);
            shell.ensure();
        }
    }

    /// Handles one event; returns a reason to restart the child, if there is one.
    fn handle(&mut self, event: Event, out: &mut BoltOutput<'_>) -> Option<String> {
        match event {
            Event::Msg(m) => self.on_message(m, out).err(),
            Event::Protocol(e) => Some(format!("protocol error: {e}")),
            Event::ReadError(e) => Some(format!("reading from the child failed: {e}")),
            Event::Eof => {
                let status = self
                    .shell
                    .as_mut()
                    .and_then(|s| s.child.as_mut())
                    .map(|c| c.exit_status())
                    .unwrap_or_default();
                Some(format!("child exited ({status})"))
            }
        }
    }

    /// Liveness: a failed write, or a child that owes a reply (to a tuple or a
    /// heartbeat) for longer than the subprocess timeout, is a reason to restart.
    fn health(&self) -> Option<String> {
        let shell = self.shell.as_ref()?;
        let child = shell.child.as_ref()?;
        if let Some(e) = child.write_error() {
            return Some(format!("writing to the child failed: {e}"));
        }
        let owing = child.owing()?;
        (owing > shell.settings.timeout).then(|| {
            format!(
                "subprocess heartbeat timeout: no message for {:.1}s (limit {:?})",
                owing.as_secs_f64(),
                shell.settings.timeout
            )
        })
    }

    /// Queues a heartbeat when one is due.
    fn heartbeat(&mut self) {
        let ser = self.spec.serializer;
        let Some(shell) = self.shell.as_mut() else { return };
        let period = shell.settings.heartbeat;
        let Some(child) = shell.child.as_mut() else { return };
        let now = Instant::now();
        match self.next_heartbeat {
            Some(at) if now < at => {}
            None => self.next_heartbeat = Some(now + period),
            Some(_) => {
                self.heartbeats += 1;
                let seq = self.heartbeats;
                child.send_priority(|o| encode::heartbeat(ser, o, seq));
                self.next_heartbeat = Some(now + period);
            }
        }
    }

    /// Handles what the child sent (bounded), sends a due heartbeat, writes what the pipe
    /// takes and checks the child's health.
    fn pump(&mut self, out: &mut BoltOutput<'_>) {
        for _ in 0..PUMP_LIMIT {
            let Some(ev) = self
                .shell
                .as_mut()
                .and_then(|s| s.child.as_mut())
                .and_then(|c| c.next_event())
            else {
                break;
            };
            if let Some(reason) = self.handle(ev, out) {
                self.restart(&reason, out);
                return;
            }
        }
        self.heartbeat();
        if let Some(c) = self.shell.as_mut().and_then(|s| s.child.as_mut()) {
            c.flush();
        }
        if let Some(reason) = self.health() {
            self.restart(&reason, out);
        }
    }

    fn on_message(&mut self, m: ChildMsg, out: &mut BoltOutput<'_>) -> Result<(), String> {
        let Some(shell) = self.shell.as_ref() else {
            return Ok(());
        };
        match m {
            ChildMsg::Emit(e) => self.on_emit(e, out),
            ChildMsg::Ack(id) => {
                match id.number().and_then(|n| self.inputs.remove(&n)) {
                    Some(Held::Tuple(t)) => out.ack(t),
                    Some(Held::Tick) => {}
                    None => {
                        shell.ctx.counters.add(UNKNOWN_IDS, 1);
                        out.report_error(format!(
                            "child acked unknown or already acked/failed id {:?}",
                            id.to_string()
                        ));
                    }
                }
                Ok(())
            }
            ChildMsg::Fail(id) => {
                match id.number().and_then(|n| self.inputs.remove(&n)) {
                    Some(Held::Tuple(t)) => out.fail(t),
                    Some(Held::Tick) => {}
                    None => {
                        shell.ctx.counters.add(UNKNOWN_IDS, 1);
                        out.report_error(format!(
                            "child failed unknown or already acked/failed id {:?}",
                            id.to_string()
                        ));
                    }
                }
                Ok(())
            }
            m @ ChildMsg::Log { .. } => {
                shell.log_child(&m, shell.child.as_ref().map(|c| c.os_pid));
                Ok(())
            }
            ChildMsg::Error(msg) => {
                out.report_error(format!("Shell Process Exception: {msg}"));
                Ok(())
            }
            ChildMsg::Metrics { name, params } => {
                shell.metric(&name, &params);
                Ok(())
            }
            // A heartbeat reply; reading it already showed that the child is alive.
            ChildMsg::Sync => Ok(()),
            ChildMsg::Pid(_) => Err("unexpected pid message after the handshake".to_owned()),
        }
    }

    fn on_emit(&mut self, e: Emit, out: &mut BoltOutput<'_>) -> Result<(), String> {
        let stream = e.stream.as_deref().unwrap_or(DEFAULT_STREAM);
        let mut anchors: SmallVec<[&Tuple; 4]> = SmallVec::new();
        for a in &e.anchors {
            match a.number().and_then(|id| self.inputs.get(&id)) {
                Some(Held::Tuple(t)) => anchors.push(t),
                Some(Held::Tick) => {}
                // Storm's bolt dies here; restarting fails and so replays everything held.
                None => {
                    return Err(format!(
                        "emit anchored to unknown or already acked/failed id {:?}",
                        a.to_string()
                    ))
                }
            }
        }
        let targets = match e.task {
            Some(task) => out.emit_direct(task, stream, &anchors, e.tuple),
            None => out.emit_on(stream, &anchors, e.tuple),
        }
        .map_err(|err| format!("emit rejected: {err}"))?;
        if e.need_task_ids {
            let ser = self.spec.serializer;
            if let Some(child) = self.shell.as_mut().and_then(|s| s.child.as_mut()) {
                // Ahead of queued tuples: the child is blocked waiting for it.
                child.send_priority(|o| encode::task_ids(ser, o, targets));
            }
        }
        Ok(())
    }
}

impl Bolt for ShellBolt {
    fn prepare(&mut self, ctx: &TaskContext) -> Result<(), ComponentError> {
        let mut shell = Shell::new(&self.spec, Kind::Bolt, self.tick_secs, ctx)?;
        // The engine's error names the component and task.
        shell
            .start()
            .map_err(|e| ComponentError(format!("shell child: {e}")))?;
        self.shell = Some(shell);
        Ok(())
    }

    fn execute(&mut self, input: Tuple, out: &mut BoltOutput<'_>) -> Result<(), ComponentError> {
        let Some(shell) = self.shell.as_mut() else {
            return Err(ComponentError::new("shell bolt used before prepare"));
        };
        if !shell.ensure() {
            // No child to give it to: fail it now so that the spout replays it later.
            if !input.is_tick() {
                out.fail(input);
            }
            return Ok(());
        }
        let max_pending = shell.settings.max_pending;
        // Back pressure: with the buffer to the child full, wait here for the pipe
        // (handling the child's output meanwhile, which is what lets it make progress)
        // rather than take more input. A child that stops reading is caught by the timeout.
        while let Some(child) = self.shell.as_mut().and_then(|s| s.child.as_mut()) {
            if child.queued_tuples() < max_pending {
                break;
            }
            child.wait_room(ROOM_WAIT);
            self.pump(out);
        }
        let Some(child) = self.shell.as_mut().and_then(|s| s.child.as_mut()) else {
            if !input.is_tick() {
                out.fail(input);
            }
            return Ok(());
        };
        self.next_id += 1;
        let id = self.next_id;
        let ser = self.spec.serializer;
        child.send_tuple(|o| {
            encode::tuple(
                ser,
                o,
                id,
                input.source_component(),
                input.source_stream(),
                i64::from(input.source_task()),
                input.values(),
            )
        });
        // A full buffer goes out at once rather than at the end of the batch.
        if child.queued_tuples() >= max_pending {
            child.flush();
        }
        let held = if input.is_tick() {
            Held::Tick
        } else {
            Held::Tuple(input)
        };
        self.inputs.insert(id, held);
        Ok(())
    }

    fn poll(&mut self, out: &mut BoltOutput<'_>) -> Result<(), ComponentError> {
        match self.shell.as_mut() {
            None => return Ok(()),
            Some(shell) => {
                if !shell.ensure() {
                    return Ok(());
                }
            }
        }
        self.pump(out);
        if let Some(shell) = self.shell.as_mut() {
            if let Some(child) = shell.child.as_mut() {
                if child.has_events() {
                    // Left over by the bound: come back without parking.
                    shell.ctx.waker.wake();
                } else {
                    child.arm_watcher();
                }
            }
        }
        Ok(())
    }

    fn cleanup(&mut self) {
        if let Some(shell) = self.shell.as_mut() {
            shell.shutdown();
        }
    }
}
