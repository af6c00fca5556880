//! Shell spouts and bolts: components run as a child process that speaks Apache Storm's
//! multilang protocol, so that spouts and bolts written for Storm's `storm.py`, pystorm
//! or streamparse run unmodified. Messages are JSON, each followed by a line `end`
//! (the default), or with `serializer: msgpack` msgpack objects back to back, as
//! pystorm's `MsgpackSerializer` speaks them.
//!
//! A manifest declares one with `component: shell`, a `shell` block (`command`,
//! `args`, `env`, `workingDir`, `serializer`) and its `outputs`. [`spout_for`] and [`bolt_for`] build
//! the instances from a [`ComponentPlan`].
//!
//! # Both
//! - MUST find the program before starting it: a `command` with a slash resolved against
//!   the base directory (the manifest's directory locally, the worker's working directory
//!   on a cluster), a bare name on the child's `PATH` (`env.PATH`, else the worker's, with
//!   the `bin` of `squall.multilang.venv` first). A program not found, not executable, or
//!   whose `#!` interpreter is missing fails the start with a [`CommandError`] naming the
//!   command and the `PATH` searched.
//! - MUST start the child in its own process group, with `workingDir` resolved against
//!   the base directory (default: that directory), and send Storm's handshake:
//!   `conf` (topology config overlaid with the component's), `context` (`taskid`,
//!   `componentid`, `stormid`, `task->component`, `streams`, `stream->outputfields`)
//!   and `pidDir`; the child MUST reply `{"pid": N}` within the subprocess timeout.
//! - MUST speak the component's serializer both ways, and pass `--serializer msgpack`
//!   to a `streamparse_run` command for msgpack (its `args` may not choose another).
//! - MUST treat invalid JSON or msgpack, an unknown command, a message over
//!   `squall.multilang.max.message.bytes` (default 16 MiB), a msgpack message nesting
//!   deeper than `squall.multilang.max.message.depth` (default 128), EOF or a silent child as
//!   the child's failure: the error names the component and task, the child's process
//!   group is killed, `child_restarts` is counted and a new child is started (retried
//!   every second while starting fails).
//! - MUST log the child's stderr line by line, and its `log` commands at their level
//!   (0 trace … 4 error), with the component and task as fields; report `error`
//!   commands as the component's error; add integer `metrics` to the counter
//!   `metric.<name>`.
//! - MUST kill the child's process group when the task stops (after closing its stdin
//!   and half a second's grace) or is dropped.
//!
//! # ShellSpout
//! - MUST be synchronous: send `next` and handle messages until `sync`; no reply
//!   within the subprocess timeout is a hang.
//! - MUST map each reliable emit's id (any JSON) to an engine message id and send
//!   `ack`/`fail` with the original id. Because the engine's `ack`/`fail` give no output,
//!   those commands are sent at once and their replies (which may emit, as a
//!   `ReliableSpout` does on fail) are read at the next `next_tuple`.
//! - After a restart, acks/fails of tuples emitted by the old child are dropped
//!   (counted as `stale_ids`): a spout child's un-acked tuples are replayed only if
//!   its own source can replay them.
//!
//! # ShellBolt
//! - MUST be asynchronous: `execute` queues each input for the child and `poll` (after
//!   each batch) writes the queue and handles the child's `emit` (anchors by input id,
//!   stream, direct task), `ack`, `fail`, `log`, `error`, `metrics`, `sync`, all on the
//!   executor's thread, many messages per system call; a watcher thread only wakes the
//!   parked executor when output arrives.
//! - MUST answer a grouped emit with `need_task_ids` absent or true with the target
//!   task ids, written before any queued tuple not yet started (heartbeats too).
//! - MUST bound the tuples queued for the child and not yet written to its pipe
//!   (`squall.multilang.max.pending`, else Storm's `topology.shellbolt.max.pending`,
//!   default 100). When the queue is full, `execute` blocks, handling the child's output
//!   meanwhile, until there is room: Storm's choice, and it turns into the engine's back
//!   pressure.
//! - MUST send a heartbeat tuple (`__heartbeat`, task -1) every
//!   `squall.multilang.heartbeat.secs` (1 s) and restart a child that owes a reply (no
//!   message since something was written to it) for longer than
//!   `squall.multilang.timeout.secs` (else `topology.subprocess.timeout.secs`, else
//!   `supervisor.worker.timeout.secs`, else 30 s).
//! - MUST forward tick tuples (`__system`, `__tick`, task -1).
//! - On restart MUST fail every input the child held, so the spouts replay them
//!   (at-least-once). An emit anchored to an unknown id, or rejected by the engine
//!   (undeclared stream, wrong arity), is fatal for the child as in Storm; an ack/fail of
//!   an unknown id is reported and counted (`unknown_ids`), not fatal.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bench;
mod bolt;
pub mod codec;
mod command;
mod encode;
mod mpfast;
pub mod msgpack;
mod outbuf;
mod process;
pub mod settings;
mod shell;
mod spout;
mod wire;

pub use bolt::{ShellBolt, UNKNOWN_IDS};
pub use command::CommandError;
pub use shell::CHILD_RESTARTS;
pub use spout::{ShellSpout, STALE_IDS};

use squall_engine::{Bolt, ComponentError, Spout};
use squall_model::{ComponentPlan, ShellSpec};

fn shell_of(component: &ComponentPlan) -> Result<ShellSpec, ComponentError> {
    component.shell.clone().ok_or_else(|| {
        ComponentError(format!(
            "shell component {:?} has no `shell` block (command, args, env, workingDir)",
            component.name
        ))
    })
}

/// A shell spout for a planned `shell` component.
pub fn spout_for(component: &ComponentPlan) -> Result<Box<dyn Spout>, ComponentError> {
    Ok(Box::new(ShellSpout::new(shell_of(component)?)))
}

/// A shell bolt for a planned `shell` component.
pub fn bolt_for(component: &ComponentPlan) -> Result<Box<dyn Bolt>, ComponentError> {
    let tick = component.tick.map(|t| t.as_secs().max(1));
    Ok(Box::new(ShellBolt::new(shell_of(component)?, tick)))
}
