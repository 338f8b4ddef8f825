//! The Agent Registry Service (draft §3.3–3.5, ADR 0015): authenticated registration on the
//! agent aggregate (the rules are the ACA's, `accord_authority::registrar`), records that
//! follow their credentials (the `registry` projection), and least-privilege discovery: the
//! policy's filter for the requester narrows the index, and each record of a page is checked
//! again by the PDP, so a requester sees exactly what `accord.discovery` allows it, and
//! nothing of the rest (no counts, no cursor into it, the same 404 for a hidden record as
//! for none).

pub mod card;
pub mod directory;
pub mod http;
pub mod page;
pub mod pg;
pub mod query;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

use accord_authority::Authority;
use accord_authority::registrar::Registrant;
use accord_events::catalogue::{CardFields, Endpoint, Skill, Visibility};
use accord_policy::Pdp;
use accord_policy::inputs::{DiscoveryInput, DiscoveryQuery, DiscoveryRecord, Requester};
use accord_store::projection::runner::ProjectionHandle;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use directory::{Directory, Entry};
pub use query::{Filter, Query, SearchRequest, Visible};

/// Longest a query waits for `min_seq`.
pub const MAX_WAIT: Duration = Duration::from_secs(2);

/// Who asks the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// An agent of this domain, by its credential.
    Agent(Registrant),
    /// The domain's operator (the admin token).
    Operator,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{0}")]
    BadRequest(String),
    #[error("the page token is not valid for this query")]
    BadPageToken,
    #[error("no such agent")]
    NotFound,
    #[error("the requester's credential is not live: {0}")]
    CredentialNotLive(&'static str),
    #[error("the registry has applied sequence {applied}, not yet {wanted}")]
    Stale { applied: u64, wanted: u64 },
    #[error("a dependency is unavailable: {0}")]
    Unavailable(String),
}

/// A record as a requester sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordView {
    pub agent_id: String,
    pub spiffe_id: String,
    pub domain: String,
    pub name: String,
    pub description: String,
    pub status: String,
    /// The capabilities the policy shows this requester.
    pub capabilities: Vec<String>,
    pub skills: Vec<Skill>,
    pub endpoints: Vec<Endpoint>,
    pub card: CardFields,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    pub visibility: Visibility,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    pub credential_serial: String,
    /// The log position of the record's last change.
    pub seq: u64,
}

impl RecordView {
    fn of(e: &Entry, capabilities: Vec<String>) -> Self {
        Self {
            agent_id: e.agent_id.clone(),
            spiffe_id: e.spiffe_id.clone(),
            domain: e.domain.to_string(),
            name: e.name.clone(),
            description: e.description.clone(),
            status: e.status.clone(),
            capabilities,
            skills: e.skills.clone(),
            endpoints: e.endpoints.clone(),
            card: e.card.clone(),
            owner: e.owner.clone(),
            visibility: e.visibility,
            team: e.team.clone(),
            credential_serial: e.credential_serial.clone(),
            seq: e.seq,
        }
    }
}

/// A page of a discovery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchResponse {
    pub agents: Vec<RecordView>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
    /// The log position the answer reflects.
    pub seq: u64,
}

/// One record for one requester.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShowResponse {
    pub agent: RecordView,
    /// The log position the answer reflects.
    pub seq: u64,
}

/// Least-privilege discovery over a directory: the policy's filter for the requester, then
/// the policy again for each record of the page.
pub struct Discovery {
    pub pdp: Pdp,
    pub directory: Arc<dyn directory::Index>,
    /// The runner feeding the directory (its position; "at least sequence N"), when there is
    /// one.
    pub projection: Option<ProjectionHandle>,
    pages: page::PageTokens,
    domain: String,
}

impl std::fmt::Debug for Discovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Discovery")
            .field("domain", &self.domain)
            .finish_non_exhaustive()
    }
}

