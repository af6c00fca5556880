//! The receiving thread of one incoming link: decodes frames and delivers their messages
//! to local executors through the engine's inbound side. When a local queue is full it
//! waits, so the link task stops reading, HTTP/2 flow control fills, and the sender's
//! bounded buffers fill in turn: back pressure across processes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use squall_engine::fabric::{Msg, Outbox};
use tokio::sync::{mpsc, oneshot};
use tracing::{error, warn};

use crate::engine_slot::EngineSlot;
use crate::stats::{add, Drops, InboundStats};
use crate::wire::{decode_to_peer, WireError};

/// Shared with the link task.
pub struct Receiving {
    /// Frames from the link task.
    pub frames: mpsc::Receiver<Bytes>,
    /// The first decode error, if any; the link task then ends the stream.
    pub failed: oneshot::Sender<WireError>,
    /// Whether this thread waits for room now (reported to the peer).
    pub blocked: Arc<AtomicBool>,
    /// Set when the worker stops.
    pub stop: Arc<AtomicBool>,
}

/// Runs until the link ends, the worker stops, or a frame is malformed.
pub fn run(peer: &str, mut r: Receiving, slot: &EngineSlot, stats: &InboundStats, drops: &Drops) {
    let mut outbox: Option<(u64, Outbox)> = None;
    let mut msgs: Vec<Msg> = Vec::new();
    while let Some(frame) = r.frames.blocking_recv() {
        // Frames that arrive while no engine runs wait here (back pressure) until one does.
        let io = loop {
            if let Some(io) = slot.get() {
                break io;
            }
            if r.stop.load(Ordering::Relaxed) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        msgs.clear();
        match decode_to_peer(frame, &io.schemas, &mut msgs) {
            Ok(_) => {}
            Err(e) => {
                add(&stats.malformed, 1);
                error!(peer, error = %e, "malformed frame from peer; closing the link");
                let _ = r.failed.send(e);
                return;
            }
        }
        let n = msgs.len() as u64;
        let out = match &mut outbox {
            Some((epoch, out)) if *epoch == io.epoch => out,
            _ => &mut outbox.insert((io.epoch, io.inbound.outbox())).1,
        };
        for m in msgs.drain(..) {
            out.send(m.task(), m);
        }
        let (mut lost, mut gone) = (0u64, false);
        while !out.flush() {
            r.blocked.store(true, Ordering::Relaxed);
            if r.stop.load(Ordering::Relaxed) || slot.epoch() != io.epoch {
                // The engine is gone; what it held is lost with it and replayed.
                lost = out.len() as u64;
                warn!(
                    peer,
                    messages = lost,
                    "engine changed while delivering; dropping the rest of a frame"
                );
                add(&drops.engine_restart, lost);
                gone = true;
                break;
            }
            out.wait_for_room();
            std::thread::park_timeout(Duration::from_millis(1));
        }
        r.blocked.store(false, Ordering::Relaxed);
        let unroutable = std::mem::take(&mut out.unroutable);
        if gone {
            outbox = None;
        }
        if unroutable > 0 {
            warn!(
                peer,
                messages = unroutable,
                "dropped received messages for tasks no process serves"
            );
            add(&drops.no_route, unroutable);
        }
        add(&stats.messages, n.saturating_sub(lost + unroutable));
    }
}
