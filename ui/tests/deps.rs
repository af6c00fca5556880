//! The operator serves this crate too, and must not link the data plane: the API depends
//! on neither the engine, the worker nor gRPC.

use std::collections::BTreeSet;
use std::process::Command;

/// The package names `cargo tree` prints for this crate (normal dependencies only).
fn tree() -> BTreeSet<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let out = Command::new(cargo)
        .args(["tree", "-e", "normal", "--prefix", "none", "-p", "squall-ui"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap_or_else(|e| panic!("running cargo tree: {e}"));
    assert!(
        out.status.success(),
        "cargo tree: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_api_links_no_engine_worker_or_grpc() {
    let deps = tree();
    assert!(deps.contains("hyper"), "{deps:?}");
    for banned in [
        "squall-engine",
        "squall-worker",
        "squall-components",
        "squall-connectors",
        "squall-multilang",
        "squall-proto",
        "tonic",
    ] {
        assert!(!deps.contains(banned), "squall-ui depends on {banned}");
    }
}
