//! Finding a shell component's program before it is started, so a missing program or
//! interpreter is reported once, naming the command and where it was looked for, instead
//! of as a bare "No such file or directory" on every restart.
//!
//! - A command with a slash is a path; a relative one is resolved against the base
//!   directory (the manifest's directory locally, the worker's working directory on a
//!   cluster).
//! - A bare name (`streamparse_run`, `python3`) is looked up on the child's `PATH`: the
//!   component's `env.PATH` when it sets one, else the worker's, with the bin directory
//!   of the configured virtual environment (`squall.multilang.venv`) in front.
//! - A script whose `#!` line names an interpreter that does not exist (a venv moved or
//!   deleted) is refused too: the OS would report it as the script itself missing.
//! - The serializer is passed to `streamparse_run` (`--serializer msgpack` in front of the
//!   manifest's arguments); any other program chooses its own (pystorm:
//!   `MyBolt(serializer="msgpack").run()`), so its arguments are left as they are.

use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use squall_model::{Serializer, ShellSpec};

/// `PATH` of a process started without one (what a shell falls back to).
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";
/// Most bytes read of a script to find its `#!` line.
const SHEBANG_BYTES: u64 = 512;

/// Why a command cannot be started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// A bare name found in no directory of `PATH`.
    #[error("command {command:?} not found on PATH {path}")]
    NotOnPath {
        /// The command as the manifest names it.
        command: String,
        /// The `PATH` searched, as given to the child.
        path: String,
    },
    /// A path that names no executable file.
    #[error("command {command:?}: {} {problem}", resolved.display())]
    BadPath {
        /// The command as the manifest names it.
        command: String,
        /// Where it was resolved to.
        resolved: PathBuf,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// A script whose interpreter is missing.
    #[error("command {command:?} ({}): its interpreter {} does not exist", resolved.display(), interpreter.display())]
    NoInterpreter {
        /// The command as the manifest names it.
        command: String,
        /// The script found.
        resolved: PathBuf,
        /// The interpreter its `#!` line names.
        interpreter: PathBuf,
    },
}

/// The serializer the arguments of `streamparse_run` choose, and the component's
/// setting, when they disagree.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("args choose serializer {args:?} but shell.serializer is {setting:?}: set shell.serializer and drop the argument")]
pub struct SerializerConflict {
    /// What `-s`/`--serializer` in `args` says.
    pub args: String,
    /// The `shell.serializer` setting.
    pub setting: &'static str,
}

/// The child's arguments: a `streamparse_run` command gets `--serializer` for a
/// non-default serializer, unless its arguments already name the same one.
pub(crate) fn child_args(spec: &ShellSpec) -> Result<Vec<String>, SerializerConflict> {
    if !spec.runs_streamparse() {
        return Ok(spec.args.clone());
    }
    let setting = spec.serializer.as_str();
    match spec.args_serializer() {
        Some(g) if g == setting => Ok(spec.args.clone()),
        Some(g) => Err(SerializerConflict {
            args: g.to_owned(),
            setting,
        }),
        None if spec.serializer == Serializer::Json => Ok(spec.args.clone()),
        None => Ok(["--serializer".to_owned(), setting.to_owned()]
            .into_iter()
            .chain(spec.args.iter().cloned())
            .collect()),
    }
}

/// The `PATH` a child gets: `base` (the component's or the worker's), or the default,
/// with `venv`'s `bin` directory first.
pub(crate) fn child_path(base: Option<OsString>, venv: Option<&Path>) -> OsString {
    let base = base
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| DEFAULT_PATH.into());
    match venv {
        Some(v) => {
            let mut p = v.join("bin").into_os_string();
            p.push(":");
            p.push(base);
            p
        }
        None => base,
    }
}

/// Resolves `command` to the file that will run, checking it can: see the module docs.
pub(crate) fn resolve(command: &str, base_dir: &Path, path: &OsStr) -> Result<PathBuf, CommandError> {
    let found = if command.contains('/') {
        let p = Path::new(command);
        let resolved = if p.is_relative() {
            base_dir.join(p)
        } else {
            p.to_path_buf()
        };
        if let Some(problem) = unusable(&resolved) {
            return Err(CommandError::BadPath {
                command: command.to_owned(),
                resolved,
                problem,
            });
        }
        resolved
    } else {
        std::env::split_paths(path)
            // An empty entry means the current directory, as in a shell: the base directory.
            .map(|dir| {
                if dir.as_os_str().is_empty() {
                    base_dir.join(command)
                } else {
                    dir.join(command)
                }
            })
            .find(|candidate| unusable(candidate).is_none())
            .ok_or_else(|| CommandError::NotOnPath {
                command: command.to_owned(),
                path: path.to_string_lossy().into_owned(),
            })?
    };
    if let Some(interpreter) = interpreter(&found).filter(|i| !i.exists()) {
        return Err(CommandError::NoInterpreter {
            command: command.to_owned(),
            resolved: found,
            interpreter,
        });
    }
    Ok(found)
}

