//! The in-memory directory: the `registry` projection's records with the indexes discovery
//! needs (ADR 0015). It follows the memory store's committed batches ([`RowObserver`]), so it
//! is exactly as current as the projection, batch by batch; a rebuild fills a new generation
//! beside the active one and switches with the store.
//!
//! A query never walks the whole table unless nothing narrower exists: the visibility clauses
//! of the requester and each term of the query name index sets, the smallest group of sets
//! drives the scan (in agent-id order, from the cursor), and every candidate is checked
//! against all of it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use accord_events::catalogue::{CardFields, Endpoint, Skill, Visibility};
use accord_store::projection::memory::RowObserver;
use serde_json::Value;

use crate::query::{Clause, Query, Visible};

/// A record as discovery sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The agent id as a number: its order is the agent ids' order (hexadecimal UUIDs).
    pub key: u128,
    pub agent_id: String,
    pub spiffe_id: String,
    pub domain: Arc<str>,
    pub name: String,
    pub description: String,
    /// Lower-case name and description, what `text` searches.
    text: String,
    /// `<issuer>#<subject>` of the owner signed into the credential.
    pub owner: Option<String>,
    pub visibility: Visibility,
    pub team: Option<String>,
    /// `registered`, `revoked`, `expired`, `suspended`, `decommissioned`.
    pub status: String,
    pub capabilities: Vec<String>,
    pub skills: Vec<Skill>,
    pub endpoints: Vec<Endpoint>,
    pub card: CardFields,
    pub credential_serial: String,
    pub aibom_digest: Option<String>,
    /// The log position of the record's last change.
    pub seq: u64,
}

/// The owner's name in discovery: `<issuer>#<subject>`.
pub fn owner_key(owner: &Value) -> Option<String> {
    let issuer = owner.get("issuer")?.as_str()?;
    let subject = owner.get("subject")?.as_str()?;
    Some(format!("{issuer}#{subject}"))
}

/// The number of an agent id (a UUID), in the ids' order.
pub fn key_of(agent_id: &str) -> Option<u128> {
    uuid::Uuid::parse_str(agent_id).ok().map(|u| u.as_u128())
}

impl Entry {
    /// The entry of a `registry` row, when the agent ever registered.
    pub fn of_row(domain: &Arc<str>, row: &Value) -> Option<Self> {
        let reg = row.get("registration")?;
        let s = |v: &Value, f: &str| v.get(f).and_then(Value::as_str).map(str::to_owned);
        let agent_id = s(row, "agent_id")?;
        let name = s(reg, "name")?;
        let description = s(reg, "description").unwrap_or_default();
        let audience = reg.get("audience");
        let mut capabilities: Vec<String> = reg
            .get("capabilities")
            .and_then(|c| serde_json::from_value(c.clone()).ok())
            .unwrap_or_default();
        capabilities.sort();
        Some(Self {
            key: key_of(&agent_id)?,
            text: format!("{}\n{}", name.to_lowercase(), description.to_lowercase()),
            spiffe_id: s(row, "spiffe_id").unwrap_or_default(),
            domain: domain.clone(),
            owner: reg.get("owner").and_then(owner_key),
            visibility: audience
                .and_then(|a| a.get("visibility"))
                .and_then(|v| serde_json::from_value(v.clone()).ok())
                .unwrap_or_default(),
            team: audience.and_then(|a| s(a, "team")),
            status: s(row, "status").unwrap_or_default(),
            capabilities,
            skills: reg
                .get("skills")
                .and_then(|v| serde_json::from_value(v.clone()).ok())
                .unwrap_or_default(),
            endpoints: reg
                .get("endpoints")
                .and_then(|v| serde_json::from_value(v.clone()).ok())
                .unwrap_or_default(),
            card: reg
                .get("card")
                .and_then(|v| serde_json::from_value(v.clone()).ok())
                .unwrap_or_default(),
            credential_serial: s(reg, "credential_serial").unwrap_or_default(),
            aibom_digest: s(reg, "aibom_digest"),
            seq: row.get("last_seq").and_then(Value::as_u64).unwrap_or(0),
            agent_id,
            name,
            description,
        })
    }

