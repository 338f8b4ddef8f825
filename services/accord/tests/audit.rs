//! The audit log (issue 7, ADR 0011) against a running `accord dev`: checkpoints signed at a
//! cadence, proofs over HTTP and the CLI, `accord audit verify` of the live log and of an
//! export, an independent Python verifier (RFC 6962/9162, C2SP signed notes) agreeing with the
//! checkpoints and proofs, `accord audit as-of`, every tampering case named, and the tree kept
//! in PostgreSQL across a restart.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use accord_audit::export::{self, ExportReader};
use accord_audit::note::{CheckpointBody, sign_checkpoint};
use accord_audit::tree::MemoryTree;
use accord_events::catalogue::CheckpointSigned;
use accord_events::{AggregateId, AggregateKind, Ed25519Key, Event, Timestamp};
use serde_json::Value;
use support::*;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

const ORIGIN: &str = "dev.accord.test/accord/events";

struct Domain {
    dev: Dev,
    work: PathBuf,
}

impl Domain {
    async fn start(tmp: &tempfile::TempDir, args: &[&str]) -> Self {
        let dev = Dev::start(
            &tmp.path().join("domain"),
            args,
            &[("ACCORD_AUDIT__CHECKPOINT_EVERY_MS", "100")],
        );
        dev.wait_ready(Duration::from_secs(60)).await;
        publish_proof_of_possession_only(&dev).await;
        let work = tmp.path().join("work");
        std::fs::create_dir_all(&work).unwrap();
        Self { dev, work }
    }

    fn dir(&self) -> &Path {
        &self.dev.dir
    }

    fn cli(&self, args: &[&str]) -> Command {
        let mut c = accord();
        c.args(args).arg("--data-dir").arg(self.dir());
        c
    }

    /// Provisions and enrolls an agent; its id.
    fn agent(&self, name: &str) -> String {
        let token = self.work.join(format!("{name}.token"));
        let id = must(&mut self.cli(&[
            "agent",
            "provision",
            "--name",
            name,
            "--token-out",
            token.to_str().unwrap(),
        ]))
        .trim()
        .to_owned();
        let dir = self.work.join(name);
        must(&mut self.cli(&[
            "agent",
            "enroll",
            "--agent-id",
            &id,
            "--enrollment-token-file",
            token.to_str().unwrap(),
            "--dir",
            dir.to_str().unwrap(),
        ]));
        id
    }

    fn revoke(&self, target: &str) -> u64 {
        let out = must(&mut self.cli(&["revoke", target, "--reason", "keyCompromise"]));
        out.trim().rsplit(' ').next().unwrap().parse().unwrap()
    }

    async fn last_seq(&self) -> u64 {
        let (_, body) = self.dev.get("/v1/domain").await;
        body["last_seq"].as_u64().unwrap()
    }

