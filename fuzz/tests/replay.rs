//! Replays every seed of `corpus/<target>/`, then seeded pseudo-random and mutated inputs,
//! through the fuzz target bodies, on stable and without libFuzzer. Deterministic: the
//! same inputs every run (the time bound only cuts a run short on a very slow machine).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Random byte strings, then mutated seeds, per target.
const RANDOM: usize = 1_000;
const MUTATED: usize = 3_000;
/// Generous for a loaded 2-core machine in debug; a run normally takes a few seconds.
const BUDGET: Duration = Duration::from_secs(120);

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn new(name: &str) -> Self {
        // FNV-1a of the name, so each target gets its own stream.
        let seed = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        Rng(seed | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Bytes that delimit or switch states in the formats under test.
const INTERESTING: &[u8] = b"\0\r\n\t :{}[]\"\\,-+*$#&!|>0179\x7f\x80\xbf\xc0\xff\x08\x0a\x12\x1a\x22";

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut d = seeds[rng.below(seeds.len())].clone();
    for _ in 0..1 + rng.below(4) {
        let len = d.len();
        let at = rng.below(len + 1);
        match rng.below(7) {
            0 if len > 0 => d[at.min(len - 1)] ^= 1 << rng.below(8),
            1 if len > 0 => d[at.min(len - 1)] = INTERESTING[rng.below(INTERESTING.len())],
            2 => {
                let n = 1 + rng.below(8);
                let ins = rng.bytes(n);
                d.splice(at..at, ins);
            }
            3 => {
                let end = (at + 1 + rng.below(16)).min(len);
                d.drain(at..end);
            }
            4 => d.truncate(at),
            5 => {
                let end = (at + 1 + rng.below(32)).min(len);
                let copy = d[at..end].to_vec();
                d.splice(at..at, copy);
            }
            _ => {
                let other = &seeds[rng.below(seeds.len())];
                let from = rng.below(other.len() + 1);
                d.truncate(at);
                d.extend_from_slice(&other[from..]);
            }
        }
    }
    d
}

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap_or_else(|e| panic!("{}: {e}", dir.display())).path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let data = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, data)
        })
        .collect()
}

fn run(target: &str, body: squall_fuzz::Body, what: &str, data: &[u8]) {
    if catch_unwind(AssertUnwindSafe(|| body(data))).is_err() {
        panic!(
            "{target}: {what} panicked; input ({} bytes): b\"{}\"",
            data.len(),
            data.escape_ascii()
        );
    }
}

fn replay(target: &str) {
    let (_, body) = squall_fuzz::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .unwrap_or_else(|| panic!("no target {target}"));
    let files = corpus(target);
    assert!(!files.is_empty(), "corpus/{target}/ has no seeds");
    for (path, data) in &files {
        run(target, *body, &path.display().to_string(), data);
    }
    let seeds: Vec<Vec<u8>> = files.into_iter().map(|(_, d)| d).collect();
    let mut rng = Rng::new(target);
    let start = Instant::now();
    let mut ran = 0;
    for i in 0..RANDOM + MUTATED {
        if start.elapsed() > BUDGET {
            break;
        }
        let input = if i < RANDOM {
            let n = rng.below(256);
            rng.bytes(n)
        } else {
            mutate(&mut rng, &seeds)
        };
        run(target, *body, &format!("generated input {i}"), &input);
        ran += 1;
    }
    eprintln!(
        "{target}: {} seeds and {ran} generated inputs replayed",
        seeds.len()
    );
}

#[test]
fn wire_frame() {
    replay("wire_frame");
}

#[test]
fn multilang_stream() {
    replay("multilang_stream");
}

#[test]
fn multilang_msgpack() {
    replay("multilang_msgpack");
}

#[test]
fn manifest() {
    replay("manifest");
}

#[test]
fn sse_stream() {
    replay("sse_stream");
}

#[test]
fn resp_reply() {
    replay("resp_reply");
}

#[test]
fn edit_event() {
    replay("edit_event");
}

#[test]
fn every_target_has_a_test_and_a_binary() {
    let tests = include_str!("replay.rs");
    let bins = include_str!("../Cargo.toml");
    for (name, _) in squall_fuzz::TARGETS {
        assert!(
            tests.contains(&format!("replay(\"{name}\")")),
            "no replay test for {name}"
        );
        assert!(
            bins.contains(&format!("fuzz_targets/{name}.rs")),
            "no [[bin]] for {name}"
        );
    }
}