/// The registry of one domain.
pub struct Registry {
    pub authority: Arc<Authority>,
    pub discovery: Discovery,
    /// The read models the requester's credential and owner are looked up in.
    pub credentials: ProjectionHandle,
    pub registry_rows: ProjectionHandle,
    domain: String,
    /// Where registrations are sent (`https://host:port`): the audience of WIT proofs.
    pub public_url: String,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("domain", &self.domain)
            .finish_non_exhaustive()
    }
}

fn unavailable(e: impl std::fmt::Display) -> RegistryError {
    RegistryError::Unavailable(e.to_string())
}

impl Registry {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        authority: Arc<Authority>,
        pdp: Pdp,
        directory: Arc<dyn directory::Index>,
        projection: ProjectionHandle,
        credentials: ProjectionHandle,
        registry_rows: ProjectionHandle,
        domain: &str,
        public_url: &str,
    ) -> Self {
        let pages = page::PageTokens::new(authority.shared_mac_key("registry-page-token"));
        Self {
            authority,
            discovery: Discovery::new(pdp, directory, Some(projection), pages, domain),
            credentials,
            registry_rows,
            domain: domain.to_owned(),
            public_url: public_url.trim_end_matches('/').to_owned(),
        }
    }

    /// One page of a discovery by `caller`.
    pub async fn search(
        &self,
        caller: &Caller,
        req: &SearchRequest,
    ) -> Result<SearchResponse, RegistryError> {
        // a malformed query is refused before anything is looked up
        req.query()
            .map_err(|e| RegistryError::BadRequest(e.to_string()))?;
        let requester = self.requester(caller).await?;
        self.discovery.search(&requester, req).await
    }

    /// One record for `caller` (see [`Discovery::show`]).
    pub async fn show(
        &self,
        caller: &Caller,
        agent_id: &str,
        min_seq: Option<u64>,
    ) -> Result<ShowResponse, RegistryError> {
        let requester = self.requester(caller).await?;
        self.discovery.show(&requester, agent_id, min_seq).await
    }

    /// The signed A2A card of a record the caller may see (see [`card`]), with the record's
    /// status and the position it reflects.
    pub async fn card(
        &self,
        caller: &Caller,
        agent_id: &str,
        detail: card::Detail,
    ) -> Result<(serde_json::Value, String, u64), RegistryError> {
        let requester = self.requester(caller).await?;
        let (e, shown, seq) = self.discovery.visible(&requester, agent_id, None).await?;
        let unsigned = card::build(&e, &shown, seq, &self.public_url, detail);
        let signed = card::sign(unsigned, |p| {
            self.authority
                .sign_detached("JOSE", p)
                .map_err(|e| e.to_string())
        })
        .map_err(unavailable)?;
        Ok((signed, e.status.clone(), seq))
    }

    /// The requester as the discovery policy sees it. An agent's credential must be live in
    /// the credentials read model; its owner is the one its provisioning record holds.
    pub async fn requester(&self, caller: &Caller) -> Result<Requester, RegistryError> {
        match caller {
            Caller::Operator => Ok(Requester {
                id: "operator:admin-token".into(),
                domain: self.domain.clone(),
                caller_type: Some("operator".into()),
                ..Default::default()
            }),
            Caller::Agent(r) => {
                let cred = self
                    .credentials
                    .store()
                    .get("credentials", "credentials", r.serial.as_str())
                    .await
                    .map_err(unavailable)?
                    .ok_or(RegistryError::CredentialNotLive("unknown credential"))?;
                let field = |f: &str| cred.get(f).and_then(Value::as_str).unwrap_or_default();
                if field("agent_id") != r.agent_id.to_string() {
                    return Err(RegistryError::CredentialNotLive(
                        "another agent's credential",
                    ));
                }
                match field("status") {
                    "valid" => {}
                    "revoked" => return Err(RegistryError::CredentialNotLive("revoked")),
                    _ => return Err(RegistryError::CredentialNotLive("expired")),
                }
                let expired = accord_events::Timestamp::parse(field("not_after"))
                    .map(|t| t <= accord_events::Timestamp::now())
                    .unwrap_or(true);
                if expired {
                    return Err(RegistryError::CredentialNotLive("expired"));
                }
                let row = self
                    .registry_rows
                    .store()
                    .get("registry", "agents", &r.agent_id.to_string())
                    .await
                    .map_err(unavailable)?;
                let owner = row
                    .as_ref()
                    .and_then(|r| r.get("owner"))
                    .and_then(directory::owner_key);
                Ok(Requester {
                    id: r.spiffe_id.to_string(),
                    domain: self.domain.clone(),
                    owner,
                    teams: Vec::new(),
                    capabilities: cred
                        .get("capabilities")
                        .and_then(|c| serde_json::from_value(c.clone()).ok())
                        .unwrap_or_default(),
                    caller_type: Some("agent".into()),
                })
            }
        }
    }
}

