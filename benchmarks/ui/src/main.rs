//! `make bench-ui`: what Storm's UI/REST API costs, against the two targets of the UI's
//! requirements:
//!
//! 1. serving the API and UI adds under 2% CPU to a worker pushing 1 M tuples/s
//!    ([`cost`]: a real `squall-worker` polled for its figures as the operator polls it);
//! 2. an API call answers in under 50 ms with 20 topologies of 20 components each
//!    ([`latency`]: the operator's UI over a real control plane, [`plane`], holding
//!    topologies whose worker pods are stand-ins, [`fleet`]).
//!
//! Writes its own section of BENCHMARKS.md between markers ([`report`]).
#![forbid(unsafe_code)]

mod cost;
mod fleet;
mod latency;
mod plane;
mod report;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;

/// Which part to run; both by default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Part {
    Cost,
    Latency,
}

#[derive(Debug, clap::Parser)]
#[command(about = "What the UI/REST API costs a busy worker, and how fast the operator's API answers")]
pub struct Args {
    /// Tuples per second the worker's spout is paced at.
    #[arg(long, default_value_t = 1_000_000)]
    pub rate: u64,
    /// Seconds of each measured window of the cost part.
    #[arg(long, default_value_t = 10)]
    pub window: u64,
    /// Rounds of the cost part; each measures every mode once.
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// Seconds the worker runs before the first window.
    #[arg(long, default_value_t = 5)]
    pub warmup: u64,
    /// The short polling period of the cost part, ms (the operator's is 5 s).
    #[arg(long, default_value_t = 100)]
    pub aggressive_ms: u64,
    /// Topologies in the control plane.
    #[arg(long, default_value_t = 20)]
    pub topologies: usize,
    /// Components per topology.
    #[arg(long, default_value_t = 20)]
    pub components: usize,
    /// Worker pods per topology.
    #[arg(long, default_value_t = 4)]
    pub workers: usize,
    /// Executors per component (two tasks each).
    #[arg(long, default_value_t = 4)]
    pub parallelism: usize,
    /// Requests of each call.
    #[arg(long, default_value_t = 300)]
    pub requests: usize,
    /// Pause after each request, ms: a caller polling, not a flood.
    #[arg(long, default_value_t = 10)]
    pub pace_ms: u64,
    /// Only this part (nothing is written to --out then).
    #[arg(long)]
    pub only: Option<Part>,
    /// BENCHMARKS.md to write this benchmark's section into.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

impl Args {
    /// The operator's sampling period, as it ships.
    pub fn period(&self) -> Duration {
        squall_operator::ui::Settings::default().period
    }
}

fn main() -> Result<()> {
    let args: Args = clap::Parser::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,kube_client=off")),
        )
        .with_writer(std::io::stderr)
        .init();
    let started = std::time::Instant::now();
    // The pollers, the stand-in workers and the control plane's client: away from the
    // operator's runtime and from the measuring thread.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bench-ui")
        .enable_all()
        .build()?;
    let cost = match args.only {
        None | Some(Part::Cost) => {
            eprintln!(
                "cost: one worker at {} tuples/s, {} rounds of {} windows of {} s ...",
                args.rate, args.rounds, 3, args.window
            );
            Some(cost::run(&args, &rt)?)
        }
        Some(Part::Latency) => None,
    };
    let latency = match args.only {
        None | Some(Part::Latency) => {
            eprintln!(
                "latency: the operator's API over {} topologies × {} components, {} workers each ...",
                args.topologies, args.components, args.workers
            );
            Some(latency::run(&args, &rt)?)
        }
        Some(Part::Cost) => None,
    };
    rt.shutdown_timeout(Duration::from_secs(1));
    let section = report::section(&args, cost.as_ref(), latency.as_ref(), started.elapsed());
    print!("{section}");
    match (&args.out, cost, latency) {
        (Some(out), Some(_), Some(_)) => {
            squall_bench_common::write_section(out, report::BEGIN, report::END, &section)?;
            eprintln!("wrote the squall-bench-ui section of {}", out.display());
        }
        (Some(_), _, _) => eprintln!("--only: nothing written"),
        _ => {}
    }
    Ok(())
}
