//! What each command does.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use accord_events::{DomainId, KeyId, TrustDomain};
use anyhow::Context;

use crate::UsageError;
use crate::cli::{
    Cli, Command, DevArgs, EventsCommand, HttpArgs, NatsArgs, ProjectionsCommand, TailArgs,
};
use crate::config::{self, SecretRef};
use crate::dev::{self, DevNats, DevOptions, DevPaths};
use crate::runtime::{self, Runtime};
use crate::tail::{self, TailOptions};
use crate::telemetry;

pub(crate) fn usage(msg: impl Into<String>) -> anyhow::Error {
    UsageError(msg.into()).into()
}

pub(crate) fn tokio() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn install_crypto() {
    // one provider in the whole process: aws-lc-rs
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

pub fn run(cli: Cli, env: Vec<(String, String)>) -> anyhow::Result<ExitCode> {
    install_crypto();
    match cli.command {
        Command::Dev(args) => dev_command(args, env),
        Command::Serve(args) => {
            let cfg = config::load(&args.config, &env)?;
            tokio()?.block_on(async move {
                let tel = telemetry::init(&cfg.telemetry)?;
                let rt = Arc::new(Runtime::start(cfg, tel.metrics.clone()).await?);
                let http = runtime::serve_http(rt.clone()).await?;
                let registry = crate::registry::serve(rt.clone()).await?;
                tracing::info!(%http, ?registry, "accord serve running");
                wait_for_signal().await;
                rt.stop();
                tokio::time::sleep(Duration::from_millis(200)).await;
                drop(tel);
                Ok(ExitCode::SUCCESS)
            })
        }
        Command::Events {
            command: EventsCommand::Tail(args),
        } => tail_command(args, env),
        Command::Projections { command } => projections_command(command),
        Command::Policy { command } => policy_command(command),
        Command::Csr { command } => crate::aca::csr_command(command),
        Command::Revoke(args) => crate::aca::revoke_command(args),
        Command::Agent { command } => crate::aca::agent_command(command),
        Command::Registry { command } => crate::registry_cmd::command(command),
        Command::Trust { command } => crate::aca::trust_command(command),
        Command::Audit { command } => crate::audit::command(command),
    }
}

fn load_bundle(dir: &Path, name: &str) -> anyhow::Result<accord_policy::Bundle> {
    accord_policy::Bundle::load_dir(name, dir).map_err(|e| usage(format!("{}: {e}", dir.display())))
}

fn policy_command(cmd: crate::cli::PolicyCommand) -> anyhow::Result<ExitCode> {
    use crate::cli::PolicyCommand as P;
    match cmd {
        P::Test { dir, json } => {
            let bundle = load_bundle(&dir, "default")?;
            let report = bundle.run_tests().map_err(|e| anyhow::anyhow!("{e}"))?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                for p in &report.passed {
                    println!("PASS {p}");
                }
                for (n, why) in &report.failed {
                    println!("FAIL {n}: {}", why.lines().next().unwrap_or(""));
                }
                println!(
                    "{} passed, {} failed ({} files, digest {})",
                    report.passed.len(),
                    report.failed.len(),
                    bundle.files.len(),
                    bundle.digest()
                );
            }
            Ok(if report.failed.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        P::Publish { dir, bundle, http } => {
            let b = load_bundle(&dir, &bundle)?;
            // refuse early, here; the domain checks again before it appends
            b.check()
                .map_err(|e| anyhow::anyhow!("bundle refused: {e}"))?;
            let t = http_target(&http)?;
            tokio()?.block_on(async move {
                let mut req = t
                    .client
                    .post(format!("{}/v1/policies/{bundle}", t.url))
                    .json(&serde_json::json!({ "files": b.files }));
                if let Some(tok) = &t.token {
                    req = req.bearer_auth(tok);
                }
                let resp = req.send().await?;
                let status = resp.status();
                let body: serde_json::Value = resp.json().await.unwrap_or_default();
                if !status.is_success() {
                    anyhow::bail!(
                        "publish refused: {} ({})",
                        body["title"].as_str().unwrap_or("?"),
                        body["detail"].as_str().unwrap_or("")
                    );
                }
                if body["published"] == true {
                    println!(
                        "published {bundle} version {} ({}), sequence {}",
                        body["version"],
                        body["digest"].as_str().unwrap_or(""),
                        body["seq"]
                    );
                } else {
                    println!(
                        "{bundle} is already at these files (version {})",
                        body["version"]
                    );
                }
                Ok(ExitCode::SUCCESS)
            })
        }
        P::Eval {
            policy,
            input,
            dir,
            http,
        } => {
            let input: serde_json::Value = serde_json::from_slice(
                &std::fs::read(&input).with_context(|| format!("--input {}", input.display()))?,
            )
            .map_err(|e| usage(format!("--input: not JSON: {e}")))?;
            if dir.is_none() && (http.data_dir.is_some() || http.url.is_some()) {
                let t = http_target(&http)?;
                return tokio()?.block_on(async move {
                    let mut req = t
                        .client
                        .post(format!("{}/v1/decide/{policy}", t.url))
                        .json(&input);
                    if let Some(tok) = &t.token {
                        req = req.bearer_auth(tok);
                    }
                    let body: serde_json::Value =
                        req.send().await?.error_for_status()?.json().await?;
                    println!("{body}");
                    Ok(ExitCode::SUCCESS)
                });
            }
            let bundle = match &dir {
                Some(d) => load_bundle(d, "local")?,
                None => accord_policy::Bundle::library(),
            };
            let pdp = accord_policy::LocalPdp::new();
            let meta = accord_policy::BundleRef {
                name: bundle.name.clone(),
                version: 0,
                digest: bundle.digest(),
                published_seq: 0,
            };
            pdp.load(&bundle, meta)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let d = pdp
                .decide(&policy, &input)
                .map_err(|e| usage(e.to_string()))?;
            println!("{}", serde_json::to_string(&d)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn wait_for_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

fn dev_command(args: DevArgs, env: Vec<(String, String)>) -> anyhow::Result<ExitCode> {
    let bin = crate::tools::find_nats_server(&env)?;
    let opts = DevOptions {
        data_dir: args.data_dir.clone(),
        domain: DomainId::parse(&args.domain).map_err(|e| usage(format!("--domain: {e}")))?,
        trust_domain: TrustDomain::parse(&args.trust_domain)
            .map_err(|e| usage(format!("--trust-domain: {e}")))?,
        database_url: args.database_url.clone(),
        database_ca: args.database_ca.clone(),
        nats_port: args.nats_port,
        http_port: args.http_port,
        hsm: args.hsm,
    };
    let (paths, state, _lock) = dev::prepare(&opts)?;
    let cfg = config::load_for(&paths.config(), &env, config::Profile::Dev)?;
    tokio()?.block_on(async move {
        let tel = telemetry::init(&cfg.telemetry)?;
        let mut nats = DevNats::start(&bin, &paths, &state)?;
        let rt = match Runtime::start(cfg, tel.metrics.clone()).await {
            Ok(rt) => Arc::new(rt),
            Err(e) => {
                nats.stop();
                return Err(e);
            }
        };
        let http = runtime::serve_http(rt.clone()).await?;
        let registry = crate::registry::serve(rt.clone()).await?;
        let endpoints = serde_json::json!({
            "registry_url": registry.map(|a| format!("https://{a}")),
            "domain": state.domain,
            "trust_domain": state.trust_domain,
            "nats_url": format!("nats://127.0.0.1:{}", state.nats_port),
            "nats_ca": paths.ca_cert(),
            "http_url": format!("https://{http}"),
            "http_ca": paths.ca_cert(),
            "auditor_creds": paths.nkey("auditor"),
            "event_signing_key": rt.store.signing_key().kid,
            "genesis_seq": rt.genesis.stream_seq,
            "data_dir": paths.root,
            "projections": if rt.config.postgres.is_some() { "postgresql" } else { "memory" },
        });
        let mut out = std::io::stdout();
        if args.json {
            writeln!(out, "{endpoints}")?;
        } else {
            writeln!(
                out,
                "accord dev: domain {} ({})",
                state.domain, state.trust_domain
            )?;
            writeln!(
                out,
                "  NATS   nats://127.0.0.1:{}  (TLS; CA {})",
                state.nats_port,
                paths.ca_cert().display()
            )?;
            writeln!(out, "  HTTP   https://{http}  (same CA)")?;
            writeln!(out, "  event-signing key {}", rt.store.signing_key().kid)?;
            writeln!(
                out,
                "  auditor identity  {}",
                paths.nkey("auditor").display()
            )?;
            writeln!(out, "  data   {}", paths.root.display())?;
            writeln!(
                out,
                "Ctrl-C stops it; running it again on the same folder resumes the domain."
            )?;
        }
        out.flush()?;
        wait_for_signal().await;
        rt.stop();
        tokio::time::sleep(Duration::from_millis(200)).await;
        nats.stop();
        drop(tel);
        Ok(ExitCode::SUCCESS)
    })
}

/// Connection settings of a CLI command: flags first, a dev folder's defaults after.
pub(crate) struct NatsTarget {
    pub(crate) url: String,
    pub(crate) ca: PathBuf,
    pub(crate) creds: SecretRef,
    pub(crate) api_prefix: String,
    pub(crate) stream: String,
}

pub(crate) fn nats_target(a: &NatsArgs) -> anyhow::Result<NatsTarget> {
    let dev = a.data_dir.as_ref().map(|d| DevPaths::new(d));
    let state = dev.as_ref().map(DevPaths::read_state).transpose()?;
    let url = a
        .nats_url
        .clone()
        .or_else(|| {
            state
                .as_ref()
                .map(|s| format!("tls://127.0.0.1:{}", s.nats_port))
        })
        .ok_or_else(|| usage("give --nats-url (or --data-dir of a dev domain)"))?;
    let ca =
        a.ca.clone()
            .or_else(|| dev.as_ref().map(|d| d.ca_cert()))
            .ok_or_else(|| usage("give --ca (the CA of the NATS servers)"))?;
    let creds = a
        .creds
        .clone()
        .or_else(|| dev.as_ref().map(|d| d.nkey("auditor")))
        .ok_or_else(|| usage("give --creds (an nkey seed file)"))?;
    let api_prefix = match &a.js_domain {
        Some(d) => format!("$JS.{d}.API"),
        None => "$JS.API".into(),
    };
    Ok(NatsTarget {
        url,
        ca,
        creds: SecretRef::File(creds),
        api_prefix,
        stream: a.stream.clone(),
    })
}

fn tail_command(args: TailArgs, _env: Vec<(String, String)>) -> anyhow::Result<ExitCode> {
    let target = nats_target(&args.nats)?;
    let mut pins: Vec<KeyId> = args
        .pins
        .iter()
        .map(|p| KeyId::parse(p).map_err(|e| usage(format!("--pin {p:?}: {e}"))))
        .collect::<anyhow::Result<_>>()?;
    if let Some(f) = &args.trust_file {
        pins.extend(tail::read_trust_file(f)?);
    }
    if pins.is_empty()
        && let Some(d) = &args.nats.data_dir
    {
        // a dev domain's own key, read from its folder (out of band with respect to the log)
        pins.push(tail::pin_of_key_file(&DevPaths::new(d).event_key())?);
    }
    if pins.is_empty() {
        return Err(usage(
            "no pinned key ids: give --pin KID or --trust-file FILE",
        ));
    }
    let opts = TailOptions {
        from: args.from,
        types: args.types,
        follow: args.follow,
        json: args.json,
        pins,
        stream: target.stream.clone(),
        api_prefix: target.api_prefix.clone(),
    };
    tokio()?.block_on(async move {
        let client =
            runtime::connect(&target.url, &target.ca, &target.creds, "accord-events-tail").await?;
        let mut out = std::io::stdout();
        let failures = if opts.follow {
            tokio::select! {
                r = tail::run(client, &opts, &mut out) => r?,
                _ = wait_for_signal() => 0,
            }
        } else {
            tail::run(client, &opts, &mut out).await?
        };
        if failures > 0 {
            eprintln!("accord: {failures} event(s) failed verification");
            return Ok(ExitCode::from(1));
        }
        Ok(ExitCode::SUCCESS)
    })
}

pub(crate) struct HttpTarget {
    pub(crate) url: String,
    pub(crate) client: reqwest::Client,
    pub(crate) token: Option<String>,
}

pub(crate) fn http_target(a: &HttpArgs) -> anyhow::Result<HttpTarget> {
    let dev = a.data_dir.as_ref().map(|d| DevPaths::new(d));
    let state = dev.as_ref().map(DevPaths::read_state).transpose()?;
    let url = a
        .url
        .clone()
        .or_else(|| {
            state
                .as_ref()
                .map(|s| format!("https://127.0.0.1:{}", s.http_port))
        })
        .ok_or_else(|| usage("give --url (or --data-dir of a dev domain)"))?;
    let ca: Option<PathBuf> = a.ca.clone().or_else(|| dev.as_ref().map(|d| d.ca_cert()));
    let token_file: Option<PathBuf> = a
        .token_file
        .clone()
        .or_else(|| dev.as_ref().map(|d| d.admin_token()));
    let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(30));
    if let Some(ca) = &ca {
        let pem = std::fs::read(ca).with_context(|| format!("--ca {}", ca.display()))?;
        builder = builder.tls_certs_only([reqwest::Certificate::from_pem(&pem)?]);
    }
    let token = match token_file {
        Some(f) => Some(read_text(&f)?),
        None => None,
    };
    Ok(HttpTarget {
        url: url.trim_end_matches('/').to_owned(),
        client: builder.build()?,
        token,
    })
}

pub(crate) fn read_text(p: &Path) -> anyhow::Result<String> {
    Ok(std::fs::read_to_string(p)
        .with_context(|| format!("{}", p.display()))?
        .trim()
        .to_owned())
}

fn projections_command(cmd: ProjectionsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ProjectionsCommand::Status { http, json } => {
            let t = http_target(&http)?;
            tokio()?.block_on(async move {
                let v: serde_json::Value = t
                    .client
                    .get(format!("{}/v1/projections", t.url))
                    .send()
                    .await?
                    .error_for_status()?
                    .json()
                    .await?;
                if json {
                    println!("{v}");
                } else {
                    println!("log last sequence {}", v["log_last_seq"]);
                    println!(
                        "{:<14} {:>10} {:>10} {:>8} {:>6}  error",
                        "projection", "applied", "lag", "gen", "ready"
                    );
                    for p in v["projections"].as_array().into_iter().flatten() {
                        println!(
                            "{:<14} {:>10} {:>10} {:>8} {:>6}  {}",
                            p["name"].as_str().unwrap_or(""),
                            p["applied"].to_string(),
                            p["lag"].to_string(),
                            p["generation"].to_string(),
                            p["ready"].to_string(),
                            p["error"].as_str().unwrap_or("")
                        );
                    }
                    // entries every reader skipped: not authentic events of this domain
                    for f in v["foreign_messages"].as_array().into_iter().flatten() {
                        println!(
                            "foreign message at sequence {} ({}), skipped: {} [{}]",
                            f["seq"],
                            f["kind"].as_str().unwrap_or(""),
                            f["subject"].as_str().unwrap_or(""),
                            f["detail"].as_str().unwrap_or("")
                        );
                    }
                }
                Ok(ExitCode::SUCCESS)
            })
        }
        ProjectionsCommand::Rebuild { name, http } => {
            let t = http_target(&http)?;
            tokio()?.block_on(async move { rebuild(t, &name).await })
        }
    }
}

async fn rebuild(t: HttpTarget, name: &str) -> anyhow::Result<ExitCode> {
    let before: serde_json::Value = t
        .client
        .get(format!("{}/v1/projections/{name}", t.url))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let old_generation = before["generation"].as_u64().unwrap_or(0);
    let mut req = t
        .client
        .post(format!("{}/v1/projections/{name}/rebuild", t.url));
    if let Some(tok) = &t.token {
        req = req.bearer_auth(tok);
    }
    let resp = req.send().await?;
    if !resp.status().is_success() {
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        anyhow::bail!(
            "rebuild refused: {} ({})",
            body["title"].as_str().unwrap_or("?"),
            body["detail"].as_str().unwrap_or("")
        );
    }
    let bar = indicatif::ProgressBar::new(1);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:40}] {pos}/{len} events ({per_sec}, {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(format!("rebuilding {name}"));
    loop {
        let p: serde_json::Value = t
            .client
            .get(format!("{}/v1/projections/{name}", t.url))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        match p.get("rebuilding").filter(|r| !r.is_null()) {
            Some(r) => {
                bar.set_length(r["target"].as_u64().unwrap_or(1).max(1));
                bar.set_position(r["applied"].as_u64().unwrap_or(0));
            }
            None if p["generation"].as_u64().unwrap_or(0) > old_generation => {
                bar.finish_with_message(format!("rebuilt {name}: generation {}", p["generation"]));
                return Ok(ExitCode::SUCCESS);
            }
            None => {}
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
