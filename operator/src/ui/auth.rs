//! Who may do what, decided by the API server: the bearer token of each request is
//! identified with a TokenReview, and each (topology, verb) allowed or not with a
//! SubjectAccessReview for that user on `topologies.squall.dev`. Reads need `get` on the
//! topology; lists `list` in its namespace and `get` on it (a list shows only those);
//! activate, deactivate and rebalance `patch`; kill `delete`.
//!
//! The operator never lends its own rights: a caller's action is carried out (by
//! `control`, with the operator's account) only once the caller's own review allowed
//! exactly that verb on exactly that topology. Answers are cached briefly, keyed by a
//! SHA-256 of the token (the token itself is not kept), so a page that polls costs the
//! API server nothing most of the time; a right revoked stays usable until its entry
//! expires ([`Settings::auth_ttl`](super::Settings)).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::HeaderMap;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec, UserInfo};
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use kube::api::PostParams;
use kube::{Api, Client};
use squall_ui::{Authorize, Decision, Verb};
use tracing::debug;

use super::merge::parse_id;

/// Longest bearer token taken; service-account tokens are about 1 KiB.
pub const MAX_TOKEN_BYTES: usize = 8 << 10;

/// A SHA-256 of a token: what the caches are keyed by.
type TokenKey = [u8; 32];

fn token_key(token: &str) -> TokenKey {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut key = [0; 32];
    key.copy_from_slice(d.as_ref());
    key
}

/// A map whose entries expire after `ttl`, holding at most `max` of them: when full,
/// expired entries go first, then everything (a burst of new callers costs a round of
/// reviews, never memory).
#[derive(Debug)]
pub struct Expiring<K, V> {
    entries: HashMap<K, (Instant, V)>,
    ttl: Duration,
    max: usize,
}

impl<K: Eq + Hash, V: Clone> Expiring<K, V> {
    /// An empty map.
    pub fn new(ttl: Duration, max: usize) -> Self {
        Expiring {
            entries: HashMap::new(),
            ttl,
            max: max.max(1),
        }
    }

    /// The value of `key` if it has not expired at `now`.
    pub fn get(&self, key: &K, now: Instant) -> Option<V> {
        self.entries
            .get(key)
            .filter(|(at, _)| now.duration_since(*at) < self.ttl)
            .map(|(_, v)| v.clone())
    }

    /// Records `value` for `key` at `now`.
    pub fn put(&mut self, key: K, value: V, now: Instant) {
        if self.entries.len() >= self.max && !self.entries.contains_key(&key) {
            let ttl = self.ttl;
            self.entries.retain(|_, (at, _)| now.duration_since(*at) < ttl);
            if self.entries.len() >= self.max {
                self.entries.clear();
            }
        }
        self.entries.insert(key, (now, value));
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none are held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Who a token is, or why it is no one.
type Identity = Result<UserInfo, String>;

/// What one review asked: namespace, name (none for a namespace-wide `list`), verb.
type Question = (TokenKey, String, Option<String>, Verb);

/// Authorizes the UI's requests with TokenReview and SubjectAccessReview.
pub struct KubeAuthorizer {
    client: Client,
    identities: Mutex<Expiring<TokenKey, Identity>>,
    decisions: Mutex<Expiring<Question, Result<(), String>>>,
}

/// The bearer token of a request, or why there is none to use.
pub fn bearer(headers: &HeaderMap) -> Result<&str, String> {
    let value = headers
        .get(http::header::AUTHORIZATION)
        .ok_or("no bearer token: send Authorization: Bearer <token> (e.g. from `kubectl create token`)")?;
    let text = value
        .to_str()
        .map_err(|_| "the Authorization header is not text")?;
    let (scheme, token) = text
        .split_once(' ')
        .ok_or("the Authorization header is not `Bearer <token>`")?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err("the Authorization header is not `Bearer <token>`".to_owned());
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(format!("the bearer token is over {MAX_TOKEN_BYTES} bytes"));
    }
    Ok(token.trim())
}

impl KubeAuthorizer {
    /// Reviews through `client` (the operator's, which needs `create` on tokenreviews
    /// and subjectaccessreviews), answers cached for `ttl`, at most `max` of each kind.
    pub fn new(client: Client, ttl: Duration, max: usize) -> Self {
        KubeAuthorizer {
            client,
            identities: Mutex::new(Expiring::new(ttl, max)),
            decisions: Mutex::new(Expiring::new(ttl, max)),
        }
    }

