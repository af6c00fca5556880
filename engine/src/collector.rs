//! Output collectors: routing emits through groupings, anchoring, and acker messages.

use std::sync::Arc;
use std::time::Instant;

use crate::acker::IdMap;
use crate::component::ComponentError;
use crate::fabric::{Control, Fabric, Msg, Outbox};
use crate::grouping::{Grouper, Rng, Targets};
use crate::metrics::{LocalCounts, TaskLatencies};
use crate::tuple::{MessageIds, Packet, Schema, Tuple};
use crate::value::{Value, Values};

/// One declared output stream of a task with the subscriptions that consume it.
pub(crate) struct StreamRoute {
    pub name: String,
    pub schema: &'static Schema,
    pub direct: bool,
    pub subs: Vec<Grouper>,
}

/// Routing state owned by one task.
pub(crate) struct Routing {
    pub task: u32,
    pub streams: Vec<StreamRoute>,
    pub rng: Rng,
    pub targets: Targets,
}

impl Routing {
    #[inline]
    fn stream_index(&self, name: &str) -> Result<usize, ComponentError> {
        self.streams.iter().position(|s| s.name == name).ok_or_else(|| {
            let declared: Vec<&str> = self.streams.iter().map(|s| s.name.as_str()).collect();
            ComponentError(format!(
                "emit on undeclared stream {name:?}; declared: {}",
                if declared.is_empty() {
                    "none".to_owned()
                } else {
                    declared.join(", ")
                }
            ))
        })
    }

    /// Fills `self.targets` for an emit and returns the stream index.
    #[inline]
    fn choose(
        &mut self,
        stream: &str,
        values: &Values,
        direct: Option<u32>,
    ) -> Result<usize, ComponentError> {
        let idx = self.stream_index(stream)?;
        self.targets.clear();
        let route = &mut self.streams[idx];
        if route.schema.fields.len() != values.len() {
            return Err(ComponentError(format!(
                "emit on stream {:?} with {} values, but it declares {} fields ({})",
                route.name,
                values.len(),
                route.schema.fields.len(),
                route.schema.fields.join(", ")
            )));
        }
        match direct {
            None => {
                if route.direct {
                    return Err(ComponentError(format!(
                        "stream {:?} is direct: use emit_direct",
                        route.name
                    )));
                }
                for g in &mut route.subs {
                    g.choose(values, &mut self.targets);
                }
            }
            Some(task) => {
                if !route.direct {
                    return Err(ComponentError(format!(
                        "emit_direct on stream {:?}, which is not declared direct",
                        route.name
                    )));
                }
                if route.subs.iter().any(|g| g.is_direct() && g.accepts(task)) {
                    self.targets.push(task);
                } else {
                    return Err(ComponentError(format!(
                        "emit_direct to task {task}, which does not subscribe to stream {:?}",
                        route.name
                    )));
                }
            }
        }
        Ok(idx)
    }
}

/// A spout's un-acked tuple.
pub(crate) struct PendingTuple {
    pub msg_id: Value,
    pub emitted: Instant,
    /// Deadline base; moved forward by `reset_timeout`.
    pub since: Instant,
}

/// Spout-side state the collector needs.
pub(crate) struct SpoutState {
    pub pending: IdMap<PendingTuple>,
    /// The root id of the next tracked tuple. Roots are consecutive from a random start,
    /// so the trees in flight sit together in `pending` and in the ackers' ledgers (see
    /// [`crate::acker::RootHash`]); the start keeps a restarted worker's roots apart from
    /// its last life's.
    pub next_root: u64,
    /// Message ids to ack right away (acking off, or no consumer).
    pub immediate_acks: Vec<Value>,
    /// Errors reported during the last call.
    pub errors: Vec<String>,
}

impl SpoutState {
    /// The next root id; never zero, which marks an untracked tuple.
    #[inline]
    pub(crate) fn take_root(&mut self) -> u64 {
        let root = self.next_root.max(1);
        self.next_root = root.wrapping_add(1);
        root
    }
}

/// What a spout emits through.
pub struct SpoutOutput<'a> {
    pub(crate) routing: &'a mut Routing,
    pub(crate) outbox: &'a mut Outbox,
    pub(crate) state: &'a mut SpoutState,
    pub(crate) counts: &'a mut LocalCounts,
    pub(crate) fabric: &'a Arc<Fabric>,
    pub(crate) now: Instant,
    pub(crate) emitted_now: usize,
}

