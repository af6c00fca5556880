//! `squall run`: local mode, like Storm's LocalCluster or `sparse run`.

use std::fmt;
use std::io::{IsTerminal as _, Write as _};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use squall_components::Builtins;
use squall_engine::{EngineOptions, Snapshot, Topology};
use squall_model::Plan;
use squall_ui::{ControlError, Status, TopologySample};

use crate::overrides::{self, Override};
use crate::ui::convert::{self, ErrorClock};
use crate::ui::{Act, LocalUi, Run as _};
use crate::{table, validate};

#[derive(clap::Args)]
pub struct RunArgs {
    /// The Topology manifest (YAML).
    pub(crate) file: PathBuf,
    /// Stop after this long, e.g. 30s, 5m, 1h30m, 500ms. Without it, the run lasts until
    /// Ctrl-C or until every (finite) spout is done and every tuple processed.
    #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) run_for: Option<Duration>,
    /// Override a manifest field, e.g. `spec.maxSpoutPending=100`,
    /// `spec.bolts.count.parallelism=4`, `spec.config.squall.queue.capacity=1024`.
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = overrides::parse)]
    pub(crate) set: Vec<Override>,
    /// No live table or progress lines; only the final summary.
    #[arg(long, short)]
    pub(crate) quiet: bool,
    /// Run on N worker processes on loopback (127.0.0.2, .3, ...) linked by the gRPC data
    /// plane, under a small supervisor, instead of in this process.
    #[arg(long, value_name = "N")]
    pub(crate) workers: Option<usize>,
    /// Serve Storm's REST API (`/api/v1/...`) for this run on ADDR, e.g. 127.0.0.1:8080
    /// (port 0 picks a free one); its URL is printed. Activate, deactivate and kill act on
    /// the run; rebalance is unsupported locally.
    #[arg(long, value_name = "ADDR")]
    pub(crate) ui: Option<SocketAddr>,
    /// Python virtual environment whose `bin` goes first on the PATH of `shell`
    /// components' children. Without it: the manifest's `squall.multilang.venv`, else
    /// `VIRTUAL_ENV`, else the `.cache/venv` of `make multilang-venv` found in the
    /// manifest's directory or a parent.
    #[arg(long, value_name = "DIR", env = "SQUALL_VENV")]
    pub(crate) venv: Option<PathBuf>,
}

/// Why a run ended.
enum End {
    Elapsed(Duration),
    Interrupted,
    Drained,
    /// Killed through the REST API, with this wait.
    Killed(Duration),
}

impl fmt::Display for End {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            End::Elapsed(d) => write!(f, "--for {} elapsed", table::duration(*d)),
            End::Interrupted => f.write_str("interrupted (Ctrl-C)"),
            End::Drained => f.write_str("all spouts finished and every tuple was processed"),
            End::Killed(_) => f.write_str("killed through the REST API"),
        }
    }
}

/// How often the loop checks for the end of the run.
const POLL: Duration = Duration::from_millis(200);
/// Storm's kill waits the message timeout for in-flight trees; a local run caps that.
const MAX_KILL_WAIT: Duration = Duration::from_secs(5);

