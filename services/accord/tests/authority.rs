//! The Agent Credential Authority as its users meet it (issue 5), against a running
//! `accord dev`: outside clients (`curl`, `openssl`, Python's `cryptography` and `jwcrypto`)
//! enroll, verify and revoke; the same with the CA key in SoftHSM2; the agent CLI's round trip;
//! refusals that are typed and change nothing; the rate limit; and no secret in the log or in
//! what the process prints (invariant I7).

#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use reqwest::RequestBuilder;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use support::*;

const PROBLEMS: &str = "https://accord.dev/problems/";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn output_text(o: &Output) -> String {
    let (out, err) = (&o.stdout, &o.stderr);
    format!(
        "{}{}",
        String::from_utf8_lossy(out),
        String::from_utf8_lossy(err)
    )
}

fn openssl(work: &Path) -> Command {
    let mut c = Command::new("openssl");
    c.current_dir(work);
    c
}

/// `openssl <args>` in `work` (the arguments split at spaces), which must succeed; its stdout.
#[track_caller]
fn ssl(work: &Path, args: &str) -> String {
    must(openssl(work).args(args.split_whitespace()))
}

/// The same, whatever the outcome: everything it printed, and whether it succeeded.
fn ssl_try(work: &Path, args: &str) -> (bool, String) {
    let o = openssl(work)
        .args(args.split_whitespace())
        .output()
        .unwrap();
    (o.status.success(), output_text(&o))
}

fn read(p: impl AsRef<Path>) -> String {
    std::fs::read_to_string(p).unwrap()
}

fn read_json(p: impl AsRef<Path>) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

fn write(p: impl AsRef<Path>, contents: impl AsRef<[u8]>) {
    std::fs::write(p, contents).unwrap();
}

/// An answer of the domain's HTTPS API.
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Value,
    raw: String,
}

impl Answer {
    fn kind(&self) -> &str {
        let t = self.body["type"].as_str();
        t.and_then(|t| t.strip_prefix(PROBLEMS)).unwrap_or("?")
    }

    /// A problem document (RFC 9457) of this status and type.
    #[track_caller]
    fn refused(&self, status: u16, kind: &str) {
        let raw = &self.raw;
        assert_eq!((self.status, self.kind()), (status, kind), "{raw}");
        let ct = &self.headers["content-type"];
        assert_eq!(ct, "application/problem+json", "{raw}");
        assert_eq!(self.body["status"], status, "{raw}");
        assert!(self.body["title"].as_str().is_some_and(|t| !t.is_empty()));
    }
}

/// A running dev domain and what its clients need.
struct Domain {
    dev: Dev,
    url: String,
    admin: String,
    http: reqwest::Client,
}

impl Domain {
    async fn start(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::of(Dev::start(dir, args, env)).await
    }

    async fn of(dev: Dev) -> Self {
        dev.wait_ready(Duration::from_secs(60)).await;
        let admin = read(dev.dir.join("http/admin.token")).trim().to_owned();
        // these tests are about the CSR, the signatures and revocation: a domain that asks
        // for proof of possession only (the evidence is tested in tests/evidence.rs)
        publish_proof_of_possession_only(&dev).await;
        let (url, http) = (dev.http(), dev.client());
        Self {
            dev,
            url,
            admin,
            http,
        }
    }

    fn dir(&self) -> &Path {
        &self.dev.dir
    }

    /// `accord <args> --data-dir <this domain>`.
    fn cli(&self, args: &[&str]) -> Command {
        let mut c = accord();
        c.args(args).arg("--data-dir").arg(self.dir());
        c
    }

    fn post(&self, path: &str) -> RequestBuilder {
        self.http.post(format!("{}{path}", self.url))
    }

    fn credentials(&self, agent: &str) -> RequestBuilder {
        self.post(&format!("/v1/agents/{agent}/credentials"))
    }

    async fn send(&self, r: RequestBuilder) -> Answer {
        let r = r.send().await.unwrap();
        let (status, headers) = (r.status().as_u16(), r.headers().clone());
        let raw = r.text().await.unwrap();
        let body = serde_json::from_str(&raw).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
            raw,
        }
    }

    async fn get(&self, path: &str) -> Answer {
        self.send(self.http.get(format!("{}{path}", self.url)))
            .await
    }

    /// The log's last sequence.
    async fn last_seq(&self) -> u64 {
        let a = self.get("/v1/domain").await;
        assert_eq!(a.status, 200, "{}", a.raw);
        a.body["last_seq"].as_u64().unwrap()
    }

    async fn provision(&self, name: &str, capabilities: &[&str]) -> Value {
        let body = json!({"name": name, "capabilities": capabilities});
        let a = self
            .send(self.post("/v1/agents").bearer_auth(&self.admin).json(&body))
            .await;
        assert_eq!(a.status, 201, "{}", a.raw);
        a.body
    }

    async fn enroll(&self, agent: &str, token: &str, body: Value) -> Answer {
        self.send(self.credentials(agent).bearer_auth(token).json(&body))
            .await
    }

    /// Every event from `from` on, signature-checked, as `accord events tail --json` prints them.
    fn events(&self, from: u64) -> String {
        must(&mut self.cli(&["events", "tail", "--json", "--from", &from.to_string()]))
    }

    /// `curl` against the domain, trusting its TLS CA, in `work`: the body goes to `out`;
    /// returns the status and the content type.
    fn curl(&self, work: &Path, out: &str, args: &[&str]) -> (u16, String) {
        let o = Command::new("curl")
            .current_dir(work)
            .args(["-sS", "--cacert"])
            .arg(self.dir().join("tls/ca.pem"))
            .args(["-o", out, "-w", "%{http_code} %{content_type}"])
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "curl {args:?}: {}", output_text(&o));
        let w = String::from_utf8(o.stdout).unwrap();
        let (code, ct) = w.split_once(' ').unwrap();
        (code.parse().unwrap(), ct.to_owned())
    }

    /// The CA chain and the JWKS, fetched with `curl` into `chain.pem` and `jwks.json`.
    fn fetch_trust(&self, work: &Path) {
        let (code, ct) = self.curl(work, "chain.pem", &[&format!("{}/v1/ca", self.url)]);
        assert_eq!(
            (code, ct.as_str()),
            (200, "application/pem-certificate-chain")
        );
        let (code, ct) = self.curl(work, "jwks.json", &[&format!("{}/v1/jwks", self.url)]);
        assert_eq!((code, ct.as_str()), (200, "application/jwk-set+json"));
        let url = format!("{}/.well-known/jwks.json", self.url);
        assert_eq!(self.curl(work, "well-known.json", &[&url]).0, 200);
        assert_eq!(
            read(work.join("jwks.json")),
            read(work.join("well-known.json"))
        );
    }

    /// The CRL, once it reflects `seq`, with `curl`: DER in `<name>.der`, PEM in `<name>.pem`.
    fn fetch_crl(&self, work: &Path, name: &str, seq: u64) {
        let url = format!("{}/v1/crl?min_seq={seq}&wait_ms=5000", self.url);
        let (code, ct) = self.curl(work, &format!("{name}.der"), &["-D", "crl.headers", &url]);
        assert_eq!((code, ct.as_str()), (200, "application/pkix-crl"));
        let headers = read(work.join("crl.headers"));
        let applied = headers
            .lines()
            .find_map(|l| l.strip_prefix("accord-applied-seq: "))
            .and_then(|s| s.trim().parse::<u64>().ok());
        assert!(applied.is_some_and(|a| a >= seq), "{headers}");
        ssl(
            work,
            &format!("crl -inform DER -in {name}.der -out {name}.pem"),
        );
    }

    /// `accord revoke`; the sequence it reports ("... at sequence N").
    fn revoke(&self, target: &str) -> u64 {
        let out = must(&mut self.cli(&["revoke", target, "--reason", "keyCompromise"]));
        let seq = out.trim().rsplit(' ').next().and_then(|s| s.parse().ok());
        seq.unwrap_or_else(|| panic!("no sequence in {out:?}"))
    }

    /// `accord agent provision --token-out <token>`; the agent id.
    fn provision_cli(&self, name: &str, capabilities: &[&str], token: &Path) -> String {
        let mut args = vec!["agent", "provision", "--name", name];
        args.extend(capabilities.iter().flat_map(|c| ["--capability", c]));
        args.extend(["--token-out", token.to_str().unwrap()]);
        must(&mut self.cli(&args)).trim().to_owned()
    }
}

