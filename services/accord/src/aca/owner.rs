//! `accord agent owner-nonce`: the single-use nonce an owner's ID token must carry to bind
//! this agent (ADR 0010, "An ID token binds one agent, once").

use std::path::PathBuf;
use std::process::ExitCode;

use accord_agent::AgentDir;
use accord_agent::evidence::NonceAuth;
use accord_events::AgentId;

use super::aca_client;
use crate::cli::AcaArgs;
use crate::commands::{read_text, tokio, usage};

/// What the nonce is asked with.
enum Asker {
    /// The enrollment token (before enrollment).
    Enrollment(String),
    /// An enrolled agent's folder: its key and identity token (a proof by the key).
    Credential { key: Vec<u8>, wit: String },
}

/// Asks with the enrollment token, or with the credential of an agent folder; prints the
/// nonce (the JSON answer with `json`).
pub(super) fn owner_nonce(
    agent_id: Option<String>,
    token_file: Option<PathBuf>,
    dir: Option<PathBuf>,
    json: bool,
    aca: &AcaArgs,
) -> anyhow::Result<ExitCode> {
    let (agent, client, asker) = match (dir, agent_id, token_file) {
        (Some(d), _, _) => {
            let d = AgentDir::new(&d);
            let state = d.read_state()?;
            let client = aca_client(aca, Some(&state.url))?;
            let asker = Asker::Credential {
                key: d.read_key()?,
                wit: d.read_wit()?,
            };
            (state.agent_id, client, asker)
        }
        (None, Some(id), Some(f)) => {
            let agent = AgentId::parse(&id).map_err(|e| usage(format!("--agent-id: {e}")))?;
            (
                agent,
                aca_client(aca, None)?,
                Asker::Enrollment(read_text(&f)?),
            )
        }
        _ => {
            return Err(usage(
                "give --dir, or --agent-id with --enrollment-token-file",
            ));
        }
    };
    let auth = match &asker {
        Asker::Enrollment(t) => NonceAuth::Enrollment(t),
        Asker::Credential { key, wit } => NonceAuth::Credential { key, wit },
    };
    tokio()?.block_on(async {
        let n = client.owner_nonce(&agent, auth).await?;
        if json {
            println!("{}", serde_json::to_string(&n)?);
        } else {
            println!("{}", n.nonce);
            eprintln!(
                "owner nonce for agent {agent}, single use, until {} (Unix time): the owner's \
                 identity provider puts it in the ID token (OIDC authentication request \
                 nonce=<it>); the token goes into the evidence folder as owner-id-token.jwt",
                n.expires_at
            );
        }
        Ok(ExitCode::SUCCESS)
    })
}
