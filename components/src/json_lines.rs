//! `json-lines`: a replayable spout over a file of lines, optionally JSON objects.
//!
//! # Emits
//! - `default` stream:
//!   - without `fields`: fields `[line]`, the raw line (without its line terminator);
//!   - with `fields: [a, b, ..]`: those fields, each the value of the top-level key of the
//!     same name in the line's JSON object (null when the key is absent).
//!
//!   The message id is the 1-based line number.
//! - `errors` stream, fields `[line, error]`: lines that are not valid UTF-8 or, with
//!   `fields`, not a JSON object. Emitted unreliably (no message id) and counted.
//!
//! # Config
//! - `path` (string, required): the file. A relative path is resolved against the
//!   directory of the topology manifest (`squall run`), or the current directory when
//!   the topology did not come from a file.
//! - `fields` (list of field names, optional): extract these top-level JSON keys.
//! - `max_in_flight` (positive integer, default 10000): at most this many un-acked lines
//!   per task; their text is kept for replay, so this bounds the spout's memory.
//!
//! # Guarantees
//! - MUST read the file streaming, line by line; memory is bounded by `max_in_flight`
//!   lines plus one.
//! - MUST emit every non-empty line at least once with acking on: a failed or timed-out
//!   line is re-emitted (before new lines) until it is acked. Empty lines are skipped.
//! - MUST NOT stop on a malformed line: it goes to `errors` and reading continues.
//! - MUST report finished only at end of file with no line left in flight or to replay.
//! - With several tasks, task *i* of *k* reads the lines whose number ≡ *i* + 1 mod *k*,
//!   so every line is emitted by exactly one task.
//! - A restarted task reads the file again from the start (at-least-once: lines emitted
//!   before the restart may be emitted twice). The file is read once to its end; lines
//!   appended later are not seen.
//! - A missing or unreadable file MUST fail `open` with an error naming the path.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;

use bytestring::ByteString;
use squall_engine::{ComponentError, Spout, SpoutOutput, TaskContext, Value, Values};
use tracing::{debug, warn};

pub use squall_catalog::json_lines::{JsonLinesConfig, ERROR_STREAM, KIND};

/// What the spout has to emit next.
#[derive(Debug, PartialEq)]
enum Record {
    /// A line for `default`, with its line number.
    Line(Values, u64),
    /// A malformed line for `errors`.
    Malformed(Values),
}

/// One line as read from the file.
enum RawLine {
    Text(ByteString),
    BadUtf8 { lossy: String, error: String },
}

/// The `json-lines` spout.
pub struct JsonLinesSpout {
    config: JsonLinesConfig,
    reader: Option<BufReader<File>>,
    buf: Vec<u8>,
    /// Lines read so far (the number of the last line read).
    line_no: u64,
    eof: bool,
    index: u64,
    step: u64,
    /// Text of every emitted, un-acked line, for replay.
    in_flight: HashMap<u64, ByteString>,
    replay: VecDeque<u64>,
    malformed: u64,
    component: String,
    /// The file, resolved against the topology's base directory at `open`.
    path: PathBuf,
}

impl JsonLinesSpout {
    /// A spout with this configuration; the file is opened by `open`.
    pub fn new(config: &JsonLinesConfig) -> Self {
        JsonLinesSpout {
            config: config.clone(),
            reader: None,
            buf: Vec::new(),
            line_no: 0,
            eof: false,
            index: 0,
            step: 1,
            in_flight: HashMap::new(),
            replay: VecDeque::new(),
            malformed: 0,
            component: String::new(),
            path: PathBuf::new(),
        }
    }

    /// Malformed lines seen so far by this task.
    pub fn malformed(&self) -> u64 {
        self.malformed
    }

    fn open_file(&mut self) -> Result<(), ComponentError> {
        let path = if self.path.as_os_str().is_empty() {
            PathBuf::from(&self.config.path)
        } else {
            self.path.clone()
        };
        let file = File::open(&path).map_err(|e| {
            let cwd = std::env::current_dir()
                .map(|d| d.display().to_string())
                .unwrap_or_else(|_| "<unknown>".to_owned());
            let note = if path.is_relative() {
                format!(" (relative to the current directory {cwd})")
            } else {
                String::new()
            };
            ComponentError(format!("json-lines: cannot open {}{note}: {e}", path.display()))
        })?;
        self.reader = Some(BufReader::with_capacity(64 * 1024, file));
        Ok(())
    }

    /// The values of a line for `default`, or why it is malformed.
    fn decode(&self, text: &ByteString) -> Result<Values, String> {
        let Some(fields) = &self.config.fields else {
            let mut v = Values::new();
            v.push(Value::Str(text.clone()));
            return Ok(v);
        };
        let json: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
        let serde_json::Value::Object(obj) = json else {
            return Err(format!("expected a JSON object, got {}", json_type(&json)));
        };
        Ok(fields
            .iter()
            .map(|f| obj.get(f).map(Value::from_json).unwrap_or(Value::Null))
            .collect())
    }

