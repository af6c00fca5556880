//! Follows a ConfigMap that carries the assignment (`assignment.yaml`) and the manifest
//! (`topology.yaml`), as the operator writes them, and mirrors both into a directory as
//! files. The worker then reads them like any assignment file.
//!
//! It follows the ConfigMap with one list+watch narrowed to its name (`fieldSelector
//! metadata.name=NAME`): a list gives the current content and a `resourceVersion`, a watch
//! from there streams every change as it happens. A watch the server ends (its timeout,
//! about 5 minutes) is resumed from the last version seen, a version too old for the
//! server (410 Gone) means a fresh list, and errors retry with a jittered, capped backoff.
//! At steady state a worker costs the API server one open watch and a watch request every
//! few minutes instead of a GET a second.
//!
//! Why not a ConfigMap volume: a mounted volume lags by the kubelet's sync period (up to a
//! minute) and the test node agent has no volumes; a watch is as quick and the same on
//! every kind of node.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{ListParams, WatchEvent, WatchParams};
use kube::{Api, Client};

use crate::assignment::Assignment;

pub use squall_control::{ASSIGNMENT_KEY, MANIFEST_KEY};

/// Why the ConfigMap could not be followed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// No client configuration (kubeconfig or in-cluster).
    #[error("kubernetes client: {0}")]
    Client(#[from] kube::Error),
    /// The files could not be written.
    #[error("writing {path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// OS error.
        source: std::io::Error,
    },
    /// No runtime for the sync thread.
    #[error("starting the sync runtime: {0}")]
    Runtime(std::io::Error),
    /// The sync thread ended before the first assignment was written.
    #[error("the assignment sync stopped before the first assignment")]
    Stopped,
}

/// Where to read from and write to.
#[derive(Clone, Debug)]
pub struct SyncConfig {
    /// Namespace of the ConfigMap.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// This worker's id: the first sync waits until the assignment names it.
    pub worker_id: String,
    /// The assignment file to write; the manifest goes next to it.
    pub assignment: PathBuf,
}

/// How long the server keeps one watch open (it closes it then; the watch is resumed).
/// Below kube's client read timeout (295 s).
const WATCH_SECONDS: u32 = 290;
/// A watch the server ends sooner than this without an event counts as a failure, so a
/// server or proxy that closes watches at once is not asked again in a tight loop.
const MIN_WATCH: Duration = Duration::from_secs(1);
/// First retry delay after an error; doubles per consecutive failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// Longest retry delay: bounds how stale a worker can be after the API server returns.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What to ask the API server next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Next {
    /// List (no version to resume from, or it expired).
    List,
    /// Watch from this `resourceVersion`.
    Watch(String),
}

/// What a watch event means for the files.
#[derive(Debug)]
pub(crate) enum Seen<K> {
    /// The object as it is now.
    Current(Box<K>),
    /// Nothing to write: a bookmark, or the ConfigMap deleted (the files stay: a deleted
    /// ConfigMap means the topology is going, and the worker keeps its last assignment).
    Nothing,
    /// The version is too old for the server: list again, at once.
    Expired,
    /// Any other error event: watch again from the same version after a backoff.
    Failed(Duration),
}

/// The list+watch position: the last `resourceVersion` seen and the consecutive failures.
/// Pure, so resuming, re-listing and backing off are unit-tested without a server.
#[derive(Debug, Default)]
pub(crate) struct Cursor {
    version: Option<String>,
    failures: u32,
}

fn is_gone(code: u16) -> bool {
    code == 410
}

impl Cursor {
    pub(crate) fn next(&self) -> Next {
        self.version.clone().map_or(Next::List, Next::Watch)
    }

    /// A list succeeded with this collection version.
    pub(crate) fn listed(&mut self, version: Option<String>) {
        self.failures = 0;
        self.version = version.filter(|v| !v.is_empty());
    }

    /// A watch event arrived.
    pub(crate) fn observe<K: kube::Resource>(&mut self, event: WatchEvent<K>, jitter: f64) -> Seen<K> {
        match event {
            WatchEvent::Added(cm) | WatchEvent::Modified(cm) => {
                self.seen(cm.meta().resource_version.clone());
                Seen::Current(Box::new(cm))
            }
            WatchEvent::Deleted(cm) => {
                self.seen(cm.meta().resource_version.clone());
                Seen::Nothing
            }
            WatchEvent::Bookmark(b) => {
                self.seen(Some(b.metadata.resource_version));
                Seen::Nothing
            }
            WatchEvent::Error(status) if is_gone(status.code) => {
                self.version = None;
                Seen::Expired
            }
            WatchEvent::Error(_) => Seen::Failed(self.fail(jitter)),
        }
    }

