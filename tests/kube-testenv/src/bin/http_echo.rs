//! Minimal HTTP server run as a pod in the smoke tests. Binds
//! `$POD_IP:$PORT` (default 127.0.0.1:8080) and answers every request with
//! `pod=<POD_NAME> ip=<POD_IP>`.
#![forbid(unsafe_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;

fn main() -> std::io::Result<()> {
    let ip = std::env::var("POD_IP").unwrap_or_else(|_| "127.0.0.1".into());
    let port = std::env::var("PORT").unwrap_or_else(|_| "8080".into());
    let name = std::env::var("POD_NAME").unwrap_or_default();
    let listener = TcpListener::bind(format!("{ip}:{port}"))?;
    eprintln!("http-echo listening on {ip}:{port}");
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        // Read the request head, then answer; one request per connection.
        let mut reader = BufReader::new(match stream.try_clone() {
            Ok(s) => s,
            Err(_) => continue,
        });
        let mut line = String::new();
        while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) && line != "\r\n" {
            line.clear();
        }
        let body = format!("pod={name} ip={ip}\n");
        let _ = write!(
            stream,
            "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
    }
    Ok(())
}
