//! `accord registry register|list|show|suspend|decommission`: the registry from the command
//! line. `register` runs as the agent (its folder, the one `accord agent enroll` left);
//! `list` and `show` as the operator (the admin token) or, with `--as-agent DIR`, as an
//! agent; `suspend` and `decommission` as the operator.

use std::path::PathBuf;
use std::process::ExitCode;

use accord_agent::AgentDir;
use accord_agent::registry::{Auth, Description, RegistryClient, registration};
use accord_events::catalogue::{Audience, CardFields, Endpoint, Skill, Visibility};
use accord_registry::{Filter, SearchRequest};
use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::json;

use crate::commands::{read_text, tokio, usage};
use crate::dev::DevPaths;

#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// Register (or update) the agent's record, with its certificate (or its WIT).
    Register(RegisterArgs),
    /// Discover agents (the operator sees every record; an agent what the policy shows it).
    List(ListArgs),
    /// One agent's record.
    Show {
        agent_id: String,
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        json: bool,
    },
    /// Take an agent's record out of discovery (operator).
    Suspend {
        agent_id: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        json: bool,
    },
    /// Decommission an agent: every live credential revoked (operator).
    Decommission {
        agent_id: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        json: bool,
    },
}

/// Where the registry is, and who asks.
#[derive(Debug, Args)]
pub struct Target {
    /// A dev domain's folder: the registry's URL, CA and admin token from it.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// The registry's base URL (`https://host:port`).
    #[arg(long = "registry-url")]
    pub url: Option<String>,
    /// The CA of the registry's server certificate (PEM).
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// The admin token's file (operator commands).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// Ask as this agent (its folder) instead of the operator.
    #[arg(long)]
    pub as_agent: Option<PathBuf>,
    /// Prove the agent with its WIT and a proof token instead of its certificate.
    #[arg(long)]
    pub wit: bool,
}

#[derive(Debug, Args)]
pub struct RegisterArgs {
    /// The agent's folder (what `accord agent enroll --dir` left).
    #[arg(long)]
    pub dir: PathBuf,
    #[command(flatten)]
    pub record: RecordArgs,
    #[command(flatten)]
    pub target: Target,
    #[arg(long)]
    pub json: bool,
}

/// What a registration says beyond what the credential signed.
#[derive(Debug, Args, Clone)]
pub struct RecordArgs {
    /// A JSON file of the record's description: name, description, endpoints, skills,
    /// audience, card (flags below override its members).
    #[arg(long)]
    pub record: Option<PathBuf>,
    /// The name the agent was provisioned under.
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long)]
    pub description: Option<String>,
    /// An endpoint: `URL` (A2A JSON-RPC) or `TRANSPORT=URL` (repeatable).
    #[arg(long = "endpoint")]
    pub endpoints: Vec<String>,
    /// public, domain, team or owner.
    #[arg(long)]
    pub visibility: Option<String>,
    #[arg(long)]
    pub team: Option<String>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(long)]
    pub capability: Vec<String>,
    #[arg(long)]
    pub skill: Vec<String>,
    #[arg(long)]
    pub tag: Vec<String>,
    #[arg(long)]
    pub owner: Vec<String>,
    #[arg(long)]
    pub status: Vec<String>,
    /// Words of the name or description.
    #[arg(long)]
    pub text: Option<String>,
    #[arg(long)]
    pub page_size: Option<usize>,
    /// Follow the page tokens to the end.
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub target: Target,
    #[arg(long)]
    pub json: bool,
}

struct Resolved {
    url: String,
    ca: Vec<u8>,
    token: Option<String>,
}

