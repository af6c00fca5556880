//! The chart's Grafana dashboard, proven on a real Prometheus: two worker processes run the
//! word-count example on loopback, Debian's `prometheus` (a plain process on 127.0.0.1,
//! its storage in a temporary directory) scrapes their `/metrics` every second, and every
//! PromQL expression in `charts/squall-operator/dashboards/squall.json` must return
//! series through the HTTP API: with the template variables as `.*` and as concrete values
//! read through the variables' own queries. Throughput must be above zero and latency
//! quantiles finite. `promtool check metrics` lints each worker's page on the way.
//!
//! Needs `prometheus` and `promtool` (`make prometheus-server` installs them; `PROMETHEUS`
//! and `PROMTOOL` name other binaries). Grafana itself is not run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{cluster, dump_logs};

const WORD_COUNT: &str = include_str!("../../examples/word-count/topology.yaml");
const DASHBOARD: &str = include_str!("../../charts/squall-operator/dashboards/squall.json");

/// Scrape targets get this label, as a ServiceMonitor or PodMonitor gives them theirs.
const NAMESPACE: &str = "squall-test";

/// What Grafana's built-in intervals stand for here: a few 1 s scrapes.
const RATE_INTERVAL: &str = "10s";

fn binary(env: &str, default: &str) -> String {
    std::env::var(env).unwrap_or_else(|_| default.to_owned())
}

/// A Prometheus server on a free loopback port, killed on drop.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    fn start(dir: &Path, targets: &[SocketAddr]) -> Prometheus {
        let targets: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: squall-workers\n    static_configs:\n\
             \x20     - targets: [{}]\n        labels: {{namespace: {NAMESPACE}}}\n",
            targets.join(", ")
        );
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        // Bound then freed: the port is free unless something takes it in between.
        let addr = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let bin = binary("PROMETHEUS", "prometheus");
        let child = Command::new(&bin)
            .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{bin} could not start ({e}): run `make prometheus-server`"));
        let p = Prometheus { child, addr };
        let deadline = Instant::now() + Duration::from_secs(20);
        while get(p.addr, "/-/ready").is_none_or(|(status, _)| status != 200) {
            assert!(
                Instant::now() < deadline,
                "prometheus not ready:\n{}",
                std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        p
    }

    /// The `data` of an API answer, or its error.
    fn api(&self, path: &str) -> Result<Value, String> {
        let (status, body) = get(self.addr, path).ok_or("no answer")?;
        let v: Value = serde_json::from_str(&body).map_err(|e| format!("{status}: {e}: {body}"))?;
        if v["status"] != "success" {
            return Err(format!("{status}: {} {}", v["errorType"], v["error"]));
        }
        Ok(v["data"].clone())
    }

    /// An instant query's series: labels and value.
    fn query(&self, promql: &str) -> Result<Vec<(Value, f64)>, String> {
        let data = self.api(&format!("/api/v1/query?query={}", encode(promql)))?;
        let result = data["result"].as_array().ok_or("no result")?;
        Ok(result
            .iter()
            .map(|s| {
                let v = s["value"][1]
                    .as_str()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(f64::NAN);
                (s["metric"].clone(), v)
            })
            .collect())
    }

    /// What Grafana's `label_values(selector, label)` lists.
    fn label_values(&self, selector: &str, label: &str) -> Result<Vec<String>, String> {
        let data = self.api(&format!(
            "/api/v1/label/{label}/values?match[]={}",
            encode(selector)
        ))?;
        Ok(data
            .as_array()
            .ok_or("no values")?
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect())
    }
}

/// A GET over HTTP/1.0, so the answer is never chunked: status and body.
fn get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}

/// Percent-encodes a query parameter.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Every string under an `expr` key: the panels' queries.
fn exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("expr", Value::String(e)) => out.push(e.clone()),
                    _ => exprs(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| exprs(v, out)),
        _ => {}
    }
}

/// A query variable: its name and `label_values(selector, label)`.
struct Variable {
    name: String,
    selector: String,
    label: String,
}

fn variables(dashboard: &Value) -> Vec<Variable> {
    let list = dashboard["templating"]["list"]
        .as_array()
        .expect("templating.list");
    list.iter()
        .filter(|v| v["type"] == "query")
        .map(|v| {
            let q = v["query"]["query"]
                .as_str()
                .or(v["query"].as_str())
                .expect("a query");
            let inner = q
                .strip_prefix("label_values(")
                .and_then(|r| r.strip_suffix(')'))
                .unwrap_or_else(|| panic!("not label_values(selector, label): {q}"));
            let (selector, label) = inner.rsplit_once(',').expect("selector, label");
            Variable {
                name: v["name"].as_str().expect("a name").to_owned(),
                selector: selector.trim().to_owned(),
                label: label.trim().to_owned(),
            }
        })
        .collect()
}

/// `expr` with Grafana's built-in intervals and the variables `values` substituted.
fn substitute(expr: &str, values: &[(String, String)]) -> String {
    let mut out = expr.to_owned();
    for builtin in ["$__rate_interval", "$__interval", "$__range"] {
        out = out.replace(builtin, RATE_INTERVAL);
    }
    // Longest names first, so `$topology` is never cut by a shorter `$top`.
    let mut values = values.to_vec();
    values.sort_by_key(|(n, _)| std::cmp::Reverse(n.len()));
    for (name, value) in &values {
        out = out
            .replace(&format!("${{{name}}}"), value)
            .replace(&format!("${name}"), value);
    }
    assert!(!out.contains('$'), "a variable left in {out}");
    out
}

