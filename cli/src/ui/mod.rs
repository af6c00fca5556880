//! `squall run --ui ADDR`: Storm's REST API and the web UI over the running topology.
//!
//! The API runs on its own small runtime; the run's loop keeps the topology (or the
//! workers) to itself and answers the API's asks between its polls, so samples and
//! actions never race with the loop's own use of the engine.

pub mod convert;

use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use squall_ui::{Control, ControlError, Options, RebalanceOptions, Source, TopologySample, Ui};
use tokio::sync::oneshot;
use tracing::{info, warn};

/// An action the run's loop carries out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Act {
    Activate,
    Deactivate,
}

/// What the API asks of the run's loop.
enum Ask {
    Sample(oneshot::Sender<TopologySample>),
    Act(Act, oneshot::Sender<Result<(), ControlError>>),
    Kill(Duration, oneshot::Sender<Result<(), ControlError>>),
}

/// How long the API waits for the loop to answer before giving up on an ask.
const ASK_TIMEOUT: Duration = Duration::from_secs(5);

/// The API's side of the bridge: forwards every ask to the run's loop.
#[derive(Clone)]
struct Bridge {
    id: String,
    asks: mpsc::Sender<Ask>,
}

impl Bridge {
    /// The loop's answer; `Err(true)` when the run is over, `Err(false)` when the loop
    /// did not answer in time.
    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Ask) -> Result<T, bool> {
        let (tx, rx) = oneshot::channel();
        self.asks.send(make(tx)).map_err(|_| true)?;
        match tokio::time::timeout(ASK_TIMEOUT, rx).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(_)) => Err(true),
            Err(_) => Err(false),
        }
    }

    fn unanswered(over: bool) -> ControlError {
        ControlError::Refused(if over {
            "the run is ending".into()
        } else {
            format!("the run did not answer within {ASK_TIMEOUT:?}")
        })
    }

    fn known(&self, id: &str) -> Result<(), ControlError> {
        if id == self.id {
            Ok(())
        } else {
            Err(ControlError::NotFound(id.to_owned()))
        }
    }

    async fn act(&self, id: &str, act: Act) -> Result<(), ControlError> {
        self.known(id)?;
        self.ask(|tx| Ask::Act(act, tx))
            .await
            .unwrap_or_else(|over| Err(Self::unanswered(over)))
    }
}

impl Source for Bridge {
    async fn sample(&self) -> Option<Vec<TopologySample>> {
        match self.ask(Ask::Sample).await {
            Ok(s) => Some(vec![s]),
            // The run is over: the topology is gone.
            Err(true) => Some(Vec::new()),
            // A busy loop (workers slow to scrape) loses no history.
            Err(false) => None,
        }
    }
}

impl Control for Bridge {
    async fn activate(&self, id: &str) -> Result<(), ControlError> {
        self.act(id, Act::Activate).await
    }

    async fn deactivate(&self, id: &str) -> Result<(), ControlError> {
        self.act(id, Act::Deactivate).await
    }

    async fn rebalance(&self, id: &str, _: Duration, _: RebalanceOptions) -> Result<(), ControlError> {
        self.known(id)?;
        Err(ControlError::Unsupported(
            "rebalance is unsupported in local mode: change --workers or the manifest and run again".into(),
        ))
    }

    async fn kill(&self, id: &str, wait: Duration) -> Result<(), ControlError> {
        self.known(id)?;
        self.ask(|tx| Ask::Kill(wait, tx))
            .await
            .unwrap_or_else(|over| Err(Self::unanswered(over)))
    }
}

/// The run's side: what the loop does when the API asks.
pub trait Run {
    /// The figures now.
    fn sample(&mut self) -> TopologySample;
    /// Activates or deactivates the spouts.
    fn act(&mut self, act: Act) -> Result<(), ControlError>;
}

/// The API serving one local run.
pub struct LocalUi {
    runtime: tokio::runtime::Runtime,
    asks: mpsc::Receiver<Ask>,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl LocalUi {
    /// Binds `addr` and serves the topology of `first` from there, answering from
    /// `first` until the run's loop gives newer samples.
    pub fn start(addr: SocketAddr, first: TopologySample) -> anyhow::Result<LocalUi> {
        let id = first.info.id.clone();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("squall-ui")
            .enable_all()
            .build()
            .context("starting the API's runtime")?;
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(addr))
            .with_context(|| format!("--ui: listening on {addr}"))?;
        let addr = listener.local_addr().context("--ui: reading the bound address")?;
        let (tx, asks) = mpsc::channel();
        let bridge = Bridge {
            id: id.clone(),
            asks: tx,
        };
        let ui = Ui::new(bridge.clone(), bridge, Options::default());
        ui.record(vec![first]);
        runtime.spawn(async move { ui.serve(listener).await });
        info!(%addr, topology = %id, "REST API listening");
        Ok(LocalUi { runtime, asks, addr })
    }

    /// The API's base URL.
    pub fn url(&self) -> String {
        format!("http://{}/api/v1/", self.addr)
    }

    /// The web UI's page of topology `id`.
    pub fn page_url(&self, id: &str) -> String {
        format!("http://{}/topology/{}", self.addr, squall_ui::views::encode(id))
    }

    /// Waits up to `nap`, answering the API's asks meanwhile. `Some(wait)` when the API
    /// asked to kill the topology (already answered): the run must end.
    pub fn serve_for(&self, nap: Duration, run: &mut impl Run) -> Option<Duration> {
        let until = Instant::now() + nap;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            let ask = match self.asks.recv_timeout(left) {
                Ok(ask) => ask,
                Err(mpsc::RecvTimeoutError::Timeout) => return None,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    std::thread::sleep(left);
                    return None;
                }
            };
            match ask {
                Ask::Sample(tx) => {
                    let _ = tx.send(run.sample());
                }
                Ask::Act(act, tx) => {
                    let r = run.act(act);
                    if let Err(e) = &r {
                        warn!(error = %e, ?act, "API action refused");
                    }
                    let _ = tx.send(r);
                }
                Ask::Kill(wait, tx) => {
                    let _ = tx.send(Ok(()));
                    return Some(wait);
                }
            }
        }
    }

    /// Stops serving; answers already written are flushed first.
    pub fn stop(self) {
        drop(self.asks);
        self.runtime.shutdown_timeout(Duration::from_secs(1));
    }
}
