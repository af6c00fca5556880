//! Stable record identities: which spouts give them, which bolts need them, and the
//! validation that a bolt needing them is fed only by spouts giving them.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::plan::Role;
use crate::spec::{ComponentSpec, StreamSpec};
use crate::validate::{Checker, FieldBound};

/// Stable record identities: what exactly-once sinks build on.
///
/// A spout *gives* them when every tuple it emits reliably names its source record by an
/// identity (e.g. Kafka's topic, partition and offset) that a replay repeats with the same
/// content, and carries a floor below which every record is fully processed. A bolt
/// *needs* them when its config counts on them (`redis-counter`'s `exactly_once`).
/// Validation walks each needing bolt's inputs back to the spouts at their roots and
/// refuses the topology when one of those spouts does not give them, or when an input
/// stream does not declare the identity fields.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Identity {
    /// Neither gives nor needs them.
    #[default]
    None,
    /// A spout whose tuples carry stable identities, with this config.
    Gives,
    /// A bolt whose config needs them.
    Needs {
        /// The config key that asks for them, e.g. `exactly_once`: problems are reported at
        /// `spec.bolts[i].config.<key>`.
        key: String,
        /// The identity fields every input stream must declare, each with the config key
        /// (below `key`) that names it, e.g. `("offset", "offset")`, `("source[0]", "topic")`.
        fields: Vec<(String, String)>,
        /// A bound the bolt needs on an identity field (e.g. the tuple's index in its record).
        limit: Option<IndexLimit>,
    },
}

/// A needing bolt's bound on one identity field: values at or over `limit` cannot be
/// stored. Validation compares it with the bound of the kind that makes the field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexLimit {
    /// The bounded field, e.g. `index`.
    pub field: String,
    /// The config key (below the `Needs` key) that sets the limit, e.g. `tuples_per_record`.
    pub setting: String,
    /// Values must be below this.
    pub limit: u64,
}

/// For each bolt that needs identities: every spout its inputs reach (walking through
/// bolts) must give them, and every input stream must declare the identity fields.
pub(crate) fn check_identities(
    c: &mut Checker,
    all: &[(String, Role, &ComponentSpec)],
    identities: &[Identity],
    bounds: &[Vec<FieldBound>],
    outputs: &BTreeMap<&str, Vec<StreamSpec>>,
    unresolved: &BTreeSet<&str>,
) {
    let index: BTreeMap<&str, usize> = all
        .iter()
        .enumerate()
        .map(|(i, (_, _, comp))| (comp.name.as_str(), i))
        .collect();
    for (i, (path, _, comp)) in all.iter().enumerate() {
        let Some(Identity::Needs { key, fields, limit }) = identities.get(i) else {
            continue;
        };
        let kpath = format!("{path}.config.{key}");
        if let Some(limit) = limit {
            check_limit(c, all, &index, bounds, outputs, i, &kpath, limit);
        }
        for (spout, chain) in root_spouts(all, &index, i) {
            if identities.get(spout) == Some(&Identity::Gives) {
                continue;
            }
            let (spath, _, s) = &all[spout];
            c.add(
                kpath.clone(),
                format!(
                    "needs stable record identities, but spout {:?} ({spath}, kind {:?}) feeds it ({}) and cannot give them: \
                     its replays are not promised to carry the same content under the same identity, so a replay could not be \
                     told from a new record; feed it from a spout that gives them (kafka with processingGuarantee atLeastOnce), \
                     or remove {key}",
                    s.name,
                    s.component,
                    chain.join(" -> "),
                ),
            );
        }
        for (j, input) in comp.inputs.iter().enumerate() {
            if unresolved.contains(input.from.as_str()) {
                continue;
            }
            // An unknown component or stream is reported by the input checks.
            let Some(stream) = outputs
                .get(input.from.as_str())
                .and_then(|streams| streams.iter().find(|s| s.stream == input.stream))
            else {
                continue;
            };
            for (sub, field) in fields {
                if !stream.fields.contains(field) {
                    c.add(
                        format!("{kpath}.{sub}"),
                        format!(
                            "identity field {field:?} is not declared on stream {}/{} (inputs[{j}]); declared: {}",
                            input.from,
                            input.stream,
                            stream.fields.join(", ")
                        ),
                    );
                }
            }
        }
    }
}