/// `openssl verify` of `cert` under `chain` (and the CRL, when given): Ok, or openssl's words.
fn verify(work: &Path, chain: &str, crl: Option<&str>, cert: &str) -> Result<(), String> {
    let crl = crl.map_or(String::new(), |c| format!("-crl_check -CRLfile {c}"));
    let args = format!("verify -x509_strict -purpose sslclient -CAfile {chain} {crl} {cert}");
    match ssl_try(work, &args) {
        (true, out) if out.contains(": OK") => Ok(()),
        (_, out) => Err(out),
    }
}

/// An agent enrolled from the outside: an `openssl` key and CSR, `curl` for the API. Its files
/// in the work folder: `<prefix>.key`, `<prefix>.cert.pem`, `<prefix>.chain.pem`, `<prefix>.wit`.
struct OutsideAgent {
    spiffe_id: String,
    serial: String,
}

fn outside_agent(d: &Domain, work: &Path, prefix: &str, capabilities: &[&str]) -> OutsideAgent {
    let file = |ext: &str| format!("{prefix}.{ext}");
    let json_post = |out: &str, headers: &str, data: &str, url: &str| {
        let h = format!("@{headers}");
        let ct = "Content-Type: application/json";
        d.curl(work, out, &["-H", &h, "-H", ct, "--data-binary", data, url])
    };
    // provision, the admin token in a header file (not on the command line)
    write(
        work.join("admin.headers"),
        format!("Authorization: Bearer {}\n", d.admin),
    );
    let body = json!({"name": format!("outside {prefix}"), "capabilities": capabilities});
    let url = format!("{}/v1/agents", d.url);
    let (code, ct) = json_post(
        &file("provisioned.json"),
        "admin.headers",
        &body.to_string(),
        &url,
    );
    assert_eq!((code, ct.as_str()), (201, "application/json"));
    let p = read_json(work.join(file("provisioned.json")));

    // the agent's own key and its request, and the JSON document around it
    ssl(
        work,
        &format!(
            "ecparam -genkey -name prime256v1 -noout -out {}",
            file("key")
        ),
    );
    ssl(
        work,
        &format!("req -new -key {} -subj / -out {}", file("key"), file("csr")),
    );
    let csr = read(work.join(file("csr")));
    write(
        work.join(file("body.json")),
        json!({ "csr": csr }).to_string(),
    );
    let token = p["enrollment_token"].as_str().unwrap();
    write(
        work.join(file("headers")),
        format!("Authorization: Bearer {token}\n"),
    );
    let url = p["credentials_url"].as_str().unwrap();
    let data = format!("@{}", file("body.json"));
    let (code, ct) = json_post(&file("credential.json"), &file("headers"), &data, url);
    let c = read_json(work.join(file("credential.json")));
    assert_eq!((code, ct.as_str()), (201, "application/json"), "{c}");
    assert_eq!(c["kind"], "issued");
    assert_eq!(c["agent_id"], p["agent_id"]);
    assert_eq!(c["spiffe_id"], p["spiffe_id"]);
    let mut sorted = capabilities.to_vec();
    sorted.sort_unstable();
    assert_eq!(c["capabilities"], json!(sorted));
    for (f, member) in [
        ("cert.pem", "certificate"),
        ("chain.pem", "chain"),
        ("wit", "wit"),
    ] {
        write(work.join(file(f)), c[member].as_str().unwrap());
    }
    OutsideAgent {
        spiffe_id: c["spiffe_id"].as_str().unwrap().to_owned(),
        serial: c["serial"].as_str().unwrap().to_owned(),
    }
}

