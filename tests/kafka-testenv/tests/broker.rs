//! The broker harness against itself: start, topics, restart on the same data, stop.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{Ipv4Addr, TcpStream};
use std::time::{Duration, Instant};

use kafka_testenv::KafkaBroker;

fn listening(addr: &str) -> bool {
    TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_millis(300)).is_ok()
}

#[test]
fn starts_creates_topics_restarts_on_the_same_data_and_stops() {
    let started = Instant::now();
    let mut b = KafkaBroker::start_on(Ipv4Addr::new(127, 0, 0, 2)).unwrap();
    eprintln!("broker up in {:?} at {}", started.elapsed(), b.bootstrap());
    assert!(b.bootstrap().starts_with("127.0.0.2:"));
    assert!(listening(&b.bootstrap()));
    b.create_topic("three", 3).unwrap();
    let err = b.create_topic("three", 3).unwrap_err().to_string();
    assert!(err.contains("already exists"), "{err}");

    let (addr, dir) = (b.bootstrap(), b.dir().to_path_buf());
    b.restart().unwrap();
    assert_eq!(b.bootstrap(), addr, "same ports");
    assert_eq!(b.dir(), dir);
    // The topic survived: creating it again is refused, adding partitions works.
    assert!(b.create_topic("three", 3).is_err());
    b.add_partitions("three", 4).unwrap();

    let pid = b.pid().unwrap();
    b.stop();
    assert!(b.pid().is_none());
    assert!(!listening(&addr));
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
}

#[test]
fn a_dropped_broker_is_killed() {
    let b = KafkaBroker::start().unwrap();
    let pid = b.pid().unwrap();
    drop(b);
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::path::Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
}
