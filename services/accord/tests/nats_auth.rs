//! NATS authorization of a domain: only the domain's services write history; nobody deletes,
//! purges or reconfigures the log; auditors and the operator read, from accounts of their own;
//! strangers are not let in. All over TLS. (What identities outside the services' account can
//! and cannot do to the log through reply subjects, consumers and stream updates:
//! `tests/log_integrity.rs`.)

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use async_nats::jetstream;
use support::*;

fn js(client: &async_nats::Client) -> jetstream::Context {
    jetstream::ContextBuilder::new()
        .timeout(Duration::from_secs(1))
        .build(client.clone())
}

/// The server told the client it may not publish to `subject`.
fn violated(errors: &std::sync::Mutex<Vec<String>>, subject: &str) -> bool {
    errors
        .lock()
        .unwrap()
        .iter()
        .any(|e| e.to_lowercase().contains("permissions violation") && e.contains(subject))
}

async fn last_seq(dir: &std::path::Path) -> u64 {
    let c = connect_as(dir, "services").await.unwrap();
    js(&c)
        .get_stream("ACCORD_EVENTS")
        .await
        .unwrap()
        .get_info()
        .await
        .unwrap()
        .state
        .last_sequence
}

/// An event-shaped message published as `who` directly to the log's subjects.
async fn try_publish(client: &async_nats::Client, subject: &str) -> bool {
    match js(client).publish(subject.to_owned(), "{}".into()).await {
        Ok(ack) => ack.await.is_ok(),
        Err(_) => false,
    }
}

