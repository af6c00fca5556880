//! Python components on worker pods. The node agent runs the Python worker image
//! (`PYTHON_IMAGE`, docker/worker-python.Dockerfile) as the worker binary with what that
//! image gives its processes: the multilang venv first on PATH (`streamparse_run`), a
//! working directory holding the components (`WORKDIR`), no bytecode writes. The operator
//! picks that image for topologies with `shell` components, as the chart configures it.
//!
//! - `examples/wikipedia-edits/topology-python.yaml`, as written (the talk's Python
//!   parser and Redis sink), counts the feed into a real Redis: exactly with nothing
//!   failing; at least the data set's counts with a worker killed -9, and separately with
//!   a Python child killed -9 (its held tuples fail and are replayed).
//! - The streamparse quickstart's own `WordSpout` and `WordCountBolt`, run from the
//!   installed package's project template unmodified, count words on two worker pods; a
//!   component whose module does not exist keeps its pod unready with the child's error
//!   in the pod log, without restarts.
//!
//! Needs `make k8s-bins`, `make multilang-venv`, a built `squall-worker` and redis-server
//! (`make test-operator`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams, LogParams, PostParams};
use kube::{Api, ResourceExt};
use kube_testenv::{eventually, AgentConfig, AgentHandle, ImageSpec, TestCluster};
use redis_testenv::{RedisServer, Reply};
use squall_feed::DataSet;
use squall_model::crd::Topology;
use squall_model::TopologyManifest;

mod support;

use support::wiki::*;
use support::*;

const PYTHON_IMAGE: &str = "squall/worker-python:test";
const WIKI: &str = "wikipedia-edits-python";

/// The venv `make multilang-venv` builds; an error (never a skip) when it is missing.
fn venv() -> Result<PathBuf> {
    let v = repo().join(".cache/venv");
    ensure!(
        v.join("bin/streamparse_run").exists(),
        "{} is missing: run `make multilang-venv`",
        v.display()
    );
    Ok(v)
}

/// A cluster whose node runs `PYTHON_IMAGE` from `workdir`, and the operator defaulting
/// shell topologies to that image.
async fn python_cluster(
    workdir: &Path,
) -> Result<(
    TestCluster,
    AgentHandle,
    tokio::task::JoinHandle<Result<(), squall_operator::controller::Error>>,
)> {
    let cluster = TestCluster::start().await?;
    install_crd(&cluster).await?;
    let worker = worker_binary()?;
    let path = format!("{}/bin:/usr/local/bin:/usr/bin:/bin", venv()?.display());
    let python = ImageSpec::new(&worker)
        .env("PATH", path)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .working_dir(workdir);
    let mut config = AgentConfig::new("node-a", cluster.dir().join("agents/node-a"))
        .image(WORKER_IMAGE, ImageSpec::new(&worker))
        .image(PYTHON_IMAGE, python);
    config.pod_kubeconfig = Some(cluster.kubeconfig_path().to_path_buf());
    let agent = cluster.start_node_agent_with(config).await?;
    let operator = spawn_operator_with(
        &cluster.client(),
        NS,
        squall_operator::resources::WorkerDefaults {
            image: WORKER_IMAGE.to_owned(),
            python_image: Some(PYTHON_IMAGE.to_owned()),
            lease_duration_seconds: 4,
            lease_renew_seconds: 1,
            limits: squall_model::Limits {
                raise_with: squall_operator::RAISE_WITH.to_owned(),
                ..squall_model::Limits::default()
            },
            network: Default::default(),
            cert_validity: squall_operator::resources::DEFAULT_CERT_VALIDITY,
            ca_overlap: squall_operator::resources::DEFAULT_CA_OVERLAP,
        },
    );
    Ok((cluster, agent, operator))
}