    /// Reads up to this task's next non-empty line; `None` at end of file.
    fn read_line(&mut self) -> Result<Option<RawLine>, ComponentError> {
        let Some(reader) = self.reader.as_mut() else {
            return Err(ComponentError::new("json-lines: next_tuple called before open"));
        };
        loop {
            self.buf.clear();
            let n = match reader.read_until(b'\n', &mut self.buf) {
                Ok(n) => n,
                Err(e) => {
                    // Stop here: retrying a broken read would report the same error forever.
                    self.eof = true;
                    return Err(ComponentError(format!(
                        "json-lines: reading {:?} after line {}: {e}; no further lines will be read",
                        self.config.path, self.line_no
                    )));
                }
            };
            if n == 0 {
                self.eof = true;
                return Ok(None);
            }
            self.line_no += 1;
            if (self.line_no - 1) % self.step != self.index {
                continue;
            }
            let mut line = self.buf.as_slice();
            if let Some(rest) = line.strip_suffix(b"\n") {
                line = rest;
            }
            if let Some(rest) = line.strip_suffix(b"\r") {
                line = rest;
            }
            if line.is_empty() {
                continue;
            }
            return Ok(Some(match std::str::from_utf8(line) {
                Ok(s) => RawLine::Text(ByteString::from(s)),
                Err(e) => RawLine::BadUtf8 {
                    lossy: String::from_utf8_lossy(line).into_owned(),
                    error: format!("invalid UTF-8: {e}"),
                },
            }));
        }
    }

    fn next_record(&mut self) -> Result<Option<Record>, ComponentError> {
        // Replays first: they are the oldest work.
        while let Some(id) = self.replay.pop_front() {
            let Some(text) = self.in_flight.get(&id) else {
                continue;
            };
            match self.decode(text) {
                Ok(values) => return Ok(Some(Record::Line(values, id))),
                // Cannot happen (it decoded before), but never crash on it.
                Err(e) => {
                    let text = self.in_flight.remove(&id).unwrap_or_default();
                    return Ok(Some(self.malformed_record(Value::Str(text), e)));
                }
            }
        }
        if self.eof || self.in_flight.len() >= self.config.max_in_flight {
            return Ok(None);
        }
        let Some(read) = self.read_line()? else {
            return Ok(None);
        };
        let text = match read {
            RawLine::Text(text) => text,
            RawLine::BadUtf8 { lossy, error } => {
                return Ok(Some(self.malformed_record(Value::from(lossy), error)))
            }
        };
        match self.decode(&text) {
            Ok(values) => {
                self.in_flight.insert(self.line_no, text);
                Ok(Some(Record::Line(values, self.line_no)))
            }
            Err(e) => Ok(Some(self.malformed_record(Value::Str(text), e))),
        }
    }

    fn malformed_record(&mut self, line: Value, error: String) -> Record {
        self.malformed += 1;
        if self.malformed == 1 {
            warn!(component = %self.component, path = %self.config.path, line = self.line_no, error = %error, "malformed line sent to the errors stream; further ones are logged at debug");
        } else {
            debug!(component = %self.component, path = %self.config.path, line = self.line_no, error = %error, "malformed line");
        }
        let mut v = Values::new();
        v.push(line);
        v.push(Value::from(error));
        Record::Malformed(v)
    }

    fn line_of(msg_id: &Value) -> Option<u64> {
        msg_id.as_i64().and_then(|i| u64::try_from(i).ok())
    }
}

