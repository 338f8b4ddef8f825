//! `accord audit ...`: the auditor's commands. Histories come from a live log (NATS, with
//! read-only auditor credentials) or from an export file; keys are pinned out of band.

use std::io::{BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use accord_audit::asof::{AsOf, Cutoff, Target};
use accord_audit::export::{self, ExportHeader, ExportReader};
use accord_audit::log::{ConsistencyProof, InclusionProof, check_served_checkpoint};
use accord_audit::note::{NoteKey, origin_of};
use accord_audit::rebuild::Rebuild;
use accord_audit::verify::{Auditor, ProjectionCheck, Report, VerifyOptions};
use accord_events::{DomainKey, KeyId, Timestamp, TrustDomain};
use accord_store::reader::{LogEntry, LogReader};
use anyhow::Context;
use futures::StreamExt;

use crate::cli::{AuditCommand, AuditSource, HttpArgs, NatsArgs};
use crate::commands::{HttpTarget, http_target, nats_target, tokio, usage};
use crate::dev::DevPaths;
use crate::{runtime, tail};

/// Entries handed to the verifier at once.
const BATCH: usize = 4096;

pub fn command(cmd: AuditCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AuditCommand::Status { http, json } => status(&http, json),
        AuditCommand::Checkpoint { http } => checkpoint(&http),
        AuditCommand::Inclusion {
            seq,
            tree_size,
            http,
            pins,
            json,
        } => {
            let mut q = format!("seq={seq}");
            if let Some(t) = tree_size {
                q.push_str(&format!("&tree_size={t}"));
            }
            proof::<InclusionProof>(&http, &pins, json, "inclusion", &q)
        }
        AuditCommand::Consistency {
            first,
            second,
            http,
            pins,
            json,
        } => proof::<ConsistencyProof>(
            &http,
            &pins,
            json,
            "consistency",
            &format!("first={first}&second={second}"),
        ),
        AuditCommand::Verify {
            source,
            url,
            no_projections,
            checkpoints,
            threads,
            json,
        } => verify(&source, url, no_projections, &checkpoints, threads, json),
        AuditCommand::Export { source, output } => export_command(&source, &output),
        AuditCommand::AsOf {
            target,
            seq,
            time,
            source,
            json,
        } => as_of(&target, seq, time.as_deref(), &source, json),
    }
}

async fn get_json(t: &HttpTarget, path: &str) -> anyhow::Result<serde_json::Value> {
    let mut req = t.client.get(format!("{}{path}", t.url));
    // the live digests need the admin or the read token
    if let Some(tok) = &t.token {
        req = req.bearer_auth(tok);
    }
    let r = req.send().await?;
    let status = r.status();
    let body: serde_json::Value = r.json().await.unwrap_or_default();
    if !status.is_success() {
        anyhow::bail!(
            "{path}: {status}: {} ({})",
            body["title"].as_str().unwrap_or("?"),
            body["detail"].as_str().unwrap_or("")
        );
    }
    Ok(body)
}

