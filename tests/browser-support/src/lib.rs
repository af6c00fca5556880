//! Squall's web UI in a real browser, for the tests that drive it: `squall run --ui`
//! (cli/tests/browser.rs) and the operator on a real control plane
//! (operator/tests/browser.rs). chromedriver on a free loopback port, a fresh headless
//! Chromium that resolves no host but loopback, waits on page scripts, the UI's token
//! prompt and confirmation dialog, the graph as drawn, and screenshots.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`make chromium` installs them);
//! SQUALL_CHROMIUM and SQUALL_CHROMEDRIVER name other binaries.

use std::net::{TcpListener, TcpStream};
use std::ops::Deref;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::error::{CmdError, NewSessionError};
use fantoccini::ClientBuilder;
pub use fantoccini::{Client, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{} not found: install Debian's chromium and chromium-driver (`make chromium`) or set {var}", path.display())]
    Missing { path: PathBuf, var: &'static str },
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("chromedriver did not listen on port {0}")]
    NoDriver(u16),
    #[error("no WebDriver session with headless Chromium: {0}")]
    Session(#[from] NewSessionError),
    #[error("WebDriver: {0}")]
    Command(#[from] CmdError),
    #[error("timed out waiting for {0}")]
    TimedOut(String),
    #[error("the page answered {0}, not what the script should return")]
    Page(Value),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

/// A child process killed when the test ends, however it ends.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn binary(var: &'static str, default: &str) -> Result<PathBuf> {
    let path = std::env::var_os(var).map_or_else(|| PathBuf::from(default), PathBuf::from);
    if path.exists() {
        Ok(path)
    } else {
        Err(Error::Missing { path, var })
    }
}

/// chromedriver in a process group of its own, with the browsers it starts: ending the
/// group ends them too, where killing chromedriver alone would leave Chromium running
/// after a test that failed before closing its session.
struct Driver(Proc);

impl Drop for Driver {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.0 .0.id()) {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

/// Starts chromedriver on a free loopback port; it accepts local clients only.
async fn chromedriver() -> Result<(Driver, u16)> {
    let driver = binary("SQUALL_CHROMEDRIVER", "/usr/bin/chromedriver")?;
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(io("a free loopback port"))?
        .port();
    let proc = Driver(Proc(
        Command::new(&driver)
            .args([format!("--port={port}"), "--log-level=WARNING".into()])
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(io(format!("starting {}", driver.display())))?,
    ));
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() >= deadline {
            return Err(Error::NoDriver(port));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok((proc, port))
}

/// A fresh headless Chromium (empty profile, so a cold cache) that can reach loopback
/// only, through its own chromedriver; both end when it is dropped.
pub struct Browser {
    client: Client,
    shots: PathBuf,
    // Dropped after the client: the driver outlives the session.
    driver: Driver,
}

impl Deref for Browser {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

impl Browser {
    /// `target_tmpdir` is the test's `CARGO_TARGET_TMPDIR`: screenshots go beside it, to
    /// target/ui-screenshots/, wherever CARGO_TARGET_DIR puts target/.
    pub async fn start(target_tmpdir: &str) -> Result<Self> {
        let shots = Path::new(target_tmpdir)
            .parent()
            .unwrap_or(Path::new(target_tmpdir))
            .join("ui-screenshots");
        std::fs::create_dir_all(&shots).map_err(io(format!("creating {}", shots.display())))?;
        let chromium = binary("SQUALL_CHROMIUM", "/usr/bin/chromium")?;
        let (driver, port) = chromedriver().await?;
        let caps = json!({
            "browserName": "chrome",
            // A prompt (the UI's token prompt) stays open for the test to answer, rather
            // than being dismissed by whatever command comes next.
            "unhandledPromptBehavior": "ignore",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1400,1900", "--no-first-run", "--no-default-browser-check",
                    "--disable-extensions", "--disable-background-networking", "--disable-sync",
                    "--disable-component-update", "--disable-default-apps",
                    // Any host name but loopback fails to resolve: nothing leaves the machine.
                    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                ],
            },
        });
        let Value::Object(caps) = caps else {
            unreachable!("a JSON object literal")
        };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await?;
        Ok(Browser {
            client,
            shots,
            driver,
        })
    }

    /// chromedriver's process id, which is also its process group's, Chromium's included.
    pub fn driver_pid(&self) -> u32 {
        self.driver.0 .0.id()
    }

    /// Runs `script` in the page; its `return` value.
    pub async fn js(&self, script: &str) -> Result<Value> {
        Ok(self.client.execute(script, vec![]).await?)
    }

    /// Waits up to `within` for `script` to return true.
    pub async fn until(&self, what: &str, within: Duration, script: &str) -> Result<()> {
        let deadline = Instant::now() + within;
        while self.js(script).await? != Value::Bool(true) {
            if Instant::now() >= deadline {
                return Err(Error::TimedOut(what.to_owned()));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }

    /// Waits up to `within` for a `window.prompt`, types `answer` and accepts it; returns
    /// the prompt's message.
    pub async fn answer_prompt(&self, answer: &str, within: Duration) -> Result<String> {
        let deadline = Instant::now() + within;
        let message = loop {
            match self.client.get_alert_text().await {
                Ok(m) => break m,
                Err(e) if e.is_no_such_alert() && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) if e.is_no_such_alert() => return Err(Error::TimedOut("a prompt".into())),
                Err(e) => return Err(e.into()),
            }
        };
        self.client.send_alert_text(answer).await?;
        self.client.accept_alert().await?;
        Ok(message)
    }

    /// Saves a screenshot as target/ui-screenshots/`name`; returns its path.
    pub async fn screenshot(&self, name: &str) -> Result<PathBuf> {
        let png = self.client.screenshot().await?;
        let path = self.shots.join(name);
        std::fs::write(&path, png).map_err(io(format!("writing {}", path.display())))?;
        Ok(path)
    }

    /// Clicks `selector` (an action button), then the confirmation dialog's button after
    /// `fill` (a script, or empty) ran on the dialog.
    pub async fn act(&self, selector: &str, fill: &str) -> Result<()> {
        self.client.find(Locator::Css(selector)).await?.click().await?;
        self.until(
            "the confirmation dialog",
            Duration::from_secs(5),
            "return !!document.querySelector('dialog#confirm[open]')",
        )
        .await?;
        if !fill.is_empty() {
            self.js(fill).await?;
        }
        self.client
            .find(Locator::Css("#confirm-ok"))
            .await?
            .click()
            .await?;
        Ok(())
    }

    /// The topology page's graph as drawn: nodes as `id kind`, edges as
    /// `from->to stream grouping`, each sorted.
    pub async fn drawn_graph(&self) -> Result<(Vec<String>, Vec<String>)> {
        let v = self
            .js("const g = document.getElementById('graph');
                 return [
                   [...g.querySelectorAll('.node')].map(n => n.dataset.id + ' ' + n.dataset.kind).sort(),
                   [...g.querySelectorAll('.edge')].map(e =>
                     `${e.dataset.from}->${e.dataset.to} ${e.dataset.stream} ${e.dataset.grouping}`).sort(),
                 ];")
            .await?;
        let strings = |v: &Value| -> Option<Vec<String>> {
            v.as_array()?
                .iter()
                .map(|s| s.as_str().map(str::to_owned))
                .collect()
        };
        match (strings(&v[0]), strings(&v[1])) {
            (Some(nodes), Some(edges)) => Ok((nodes, edges)),
            _ => Err(Error::Page(v)),
        }
    }

    /// Ends the WebDriver session (the browser quits).
    pub async fn close(self) -> Result<()> {
        Ok(self.client.close().await?)
    }
}
