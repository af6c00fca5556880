//! Counters of the data plane, exported on `/metrics` beside the engine's.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// One outgoing link (this worker → a peer).
#[derive(Default, Debug)]
pub struct LinkStats {
    /// Frames handed to the connection.
    pub frames: AtomicU64,
    /// Engine messages in those frames.
    pub messages: AtomicU64,
    /// Bytes in those frames.
    pub bytes: AtomicU64,
    /// Messages discarded because the peer was unreachable or not reading past the
    /// stall timeout; their trees time out and the spouts replay them.
    pub dropped: AtomicU64,
    /// Frames taken off the pump's channel into the backlog while the peer was shed.
    pub shed_frames: AtomicU64,
    /// Connections made.
    pub connects: AtomicU64,
    /// Connections lost or refused.
    pub failures: AtomicU64,
    /// Whether a connection is up now.
    pub connected: AtomicBool,
    /// Whether the peer last reported itself blocked.
    pub peer_blocked: AtomicBool,
    /// When the earliest certificate of the TLS session up now expires, Unix seconds; 0
    /// while no session is up or the link is plaintext.
    pub cert_expiry: AtomicU64,
}

impl LinkStats {
    /// Records the expiry of the session up now (`None`: none, or no certificates).
    pub fn set_cert_expiry(&self, at: Option<std::time::SystemTime>) {
        let secs = at
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs().max(1));
        self.cert_expiry.store(secs, Ordering::Relaxed);
    }

    /// The expiry [`LinkStats::set_cert_expiry`] recorded.
    pub fn cert_expiry(&self) -> Option<std::time::SystemTime> {
        match self.cert_expiry.load(Ordering::Relaxed) {
            0 => None,
            s => Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(s)),
        }
    }
}

/// Everything this worker received.
#[derive(Default, Debug)]
pub struct InboundStats {
    /// Messages delivered to local executors (or forwarded).
    pub messages: AtomicU64,
    /// Frames refused as malformed.
    pub malformed: AtomicU64,
    /// Peers refused at hello (other topology, plan or protocol).
    pub refused: AtomicU64,
    /// Incoming links open now.
    pub open: AtomicU64,
}

/// Messages this worker's data plane dropped, by reason. Each one's tree fails by timeout
/// at its spout and is replayed; they are counted so that no loss is a silent one.
#[derive(Default, Debug)]
pub struct Drops {
    /// No process serves the message's task now: no peer for it in the routes when
    /// sending, no local queue and no forward route when receiving.
    pub no_route: AtomicU64,
    /// Received while this worker's engine was replaced: the rest of that frame.
    pub engine_restart: AtomicU64,
    /// Encoded for a peer that left the assignment before its frame was handed over.
    pub peer_removed: AtomicU64,
}

/// Adds to a counter.
pub fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// Reads a counter.
pub fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}
