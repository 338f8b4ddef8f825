//! The ACA's commands: `accord csr check`, `accord revoke`, `accord agent provision|enroll|renew`.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::ExitCode;

use accord_agent::{AgentDir, Client, KeyType};
use accord_authority::csr::{CsrPolicy, check};
use accord_events::AgentId;
use anyhow::Context;
use serde_json::json;

use crate::cli::{AcaArgs, AgentCommand, CsrCommand, RevokeArgs};
use crate::commands::{HttpTarget, http_target, read_text, tokio, usage};
use crate::dev::DevPaths;

/// `accord csr check FILE`: exactly the checks of enrollment; exit 0 only for an acceptable
/// request, 1 for a refused one.
pub fn csr_command(cmd: CsrCommand) -> anyhow::Result<ExitCode> {
    let CsrCommand::Check {
        file,
        allow_rsa,
        json,
    } = cmd;
    let bytes = std::fs::read(&file).with_context(|| format!("{}", file.display()))?;
    let verdict = check(&bytes, &CsrPolicy { allow_rsa });
    match (&verdict, json) {
        (Ok(c), true) => println!(
            "{}",
            json!({
                "acceptable": true,
                "key_algorithm": c.algorithm,
                "key_thumbprint": c.thumbprint,
                "csr_digest": c.digest,
            })
        ),
        (Ok(c), false) => println!(
            "acceptable: {:?} key {}, request {}",
            c.algorithm, c.thumbprint, c.digest
        ),
        (Err(e), true) => println!(
            "{}",
            json!({"acceptable": false, "reason": e.kind(), "detail": e.to_string()})
        ),
        (Err(e), false) => println!("refused ({}): {e}", e.kind()),
    }
    Ok(if verdict.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Posts `body` to `path` with the admin token; the answer, or the server's problem as an error.
async fn admin_post(
    t: &HttpTarget,
    path: &str,
    body: &serde_json::Value,
) -> anyhow::Result<serde_json::Value> {
    let mut req = t.client.post(format!("{}{path}", t.url)).json(body);
    if let Some(tok) = &t.token {
        req = req.bearer_auth(tok);
    }
    let resp = req.send().await?;
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    if !status.is_success() {
        anyhow::bail!(
            "refused: {} ({})",
            body["title"].as_str().unwrap_or("?"),
            body["detail"].as_str().unwrap_or("")
        );
    }
    Ok(body)
}

pub fn revoke_command(args: RevokeArgs) -> anyhow::Result<ExitCode> {
    let reason: accord_events::catalogue::RevocationReason =
        serde_json::from_value(json!(args.reason)).map_err(|_| {
            usage(format!(
                "--reason {:?}: one of unspecified, keyCompromise, caCompromise, \
                 affiliationChanged, superseded, cessationOfOperation, certificateHold, \
                 privilegeWithdrawn, aaCompromise",
                args.reason
            ))
        })?;
    let t = http_target(&args.http)?;
    tokio()?.block_on(async move {
        let out = admin_post(
            &t,
            "/v1/revocations",
            &json!({"target": args.target, "reason": reason}),
        )
        .await?;
        let serials: Vec<&str> = out["serials"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str())
            .collect();
        println!(
            "revoked {} of agent {} at sequence {}",
            serials.join(", "),
            out["agent_id"].as_str().unwrap_or(""),
            out["seq"]
        );
        Ok(ExitCode::SUCCESS)
    })
}

/// The ACA's URL and TLS CA for the agent commands.
fn aca_client(a: &AcaArgs, fallback_url: Option<&str>) -> anyhow::Result<Client> {
    let dev = a.data_dir.as_ref().map(|d| DevPaths::new(d));
    let url = match (&a.url, &dev) {
        (Some(u), _) => u.clone(),
        (None, Some(p)) => format!("https://127.0.0.1:{}", p.read_state()?.http_port),
        (None, None) => fallback_url
            .map(str::to_owned)
            .ok_or_else(|| usage("give --url (or --data-dir of a dev domain)"))?,
    };
    let ca: Option<PathBuf> = a.ca.clone().or_else(|| dev.as_ref().map(|d| d.ca_cert()));
    let pem = match &ca {
        Some(p) => Some(std::fs::read(p).with_context(|| format!("--ca {}", p.display()))?),
        None => None,
    };
    Ok(Client::new(&url, pem.as_deref())?)
}

fn key_type(s: &str) -> anyhow::Result<KeyType> {
    s.parse::<KeyType>().map_err(usage)
}

pub fn agent_command(cmd: AgentCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AgentCommand::Provision {
            name,
            capabilities,
            token_out,
            json,
            http,
        } => {
            let t = http_target(&http)?;
            tokio()?.block_on(async move {
                let out = admin_post(
                    &t,
                    "/v1/agents",
                    &json!({"name": name, "capabilities": capabilities}),
                )
                .await?;
                let token = out["enrollment_token"].as_str().unwrap_or("").to_owned();
                if let Some(path) = &token_out {
                    let mut f = std::fs::OpenOptions::new()
                        .write(true)
                        .create(true)
                        .truncate(true)
                        .mode(0o600)
                        .open(path)
                        .with_context(|| format!("--token-out {}", path.display()))?;
                    f.write_all(token.as_bytes())?;
                }
                if json {
                    let mut o = out.clone();
                    if token_out.is_some()
                        && let Some(m) = o.as_object_mut()
                    {
                        m.remove("enrollment_token");
                    }
                    println!("{o}");
                } else {
                    println!("{}", out["agent_id"].as_str().unwrap_or(""));
                    eprintln!(
                        "agent {} ({}); enrollment token {} until {}",
                        out["agent_id"].as_str().unwrap_or(""),
                        out["spiffe_id"].as_str().unwrap_or(""),
                        token_out.as_ref().map_or(
                            "not written (give --token-out)".to_owned(),
                            |p| format!("in {}", p.display())
                        ),
                        out["enrollment_expires_at"].as_str().unwrap_or("")
                    );
                }
                Ok(ExitCode::SUCCESS)
            })
        }
        AgentCommand::Enroll {
            agent_id,
            enrollment_token_file,
            dir,
            key_type: kt,
            capabilities,
            aca,
        } => {
            let agent = AgentId::parse(&agent_id).map_err(|e| usage(format!("--agent-id: {e}")))?;
            let token = read_text(&enrollment_token_file)?;
            let kt = key_type(&kt)?;
            let client = aca_client(&aca, None)?;
            let caps = (!capabilities.is_empty()).then_some(capabilities);
            tokio()?.block_on(async move {
                let s = accord_agent::enroll_into(
                    &client,
                    &AgentDir::new(&dir),
                    &agent,
                    &token,
                    kt,
                    caps,
                )
                .await?;
                println!(
                    "enrolled {} serial {} until {} (in {})",
                    s.spiffe_id,
                    s.serial,
                    s.not_after,
                    dir.display()
                );
                Ok(ExitCode::SUCCESS)
            })
        }
        AgentCommand::WatchRevocations(args) => crate::watch::watch_revocations(args),
        AgentCommand::Renew { dir, new_key, aca } => {
            let d = AgentDir::new(&dir);
            let state = d.read_state()?;
            let client = aca_client(&aca, Some(&state.url))?;
            let nk = new_key.as_deref().map(key_type).transpose()?;
            tokio()?.block_on(async move {
                let s = accord_agent::renew_in(&client, &d, nk).await?;
                println!(
                    "renewed {} serial {} until {}{}",
                    s.spiffe_id,
                    s.serial,
                    s.not_after,
                    if nk.is_some() { " (new key)" } else { "" }
                );
                Ok(ExitCode::SUCCESS)
            })
        }
    }
}