fn json_type(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

impl Spout for JsonLinesSpout {
    fn open(&mut self, ctx: &TaskContext) -> Result<(), ComponentError> {
        self.index = ctx.task_index as u64;
        self.step = ctx.component_tasks.len().max(1) as u64;
        self.component = ctx.component.clone();
        self.path = ctx.resolve_path(&self.config.path);
        self.open_file()
    }

    fn next_tuple(&mut self, out: &mut SpoutOutput<'_>) -> Result<(), ComponentError> {
        match self.next_record()? {
            Some(Record::Line(values, id)) => {
                out.emit(values, Some(Value::from(id)))?;
            }
            Some(Record::Malformed(values)) => {
                out.emit_on(ERROR_STREAM, values, None)?;
            }
            None => {}
        }
        Ok(())
    }

    fn ack(&mut self, msg_id: Value) {
        if let Some(id) = Self::line_of(&msg_id) {
            self.in_flight.remove(&id);
        }
    }

    fn fail(&mut self, msg_id: Value) {
        // Unknown ids come from a predecessor instance after a restart; this instance
        // reads the file from the start, so it emits those lines anyway.
        if let Some(id) = Self::line_of(&msg_id).filter(|id| self.in_flight.contains_key(id)) {
            self.replay.push_back(id);
        }
    }

    fn close(&mut self) {
        self.reader = None;
    }

    fn is_finished(&self) -> bool {
        self.eof && self.in_flight.is_empty() && self.replay.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use squall_model::Config;
    use std::io::Write;

    pub(crate) fn temp_file(name: &str, content: &[u8]) -> PathBuf {
        let path = std::env::temp_dir().join(format!("squall-json-lines-{}-{name}", std::process::id()));
        let mut f = File::create(&path).unwrap();
        f.write_all(content).unwrap();
        path
    }

    fn ctx(index: usize, tasks: usize) -> TaskContext {
        TaskContext::for_test("lines", index, tasks, Config::new())
    }

    fn spout(path: &std::path::Path, extra: serde_json::Value) -> JsonLinesSpout {
        let mut json = serde_json::json!({"path": path.display().to_string()});
        if let (Some(o), Some(e)) = (json.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        let config: Config = serde_json::from_value(json).unwrap();
        JsonLinesSpout::new(&JsonLinesConfig::parse(&config).unwrap())
    }

    fn drain(s: &mut JsonLinesSpout) -> Vec<Record> {
        std::iter::from_fn(|| s.next_record().unwrap()).collect()
    }

    #[test]
    fn raw_lines_with_line_numbers_skipping_empty_ones() {
        let path = temp_file("raw", b"a\r\n\nb\nc");
        let mut s = spout(&path, serde_json::json!({}));
        s.open(&ctx(0, 1)).unwrap();
        let got = drain(&mut s);
        let _ = std::fs::remove_file(&path);
        assert_eq!(
            got,
            vec![
                Record::Line(squall_engine::values!["a"], 1),
                Record::Line(squall_engine::values!["b"], 3),
                Record::Line(squall_engine::values!["c"], 4),
            ]
        );
        assert!(!s.is_finished(), "three lines in flight");
        s.fail(Value::Int(3));
        s.ack(Value::Int(1));
        s.ack(Value::Int(4));
        assert_eq!(drain(&mut s), vec![Record::Line(squall_engine::values!["b"], 3)]);
        s.ack(Value::Int(3));
        assert!(s.is_finished());
    }

    #[test]
    fn fields_are_extracted_and_malformed_lines_go_to_errors() {
        let path = temp_file(
            "fields",
            b"{\"a\":1,\"b\":\"x\"}\nnot json\n[1]\n{\"b\":true}\n\xff\n",
        );
        let mut s = spout(&path, serde_json::json!({"fields": ["a", "b"]}));
        s.open(&ctx(0, 1)).unwrap();
        let got = drain(&mut s);
        let _ = std::fs::remove_file(&path);
        assert_eq!(got.len(), 5);
        assert_eq!(got[0], Record::Line(squall_engine::values![1i64, "x"], 1));
        assert_eq!(got[3], Record::Line(squall_engine::values![Value::Null, true], 4));
        for (i, what) in [
            (1, "invalid JSON"),
            (2, "expected a JSON object, got an array"),
            (4, "invalid UTF-8"),
        ] {
            let Record::Malformed(v) = &got[i] else {
                panic!("line {} not malformed: {:?}", i + 1, got[i])
            };
            assert!(v[1].as_str().unwrap().contains(what), "{v:?}");
        }
        assert_eq!(s.malformed(), 3);
        s.ack(Value::Int(1));
        s.ack(Value::Int(4));
        assert!(s.is_finished(), "malformed lines are not in flight");
    }

    #[test]
    fn tasks_split_the_lines_and_in_flight_is_bounded() {
        let path = temp_file("split", b"1\n2\n3\n4\n5\n");
        let mut a = spout(&path, serde_json::json!({}));
        let mut b = spout(&path, serde_json::json!({"max_in_flight": 1}));
        a.open(&ctx(0, 2)).unwrap();
        b.open(&ctx(1, 2)).unwrap();
        let got_a = drain(&mut a);
        let got_b = drain(&mut b);
        assert_eq!(got_a.len(), 3, "lines 1, 3, 5");
        assert_eq!(
            got_b,
            vec![Record::Line(squall_engine::values!["2"], 2)],
            "bounded at one in flight"
        );
        b.ack(Value::Int(2));
        assert_eq!(drain(&mut b), vec![Record::Line(squall_engine::values!["4"], 4)]);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn missing_file_names_the_path() {
        let mut s = spout(std::path::Path::new("no/such/file.jsonl"), serde_json::json!({}));
        let err = s.open(&ctx(0, 1)).unwrap_err().0;
        assert!(
            err.contains("no/such/file.jsonl") && err.contains("relative to the current directory"),
            "{err}"
        );
    }

    #[test]
    fn path_is_required() {
        let err = JsonLinesConfig::parse(&Config::new()).unwrap_err().to_string();
        assert_eq!(
            err,
            "config key \"path\" is required: the path of the file to read"
        );
    }
}
