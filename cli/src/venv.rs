//! Which Python virtual environment a local run puts on its `shell` children's PATH, so a
//! manifest names `command: streamparse_run` as the worker image installs it and still runs
//! from a checkout.
//!
//! In order: `--venv DIR` (or `SQUALL_VENV`); the manifest's own `squall.multilang.venv`
//! (topology or component config); an activated venv (`VIRTUAL_ENV`); the `.cache/venv`
//! that `make multilang-venv` creates, looked for in the manifest's directory and its
//! parents. The choice is passed as `spec.config.squall.multilang.venv`.

use std::path::{Path, PathBuf};

use serde_json::Value;
use squall_model::TopologyManifest;

use crate::overrides::Override;

/// The config key the multilang host reads.
const KEY: &str = "squall.multilang.venv";
/// Parents of the manifest's directory looked at for `.cache/venv`.
const MAX_PARENTS: usize = 16;

/// The override that names the venv, when one applies and the manifest has `shell`
/// components.
pub fn choose(flag: Option<&Path>, manifest: &TopologyManifest, file: &Path) -> Option<Override> {
    let spec = &manifest.spec;
    let components = spec.spouts.iter().chain(&spec.bolts);
    if !components.clone().any(|c| c.shell.is_some()) {
        return None;
    }
    let in_manifest = spec.config.contains_key(KEY) || components.clone().any(|c| c.config.contains_key(KEY));
    let venv = match flag {
        Some(v) => Some(absolute(v)),
        None if in_manifest => None,
        None => from_env().or_else(|| discover(file)),
    }?;
    tracing::debug!(venv = %venv.display(), "shell children get this venv on their PATH");
    Some(Override {
        key: format!("spec.config.{KEY}"),
        raw: venv.display().to_string(),
        value: Value::String(venv.display().to_string()),
    })
}

fn from_env() -> Option<PathBuf> {
    std::env::var_os("VIRTUAL_ENV")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// `.cache/venv` in the manifest's directory or the nearest parent that has one.
fn discover(file: &Path) -> Option<PathBuf> {
    let dir = absolute(
        file.parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new(".")),
    );
    dir.ancestors()
        .take(MAX_PARENTS)
        .map(|d| d.join(".cache/venv"))
        .find(|v| v.join("bin/python").exists())
}

fn absolute(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const SHELL: &str = "apiVersion: squall.dev/v1alpha1\nkind: Topology\nmetadata: {name: t}\nspec:\n  spouts: [{name: s, component: shell, shell: {command: streamparse_run, args: [m.S]}, outputs: [{fields: [x]}]}]\n";

    #[test]
    fn the_checkouts_venv_is_found_above_the_manifest_and_a_flag_or_the_manifest_wins() {
        let root = std::env::temp_dir().join(format!("squall-venv-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join(".cache/venv/bin")).unwrap();
        std::fs::create_dir_all(root.join("examples/x")).unwrap();
        std::fs::write(root.join(".cache/venv/bin/python"), "").unwrap();
        let file = root.join("examples/x/t.yaml");
        let m = TopologyManifest::from_yaml(SHELL, "t").unwrap();
        let found = discover(&file).unwrap();
        assert_eq!(found, absolute(&root.join(".cache/venv")));
        let o = choose(Some(Path::new("/opt/v")), &m, &file).unwrap();
        assert_eq!(
            (o.key.as_str(), o.raw.as_str()),
            ("spec.config.squall.multilang.venv", "/opt/v")
        );
        let mut named = m.clone();
        named.spec.config.insert(KEY.into(), "venv".into());
        assert!(
            choose(None, &named, &file).is_none(),
            "the manifest's own venv stays"
        );
        let builtin = TopologyManifest::from_yaml(
            "apiVersion: squall.dev/v1alpha1\nkind: Topology\nmetadata: {name: t}\nspec:\n  spouts: [{name: s, component: sequence}]\n",
            "t",
        )
        .unwrap();
        assert!(
            choose(Some(Path::new("/opt/v")), &builtin, &file).is_none(),
            "no shell, no venv"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
}
