//! The bundled data set: edit events in the schema of the talk's feed, generated from a
//! seed.
//!
//! Event `i` of seed `s` depends on `(s, i)` alone, never on the events before it, so a
//! test can compute what a pipeline must count from any range of the set without
//! replaying it, and the feed server can start any connection at any index.
//!
//! # Proportions (by construction, checked by the tests over 100,000 events)
//! - anonymous edits ~20%; every anonymous edit but ~3% carries `geo_ip.country_name`
//!   (the lookup of some addresses fails, as with the real feed);
//! - bots ~7% of all events (never anonymous);
//! - actions: `edit` ~83%, `create` ~6%, then `newusers`, `upload`, `delete`, `move`,
//!   `block`, `protect`; `is_new` is true exactly for `create`; log actions (everything
//!   but `edit`/`create`) have no `change_size` and no `flags`, like the original feed.

use serde::Serialize;

/// One edit event, serialised with the field names and shapes of the talk's sample event
/// (revision ids as strings, `flags` as a string of letters, geo data only when anonymous).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Edit {
    /// `edit`, `create`, or a log action such as `delete`.
    pub action: &'static str,
    /// Bytes added (negative: removed); `null` for log actions.
    pub change_size: Option<i64>,
    /// MediaWiki's flag letters: `!` unpatrolled, `N` new, `M` minor, `B` bot; `null` for log actions.
    pub flags: Option<String>,
    /// Hashtags found in the summary.
    pub hashtags: Vec<String>,
    /// The editor was not logged in (the user is an IP address).
    pub is_anon: bool,
    /// The editor is a bot account.
    pub is_bot: bool,
    /// Marked as a minor edit.
    pub is_minor: bool,
    /// The edit created the page.
    pub is_new: bool,
    /// Not yet reviewed by a patroller.
    pub is_unpatrolled: bool,
    /// Users mentioned in the summary.
    pub mentions: Vec<String>,
    /// Namespace name, `Main` for articles.
    pub ns: &'static str,
    /// Page title.
    pub page_title: String,
    /// Previous revision, as a decimal string.
    pub parent_rev_id: String,
    /// This revision, as a decimal string.
    pub rev_id: String,
    /// Edit summary.
    pub summary: &'static str,
    /// Diff or log URL.
    pub url: String,
    /// User name, or the IP address of an anonymous editor.
    pub user: String,
    /// Where an anonymous editor's address is located, when the lookup succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub geo_ip: Option<GeoIp>,
}

/// Location of an anonymous editor's address.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GeoIp {
    /// City, possibly empty.
    pub city: &'static str,
    /// Country name in English, e.g. `United States`.
    pub country_name: &'static str,
    /// Latitude in degrees.
    pub latitude: f64,
    /// Longitude in degrees.
    pub longitude: f64,
    /// Region, possibly empty.
    pub region_name: &'static str,
}

/// One message of the feed: an event, or a deliberately malformed one.
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    /// A well-formed event.
    Event(Box<Edit>),
    /// Text that is not a valid event, and why.
    Malformed {
        /// The message text.
        text: String,
        /// What is wrong with it.
        kind: MalformedKind,
    },
}

/// The ways an injected malformed message is broken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MalformedKind {
    /// An event cut in the middle: not valid JSON.
    Truncated,
    /// Not JSON at all.
    NotJson,
    /// Valid JSON, but an array rather than an object.
    NotAnObject,
    /// A JSON object without the `action` and `is_anon` keys.
    MissingFields,
}

impl MalformedKind {
    /// Whether the text is valid JSON (so only a parser, not a framing check, rejects it).
    pub fn is_valid_json(self) -> bool {
        matches!(self, MalformedKind::NotAnObject | MalformedKind::MissingFields)
    }
}

/// The data set of one seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataSet {
    seed: u64,
    malformed_every: Option<u64>,
}

/// The seed `squall feed serve` uses unless told otherwise.
pub const DEFAULT_SEED: u64 = 2015;

