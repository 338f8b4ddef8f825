//! Least-privilege discovery (ADR 0015): for random discovery settings, records, requesters
//! and queries, every answer (the records of each page, where pages end, the cursors) equals
//! what evaluating `accord.discovery` on every record of the whole directory allows, and
//! nothing of a hidden record is observable: not in results, not in a cursor, not by id.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::Arc;

use accord_events::catalogue::BundleFile;
use accord_events::catalogue::Visibility;
use accord_policy::inputs::{DiscoveryInput, DiscoveryQuery, Requester};
use accord_policy::{Bundle, BundleRef, LocalPdp, Pdp};
use accord_registry::page::PageTokens;
use accord_registry::pg::PgDirectory;
use accord_registry::query::STATUSES;
use accord_registry::{Directory, Discovery, Filter, RegistryError, SearchRequest};
use accord_store::projection::memory::RowObserver;
use accord_store::projection::postgres::{PgStore, PgTls};
use aws_lc_rs::hmac;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::{Value, json};

const CAPS: [&str; 5] = [
    "admin.reset",
    "calendar.read",
    "mail.send",
    "internal.audit",
    "x.y",
];
const OWNERS: [&str; 3] = ["idp#alice", "idp#bob", "idp#carol"];
const TEAMS: [&str; 2] = ["travel", "finance"];
const DOMAINS: [&str; 2] = ["org-a", "org-b"];

#[derive(Debug, Clone)]
struct Rec {
    id: u128,
    owner: Option<usize>,
    team: Option<usize>,
    visibility: Visibility,
    status: usize,
    caps: BTreeSet<usize>,
    /// A skill with this tag, when some.
    tag: Option<usize>,
    /// Which description.
    words: usize,
}

const TAGS: [&str; 3] = ["red", "blue", "green"];
const WORDS: [&str; 3] = [
    "Books alpha TRIPS",
    "plans beta flights",
    "gamma: 100%_off deals",
];
const TEXTS: [&str; 5] = ["trips", "FLIGHTS", "100%_", "a", "%"];

fn visibility() -> impl Strategy<Value = Visibility> {
    prop_oneof![
        Just(Visibility::Public),
        Just(Visibility::Domain),
        Just(Visibility::Team),
        Just(Visibility::Owner)
    ]
}

fn rec() -> impl Strategy<Value = Rec> {
    (
        any::<u128>(),
        proptest::option::of(0..OWNERS.len()),
        proptest::option::of(0..TEAMS.len()),
        visibility(),
        // mostly registered
        prop_oneof![4 => Just(0usize), 1 => 0..STATUSES.len()],
        proptest::collection::btree_set(0..CAPS.len(), 0..4),
        proptest::option::of(0..TAGS.len()),
        0..WORDS.len(),
    )
        .prop_map(
            |(id, owner, team, visibility, status, caps, tag, words)| Rec {
                // a version-7-like UUID (what agent ids are); any u128 is a valid UUID
                id,
                owner,
                team,
                visibility,
                status,
                caps,
                tag,
                words,
            },
        )
}

fn row(r: &Rec) -> Value {
    let id = uuid::Uuid::from_u128(r.id).to_string();
    let caps: Vec<&str> = r.caps.iter().map(|c| CAPS[*c]).collect();
    let mut audience = json!({"visibility": r.visibility});
    if let Some(t) = r.team {
        audience["team"] = TEAMS[t].into();
    }
    let mut reg = json!({
        "name": format!("agent-{}", r.id % 1000),
        "description": WORDS[r.words],
        "skills": r.tag.map(|t| vec![json!({"id": "s", "name": "n", "description": "d", "tags": [TAGS[t]]})]).unwrap_or_default(),
        "capabilities": caps,
        "credential_serial": "4a01",
        "endpoints": [],
        "audience": audience,
    });
    if let Some((issuer, subject)) = r.owner.map(|o| OWNERS[o].split_once('#').unwrap()) {
        reg["owner"] = json!({"issuer": issuer, "subject": subject, "kind": "id_token"});
    }
    json!({
        "agent_id": id,
        "spiffe_id": format!("spiffe://org-a.example/agent/{id}"),
        "status": STATUSES[r.status],
        "registration": reg,
        "last_seq": 10,
    })
}