/// A value as Grafana writes a multi-value selection into a regex matcher.
fn regex_of(values: &[String]) -> String {
    let escaped: Vec<String> = values
        .iter()
        .map(|v| {
            v.chars()
                .flat_map(|c| {
                    let special = "\\^$.|?*+()[]{}".contains(c);
                    special.then_some('\\').into_iter().chain([c])
                })
                .collect()
        })
        .collect();
    format!("({})", escaped.join("|"))
}

/// Concrete values for the variables, each read through its own query with the ones
/// before it set: one namespace, one topology, every component.
fn concrete(p: &Prometheus, vars: &[Variable]) -> Result<Vec<(String, String)>, String> {
    let mut values: Vec<(String, String)> = Vec::new();
    for v in vars {
        let mut got = p.label_values(&substitute(&v.selector, &values), &v.label)?;
        if got.is_empty() {
            return Err(format!("variable {} lists no {}", v.name, v.label));
        }
        got.sort();
        let value = if v.name == "component" {
            regex_of(&got)
        } else {
            regex_of(&got[..1])
        };
        values.push((v.name.clone(), value));
    }
    Ok(values)
}

/// What is wrong with one query's answer.
fn check(p: &Prometheus, expr: &str, values: &[(String, String)]) -> Option<String> {
    let q = substitute(expr, values);
    let series = match p.query(&q) {
        Ok(s) => s,
        Err(e) => return Some(format!("{q}: {e}")),
    };
    if series.is_empty() {
        return Some(format!("{q}: no series"));
    }
    let throughput = ["squall_emitted_total", "squall_acked_total"]
        .iter()
        .any(|m| q.contains(m));
    if throughput && !series.iter().any(|(_, v)| *v > 0.0) {
        return Some(format!("{q}: no throughput in {series:?}"));
    }
    if q.starts_with("histogram_quantile") && !series.iter().any(|(_, v)| v.is_finite() && *v > 0.0) {
        return Some(format!("{q}: no quantile in {series:?}"));
    }
    None
}

#[test]
fn the_dashboard_s_queries_answer_on_a_real_prometheus() {
    let started = Instant::now();
    let dashboard: Value = serde_json::from_str(DASHBOARD).expect("the dashboard is JSON");
    let mut all = Vec::new();
    exprs(&dashboard["panels"], &mut all);
    assert!(all.len() >= 10, "{} queries", all.len());
    let vars = variables(&dashboard);
    let names: Vec<&str> = vars.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["namespace", "topology", "component"]);

    let dir = tempfile::tempdir().unwrap();
    let mut c = cluster(dir.path(), WORD_COUNT, 2, None, &[]);
    let addrs: Vec<SocketAddr> = (0..2).map(|i| c.http_addr(i)).collect();

    // Each worker's page as a plain scrape gets it, linted by Prometheus' own tool.
    for addr in &addrs {
        let (_, page) = get(*addr, "/metrics").expect("a /metrics page");
        let bin = binary("PROMTOOL", "promtool");
        let mut lint = Command::new(&bin)
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{bin} could not start ({e}): run `make prometheus-server`"));
        lint.stdin.take().unwrap().write_all(page.as_bytes()).unwrap();
        let out = lint.wait_with_output().unwrap();
        let said = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && said.trim().is_empty(),
            "promtool on {addr}: {said}"
        );
    }

    let prom_dir = dir.path().join("prometheus");
    std::fs::create_dir_all(&prom_dir).unwrap();
    let p = Prometheus::start(&prom_dir, &addrs);
    let any: Vec<(String, String)> = vars.iter().map(|v| (v.name.clone(), ".*".to_owned())).collect();

    // Until every query answers, both ways, or the deadline: rates need a few scrapes.
    let deadline = Instant::now() + Duration::from_secs(60);
    let failures = loop {
        let _ = c.poll();
        let mut failures = Vec::new();
        match p.query("up{job=\"squall-workers\"} == 1") {
            Ok(up) if up.len() == 2 => {}
            other => failures.push(format!("targets not both up: {other:?}")),
        }
        failures.extend(all.iter().filter_map(|e| check(&p, e, &any)));
        match concrete(&p, &vars) {
            Ok(values) => failures.extend(all.iter().filter_map(|e| check(&p, e, &values))),
            Err(e) => failures.push(e),
        }
        if failures.is_empty() || Instant::now() >= deadline {
            break failures;
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    if !failures.is_empty() {
        dump_logs(&c);
        eprintln!(
            "{}",
            std::fs::read_to_string(prom_dir.join("prometheus.log")).unwrap_or_default()
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let concrete = concrete(&p, &vars).unwrap();
    assert_eq!(concrete[0], ("namespace".into(), format!("({NAMESPACE})")));
    assert_eq!(concrete[1], ("topology".into(), "(word-count)".into()));
    eprintln!(
        "{} queries answered with {} workers after {:.1}s ({concrete:?}); largest values:",
        all.len(),
        addrs.len(),
        started.elapsed().as_secs_f64()
    );
    for e in &all {
        let series = p.query(&substitute(e, &concrete)).unwrap_or_default();
        let max = series
            .iter()
            .map(|s| s.1)
            .filter(|v| v.is_finite())
            .fold(f64::NAN, f64::max);
        eprintln!("  {max:>12.6}  {} series  {}", series.len(), e.replace('\n', " "));
    }
    c.stop(Duration::from_secs(5));
}