pub fn run(mut args: RunArgs, limits: &squall_model::Limits) -> anyhow::Result<()> {
    // An unreadable manifest is reported by the load below. First, so a --set wins.
    if let Ok(manifest) = squall_model::TopologyManifest::from_file_within(&args.file, limits) {
        if let Some(venv) = crate::venv::choose(args.venv.as_deref(), &manifest, &args.file) {
            args.set.insert(0, venv);
        }
    }
    if let Some(n) = args.workers {
        return crate::cluster::run(args, n, limits);
    }
    let plan = validate::load(&args.file, &args.set, limits)?;
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let flag = Arc::clone(&interrupted);
        ctrlc::set_handler(move || {
            // A second Ctrl-C means "now": skip the graceful kill.
            if flag.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
        })
        .context("installing the Ctrl-C handler")?;
    }

    let topology = Topology::start(&plan, Arc::new(Builtins), EngineOptions::from_plan(&plan))
        .with_context(|| format!("starting topology {:?}", plan.name))?;

    let mut errors = ErrorClock::default();
    let ui = match args.ui {
        Some(addr) => {
            let first = InProcess {
                topology: &topology,
                plan: &plan,
                errors: &mut errors,
            }
            .sample();
            Some(LocalUi::start(addr, first)?)
        }
        None => None,
    };
    let mut title = plan.name.clone();
    if let Some(ui) = &ui {
        // Printed even with --quiet: it is the only way to learn a port picked with :0.
        println!("REST API: {} (topology id {})", ui.url(), plan.name);
        println!("Web UI: {}", ui.page_url(&plan.name));
        let _ = std::io::stdout().flush();
        title = format!("{title} (API {})", ui.url());
    }
    let live = !args.quiet && std::io::stdout().is_terminal();
    let progress = !args.quiet && !live;
    // A terminal gets a redrawn table every second; a pipe or log a line every 5 s.
    let every = if live {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(5)
    };
    if progress {
        println!(
            "running {} ({} tasks); Ctrl-C to stop",
            plan.name,
            plan.task_count()
        );
    }

    let order = table::manifest_order(&plan);
    let started = Instant::now();
    let mut last: Option<Snapshot> = None;
    let mut next_report = started + every;
    let end = loop {
        if interrupted.load(Ordering::SeqCst) {
            break End::Interrupted;
        }
        if let Some(limit) = args.run_for {
            if started.elapsed() >= limit {
                break End::Elapsed(limit);
            }
        }
        if topology.is_drained() {
            break End::Drained;
        }
        let now = Instant::now();
        if now >= next_report {
            let snap = topology.metrics();
            if live {
                draw(&title, &snap, last.as_ref(), &order);
            } else if progress {
                println!("{}", progress_line(&snap, last.as_ref()));
            }
            last = Some(snap);
            next_report += every;
        }
        let mut nap = POLL.min(next_report.saturating_duration_since(Instant::now()));
        if let Some(limit) = args.run_for {
            nap = nap.min(limit.saturating_sub(started.elapsed()));
        }
        let nap = nap.max(Duration::from_millis(1));
        match &ui {
            Some(ui) => {
                let mut run = InProcess {
                    topology: &topology,
                    plan: &plan,
                    errors: &mut errors,
                };
                if let Some(wait) = ui.serve_for(nap, &mut run) {
                    break End::Killed(wait);
                }
            }
            None => std::thread::sleep(nap),
        }
    };

    let final_snapshot = match end {
        End::Drained => topology.shutdown(),
        End::Elapsed(_) | End::Interrupted => topology.kill(plan.message_timeout.min(MAX_KILL_WAIT)),
        // Storm's kill waits as long as asked; the engine stops waiting once nothing is in flight.
        End::Killed(wait) => topology.kill(wait),
    };
    if let Some(ui) = ui {
        ui.stop();
    }
    println!(
        "\n{} after {}: {end}",
        plan.name,
        table::duration(final_snapshot.uptime)
    );
    print!("{}", table::metrics(&final_snapshot, None, &order));
    let (emitted, acked, failed, pending) = final_snapshot.spout_totals();
    println!("spouts: {emitted} emitted, {acked} acked, {failed} failed, {pending} pending");
    let _ = std::io::stdout().flush();
    Ok(())
}

/// The API's view of the in-process run.
struct InProcess<'a> {
    topology: &'a Topology,
    plan: &'a Plan,
    errors: &'a mut ErrorClock,
}

impl crate::ui::Run for InProcess<'_> {
    fn sample(&mut self) -> TopologySample {
        let status = if self.topology.is_active() {
            Status::Active
        } else {
            Status::Inactive
        };
        convert::in_process(self.plan, &self.topology.metrics(), status, self.errors)
    }

    fn act(&mut self, act: Act) -> Result<(), ControlError> {
        match act {
            Act::Activate => self.topology.activate(),
            Act::Deactivate => self.topology.deactivate(),
        }
        Ok(())
    }
}

fn draw(name: &str, snap: &Snapshot, before: Option<&Snapshot>, order: &[String]) {
    // Clear the screen and home the cursor, then draw the table afresh.
    let mut out = String::from("\x1b[2J\x1b[H");
    out.push_str(&format!(
        "{name}: up {} (Ctrl-C to stop)\n\n",
        table::duration(snap.uptime)
    ));
    out.push_str(&table::metrics(snap, before, order));
    let mut stdout = std::io::stdout().lock();
    // A closed terminal is no reason to stop the topology; the summary will fail the same way.
    let _ = stdout.write_all(out.as_bytes());
    let _ = stdout.flush();
}

fn progress_line(snap: &Snapshot, before: Option<&Snapshot>) -> String {
    let (emitted, acked, failed, pending) = snap.spout_totals();
    let (e0, a0, _, _) = before.map(Snapshot::spout_totals).unwrap_or_default();
    let span = snap
        .uptime
        .saturating_sub(before.map(|b| b.uptime).unwrap_or_default())
        .as_secs_f64()
        .max(1e-3);
    let errors: u64 = snap.components.iter().map(|c| c.total.errors).sum();
    format!(
        "[{}] spouts: {emitted} emitted ({:.0}/s), {acked} acked ({:.0}/s), {failed} failed, {pending} pending; {errors} errors",
        table::duration(snap.uptime),
        emitted.saturating_sub(e0) as f64 / span,
        acked.saturating_sub(a0) as f64 / span,
    )
}

/// Parses `30s`, `5m`, `1h30m`, `250ms` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).map_err(|e| format!("{s:?}: {e}"));
    }
    let bad = || format!("{s:?} is not a duration (examples: 30s, 5m, 1h30m, 500ms)");
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let (num, tail) = rest.split_at(digits);
        let unit_len = tail.find(|c: char| c.is_ascii_digit()).unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let n: f64 = num.parse().map_err(|_| bad())?;
        let secs = match unit {
            "ms" => n / 1e3,
            "s" => n,
            "m" => n * 60.0,
            "h" => n * 3600.0,
            _ => return Err(bad()),
        };
        total += Duration::try_from_secs_f64(secs).map_err(|_| bad())?;
        rest = tail;
    }
    if total.is_zero() {
        return Err(bad());
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("-1").is_err());
    }
}