#[derive(Debug, Clone)]
struct Who {
    domain: usize,
    owner: Option<usize>,
    operator: bool,
}

fn who() -> impl Strategy<Value = Who> {
    (
        0..DOMAINS.len(),
        proptest::option::of(0..OWNERS.len()),
        prop_oneof![6 => Just(false), 1 => Just(true)],
    )
        .prop_map(|(domain, owner, operator)| Who {
            domain,
            owner,
            operator,
        })
}

fn requester(w: &Who) -> Requester {
    Requester {
        id: "spiffe://org-a.example/agent/requester".into(),
        domain: DOMAINS[w.domain].into(),
        owner: w.owner.map(|o| OWNERS[o].into()),
        teams: Vec::new(),
        capabilities: Vec::new(),
        caller_type: Some(if w.operator { "operator" } else { "agent" }.into()),
    }
}

/// The library bundle with random discovery settings.
fn pdp(hidden: &BTreeSet<usize>, teams: &[(usize, usize)]) -> Pdp {
    let mut data: Value =
        serde_json::from_str(include_str!("../../policy/library/data.json")).unwrap();
    let hidden: Vec<&str> = hidden
        .iter()
        .map(|i| ["admin.", "internal.", "x."][*i])
        .collect();
    let mut by_owner = serde_json::Map::new();
    for (o, t) in teams {
        let e = by_owner
            .entry(OWNERS[*o].to_owned())
            .or_insert_with(|| json!([]));
        e.as_array_mut().unwrap().push(TEAMS[*t].into());
    }
    data["accord"]["settings"]["discovery"] = json!({"hidden_prefixes": hidden, "teams": by_owner});
    let files = accord_policy::library::FILES
        .iter()
        .map(|(path, content)| BundleFile {
            path: (*path).to_owned(),
            content: if *path == "data.json" {
                data.to_string()
            } else {
                (*content).to_owned()
            },
        })
        .collect();
    let b = Bundle::new("default", files).unwrap();
    let local = Arc::new(LocalPdp::new());
    local
        .load(
            &b,
            BundleRef {
                name: "default".into(),
                version: 1,
                digest: b.digest(),
                published_seq: 0,
            },
        )
        .unwrap();
    Pdp::local(local, None)
}

fn discovery(pdp: Pdp, recs: &[Rec]) -> Discovery {
    let dir = Arc::new(Directory::new("org-a"));
    let rows: Vec<(String, Value)> = recs
        .iter()
        .map(|r| (uuid::Uuid::from_u128(r.id).to_string(), row(r)))
        .collect();
    let changes: Vec<(&str, &str, Option<&Value>)> = rows
        .iter()
        .map(|(k, v)| ("agents", k.as_str(), Some(v)))
        .collect();
    dir.committed(1, &changes, 10);
    let key = hmac::Key::new(hmac::HMAC_SHA256, b"a test key of thirty-two bytes!!");
    Discovery::new(pdp, dir, None, PageTokens::new(key), "org-a")
}

/// What one case draws.
#[derive(Debug, Clone)]
struct Case {
    recs: Vec<Rec>,
    hidden: BTreeSet<usize>,
    teams: Vec<(usize, usize)>,
    w: Who,
    sought: BTreeSet<usize>,
    status: Option<usize>,
    tag: Option<usize>,
    text: Option<usize>,
    page_size: usize,
}