/// The components making `limit.field` for `all[start]` (found by walking upstream
/// through bolts that pass it on, i.e. have it on their input and output streams) must
/// bound it within `limit`; one that bounds it higher is reported at the setting. A maker
/// that declares no bound (e.g. a shell bolt) is left to the bolt's check at run time.
#[allow(clippy::too_many_arguments)]
fn check_limit(
    c: &mut Checker,
    all: &[(String, Role, &ComponentSpec)],
    index: &BTreeMap<&str, usize>,
    bounds: &[Vec<FieldBound>],
    outputs: &BTreeMap<&str, Vec<StreamSpec>>,
    start: usize,
    kpath: &str,
    limit: &IndexLimit,
) {
    let declares = |comp: &str, stream: &str| {
        outputs.get(comp).is_some_and(|streams| {
            streams
                .iter()
                .any(|s| s.stream == stream && s.fields.contains(&limit.field))
        })
    };
    let mut seen = BTreeSet::new();
    let mut reported = BTreeSet::new();
    let mut todo: Vec<(&str, &str)> = all[start]
        .2
        .inputs
        .iter()
        .map(|i| (i.from.as_str(), i.stream.as_str()))
        .collect();
    while let Some((from, stream)) = todo.pop() {
        if !seen.insert((from, stream)) || !declares(from, stream) {
            continue;
        }
        let Some(&k) = index.get(from) else { continue };
        let (kpath_of, role, comp) = &all[k];
        let bound = bounds[k]
            .iter()
            .find(|b| b.stream == stream && b.field == limit.field);
        match bound {
            Some(b) if b.limit > limit.limit && reported.insert(k) => {
                c.add(
                        format!("{kpath}.{}", limit.setting),
                        format!(
                            "{} is too small: component {:?} ({kpath_of}, kind {:?}) gives up to {} tuples per record (its field {:?} on stream {stream} goes up to {}); set {} to at least {}",
                            limit.limit,
                            comp.name,
                            comp.component,
                            b.limit,
                            limit.field,
                            b.limit.saturating_sub(1),
                            limit.setting,
                            b.limit
                        ),
                    );
            }
            Some(_) => {}
            None if *role == Role::Bolt => {
                todo.extend(comp.inputs.iter().map(|i| (i.from.as_str(), i.stream.as_str())))
            }
            None => {}
        }
    }
}

/// The spouts that `all[start]`'s inputs reach, walking upstream through bolts, each with
/// the path from it down to `start` (component names), in the order they are found.
fn root_spouts(
    all: &[(String, Role, &ComponentSpec)],
    index: &BTreeMap<&str, usize>,
    start: usize,
) -> Vec<(usize, Vec<String>)> {
    // `via[k]`: the component whose input led the walk to `k`.
    let mut via: Vec<Option<usize>> = vec![None; all.len()];
    let mut seen = vec![false; all.len()];
    seen[start] = true;
    let mut queue = VecDeque::from([start]);
    let mut roots = Vec::new();
    while let Some(j) = queue.pop_front() {
        for input in &all[j].2.inputs {
            let Some(&k) = index.get(input.from.as_str()) else {
                continue;
            };
            if seen[k] {
                continue;
            }
            seen[k] = true;
            via[k] = Some(j);
            if all[k].1 == Role::Spout {
                roots.push(k);
            } else {
                queue.push_back(k);
            }
        }
    }
    roots
        .into_iter()
        .map(|k| {
            let mut chain = vec![all[k].2.name.clone()];
            let mut at = k;
            while let Some(next) = via[at] {
                chain.push(all[next].2.name.clone());
                at = next;
            }
            (k, chain)
        })
        .collect()
}
