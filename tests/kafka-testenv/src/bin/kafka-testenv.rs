//! `kafka-testenv jars|up|down`: the Makefile's `kafka-jars`, `kafka-up` and `kafka-down`.
//!
//! `up` starts a broker on 127.0.0.1 (free ports) with its files in `.cache/kafka/run`
//! and leaves it running; it prints the bootstrap address (also written to
//! `.cache/kafka/run/bootstrap`). `down` stops it (SIGTERM, then SIGKILL after 20 s) and
//! removes the directory. `up` when one already runs prints its address.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use kafka_testenv::{cache_dir, ensure_jars, write_file, Error, KafkaBroker};
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;

fn run_dir() -> PathBuf {
    cache_dir().join("run")
}

fn running() -> Option<(i32, String)> {
    let dir = run_dir();
    let pid: i32 = std::fs::read_to_string(dir.join("broker.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let bootstrap = std::fs::read_to_string(dir.join("bootstrap")).ok()?;
    kill(Pid::from_raw(pid), None).ok()?;
    Some((pid, bootstrap.trim().to_owned()))
}

fn up() -> Result<(), Error> {
    if let Some((_, bootstrap)) = running() {
        println!("{bootstrap}");
        return Ok(());
    }
    let dir = run_dir();
    let _ = std::fs::remove_dir_all(&dir);
    let started = Instant::now();
    let broker = KafkaBroker::start_detached(Ipv4Addr::LOCALHOST, &dir)?;
    let bootstrap = broker.bootstrap();
    eprintln!(
        "kafka-testenv: broker up in {:.1} s; files in {}",
        started.elapsed().as_secs_f64(),
        dir.display()
    );
    let pid = broker.detach().unwrap_or(0);
    write_file(&dir.join("broker.pid"), &format!("{pid}\n"))?;
    write_file(&dir.join("bootstrap"), &format!("{bootstrap}\n"))?;
    println!("{bootstrap}");
    Ok(())
}

fn down() {
    if let Some((pid, _)) = running() {
        let pgid = Pid::from_raw(pid);
        let _ = killpg(pgid, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        while kill(pgid, None).is_ok() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = killpg(pgid, Signal::SIGKILL);
        eprintln!("kafka-testenv: broker {pid} stopped");
    }
    let _ = std::fs::remove_dir_all(run_dir());
}

fn main() -> ExitCode {
    let verb = std::env::args().nth(1).unwrap_or_default();
    let result = match verb.as_str() {
        "jars" => ensure_jars().map(|d| println!("{}", d.display())),
        "up" => up(),
        "down" => {
            down();
            Ok(())
        }
        _ => {
            eprintln!("usage: kafka-testenv jars|up|down");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kafka-testenv: {e}");
            ExitCode::FAILURE
        }
    }
}