fn case() -> impl Strategy<Value = Case> {
    (
        proptest::collection::vec(rec(), 0..40),
        proptest::collection::btree_set(0..3usize, 0..3),
        proptest::collection::vec((0..OWNERS.len(), 0..TEAMS.len()), 0..4),
        who(),
        proptest::collection::btree_set(0..CAPS.len(), 0..2),
        proptest::option::of(0..STATUSES.len()),
        proptest::option::weighted(0.25, 0..TAGS.len()),
        proptest::option::weighted(0.25, 0..TEXTS.len()),
        1usize..6,
    )
        .prop_map(
            |(recs, hidden, teams, w, sought, status, tag, text, page_size)| Case {
                recs,
                hidden,
                teams,
                w,
                sought,
                status,
                tag,
                text,
                page_size,
            },
        )
}

/// Where the records are: the memory directory, or PostgreSQL's rows.
struct Backend {
    rt: tokio::runtime::Runtime,
    pg: Option<(accord_testkit::PgServer, Arc<PgStore>)>,
}

impl Backend {
    fn memory() -> Self {
        Self {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            pg: None,
        }
    }

    fn postgres() -> Self {
        let server = accord_testkit::PgServer::start();
        let url = server.create_database("registry");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let store = Arc::new(PgStore::new(&url, 4, &PgTls::dangerous_plaintext_local()).unwrap());
        rt.block_on(store.migrate()).unwrap();
        Self {
            rt,
            pg: Some((server, store)),
        }
    }

    fn discovery(&self, pdp: Pdp, recs: &[Rec]) -> Discovery {
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"a test key of thirty-two bytes!!");
        let pages = PageTokens::new(key);
        let Some((_, store)) = &self.pg else {
            return discovery(pdp, recs);
        };
        // the case's rows, as the PostgreSQL projection store keeps them (generation 1, active)
        self.rt.block_on(async {
            let c = store.connection().await.unwrap();
            c.batch_execute(
                "DELETE FROM accord_rows WHERE projection = 'registry';
                 DELETE FROM accord_projections WHERE name = 'registry';
                 INSERT INTO accord_projections (name, generation, checkpoint, active)
                 VALUES ('registry', 1, 10, true)",
            )
            .await
            .unwrap();
            for r in recs {
                let key = uuid::Uuid::from_u128(r.id).to_string();
                c.execute(
                    "INSERT INTO accord_rows (projection, generation, tbl, key, value, seq)
                     VALUES ('registry', 1, 'agents', $1, $2, 10)",
                    &[&key, &row(r)],
                )
                .await
                .unwrap();
            }
        });
        Discovery::new(
            pdp,
            Arc::new(PgDirectory::new(store.clone(), "org-a")),
            None,
            pages,
            "org-a",
        )
    }
}