/// `tests/python/check_credential.py` on an agent's files (in `work`, with `chain.pem` and
/// `jwks.json`); its JSON summary.
fn python_check(work: &Path, files: [&str; 3], spiffe_id: &str, capabilities: &[&str]) -> Value {
    let [cert, wit, key_pem] = files;
    let mut c = accord_testkit::python();
    c.current_dir(work)
        .arg(root().join("tests/python/check_credential.py"))
        .args(["--cert", cert, "--chain", "chain.pem", "--wit", wit])
        .args([
            "--jwks",
            "jwks.json",
            "--key",
            key_pem,
            "--spiffe-id",
            spiffe_id,
        ])
        .args(["--trust-domain", "dev.accord.test"]);
    for cap in capabilities {
        c.args(["--capability", cap]);
    }
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", output_text(&o));
    let summary: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["ok"], true, "{summary}");
    summary
}

fn work_dir(tmp: &tempfile::TempDir) -> PathBuf {
    let work = tmp.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    work
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_clients_enroll_verify_and_see_the_revocation_with_software_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let work = work_dir(&tmp);
    let d = Domain::start(&tmp.path().join("domain"), &[], &[]).await;

    let a = outside_agent(&d, &work, "a", &["travel.book", "calendar.read"]);
    let b = outside_agent(&d, &work, "b", &["calendar.read"]);
    assert_ne!(a.serial, b.serial);
    d.fetch_trust(&work);
    assert_eq!(read(work.join("a.chain.pem")), read(work.join("chain.pem")));

    // the certificate verifies under the domain's agent CA, and under no other CA
    verify(&work, "chain.pem", None, "a.cert.pem").unwrap();
    let tls_ca = d.dir().join("tls/ca.pem").display().to_string();
    let e = verify(&work, &tls_ca, None, "a.cert.pem").unwrap_err();
    assert!(e.contains("unable to get local issuer certificate"), "{e}");

    // an independent reading of the certificates and the WITs
    let caps = ["travel.book", "calendar.read"];
    let summary = python_check(&work, ["a.cert.pem", "a.wit", "a.key"], &a.spiffe_id, &caps);
    assert_eq!(summary["serial"], a.serial.trim_start_matches('0'));
    assert_eq!(summary["san"], json!([a.spiffe_id]));
    assert_eq!(summary["crl"], json!([format!("{}/v1/crl", d.url)]));
    let files = ["b.cert.pem", "b.wit", "b.key"];
    python_check(&work, files, &b.spiffe_id, &["calendar.read"]);

    // before any revocation, the CRL lets both through
    d.fetch_crl(&work, "crl0", 0);
    verify(&work, "chain.pem", Some("crl0.pem"), "a.cert.pem").unwrap();
    // a CRL the domain has not reached yet is a typed answer, not a stale list
    let ahead = d.get("/v1/crl?min_seq=1000000&wait_ms=0").await;
    ahead.refused(409, "not-yet");

    // A's credential revoked by its serial: the CRL lists it, signed by the agent CA only
    let seq = d.revoke(&a.serial);
    d.fetch_crl(&work, "crl", seq);
    let (ok, out) = ssl_try(
        &work,
        "crl -inform DER -in crl.der -CAfile chain.pem -noout",
    );
    assert!(ok && out.contains("verify OK"), "{out}");
    let (_, out) = ssl_try(&work, &format!("crl -in crl.pem -CAfile {tls_ca} -noout"));
    assert!(!out.contains("verify OK"), "{out}");
    let text = ssl(&work, "crl -in crl.pem -noout -text");
    let entry = text
        .split("Serial Number: ")
        .skip(1)
        .find(|e| e.trim_start().to_lowercase().starts_with(&a.serial))
        .unwrap_or_else(|| panic!("{} not in the CRL:\n{text}", a.serial));
    assert!(entry.contains("Key Compromise"), "{entry}");
    assert!(!text.to_lowercase().contains(&b.serial), "{text}");

    // a CRL-checking verifier refuses A; B, not revoked, still passes
    let e = verify(&work, "chain.pem", Some("crl.pem"), "a.cert.pem").unwrap_err();
    assert!(e.contains("certificate revoked"), "{e}");
    verify(&work, "chain.pem", Some("crl.pem"), "b.cert.pem").unwrap();
}

/// Deletes a dev domain's SoftHSM2 token when dropped (declared before the domain, it drops
/// after it has stopped).
struct HsmToken(String);

