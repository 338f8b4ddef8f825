//! PostgreSQL over TLS (ADR 0012): a server whose certificate does not chain to the configured
//! CA, or does not name the host, is refused; plaintext goes only to this machine and only
//! when asked for by name. (That a verified store works, projections and all, is
//! `projection.rs`'s `postgres_store_over_verified_tls_applies_exactly_once_and_rebuilds`.)

#![allow(clippy::unwrap_used)]

mod support;

use accord_store::projection::ProjectionError;
use accord_store::projection::postgres::{PgConnectError, PgStore, PgTls, check_url};
use accord_testkit::PgServer;
use rustls::CertificateError;
use support::*;

/// The rustls error somewhere in a connection error's causes.
fn rustls_error(e: &(dyn std::error::Error + 'static)) -> Option<rustls::Error> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(r) = err.downcast_ref::<rustls::Error>() {
            return Some(r.clone());
        }
        if let Some(r) = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(r.clone());
        }
        cur = err.source();
    }
    None
}

/// Connects once, as the store would, and returns the certificate error it was refused with.
async fn refusal(url: &str, tls: &PgTls) -> CertificateError {
    let config = check_url(url, false).unwrap();
    let e = match config.connect(tls.connector().unwrap()).await {
        Ok(_) => panic!("{url}: connected"),
        Err(e) => e,
    };
    match rustls_error(&e) {
        Some(rustls::Error::InvalidCertificate(c)) => c,
        other => panic!("{url}: not a certificate error: {other:?} ({e})"),
    }
}

/// The store itself gives up: nothing is migrated, the error is a storage error.
async fn store_refuses(url: &str, tls: &PgTls) {
    let store = PgStore::new(url, 2, tls).unwrap();
    assert!(matches!(
        store.migrate().await,
        Err(ProjectionError::Storage(_))
    ));
}

async fn store_works(url: &str, tls: &PgTls) {
    let store = PgStore::new(url, 2, tls).unwrap();
    store.migrate().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_certificate_from_another_ca_is_refused() {
    let pki = test_pki(&["db.accord.test"]);
    let pg = PgServer::start_tls(&pki.server_cert, &pki.server_key);
    pg.create_database("accord");
    let url = format!(
        "postgres://postgres@db.accord.test:{}/accord?hostaddr=127.0.0.1&sslmode=verify-full",
        pg.port()
    );
    // with the right CA it connects; with another one (an impostor's), never
    store_works(&url, &PgTls::verify_full(pki.ca_pem.as_bytes()).unwrap()).await;
    let other = PgTls::verify_full(test_pki(&["db.accord.test"]).ca_pem.as_bytes()).unwrap();
    assert_eq!(refusal(&url, &other).await, CertificateError::UnknownIssuer);
    store_refuses(&url, &other).await;
    // sslmode=require is verified just the same
    let require = url.replace("verify-full", "require");
    assert_eq!(
        refusal(&require, &other).await,
        CertificateError::UnknownIssuer
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_certificate_for_another_host_is_refused() {
    let pki = test_pki(&["db.accord.test"]);
    let pg = PgServer::start_tls(&pki.server_cert, &pki.server_key);
    pg.create_database("accord");
    let tls = PgTls::verify_full(pki.ca_pem.as_bytes()).unwrap();
    let good = format!(
        "postgres://postgres@db.accord.test:{}/accord?hostaddr=127.0.0.1",
        pg.port()
    );
    store_works(&good, &tls).await;
    // the same server and CA, reached as 127.0.0.1 or as another name: the certificate does
    // not name it
    for host in ["127.0.0.1", "other.accord.test"] {
        let url = format!(
            "postgres://postgres@{host}:{}/accord?hostaddr=127.0.0.1&sslmode=require",
            pg.port()
        );
        assert!(matches!(
            refusal(&url, &tls).await,
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
        ));
        store_refuses(&url, &tls).await;
    }
}

#[test]
fn plaintext_goes_only_to_this_machine_and_only_when_chosen() {
    let plain = PgTls::dangerous_plaintext_local();
    // to this machine, with the opt-in: yes
    for url in [
        "postgres://accord@127.0.0.1:5432/accord",
        "postgres://accord@localhost/accord?sslmode=disable",
        "postgres://accord@[::1]:5432/accord",
        "postgres://accord@%2Frun%2Fpostgresql/accord",
    ] {
        assert!(PgStore::new(url, 2, &plain).is_ok(), "{url}");
    }
    // to another host: no, whatever the URL says
    for url in [
        "postgres://accord@db.org-a.example:5432/accord",
        "postgres://accord@db.org-a.example/accord?sslmode=disable",
        "postgres://accord@localhost/accord?hostaddr=10.1.2.3",
        "postgres://accord@127.0.0.1,db.org-a.example/accord",
    ] {
        assert!(
            matches!(
                PgStore::new(url, 2, &plain),
                Err(PgConnectError::PlaintextNotLocal(_))
            ),
            "{url}"
        );
    }
    // the URL asks for TLS, the transport has no CA
    assert!(matches!(
        PgStore::new(
            "postgres://accord@127.0.0.1/accord?sslmode=require",
            2,
            &plain
        ),
        Err(PgConnectError::NoCa)
    ));
    // a TLS transport never falls back: sslmode=disable is refused, prefer and allow too
    let pki = test_pki(&["db.accord.test"]);
    let tls = PgTls::verify_full(pki.ca_pem.as_bytes()).unwrap();
    assert!(matches!(
        PgStore::new(
            "postgres://accord@127.0.0.1/accord?sslmode=disable",
            2,
            &tls
        ),
        Err(PgConnectError::PlaintextNotChosen)
    ));
    for mode in ["prefer", "allow", "verify-ca"] {
        let url = format!("postgres://accord@db.org-a.example/accord?sslmode={mode}");
        assert!(matches!(
            PgStore::new(&url, 2, &tls),
            Err(PgConnectError::SslMode(_))
        ));
    }
    assert!(matches!(
        PgStore::new("postgres://accord@%2Frun%2Fpostgresql/accord", 2, &tls),
        Err(PgConnectError::TlsOverSocket(_))
    ));
    assert!(PgStore::new("postgres://accord@db.org-a.example/accord", 2, &tls).is_ok());
    // a CA that is not one
    assert!(matches!(
        PgTls::verify_full(b"not a certificate"),
        Err(PgConnectError::Ca(_))
    ));
}
