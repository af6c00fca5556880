//! Writes the generated seed files of `corpus/`: real inputs produced by the project's own
//! encoders and data set, plus edge cases. Hand-written seeds live beside them.
//!
//! `cargo run --manifest-path fuzz/Cargo.toml --no-default-features --example seeds`
//! (files are overwritten, never deleted).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use bytes::Bytes;
use squall_engine::fabric::{Control, Msg};
use squall_engine::{MessageIds, Packet, Schema, Value, Values};
use squall_feed::{sse_event, DataSet, DEFAULT_SEED};

fn main() -> anyhow::Result<()> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let write = |target: &str, name: &str, bytes: &[u8]| -> anyhow::Result<()> {
        let path = dir.join(target).join(name);
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))
    };

    // Worker frames, written by the encoder the workers use.
    let fields = ["a", "b", "c"].map(String::from);
    let schema = Schema::intern("b", "default", &fields);
    let one = Schema::intern("s", "default", &["n".to_owned()]);
    let mut map = BTreeMap::new();
    map.insert(
        "k".to_owned(),
        Value::List(Arc::new(vec![Value::Int(-3), Value::Null])),
    );
    map.insert(String::new(), Value::Bool(true));
    let values: Values = [
        Value::from("héllo"),
        Value::Bytes(Bytes::from_static(b"\x00\x01")),
        Value::Map(Arc::new(map)),
    ]
    .into_iter()
    .collect();
    let mut ids = MessageIds::new();
    ids.push((u64::MAX, 7));
    let tuples = vec![
        Msg::Tuple(Packet::new(3, values, schema, -1, ids)),
        Msg::Tuple(Packet::new(
            0,
            [Value::Float(-0.5)].into_iter().collect(),
            one,
            2,
            MessageIds::new(),
        )),
    ];
    write("wire_frame", "batch-tuples", &squall_fuzz::encode(&tuples))?;
    let control = vec![
        Msg::Control(Control::AckInit {
            task: 1,
            root: 42,
            xor: 9,
            spout_task: 2,
        }),
        Msg::Control(Control::Ack {
            task: 1,
            root: 1 << 63,
            val: 5,
        }),
        Msg::Control(Control::Fail { task: 1, root: 9 }),
        Msg::Control(Control::Reset { task: 0, root: 9 }),
        Msg::Control(Control::Done {
            task: 2,
            root: 9,
            failed: true,
        }),
        Msg::Control(Control::SpoutReset { task: 2, root: 9 }),
    ];
    write("wire_frame", "batch-acker", &squall_fuzz::encode(&control))?;
    let hello = squall_proto::wire::Hello {
        protocol: 1,
        topology: "word-count".to_owned(),
        plan_hash: "3f2a".to_owned(),
        generation: 4,
        worker_id: "w-0".to_owned(),
    };
    write("wire_frame", "hello", &squall_worker::wire::hello_frame(hello))?;

    // Edit events as the feed sends them, valid and each kind of malformed.
    let data = DataSet::new(DEFAULT_SEED).with_malformed_every(5);
    for i in 0..20 {
        let kind = if data.is_malformed(i) { "malformed" } else { "edit" };
        write("edit_event", &format!("{kind}-{i}"), data.text(i).as_bytes())?;
    }

    // SSE bodies as the feed's server writes them.
    let mut body = Vec::new();
    for i in 0..3 {
        sse_event(100 + i, &data.text(i), &mut body);
    }
    write("sse_stream", "feed-events", &body)?;
    let mut two_lines = Vec::new();
    sse_event(7, "two\nlines", &mut two_lines);
    write("sse_stream", "feed-multiline", &two_lines)?;

    // Redis replies to the sink's pipelines.
    let mut replies = Vec::new();
    for r in [
        squall_connectors::resp::Reply::Bulk(Some(b"3".to_vec())),
        squall_connectors::resp::Reply::Int(1),
        squall_connectors::resp::Reply::Simple("OK".to_owned()),
        squall_connectors::resp::Reply::Error("WRONGTYPE Operation against a key".to_owned()),
    ] {
        squall_fuzz::write_reply(&r, &mut replies);
    }
    write("resp_reply", "pipeline", &replies)?;
    Ok(())
}