/// Why `p` cannot be run, if it cannot.
fn unusable(p: &Path) -> Option<&'static str> {
    match std::fs::metadata(p) {
        Err(_) => Some("does not exist"),
        Ok(m) if !m.is_file() => Some("is not a file"),
        Ok(m) if m.permissions().mode() & 0o111 == 0 => Some("is not executable"),
        Ok(_) => None,
    }
}

/// The absolute interpreter a script's `#!` line names.
fn interpreter(script: &Path) -> Option<PathBuf> {
    let mut head = Vec::new();
    std::fs::File::open(script)
        .ok()?
        .take(SHEBANG_BYTES)
        .read_to_end(&mut head)
        .ok()?;
    let line = head.strip_prefix(b"#!")?;
    let line = &line[..line.iter().position(|b| *b == b'\n')?];
    let line = std::str::from_utf8(line).ok()?;
    let first = line.split_whitespace().next()?;
    Some(PathBuf::from(first)).filter(|p| p.is_absolute())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn script(dir: &Path, name: &str, body: &str, mode: u32) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("squall-command-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("bin")).unwrap();
        d
    }

    #[test]
    fn bare_names_are_found_on_the_path_in_order() {
        let d = tmp("path");
        std::fs::create_dir_all(d.join("other")).unwrap();
        let first = script(&d.join("bin"), "tool", "#!/bin/sh\n", 0o755);
        script(&d.join("other"), "tool", "#!/bin/sh\n", 0o755);
        script(&d.join("other"), "plain", "data", 0o644);
        let path = std::env::join_paths([d.join("bin"), d.join("other")]).unwrap();
        assert_eq!(resolve("tool", &d, &path).unwrap(), first);
        let e = resolve("plain", &d, &path).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("command \"plain\" not found on PATH {}", path.to_string_lossy())
        );
    }

    #[test]
    fn paths_resolve_against_the_base_and_must_be_executable() {
        let d = tmp("rel");
        let s = script(&d.join("bin"), "run", "#!/bin/sh\n", 0o755);
        assert_eq!(resolve("bin/run", &d, OsStr::new("")).unwrap(), s);
        script(&d.join("bin"), "noexec", "#!/bin/sh\n", 0o644);
        let e = resolve("bin/noexec", &d, OsStr::new("")).unwrap_err();
        assert!(e.to_string().ends_with("bin/noexec is not executable"), "{e}");
        let e = resolve("bin/none", &d, OsStr::new("")).unwrap_err();
        assert!(e.to_string().ends_with("bin/none does not exist"), "{e}");
    }

    #[test]
    fn a_missing_interpreter_is_named() {
        let d = tmp("shebang");
        script(
            &d.join("bin"),
            "streamparse_run",
            "#!/gone/venv/bin/python\nimport x\n",
            0o755,
        );
        let e = resolve("streamparse_run", &d, d.join("bin").as_os_str()).unwrap_err();
        assert_eq!(
            e,
            CommandError::NoInterpreter {
                command: "streamparse_run".into(),
                resolved: d.join("bin/streamparse_run"),
                interpreter: "/gone/venv/bin/python".into(),
            }
        );
    }

    fn spec(command: &str, args: &[&str], serializer: Serializer) -> ShellSpec {
        ShellSpec {
            command: command.into(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            env: Default::default(),
            working_dir: None,
            serializer,
        }
    }

    #[test]
    fn streamparse_run_is_told_the_serializer_and_others_are_not() {
        let mp = Serializer::Msgpack;
        assert_eq!(
            child_args(&spec("/v/bin/streamparse_run", &["bolts.B"], mp)).unwrap(),
            ["--serializer", "msgpack", "bolts.B"]
        );
        assert_eq!(
            child_args(&spec("streamparse_run", &["bolts.B"], Serializer::Json)).unwrap(),
            ["bolts.B"]
        );
        assert_eq!(
            child_args(&spec("streamparse_run", &["-s", "msgpack", "bolts.B"], mp)).unwrap(),
            ["-s", "msgpack", "bolts.B"]
        );
        assert_eq!(child_args(&spec("python3", &["b.py"], mp)).unwrap(), ["b.py"]);
        let e = child_args(&spec("streamparse_run", &["--serializer=json", "bolts.B"], mp)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "args choose serializer \"json\" but shell.serializer is \"msgpack\": set shell.serializer and drop the argument"
        );
    }

    #[test]
    fn the_venv_goes_first() {
        let p = child_path(Some("/usr/bin".into()), Some(Path::new("/v")));
        assert_eq!(p, OsString::from("/v/bin:/usr/bin"));
        assert_eq!(child_path(None, None), OsString::from(DEFAULT_PATH));
    }
}
