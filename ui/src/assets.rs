//! The web UI: pages and assets built by `make ui-assets` into `ui/assets/dist/` and
//! embedded here, so the binary serves them and nothing is fetched at run time.
//!
//! `/` and everything under `/topology/` answer the one HTML page (the browser routes
//! between the topology list, a topology and a component); `/assets/...` the files it
//! loads. Paths under `/api/` are the API's.

use std::sync::OnceLock;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;

use crate::error::ApiError;

struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

/// The page; index 0 of [`ASSETS`].
const PAGE: usize = 0;

const ASSETS: [Asset; 4] = [
    Asset {
        path: "/index.html",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("../assets/dist/index.html"),
    },
    Asset {
        path: "/assets/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../assets/dist/app.js"),
    },
    Asset {
        path: "/assets/app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../assets/dist/app.css"),
    },
    Asset {
        path: "/assets/LICENSES.txt",
        content_type: "text/plain; charset=utf-8",
        body: include_bytes!("../assets/dist/LICENSES.txt"),
    },
];

/// Only this server's own scripts, styles and API: the page loads nothing from
/// elsewhere. uPlot sizes its elements with inline styles, hence `'unsafe-inline'` for
/// styles only.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
                   form-action 'self'; frame-ancestors 'none'";

/// The page names its assets with their content hash (`?v=`), so those URLs can be
/// cached for good; everything else is revalidated with its ETag.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const REVALIDATE: &str = "no-cache";

fn find(path: &str) -> Option<usize> {
    if path == "/" || path.starts_with("/topology/") {
        return Some(PAGE);
    }
    ASSETS.iter().position(|a| a.path == path)
}

/// FNV-1a of each asset, as its ETag; worked out once.
fn etag(i: usize) -> &'static str {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                let h = a.body.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                    (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
                });
                format!("\"{h:016x}\"")
            })
            .collect()
    });
    &tags[i]
}

fn unchanged(headers: &HeaderMap, tag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == tag || t == "*")
}

/// The answer to a request outside the API; `None` for `/api/...`, which is the
/// caller's to route.
pub fn answer<B>(req: &Request<B>) -> Option<Result<Response<Full<Bytes>>, ApiError>> {
    let path = req.uri().path();
    if path == "/api" || path.starts_with("/api/") {
        return None;
    }
    let Some(i) = find(path) else {
        let shown: String = path.chars().take(80).collect();
        return Some(Err(ApiError::NotFound(format!("no such page: {shown}"))));
    };
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        return Some(Err(ApiError::MethodNotAllowed {
            allow: "GET, HEAD",
            message: "pages and assets take GET or HEAD only".into(),
        }));
    }
    let asset = &ASSETS[i];
    let tag = etag(i);
    let versioned = i != PAGE
        && req
            .uri()
            .query()
            .is_some_and(|q| q.split('&').any(|p| p.starts_with("v=")));
    let mut r = if unchanged(req.headers(), tag) {
        let mut r = Response::new(Full::new(Bytes::new()));
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        let mut r = Response::new(Full::new(Bytes::from_static(asset.body)));
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
        r
    };
    let h = r.headers_mut();
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if versioned { IMMUTABLE } else { REVALIDATE }),
    );
    if let Ok(v) = HeaderValue::from_str(tag) {
        h.insert(header::ETAG, v);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if i == PAGE {
        h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
        h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    }
    Some(Ok(r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_the_embedded_assets() {
        let page = std::str::from_utf8(ASSETS[PAGE].body).unwrap_or_default();
        assert!(page.contains("/assets/app.js?v="), "{page}");
        assert!(page.contains("/assets/app.css?v="), "{page}");
        assert!(!page.contains("http://") && !page.contains("https://"), "{page}");
    }

    #[test]
    fn client_routes_get_the_page() {
        assert_eq!(find("/"), Some(PAGE));
        assert_eq!(find("/topology/wc/component/split"), Some(PAGE));
        assert_eq!(find("/assets/app.js"), Some(1));
        assert_eq!(find("/assets/../Cargo.toml"), None);
        assert_eq!(find("/favicon.ico"), None);
    }

    #[test]
    fn etags_match_weak_lists_and_stars() {
        let mut h = HeaderMap::new();
        h.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("\"x\", W/\"abc\""),
        );
        assert!(unchanged(&h, "\"abc\""));
        assert!(!unchanged(&h, "\"abd\""));
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert!(unchanged(&h, "\"abd\""));
    }
}
