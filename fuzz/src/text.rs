//! Text from processes and users: multilang child output and topology manifests.

use squall_multilang::codec::{parse_framed, parse_stream, Splitter};
use squall_multilang::msgpack;

/// The message bound the multilang target parses with; small, so inputs of fuzzing size
/// reach the too-large error.
pub const MULTILANG_MAX: usize = 4096;

/// The nesting bound the msgpack target parses with; small, so fuzzing reaches it.
pub const MULTILANG_MAX_DEPTH: usize = 16;

/// The name manifest errors must carry.
pub const MANIFEST_ORIGIN: &str = "fuzz.yaml";

/// Child output parsed whole, as `parse_stream` does, and arriving in two reads, as the
/// host's buffer sees it: the same messages either way.
pub fn multilang_stream(data: &[u8]) {
    let whole = parse_stream(data, MULTILANG_MAX);
    let cut = crate::cut(data);
    let mut splitter = Splitter::default();
    let mut buf = Vec::new();
    let mut pieces = Vec::new();
    for read in [&data[..cut], &data[cut..]] {
        buf.extend_from_slice(read);
        while let Some((text, used)) = splitter.next(&buf) {
            pieces.push(parse_framed(&buf[..text], MULTILANG_MAX));
            buf.drain(..used);
        }
    }
    assert_eq!(whole, pieces, "split at {cut}");
}

/// Child output in msgpack parsed whole, as `msgpack::parse_stream` does, and arriving in
/// two reads, as the host's buffer sees it: the same messages and the same first error
/// either way, and every delimited object within the bounds.
pub fn multilang_msgpack(data: &[u8]) {
    let whole = msgpack::parse_stream(data, MULTILANG_MAX, MULTILANG_MAX_DEPTH);
    let cut = crate::cut(data);
    let mut splitter = msgpack::Splitter::default();
    let mut buf = Vec::new();
    let mut pieces = Vec::new();
    'reads: for read in [&data[..cut], &data[cut..]] {
        buf.extend_from_slice(read);
        loop {
            match splitter.next(&buf, MULTILANG_MAX, MULTILANG_MAX_DEPTH) {
                Ok(Some(n)) => {
                    assert!(
                        n > 0 && n <= buf.len() && n <= MULTILANG_MAX,
                        "object of {n} bytes"
                    );
                    let m = msgpack::parse_message(&buf[..n], MULTILANG_MAX_DEPTH);
                    let failed = m.is_err();
                    pieces.push(m);
                    buf.drain(..n);
                    if failed {
                        break 'reads;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    pieces.push(Err(e));
                    break 'reads;
                }
            }
        }
    }
    assert_eq!(whole, pieces, "split at {cut}");
}

/// A manifest read and validated: never a panic, and every error says where. The same
/// spec stored as the API server would hold it, read and judged as the operator does,
/// gets the same verdict; input that is JSON is also read as such a stored object.
pub fn manifest(data: &[u8]) {
    if data.first() == Some(&b'{') {
        stored(data);
    }
    let text = String::from_utf8_lossy(data);
    let limits = squall_model::Limits::default();
    let manifest = match squall_model::TopologyManifest::from_yaml(&text, MANIFEST_ORIGIN) {
        Ok(m) => m,
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.starts_with(MANIFEST_ORIGIN),
                "error without its origin: {msg}"
            );
            return;
        }
    };
    let local = squall_model::validate(&manifest, &squall_components::Builtins);
    match &local {
        Err(errors) => {
            assert!(!errors.0.is_empty(), "validation failed without a problem");
            for p in &errors.0 {
                assert!(!p.path.is_empty(), "problem without a path: {p}");
            }
        }
        Ok(plan) => within_limits(plan, &limits),
    }
    // The operator's path: the spec as a stored object, through JSON.
    let object = serde_json::json!({
        "apiVersion": squall_model::API_VERSION,
        "kind": squall_model::KIND,
        "metadata": {"name": manifest.metadata.name, "namespace": "default"},
        "spec": manifest.spec,
    });
    let Ok(json) = serde_json::to_vec(&object) else {
        return;
    };
    let t: squall_model::crd::Topology = match serde_json::from_slice(&json) {
        Ok(t) => t,
        Err(e) => panic!("a spec squall reads is unreadable as a stored object: {e}"),
    };
    let verdict = judge(&t);
    assert_eq!(
        verdict.is_ok(),
        local.is_ok(),
        "the operator and squall validate disagree: {verdict:?}"
    );
}

/// A stored Topology object, read and judged as the operator does: reading it never
/// fails on its nesting, and judging it never builds more than the limits allow.
fn stored(data: &[u8]) {
    match serde_json::from_slice::<squall_model::crd::Topology>(data) {
        Ok(t) => {
            let _ = judge(&t);
        }
        Err(e) => assert!(
            !e.to_string().contains("recursion limit"),
            "a stored object's nesting made it unreadable: {e}"
        ),
    }
}

fn judge(t: &squall_model::crd::Topology) -> Result<squall_model::Plan, String> {
    let limits = squall_model::Limits::default();
    let manifest = t.manifest();
    let yaml = manifest.to_yaml().map_err(|e| e.to_string())?;
    let verdict = squall_model::crd::plan_stored(&manifest, &yaml, &squall_components::Builtins, &limits);
    if let Ok(plan) = &verdict {
        within_limits(plan, &limits);
    }
    verdict
}

fn within_limits(plan: &squall_model::Plan, limits: &squall_model::Limits) {
    assert!(
        plan.task_count() <= limits.max_total_tasks,
        "a plan past maxTotalTasks"
    );
    for c in &plan.components {
        assert!(
            c.parallelism <= limits.max_parallelism,
            "{}: past maxParallelism",
            c.name
        );
    }
}