impl Drop for HsmToken {
    fn drop(&mut self) {
        let _lock = accord_authority::pkcs11::token_lock().unwrap();
        let _ = Command::new("softhsm2-util")
            .args(["--delete-token", "--token", &self.0])
            .output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ca_key_in_softhsm_issues_and_signs_the_crl() {
    let tmp = tempfile::tempdir().unwrap();
    let work = work_dir(&tmp);
    let domain = format!("hsm{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let label = format!("accord-{domain}");
    let _token = HsmToken(label.clone());
    let args = ["--hsm", "--domain", &domain];
    let d = Domain::start(&tmp.path().join("domain"), &args, &[]).await;

    // the keys are in the token, not in the folder, which holds only the PINs
    let slots = must(Command::new("softhsm2-util").arg("--show-slots"));
    assert!(slots.contains(&label), "{slots}");
    let authority = d.dir().join("authority");
    assert!(!authority.join("ca.pk8").exists());
    assert!(!authority.join("token.pk8").exists());
    assert!(authority.join("hsm.pin").exists());
    assert!(!d.dev.stderr().contains("key held in a file"));

    // enrolled with the CLI, the credential verifies under the CA the domain publishes
    let id = d.provision_cli("hsm agent", &["travel.book"], &work.join("token"));
    let enroll = [
        "agent",
        "enroll",
        "--agent-id",
        &id,
        "--enrollment-token-file",
        "token",
    ];
    must(d.cli(&enroll).args(["--dir", "agent"]).current_dir(&work));
    d.fetch_trust(&work);
    assert_eq!(
        read(work.join("agent/chain.pem")),
        read(work.join("chain.pem"))
    );
    verify(&work, "chain.pem", None, "agent/cert.pem").unwrap();
    // the same independent checks as with software keys (the WIT is signed in the token too)
    ssl(&work, "pkey -inform DER -in agent/key.pk8 -out key.pem");
    let spiffe_id = read_json(work.join("agent/agent.json"))["spiffe_id"].clone();
    let files = ["agent/cert.pem", "agent/wit.jwt", "key.pem"];
    python_check(&work, files, spiffe_id.as_str().unwrap(), &["travel.book"]);

    // revoked, the CRL (signed in the token) says so
    let seq = d.revoke(&id);
    d.fetch_crl(&work, "crl", seq);
    let (_, out) = ssl_try(&work, "crl -in crl.pem -CAfile chain.pem -noout");
    assert!(out.contains("verify OK"), "{out}");
    let e = verify(&work, "chain.pem", Some("crl.pem"), "agent/cert.pem").unwrap_err();
    assert!(e.contains("certificate revoked"), "{e}");
}

/// The mode bits of a file.
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_cli_enrolls_renews_rotates_and_is_cut_off_by_revocation() {
    let tmp = tempfile::tempdir().unwrap();
    let work = work_dir(&tmp);
    let d = Domain::start(&tmp.path().join("domain"), &[], &[]).await;
    d.fetch_trust(&work);
    let caps = ["travel.book", "mail.send"];
    let id = d.provision_cli("cli agent", &caps, &work.join("token"));
    assert_eq!(mode(&work.join("token")), 0o600);
    let agent = |args: &[&str]| {
        let mut c = d.cli(&[&["agent"], args, &["--dir", "agent"]].concat());
        c.current_dir(&work).output().unwrap()
    };
    let token = ["--enrollment-token-file", "token"];
    let enroll = || {
        agent(
            &[
                &["enroll", "--agent-id", &id, "--key-type", "ed25519"],
                &token[..],
            ]
            .concat(),
        )
    };
    let o = enroll();
    assert!(o.status.success(), "{}", output_text(&o));
    // after each step: the folder's state, a credential that verifies, private files kept private
    let state = |what: &str| -> Value {
        let s = read_json(work.join("agent/agent.json"));
        assert_eq!(s["agent_id"], id.as_str(), "{what}: {s}");
        assert_eq!(
            s["capabilities"],
            json!(["mail.send", "travel.book"]),
            "{what}"
        );
        verify(&work, "chain.pem", None, "agent/cert.pem")
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(mode(&work.join("agent/key.pk8")), 0o600, "{what}");
        assert_eq!(mode(&work.join("agent/wit.jwt")), 0o600, "{what}");
        s
    };
    let key = || std::fs::read(work.join("agent/key.pk8")).unwrap();
    let key_text = || ssl(&work, "pkey -inform DER -in agent/key.pk8 -noout -text");
    let key_public = || ssl(&work, "pkey -inform DER -in agent/key.pk8 -pubout");
    let cert_public = || ssl(&work, "x509 -in agent/cert.pem -noout -pubkey");
    let first = state("enrolled");
    assert!(key_text().contains("ED25519"));
    let (key1, public1) = (key(), cert_public());
    assert!(public1.contains("BEGIN PUBLIC KEY"), "{public1}");
    assert_eq!(public1, key_public());

    // renewed: a new serial for the same key
    let o = agent(&["renew"]);
    assert!(o.status.success(), "{}", output_text(&o));
    let second = state("renewed");
    assert_ne!(second["serial"], first["serial"]);
    assert_eq!((key(), cert_public()), (key1.clone(), public1.clone()));

    // renewed onto a new P-256 key, which the new certificate carries
    let o = agent(&["renew", "--new-key", "p256"]);
    assert!(o.status.success(), "{}", output_text(&o));
    let third = state("rotated");
    assert_ne!(third["serial"], second["serial"]);
    assert_ne!(key(), key1);
    assert!(key_text().contains("NIST CURVE: P-256"));
    assert_ne!(cert_public(), public1);
    assert_eq!(cert_public(), key_public());

    // the enrollment token was spent: a second enrollment is refused, and records nothing
    let before = d.last_seq().await;
    let o = enroll();
    assert!(!o.status.success());
    assert!(
        output_text(&o).contains("409 already-enrolled"),
        "{}",
        output_text(&o)
    );
    assert_eq!(d.last_seq().await, before);

    // once the agent is revoked, its credential no longer renews
    d.revoke(&id);
    let before = d.last_seq().await;
    let o = agent(&["renew"]);
    assert!(!o.status.success());
    let err = output_text(&o);
    assert!(err.contains("403 credential-not-renewable"), "{err}");
    assert_eq!(d.last_seq().await, before);
    assert_eq!(state("after revocation")["serial"], third["serial"]);
}

/// PEM of a DER value.
fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// Requests the ACA must refuse, made with openssl in `work` from `ec.key` and `good.csr`:
/// (file, problem types it may answer, `a|b`). A key type this openssl can no longer make is
/// left out.
fn bad_csrs(work: &Path) -> Vec<(String, &'static str)> {
    let mut out: Vec<(String, &'static str)> = Vec::new();
    let mut bad = |file: &str, kinds: &'static str| out.push((file.to_owned(), kinds));

    // a good request broken after signing: the last byte of the signature (in `s`) flipped
    ssl(work, "req -in good.csr -outform DER -out good.der");
    let good = std::fs::read(work.join("good.der")).unwrap();
    let mut broken = good.clone();
    *broken.last_mut().unwrap() ^= 0x01;
    write(
        work.join("bad-signature.csr"),
        pem("CERTIFICATE REQUEST", &broken),
    );
    bad("bad-signature.csr", "csr-bad-signature");
    // the good request with a BER length (long form where the short one fits): its signature
    // still verifies, only the encoding is not DER
    assert_eq!(good[..2], [0x30, 0x81], "a request of 128 to 255 bytes");
    let ber = [&[0x30, 0x82, 0x00][..], &good[2..]].concat();
    write(work.join("ber.csr"), pem("CERTIFICATE REQUEST", &ber));
    bad("ber.csr", "csr-not-der");

    // keys, hashes and asks that are not accepted: (request, key, openssl options, type)
    ssl(work, "genrsa -out rsa2048.key 2048");
    ssl(work, "genrsa -out rsa1024.key 1024");
    ssl(work, "ecparam -genkey -name secp384r1 -noout -out p384.key");
    let uri = "-addext subjectAltName=URI:spiffe://dev.accord.test/agent/other";
    #[rustfmt::skip]
    let mut requests = vec![
        ("sha1.csr", "rsa2048.key", "-sha1", "csr-weak-hash"),
        ("rsa2048.csr", "rsa2048.key", "-sha256", "csr-key-type"),
        ("rsa1024.csr", "rsa1024.key", "-sha256", "csr-key-type"),
        ("p384.csr", "p384.key", "", "csr-key-type"),
        ("ca.csr", "ec.key", "-addext basicConstraints=critical,CA:TRUE", "csr-requests-ca"),
        ("dns.csr", "ec.key", "-addext subjectAltName=DNS:evil.example", "csr-requests-names"),
        ("uri.csr", "ec.key", uri, "csr-requests-names"),
        ("ku.csr", "ec.key", "-addext keyUsage=critical,keyCertSign", "csr-requests-extension"),
    ];
    if ssl_try(work, "dsaparam -genkey -out dsa.key 1024").0 {
        requests.push(("dsa.csr", "dsa.key", "-sha384", "csr-key-type"));
        // with openssl's default hash, the ACA names the algorithm (dsa-with-sha256) as weak
        requests.push((
            "dsa-default.csr",
            "dsa.key",
            "",
            "csr-key-type|csr-weak-hash",
        ));
    }
    for (file, key, options, kinds) in requests {
        ssl(
            work,
            &format!("req -new -key {key} -subj / -out {file} {options}"),
        );
        bad(file, kinds);
    }
    challenge_request(work, "ec.key", "challenge.csr", "correct-horse-battery");
    bad("challenge.csr", "csr-attribute");

    // not a request at all: a certificate, text, too much
    std::fs::copy(work.join("chain.pem"), work.join("certificate.csr")).unwrap();
    bad("certificate.csr", "csr-encoding");
    write(work.join("text.csr"), "hello, I am an agent\n");
    bad("text.csr", "csr-encoding|csr-not-der");
    let label = "CERTIFICATE REQUEST";
    let huge = format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        "A".repeat(17 << 10)
    );
    write(work.join("huge.csr"), huge);
    bad("huge.csr", "csr-too-large");
    out
}

/// A request for `key` carrying a challengePassword attribute.
fn challenge_request(work: &Path, key: &str, out: &str, password: &str) {
    let cnf = format!("{out}.cnf");
    write(
        work.join(&cnf),
        format!(
            "[req]\nprompt=no\ndistinguished_name=dn\nattributes=attr\n[dn]\nCN=x\n\
             [attr]\nchallengePassword={password}\n"
        ),
    );
    ssl(
        work,
        &format!("req -new -key {key} -config {cnf} -out {out}"),
    );
}

/// A token with one character of its signature changed.
fn tampered(token: &str) -> String {
    let (signed, sig) = token.rsplit_once('.').unwrap();
    let i = sig.len() / 2;
    let c = if &sig[i..=i] == "A" { "B" } else { "A" };
    format!("{signed}.{}{c}{}", &sig[..i], &sig[i + 1..])
}

fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_requests_are_typed_problems_that_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let work = work_dir(&tmp);
    let d = Domain::start(&tmp.path().join("domain"), &[], &[]).await;
    d.fetch_trust(&work);
    ssl(&work, "ecparam -genkey -name prime256v1 -noout -out ec.key");
    ssl(&work, "req -new -key ec.key -subj / -out good.csr");
    let good = read(work.join("good.csr"));
    let bad = bad_csrs(&work);

    let a = d.provision("agent-a", &["travel.book"]).await;
    let b = d.provision("agent-b", &["travel.book"]).await;
    let a_id = a["agent_id"].as_str().unwrap();
    let a_token = a["enrollment_token"].as_str().unwrap();
    let b_token = b["enrollment_token"].as_str().unwrap();
    let before = d.last_seq().await;

    // 1. requests that fail the proof-of-possession or profile checks, with a valid token;
    //    `accord csr check` runs the same checks, to the same verdict
    for (file, kinds) in &bad {
        let csr = read(work.join(file));
        let r = d.enroll(a_id, a_token, json!({ "csr": csr })).await;
        let kind = r.kind().to_owned();
        assert!(kinds.split('|').any(|k| k == kind), "{file}: {}", r.raw);
        r.refused(400, &kind);
        let check = match kind.as_str() {
            "csr-bad-signature" => "proof_of_possession",
            _ => "csr_profile",
        };
        assert_eq!(r.body["check"], check, "{file}");
        let o = accord()
            .args(["csr", "check", "--json", file])
            .current_dir(&work)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1), "{file}: {}", output_text(&o));
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(
            (&v["acceptable"], v["reason"].as_str()),
            (&json!(false), Some(kind.as_str())),
            "{file}"
        );
    }
    must(
        accord()
            .args(["csr", "check", "--json", "good.csr"])
            .current_dir(&work),
    );

