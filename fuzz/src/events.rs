//! Live-feed input: SSE response bodies, Redis replies and the edit events' JSON.

use std::sync::OnceLock;

use serde::de::IgnoredAny;
use squall_components::json_keys::{keys_of, JsonKeysConfig, Rule};
use squall_connectors::resp::{read_reply, Reply};
use squall_connectors::sse::parse_body;

/// An SSE body read whole, in two reads, and in chunked transfer encoding cut at other
/// places: the same events each way. The raw bytes as a chunked body must not panic.
pub fn sse_stream(data: &[u8]) {
    let whole = parse_body([data], false);
    let cut = crate::cut(data);
    let (a, b) = data.split_at(cut);
    assert_eq!(parse_body([a, b], false), whole, "split at {cut}");

    let mut chunked = Vec::new();
    for piece in [a, b].into_iter().filter(|p| !p.is_empty()) {
        chunked.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        chunked.extend_from_slice(piece);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    // Reads that do not line up with chunks: one cut in the chunked bytes.
    let (x, y) = chunked.split_at(cut.min(chunked.len()) / 2 * 3 % (chunked.len() + 1));
    assert_eq!(parse_body([x, y], true), whole, "chunked, split at {}", x.len());

    let _ = parse_body([a, b], true);
}

/// Replies read one after another until the bytes run out or one is refused; those read,
/// written back in RESP, read the same.
pub fn resp_reply(data: &[u8]) {
    let mut rest = data;
    let mut replies = Vec::new();
    while !rest.is_empty() {
        match read_reply(&mut rest) {
            Ok(r) => replies.push(r),
            Err(_) => break,
        }
    }
    let mut bytes = Vec::new();
    for r in &replies {
        write_reply(r, &mut bytes);
    }
    let mut again = &bytes[..];
    for r in &replies {
        let read = read_reply(&mut again).ok();
        assert_eq!(
            read.as_ref(),
            Some(r),
            "written as {:?}",
            String::from_utf8_lossy(&bytes)
        );
    }
    assert!(again.is_empty(), "bytes left over after re-reading");
}

/// Appends `reply` in RESP2, as Redis would send it.
pub fn write_reply(reply: &Reply, out: &mut Vec<u8>) {
    match reply {
        Reply::Simple(s) => out.extend_from_slice(format!("+{s}\r\n").as_bytes()),
        Reply::Error(s) => out.extend_from_slice(format!("-{s}\r\n").as_bytes()),
        Reply::Int(i) => out.extend_from_slice(format!(":{i}\r\n").as_bytes()),
        Reply::Bulk(None) => out.extend_from_slice(b"$-1\r\n"),
        Reply::Bulk(Some(b)) => {
            out.extend_from_slice(format!("${}\r\n", b.len()).as_bytes());
            out.extend_from_slice(b);
            out.extend_from_slice(b"\r\n");
        }
        Reply::Array(None) => out.extend_from_slice(b"*-1\r\n"),
        Reply::Array(Some(items)) => {
            out.extend_from_slice(format!("*{}\r\n", items.len()).as_bytes());
            for item in items {
                write_reply(item, out);
            }
        }
    }
}

/// The json-keys configurations events are parsed with: the talk's (Python spelling,
/// optional nested path) and one with JSON spelling, a deeper path and shared prefixes.
pub fn edit_configs() -> &'static [JsonKeysConfig] {
    static CONFIGS: OnceLock<Vec<JsonKeysConfig>> = OnceLock::new();
    CONFIGS.get_or_init(|| {
        let talk = serde_json::json!({
            "field": "event",
            "format": "python",
            "keys": [
                {"prefix": "isanon_", "path": "is_anon"},
                {"path": "is_anon", "then": "anon_anon", "else": "anon_loggedin"},
                {"path": "is_bot", "then": "bot_bot", "else": "bot_human"},
                {"prefix": "action_", "path": "action"},
                {"prefix": "country_", "path": "geo_ip.country_name", "optional": true},
            ],
        });
        let other = serde_json::json!({
            "keys": [
                {"prefix": "size_", "path": "change_size", "optional": true},
                {"path": "geo_ip", "then": "geo", "else": "nogeo"},
                {"prefix": "city_", "path": "geo_ip.city", "optional": true},
                {"prefix": "deep_", "path": "a.b.c.d", "optional": true},
                {"path": "hashtags", "then": "tagged", "else": "untagged"},
                {"prefix": "title_", "path": "page_title"},
            ],
        });
        [talk, other]
            .into_iter()
            .map(|c| {
                // Constants of this crate, not input: failing here is a bug in the harness.
                let config = serde_json::from_value(c).unwrap_or_else(|e| panic!("config: {e}"));
                JsonKeysConfig::parse(&config).unwrap_or_else(|e| panic!("config: {e}"))
            })
            .collect()
    })
}

/// An event's keys: only from a JSON object, never more than one per rule, and always
/// one per then/else rule.
pub fn edit_event(data: &[u8]) {
    // The bolt only ever sees UTF-8 (a string value); lossy keeps every input useful.
    let text = &*String::from_utf8_lossy(data);
    for config in edit_configs() {
        let Ok(keys) = keys_of(config, text) else {
            continue;
        };
        assert!(
            text.trim_start().starts_with('{') && serde_json::from_str::<IgnoredAny>(text).is_ok(),
            "keys {keys:?} from text that is not one JSON object"
        );
        let truthy = config
            .rules
            .iter()
            .filter(|r| matches!(r, Rule::Truthy { .. }))
            .count();
        assert!(
            (truthy..=config.rules.len()).contains(&keys.len()),
            "{} keys for {} rules ({truthy} then/else): {keys:?}",
            keys.len(),
            config.rules.len()
        );
    }
}