    /// Waits until a checkpoint covers `seq` (or, when `seq` is itself a checkpoint, everything
    /// before it); the audit status then.
    async fn covered(&self, seq: u64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (status, s) = self.dev.get("/v1/audit").await;
            assert_eq!(status, 200, "{s}");
            let latest = &s["latest"];
            if latest["tree_size"].as_u64().unwrap_or(0) >= seq
                || latest["seq"].as_u64().unwrap_or(0) >= seq
            {
                return s;
            }
            assert!(Instant::now() < deadline, "no checkpoint covers {seq}: {s}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `accord audit verify ... --json`: exit code and report.
    fn verify(&self, args: &[&str]) -> (i32, Value) {
        let mut c = accord();
        c.args(["audit", "verify", "--json"]).args(args);
        let o = c.output().unwrap();
        let report: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
            panic!(
                "{c:?}: {e}: {}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )
        });
        (o.status.code().unwrap(), report)
    }

    fn verify_file(&self, file: &Path, extra: &[&str]) -> (i32, Value) {
        let mut args = vec!["--file", file.to_str().unwrap(), "--no-projections"];
        let pins = self.pins();
        if !extra.contains(&"--pin") {
            for p in &pins {
                args.extend(["--pin", p.as_str()]);
            }
        }
        args.extend(extra);
        self.verify(&args)
    }

    fn pins(&self) -> Vec<String> {
        ["keys/event-signing.pk8", "keys/audit.pk8"]
            .iter()
            .map(|k| {
                let key =
                    Ed25519Key::from_pkcs8(&std::fs::read(self.dir().join(k)).unwrap()).unwrap();
                key.kid().to_string()
            })
            .collect()
    }

    fn export(&self, to: &Path) {
        must(&mut self.cli(&["audit", "export", "--output", to.to_str().unwrap()]));
    }

    async fn get_to_file(&self, path: &str, file: &Path) -> Value {
        let (status, body) = self.dev.get(path).await;
        assert_eq!(status, 200, "{path}: {body}");
        std::fs::write(file, body.to_string()).unwrap();
        body
    }
}

fn kinds(report: &Value) -> Vec<(String, Option<u64>)> {
    report["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["kind"].as_str().unwrap().to_owned(), f["seq"].as_u64()))
        .collect()
}

fn lines(file: &Path) -> Vec<Vec<u8>> {
    let b = std::fs::read(file).unwrap();
    b.split(|c| *c == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

fn write_lines(file: &Path, lines: &[Vec<u8>]) {
    let mut out = lines.join(&b'\n');
    out.push(b'\n');
    std::fs::write(file, out).unwrap();
}

/// The line of the event at `seq` (line 0 is the header).
fn line_of(lines: &[Vec<u8>], seq: u64) -> usize {
    lines
        .iter()
        .position(|l| l.starts_with(format!("{{\"seq\":{seq},").as_bytes()))
        .unwrap()
}

fn message_of(line: &[u8]) -> (usize, usize) {
    let pat = b",\"message\":";
    let at = line.windows(pat.len()).position(|w| w == pat).unwrap() + pat.len();
    (at, line.len() - 1)
}

/// Events of a type in an export: their sequences.
fn seqs_of(lines: &[Vec<u8>], event_type: &str) -> Vec<u64> {
    lines[1..]
        .iter()
        .filter_map(|l| {
            let v: Value = serde_json::from_slice(l).unwrap();
            (v["message"]["event"]["type"] == event_type).then(|| v["seq"].as_u64().unwrap())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_history_verifies_and_an_independent_implementation_agrees() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Domain::start(&tmp, &[]).await;
    let a1 = d.agent("alpha");
    let a2 = d.agent("beta");
    let _a3 = d.agent("gamma");
    let before_revocation = d.last_seq().await;
    let revoked_at = d.revoke(&a2);
    let last = d.last_seq().await;
    let status = d.covered(last).await;
    assert!(status["checkpoints"].as_u64().unwrap() >= 2, "{status}");
    assert_eq!(status["refused_checkpoints"], 0);
    // the metrics say the same (refreshed once a second)
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, text) = d.dev.get("/metrics").await;
        let text = text.as_str().unwrap_or_default().to_owned();
        let gauge = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<u64>().ok())
        };
        let (size, lag, cps, refused) = (
            gauge("accord_audit_tree_size"),
            gauge("accord_audit_lag_events"),
            gauge("accord_audit_checkpoints"),
            gauge("accord_audit_refused_checkpoints"),
        );
        if size >= Some(last) && lag == Some(0) && cps >= Some(2) && refused == Some(0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "audit metrics: size {size:?} lag {lag:?} checkpoints {cps:?} refused {refused:?}\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // the live log, its projections rebuilt and compared
    let (code, r) = d.verify(&["--data-dir", d.dir().to_str().unwrap()]);
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["ok"], true);
    assert!(r["checkpoints"].as_u64().unwrap() >= 2);
    let projections = r["projections"].as_array().unwrap();
    for name in ["registry", "credentials"] {
        let p = projections
            .iter()
            .find(|p| p["projection"] == name)
            .unwrap();
        assert_eq!(p["matches"], true, "{p}");
    }
    // the human report and the progress bar's absence in a pipe
    let out = must(&mut d.cli(&["audit", "verify"]));
    assert!(out.contains("verified: every signature"), "{out}");

    // an export verifies offline
    let file = d.work.join("history.jsonl");
    d.export(&file);
    let (code, r) = d.verify_file(&file, &[]);
    assert_eq!(code, 0, "{r}");
    let exported = r["last_seq"].as_u64().unwrap();
    assert!(exported >= last);

    // proofs over HTTP, checked by the CLI against the pinned audit key
    // the export ends with a checkpoint (an idle log does not sign again): the tree it covers
    let covered = r["last_checkpoint"]["tree_size"].as_u64().unwrap();
    assert!(covered + 1 >= last && covered < exported, "{r}");
    let out = must(&mut d.cli(&["audit", "inclusion", "--seq", &revoked_at.to_string()]));
    assert!(out.starts_with("ok: event"), "{out}");
    let checkpoints = d.dev.get("/v1/audit/checkpoints").await.1;
    let cps = checkpoints["checkpoints"].as_array().unwrap();
    let first_size = cps[0]["tree_size"].as_u64().unwrap();
    let out = must(&mut d.cli(&[
        "audit",
        "consistency",
        "--first",
        &first_size.to_string(),
        "--second",
        &covered.to_string(),
    ]));
    assert!(out.contains("signed: 2 checkpoint(s)"), "{out}");

    // the independent verifier: the export's checkpoints, proofs of several shapes, a note
    let domain = d.dev.get("/v1/domain").await.1;
    let audit_key = domain["audit_keys"][0]["public_key"].as_str().unwrap();
    let mut args: Vec<String> = vec![
        "--audit-key".into(),
        audit_key.into(),
        "--origin".into(),
        ORIGIN.into(),
        "--export".into(),
        file.to_str().unwrap().into(),
    ];
    for (i, seq) in [1, revoked_at, covered].iter().enumerate() {
        let f = d.work.join(format!("inclusion-{i}.json"));
        d.get_to_file(&format!("/v1/audit/proof/inclusion?seq={seq}"), &f)
            .await;
        args.extend(["--inclusion".into(), f.to_str().unwrap().into()]);
    }
    // a proof in a tree no checkpoint names (unsigned root, still RFC 9162)
    let f = d.work.join("inclusion-odd.json");
    d.get_to_file(
        &format!("/v1/audit/proof/inclusion?seq=2&tree_size={}", covered - 1),
        &f,
    )
    .await;
    args.extend(["--inclusion".into(), f.to_str().unwrap().into()]);
    for (i, (a, b)) in [(first_size, covered), (1, covered), (covered - 1, covered)]
        .iter()
        .enumerate()
    {
        let f = d.work.join(format!("consistency-{i}.json"));
        d.get_to_file(
            &format!("/v1/audit/proof/consistency?first={a}&second={b}"),
            &f,
        )
        .await;
        args.extend(["--consistency".into(), f.to_str().unwrap().into()]);
    }
    let note = d.work.join("latest.note");
    std::fs::write(&note, must(&mut d.cli(&["audit", "checkpoint"]))).unwrap();
    args.extend(["--checkpoint".into(), note.to_str().unwrap().into()]);
    let o = accord_testkit::python()
        .arg(root().join("tests/python/check_audit.py"))
        .args(&args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // and it is not a rubber stamp: a flipped byte in the export fails it
    let mut ls = lines(&file);
    let i = line_of(&ls, revoked_at);
    let (at, _) = message_of(&ls[i]);
    ls[i][at + 20] ^= 0x01;
    let bad = d.work.join("bad.jsonl");
    write_lines(&bad, &ls);
    let o = accord_testkit::python()
        .arg(root().join("tests/python/check_audit.py"))
        .args(["--audit-key", audit_key, "--origin", ORIGIN, "--export"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(
        !o.status.success(),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );

    // as of a point of the history: valid before the revocation, revoked after, and the policy
    let o = d
        .cli(&[
            "audit",
            "as-of",
            &a2,
            "--seq",
            &before_revocation.to_string(),
            "--json",
        ])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["as_of"]["valid"], true, "{v}");
    let cred = &v["as_of"]["credentials"][0];
    assert_eq!(cred["status"], "valid");
    assert!(cred["policy"]["version"].as_u64().unwrap() >= 2, "{cred}");
    let serial = cred["serial"].as_str().unwrap().to_owned();
    let o = d
        .cli(&[
            "audit",
            "as-of",
            &serial,
            "--seq",
            &revoked_at.to_string(),
            "--json",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["as_of"]["credentials"][0]["status"], "revoked", "{v}");
    assert_eq!(
        v["as_of"]["credentials"][0]["revoked"]["seq"].as_u64(),
        Some(revoked_at)
    );
    // by time, from the export: now, alpha is valid; a second before genesis, nothing
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let o = accord()
        .args(["audit", "as-of", &a1, "--time", &now, "--file"])
        .arg(&file)
        .args(["--pin", &d.pins()[0], "--pin", &d.pins()[1]])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let o = accord()
        .args([
            "audit",
            "as-of",
            &a1,
            "--time",
            "2020-01-01T00:00:00Z",
            "--file",
        ])
        .arg(&file)
        .args(["--pin", &d.pins()[0], "--pin", &d.pins()[1]])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stdout).contains("no credential"));

    // bad queries get problems and change nothing
    for (path, status) in [
        ("/v1/audit/proof/inclusion?seq=0", 404),
        ("/v1/audit/proof/inclusion?seq=99999", 404),
        ("/v1/audit/proof/inclusion?seq=1&tree_size=99999", 404),
        ("/v1/audit/proof/inclusion?seq=x", 400),
        ("/v1/audit/proof/inclusion?seq=1&evil=1", 400),
        ("/v1/audit/proof/consistency?first=5&second=2", 400),
        ("/v1/audit/proof/consistency?first=0&second=2", 400),
        ("/v1/audit/proof/consistency?first=1&second=99999", 404),
        (
            "/v1/audit/proof/consistency?first=18446744073709551615&second=18446744073709551615",
            404,
        ),
    ] {
        let (s, body) = d.dev.get(path).await;
        assert_eq!(s, status, "{path}: {body}");
        assert!(
            body["type"].as_str().unwrap().starts_with("https://"),
            "{body}"
        );
    }
}

/// Re-signs a history as an insider holding both keys would, without the event at `drop_seq`:
/// every event signature stays valid, every checkpoint is signed again over the new tree.
fn rewrite_without(file: &Path, drop_seq: u64, dir: &Path, out: &Path) {
    let key = Ed25519Key::from_pkcs8(&std::fs::read(dir.join("keys/event-signing.pk8")).unwrap())
        .unwrap();
    let audit =
        Ed25519Key::from_pkcs8(&std::fs::read(dir.join("keys/audit.pk8")).unwrap()).unwrap();
    let (header, mut reader) =
        ExportReader::open(std::io::BufReader::new(std::fs::File::open(file).unwrap())).unwrap();
    let mut w = std::io::BufWriter::new(std::fs::File::create(out).unwrap());
    export::write_header(&mut w, &header).unwrap();
    let mut tree = MemoryTree::new();
    let mut seq = 0;
    while let Some(mut e) = reader.next_entry().unwrap() {
        if e.seq == drop_seq {
            continue;
        }
        seq += 1;
        e.seq = seq;
        let parsed = accord_events::parse_unverified(&e.payload).unwrap();
        if let Ok(Event::CheckpointSigned(_)) = parsed.envelope.decode() {
            let size = tree.leaves();
            let root = tree.root(size).unwrap();
            let time = Timestamp::now();
            let note = dev_note(&audit, size, root, time);
            let mut env = parsed.envelope.clone();
            env.data = Event::CheckpointSigned(CheckpointSigned {
                tree_size: size,
                root_hash: accord_audit::note::b64(&root),
                note,
                key: audit.kid().clone(),
                signed_at: time,
            })
            .to_data();
            e.payload = key.sign_event(env).unwrap().bytes.into();
        }
        tree.push(&e.payload);
        export::write_entry(&mut w, &e).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tampering_is_detected_and_named() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Domain::start(&tmp, &[]).await;
    let a1 = d.agent("alpha");
    let a2 = d.agent("beta");
    d.revoke(&a1);
    let _ = d.agent("gamma");
    let last = d.last_seq().await;
    d.covered(last).await;
    let held = d.work.join("held.note");
    std::fs::write(&held, must(&mut d.cli(&["audit", "checkpoint"]))).unwrap();
    let file = d.work.join("history.jsonl");
    d.export(&file);
    let clean = lines(&file);
    assert_eq!(d.verify_file(&file, &[]).0, 0);
    let checkpoints = seqs_of(&clean, "CheckpointSigned");
    let last_cp = *checkpoints.last().unwrap();
    let issued = seqs_of(&clean, "CredentialIssued");
    let t = d.work.join("tampered.jsonl");

    // an event altered in the export
    let mut ls = clean.clone();
    let i = line_of(&ls, issued[1]);
    let (at, _) = message_of(&ls[i]);
    ls[i][at + 30] ^= 0x02;
    write_lines(&t, &ls);
    let (code, r) = d.verify_file(&t, &[]);
    assert_eq!(code, 1);
    let k = kinds(&r);
    assert!(
        k.contains(&("bad_signature".into(), Some(issued[1]))),
        "{k:?}"
    );
    assert!(
        k.iter()
            .any(|(kind, s)| kind == "checkpoint_root_mismatch" && s.unwrap() > issued[1]),
        "{k:?}"
    );

    // an event removed
    let mut ls = clean.clone();
    ls.remove(line_of(&ls, issued[0]));
    write_lines(&t, &ls);
    let (code, r) = d.verify_file(&t, &[]);
    assert_eq!(code, 1);
    let k = kinds(&r);
    assert!(
        k.contains(&("missing_event".into(), Some(issued[0]))),
        "{k:?}"
    );

    // two events swapped: their messages trade places (each still validly signed)
    let mut ls = clean.clone();
    let (i, j) = (line_of(&ls, issued[0]), line_of(&ls, issued[1]));
    let (ai, _) = message_of(&ls[i]);
    let (aj, _) = message_of(&ls[j]);
    let mi = ls[i][ai..ls[i].len() - 1].to_vec();
    let mj = ls[j][aj..ls[j].len() - 1].to_vec();
    let (ei, ej) = (ls[i].len() - 1, ls[j].len() - 1);
    ls[i].splice(ai..ei, mj);
    ls[j].splice(aj..ej, mi);
    write_lines(&t, &ls);
    let (code, r) = d.verify_file(&t, &[]);
    assert_eq!(code, 1);
    let k = kinds(&r);
    assert!(
        k.iter().any(|(kind, _)| kind == "checkpoint_root_mismatch"),
        "{k:?}"
    );
    // ... or whole lines swapped, sequence numbers and all
    let mut ls = clean.clone();
    ls.swap(i, j);
    write_lines(&t, &ls);
    let k = kinds(&d.verify_file(&t, &[]).1);
    assert!(k.iter().any(|(kind, _)| kind == "out_of_order"), "{k:?}");

    // a log whose key is not the pinned one
    let other = Ed25519Key::from_seed(&[9; 32]).unwrap();
    let (code, r) = d.verify_file(&t, &["--pin", other.kid().as_str()]);
    assert_eq!(code, 1);
    let (code, r2) = d.verify_file(&file, &["--pin", other.kid().as_str()]);
    assert_eq!(code, 1);
    assert_eq!(kinds(&r2)[0], ("genesis".into(), Some(1)), "{r2}");
    assert!(
        r2["failures_by_kind"]["unpinned_key"].as_u64().unwrap() > 5,
        "{r2} {r}"
    );

    // a history that forks from a checkpoint someone else holds: an insider with both keys
    // erases a revocation and signs every later checkpoint again; the rewrite verifies on its
    // own, and only the held checkpoint gives it away
    let revoked = seqs_of(&clean, "CredentialRevoked");
    let forked = d.work.join("forked.jsonl");
    rewrite_without(&file, revoked[0], d.dir(), &forked);
    let (code, r) = d.verify_file(&forked, &[]);
    assert_eq!(code, 0, "a consistent rewrite verifies alone: {r}");
    let (code, r) = d.verify_file(&forked, &["--checkpoint", held.to_str().unwrap()]);
    assert_eq!(code, 1);
    let k = kinds(&r);
    assert_eq!(k.len(), 1, "{k:?}");
    assert!(k[0].0 == "fork" || k[0].0 == "truncated", "{k:?}");
    // the original history agrees with the held checkpoint
    assert_eq!(
        d.verify_file(&file, &["--checkpoint", held.to_str().unwrap()])
            .0,
        0
    );

    // in the live log, from someone who can publish events: a forged checkpoint (another key)
    // and a checkpoint of the right key whose root does not match
    let store = store(d.dir(), None).await;
    let audit =
        Ed25519Key::from_pkcs8(&std::fs::read(d.dir().join("keys/audit.pk8")).unwrap()).unwrap();
    let agg = AggregateId::parse("dev").unwrap();
    let mut forged_at = Vec::new();
    for (signer, wrong_root) in [(&other, false), (&audit, true)] {
        let size = d.last_seq().await;
        let root = if wrong_root {
            tlog_root_of_nothing()
        } else {
            let (_, s) = d.dev.get("/v1/audit").await;
            accord_audit::note::hash_from_b64(s["root_hash"].as_str().unwrap()).unwrap()
        };
        // the checkpointer may append meanwhile: retry on its new version
        let mut seq = None;
        for _ in 0..5 {
            if let Ok(s) = append_checkpoint(&store, &agg, signer, size, root).await {
                seq = Some(s);
                break;
            }
        }
        forged_at.push(seq.expect("appended within five attempts"));
    }
    let (code, r) = d.verify(&["--data-dir", d.dir().to_str().unwrap()]);
    assert_eq!(code, 1);
    let k = kinds(&r);
    assert!(
        k.contains(&("forged_checkpoint".into(), Some(forged_at[0]))),
        "{k:?}"
    );
    assert!(
        k.contains(&("checkpoint_root_mismatch".into(), Some(forged_at[1]))),
        "{k:?}"
    );
    // the live log refused both: it neither serves them nor counts them as cover
    let s = d.covered(forged_at[1]).await;
    assert_eq!(s["refused_checkpoints"], 2, "{s}");
    let cps = d.dev.get("/v1/audit/checkpoints").await.1;
    assert!(
        cps["checkpoints"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| !forged_at.contains(&c["seq"].as_u64().unwrap())),
        "{cps}"
    );
    let _ = (a2, last_cp);
}

/// The checkpoint note of the dev domain's log, signed by `signer`.
fn dev_note(signer: &Ed25519Key, size: u64, root: tlog_tiles::Hash, time: Timestamp) -> String {
    sign_checkpoint(
        signer,
        &CheckpointBody {
            origin: ORIGIN.into(),
            size,
            root,
            domain: accord_events::DomainId::parse("dev").unwrap(),
            trust_domain: accord_events::TrustDomain::parse("dev.accord.test").unwrap(),
            time,
        },
    )
    .unwrap()
}

/// Appends a `CheckpointSigned` event as anyone with the event key could; its sequence.
async fn append_checkpoint(
    store: &accord_store::EventStore,
    agg: &AggregateId,
    signer: &Ed25519Key,
    size: u64,
    root: tlog_tiles::Hash,
) -> Result<u64, accord_store::StoreError> {
    let time = Timestamp::now();
    let note = dev_note(signer, size, root, time);
    let v = store.load(AggregateKind::Audit, agg).await?.version;
    let out = store
        .append(
            AggregateKind::Audit,
            agg,
            v,
            &meta(),
            vec![Event::CheckpointSigned(CheckpointSigned {
                tree_size: size,
                root_hash: accord_audit::note::b64(&root),
                note,
                key: signer.kid().clone(),
                signed_at: time,
            })],
        )
        .await?;
    Ok(out.version.stream_seq)
}

fn tlog_root_of_nothing() -> tlog_tiles::Hash {
    MemoryTree::new().root(0).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tree_is_kept_in_postgresql_across_a_restart() {
    let pg = accord_testkit::PgServer::start();
    let url = pg.create_database("accord");
    let tmp = tempfile::tempdir().unwrap();
    let mut d = Domain::start(&tmp, &["--database-url", &url]).await;
    let a = d.agent("alpha");
    d.revoke(&a);
    let last = d.last_seq().await;
    let before = d.covered(last).await;
    d.dev.stop();
    // the stored tree: every stored hash of every leaf, and the checkpoints
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let row = client
        .query_one("SELECT leaves FROM accord_audit_tree WHERE id = 1", &[])
        .await
        .unwrap();
    let leaves: i64 = row.get(0);
    assert!(leaves as u64 >= before["tree_size"].as_u64().unwrap());
    let n: i64 = client
        .query_one("SELECT count(*) FROM accord_audit_hashes", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n as u64, tlog_tiles::stored_hash_count(leaves as u64));

    let dir = d.dir().to_path_buf();
    d.dev = Dev::start(
        &dir,
        &["--database-url", &url],
        &[("ACCORD_AUDIT__CHECKPOINT_EVERY_MS", "100")],
    );
    d.dev.wait_ready(Duration::from_secs(60)).await;
    let after = d.dev.get("/v1/audit").await.1;
    assert!(
        after["checkpoints"].as_u64() >= before["checkpoints"].as_u64(),
        "{after}"
    );
    // proofs against checkpoints signed before the restart still hold
    let out = must(&mut d.cli(&["audit", "inclusion", "--seq", "1"]));
    assert!(out.starts_with("ok:"), "{out}");
    let _ = d.agent("beta");
    let last = d.last_seq().await;
    d.covered(last).await;
    let (code, r) = d.verify(&["--data-dir", d.dir().to_str().unwrap()]);
    assert_eq!(code, 0, "{r}");
}
