//! The ACA's commands: `accord csr check`, `accord revoke`, `accord agent provision|enroll|renew`.

use std::path::PathBuf;
use std::process::ExitCode;

use accord_agent::{AgentDir, Client, KeyType};
use accord_authority::csr::{CsrPolicy, check};
use accord_events::AgentId;
use anyhow::Context;
use serde_json::json;

use crate::cli::{AcaArgs, AgentCommand, CsrCommand, RevokeArgs, TrustCommand};
use crate::commands::{HttpTarget, http_target, read_text, tokio, usage};
use crate::dev::DevPaths;

mod owner;

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
pub(crate) fn aca_client(a: &AcaArgs, fallback_url: Option<&str>) -> anyhow::Result<Client> {
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

pub(crate) fn key_type(s: &str) -> anyhow::Result<KeyType> {
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
                    crate::dev::write_secret(path, token.as_bytes())
                        .with_context(|| format!("--token-out {}", path.display()))?;
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
            evidence_dir,
            aca,
        } => {
            let agent = AgentId::parse(&agent_id).map_err(|e| usage(format!("--agent-id: {e}")))?;
            let token = read_text(&enrollment_token_file)?;
            let kt = key_type(&kt)?;
            let client = aca_client(&aca, None)?;
            let caps = (!capabilities.is_empty()).then_some(capabilities);
            let src = match &evidence_dir {
                Some(d) => accord_agent::evidence::EvidenceSource::from_dir(d)?,
                None => Default::default(),
            };
            tokio()?.block_on(async move {
                let s = accord_agent::enroll_with_evidence(
                    &client,
                    &AgentDir::new(&dir),
                    &agent,
                    &token,
                    kt,
                    caps,
                    &src,
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
        AgentCommand::Keygen { dir, key_type: kt } => {
            let key = AgentDir::new(&dir).ensure_key(key_type(&kt)?)?;
            let signer = accord_authority::signer::SoftwareKey::from_pkcs8(&key, "agent key")
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            use accord_authority::signer::SignerExt;
            println!("{}", signer.jwk().1);
            Ok(ExitCode::SUCCESS)
        }
        AgentCommand::ReportCompromise {
            agent_id,
            details,
            http,
        } => lifecycle(
            &agent_id,
            json!({"event": "compromise_reported", "details": details}),
            &http,
        ),
        AgentCommand::Decommission {
            agent_id,
            reason,
            http,
        } => lifecycle(
            &agent_id,
            json!({"event": "decommissioned", "reason": reason}),
            &http,
        ),
        AgentCommand::UnbindOwner {
            agent_id,
            reason,
            http,
        } => lifecycle(
            &agent_id,
            json!({"event": "owner_unbound", "reason": reason}),
            &http,
        ),
        AgentCommand::RoleGrant {
            agent_id,
            role,
            scope,
            lifetime_secs,
            out,
            http,
        } => {
            let agent = AgentId::parse(&agent_id).map_err(|e| usage(format!("--agent-id: {e}")))?;
            let t = http_target(&http)?;
            tokio()?.block_on(async move {
                let r = admin_post(
                    &t,
                    &format!("/v1/agents/{agent}/role-grants"),
                    &json!({"role": role, "scope": scope, "lifetime_secs": lifetime_secs}),
                )
                .await?;
                write_private(&out, r["role_grant"].as_str().unwrap_or("").as_bytes())?;
                println!("role grant until {} in {}", r["expires_at"], out.display());
                Ok(ExitCode::SUCCESS)
            })
        }
        AgentCommand::WatchRevocations(args) => crate::watch::watch_revocations(args),
        AgentCommand::Sidecar(args) => crate::sidecar::sidecar(*args),
        AgentCommand::OwnerNonce {
            agent_id,
            enrollment_token_file,
            dir,
            json,
            aca,
        } => owner::owner_nonce(agent_id, enrollment_token_file, dir, json, &aca),
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

fn write_private(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    crate::dev::write_secret(path, bytes)
}

fn lifecycle(
    agent_id: &str,
    body: serde_json::Value,
    http: &crate::cli::HttpArgs,
) -> anyhow::Result<ExitCode> {
    let agent = AgentId::parse(agent_id).map_err(|e| usage(format!("--agent-id: {e}")))?;
    let t = http_target(http)?;
    tokio()?.block_on(async move {
        let r = admin_post(&t, &format!("/v1/agents/{agent}/lifecycle"), &body).await?;
        let n = r["revoked"].as_array().map_or(0, Vec::len);
        println!(
            "{} recorded for agent {agent}; {n} credential(s) revoked at sequence {}",
            body["event"].as_str().unwrap_or(""),
            r["seq"]
        );
        Ok(ExitCode::SUCCESS)
    })
}

fn read_json(path: &std::path::Path) -> anyhow::Result<serde_json::Value> {
    let bytes = std::fs::read(path).with_context(|| format!("{}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("{} is not JSON", path.display()))
}

fn jwks_keys(path: &std::path::Path) -> anyhow::Result<serde_json::Value> {
    let v = read_json(path)?;
    Ok(v.get("keys").cloned().unwrap_or(v))
}

/// `accord trust ...`: one change of the trust material through the ACA (which checks it,
/// appends the event and waits until its projection shows it).
pub fn trust_command(cmd: TrustCommand) -> anyhow::Result<ExitCode> {
    let (http, body) = match cmd {
        TrustCommand::List { http } => {
            let t = http_target(&http)?;
            return tokio()?.block_on(async move {
                let mut req = t.client.get(format!("{}/v1/trust", t.url));
                if let Some(tok) = &t.token {
                    req = req.bearer_auth(tok);
                }
                let v: serde_json::Value = req.send().await?.error_for_status()?.json().await?;
                println!("{}", serde_json::to_string_pretty(&v)?);
                Ok(ExitCode::SUCCESS)
            });
        }
        TrustCommand::AddAnchor { id, pem, http } => (
            http,
            json!({"op": "add_anchor", "material": {"anchor_id": id, "certificates_pem": read_text(&pem)?}}),
        ),
        TrustCommand::RevokeEnvironmentCertificate {
            anchor,
            pem,
            fingerprint,
            reason,
            http,
        } => {
            let mut m = json!({"anchor_id": anchor, "reason": reason});
            if let Some(p) = pem {
                m["certificate_pem"] = read_text(&p)?.into();
            }
            if let Some(f) = fingerprint {
                m["fingerprint"] = f.into();
            }
            (
                http,
                json!({"op": "revoke_environment_certificate", "material": m}),
            )
        }
        TrustCommand::AddVerifier {
            id,
            reference_values,
            http,
        } => (
            http,
            json!({"op": "add_verifier", "material": {
                "verifier_id": id, "keys": [], "reference_values": read_json(&reference_values)?}}),
        ),
        TrustCommand::AddProvider {
            id,
            name,
            jwks,
            capabilities,
            http,
        } => (
            http,
            json!({"op": "add_provider", "material": {
                "provider_id": id, "name": name, "endorsement_keys": jwks_keys(&jwks)?,
                "endorsable_capabilities": capabilities}}),
        ),
        TrustCommand::AddIdp {
            id,
            issuer,
            audiences,
            jwks,
            http,
        } => (
            http,
            json!({"op": "add_identity_provider", "material": {
                "idp_id": id, "issuer": issuer, "audiences": audiences, "keys": jwks_keys(&jwks)?}}),
        ),
        TrustCommand::Remove {
            kind,
            id,
            reason,
            http,
        } => {
            let (op, field) = match kind.as_str() {
                "anchor" => ("remove_anchor", "anchor_id"),
                "verifier" => ("remove_verifier", "verifier_id"),
                "provider" => ("remove_provider", "provider_id"),
                "idp" => ("remove_identity_provider", "idp_id"),
                other => {
                    return Err(usage(format!(
                        "{other:?}: anchor, verifier, provider or idp"
                    )));
                }
            };
            (
                http,
                json!({"op": op, "material": {field: id, "reason": reason}}),
            )
        }
        TrustCommand::SetAibomDenyList { file, http } => (
            http,
            json!({"op": "set_aibom_deny_list", "material": read_json(&file)?}),
        ),
    };
    let t = http_target(&http)?;
    tokio()?.block_on(async move {
        let r = admin_post(&t, "/v1/trust", &body).await?;
        println!(
            "{} {} at sequence {}",
            r["event"].as_str().unwrap_or(""),
            r["material_id"].as_str().unwrap_or(""),
            r["seq"]
        );
        Ok(ExitCode::SUCCESS)
    })
}
