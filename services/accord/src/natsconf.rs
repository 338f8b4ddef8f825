//! The nats-server configuration of a domain: JetStream with the domain as JetStream domain,
//! TLS on the client port, and an `ACCORD` account whose users are the domain's identities
//! (nkeys). Permissions, not only stream flags, guard the log (design §3; ADR 0006):
//!
//! - `services`: writes events and runs projections; can never delete, purge, update or
//!   restore `ACCORD_EVENTS`, nor remove a message;
//! - `admin`: the operator's identity for deliberate stream changes (replicas); still never
//!   deletes or purges the log;
//! - `auditor`: reads the log (stream info, direct gets, ephemeral consumers); publishes
//!   nothing to `accord.evt.>` and cannot touch consumers it did not create;
//! - `callout`: the ACA's auth callout service: answers `$SYS.REQ.USER.AUTH`, nothing else;
//! - agents: no static user; the auth callout admits each with its workload identity token
//!   and a proof of possession, and gives it a user that may read its revocation feed only
//!   (ADR 0006, `accord_authority::callout`).

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
    pub monitor: String,
    pub store_dir: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub domain: DomainId,
    pub stream: String,
    pub tls: Option<TlsFiles>,
    pub identities: Identities,
    pub cluster: Option<ClusterConf>,
}

/// Subjects each identity may publish to (allow, deny) and subscribe to.
#[derive(Debug, Clone)]
pub struct Permissions {
    pub publish_allow: Vec<String>,
    pub publish_deny: Vec<String>,
    pub subscribe_allow: Vec<String>,
}

/// Stream administration that nobody may do to the log.
fn never_on_log(stream: &str) -> Vec<String> {
    vec![
        format!("$JS.API.STREAM.DELETE.{stream}"),
        format!("$JS.API.STREAM.PURGE.{stream}"),
        format!("$JS.API.STREAM.MSG.DELETE.{stream}"),
        format!("$JS.API.STREAM.RESTORE.{stream}"),
    ]
}

pub fn services(domain: &DomainId, stream: &str) -> Permissions {
    let mut deny = never_on_log(stream);
    deny.push(format!("$JS.API.STREAM.UPDATE.{stream}"));
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
        publish_deny: deny,
        subscribe_allow: vec![">".into()],
    }
}

pub fn admin(_domain: &DomainId, stream: &str) -> Permissions {
    Permissions {
        publish_allow: vec!["$JS.API.>".into(), "_INBOX.>".into()],
        publish_deny: {
            let mut d = never_on_log(stream);
            d.push("accord.evt.>".into());
            d
        },
        subscribe_allow: vec!["_INBOX.>".into()],
    }
}

pub fn auditor(_domain: &DomainId, stream: &str) -> Permissions {
    Permissions {
        publish_allow: vec![
            "$JS.API.INFO".into(),
            "$JS.API.STREAM.NAMES".into(),
            format!("$JS.API.STREAM.INFO.{stream}"),
            format!("$JS.API.STREAM.MSG.GET.{stream}"),
            format!("$JS.API.DIRECT.GET.{stream}"),
            format!("$JS.API.DIRECT.GET.{stream}.>"),
            // ephemeral consumers only: the unnamed create subject refuses a durable name
            format!("$JS.API.CONSUMER.CREATE.{stream}"),
            format!("$JS.API.CONSUMER.INFO.{stream}.*"),
            format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.*"),
            format!("$JS.FC.{stream}.>"),
        ],
        publish_deny: vec!["accord.evt.>".into()],
        subscribe_allow: vec!["_INBOX.>".into()],
    }
}

/// The auth callout service: receives the server's authorization requests and answers them
/// (the server accepts an answer only on the request's own reply subject).
pub fn callout() -> Permissions {
    Permissions {
        publish_allow: Vec::new(),
        publish_deny: Vec::new(),
        subscribe_allow: vec!["$SYS.REQ.USER.AUTH".into()],
    }
}

fn list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", quoted.join(", "))
}

fn user(out: &mut String, comment: &str, nkey: &str, p: &Permissions) {
    let _ = writeln!(out, "      # {comment}");
    let _ = writeln!(out, "      {{");
    let _ = writeln!(out, "        nkey: {nkey:?}");
    let _ = writeln!(out, "        permissions: {{");
    let _ = writeln!(
        out,
        "          publish: {{ allow: {}, deny: {} }}",
        list(&p.publish_allow),
        list(&p.publish_deny)
    );
    let _ = writeln!(
        out,
        "          subscribe: {{ allow: {} }}",
        list(&p.subscribe_allow)
    );
    let _ = writeln!(out, "        }}");
    let _ = writeln!(out, "      }}");
}

fn callout_user(out: &mut String, nkey: &str) {
    let p = callout();
    let _ = writeln!(
        out,
        "      # the ACA's auth callout service: answers the server's authorization requests"
    );
    let _ = writeln!(out, "      {{");
    let _ = writeln!(out, "        nkey: {nkey:?}");
    let _ = writeln!(out, "        permissions: {{");
    let _ = writeln!(
        out,
        "          subscribe: {{ allow: {} }}",
        list(&p.subscribe_allow)
    );
    let _ = writeln!(
        out,
        "          # replies only, to the server's request inbox"
    );
    let _ = writeln!(
        out,
        "          allow_responses: {{ max: 1, expires: \"10s\" }}"
    );
    let _ = writeln!(out, "        }}");
    let _ = writeln!(out, "      }}");
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
    let _ = writeln!(out, "http: {:?}", c.monitor);
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
    let _ = writeln!(out, "\naccounts {{");
    let _ = writeln!(out, "  ACCORD {{");
    let _ = writeln!(out, "    jetstream: enabled");
    let _ = writeln!(out, "    users: [");
    user(
        &mut out,
        "the domain's services: write events, run projections; never delete, purge or reconfigure the log",
        &c.identities.services,
        &services(&c.domain, &c.stream),
    );
    user(
        &mut out,
        "operator: deliberate stream changes; never deletes or purges the log, writes no events",
        &c.identities.admin,
        &admin(&c.domain, &c.stream),
    );
    user(
        &mut out,
        "auditors: read the log; write nothing",
        &c.identities.auditor,
        &auditor(&c.domain, &c.stream),
    );
    callout_user(&mut out, &c.identities.callout);
    let _ = writeln!(out, "    ]");
    let _ = writeln!(out, "  }}");
    let _ = writeln!(out, "  SYS {{");
    let _ = writeln!(out, "    users: [ {{ nkey: {:?} }} ]", c.identities.system);
    let _ = writeln!(out, "  }}");
    let _ = writeln!(out, "}}");
    let _ = writeln!(out, "system_account: SYS");
    let id = &c.identities;
    let _ = writeln!(
        out,
        "\n# every other client (the agents) is decided by the ACA's auth callout (ADR 0006)"
    );
    let _ = writeln!(out, "authorization {{");
    let _ = writeln!(out, "  auth_callout {{");
    let _ = writeln!(out, "    issuer: {:?}", id.callout_issuer);
    let _ = writeln!(out, "    account: ACCORD");
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
