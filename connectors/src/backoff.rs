//! Capped exponential backoff with jitter, for reconnecting.

use std::time::Duration;

use crate::config::BackoffConfig;

/// Delays between reconnection attempts: doubling from the initial delay up to the cap,
/// each drawn uniformly from its upper half so that many clients do not retry in step.
#[derive(Debug)]
pub(crate) struct Backoff {
    config: BackoffConfig,
    current_ms: u64,
    rng: u64,
}

impl Backoff {
    pub fn new(config: BackoffConfig, seed: u64) -> Self {
        Backoff {
            config,
            current_ms: config.initial_ms,
            // Zero would make the xorshift below stick at zero.
            rng: seed | 1,
        }
    }

    /// A seed that differs between tasks and runs (jitter needs no better randomness).
    pub fn seed_for(task: u32) -> u64 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        nanos ^ (u64::from(task) << 32) ^ u64::from(std::process::id())
    }

    /// The next delay, and doubles the one after it (up to the cap).
    pub fn next_delay(&mut self) -> Duration {
        let base = self.current_ms;
        self.current_ms = self.current_ms.saturating_mul(2).min(self.config.max_ms);
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let half = base / 2;
        Duration::from_millis(base - half + self.rng % (half + 1))
    }

    /// Back to the initial delay, after a connection that worked.
    pub fn reset(&mut self) {
        self.current_ms = self.config.initial_ms;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_with_jitter_in_the_upper_half() {
        let mut b = Backoff::new(
            BackoffConfig {
                initial_ms: 100,
                max_ms: 1000,
            },
            42,
        );
        let bounds = [
            (50, 100),
            (100, 200),
            (200, 400),
            (400, 800),
            (500, 1000),
            (500, 1000),
        ];
        for (lo, hi) in bounds {
            let d = b.next_delay().as_millis() as u64;
            assert!((lo..=hi).contains(&d), "{d} not in {lo}..={hi}");
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