/// Every answer for the case equals per-record evaluation of the policy.
fn check(backend: &Backend, c: Case) -> Result<(), TestCaseError> {
    let Case {
        recs,
        hidden,
        teams,
        w,
        sought,
        status,
        tag,
        text,
        page_size,
    } = c;
    // distinct ids
    let mut seen = BTreeSet::new();
    let recs: Vec<Rec> = recs.into_iter().filter(|r| seen.insert(r.id)).collect();
    let pdp = pdp(&hidden, &teams);
    let d = backend.discovery(pdp.clone(), &recs);
    let req = requester(&w);
    let sought: Vec<String> = sought.iter().map(|c| CAPS[*c].to_owned()).collect();
    let filter = Filter {
        capability: sought.clone(),
        status: status.map(|s| STATUSES[s].to_owned()).into_iter().collect(),
        tag: tag.map(|t| TAGS[t].to_owned()).into_iter().collect(),
        text: text.map(|t| TEXTS[t].to_owned()),
        ..Filter::default()
    };
    let rt = &backend.rt;

    // the reference: the policy on every record, in id order
    let mut ordered = recs.clone();
    ordered.sort_by_key(|r| r.id);
    let mut expected = Vec::new();
    for r in &ordered {
        if status.is_some_and(|s| s != r.status) {
            continue;
        }
        if tag.is_some_and(|t| r.tag != Some(t)) {
            continue;
        }
        let text_of = format!("agent-{}\n{}", r.id % 1000, WORDS[r.words]).to_lowercase();
        if text.is_some_and(|t| !text_of.contains(&TEXTS[t].to_lowercase())) {
            continue;
        }
        let e = accord_registry::Entry::of_row(&Arc::from("org-a"), &row(r)).unwrap();
        let input = DiscoveryInput {
            requester: req.clone(),
            query: DiscoveryQuery {
                capabilities: sought.clone(),
            },
            record: accord_registry::record_input(&e),
        };
        let dec = rt
            .block_on(pdp.decide("discovery", &serde_json::to_value(&input).unwrap()))
            .unwrap();
        if dec.is_allowed() {
            expected.push((e.agent_id.clone(), dec.result_set("capabilities")));
        }
    }

    // the registry, page by page
    let mut got = Vec::new();
    let mut token = None;
    let mut pages = 0;
    loop {
        let r = SearchRequest {
            filter: filter.clone(),
            page_size: Some(page_size),
            page_token: token.clone(),
            ..SearchRequest::default()
        };
        let page = rt.block_on(d.search(&req, &r)).unwrap();
        pages += 1;
        prop_assert!(page.agents.len() <= page_size);
        for a in &page.agents {
            got.push((a.agent_id.clone(), a.capabilities.clone()));
        }
        match page.next_page_token {
            Some(t) => {
                // a full page, and a visible record follows
                prop_assert_eq!(page.agents.len(), page_size);
                prop_assert!(got.len() < expected.len());
                // the cursor names the last record returned, nothing else
                let last = uuid::Uuid::parse_str(&page.agents.last().unwrap().agent_id)
                    .unwrap()
                    .as_u128();
                let raw =
                    base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, &t)
                        .unwrap();
                prop_assert_eq!(&raw[9..25], &last.to_be_bytes()[..]);
                // another requester cannot use it
                let mut other = req.clone();
                other.id = "spiffe://org-a.example/agent/other".into();
                let r2 = SearchRequest {
                    page_token: Some(t.clone()),
                    ..r.clone()
                };
                prop_assert!(matches!(
                    rt.block_on(d.search(&other, &r2)),
                    Err(RegistryError::BadPageToken)
                ));
                token = Some(t);
            }
            None => break,
        }
        prop_assert!(pages <= recs.len() + 1);
    }
    prop_assert_eq!(&got, &expected);

    // by id: a hidden record answers exactly as one that does not exist
    for r in &recs {
        let id = uuid::Uuid::from_u128(r.id).to_string();
        let shown = rt.block_on(d.show(&req, &id, None));
        // `show` asks for no capability in particular
        let e = accord_registry::Entry::of_row(&Arc::from("org-a"), &row(r)).unwrap();
        let input = DiscoveryInput {
            requester: req.clone(),
            query: DiscoveryQuery::default(),
            record: accord_registry::record_input(&e),
        };
        let allowed = rt
            .block_on(pdp.decide("discovery", &serde_json::to_value(&input).unwrap()))
            .unwrap()
            .is_allowed();
        match shown {
            Ok(s) => prop_assert!(allowed && s.agent.agent_id == id),
            Err(e) => prop_assert!(!allowed && matches!(e, RegistryError::NotFound)),
        }
    }
    let missing = rt.block_on(d.show(&req, "0193a4d2-7c1e-7b3a-9f00-000000000000", None));
    prop_assert!(matches!(missing, Err(RegistryError::NotFound)));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    #[test]
    fn every_answer_is_what_per_record_evaluation_allows(c in case()) {
        thread_local!(static B: Backend = Backend::memory());
        B.with(|b| check(b, c))?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, .. ProptestConfig::default() })]

    /// The same over PostgreSQL: the SQL the visibility and the query become, over the
    /// migration's indexes.
    #[test]
    fn postgres_answers_are_what_per_record_evaluation_allows(c in case()) {
        thread_local!(static B: Backend = Backend::postgres());
        B.with(|b| check(b, c))?;
    }
}
