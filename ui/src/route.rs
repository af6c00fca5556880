//! Reading a request: its path into a route, its query, a rebalance body.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use crate::error::ApiError;
use crate::source::RebalanceOptions;
use crate::window::Window;

/// Every path starts here.
pub const BASE: &str = "/api/v1/";

/// The longest wait an action takes, as Storm's wait times are seconds in an int but no
/// one waits a day to kill.
pub const MAX_WAIT_SECS: u64 = 86_400;

/// What a path asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// `cluster/summary`.
    ClusterSummary,
    /// `topology/summary`.
    TopologySummary,
    /// `topology/{id}`.
    Topology(String),
    /// `topology/{id}/component/{component}`.
    Component(String, String),
    /// `topology/{id}/visualization`.
    Visualization(String),
    /// `topology/{id}/lag`: the Kafka spouts' lag.
    Lag(String),
    /// `topology/{id}/{action}[/{wait-secs}]`.
    Action(String, Action),
}

/// Storm's topology actions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// `activate`.
    Activate,
    /// `deactivate`.
    Deactivate,
    /// `rebalance/{wait-secs}`.
    Rebalance(Duration),
    /// `kill/{wait-secs}`.
    Kill(Duration),
}

impl Action {
    /// Storm's `topologyOperation`.
    pub fn name(self) -> &'static str {
        match self {
            Action::Activate => "activate",
            Action::Deactivate => "deactivate",
            Action::Rebalance(_) => "rebalance",
            Action::Kill(_) => "kill",
        }
    }
}

/// Decodes `%XX` escapes of one path segment or query value.
pub fn percent_decode(s: &str, plus_is_space: bool) -> Result<String, ApiError> {
    let bad = || ApiError::BadRequest(format!("bad percent-encoding in {:?}", short(s)));
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = b.get(i + 1..i + 3).ok_or_else(bad)?;
                let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

fn short(s: &str) -> String {
    s.chars().take(80).collect()
}

fn wait(s: &str) -> Result<Duration, ApiError> {
    match s.parse::<u64>() {
        Ok(n) if n <= MAX_WAIT_SECS => Ok(Duration::from_secs(n)),
        _ => Err(ApiError::BadRequest(format!(
            "wait time {:?} is not a whole number of seconds from 0 to {MAX_WAIT_SECS}",
            short(s)
        ))),
    }
}

/// The route of a path, or 404 (400 for a malformed segment or wait time).
pub fn parse(path: &str) -> Result<Route, ApiError> {
    let not_found = || ApiError::NotFound(format!("no such path: {}", short(path)));
    let rest = path.strip_prefix(BASE).ok_or_else(not_found)?;
    let segs: Vec<String> = rest
        .split('/')
        .map(|s| percent_decode(s, false))
        .collect::<Result<_, _>>()?;
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let route = match segs.as_slice() {
        ["cluster", "summary"] => Route::ClusterSummary,
        ["topology", "summary"] => Route::TopologySummary,
        ["topology", id] => Route::Topology((*id).to_owned()),
        ["topology", id, "visualization"] => Route::Visualization((*id).to_owned()),
        ["topology", id, "lag"] => Route::Lag((*id).to_owned()),
        ["topology", id, "component", c] => Route::Component((*id).to_owned(), (*c).to_owned()),
        ["topology", id, "activate"] => Route::Action((*id).to_owned(), Action::Activate),
        ["topology", id, "deactivate"] => Route::Action((*id).to_owned(), Action::Deactivate),
        ["topology", id, "rebalance", w] => Route::Action((*id).to_owned(), Action::Rebalance(wait(w)?)),
        ["topology", id, "kill", w] => Route::Action((*id).to_owned(), Action::Kill(wait(w)?)),
        _ => return Err(not_found()),
    };
    match &route {
        Route::Topology(id)
        | Route::Visualization(id)
        | Route::Lag(id)
        | Route::Component(id, _)
        | Route::Action(id, _)
            if id.is_empty() =>
        {
            Err(not_found())
        }
        _ => Ok(route),
    }
}

/// The query parameters the reads take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Query {
    /// `window=`: Storm's default is all time.
    pub window: Window,
    /// `sys=1` or `sys=true`: show system components.
    pub sys: bool,
}

