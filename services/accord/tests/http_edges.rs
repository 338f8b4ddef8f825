//! The HTTP edges against a running `accord dev`, outside in with `curl` (security review
//! 2026-12, findings 6, 9 and 19): the read-model routes need a token, are rate-limited and
//! page in storage; the admin token is read on every request and must be strong; an
//! unauthenticated admin request is refused before its body is read; projection errors name a
//! kind, never the database.

#![allow(clippy::unwrap_used)]

#[path = "support/curl.rs"]
mod curl;
mod support;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use accord_testkit::PgServer;
use curl::{Got, curl};
use support::*;

struct Domain {
    dev: Dev,
    work: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Domain {
    async fn start(env: &[(&str, &str)]) -> Self {
        Self::start_with(&[], env).await
    }

    async fn start_with(args: &[&str], env: &[(&str, &str)]) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dev = Dev::start(&tmp.path().join("domain"), args, env);
        dev.wait_ready(Duration::from_secs(60)).await;
        let work = tmp.path().join("work");
        std::fs::create_dir_all(&work).unwrap();
        Self {
            dev,
            work,
            _tmp: tmp,
        }
    }

    fn admin(&self) -> String {
        std::fs::read_to_string(self.dev.dir.join("http/admin.token"))
            .unwrap()
            .trim()
            .to_owned()
    }

    fn curl(&self, args: &[&str]) -> Got {
        curl(&self.dev.dir.join("tls/ca.pem"), &self.work, args)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.dev.http())
    }

    /// GET `path` with `token` as the bearer (none when `None`).
    fn get(&self, path: &str, token: Option<&str>) -> Got {
        let auth = token.map(|t| format!("Authorization: Bearer {t}"));
        let mut args = vec![];
        if let Some(a) = &auth {
            args.extend(["-H", a.as_str()]);
        }
        let url = self.url(path);
        args.push(&url);
        self.curl(&args)
    }

    /// POST a JSON `body` (a file in `work`) to `path`.
    fn post(&self, path: &str, token: Option<&str>, body: &str) -> Got {
        let auth = token.map(|t| format!("Authorization: Bearer {t}"));
        let data = format!("@{body}");
        let url = self.url(path);
        let mut args = vec![
            "--http1.1",
            "-H",
            "content-type: application/json",
            "-H",
            "Expect:",
            "--data-binary",
            &data,
        ];
        if let Some(a) = &auth {
            args.extend(["-H", a.as_str()]);
        }
        args.push(&url);
        self.curl(&args)
    }

    fn write(&self, name: &str, text: &str) -> String {
        std::fs::write(self.work.join(name), text).unwrap();
        name.to_owned()
    }
}

/// Finding 6: `GET /v1/projections/{name}/tables/{table}` and `/digest` need a token; with one,
/// a table comes a bounded page at a time, by key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_model_routes_need_a_token_and_page_in_storage() {
    let d = Domain::start(&[]).await;
    let events = store(&d.dev.dir, None).await;
    let last = write_agents(&events, 1005, 1).await;
    let admin = d.admin();

    for path in [
        "/v1/projections/registry/tables/agents".to_owned(),
        format!("/v1/projections/registry/digest?min_seq={last}&wait_ms=20000"),
    ] {
        for token in [None, Some("not-the-admin-token-but-long-enough-to-be-one")] {
            let g = d.get(&path, token);
            assert_eq!(
                (g.status, g.kind().as_str()),
                (401, "unauthorized"),
                "{path}"
            );
            assert_eq!(
                g.header("content-type").as_deref(),
                Some("application/problem+json")
            );
            assert!(!String::from_utf8_lossy(&g.body).contains("\"rows\""));
        }
    }

    let digest = d.get(
        &format!("/v1/projections/registry/digest?min_seq={last}&wait_ms=20000"),
        Some(&admin),
    );
    assert_eq!(digest.status, 200, "{:?}", digest.json());
    assert_eq!(digest.json()["applied"], last);

    // the page size is bounded whatever the caller asks; pages follow each other by key
    let first = d.get(
        "/v1/projections/registry/tables/agents?limit=5000",
        Some(&admin),
    );
    assert_eq!(first.status, 200);
    let rows = first.json()["rows"].as_array().unwrap().clone();
    assert_eq!(rows.len(), 1000, "the page size bound");
    let keys: Vec<String> = rows
        .iter()
        .map(|r| r["key"].as_str().unwrap().to_owned())
        .collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "in key order");
    let after = keys.last().unwrap();
    let second = d.get(
        &format!("/v1/projections/registry/tables/agents?limit=1000&after={after}"),
        Some(&admin),
    );
    assert_eq!(second.status, 200);
    let more: Vec<String> = second.json()["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["key"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(more.len(), 5);
    assert!(more.iter().all(|k| k > after));
    let small = d.get(
        "/v1/projections/registry/tables/agents?limit=3",
        Some(&admin),
    );
    assert_eq!(small.json()["rows"].as_array().unwrap().len(), 3);
    let bad = d.get(
        "/v1/projections/registry/tables/agents?limit=x",
        Some(&admin),
    );
    assert_eq!((bad.status, bad.kind().as_str()), (400, "bad-query"));
}

