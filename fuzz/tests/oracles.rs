//! The target bodies on inputs whose outcome is known: a body that checks nothing would
//! pass the replay, so these pin what the parsers return on the feed's real data.

use squall_connectors::resp::{read_reply, Reply};
use squall_connectors::sse::parse_body;
use squall_feed::{sse_event, talk_keys, DataSet, DEFAULT_SEED};

#[test]
fn the_talks_config_gives_the_feeds_keys() {
    let data = DataSet::new(DEFAULT_SEED);
    let talk = &squall_fuzz::edit_configs()[0];
    for i in 0..300 {
        let text = data.text(i);
        let keys = squall_components::json_keys::keys_of(talk, &text).unwrap_or_else(|e| panic!("{i}: {e}"));
        assert_eq!(keys, talk_keys(&data.edit(i)), "event {i}: {text}");
        squall_fuzz::edit_event(text.as_bytes());
    }
}

#[test]
fn feed_sse_bodies_give_back_the_events_in_any_split() {
    let data = DataSet::new(DEFAULT_SEED);
    let mut body = Vec::new();
    for i in 0..20 {
        sse_event(i, &data.text(i), &mut body);
    }
    let events = parse_body([&body[..]], false).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(events.len(), 20);
    for (i, (event, text, id)) in events.iter().enumerate() {
        assert_eq!(event, "message");
        assert_eq!(*text, data.text(i as u64));
        assert_eq!(id.as_deref(), Some(i.to_string().as_str()));
    }
    for cut in [0, 1, 17, body.len() / 2, body.len()] {
        let mut input = vec![cut as u8];
        input.extend_from_slice(&body);
        squall_fuzz::sse_stream(&input);
    }
}

#[test]
fn resp_replies_read_back_as_written() {
    let replies = vec![
        Reply::Simple("OK".to_owned()),
        Reply::Array(Some(vec![
            Reply::Bulk(Some(b"a\r\nb".to_vec())),
            Reply::Int(-7),
            Reply::Bulk(None),
        ])),
        Reply::Error("ERR x".to_owned()),
        Reply::Array(None),
    ];
    let mut bytes = Vec::new();
    for r in &replies {
        squall_fuzz::write_reply(r, &mut bytes);
    }
    let mut rest = &bytes[..];
    for r in &replies {
        assert_eq!(read_reply(&mut rest).ok().as_ref(), Some(r));
    }
    assert!(rest.is_empty());
    squall_fuzz::resp_reply(&bytes);
}

fn wire_seed(name: &str) -> Vec<u8> {
    let path = format!("{}/corpus/wire_frame/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn wire_seeds_decode_as_intended() {
    use squall_worker::wire::{Incoming, WireError};
    let decoded = |name: &str| squall_fuzz::decode(&wire_seed(name));
    for (name, n) in [
        ("batch-tuples", 2),
        ("batch-acker", 6),
        ("edge-deep-ok", 1),
        ("edge-map-dup-key", 1),
    ] {
        match decoded(name) {
            Ok((Incoming::Batch(got), msgs)) => assert!(got == n && msgs.len() == n, "{name}: {got}"),
            other => panic!("{name}: {other:?}"),
        }
        squall_fuzz::wire_frame(&wire_seed(name));
    }
    assert!(matches!(decoded("hello"), Ok((Incoming::Hello(h), _)) if h.topology == "word-count"));
    assert!(matches!(decoded("edge-mixed"), Ok((Incoming::Batch(0), m)) if m.len() == 1));
    assert!(matches!(
        decoded("edge-empty-envelope"),
        Err(WireError::Empty("envelope"))
    ));
    assert!(matches!(decoded("edge-too-deep"), Err(WireError::TooDeep(_))));
    assert!(matches!(
        decoded("edge-unknown-stream"),
        Err(WireError::UnknownStream { component: 5, .. })
    ));
    assert!(matches!(
        decoded("edge-arity"),
        Err(WireError::Arity { got: 1, want: 3, .. })
    ));
    assert!(matches!(decoded("edge-not-utf8"), Err(WireError::Utf8)));
    assert!(matches!(decoded("edge-bad-varint"), Err(WireError::Varint)));
    assert!(matches!(
        decoded("edge-group-wiretype"),
        Err(WireError::WireType { .. })
    ));
}
