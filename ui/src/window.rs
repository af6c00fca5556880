//! Storm's windows over periodic cumulative samples.
//!
//! A window's figures are the difference between the newest sample and the oldest one
//! kept inside the window. Each window keeps samples at most `resolution` apart in
//! time (its length ÷ [`Options::resolution`](crate::Options)), so the memory of a
//! topology's history is bounded whatever its age or the sampling period, and a window
//! covers between its length less one step and its length. While the topology is younger
//! than a window, the window starts at the topology's start: its figures are all the
//! counters, exactly, as in Storm.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use crate::sample::TopologySample;

/// One of Storm's windows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Window {
    /// The last 10 minutes (`600`).
    TenMinutes,
    /// The last 3 hours (`10800`).
    ThreeHours,
    /// The last day (`86400`).
    OneDay,
    /// Since the topology started (`:all-time`).
    AllTime,
}

impl Window {
    /// Every window, shortest first, as Storm lists them in `topologyStats`.
    pub const ALL: [Window; 4] = [
        Window::TenMinutes,
        Window::ThreeHours,
        Window::OneDay,
        Window::AllTime,
    ];

    /// Storm's `window` parameter: `600`, `10800`, `86400` or `:all-time`.
    pub fn parse(s: &str) -> Option<Window> {
        Window::ALL.into_iter().find(|w| w.param() == s)
    }

    /// The value of Storm's `window` parameter.
    pub fn param(self) -> &'static str {
        match self {
            Window::TenMinutes => "600",
            Window::ThreeHours => "10800",
            Window::OneDay => "86400",
            Window::AllTime => ":all-time",
        }
    }

    /// Storm's `windowPretty` / `windowHint`.
    pub fn pretty(self) -> &'static str {
        match self {
            Window::TenMinutes => "10m 0s",
            Window::ThreeHours => "3h 0m 0s",
            Window::OneDay => "1d 0h 0m 0s",
            Window::AllTime => "All time",
        }
    }

    /// Its length; `None` for all time.
    pub fn length(self) -> Option<Duration> {
        match self {
            Window::TenMinutes => Some(Duration::from_secs(600)),
            Window::ThreeHours => Some(Duration::from_secs(10_800)),
            Window::OneDay => Some(Duration::from_secs(86_400)),
            Window::AllTime => None,
        }
    }
}

/// The samples one bounded window keeps.
#[derive(Debug)]
struct Tier {
    length: Duration,
    step: Duration,
    /// Oldest first; none older than the window, and at most `length / step + 2`.
    samples: VecDeque<Arc<TopologySample>>,
}

impl Tier {
    fn capacity(&self) -> usize {
        (self.length.as_nanos() / self.step.as_nanos().max(1)) as usize + 2
    }

    fn push(&mut self, s: &Arc<TopologySample>) {
        let due = self
            .samples
            .back()
            .is_none_or(|last| s.uptime.saturating_sub(last.uptime) >= self.step);
        if due {
            self.samples.push_back(Arc::clone(s));
        }
        // Keep only samples inside the window that ends now.
        while self
            .samples
            .front()
            .is_some_and(|f| f.uptime + self.length < s.uptime)
        {
            self.samples.pop_front();
        }
        while self.samples.len() > self.capacity() {
            self.samples.pop_front();
        }
    }
}

/// The two ends of a window: what its figures are the difference of.
#[derive(Clone, Copy, Debug)]
pub struct Span<'a> {
    /// The newest sample.
    pub newest: &'a TopologySample,
    /// The sample the window starts at; `None` when it starts at the topology's start
    /// (every counter from zero).
    pub base: Option<&'a TopologySample>,
    /// Time between the two, seconds: what rates divide by.
    pub seconds: f64,
}

/// The sampled history of one topology.
#[derive(Debug)]
pub struct History {
    newest: Arc<TopologySample>,
    tiers: Vec<(Window, Tier)>,
}

impl History {
    /// A history holding one sample; each bounded window keeps about `resolution`
    /// samples (at least 1).
    pub fn new(first: TopologySample, resolution: u32) -> History {
        let resolution = resolution.max(1);
        let tiers = Window::ALL
            .into_iter()
            .filter_map(|w| {
                let length = w.length()?;
                let tier = Tier {
                    length,
                    step: length / resolution,
                    samples: VecDeque::new(),
                };
                Some((w, tier))
            })
            .collect();
        let mut h = History {
            newest: Arc::new(first),
            tiers,
        };
        let first = Arc::clone(&h.newest);
        for (_, t) in &mut h.tiers {
            t.push(&first);
        }
        h
    }

    /// Records a sample. One older than the newest means the topology restarted: the
    /// history starts over.
    pub fn push(&mut self, s: TopologySample) {
        let s = Arc::new(s);
        if s.uptime < self.newest.uptime {
            for (_, t) in &mut self.tiers {
                t.samples.clear();
            }
        }
        for (_, t) in &mut self.tiers {
            t.push(&s);
        }
        self.newest = s;
    }

    /// The newest sample.
    pub fn newest(&self) -> &TopologySample {
        &self.newest
    }

    /// Samples held, counting one held by several windows once.
    pub fn len(&self) -> usize {
        let mut all: Vec<*const TopologySample> = self
            .tiers
            .iter()
            .flat_map(|(_, t)| t.samples.iter().map(Arc::as_ptr))
            .chain([Arc::as_ptr(&self.newest)])
            .collect();
        all.sort_unstable();
        all.dedup();
        all.len()
    }

    /// Never empty: there is always a newest sample.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The ends of `window`.
    pub fn span(&self, window: Window) -> Span<'_> {
        let newest: &TopologySample = &self.newest;
        let from_start = Span {
            newest,
            base: None,
            seconds: newest.uptime.as_secs_f64(),
        };
        let Some(length) = window.length() else {
            return from_start;
        };
        if newest.uptime <= length {
            return from_start;
        }
        let base = self
            .tiers
            .iter()
            .find(|(w, _)| *w == window)
            .and_then(|(_, t)| t.samples.iter().find(|s| s.uptime + length >= newest.uptime))
            .map_or(newest, |s| &**s);
        Span {
            newest,
            base: Some(base),
            seconds: newest.uptime.saturating_sub(base.uptime).as_secs_f64(),
        }
    }
}
