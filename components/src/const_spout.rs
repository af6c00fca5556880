//! `const`: emits the same payload over and over, as fast as the engine asks.
//!
//! # Emits
//! - `default` stream, fields `[payload]`: the configured text, once per `next_tuple`.
//!
//! # Config
//! - `payload` (string, default 100 × `x`): the text of every tuple.
//! - `count` (non-negative integer, optional): total tuples for the component, split
//!   over its tasks; unset means forever.
//! - `reliable` (bool, default `true`): emit with a message id (an increasing integer).
//! - `rate` (positive integer, optional): at most this many tuples per second for the
//!   component, split over its tasks; unset means as fast as the engine asks. Used for
//!   latency measurements at a fixed load.
//!
//! # Guarantees
//! - MUST emit exactly one tuple per `next_tuple` call while it has ids left.
//! - MUST re-emit a failed id (before new ones) when `reliable`.
//! - With `count`, MUST report finished only once every id was emitted and, when
//!   `reliable`, every tree was acked.
//! - With `rate`, MUST NOT emit more than `⌈rate × elapsed⌉` tuples (replays included)
//!   since `open`: the first goes at once. Behind its rate (after a stall), it catches up at once: one burst
//!   carries what the stall held back, up to the engine's per-step budget at a time.
//! - SHOULD cost no allocation and no shared reference count per tuple: the payload is
//!   static text, leaked once per distinct payload for the life of the process.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use squall_engine::{ComponentError, Spout, SpoutOutput, TaskContext, Value, Values};

pub use squall_catalog::const_spout::{ConstConfig, KIND};

use crate::ids::IdSource;

/// Static text for a payload. Interned so that restarts and many tasks leak each distinct
/// payload once, not once per instance.
fn intern(payload: &str) -> &'static str {
    static TABLE: OnceLock<Mutex<HashMap<String, &'static str>>> = OnceLock::new();
    let table = TABLE.get_or_init(Default::default);
    // A poisoned lock only means another thread panicked mid-insert; the map is still valid.
    let mut map = table.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(s) = map.get(payload) {
        return s;
    }
    let leaked: &'static str = Box::leak(payload.to_owned().into_boxed_str());
    map.insert(payload.to_owned(), leaked);
    leaked
}

/// The `const` spout.
pub struct ConstSpout {
    payload: Value,
    ids: IdSource,
    rate: Option<Pacer>,
}

/// Paces emits to a fixed rate: a tuple may go while `sent < rate × elapsed`, so the first
/// goes at once and the next each `1 / rate` later. A task of a slow spout (a rate shared
/// by many tasks) therefore emits from its start rather than after a whole period.
struct Pacer {
    per_second: f64,
    start: std::time::Instant,
    sent: u64,
    /// `rate × elapsed` at the last clock read, rounded up: how many may have gone by
    /// then. It only grows, so a tuple under it is allowed without reading the clock
    /// again: one read per burst, not per tuple.
    allowed: u64,
}

impl Pacer {
    #[inline]
    fn allow(&mut self) -> bool {
        if self.sent >= self.allowed {
            self.allowed = (self.start.elapsed().as_secs_f64() * self.per_second).ceil() as u64;
            if self.sent >= self.allowed {
                return false;
            }
        }
        self.sent += 1;
        true
    }
}

impl ConstSpout {
    /// A spout with this configuration.
    pub fn new(config: &ConstConfig) -> Self {
        ConstSpout {
            payload: Value::from_static(intern(&config.payload)),
            ids: IdSource::new(config.count, config.reliable),
            rate: config.rate.map(|r| Pacer {
                per_second: r as f64,
                start: std::time::Instant::now(),
                sent: 0,
                allowed: 0,
            }),
        }
    }

    #[inline]
    fn next_values(&mut self) -> Option<(Values, Option<Value>)> {
        let (_, msg_id) = self.ids.next()?;
        let mut v = Values::new();
        v.push(self.payload.clone());
        Some((v, msg_id))
    }
}

impl Spout for ConstSpout {
    fn open(&mut self, ctx: &TaskContext) -> Result<(), ComponentError> {
        self.ids.partition(ctx);
        if let Some(p) = self.rate.as_mut() {
            p.per_second /= ctx.component_tasks.len().max(1) as f64;
            p.start = std::time::Instant::now();
        }
        Ok(())
    }

