//! The multilang wire format: JSON messages, each followed by a line `end` (the
//! msgpack framing is in [`crate::msgpack`] and decodes into the same [`ChildMsg`]).
//!
//! Everything here is pure (no I/O), so it can be unit-tested and fuzzed: [`Splitter`]
//! finds message texts in a byte buffer, [`parse_framed`] turns one into a [`ChildMsg`],
//! and [`parse_stream`] does both for a whole buffer, exactly as the host does. None of
//! them panics on any input.

use std::fmt;

use serde_json::{Map, Value as Json};
use smallvec::SmallVec;
use squall_engine::{Value, Values};

/// Default bound of one child message, in bytes (the lines before `end`, joined).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// A protocol violation by the child.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// The message is larger than the configured bound.
    #[error("message exceeds {max} bytes (the limit is {key}; raise it there)", key = crate::settings::MAX_MESSAGE_BYTES)]
    TooLarge {
        /// The bound.
        max: usize,
    },
    /// The message nests lists and maps deeper than the configured bound (msgpack).
    #[error("message nests deeper than {max} levels (the limit is {key}; raise it there)", key = crate::settings::MAX_MESSAGE_DEPTH)]
    TooDeep {
        /// The bound.
        max: usize,
    },
    /// The bytes are not one msgpack object the protocol uses.
    #[error("invalid msgpack: {error}; message starts with bytes {start}")]
    InvalidMsgpack {
        /// The decoder's error.
        error: String,
        /// The first bytes of the message, in hex.
        start: String,
    },
    /// The text before `end` is not JSON.
    #[error("invalid JSON: {error}; message starts with {start:?}")]
    InvalidJson {
        /// The parser's error.
        error: String,
        /// The first characters of the message.
        start: String,
    },
    /// Valid JSON that is not a message the host understands.
    #[error("invalid message: {0}")]
    Invalid(String),
    /// A `command` this host does not know.
    #[error("unknown command {0:?}")]
    UnknownCommand(String),
    /// Bytes that are not UTF-8.
    #[error("output is not UTF-8")]
    NotUtf8,
}

/// The id of a bolt input as the child names it (`ack`, `fail`, `anchors`). The host
/// sends decimal ids, which are kept as numbers so the per-tuple path allocates nothing;
/// any other text is kept as it came, so it reads back exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputId {
    /// Text that is exactly a `u64`'s decimal form (no sign, no leading zero).
    Num(u64),
    /// Any other text.
    Text(Box<str>),
}

impl InputId {
    /// The id `text` names.
    pub fn new(text: &str) -> InputId {
        match canonical_u64(text) {
            Some(n) => InputId::Num(n),
            None => InputId::Text(text.into()),
        }
    }

    /// The host id this refers to: the number, or the text read as a `u64` as Rust parses
    /// it (so `"+7"` and `"007"` still name input 7).
    pub fn number(&self) -> Option<u64> {
        match self {
            InputId::Num(n) => Some(*n),
            InputId::Text(t) => t.parse().ok(),
        }
    }
}

impl From<String> for InputId {
    fn from(text: String) -> InputId {
        match canonical_u64(&text) {
            Some(n) => InputId::Num(n),
            None => InputId::Text(text.into_boxed_str()),
        }
    }
}

impl From<&str> for InputId {
    fn from(text: &str) -> InputId {
        InputId::new(text)
    }
}

/// The text of the id, exactly as the child sent it.
impl fmt::Display for InputId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InputId::Num(n) => write!(f, "{n}"),
            InputId::Text(t) => f.write_str(t),
        }
    }
}

/// `text` as a `u64` when it is exactly that number's decimal form, so the number prints
/// back as the same text.
fn canonical_u64(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    let canonical =
        !b.is_empty() && b.len() <= 20 && b.iter().all(u8::is_ascii_digit) && (b[0] != b'0' || b.len() == 1);
    if canonical {
        text.parse().ok()
    } else {
        None
    }
}

