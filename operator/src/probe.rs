//! Asks workers whether their trees have drained, through their `/metrics` page
//! (`squall_worker_active`, `squall_worker_in_flight`).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Longest a worker may take to answer; a silent one counts as not drained.
const ANSWER: Duration = Duration::from_secs(2);
/// Largest page read; a worker's page is a few kB per component.
const MAX_PAGE: u64 = 4 << 20;

async fn page(addr: &str) -> Option<String> {
    let fetch = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: worker\r\n\r\n")
            .await
            .ok()?;
        let mut out = String::new();
        s.take(MAX_PAGE).read_to_string(&mut out).await.ok()?;
        Some(out)
    };
    tokio::time::timeout(ANSWER, fetch).await.ok().flatten()
}

/// Whether a page says: running assignment `generation` or later, spouts off, nothing in
/// flight. A worker between engines reports neither gauge, so it does not count.
pub fn page_drained(text: &str, generation: u64) -> bool {
    let samples = squall_worker::prom::parse(text);
    let value = |name: &str| samples.iter().find(|s| s.0 == name).map(|s| s.2);
    value("squall_worker_generation").is_some_and(|g| g >= generation as f64)
        && value("squall_worker_active") == Some(0.0)
        && value("squall_worker_in_flight") == Some(0.0)
}

/// Whether a page says: an engine runs on assignment `generation` or later.
pub fn page_running(text: &str, generation: u64) -> bool {
    let samples = squall_worker::prom::parse(text);
    let value = |name: &str| samples.iter().find(|s| s.0 == name).map(|s| s.2);
    value("squall_worker_generation").is_some_and(|g| g >= generation as f64)
        && value("squall_worker_active").is_some()
}

/// Whether every worker runs an engine on assignment `generation` or later: then spouts
/// may be activated without sending trees to a worker still on an older plan.
pub async fn running(addresses: &[String], generation: u64) -> bool {
    for a in addresses {
        match page(a).await {
            Some(text) if page_running(&text, generation) => {}
            _ => return false,
        }
    }
    true
}

async fn all_drained(addresses: &[String], generation: u64) -> bool {
    for a in addresses {
        match page(a).await {
            Some(text) if page_drained(&text, generation) => {}
            _ => return false,
        }
    }
    true
}

/// Whether every worker (`ip:port` of its HTTP endpoint) runs assignment `generation` (the
/// one that deactivated its spouts) or later with no spout tree in flight. Spout trees
/// count where their spout runs until acked or failed, wherever their tuples are, so all
/// zero means no tree is in flight anywhere. Asked twice, apart, as a tuple between a
/// queue and a link shows in neither for a moment.
pub async fn drained(addresses: &[String], generation: u64) -> bool {
    if !all_drained(addresses, generation).await {
        return false;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    all_drained(addresses, generation).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_read_for_activation_and_in_flight_trees() {
        let page = |active: u8, in_flight: u32| {
            format!(
                "HTTP/1.0 200 OK\r\n\r\n# TYPE squall_worker_active gauge\n\
                 squall_worker_generation{{topology=\"t\",worker=\"t-0\"}} 4\n\
                 squall_worker_active{{topology=\"t\",worker=\"t-0\"}} {active}\n\
                 squall_worker_in_flight{{topology=\"t\",worker=\"t-0\"}} {in_flight}\n"
            )
        };
        assert!(page_drained(&page(0, 0), 4));
        assert!(page_drained(&page(0, 0), 3));
        assert!(
            !page_drained(&page(0, 0), 5),
            "the deactivation has not reached it yet"
        );
        assert!(!page_drained(&page(1, 0), 4), "active spouts keep emitting");
        assert!(!page_drained(&page(0, 3), 4), "trees still in flight");
        let between = "HTTP/1.0 200 OK\r\n\r\nsquall_worker_generation{worker=\"t-0\"} 4\n";
        assert!(!page_drained(between, 4), "a worker between engines");
        assert!(!page_running(between, 4), "a worker between engines");
        assert!(page_running(&page(1, 7), 4) && !page_running(&page(1, 7), 5));
    }
}
