//! `squall import streamparse FILE`: a streamparse topology class as a Topology manifest.
//!
//! The class is read by streamparse itself, in a Python subprocess (`python.rs`), so the
//! specs are what its DSL builds and not a re-parse of the source; `streamparse.rs`
//! turns them into the model.

mod python;
pub mod streamparse;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use squall_components::Builtins;
use squall_model::{validate_within, Limits};

use crate::validate::Invalid;

#[derive(clap::Args)]
pub struct ImportArgs {
    #[command(subcommand)]
    from: From,
}

#[derive(clap::Subcommand)]
enum From {
    /// Read a streamparse topology (`class NAME(Topology)` in topologies/NAME.py); every
    /// component becomes a `shell` running `streamparse_run module.Class`.
    Streamparse(StreamparseArgs),
}

#[derive(clap::Args)]
struct StreamparseArgs {
    /// The topology file, e.g. topologies/wordcount.py.
    file: PathBuf,
    /// Write the manifest here instead of stdout; component working directories are
    /// relative to its directory (to the current directory on stdout).
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// The Python interpreter with streamparse and the project's dependencies
    /// [default: $SQUALL_PYTHON, else $VIRTUAL_ENV/bin/python, else python3].
    #[arg(long, value_name = "PATH")]
    python: Option<String>,
    /// The Topology subclass to read when the file defines several.
    #[arg(long, value_name = "NAME")]
    class: Option<String>,
    /// metadata.name of the manifest [default: the class name in kebab case].
    #[arg(long)]
    name: Option<String>,
    /// Give up on the interpreter after this long.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = crate::run::parse_duration)]
    timeout: Duration,
}

pub fn run(args: ImportArgs, limits: &Limits) -> anyhow::Result<()> {
    let From::Streamparse(args) = args.from;
    streamparse(args, limits)
}

fn interpreter() -> String {
    if let Some(p) = std::env::var_os("SQUALL_PYTHON").filter(|p| !p.is_empty()) {
        return p.to_string_lossy().into_owned();
    }
    if let Some(venv) = std::env::var_os("VIRTUAL_ENV").filter(|p| !p.is_empty()) {
        return Path::new(&venv).join("bin/python").display().to_string();
    }
    "python3".to_owned()
}

fn streamparse(args: StreamparseArgs, limits: &Limits) -> anyhow::Result<()> {
    let python = args.python.clone().unwrap_or_else(interpreter);
    let file = &args.file;
    if !file.is_file() {
        anyhow::bail!("{}: no such file", file.display());
    }
    let read =
        python::read_topology(&python, file, args.class.as_deref(), args.timeout).map_err(|f| match f {
            python::Failure::InFile {
                line: Some(line),
                message,
            } => Invalid(format!("{}:{line}: {message}", file.display())).into(),
            python::Failure::InFile { line: None, message } => {
                Invalid(format!("{}: {message}", file.display())).into()
            }
            python::Failure::Helper(e) => e,
        })?;
    let manifest_dir = match &args.output {
        Some(out) => absolute(out.parent().unwrap_or(Path::new("")))?,
        None => std::env::current_dir().context("reading the current directory")?,
    };
    let target = streamparse::Target {
        name: args.name.as_deref(),
        manifest_dir: &manifest_dir,
    };
    let manifest = streamparse::convert(&read, &target).map_err(|r| Invalid(r.render(file)))?;
    // The result must be a manifest `squall run` takes; a problem here is the class's
    // (e.g. a name Kubernetes refuses), reported as validation words it.
    let plan = validate_within(&manifest, &Builtins, limits)
        .map_err(|e| Invalid(format!("{} (as imported): {e}", file.display())))?;
    let yaml = format!(
        "# Imported from {} (class {}) by `squall import streamparse`.\n\
         # Each component runs `streamparse_run module.Class`, found through PATH, in its workingDir.\n{}",
        file.display(),
        read.class,
        manifest.to_yaml().context("writing the manifest as YAML")?
    );
    match &args.output {
        Some(out) => {
            std::fs::write(out, yaml).with_context(|| format!("writing {}", out.display()))?;
            println!(
                "{}: {} spout(s), {} bolt(s) from {} in {}",
                out.display(),
                plan.spec.spouts.len(),
                plan.spec.bolts.len(),
                read.class,
                file.display()
            );
        }
        None => print!("{yaml}"),
    }
    Ok(())
}

fn absolute(dir: &Path) -> anyhow::Result<PathBuf> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    std::fs::canonicalize(dir).with_context(|| format!("{}: the output's directory", dir.display()))
}