fn resolve(t: &Target) -> anyhow::Result<Resolved> {
    let dev = t.data_dir.as_ref().map(|d| DevPaths::new(d));
    let state = dev.as_ref().map(DevPaths::read_state).transpose()?;
    let url = t
        .url
        .clone()
        .or_else(|| {
            state
                .as_ref()
                .filter(|s| s.registry_port != 0)
                .map(|s| format!("https://127.0.0.1:{}", s.registry_port))
        })
        .ok_or_else(|| usage("give --registry-url (or --data-dir of a dev domain)"))?;
    let ca_path =
        t.ca.clone()
            .or_else(|| dev.as_ref().map(|d| d.ca_cert()))
            .ok_or_else(|| usage("give --ca (or --data-dir of a dev domain)"))?;
    let ca = std::fs::read(&ca_path).with_context(|| format!("--ca {}", ca_path.display()))?;
    let token_file = t
        .token_file
        .clone()
        .or_else(|| dev.as_ref().map(|d| d.admin_token()));
    let token = match (&t.as_agent, token_file) {
        (None, Some(f)) => Some(read_text(&f)?),
        _ => None,
    };
    Ok(Resolved {
        url: url.trim_end_matches('/').to_owned(),
        ca,
        token,
    })
}

fn auth(t: &Target) -> Auth {
    if t.wit { Auth::Wit } else { Auth::Certificate }
}

/// An operator's request to the registry; the answer, or its problem as an error.
async fn operator(
    r: &Resolved,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> anyhow::Result<serde_json::Value> {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .tls_certs_only([reqwest::Certificate::from_pem(&r.ca)?])
        .build()?;
    let token = r
        .token
        .as_deref()
        .ok_or_else(|| usage("give --token-file (the admin token), or --as-agent DIR"))?;
    let mut req = client
        .request(method, format!("{}{path}", r.url))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await?;
    let status = resp.status();
    let v: serde_json::Value = resp.json().await.unwrap_or_default();
    if !status.is_success() {
        anyhow::bail!(
            "refused ({} {}): {}",
            status.as_u16(),
            v["type"]
                .as_str()
                .unwrap_or("?")
                .rsplit('/')
                .next()
                .unwrap_or("?"),
            v["detail"].as_str().unwrap_or("")
        );
    }
    Ok(v)
}

fn endpoint(s: &str) -> anyhow::Result<Endpoint> {
    let (transport, url) = match s.split_once('=') {
        Some((t, u)) if !t.contains("://") => (t.to_owned(), u.to_owned()),
        _ => ("JSONRPC".to_owned(), s.to_owned()),
    };
    Ok(Endpoint { url, transport })
}

/// The record `a` describes (its file, then its flags).
pub fn description(a: &RecordArgs) -> anyhow::Result<Description> {
    #[derive(serde::Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct File {
        name: Option<String>,
        #[serde(default)]
        description: String,
        #[serde(default)]
        endpoints: Vec<Endpoint>,
        #[serde(default)]
        skills: Vec<Skill>,
        #[serde(default)]
        audience: Audience,
        card: Option<CardFields>,
    }
    let mut f: File = match &a.record {
        Some(p) => serde_json::from_slice(
            &std::fs::read(p).with_context(|| format!("--record {}", p.display()))?,
        )
        .with_context(|| format!("--record {}", p.display()))?,
        None => File::default(),
    };
    if let Some(d) = &a.description {
        f.description = d.clone();
    }
    if !a.endpoints.is_empty() {
        f.endpoints = a
            .endpoints
            .iter()
            .map(|e| endpoint(e))
            .collect::<Result<_, _>>()?;
    }
    if let Some(v) = &a.visibility {
        f.audience.visibility = serde_json::from_value::<Visibility>(json!(v))
            .map_err(|_| usage(format!("--visibility {v:?}: public, domain, team or owner")))?;
    }
    if a.team.is_some() {
        f.audience.team = a.team.clone();
    }
    let name = a
        .name
        .clone()
        .or(f.name)
        .ok_or_else(|| usage("give --name (the name the agent was provisioned under)"))?;
    Ok(Description {
        name,
        description: f.description,
        endpoints: f.endpoints,
        skills: f.skills,
        audience: f.audience,
        card: f.card,
    })
}