/// A small, fast, well-mixed PRNG (SplitMix64): a few draws per event.
struct Draws(u64);

/// SplitMix64's finaliser: a bijective mix of all 64 bits.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Draws {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// Uniform in `0..n` (n > 0); the tiny modulo bias is irrelevant here.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// True with probability `per_mille / 1000`.
    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    /// Picks from `(item, weight)` pairs.
    fn weighted<T: Copy>(&mut self, items: &[(T, u64)]) -> T {
        let total: u64 = items.iter().map(|(_, w)| w).sum();
        let mut x = self.below(total);
        for (item, w) in items {
            if x < *w {
                return *item;
            }
            x -= w;
        }
        items[items.len() - 1].0
    }
}

const ACTIONS: &[(&str, u64)] = &[
    ("edit", 830),
    ("create", 60),
    ("newusers", 35),
    ("upload", 25),
    ("delete", 20),
    ("move", 15),
    ("block", 10),
    ("protect", 5),
];

const NAMESPACES: &[(&str, u64)] = &[
    ("Main", 650),
    ("User", 80),
    ("User talk", 80),
    ("Talk", 60),
    ("Wikipedia", 40),
    ("File", 30),
    ("Template", 20),
    ("Category", 20),
    ("Wikipedia talk", 10),
    ("Draft", 10),
];

/// (country, weight, [(city, region, lat, lon)]).
type Place = (&'static str, &'static str, f64, f64);
const COUNTRIES: &[(&str, u64, &[Place])] = &[
    (
        "United States",
        300,
        &[
            ("New York", "New York", 40.71, -74.01),
            ("Chicago", "Illinois", 41.88, -87.63),
            ("Austin", "Texas", 30.27, -97.74),
            ("", "", 37.75, -97.82),
        ],
    ),
    (
        "United Kingdom",
        90,
        &[
            ("London", "England", 51.51, -0.13),
            ("Leeds", "England", 53.80, -1.55),
        ],
    ),
    (
        "India",
        90,
        &[
            ("Mumbai", "Maharashtra", 19.08, 72.88),
            ("Chennai", "Tamil Nadu", 13.08, 80.27),
        ],
    ),
    ("Canada", 50, &[("Toronto", "Ontario", 43.65, -79.38)]),
    ("Australia", 45, &[("Sydney", "New South Wales", -33.87, 151.21)]),
    (
        "Germany",
        40,
        &[
            ("Munich", "Bavaria", 48.14, 11.58),
            ("Berlin", "Berlin", 52.52, 13.40),
        ],
    ),
    ("Philippines", 35, &[("Manila", "Metro Manila", 14.60, 120.98)]),
    ("Pakistan", 20, &[("Lahore", "Punjab", 31.55, 74.34)]),
    ("Ireland", 15, &[("Dublin", "Leinster", 53.35, -6.26)]),
    ("France", 20, &[("Paris", "Île-de-France", 48.86, 2.35)]),
    ("Netherlands", 15, &[("Amsterdam", "North Holland", 52.37, 4.90)]),
    ("Brazil", 15, &[("São Paulo", "São Paulo", -23.55, -46.63)]),
    (
        "South Africa",
        12,
        &[("Cape Town", "Western Cape", -33.92, 18.42)],
    ),
    ("New Zealand", 10, &[("Auckland", "Auckland", -36.85, 174.76)]),
    ("Nigeria", 10, &[("Lagos", "Lagos", 6.52, 3.38)]),
    ("Indonesia", 10, &[("Jakarta", "Jakarta", -6.21, 106.85)]),
    ("Malaysia", 8, &[("Kuala Lumpur", "Kuala Lumpur", 3.15, 101.69)]),
    ("Sweden", 8, &[("Stockholm", "Stockholm", 59.33, 18.07)]),
    ("Japan", 8, &[("Tokyo", "Tokyo", 35.68, 139.69)]),
    ("Mexico", 8, &[("Mexico City", "Mexico City", 19.43, -99.13)]),
    ("Côte d'Ivoire", 2, &[("Abidjan", "Lagunes", 5.36, -4.01)]),
    ("Hong Kong", 5, &[("", "", 22.32, 114.17)]),
];