    fn tags(&self) -> impl Iterator<Item = &String> {
        self.skills.iter().flat_map(|s| s.tags.iter())
    }

    /// Whether the query and the requester's visibility both admit this record (the
    /// per-record policy check comes after).
    pub fn admitted(&self, q: &Query, v: &Visible) -> bool {
        fn any<'a>(want: &[String], mut have: impl Iterator<Item = &'a String>) -> bool {
            want.is_empty() || have.any(|h| want.contains(h))
        }
        if !v.statuses.is_empty() && !v.statuses.contains(&self.status) {
            return false;
        }
        if !q.statuses.is_empty() && !q.statuses.contains(&self.status) {
            return false;
        }
        if !any(&q.skills, self.skills.iter().map(|s| &s.id))
            || !any(&q.tags, self.tags())
            || !any(&q.owners, self.owner.iter())
            || !(q.domains.is_empty() || q.domains.iter().any(|d| **d == *self.domain))
        {
            return false;
        }
        if q.after_seq.is_some_and(|s| self.seq <= s) {
            return false;
        }
        if let Some(t) = &q.text
            && !self.text.contains(t.as_str())
        {
            return false;
        }
        // at least one capability shown: not hidden, and sought when the query seeks any
        let shown = self.capabilities.iter().any(|c| {
            !v.hidden_prefixes.iter().any(|p| c.starts_with(p.as_str()))
                && (q.capabilities.is_empty() || q.capabilities.contains(c))
        });
        shown && v.clauses.iter().any(|c| self.matches(c))
    }

    fn matches(&self, c: &Clause) -> bool {
        c.visibility.is_none_or(|v| v == self.visibility)
            && c.domain.as_deref().is_none_or(|d| d == &*self.domain)
            && c.team
                .as_ref()
                .is_none_or(|t| self.team.as_ref() == Some(t))
            && c.owner
                .as_ref()
                .is_none_or(|o| self.owner.as_ref() == Some(o))
    }
}

type Set = BTreeSet<u128>;

#[derive(Debug, Default)]
struct Generation {
    entries: BTreeMap<u128, Arc<Entry>>,
    by_capability: HashMap<String, Set>,
    by_skill: HashMap<String, Set>,
    by_tag: HashMap<String, Set>,
    by_owner: HashMap<String, Set>,
    by_team: HashMap<String, Set>,
    by_visibility: HashMap<Visibility, Set>,
    by_status: HashMap<String, Set>,
    checkpoint: u64,
}

fn add(m: &mut HashMap<String, Set>, k: &str, key: u128) {
    m.entry(k.to_owned()).or_default().insert(key);
}

fn remove(m: &mut HashMap<String, Set>, k: &str, key: u128) {
    if let Some(s) = m.get_mut(k) {
        s.remove(&key);
        if s.is_empty() {
            m.remove(k);
        }
    }
}

impl Generation {
    fn put(&mut self, e: Entry) {
        self.delete(e.key);
        let k = e.key;
        for c in &e.capabilities {
            add(&mut self.by_capability, c, k);
        }
        for s in &e.skills {
            add(&mut self.by_skill, &s.id, k);
        }
        for t in e.tags() {
            add(&mut self.by_tag, t, k);
        }
        if let Some(o) = &e.owner {
            add(&mut self.by_owner, o, k);
        }
        if let Some(t) = &e.team {
            add(&mut self.by_team, t, k);
        }
        self.by_visibility
            .entry(e.visibility)
            .or_default()
            .insert(k);
        add(&mut self.by_status, &e.status, k);
        self.entries.insert(k, Arc::new(e));
    }

