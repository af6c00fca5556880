//! `websocket`: a spout reading one JSON event per websocket message (the talk's
//! `webSocketSpout`, made reliable and self-healing).
//!
//! # Emits
//! - `default` stream, fields `[event]`: the message text, unchanged. With `reliable`
//!   (default) it carries a message id and is replayed when its tree fails.
//! - `errors` stream, fields `[event, error]`: messages that do not have the shape of a
//!   JSON object (with `validate`, the default), unreliably; counted as `malformed`.
//!
//! # Config
//! - `url` (string, required): `ws://host:port/path` (no TLS: `wss://` is refused).
//! - `reliable` (bool, default `true`): emit with message ids and keep events for replay.
//! - `retry_buffer` (positive integer, default 100000): at most this many un-acked events
//!   kept for replay; when full, the oldest is evicted (counted as `retry_buffer_evicted`).
//! - `replay_delay_ms` (integer, default 50): a failed event is emitted again no sooner than
//!   this, so an outage downstream does not become a busy loop.
//! - `channel_capacity` (positive integer, default 10000): messages read but not yet
//!   emitted; when full the reader stops reading the socket (TCP back pressure).
//! - `validate` (bool, default `true`): check each message has the shape of one JSON
//!   object (`{` … `}`); the full parse is left to the parser, which has its own `errors`.
//! - `backoff_initial_ms` (default 100), `backoff_max_ms` (default 10000): reconnection
//!   delays, doubling from the first to the cap, each jittered over its upper half.
//!
//! # Guarantees
//! - MUST reconnect on its own after a refused connection, a failed handshake, an error
//!   or a close, with capped exponential backoff and jitter; the backoff restarts after a
//!   connection that delivered at least one message. Counted: `reconnects`,
//!   `connect_failures`.
//! - MUST re-emit every failed event still in the retry buffer (same message id), after
//!   `replay_delay_ms`; counted as `replayed`. A failed event that was evicted is counted
//!   as `lost`.
//! - MUST NOT crash on bad input: binary messages are taken as text when they are UTF-8
//!   and counted as `malformed` (and dropped) otherwise; non-objects go to `errors`.
//! - What is NOT guaranteed: a live feed cannot be re-read. Events sent while the spout is
//!   disconnected are never seen; events in the channel or the retry buffer when the
//!   process dies are lost; so delivery is at-least-once only for events that reached the
//!   buffer, for as long as the process lives and the buffer holds them.
//! - The reader runs on a thread of its own (one per task) and wakes the executor when a
//!   message arrives after the spout ran dry; `next_tuple` never blocks.
//! - Gauges `source_backlog` (messages read, not yet emitted; set every 64 polls) and
//!   `source_backlog_bound` (`channel_capacity`): a growing or full backlog means the
//!   topology takes less than the feed sends (the operator's autoscaler reads them).

use std::time::Duration;

use bytestring::ByteString;
use futures_util::StreamExt as _;
use squall_engine::{ComponentError, Spout, SpoutOutput, TaskContext, Value};
use tokio_tungstenite::tungstenite::Message;
use tracing::{debug, info, warn};

use crate::backoff::Backoff;
use crate::live::{counters, LiveSpout, Sink};

pub use squall_catalog::websocket::{parse, WebsocketConfig, KIND};

/// The `websocket` spout.
pub struct WebsocketSpout {
    live: LiveSpout,
}

impl WebsocketSpout {
    /// A spout with this configuration; it connects in `open`.
    pub fn new(config: WebsocketConfig) -> Self {
        WebsocketSpout {
            live: LiveSpout::new(KIND, config),
        }
    }
}

/// How long a connection attempt (TCP and handshake) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

async fn read_feed(sink: Sink, config: WebsocketConfig, seed: u64) {
    let mut backoff = Backoff::new(config.backoff, seed);
    let mut attempts = 0u64;
    loop {
        if attempts > 0 {
            sink.counters.add(counters::RECONNECTS, 1);
        }
        attempts += 1;
        let connected =
            tokio::time::timeout(CONNECT_TIMEOUT, tokio_tungstenite::connect_async(&config.url)).await;
        match connected {
            Ok(Ok((mut ws, _))) => {
                info!(component = %sink.component, url = %config.url, "websocket connected");
                let mut received = 0u64;
                let end = loop {
                    match ws.next().await {
                        Some(Ok(Message::Text(t))) => {
                            received += 1;
                            if !sink.send(ByteString::from(t.as_str())).await {
                                return;
                            }
                        }
                        Some(Ok(Message::Binary(b))) => match std::str::from_utf8(&b) {
                            Ok(s) => {
                                received += 1;
                                if !sink.send(ByteString::from(s)).await {
                                    return;
                                }
                            }
                            Err(_) => {
                                sink.counters.add(counters::MALFORMED, 1);
                                debug!(component = %sink.component, bytes = b.len(), "binary message that is not UTF-8 dropped");
                            }
                        },
                        Some(Ok(Message::Close(frame))) => break format!("closed by the server: {frame:?}"),
                        // Pings are answered by the library; pongs and raw frames mean nothing here.
                        Some(Ok(_)) => {}
                        Some(Err(e)) => break format!("error: {e}"),
                        None => break "connection ended".to_owned(),
                    }
                };
                if received > 0 {
                    backoff.reset();
                }
                warn!(component = %sink.component, url = %config.url, received, reason = %end, "websocket disconnected; reconnecting");
            }
            Ok(Err(e)) => {
                sink.counters.add(counters::CONNECT_FAILURES, 1);
                warn!(component = %sink.component, url = %config.url, error = %e, "websocket connection failed");
            }
            Err(_) => {
                sink.counters.add(counters::CONNECT_FAILURES, 1);
                warn!(component = %sink.component, url = %config.url, timeout_s = CONNECT_TIMEOUT.as_secs(), "websocket connection timed out");
            }
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

impl Spout for WebsocketSpout {
    fn open(&mut self, ctx: &TaskContext) -> Result<(), ComponentError> {
        let config = self.live.config().clone();
        let seed = Backoff::seed_for(ctx.task_id);
        self.live.open(ctx, move |sink| read_feed(sink, config, seed))
    }

    fn next_tuple(&mut self, out: &mut SpoutOutput<'_>) -> Result<(), ComponentError> {
        self.live.next_tuple(out)
    }

    fn ack(&mut self, msg_id: Value) {
        self.live.ack(msg_id)
    }

    fn fail(&mut self, msg_id: Value) {
        self.live.fail(msg_id)
    }

    fn close(&mut self) {
        self.live.close()
    }
}
