//! Message-id bookkeeping shared by the replaying spouts whose tuples are a pure function
//! of their id (`const`, `sequence`, `random-sentence`): nothing but ids is stored.

use std::collections::VecDeque;

use squall_engine::{TaskContext, Value};

/// Hands out ids `index, index + step, ...` below an optional total, replays failed ones
/// first, and counts the trees in flight so a finite spout knows when it is done.
///
/// Ids are split over the component's tasks (id ≡ task index mod task count), so `count`
/// is a total for the component whatever its parallelism.
#[derive(Debug, Clone)]
pub(crate) struct IdSource {
    next: u64,
    step: u64,
    count: Option<u64>,
    reliable: bool,
    replay: VecDeque<u64>,
    in_flight: u64,
}

impl IdSource {
    pub fn new(count: Option<u64>, reliable: bool) -> Self {
        IdSource {
            next: 0,
            step: 1,
            count,
            reliable,
            replay: VecDeque::new(),
            in_flight: 0,
        }
    }

    /// Takes this task's share of the ids.
    pub fn partition(&mut self, ctx: &TaskContext) {
        self.next = ctx.task_index as u64;
        self.step = ctx.component_tasks.len().max(1) as u64;
    }

    /// The next id to emit (a replay if there is one) and the message id to emit it with.
    #[inline]
    pub fn next(&mut self) -> Option<(u64, Option<Value>)> {
        let id = match self.replay.pop_front() {
            Some(id) => id,
            None => {
                if self.count.is_some_and(|c| self.next >= c) {
                    return None;
                }
                let id = self.next;
                self.next += self.step;
                id
            }
        };
        if !self.reliable {
            return Some((id, None));
        }
        self.in_flight += 1;
        Some((id, Some(Value::Int(id as i64))))
    }

    /// The tree of `msg_id` completed.
    pub fn ack(&mut self, _msg_id: &Value) {
        // Saturating: a restarted instance is told about trees of its predecessor.
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// The tree of `msg_id` failed: queue it for replay.
    pub fn fail(&mut self, msg_id: &Value) {
        self.in_flight = self.in_flight.saturating_sub(1);
        if let Some(id) = msg_id.as_i64().and_then(|i| u64::try_from(i).ok()) {
            self.replay.push_back(id);
        }
    }

    /// Everything emitted, nothing to replay, nothing in flight.
    pub fn is_finished(&self) -> bool {
        self.count.is_some_and(|c| self.next >= c) && self.replay.is_empty() && self.in_flight == 0
    }
}

/// SplitMix64: a tiny, well-mixed deterministic generator; no dependency needed for
/// test helpers and sentence choice.
#[inline]
pub(crate) fn mix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A seeded stream of pseudo-random numbers.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix(u64);

impl SplitMix {
    pub fn new(seed: u64) -> Self {
        SplitMix(seed)
    }

    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix64(self.0)
    }
}

/// `Spout` for a type whose tuples are a pure function of their id: it has an `ids:
/// IdSource` field and a `next_values(&mut self) -> Option<(Values, Option<Value>)>`.
macro_rules! id_spout {
    ($spout:ty) => {
        impl squall_engine::Spout for $spout {
            fn open(
                &mut self,
                ctx: &squall_engine::TaskContext,
            ) -> Result<(), squall_engine::ComponentError> {
                self.ids.partition(ctx);
                Ok(())
            }

            fn next_tuple(
                &mut self,
                out: &mut squall_engine::SpoutOutput<'_>,
            ) -> Result<(), squall_engine::ComponentError> {
                if let Some((values, msg_id)) = self.next_values() {
                    out.emit(values, msg_id)?;
                }
                Ok(())
            }

            fn ack(&mut self, msg_id: squall_engine::Value) {
                self.ids.ack(&msg_id);
            }

            fn fail(&mut self, msg_id: squall_engine::Value) {
                self.ids.fail(&msg_id);
            }

            fn is_finished(&self) -> bool {
                self.ids.is_finished()
            }
        }
    };
}
pub(crate) use id_spout;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_failed_ids_before_new_ones_and_finishes_when_all_acked() {
        let mut s = IdSource::new(Some(3), true);
        let a = s.next();
        let b = s.next();
        assert_eq!(a, Some((0, Some(Value::Int(0)))));
        assert_eq!(b, Some((1, Some(Value::Int(1)))));
        s.fail(&Value::Int(0));
        assert_eq!(s.next(), Some((0, Some(Value::Int(0)))), "replay comes first");
        assert_eq!(s.next(), Some((2, Some(Value::Int(2)))));
        assert_eq!(s.next(), None);
        assert!(!s.is_finished(), "three trees still in flight");
        for id in 0..3 {
            s.ack(&Value::Int(id));
        }
        assert!(s.is_finished());
    }

    #[test]
    fn unreliable_ids_carry_no_message_id_and_infinite_never_finishes() {
        let mut s = IdSource::new(None, false);
        for i in 0..1000 {
            assert_eq!(s.next(), Some((i, None)));
        }
        assert!(!s.is_finished());
    }

    #[test]
    fn tasks_split_the_ids() {
        let mut s = IdSource::new(Some(10), false);
        s.next = 1;
        s.step = 3;
        let got: Vec<u64> = std::iter::from_fn(|| s.next().map(|(i, _)| i)).collect();
        assert_eq!(got, vec![1, 4, 7]);
    }
}