impl Query {
    /// Reads `window` and `sys`; other parameters are ignored, as Storm does.
    pub fn parse(q: Option<&str>) -> Result<Query, ApiError> {
        let mut out = Query {
            window: Window::AllTime,
            sys: false,
        };
        for pair in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = percent_decode(v, true)?;
            match k {
                "window" => {
                    out.window = Window::parse(&v).ok_or_else(|| {
                        ApiError::BadRequest(format!(
                            "window {:?} is not one of 600, 10800, 86400, :all-time",
                            short(&v)
                        ))
                    })?;
                }
                "sys" => out.sys = matches!(v.as_str(), "1" | "true"),
                _ => {}
            }
        }
        Ok(out)
    }
}

/// A count in a rebalance body: a positive integer, or a string holding one (Storm's
/// own example sends `"5"`).
fn count(v: &Value, what: &str) -> Result<u32, ApiError> {
    let n = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    n.filter(|n| (1..=u64::from(u32::MAX)).contains(n))
        .map(|n| n as u32)
        .ok_or_else(|| ApiError::BadRequest(format!("{what}: {v} is not a positive whole number")))
}

/// Storm's rebalance body, `{"rebalanceOptions": {"numWorkers": N, "executors": {"c": N}}}`;
/// an empty body asks for nothing in particular.
pub fn rebalance_options(body: &[u8]) -> Result<RebalanceOptions, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(RebalanceOptions::default());
    }
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("the body is not JSON: {e}")))?;
    let Some(opts) = v.get("rebalanceOptions") else {
        return Ok(RebalanceOptions::default());
    };
    if !opts.is_object() {
        return Err(ApiError::BadRequest("rebalanceOptions is not an object".into()));
    }
    let num_workers = opts
        .get("numWorkers")
        .map(|n| count(n, "rebalanceOptions.numWorkers"))
        .transpose()?;
    let mut executors = BTreeMap::new();
    match opts.get("executors") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (c, n) in m {
                executors.insert(c.clone(), count(n, &format!("rebalanceOptions.executors.{c}"))?);
            }
        }
        Some(_) => {
            return Err(ApiError::BadRequest(
                "rebalanceOptions.executors is not an object".into(),
            ))
        }
    }
    Ok(RebalanceOptions {
        num_workers,
        executors,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(parse("/api/v1/cluster/summary"), Ok(Route::ClusterSummary));
        assert_eq!(
            parse("/api/v1/topology/wc/component/split%20words"),
            Ok(Route::Component("wc".into(), "split words".into()))
        );
        assert_eq!(
            parse("/api/v1/topology/wc/kill/3"),
            Ok(Route::Action("wc".into(), Action::Kill(Duration::from_secs(3))))
        );
        assert!(matches!(
            parse("/api/v1/topology/wc/kill/-1"),
            Err(ApiError::BadRequest(_))
        ));
        assert_eq!(parse("/api/v1/topology/wc/lag"), Ok(Route::Lag("wc".into())));
        assert!(matches!(
            parse("/api/v1/topology//lag"),
            Err(ApiError::NotFound(_))
        ));
        assert!(matches!(
            parse("/api/v1/topology//visualization"),
            Err(ApiError::NotFound(_))
        ));
        assert!(matches!(
            parse("/api/v2/cluster/summary"),
            Err(ApiError::NotFound(_))
        ));
        assert!(matches!(
            parse("/api/v1/topology/%zz"),
            Err(ApiError::BadRequest(_))
        ));
    }

    #[test]
    fn queries() {
        let q = Query::parse(Some("window=%3Aall-time&sys=1&callback=x")).unwrap();
        assert_eq!((q.window, q.sys), (Window::AllTime, true));
        assert_eq!(
            Query::parse(Some("window=600")).unwrap().window,
            Window::TenMinutes
        );
        assert!(Query::parse(Some("window=60")).is_err());
    }

    #[test]
    fn rebalance_bodies() {
        let o = rebalance_options(br#"{"rebalanceOptions": {"numWorkers": 2, "executors": {"spout": "5", "count": 3}}, "callback": "foo"}"#).unwrap();
        assert_eq!(o.num_workers, Some(2));
        assert_eq!(o.executors.get("spout"), Some(&5));
        assert_eq!(rebalance_options(b"  ").unwrap(), RebalanceOptions::default());
        assert!(rebalance_options(b"{").is_err());
        assert!(rebalance_options(br#"{"rebalanceOptions": {"numWorkers": 0}}"#).is_err());
        assert!(rebalance_options(br#"{"rebalanceOptions": {"executors": []}}"#).is_err());
    }
}