    /// A request failed (or a watch stream broke): how long to wait before the next.
    /// A 410 on starting a watch drops the version, so the next request is a list.
    pub(crate) fn failed(&mut self, error: &kube::Error, jitter: f64) -> Duration {
        if matches!(error, kube::Error::Api(s) if is_gone(s.code)) {
            self.version = None;
        }
        self.fail(jitter)
    }

    /// The server ended a watch after `lasted` having sent `events`: resume at once,
    /// unless it ended too soon to be a normal timeout.
    pub(crate) fn ended(&mut self, lasted: Duration, events: usize, jitter: f64) -> Option<Duration> {
        (events == 0 && lasted < MIN_WATCH).then(|| self.fail(jitter))
    }

    /// The content could not be written: list again after a backoff, since the watch may
    /// not send it again.
    pub(crate) fn list_again(&mut self, jitter: f64) -> Duration {
        self.version = None;
        self.fail(jitter)
    }

    fn seen(&mut self, version: Option<String>) {
        self.failures = 0;
        if let Some(v) = version.filter(|v| !v.is_empty()) {
            self.version = Some(v);
        }
    }

    fn fail(&mut self, jitter: f64) -> Duration {
        self.failures = self.failures.saturating_add(1);
        backoff(self.failures, jitter)
    }
}

/// Delay before retry number `failures` (1-based): doubling from [`FIRST_BACKOFF`] up to
/// [`MAX_BACKOFF`], then scaled into its upper half by `jitter` (0..1) so workers cut off
/// together (an API server restart) do not all come back in the same instant.
pub(crate) fn backoff(failures: u32, jitter: f64) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    let base = FIRST_BACKOFF.saturating_mul(1 << doublings).min(MAX_BACKOFF);
    base.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
}

