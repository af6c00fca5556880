#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use prost::Message as _;
use squall_engine::fabric::{Control, Msg};
use squall_engine::{MessageIds, Packet, Schema, Value, Values, WireSchemas};
use squall_proto::wire::{self as pb, envelope, to_peer, value};

use super::*;

const YAML: &str = r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {name: wire}
spec:
  ackers: 1
  spouts:
    - {name: s, component: sequence}
  bolts:
    - {name: b, component: identity, config: {fields: [a, b, c]}, inputs: [{from: s}]}
"#;

fn schemas() -> (WireSchemas, &'static Schema) {
    let m = squall_model::TopologyManifest::from_yaml(YAML, "test").unwrap();
    let plan = squall_model::validate(&m, &squall_components::Builtins).unwrap();
    let c = plan.component("b").unwrap();
    let schema = Schema::intern("b", &c.outputs[0].stream, &c.outputs[0].fields);
    (WireSchemas::new(&plan), schema)
}

fn sample_values() -> Values {
    let mut map = BTreeMap::new();
    map.insert(
        "k".to_owned(),
        Value::List(Arc::new(vec![Value::Int(-3), Value::Null])),
    );
    map.insert(String::new(), Value::Bool(false));
    let mut v = Values::new();
    v.push(Value::from("héllo"));
    v.push(Value::Bytes(Bytes::from_static(b"\x00\x01")));
    v.push(Value::Map(Arc::new(map)));
    v
}

