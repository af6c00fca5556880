//! Events that read as what happened.
//!
//! kube-runtime's `Recorder` folds every Event with the same type, reason and action into
//! one series whatever its note says, so after a burst of scale changes `kubectl describe`
//! showed the first change's note ("generation 1 over 1 workers") with a count of 12
//! while generation 12 ran. Here the note is part of the key, as in client-go's events
//! broadcaster: a repeated Event (same note) becomes a series, a different one is an
//! Event of its own.
//!
//! The cache is bounded in time (entries unseen for [`SERIES_WINDOW`] are forgotten, as in
//! client-go) and in size ([`MAX_CACHED`], oldest forgotten first), so a topology whose
//! notes never repeat cannot grow the operator's memory.

use std::collections::HashMap;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use tokio::sync::Mutex;

/// How long an Event may go unrepeated and still grow its series.
pub const SERIES_WINDOW: SignedDuration = SignedDuration::from_mins(6);
/// At most this many distinct Events are remembered for series.
pub const MAX_CACHED: usize = 4096;
/// The API server refuses notes over 1 kB; longer ones are cut, with a marker.
pub const MAX_NOTE_BYTES: usize = 1024;

/// What makes two Events the same one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    warning: bool,
    reason: String,
    action: String,
    note: String,
    namespace: String,
    name: String,
    uid: String,
}

#[derive(Debug, Clone)]
struct Seen {
    /// The stored Event's name, namespace and series so far.
    name: String,
    namespace: String,
    count: i32,
    last: Timestamp,
}

/// One Event to publish.
#[derive(Debug, Clone)]
pub struct Note<'a> {
    pub reason: &'a str,
    pub action: &'a str,
    pub note: &'a str,
    pub warning: bool,
}

/// Publishes Events for one controller instance.
pub struct EventRecorder {
    client: Client,
    controller: String,
    instance: String,
    seen: Mutex<HashMap<Key, Seen>>,
}

impl EventRecorder {
    pub fn new(client: Client, controller: impl Into<String>, instance: impl Into<String>) -> Self {
        Self {
            client,
            controller: controller.into(),
            instance: instance.into(),
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Creates the Event, or grows its series when the same one was published within
    /// [`SERIES_WINDOW`].
    pub async fn publish(&self, n: &Note<'_>, regarding: &ObjectReference) -> Result<(), kube::Error> {
        let note = cut(n.note);
        let key = Key {
            warning: n.warning,
            reason: n.reason.to_owned(),
            action: n.action.to_owned(),
            note: note.clone(),
            namespace: regarding.namespace.clone().unwrap_or_default(),
            name: regarding.name.clone().unwrap_or_default(),
            uid: regarding.uid.clone().unwrap_or_default(),
        };
        let now = Timestamp::now();
        let repeat = {
            let mut seen = self.seen.lock().await;
            seen.retain(|_, s| now.duration_since(s.last) < SERIES_WINDOW);
            seen.get(&key).cloned()
        };
        let stored = match repeat {
            Some(s) => self.grow(s, now).await?,
            None => self.create(n, note, regarding, now).await?,
        };
        let mut seen = self.seen.lock().await;
        if seen.len() >= MAX_CACHED && !seen.contains_key(&key) {
            if let Some(oldest) = seen.iter().min_by_key(|(_, s)| s.last).map(|(k, _)| k.clone()) {
                seen.remove(&oldest);
            }
        }
        seen.insert(key, stored);
        Ok(())
    }

    async fn grow(&self, mut s: Seen, now: Timestamp) -> Result<Seen, kube::Error> {
        s.count += 1;
        s.last = now;
        let api: Api<Event> = Api::namespaced(self.client.clone(), &s.namespace);
        let patch = json!({"series": EventSeries { count: s.count, last_observed_time: MicroTime(now) }});
        api.patch(&s.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        Ok(s)
    }

    async fn create(
        &self,
        n: &Note<'_>,
        note: String,
        regarding: &ObjectReference,
        now: Timestamp,
    ) -> Result<Seen, kube::Error> {
        let namespace = regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned());
        let base = regarding.name.as_deref().unwrap_or(&self.controller);
        let event = Event {
            metadata: ObjectMeta {
                // Unique per Event, as client-go names them: the object and the time.
                name: Some(format!("{base}.{:x}", now.as_nanosecond())),
                namespace: Some(namespace.clone()),
                ..ObjectMeta::default()
            },
            event_time: Some(MicroTime(now)),
            type_: Some(if n.warning { "Warning" } else { "Normal" }.to_owned()),
            reason: Some(n.reason.to_owned()),
            action: Some(n.action.to_owned()),
            note: Some(note),
            regarding: Some(regarding.clone()),
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            ..Event::default()
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        let created = api.create(&PostParams::default(), &event).await?;
        Ok(Seen {
            name: created.metadata.name.unwrap_or_default(),
            namespace,
            count: 1,
            last: now,
        })
    }
}

/// The note within the API server's limit, cut on a character boundary.
fn cut(note: &str) -> String {
    if note.len() <= MAX_NOTE_BYTES {
        return note.to_owned();
    }
    const MARK: &str = " …";
    let mut end = MAX_NOTE_BYTES - MARK.len();
    while !note.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{MARK}", &note[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_notes_are_cut_on_a_character_boundary() {
        let long = "é".repeat(MAX_NOTE_BYTES);
        let cut = cut(&long);
        assert!(cut.len() <= MAX_NOTE_BYTES, "{}", cut.len());
        assert!(cut.ends_with(" …"));
        assert_eq!(super::cut("short"), "short");
    }
}
