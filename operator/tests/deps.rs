//! The operator talks to its workers through `squall-control` only and validates specs
//! with `squall-catalog`: neither the worker, its gRPC stack nor the engine and its
//! components are linked into it.

use std::collections::BTreeSet;
use std::process::Command;

/// The package names `cargo tree` prints for `args` (normal dependencies only).
fn tree(args: &[&str]) -> BTreeSet<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let out = Command::new(cargo)
        .args(["tree", "-e", "normal", "--prefix", "none"])
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap_or_else(|e| panic!("running cargo tree: {e}"));
    assert!(
        out.status.success(),
        "cargo tree {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_operator_links_neither_the_worker_nor_grpc() {
    let deps = tree(&["-p", "squall-operator"]);
    assert!(deps.contains("squall-control"), "{deps:?}");
    for banned in ["squall-worker", "tonic", "squall-proto"] {
        assert!(!deps.contains(banned), "squall-operator depends on {banned}");
    }
}

#[test]
fn the_contract_has_no_engine_behind_it() {
    let deps = tree(&["-p", "squall-control"]);
    for banned in [
        "squall-engine",
        "squall-components",
        "squall-connectors",
        "squall-multilang",
        "squall-worker",
        "tonic",
    ] {
        assert!(!deps.contains(banned), "squall-control depends on {banned}");
    }
}

/// Validating specs needs the built-in kinds' names and config checks (`squall-catalog`),
/// not their implementations: nothing that runs tasks is linked into the operator.
#[test]
fn the_operator_links_no_engine() {
    let deps = tree(&["-p", "squall-operator"]);
    assert!(deps.contains("squall-catalog"), "{deps:?}");
    for banned in [
        "tonic",
        "squall-engine",
        "squall-worker",
        "squall-components",
        "squall-connectors",
        "squall-multilang",
    ] {
        assert!(!deps.contains(banned), "squall-operator depends on {banned}");
    }
}

#[test]
fn the_catalog_has_no_implementations_behind_it() {
    let deps = tree(&["-p", "squall-catalog"]);
    for banned in [
        "squall-engine",
        "squall-components",
        "squall-connectors",
        "squall-multilang",
        "tokio",
    ] {
        assert!(!deps.contains(banned), "squall-catalog depends on {banned}");
    }
}
