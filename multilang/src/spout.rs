//! [`ShellSpout`]: a spout whose tuples come from a child process, synchronously.

use std::collections::HashMap;

use serde_json::{json, Value as Json};
use squall_engine::{ComponentError, Spout, SpoutOutput, TaskContext, Value};
use squall_model::{Serializer, ShellSpec, DEFAULT_STREAM};

use crate::codec::{ChildMsg, Emit};
use crate::encode;
use crate::process::Event;
use crate::shell::{Kind, Shell};

/// `{"command": "next", "id": ""}` in msgpack, sent once per `next_tuple`.
const NEXT_MSGPACK: [u8; 18] = [
    0x82, 0xa7, b'c', b'o', b'm', b'm', b'a', b'n', b'd', 0xa4, b'n', b'e', b'x', b't', 0xa2, b'i', b'd',
    0xa0,
];

/// Counter of acks/fails dropped because the child that emitted the tuple was replaced.
pub const STALE_IDS: &str = "stale_ids";

/// A spout run by a child process speaking Storm's multilang protocol.
///
/// See the crate documentation for its guarantees.
pub struct ShellSpout {
    spec: ShellSpec,
    shell: Option<Shell>,
    /// Engine message id → (generation of the child that emitted it, the child's id).
    ids: HashMap<i64, (u64, Json)>,
    next_id: i64,
    /// Commands sent (ack, fail, activate, deactivate) whose `sync` is not read yet.
    awaiting_sync: usize,
}

impl ShellSpout {
    /// A spout running `spec`.
    pub fn new(spec: ShellSpec) -> Self {
        ShellSpout {
            spec,
            shell: None,
            ids: HashMap::new(),
            next_id: 0,
            awaiting_sync: 0,
        }
    }

    /// The directory the child writes its pid file to (after `open`).
    pub fn pid_dir(&self) -> Option<&std::path::Path> {
        self.shell.as_ref().map(|s| s.pid_dir())
    }

    /// Queues a command; its reply is read by the next `next_tuple`, which has the
    /// output that emits in the reply need.
    fn command(&mut self, command: &str, id: Json) {
        let Some(child) = self.shell.as_mut().and_then(|s| s.child.as_mut()) else {
            return;
        };
        let msg = json!({"command": command, "id": id});
        let ser = self.spec.serializer;
        child.send_priority(|o| encode::message(ser, o, &msg));
        // Written now, so the child works on it while the executor does other things.
        child.flush();
        self.awaiting_sync += 1;
    }

    /// Forwards an ack/fail to the child that emitted the tuple, if it still runs.
    fn settle(&mut self, command: &str, msg_id: &Value) {
        let Some(key) = msg_id.as_i64() else { return };
        let Some((generation, id)) = self.ids.remove(&key) else {
            return;
        };
        let Some(shell) = self.shell.as_ref() else { return };
        if shell.child.is_none() || generation != shell.generation {
            // The emitting child is gone and its successor never heard of this id.
            shell.ctx.counters.add(STALE_IDS, 1);
            return;
        }
        self.command(command, id);
    }

    fn restart(&mut self, reason: &str, out: &mut SpoutOutput<'_>) {
        self.awaiting_sync = 0;
        if let Some(shell) = self.shell.as_mut() {
            out.report_error(shell.restart_message(reason));
            shell.kill_for_restart(reason, 0);
            shell.ensure();
        }
    }

    /// Reads messages until `sync`, handling them; an error is a reason to restart.
    fn read_until_sync(&mut self, out: &mut SpoutOutput<'_>) -> Result<(), String> {
        loop {
            let Some(shell) = self.shell.as_mut() else {
                return Ok(());
            };
            let timeout = shell.settings.timeout;
            let Some(child) = shell.child.as_mut() else {
                return Ok(());
            };
            let Some(event) = child.wait_event(timeout) else {
                if let Some(e) = child.write_error() {
                    return Err(format!("writing to the child failed: {e}"));
                }
                return Err(format!(
                    "subprocess timeout: no message for {timeout:?} while waiting for sync"
                ));
            };
            let m = match event {
                Event::Msg(m) => m,
                Event::Protocol(e) => return Err(format!("protocol error: {e}")),
                Event::ReadError(e) => return Err(format!("reading from the child failed: {e}")),
                Event::Eof => return Err(format!("child exited ({})", child.exit_status())),
            };
            match m {
                ChildMsg::Sync => return Ok(()),
                ChildMsg::Emit(e) => self.on_emit(e, out)?,
                m @ ChildMsg::Log { .. } => {
                    let shell = self.shell.as_ref();
                    if let Some(s) = shell {
                        s.log_child(&m, s.child.as_ref().map(|c| c.os_pid));
                    }
                }
                ChildMsg::Error(msg) => out.report_error(format!("Shell Process Exception: {msg}")),
                ChildMsg::Metrics { name, params } => {
                    if let Some(s) = self.shell.as_ref() {
                        s.metric(&name, &params);
                    }
                }
                ChildMsg::Ack(_) | ChildMsg::Fail(_) => {
                    return Err("a spout cannot ack or fail (bolt command from a spout)".to_owned())
                }
                ChildMsg::Pid(_) => return Err("unexpected pid message after the handshake".to_owned()),
            }
        }
    }