impl Discovery {
    pub fn new(
        pdp: Pdp,
        directory: Arc<dyn directory::Index>,
        projection: Option<ProjectionHandle>,
        pages: page::PageTokens,
        domain: &str,
    ) -> Self {
        Self {
            pdp,
            directory,
            projection,
            pages,
            domain: domain.to_owned(),
        }
    }

    /// Waits until the directory reflects `min_seq` (at most [`MAX_WAIT`]).
    async fn at_least(&self, min_seq: Option<u64>) -> Result<(), RegistryError> {
        let Some(wanted) = min_seq else {
            return Ok(());
        };
        let applied = self.directory.seq().await?;
        if applied >= wanted {
            return Ok(());
        }
        let stale = RegistryError::Stale { applied, wanted };
        match &self.projection {
            Some(p) => p
                .wait_for(wanted, MAX_WAIT)
                .await
                .map(|_| ())
                .map_err(|_| stale),
            None => Err(stale),
        }
    }

    /// The per-record decision: whether `requester` may see `e`, and which capabilities.
    async fn decide(
        &self,
        requester: &Requester,
        sought: &[String],
        e: &Entry,
    ) -> Result<Option<Vec<String>>, RegistryError> {
        let input = DiscoveryInput {
            requester: requester.clone(),
            query: DiscoveryQuery {
                capabilities: sought.to_vec(),
            },
            record: record_input(e),
        };
        let input = serde_json::to_value(&input).map_err(unavailable)?;
        let d = self
            .pdp
            .decide("discovery", &input)
            .await
            .map_err(unavailable)?;
        Ok(d.is_allowed().then(|| d.result_set("capabilities")))
    }

    /// What `requester` may see, as predicates for the directory, and the bundle it is from.
    async fn visibility(
        &self,
        requester: &Requester,
        sought: &[String],
    ) -> Result<(Visible, String), RegistryError> {
        let input = serde_json::json!({
            "requester": requester,
            "query": {"capabilities": sought},
        });
        let d = self
            .pdp
            .decide("discovery_filter", &input)
            .await
            .map_err(unavailable)?;
        let bundle = format!(
            "{}:{}:{}",
            d.bundle().name,
            d.bundle().version,
            d.bundle().digest
        );
        if !d.is_allowed() {
            return Ok((Visible::default(), bundle));
        }
        Ok((Visible::of_result(d.result()), bundle))
    }

