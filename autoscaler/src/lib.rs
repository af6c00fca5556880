//! Sizes each bolt of a topology to its load, after the DS2 model that Flink's autoscaler
//! uses: a bolt's true processing rate is what it executed divided by the share of time it
//! was busy; the rate it must be able to take starts at the spouts (their source's rate,
//! not what back pressure let through) and flows along the graph's edges in the
//! proportions observed on them; its parallelism is that target rate over the true rate
//! per executor at the target utilization.
//!
//! Pure: the caller brings the graph, the figures it measured over its window, the current
//! parallelism, the settings and what it remembers of earlier changes ([`Memory`]), and
//! gets one [`Recommendation`] per component. Nothing here reads a clock or the network.
//!
//! - [`rates`]: target rates from the spouts along the edges.
//! - [`state`]: each component's pacing (steady, stabilizing, scale-down pending) as a
//!   type with explicit transitions.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod rates;
pub mod state;

use std::collections::BTreeMap;

pub use rates::{Edge, Graph, Role};
pub use state::{ComponentState, Memory, Millis, Step, Want};

/// How far to size, and how often to change.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// The busy share each executor should run at, in (0, 1].
    pub target_utilization: f64,
    /// No change while the utilization is within this distance of the target.
    pub boundary: f64,
    /// Bounds of every bolt's parallelism, unless [`Settings::overrides`] names it.
    pub bounds: Bounds,
    /// Per-component bounds.
    pub overrides: BTreeMap<String, Bounds>,
    /// A component changes at most once per this many ms.
    pub stabilization_ms: Millis,
    /// A smaller parallelism is applied only once it has been recommended this long.
    pub scale_down_delay_ms: Millis,
    /// A source backlog is to be worked off within this many ms.
    pub catch_up_ms: Millis,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            target_utilization: 0.7,
            boundary: 0.3,
            bounds: Bounds { min: 1, max: 200 },
            overrides: BTreeMap::new(),
            stabilization_ms: 300_000,
            scale_down_delay_ms: 3_600_000,
            catch_up_ms: 1_800_000,
        }
    }
}

impl Settings {
    /// The bounds of `component`.
    pub fn bounds_of(&self, component: &str) -> Bounds {
        self.overrides.get(component).copied().unwrap_or(self.bounds)
    }
}

/// Inclusive bounds of a parallelism.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    /// At least this many executors.
    pub min: u32,
    /// At most this many.
    pub max: u32,
}

impl Bounds {
    /// `n` within the bounds (the minimum wins should they cross).
    pub fn clamp(self, n: u32) -> u32 {
        n.min(self.max).max(self.min)
    }
}

/// What was measured of one component over the window.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Figures {
    /// Tuples executed per second (bolts), all executors together.
    pub input_rate: f64,
    /// Tuples emitted per second (spouts: what they read from their source).
    pub emit_rate: f64,
    /// Busy time per executor per unit of time, averaged over its executors, 0 to 1.
    pub busy_share: f64,
    /// Executors that ran it.
    pub executors: u32,
    /// Spouts reading a live source or a log: what waits to be read.
    pub source: Option<Source>,
}

/// What waits at a spout's source: a live feed's buffer of messages read but not yet
/// emitted, or a Kafka spout's consumer lag.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Source {
    /// Messages waiting now.
    pub backlog: f64,
    /// Change of the backlog per second over the window.
    pub growth: f64,
    /// Whether the backlog is at its bound: the source is held back by the spout, so its
    /// true rate is above what the spout read, by an amount nothing here can see.
    pub saturated: bool,
}

/// Why a component keeps its parallelism, or changes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Spouts are sized by their source (a live feed's connection, a topic's partitions).
    Spout,
    /// No busy time was measured, so the true rate is unknown.
    NoFigures,
    /// The utilization at the target rate is within the boundary around the target.
    WithinBoundary,
    /// Already at the size the target rate asks for.
    AtTarget,
    /// The utilization at the target rate is above the boundary.
    Overloaded,
    /// The utilization at the target rate is below the boundary, or no load at all.
    Underloaded,
    /// The parallelism is outside the bounds.
    OutOfBounds,
    /// Changed within the stabilization interval.
    Stabilizing {
        /// ms until it may change again.
        remaining_ms: Millis,
    },
    /// A scale-down waits for the scale-down delay.
    ScaleDownDelayed {
        /// ms until it may be applied.
        remaining_ms: Millis,
    },
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Spout => f.write_str("spouts are sized by their source"),
            Reason::NoFigures => f.write_str("no busy time measured in the window"),
            Reason::WithinBoundary => f.write_str("utilization within the boundary of the target"),
            Reason::AtTarget => f.write_str("already sized for the target rate"),
            Reason::Overloaded => f.write_str("utilization at the target rate above the boundary"),
            Reason::Underloaded => f.write_str("utilization at the target rate below the boundary"),
            Reason::OutOfBounds => f.write_str("parallelism outside its bounds"),
            Reason::Stabilizing { remaining_ms } => write!(
                f,
                "changed recently; may change again in {} s",
                remaining_ms.div_ceil(1000)
            ),
            Reason::ScaleDownDelayed { remaining_ms } => write!(
                f,
                "scale-down recommended; applied in {} s unless the load returns",
                remaining_ms.div_ceil(1000)
            ),
        }
    }
}