    fn delete(&mut self, k: u128) {
        let Some(e) = self.entries.remove(&k) else {
            return;
        };
        for c in &e.capabilities {
            remove(&mut self.by_capability, c, k);
        }
        for s in &e.skills {
            remove(&mut self.by_skill, &s.id, k);
        }
        for t in e.tags() {
            remove(&mut self.by_tag, t, k);
        }
        if let Some(o) = &e.owner {
            remove(&mut self.by_owner, o, k);
        }
        if let Some(t) = &e.team {
            remove(&mut self.by_team, t, k);
        }
        if let Some(s) = self.by_visibility.get_mut(&e.visibility) {
            s.remove(&k);
        }
        remove(&mut self.by_status, &e.status, k);
    }

    /// The index sets whose union holds every record `terms` admit (`None`: no set narrows
    /// it, every record is a candidate).
    fn group<'a>(&'a self, m: &'a HashMap<String, Set>, terms: &[String]) -> Option<Vec<&'a Set>> {
        (!terms.is_empty()).then(|| terms.iter().filter_map(|t| m.get(t)).collect())
    }

    fn visibility_group(&self, v: &Visible) -> Option<Vec<&Set>> {
        let mut sets = Vec::new();
        for c in &v.clauses {
            // the smallest set that holds every record the clause matches
            let named = [
                c.visibility.map(|v| self.by_visibility.get(&v)),
                c.team.as_ref().map(|t| self.by_team.get(t)),
                c.owner.as_ref().map(|o| self.by_owner.get(o)),
            ];
            let mut options = named.into_iter().flatten().peekable();
            // a clause that only names a domain, or none: every record
            options.peek()?;
            // a named value no record has: the clause matches nothing
            let options: Option<Vec<&Set>> = options.collect();
            if let Some(s) = options.and_then(|o| o.into_iter().min_by_key(|s| s.len())) {
                sets.push(s);
            }
        }
        Some(sets)
    }

    /// Up to `limit` records after `after` that the query and the visibility admit, in key
    /// order, and whether the scan stopped at `limit` (more may follow).
    fn scan(&self, q: &Query, v: &Visible, after: Option<u128>, limit: usize) -> Vec<Arc<Entry>> {
        if v.clauses.is_empty() {
            return Vec::new();
        }
        let statuses = if v.statuses.is_empty() {
            &q.statuses
        } else {
            &v.statuses
        };
        let groups = [
            self.group(&self.by_capability, &q.capabilities),
            self.group(&self.by_skill, &q.skills),
            self.group(&self.by_tag, &q.tags),
            self.group(&self.by_owner, &q.owners),
            self.group(&self.by_status, statuses),
            self.visibility_group(v),
        ];
        let driver = groups
            .into_iter()
            .flatten()
            .min_by_key(|g| g.iter().map(|s| s.len()).sum::<usize>());
        let from = after.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
        let range = (from, std::ops::Bound::Unbounded);
        let mut out = Vec::new();
        let mut take = |k: &u128| {
            if let Some(e) = self.entries.get(k)
                && e.admitted(q, v)
            {
                out.push(e.clone());
            }
            out.len() < limit
        };
        match driver {
            None => {
                for k in self.entries.range(range).map(|(k, _)| k) {
                    if !take(k) {
                        break;
                    }
                }
            }
            Some(sets) => {
                let mut union = Union::new(sets.iter().map(|s| s.range(range)).collect());
                while let Some(k) = union.next() {
                    if !take(&k) {
                        break;
                    }
                }
            }
        }
        out
    }
}

/// The union of sorted iterators, in order, without repeats.
struct Union<'a> {
    heads: Vec<std::iter::Peekable<std::collections::btree_set::Range<'a, u128>>>,
}

impl<'a> Union<'a> {
    fn new(ranges: Vec<std::collections::btree_set::Range<'a, u128>>) -> Self {
        Self {
            heads: ranges.into_iter().map(Iterator::peekable).collect(),
        }
    }

    fn next(&mut self) -> Option<u128> {
        let min = self
            .heads
            .iter_mut()
            .filter_map(|h| h.peek().map(|k| **k))
            .min()?;
        for h in &mut self.heads {
            if h.peek().is_some_and(|k| **k == min) {
                h.next();
            }
        }
        Some(min)
    }
}

#[derive(Debug, Default)]
struct State {
    generations: HashMap<u32, Generation>,
    active: Option<u32>,
}

