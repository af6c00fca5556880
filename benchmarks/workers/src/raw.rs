//! The baseline: fixed-size records from one thread to another over a loopback TCP
//! socket, written in 64 KiB chunks and walked record by record on the reading side.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use bytes::BytesMut;
use squall_engine::fabric::Msg;
use squall_engine::{MessageIds, Packet, Schema, Value, Values, WireSchemas};

/// Bytes one tuple of the benchmark takes in a batch frame: a 100-byte payload on the
/// spout's stream, with no tree ids.
pub fn record_len() -> usize {
    let yaml = "apiVersion: squall.dev/v1alpha1\nkind: Topology\nmetadata: {name: r}\nspec:\n  ackers: 0\n  spouts: [{name: spout, component: const}]\n  bolts: [{name: sink, component: \"null\", inputs: [{from: spout}]}]\n";
    let plan = squall_model::TopologyManifest::from_yaml(yaml, "raw")
        .ok()
        .and_then(|m| squall_model::validate(&m, &squall_components::Builtins).ok());
    let Some(plan) = plan else { return 112 };
    let schemas = WireSchemas::new(&plan);
    let mut v = Values::new();
    v.push(Value::from("x".repeat(100)));
    let schema = Schema::intern("spout", "default", &["payload".to_owned()]);
    let msg = Msg::Tuple(Packet::new(1, v, schema, 2, MessageIds::new()));
    let mut buf = BytesMut::new();
    squall_worker::wire::encode_msg(&msg, &schemas, &mut buf);
    buf.len().max(1)
}

pub struct Raw {
    pub records_per_s: f64,
    pub cpu_per_m: f64,
}

fn self_cpu() -> f64 {
    super::cpu_seconds(std::process::id())
}

pub fn measure(record: usize, span: Duration) -> Result<Raw> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = Arc::clone(&stop);
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        let mut sock = TcpStream::connect(addr)?;
        sock.set_nodelay(true)?;
        let per = (64 * 1024) / record;
        let chunk = vec![0x5a_u8; per * record];
        while !s2.load(Ordering::Relaxed) {
            sock.write_all(&chunk)?;
        }
        Ok(())
    });
    let (mut sock, _) = listener.accept()?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut next = 0usize;
    let mut total = 0u64;
    let mut touched = 0u64;
    let cpu0 = self_cpu();
    let start = Instant::now();
    while start.elapsed() < span {
        let n = sock.read(&mut buf)?;
        if n == 0 {
            break;
        }
        total += n as u64;
        // Visit each record's first byte, as a decoder finds the boundaries.
        let mut pos = next;
        while pos < n {
            touched += u64::from(buf[pos]);
            pos += record;
        }
        next = pos - n;
    }
    let records = total / record as u64;
    std::hint::black_box(touched);
    let secs = start.elapsed().as_secs_f64();
    let cpu = self_cpu() - cpu0;
    stop.store(true, Ordering::Relaxed);
    drop(sock);
    let _ = writer.join();
    Ok(Raw {
        records_per_s: records as f64 / secs,
        cpu_per_m: cpu / (records as f64 / 1e6).max(1e-9),
    })
}

/// The same pipe carrying real frames: tuples encoded by the worker's wire codec into
/// 64 KiB frames, length-prefixed, decoded back into engine messages on the reading
/// side. What the data plane does minus gRPC, HTTP/2 and the engine's queues.
pub fn measure_codec(span: Duration) -> Result<Raw> {
    let yaml = "apiVersion: squall.dev/v1alpha1\nkind: Topology\nmetadata: {name: r}\nspec:\n  ackers: 0\n  spouts: [{name: spout, component: const}]\n  bolts: [{name: sink, component: \"null\", inputs: [{from: spout}]}]\n";
    let m = squall_model::TopologyManifest::from_yaml(yaml, "raw").map_err(|e| anyhow::anyhow!("{e}"))?;
    let plan =
        squall_model::validate(&m, &squall_components::Builtins).map_err(|e| anyhow::anyhow!("{e}"))?;
    let schemas = Arc::new(WireSchemas::new(&plan));
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let (s2, w_schemas) = (Arc::clone(&stop), Arc::clone(&schemas));
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        let mut sock = TcpStream::connect(addr)?;
        sock.set_nodelay(true)?;
        let schema = Schema::intern("spout", "default", &["payload".to_owned()]);
        let payload: &'static str = Box::leak("x".repeat(100).into_boxed_str());
        let mut body = BytesMut::with_capacity(70 * 1024);
        while !s2.load(Ordering::Relaxed) {
            while body.len() < 64 * 1024 {
                let mut v = Values::new();
                v.push(Value::from_static(payload));
                let msg = Msg::Tuple(Packet::new(1, v, schema, 2, MessageIds::new()));
                squall_worker::wire::encode_msg(&msg, &w_schemas, &mut body);
            }
            let (h, n) = squall_worker::wire::batch_header(body.len());
            let len = (n + body.len()) as u32;
            sock.write_all(&len.to_le_bytes())?;
            sock.write_all(&h[..n])?;
            sock.write_all(&body)?;
            body.clear();
        }
        Ok(())
    });
    let (mut sock, _) = listener.accept()?;
    let mut msgs = Vec::new();
    let mut records = 0u64;
    let cpu0 = self_cpu();
    let start = Instant::now();
    let mut len = [0u8; 4];
    while start.elapsed() < span {
        sock.read_exact(&mut len)?;
        let mut frame = BytesMut::zeroed(u32::from_le_bytes(len) as usize);
        sock.read_exact(&mut frame)?;
        squall_worker::wire::decode_to_peer(frame.freeze(), &schemas, &mut msgs)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        records += msgs.len() as u64;
        msgs.clear();
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu = self_cpu() - cpu0;
    stop.store(true, Ordering::Relaxed);
    drop(sock);
    let _ = writer.join();
    Ok(Raw {
        records_per_s: records as f64 / secs,
        cpu_per_m: cpu / (records as f64 / 1e6).max(1e-9),
    })
}