/// One component's outcome.
#[derive(Clone, Debug, PartialEq)]
pub struct Recommendation {
    /// Its parallelism now.
    pub current: u32,
    /// Its parallelism to be: `current` unless this evaluation changes it.
    pub recommended: u32,
    /// What the load asks for, before pacing (stabilization, scale-down delay).
    pub wanted: u32,
    /// Target rate over what its current executors can take at their true rate.
    pub utilization: Option<f64>,
    /// Tuples per second one executor takes when busy all the time.
    pub true_rate: Option<f64>,
    /// Tuples per second it must be able to take (spouts: their source's rate).
    pub target_rate: f64,
    /// Why.
    pub reason: Reason,
    /// What to remember for the next evaluation.
    pub memory: Memory,
}

impl Recommendation {
    /// Whether this evaluation changes its parallelism.
    pub fn changes(&self) -> bool {
        self.recommended != self.current
    }
}

/// Everything one evaluation looks at.
#[derive(Clone, Debug)]
pub struct Input<'a> {
    /// Components and edges, with the edges' observed rates.
    pub graph: &'a Graph,
    /// Per component, over the window.
    pub figures: &'a BTreeMap<String, Figures>,
    /// Per component, its parallelism now.
    pub parallelism: &'a BTreeMap<String, u32>,
    /// Per component, what the last evaluation left.
    pub memory: &'a BTreeMap<String, Memory>,
    /// The settings.
    pub settings: &'a Settings,
    /// Now, in the caller's ms.
    pub now: Millis,
}

/// Every component's recommendation, by name.
pub fn evaluate(input: &Input<'_>) -> BTreeMap<String, Recommendation> {
    let settings = input.settings;
    let targets = rates::targets(input.graph, input.figures, settings);
    let mut out = BTreeMap::new();
    for (name, role) in input.graph.components() {
        let current = input.parallelism.get(name).copied().unwrap_or(1).max(1);
        let memory = input.memory.get(name).copied().unwrap_or_default();
        let target_rate = targets.get(name).copied().unwrap_or(0.0);
        let rec = match role {
            Role::Spout => Recommendation {
                current,
                recommended: current,
                wanted: current,
                utilization: None,
                true_rate: None,
                target_rate,
                reason: Reason::Spout,
                memory: Memory::default(),
            },
            Role::Bolt => {
                let figures = input.figures.get(name).cloned().unwrap_or_default();
                let bounds = settings.bounds_of(name);
                size_bolt(
                    current,
                    &figures,
                    target_rate,
                    bounds,
                    memory,
                    settings,
                    input.now,
                )
            }
        };
        out.insert(name.clone(), rec);
    }
    out
}

/// One bolt: what its load asks for, then paced by its state.
fn size_bolt(
    current: u32,
    figures: &Figures,
    target_rate: f64,
    bounds: Bounds,
    memory: Memory,
    settings: &Settings,
    now: Millis,
) -> Recommendation {
    let busy = figures.busy_share * f64::from(figures.executors.max(1));
    let true_rate = (busy > 1e-3 && figures.input_rate > 0.0).then(|| figures.input_rate / busy);
    let utilization = true_rate.map(|t| target_rate / (t * f64::from(current)));
    let (want, why) = match (true_rate, utilization) {
        _ if bounds.clamp(current) != current => (bounds.clamp(current), Reason::OutOfBounds),
        (None, _) if target_rate <= 0.0 && figures.input_rate <= 0.0 && figures.executors > 0 => {
            (bounds.min, Reason::Underloaded)
        }
        (Some(t), Some(u)) => {
            if (u - settings.target_utilization).abs() <= settings.boundary {
                (current, Reason::WithinBoundary)
            } else {
                let needed = target_rate / (t * settings.target_utilization);
                // Rounding noise must not add an executor to an exact fit.
                let n = bounds.clamp(clamp_u32((needed - 1e-9).ceil()));
                let why = if u > settings.target_utilization {
                    Reason::Overloaded
                } else {
                    Reason::Underloaded
                };
                (n, why)
            }
        }
        _ => (current, Reason::NoFigures),
    };
    let why = match why {
        Reason::Overloaded | Reason::Underloaded if want == current => Reason::AtTarget,
        other => other,
    };
    let wanted = match want.cmp(&current) {
        std::cmp::Ordering::Greater => Want::Up(want),
        std::cmp::Ordering::Less => Want::Down(want),
        std::cmp::Ordering::Equal => Want::Keep,
    };
    let step = ComponentState::from_memory(memory, now, settings).next(wanted, now, settings);
    let (recommended, reason) = match step.change {
        Some(n) => (n, why),
        None => (current, step.held.unwrap_or(why)),
    };
    Recommendation {
        current,
        recommended,
        wanted: want,
        utilization,
        true_rate,
        target_rate,
        reason,
        memory: step.state.memory(),
    }
}

fn clamp_u32(x: f64) -> u32 {
    if x.is_nan() || x < 1.0 {
        1
    } else if x >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        x as u32
    }
}

/// Workers to run `executors` with at most `per_worker` each: more than `current` only when
/// the bound would be exceeded, and never more than `max_workers`. Workers are not taken
/// away here: that would move the tasks of every component, not only of those resized.
pub fn workers_for(executors: u32, current: u32, per_worker: u32, max_workers: u32) -> u32 {
    let needed = executors.div_ceil(per_worker.max(1));
    if needed <= current {
        current
    } else {
        needed.min(max_workers.max(current))
    }
}

#[cfg(test)]
mod tests;