/// The Python example as written, with the feed's and Redis's addresses and two workers;
/// no image named, so the operator's Python default applies.
fn python_wikipedia(feed_url: &str, redis_port: u16, timeout_s: i64) -> Result<Topology> {
    let file = repo().join("examples/wikipedia-edits/topology-python.yaml");
    let mut m = TopologyManifest::from_file(&file)?;
    m.spec.workers = 2;
    m.spec.message_timeout_seconds = timeout_s;
    let spout = m
        .spec
        .spouts
        .iter_mut()
        .find(|s| s.name == "edits")
        .context("no edits")?;
    spout.config.insert("url".into(), feed_url.into());
    spout.config.insert("replay_delay_ms".into(), 10.into());
    let counts = m
        .spec
        .bolts
        .iter_mut()
        .find(|b| b.name == "counts")
        .context("no counts")?;
    counts
        .config
        .insert("url".into(), format!("redis://127.0.0.1:{redis_port}").into());
    let mut t = Topology::new(&m.metadata.name, m.spec);
    t.metadata.namespace = Some(NS.into());
    Ok(t)
}

/// Processes whose parent is `parent` and whose command line contains `needle`.
fn children_running(parent: i32, needle: &str) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            // The parent pid is the second field after the parenthesised command name.
            let ppid: i32 = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let found = String::from_utf8_lossy(&cmdline).contains(needle);
            (ppid == parent && found).then_some(pid)
        })
        .collect()
}

fn kill9(pid: i32) -> Result<()> {
    let killed = Command::new("kill").args(["-9", &pid.to_string()]).status()?;
    ensure!(killed.success(), "kill -9 {pid} failed");
    Ok(())
}

/// What is killed in a run.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// The worker process of pod 0 (the spout's).
    Worker,
    /// The Python child running `bolts.RedisBolt` in pod 0's worker.
    PythonChild,
}

async fn delete_and_wait(cluster: &TestCluster, topos: &Api<Topology>, pods: &Api<Pod>) -> Result<()> {
    topos.delete(WIKI, &DeleteParams::default()).await?;
    eventually("the run gone", Duration::from_secs(60), cluster.dir(), || async {
        let gone = topos.get_opt(WIKI).await.ok()?.is_none()
            && pods
                .list(&ListParams::default().labels(&format!("squall.dev/topology={WIKI}")))
                .await
                .ok()?
                .items
                .is_empty();
        gone.then_some(())
    })
    .await?;
    Ok(())
}

/// A fresh run fed at a steady rate with `fault` mid-run: every count at least the data
/// set's, no member it does not have.
async fn counted_through(
    cluster: &TestCluster,
    topos: &Api<Topology>,
    pods: &Api<Pod>,
    redis: &RedisServer,
    fault: Fault,
) -> Result<()> {
    ensure!(redis.command(&["FLUSHALL"])? == Reply::Status("OK".into()));
    let data = DataSet::new(squall_feed::DEFAULT_SEED);
    let n = 8_000;
    let (want, _) = expected(&data, n);
    let server = Feed::start(n, 1_000, data)?;
    topos
        .create(
            &PostParams::default(),
            &python_wikipedia(&server.url()?, redis.port(), 5)?,
        )
        .await?;
    wait_running(cluster, topos, WIKI, Duration::from_secs(60)).await?;
    eventually(
        "counting under way",
        Duration::from_secs(40),
        cluster.dir(),
        || async {
            let c = redis.counts(SETS).ok()?;
            (c.get("bot")?.values().sum::<u64>() > 1_000).then_some(())
        },
    )
    .await?;
    let (_, worker) = pod_process(cluster, pods, &format!("{WIKI}-0")).await?;
    match fault {
        Fault::Worker => kill9(worker)?,
        Fault::PythonChild => {
            let before = children_running(worker, "bolts.RedisBolt");
            let victim = *before
                .first()
                .context("no RedisBolt child under pod 0's worker")?;
            kill9(victim)?;
            // The host notices the dead child and starts another in its place.
            eventually(
                "a new RedisBolt child",
                Duration::from_secs(30),
                cluster.dir(),
                || async {
                    let now = children_running(worker, "bolts.RedisBolt");
                    (now.len() == before.len() && !now.contains(&victim)).then_some(())
                },
            )
            .await?;
        }
    }
    let done = eventually(
        "every event counted",
        Duration::from_secs(90),
        cluster.dir(),
        || async {
            let got = redis.counts(SETS).ok()?;
            at_least(&got, &want).then_some(got)
        },
    )
    .await;
    let got = match done {
        Ok(got) => got,
        Err(e) => anyhow::bail!(
            "{fault:?}: {e}: got {:?}\nwant at least {want:?}",
            redis.counts(SETS).ok()
        ),
    };
    let total = |c: &Counts| c.get("bot").map_or(0, |m| m.values().sum::<u64>());
    tracing::info!(
        ?fault,
        expected = total(&want),
        counted = total(&got),
        "events counted (at-least-once)"
    );
    delete_and_wait(cluster, topos, pods).await?;
    drop(server);
    Ok(())
}

