//! `accord dev` as a user runs it: one domain per folder, across restarts and crashes.

#![allow(clippy::unwrap_used)]

mod support;

use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use accord_testkit::PgServer;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_started_twice_on_one_folder_is_one_domain() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("domain");
    let mut first = Dev::start(&dir, &[], &[]);
    first.wait_ready(Duration::from_secs(30)).await;
    let (_, d1) = first.get("/v1/domain").await;
    assert_eq!(d1["genesis_seq"], 1);
    let events = store(&dir, None).await;
    let last = write_agents(&events, 3, 4).await;
    drop(events);
    // a second accord dev on the same folder while the first runs is refused
    let out = accord()
        .args(["dev", "--data-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("another accord dev"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one clear line: {err}");
    assert!(first.stop().unwrap().success());

    let second = Dev::start(&dir, &[], &[]);
    second.wait_ready(Duration::from_secs(30)).await;
    let (_, d2) = second.get("/v1/domain").await;
    assert_eq!(d2["domain_id"], d1["domain_id"]);
    assert_eq!(d2["event_signing_keys"], d1["event_signing_keys"]);
    assert_eq!(d2["genesis_seq"], 1);
    if d2["last_seq"] != last {
        let tail = accord()
            .args(["events", "tail", "--data-dir"])
            .arg(&dir)
            .output()
            .unwrap();
        panic!(
            "no second genesis, nothing lost: last_seq {} != {last}\n{}",
            d2["last_seq"],
            String::from_utf8_lossy(&tail.stdout)
        );
    }
    assert_eq!(second.endpoints["nats_url"], first.endpoints["nats_url"]);
    // and its projections caught up on what the first run wrote
    let (_, reg) = second
        .get(&format!("/v1/projections/registry/digest?min_seq={last}"))
        .await;
    assert_eq!(reg["applied"], last);
    assert_eq!(reg["rows"], 6, "3 agents and their 3 SPIFFE ids: {reg}");
}

/// Kills `accord dev` with SIGKILL from inside the registry projection's batch (a fault hook
/// placed right after it applied one chosen event, before the batch commits), restarts it, and
/// checks that the state equals a full rebuild and that every agent event was applied exactly
/// once.
async fn killed_mid_batch(extra: &[&str]) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("domain");
    let batch = [("ACCORD_PROJECTIONS__BATCH_SIZE", "40")];
    let mut dev = Dev::start(&dir, extra, &batch);
    dev.wait_ready(Duration::from_secs(30)).await;
    let events = store(&dir, None).await;
    let last = write_agents(&events, 30, 10).await;
    dev.stop();

    // the fault point lies among events written while the projection runs live
    let kill = format!("projection:registry:{}", last + 25);
    let mut dying = Dev::start(&dir, extra, &[batch[0], ("ACCORD_FAULT_KILL", &kill)]);
    dying.wait_ready(Duration::from_secs(30)).await;
    let writer = {
        let dir = dir.clone();
        tokio::spawn(async move {
            let events = store(&dir, None).await;
            write_agents(&events, 10, 10).await
        })
    };
    let status = dying.wait_exit(Duration::from_secs(60));
    assert_eq!(
        status.signal(),
        Some(9),
        "killed by SIGKILL: {}",
        dying.stderr()
    );
    let last = writer.await.unwrap();

    let dev = Dev::start(&dir, extra, &batch);
    dev.wait_ready(Duration::from_secs(60)).await;
    let (_, after) = dev
        .get(&format!(
            "/v1/projections/registry/digest?min_seq={last}&wait_ms=20000"
        ))
        .await;
    assert_eq!(after["applied"], last, "{after}");
    let (_, agents) = dev.get("/v1/projections/registry/tables/agents").await;
    let rows = agents["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 40);
    for r in rows {
        assert_eq!(r["value"]["events"], 10, "applied exactly once: {r}");
    }
    // a full rebuild gives the same state
    let out = accord()
        .args(["projections", "rebuild", "registry", "--data-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, rebuilt) = dev
        .get(&format!("/v1/projections/registry/digest?min_seq={last}"))
        .await;
    assert!(rebuilt["generation"].as_u64() > after["generation"].as_u64());
    assert_eq!(
        rebuilt["digest"], after["digest"],
        "equal to a full rebuild"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projection_killed_mid_batch_resumes_exactly_once_in_memory() {
    killed_mid_batch(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projection_killed_mid_batch_resumes_exactly_once_in_postgres() {
    let pg = PgServer::start();
    let url = pg.create_database("accord");
    killed_mid_batch(&["--database-url", &url]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_keeps_its_projections_in_postgresql_over_verified_tls() {
    // a server certificate for 127.0.0.1 and localhost, from a CA made for this test
    let pki = accord::pki::generate("pg").unwrap();
    let pg = PgServer::start_tls(&pki.server_cert, &pki.server_key);
    let url = pg.create_database("accord");
    let tmp = tempfile::tempdir().unwrap();
    let (ca, other) = (tmp.path().join("pg-ca.pem"), tmp.path().join("other.pem"));
    std::fs::write(&ca, &pki.ca_cert).unwrap();
    std::fs::write(&other, accord::pki::generate("x").unwrap().ca_cert).unwrap();
    // the server's certificate does not chain to this CA: the domain does not start
    let out = accord()
        .args(["dev", "--json", "--data-dir"])
        .arg(tmp.path().join("refused"))
        .args(["--database-url", &url, "--database-ca"])
        .arg(&other)
        .env("ACCORD_AUDIT__CHECKPOINTS", "false")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "no endpoints were printed");
    // with the CA that signed it: ready, with its projections in PostgreSQL over TLS
    let dir = tmp.path().join("domain");
    let dev = Dev::start(
        &dir,
        &[
            "--database-url",
            &url,
            "--database-ca",
            ca.to_str().unwrap(),
        ],
        &[],
    );
    dev.wait_ready(Duration::from_secs(30)).await;
    assert_eq!(dev.endpoints["projections"], "postgresql");
    let config = std::fs::read_to_string(dir.join("accord.toml")).unwrap();
    assert!(config.contains("ca = ") && !config.contains("dangerous_plaintext_local"));
}
