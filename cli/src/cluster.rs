//! `squall run --workers N FILE`: the topology on N worker processes on loopback, under
//! a small supervisor (restarts workers that exit, moves the tasks of one that keeps
//! failing to the others), with the same live table, built from the workers' /metrics.

use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use squall_engine::Snapshot;
use squall_model::TopologyManifest;
use squall_worker::supervisor::{Cluster, ClusterSpec};

use crate::run::RunArgs;
use crate::{overrides, table, validate};

/// A worker restarted this often within `FLAPPING_WINDOW` has its tasks moved to the others.
const MAX_RESTARTS: u32 = 3;
const FLAPPING_WINDOW: Duration = Duration::from_secs(60);
/// How long "all finished, nothing in flight" must hold before the run ends.
const IDLE_END: Duration = Duration::from_millis(500);

/// The `squall-worker` binary: `SQUALL_WORKER_BIN`, else beside this executable, else PATH.
fn worker_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("SQUALL_WORKER_BIN") {
        return PathBuf::from(p);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("squall-worker")))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("squall-worker"))
}

fn absolute(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

pub fn run(args: RunArgs, workers: usize, limits: &squall_model::Limits) -> anyhow::Result<()> {
    anyhow::ensure!(workers >= 1, "--workers must be at least 1");
    let plan = validate::load(&args.file, &args.set, limits)?;
    if workers as u64 > u64::from(limits.max_workers) {
        return Err(validate::Invalid(format!(
            "--workers: {}",
            limits.exceeded(squall_model::LimitKey::Workers, workers)
        ))
        .into());
    }
    // Workers read the manifest with the overrides already applied.
    let manifest =
        TopologyManifest::from_file_within(&args.file, limits).map_err(|e| anyhow::anyhow!("{e}"))?;
    let manifest = overrides::apply(manifest, &args.set)?;
    let dir = std::env::temp_dir().join(format!("squall-{}-{}", plan.name, std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let effective = dir.join("topology.yaml");
    std::fs::write(&effective, manifest.to_yaml()?).context("writing the effective manifest")?;
    let base_dir = args.file.parent().map(|p| {
        if p.as_os_str().is_empty() {
            absolute(Path::new("."))
        } else {
            absolute(p)
        }
    });

    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let flag = Arc::clone(&interrupted);
        ctrlc::set_handler(move || {
            if flag.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
        })
        .context("installing the Ctrl-C handler")?;
    }
    let mut cluster = Cluster::start(ClusterSpec {
        manifest: effective,
        base_dir,
        plan: plan.clone(),
        workers,
        worker_bin: worker_bin(),
        dir: dir.clone(),
        tls: None,
        // The workers hold the manifest to the same limits as this run.
        extra_args: vec!["--limits".into(), limits.to_list()],
        tasks: None,
    })?;
    cluster.wait_ready(Duration::from_secs(30))?;

    let live = !args.quiet && std::io::stdout().is_terminal();
    let progress = !args.quiet && !live;
    let every = if live {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(5)
    };
    if progress {
        println!(
            "running {} on {workers} workers ({} tasks); logs and assignment in {}; Ctrl-C to stop",
            plan.name,
            plan.task_count(),
            dir.display()
        );
    }
    let order = table::manifest_order(&plan);
    let started = Instant::now();
    let mut last: Option<Snapshot> = None;
    let mut next_report = started + every;
    let mut restarts: Vec<Vec<Instant>> = vec![Vec::new(); workers];
    let mut idle_since: Option<Instant> = None;
    let mut last_emitted = u64::MAX;
    let end = loop {
        if interrupted.load(Ordering::SeqCst) {
            break "interrupted (Ctrl-C)".to_owned();
        }
        if let Some(limit) = args.run_for {
            if started.elapsed() >= limit {
                break format!("--for {} elapsed", table::duration(limit));
            }
        }
        for id in cluster.poll()? {
            let Some(i) = cluster.ids().iter().position(|x| *x == id) else {
                continue;
            };
            let now = Instant::now();
            restarts[i].retain(|t| now.duration_since(*t) < FLAPPING_WINDOW);
            restarts[i].push(now);
            if restarts[i].len() as u32 > MAX_RESTARTS && cluster.reassign_away(i)? {
                eprintln!("worker {id} keeps failing; its tasks move to the other workers");
                cluster.kill9(i);
            }
        }
        let snap = cluster.scrape();
        let (emitted, _, _, pending) = snap.spout_totals();
        let queued: u64 = snap.components.iter().map(|c| c.queue_depth).sum();
        // Done when every spout says finished on every worker that runs it (finite spouts
        // only) and nothing is pending or queued, and that holds for a moment.
        let spouts: Vec<_> = snap.components.iter().filter(|c| c.role == "spout").collect();
        let all_finished = !spouts.is_empty() && spouts.iter().all(|c| c.finished);
        if all_finished && emitted == last_emitted && pending == 0 && queued == 0 {
            if idle_since.get_or_insert_with(Instant::now).elapsed() >= IDLE_END {
                break "every spout finished and every tuple processed".to_owned();
            }
        } else {
            idle_since = None;
        }
        last_emitted = emitted;
        if Instant::now() >= next_report {
            if live {
                let mut out = format!(
                    "\x1b[2J\x1b[H{} on {workers} workers: up {} (Ctrl-C to stop)\n\n",
                    plan.name,
                    table::duration(started.elapsed())
                );
                out.push_str(&table::metrics(&snap, last.as_ref(), &order));
                let mut stdout = std::io::stdout().lock();
                let _ = stdout.write_all(out.as_bytes());
                let _ = stdout.flush();
            } else if progress {
                let (e, a, f, p) = snap.spout_totals();
                println!(
                    "[{}] spouts: {e} emitted, {a} acked, {f} failed, {p} pending",
                    table::duration(started.elapsed())
                );
            }
            last = Some(snap);
            next_report += every;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let final_snapshot = cluster.scrape();
    // SIGTERM: each worker deactivates its spouts and drains, capped like local mode.
    cluster.stop(plan.message_timeout.min(Duration::from_secs(5)) + Duration::from_secs(2));
    println!(
        "\n{} on {workers} workers after {}: {end}",
        plan.name,
        table::duration(started.elapsed())
    );
    print!("{}", table::metrics(&final_snapshot, None, &order));
    let (emitted, acked, failed, pending) = final_snapshot.spout_totals();
    println!("spouts: {emitted} emitted, {acked} acked, {failed} failed, {pending} pending");
    println!("worker logs: {}", dir.display());
    let _ = std::io::stdout().flush();
    Ok(())
}