    async fn identify(&self, token: &str, key: TokenKey) -> Result<Identity, String> {
        let now = Instant::now();
        if let Some(known) = self
            .identities
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key, now)
        {
            return Ok(known);
        }
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: token.to_owned(),
                audiences: None,
            },
            ..TokenReview::default()
        };
        let answer = Api::<TokenReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| format!("the token could not be reviewed: {e}"))?;
        let status = answer.status.unwrap_or_default();
        let identity = match (status.authenticated, status.user) {
            (Some(true), Some(user)) => Ok(user),
            _ => Err(status.error.filter(|e| !e.is_empty()).map_or_else(
                || "the token is not valid".to_owned(),
                |e| format!("the token is not valid: {e}"),
            )),
        };
        self.identities
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .put(key, identity.clone(), now);
        Ok(identity)
    }

    /// Whether `user` may `verb` topologies in `ns` (the one named `name`, if given).
    async fn may(
        &self,
        key: TokenKey,
        user: &UserInfo,
        ns: &str,
        name: Option<&str>,
        verb: Verb,
    ) -> Result<Result<(), String>, String> {
        let question: Question = (key, ns.to_owned(), name.map(str::to_owned), verb);
        let now = Instant::now();
        if let Some(known) = self
            .decisions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&question, now)
        {
            return Ok(known);
        }
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: user.username.clone(),
                uid: user.uid.clone(),
                groups: user.groups.clone(),
                extra: user.extra.clone(),
                resource_attributes: Some(ResourceAttributes {
                    namespace: Some(ns.to_owned()),
                    verb: Some(verb.as_str().to_owned()),
                    group: Some(squall_model::GROUP.to_owned()),
                    resource: Some("topologies".to_owned()),
                    name: name.map(str::to_owned),
                    ..ResourceAttributes::default()
                }),
                ..SubjectAccessReviewSpec::default()
            },
            ..SubjectAccessReview::default()
        };
        let answer = Api::<SubjectAccessReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| format!("the access could not be reviewed: {e}"))?;
        let status = answer.status.unwrap_or_default();
        let decision = if status.allowed {
            Ok(())
        } else {
            // As the API server words its own refusals.
            let who = user.username.as_deref().unwrap_or("unknown");
            let what = name.map_or_else(String::new, |n| format!(" {n:?}"));
            let why = status
                .reason
                .filter(|r| !r.is_empty())
                .map_or_else(String::new, |r| format!(": {r}"));
            Err(format!(
                "user {who:?} cannot {} topologies.{}{what} in namespace {ns:?}{why}",
                verb.as_str(),
                squall_model::GROUP
            ))
        };
        self.decisions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .put(question, decision.clone(), now);
        debug!(user = %user.username.as_deref().unwrap_or(""), ns, name = ?name, verb = verb.as_str(), allowed = decision.is_ok(), "access reviewed");
        Ok(decision)
    }

    async fn decide(&self, headers: &HeaderMap, topology: Option<&str>, verb: Verb) -> Decision {
        let token = match bearer(headers) {
            Ok(t) => t,
            Err(why) => return Decision::Unauthenticated(why),
        };
        let key = token_key(token);
        let user = match self.identify(token, key).await {
            Ok(Ok(user)) => user,
            Ok(Err(why)) => return Decision::Unauthenticated(why),
            Err(trouble) => return Decision::Unavailable(trouble),
        };
        // A list is first asked without a topology: being identified is enough, since
        // it shows only what the caller may see.
        let Some(id) = topology else {
            return Decision::Allow;
        };
        // An id no topology can have: the answer is "not found" either way.
        let Some((ns, name)) = parse_id(id) else {
            return Decision::Allow;
        };
        let mut asks = vec![(Some(name), verb)];
        if verb == Verb::List {
            asks = vec![(None, Verb::List), (Some(name), Verb::Get)];
        }
        for (name, verb) in asks {
            match self.may(key, &user, ns, name, verb).await {
                Ok(Ok(())) => {}
                Ok(Err(why)) => return Decision::Deny(why),
                Err(trouble) => return Decision::Unavailable(trouble),
            }
        }
        Decision::Allow
    }
}

impl Authorize for KubeAuthorizer {
    async fn authorize(&self, headers: &HeaderMap, topology: Option<&str>, verb: Verb) -> Decision {
        self.decide(headers, topology, verb).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::AUTHORIZATION, value.parse().unwrap());
        h
    }

    #[test]
    fn the_bearer_token_is_read_bounded() {
        assert_eq!(bearer(&headers("Bearer abc")), Ok("abc"));
        assert_eq!(bearer(&headers("bearer  abc ")), Ok("abc"));
        assert!(bearer(&HeaderMap::new())
            .unwrap_err()
            .starts_with("no bearer token"));
        assert!(bearer(&headers("Basic dXNlcg==")).is_err());
        assert!(bearer(&headers("Bearer ")).is_err());
        let long = format!("Bearer {}", "a".repeat(MAX_TOKEN_BYTES + 1));
        assert!(bearer(&headers(&long)).unwrap_err().contains("8192 bytes"));
        assert_ne!(token_key("a"), token_key("b"));
    }

    #[test]
    fn entries_expire_and_the_map_stays_within_its_bound() {
        let t0 = Instant::now();
        let ttl = Duration::from_secs(10);
        let mut m: Expiring<u32, &str> = Expiring::new(ttl, 3);
        m.put(1, "a", t0);
        assert_eq!(m.get(&1, t0 + Duration::from_secs(9)), Some("a"));
        assert_eq!(m.get(&1, t0 + ttl), None, "expired");
        m.put(2, "b", t0 + Duration::from_secs(5));
        m.put(3, "c", t0 + Duration::from_secs(5));
        // Full: the expired entry goes, the fresh ones stay.
        m.put(4, "d", t0 + Duration::from_secs(11));
        assert_eq!(m.len(), 3);
        assert_eq!(m.get(&1, t0 + Duration::from_secs(11)), None);
        assert_eq!(m.get(&2, t0 + Duration::from_secs(11)), Some("b"));
        // Full of fresh entries: all go.
        m.put(5, "e", t0 + Duration::from_secs(12));
        assert_eq!(m.len(), 1);
        assert_eq!(m.get(&5, t0 + Duration::from_secs(12)), Some("e"));
    }
}