/// The directory of one domain's registry (and, with federation, its peers').
#[derive(Debug)]
pub struct Directory {
    domain: Arc<str>,
    state: RwLock<State>,
}

impl Directory {
    pub fn new(domain: &str) -> Self {
        Self {
            domain: Arc::from(domain),
            state: RwLock::default(),
        }
    }

    fn read<T>(&self, f: impl FnOnce(Option<&Generation>) -> T) -> T {
        match self.state.read() {
            Ok(s) => f(s.active.and_then(|g| s.generations.get(&g))),
            Err(_) => f(None),
        }
    }

    /// The log position the directory reflects.
    pub fn seq(&self) -> u64 {
        self.read(|i| i.map_or(0, |i| i.checkpoint))
    }

    /// How many records it holds (for metrics and benchmarks; never shown to requesters).
    pub fn len(&self) -> usize {
        self.read(|i| i.map_or(0, |i| i.entries.len()))
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The record of an agent.
    pub fn get(&self, agent_id: &str) -> Option<Arc<Entry>> {
        let k = key_of(agent_id)?;
        self.read(|i| i.and_then(|i| i.entries.get(&k).cloned()))
    }

    /// Up to `limit` candidates after `after` (see [`Generation::scan`]), with the position they
    /// were read at.
    pub fn scan(
        &self,
        q: &Query,
        v: &Visible,
        after: Option<u128>,
        limit: usize,
    ) -> (Vec<Arc<Entry>>, u64) {
        self.read(|i| match i {
            Some(i) => (i.scan(q, v, after, limit), i.checkpoint),
            None => (Vec::new(), 0),
        })
    }
}

/// What discovery reads a directory through: the memory one, or PostgreSQL's (`pg.rs`).
#[async_trait::async_trait]
pub trait Index: Send + Sync + std::fmt::Debug {
    /// The record of an agent.
    async fn get(&self, agent_id: &str) -> Result<Option<Arc<Entry>>, crate::RegistryError>;
    /// Up to `limit` records after `after` that the query and the visibility admit, in key
    /// order, and the position they were read at. Fewer than `limit`: nothing more matches.
    async fn scan(
        &self,
        q: &Query,
        v: &Visible,
        after: Option<u128>,
        limit: usize,
    ) -> Result<(Vec<Arc<Entry>>, u64), crate::RegistryError>;
    /// The log position it reflects.
    async fn seq(&self) -> Result<u64, crate::RegistryError>;
}

#[async_trait::async_trait]
impl Index for Directory {
    async fn get(&self, agent_id: &str) -> Result<Option<Arc<Entry>>, crate::RegistryError> {
        Ok(Directory::get(self, agent_id))
    }

    async fn scan(
        &self,
        q: &Query,
        v: &Visible,
        after: Option<u128>,
        limit: usize,
    ) -> Result<(Vec<Arc<Entry>>, u64), crate::RegistryError> {
        Ok(Directory::scan(self, q, v, after, limit))
    }

    async fn seq(&self) -> Result<u64, crate::RegistryError> {
        Ok(Directory::seq(self))
    }
}

impl RowObserver for Directory {
    fn committed(
        &self,
        generation: u32,
        changes: &[(&str, &str, Option<&Value>)],
        checkpoint: u64,
    ) {
        let Ok(mut s) = self.state.write() else {
            return;
        };
        if s.active.is_none() {
            s.active = Some(generation);
        }
        let idx = s.generations.entry(generation).or_default();
        for (table, key, value) in changes {
            if *table != "agents" {
                continue;
            }
            match value.and_then(|v| Entry::of_row(&self.domain, v)) {
                Some(e) => idx.put(e),
                None => {
                    if let Some(k) = key_of(key) {
                        idx.delete(k);
                    }
                }
            }
        }
        idx.checkpoint = idx.checkpoint.max(checkpoint);
    }

    fn activated(&self, generation: u32) {
        if let Ok(mut s) = self.state.write() {
            s.active = Some(generation);
            s.generations.retain(|g, _| *g == generation);
        }
    }
}
