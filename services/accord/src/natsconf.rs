//! The nats-server configuration of a domain: JetStream with the domain as JetStream domain,
//! TLS on the client port, and one NATS account per kind of identity (ADR 0006).
//!
//! The log lives in the services' account, `ACCORD`, and **nobody but the domain's services
//! connects to it**: nats-server checks a client's publish permission on the subject only,
//! never on the reply subject a request names, and the JetStream API answers to that reply
//! subject inside the account; a stream whose subjects match it stores the answer. Within one
//! account any identity allowed any JetStream API call can therefore write into the log
//! (security review 2026-12, finding 1). Across accounts it cannot: a request that enters
//! `ACCORD` through a service import carries a reply subject the server minted (`_R_.…`), and
//! the answer goes back to the requester's own account, where no stream captures it.
//!
//! - `ACCORD`: `services` (writes events, runs projections, serves the agents' feed requests;
//!   never deletes, purges, updates or restores the log) and `callout` (answers the server's
//!   authorization requests, nothing else). Exports exactly what the others may use.
//! - `AUDIT`: `auditor`. Imports the log's batched direct get, nothing else: reads every
//!   message, writes none, creates no consumer.
//! - `ADMIN`: `admin`, the operator's identity for inspection: the same read-only import.
//!   Stream changes are a break-glass procedure (ADR 0006).
//! - `AGENTS`: no static user; the ACA's auth callout places every admitted agent here, with
//!   permission to ask for its own feed (`accord.feed.<agent>.open`, a service the ACA answers
//!   by creating the agent's consumer) and to read its own deliveries
//!   (`accord.feed.<agent>.deliver`, a stream export).
//! - `SYS`: the system account's one user, held by the ACA to find and kick the connections of
//!   revoked agents; it may do nothing else.
//!
//! Federation peers (issue 16) get one account each, built the same way ([`Account`],
//! [`Import`], [`Export`]): an account that imports exactly what the domain exports to it.

use std::fmt::Write as _;
use std::path::PathBuf;

use accord_events::DomainId;

/// The nkey public keys of the domain's NATS identities.
#[derive(Debug, Clone)]
pub struct Identities {
    pub services: String,
    pub admin: String,
    pub auditor: String,
    pub system: String,
    /// The auth callout service's user (an nkey user, in `auth_users`).
    pub callout: String,
    /// The account nkey that signs the callout's answers (`auth_callout.issuer`).
    pub callout_issuer: String,
}

#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone)]
pub struct ClusterConf {
    pub name: String,
    /// `host:port` (or `0.0.0.0:6222`).
    pub listen: String,
    pub routes: Vec<String>,
}

/// One server's configuration.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// A name, or `$ENV_VAR` (nats-server substitutes environment variables).
    pub server_name: String,
    pub listen: String,
    /// The monitoring endpoint (`host:port`); bind it to loopback or a pod-local address,
    /// never to every interface (it lists connections, users and accounts).
    pub monitor: String,
    pub store_dir: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub domain: DomainId,
    pub stream: String,
    pub tls: Option<TlsFiles>,
    pub identities: Identities,
    pub cluster: Option<ClusterConf>,
}

/// The services' account: it owns the log.
pub const SERVICES_ACCOUNT: &str = "ACCORD";
/// Auditors' account.
pub const AUDIT_ACCOUNT: &str = "AUDIT";
/// The operator's account.
pub const ADMIN_ACCOUNT: &str = "ADMIN";
/// The account the auth callout places admitted agents in.
pub const AGENTS_ACCOUNT: &str = "AGENTS";
/// The system account.
pub const SYSTEM_ACCOUNT: &str = "SYS";

/// Subjects an identity may publish to (allow, deny) and subscribe to.
#[derive(Debug, Clone, Default)]
pub struct Permissions {
    pub publish_allow: Vec<String>,
    pub publish_deny: Vec<String>,
    pub subscribe_allow: Vec<String>,
    /// May publish replies to requests it received (nothing else unless allowed above).
    pub allow_responses: bool,
}

/// A static user of an account.
#[derive(Debug, Clone)]
pub struct User {
    pub comment: String,
    pub nkey: String,
    pub permissions: Permissions,
}

/// What an account offers other accounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Export {
    /// Messages published on `subject` in this account reach importers' subscribers.
    Stream { subject: String, to: Vec<String> },
    /// Requests on `subject` from importers are answered in this account; the answer returns
    /// to the importer (one message, or a run of them with `stream_response`).
    Service {
        subject: String,
        stream_response: bool,
        to: Vec<String>,
    },
}