/// Anchors of one emit: one in the usual case, held inline.
pub type Anchors = SmallVec<[InputId; 1]>;

/// An `emit` command.
#[derive(Debug, Clone, PartialEq)]
pub struct Emit {
    /// Spouts: the message id (any JSON); `None` for an unreliable emit.
    pub id: Option<Json>,
    /// Bolts: ids of the inputs to anchor to.
    pub anchors: Anchors,
    /// Stream; `None` means `default`.
    pub stream: Option<String>,
    /// Direct emit to this task; `None` (or 0 on the wire) means a grouped emit.
    pub task: Option<u32>,
    /// The values.
    pub tuple: Values,
    /// Whether the child waits for the list of target tasks (default true; never for
    /// direct emits).
    pub need_task_ids: bool,
}

/// A message from the child.
#[derive(Debug, Clone, PartialEq)]
pub enum ChildMsg {
    /// Handshake reply.
    Pid(u32),
    /// Emit a tuple.
    Emit(Emit),
    /// Ack an input (bolts), by the id the host gave it.
    Ack(InputId),
    /// Fail an input (bolts).
    Fail(InputId),
    /// A log line; levels 0 trace … 4 error (5 and above are treated as error).
    Log {
        /// The text.
        msg: String,
        /// The level.
        level: u8,
    },
    /// An error to report as the component's.
    Error(String),
    /// A metric update.
    Metrics {
        /// Metric name.
        name: String,
        /// Its parameters.
        params: Json,
    },
    /// End of a spout's reply, or a bolt's heartbeat reply.
    Sync,
}

fn invalid(msg: impl Into<String>) -> ProtocolError {
    ProtocolError::Invalid(msg.into())
}

/// Parses one child message (the text before `end`).
pub fn parse_child_message(text: &str) -> Result<ChildMsg, ProtocolError> {
    match crate::wire::parse_fast(text) {
        Some(m) => Ok(m),
        None => parse_child_message_slow(text),
    }
}

/// The general parser: every message, with precise errors.
pub(crate) fn parse_child_message_slow(text: &str) -> Result<ChildMsg, ProtocolError> {
    let json: Json = serde_json::from_str(text).map_err(|e| ProtocolError::InvalidJson {
        error: e.to_string(),
        start: text.chars().take(80).collect(),
    })?;
    parse_child_json(json)
}

/// A decoded child message (from JSON or msgpack) to a message, with precise errors.
pub(crate) fn parse_child_json(json: Json) -> Result<ChildMsg, ProtocolError> {
    let Json::Object(mut obj) = json else {
        return Err(invalid(format!(
            "expected a message object, got {}",
            kind_of(&json)
        )));
    };
    let Some(command) = obj.get("command") else {
        // The handshake reply is the only message without a command.
        return match obj.get("pid") {
            Some(pid) => pid
                .as_u64()
                .and_then(|p| u32::try_from(p).ok())
                .map(ChildMsg::Pid)
                .ok_or_else(|| invalid(format!("\"pid\" must be a process id, got {pid}"))),
            None => Err(invalid("object has neither \"command\" nor \"pid\"")),
        };
    };
    let Some(command) = command.as_str() else {
        return Err(invalid(format!("\"command\" must be a string, got {command}")));
    };
    match command {
        "emit" => parse_emit(&mut obj).map(ChildMsg::Emit),
        "ack" => input_id(&obj).map(ChildMsg::Ack),
        "fail" => input_id(&obj).map(ChildMsg::Fail),
        "sync" => Ok(ChildMsg::Sync),
        "log" => Ok(ChildMsg::Log {
            msg: text_field(&obj, "msg")?,
            level: match obj.get("level") {
                None | Some(Json::Null) => 2,
                Some(l) => l
                    .as_u64()
                    .map(|l| l.min(5) as u8)
                    .ok_or_else(|| invalid(format!("log \"level\" must be 0-5, got {l}")))?,
            },
        }),
        "error" => text_field(&obj, "msg").map(ChildMsg::Error),
        "metrics" => Ok(ChildMsg::Metrics {
            name: obj
                .get("name")
                .and_then(Json::as_str)
                .map(str::to_owned)
                .ok_or_else(|| invalid("metrics needs a string \"name\""))?,
            params: obj.get("params").cloned().unwrap_or(Json::Null),
        }),
        other => Err(ProtocolError::UnknownCommand(other.chars().take(80).collect())),
    }
}