    // 2. everything else that is refused: (what, request, status, problem type)
    let good_body = json!({ "csr": good });
    let with = |extra: Value| {
        let mut b = good_body.clone();
        b.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        b
    };
    let creds = || d.credentials(a_id).bearer_auth(a_token);
    let raw = |body: String| {
        creds()
            .header("content-type", "application/json")
            .body(body)
    };
    let nested = |depth: usize| {
        format!(
            "{{\"csr\":{}1{}}}",
            "[".repeat(depth - 1),
            "]".repeat(depth - 1)
        )
    };
    let enroll_with = |token: &str| d.credentials(a_id).bearer_auth(token).json(&good_body);
    let proofs = |wit: &str, wpt: &str| {
        let r = d.credentials(a_id).header("workload-identity-token", wit);
        let r = if wpt.is_empty() {
            r
        } else {
            r.header("workload-proof-token", wpt)
        };
        r.json(&good_body)
    };
    let (stranger, _) = accord_authority::signer::SoftwareKey::generate_p256().unwrap();
    let typ = accord_authority::jws::TYP_ENROLLMENT;
    let forged = accord_authority::jws::sign(&stranger, typ, &claims_of(a_token)).unwrap();
    let none = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"accord-enroll+jwt"}"#);
    let alg_none = format!("{none}.{}.", a_token.split('.').nth(1).unwrap());
    let unknown = accord_events::AgentId::new_v7().to_string();
    let admin = |path: &str, token: Option<&str>, body: Value| match token {
        Some(t) => d.post(path).bearer_auth(t).json(&body),
        None => d.post(path).json(&body),
    };
    let me = Some(d.admin.as_str());
    let agents = |body: Value| admin("/v1/agents", me, body);
    let revoke = |target: &str, reason: &str| {
        admin(
            "/v1/revocations",
            me,
            json!({"target": target, "reason": reason}),
        )
    };
    let many: Vec<String> = (0..65).map(|i| format!("c{i}")).collect();
    let x = json!({"name": "x", "capabilities": ["travel.book"]});
    let get = |path: &str| d.http.get(format!("{}{path}", d.url));
    let kc = "keyCompromise";
    #[rustfmt::skip]
    let cases: Vec<(&str, RequestBuilder, u16, &str)> = vec![
        // the body
        ("malformed JSON", raw("{\"csr\": ".into()), 400, "malformed-body"),
        ("unknown field", creds().json(&with(json!({"role": "admin"}))), 400, "malformed-body"),
        ("32 levels", raw(nested(32)), 400, "malformed-body"),
        ("33 levels", raw(nested(33)), 400, "body-too-deep"),
        // the credentials route takes up to 512 KiB (an AIBOM travels in it), a CSR 16 KiB
        ("CSR over 16 KiB", creds().json(&json!({ "csr": "A".repeat(65 << 10) })), 400, "csr-too-large"),
        ("over 512 KiB", creds().json(&json!({ "csr": "A".repeat(513 << 10) })), 413, "body-too-large"),
        ("text/plain", creds().header("content-type", "text/plain").body(good_body.to_string()), 415, "unsupported-media-type"),
        ("no content type", creds().body(good_body.to_string()), 415, "unsupported-media-type"),
        ("lifetime too short", creds().json(&with(json!({"lifetime_secs": 10}))), 400, "bad-request"),
        ("lifetime too long", creds().json(&with(json!({"lifetime_secs": 7200}))), 400, "bad-request"),
        ("capability not provisioned", creds().json(&with(json!({"capabilities": ["travel.book", "bank.transfer"]}))), 400, "bad-request"),
        ("capability malformed", creds().json(&with(json!({"capabilities": ["Travel Book"]}))), 400, "bad-request"),
        ("evidence", creds().json(&with(json!({"evidence": {"eat": "x"}}))), 422, "eat-no-identity"),
        // who may ask for a credential
        ("another agent's token", enroll_with(b_token), 401, "unauthorized"),
        ("tampered token", enroll_with(&tampered(a_token)), 401, "unauthorized"),
        ("token signed by a stranger", enroll_with(&forged), 401, "unauthorized"),
        ("alg none", enroll_with(&alg_none), 401, "unauthorized"),
        ("the admin token", enroll_with(&d.admin), 401, "unauthorized"),
        ("WIT without WPT", proofs(a_token, ""), 401, "unauthorized"),
        ("garbage WIT and WPT", proofs("x.y.z", "x.y.z"), 401, "unauthorized"),
        ("the enrollment token as WIT and WPT", proofs(a_token, a_token), 401, "unauthorized"),
        ("unknown agent", d.credentials(&unknown).bearer_auth(a_token).json(&good_body), 404, "unknown-agent"),
        ("not an agent id", d.credentials("not-an-agent").bearer_auth(a_token).json(&good_body), 404, "unknown-agent"),
        // the admin routes
        ("provision without token", admin("/v1/agents", None, x.clone()), 401, "unauthorized"),
        ("provision with a wrong token", admin("/v1/agents", Some("not-the-admin-token"), x.clone()), 401, "unauthorized"),
        ("provision with an enrollment token", admin("/v1/agents", Some(a_token), x.clone()), 401, "unauthorized"),
        ("empty name", agents(json!({"name": ""})), 400, "bad-request"),
        ("name with a slash", agents(json!({"name": "a/b"})), 400, "bad-request"),
        ("name too long", agents(json!({"name": "n".repeat(129)})), 400, "bad-request"),
        ("no name", agents(json!({"capabilities": []})), 400, "malformed-body"),
        ("65 capabilities", agents(json!({"name": "x", "capabilities": many})), 400, "bad-request"),
        ("bad capability", agents(json!({"name": "x", "capabilities": ["a b"]})), 400, "bad-request"),
        ("revoke without token", admin("/v1/revocations", None, json!({"target": a_id, "reason": kc})), 401, "unauthorized"),
        ("revoke an unknown serial", revoke(&"7f".repeat(16), kc), 404, "unknown-credential"),
        ("revoke an unknown agent", revoke(&unknown, kc), 404, "unknown-agent"),
        ("revoke what is neither", revoke("../etc", kc), 400, "bad-request"),
        ("revoke for no reason", revoke(a_id, "boredom"), 400, "malformed-body"),
        ("revoke an agent without credentials", revoke(a_id, kc), 409, "nothing-to-revoke"),
        ("CRL query not a number", get("/v1/crl?min_seq=abc"), 400, "bad-query"),
        ("CRL query unknown", get("/v1/crl?since=1"), 400, "bad-query"),
    ];
    assert_eq!(cases.len(), 40);
    for (what, request, status, kind) in cases {
        let r = d.send(request).await;
        assert!(r.status < 500, "{what}: {}", r.raw);
        assert_eq!((r.status, r.kind()), (status, kind), "{what}: {}", r.raw);
        r.refused(status, kind);
    }
    // without any credential: a 401 that says how to authenticate
    let r = d.send(d.credentials(a_id).json(&good_body)).await;
    r.refused(401, "unauthorized");
    assert_eq!(r.headers["www-authenticate"], "Bearer", "{}", r.raw);

    // none of it reached the log
    assert_eq!(d.last_seq().await, before, "{}", d.events(before + 1));

    // and nothing was spent: the enrollment token still works, and only its issuance is new
    let r = d.enroll(a_id, a_token, good_body.clone()).await;
    assert_eq!(r.status, 201, "{}", r.raw);
    assert_eq!(d.last_seq().await, r.body["seq"].as_u64().unwrap());
    let events: Vec<Value> = d
        .events(before + 1)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&Value> = events.iter().map(|e| &e["event"]["type"]).collect();
    // the request and its credential are one event (ADR 0013)
    assert_eq!(kinds, [&json!("CredentialIssued")]);
    assert_eq!(
        events[0]["event"]["data"]["request"]["csr_digest"]
            .as_str()
            .map(str::len),
        Some(71),
        "{:?}",
        events[0]["event"]["data"]
    );
    for e in &events {
        assert_eq!(
            (&e["verified"], &e["event"]["aggregate"]["id"]),
            (&json!(true), &json!(a_id))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_enrollment_api_is_rate_limited_per_client() {
    let tmp = tempfile::tempdir().unwrap();
    let limit = [("ACCORD_AUTHORITY__RATE_LIMIT_PER_MINUTE", "5")];
    let d = Domain::start(&tmp.path().join("domain"), &[], &limit).await;
    let before = d.last_seq().await;
    let provision = || {
        d.post("/v1/agents")
            .bearer_auth(&d.admin)
            .json(&json!({"name": "x"}))
    };
    // five requests in a minute go through (to be refused for their own reason: no token)
    for _ in 0..5 {
        let r = d
            .send(d.post("/v1/agents").json(&json!({"name": "x"})))
            .await;
        r.refused(401, "unauthorized");
    }
    // the sixth does not, even with the admin token, and neither does any limited route
    d.send(provision()).await.refused(429, "rate-limited");
    let agent = accord_events::AgentId::new_v7().to_string();
    let limited = [
        d.credentials(&agent).json(&json!({"csr": "x"})),
        d.post("/v1/revocations")
            .json(&json!({"target": agent, "reason": "unspecified"})),
        provision(),
    ];
    for r in futures::future::join_all(limited.into_iter().map(|r| d.send(r))).await {
        r.refused(429, "rate-limited");
    }
    // what anyone may read is not limited
    assert_eq!(d.get("/v1/ca").await.status, 200);
    assert_eq!(d.get("/v1/crl").await.status, 200);
    assert_eq!(d.last_seq().await, before);
    // and the allowance comes back (one request every 12 s)
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let r = d.send(provision()).await;
        if r.status == 201 {
            break;
        }
        r.refused(429, "rate-limited");
        assert!(Instant::now() < deadline, "still limited");
    }
    assert_eq!(d.last_seq().await, before + 1);
}

/// The needles of a JWS: those of the token, and of its signature alone.
fn token_needles(token: &str) -> Vec<String> {
    let sig = token.trim().rsplit('.').next().unwrap();
    let mut n = secret_needles(token.trim().as_bytes());
    n.extend(secret_needles(&URL_SAFE_NO_PAD.decode(sig).unwrap()));
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_log_or_the_process_output() {
    use accord_authority::jws;
    let tmp = tempfile::tempdir().unwrap();
    let work = work_dir(&tmp);
    // at debug level: what an operator turns on when something goes wrong
    let debug = [("ACCORD_TELEMETRY__LOG_LEVEL", "debug")];
    let (dev, stdout_log) = Dev::start_logged(&tmp.path().join("domain"), &[], &debug);
    let d = Domain::of(dev).await;
    let dir = d.dir().to_path_buf();
    // (name, needles), and a probe: the raw secret base64-encoded one byte into a longer text
    let mut secrets: Vec<(String, Vec<String>)> = Vec::new();
    let mut probes: Vec<(String, String)> = Vec::new();
    let mut secret = |name: &str, raw: &[u8], needles: fn(&[u8]) -> Vec<String>| {
        secrets.push((name.to_owned(), needles(raw)));
        let shifted = STANDARD.encode([&[0x42], raw].concat());
        probes.push((name.to_owned(), format!("{{\"x\":\"{shifted}\"}}")));
    };
    let token = |t: &[u8]| token_needles(std::str::from_utf8(t).unwrap());
    let mut cli = String::new();
    let mut run = |mut c: Command| {
        let o = c.current_dir(&work).output().unwrap();
        cli.push_str(&output_text(&o));
        o
    };

    // agent A, through the CLI: provisioned, enrolled, moved to a new key, renewed
    let a_id = d.provision_cli("a", &["travel.book"], &work.join("a.token"));
    secret(
        "A's enrollment token",
        read(work.join("a.token")).as_bytes(),
        token,
    );
    let agent = |args: &[&str]| d.cli(&[&["agent"], args, &["--dir", "a"]].concat());
    let (mut a_serials, mut a_wits) = (Vec::new(), Vec::new());
    let enroll = [
        "enroll",
        "--agent-id",
        &a_id,
        "--enrollment-token-file",
        "a.token",
    ];
    for step in [&enroll[..], &["renew", "--new-key", "ed25519"], &["renew"]] {
        let o = run(agent(step));
        assert!(o.status.success(), "{step:?}: {}", output_text(&o));
        let key = std::fs::read(work.join("a/key.pk8")).unwrap();
        secret(&format!("A's key after {step:?}"), &key, key_needles);
        let wit = read(work.join("a/wit.jwt"));
        secret(&format!("A's WIT after {step:?}"), wit.as_bytes(), token);
        a_wits.push(wit);
        a_serials.push(
            read_json(work.join("a/agent.json"))["serial"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }

    // agent B, by hand over HTTP: enrolled, then renewed onto a new key with a proof token
    let b = d.provision("b", &["travel.book"]).await;
    let (b_id, b_token) = (
        b["agent_id"].as_str().unwrap(),
        b["enrollment_token"].as_str().unwrap(),
    );
    secret("B's enrollment token", b_token.as_bytes(), token);
    let key1 = accord_agent::generate_key(accord_agent::KeyType::P256).unwrap();
    let key2 = accord_agent::generate_key(accord_agent::KeyType::Ed25519).unwrap();
    secret("B's first key", &key1, key_needles);
    secret("B's second key", &key2, key_needles);
    let csr1 = accord_agent::make_csr(&key1).unwrap();
    let r = d.enroll(b_id, b_token, json!({ "csr": csr1 })).await;
    assert_eq!(r.status, 201, "{}", r.raw);
    let b_serial1 = r.body["serial"].as_str().unwrap().to_owned();
    let wit1 = r.body["wit"].as_str().unwrap().to_owned();
    secret("B's first WIT", wit1.as_bytes(), token);
    let csr2 = accord_agent::make_csr(&key2).unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let current = accord_authority::signer::SoftwareKey::from_pkcs8(&key1, "b").unwrap();
    let claims = json!({
        "aud": b["credentials_url"], "iat": now, "exp": now + 60, "jti": jws::random_jti(),
        "wth": jws::hash_b64(wit1.as_bytes()),
        "csr": jws::hash_b64(&accord_authority::csr::der_of(csr2.as_bytes()).unwrap()),
    });
    let wpt = jws::sign(&current, jws::TYP_WPT, &claims).unwrap();
    secret("B's WPT", wpt.as_bytes(), token);
    let renewal = || {
        d.credentials(b_id)
            .header("workload-identity-token", &wit1)
            .header("workload-proof-token", &wpt)
            .json(&json!({ "csr": csr2 }))
    };
    let r = d.send(renewal()).await;
    assert_eq!(
        (r.status, r.body["kind"].as_str()),
        (201, Some("renewed")),
        "{}",
        r.raw
    );
    let b_serial2 = r.body["serial"].as_str().unwrap().to_owned();
    secret(
        "B's second WIT",
        r.body["wit"].as_str().unwrap().as_bytes(),
        token,
    );

    // refused requests that carry secrets: a replayed proof, a spent or tampered token, the
    // admin token where it does not belong, a guessed admin token, a challenge password
    d.send(renewal()).await.refused(401, "unauthorized");
    d.enroll(b_id, b_token, json!({ "csr": csr1 }))
        .await
        .refused(409, "already-enrolled");
    let r = d
        .enroll(b_id, &tampered(b_token), json!({ "csr": csr1 }))
        .await;
    r.refused(401, "unauthorized");
    d.enroll(b_id, &d.admin, json!({ "csr": csr1 }))
        .await
        .refused(401, "unauthorized");
    let guess = format!("guess-{}", uuid::Uuid::new_v4().simple());
    secret("a guessed admin token", guess.as_bytes(), secret_needles);
    let r = d
        .send(
            d.post("/v1/agents")
                .bearer_auth(&guess)
                .json(&json!({"name": "x"})),
        )
        .await;
    r.refused(401, "unauthorized");
    let password = format!("pw-{}", uuid::Uuid::new_v4().simple());
    secret("a challenge password", password.as_bytes(), secret_needles);
    ssl(&work, "ecparam -genkey -name prime256v1 -noout -out c.key");
    challenge_request(&work, "c.key", "c.csr", &password);
    let c_key = pem_der(&read(work.join("c.key")));
    secret("the challenge request's key", &c_key, key_needles);
    let r = d
        .enroll(b_id, b_token, json!({ "csr": read(work.join("c.csr")) }))
        .await;
    r.refused(400, "csr-attribute");

    // revocations: A entirely (CLI), B's credential (HTTP); then A's renewal is refused
    let o = run(d.cli(&["revoke", &a_id, "--reason", "keyCompromise"]));
    assert!(o.status.success(), "{}", output_text(&o));
    let body = json!({"target": b_serial2, "reason": "superseded"});
    let r = d
        .send(d.post("/v1/revocations").bearer_auth(&d.admin).json(&body))
        .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert!(!run(agent(&["renew"])).status.success());

    // the domain's own secrets
    secret("admin token", d.admin.as_bytes(), secret_needles);
    for f in [
        "authority/ca.pk8",
        "authority/token.pk8",
        "keys/event-signing.pk8",
        "keys/audit.pk8",
    ] {
        secret(f, &std::fs::read(dir.join(f)).unwrap(), key_needles);
    }
    for f in ["tls/ca.key", "tls/server.key"] {
        secret(f, &pem_der(&read(dir.join(f))), key_needles);
    }
    let mut seeds = 0;
    for p in std::fs::read_dir(dir.join("nats"))
        .unwrap()
        .map(|e| e.unwrap().path())
    {
        if p.extension().is_some_and(|x| x == "nk") {
            secret(
                &p.display().to_string(),
                read(&p).trim().as_bytes(),
                secret_needles,
            );
            seeds += 1;
        }
    }
    assert!(seeds >= 4, "{seeds} nkey seeds");

    // the scan catches every secret where it would sit
    for ((name, needles), probe) in secrets.iter().zip(&probes) {
        let one = [(name.clone(), needles.clone())];
        assert!(
            !secrets_found(&one, std::slice::from_ref(probe)).is_empty(),
            "{name}"
        );
    }

    // what is scanned: every event, all the domain process and its NATS server printed, all
    // the CLI printed
    let events = d.events(1);
    let mut d = d;
    d.dev.stop();
    let texts = vec![
        ("events".to_owned(), events),
        ("accord dev stderr".to_owned(), d.dev.stderr()),
        ("accord dev stdout".to_owned(), read(&stdout_log)),
        (
            "nats log".to_owned(),
            std::fs::read_to_string(dir.join("nats/nats.log")).unwrap_or_default(),
        ),
        ("CLI output".to_owned(), cli),
    ];
    // not vacuous: the public facts are there, and tokens by their id only
    let text = |name: &str| &texts.iter().find(|(n, _)| n == name).unwrap().1;
    for serial in a_serials.iter().chain([&b_serial1, &b_serial2]) {
        assert!(text("events").contains(serial.as_str()), "{serial}");
    }
    assert!(text("events").contains(&format!("spiffe://dev.accord.test/agent/{a_id}")));
    for wit in &a_wits {
        let jti = claims_of(wit)["jti"].as_str().unwrap().to_owned();
        assert!(
            text("events").contains(&format!("\"wit_jti\":\"{jti}\"")),
            "{jti}"
        );
    }
    assert!(text("accord dev stderr").contains("credential issued"));
    assert!(text("accord dev stderr").contains(&b_serial1));
    assert!(text("accord dev stderr").contains("DEBUG"));
    assert!(text("accord dev stdout").contains("http_url"));
    assert!(text("CLI output").contains(&a_serials[0]));
    let found: std::collections::BTreeSet<(&str, &str)> = secrets_found(&secrets, &texts)
        .into_iter()
        .map(|(secret, _, place)| (secret, place))
        .collect();
    assert!(
        found.is_empty(),
        "secrets found (secret, where): {found:#?}"
    );
}