/// A number in 0..1 that differs between processes and calls.
pub(crate) fn jitter() -> f64 {
    use std::hash::BuildHasher as _;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    // RandomState is seeded randomly per process; hashing the time varies it per call.
    let bits = std::collections::hash_map::RandomState::new().hash_one(nanos);
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

pub(crate) fn write_atomic(path: &Path, text: &str) -> Result<(), SyncError> {
    let io = |source| SyncError::Io {
        path: path.to_owned(),
        source,
    };
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// Mirrors the ConfigMap into the files.
pub(crate) struct Mirror {
    cfg: SyncConfig,
    last: Option<(String, String)>,
}

impl Mirror {
    pub(crate) fn new(cfg: SyncConfig) -> Self {
        Self { cfg, last: None }
    }

    /// Writes the ConfigMap's content if it has both keys and its assignment names this
    /// worker; returns whether the files now hold such an assignment, or why they could
    /// not be written. Unchanged content is not rewritten, so the worker does not reload.
    pub(crate) fn apply(&mut self, cm: &ConfigMap) -> Result<bool, SyncError> {
        let Some(data) = cm.data.as_ref() else {
            return Ok(false);
        };
        let (Some(assignment), Some(manifest)) = (data.get(ASSIGNMENT_KEY), data.get(MANIFEST_KEY)) else {
            return Ok(false);
        };
        let names_me = serde_yaml_ng::from_str::<Assignment>(assignment)
            .map(|a| a.workers.iter().any(|w| w.id == self.cfg.worker_id))
            .unwrap_or(false);
        if !names_me {
            return Ok(false);
        }
        let current = (assignment.clone(), manifest.clone());
        if self.last.as_ref() == Some(&current) {
            return Ok(true);
        }
        let dir = self.cfg.assignment.parent().unwrap_or(Path::new("."));
        // The manifest first: a new assignment generation may refer to a changed manifest.
        write_atomic(&dir.join(MANIFEST_KEY), manifest)?;
        write_atomic(&self.cfg.assignment, assignment)?;
        tracing::info!(configmap = %self.cfg.name, "assignment updated from the ConfigMap");
        self.last = Some(current);
        Ok(true)
    }
}

/// Follows the ConfigMap for ever; `first` is sent once the files first hold an
/// assignment naming this worker.
async fn follow(api: Api<ConfigMap>, mut mirror: Mirror, first: std::sync::mpsc::Sender<()>) {
    let name = mirror.cfg.name.clone();
    let mut first = Some(first);
    // Returns false when the files could not be written.
    let mut write = |cm: &ConfigMap| match mirror.apply(cm) {
        Ok(true) => {
            if let Some(tx) = first.take() {
                let _ = tx.send(());
            }
            true
        }
        Ok(false) => true,
        Err(e) => {
            tracing::warn!(error = %e, "writing the assignment failed");
            false
        }
    };
    follow_object(&api, &name, &mut write).await;
}

/// Follows one object by name for ever (list, then watch from its version, resumed and
/// retried as the cursor says), handing every version of it to `write`, which returns
/// false when it could not use it (the object is then listed again after a backoff).
pub(crate) async fn follow_object<K>(api: &Api<K>, name: &str, write: &mut impl FnMut(&K) -> bool)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let selector = format!("metadata.name={name}");
    let mut cursor = Cursor::default();
    loop {
        let wait = match cursor.next() {
            Next::List => match api.list(&ListParams::default().fields(&selector)).await {
                Ok(list) => {
                    tracing::debug!(object = %name, version = ?list.metadata.resource_version, "listed");
                    cursor.listed(list.metadata.resource_version);
                    if list.items.iter().all(&mut *write) {
                        None
                    } else {
                        Some(cursor.list_again(jitter()))
                    }
                }
                Err(e) => {
                    let wait = cursor.failed(&e, jitter());
                    tracing::warn!(object = %name, error = %e, retry_in = ?wait, "listing failed");
                    Some(wait)
                }
            },
            Next::Watch(version) => {
                let params = WatchParams::default().fields(&selector).timeout(WATCH_SECONDS);
                watch_once(api, &params, &version, &mut cursor, write).await
            }
        };
        if let Some(wait) = wait {
            tokio::time::sleep(wait).await;
        }
    }
}

/// One watch from `version` until the server ends it or it fails; returns how long to
/// wait before the next request.
async fn watch_once<K>(
    api: &Api<K>,
    params: &WatchParams,
    version: &str,
    cursor: &mut Cursor,
    write: &mut impl FnMut(&K) -> bool,
) -> Option<Duration>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let started = Instant::now();
    let stream = match api.watch(params, version).await {
        Ok(stream) => stream,
        Err(e) => {
            let wait = cursor.failed(&e, jitter());
            tracing::warn!(error = %e, version, retry_in = ?wait, "starting a watch failed");
            return Some(wait);
        }
    };
    let mut stream = std::pin::pin!(stream);
    let mut events = 0;
    while let Some(item) = stream.next().await {
        events += 1;
        match item.map(|event| cursor.observe(event, jitter())) {
            Ok(Seen::Current(cm)) => {
                if !write(&cm) {
                    // No later event may come: list again to retry the write.
                    return Some(cursor.list_again(jitter()));
                }
            }
            Ok(Seen::Nothing) => {}
            Ok(Seen::Expired) => {
                tracing::info!(version, "watched version expired; listing again");
                return None;
            }
            Ok(Seen::Failed(wait)) => {
                tracing::warn!(version, retry_in = ?wait, "the watch returned an error");
                return Some(wait);
            }
            Err(e) => {
                let wait = cursor.failed(&e, jitter());
                tracing::warn!(error = %e, retry_in = ?wait, "the watch broke");
                return Some(wait);
            }
        }
    }
    cursor.ended(started.elapsed(), events, jitter())
}

/// Follows the ConfigMap on the caller's runtime for ever, exactly as [`start`] does from its
/// thread: `first` is sent once the files first hold an assignment naming this worker. The
/// directory of `cfg.assignment` must exist. For many simulated workers in one process
/// (`benchmarks/scale`), where a thread and a runtime each would be too many.
pub async fn follow_with(api: Api<ConfigMap>, cfg: SyncConfig, first: std::sync::mpsc::Sender<()>) {
    follow(api, Mirror::new(cfg), first).await;
}