    #[inline]
    fn next_tuple(&mut self, out: &mut SpoutOutput<'_>) -> Result<(), ComponentError> {
        if self.rate.as_mut().is_some_and(|p| !p.allow()) {
            return Ok(());
        }
        if let Some((values, msg_id)) = self.next_values() {
            out.emit(values, msg_id)?;
        }
        Ok(())
    }

    fn ack(&mut self, msg_id: Value) {
        self.ids.ack(&msg_id);
    }

    fn fail(&mut self, msg_id: Value) {
        self.ids.fail(&msg_id);
    }

    fn is_finished(&self) -> bool {
        self.ids.is_finished()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use squall_model::Config;

    fn spout(json: serde_json::Value) -> ConstSpout {
        let config: Config = serde_json::from_value(json).unwrap();
        ConstSpout::new(&ConstConfig::parse(&config).unwrap())
    }

    #[test]
    fn default_payload_is_100_x_and_static() {
        let mut s = spout(serde_json::json!({}));
        let (v, id) = s.next_values().unwrap();
        assert_eq!(v[0].as_str(), Some("x".repeat(100).as_str()));
        assert_eq!(id, Some(Value::Int(0)));
        let (_, id) = s.next_values().unwrap();
        assert_eq!(id, Some(Value::Int(1)));
        // Repeated payloads share one leaked string.
        assert!(std::ptr::eq(intern("abc"), intern("abc")));
    }

    #[test]
    fn finite_count_replays_failures_then_finishes() {
        let mut s = spout(serde_json::json!({"payload": "p", "count": 2}));
        assert_eq!(s.next_values().map(|x| x.1), Some(Some(Value::Int(0))));
        assert_eq!(s.next_values().map(|x| x.1), Some(Some(Value::Int(1))));
        assert!(s.next_values().is_none());
        s.fail(Value::Int(1));
        s.ack(Value::Int(0));
        assert!(!s.is_finished());
        let (v, id) = s.next_values().unwrap();
        assert_eq!((v[0].as_str(), id), (Some("p"), Some(Value::Int(1))));
        s.ack(Value::Int(1));
        assert!(s.is_finished());
    }

    #[test]
    fn rate_limits_emits() {
        let mut s = spout(serde_json::json!({"rate": 1000}));
        let p = s.rate.as_mut().unwrap();
        p.start = std::time::Instant::now() - std::time::Duration::from_millis(50);
        let allowed = (0..1000).filter(|_| p.allow()).count();
        // 50 ms at 1000/s: 50 tuples, give or take the clock moving during the loop.
        assert!((50..=52).contains(&allowed), "{allowed}");
        // Each tuple went while `sent < rate × elapsed`, so `sent` is under that plus one.
        let within = |p: &Pacer| (p.sent as f64) < p.start.elapsed().as_secs_f64() * 1000.0 + 1.0;
        assert!(within(p), "{} sent", p.sent);
        // Time passes (the start moves back): the next burst is the new time's worth.
        p.start -= std::time::Duration::from_millis(50);
        let more = (0..1000).filter(|_| p.allow()).count();
        assert!((48..=52).contains(&more), "{more}");
        assert!(within(p), "{} sent", p.sent);
    }

    #[test]
    fn a_slow_rate_emits_its_first_tuple_at_once() {
        // 200/s shared by 1,000 tasks: 0.2/s each. The first goes at once, the second
        // after 5 s, not the first after 5 s.
        let mut s = spout(serde_json::json!({"rate": 1}));
        let p = s.rate.as_mut().unwrap();
        p.per_second = 0.2;
        p.start = std::time::Instant::now() - std::time::Duration::from_millis(1);
        assert!(p.allow(), "the first tuple waits a whole period");
        assert!(!p.allow(), "a second tuple within the first period");
        p.start -= std::time::Duration::from_secs(5);
        assert!(p.allow() && !p.allow(), "one more after 1 / rate");
    }

    #[test]
    fn unreliable_emits_without_ids() {
        let mut s = spout(serde_json::json!({"reliable": false, "count": 1}));
        assert_eq!(s.next_values().map(|x| x.1), Some(None));
        assert!(s.is_finished());
    }

    #[test]
    fn bad_config_names_the_key() {
        let config: Config = serde_json::from_value(serde_json::json!({"payload": 3})).unwrap();
        let err = ConstConfig::parse(&config).unwrap_err().to_string();
        assert!(err.contains("\"payload\"") && err.contains("a string"), "{err}");
    }
}