fn sample_msgs(schema: &'static Schema) -> Vec<Msg> {
    let mut ids = MessageIds::new();
    ids.push((u64::MAX, 7));
    ids.push((0, 1));
    let mut plain = Values::new();
    plain.push(Value::Float(-0.5));
    plain.push(Value::Int(i64::MIN));
    plain.push(Value::from(""));
    vec![
        Msg::Tuple(Packet::new(3, sample_values(), schema, -1, ids)),
        Msg::Tuple(Packet::new(0, plain, schema, 0, MessageIds::new())),
        Msg::Control(Control::AckInit {
            task: 1,
            root: 42,
            xor: 0,
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
    ]
}

fn frame(msgs: &[Msg], schemas: &WireSchemas) -> Bytes {
    let mut body = BytesMut::new();
    for m in msgs {
        assert!(encode_msg(m, schemas, &mut body));
    }
    let (h, n) = batch_header(body.len());
    let mut out = BytesMut::from(&h[..n]);
    out.extend_from_slice(&body);
    out.freeze()
}

fn pb_value(v: &Value) -> pb::Value {
    use value::Kind;
    let kind = match v {
        Value::Null => Kind::Null(true),
        Value::Bool(b) => Kind::Bool(*b),
        Value::Int(i) => Kind::Int(*i),
        Value::Float(f) => Kind::Float(*f),
        Value::Str(s) => Kind::Str(s.to_string()),
        Value::Bytes(b) => Kind::Bytes(b.clone()),
        Value::List(l) => Kind::List(pb::ValueList {
            values: l.iter().map(pb_value).collect(),
        }),
        Value::Map(m) => Kind::Map(pb::ValueMap {
            entries: m
                .iter()
                .map(|(k, v)| pb::MapEntry {
                    key: k.clone(),
                    value: Some(pb_value(v)),
                })
                .collect(),
        }),
    };
    pb::Value { kind: Some(kind) }
}

/// The generated types' view of an engine message: the reference for the encoder.
fn pb_envelope(m: &Msg, schemas: &WireSchemas) -> pb::Envelope {
    use envelope::Msg as E;
    let msg = match m {
        Msg::Tuple(tuple) => {
            let (component, stream) = schemas.id_of(tuple.schema()).unwrap();
            E::Tuple(pb::TupleMsg {
                task: tuple.task(),
                source_task: tuple.source_task(),
                component,
                stream,
                values: tuple.values().iter().map(pb_value).collect(),
                ids: tuple
                    .message_ids()
                    .iter()
                    .map(|(root, edge)| pb::MessageId {
                        root: *root,
                        edge: *edge,
                    })
                    .collect(),
            })
        }
        Msg::Control(Control::AckInit {
            task,
            root,
            xor,
            spout_task,
        }) => E::AckInit(pb::AckInit {
            task: *task,
            root: *root,
            xor: *xor,
            spout_task: *spout_task,
        }),
        Msg::Control(Control::Ack { task, root, val }) => E::Ack(pb::Ack {
            task: *task,
            root: *root,
            val: *val,
        }),
        Msg::Control(Control::Fail { task, root }) => E::Fail(pb::Fail {
            task: *task,
            root: *root,
        }),
        Msg::Control(Control::Reset { task, root }) => E::Reset(pb::Reset {
            task: *task,
            root: *root,
        }),
        Msg::Control(Control::Done { task, root, failed }) => E::Done(pb::Done {
            task: *task,
            root: *root,
            failed: *failed,
        }),
        Msg::Control(Control::SpoutReset { task, root }) => E::SpoutReset(pb::SpoutReset {
            task: *task,
            root: *root,
        }),
    };
    pb::Envelope { msg: Some(msg) }
}

/// Our frame of `msgs` is byte for byte what prost's generated code makes of them.
fn assert_encoded_as_prost_does(msgs: &[Msg], schemas: &WireSchemas) {
    let ours = frame(msgs, schemas);
    let reference = pb::ToPeer {
        kind: Some(to_peer::Kind::Batch(pb::Batch {
            messages: msgs.iter().map(|m| pb_envelope(m, schemas)).collect(),
        })),
    }
    .encode_to_vec();
    assert_eq!(ours.as_ref(), reference.as_slice());
}

#[test]
fn encoding_matches_the_generated_code_byte_for_byte() {
    let (schemas, schema) = schemas();
    let msgs = sample_msgs(schema);
    assert_encoded_as_prost_does(&msgs, &schemas);
}

/// Tuples whose keys, lengths and numbers overflow the encoder's stack staging many times
/// over, with multi-byte varints everywhere and long strings between them.
#[test]
fn wide_tuples_match_the_generated_code_byte_for_byte() {
    let (schemas, schema) = schemas();
    let mut values = Values::new();
    for i in 0..40i64 {
        values.push(match i % 7 {
            0 => Value::Int(i64::MIN + i),
            1 => Value::Float(f64::from(i as i32) * -1.5),
            2 => Value::from("é".repeat((i as usize) * 700)),
            3 => Value::Bytes(Bytes::from(vec![0xff; 128 + i as usize])),
            4 => Value::Bool(true),
            5 => Value::Null,
            _ => Value::List(Arc::new(vec![Value::Int(i << 40), Value::from("x")])),
        });
    }
    let mut ids = MessageIds::new();
    for i in 0..30u64 {
        ids.push((u64::MAX - i, i * (1 << 50)));
    }
    let msgs = vec![
        Msg::Tuple(Packet::new(u32::MAX, values.clone(), schema, i32::MIN, ids)),
        Msg::Tuple(Packet::new(200, values, schema, i32::MAX, MessageIds::new())),
    ];
    assert_encoded_as_prost_does(&msgs, &schemas);
}

#[test]
fn decoding_restores_every_message() {
    let (schemas, schema) = schemas();
    let msgs = sample_msgs(schema);
    let mut out = Vec::new();
    let got = decode_to_peer(frame(&msgs, &schemas), &schemas, &mut out).unwrap();
    assert!(matches!(got, Incoming::Batch(8)));
    for (a, b) in msgs.iter().zip(&out) {
        match (a, b) {
            (Msg::Tuple(a), Msg::Tuple(b)) => {
                assert_eq!(a.task(), b.task());
                assert_eq!(a.values(), b.values());
                assert_eq!(a.message_ids(), b.message_ids());
                assert_eq!(a.source_task(), b.source_task());
                assert!(std::ptr::eq(a.schema(), b.schema()));
            }
            (a, b) => assert_eq!(format!("{a:?}"), format!("{b:?}")),
        }
    }
}

#[test]
fn hello_round_trips() {
    let (schemas, _) = schemas();
    let hello = pb::Hello {
        protocol: 1,
        topology: "t".into(),
        plan_hash: "abc".into(),
        generation: 4,
        worker_id: "w1".into(),
    };
    let mut out = Vec::new();
    match decode_to_peer(hello_frame(hello.clone()), &schemas, &mut out).unwrap() {
        Incoming::Hello(h) => assert_eq!(h, hello),
        other => panic!("{other:?}"),
    }
}

#[test]
fn every_truncation_is_refused() {
    let (schemas, schema) = schemas();
    let full = frame(&sample_msgs(schema), &schemas);
    for len in 0..full.len() {
        let mut out = Vec::new();
        assert!(
            decode_to_peer(full.slice(..len), &schemas, &mut out).is_err(),
            "prefix of {len} bytes accepted"
        );
    }
}

#[test]
fn unknown_streams_and_wrong_arity_are_refused() {
    let (schemas, _) = schemas();
    let bad = |t: pb::TupleMsg| {
        pb::ToPeer {
            kind: Some(to_peer::Kind::Batch(pb::Batch {
                messages: vec![pb::Envelope {
                    msg: Some(envelope::Msg::Tuple(t)),
                }],
            })),
        }
        .encode_to_vec()
    };
    let mut out = Vec::new();
    let unknown = bad(pb::TupleMsg {
        component: 99,
        ..Default::default()
    });
    assert!(matches!(
        decode_to_peer(unknown.into(), &schemas, &mut out),
        Err(WireError::UnknownStream { component: 99, .. })
    ));
    // Component 0 is the acker (no values on its streams); find b's index instead.
    let arity = bad(pb::TupleMsg {
        component: 1,
        values: vec![pb_value(&Value::Int(1))],
        ..Default::default()
    });
    assert!(matches!(
        decode_to_peer(arity.into(), &schemas, &mut out),
        Err(WireError::Arity { .. })
    ));
}

#[test]
fn deep_nesting_is_refused() {
    let (schemas, _) = schemas();
    let mut v = Value::Null;
    for _ in 0..(MAX_DEPTH + 2) {
        v = Value::List(Arc::new(vec![v]));
    }
    let mut body = BytesMut::new();
    let schema = Schema::intern("b", "default", &["a".into(), "b".into(), "c".into()]);
    let mut vals = Values::new();
    vals.push(v);
    vals.push(Value::Null);
    vals.push(Value::Null);
    let msg = Msg::Tuple(Packet::new(1, vals, schema, 0, MessageIds::new()));
    assert!(encode_msg(&msg, &schemas, &mut body));
    let (h, n) = batch_header(body.len());
    let mut f = BytesMut::from(&h[..n]);
    f.extend_from_slice(&body);
    let mut out = Vec::new();
    assert!(matches!(
        decode_to_peer(f.freeze(), &schemas, &mut out),
        Err(WireError::TooDeep(_))
    ));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
    /// Arbitrary bytes never panic the decoder.
    #[test]
    fn garbage_never_panics(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
        let (schemas, _) = schemas();
        let mut out = Vec::new();
        let _ = decode_to_peer(Bytes::from(data), &schemas, &mut out);
    }
}

#[test]
fn one_encoder_follows_changing_streams() {
    let (schemas, b) = schemas();
    let m = squall_model::TopologyManifest::from_yaml(YAML, "test").unwrap();
    let plan = squall_model::validate(&m, &squall_components::Builtins).unwrap();
    let s = plan.component("s").unwrap();
    let s = Schema::intern("s", &s.outputs[0].stream, &s.outputs[0].fields);
    let tuple = |schema: &'static Schema| {
        let values = schema.fields.iter().map(|_| Value::Int(7)).collect();
        Msg::Tuple(Packet::new(1, values, schema, 0, MessageIds::new()))
    };
    let msgs = [tuple(b), tuple(s), tuple(s), tuple(b)];
    // Reference: a fresh lookup per message.
    let fresh = frame(&msgs, &schemas);
    let mut enc = MsgEncoder::new(&schemas);
    let mut body = BytesMut::new();
    for m in &msgs {
        assert!(enc.encode(m, &mut body));
    }
    let (h, n) = batch_header(body.len());
    let mut ours = BytesMut::from(&h[..n]);
    ours.extend_from_slice(&body);
    assert_eq!(ours.as_ref(), fresh.as_ref());
    let mut out = Vec::new();
    decode_to_peer(ours.freeze(), &schemas, &mut out).unwrap();
    let got: Vec<&str> = out
        .iter()
        .map(|m| match m {
            Msg::Tuple(tuple) => tuple.schema().component.as_str(),
            _ => "",
        })
        .collect();
    assert_eq!(got, ["b", "s", "s", "b"]);
}

#[test]
fn overlong_varints_are_refused() {
    let (schemas, _) = schemas();
    let mut out = Vec::new();
    // A key of eleven continuation bytes: longer than any u64.
    let mut frame = vec![0xff_u8; 11];
    frame.push(0);
    assert_eq!(
        decode_to_peer(Bytes::from(frame), &schemas, &mut out).unwrap_err(),
        WireError::Varint
    );
    // A varint cut off by the end of its enclosing message is truncated, not overlong.
    assert_eq!(
        decode_to_peer(Bytes::from_static(&[0x12, 0x02, 0x0a, 0x80]), &schemas, &mut out).unwrap_err(),
        WireError::Truncated("varint")
    );
}

#[test]
fn a_value_of_unknown_fields_only_is_refused_as_empty() {
    let (schemas, _) = schemas();
    // ToPeer.batch { Envelope.tuple { component: 1, values: [Value { field 9: 0 }] } }
    let frame: &[u8] = &[
        0x12, 0x0a, 0x0a, 0x08, 0x0a, 0x06, 0x18, 0x01, 0x2a, 0x02, 0x48, 0x00,
    ];
    let mut out = Vec::new();
    assert_eq!(
        decode_to_peer(Bytes::from_static(frame), &schemas, &mut out).unwrap_err(),
        WireError::Empty("value")
    );
    assert!(out.is_empty());
}

/// A map entry that leaves its value out decodes to null at the entry's depth, so the
/// depth bound must hold for it as for an explicit value: otherwise a frame is accepted
/// whose own re-encoding is refused (found by the `wire_frame` fuzz target).
#[test]
fn a_map_entry_without_its_value_counts_toward_the_depth_bound() {
    let (schemas, schema) = schemas();
    // `lists` lists around a map holding {"k": null}, as a frame whose entry omits the value.
    let frame_with = |lists: usize| -> Bytes {
        let mut v = Value::Map(Arc::new(BTreeMap::from([("k".to_owned(), Value::Null)])));
        for _ in 0..lists {
            v = Value::List(Arc::new(vec![v]));
        }
        let mut vals = Values::new();
        vals.extend([v, Value::Null, Value::Null]);
        let msg = Msg::Tuple(Packet::new(1, vals, schema, 0, MessageIds::new()));
        let mut pb = pb::ToPeer::decode(frame(&[msg], &schemas)).unwrap();
        let Some(to_peer::Kind::Batch(b)) = &mut pb.kind else {
            panic!("not a batch")
        };
        let Some(envelope::Msg::Tuple(t)) = &mut b.messages[0].msg else {
            panic!("not a tuple")
        };
        let mut v = &mut t.values[0];
        loop {
            match &mut v.kind {
                Some(value::Kind::List(l)) => v = &mut l.values[0],
                Some(value::Kind::Map(m)) => {
                    m.entries[0].value = None;
                    break;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        pb.encode_to_vec().into()
    };
    let mut out = Vec::new();
    // The map's entries sit at depth `lists + 1`: at the bound, refused.
    assert!(matches!(
        decode_to_peer(frame_with(MAX_DEPTH - 1), &schemas, &mut out),
        Err(WireError::TooDeep(_))
    ));
    // One level shallower it decodes, and what it decodes to encodes and decodes again.
    out.clear();
    decode_to_peer(frame_with(MAX_DEPTH - 2), &schemas, &mut out).unwrap();
    let again = frame(&out, &schemas);
    let mut back = Vec::new();
    decode_to_peer(again, &schemas, &mut back).unwrap();
    assert_eq!(format!("{out:?}"), format!("{back:?}"));
}