#[tokio::test]
async fn the_talks_python_bolts_count_exactly_and_at_least_through_kills() -> Result<()> {
    bounded_for(Duration::from_secs(420), async {
        // The image's WORKDIR holds `python/`, as `COPY examples/wikipedia-edits/python
        // /app/python` would.
        let (cluster, _agent, operator) = python_cluster(&repo().join("examples/wikipedia-edits")).await?;
        let client = cluster.client();
        let topos: Api<Topology> = Api::namespaced(client.clone(), NS);
        let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
        let redis = RedisServer::start()?;

        // 1. Nothing fails: exact counts, each event acked once, none failed.
        let data = DataSet::new(squall_feed::DEFAULT_SEED);
        let n = 3_000;
        let (want, reliable) = expected(&data, n);
        let server = Feed::start(n, 0, data)?;
        topos
            .create(
                &PostParams::default(),
                &python_wikipedia(&server.url()?, redis.port(), 30)?,
            )
            .await?;
        wait_running(&cluster, &topos, WIKI, Duration::from_secs(60)).await?;
        let pod = pods.get(&format!("{WIKI}-0")).await?;
        let image = pod
            .spec
            .and_then(|s| s.containers.first().and_then(|c| c.image.clone()));
        ensure!(
            image.as_deref() == Some(PYTHON_IMAGE),
            "the shell topology's image: {image:?}"
        );
        let got = eventually(
            "exact counts in Redis",
            Duration::from_secs(60),
            cluster.dir(),
            || async {
                let got = redis.counts(SETS).ok()?;
                (got == want).then_some(got)
            },
        )
        .await;
        ensure!(
            got.is_ok(),
            "counts differ: got {:?}\nwant {want:?}",
            redis.counts(SETS).ok()
        );
        eventually(
            "every event acked once",
            Duration::from_secs(20),
            cluster.dir(),
            || async {
                let acked = component_metric(&pods, WIKI, "squall_acked_total", "edits").await?;
                let pending = component_metric(&pods, WIKI, "squall_pending", "edits").await?;
                (acked == reliable && pending == 0).then_some(())
            },
        )
        .await?;
        ensure!(component_metric(&pods, WIKI, "squall_failed_total", "edits").await == Some(0));
        delete_and_wait(&cluster, &topos, &pods).await?;
        drop(server);

        // 2. A worker killed -9; 3. separately, a Python child killed -9.
        counted_through(&cluster, &topos, &pods, &redis, Fault::Worker).await?;
        counted_through(&cluster, &topos, &pods, &redis, Fault::PythonChild).await?;
        operator.abort();
        Ok(())
    })
    .await
}

