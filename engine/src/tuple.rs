//! Tuples and the interned stream schemas they point to.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use smallvec::SmallVec;

use crate::value::{Value, Values};

/// Task id of the system "task" that sends tick tuples (Storm's `-1`).
pub const SYSTEM_TASK_ID: i32 = -1;
/// Component name of system tuples.
pub const SYSTEM_COMPONENT: &str = "__system";
/// Stream of tick tuples.
pub const TICK_STREAM: &str = "__tick";

/// What a tuple's values mean: its source component, stream and field names.
///
/// Schemas are interned for the life of the process, so a tuple carries a plain
/// `&'static` pointer: no reference count is touched per tuple on the hot path.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Schema {
    /// Source component.
    pub component: String,
    /// Stream name.
    pub stream: String,
    /// Field names, in order.
    pub fields: Vec<String>,
}

impl Schema {
    /// The interned schema for these names.
    pub fn intern(component: &str, stream: &str, fields: &[String]) -> &'static Schema {
        static TABLE: OnceLock<Mutex<SchemaTable>> = OnceLock::new();
        let table = TABLE.get_or_init(Default::default);
        let key = (component.to_owned(), stream.to_owned(), fields.to_vec());
        // A poisoned lock only means another thread panicked while inserting; the map is still valid.
        let mut map = table.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = map.get(&key) {
            return s;
        }
        let schema: &'static Schema = Box::leak(Box::new(Schema {
            component: key.0.clone(),
            stream: key.1.clone(),
            fields: key.2.clone(),
        }));
        map.insert(key, schema);
        schema
    }

    /// Position of a field.
    pub fn index_of(&self, field: &str) -> Option<usize> {
        self.fields.iter().position(|f| f == field)
    }

    pub(crate) fn tick() -> &'static Schema {
        static TICK: OnceLock<&'static Schema> = OnceLock::new();
        TICK.get_or_init(|| Schema::intern(SYSTEM_COMPONENT, TICK_STREAM, &["freq_secs".to_owned()]))
    }
}

type SchemaTable = HashMap<(String, String, Vec<String>), &'static Schema>;

/// Root id → edge id pairs: which tuple trees a tuple belongs to.
pub type MessageIds = SmallVec<[(u64, u64); 1]>;

/// A tuple on its way to one task: what the engine's queues and the links between
/// processes carry. The receiving executor turns it into the [`Tuple`] a bolt sees; the
/// bookkeeping only a receiver needs (the anchored edges, the latency stamp) is left out
/// so that a message stays small (see [`crate::fabric::Msg`]).
#[derive(Debug)]
pub struct Packet {
    pub(crate) values: Values,
    pub(crate) schema: &'static Schema,
    pub(crate) source_task: i32,
    /// The destination task.
    pub(crate) task: u32,
    pub(crate) ids: MessageIds,
}

impl Packet {
    /// A tuple for `task`: its values, its interned schema, the emitting task and its tree ids.
    pub fn new(
        task: u32,
        values: Values,
        schema: &'static Schema,
        source_task: i32,
        ids: MessageIds,
    ) -> Self {
        Packet {
            values,
            schema,
            source_task,
            task,
            ids,
        }
    }

    /// The destination task.
    #[inline]
    pub fn task(&self) -> u32 {
        self.task
    }

    /// All values, in field order.
    pub fn values(&self) -> &[Value] {
        &self.values
    }

    /// The interned schema (source component, stream, fields).
    pub fn schema(&self) -> &'static Schema {
        self.schema
    }

    /// The task that emitted it (`-1` for system tuples).
    pub fn source_task(&self) -> i32 {
        self.source_task
    }

    /// The tuple's root → edge ids.
    pub fn message_ids(&self) -> &[(u64, u64)] {
        &self.ids
    }
}

/// A tuple as a bolt receives it.
#[derive(Debug)]
pub struct Tuple {
    pub(crate) values: Values,
    pub(crate) schema: &'static Schema,
    pub(crate) source_task: i32,
    pub(crate) ids: MessageIds,
    /// XOR of the edges of the tuples anchored to this one (Storm's `ackVal`).
    pub(crate) ack_val: Cell<u64>,
    /// When the receiving executor started on it, for sampled process latency (0 = not sampled).
    pub(crate) stamp_ns: u64,
}

impl Clone for Tuple {
    fn clone(&self) -> Self {
        Tuple {
            values: self.values.clone(),
            schema: self.schema,
            source_task: self.source_task,
            ids: self.ids.clone(),
            ack_val: Cell::new(self.ack_val.get()),
            stamp_ns: self.stamp_ns,
        }
    }
}

impl Tuple {
    pub(crate) fn new(values: Values, schema: &'static Schema, source_task: i32, ids: MessageIds) -> Self {
        Tuple {
            values,
            schema,
            source_task,
            ids,
            ack_val: Cell::new(0),
            stamp_ns: 0,
        }
    }

    /// The tuple a receiving executor hands its bolt.
    #[inline]
    pub(crate) fn arrived(p: Packet) -> Self {
        Tuple::new(p.values, p.schema, p.source_task, p.ids)
    }

    /// The interned schema (source component, stream, fields).
    pub fn schema(&self) -> &'static Schema {
        self.schema
    }

    /// A tuple built by hand, e.g. for unit tests of bolts.
    pub fn detached(component: &str, stream: &str, fields: &[&str], values: Values) -> Self {
        let fields: Vec<String> = fields.iter().map(|f| (*f).to_owned()).collect();
        Tuple::new(
            values,
            Schema::intern(component, stream, &fields),
            0,
            MessageIds::new(),
        )
    }

    pub(crate) fn tick(freq_secs: u64) -> Self {
        let mut v = Values::new();
        v.push(Value::from(freq_secs));
        Tuple::new(v, Schema::tick(), SYSTEM_TASK_ID, MessageIds::new())
    }

    /// All values, in field order.
    pub fn values(&self) -> &[Value] {
        &self.values
    }

    /// Takes the values out (cheap; the tuple can still be acked).
    pub fn take_values(&mut self) -> Values {
        std::mem::take(&mut self.values)
    }

    /// The value at a position.
    pub fn get(&self, index: usize) -> Option<&Value> {
        self.values.get(index)
    }

    /// The value of a named field.
    pub fn field(&self, name: &str) -> Option<&Value> {
        self.schema.index_of(name).and_then(|i| self.values.get(i))
    }

    /// The declared field names.
    pub fn fields(&self) -> &'static [String] {
        &self.schema.fields
    }

    /// The component that emitted it.
    pub fn source_component(&self) -> &'static str {
        &self.schema.component
    }

    /// The stream it was emitted on.
    pub fn source_stream(&self) -> &'static str {
        &self.schema.stream
    }

    /// The task that emitted it (`-1` for system tuples).
    pub fn source_task(&self) -> i32 {
        self.source_task
    }

    /// Whether this is a tick tuple.
    pub fn is_tick(&self) -> bool {
        std::ptr::eq(self.schema, Schema::tick())
    }

    /// Whether this tuple is part of at least one tracked tree.
    pub fn is_anchored(&self) -> bool {
        !self.ids.is_empty()
    }

    /// The tuple's root → edge ids.
    pub fn message_ids(&self) -> &[(u64, u64)] {
        &self.ids
    }
}
