//! What shell spouts and bolts share: settings, the handshake, and the child's
//! lifecycle (start, restart with back-off, stop).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value as Json};
use squall_engine::{ComponentError, TaskContext};
use squall_model::{Serializer, ShellSpec};
use tracing::{debug, error, info, trace, warn};

use crate::codec::ChildMsg;
use crate::command;
use crate::encode;
use crate::process::{ChildProcess, Launch};
use crate::settings::Settings;

/// Counter of child restarts, in the task's counters.
pub const CHILD_RESTARTS: &str = "child_restarts";

/// Wait before trying again after a child failed to start.
const START_RETRY: Duration = Duration::from_secs(1);

/// Spout or bolt: bolts get heartbeats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Spout,
    Bolt,
}

pub(crate) struct Shell {
    spec: ShellSpec,
    kind: Kind,
    tick_secs: Option<u64>,
    pub settings: Settings,
    pub ctx: TaskContext,
    pid_dir: PathBuf,
    pub child: Option<ChildProcess>,
    /// Increases at every start, so replies meant for an earlier child can be told apart.
    pub generation: u64,
    retry_at: Option<Instant>,
}

impl Shell {
    pub fn new(
        spec: &ShellSpec,
        kind: Kind,
        tick_secs: Option<u64>,
        ctx: &TaskContext,
    ) -> Result<Shell, ComponentError> {
        let settings = Settings::from_configs(&ctx.topology_config, &ctx.config)
            .map_err(|e| ComponentError(format!("shell component {:?}: {e}", ctx.component)))?;
        let dir_name: String = format!("{}-{}-{}", ctx.topology, ctx.component, ctx.task_id)
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let pid_dir = settings.pid_dir.join(dir_name);
        Ok(Shell {
            spec: spec.clone(),
            kind,
            tick_secs,
            settings,
            ctx: ctx.clone(),
            pid_dir,
            child: None,
            generation: 0,
            retry_at: None,
        })
    }

    /// The directory the child writes its pid file to.
    pub fn pid_dir(&self) -> &std::path::Path {
        &self.pid_dir
    }

    /// Starts a child and completes the handshake.
    pub fn start(&mut self) -> Result<(), String> {
        let base = self.ctx.base_dir.clone().unwrap_or_else(|| PathBuf::from("."));
        let cwd = match &self.spec.working_dir {
            Some(dir) => self.ctx.resolve_path(dir),
            None => base.clone(),
        };
        let venv = self.settings.venv.as_deref().map(|v| self.ctx.resolve_path(v));
        let inherited = match self.spec.env.get("PATH") {
            Some(p) => Some(p.into()),
            None => std::env::var_os("PATH"),
        };
        let path = command::child_path(inherited, venv.as_deref());
        let program = command::resolve(&self.spec.command, &base, &path).map_err(|e| e.to_string())?;
        let args = command::child_args(&self.spec).map_err(|e| e.to_string())?;
        let launch = Launch {
            program,
            path,
            args: &args,
            env: &self.spec.env,
            cwd,
            component: &self.ctx.component,
            task: self.ctx.task_id,
            max_message_bytes: self.settings.max_message_bytes,
            max_message_depth: self.settings.max_message_depth,
            serializer: self.spec.serializer,
            waker: (self.kind == Kind::Bolt).then(|| self.ctx.waker.clone()),
        };
        // A child that dies at once (a missing module) is explained by its command and PATH.
        let what = format!(
            "{} {:?} (PATH {}){}",
            launch.program.display(),
            launch.args,
            launch.path.to_string_lossy(),
            // A child that speaks only JSON fails the msgpack handshake: say which was spoken.
            match self.spec.serializer {
                Serializer::Json => "",
                Serializer::Msgpack => " speaking msgpack (shell.serializer)",
            }
        );
        let mut child = ChildProcess::spawn(launch, self.pid_dir.clone())?;
        let mut hello = Vec::new();
        encode::message(self.spec.serializer, &mut hello, &self.handshake_message());
        let timeout = self.settings.timeout;
        let pid = child
            .handshake(&hello, timeout, |m| self.log_child(&m, None))
            .map_err(|e| format!("{what}: {e}"))?;
        self.generation += 1;
        info!(
            component = %self.ctx.component,
            task = self.ctx.task_id,
            pid,
            generation = self.generation,
            serializer = self.spec.serializer.as_str(),
            "shell child started"
        );
        self.child = Some(child);
        self.retry_at = None;
        Ok(())
    }