    fn on_emit(&mut self, e: Emit, out: &mut SpoutOutput<'_>) -> Result<(), String> {
        let Some(shell) = self.shell.as_mut() else {
            return Ok(());
        };
        let stream = e.stream.as_deref().unwrap_or(DEFAULT_STREAM);
        let msg_id = e.id.map(|id| {
            self.next_id += 1;
            self.ids.insert(self.next_id, (shell.generation, id));
            self.next_id
        });
        let r = match e.task {
            Some(task) => out.emit_direct(task, stream, e.tuple, msg_id.map(Value::Int)),
            None => out.emit_on(stream, e.tuple, msg_id.map(Value::Int)),
        };
        let targets = match r {
            Ok(t) => t,
            Err(err) => {
                if let Some(k) = msg_id {
                    self.ids.remove(&k);
                }
                return Err(format!("emit rejected: {err}"));
            }
        };
        if e.need_task_ids {
            let ser = self.spec.serializer;
            if let Some(child) = shell.child.as_mut() {
                child.send_priority(|o| encode::task_ids(ser, o, targets));
            }
        }
        Ok(())
    }
}

impl Spout for ShellSpout {
    fn open(&mut self, ctx: &TaskContext) -> Result<(), ComponentError> {
        let mut shell = Shell::new(&self.spec, Kind::Spout, None, ctx)?;
        // The engine's error names the component and task.
        shell
            .start()
            .map_err(|e| ComponentError(format!("shell child: {e}")))?;
        self.shell = Some(shell);
        Ok(())
    }

    fn next_tuple(&mut self, out: &mut SpoutOutput<'_>) -> Result<(), ComponentError> {
        let Some(shell) = self.shell.as_mut() else {
            return Err(ComponentError::new("shell spout used before open"));
        };
        if !shell.ensure() {
            return Ok(());
        }
        // Replies to ack/fail/activate/deactivate first: they may emit (a reliable
        // spout re-emits on fail).
        while self.awaiting_sync > 0 {
            if let Err(reason) = self.read_until_sync(out) {
                self.restart(&reason, out);
                return Ok(());
            }
            self.awaiting_sync -= 1;
        }
        let Some(child) = self.shell.as_mut().and_then(|s| s.child.as_mut()) else {
            return Ok(());
        };
        match self.spec.serializer {
            Serializer::Json => {
                child.send_priority(|o| o.extend_from_slice(b"{\"command\":\"next\",\"id\":\"\"}\nend\n"))
            }
            Serializer::Msgpack => child.send_priority(|o| o.extend_from_slice(&NEXT_MSGPACK)),
        }
        if let Err(reason) = self.read_until_sync(out) {
            self.restart(&reason, out);
        }
        Ok(())
    }

    fn ack(&mut self, msg_id: Value) {
        self.settle("ack", &msg_id);
    }

    fn fail(&mut self, msg_id: Value) {
        self.settle("fail", &msg_id);
    }

    fn activate(&mut self) {
        self.command("activate", json!(""));
    }

    fn deactivate(&mut self) {
        self.command("deactivate", json!(""));
    }

    fn close(&mut self) {
        if let Some(shell) = self.shell.as_mut() {
            shell.shutdown();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_msgpack_next_command_is_what_the_encoder_writes() {
        let mut out = Vec::new();
        encode::message(
            Serializer::Msgpack,
            &mut out,
            &json!({"command": "next", "id": ""}),
        );
        assert_eq!(out, NEXT_MSGPACK);
    }
}