fn kind_of(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

fn text_field(obj: &Map<String, Json>, key: &str) -> Result<String, ProtocolError> {
    match obj.get(key) {
        Some(Json::String(s)) => Ok(s.clone()),
        // Lenient: a number or other JSON is shown as its JSON text.
        Some(Json::Null) | None => Ok(String::new()),
        Some(other) => Ok(other.to_string()),
    }
}

/// The id of a bolt input as the host sent it (a string); numbers are accepted as
/// their decimal text for children that convert ids.
fn id_text(v: &Json) -> Option<String> {
    match v {
        Json::String(s) => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn input_id(obj: &Map<String, Json>) -> Result<InputId, ProtocolError> {
    let id = obj.get("id").ok_or_else(|| invalid("ack/fail without \"id\""))?;
    id_text(id)
        .map(InputId::from)
        .ok_or_else(|| invalid(format!("ack/fail \"id\" must be a string, got {id}")))
}

fn parse_emit(obj: &mut Map<String, Json>) -> Result<Emit, ProtocolError> {
    // Taken, not cloned: the values are the bulk of the message.
    let tuple = match obj.remove("tuple") {
        Some(Json::Array(a)) => a,
        Some(other) => return Err(invalid(format!("emit \"tuple\" must be a list, got {other}"))),
        None => return Err(invalid("emit without \"tuple\"")),
    };
    let anchor = |x: &Json| {
        id_text(x)
            .map(InputId::from)
            .ok_or_else(|| invalid(format!("anchor must be a string id, got {x}")))
    };
    let anchors = match obj.get("anchors") {
        None | Some(Json::Null) => Anchors::new(),
        // A single id is accepted as Storm does.
        Some(Json::Array(a)) => a.iter().map(anchor).collect::<Result<_, _>>()?,
        Some(one) => std::iter::once(anchor(one)?).collect(),
    };
    let stream = match obj.get("stream") {
        None | Some(Json::Null) => None,
        Some(Json::String(s)) => Some(s.clone()),
        Some(other) => return Err(invalid(format!("emit \"stream\" must be a string, got {other}"))),
    };
    let task = match obj.get("task") {
        None | Some(Json::Null) => None,
        Some(t) => match t.as_i64() {
            Some(0) => None,
            Some(n) => {
                Some(u32::try_from(n).map_err(|_| invalid(format!("emit \"task\" {n} is not a task id")))?)
            }
            None => return Err(invalid(format!("emit \"task\" must be an integer, got {t}"))),
        },
    };
    let need_task_ids = match obj.get("need_task_ids") {
        None | Some(Json::Null) => true,
        Some(Json::Bool(b)) => *b,
        Some(other) => {
            return Err(invalid(format!(
                "\"need_task_ids\" must be a boolean, got {other}"
            )))
        }
    };
    Ok(Emit {
        id: obj.remove("id").filter(|v| !v.is_null()),
        anchors,
        stream,
        task,
        tuple: tuple.iter().map(Value::from_json).collect(),
        need_task_ids: need_task_ids && task.is_none(),
    })
}

/// Finds messages in a byte buffer without copying them: the host reads child output
/// into one buffer and parses each message where it lies. Remembers how far it scanned,
/// so a large message arriving in pieces is scanned once.
#[derive(Debug, Default)]
pub struct Splitter {
    /// Offset, from the start of the message in progress, of the first line not scanned.
    scanned: usize,
}

impl Splitter {
    /// Looks for the end of the message that starts at `buf[0]`. Returns the length of
    /// its text (the lines before `end`, joined by their newlines, without the last one)
    /// and the bytes it takes up including the `end` line; `None` while incomplete.
    pub fn next(&mut self, buf: &[u8]) -> Option<(usize, usize)> {
        let mut line_start = self.scanned.min(buf.len());
        while let Some(i) = memchr::memchr(b'\n', &buf[line_start..]) {
            let nl = line_start + i;
            let line = &buf[line_start..nl];
            if line == b"end" || line == b"end\r" {
                self.scanned = 0;
                let mut text_end = line_start;
                if text_end > 0 && buf[text_end - 1] == b'\n' {
                    text_end -= 1;
                    if text_end > 0 && buf[text_end - 1] == b'\r' {
                        text_end -= 1;
                    }
                }
                return Some((text_end, nl + 1));
            }
            line_start = nl + 1;
        }
        self.scanned = line_start;
        None
    }
}

/// One message text, as [`Splitter::next`] finds it, to a message: the size bound, UTF-8,
/// then the JSON. The host and [`parse_stream`] both go through here.
pub fn parse_framed(text: &[u8], max: usize) -> Result<ChildMsg, ProtocolError> {
    if text.len() > max {
        return Err(ProtocolError::TooLarge { max });
    }
    // The fast path reads the bytes as they are (serde_json checks the UTF-8 of the text
    // it decodes), sparing a pass over the whole message.
    if let Some(m) = crate::wire::parse_fast_bytes(text) {
        return Ok(m);
    }
    let text = std::str::from_utf8(text).map_err(|_| ProtocolError::NotUtf8)?;
    parse_child_message_slow(text)
}

/// Frames and parses a whole buffer of child output the way the host does: one result
/// per complete message, in order; an unterminated tail is ignored. Never panics (the
/// fuzz entry point).
pub fn parse_stream(bytes: &[u8], max: usize) -> Vec<Result<ChildMsg, ProtocolError>> {
    let mut splitter = Splitter::default();
    let mut out = Vec::new();
    let mut rest = bytes;
    while let Some((text, used)) = splitter.next(rest) {
        out.push(parse_framed(&rest[..text], max));
        rest = &rest[used..];
    }
    out
}

/// Appends `json` framed as one host message.
pub fn frame(json: &Json) -> String {
    let mut s = json.to_string();
    s.push_str("\nend\n");
    s
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn one(text: &str) -> Result<ChildMsg, ProtocolError> {
        parse_child_message(text)
    }

    /// The reference model of framing: collects lines into messages, a message being complete
    /// at a line equal to `end`. The host's [`Splitter`] must frame like it.
    #[derive(Debug)]
    struct Framer {
        buf: String,
        max: usize,
        /// Set after an oversized message until its `end`, so one bad message is reported once.
        overflowed: bool,
    }

    impl Framer {
        /// A framer that rejects messages over `max` bytes.
        fn new(max: usize) -> Self {
            Framer {
                buf: String::new(),
                max,
                overflowed: false,
            }
        }

        /// Adds one line (without its newline; a trailing `\r` is ignored). Returns the
        /// message text when `line` is `end`.
        fn push_line(&mut self, line: &str) -> Result<Option<String>, ProtocolError> {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line == "end" {
                if std::mem::take(&mut self.overflowed) {
                    self.buf.clear();
                    return Ok(None);
                }
                return Ok(Some(std::mem::take(&mut self.buf)));
            }
            if self.overflowed {
                return Ok(None);
            }
            // Multi-line JSON is allowed; lines are joined with '\n' as Storm does.
            let extra = line.len() + usize::from(!self.buf.is_empty());
            if self.buf.len() + extra > self.max {
                self.buf.clear();
                self.overflowed = true;
                return Err(ProtocolError::TooLarge { max: self.max });
            }
            if !self.buf.is_empty() {
                self.buf.push('\n');
            }
            self.buf.push_str(line);
            Ok(None)
        }
    }

    /// [`parse_stream`] on the reference model: line by line through [`Framer`].
    fn reference_stream(bytes: &[u8], max: usize) -> Vec<Result<ChildMsg, ProtocolError>> {
        let mut framer = Framer::new(max);
        let mut out = Vec::new();
        let mut rest = bytes;
        while let Some(nl) = rest.iter().position(|b| *b == b'\n') {
            let (line, tail) = rest.split_at(nl);
            rest = &tail[1..];
            let Ok(line) = std::str::from_utf8(line) else {
                out.push(Err(ProtocolError::NotUtf8));
                continue;
            };
            match framer.push_line(line) {
                Ok(Some(text)) => out.push(parse_child_message(&text)),
                Ok(None) => {}
                Err(e) => out.push(Err(e)),
            }
        }
        out
    }

    #[test]
    fn framing_joins_lines_until_end() {
        let got = parse_stream(
            b"{\"command\":\n\"sync\"}\nend\n{\"pid\": 42}\r\nend\r\n{\"comm",
            1000,
        );
        assert_eq!(got, vec![Ok(ChildMsg::Sync), Ok(ChildMsg::Pid(42))]);
    }

    #[test]
    fn emit_defaults_follow_storm() {
        let Ok(ChildMsg::Emit(e)) = one(r#"{"command":"emit","tuple":[1,"a"]}"#) else {
            panic!()
        };
        assert_eq!(e.stream, None);
        assert_eq!(e.task, None);
        assert!(e.need_task_ids, "need_task_ids defaults to true");
        assert!(e.anchors.is_empty());
        assert_eq!(e.id, None);
        assert_eq!(e.tuple.to_vec(), vec![Value::Int(1), Value::from("a")]);
    }

    #[test]
    fn emit_fields() {
        let Ok(ChildMsg::Emit(e)) = one(
            r#"{"command":"emit","id":{"k":[1]},"anchors":"7","stream":"s","task":0,"tuple":[],"need_task_ids":false}"#,
        ) else {
            panic!()
        };
        assert_eq!(e.id, Some(json!({"k": [1]})));
        assert_eq!(e.anchors.to_vec(), vec![InputId::Num(7)]);
        assert_eq!(e.stream.as_deref(), Some("s"));
        assert_eq!(e.task, None, "task 0 is a grouped emit");
        assert!(!e.need_task_ids);
        let Ok(ChildMsg::Emit(d)) = one(r#"{"command":"emit","task":9,"anchors":["1",2],"tuple":[null]}"#)
        else {
            panic!()
        };
        assert_eq!(d.task, Some(9));
        assert!(!d.need_task_ids, "direct emits never get task ids");
        assert_eq!(d.anchors.to_vec(), vec![InputId::Num(1), InputId::Num(2)]);
    }

    #[test]
    fn other_commands() {
        assert_eq!(
            one(r#"{"command":"ack","id":"5"}"#),
            Ok(ChildMsg::Ack("5".into()))
        );
        assert_eq!(
            one(r#"{"command":"fail","id":6}"#),
            Ok(ChildMsg::Fail("6".into()))
        );
        assert_eq!(
            one(r#"{"command":"log","msg":"hi"}"#),
            Ok(ChildMsg::Log {
                msg: "hi".into(),
                level: 2
            })
        );
        assert_eq!(
            one(r#"{"command":"log","msg":"x","level":9}"#),
            Ok(ChildMsg::Log {
                msg: "x".into(),
                level: 5
            })
        );
        assert_eq!(
            one(r#"{"command":"error","msg":"boom"}"#),
            Ok(ChildMsg::Error("boom".into()))
        );
        assert_eq!(
            one(r#"{"command":"metrics","name":"m","params":3}"#),
            Ok(ChildMsg::Metrics {
                name: "m".into(),
                params: json!(3)
            })
        );
    }

    /// Ids the host did not send (any text pystorm may pass back) keep their exact text;
    /// only a `u64`'s own decimal form becomes a number, and ids are looked up as before.
    #[test]
    fn input_ids_round_trip_exactly() {
        for (text, num, number) in [
            ("0", true, Some(0)),
            ("17", true, Some(17)),
            ("18446744073709551615", true, Some(u64::MAX)),
            ("18446744073709551616", false, None),
            ("007", false, Some(7)),
            ("+7", false, Some(7)),
            ("-7", false, None),
            ("7 ", false, None),
            ("", false, None),
            ("x", false, None),
            ("\u{663}", false, None),
            ("a-b-c", false, None),
        ] {
            let id = InputId::from(text);
            assert_eq!(matches!(id, InputId::Num(_)), num, "{text:?}");
            assert_eq!(id.to_string(), text);
            assert_eq!(id.number(), number, "{text:?}");
            assert_eq!(InputId::from(text.to_owned()), id);
        }
    }

    #[test]
    fn ids_and_anchors_keep_their_text_on_both_paths() {
        for id in ["5", "007", "x", "", "18446744073709551616", "é"] {
            let ack = format!(r#"{{"command":"ack","id":{}}}"#, json!(id));
            let fail = format!(r#"{{"command":"fail","id":{}}}"#, json!(id));
            assert_eq!(one(&ack), Ok(ChildMsg::Ack(InputId::from(id))), "{ack}");
            assert_eq!(one(&fail), Ok(ChildMsg::Fail(InputId::from(id))), "{fail}");
            assert_eq!(one(&ack), parse_child_message_slow(&ack));
            let Ok(ChildMsg::Ack(got)) = one(&ack) else {
                panic!()
            };
            assert_eq!(got.to_string(), id);
        }
        let text = r#"{"command":"emit","anchors":["3","03","x",""],"tuple":[1]}"#;
        let Ok(ChildMsg::Emit(e)) = one(text) else {
            panic!()
        };
        let texts: Vec<String> = e.anchors.iter().map(ToString::to_string).collect();
        assert_eq!(texts, ["3", "03", "x", ""]);
        assert_eq!(e.anchors[0], InputId::Num(3));
        assert_eq!(Ok(ChildMsg::Emit(e)), parse_child_message_slow(text));
        // A spout's message id is any JSON, and a text one stays text.
        for id in [json!("7"), json!("007"), json!(7), json!({"k": ["1"]})] {
            let text = format!(r#"{{"command":"emit","id":{id},"tuple":[]}}"#);
            let Ok(ChildMsg::Emit(e)) = one(&text) else {
                panic!()
            };
            assert_eq!(e.id, Some(id));
        }
    }

    #[test]
    fn errors_are_specific() {
        assert!(matches!(one("{nope"), Err(ProtocolError::InvalidJson { .. })));
        assert_eq!(
            one(r#"{"command":"dance"}"#),
            Err(ProtocolError::UnknownCommand("dance".into()))
        );
        assert!(matches!(one("[1,2]"), Err(ProtocolError::Invalid(m)) if m.contains("an array")));
        assert!(matches!(
            one(r#"{"command":"emit"}"#),
            Err(ProtocolError::Invalid(_))
        ));
        assert!(matches!(
            one(r#"{"command":"emit","tuple":[],"task":-1}"#),
            Err(ProtocolError::Invalid(_))
        ));
        assert!(matches!(
            one(r#"{"command":"ack"}"#),
            Err(ProtocolError::Invalid(_))
        ));
        assert!(matches!(one(r#"{"pid":-3}"#), Err(ProtocolError::Invalid(_))));
        assert!(matches!(
            one(r#"{"command":"emit","tuple":[],"need_task_ids":"yes"}"#),
            Err(ProtocolError::Invalid(_))
        ));
    }

    #[test]
    fn oversized_messages_are_reported_once_and_framing_recovers() {
        let mut input = Vec::new();
        input.extend_from_slice(b"{\"command\":\"sync\"}\nend\n");
        input.extend_from_slice(format!("\"{}\"\n", "x".repeat(100)).as_bytes());
        input.extend_from_slice(format!("\"{}\"\n", "y".repeat(100)).as_bytes());
        input.extend_from_slice(b"end\n{\"command\":\"sync\"}\nend\n");
        let got = parse_stream(&input, 64);
        assert_eq!(
            got,
            vec![
                Ok(ChildMsg::Sync),
                Err(ProtocolError::TooLarge { max: 64 }),
                Ok(ChildMsg::Sync)
            ]
        );
    }

    #[test]
    fn not_utf8_is_an_error() {
        assert_eq!(
            parse_stream(b"\xff\xfe\nend\n", 100),
            vec![Err(ProtocolError::NotUtf8)]
        );
    }

    #[test]
    fn frame_appends_end() {
        assert_eq!(frame(&json!([1, 2])), "[1,2]\nend\n");
    }

    /// Messages found by [`Splitter`] when `bytes` arrive `step` bytes at a time, as the
    /// host reads them, parsed.
    fn split_in_steps(bytes: &[u8], step: usize) -> Vec<Result<ChildMsg, ProtocolError>> {
        let mut sp = Splitter::default();
        let (mut start, mut end, mut out) = (0, 0, Vec::new());
        while end < bytes.len() {
            end = (end + step.max(1)).min(bytes.len());
            while let Some((text, used)) = sp.next(&bytes[start..end]) {
                out.push(parse_framed(&bytes[start..start + text], usize::MAX));
                start += used;
            }
        }
        out
    }

    #[test]
    fn splitter_frames_like_the_framer_across_reads() {
        let input = b"{\"command\":\n\"sync\"}\nend\n{\"pid\": 42}\r\nend\r\n\n{\"command\":\"ack\",\"id\":\"1\"}\nend\n{\"comm";
        for step in [1, 2, 7, 1000] {
            assert_eq!(
                split_in_steps(input, step),
                vec![
                    Ok(ChildMsg::Sync),
                    Ok(ChildMsg::Pid(42)),
                    Ok(ChildMsg::Ack("1".into()))
                ],
                "step {step}"
            );
        }
    }

    proptest! {
        #[test]
        fn parse_stream_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_stream(&bytes, 128);
        }

        #[test]
        fn splitter_agrees_with_the_framer_on_any_line_structure(
            parts in proptest::collection::vec(
                prop_oneof![
                    Just("{\"command\":\"sync\"}"), Just("{\"command\":"), Just("\"ack\",\"id\":\"3\"}"),
                    Just("\n"), Just("\r\n"), Just("end\n"), Just("\nend\n"), Just("[1]"), Just("end"),
                ],
                0..30,
            ),
            step in 1usize..40,
        ) {
            let bytes = parts.concat().into_bytes();
            // Blank lines stay in the text as whitespace, so only error messages may differ.
            let kind = |v: Vec<Result<ChildMsg, ProtocolError>>| -> Vec<_> {
                v.into_iter().map(|r| r.map_err(|e| std::mem::discriminant(&e))).collect()
            };
            prop_assert_eq!(kind(split_in_steps(&bytes, step)), kind(reference_stream(&bytes, 1 << 20)));
        }

        #[test]
        fn parse_stream_never_panics_on_json_like_text(
            parts in proptest::collection::vec(
                prop_oneof![
                    Just("{".to_owned()), Just("}".to_owned()), Just("\"command\":".to_owned()),
                    Just("\"emit\"".to_owned()), Just("\"tuple\":[1]".to_owned()), Just(",".to_owned()),
                    Just("\nend\n".to_owned()), Just("\"task\":".to_owned()), Just("-1".to_owned()),
                    Just("\"anchors\":".to_owned()), Just("null".to_owned()), Just("\"pid\":".to_owned()),
                    Just("99999999999".to_owned()),
                ],
                0..40,
            )
        ) {
            let _ = parse_stream(parts.concat().as_bytes(), 256);
        }
    }
}
