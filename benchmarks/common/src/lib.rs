//! What the benchmark binaries (`squall-bench-workers`, `squall-bench-scale`,
//! `squall-bench-ui`) share: CPU time and memory of processes and threads read from
//! `/proc`, the machine they ran on, nearest-rank quantiles, and writing a benchmark's
//! own section of BENCHMARKS.md between its markers, and finding the `squall-worker` binary
//! the benchmarks start. `redis`: the redis-server child and
//! count check of the Kafka benchmarks (`squall-bench-kafka`, `squall-bench-compare`).
#![forbid(unsafe_code)]

pub mod redis;

use std::path::{Path, PathBuf};
use std::time::Duration;

/// The `squall-worker` binary beside the running benchmark, as cargo builds them into one
/// directory; not found names the build command.
pub fn worker_binary() -> std::io::Result<PathBuf> {
    let bin = std::env::current_exe()?.with_file_name("squall-worker");
    if bin.exists() {
        Ok(bin)
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!(
                "{} not found: build it first (cargo build --release -p squall-worker)",
                bin.display()
            ),
        ))
    }
}

fn ticks_per_second() -> f64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .map_or(100.0, |t| t as f64)
}

/// The command name and user + system CPU of a `/proc/.../stat` file.
pub fn stat_cpu(path: &str) -> Option<(String, Duration)> {
    let text = std::fs::read_to_string(path).ok()?;
    let open = text.find('(')?;
    // The command name may hold spaces and parentheses: it ends at the last ')'.
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_owned();
    let fields: Vec<&str> = text.get(close + 2..)?.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the comm.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some((comm, Duration::from_secs_f64(ticks as f64 / ticks_per_second())))
}

/// CPU time of process `pid` so far (utime + stime), children not included; zero once
/// it is gone.
pub fn process_cpu(pid: u32) -> Duration {
    stat_cpu(&format!("/proc/{pid}/stat")).map_or(Duration::ZERO, |(_, d)| d)
}

/// CPU time of each thread of process `pid` so far, as `(thread name, time)`.
pub fn threads_cpu(pid: u32) -> Vec<(String, Duration)> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| stat_cpu(&format!("{}/stat", e.path().display())))
        .collect()
}

/// CPU time of this process's threads named `name`.
pub fn own_threads_cpu(name: &str) -> Duration {
    threads_cpu(std::process::id())
        .into_iter()
        .filter(|(comm, _)| comm == name)
        .map(|(_, d)| d)
        .sum()
}

/// Resident memory of process `pid`, in MiB.
pub fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// CPU time every core of the machine has been busy so far (user, nice, system, irq,
/// softirq and steal of `/proc/stat`): with [`process_cpu`], what other work took.
pub fn machine_busy() -> Duration {
    let Some(line) = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| s.lines().next().map(str::to_owned))
    else {
        return Duration::ZERO;
    };
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal: idle and iowait are not busy.
    let busy: u64 = [0, 1, 2, 5, 6, 7].iter().filter_map(|&i| f.get(i)).sum();
    Duration::from_secs_f64(busy as f64 / ticks_per_second())
}

/// The 1-minute load average.
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// Cores, CPU model and memory, as the sections say it: `2 cores (AMD EPYC), 24 GiB memory`.
pub fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or("?".into(), |kib| format!("{:.0} GiB", kib / 1024.0 / 1024.0));
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_default();
    format!("{cores} cores ({cpu}), {mem} memory")
}

/// The `q` quantile (0..1) of `v`, nearest rank.
pub fn quantile<T: Copy + Ord>(v: &[T], q: f64) -> Option<T> {
    let mut s = v.to_vec();
    s.sort_unstable();
    let rank = ((q * s.len() as f64).ceil() as usize).clamp(1, s.len().max(1));
    s.get(rank - 1).copied()
}

/// The median of `v` (the mean of the middle two for an even count); 0 when empty.
pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => 0.0,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// Replaces the text between `begin` and `end` (markers included) in the file at `path`
/// with `section`, which carries the markers itself; appends it when the file has none.
/// The rest of the file is left as it is, so each benchmark rewrites only its own part.
pub fn write_section(path: &Path, begin: &str, end: &str, section: &str) -> std::io::Result<()> {
    let current = std::fs::read_to_string(path).unwrap_or_default();
    std::fs::write(path, splice(&current, begin, end, section))
}

/// [`write_section`] on text.
pub fn splice(current: &str, begin: &str, end: &str, section: &str) -> String {
    match (current.find(begin), current.find(end)) {
        (Some(b), Some(e)) if e > b => format!(
            "{}{}{}",
            &current[..b],
            section.trim_end(),
            &current[e + end.len()..]
        ),
        _ => format!("{}\n\n{}\n", current.trim_end(), section.trim_end()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_section_is_replaced_between_its_markers_or_appended() {
        let doc = "# B\n\n<!-- x:begin -->\nold\n<!-- x:end -->\n\ntail\n";
        let new = splice(
            doc,
            "<!-- x:begin -->",
            "<!-- x:end -->",
            "<!-- x:begin -->\nnew\n<!-- x:end -->\n",
        );
        assert_eq!(new, "# B\n\n<!-- x:begin -->\nnew\n<!-- x:end -->\n\ntail\n");
        let added = splice(
            "# B\n",
            "<!-- y:begin -->",
            "<!-- y:end -->",
            "<!-- y:begin -->\nz\n<!-- y:end -->\n",
        );
        assert_eq!(added, "# B\n\n<!-- y:begin -->\nz\n<!-- y:end -->\n");
    }

    #[test]
    fn quantiles_and_medians() {
        assert_eq!(quantile(&[5, 1, 3, 2, 4], 0.5), Some(3));
        assert_eq!(quantile(&[5, 1, 3, 2, 4], 0.99), Some(5));
        assert_eq!(quantile::<u64>(&[], 0.5), None);
        assert_eq!(median(&[3.0, 1.0, 2.0, 10.0]), 2.5);
        assert!(process_cpu(std::process::id()) >= Duration::ZERO);
        assert!(!threads_cpu(std::process::id()).is_empty());
    }
}
