//! The bench API end to end on a small run (numbers are printed, not asserted).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use squall_model::{Config, ShellSpec};
use squall_multilang::bench::{bench_bolt, python_baseline, BoltBench};
use support::{repo, venv};

#[test]
fn a_python_pass_bolt_is_measured_against_its_baseline() {
    let python_dir = repo().join("multilang/python");
    let b = BoltBench {
        shell: ShellSpec {
            command: venv("streamparse_run").display().to_string(),
            args: vec!["squall_bench.PassBolt".into()],
            env: Default::default(),
            working_dir: Some(python_dir.display().to_string()),
            serializer: Default::default(),
        },
        tuples: 3000,
        payload: "x".repeat(100),
        acking: true,
        parallelism: 1,
        config: Config::new(),
        limit: Duration::from_secs(60),
    };
    let r = bench_bolt(&b).unwrap();
    // The window runs from 10% to 90% of the tuples at the sink.
    assert!(r.tuples > 0 && r.tuples <= 3000, "{r:?}");
    assert!(r.elapsed <= r.total, "{r:?}");
    let base = python_baseline(&venv("python"), &python_dir, 3000).unwrap();
    println!(
        "python pass bolt over multilang: {:.0} tuples/s; same work without Squall: {:.0} tuples/s",
        r.per_second(),
        base.per_second()
    );
    assert!(r.per_second() > 0.0 && base.per_second() > 0.0);
}
