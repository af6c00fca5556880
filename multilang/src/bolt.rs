//! [`ShellBolt`]: a bolt whose work is done by a child process, asynchronously.

use std::collections::HashMap;
use std::sync::mpsc::{RecvTimeoutError, TryRecvError};
use std::time::Duration;

use serde_json::{json, Value as Json};
use squall_engine::{Bolt, BoltOutput, ComponentError, TaskContext, Tuple, Value, Values};
use squall_model::{ShellSpec, DEFAULT_STREAM};

use crate::codec::{frame, ChildMsg, Emit};
use crate::process::Event;
use crate::shell::{Kind, Shell};

/// Counter of acks/fails for ids the bolt does not hold (a child bug, reported).
pub const UNKNOWN_IDS: &str = "unknown_ids";

/// How long `execute` waits for child output at a time while the queue is full.
const PUMP_WAIT: Duration = Duration::from_millis(5);

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
    inputs: HashMap<String, Held>,
    next_id: u64,
}

impl ShellBolt {
    /// A bolt running `spec`; `tick_secs` is passed to the child as
    /// `topology.tick.tuple.freq.secs`.
    pub fn new(spec: ShellSpec, tick_secs: Option<u64>) -> Self {
        ShellBolt {
            spec,
            tick_secs,
            shell: None,
            inputs: HashMap::new(),
            next_id: 0,
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

    /// The next event of the current child, if one is ready (or within `wait`).
    fn next_event(&self, wait: Option<Duration>) -> Option<Event> {
        let child = self.shell.as_ref()?.child.as_ref()?;
        match wait {
            None => match child.events.try_recv() {
                Ok(e) => Some(e),
                Err(TryRecvError::Empty) => None,
                Err(TryRecvError::Disconnected) => Some(Event::Eof),
            },
            Some(w) => match child.events.recv_timeout(w) {
                Ok(e) => Some(e),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => Some(Event::Eof),
            },
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

    /// Liveness: a failed write or a silent child (no message, heartbeat replies
    /// included, for the subprocess timeout) is a reason to restart.
    fn health(&self) -> Option<String> {
        let shell = self.shell.as_ref()?;
        let child = shell.child.as_ref()?;
        if let Some(e) = child.write_error() {
            return Some(format!("writing to the child failed: {e}"));
        }
        let silence = child.silence();
        (silence > shell.settings.timeout).then(|| {
            format!(
                "subprocess heartbeat timeout: no message for {:.1}s (limit {:?})",
                silence.as_secs_f64(),
                shell.settings.timeout
            )
        })
    }

    /// Whether a child runs and its queue of tuples is at the bound.
    fn queue_full(&self) -> bool {
        self.shell.as_ref().is_some_and(|s| {
            s.child
                .as_ref()
                .is_some_and(|c| c.queued_tuples() >= s.settings.max_pending)
        })
    }

    /// Handles everything the child sent so far, then checks its health.
    fn pump(&mut self, out: &mut BoltOutput<'_>) {
        // Bounded, so a chatty child cannot keep the executor from its input.
        for _ in 0..4096 {
            let Some(ev) = self.next_event(None) else { break };
            if let Some(reason) = self.handle(ev, out) {
                self.restart(&reason, out);
                return;
            }
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
                match self.inputs.remove(&id) {
                    Some(Held::Tuple(t)) => out.ack(t),
                    Some(Held::Tick) => {}
                    None => {
                        shell.ctx.counters.add(UNKNOWN_IDS, 1);
                        out.report_error(format!("child acked unknown or already acked/failed id {id:?}"));
                    }
                }
                Ok(())
            }
            ChildMsg::Fail(id) => {
                match self.inputs.remove(&id) {
                    Some(Held::Tuple(t)) => out.fail(t),
                    Some(Held::Tick) => {}
                    None => {
                        shell.ctx.counters.add(UNKNOWN_IDS, 1);
                        out.report_error(format!("child failed unknown or already acked/failed id {id:?}"));
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
            // A heartbeat reply; the reader already noted that the child is alive.
            ChildMsg::Sync => Ok(()),
            ChildMsg::Pid(_) => Err("unexpected pid message after the handshake".to_owned()),
        }
    }

    fn on_emit(&self, e: Emit, out: &mut BoltOutput<'_>) -> Result<(), String> {
        let stream = e.stream.as_deref().unwrap_or(DEFAULT_STREAM);
        let values: Values = e.tuple.iter().map(Value::from_json).collect();
        let mut anchors: Vec<&Tuple> = Vec::with_capacity(e.anchors.len());
        for a in &e.anchors {
            match self.inputs.get(a) {
                Some(Held::Tuple(t)) => anchors.push(t),
                Some(Held::Tick) => {}
                // Storm's bolt dies here; restarting fails and so replays everything held.
                None => {
                    return Err(format!(
                        "emit anchored to unknown or already acked/failed id {a:?}"
                    ))
                }
            }
        }
        let targets = match e.task {
            Some(task) => out.emit_direct(task, stream, &anchors, values),
            None => out.emit_on(stream, &anchors, values),
        }
        .map_err(|err| format!("emit rejected: {err}"))?;
        if e.need_task_ids {
            let reply = frame(&json!(targets));
            if let Some(child) = self.shell.as_ref().and_then(|s| s.child.as_ref()) {
                // Ahead of queued tuples: the child is blocked waiting for it.
                child.send_priority(reply);
            }
        }
        Ok(())
    }
}

fn tuple_message(id: &str, input: &Tuple) -> Json {
    let values: Vec<Json> = input.values().iter().map(Value::to_json).collect();
    json!({
        "id": id,
        "comp": input.source_component(),
        "stream": input.source_stream(),
        "task": input.source_task(),
        "tuple": values,
    })
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
        self.pump(out);
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
        // Back pressure: with the queue to the child full, wait here (handling the
        // child's output meanwhile, which is what lets it make progress) rather than
        // take more input. A child that stops reading is caught by the timeout.
        while self.queue_full() {
            if let Some(ev) = self.next_event(Some(PUMP_WAIT)) {
                if let Some(reason) = self.handle(ev, out) {
                    self.restart(&reason, out);
                }
            }
            if let Some(reason) = self.health() {
                self.restart(&reason, out);
            }
        }
        let Some(child) = self.shell.as_ref().and_then(|s| s.child.as_ref()) else {
            if !input.is_tick() {
                out.fail(input);
            }
            return Ok(());
        };
        self.next_id += 1;
        let id = self.next_id.to_string();
        let msg = frame(&tuple_message(&id, &input));
        child.send_tuple(msg);
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
        Ok(())
    }

    fn cleanup(&mut self) {
        if let Some(shell) = self.shell.as_mut() {
            shell.shutdown();
        }
    }
}
