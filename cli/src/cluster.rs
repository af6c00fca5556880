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
use squall_model::{DesiredState, Plan, TopologyManifest};
use squall_ui::{ControlError, Status, TopologySample};
use squall_worker::prom::Sample;
use squall_worker::supervisor::{Cluster, ClusterSpec};

use crate::run::RunArgs;
use crate::ui::convert::{self, WorkerFigures};
use crate::ui::{Act, LocalUi, Run as _};
use crate::{overrides, table, validate};

/// A worker restarted this often within `FLAPPING_WINDOW` has its tasks moved to the others.
const MAX_RESTARTS: u32 = 3;
const FLAPPING_WINDOW: Duration = Duration::from_secs(60);
/// How long "all finished, nothing in flight" must hold before the run ends.
const IDLE_END: Duration = Duration::from_millis(500);
/// How often the loop scrapes the workers.
const POLL: Duration = Duration::from_millis(200);

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

/// A started cluster and what the run keeps of its setup.
struct Started {
    plan: Plan,
    /// The effective manifest, rewritten when the API (de)activates the topology.
    manifest: TopologyManifest,
    effective: PathBuf,
    dir: PathBuf,
    cluster: Cluster,
}

fn start(args: &RunArgs, workers: usize, limits: &squall_model::Limits) -> anyhow::Result<Started> {
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
    let mut cluster = Cluster::start(ClusterSpec {
        manifest: effective.clone(),
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
    Ok(Started {
        plan,
        manifest,
        effective,
        dir,
        cluster,
    })
}

/// Every reachable worker's page, with the worker's index.
struct Scraped {
    workers: Vec<usize>,
    pages: Vec<Vec<Sample>>,
}

impl Scraped {
    fn take(cluster: &Cluster, workers: usize) -> Scraped {
        let (workers, pages) = (0..workers)
            .filter_map(|i| cluster.scrape_one(i).map(|p| (i, p)))
            .unzip();
        Scraped { workers, pages }
    }
}

/// Restarts are the supervisor's; a worker restarted too often has its tasks moved away.
fn handle_exits(cluster: &mut Cluster, restarts: &mut [Vec<Instant>]) -> anyhow::Result<()> {
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
    Ok(())
}

/// Done when every spout says finished on every worker that runs it (finite spouts only)
/// and nothing is pending or queued, and that holds for a moment.
struct Idle {
    since: Option<Instant>,
    last_emitted: u64,
}

impl Idle {
    fn drained(&mut self, snap: &Snapshot) -> bool {
        let (emitted, _, _, pending) = snap.spout_totals();
        let queued: u64 = snap.components.iter().map(|c| c.queue_depth).sum();
        let spouts: Vec<_> = snap.components.iter().filter(|c| c.role == "spout").collect();
        let all_finished = !spouts.is_empty() && spouts.iter().all(|c| c.finished);
        let quiet = all_finished && emitted == self.last_emitted && pending == 0 && queued == 0;
        self.last_emitted = emitted;
        if !quiet {
            self.since = None;
            return false;
        }
        self.since.get_or_insert_with(Instant::now).elapsed() >= IDLE_END
    }
}

fn report(
    live: bool,
    title: &str,
    started: Instant,
    snap: &Snapshot,
    last: Option<&Snapshot>,
    order: &[String],
) {
    if live {
        let mut out = format!(
            "\x1b[2J\x1b[H{title}: up {} (Ctrl-C to stop)\n\n",
            table::duration(started.elapsed())
        );
        out.push_str(&table::metrics(snap, last, order));
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(out.as_bytes());
        let _ = stdout.flush();
    } else {
        let (e, a, f, p) = snap.spout_totals();
        println!(
            "[{}] spouts: {e} emitted, {a} acked, {f} failed, {p} pending",
            table::duration(started.elapsed())
        );
    }
}

pub fn run(args: RunArgs, workers: usize, limits: &squall_model::Limits) -> anyhow::Result<()> {
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
    let Started {
        plan,
        mut manifest,
        effective,
        dir,
        mut cluster,
    } = start(&args, workers, limits)?;
    let ui = match args.ui {
        Some(addr) => {
            let scraped = Scraped::take(&cluster, workers);
            let merged = squall_worker::prom::merge(&scraped.pages);
            let first = OnWorkers {
                cluster: &mut cluster,
                plan: &plan,
                manifest: &mut manifest,
                effective: &effective,
                scraped: &scraped,
                merged: &merged,
            }
            .sample();
            Some(LocalUi::start(addr, first)?)
        }
        None => None,
    };
    let mut title = format!("{} on {workers} workers", plan.name);
    if let Some(ui) = &ui {
        println!("REST API: {} (topology id {})", ui.url(), plan.name);
        println!("Web UI: {}", ui.page_url(&plan.name));
        let _ = std::io::stdout().flush();
        title = format!("{title} (API {})", ui.url());
    }

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
    let mut idle = Idle {
        since: None,
        last_emitted: u64::MAX,
    };
    let mut kill_wait = None;
    let end = loop {
        if interrupted.load(Ordering::SeqCst) {
            break "interrupted (Ctrl-C)".to_owned();
        }
        if let Some(limit) = args.run_for {
            if started.elapsed() >= limit {
                break format!("--for {} elapsed", table::duration(limit));
            }
        }
        handle_exits(&mut cluster, &mut restarts)?;
        let scraped = Scraped::take(&cluster, workers);
        let snap = squall_worker::prom::merge(&scraped.pages);
        if idle.drained(&snap) {
            break "every spout finished and every tuple processed".to_owned();
        }
        if (live || progress) && Instant::now() >= next_report {
            report(live, &title, started, &snap, last.as_ref(), &order);
            last = Some(snap.clone());
            next_report += every;
        }
        let Some(ui) = &ui else {
            std::thread::sleep(POLL);
            continue;
        };
        let mut run = OnWorkers {
            cluster: &mut cluster,
            plan: &plan,
            manifest: &mut manifest,
            effective: &effective,
            scraped: &scraped,
            merged: &snap,
        };
        if let Some(wait) = ui.serve_for(POLL, &mut run) {
            kill_wait = Some(wait);
            break "killed through the REST API".to_owned();
        }
    };
    let final_snapshot = cluster.scrape();
    // SIGTERM: each worker deactivates its spouts and drains, capped like local mode
    // unless the API's kill asked for its own wait.
    let drain = kill_wait.unwrap_or(plan.message_timeout.min(Duration::from_secs(5)));
    cluster.stop(drain + Duration::from_secs(2));
    if let Some(ui) = ui {
        ui.stop();
    }
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

/// The API's view of a run on workers, between two polls of the loop.
struct OnWorkers<'a> {
    cluster: &'a mut Cluster,
    plan: &'a Plan,
    manifest: &'a mut TopologyManifest,
    effective: &'a Path,
    scraped: &'a Scraped,
    merged: &'a Snapshot,
}

impl crate::ui::Run for OnWorkers<'_> {
    fn sample(&mut self) -> TopologySample {
        let ids = self.cluster.ids();
        let parts: Vec<Snapshot> = self
            .scraped
            .pages
            .iter()
            .map(|p| squall_worker::prom::merge(std::slice::from_ref(p)))
            .collect();
        let workers: Vec<WorkerFigures<'_>> = self
            .scraped
            .workers
            .iter()
            .zip(&parts)
            .map(|(i, snapshot)| WorkerFigures {
                id: &ids[*i],
                http: self.cluster.http_addr(*i),
                snapshot,
            })
            .collect();
        let status = match self.manifest.spec.desired_state {
            DesiredState::Active => Status::Active,
            DesiredState::Inactive => Status::Inactive,
        };
        convert::on_workers(self.plan, self.merged, &workers, status)
    }

    /// Workers switch their spouts in place when the manifest's desired state changes
    /// with a new assignment generation, as the operator does it on a cluster.
    fn act(&mut self, act: Act) -> Result<(), ControlError> {
        self.manifest.spec.desired_state = match act {
            Act::Activate => DesiredState::Active,
            Act::Deactivate => DesiredState::Inactive,
        };
        let refused = |what: &str, e: &dyn std::fmt::Display| ControlError::Refused(format!("{what}: {e}"));
        let yaml = self
            .manifest
            .to_yaml()
            .map_err(|e| refused("writing the manifest", &e))?;
        std::fs::write(self.effective, yaml).map_err(|e| refused("writing the manifest", &e))?;
        let mut next = self.cluster.assignment().clone();
        next.generation += 1;
        self.cluster
            .set_assignment(next)
            .map_err(|e| refused("writing the assignment", &e))
    }
}
