//! A real redis-server: answers on its loopback address, keeps writes across a kill -9
//! only when durable, dies with its value, and names `make redis-server` when missing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{Ipv4Addr, TcpStream};

use redis_testenv::{Error, Options, RedisServer, Reply};

fn ok(r: &RedisServer, args: &[&str]) {
    assert_eq!(r.command(args).unwrap(), Reply::Status("OK".into()), "{args:?}");
}

#[test]
fn a_server_on_its_own_address_answers_and_is_killed_on_drop() {
    let host = Ipv4Addr::new(127, 0, 0, 41);
    let r = RedisServer::start_on(host).unwrap();
    assert_eq!(r.host(), host);
    assert_eq!(r.url(), format!("redis://127.0.0.41:{}", r.port()));
    ok(&r, &["SET", "k", "v"]);
    assert_eq!(
        r.command(&["GET", "k"]).unwrap(),
        Reply::Bulk(Some(b"v".to_vec()))
    );
    assert_eq!(r.command(&["GET", "nothing"]).unwrap(), Reply::Bulk(None));
    assert!(matches!(r.command(&["INCR", "k"]).unwrap(), Reply::Error(e) if e.contains("not an integer")));
    for (member, by) in [("a", "2"), ("b", "1"), ("a", "1")] {
        r.command(&["ZINCRBY", "set", by, member]).unwrap();
    }
    assert_eq!(
        r.zset("set").unwrap(),
        [("a".into(), 3.0), ("b".into(), 1.0)].into()
    );
    assert!(r.zset("none").unwrap().is_empty());
    let counts = r.counts(&["set", "none"]).unwrap();
    assert_eq!(counts.len(), 1, "empty sets are left out: {counts:?}");
    assert_eq!(counts["set"], [("a".into(), 3), ("b".into(), 1)].into());
    assert!(
        matches!(r.zset("k"), Err(Error::Reply(_))),
        "a string is no sorted set"
    );

    let addr = r.addr();
    let pid = r.pid().unwrap();
    drop(r);
    assert!(TcpStream::connect(&addr).is_err(), "still listening after drop");
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
}

#[test]
fn a_durable_server_keeps_its_writes_through_a_kill_and_restart_and_a_plain_one_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let mut durable = RedisServer::start_with(Options {
        durable: true,
        dir: Some(dir.path().join("data")),
        ..Options::on(Ipv4Addr::new(127, 0, 0, 42))
    })
    .unwrap();
    let mut plain = RedisServer::start_on(Ipv4Addr::new(127, 0, 0, 42)).unwrap();
    assert_ne!(durable.port(), plain.port());
    for r in [&durable, &plain] {
        ok(r, &["SET", "k", "v"]);
    }
    let port = durable.port();
    durable.kill();
    plain.kill();
    assert!(durable.command(&["PING"]).is_err(), "killed");
    durable.restart().unwrap();
    plain.restart().unwrap();
    assert_eq!(durable.port(), port);
    assert_eq!(
        durable.command(&["GET", "k"]).unwrap(),
        Reply::Bulk(Some(b"v".to_vec()))
    );
    assert_eq!(plain.command(&["GET", "k"]).unwrap(), Reply::Bulk(None));
    assert!(dir.path().join("data/redis.log").is_file());
}

#[test]
fn a_missing_redis_server_is_named_with_how_to_install_it() {
    let err = RedisServer::start_with(Options {
        program: "/nonexistent/redis-server".into(),
        ..Options::default()
    })
    .err()
    .expect("started without a server program");
    let text = err.to_string();
    assert!(matches!(err, Error::NotInstalled { .. }), "{text}");
    assert!(text.contains("/nonexistent/redis-server"), "{text}");
    assert!(text.contains("make redis-server"), "{text}");
    assert!(text.contains("/usr/bin/redis-server"), "{text}");
}