/// The installed streamparse package's project template (`sparse quickstart` copies it).
fn quickstart_src() -> Result<PathBuf> {
    let out = Command::new(venv()?.join("bin/python"))
        .args([
            "-c",
            "import os, streamparse; print(os.path.dirname(streamparse.__file__))",
        ])
        .output()?;
    ensure!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let src = PathBuf::from(String::from_utf8(out.stdout)?.trim()).join("bootstrap/project/src");
    ensure!(
        src.join("spouts/words.py").exists() && src.join("bolts/wordcount.py").exists(),
        "no quickstart components in {}",
        src.display()
    );
    Ok(src)
}

const WORD_COUNT: &str = r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {name: wordcount}
spec:
  workers: 2
  spouts:
    - name: word-spout
      component: shell
      shell: {command: streamparse_run, args: [spouts.words.WordSpout]}
      outputs: [{fields: [word]}]
  bolts:
    - name: count-bolt
      component: shell
      parallelism: 2
      shell: {command: streamparse_run, args: [bolts.wordcount.WordCountBolt]}
      outputs: [{fields: [word, count]}]
      inputs: [{from: word-spout, grouping: {type: fields, fields: [word]}}]
"#;

const BROKEN: &str = r#"
apiVersion: squall.dev/v1alpha1
kind: Topology
metadata: {name: broken}
spec:
  spouts:
    - name: words
      component: shell
      shell: {command: streamparse_run, args: [no_such_module.WordSpout]}
      outputs: [{fields: [word]}]
  bolts:
    - {name: sink, component: "null", inputs: [{from: words}]}
"#;

#[tokio::test]
async fn the_streamparse_quickstart_components_run_unmodified_on_worker_pods() -> Result<()> {
    bounded_for(Duration::from_secs(180), async {
        let (cluster, _agent, operator) = python_cluster(&quickstart_src()?).await?;
        let client = cluster.client();
        let topos: Api<Topology> = Api::namespaced(client.clone(), NS);
        let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
        topos
            .create(&PostParams::default(), &topology(WORD_COUNT)?)
            .await?;
        wait_running(&cluster, &topos, "wordcount", Duration::from_secs(60)).await?;
        // WordCountBolt emits (word, running count) per word and logs every 1,000 words.
        eventually(
            "counts emitted",
            Duration::from_secs(60),
            cluster.dir(),
            || async {
                let n = component_metric(&pods, "wordcount", "squall_emitted_total", "count-bolt").await?;
                (n >= 2_000).then_some(())
            },
        )
        .await?;
        eventually(
            "the bolt's own count in a pod log",
            Duration::from_secs(30),
            cluster.dir(),
            || async {
                for i in 0..2 {
                    let log = pods
                        .logs(&format!("wordcount-{i}"), &LogParams::default())
                        .await
                        .ok()?;
                    if log.contains("counted [1,000] words") {
                        return Some(());
                    }
                }
                None
            },
        )
        .await?;

        // A module that does not exist: the pod stays unready, says why, is not restarted.
        topos.create(&PostParams::default(), &topology(BROKEN)?).await?;
        let log = eventually(
            "the child's error in the pod log",
            Duration::from_secs(60),
            cluster.dir(),
            || async {
                let log = pods.logs("broken-0", &LogParams::default()).await.ok()?;
                log.contains("No module named 'no_such_module'").then_some(log)
            },
        )
        .await?;
        ensure!(log.contains("words"), "the error names the component: {log}");
        let pod = pods.get("broken-0").await?;
        ensure!(
            !pod_ready(&pod),
            "a worker whose component cannot start is not ready"
        );
        let restarts: i32 = pod
            .status
            .and_then(|s| s.container_statuses)
            .unwrap_or_default()
            .iter()
            .map(|c| c.restart_count)
            .sum();
        ensure!(restarts == 0, "no crash loop: {restarts} restarts");
        let uid = pods.get("broken-0").await?.uid().context("uid")?;
        ensure!(pid_of_pod(&uid).is_some(), "the worker still runs");
        operator.abort();
        Ok(())
    })
    .await
}