impl SpoutOutput<'_> {
    /// Emits on the `default` stream. With a message id the tuple is tracked: `ack` or
    /// `fail` is called with that id later. Returns the receiving task ids.
    pub fn emit(&mut self, values: Values, msg_id: Option<Value>) -> Result<&[u32], ComponentError> {
        self.send(squall_model::DEFAULT_STREAM, values, msg_id, None)
    }

    /// Emits on a named stream.
    pub fn emit_on(
        &mut self,
        stream: &str,
        values: Values,
        msg_id: Option<Value>,
    ) -> Result<&[u32], ComponentError> {
        self.send(stream, values, msg_id, None)
    }

    /// Emits to one task of a direct stream's consumer.
    pub fn emit_direct(
        &mut self,
        task: u32,
        stream: &str,
        values: Values,
        msg_id: Option<Value>,
    ) -> Result<&[u32], ComponentError> {
        self.send(stream, values, msg_id, Some(task))
    }

    /// Reports an error: logged with the component and task, counted, shown in metrics.
    pub fn report_error(&mut self, error: impl std::fmt::Display) {
        self.state.errors.push(error.to_string());
    }

    /// Tuples emitted during this call of `next_tuple` so far.
    pub fn emitted(&self) -> usize {
        self.emitted_now
    }

    fn send(
        &mut self,
        stream: &str,
        values: Values,
        msg_id: Option<Value>,
        direct: Option<u32>,
    ) -> Result<&[u32], ComponentError> {
        let idx = self.routing.choose(stream, &values, direct)?;
        let schema = self.routing.streams[idx].schema;
        let task = self.routing.task as i32;
        let n = self.routing.targets.len();
        self.counts.emitted += 1;
        self.counts.transferred += n as u64;
        self.counts.streams.emitted(idx, n);
        self.emitted_now += 1;
        let track = msg_id.is_some() && !self.fabric.ackers.is_empty() && n > 0;
        let mut values = Some(values);
        let mut xor = 0u64;
        let root = if track { self.state.take_root() } else { 0 };
        for i in 0..n {
            let target = self.routing.targets[i];
            let v = if i + 1 == n {
                values.take().unwrap_or_default()
            } else {
                values.clone().unwrap_or_default()
            };
            let mut ids = MessageIds::new();
            if track {
                let edge = self.routing.rng.next_id();
                xor ^= edge;
                ids.push((root, edge));
            }
            self.outbox
                .send(target, Msg::Tuple(Packet::new(target, v, schema, task, ids)));
        }
        match msg_id {
            Some(id) if track => {
                let acker = self.fabric.acker_for(root);
                self.outbox.send(
                    acker,
                    Msg::Control(Control::AckInit {
                        task: acker,
                        root,
                        xor,
                        spout_task: self.routing.task,
                    }),
                );
                self.state.pending.insert(
                    root,
                    PendingTuple {
                        msg_id: id,
                        emitted: self.now,
                        since: self.now,
                    },
                );
            }
            Some(id) => self.state.immediate_acks.push(id),
            None => {}
        }
        Ok(&self.routing.targets)
    }
}

/// What a bolt emits, acks and fails through.
pub struct BoltOutput<'a> {
    pub(crate) routing: &'a mut Routing,
    pub(crate) outbox: &'a mut Outbox,
    pub(crate) counts: &'a mut LocalCounts,
    pub(crate) latencies: &'a mut TaskLatencies,
    pub(crate) fabric: &'a Arc<Fabric>,
    pub(crate) epoch: Instant,
    /// Implicit anchor of a [`crate::BasicBolt`]: the input's ids and the XOR of new edges.
    pub(crate) implicit: Option<(MessageIds, u64)>,
    pub(crate) errors: &'a mut Vec<String>,
    /// Ids of the input being executed, and whether it has been acked or failed since.
    pub(crate) current: Option<(MessageIds, bool)>,
}

