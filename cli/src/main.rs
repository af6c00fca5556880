//! `squall`: run, validate and draw Storm-style topologies described by a Topology manifest.
#![forbid(unsafe_code)]

mod cluster;
mod feed;
mod graph;
mod kinds;
mod overrides;
mod run;
mod table;
mod ui;
mod validate;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// Stream topologies in the style of Apache Storm.
#[derive(Parser)]
#[command(name = "squall", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Raise or lower a limit on what a manifest may ask for, e.g. `maxParallelism=2048`
    /// (repeatable; limits: maxManifestBytes, maxNestingDepth, maxComponents,
    /// maxParallelism, maxTasks, maxTotalTasks, maxWorkers).
    #[arg(long = "limit", value_name = "NAME=VALUE", global = true)]
    limit: Vec<String>,
}

/// The limits of this run: defaults, then `SQUALL_LIMITS` (`name=value,...`), then `--limit`.
fn limits(flags: &[String]) -> Result<squall_model::Limits, validate::Invalid> {
    let env = std::env::var("SQUALL_LIMITS").unwrap_or_default();
    let mut limits = squall_model::Limits::parse_list(&env)
        .map_err(|e| validate::Invalid(format!("SQUALL_LIMITS: {e}")))?;
    for f in flags {
        limits
            .set(f)
            .map_err(|e| validate::Invalid(format!("--limit {e}")))?;
    }
    limits.raise_with = "--limit {key}=N".into();
    Ok(limits)
}

#[derive(Subcommand)]
enum Command {
    /// Run a topology in this process (local mode) and show live metrics.
    Run(run::RunArgs),
    /// Check a manifest and report every problem with the path of the field at fault.
    Validate(validate::ValidateArgs),
    /// Print the topology as a Graphviz DOT graph.
    Graph(graph::GraphArgs),
    /// List the built-in component kinds.
    Kinds,
    /// The local edit feed: serve or dump the bundled Wikipedia-style edit events.
    Feed(feed::FeedArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Default to warn so that log lines do not tear up the live table.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();

    let limits = match limits(&cli.limit) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Run(args) => run::run(args, &limits),
        Command::Validate(args) => validate::run(args, &limits),
        Command::Graph(args) => graph::run(args, &limits),
        Command::Kinds => kinds::run(),
        Command::Feed(args) => feed::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // A bad manifest is the user's to fix and gets its own exit code, like clap's
            // usage errors; anything else is a failure of the run itself.
            if let Some(invalid) = err.downcast_ref::<validate::Invalid>() {
                eprintln!("{invalid}");
                ExitCode::from(2)
            } else {
                eprintln!("error: {err:#}");
                ExitCode::FAILURE
            }
        }
    }
}