fn status(http: &HttpArgs, json: bool) -> anyhow::Result<ExitCode> {
    let t = http_target(http)?;
    tokio()?.block_on(async move {
        let s = get_json(&t, "/v1/audit").await?;
        if json {
            println!("{s}");
        } else {
            println!("origin      {}", s["origin"].as_str().unwrap_or(""));
            println!("tree size   {}", s["tree_size"]);
            println!("root        {}", s["root_hash"].as_str().unwrap_or(""));
            println!("checkpoints {}", s["checkpoints"]);
            if let Some(l) = s["latest"].as_object() {
                println!(
                    "latest      size {} at sequence {}",
                    l["tree_size"], l["seq"]
                );
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn checkpoint(http: &HttpArgs) -> anyhow::Result<ExitCode> {
    let t = http_target(http)?;
    tokio()?.block_on(async move {
        let r = t
            .client
            .get(format!("{}/v1/audit/checkpoint", t.url))
            .send()
            .await?;
        if !r.status().is_success() {
            anyhow::bail!("no checkpoint: {}", r.status());
        }
        print!("{}", r.text().await?);
        Ok(ExitCode::SUCCESS)
    })
}

/// Pins from flags, a trust file, or a dev domain's key files (out of band of the log).
fn pins_of(
    flags: &[String],
    trust_file: Option<&PathBuf>,
    data_dir: Option<&PathBuf>,
) -> anyhow::Result<Vec<KeyId>> {
    let mut pins: Vec<KeyId> = flags
        .iter()
        .map(|p| KeyId::parse(p).map_err(|e| usage(format!("--pin {p:?}: {e}"))))
        .collect::<anyhow::Result<_>>()?;
    if let Some(f) = trust_file {
        pins.extend(tail::read_trust_file(f)?);
    }
    if pins.is_empty()
        && let Some(d) = data_dir
    {
        let d = DevPaths::new(d);
        pins.push(tail::pin_of_key_file(&d.event_key())?);
        pins.push(tail::pin_of_key_file(&d.audit_key())?);
    }
    if pins.is_empty() {
        return Err(usage(
            "no pinned key ids: give --pin KID (event-signing and audit keys) or --trust-file FILE; a log cannot vouch for its own keys",
        ));
    }
    Ok(pins)
}

/// The pinned audit keys among those a domain publishes (`/v1/domain`).
async fn audit_keys(t: &HttpTarget, pins: &[KeyId]) -> anyhow::Result<(String, Vec<NoteKey>)> {
    let d = get_json(t, "/v1/domain").await?;
    let td = TrustDomain::parse(d["trust_domain"].as_str().unwrap_or(""))
        .map_err(|e| anyhow::anyhow!("/v1/domain: trust_domain: {e}"))?;
    let origin = origin_of(&td);
    let keys: Vec<DomainKey> = serde_json::from_value(d["audit_keys"].clone())?;
    let keys = keys
        .iter()
        .filter(|k| pins.contains(&k.kid))
        .map(|k| NoteKey::new(&origin, k))
        .collect::<Result<Vec<_>, _>>()?;
    if keys.is_empty() {
        anyhow::bail!("the domain publishes no audit key that is pinned");
    }
    Ok((origin, keys))
}

trait Proof: serde::de::DeserializeOwned + serde::Serialize {
    fn check(&self) -> Result<(), accord_audit::tree::ProofError>;
    /// (note, size, root) of each checkpoint the proof names.
    fn notes(&self) -> Vec<(&str, u64, &str)>;
    fn summary(&self) -> String;
}

impl Proof for InclusionProof {
    fn check(&self) -> Result<(), accord_audit::tree::ProofError> {
        InclusionProof::check(self)
    }
    fn notes(&self) -> Vec<(&str, u64, &str)> {
        self.checkpoint
            .iter()
            .map(|n| (n.as_str(), self.tree_size, self.root_hash.as_str()))
            .collect()
    }
    fn summary(&self) -> String {
        format!(
            "event {} (leaf {}) is in the tree of {} leaves, root {} ({} hashes)",
            self.seq,
            self.leaf_hash,
            self.tree_size,
            self.root_hash,
            self.hashes.len()
        )
    }
}

impl Proof for ConsistencyProof {
    fn check(&self) -> Result<(), accord_audit::tree::ProofError> {
        ConsistencyProof::check(self)
    }
    fn notes(&self) -> Vec<(&str, u64, &str)> {
        let mut v = Vec::new();
        if let Some(n) = &self.first_checkpoint {
            v.push((n.as_str(), self.first, self.first_root.as_str()));
        }
        if let Some(n) = &self.second_checkpoint {
            v.push((n.as_str(), self.second, self.second_root.as_str()));
        }
        v
    }
    fn summary(&self) -> String {
        format!(
            "the tree of {} leaves (root {}) is a prefix of the tree of {} (root {}) ({} hashes)",
            self.first,
            self.first_root,
            self.second,
            self.second_root,
            self.hashes.len()
        )
    }
}

fn proof<P: Proof>(
    http: &HttpArgs,
    pins: &[String],
    json: bool,
    kind: &str,
    query: &str,
) -> anyhow::Result<ExitCode> {
    let pins = pins_of(pins, None, http.data_dir.as_ref())?;
    let t = http_target(http)?;
    tokio()?.block_on(async move {
        let (origin, keys) = audit_keys(&t, &pins).await?;
        let body = get_json(&t, &format!("/v1/audit/proof/{kind}?{query}")).await?;
        let p: P = serde_json::from_value(body).context("the proof")?;
        p.check()
            .map_err(|e| anyhow::anyhow!("the {kind} proof does not verify: {e}"))?;
        let notes = p.notes();
        for (note, size, root) in &notes {
            check_served_checkpoint(note, &origin, &keys, *size, root)
                .map_err(|e| anyhow::anyhow!("checkpoint of {size}: {e}"))?;
        }
        if json {
            println!("{}", serde_json::to_string(&p)?);
        } else {
            println!("ok: {}", p.summary());
            if notes.is_empty() {
                println!("(no signed checkpoint has exactly this size: the root is unsigned)");
            } else {
                println!(
                    "signed: {} checkpoint(s) verified under the pinned audit key",
                    notes.len()
                );
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// A history being read: from NATS or from a file.
enum History {
    Nats {
        reader: Box<LogReader>,
        last: u64,
    },
    File {
        header: ExportHeader,
        reader: ExportReader<BufReader<std::fs::File>>,
    },
}

impl History {
    async fn open(source: &AuditSource) -> anyhow::Result<Self> {
        if let Some(f) = &source.file {
            let file = std::fs::File::open(f).with_context(|| format!("{}", f.display()))?;
            let (header, reader) = ExportReader::open(BufReader::new(file))
                .with_context(|| format!("{}", f.display()))?;
            return Ok(Self::File { header, reader });
        }
        let target = nats_target(&NatsArgs {
            data_dir: source.data_dir.clone(),
            nats_url: source.nats_url.clone(),
            ca: source.ca.clone(),
            creds: source.creds.clone(),
            stream: source.stream.clone(),
            js_domain: source.js_domain.clone(),
        })?;
        let client = runtime::connect(&target.url, &target.ca, &target.creds, "accord-audit")
            .await
            .context("connecting to NATS")?;
        // auditors are outside the services' account: direct get is what it exports to them
        let reader = LogReader::direct_only(client, &target.api_prefix, &target.stream);
        let last = reader.last_sequence().await?;
        Ok(Self::Nats {
            reader: Box::new(reader),
            last,
        })
    }

    fn last(&self) -> u64 {
        match self {
            Self::Nats { last, .. } => *last,
            Self::File { header, .. } => header.last_seq,
        }
    }

    /// Feeds every entry up to the last one (as of opening) to `f`, in batches.
    async fn read(
        &mut self,
        mut f: impl AsyncFnMut(Vec<LogEntry>) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        match self {
            Self::File { reader, .. } => loop {
                let mut batch = Vec::with_capacity(BATCH);
                while batch.len() < BATCH {
                    match reader.next_entry()? {
                        Some(e) => batch.push(e),
                        None => break,
                    }
                }
                let done = batch.len() < BATCH;
                if !batch.is_empty() {
                    f(batch).await?;
                }
                if done {
                    return Ok(());
                }
            },
            Self::Nats { reader, last } => read_nats(reader, 1, *last, f).await,
        }
    }
}

async fn read_nats(
    reader: &LogReader,
    from: u64,
    last: u64,
    mut f: impl AsyncFnMut(Vec<LogEntry>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    if last < from {
        return Ok(());
    }
    let entries = reader.follow("accord.evt.>", from).await?;
    let mut chunks = entries.ready_chunks(BATCH);
    while let Some(chunk) = chunks.next().await {
        let mut batch = Vec::with_capacity(chunk.len());
        let mut done = false;
        for e in chunk {
            let e = e?;
            if e.seq > last {
                done = true;
                break;
            }
            done |= e.seq == last;
            batch.push(e);
        }
        if !batch.is_empty() {
            f(batch).await?;
        }
        if done {
            break;
        }
    }
    Ok(())
}

fn bar(len: u64, hidden: bool) -> indicatif::ProgressBar {
    if hidden {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:40}] {pos}/{len} events ({per_sec}, {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message("verifying");
    bar
}

fn verify(
    source: &AuditSource,
    url: Option<String>,
    no_projections: bool,
    held: &[PathBuf],
    threads: Option<usize>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let pins = pins_of(
        &source.pins,
        source.trust_file.as_ref(),
        source.data_dir.as_ref(),
    )?;
    let held: Vec<String> = held
        .iter()
        .map(|p| std::fs::read_to_string(p).with_context(|| format!("{}", p.display())))
        .collect::<anyhow::Result<_>>()?;
    // the live endpoint to compare projections with: --url, or a dev domain's
    let live = if no_projections || (url.is_none() && source.data_dir.is_none()) {
        None
    } else {
        Some(http_target(&HttpArgs {
            data_dir: source.data_dir.clone(),
            url,
            ca: source.ca.clone(),
            token_file: None,
        })?)
    };
    let threads = threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    tokio()?.block_on(async move {
        let mut history = History::open(source).await?;
        let mut auditor = Auditor::new(VerifyOptions { pins, threads });
        let rebuild = if no_projections {
            None
        } else {
            Some(Rebuild::new().await?)
        };
        let progress = bar(history.last(), json);
        history
            .read(async |batch: Vec<LogEntry>| {
                let n = batch.len() as u64;
                match &rebuild {
                    Some(r) => {
                        let events = tokio::task::block_in_place(|| auditor.check_batch(&batch));
                        r.apply(&events).await?;
                    }
                    None => tokio::task::block_in_place(|| auditor.check_only(&batch)),
                }
                progress.inc(n);
                Ok(())
            })
            .await?;
        progress.finish_and_clear();
        if let Some(r) = &rebuild {
            compare(&mut auditor, r, live.as_ref(), &history).await?;
        }
        for n in &held {
            auditor.held_checkpoint(n);
        }
        let report = auditor.report();
        print_report(&report, json)?;
        Ok(if report.ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    })
}

/// Compares the rebuilt projections with the live ones at the same sequence. The live ones
/// may be ahead of the history read: the rest of the log is read (and verified) up to where
/// they stand, a few times at most.
async fn compare(
    auditor: &mut Auditor,
    rebuild: &Rebuild,
    live: Option<&HttpTarget>,
    history: &History,
) -> anyhow::Result<()> {
    let names = rebuild.names();
    let Some(live) = live else {
        for name in names {
            auditor.projection(ProjectionCheck {
                projection: name.to_owned(),
                at_seq: auditor.last_seq(),
                rebuilt_digest: rebuild.digest(name).await?,
                live_digest: None,
                matches: None,
                note: Some("no live domain given (--url or --data-dir): not compared".into()),
            });
        }
        return Ok(());
    };
    for name in names {
        let mut check = None;
        for _ in 0..5 {
            let at = auditor.last_seq();
            let d = get_json(
                live,
                &format!("/v1/projections/{name}/digest?min_seq={at}&wait_ms=5000"),
            )
            .await?;
            let applied = d["applied"].as_u64().unwrap_or(0);
            let live_digest = d["digest"].as_str().unwrap_or("").to_owned();
            if applied == at {
                let rebuilt = rebuild.digest(name).await?;
                check = Some(ProjectionCheck {
                    projection: name.to_owned(),
                    at_seq: at,
                    matches: Some(rebuilt == live_digest),
                    rebuilt_digest: rebuilt,
                    live_digest: Some(live_digest),
                    note: None,
                });
                break;
            }
            // the live projection is ahead: read on, from the live log only
            let History::Nats { reader, .. } = history else {
                check = Some(ProjectionCheck {
                    projection: name.to_owned(),
                    at_seq: at,
                    rebuilt_digest: rebuild.digest(name).await?,
                    live_digest: None,
                    matches: None,
                    note: Some(format!(
                        "the live projection is at sequence {applied}, the export ends at {at}: not compared"
                    )),
                });
                break;
            };
            read_nats(reader, at + 1, applied, async |batch: Vec<LogEntry>| {
                let events = tokio::task::block_in_place(|| auditor.check_batch(&batch));
                rebuild.apply(&events).await?;
                Ok(())
            })
            .await?;
        }
        auditor.projection(check.unwrap_or_else(|| ProjectionCheck {
            projection: name.to_owned(),
            at_seq: auditor.last_seq(),
            rebuilt_digest: String::new(),
            live_digest: None,
            matches: None,
            note: Some("the live projection kept moving: not compared".into()),
        }));
    }
    Ok(())
}

fn print_report(r: &Report, json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer(&mut out, r)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(
        out,
        "domain      {} ({})",
        r.domain.as_deref().unwrap_or("?"),
        r.trust_domain.as_deref().unwrap_or("?")
    )?;
    writeln!(
        out,
        "events      {} (last sequence {})",
        r.events, r.last_seq
    )?;
    writeln!(out, "root        {}", r.root_hash.as_deref().unwrap_or("-"))?;
    match &r.last_checkpoint {
        Some(c) => writeln!(
            out,
            "checkpoints {} checked; the last covers {} events (sequence {}); {} events not yet covered",
            r.checkpoints, c.tree_size, c.seq, r.uncovered
        )?,
        None => writeln!(out, "checkpoints none; {} events not covered", r.uncovered)?,
    }
    if r.held_checkpoints > 0 {
        writeln!(
            out,
            "held        {} checkpoint(s) compared",
            r.held_checkpoints
        )?;
    }
    for p in &r.projections {
        let verdict = match p.matches {
            Some(true) => "matches the live one".to_owned(),
            Some(false) => "DIFFERS from the live one".to_owned(),
            None => p.note.clone().unwrap_or_default(),
        };
        writeln!(
            out,
            "projection  {:<12} at {}: {} {}",
            p.projection, p.at_seq, p.rebuilt_digest, verdict
        )?;
    }
    for f in &r.failures {
        writeln!(out, "FAILED {f}")?;
    }
    if r.failures_total as usize > r.failures.len() {
        writeln!(
            out,
            "... {} failures in all ({:?})",
            r.failures_total, r.failures_by_kind
        )?;
    }
    writeln!(
        out,
        "{}",
        if r.ok {
            "verified: every signature, checkpoint and root holds"
        } else {
            "NOT verified"
        }
    )?;
    Ok(())
}

fn export_command(source: &AuditSource, output: &PathBuf) -> anyhow::Result<ExitCode> {
    if source.file.is_some() {
        return Err(usage(
            "export reads a live log: give --nats-url or --data-dir",
        ));
    }
    tokio()?.block_on(async move {
        let mut history = History::open(source).await?;
        let last = history.last();
        let tmp = output.with_extension("partial");
        let file = std::fs::File::create(&tmp).with_context(|| format!("{}", tmp.display()))?;
        let mut out = BufWriter::new(file);
        // the header names the domain as the genesis does; nothing in it is trusted
        let History::Nats { reader, .. } = &history else {
            unreachable!("checked above")
        };
        let genesis = reader
            .first_from(1, "accord.evt.>")
            .await?
            .context("the log is empty")?;
        let g = accord_events::parse_unverified(&genesis.payload)
            .map_err(|e| anyhow::anyhow!("genesis: {e}"))?;
        let td = match g.envelope.decode() {
            Ok(accord_events::Event::DomainCreated(d)) => d.trust_domain.to_string(),
            _ => String::new(),
        };
        export::write_header(
            &mut out,
            &ExportHeader {
                format: export::FORMAT.into(),
                version: export::VERSION,
                domain: g.envelope.domain.to_string(),
                trust_domain: td,
                stream: source.stream.clone(),
                first_seq: 1,
                last_seq: last,
                exported_at: Timestamp::now(),
            },
        )?;
        let progress = bar(last, false);
        progress.set_message("exporting");
        let mut written = 0u64;
        history
            .read(async |batch: Vec<LogEntry>| {
                for e in &batch {
                    export::write_entry(&mut out, e)?;
                }
                written += batch.len() as u64;
                progress.inc(batch.len() as u64);
                Ok(())
            })
            .await?;
        progress.finish_and_clear();
        out.into_inner()
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .sync_all()?;
        std::fs::rename(&tmp, output)?;
        eprintln!(
            "exported {written} events (sequences 1..={last}) to {}",
            output.display()
        );
        Ok(ExitCode::SUCCESS)
    })
}

fn as_of(
    target: &str,
    seq: Option<u64>,
    time: Option<&str>,
    source: &AuditSource,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let target = Target::parse(target)
        .ok_or_else(|| usage(format!("{target:?} is neither an agent id nor a serial")))?;
    let cutoff = match (seq, time) {
        (Some(n), _) => Cutoff::Seq(n),
        (None, Some(t)) => Cutoff::Time(parse_time(t)?),
        (None, None) => return Err(usage("give --seq N or --time T")),
    };
    let pins = pins_of(
        &source.pins,
        source.trust_file.as_ref(),
        source.data_dir.as_ref(),
    )?;
    tokio()?.block_on(async move {
        let mut history = History::open(source).await?;
        let mut auditor = Auditor::new(VerifyOptions {
            pins,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        });
        let mut fold = AsOf::new(target, cutoff);
        history
            .read(async |batch: Vec<LogEntry>| {
                if batch.first().is_some_and(|e| !fold.wants(e.seq)) {
                    return Ok(());
                }
                let events = tokio::task::block_in_place(|| auditor.check_batch(&batch));
                for e in &events {
                    fold.feed(e);
                }
                Ok(())
            })
            .await?;
        let verification = auditor.report();
        let report = fold.report();
        if json {
            println!(
                "{}",
                serde_json::json!({
                    "as_of": report,
                    "history_verified": verification.failures_total == 0,
                    "failures": verification.failures,
                })
            );
        } else {
            println!(
                "as of sequence {}{}:",
                report.at_seq,
                report
                    .at_time
                    .map(|t| format!(" ({t})"))
                    .unwrap_or_default()
            );
            if report.credentials.is_empty() {
                println!("  no credential of it had been issued");
            }
            for c in &report.credentials {
                println!(
                    "  {} of agent {}: {} (issued at sequence {} under policy {} v{} {}, valid {} .. {}){}",
                    c.serial,
                    c.agent_id,
                    c.status,
                    c.issued_seq,
                    c.policy.bundle,
                    c.policy.version,
                    c.policy.digest,
                    c.not_before,
                    c.not_after,
                    c.revoked
                        .as_ref()
                        .map(|r| format!(", revoked at sequence {} ({:?})", r.seq, r.reason))
                        .unwrap_or_default()
                );
            }
            for f in &verification.failures {
                println!("FAILED {f}");
            }
        }
        if verification.failures_total > 0 {
            eprintln!("accord: the history did not verify; the answer above is not to be trusted");
            return Ok(ExitCode::from(1));
        }
        Ok(if report.valid {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(3)
        })
    })
}

fn parse_time(t: &str) -> anyhow::Result<Timestamp> {
    let dt = time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
        .map_err(|e| {
            usage(format!(
                "--time {t:?}: {e} (RFC 3339, e.g. 2026-11-26T18:00:00Z)"
            ))
        })?;
    Ok(Timestamp::from_datetime(dt))
}