impl BoltOutput<'_> {
    /// Emits on the `default` stream, anchored to `anchors` (empty: unanchored).
    /// Inside a [`crate::BasicBolt`] the input is the anchor and `anchors` adds to it.
    pub fn emit(&mut self, anchors: &[&Tuple], values: Values) -> Result<&[u32], ComponentError> {
        self.send(squall_model::DEFAULT_STREAM, anchors, values, None)
    }

    /// Emits on a named stream.
    pub fn emit_on(
        &mut self,
        stream: &str,
        anchors: &[&Tuple],
        values: Values,
    ) -> Result<&[u32], ComponentError> {
        self.send(stream, anchors, values, None)
    }

    /// Emits to one task of a direct stream's consumer.
    pub fn emit_direct(
        &mut self,
        task: u32,
        stream: &str,
        anchors: &[&Tuple],
        values: Values,
    ) -> Result<&[u32], ComponentError> {
        self.send(stream, anchors, values, Some(task))
    }

    fn send(
        &mut self,
        stream: &str,
        anchors: &[&Tuple],
        values: Values,
        direct: Option<u32>,
    ) -> Result<&[u32], ComponentError> {
        let idx = self.routing.choose(stream, &values, direct)?;
        let schema = self.routing.streams[idx].schema;
        let task = self.routing.task as i32;
        let n = self.routing.targets.len();
        self.counts.emitted += 1;
        self.counts.transferred += n as u64;
        self.counts.streams.emitted(idx, n);
        let acking = !self.fabric.ackers.is_empty();
        let mut values = Some(values);
        for i in 0..n {
            let target = self.routing.targets[i];
            let mut ids = MessageIds::new();
            if acking {
                let anchored = self.implicit.as_ref().is_some_and(|(ids, _)| !ids.is_empty())
                    || anchors.iter().any(|a| a.is_anchored());
                if anchored {
                    let edge = self.routing.rng.next_id();
                    if let Some((anchor_ids, ack)) = self.implicit.as_mut() {
                        for (root, _) in anchor_ids.iter() {
                            xor_into(&mut ids, *root, edge);
                        }
                        if !anchor_ids.is_empty() {
                            *ack ^= edge;
                        }
                    }
                    for a in anchors {
                        for (root, _) in a.ids.iter() {
                            xor_into(&mut ids, *root, edge);
                        }
                        if a.is_anchored() {
                            a.ack_val.set(a.ack_val.get() ^ edge);
                        }
                    }
                }
            }
            let v = if i + 1 == n {
                values.take().unwrap_or_default()
            } else {
                values.clone().unwrap_or_default()
            };
            self.outbox
                .send(target, Msg::Tuple(Packet::new(target, v, schema, task, ids)));
        }
        Ok(&self.routing.targets)
    }

    /// The input is done: its tree(s) no longer wait for it.
    #[inline]
    pub fn ack(&mut self, input: Tuple) {
        self.ack_ref(&input);
    }

    /// [`BoltOutput::ack`] for a tuple the caller keeps. A tuple is too large to be moved
    /// inline: passed by value it is copied with `memcpy`, and reading it back straight
    /// after the copy stalled word count's bolts (a fifth of its throughput).
    pub(crate) fn ack_ref(&mut self, input: &Tuple) {
        self.settle(input);
        self.counts.acked += 1;
        let slot = self.counts.streams.input(input.schema);
        if input.stamp_ns != 0 {
            let now = self.epoch.elapsed().as_nanos() as u64;
            let d = std::time::Duration::from_nanos(now.saturating_sub(input.stamp_ns));
            TaskLatencies::record(&mut self.latencies.process, d);
            if let Some(x) = slot {
                x.acked += 1;
                x.process_count += 1;
                x.process_sum_us += TaskLatencies::micros(d);
            }
        } else if let Some(x) = slot {
            x.acked += 1;
        }
        if self.fabric.ackers.is_empty() {
            return;
        }
        let val = input.ack_val.get();
        for (root, edge) in input.ids.iter() {
            let acker = self.fabric.acker_for(*root);
            self.outbox.send_ack(acker, *root, edge ^ val);
        }
    }

    /// The input failed: its tree(s) fail now and the spout replays.
    #[inline]
    pub fn fail(&mut self, input: Tuple) {
        self.fail_ref(&input);
    }

    /// [`BoltOutput::fail`] for a tuple the caller keeps.
    pub(crate) fn fail_ref(&mut self, input: &Tuple) {
        self.settle(input);
        self.counts.failed += 1;
        if let Some(x) = self.counts.streams.input(input.schema) {
            x.failed += 1;
        }
        for (root, _) in input.ids.iter() {
            let acker = self.fabric.acker_for(*root);
            self.outbox.send(
                acker,
                Msg::Control(Control::Fail {
                    task: acker,
                    root: *root,
                }),
            );
        }
    }

    /// Restarts the message timeout of the input's tree(s).
    pub fn reset_timeout(&mut self, input: &Tuple) {
        for (root, _) in input.ids.iter() {
            let acker = self.fabric.acker_for(*root);
            self.outbox.send(
                acker,
                Msg::Control(Control::Reset {
                    task: acker,
                    root: *root,
                }),
            );
        }
    }

    /// Reports an error: logged with the component and task, counted, shown in metrics.
    pub fn report_error(&mut self, error: impl std::fmt::Display) {
        self.errors.push(error.to_string());
    }

    fn settle(&mut self, input: &Tuple) {
        if let Some((ids, settled)) = self.current.as_mut() {
            if *ids == input.ids {
                *settled = true;
            }
        }
    }

    pub(crate) fn anchor_to(&mut self, input: &Tuple) {
        self.implicit = Some((input.ids.clone(), 0));
    }

    pub(crate) fn clear_anchor_into(&mut self, input: &Tuple) {
        if let Some((_, ack)) = self.implicit.take() {
            input.ack_val.set(input.ack_val.get() ^ ack);
        }
    }
}

#[inline]
fn xor_into(ids: &mut MessageIds, root: u64, edge: u64) {
    match ids.iter_mut().find(|(r, _)| *r == root) {
        Some((_, e)) => *e ^= edge,
        None => ids.push((root, edge)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_are_consecutive_and_never_zero() {
        let mut s = SpoutState {
            pending: IdMap::default(),
            next_root: u64::MAX - 1,
            immediate_acks: Vec::new(),
            errors: Vec::new(),
        };
        let roots: Vec<u64> = (0..4).map(|_| s.take_root()).collect();
        assert_eq!(roots, vec![u64::MAX - 1, u64::MAX, 1, 2]);
    }
}
