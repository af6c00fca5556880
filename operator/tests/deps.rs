//! The operator talks to its workers through `squall-control` only: neither the worker
//! crate nor its gRPC stack is linked into it, and the contract itself has no engine.

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

/// The engine still comes in with the component catalog that validates specs
/// (`squall-components`), and only that way: nothing the operator uses of it runs tasks.
#[test]
fn the_engine_comes_only_with_the_component_catalog() {
    let direct = tree(&["-p", "squall-operator", "--depth", "1"]);
    assert!(!direct.contains("squall-engine"), "{direct:?}");
    let dependents = tree(&["-p", "squall-operator", "-i", "squall-engine"]);
    let through: BTreeSet<String> = [
        "squall-engine",
        "squall-components",
        "squall-connectors",
        "squall-multilang",
        "squall-operator",
    ]
    .map(str::to_owned)
    .into();
    assert!(dependents.is_subset(&through), "{dependents:?}");
}