/// What an account takes from another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Import {
    Stream {
        account: String,
        subject: String,
    },
    /// `local` is the subject importers publish to, when it differs from `subject`.
    Service {
        account: String,
        subject: String,
        local: Option<String>,
    },
}

/// One NATS account of the domain's servers.
#[derive(Debug, Clone)]
pub struct Account {
    pub name: String,
    pub comment: String,
    pub jetstream: bool,
    pub users: Vec<User>,
    pub exports: Vec<Export>,
    pub imports: Vec<Import>,
}

/// Stream administration that nobody may do to the log.
fn never_on_log(stream: &str) -> Vec<String> {
    vec![
        format!("$JS.API.STREAM.DELETE.{stream}"),
        format!("$JS.API.STREAM.PURGE.{stream}"),
        format!("$JS.API.STREAM.MSG.DELETE.{stream}"),
        format!("$JS.API.STREAM.RESTORE.{stream}"),
        // updates could add subjects, sources or transforms (a way to write the log), seal it,
        // or set limits that discard history; a drifted stream is refused at start
        format!("$JS.API.STREAM.UPDATE.{stream}"),
    ]
}

/// The subject an agent asks for its revocation feed on (`accord.feed.<agent>.open`), as a
/// wildcard over agents.
pub const FEED_OPEN_ALL: &str = "accord.feed.*.open";
/// The subject the ACA-created feed consumers deliver to, as a wildcard over agents.
pub const FEED_DELIVER_ALL: &str = "accord.feed.*.deliver";

pub fn services(domain: &DomainId, stream: &str) -> Permissions {
    // events of other domains arrive through federation ingest, never by direct publish
    Permissions {
        publish_allow: vec![
            format!("accord.evt.{domain}.>"),
            format!("accord.decisions.{domain}.>"),
            "$JS.API.>".into(),
            "$JS.ACK.>".into(),
            "$JS.FC.>".into(),
            "$KV.>".into(),
            "_INBOX.>".into(),
        ],
        publish_deny: never_on_log(stream),
        // replies and consumer deliveries (always to an inbox), and the agents' feed requests
        subscribe_allow: vec!["_INBOX.>".into(), FEED_OPEN_ALL.into()],
        // answers to the agents' feed requests, which arrive with server-minted replies
        allow_responses: true,
    }
}

/// The direct-get API subjects of the log, as the importing accounts name them: with and
/// without the JetStream domain prefix (`$JS.<domain>.API`), so tools addressing either reach
/// the same export.
fn log_read_imports(domain: &DomainId, stream: &str) -> Vec<Import> {
    let subject = format!("$JS.API.DIRECT.GET.{stream}");
    vec![
        Import::Service {
            account: SERVICES_ACCOUNT.into(),
            subject: subject.clone(),
            local: None,
        },
        Import::Service {
            account: SERVICES_ACCOUNT.into(),
            subject,
            local: Some(format!("$JS.{domain}.API.DIRECT.GET.{stream}")),
        },
    ]
}

/// Readers of the log (auditors, the operator): they publish nothing but the imported direct
/// get and read replies on their own inboxes, in their own account.
pub fn reader(domain: &DomainId, stream: &str) -> Permissions {
    Permissions {
        publish_allow: vec![
            format!("$JS.API.DIRECT.GET.{stream}"),
            format!("$JS.{domain}.API.DIRECT.GET.{stream}"),
        ],
        publish_deny: Vec::new(),
        subscribe_allow: vec!["_INBOX.>".into()],
        allow_responses: false,
    }
}

pub fn admin(domain: &DomainId, stream: &str) -> Permissions {
    reader(domain, stream)
}

pub fn auditor(domain: &DomainId, stream: &str) -> Permissions {
    reader(domain, stream)
}

/// The auth callout service: receives the server's authorization requests and answers them
/// (the server accepts an answer only on the request's own reply subject).
pub fn callout() -> Permissions {
    Permissions {
        publish_allow: Vec::new(),
        publish_deny: Vec::new(),
        subscribe_allow: vec!["$SYS.REQ.USER.AUTH".into()],
        allow_responses: true,
    }
}

/// The system user the ACA holds: find a revoked agent's connections and kick them.
pub fn system() -> Permissions {
    Permissions {
        publish_allow: vec![
            "$SYS.REQ.SERVER.PING.CONNZ".into(),
            "$SYS.REQ.SERVER.*.KICK".into(),
        ],
        publish_deny: Vec::new(),
        subscribe_allow: vec!["_INBOX.>".into()],
        allow_responses: false,
    }
}