fn print(json_out: bool, v: &serde_json::Value, text: impl FnOnce() -> String) {
    if json_out {
        println!("{v}");
    } else {
        println!("{}", text());
    }
}

pub fn command(cmd: RegistryCommand) -> anyhow::Result<ExitCode> {
    let rt = tokio()?;
    match cmd {
        RegistryCommand::Register(a) => {
            let r = resolve(&a.target)?;
            let dir = AgentDir::new(&a.dir);
            let state = dir.read_state()?;
            let req = registration(&state, description(&a.record)?);
            let client = RegistryClient::new(&r.url, &r.ca, &dir, auth(&a.target))?;
            let out = rt.block_on(client.register(&req))?;
            let v = serde_json::to_value(&out)?;
            print(a.json, &v, || {
                format!("{} {} at sequence {}", out.agent_id, out.outcome, out.seq)
            });
        }
        RegistryCommand::List(a) => {
            let r = resolve(&a.target)?;
            let mut req = SearchRequest {
                filter: Filter {
                    capability: a.capability.clone(),
                    skill: a.skill.clone(),
                    tag: a.tag.clone(),
                    owner: a.owner.clone(),
                    status: a.status.clone(),
                    text: a.text.clone(),
                    ..Filter::default()
                },
                page_size: a.page_size,
                ..SearchRequest::default()
            };
            let mut agents = Vec::new();
            let seq = loop {
                let page: accord_registry::SearchResponse = match &a.target.as_agent {
                    Some(d) => {
                        let c =
                            RegistryClient::new(&r.url, &r.ca, &AgentDir::new(d), auth(&a.target))?;
                        rt.block_on(c.search(&req))?
                    }
                    None => serde_json::from_value(rt.block_on(operator(
                        &r,
                        reqwest::Method::POST,
                        "/v1/registry/search",
                        Some(serde_json::to_value(&req)?),
                    ))?)?,
                };
                agents.extend(page.agents);
                match page.next_page_token {
                    Some(t) if a.all => req.page_token = Some(t),
                    Some(_) => {
                        eprintln!("more records follow: --all lists them");
                        break page.seq;
                    }
                    None => break page.seq,
                }
            };
            let v = json!({"agents": agents, "seq": seq});
            print(a.json, &v, || {
                agents
                    .iter()
                    .map(|x| {
                        format!(
                            "{}  {}  {}  {}",
                            x.agent_id,
                            x.status,
                            x.name,
                            x.capabilities.join(",")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        RegistryCommand::Show {
            agent_id,
            target,
            json: j,
        } => {
            let r = resolve(&target)?;
            let v = match &target.as_agent {
                Some(d) => {
                    let c = RegistryClient::new(&r.url, &r.ca, &AgentDir::new(d), auth(&target))?;
                    serde_json::to_value(rt.block_on(c.show(&agent_id))?)?
                }
                None => rt.block_on(operator(
                    &r,
                    reqwest::Method::GET,
                    &format!("/v1/registry/agents/{agent_id}"),
                    None,
                ))?,
            };
            print(j, &v, || {
                serde_json::to_string_pretty(&v).unwrap_or_default()
            });
        }
        RegistryCommand::Suspend {
            agent_id,
            reason,
            target,
            json: j,
        } => {
            let r = resolve(&target)?;
            let v = rt.block_on(operator(
                &r,
                reqwest::Method::POST,
                &format!("/v1/registry/agents/{agent_id}/suspend"),
                Some(json!({"reason": reason})),
            ))?;
            print(j, &v, || {
                format!("{agent_id} suspended at sequence {}", v["seq"])
            });
        }
        RegistryCommand::Decommission {
            agent_id,
            reason,
            target,
            json: j,
        } => {
            let r = resolve(&target)?;
            let v = rt.block_on(operator(
                &r,
                reqwest::Method::POST,
                &format!("/v1/registry/agents/{agent_id}/decommission"),
                Some(json!({"reason": reason})),
            ))?;
            print(j, &v, || {
                format!("{agent_id} decommissioned at sequence {}", v["seq"])
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}
