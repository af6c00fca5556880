//! The authorization hook over real HTTP: who is asked what, 401 and 403 with Storm's
//! error body, lists showing only what the caller may see, and refused actions never
//! reaching the control.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use squall_ui::{Authorize, Decision, Options, Ui, Verb};
use support::{word_count, Manual, Recorder};

/// `reader` may get and list `wc` only; `actor` may do anything; `down` finds the
/// authority unavailable; any other token is a known caller with no rights; no token is
/// nobody. Every question is recorded.
#[derive(Clone, Default)]
struct Tokens(Arc<Mutex<Vec<String>>>);

impl Authorize for Tokens {
    async fn authorize(&self, headers: &HeaderMap, topology: Option<&str>, verb: Verb) -> Decision {
        let token = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        self.0.lock().unwrap().push(format!(
            "{} {} {}",
            token.unwrap_or("-"),
            topology.unwrap_or("*"),
            verb.as_str()
        ));
        match (token, topology, verb) {
            (None, ..) => Decision::Unauthenticated("no bearer token".into()),
            (Some("down"), ..) => Decision::Unavailable("the authority did not answer".into()),
            (Some("actor"), ..) => Decision::Allow,
            // Any known caller may ask for a list; it shows what they may see.
            (Some(_), None, Verb::List) => Decision::Allow,
            (Some("reader"), Some("wc"), Verb::Get | Verb::List) => Decision::Allow,
            (Some(who), t, v) => Decision::Deny(format!(
                "{who} may not {} {}",
                v.as_str(),
                t.unwrap_or("topologies")
            )),
        }
    }
}

async fn serve() -> (SocketAddr, Recorder, Tokens) {
    let source = Manual::default();
    let mut other = word_count(60);
    other.info.id = "other".into();
    *source.0.lock().unwrap() = vec![word_count(60), other];
    let control = Recorder::default();
    let tokens = Tokens::default();
    let ui = Ui::with_authorizer(
        source,
        control.clone(),
        tokens.clone(),
        Options {
            period: Duration::from_secs(3600),
            ..Options::default()
        },
    );
    ui.sample_now().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { ui.serve(listener).await });
    (addr, control, tokens)
}

/// One request with an optional bearer token: status, `WWW-Authenticate`, JSON body.
async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> (u16, Option<String>, Value) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::HOST, addr.to_string());
    if let Some(t) = token {
        req = req.header(http::header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let resp = sender
        .send_request(req.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let challenge = resp
        .headers()
        .get(http::header::WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_owned());
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, challenge, serde_json::from_slice(&body).unwrap())
}

fn ids(v: &Value) -> Vec<&str> {
    v["topologies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn no_token_is_401_and_no_right_is_403_with_storms_body() {
    let (addr, _, _) = serve().await;
    let (status, challenge, v) = call(addr, "GET", "/api/v1/topology/wc", None).await;
    assert_eq!((status, challenge.as_deref()), (401, Some("Bearer")));
    assert_eq!(v["error"], "401 Unauthorized");
    assert_eq!(v["errorMessage"], "no bearer token");
    let (status, _, _) = call(addr, "GET", "/api/v1/topology/summary", None).await;
    assert_eq!(status, 401);

    let (status, challenge, v) = call(addr, "GET", "/api/v1/topology/other", Some("reader")).await;
    assert_eq!((status, challenge), (403, None));
    assert_eq!(v["error"], "403 Forbidden");
    assert_eq!(v["errorMessage"], "reader may not get other");
    let (status, _, _) = call(addr, "GET", "/api/v1/topology/wc/component/split", Some("nobody")).await;
    assert_eq!(status, 403);
    let (status, _, v) = call(addr, "GET", "/api/v1/topology/wc", Some("down")).await;
    assert_eq!(
        (status, v["error"].as_str()),
        (503, Some("503 Service Unavailable"))
    );
    // The spout lag is a read of the topology like its page.
    let (status, _, v) = call(addr, "GET", "/api/v1/topology/other/lag", Some("reader")).await;
    assert_eq!(
        (status, v["errorMessage"].as_str()),
        (403, Some("reader may not get other"))
    );
    assert_eq!(call(addr, "GET", "/api/v1/topology/wc/lag", None).await.0, 401);
    let (status, _, v) = call(addr, "GET", "/api/v1/topology/wc/lag", Some("reader")).await;
    assert_eq!((status, v), (200, serde_json::json!({})));
    // Refused before the lookup: a caller without rights cannot tell what exists.
    let (status, _, _) = call(addr, "GET", "/api/v1/topology/nope", Some("nobody")).await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn lists_show_only_what_the_caller_may_see() {
    let (addr, _, tokens) = serve().await;
    let (status, _, v) = call(addr, "GET", "/api/v1/topology/summary", Some("actor")).await;
    assert_eq!((status, ids(&v)), (200, vec!["other", "wc"]));
    let (_, _, v) = call(addr, "GET", "/api/v1/topology/summary", Some("reader")).await;
    assert_eq!(ids(&v), vec!["wc"]);
    let (_, _, v) = call(addr, "GET", "/api/v1/cluster/summary", Some("reader")).await;
    assert_eq!(v["topologies"], 1);
    let (status, _, v) = call(addr, "GET", "/api/v1/topology/summary", Some("nobody")).await;
    assert_eq!((status, ids(&v).len()), (200, 0), "known, but may see none");
    let (status, _, _) = call(addr, "GET", "/api/v1/cluster/summary", Some("down")).await;
    assert_eq!(status, 503);
    let asked = tokens.0.lock().unwrap().clone();
    assert_eq!(
        asked[..3],
        ["actor * list", "actor other list", "actor wc list"],
        "the caller first, then each topology"
    );
}

#[tokio::test]
async fn actions_need_patch_or_delete_and_refused_ones_do_nothing() {
    let (addr, control, tokens) = serve().await;
    let (status, _, v) = call(addr, "POST", "/api/v1/topology/wc/activate", Some("reader")).await;
    assert_eq!(
        (status, v["errorMessage"].as_str()),
        (403, Some("reader may not patch wc"))
    );
    let (status, _, v) = call(addr, "POST", "/api/v1/topology/wc/kill/0", Some("reader")).await;
    assert_eq!(
        (status, v["errorMessage"].as_str()),
        (403, Some("reader may not delete wc"))
    );
    assert_eq!(
        call(addr, "POST", "/api/v1/topology/wc/activate", None).await.0,
        401
    );
    assert!(
        control.seen.lock().unwrap().is_empty(),
        "nothing reached the control"
    );

    let (status, _, v) = call(addr, "POST", "/api/v1/topology/wc/activate", Some("actor")).await;
    assert_eq!((status, v["status"].as_str()), (200, Some("success")));
    assert_eq!(
        call(addr, "POST", "/api/v1/topology/wc/kill/2", Some("actor"))
            .await
            .0,
        200
    );
    assert_eq!(*control.seen.lock().unwrap(), ["activate wc", "kill wc 2"]);
    let asked = tokens.0.lock().unwrap().clone();
    assert!(asked.contains(&"actor wc patch".to_owned()) && asked.contains(&"actor wc delete".to_owned()));
}