    /// Makes sure a child runs, starting one if the last attempt was long enough ago.
    /// Returns whether one runs.
    pub fn ensure(&mut self) -> bool {
        if self.child.is_some() {
            return true;
        }
        if self.retry_at.is_some_and(|at| Instant::now() < at) {
            return false;
        }
        match self.start() {
            Ok(()) => true,
            Err(e) => {
                error!(
                    component = %self.ctx.component,
                    task = self.ctx.task_id,
                    error = %e,
                    "shell child failed to start; retrying in 1s"
                );
                self.retry_at = Some(Instant::now() + START_RETRY);
                false
            }
        }
    }

    /// The error reported when the child is restarted.
    pub fn restart_message(&self, reason: &str) -> String {
        format!(
            "shell child of {:?} task {} restarted: {reason}",
            self.ctx.component, self.ctx.task_id
        )
    }

    /// Kills the child (its whole process group) and counts a restart.
    pub fn kill_for_restart(&mut self, reason: &str, failed: usize) {
        let pid = self.child.as_ref().map(|c| c.os_pid);
        if let Some(mut c) = self.child.take() {
            c.kill();
        }
        self.ctx.counters.add(CHILD_RESTARTS, 1);
        warn!(
            component = %self.ctx.component,
            task = self.ctx.task_id,
            pid,
            failed_inputs = failed,
            reason,
            "restarting shell child"
        );
    }

    /// Stops the child at shutdown: EOF on its stdin, a short grace, then SIGKILL to
    /// its process group.
    pub fn shutdown(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.shutdown(Duration::from_millis(500));
        }
    }

    /// Logs a child's `log` command (or any message passed here) at its level.
    pub fn log_child(&self, m: &ChildMsg, pid: Option<u32>) {
        let component = self.ctx.component.as_str();
        let task = self.ctx.task_id;
        if let ChildMsg::Log { msg, level } = m {
            match level {
                0 => trace!(component = %component, task, pid, msg = %msg, "child log"),
                1 => debug!(component = %component, task, pid, msg = %msg, "child log"),
                2 => info!(component = %component, task, pid, msg = %msg, "child log"),
                3 => warn!(component = %component, task, pid, msg = %msg, "child log"),
                _ => error!(component = %component, task, pid, msg = %msg, "child log"),
            }
        }
    }

    /// Applies a `metrics` command: a non-negative integer is added to the counter
    /// `metric.<name>` (Storm's count metric); anything else is only logged.
    pub fn metric(&self, name: &str, params: &Json) {
        match params.as_u64() {
            Some(n) => self.ctx.counters.add(&format!("metric.{name}"), n),
            None => {
                self.ctx.counters.add("metrics_ignored", 1);
                debug!(component = %self.ctx.component, task = self.ctx.task_id, name, params = %params, "non-count metric ignored");
            }
        }
    }

    /// `{conf, context, pidDir}` as Storm sends it.
    fn handshake_message(&self) -> Json {
        let ctx = &self.ctx;
        let mut conf: Map<String, Json> = ctx.topology_config.clone().into_iter().collect();
        conf.extend(ctx.config.clone());
        let mut defaults = vec![
            ("topology.name", json!(ctx.topology)),
            (
                "topology.message.timeout.secs",
                json!(ctx.message_timeout.as_secs()),
            ),
            (
                "topology.subprocess.timeout.secs",
                json!(self.settings.timeout.as_secs()),
            ),
        ];
        if let Some(t) = self.tick_secs {
            defaults.push(("topology.tick.tuple.freq.secs", json!(t)));
        }
        for (k, v) in defaults {
            conf.entry(k.to_owned()).or_insert(v);
        }
        let task_to_component: Map<String, Json> = ctx
            .tasks_by_component
            .iter()
            .flat_map(|(c, tasks)| tasks.iter().map(move |t| (t.to_string(), json!(c))))
            .collect();
        let output_fields: Map<String, Json> = ctx
            .outputs
            .iter()
            .map(|s| (s.stream.clone(), json!(s.fields)))
            .collect();
        // pystorm turns input tuples into namedtuples from this map.
        let mut source_fields: Map<String, Json> = Map::new();
        for (source, stream, fields) in &ctx.inputs {
            let entry = source_fields.entry(source.clone()).or_insert_with(|| json!({}));
            if let Some(m) = entry.as_object_mut() {
                m.insert(stream.clone(), json!(fields));
            }
        }
        json!({
            "conf": conf,
            "context": {
                "taskid": ctx.task_id,
                "componentid": ctx.component,
                "stormid": ctx.topology,
                "task->component": task_to_component,
                "streams": ctx.outputs.iter().map(|s| s.stream.clone()).collect::<Vec<_>>(),
                "stream->outputfields": output_fields,
                "source->stream->fields": source_fields,
            },
            "pidDir": self.pid_dir.to_string_lossy(),
        })
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill();
        }
    }
}