/// The accounts of a domain's servers, in the order they are rendered.
pub fn accounts(c: &ServerConfig) -> Vec<Account> {
    let id = &c.identities;
    let (d, s) = (&c.domain, c.stream.as_str());
    let direct = format!("$JS.API.DIRECT.GET.{s}");
    vec![
        Account {
            name: SERVICES_ACCOUNT.into(),
            comment: "the domain's services: the only account that holds the log, and the only one they use".into(),
            jetstream: true,
            users: vec![
                User {
                    comment: "the domain's services: write events, run projections; never delete, purge or reconfigure the log".into(),
                    nkey: id.services.clone(),
                    permissions: services(d, s),
                },
                User {
                    comment: "the ACA's auth callout service: answers the server's authorization requests".into(),
                    nkey: id.callout.clone(),
                    permissions: callout(),
                },
            ],
            exports: vec![
                Export::Service {
                    subject: direct,
                    stream_response: true,
                    to: vec![AUDIT_ACCOUNT.into(), ADMIN_ACCOUNT.into()],
                },
                Export::Service {
                    subject: FEED_OPEN_ALL.into(),
                    stream_response: false,
                    to: vec![AGENTS_ACCOUNT.into()],
                },
                Export::Stream {
                    subject: FEED_DELIVER_ALL.into(),
                    to: vec![AGENTS_ACCOUNT.into()],
                },
            ],
            imports: Vec::new(),
        },
        Account {
            name: AUDIT_ACCOUNT.into(),
            comment: "auditors: read every message of the log through direct get; write nothing".into(),
            jetstream: false,
            users: vec![User {
                comment: "auditors".into(),
                nkey: id.auditor.clone(),
                permissions: auditor(d, s),
            }],
            exports: Vec::new(),
            imports: log_read_imports(d, s),
        },
        Account {
            name: ADMIN_ACCOUNT.into(),
            comment: "the operator: inspects the log; stream changes are a break-glass procedure (ADR 0006)".into(),
            jetstream: false,
            users: vec![User {
                comment: "operator".into(),
                nkey: id.admin.clone(),
                permissions: admin(d, s),
            }],
            exports: Vec::new(),
            imports: log_read_imports(d, s),
        },
        Account {
            name: AGENTS_ACCOUNT.into(),
            comment: "agents, placed here by the ACA's auth callout: ask for their own feed, read its deliveries".into(),
            jetstream: false,
            users: Vec::new(),
            exports: Vec::new(),
            imports: vec![
                Import::Service {
                    account: SERVICES_ACCOUNT.into(),
                    subject: FEED_OPEN_ALL.into(),
                    local: None,
                },
                Import::Stream {
                    account: SERVICES_ACCOUNT.into(),
                    subject: FEED_DELIVER_ALL.into(),
                },
            ],
        },
        Account {
            name: SYSTEM_ACCOUNT.into(),
            comment: "the system account: the ACA's user may only find and kick revoked agents' connections".into(),
            jetstream: false,
            users: vec![User {
                comment: "the ACA: connection lookup and kicks of revoked agents".into(),
                nkey: id.system.clone(),
                permissions: system(),
            }],
            exports: Vec::new(),
            imports: Vec::new(),
        },
    ]
}

fn list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", quoted.join(", "))
}

fn render_user(out: &mut String, u: &User) {
    let p = &u.permissions;
    let _ = writeln!(out, "      # {}", u.comment);
    let _ = writeln!(out, "      {{");
    let _ = writeln!(out, "        nkey: {:?}", u.nkey);
    let _ = writeln!(out, "        permissions: {{");
    if !p.publish_allow.is_empty() || !p.publish_deny.is_empty() {
        let _ = writeln!(
            out,
            "          publish: {{ allow: {}, deny: {} }}",
            list(&p.publish_allow),
            list(&p.publish_deny)
        );
    }
    let _ = writeln!(
        out,
        "          subscribe: {{ allow: {} }}",
        list(&p.subscribe_allow)
    );
    if p.allow_responses {
        let _ = writeln!(
            out,
            "          # replies to requests it received, on their own reply subjects"
        );
        let _ = writeln!(
            out,
            "          allow_responses: {{ max: 1, expires: \"10s\" }}"
        );
    }
    let _ = writeln!(out, "        }}");
    let _ = writeln!(out, "      }}");
}

