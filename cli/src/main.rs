//! `squall`: run, validate and draw Storm-style topologies described by a Topology manifest.
#![forbid(unsafe_code)]

mod cluster;
mod feed;
mod graph;
mod import;
mod kinds;
mod overrides;
mod remote;
mod run;
mod table;
mod ui;
mod validate;
mod venv;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use squall_model::DesiredState;
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
    /// On failure, print the whole chain of causes rather than one line.
    #[arg(short = 'v', long, global = true)]
    verbose: bool,
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
    /// Write a Topology manifest from another system's topology, e.g. a streamparse class.
    Import(import::ImportArgs),
    /// The local edit feed: serve or dump the bundled Wikipedia-style edit events.
    Feed(feed::FeedArgs),
    /// Submit a topology to the cluster (server-side apply), after validating it.
    Submit(remote::SubmitArgs),
    /// List the topologies in the cluster: phase, workers ready/desired, generation, age.
    List(remote::ListArgs),
    /// Live figures per component of a topology in the cluster, read from its workers.
    Status(remote::StatusArgs),
    /// Activate a topology's spouts.
    Activate(remote::StateArgs),
    /// Deactivate a topology's spouts; in-flight trees still complete.
    Deactivate(remote::StateArgs),
    /// Change a topology's workers and components' parallelism.
    Rebalance(remote::RebalanceArgs),
    /// Deactivate, wait, then delete a topology.
    Kill(remote::KillArgs),
    /// The worker pods' logs, optionally only lines mentioning a component.
    Logs(remote::LogsArgs),
}

fn is_remote(c: &Command) -> bool {
    !matches!(
        c,
        Command::Run(_)
            | Command::Validate(_)
            | Command::Graph(_)
            | Command::Kinds
            | Command::Import(_)
            | Command::Feed(_)
    )
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Default to warn so that log lines do not tear up the live table.
    // kube's client logs each failed request itself; the verb's own error line says it.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn,kube_client=off"));
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
    // Cluster errors print as their one-line summary; kube's chains add little but noise.
    let one_line = !cli.verbose && is_remote(&cli.command);
    let result = match cli.command {
        Command::Run(args) => run::run(args, &limits),
        Command::Validate(args) => validate::run(args, &limits),
        Command::Graph(args) => graph::run(args, &limits),
        Command::Kinds => kinds::run(),
        Command::Import(args) => import::run(args, &limits),
        Command::Feed(args) => feed::run(args),
        Command::Submit(args) => remote::block_on(remote::submit::run(args, &limits)),
        Command::List(args) => remote::block_on(remote::list::run(args)),
        Command::Status(args) => remote::block_on(remote::status::run(args)),
        Command::Activate(args) => remote::block_on(remote::control::set_state(args, DesiredState::Active)),
        Command::Deactivate(args) => {
            remote::block_on(remote::control::set_state(args, DesiredState::Inactive))
        }
        Command::Rebalance(args) => remote::block_on(remote::control::rebalance(args, &limits)),
        Command::Kill(args) => remote::block_on(remote::control::kill(args)),
        Command::Logs(args) => remote::block_on(remote::logs::run(args)),
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
                if cli.verbose {
                    // The causes without a backtrace, which says nothing a user can act on.
                    eprintln!("error: {err}");
                    for cause in err.chain().skip(1) {
                        eprintln!("  caused by: {cause}");
                    }
                } else if one_line {
                    eprintln!("error: {}", remote::one_line(&err));
                } else {
                    eprintln!("error: {err:#}");
                }
                ExitCode::FAILURE
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    #[test]
    fn the_verbs_and_their_flags_do_not_clash() {
        super::Cli::command().debug_assert();
    }
}