const TITLE_A: &[&str] = &[
    "St. Andre Bessette",
    "History of",
    "List of",
    "Battle of",
    "University of",
    "Geography of",
    "Economy of",
    "Culture of",
    "Politics of",
    "River",
    "Mount",
    "Church of",
];
const TITLE_B: &[&str] = &[
    "Munich",
    "Bavaria",
    "Ontario",
    "the Rhine",
    "Mumbai",
    "Lagos",
    "Catholic Secondary School",
    "Python (programming language)",
    "Apache Storm",
    "Wikipedia",
    "Sydney",
    "Dublin",
    "the Andes",
    "Jazz",
    "Chess",
    "Football in Brazil",
];
const USERS: &[&str] = &[
    "Frietjes",
    "Materialscientist",
    "Ser Amantio di Nicolao",
    "BrownHairedGirl",
    "Koavf",
    "Dr. Blofeld",
    "Rich Farmbrough",
    "Johnpacklambert",
    "Bearcat",
    "Ritchie333",
    "Ymblanter",
    "Jytdog",
    "Crisco 1492",
    "Lugnuts",
    "Anomie",
];
const BOTS: &[&str] = &[
    "ClueBot NG",
    "Cydebot",
    "AnomieBOT",
    "InternetArchiveBot",
    "Citation bot",
    "Yobot",
    "BattyBot",
];
const SUMMARIES: &[&str] = &[
    "replace with infobox school per TfD",
    "",
    "/* History */ fixed typo",
    "Reverted edits by an unregistered user",
    "copyedit",
    "Added citation",
    "Rescuing 1 sources and tagging 0 as dead.",
    "/* Early life */ expanded",
    "Undid revision",
    "Category:Living people",
    "clean up, added orphan tag",
    "Reply #wikiloop",
    "ping @Koavf",
];

impl DataSet {
    /// The data set of `seed`, without malformed messages.
    pub fn new(seed: u64) -> Self {
        DataSet {
            seed,
            malformed_every: None,
        }
    }