async fn try_destroy(client: &async_nats::Client) -> [bool; 4] {
    let js = js(client);
    let delete = js.delete_stream("ACCORD_EVENTS").await.is_ok();
    let purge = match js.get_stream("ACCORD_EVENTS").await {
        Ok(s) => s.purge().await.is_ok(),
        Err(_) => false,
    };
    let remove = match js.get_stream("ACCORD_EVENTS").await {
        Ok(s) => s.delete_message(1).await.is_ok(),
        Err(_) => false,
    };
    let mut config =
        accord_store::StreamSettings::new(accord_events::DomainId::parse("dev").unwrap()).config();
    config.deny_purge = false;
    config.deny_delete = false;
    let update = js.update_stream(config).await.is_ok();
    [delete, purge, remove, update]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_services_write_and_nobody_destroys_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("domain");
    let dev = Dev::start(&dir, &[], &[]);
    dev.wait_ready(Duration::from_secs(30)).await;
    let events = store(&dir, None).await;
    write_agents(&events, 2, 2).await;
    let before = last_seq(&dir).await;
    let subject = "accord.evt.dev.agent.x.AgentSuspended";

    // a stranger: TLS but no credentials is not let in at all
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("dev.json")).unwrap()).unwrap();
    let anonymous = async_nats::ConnectOptions::new()
        .add_root_certificates(dir.join("tls/ca.pem"))
        .require_tls(true)
        .connection_timeout(Duration::from_secs(3))
        .connect(format!("tls://127.0.0.1:{}", state["nats_port"]))
        .await;
    assert!(
        anonymous.is_err(),
        "a client without credentials must be refused"
    );
    // nor is a client that skips TLS
    let plain = async_nats::ConnectOptions::with_nkey(
        std::fs::read_to_string(dir.join("nats/services.nk"))
            .unwrap()
            .trim()
            .to_owned(),
    )
    .connection_timeout(Duration::from_secs(3))
    .connect(format!("nats://127.0.0.1:{}", state["nats_port"]))
    .await;
    if let Ok(c) = plain {
        // async-nats upgrades when the server requires TLS; it must have done so
        assert!(c.server_info().tls_required);
    }

    // the auditor reads (direct get, the one call its account imports) but does not write or
    // destroy
    let (auditor, auditor_errors) = connect_watching(&dir, "auditor").await;
    let reader =
        accord_store::reader::LogReader::direct_only(auditor.clone(), "$JS.API", "ACCORD_EVENTS");
    assert_eq!(reader.last_sequence().await.unwrap(), before);
    let read = reader.read_range("accord.evt.dev.>", 1).await.unwrap();
    assert_eq!(read.len() as u64, before, "the auditor reads the whole log");
    // the same through the JetStream domain's prefix
    let prefixed = accord_store::reader::LogReader::direct_only(
        auditor.clone(),
        "$JS.dev.API",
        "ACCORD_EVENTS",
    );
    assert_eq!(prefixed.last_sequence().await.unwrap(), before);
    assert!(
        !try_publish(&auditor, subject).await,
        "the auditor cannot publish events"
    );
    assert_eq!(try_destroy(&auditor).await, [false; 4]);
    assert!(violated(&auditor_errors, subject), "{auditor_errors:?}");
    assert!(
        violated(&auditor_errors, "$JS.API.STREAM.DELETE.ACCORD_EVENTS"),
        "{auditor_errors:?}"
    );

    // the operator's identity reads like the auditor; it neither reconfigures nor destroys the
    // log, nor writes events (stream changes are a break-glass procedure, ADR 0006)
    let (admin, admin_errors) = connect_watching(&dir, "admin").await;
    assert!(!try_publish(&admin, subject).await);
    assert_eq!(try_destroy(&admin).await, [false; 4]);
    for s in [
        subject,
        "$JS.API.STREAM.DELETE.ACCORD_EVENTS",
        "$JS.API.STREAM.UPDATE.ACCORD_EVENTS",
    ] {
        assert!(violated(&admin_errors, s), "{s}: {admin_errors:?}");
    }
    let admin_reader =
        accord_store::reader::LogReader::direct_only(admin.clone(), "$JS.API", "ACCORD_EVENTS");
    assert_eq!(admin_reader.last_sequence().await.unwrap(), before);

    // the services write their own domain's events, and nothing else
    let (services, services_errors) = connect_watching(&dir, "services").await;
    let foreign = "accord.evt.other.agent.x.AgentSuspended";
    assert!(!try_publish(&services, foreign).await);
    assert_eq!(try_destroy(&services).await, [false; 4]);
    for s in [
        foreign,
        "$JS.API.STREAM.DELETE.ACCORD_EVENTS",
        "$JS.API.STREAM.PURGE.ACCORD_EVENTS",
        "$JS.API.STREAM.MSG.DELETE.ACCORD_EVENTS",
        "$JS.API.STREAM.UPDATE.ACCORD_EVENTS",
    ] {
        assert!(violated(&services_errors, s), "{s}: {services_errors:?}");
    }

    // the services no longer read everything in their account: not the callout's requests,
    // which carry agents' tokens (finding 15)
    for s in ["$SYS.REQ.USER.AUTH", ">"] {
        let _ = services.subscribe(s.to_owned()).await;
    }
    services.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let subscribe_refused = |s: &str| {
        services_errors.lock().unwrap().iter().any(|e| {
            e.to_lowercase()
                .contains("permissions violation for subscription")
                && e.contains(s)
        })
    };
    assert!(
        subscribe_refused("$SYS.REQ.USER.AUTH"),
        "{services_errors:?}"
    );

    // the system user the ACA holds looks up connections and kicks them, nothing else
    // (finding 11)
    let (system, system_errors) = connect_watching(&dir, "system").await;
    let connz = system
        .request("$SYS.REQ.SERVER.PING.CONNZ", "{}".into())
        .await
        .unwrap();
    assert!(
        String::from_utf8_lossy(&connz.payload).contains("connections"),
        "CONNZ is allowed"
    );
    for s in [
        "$SYS.REQ.SERVER.PING",
        "$SYS.REQ.SERVER.PING.JSZ",
        "$SYS.REQ.ACCOUNT.ACCORD.CONNZ",
        "$SYS.REQ.SERVER.x.RELOAD",
        "$SYS.REQ.SERVER.x.LDM",
    ] {
        let _ = system.publish(s.to_owned(), "{}".into()).await;
    }
    system.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    for s in [
        "$SYS.REQ.SERVER.PING\"",
        "$SYS.REQ.SERVER.PING.JSZ",
        "$SYS.REQ.ACCOUNT.ACCORD.CONNZ",
        "$SYS.REQ.SERVER.x.RELOAD",
        "$SYS.REQ.SERVER.x.LDM",
    ] {
        assert!(violated(&system_errors, s), "{s}: {system_errors:?}");
    }

    // the log is as it was, and still has its invariants
    assert_eq!(last_seq(&dir).await, before);
    let info = js(&services)
        .get_stream("ACCORD_EVENTS")
        .await
        .unwrap()
        .get_info()
        .await
        .unwrap();
    assert!(info.config.deny_delete && info.config.deny_purge);
    drop(dev);
}
