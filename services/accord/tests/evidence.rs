//! The ACA's evidence checks and lifecycle (issue 6), against a running `accord dev` with the
//! strict default policy: trust material set with `accord trust ...`; a credential issued on
//! full evidence records every check; each bad piece of evidence is a typed problem that
//! appends nothing; a nonce is single use, also across a restart; compromise,
//! decommissioning and the end of the owner binding revoke everything in one event; key
//! rotation's grace period and expiry are recorded by the sweep.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use accord_authority::api::TrustRequest;
use accord_authority::evidence::eat;
use accord_authority::signer::SoftwareKey;
use accord_authority::testkit::{EvidenceKit, pem};
use accord_events::{Digest, KeyId};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use support::*;
use time::OffsetDateTime;

const PROBLEMS: &str = "https://accord.dev/problems/";

struct Answer {
    status: u16,
    body: Value,
    raw: String,
}

impl Answer {
    fn kind(&self) -> &str {
        self.body["type"]
            .as_str()
            .and_then(|t| t.strip_prefix(PROBLEMS))
            .unwrap_or("?")
    }
}

/// A dev domain that trusts one evidence kit.
struct World {
    dev: Dev,
    url: String,
    admin: String,
    http: reqwest::Client,
    kit: EvidenceKit,
}

/// An agent: provisioned, with its key and CSR.
struct Agent {
    id: String,
    token: String,
    key: Vec<u8>,
    csr: String,
    thumbprint: KeyId,
}

impl World {
    async fn start(dir: &Path, env: &[(&str, &str)]) -> Self {
        let dev = Dev::start(dir, &[], env);
        Self::of(dev, EvidenceKit::new("")).await
    }

    async fn of(dev: Dev, kit: EvidenceKit) -> Self {
        dev.wait_ready(Duration::from_secs(60)).await;
        let admin = std::fs::read_to_string(dev.dir.join("http/admin.token"))
            .unwrap()
            .trim()
            .to_owned();
        let (url, http) = (dev.http(), dev.client());
        Self {
            dev,
            url,
            admin,
            http,
            kit,
        }
    }

    fn cli(&self, args: &[&str]) -> Command {
        let mut c = accord();
        c.args(args).arg("--data-dir").arg(&self.dev.dir);
        c
    }

    /// The kit's material, through `accord trust ...` (files in `work`).
    fn trust_kit(&self, work: &Path) {
        let k = &self.kit;
        std::fs::write(work.join("root.pem"), &k.root_pem).unwrap();
        let refs: Vec<Value> = k
            .measurements
            .iter()
            .map(|(c, d)| json!({"component": c, "digests": [d]}))
            .collect();
        std::fs::write(work.join("refs.json"), serde_json::to_vec(&refs).unwrap()).unwrap();
        for r in k.trust_requests() {
            match r {
                TrustRequest::AddProvider(p) => {
                    let jwks = json!({"keys": p.endorsement_keys});
                    std::fs::write(work.join("provider.jwks"), jwks.to_string()).unwrap();
                }
                TrustRequest::AddIdentityProvider(i) => {
                    let jwks = json!({"keys": i.keys});
                    std::fs::write(work.join("idp.jwks"), jwks.to_string()).unwrap();
                }
                _ => {}
            }
        }
        let w = |f: &str| work.join(f).to_str().unwrap().to_owned();
        let out = must(&mut self.cli(&[
            "trust",
            "add-anchor",
            "--id",
            k.anchor_id.as_str(),
            "--pem",
            &w("root.pem"),
        ]));
        assert!(out.starts_with("TrustAnchorAdded"), "{out}");
        must(&mut self.cli(&[
            "trust",
            "add-verifier",
            "--id",
            k.verifier_id.as_str(),
            "--reference-values",
            &w("refs.json"),
        ]));
        let mut args = vec![
            "trust",
            "add-provider",
            "--id",
            k.provider_id.as_str(),
            "--name",
            "Acme Agents",
        ];
        let jwks = w("provider.jwks");
        args.extend(["--jwks", &jwks]);
        for c in &k.provider_capabilities {
            args.extend(["--capability", c]);
        }
        must(&mut self.cli(&args));
        let jwks = w("idp.jwks");
        must(&mut self.cli(&[
            "trust",
            "add-idp",
            "--id",
            k.idp_id.as_str(),
            "--issuer",
            &k.idp_issuer,
            "--audience",
            &k.idp_audience,
            "--jwks",
            &jwks,
        ]));
        let deny = json!({"entries": [
            {"id": "poisoned-weights", "match": {"kind": "hash", "alg": "SHA-256",
              "content": "d4735e3a265e16eee03f59718b9b5d03019c07d8b6c51f90da3a666eec13ab35"},
             "reason": "backdoored weights"},
            {"id": "cve-2026-1234", "match": {"kind": "purl", "purl": "pkg:pypi/langtool",
              "vers": "vers:semver/>=1.2.0|<1.4.0"}, "reason": "remote code execution"}
        ]});
        std::fs::write(work.join("deny.json"), deny.to_string()).unwrap();
        let deny_file = w("deny.json");
        must(&mut self.cli(&["trust", "set-aibom-deny-list", "--file", &deny_file]));
    }

