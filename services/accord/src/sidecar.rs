//! `accord agent sidecar`: the agent library's sidecar (`accord_agent::sidecar`) on the command
//! line. Stops on SIGINT or SIGTERM, removing its socket.

use std::process::ExitCode;

use accord_agent::AgentDir;
use accord_agent::sidecar::{Config, Enrollment, Feed, Registration, Step};
use accord_events::AgentId;
use anyhow::Context;

use crate::aca::{aca_client, key_type};
use crate::cli::SidecarArgs;
use crate::commands::{read_text, tokio, usage};
use crate::dev::DevPaths;

fn print(json: bool, s: &Step) {
    let (step, detail) = match s {
        Step::Enrolled { serial } => ("enrolled", serde_json::json!({ "serial": serial })),
        Step::Registered { serial, outcome } => (
            "registered",
            serde_json::json!({ "serial": serial, "outcome": outcome }),
        ),
        Step::Serving { socket } => ("serving", serde_json::json!({ "socket": socket })),
        Step::Renewed { serial } => ("renewed", serde_json::json!({ "serial": serial })),
        Step::Withdrawn { reason } => ("withdrawn", serde_json::json!({ "reason": reason })),
    };
    if json {
        let mut v = detail;
        if let Some(o) = v.as_object_mut() {
            o.insert("step".into(), step.into());
        }
        println!("{v}");
    } else {
        println!("{step} {detail}");
    }
}

pub fn sidecar(a: SidecarArgs) -> anyhow::Result<ExitCode> {
    // its log on standard error (RUST_LOG; warnings by default), its steps on standard output
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let dir = AgentDir::new(&a.dir);
    let aca = aca_client(&a.aca, dir.read_state().ok().map(|s| s.url).as_deref())?
        .with_lifetime(a.lifetime_secs);
    let dev = a.aca.data_dir.as_ref().map(|d| DevPaths::new(d));
    let ca_path = a
        .aca
        .ca
        .clone()
        .or_else(|| dev.as_ref().map(DevPaths::ca_cert));
    let ca = ca_path
        .as_ref()
        .map(|p| std::fs::read(p).with_context(|| format!("--ca {}", p.display())))
        .transpose()?;
    let enrollment = match (&a.agent_id, &a.enrollment_token_file) {
        (Some(id), Some(f)) => Some(Enrollment {
            agent_id: AgentId::parse(id).map_err(|e| usage(format!("--agent-id: {e}")))?,
            token: read_text(f)?,
            key_type: key_type(&a.key_type)?,
            capabilities: (!a.capabilities.is_empty()).then(|| a.capabilities.clone()),
            evidence: match &a.evidence_dir {
                Some(d) => accord_agent::evidence::EvidenceSource::from_dir(d)?,
                None => Default::default(),
            },
        }),
        _ => None,
    };
    let registration = if a.record.name.is_some() || a.record.record.is_some() {
        let url = match (&a.registry_url, &dev) {
            (Some(u), _) => u.clone(),
            (None, Some(d)) => format!("https://127.0.0.1:{}", d.read_state()?.registry_port),
            (None, None) => {
                return Err(usage("give --registry-url (or --data-dir of a dev domain)"));
            }
        };
        Some(Registration {
            url,
            ca_pem: ca
                .clone()
                .ok_or_else(|| usage("give --ca (or --data-dir of a dev domain)"))?,
            description: crate::registry_cmd::description(&a.record)?,
        })
    } else {
        None
    };
    let feed = match &a.nats_url {
        Some(u) => Some(Feed {
            nats_url: u.clone(),
            ca_pem: ca
                .clone()
                .ok_or_else(|| usage("give --ca (or --data-dir of a dev domain)"))?,
        }),
        None => None,
    };
    if !(0.1..=0.95).contains(&a.renew_at) {
        return Err(usage("--renew-at: a fraction between 0.1 and 0.95"));
    }
    let cfg = Config {
        dir,
        aca,
        enrollment,
        registration,
        feed,
        socket: a.socket.clone(),
        allowed_uids: a.allow_uids.clone(),
        renew_at: a.renew_at,
    };
    let json = a.json;
    tokio()?.block_on(async move {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let printer = tokio::spawn(async move {
            while let Some(s) = rx.recv().await {
                print(json, &s);
            }
        });
        let shutdown = async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("a SIGTERM handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        };
        let out = accord_agent::sidecar::run(cfg, Some(tx), shutdown).await;
        let _ = printer.await;
        out?;
        Ok(ExitCode::SUCCESS)
    })
}
