//! `squall validate`, and the manifest loading that every verb shares.

use std::fmt;
use std::path::{Path, PathBuf};

use squall_components::Builtins;
use squall_model::{validate_within, Limits, ManifestError, Plan, TopologyManifest};

use crate::overrides::{self, Override};

/// The manifest is unusable as written: syntax, validation or a bad `--set`.
/// `main` prints it as is and exits with status 2.
#[derive(Debug)]
pub struct Invalid(pub String);

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.trim_end())
    }
}

impl std::error::Error for Invalid {}

#[derive(clap::Args)]
pub struct ValidateArgs {
    /// The Topology manifest (YAML).
    file: PathBuf,
    /// Override a field before validating, e.g. `spec.bolts.count.parallelism=4`.
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = overrides::parse)]
    set: Vec<Override>,
}

pub fn run(args: ValidateArgs, limits: &Limits) -> anyhow::Result<()> {
    let plan = load(&args.file, &args.set, limits)?;
    let spouts = plan.spec.spouts.len();
    let bolts = plan.spec.bolts.len();
    println!(
        "{}: ok ({spouts} spout{}, {bolts} bolt{}, {} tasks)",
        args.file.display(),
        plural(spouts),
        plural(bolts),
        plan.task_count()
    );
    Ok(())
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Reads a manifest, applies `--set` overrides and validates it against the built-in kinds
/// and `limits`.
pub fn load(file: &Path, sets: &[Override], limits: &Limits) -> anyhow::Result<Plan> {
    let manifest = match TopologyManifest::from_file_within(file, limits) {
        Ok(m) => m,
        // A missing file is not a problem *in* the manifest: plain error, exit 1.
        // Its message already includes the OS error, so it goes without the error chain.
        Err(err @ ManifestError::Io { .. }) => return Err(anyhow::anyhow!("{err}")),
        Err(err) => return Err(Invalid(err.to_string()).into()),
    };
    let manifest = overrides::apply(manifest, sets)?;
    let mut plan = validate_within(&manifest, &Builtins, limits)
        .map_err(|errors| Invalid(format!("{}: {errors}", file.display())))?;
    // Relative paths in component configs are relative to the manifest, wherever it is run from.
    plan.base_dir = file.parent().map(|p| {
        if p.as_os_str().is_empty() {
            Path::new(".")
        } else {
            p
        }
        .to_path_buf()
    });
    Ok(plan)
}