    /// One page of a discovery.
    pub async fn search(
        &self,
        requester: &Requester,
        req: &SearchRequest,
    ) -> Result<SearchResponse, RegistryError> {
        let (q, size) = req
            .query()
            .map_err(|e| RegistryError::BadRequest(e.to_string()))?;
        self.at_least(req.min_seq).await?;
        let (visible, bundle) = self.visibility(requester, &q.capabilities).await?;
        let binding_doc = accord_events::canonical::canonical_bytes(&req.binding())
            .map_err(|e| RegistryError::BadRequest(e.to_string()))?;
        let binding = page::binding(&[&binding_doc, requester.id.as_bytes(), bundle.as_bytes()]);
        let cursor = match &req.page_token {
            Some(t) => Some(
                self.pages
                    .check(t, &binding)
                    .map_err(|_| RegistryError::BadPageToken)?,
            ),
            None => None,
        };
        let mut after = cursor.map(|c| c.last);
        let mut page: Vec<(Arc<Entry>, Vec<String>)> = Vec::with_capacity(size + 1);
        let mut seq = 0;
        // candidates in batches, each re-checked by the PDP, until one more than a page is
        // allowed (so that a next page is announced only when a visible record follows)
        loop {
            let want = size + 1 - page.len();
            let (candidates, at) = self.directory.scan(&q, &visible, after, want).await?;
            seq = seq.max(at);
            let exhausted = candidates.len() < want;
            for e in candidates {
                after = Some(e.key);
                if let Some(shown) = self.decide(requester, &q.capabilities, &e).await? {
                    page.push((e, shown));
                }
            }
            if page.len() > size || exhausted {
                break;
            }
        }
        let next_page_token = (page.len() > size).then(|| {
            page.truncate(size);
            let last = page.last().map_or(0, |(e, _)| e.key);
            self.pages.make(
                page::Cursor {
                    seq: cursor.map_or(seq, |c| c.seq),
                    last,
                },
                &binding,
            )
        });
        Ok(SearchResponse {
            agents: page
                .into_iter()
                .map(|(e, shown)| RecordView::of(&e, shown))
                .collect(),
            next_page_token,
            seq,
        })
    }

    /// One record, when the requester may see it; `NotFound` alike for a record that does
    /// not exist and one it may not see (the same policy call runs in both cases).
    pub async fn show(
        &self,
        requester: &Requester,
        agent_id: &str,
        min_seq: Option<u64>,
    ) -> Result<ShowResponse, RegistryError> {
        let (e, shown, seq) = self.visible(requester, agent_id, min_seq).await?;
        Ok(ShowResponse {
            agent: RecordView::of(&e, shown),
            seq,
        })
    }

    /// The record of `agent_id` with the capabilities the policy shows `requester`, and the
    /// position read at; `NotFound` when it does not exist or is hidden.
    pub async fn visible(
        &self,
        requester: &Requester,
        agent_id: &str,
        min_seq: Option<u64>,
    ) -> Result<(Arc<Entry>, Vec<String>, u64), RegistryError> {
        self.at_least(min_seq).await?;
        let seq = self.directory.seq().await?;
        let entry = self.directory.get(agent_id).await?;
        let (e, exists) = match entry {
            Some(e) => (e, true),
            None => (Arc::new(absent(&self.domain)), false),
        };
        let shown = self.decide(requester, &[], &e).await?;
        match shown {
            Some(shown) if exists => Ok((e, shown, seq)),
            _ => Err(RegistryError::NotFound),
        }
    }
}

/// The record the policy is asked about for an id that does not exist: the same call as for
/// a hidden one (its answer is never used).
fn absent(domain: &str) -> Entry {
    let row = serde_json::json!({
        "agent_id": "00000000-0000-0000-0000-000000000000",
        "status": "absent",
        "registration": {"name": "absent", "capabilities": []},
    });
    Entry::of_row(&Arc::from(domain), &row).unwrap_or_else(|| unreachable!("a complete row"))
}

/// The record as the discovery policy sees it.
pub fn record_input(e: &Entry) -> DiscoveryRecord {
    DiscoveryRecord {
        agent_id: e.agent_id.clone(),
        domain: e.domain.to_string(),
        owner: e.owner.clone(),
        team: e.team.clone(),
        status: e.status.clone(),
        visibility: e.visibility.as_str().to_owned(),
        capabilities: e.capabilities.clone(),
    }
}