/// Finding 6: a separate read-only token (`http.read_token`) reads the models and can do
/// nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_token_reads_the_models_and_nothing_else() {
    let tmp = tempfile::tempdir().unwrap();
    let read = "r3ad-0nly-t0ken-for-the-auditors-of-this-domain-0123";
    let file = tmp.path().join("read.token");
    std::fs::write(&file, read).unwrap();
    // a secret file: private to the service
    let private = <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o600);
    std::fs::set_permissions(&file, private).unwrap();
    let reference = format!("file:{}", file.display());
    let d = Domain::start(&[("ACCORD_HTTP__READ_TOKEN", &reference)]).await;
    let g = d.get("/v1/projections/registry/tables/agents", Some(read));
    assert_eq!(g.status, 200);
    let g = d.get("/v1/projections/registry/digest", Some(read));
    assert_eq!(g.status, 200);
    let body = d.write("provision.json", r#"{"name":"reader"}"#);
    let g = d.post("/v1/agents", Some(read), &body);
    assert_eq!((g.status, g.kind().as_str()), (401, "unauthorized"));
    let g = d.post("/v1/projections/registry/rebuild", Some(read), &body);
    assert_eq!((g.status, g.kind().as_str()), (401, "unauthorized"));
    let g = d.get("/v1/trust", Some(read));
    assert_eq!(g.status, 401);
}

/// Findings 6 and 9: the read-model routes and the domain's admin routes share a per-client
/// allowance, so the admin token cannot be guessed online either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_and_domain_admin_routes_are_rate_limited_per_client() {
    let d = Domain::start(&[("ACCORD_HTTP__RATE_LIMIT_PER_MINUTE", "5")]).await;
    let admin = d.admin();
    for _ in 0..5 {
        let g = d.get("/v1/projections/registry/tables/agents", Some(&admin));
        assert_eq!(g.status, 200);
    }
    let g = d.get("/v1/projections/registry/tables/agents", Some(&admin));
    assert_eq!((g.status, g.kind().as_str()), (429, "rate-limited"));
    assert!(g.header("retry-after").is_some());
    let body = d.write("input.json", r#"{"subject":{"roles":["auditor"]}}"#);
    for path in [
        "/v1/decide/rbac",
        "/v1/policies/default",
        "/v1/projections/registry/rebuild",
    ] {
        let g = d.post(
            path,
            Some("a-guess-at-the-admin-token-of-this-domain"),
            &body,
        );
        assert_eq!(
            (g.status, g.kind().as_str()),
            (429, "rate-limited"),
            "{path}"
        );
    }
    // public routes are not limited
    assert_eq!(d.get("/v1/domain", None).status, 200);
}

/// Finding 9: the token file is read on every request, on the ACA's routes too: after a
/// rotation the old token is refused at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_admin_token_is_refused_at_once_on_every_route() {
    let d = Domain::start(&[]).await;
    let old = d.admin();
    let body = d.write("provision.json", r#"{"name":"rotation"}"#);
    assert_eq!(d.post("/v1/agents", Some(&old), &body).status, 201);

    let new = "n3w-admin-token-after-the-rotation-0123456789abcdef";
    std::fs::write(d.dev.dir.join("http/admin.token"), new).unwrap();
    let g = d.post("/v1/agents", Some(&old), &body);
    assert_eq!((g.status, g.kind().as_str()), (401, "unauthorized"));
    assert_eq!(d.get("/v1/trust", Some(&old)).status, 401);
    let input = d.write("input.json", r#"{"subject":{"roles":["auditor"]}}"#);
    assert_eq!(d.post("/v1/decide/rbac", Some(&old), &input).status, 401);
    assert_eq!(
        d.get("/v1/projections/registry/tables/agents", Some(&old))
            .status,
        401
    );

    assert_eq!(d.post("/v1/agents", Some(new), &body).status, 201);
    assert_eq!(d.get("/v1/trust", Some(new)).status, 200);
    assert_eq!(d.post("/v1/decide/rbac", Some(new), &input).status, 200);

    // a weak token written while it runs matches nothing (and the server says so in its log)
    std::fs::write(d.dev.dir.join("http/admin.token"), "short").unwrap();
    assert_eq!(d.post("/v1/agents", Some("short"), &body).status, 401);
}

/// Finding 9: an operator-supplied admin token shorter than 32 characters is a configuration
/// error at start (exit 2), before any port is bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weak_admin_token_is_refused_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("domain");
    let mut dev = Dev::start(&dir, &[], &[]);
    dev.wait_ready(Duration::from_secs(60)).await;
    dev.stop();
    std::fs::write(dir.join("http/admin.token"), "hunter2hunter2").unwrap();
    let out = tmp.path().join("second.stdout");
    let mut child = accord()
        .args(["dev", "--json", "--data-dir"])
        .arg(&dir)
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        let started = !std::fs::read_to_string(&out).unwrap_or_default().is_empty();
        if started || Instant::now() > deadline {
            // SIGTERM, so that it stops the nats-server it launched
            accord_testkit::terminate(&mut child, Duration::from_secs(20));
            panic!("accord dev started with a 14-character admin token");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(2), "a configuration error");
}

