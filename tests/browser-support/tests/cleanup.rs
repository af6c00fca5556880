//! A browser dropped without closing its session (a test that failed midway) leaves no
//! chromedriver or Chromium process behind. Needs Debian's chromium and chromium-driver.

use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use squall_browser_test::Browser;

/// Live (not zombie) processes of process group `pgid`, from /proc.
fn group_members(pgid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            // After the command's closing parenthesis: state, ppid, pgrp, ...
            let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
            let live = fields.first().is_some_and(|s| *s != "Z");
            (live && fields.get(2)?.parse::<u32>().ok()? == pgid).then_some(pid)
        })
        .collect()
}

// One thread: the dropped client's session task cannot ask chromedriver to close the
// browser before the driver is ended, as when a test's runtime ends with a panic.
#[tokio::test(flavor = "current_thread")]
async fn a_browser_dropped_without_closing_leaves_no_process() -> Result<()> {
    let b = Browser::start(env!("CARGO_TARGET_TMPDIR")).await?;
    b.goto("about:blank").await?;
    let pgid = b.driver_pid();
    let before = group_members(pgid);
    ensure!(
        before.len() > 1,
        "chromedriver and Chromium in one group: {before:?}"
    );
    drop(b);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = group_members(pgid);
        if left.is_empty() {
            return Ok(());
        }
        ensure!(Instant::now() < deadline, "still running: {left:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