/// Waits until the ConfigMap assigns this worker and its files are written, then keeps
/// them up to date from a background thread for the life of the process.
pub fn start(cfg: SyncConfig) -> Result<(), SyncError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(SyncError::Runtime)?;
    if let Some(dir) = cfg.assignment.parent() {
        std::fs::create_dir_all(dir).map_err(|source| SyncError::Io {
            path: dir.to_owned(),
            source,
        })?;
    }
    let client = rt.block_on(Client::try_default())?;
    let api: Api<ConfigMap> = Api::namespaced(client, &cfg.namespace);
    let (tx, rx) = std::sync::mpsc::channel();
    let mirror = Mirror::new(cfg);
    std::thread::Builder::new()
        .name("assignment-sync".into())
        .spawn(move || rt.block_on(follow(api, mirror, tx)))
        .map_err(SyncError::Runtime)?;
    rx.recv().map_err(|_| SyncError::Stopped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::watch::{Bookmark, BookmarkMeta};
    use kube::core::{Status, TypeMeta};

    fn cm(version: &str) -> ConfigMap {
        let mut cm = ConfigMap::default();
        cm.metadata.name = Some("t-assignment".into());
        cm.metadata.resource_version = Some(version.into());
        cm
    }

    fn status(code: u16) -> Box<Status> {
        Box::new(Status::failure("test", "Reason").with_code(code))
    }

    #[test]
    fn a_watch_resumes_from_the_last_version_seen() {
        let mut c = Cursor::default();
        assert_eq!(c.next(), Next::List);
        c.listed(Some("10".into()));
        assert_eq!(c.next(), Next::Watch("10".into()));
        assert!(matches!(
            c.observe(WatchEvent::Modified(cm("12")), 0.0),
            Seen::Current(_)
        ));
        assert_eq!(c.next(), Next::Watch("12".into()));
        let bookmark = Bookmark {
            types: TypeMeta::default(),
            metadata: BookmarkMeta {
                resource_version: "20".into(),
                annotations: std::collections::BTreeMap::new(),
            },
        };
        assert!(matches!(
            c.observe(WatchEvent::<ConfigMap>::Bookmark(bookmark), 0.0),
            Seen::Nothing
        ));
        assert_eq!(c.next(), Next::Watch("20".into()));
        // Deleted: nothing to write, but the version moves on.
        assert!(matches!(
            c.observe(WatchEvent::Deleted(cm("21")), 0.0),
            Seen::Nothing
        ));
        assert_eq!(c.next(), Next::Watch("21".into()));
        // A watch the server ends after its timeout is resumed at once, same version.
        assert_eq!(c.ended(Duration::from_secs(290), 0, 0.0), None);
        assert_eq!(c.next(), Next::Watch("21".into()));
    }

    #[test]
    fn gone_means_list_again_and_other_errors_keep_the_version() {
        let mut c = Cursor::default();
        c.listed(Some("10".into()));
        // An error event other than 410: retry the watch from the same version, later.
        assert!(
            matches!(c.observe(WatchEvent::<ConfigMap>::Error(status(500)), 0.0), Seen::Failed(d) if d > Duration::ZERO)
        );
        assert_eq!(c.next(), Next::Watch("10".into()));
        // 410 as an event in the stream.
        assert!(matches!(
            c.observe(WatchEvent::<ConfigMap>::Error(status(410)), 0.0),
            Seen::Expired
        ));
        assert_eq!(c.next(), Next::List);
        // 410 as the answer to starting a watch.
        c.listed(Some("30".into()));
        c.failed(&kube::Error::Api(status(410)), 0.0);
        assert_eq!(c.next(), Next::List);
        // A failed list keeps listing.
        c.failed(&kube::Error::Api(status(503)), 0.0);
        assert_eq!(c.next(), Next::List);
        // An empty list version is no version.
        c.listed(Some(String::new()));
        assert_eq!(c.next(), Next::List);
        // Other errors on a watch keep the version.
        c.listed(Some("40".into()));
        c.failed(&kube::Error::Api(status(500)), 0.0);
        c.failed(&kube::Error::Api(status(429)), 0.0);
        assert_eq!(c.next(), Next::Watch("40".into()));
        // Files that could not be written: list again (later) to get the content again.
        assert!(c.list_again(0.0) > Duration::ZERO);
        assert_eq!(c.next(), Next::List);
    }

    #[test]
    fn backoff_grows_is_capped_and_resets_on_success() {
        assert_eq!(backoff(1, 1.0), FIRST_BACKOFF);
        assert_eq!(backoff(1, 0.0), FIRST_BACKOFF / 2);
        assert_eq!(backoff(3, 1.0), FIRST_BACKOFF * 4);
        assert_eq!(backoff(100, 1.0), MAX_BACKOFF);
        assert_eq!(backoff(u32::MAX, 0.0), MAX_BACKOFF / 2);
        let mut c = Cursor::default();
        let waits: Vec<Duration> = (0..4)
            .map(|_| c.failed(&kube::Error::Api(status(500)), 1.0))
            .collect();
        assert!(waits.windows(2).all(|w| w[1] == w[0] * 2), "{waits:?}");
        c.listed(Some("1".into()));
        assert_eq!(c.failed(&kube::Error::Api(status(500)), 1.0), FIRST_BACKOFF);
        // An event resets too.
        c.observe(WatchEvent::Added(cm("2")), 1.0);
        assert_eq!(c.failed(&kube::Error::Api(status(500)), 1.0), FIRST_BACKOFF);
        // A watch closed at once without events backs off; one that delivered does not.
        let mut c = Cursor::default();
        c.listed(Some("1".into()));
        assert_eq!(c.ended(Duration::from_millis(5), 0, 1.0), Some(FIRST_BACKOFF));
        assert_eq!(c.ended(Duration::from_millis(5), 0, 1.0), Some(FIRST_BACKOFF * 2));
        assert_eq!(c.ended(Duration::from_millis(5), 1, 1.0), None);
        let j = jitter();
        assert!((0.0..1.0).contains(&j));
    }

    fn assigned(dir: &Path, data: &[(&str, &str)]) -> (SyncConfig, ConfigMap) {
        let cfg = SyncConfig {
            namespace: "ns".into(),
            name: "t-assignment".into(),
            worker_id: "t-1".into(),
            assignment: dir.join("a").join("assignment.yaml"),
        };
        std::fs::create_dir_all(dir.join("a")).unwrap_or_else(|e| panic!("{e}"));
        let mut cm = cm("1");
        cm.data = Some(
            data.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        );
        (cfg, cm)
    }

    /// The I/O loop against a fake API server on loopback: list, a watch answered with
    /// 410 Gone, a fresh list, then a watch from the new version that delivers a change.
    #[tokio::test]
    async fn the_loop_lists_watches_and_lists_again_after_gone() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let mine = |gen: u32| {
            format!("manifest: topology.yaml\ngeneration: {gen}\nworkers:\n  - {{id: t-1, address: \"127.0.0.1:7000\", tasks: [1]}}\n")
        };
        let object = |version: &str, gen: u32| {
            serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "t-assignment", "namespace": "ns", "resourceVersion": version},
                "data": {ASSIGNMENT_KEY: mine(gen), MANIFEST_KEY: "m"}})
        };
        let list = |version: &str, gen: u32| {
            serde_json::json!({"apiVersion": "v1", "kind": "ConfigMapList",
                "metadata": {"resourceVersion": version}, "items": [object(version, gen)]})
            .to_string()
        };
        let gone = serde_json::json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1",
            "status": "Failure", "message": "too old resource version", "reason": "Expired", "code": 410}});
        let modified = serde_json::json!({"type": "MODIFIED", "object": object("7", 3)});
        // Answers in order; the last watch stays open.
        let answers = vec![
            (list("1", 1), false),
            (format!("{gone}\n"), false),
            (list("5", 2), false),
            (format!("{modified}\n"), true),
        ];
        let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let server = tokio::spawn(async move {
            let mut open = Vec::new();
            for (body, hold) in answers {
                let Ok((mut conn, _)) = listener.accept().await else {
                    return;
                };
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).await.unwrap_or(0) == 1 {
                    head.push(byte[0]);
                }
                let line = String::from_utf8_lossy(&head)
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                let _ = seen_tx.send(line);
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{body}"
                );
                let _ = conn.write_all(reply.as_bytes()).await;
                if hold {
                    open.push(conn);
                }
            }
            std::future::pending::<()>().await;
        });
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (cfg, _) = assigned(dir.path(), &[]);
        let file = cfg.assignment.clone();
        let url = format!("http://{addr}").parse().unwrap_or_else(|e| panic!("{e}"));
        let client = Client::try_from(kube::Config::new(url)).unwrap_or_else(|e| panic!("{e}"));
        let (first_tx, first_rx) = std::sync::mpsc::channel();
        let follower = tokio::spawn(follow(Api::namespaced(client, "ns"), Mirror::new(cfg), first_tx));
        let done = tokio::time::timeout(Duration::from_secs(10), async {
            while std::fs::read_to_string(&file).ok() != Some(mine(3)) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        follower.abort();
        server.abort();
        assert!(done.is_ok(), "the change after a relist never reached the file");
        assert!(
            first_rx.try_recv().is_ok(),
            "the first assignment was not signalled"
        );
        let mut requests = Vec::new();
        while let Ok(line) = seen_rx.try_recv() {
            requests.push(line);
        }
        assert_eq!(requests.len(), 4, "{requests:?}");
        let selector = "fieldSelector=metadata.name%3Dt-assignment";
        assert!(requests.iter().all(|r| r.contains(selector)), "{requests:?}");
        assert!(
            !requests[0].contains("watch=true") && !requests[2].contains("watch=true"),
            "{requests:?}"
        );
        assert!(
            requests[1].contains("watch=true") && requests[1].contains("resourceVersion=1 "),
            "{requests:?}"
        );
        assert!(
            requests[3].contains("watch=true") && requests[3].contains("resourceVersion=5 "),
            "{requests:?}"
        );
    }

    fn ok(r: Result<bool, SyncError>) -> bool {
        r.unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_mirror_writes_only_an_assignment_naming_this_worker_and_only_when_changed() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mine = "manifest: topology.yaml\ngeneration: 1\nworkers:\n  - {id: t-1, address: \"127.0.0.1:7000\", tasks: [1]}\n";
        let other = "manifest: topology.yaml\ngeneration: 1\nworkers:\n  - {id: t-0, address: \"127.0.0.1:7000\", tasks: [1]}\n";
        let (cfg, cm_other) = assigned(dir.path(), &[(ASSIGNMENT_KEY, other), (MANIFEST_KEY, "m")]);
        let file = cfg.assignment.clone();
        let mut m = Mirror::new(cfg);
        assert!(!ok(m.apply(&ConfigMap::default())));
        assert!(!ok(m.apply(&cm_other)));
        assert!(!file.exists());
        let (_, only_one_key) = assigned(dir.path(), &[(ASSIGNMENT_KEY, mine)]);
        assert!(!ok(m.apply(&only_one_key)));
        let (_, cm_mine) = assigned(dir.path(), &[(ASSIGNMENT_KEY, mine), (MANIFEST_KEY, "m")]);
        assert!(ok(m.apply(&cm_mine)));
        assert_eq!(std::fs::read_to_string(&file).unwrap_or_default(), mine);
        let manifest = dir.path().join("a").join(MANIFEST_KEY);
        assert_eq!(std::fs::read_to_string(&manifest).unwrap_or_default(), "m");
        // Same content: not rewritten (the worker reloads on a new mtime).
        std::fs::remove_file(&file).unwrap_or_else(|e| panic!("{e}"));
        assert!(ok(m.apply(&cm_mine)));
        assert!(!file.exists());
        let (_, changed) = assigned(dir.path(), &[(ASSIGNMENT_KEY, mine), (MANIFEST_KEY, "m2")]);
        assert!(ok(m.apply(&changed)));
        assert_eq!(std::fs::read_to_string(&manifest).unwrap_or_default(), "m2");
        // A write that fails is reported, and retried by the next apply of the same content.
        let dir_a = dir.path().join("a");
        std::fs::remove_dir_all(&dir_a).unwrap_or_else(|e| panic!("{e}"));
        let (_, again) = assigned(dir.path(), &[(ASSIGNMENT_KEY, mine), (MANIFEST_KEY, "m3")]);
        std::fs::remove_dir_all(&dir_a).unwrap_or_else(|e| panic!("{e}"));
        assert!(m.apply(&again).is_err());
        std::fs::create_dir_all(&dir_a).unwrap_or_else(|e| panic!("{e}"));
        assert!(ok(m.apply(&again)));
        assert_eq!(std::fs::read_to_string(&manifest).unwrap_or_default(), "m3");
    }
}
