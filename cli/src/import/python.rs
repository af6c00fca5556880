//! Runs `cli/python/streamparse_import.py` under a Python interpreter, bounded in time and
//! in what it may write, and returns its JSON document.

use std::io::{self, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use serde::Deserialize;

use super::streamparse::TopologyRead;

/// The helper, carried in the binary so that `squall` needs no checkout to find it.
const HELPER: &str = include_str!("../../python/streamparse_import.py");
/// Largest JSON document accepted from the helper.
pub const MAX_OUTPUT_BYTES: u64 = 4 << 20;
/// How much of the helper's stderr (the topology's own prints and tracebacks) is kept.
const MAX_STDERR_BYTES: u64 = 64 << 10;
/// Stderr lines quoted when the helper fails without a document.
const STDERR_TAIL_LINES: usize = 20;

/// What the helper says: the class it read, or why it could not.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
enum Answer {
    Ok(TopologyRead),
    Error(HelperError),
}

#[derive(Deserialize)]
struct HelperError {
    kind: String,
    message: String,
    line: Option<u32>,
}

/// Why the class was not read.
pub enum Failure {
    /// The topology file's own problem, at a line when known: the user's to fix (exit 2).
    InFile { line: Option<u32>, message: String },
    /// The interpreter's: missing, without streamparse, hung, or no answer (exit 1).
    Helper(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Self {
        Failure::Helper(error)
    }
}

/// Reads the Topology class in `file` (the only one, or `class`) with `python`.
pub fn read_topology(
    python: &str,
    file: &Path,
    class: Option<&str>,
    timeout: Duration,
) -> Result<TopologyRead, Failure> {
    let mut cmd = Command::new(python);
    // -B: importing the user's modules must not leave __pycache__ in their project.
    cmd.args(["-B", "-c", HELPER])
        .arg(file)
        .args(class)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = run_bounded(cmd, python, timeout)?;
    let answer: Answer = match serde_json::from_slice(&out.stdout) {
        Ok(a) => a,
        Err(e) => {
            let status = out
                .status
                .map_or("was killed".to_owned(), |c| format!("exited with status {c}"));
            return Err(anyhow!(
                "`{python}` reading {} {status} without an answer ({e}){}",
                file.display(),
                tail(&out.stderr)
            )
            .into());
        }
    };
    match answer {
        Answer::Ok(read) => Ok(read),
        Answer::Error(e) if e.kind == "no-streamparse" => Err(anyhow!(
            "`{python}` cannot import streamparse ({}): install it there (`{python} -m pip install streamparse`) \
             or name an interpreter that has it with --python, e.g. the project virtualenv's bin/python",
            e.message
        )
        .into()),
        Answer::Error(e) => Err(Failure::InFile {
            line: e.line,
            message: e.message,
        }),
    }
}

struct Output {
    status: Option<i32>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

fn run_bounded(mut cmd: Command, python: &str, timeout: Duration) -> anyhow::Result<Output> {
    let mut child = cmd.spawn().map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => anyhow!(
            "the Python interpreter `{python}` was not found{}: name one with --python \
             (or SQUALL_PYTHON), e.g. the streamparse project virtualenv's bin/python",
            if python.contains('/') { "" } else { " on PATH" }
        ),
        _ => anyhow!("starting `{python}`: {e}"),
    })?;
    let (tx, rx) = mpsc::channel();
    for (which, pipe, max) in [
        (
            0,
            child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>),
            MAX_OUTPUT_BYTES,
        ),
        (
            1,
            child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>),
            MAX_STDERR_BYTES,
        ),
    ] {
        let tx = tx.clone();
        if let Some(pipe) = pipe {
            thread::spawn(move || {
                let _ = tx.send((which, drain(pipe, max)));
            });
        }
    }
    drop(tx);
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().context("waiting for the Python helper")? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "`{python}` did not finish reading the topology within {:?} (--timeout)",
                timeout
            );
        }
        thread::sleep(Duration::from_millis(20));
    };
    let mut outputs: [Option<(Vec<u8>, bool)>; 2] = [None, None];
    // A grandchild may hold the pipes open; past the grace period the answer is what arrived.
    let grace = Instant::now() + Duration::from_secs(2);
    while outputs.iter().any(Option::is_none) {
        let left = grace.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((which, got)) => outputs[which] = Some(got),
            Err(_) => break,
        }
    }
    let [stdout, stderr] = outputs;
    let (stdout, over) = stdout.unwrap_or_default();
    if over {
        bail!("`{python}` wrote more than {MAX_OUTPUT_BYTES} bytes of answer; refusing to read it");
    }
    Ok(Output {
        status: status.code(),
        stdout,
        stderr: stderr.unwrap_or_default().0,
    })
}

/// Up to `max` bytes of `pipe`, and whether there was more. The rest is read and dropped so
/// that a chatty child never blocks on a full pipe.
fn drain(pipe: Box<dyn Read + Send>, max: u64) -> (Vec<u8>, bool) {
    let mut kept = Vec::new();
    let mut pipe = pipe;
    let _ = pipe.by_ref().take(max).read_to_end(&mut kept);
    let dropped = io::copy(&mut pipe, &mut io::sink()).unwrap_or(0);
    (kept, dropped > 0)
}

/// The last lines of the helper's stderr, indented, for an error message.
fn tail(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return String::new();
    }
    let from = lines.len().saturating_sub(STDERR_TAIL_LINES);
    let mut out = String::from("\n  its stderr ends with:");
    for l in &lines[from..] {
        out.push_str("\n    ");
        out.push_str(l);
    }
    out
}
