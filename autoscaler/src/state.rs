//! How often a component may change: each one is steady, stabilizing after a change, or
//! waiting out the scale-down delay, and [`ComponentState::next`] is the only way from one
//! to another. The state is rebuilt from a [`Memory`] (what the caller keeps between
//! evaluations, e.g. in a status) so a restarted caller paces as the one before it did.

use crate::{Reason, Settings};

/// Milliseconds on the caller's clock (any epoch, the same for every call).
pub type Millis = u64;

/// What an evaluation leaves for the next one, per component.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Memory {
    /// When its parallelism last changed.
    pub last_change: Option<Millis>,
    /// Since when a smaller parallelism has been recommended without a break.
    pub scale_down_since: Option<Millis>,
}

/// Where a component stands between changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ComponentState {
    /// May change now.
    Steady {
        /// When it last changed, if ever (kept for the record).
        last_change: Option<Millis>,
    },
    /// Changed at `since`; holds until the stabilization interval has passed.
    Stabilizing {
        /// When it changed.
        since: Millis,
    },
    /// A smaller parallelism has been recommended since `since`; applied once the
    /// scale-down delay has passed, dropped when the recommendation goes.
    ScaleDownPending {
        /// When it was first recommended.
        since: Millis,
        /// When it last changed, if ever.
        last_change: Option<Millis>,
    },
}

/// What the load asks of a component.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Want {
    /// Keep the parallelism.
    Keep,
    /// More executors: this many.
    Up(u32),
    /// Fewer executors: this many.
    Down(u32),
}

/// The outcome of one transition.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Step {
    /// The state after it.
    pub state: ComponentState,
    /// The new parallelism, when it changes now.
    pub change: Option<u32>,
    /// Why a wanted change is held back.
    pub held: Option<Reason>,
}

impl ComponentState {
    /// The state `memory` describes at `now`.
    pub fn from_memory(memory: Memory, now: Millis, settings: &Settings) -> Self {
        let stabilizing = memory
            .last_change
            .filter(|t| now.saturating_sub(*t) < settings.stabilization_ms);
        match (stabilizing, memory.scale_down_since) {
            (Some(since), _) => ComponentState::Stabilizing { since },
            (None, Some(since)) => ComponentState::ScaleDownPending {
                since,
                last_change: memory.last_change,
            },
            (None, None) => ComponentState::Steady {
                last_change: memory.last_change,
            },
        }
    }

    /// What to remember of this state.
    pub fn memory(self) -> Memory {
        match self {
            ComponentState::Steady { last_change } => Memory {
                last_change,
                scale_down_since: None,
            },
            ComponentState::Stabilizing { since } => Memory {
                last_change: Some(since),
                scale_down_since: None,
            },
            ComponentState::ScaleDownPending { since, last_change } => Memory {
                last_change,
                scale_down_since: Some(since),
            },
        }
    }

    /// The transition for `want` at `now`.
    pub fn next(self, want: Want, now: Millis, settings: &Settings) -> Step {
        let changed = |n| Step {
            state: ComponentState::Stabilizing { since: now },
            change: Some(n),
            held: None,
        };
        let stay = |state, held| Step {
            state,
            change: None,
            held,
        };
        match (self, want) {
            // Within the interval nothing changes, and no scale-down starts its delay: the
            // figures still reflect the state before the change.
            (ComponentState::Stabilizing { since }, Want::Up(_) | Want::Down(_)) => {
                let remaining_ms = (since + settings.stabilization_ms).saturating_sub(now);
                stay(self, Some(Reason::Stabilizing { remaining_ms }))
            }
            (ComponentState::Stabilizing { .. }, Want::Keep) => stay(self, None),
            (ComponentState::Steady { .. }, Want::Keep) => stay(self, None),
            (ComponentState::ScaleDownPending { last_change, .. }, Want::Keep) => {
                stay(ComponentState::Steady { last_change }, None)
            }
            (ComponentState::Steady { .. } | ComponentState::ScaleDownPending { .. }, Want::Up(n)) => {
                changed(n)
            }
            (ComponentState::Steady { last_change }, Want::Down(n)) => {
                if settings.scale_down_delay_ms == 0 {
                    changed(n)
                } else {
                    let pending = ComponentState::ScaleDownPending {
                        since: now,
                        last_change,
                    };
                    let remaining_ms = settings.scale_down_delay_ms;
                    stay(pending, Some(Reason::ScaleDownDelayed { remaining_ms }))
                }
            }
            (ComponentState::ScaleDownPending { since, .. }, Want::Down(n)) => {
                let due = since.saturating_add(settings.scale_down_delay_ms);
                if now >= due {
                    changed(n)
                } else {
                    let remaining_ms = due - now;
                    stay(self, Some(Reason::ScaleDownDelayed { remaining_ms }))
                }
            }
        }
    }
}
