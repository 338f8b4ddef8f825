//! Policies as a user runs them: `accord policy test|publish|eval` against a running domain
//! whose PDP follows the published bundle without a restart.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::*;

fn library() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policy/library")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

fn eval(dir: &Path, input: &serde_json::Value) -> serde_json::Value {
    let f = dir.join("input.json");
    std::fs::write(&f, input.to_string()).unwrap();
    let out = accord()
        .args(["policy", "eval", "--policy", "rbac", "--input"])
        .arg(&f)
        .arg("--data-dir")
        .arg(dir.join("domain"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_are_tested_published_and_followed_without_restart() {
    let tmp = tempfile::tempdir().unwrap();
    // the shipped library's own tests pass
    let out = accord()
        .args(["policy", "test"])
        .arg(library())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(" 0 failed"));

    let dir = tmp.path().join("domain");
    let dev = Dev::start(&dir, &[], &[]);
    dev.wait_ready(Duration::from_secs(30)).await;
    // a fresh domain starts with the library as version 1
    let (_, p) = dev.get("/v1/policies").await;
    assert_eq!(p["bundle"]["version"], 1, "{p}");

    let auditor = serde_json::json!({"subject": {"id": "a", "roles": ["auditor"]}, "action": "read", "resource": {"type": "agent"}});
    let d = eval(tmp.path(), &auditor);
    assert_eq!(d["allowed"], true, "{d}");
    assert_eq!(d["bundle"]["version"], 1);

    // a bundle whose tests fail is refused, locally and by the domain; version 1 stays
    let broken = tmp.path().join("broken");
    copy_dir(&library(), &broken);
    std::fs::write(
        broken.join("accord/extra_test.rego"),
        "package accord.extra_test\n\nimport rego.v1\n\ntest_fails if {\n\t1 == 2\n}\n",
    )
    .unwrap();
    let out = accord()
        .args(["policy", "test"])
        .arg(&broken)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let out = accord()
        .args(["policy", "publish"])
        .arg(&broken)
        .arg("--data-dir")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("refused"));
    // even sent straight to the domain, it is refused
    let files = accord_policy::Bundle::load_dir("default", &broken)
        .unwrap()
        .files;
    let token = std::fs::read_to_string(dir.join("http/admin.token")).unwrap();
    let r = dev
        .client()
        .post(format!("{}/v1/policies/default", dev.http()))
        .bearer_auth(token.trim())
        .json(&serde_json::json!({ "files": files }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 422);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    // and without the token, nothing happens at all
    let r = dev
        .client()
        .post(format!("{}/v1/policies/default", dev.http()))
        .json(&serde_json::json!({ "files": [] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let (_, p) = dev.get("/v1/policies").await;
    assert_eq!(p["bundle"]["version"], 1);

    // version 2 takes the auditor role's permissions away
    let v2 = tmp.path().join("v2");
    copy_dir(&library(), &v2);
    let mut data: serde_json::Value =
        serde_json::from_slice(&std::fs::read(v2.join("data.json")).unwrap()).unwrap();
    data["accord"]["settings"]["rbac"]["roles"]["auditor"]["permissions"] = serde_json::json!([]);
    std::fs::write(v2.join("data.json"), data.to_string()).unwrap();
    let out = accord()
        .args(["policy", "publish"])
        .arg(&v2)
        .arg("--data-dir")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("version 2"));
    // the running domain follows, no restart
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let d = eval(tmp.path(), &auditor);
        if d["bundle"]["version"] == 2 {
            assert_eq!(d["allowed"], false, "{d}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the PDP did not follow the new version"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // the same input against a local folder
    std::fs::write(tmp.path().join("in.json"), auditor.to_string()).unwrap();
    let out = accord()
        .args(["policy", "eval", "--policy", "rbac", "--input"])
        .arg(tmp.path().join("in.json"))
        .arg("--dir")
        .arg(library())
        .output()
        .unwrap();
    let local: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(local["allowed"], true);
    drop(dev);
}
