//! `squall feed`: dump prints the data set; serve refuses non-loopback addresses and
//! serves until interrupted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

fn squall() -> Command {
    Command::new(env!("CARGO_BIN_EXE_squall"))
}

#[test]
fn dump_prints_the_data_set_as_json_lines() {
    let out = squall()
        .args(["feed", "dump", "--count", "3", "--from", "5", "--seed", "1"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let data = squall_feed::DataSet::new(1);
    let want: String = (5..8).map(|i| data.text(i) + "\n").collect();
    assert_eq!(text, want);
}

#[test]
fn serve_refuses_addresses_off_this_machine() {
    let out = squall()
        .args(["feed", "serve", "--ws", "0.0.0.0:9000"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a loopback address"), "{err}");
    let out = squall().args(["feed", "serve"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to serve"));
}

#[test]
fn serve_announces_its_endpoints_and_serves_sse() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut child = squall()
        .args([
            "feed",
            "serve",
            "--sse",
            &format!("127.0.0.1:{port}"),
            "--rate",
            "0",
            "--count",
            "2",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(
        line.contains(&format!("http://127.0.0.1:{port}/v2/stream/recentchange")),
        "{line}"
    );
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut got = String::new();
    let mut buf = [0u8; 4096];
    while !got.contains("id: 1\n") {
        let n = c.read(&mut buf).unwrap();
        assert!(n > 0, "closed early: {got}");
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(got.contains("event: message\nid: 0\ndata: {"), "{got}");
    child.kill().unwrap();
    child.wait().unwrap();
}
