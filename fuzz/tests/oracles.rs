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

#[test]
fn the_encoders_frames_pass_the_wire_body() {
    // Written by the encoder (examples/seeds.rs): it decodes and round-trips.
    let frame = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/corpus/wire_frame/batch-tuples"
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(!frame.is_empty());
    squall_fuzz::wire_frame(&frame);
}