    /// Makes every `k`-th message (indices `k-1`, `2k-1`, …) malformed; `0` turns it off.
    pub fn with_malformed_every(self, k: u64) -> Self {
        DataSet {
            malformed_every: (k > 0).then_some(k),
            ..self
        }
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Whether message `index` is one of the injected malformed ones.
    pub fn is_malformed(&self, index: u64) -> bool {
        self.malformed_every.is_some_and(|k| (index + 1) % k == 0)
    }

    /// Message `index`.
    pub fn message(&self, index: u64) -> Message {
        let edit = self.edit(index);
        let Some(k) = self.malformed_every.filter(|_| self.is_malformed(index)) else {
            return Message::Event(Box::new(edit));
        };
        let kind = match (index / k) % 4 {
            0 => MalformedKind::Truncated,
            1 => MalformedKind::NotJson,
            2 => MalformedKind::NotAnObject,
            _ => MalformedKind::MissingFields,
        };
        let text = match kind {
            MalformedKind::Truncated => {
                let mut full = to_json(&edit);
                let mut cut = full.len() / 2;
                while !full.is_char_boundary(cut) {
                    cut -= 1;
                }
                full.truncate(cut);
                // Never ends like a whole object, so even a shape check catches it.
                while full.ends_with('}') {
                    full.pop();
                }
                full
            }
            MalformedKind::NotJson => format!("<html><body>502 Bad Gateway (message {index})</body></html>"),
            MalformedKind::NotAnObject => format!("[\"edit\", {index}]"),
            MalformedKind::MissingFields => {
                format!(
                    "{{\"page_title\": {}, \"rev_id\": \"{}\"}}",
                    json_str(&edit.page_title),
                    edit.rev_id
                )
            }
        };
        Message::Malformed { text, kind }
    }

    /// The text of message `index` as the feed sends it: one JSON object per event.
    pub fn text(&self, index: u64) -> String {
        match self.message(index) {
            Message::Event(e) => to_json(&e),
            Message::Malformed { text, .. } => text,
        }
    }

    /// Event `index` (ignoring malformation).
    pub fn edit(&self, index: u64) -> Edit {
        // Both inputs go through the finaliser so that neighbouring indices start far apart.
        let mut d = Draws(mix(mix(index ^ 0x5155_4C4C) ^ self.seed));
        let action = d.weighted(ACTIONS);
        let is_anon = action != "newusers" && d.chance(205);
        let is_bot = !is_anon && d.chance(90);
        let is_new = action == "create";
        let content = action == "edit" || is_new;
        let is_minor = action == "edit" && d.chance(if is_bot { 600 } else { 250 });
        let is_unpatrolled = content && !is_bot && d.chance(if is_anon { 300 } else { 40 });
        let ns = if action == "newusers" {
            "User"
        } else {
            d.weighted(NAMESPACES)
        };
        let change_size = if !content {
            None
        } else if is_new {
            Some(100 + d.below(30_000) as i64)
        } else {
            // Roughly log-uniform magnitude (most edits are small, a few huge), in integers
            // so that no platform's floating point can change the data set.
            let scale = [10, 100, 1_000, 20_000][d.below(4) as usize];
            let magnitude = 1 + d.below(scale) as i64;
            Some(if d.chance(300) { -magnitude } else { magnitude })
        };
        let flags = content.then(|| {
            let mut f = String::new();
            if is_unpatrolled {
                f.push('!');
            }
            if is_new {
                f.push('N');
            }
            if is_minor {
                f.push('M');
            }
            if is_bot {
                f.push('B');
            }
            f
        });
        let user = if is_anon {
            if d.chance(100) {
                format!(
                    "2a02:{:x}:{:x}::{:x}",
                    d.below(0xffff),
                    d.below(0xffff),
                    d.below(0xffff)
                )
            } else {
                format!(
                    "{}.{}.{}.{}",
                    1 + d.below(223),
                    d.below(256),
                    d.below(256),
                    1 + d.below(254)
                )
            }
        } else if is_bot {
            d.pick(BOTS).to_owned()
        } else if action == "newusers" {
            format!("NewEditor{}", d.below(1_000_000))
        } else {
            d.pick(USERS).to_owned()
        };
        let geo_ip = (is_anon && !d.chance(30)).then(|| {
            let weights: Vec<(usize, u64)> = COUNTRIES.iter().enumerate().map(|(i, c)| (i, c.1)).collect();
            let (country, _, places) = COUNTRIES[d.weighted(&weights)];
            let (city, region, lat, lon) = d.pick(places);
            GeoIp {
                city,
                country_name: country,
                latitude: lat,
                longitude: lon,
                region_name: region,
            }
        });
        let page_title = match ns {
            "Main" => format!("{} {}", d.pick(TITLE_A), d.pick(TITLE_B)),
            "User" | "User talk" => format!("{ns}:{}", user),
            other => format!("{other}:{} {}", d.pick(TITLE_A), d.pick(TITLE_B)),
        };
        let summary = d.pick(SUMMARIES);
        let hashtags = if summary.contains('#') {
            vec!["#wikiloop".to_owned()]
        } else {
            Vec::new()
        };
        let mentions = if summary.contains('@') {
            vec!["Koavf".to_owned()]
        } else {
            Vec::new()
        };
        let rev = 660_000_000 + index.wrapping_mul(7) % 300_000_000 + d.below(7);
        let parent = if is_new || !content {
            0
        } else {
            rev.saturating_sub(1 + d.below(5_000_000))
        };
        let url = if content {
            format!("http://en.wikipedia.org/w/index.php?diff={rev}&oldid={parent}")
        } else {
            format!("http://en.wikipedia.org/wiki/Special:Log/{action}")
        };
        Edit {
            action,
            change_size,
            flags,
            hashtags,
            is_anon,
            is_bot,
            is_minor,
            is_new,
            is_unpatrolled,
            mentions,
            ns,
            page_title,
            parent_rev_id: parent.to_string(),
            rev_id: rev.to_string(),
            summary,
            url,
            user,
            geo_ip,
        }
    }
}

fn to_json(edit: &Edit) -> String {
    // Serialising plain strings, numbers and booleans cannot fail.
    serde_json::to_string(edit).unwrap_or_default()
}

fn json_str(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// The counter keys the talk's `jsonParser` derives from an event, in its order:
/// `isanon_<True|False>` (Python's `str` of a boolean), `anon_anon` or `anon_loggedin`,
/// `bot_bot` or `bot_human`, `action_<action>`, and `country_<name>` when `geo_ip` is set.
///
/// Written independently of the `json-keys` bolt, so tests can check one against the other.
pub fn talk_keys(edit: &Edit) -> Vec<String> {
    let py = |b: bool| if b { "True" } else { "False" };
    let mut keys = vec![
        format!("isanon_{}", py(edit.is_anon)),
        if edit.is_anon {
            "anon_anon"
        } else {
            "anon_loggedin"
        }
        .to_owned(),
        if edit.is_bot { "bot_bot" } else { "bot_human" }.to_owned(),
        format!("action_{}", edit.action),
    ];
    if let Some(g) = &edit.geo_ip {
        keys.push(format!("country_{}", g.country_name));
    }
    keys
}

/// What the talk's `RedisBolt` leaves in Redis for a set of keys: sorted set → member →
/// score. `action_<a>` counts under `actions` (its `action` set holds timestamps, so it is
/// not counted here); every other `category_value` counts under `category`.
pub fn expected_counts<'a>(
    keys: impl IntoIterator<Item = &'a str>,
) -> std::collections::BTreeMap<String, std::collections::BTreeMap<String, u64>> {
    let mut out: std::collections::BTreeMap<String, std::collections::BTreeMap<String, u64>> =
        Default::default();
    for key in keys {
        let Some((category, value)) = key.split_once('_') else {
            continue;
        };
        let set = if category == "action" { "actions" } else { category };
        *out.entry(set.to_owned())
            .or_default()
            .entry(value.to_owned())
            .or_default() += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn deterministic_per_seed_and_index() {
        let a = DataSet::new(7);
        let b = DataSet::new(7);
        for i in [0, 1, 2, 999, 123_456_789] {
            assert_eq!(a.edit(i), b.edit(i));
            assert_eq!(a.text(i), b.text(i));
        }
        assert_ne!(a.text(0), DataSet::new(8).text(0), "seeds differ");
        assert_ne!(a.text(0), a.text(1), "indices differ");
    }

    /// Pinned: the data set is "bundled": the same seed gives the same events in every
    /// build, so expected counts written down anywhere stay true.
    #[test]
    fn first_thousand_messages_are_pinned() {
        let e = DataSet::new(DEFAULT_SEED).edit(0);
        let keys = talk_keys(&e);
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for i in 0..1000 {
            for b in DataSet::new(DEFAULT_SEED).text(i).bytes() {
                h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
            }
        }
        assert!(!keys.is_empty());
        assert_eq!(h, PINNED_FNV, "the data set of the default seed changed");
    }
    const PINNED_FNV: u64 = 14_964_643_391_500_601_100;

    #[test]
    fn proportions_are_realistic() {
        let d = DataSet::new(DEFAULT_SEED);
        let n = 100_000u64;
        let (mut anon, mut bot, mut geo, mut edit, mut create, mut minor) = (0, 0, 0, 0, 0, 0);
        for i in 0..n {
            let e = d.edit(i);
            anon += u64::from(e.is_anon);
            bot += u64::from(e.is_bot);
            geo += u64::from(e.geo_ip.is_some());
            edit += u64::from(e.action == "edit");
            create += u64::from(e.action == "create");
            minor += u64::from(e.is_minor);
            assert_eq!(e.is_new, e.action == "create");
            assert!(!(e.is_anon && e.is_bot));
            assert!(e.geo_ip.is_none() || e.is_anon);
            assert_eq!(e.change_size.is_some(), e.flags.is_some());
            if let Some(f) = &e.flags {
                assert_eq!(f.contains('M'), e.is_minor);
                assert_eq!(f.contains('B'), e.is_bot);
            }
        }
        let pct = |x: u64| 100.0 * x as f64 / n as f64;
        assert!((18.0..22.0).contains(&pct(anon)), "anon {}", pct(anon));
        assert!((5.0..10.0).contains(&pct(bot)), "bot {}", pct(bot));
        assert!((80.0..86.0).contains(&pct(edit)), "edit {}", pct(edit));
        assert!((4.0..8.0).contains(&pct(create)), "create {}", pct(create));
        assert!(geo > anon * 95 / 100 && geo < anon, "geo {geo} of {anon}");
        assert!((15.0..30.0).contains(&pct(minor)), "minor {}", pct(minor));
    }

    #[test]
    fn events_have_the_talk_schema() {
        let text = DataSet::new(1).text(3);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let o = v.as_object().unwrap();
        for k in [
            "action",
            "change_size",
            "flags",
            "hashtags",
            "is_anon",
            "is_bot",
            "is_minor",
            "is_new",
            "is_unpatrolled",
            "mentions",
            "ns",
            "page_title",
            "parent_rev_id",
            "rev_id",
            "summary",
            "url",
            "user",
        ] {
            assert!(o.contains_key(k), "{k} missing in {text}");
        }
        assert!(o["rev_id"].is_string() && o["hashtags"].is_array() && o["is_anon"].is_boolean());
        // geo_ip.country_name on anonymous edits.
        let d = DataSet::new(1);
        let anon = (0..1000).map(|i| d.edit(i)).find(|e| e.geo_ip.is_some()).unwrap();
        let v: serde_json::Value = serde_json::from_str(&to_json(&anon)).unwrap();
        assert!(v["geo_ip"]["country_name"].is_string());
        assert_eq!(v["is_anon"], true);
    }

    #[test]
    fn malformed_every_k() {
        let d = DataSet::new(3).with_malformed_every(10);
        let bad: Vec<u64> = (0..40).filter(|&i| d.is_malformed(i)).collect();
        assert_eq!(bad, [9, 19, 29, 39]);
        let kinds: Vec<MalformedKind> = bad
            .iter()
            .map(|&i| match d.message(i) {
                Message::Malformed { kind, text } => {
                    assert_eq!(
                        serde_json::from_str::<serde_json::Value>(&text).is_ok(),
                        kind.is_valid_json()
                    );
                    kind
                }
                Message::Event(_) => panic!("{i} is not malformed"),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                MalformedKind::Truncated,
                MalformedKind::NotJson,
                MalformedKind::NotAnObject,
                MalformedKind::MissingFields
            ]
        );
        assert!(matches!(d.message(8), Message::Event(_)));
        assert!(!DataSet::new(3).is_malformed(9));
    }

    #[test]
    fn talk_keys_and_expected_counts() {
        let mut e = DataSet::new(1).edit(0);
        e.is_anon = true;
        e.is_bot = false;
        e.action = "edit";
        e.geo_ip = Some(GeoIp {
            city: "",
            country_name: "United States",
            latitude: 0.0,
            longitude: 0.0,
            region_name: "",
        });
        let keys = talk_keys(&e);
        assert_eq!(
            keys,
            [
                "isanon_True",
                "anon_anon",
                "bot_human",
                "action_edit",
                "country_United States"
            ]
        );
        let c = expected_counts(keys.iter().map(String::as_str).chain(["action_edit"]));
        assert_eq!(c["actions"]["edit"], 2);
        assert_eq!(c["country"]["United States"], 1);
        assert_eq!(c["isanon"]["True"], 1);
        assert!(!c.contains_key("action"));
    }
}
