//! `squall-protogen`: compiles `proto/squall/**/*.proto` with protox (a Rust protobuf
//! compiler, so no `protoc` is needed) and writes the prost types into
//! `proto/src/generated/`. With `--check`, generates into a scratch directory instead and
//! fails when the committed files differ: CI's drift check.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};

/// The .proto files, relative to `proto/`.
const FILES: &[&str] = &["squall/wire/v1/wire.proto"];

fn main() -> Result<()> {
    let check = match std::env::args().nth(1).as_deref() {
        None => false,
        Some("--check") => true,
        Some(other) => bail!("unknown argument {other:?}; usage: squall-protogen [--check]"),
    };
    let root = proto_dir();
    let committed = root.join("src/generated");
    if check {
        let scratch = tempfile::tempdir().context("creating a scratch directory")?;
        generate(&root, scratch.path())?;
        let drift = compare(&committed, scratch.path())?;
        if !drift.is_empty() {
            bail!(
                "generated code is stale ({}); run `make proto` and commit the result",
                drift.join(", ")
            );
        }
        println!("proto: generated code is up to date");
    } else {
        std::fs::create_dir_all(&committed).with_context(|| format!("creating {}", committed.display()))?;
        generate(&root, &committed)?;
        println!("proto: wrote {}", committed.display());
    }
    Ok(())
}

/// `proto/`, found from this crate's own location so the tool works from any directory.
fn proto_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn generate(root: &Path, out: &Path) -> Result<()> {
    let files: Vec<PathBuf> = FILES.iter().map(|f| root.join(f)).collect();
    let fds = protox::compile(&files, [root]).context("compiling the .proto files")?;
    prost_build::Config::new()
        .out_dir(out)
        // Byte payloads share the frame's buffer instead of being copied out of it.
        .bytes(["."])
        .compile_fds(fds)
        .context("generating Rust code")?;
    Ok(())
}

/// Names of files that differ between the two directories (either side).
fn compare(committed: &Path, fresh: &Path) -> Result<Vec<String>> {
    let mut drift = Vec::new();
    for entry in std::fs::read_dir(fresh).context("listing generated files")? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let new = std::fs::read(entry.path())?;
        match std::fs::read(committed.join(&name)) {
            Ok(old) if old == new => {}
            Ok(_) => drift.push(format!("{name} differs")),
            Err(_) => drift.push(format!("{name} missing")),
        }
    }
    if let Ok(dir) = std::fs::read_dir(committed) {
        for entry in dir.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".rs") && !fresh.join(&name).exists() {
                drift.push(format!("{name} no longer generated"));
            }
        }
    }
    Ok(drift)
}