/// Finding 19: an unauthenticated caller makes the server read nothing: a 400 KiB body to any
/// admin route is a 401 (not 413 or 400), and the server never asks for the body
/// (`Expect: 100-continue` gets no `100 Continue`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_admin_requests_are_refused_before_their_body_is_read() {
    let d = Domain::start(&[]).await;
    let (_, before) = d.dev.get("/v1/domain").await;
    let big = d.write(
        "big.json",
        &format!("{{\"name\":\"{}\"}}", "a".repeat(400 * 1024)),
    );
    let agent = uuid::Uuid::now_v7();
    let paths = [
        "/v1/agents".to_owned(),
        "/v1/trust".to_owned(),
        "/v1/revocations".to_owned(),
        format!("/v1/agents/{agent}/role-grants"),
        format!("/v1/agents/{agent}/lifecycle"),
        "/v1/decide/rbac".to_owned(),
        "/v1/policies/default".to_owned(),
        "/v1/projections/registry/rebuild".to_owned(),
    ];
    let wrong = "Authorization: Bearer a-wrong-admin-token-of-the-right-length-0123";
    for path in &paths {
        for auth in [None, Some(wrong)] {
            let data = format!("@{big}");
            let url = d.url(path);
            let mut args = vec![
                "--http1.1",
                "-H",
                "content-type: application/json",
                // as a careful client sends a large body: the server may answer first
                "-H",
                "Expect: 100-continue",
                "--expect100-timeout",
                "10",
                "--data-binary",
                &data,
            ];
            if let Some(a) = auth {
                args.extend(["-H", a]);
            }
            args.push(&url);
            let g = d.curl(&args);
            assert_eq!(
                (g.status, g.kind().as_str()),
                (401, "unauthorized"),
                "{path} {auth:?}"
            );
            assert!(
                !g.headers.contains("100 continue"),
                "{path}: the server asked for the body: {}",
                g.headers
            );
        }
    }
    let (_, after) = d.dev.get("/v1/domain").await;
    assert_eq!(after["last_seq"], before["last_seq"], "nothing appended");
}

/// Finding 19: `/v1/projections` names the kind of a projection's failure, never the
/// database's words (its host, its user).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projection_errors_name_a_kind_not_the_database() {
    let pg = PgServer::start();
    let (admin, conn) = tokio_postgres::connect(
        &format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres",
            pg.port()
        ),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    for sql in [
        "CREATE ROLE accord_edges_app LOGIN",
        "CREATE DATABASE accord_edges OWNER accord_edges_app",
    ] {
        admin.batch_execute(sql).await.unwrap();
    }
    let url = format!(
        "postgres://accord_edges_app@127.0.0.1:{}/accord_edges",
        pg.port()
    );
    let d = Domain::start_with(&["--database-url", &url], &[]).await;
    // the database now refuses the service's user, which the server's error names
    admin
        .batch_execute(
            "ALTER ROLE accord_edges_app NOLOGIN;
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'accord_edges_app'",
        )
        .await
        .unwrap();
    let events = store(&d.dev.dir, None).await;
    write_agents(&events, 1, 1).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let errors = loop {
        let g = d.get("/v1/projections", None);
        let errors: Vec<String> = g.json()["projections"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["error"].as_str().map(str::to_owned))
            .collect();
        if !errors.is_empty() {
            break errors;
        }
        assert!(Instant::now() < deadline, "no projection reported an error");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for e in &errors {
        for leak in [
            "accord_edges_app",
            "accord_edges",
            "127.0.0.1",
            &pg.port().to_string(),
            "FATAL",
        ] {
            assert!(!e.contains(leak), "{e:?} shows {leak:?}");
        }
        assert_eq!(e, "storage", "a generic kind");
    }
}
