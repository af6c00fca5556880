//! `squall-worker`: runs the tasks an assignment gives this process and exchanges tuples
//! and acker traffic with the workers running the rest, over long-lived gRPC streams.
//!
//! - [`assignment`]: the document that says which worker runs which tasks
//!   (`squall_control::Assignment`), loaded with its plan, and this worker's view of it.
//! - [`wire`]: engine messages in the protobuf format of `proto/`.
//! - [`pump`] and [`link`]: the outbound and inbound halves of the data plane.
//! - [`host`]: the worker process itself; it restarts its engine only when its slice of
//!   the plan (`squall_control::EngineSlice`) changes.
//! - [`current`]: the generation and plan hash this worker runs, which its links and
//!   `/status` read.
//! - [`http`]: `/metrics`, `/status` (`squall_control::WorkerStatus`), `/figures`
//!   (`squall_control::WorkerFigures`, built by [`figures`]), `/healthz`, `/readyz`.
//! - [`configmap`]: the assignment read from the operator's ConfigMap, on Kubernetes.
//! - [`lease`]: a Lease renewed for liveness, on Kubernetes.
//! - [`tls`]: mutual TLS on links, each peer's topology checked; [`tls_secret`]: the
//!   certificates read from the operator's Secret, on Kubernetes.
//! - [`supervisor`]: several workers on loopback, for `squall run --workers N` and tests.
#![forbid(unsafe_code)]

pub mod assignment;
pub mod codec;
pub mod configmap;
pub mod current;
pub mod engine_slot;
pub mod figures;
pub mod host;
pub mod http;
pub mod lease;
pub mod link;
pub mod prom;
pub mod pump;
pub mod stats;
pub mod supervisor;
pub mod tls;
pub mod tls_secret;
pub mod wire;
