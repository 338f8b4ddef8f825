//! The remote PDP's transport (finding 17): a plaintext URL is refused unless the caller says
//! `dangerous`, a redirect is never followed, and an oversized answer is an error. Every error
//! is a deny for the caller.

#![allow(clippy::unwrap_used)]

use accord_policy::{Pdp, PdpError, RemoteKind, RemotePdp};
use axum::Json;
use axum::routing::post;
use serde_json::{Value, json};

async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

fn reader() -> Value {
    json!({"subject": {"id": "a", "roles": ["reader"]}, "action": "read", "resource": {"type": "agent"}})
}

#[test]
fn a_plaintext_pdp_url_is_refused_without_the_dangerous_flag() {
    for kind in [RemoteKind::Opa, RemoteKind::Authzen] {
        assert!(matches!(
            RemotePdp::with_ca(kind, "http://opa.example:8181", None),
            Err(PdpError::InsecureUrl(_))
        ));
        // not a URL of either scheme
        assert!(matches!(
            RemotePdp::with_ca(kind, "ftp://opa.example", None),
            Err(PdpError::InsecureUrl(_))
        ));
        assert!(RemotePdp::with_ca(kind, "https://opa.example:8181", None).is_ok());
        // the explicit opt-in still takes http, and nothing but http(s)
        assert!(RemotePdp::dangerous_plaintext(kind, "http://127.0.0.1:8181").is_ok());
        assert!(matches!(
            RemotePdp::dangerous_plaintext(kind, "file:///etc/passwd"),
            Err(PdpError::InsecureUrl(_))
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_from_the_pdp_is_not_followed() {
    let allow = || async { Json(json!({"result": {"allow": true, "reasons": []}})) };
    let app = axum::Router::new()
        .route(
            "/v1/data/accord/rbac/decision",
            post(|| async {
                // 307 keeps the method and body: a client that follows it asks /elsewhere,
                // and the redirect's own body is an allow too
                (
                    axum::http::StatusCode::TEMPORARY_REDIRECT,
                    [(
                        axum::http::header::LOCATION,
                        "/elsewhere/v1/data/accord/rbac/decision",
                    )],
                    Json(json!({"result": {"allow": true}})),
                )
            }),
        )
        .route("/elsewhere/v1/data/accord/rbac/decision", post(allow));
    let url = serve(app).await;
    let pdp = Pdp::remote(
        RemotePdp::dangerous_plaintext(RemoteKind::Opa, &url).unwrap(),
        None,
    );
    let e = pdp.decide("rbac", &reader()).await.unwrap_err();
    assert!(matches!(e, PdpError::Unavailable(_)), "{e:?}");
    // the same server, asked directly where the redirect pointed, allows: only the redirect
    // is refused
    let direct = Pdp::remote(
        RemotePdp::dangerous_plaintext(RemoteKind::Opa, &format!("{url}/elsewhere")).unwrap(),
        None,
    );
    assert!(direct.decide("rbac", &reader()).await.unwrap().is_allowed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_pdp_answer_is_an_error() {
    let pad = "x".repeat(2 << 20);
    let big = json!({"result": {"allow": true, "pad": pad}});
    let app = axum::Router::new()
        .route(
            "/v1/data/accord/rbac/decision",
            post(move || {
                let big = big.clone();
                async move { Json(big) }
            }),
        )
        .route(
            "/access/v1/evaluation",
            post(|| async {
                // no content-length: the body is streamed in chunks
                let chunks = (0..64).map(|i| {
                    let s = if i == 0 {
                        format!("{{\"decision\": true, \"pad\": \"{}", "y".repeat(32 << 10))
                    } else {
                        "y".repeat(32 << 10)
                    };
                    Ok::<_, std::io::Error>(s)
                });
                axum::body::Body::from_stream(futures::stream::iter(chunks))
            }),
        );
    let url = serve(app).await;
    for kind in [RemoteKind::Opa, RemoteKind::Authzen] {
        let pdp = Pdp::remote(RemotePdp::dangerous_plaintext(kind, &url).unwrap(), None);
        let e = pdp.decide("rbac", &reader()).await.unwrap_err();
        assert!(matches!(e, PdpError::Malformed(_)), "{kind:?}: {e:?}");
    }
}
