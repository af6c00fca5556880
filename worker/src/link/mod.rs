//! Worker-to-worker links: the dialing side ([`client`]), the receiving side
//! ([`server`]) and its delivery thread ([`inbound`]).

pub mod client;
pub mod inbound;
pub mod server;

use std::time::Duration;

/// After asking for a renewed session (a certificate reload on either end, or an expiry
/// ahead), the old session may carry on this long: the dialer retries a failed renewal
/// meanwhile, and the receiver ends a stream that is still not renewed by then.
pub const RENEW_GRACE: Duration = Duration::from_secs(20);

/// Wakes at the next reload of `reloads`; never without one (plaintext links).
async fn reloaded(reloads: &mut Option<tokio::sync::watch::Receiver<u64>>) {
    match reloads {
        Some(rx) => {
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}
