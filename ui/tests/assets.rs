//! The web UI's pages and assets over real HTTP: the one page at every client route,
//! assets with their content types and cache headers, and the API untouched.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;

use bytes::Bytes;
use http::{header, HeaderMap};
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use squall_ui::Options;
use support::{get, serve, word_count, Recorder};

async fn fetch(addr: SocketAddr, method: &str, path: &str, etag: Option<&str>) -> (u16, HeaderMap, Vec<u8>) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, addr.to_string());
    if let Some(tag) = etag {
        req = req.header(header::IF_NONE_MATCH, tag);
    }
    let resp = sender
        .send_request(req.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes().to_vec();
    (status, headers, body)
}

fn header(h: &HeaderMap, name: header::HeaderName) -> &str {
    h.get(&name)
        .map(|v| v.to_str().unwrap())
        .unwrap_or_else(|| panic!("no {name} in {h:?}"))
}

/// `src="/assets/app.js?v=..."` and the like, from the page.
fn asset_urls(page: &str) -> Vec<String> {
    page.split(['"', '\''])
        .filter(|s| s.starts_with("/assets/"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn every_client_route_gets_the_page_and_the_page_its_assets() {
    let served = serve(Recorder::default(), Options::default()).await;
    served.feed(word_count(60)).await;
    let addr = served.addr;

    let (status, h, page) = fetch(addr, "GET", "/", None).await;
    assert_eq!(status, 200);
    assert_eq!(header(&h, header::CONTENT_TYPE), "text/html; charset=utf-8");
    assert_eq!(header(&h, header::CACHE_CONTROL), "no-cache");
    let csp = header(&h, header::CONTENT_SECURITY_POLICY);
    assert!(
        csp.contains("default-src 'self'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    for route in [
        "/topology/wc",
        "/topology/wc/component/split%20words",
        "/topology/wc?window=600",
    ] {
        let (status, _, body) = fetch(addr, "GET", route, None).await;
        assert_eq!((status, &body), (200, &page), "{route}");
    }

    let page = String::from_utf8(page).unwrap();
    let urls = asset_urls(&page);
    assert_eq!(urls.len(), 2, "{page}");
    for url in &urls {
        let (status, h, body) = fetch(addr, "GET", url, None).await;
        assert_eq!(status, 200, "{url}");
        assert!(!body.is_empty());
        let want = if url.contains(".js") {
            "text/javascript"
        } else {
            "text/css"
        };
        assert!(header(&h, header::CONTENT_TYPE).starts_with(want), "{url}: {h:?}");
        assert_eq!(
            header(&h, header::CACHE_CONTROL),
            "public, max-age=31536000, immutable"
        );
        assert_eq!(header(&h, header::X_CONTENT_TYPE_OPTIONS), "nosniff");
        // The same file without its version is revalidated, and unchanged it is a 304.
        let bare = url.split('?').next().unwrap();
        let (_, h, _) = fetch(addr, "GET", bare, None).await;
        assert_eq!(header(&h, header::CACHE_CONTROL), "no-cache");
        let tag = header(&h, header::ETAG).to_owned();
        let (status, _, body) = fetch(addr, "GET", bare, Some(&tag)).await;
        assert_eq!((status, body.len()), (304, 0));
    }

    let (status, h, body) = fetch(addr, "HEAD", "/assets/app.js", None).await;
    assert_eq!((status, body.len()), (200, 0));
    assert!(header(&h, header::CONTENT_LENGTH).parse::<u64>().unwrap() > 1000);

    // The API answers as before.
    let s = get(addr, "/api/v1/topology/summary").await;
    assert_eq!(s["topologies"][0]["id"], "wc");
}

#[tokio::test]
async fn other_paths_and_methods_get_storms_error_body() {
    let served = serve(Recorder::default(), Options::default()).await;
    let addr = served.addr;
    let (status, _, body) = fetch(addr, "GET", "/favicon.ico", None).await;
    assert_eq!(status, 404);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error"], "404 Not Found");
    let (status, h, _) = fetch(addr, "POST", "/topology/wc", None).await;
    assert_eq!((status, header(&h, header::ALLOW)), (405, "GET, HEAD"));
    let (status, _, _) = fetch(addr, "GET", "/assets/../Cargo.toml", None).await;
    assert_eq!(status, 404);
    let (status, _, _) = fetch(addr, "GET", "/api/v1/nothing", None).await;
    assert_eq!(status, 404);
}
