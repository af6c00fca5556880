//! Text from processes and users: multilang child output and topology manifests.

use squall_multilang::codec::{parse_framed, parse_stream, Splitter};

/// The message bound the multilang target parses with; small, so inputs of fuzzing size
/// reach the too-large error.
pub const MULTILANG_MAX: usize = 4096;

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

/// A manifest read and validated: never a panic, and every error says where.
pub fn manifest(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
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
    if let Err(errors) = squall_model::validate(&manifest, &squall_components::Builtins) {
        assert!(!errors.0.is_empty(), "validation failed without a problem");
        for p in &errors.0 {
            assert!(!p.path.is_empty(), "problem without a path: {p}");
        }
    }
}