    async fn send(&self, r: reqwest::RequestBuilder) -> Answer {
        let r = r.send().await.unwrap();
        let status = r.status().as_u16();
        let raw = r.text().await.unwrap();
        let body = serde_json::from_str(&raw).unwrap_or(Value::Null);
        Answer { status, body, raw }
    }

    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.post(format!("{}{path}", self.url))
    }

    async fn last_seq(&self) -> u64 {
        let (_, d) = self.dev.get("/v1/domain").await;
        d["last_seq"].as_u64().unwrap()
    }

    async fn provision(&self, name: &str, capabilities: &[&str]) -> Agent {
        let a = self
            .send(
                self.post("/v1/agents")
                    .bearer_auth(&self.admin)
                    .json(&json!({"name": name, "capabilities": capabilities})),
            )
            .await;
        assert_eq!(a.status, 201, "{}", a.raw);
        let key = accord_agent::generate_key(accord_agent::KeyType::P256).unwrap();
        let csr = accord_agent::make_csr(&key).unwrap();
        let thumbprint = accord_authority::csr::check(
            csr.as_bytes(),
            &accord_authority::csr::CsrPolicy { allow_rsa: false },
        )
        .unwrap()
        .thumbprint;
        Agent {
            id: a.body["agent_id"].as_str().unwrap().to_owned(),
            token: a.body["enrollment_token"].as_str().unwrap().to_owned(),
            key,
            csr,
            thumbprint,
        }
    }

    /// A fresh attestation nonce for `a`.
    async fn nonce(&self, a: &Agent) -> String {
        self.nonce_at(a, "attestation-nonce").await
    }

    /// A fresh owner nonce for `a` (what its owner's ID token must carry).
    async fn owner_nonce(&self, a: &Agent) -> String {
        self.nonce_at(a, "owner-nonce").await
    }

    async fn nonce_at(&self, a: &Agent, route: &str) -> String {
        let r = self
            .send(
                self.post(&format!("/v1/agents/{}/{route}", a.id))
                    .bearer_auth(&a.token),
            )
            .await;
        assert_eq!(r.status, 201, "{route}: {}", r.raw);
        r.body["nonce"].as_str().unwrap().to_owned()
    }

    /// Complete, valid evidence for `a` (fresh nonces).
    async fn evidence(&self, a: &Agent, name: &str) -> Value {
        let nonce = self.nonce(a).await;
        let owner = self.owner_nonce(a).await;
        self.evidence_with(a, name, &nonce, &owner)
    }

    /// Complete, valid evidence for `a`: the EAT over `nonce`, the owner's ID token carrying
    /// `owner_nonce`.
    fn evidence_with(&self, a: &Agent, name: &str, nonce: &str, owner_nonce: &str) -> Value {
        let k = &self.kit;
        json!({
            "identity_chain": k.chain_pem,
            "eat": k.eat(nonce),
            "aibom": STANDARD.encode(&k.aibom),
            "endorsement": k.endorsement(&a.thumbprint, name, &["calendar.read", "mail.send", "bank.transfer"]),
            "owner_id_token": k.id_token(owner_nonce, "alice@org-a.example", &["calendar.read", "mail.send", "travel.book"], 3600),
        })
    }

    async fn request(&self, a: &Agent, evidence: Value) -> Answer {
        self.send(
            self.post(&format!("/v1/agents/{}/credentials", a.id))
                .bearer_auth(&a.token)
                .json(&json!({"csr": a.csr, "evidence": evidence})),
        )
        .await
    }

    /// An evidence folder (`accord agent enroll --evidence-dir`) for the agent key `thumb`:
    /// the environment's key and chain, measurements, the AIBOM and the endorsement; the owner
    /// binding is the caller's to add.
    fn evidence_folder(&self, dir: &Path, thumb: &KeyId, name: &str, capabilities: &[&str]) {
        let k = &self.kit;
        let e = |f: &str| dir.join(f);
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(e("environment.pk8"), &k.environment_pkcs8).unwrap();
        std::fs::write(e("environment-chain.pem"), &k.chain_pem).unwrap();
        std::fs::write(
            e("measurements.json"),
            serde_json::to_vec(&k.measurements).unwrap(),
        )
        .unwrap();
        std::fs::write(
            e("eat-claims.json"),
            r#"{"dbgstat": "disabled-permanently"}"#,
        )
        .unwrap();
        std::fs::write(e("aibom.cdx.json"), &k.aibom).unwrap();
        std::fs::write(
            e("endorsement.jwt"),
            k.endorsement(thumb, name, capabilities),
        )
        .unwrap();
    }

    /// Events from `from` on, as `accord events tail --json` prints them (signatures checked).
    fn events(&self, from: u64) -> Vec<Value> {
        must(&mut self.cli(&["events", "tail", "--json", "--from", &from.to_string()]))
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                assert_eq!(v["verified"], true, "{l}");
                v["event"].clone()
            })
            .collect()
    }

    /// Waits until an event of `event_type` appears at or after `from`.
    async fn wait_event(&self, from: u64, event_type: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            if let Some(e) = self
                .events(from)
                .into_iter()
                .find(|e| e["type"] == event_type)
            {
                return e;
            }
            assert!(Instant::now() < deadline, "no {event_type} from {from}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn event_data(e: &Value) -> &Value {
    &e["data"]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_evidence_issues_a_credential_that_records_every_check() {
    let tmp = tempfile::tempdir().unwrap();
    let w = World::start(&tmp.path().join("d"), &[]).await;
    w.trust_kit(tmp.path());

    // the strict default: proof of possession alone is not enough
    let bare = w
        .provision(
            "travel-planner",
            &["calendar.read", "mail.send", "travel.book"],
        )
        .await;
    let r = w.request(&bare, json!({})).await;
    assert_eq!((r.status, r.kind()), (403, "issuance-denied"), "{}", r.raw);
    for check in [
        "initial_trust",
        "attestation",
        "aibom",
        "provider_endorsement",
        "owner_binding",
    ] {
        let reason = format!("{check} is required and was not verified");
        assert!(
            r.body["reasons"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x == &reason),
            "{}",
            r.raw
        );
    }

    // capabilities: requested ∩ endorsed (∩ endorsable) ∩ the owner's scope ∩ policy
    let a = w
        .provision(
            "travel-planner",
            &["calendar.read", "mail.send", "travel.book", "bank.transfer"],
        )
        .await;
    let from = w.last_seq().await + 1;
    let ev = w.evidence(&a, "travel-planner").await;
    let r = w.request(&a, ev).await;
    assert_eq!(r.status, 201, "{}", r.raw);
    assert_eq!(
        r.body["capabilities"],
        json!(["calendar.read", "mail.send"])
    );

    let issued = w
        .wait_event(from, "CredentialIssued", Duration::from_secs(5))
        .await;
    let d = event_data(&issued);
    let k = &w.kit;
    assert_eq!(
        d["credential"]["aibom_digest"],
        json!(Digest::sha256(&k.aibom))
    );
    assert_eq!(d["credential"]["owner"]["subject"], "alice@org-a.example");
    assert_eq!(d["credential"]["owner"]["issuer"], json!(k.idp_issuer));
    let tv = &d["credential"]["attestation"]["trust_vector"];
    for claim in [
        "instance_identity",
        "executables",
        "hardware",
        "configuration",
    ] {
        assert_eq!(tv[claim], 2, "{d}");
    }
    let checks: BTreeMap<String, Value> = d["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["check"].as_str().unwrap().to_owned(), c.clone()))
        .collect();
    for (check, against) in [
        ("initial_trust", Some(k.anchor_id.as_str())),
        ("attestation", Some(k.verifier_id.as_str())),
        ("aibom", None),
        ("provider_endorsement", Some(k.provider_id.as_str())),
        ("owner_binding", Some(k.idp_id.as_str())),
        ("proof_of_possession", None),
        ("issuance_policy", None),
        ("output_revalidation", None),
    ] {
        let c = &checks[check];
        assert_eq!(c["outcome"], "passed", "{check}: {d}");
        if let Some(m) = against {
            assert_eq!(c["against"], m, "{check}");
        }
    }
    assert!(checks["attestation"]["evidence"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_evidence_is_a_typed_refusal_that_appends_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("d");
    let w = World::start(&dir, &[]).await;
    w.trust_kit(tmp.path());
    let k = &w.kit;
    let name = "travel-planner";
    let a = w.provision(name, &["calendar.read", "mail.send"]).await;
    // no case gets as far as spending the owner nonce: one serves them all
    let owner_nonce = w.owner_nonce(&a).await;

    // other material, trusted by nobody
    let stranger = EvidenceKit::new("-x");
    let (expired_chain, _) =
        k.another_environment(OffsetDateTime::now_utc() - time::Duration::days(1));
    let other_key = SoftwareKey::generate_p256().unwrap().1;
    let env_key = k.environment_pkcs8.clone();
    let mut off = k.measurements.clone();
    off.insert(
        "kernel".into(),
        Digest::sha256(b"kernel 6.12.4 with a rootkit"),
    );
    let mut unknown_component = k.measurements.clone();
    unknown_component.insert("firmware".into(), Digest::sha256(b"fw"));
    let mut missing = k.measurements.clone();
    missing.remove("agent");
    let now = OffsetDateTime::now_utc().unix_timestamp();

    let bom = |f: &dyn Fn(&mut Value)| {
        let mut v: Value = serde_json::from_slice(&k.aibom).unwrap();
        f(&mut v);
        serde_json::to_vec(&v).unwrap()
    };
    let denied_model = bom(&|v| {
        let comps = v["components"].as_array_mut().unwrap();
        let m = comps
            .iter_mut()
            .find(|c| c["type"] == "machine-learning-model")
            .unwrap();
        m["hashes"] = json!([{"alg": "SHA-256",
            "content": "d4735e3a265e16eee03f59718b9b5d03019c07d8b6c51f90da3a666eec13ab35"}]);
    });
    let denied_range = bom(&|v| {
        let comps = v["components"].as_array_mut().unwrap();
        let lib = comps.iter_mut().find(|c| c["type"] == "library").unwrap();
        lib["purl"] = json!("pkg:pypi/langtool@1.3.2");
        lib["version"] = json!("1.3.2");
    });
    let oversized = {
        let mut b = k.aibom.clone();
        b.extend(std::iter::repeat_n(b' ', 300 * 1024));
        b
    };

    // (what, evidence change, check, problem type)
    let cases: Vec<(&str, Change, &str, &str)> = vec![
        (
            "identity certificate from an untrusted manufacturer",
            Box::new({
                let c = stranger.chain_pem.clone();
                move |e, _| e["identity_chain"] = c.clone().into()
            }),
            "initial_trust",
            "identity-untrusted",
        ),
        (
            "expired identity certificate (under a trusted manufacturer)",
            Box::new({
                let c = expired_chain.clone();
                move |e, _| e["identity_chain"] = c.clone().into()
            }),
            "initial_trust",
            "identity-expired",
        ),
        (
            "attestation evidence signed by another key",
            eat_case(&k.measurements, &other_key, None, None),
            "attestation",
            "eat-signature",
        ),
        (
            "stale attestation evidence",
            eat_case(&k.measurements, &env_key, Some(now - 3600), None),
            "attestation",
            "eat-stale",
        ),
        (
            "measurements off the reference values",
            eat_case(&off, &env_key, None, None),
            "attestation",
            "eat-measurement",
        ),
        (
            "a component without reference values",
            eat_case(&unknown_component, &env_key, None, None),
            "attestation",
            "eat-measurement",
        ),
        (
            "a measurement missing",
            eat_case(&missing, &env_key, None, None),
            "attestation",
            "eat-measurement",
        ),
        (
            "a nonce this ACA never issued",
            eat_case(
                &k.measurements,
                &env_key,
                None,
                Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
            ),
            "attestation",
            "eat-nonce-unknown",
        ),
        (
            "an AIBOM listing a denied model (by hash)",
            Box::new({
                let b = STANDARD.encode(&denied_model);
                move |e, _| e["aibom"] = b.clone().into()
            }),
            "aibom",
            "aibom-denied",
        ),
        (
            "an AIBOM listing a package in a denied range",
            Box::new({
                let b = STANDARD.encode(&denied_range);
                move |e, _| e["aibom"] = b.clone().into()
            }),
            "aibom",
            "aibom-denied",
        ),
        (
            "an oversized AIBOM",
            Box::new({
                let b = STANDARD.encode(&oversized);
                move |e, _| e["aibom"] = b.clone().into()
            }),
            "aibom",
            "aibom-too-large",
        ),
        (
            "an endorsement by an unknown provider",
            Box::new({
                let t = stranger.endorsement(&a.thumbprint, name, &["calendar.read"]);
                move |e, _| e["endorsement"] = t.clone().into()
            }),
            "provider_endorsement",
            "endorsement-unknown-provider",
        ),
        (
            "an endorsement of another key",
            Box::new({
                let t = k.endorsement(
                    &KeyId::parse(&"B".repeat(43)).unwrap(),
                    name,
                    &["calendar.read"],
                );
                move |e, _| e["endorsement"] = t.clone().into()
            }),
            "provider_endorsement",
            "endorsement-wrong-key",
        ),
        (
            "an endorsement of another AIBOM",
            Box::new({
                let t = k.endorsement_for(
                    &a.thumbprint,
                    name,
                    &k.agent_version,
                    &Digest::sha256(b"another bom"),
                    &["calendar.read"],
                );
                move |e, _| e["endorsement"] = t.clone().into()
            }),
            "provider_endorsement",
            "endorsement-wrong-aibom",
        ),
        (
            "an owner token from an untrusted issuer",
            Box::new({
                let t = stranger.id_token(&owner_nonce, "mallory", &["calendar.read"], 3600);
                move |e, _| e["owner_id_token"] = t.clone().into()
            }),
            "owner_binding",
            "owner-untrusted-issuer",
        ),
        (
            "an expired owner token",
            Box::new({
                let t = k.id_token(&owner_nonce, "alice", &["calendar.read"], -3600);
                move |e, _| e["owner_id_token"] = t.clone().into()
            }),
            "owner_binding",
            "owner-expired",
        ),
        (
            "an owner token for another audience",
            Box::new({
                let t = k.id_token_with(
                    &k.idp_issuer,
                    "some-other-service",
                    &owner_nonce,
                    "alice",
                    &["calendar.read"],
                    3600,
                );
                move |e, _| e["owner_id_token"] = t.clone().into()
            }),
            "owner_binding",
            "owner-audience",
        ),
    ];

    let before = w.last_seq().await;
    // a refusal before the attestation check passed leaves the request's nonce unspent: the
    // next case uses it again (an agent holds at most four nonces at once)
    let mut spare: Option<String> = None;
    for (what, change, check, kind) in &cases {
        let nonce = match spare.take() {
            Some(n) => n,
            None => w.nonce(&a).await,
        };
        let mut ev = w.evidence_with(&a, name, &nonce, &owner_nonce);
        change(&mut ev, &nonce);
        let r = w.request(&a, ev).await;
        assert_eq!(r.status, 422, "{what}: {}", r.raw);
        assert_eq!(r.body["check"], *check, "{what}: {}", r.raw);
        assert_eq!(r.kind(), *kind, "{what}: {}", r.raw);
        if matches!(*check, "initial_trust" | "attestation") {
            spare = Some(nonce);
        }
    }
    // a revoked environment certificate, by `accord trust revoke-environment-certificate`
    let leaf = tmp.path().join("leaf.pem");
    std::fs::write(&leaf, pem(&[&k.leaf_der])).unwrap();
    must(&mut w.cli(&[
        "trust",
        "revoke-environment-certificate",
        "--anchor",
        k.anchor_id.as_str(),
        "--pem",
        leaf.to_str().unwrap(),
        "--reason",
        "device reported stolen",
    ]));
    let after_trust = w.last_seq().await;
    assert_eq!(after_trust, before + 1, "only the trust event was appended");
    let ev = w.evidence(&a, name).await;
    let r = w.request(&a, ev).await;
    assert_eq!((r.status, r.kind()), (422, "identity-revoked"), "{}", r.raw);
    assert_eq!(w.last_seq().await, after_trust, "refusals append nothing");
}

type Change = Box<dyn Fn(&mut Value, &str)>;

/// A change that replaces the EAT: these measurements, signed by `key`, issued at `iat`
/// (default now), over `nonce` (default the fresh one of the request).
fn eat_case(
    m: &BTreeMap<String, Digest>,
    key_pkcs8: &[u8],
    iat: Option<i64>,
    nonce: Option<&'static str>,
) -> Change {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let iat = iat.unwrap_or(now);
    let list: Vec<(String, Digest)> = m.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let key = SoftwareKey::from_pkcs8(key_pkcs8, "test key").unwrap();
    Box::new(move |e, fresh| {
        let refs: Vec<(&str, &Digest)> = list.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let mut claims = eat::claims(nonce.unwrap_or(fresh), &refs, iat, iat + 7200);
        claims["dbgstat"] = "disabled-permanently".into();
        e["eat"] = accord_authority::jws::sign(&key, eat::TYP_EAT, &claims)
            .unwrap()
            .into();
    })
}

fn eat_nonce(token: &str) -> String {
    let p = token.split('.').nth(1).unwrap();
    let v: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(p)
            .unwrap(),
    )
    .unwrap();
    v["eat_nonce"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nonce_is_spent_once_even_across_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("d");
    let w = World::start(&dir, &[]).await;
    w.trust_kit(tmp.path());
    let name = "travel-planner";
    let a = w.provision(name, &["calendar.read"]).await;
    let b = w.provision(name, &["calendar.read"]).await;
    let c = w.provision(name, &["calendar.read"]).await;

    let ev = w.evidence(&a, name).await;
    let nonce = eat_nonce(ev["eat"].as_str().unwrap());
    assert_eq!(w.request(&a, ev.clone()).await.status, 201);
    // the same evidence for another agent: the nonce was issued to `a` and is spent anyway
    let mut replay = w.evidence(&b, name).await;
    replay["eat"] = w.kit.eat(&nonce).into();
    let r = w.request(&b, replay).await;
    assert_eq!(
        (r.status, r.kind()),
        (422, "eat-nonce-replayed"),
        "{}",
        r.raw
    );
    // a nonce issued to one agent does not serve another
    let mut other = w.evidence(&b, name).await;
    let n_c = w.nonce(&c).await;
    other["eat"] = w.kit.eat(&n_c).into();
    let r = w.request(&b, other).await;
    assert_eq!(
        (r.status, r.kind()),
        (422, "eat-nonce-other-agent"),
        "{}",
        r.raw
    );

    // restart the ACA: the spent nonce stays spent, an unspent one is still good once
    let fresh = w.nonce(&c).await;
    let World { mut dev, kit, .. } = w;
    dev.stop();
    drop(dev);
    let w = World::of(Dev::start(&dir, &[], &[]), kit).await;
    let mut replay = w.evidence(&c, name).await;
    replay["eat"] = w.kit.eat(&nonce).into();
    let r = w.request(&c, replay).await;
    assert_eq!(
        (r.status, r.kind()),
        (422, "eat-nonce-replayed"),
        "{}",
        r.raw
    );
    let mut ok = w.evidence(&c, name).await;
    ok["eat"] = w.kit.eat(&fresh).into();
    let r = w.request(&c, ok.clone()).await;
    assert_eq!(r.status, 201, "{}", r.raw);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_events_revoke_every_credential_in_one_event() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("d");
    let w = World::start(
        &dir,
        &[
            ("ACCORD_AUTHORITY__SWEEP_EVERY_SECS", "1"),
            ("ACCORD_AUTHORITY__ROTATION_GRACE_SECS", "2"),
        ],
    )
    .await;
    w.trust_kit(tmp.path());
    let name = "travel-planner";

    // an agent enrolled with the CLI from an evidence folder, then renewed with a new key
    let agent_dir = tmp.path().join("agent");
    let evidence_dir = tmp.path().join("evidence");
    std::fs::create_dir_all(&evidence_dir).unwrap();
    let token_file = tmp.path().join("token");
    let id = must(&mut w.cli(&[
        "agent",
        "provision",
        "--name",
        name,
        "--capability",
        "calendar.read",
        "--capability",
        "mail.send",
        "--token-out",
        token_file.to_str().unwrap(),
    ]))
    .trim()
    .to_owned();
    let thumb = must(accord().args(["agent", "keygen", "--dir", agent_dir.to_str().unwrap()]));
    let thumb = KeyId::parse(thumb.trim()).unwrap();
    w.evidence_folder(&evidence_dir, &thumb, name, &["calendar.read", "mail.send"]);
    let e = |f: &str| evidence_dir.join(f);
    must(&mut w.cli(&[
        "agent",
        "role-grant",
        "--agent-id",
        &id,
        "--role",
        "travel-desk",
        "--scope",
        "calendar.read",
        "--scope",
        "mail.send",
        "--out",
        e("role-grant.jwt").to_str().unwrap(),
    ]));
    let out = must(&mut w.cli(&[
        "agent",
        "enroll",
        "--agent-id",
        &id,
        "--enrollment-token-file",
        token_file.to_str().unwrap(),
        "--dir",
        agent_dir.to_str().unwrap(),
        "--evidence-dir",
        evidence_dir.to_str().unwrap(),
    ]));
    assert!(out.starts_with("enrolled"), "{out}");
    let first: Value =
        serde_json::from_slice(&std::fs::read(agent_dir.join("agent.json")).unwrap()).unwrap();
    let from = w.last_seq().await + 1;
    // key rotation (the domain's policy allows a renewal on the credential alone)
    must(&mut w.cli(&[
        "agent",
        "renew",
        "--dir",
        agent_dir.to_str().unwrap(),
        "--new-key",
        "ed25519",
    ]));
    let rotated = w
        .wait_event(from, "KeyRotated", Duration::from_secs(5))
        .await;
    assert_eq!(rotated["data"]["old_serial"], first["serial"]);
    // the sweep revokes the old credential when the grace period ends
    let superseded = w
        .wait_event(from, "CredentialRevoked", Duration::from_secs(20))
        .await;
    assert_eq!(superseded["data"]["reason"], "superseded");
    assert_eq!(superseded["data"]["serials"], json!([first["serial"]]));

    // compromise: every live credential in one event, triggered by the report
    let from = w.last_seq().await + 1;
    let out = must(&mut w.cli(&[
        "agent",
        "report-compromise",
        "--agent-id",
        &id,
        "--details",
        "key leaked",
    ]));
    assert!(out.contains("1 credential(s) revoked"), "{out}");
    let events = w.events(from);
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0]["type"], "CompromiseReported");
    assert_eq!(events[1]["type"], "CredentialRevoked");
    assert_eq!(events[1]["data"]["reason"], "keyCompromise");
    assert_eq!(events[1]["data"]["triggered_by"], events[0]["id"]);
    // a compromised agent gets nothing again
    let renew = w
        .cli(&["agent", "renew", "--dir", agent_dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!renew.status.success());

    // decommissioning and the end of the owner binding, on fresh agents
    for (event, reason_code, args) in [
        (
            "AgentDecommissioned",
            "cessationOfOperation",
            vec!["agent", "decommission", "--reason", "retired"],
        ),
        (
            "OwnerUnbound",
            "privilegeWithdrawn",
            vec!["agent", "unbind-owner", "--reason", "owner left"],
        ),
    ] {
        let a = w.provision(name, &["calendar.read"]).await;
        let ev = w.evidence(&a, name).await;
        assert_eq!(w.request(&a, ev).await.status, 201);
        let from = w.last_seq().await + 1;
        let mut args = args.clone();
        args.extend(["--agent-id", &a.id]);
        must(&mut w.cli(&args));
        let events = w.events(from);
        assert_eq!(events[0]["type"], event);
        assert_eq!(events[1]["type"], "CredentialRevoked");
        assert_eq!(events[1]["data"]["reason"], reason_code);
        assert_eq!(events[1]["data"]["triggered_by"], events[0]["id"]);
    }

    // expiry is recorded by the sweep
    let a = w.provision(name, &["calendar.read"]).await;
    let ev = w.evidence(&a, name).await;
    let r = w
        .send(
            w.post(&format!("/v1/agents/{}/credentials", a.id))
                .bearer_auth(&a.token)
                .json(&json!({"csr": a.csr, "evidence": ev, "lifetime_secs": 60})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.raw);
    let from = w.last_seq().await;
    let expired = w
        .wait_event(from, "CredentialExpired", Duration::from_secs(120))
        .await;
    assert_eq!(expired["data"]["serial"], r.body["serial"]);
    let _ = a.key;
}

/// Finding 8: an owner's ID token binds one agent, once. It must carry an owner nonce the ACA
/// issued for that agent (`POST /v1/agents/{id}/owner-nonce`; single use, spent once the
/// evidence verified) and be at most ten minutes old. The same token for a second agent, a
/// token without a nonce, with another agent's nonce, with a nonce this ACA never issued or
/// issued for attestation, or an old one: a 422 naming `owner_binding`, nothing appended. The
/// CLI asks for the nonce the owner's IdP puts in the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_id_token_binds_one_agent_once() {
    let tmp = tempfile::tempdir().unwrap();
    let w = World::start(&tmp.path().join("d"), &[]).await;
    w.trust_kit(tmp.path());
    let (k, name, caps) = (&w.kit, "travel-planner", ["calendar.read"]);
    let a = w.provision(name, &caps).await;
    let b = w.provision(name, &caps).await;
    let c = w.provision(name, &caps).await;

    // alice's ID token for agent a
    let ev = w.evidence(&a, name).await;
    let token = ev["owner_id_token"].as_str().unwrap().to_owned();
    let r = w.request(&a, ev).await;
    assert_eq!(r.status, 201, "{}", r.raw);

    // then for agent b, and other tokens that are not b's to use
    let b_owner = w.owner_nonce(&b).await;
    let c_owner = w.owner_nonce(&c).await;
    let b_attestation = w.nonce(&b).await;
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let claims = |nonce: Option<&str>, iat: i64| {
        let mut c = json!({
            "iss": k.idp_issuer, "sub": "alice@org-a.example", "aud": k.idp_audience,
            "iat": iat, "exp": now + 3600, "scope": "calendar.read",
        });
        if let Some(n) = nonce {
            c["nonce"] = n.into();
        }
        c
    };
    let cases = [
        (
            "the token that bound agent a",
            token.clone(),
            "owner-nonce-replayed",
        ),
        (
            "a token with another agent's nonce",
            k.id_token(&c_owner, "alice@org-a.example", &caps, 3600),
            "owner-nonce-other-agent",
        ),
        (
            "a token without a nonce",
            k.sign_id_token(&claims(None, now - 10)),
            "owner-nonce-missing",
        ),
        (
            "a nonce this ACA never issued",
            k.id_token(&"A".repeat(43), "alice@org-a.example", &caps, 3600),
            "owner-nonce-unknown",
        ),
        (
            "the agent's attestation nonce",
            k.id_token(&b_attestation, "alice@org-a.example", &caps, 3600),
            "owner-nonce-unknown",
        ),
        (
            "a token issued eleven minutes ago",
            k.sign_id_token(&claims(Some(&b_owner), now - 660)),
            "owner-stale",
        ),
    ];
    let before = w.last_seq().await;
    for (what, t, kind) in &cases {
        let eat = w.nonce(&b).await;
        let mut ev = w.evidence_with(&b, name, &eat, &b_owner);
        ev["owner_id_token"] = t.clone().into();
        let r = w.request(&b, ev).await;
        assert_eq!(r.status, 422, "{what}: {}", r.raw);
        assert_eq!(r.body["check"], "owner_binding", "{what}: {}", r.raw);
        assert_eq!(r.kind(), *kind, "{what}: {}", r.raw);
    }
    assert_eq!(w.last_seq().await, before, "refusals append nothing");
    // b's own nonce was not spent by them: b's owner binds it now
    let eat = w.nonce(&b).await;
    let r = w
        .request(&b, w.evidence_with(&b, name, &eat, &b_owner))
        .await;
    assert_eq!(r.status, 201, "{}", r.raw);

    // the CLI: `accord agent owner-nonce` asks for the nonce (with the enrollment token), the
    // IdP puts it in the ID token, `accord agent enroll --evidence-dir` sends it
    let token_file = tmp.path().join("token");
    let id = must(&mut w.cli(&[
        "agent",
        "provision",
        "--name",
        name,
        "--capability",
        "calendar.read",
        "--token-out",
        token_file.to_str().unwrap(),
    ]))
    .trim()
    .to_owned();
    let agent_dir = tmp.path().join("agent");
    let evidence_dir = tmp.path().join("evidence");
    let thumb = must(accord().args(["agent", "keygen", "--dir", agent_dir.to_str().unwrap()]));
    let thumb = KeyId::parse(thumb.trim()).unwrap();
    w.evidence_folder(&evidence_dir, &thumb, name, &caps);
    let nonce = must(&mut w.cli(&[
        "agent",
        "owner-nonce",
        "--agent-id",
        &id,
        "--enrollment-token-file",
        token_file.to_str().unwrap(),
    ]))
    .trim()
    .to_owned();
    std::fs::write(
        evidence_dir.join("owner-id-token.jwt"),
        k.id_token(&nonce, "bob@org-a.example", &caps, 3600),
    )
    .unwrap();
    let out = must(&mut w.cli(&[
        "agent",
        "enroll",
        "--agent-id",
        &id,
        "--enrollment-token-file",
        token_file.to_str().unwrap(),
        "--dir",
        agent_dir.to_str().unwrap(),
        "--evidence-dir",
        evidence_dir.to_str().unwrap(),
    ]));
    assert!(out.starts_with("enrolled"), "{out}");
    // once enrolled, the agent asks with its credential (a proof by its key), e.g. for a
    // renewal under a new ID token
    let nonce = must(&mut w.cli(&["agent", "owner-nonce", "--dir", agent_dir.to_str().unwrap()]));
    assert_eq!(
        nonce.trim().len(),
        accord_authority::evidence::nonce::LEN,
        "{nonce}"
    );
}
