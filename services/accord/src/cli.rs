//! The command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "accord",
    version,
    about = "Accord: a trust fabric for AI agents of many organizations",
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a whole domain on this machine: its own nats-server, the genesis on first start,
    /// in-memory projections (PostgreSQL with --database-url), until Ctrl-C.
    Dev(DevArgs),
    /// Run the domain's services against an existing NATS deployment and PostgreSQL.
    Serve(ServeArgs),
    /// Read the event log.
    Events {
        #[command(subcommand)]
        command: EventsCommand,
    },
    /// Inspect and rebuild projections of a running domain.
    Projections {
        #[command(subcommand)]
        command: ProjectionsCommand,
    },
    /// Policy bundles: test, publish, evaluate.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Certificate requests: check one exactly as enrollment does.
    Csr {
        #[command(subcommand)]
        command: CsrCommand,
    },
    /// Revoke an agent's credentials (by agent id) or one credential (by serial).
    Revoke(RevokeArgs),
    /// The agent side: provision an agent, enroll it, renew its credential.
    Agent {
        #[command(subcommand)]
        command: AgentCommand,
    },
    /// The Agent Registry Service: register an agent's record, discover, suspend.
    Registry {
        #[command(subcommand)]
        command: crate::registry_cmd::RegistryCommand,
    },
    /// The audit log: checkpoints, proofs, verification of a whole history, exports, and a
    /// credential's state at a point of the history.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Trust material (admin): manufacturer CAs, attestation verifiers, agent providers,
    /// owner identity providers, the AIBOM deny-list. Each change is an event.
    Trust {
        #[command(subcommand)]
        command: TrustCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum TrustCommand {
    /// The trust material in force, as JSON.
    List {
        #[command(flatten)]
        http: HttpArgs,
    },
    /// A manufacturer CA of environment identity certificates (PEM, root first).
    AddAnchor {
        #[arg(long)]
        id: String,
        #[arg(long)]
        pem: PathBuf,
        #[command(flatten)]
        http: HttpArgs,
    },
    /// An environment identity certificate (or intermediate) no longer trusted.
    RevokeEnvironmentCertificate {
        /// The anchor it chains to.
        #[arg(long)]
        anchor: String,
        /// The certificate (PEM) ...
        #[arg(long)]
        pem: Option<PathBuf>,
        /// ... or its SHA-256 (`sha256:<hex>`).
        #[arg(long)]
        fingerprint: Option<String>,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        http: HttpArgs,
    },
    /// An attestation verifier: reference values (JSON `[{"component", "digests": [...]}]`).
    AddVerifier {
        #[arg(long)]
        id: String,
        #[arg(long)]
        reference_values: PathBuf,
        #[command(flatten)]
        http: HttpArgs,
    },
    /// A trusted agent provider and its endorsement keys (a JWKS file).
    AddProvider {
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        jwks: PathBuf,
        /// A capability it may endorse (repeatable).
        #[arg(long = "capability")]
        capabilities: Vec<String>,
        #[command(flatten)]
        http: HttpArgs,
    },
    /// A trusted owner identity provider (OpenID Connect issuer, audiences, JWKS file).
    AddIdp {
        #[arg(long)]
        id: String,
        #[arg(long)]
        issuer: String,
        /// An audience the ACA accepts (repeatable).
        #[arg(long = "audience")]
        audiences: Vec<String>,
        #[arg(long)]
        jwks: PathBuf,
        #[command(flatten)]
        http: HttpArgs,
    },
    /// Remove material (anchor, verifier, provider or idp) for good.
    Remove {
        /// anchor, verifier, provider or idp.
        kind: String,
        #[arg(long)]
        id: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        http: HttpArgs,
    },
    /// Replace the AIBOM deny-list (JSON `{"entries": [...]}`).
    SetAibomDenyList {
        #[arg(long)]
        file: PathBuf,
        #[command(flatten)]
        http: HttpArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum CsrCommand {
    /// Run the ACA's checks on a PKCS#10 request (PEM or DER); exit 0 only if acceptable.
    Check {
        file: PathBuf,
        /// Accept RSA keys (2048 bits or more), as a domain that opted in does.
        #[arg(long)]
        allow_rsa: bool,
        /// The verdict as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// An agent id (all its live credentials) or a credential serial (hex).
    pub target: String,
    /// RFC 5280 reason: unspecified, keyCompromise, caCompromise, affiliationChanged,
    /// superseded, cessationOfOperation, certificateHold, privilegeWithdrawn, aaCompromise.
    #[arg(long, default_value = "unspecified")]
    pub reason: String,
    #[command(flatten)]
    pub http: HttpArgs,
}

#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Create an agent identity (admin): prints its id; the one-time enrollment token goes to
    /// --token-out (0600), or into the JSON output.
    Provision {
        #[arg(long)]
        name: String,
        /// A capability it may be credentialled for (repeatable).
        #[arg(long = "capability")]
        capabilities: Vec<String>,
        /// Write the enrollment token to this file (0600).
        #[arg(long)]
        token_out: Option<PathBuf>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        http: HttpArgs,
    },
    /// Make a key, request a credential with the enrollment token, store it in --dir.
    Enroll {
        #[arg(long)]
        agent_id: String,
        /// File holding the enrollment token.
        #[arg(long)]
        enrollment_token_file: PathBuf,
        /// Where the agent keeps its key and credential.
        #[arg(long)]
        dir: PathBuf,
        /// p256 (default) or ed25519.
        #[arg(long, default_value = "p256")]
        key_type: String,
        /// Ask for these capabilities only (repeatable; default: all provisioned).
        #[arg(long = "capability")]
        capabilities: Vec<String>,
        /// A folder of evidence (environment key and chain, measurements, AIBOM, endorsement,
        /// owner token; see `accord_agent::evidence`).
        #[arg(long)]
        evidence_dir: Option<PathBuf>,
        #[command(flatten)]
        aca: AcaArgs,
    },
    /// Make the agent's key in --dir (before enrollment, so a provider can endorse it);
    /// prints its RFC 7638 thumbprint.
    Keygen {
        #[arg(long)]
        dir: PathBuf,
        /// p256 (default) or ed25519.
        #[arg(long, default_value = "p256")]
        key_type: String,
    },
    /// Report the agent compromised (admin): every live credential is revoked.
    ReportCompromise {
        #[arg(long)]
        agent_id: String,
        #[arg(long)]
        details: String,
        #[command(flatten)]
        http: HttpArgs,
    },
    /// Decommission the agent (admin): every live credential is revoked.
    Decommission {
        #[arg(long)]
        agent_id: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        http: HttpArgs,
    },
    /// End the agent's owner binding (admin): every live credential is revoked.
    UnbindOwner {
        #[arg(long)]
        agent_id: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        http: HttpArgs,
    },
    /// A role grant (owner binding) for the agent, signed by the domain (admin).
    RoleGrant {
        #[arg(long)]
        agent_id: String,
        #[arg(long)]
        role: String,
        /// A capability the role allows (repeatable).
        #[arg(long = "scope")]
        scope: Vec<String>,
        #[arg(long, default_value_t = 86400)]
        lifetime_secs: u64,
        /// Write it here (0600), e.g. <evidence-dir>/role-grant.jwt.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        http: HttpArgs,
    },
    /// A single-use owner nonce, printed: the owner's identity provider must put it in the ID
    /// token (`nonce`) that goes into the evidence folder as owner-id-token.jwt. Asked with the
    /// enrollment token (before enrollment) or with the credential in --dir.
    OwnerNonce {
        #[arg(long, required_unless_present = "dir")]
        agent_id: Option<String>,
        /// File holding the enrollment token.
        #[arg(long, requires = "agent_id", conflicts_with = "dir")]
        enrollment_token_file: Option<PathBuf>,
        /// An enrolled agent's folder (its key and identity token prove the request).
        #[arg(long)]
        dir: Option<PathBuf>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        aca: AcaArgs,
    },
    /// Renew the credential in --dir, proved by the current one.
    Renew {
        #[arg(long)]
        dir: PathBuf,
        /// Move to a new key (p256 or ed25519).
        #[arg(long)]
        new_key: Option<String>,
        #[command(flatten)]
        aca: AcaArgs,
    },
    /// Follow the domain's revocations over NATS as the agent in --dir (admitted by the ACA's
    /// auth callout); keeps its cursor in --cursor-file so a restart resumes after an outage.
    WatchRevocations(WatchArgs),
    /// Run beside an agent process that knows nothing of Accord: enroll (when --dir holds no
    /// credential yet), register (with --name or --record), renew before expiry and register
    /// again, follow the revocation feed (with --nats-url), and serve the SPIFFE Workload API
    /// on --socket. One line per step on standard output (JSON with --json).
    Sidecar(Box<SidecarArgs>),
}

#[derive(Debug, Args)]
pub struct SidecarArgs {
    /// The agent's folder (made and filled by enrollment when it holds no credential).
    #[arg(long)]
    pub dir: PathBuf,
    /// The Unix socket of the Workload API (SPIFFE_ENDPOINT_SOCKET=unix://<path>).
    #[arg(long)]
    pub socket: PathBuf,
    /// A user id allowed to connect to the socket (repeatable; default: the sidecar's own).
    #[arg(long = "allow-uid")]
    pub allow_uids: Vec<u32>,
    /// The agent to enroll as, when --dir holds no credential.
    #[arg(long, requires = "enrollment_token_file")]
    pub agent_id: Option<String>,
    /// File holding the enrollment token.
    #[arg(long, requires = "agent_id")]
    pub enrollment_token_file: Option<PathBuf>,
    /// p256 (default) or ed25519.
    #[arg(long, default_value = "p256")]
    pub key_type: String,
    /// Ask for these capabilities only (repeatable; default: all provisioned).
    #[arg(long = "capability")]
    pub capabilities: Vec<String>,
    /// The evidence folder for enrollment (see `accord agent enroll`).
    #[arg(long)]
    pub evidence_dir: Option<PathBuf>,
    #[command(flatten)]
    pub record: crate::registry_cmd::RecordArgs,
    /// The registry's base URL (default with --data-dir: the dev domain's).
    #[arg(long)]
    pub registry_url: Option<String>,
    /// The domain's NATS URL(s), comma-separated: follow the revocation feed.
    #[arg(long)]
    pub nats_url: Option<String>,
    /// Renew at this fraction of the credential's lifetime.
    #[arg(long, default_value_t = 2.0 / 3.0)]
    pub renew_at: f64,
    /// Ask for credentials of this lifetime (default: the ACA's).
    #[arg(long)]
    pub lifetime_secs: Option<u64>,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub aca: AcaArgs,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The agent's folder (key.pk8, wit.jwt, agent.json).
    #[arg(long)]
    pub dir: PathBuf,
    /// The domain's NATS URL(s), comma-separated.
    #[arg(long)]
    pub nats_url: String,
    /// CA certificate of the NATS servers (PEM).
    #[arg(long)]
    pub ca: PathBuf,
    /// The domain id (the feed's subjects name it).
    #[arg(long, default_value = "dev")]
    pub domain: String,
    /// Where the last sequence seen is kept (read at start, rewritten after each revocation).
    #[arg(long)]
    pub cursor_file: Option<PathBuf>,
    /// Stop after this many revocations (default: run until killed).
    #[arg(long)]
    pub count: Option<u64>,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
}

/// How the agent reaches the ACA.
#[derive(Debug, Args, Clone)]
pub struct AcaArgs {
    /// A dev domain's folder: takes the URL and the TLS CA from it.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// The ACA's base URL (default for renew: the one the credential came from).
    #[arg(long)]
    pub url: Option<String>,
    /// CA certificate of the ACA's TLS endpoint (PEM).
    #[arg(long)]
    pub ca: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Compile a bundle folder and run its Rego tests (`test_*` rules); exit 1 on a failure.
    Test {
        /// The bundle folder (`*.rego`, `data.json`).
        dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Check a bundle folder, then publish it as the bundle's next version (an event).
    Publish {
        dir: PathBuf,
        /// The bundle's name.
        #[arg(long, default_value = "default")]
        bundle: String,
        #[command(flatten)]
        http: HttpArgs,
    },
    /// Answer one query: `data.accord.<policy>.decision` for the input in FILE. With --dir the
    /// bundle in that folder decides; with --data-dir or --url the running domain's PDP; with
    /// neither, the shipped library.
    Eval {
        /// The policy package under `accord.` (rbac, abac, rebac, issuance, discovery, ...).
        #[arg(long)]
        policy: String,
        /// JSON input document.
        #[arg(long)]
        input: PathBuf,
        #[arg(long)]
        dir: Option<PathBuf>,
        #[command(flatten)]
        http: HttpArgs,
    },
}

#[derive(Debug, Args)]
pub struct DevArgs {
    /// Folder holding the domain (created on first start; a second start resumes it).
    #[arg(long, default_value = "accord-data")]
    pub data_dir: PathBuf,
    /// PostgreSQL for the projections (otherwise they live in memory). Without
    /// --database-ca, a host on this machine reached without TLS.
    #[arg(long)]
    pub database_url: Option<String>,
    /// CA certificate (PEM) of the PostgreSQL server: TLS, verified (ADR 0012).
    #[arg(long)]
    pub database_ca: Option<PathBuf>,
    /// Domain id of a new domain.
    #[arg(long, default_value = "dev")]
    pub domain: String,
    /// Trust domain (SPIFFE) of a new domain.
    #[arg(long, default_value = "dev.accord.test")]
    pub trust_domain: String,
    /// NATS client port of a new domain (default: a free one).
    #[arg(long)]
    pub nats_port: Option<u16>,
    /// HTTPS port of a new domain (default: a free one).
    #[arg(long)]
    pub http_port: Option<u16>,
    /// Keep the ACA's CA and token keys in a SoftHSM2 token (decided at the first start).
    #[arg(long)]
    pub hsm: bool,
    /// Print the endpoints as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The domain's accord.toml.
    #[arg(long)]
    pub config: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Print the log's events, verifying each signature against pinned key ids.
    Tail(TailArgs),
}

/// How a CLI command reaches a domain's NATS.
#[derive(Debug, Args, Clone)]
pub struct NatsArgs {
    /// A dev domain's folder: takes the URL, CA and the auditor identity from it.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// NATS URL(s), comma-separated.
    #[arg(long)]
    pub nats_url: Option<String>,
    /// CA certificate of the NATS servers (PEM).
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// nkey seed file of the identity to connect as (an auditor's, usually).
    #[arg(long)]
    pub creds: Option<PathBuf>,
    /// The log's stream.
    #[arg(long, default_value = "ACCORD_EVENTS")]
    pub stream: String,
    /// JetStream domain to address across a leaf-node boundary.
    #[arg(long)]
    pub js_domain: Option<String>,
}

#[derive(Debug, Args)]
pub struct TailArgs {
    #[command(flatten)]
    pub nats: NatsArgs,
    /// First stream sequence to print.
    #[arg(long, default_value_t = 1)]
    pub from: u64,
    /// Only events of these types (repeatable).
    #[arg(long = "type")]
    pub types: Vec<String>,
    /// Keep printing new events as they are appended.
    #[arg(long)]
    pub follow: bool,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
    /// A key id (RFC 7638 thumbprint) the domain's events must be signed with (repeatable).
    #[arg(long = "pin", allow_hyphen_values = true)]
    pub pins: Vec<String>,
    /// File of pinned key ids (one per line, or {"pins": [...]}).
    #[arg(long)]
    pub trust_file: Option<PathBuf>,
}

/// How a CLI command reaches a domain's HTTP endpoint.
#[derive(Debug, Args, Clone)]
pub struct HttpArgs {
    /// A dev domain's folder: takes the URL, CA and admin token from it.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Base URL of the domain's HTTP endpoint.
    #[arg(long)]
    pub url: Option<String>,
    /// CA certificate of the endpoint (PEM).
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// File holding the admin token (or, for commands that only read, the read token).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum ProjectionsCommand {
    /// Applied sequence, lag and readiness of every projection.
    Status {
        #[command(flatten)]
        http: HttpArgs,
        #[arg(long)]
        json: bool,
    },
    /// Replay the log into a fresh generation of a projection, then switch to it.
    Rebuild {
        /// The projection (registry, credentials, trust, policies, peers).
        name: String,
        #[command(flatten)]
        http: HttpArgs,
    },
}

/// Where an audit reads a domain's history from, and how it reaches the live domain.
#[derive(Debug, Args, Clone)]
pub struct AuditSource {
    /// A dev domain's folder: NATS URL, CA, auditor identity, HTTP URL and the pins.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// NATS URL(s), comma-separated.
    #[arg(long, conflicts_with = "file")]
    pub nats_url: Option<String>,
    /// An export (`accord audit export`) instead of a live log.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// CA certificate of the NATS servers and of the HTTP endpoint (PEM).
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// nkey seed file of the identity to connect as (an auditor's).
    #[arg(long)]
    pub creds: Option<PathBuf>,
    /// The log's stream.
    #[arg(long, default_value = "ACCORD_EVENTS")]
    pub stream: String,
    /// JetStream domain to address across a leaf-node boundary.
    #[arg(long)]
    pub js_domain: Option<String>,
    /// Key ids (RFC 7638 thumbprints) of the domain's event-signing and audit keys (repeatable).
    #[arg(long = "pin", allow_hyphen_values = true)]
    pub pins: Vec<String>,
    /// File of pinned key ids (one per line, or {"pins": [...]}).
    #[arg(long)]
    pub trust_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Tree size, root and the latest checkpoint of a running domain.
    Status {
        #[command(flatten)]
        http: HttpArgs,
        #[arg(long)]
        json: bool,
    },
    /// The latest checkpoint, as its signed note.
    Checkpoint {
        #[command(flatten)]
        http: HttpArgs,
    },
    /// The inclusion proof of an event, checked here against a checkpoint signed by a pinned
    /// audit key.
    Inclusion {
        /// Stream sequence of the event.
        #[arg(long)]
        seq: u64,
        /// Tree size (default: the latest checkpoint's).
        #[arg(long)]
        tree_size: Option<u64>,
        #[command(flatten)]
        http: HttpArgs,
        /// Audit key id (RFC 7638 thumbprint) pinned out of band (repeatable).
        #[arg(long = "pin", allow_hyphen_values = true)]
        pins: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// The consistency proof between two tree sizes (two checkpoints), checked here.
    Consistency {
        #[arg(long)]
        first: u64,
        #[arg(long)]
        second: u64,
        #[command(flatten)]
        http: HttpArgs,
        #[arg(long = "pin", allow_hyphen_values = true)]
        pins: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Replay a domain's history from sequence 1: every signature against the pins, the tree
    /// recomputed, every checkpoint's signature and root, checkpoints held elsewhere, the
    /// projections rebuilt and compared with the live ones. Exit 0 only when all hold.
    Verify {
        #[command(flatten)]
        source: AuditSource,
        /// Base URL of the live domain's HTTP endpoint, to compare projections with.
        #[arg(long)]
        url: Option<String>,
        /// Do not rebuild and compare the projections.
        #[arg(long)]
        no_projections: bool,
        /// A checkpoint (signed note file) held elsewhere: a fork from it is a failure
        /// (repeatable).
        #[arg(long = "checkpoint")]
        checkpoints: Vec<PathBuf>,
        /// Threads for signature checks (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
        /// The report as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Write the domain's history to a file that verifies offline.
    Export {
        #[command(flatten)]
        source: AuditSource,
        #[arg(long)]
        output: PathBuf,
    },
    /// Was a credential valid at a point of the history, and under which policy? The history
    /// is verified on the way.
    AsOf {
        /// Agent id or credential serial.
        target: String,
        /// State after this stream sequence.
        #[arg(long, conflicts_with = "time", required_unless_present = "time")]
        seq: Option<u64>,
        /// State at this instant (RFC 3339).
        #[arg(long)]
        time: Option<String>,
        #[command(flatten)]
        source: AuditSource,
        #[arg(long)]
        json: bool,
    },
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::Parser;

    /// A key id is base64url: it may start with `-`, and is still a value of `--pin`.
    #[test]
    fn a_pin_may_start_with_a_hyphen() {
        let kid = "-tsVnTQBBkjxikFjBxTse1z1Wi8iqMdPM0RO-4H82JA";
        for args in [
            vec![
                "accord", "audit", "verify", "--file", "h.jsonl", "--pin", kid,
            ],
            vec![
                "accord",
                "events",
                "tail",
                "--nats-url",
                "tls://x:1",
                "--pin",
                kid,
            ],
        ] {
            let parsed = Cli::try_parse_from(&args);
            assert!(parsed.is_ok(), "{args:?}: {parsed:?}");
        }
    }
}
