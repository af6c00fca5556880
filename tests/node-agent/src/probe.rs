//! Readiness probes: HTTP GET and TCP socket, run against the pod IP.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn resolve_port(port: &IntOrString, container: &Container) -> Option<u16> {
    match port {
        IntOrString::Int(p) => u16::try_from(*p).ok(),
        IntOrString::String(name) => container
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .and_then(|p| u16::try_from(p.container_port).ok()),
    }
}

/// Runs one probe attempt. Exec and gRPC probes are not supported and count
/// as success so such pods still become Ready.
pub async fn run(probe: &Probe, container: &Container, pod_ip: IpAddr) -> bool {
    let timeout = Duration::from_secs(probe.timeout_seconds.unwrap_or(1).max(1).unsigned_abs().into());
    let attempt = async {
        if let Some(h) = &probe.http_get {
            let Some(port) = resolve_port(&h.port, container) else {
                return false;
            };
            http_get(SocketAddr::new(pod_ip, port), h.path.as_deref().unwrap_or("/")).await
        } else if let Some(t) = &probe.tcp_socket {
            let Some(port) = resolve_port(&t.port, container) else {
                return false;
            };
            TcpStream::connect(SocketAddr::new(pod_ip, port)).await.is_ok()
        } else {
            true
        }
    };
    tokio::time::timeout(timeout, attempt).await.unwrap_or(false)
}

/// Minimal HTTP/1.0 GET; success is a 2xx or 3xx status, as for the kubelet.
async fn http_get(addr: SocketAddr, path: &str) -> bool {
    let Ok(mut s) = TcpStream::connect(addr).await else {
        return false;
    };
    let req = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nUser-Agent: squall-node-agent\r\n\r\n");
    if s.write_all(req.as_bytes()).await.is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    let mut n = 0;
    while n < 12 {
        match s.read(&mut buf[n..]).await {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    let head = String::from_utf8_lossy(&buf[..n]);
    let code = head.split_whitespace().nth(1).and_then(|c| c.parse::<u16>().ok());
    matches!(code, Some(200..=399))
}
