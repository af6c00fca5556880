//! Worker wire frames from peers (`squall_worker::wire`).

use std::sync::OnceLock;

use bytes::{Bytes, BytesMut};
use squall_engine::fabric::Msg;
use squall_engine::WireSchemas;
use squall_worker::wire::{batch_header, decode_to_peer, encode_msg, hello_frame, Incoming, WireError};

/// The plan frames are decoded against: a spout stream of one field and a bolt stream of
/// three, so both arity checks and unknown stream ids are reachable.
pub const WIRE_PLAN: &str = r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {name: fuzz-wire}
spec:
  ackers: 1
  spouts:
    - {name: s, component: sequence}
  bolts:
    - {name: b, component: identity, config: {fields: [a, b, c]}, inputs: [{from: s}]}
"#;

fn schemas() -> &'static WireSchemas {
    static SCHEMAS: OnceLock<WireSchemas> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        // A constant of this crate, not input: failing here is a bug in the harness.
        let manifest = squall_model::TopologyManifest::from_yaml(WIRE_PLAN, "WIRE_PLAN")
            .unwrap_or_else(|e| panic!("WIRE_PLAN does not parse: {e}"));
        let plan = squall_model::validate(&manifest, &squall_components::Builtins)
            .unwrap_or_else(|e| panic!("WIRE_PLAN does not validate: {e}"));
        WireSchemas::new(&plan)
    })
}

/// The only call of the decoder: adapt here when its signature changes.
pub fn decode(frame: &[u8]) -> Result<(Incoming, Vec<Msg>), WireError> {
    let mut out = Vec::new();
    let incoming = decode_to_peer(Bytes::copy_from_slice(frame), schemas(), &mut out)?;
    Ok((incoming, out))
}

/// `msgs` as one `ToPeer { batch }` frame, as a worker's link writes it.
pub fn encode(msgs: &[Msg]) -> Bytes {
    let mut body = BytesMut::new();
    for m in msgs {
        // Decoded tuples carry schemas of the same plan, so each has wire ids.
        assert!(encode_msg(m, schemas(), &mut body), "no wire ids for {m:?}");
    }
    let (head, n) = batch_header(body.len());
    let mut frame = BytesMut::with_capacity(n + body.len());
    frame.extend_from_slice(&head[..n]);
    frame.extend_from_slice(&body);
    frame.freeze()
}

/// Decodes a frame; whatever decodes must encode back to bytes that decode to the same
/// messages (compared by their Debug form: `Msg` has no `PartialEq`), and re-encoding
/// those must give the same bytes.
pub fn wire_frame(data: &[u8]) {
    let Ok((incoming, msgs)) = decode(data) else {
        return;
    };
    if let Incoming::Hello(hello) = &incoming {
        let again = decode(&hello_frame(hello.clone()));
        assert!(
            matches!(&again, Ok((Incoming::Hello(h), m)) if h == hello && m.is_empty()),
            "hello {hello:?} came back as {again:?}"
        );
    }
    if msgs.is_empty() {
        return;
    }
    let frame = encode(&msgs);
    let (incoming, again) = decode(&frame).unwrap_or_else(|e| panic!("re-encoded batch refused: {e}"));
    assert!(
        matches!(incoming, Incoming::Batch(n) if n == msgs.len()),
        "re-encoded batch of {} decoded as {incoming:?}",
        msgs.len()
    );
    assert_eq!(
        format!("{msgs:?}"),
        format!("{again:?}"),
        "decode(encode(x)) != x"
    );
    assert_eq!(encode(&again), frame, "encoding the same messages twice differs");
}