fn render_account(out: &mut String, a: &Account) {
    let _ = writeln!(out, "  # {}", a.comment);
    let _ = writeln!(out, "  {} {{", a.name);
    if a.jetstream {
        let _ = writeln!(out, "    jetstream: enabled");
    }
    let _ = writeln!(out, "    users: [");
    for u in &a.users {
        render_user(out, u);
    }
    let _ = writeln!(out, "    ]");
    if !a.exports.is_empty() {
        let _ = writeln!(out, "    exports: [");
        for e in &a.exports {
            match e {
                Export::Stream { subject, to } => {
                    let _ = writeln!(
                        out,
                        "      {{ stream: {subject:?}, accounts: {} }}",
                        list(to)
                    );
                }
                Export::Service {
                    subject,
                    stream_response,
                    to,
                } => {
                    let kind = if *stream_response {
                        ", response_type: stream"
                    } else {
                        ""
                    };
                    let _ = writeln!(
                        out,
                        "      {{ service: {subject:?}{kind}, accounts: {} }}",
                        list(to)
                    );
                }
            }
        }
        let _ = writeln!(out, "    ]");
    }
    if !a.imports.is_empty() {
        let _ = writeln!(out, "    imports: [");
        for i in &a.imports {
            match i {
                Import::Stream { account, subject } => {
                    let _ = writeln!(
                        out,
                        "      {{ stream: {{ account: {account}, subject: {subject:?} }} }}"
                    );
                }
                Import::Service {
                    account,
                    subject,
                    local,
                } => {
                    let to = local
                        .as_ref()
                        .map(|l| format!(", to: {l:?}"))
                        .unwrap_or_default();
                    let _ = writeln!(
                        out,
                        "      {{ service: {{ account: {account}, subject: {subject:?} }}{to} }}"
                    );
                }
            }
        }
        let _ = writeln!(out, "    ]");
    }
    let _ = writeln!(out, "  }}");
}

/// Renders the server's configuration file.
pub fn render(c: &ServerConfig) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# nats-server configuration of Accord domain {} (generated by accord; edits are overwritten)",
        c.domain
    );
    if c.server_name.starts_with('$') {
        let _ = writeln!(out, "server_name: {}", c.server_name);
    } else {
        let _ = writeln!(out, "server_name: {:?}", c.server_name);
    }
    let _ = writeln!(out, "listen: {:?}", c.listen);
    if c.monitor.starts_with('$') {
        let _ = writeln!(out, "http: {}", c.monitor);
    } else {
        let _ = writeln!(out, "http: {:?}", c.monitor);
    }
    let _ = writeln!(out, "max_payload: 1MB");
    if let Some(p) = &c.pid_file {
        let _ = writeln!(out, "pid_file: {:?}", p.display().to_string());
    }
    let _ = writeln!(out, "\njetstream {{");
    let _ = writeln!(out, "  store_dir: {:?}", c.store_dir.display().to_string());
    let _ = writeln!(out, "  domain: {:?}", c.domain.as_str());
    let _ = writeln!(out, "  max_memory_store: 256MB");
    let _ = writeln!(out, "  max_file_store: 64GB");
    let _ = writeln!(out, "}}");
    if let Some(t) = &c.tls {
        let _ = writeln!(out, "\n# every client connection is TLS");
        let _ = writeln!(out, "tls {{");
        let _ = writeln!(out, "  cert_file: {:?}", t.cert.display().to_string());
        let _ = writeln!(out, "  key_file: {:?}", t.key.display().to_string());
        let _ = writeln!(out, "  timeout: 5");
        let _ = writeln!(out, "}}");
    }
    if let Some(cl) = &c.cluster {
        let _ = writeln!(out, "\ncluster {{");
        let _ = writeln!(out, "  name: {:?}", cl.name);
        let _ = writeln!(out, "  listen: {:?}", cl.listen);
        let _ = writeln!(out, "  routes: {}", list(&cl.routes));
        let _ = writeln!(out, "}}");
    }
    let _ = writeln!(
        out,
        "\n# one account per kind of identity: the log lives in {SERVICES_ACCOUNT}, which nobody but the\n\
         # services connects to; the others see only what it exports to them (ADR 0006)"
    );
    let _ = writeln!(out, "accounts {{");
    for a in accounts(c) {
        render_account(&mut out, &a);
    }
    let _ = writeln!(out, "}}");
    let _ = writeln!(out, "system_account: {SYSTEM_ACCOUNT}");
    let id = &c.identities;
    let _ = writeln!(
        out,
        "\n# every other client (the agents) is decided by the ACA's auth callout, which places it\n\
         # in {AGENTS_ACCOUNT} (ADR 0006)"
    );
    let _ = writeln!(out, "authorization {{");
    let _ = writeln!(out, "  auth_callout {{");
    let _ = writeln!(out, "    issuer: {:?}", id.callout_issuer);
    let _ = writeln!(out, "    account: {SERVICES_ACCOUNT}");
    let _ = writeln!(
        out,
        "    auth_users: {}",
        list(&[
            id.services.clone(),
            id.admin.clone(),
            id.auditor.clone(),
            id.callout.clone(),
            id.system.clone()
        ])
    );
    let _ = writeln!(out, "  }}");
    let _ = writeln!(out, "}}");
    out
}
