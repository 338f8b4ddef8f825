//! What a discovery asks (`POST /v1/registry/search`), and what the requester may see, as
//! the policy's filter decided it.
//!
//! The request: `{"filter": {...}, "order_by": "agent_id", "page_size": N, "page_token": T,
//! "after_seq": S, "min_seq": M}`. The filter is typed, not a language: each member is a list
//! of values the record must match one of (`capability`, `skill`, `tag`, `owner`, `domain`,
//! `status`), and `text` is a case-insensitive substring of the name or the description. The
//! members are ANDed. There are no counts.

use accord_events::catalogue::Visibility;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Most records on a page.
pub const MAX_PAGE: usize = 100;
/// Records on a page when the request does not say.
pub const DEFAULT_PAGE: usize = 20;
/// Most values in one filter member.
pub const MAX_TERMS: usize = 32;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capability: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skill: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tag: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owner: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub domain: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub status: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// A discovery request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    #[serde(default)]
    pub filter: Filter,
    /// `agent_id` (the only order: stable under concurrent changes, and what the cursor
    /// names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_size: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_token: Option<String>,
    /// Only records changed after this log position (for clients that keep a copy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_seq: Option<u64>,
    /// Answer only once the directory reflects at least this position (up to 2 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_seq: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct QueryError(pub String);

/// A checked query, ready for the directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pub capabilities: Vec<String>,
    pub skills: Vec<String>,
    pub tags: Vec<String>,
    pub owners: Vec<String>,
    pub domains: Vec<String>,
    pub statuses: Vec<String>,
    /// Lower case.
    pub text: Option<String>,
    pub after_seq: Option<u64>,
}

pub const STATUSES: [&str; 5] = [
    "registered",
    "revoked",
    "expired",
    "suspended",
    "decommissioned",
];

fn terms(name: &str, v: &[String]) -> Result<Vec<String>, QueryError> {
    if v.len() > MAX_TERMS {
        return Err(QueryError(format!(
            "filter.{name} has more than {MAX_TERMS} values"
        )));
    }
    for t in v {
        if t.is_empty() || t.len() > 512 || t.chars().any(char::is_control) {
            return Err(QueryError(format!(
                "filter.{name} values are 1 to 512 bytes of text"
            )));
        }
    }
    let mut out = v.to_vec();
    out.sort();
    out.dedup();
    Ok(out)
}

impl SearchRequest {
    /// The query and the page size it asks for.
    pub fn query(&self) -> Result<(Query, usize), QueryError> {
        match self.order_by.as_deref() {
            None | Some("agent_id") => {}
            Some(o) => {
                return Err(QueryError(format!(
                    "order_by {o:?} is not supported (agent_id)"
                )));
            }
        }
        let size = self.page_size.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&size) {
            return Err(QueryError(format!("page_size is 1 to {MAX_PAGE}")));
        }
        let f = &self.filter;
        let statuses = terms("status", &f.status)?;
        if let Some(s) = statuses.iter().find(|s| !STATUSES.contains(&s.as_str())) {
            return Err(QueryError(format!(
                "filter.status {s:?} is not one of {}",
                STATUSES.join(", ")
            )));
        }
        let text = match &f.text {
            Some(t) if t.len() > 256 || t.chars().any(char::is_control) => {
                return Err(QueryError(
                    "filter.text is at most 256 bytes of text".into(),
                ));
            }
            Some(t) if !t.trim().is_empty() => Some(t.trim().to_lowercase()),
            _ => None,
        };
        Ok((
            Query {
                capabilities: terms("capability", &f.capability)?,
                skills: terms("skill", &f.skill)?,
                tags: terms("tag", &f.tag)?,
                owners: terms("owner", &f.owner)?,
                domains: terms("domain", &f.domain)?,
                statuses,
                text,
                after_seq: self.after_seq,
            },
            size,
        ))
    }

    /// What a page token is bound to: everything that decides which records match.
    pub fn binding(&self) -> Value {
        serde_json::json!({
            "filter": self.filter,
            "order_by": self.order_by.as_deref().unwrap_or("agent_id"),
            "after_seq": self.after_seq,
        })
    }
}

/// One clause of a requester's visibility: a record matches when each member named equals
/// the record's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Clause {
    pub visibility: Option<Visibility>,
    pub domain: Option<String>,
    pub team: Option<String>,
    pub owner: Option<String>,
}

/// What a requester may see, from `accord.discovery_filter`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Visible {
    /// Any of these (none: nothing).
    pub clauses: Vec<Clause>,
    /// The statuses shown (empty: all).
    pub statuses: Vec<String>,
    pub hidden_prefixes: Vec<String>,
}

impl Visible {
    /// Reads the filter policy's result. A clause with a member this registry does not know
    /// is dropped (it matches nothing here: narrower than the policy, never wider), and so is
    /// anything malformed: an unreadable result shows nothing.
    pub fn of_result(result: &Value) -> Self {
        let strings = |v: Option<&Value>| -> Vec<String> {
            v.and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        let clauses = result
            .get("clauses")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(clause).collect())
            .unwrap_or_default();
        Self {
            clauses,
            statuses: strings(result.get("statuses")),
            hidden_prefixes: strings(result.get("hidden_prefixes")),
        }
    }
}

fn clause(v: &Value) -> Option<Clause> {
    let mut c = Clause::default();
    for (k, v) in v.as_object()? {
        let s = v.as_str()?.to_owned();
        match k.as_str() {
            "visibility" => c.visibility = Some(serde_json::from_value(Value::String(s)).ok()?),
            "domain" => c.domain = Some(s),
            "team" => c.team = Some(s),
            "owner" => c.owner = Some(s),
            _ => return None,
        }
    }
    Some(c)
}
