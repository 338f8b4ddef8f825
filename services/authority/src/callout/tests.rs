#![allow(clippy::unwrap_used)]

use super::*;
use crate::signer::{SignerExt, SoftwareKey};

const ISSUER: &str = "spiffe://dev.accord.test";

fn domain() -> DomainId {
    DomainId::parse("dev").unwrap()
}

struct Fixture {
    token: SoftwareKey,
    agent_key: SoftwareKey,
    agent: AgentId,
    serial: CredentialSerial,
}

impl Fixture {
    fn new() -> Self {
        Self {
            token: SoftwareKey::generate_p256().unwrap().0,
            agent_key: SoftwareKey::generate_p256().unwrap().0,
            agent: AgentId::new_v7(),
            serial: CredentialSerial::parse("0a1b2c3d4e5f60718293a4b5c6d7e8f9").unwrap(),
        }
    }

    fn wit_with(&self, edit: impl FnOnce(&mut Map<String, Value>)) -> String {
        let now = now_unix();
        let (mut jwk, _) = self.agent_key.jwk();
        jwk.alg = Some("ES256".into());
        let mut c = object(json!({
            "iss": ISSUER,
            "sub": format!("{ISSUER}/agent/{}", self.agent),
            "iat": now, "nbf": now - 30, "exp": now + 3600,
            "jti": jws::random_jti(),
            "cnf": { "jwk": jwk },
            "agent_id": self.agent.to_string(),
            "x5t_serial": self.serial.as_str(),
        }));
        edit(&mut c);
        jws::sign(&self.token, TYP_WIT, &Value::Object(c)).unwrap()
    }

    fn wit(&self) -> String {
        self.wit_with(|_| {})
    }

    fn wpt_with(&self, wit: &str, edit: impl FnOnce(&mut Map<String, Value>)) -> String {
        let now = now_unix();
        let mut c = object(json!({
            "aud": "nats:dev", "iat": now, "exp": now + 60,
            "jti": jws::random_jti(), "wth": jws::hash_b64(wit.as_bytes()),
        }));
        edit(&mut c);
        jws::sign(&self.agent_key, TYP_WPT, &Value::Object(c)).unwrap()
    }

    fn check(&self, wit: &str, wpt: &str) -> Result<Proven, Refusal> {
        check_tokens(
            wit,
            wpt,
            &VerifyingKey::of_signer(&self.token),
            ISSUER,
            &domain(),
            now_unix(),
        )
    }
}

#[test]
fn good_tokens_prove_the_agent_and_its_credential() {
    let f = Fixture::new();
    let wit = f.wit();
    let p = f.check(&wit, &f.wpt_with(&wit, |_| {})).unwrap();
    assert_eq!(p.agent_id, f.agent);
    assert_eq!(p.serial, f.serial);
}

#[test]
fn every_token_fault_is_a_typed_refusal() {
    let f = Fixture::new();
    let wit = f.wit();
    let kind = |r: Result<Proven, Refusal>| r.unwrap_err().kind();

    // a WIT signed by another key than the ACA's token key (forged)
    let forger = Fixture {
        agent: f.agent,
        serial: f.serial.clone(),
        agent_key: SoftwareKey::generate_p256().unwrap().0,
        token: SoftwareKey::generate_p256().unwrap().0,
    };
    let forged = forger.wit();
    let r = f.check(&forged, &f.wpt_with(&forged, |_| {}));
    assert_eq!(r, Err(Refusal::Wit(JwsError::Signature)));

    // expired WIT
    let old = f.wit_with(|c| {
        c.insert("exp".into(), (now_unix() - 3600).into());
    });
    assert_eq!(
        f.check(&old, &f.wpt_with(&old, |_| {})),
        Err(Refusal::Wit(JwsError::Expired))
    );
    // another issuer
    let other = f.wit_with(|c| {
        c.insert("iss".into(), "spiffe://other.test".into());
    });
    assert_eq!(kind(f.check(&other, &f.wpt_with(&other, |_| {}))), "wit");
    // sub naming another agent than agent_id
    let mixed = f.wit_with(|c| {
        c.insert("agent_id".into(), AgentId::new_v7().to_string().into());
    });
    assert_eq!(
        f.check(&mixed, &f.wpt_with(&mixed, |_| {})),
        Err(Refusal::WitClaims("sub does not name agent_id"))
    );
    // a WPT where a WIT belongs, and the reverse
    let wpt = f.wpt_with(&wit, |_| {});
    assert_eq!(kind(f.check(&wpt, &wit)), "wit");

    // proof signed by another key than cnf.jwk
    let stolen = jws::sign(
        &forger.agent_key,
        TYP_WPT,
        &json!({"aud": "nats:dev", "exp": now_unix() + 60, "jti": jws::random_jti(),
                "wth": jws::hash_b64(wit.as_bytes())}),
    )
    .unwrap();
    assert_eq!(
        f.check(&wit, &stolen),
        Err(Refusal::Proof(JwsError::Signature))
    );
    // for another audience (a renewal proof, say)
    let aud = f.wpt_with(&wit, |c| {
        c.insert("aud".into(), "https://aca/v1/agents/x/credentials".into());
    });
    assert_eq!(
        f.check(&wit, &aud),
        Err(Refusal::ProofClaims("for another audience"))
    );
    // bound to another WIT
    let unbound = f.wpt_with(&wit, |c| {
        c.insert("wth".into(), jws::hash_b64(b"another").into());
    });
    assert_eq!(kind(f.check(&wit, &unbound)), "proof");
    // too long-lived
    let long = f.wpt_with(&wit, |c| {
        c.insert("exp".into(), (now_unix() + 3600).into());
    });
    assert_eq!(
        f.check(&wit, &long),
        Err(Refusal::ProofClaims("lives longer than 5 minutes"))
    );
    // expired
    let stale = f.wpt_with(&wit, |c| {
        c.insert("exp".into(), (now_unix() - 600).into());
    });
    assert_eq!(
        f.check(&wit, &stale),
        Err(Refusal::Proof(JwsError::Expired))
    );
    // short jti
    let short = f.wpt_with(&wit, |c| {
        c.insert("jti".into(), "x".into());
    });
    assert_eq!(kind(f.check(&wit, &short)), "proof");
}

fn request(server: &nkeys::KeyPair, issuer: &str, edit: impl FnOnce(&mut Value)) -> String {
    let user = nkeys::KeyPair::new_user().public_key();
    let mut c = json!({
        "aud": "nats-authorization-request",
        "sub": issuer,
        "exp": now_unix() + 2,
        "nats": {
            "server_id": { "id": server.public_key(), "name": "s", "host": "127.0.0.1" },
            "user_nkey": user,
            "connect_opts": { "user": "w", "pass": "p", "lang": "python3" },
            "type": "authorization_request",
            "version": 2,
        }
    });
    edit(&mut c);
    natsjwt::encode(object(c), server, now_unix()).unwrap()
}

#[test]
fn requests_must_come_signed_by_the_server_for_this_issuer() {
    let server = nkeys::KeyPair::new_server();
    let issuer = nkeys::KeyPair::new_account().public_key();
    let now = now_unix();
    let r = parse_request(request(&server, &issuer, |_| {}).as_bytes(), &issuer, now).unwrap();
    assert_eq!(r.server_id, server.public_key());
    assert_eq!((r.wit.as_deref(), r.wpt.as_deref()), (Some("w"), Some("p")));

    // for another callout issuer
    let other = nkeys::KeyPair::new_account().public_key();
    let t = request(&server, &other, |_| {});
    assert_eq!(
        parse_request(t.as_bytes(), &issuer, now),
        Err(Refusal::RequestClaims("sub is not this callout's issuer"))
    );
    // signed by a server other than the one it names
    let impostor = nkeys::KeyPair::new_server();
    let t = request(&impostor, &issuer, |c| {
        c["nats"]["server_id"]["id"] = server.public_key().into();
    });
    assert_eq!(
        parse_request(t.as_bytes(), &issuer, now),
        Err(Refusal::RequestClaims("not signed by the server it names"))
    );
    // signed by an account key, not a server's
    let t = request(&nkeys::KeyPair::new_account(), &issuer, |_| {});
    assert!(matches!(
        parse_request(t.as_bytes(), &issuer, now),
        Err(Refusal::Request(NatsJwtError::Issuer(..)))
    ));
    // expired
    let t = request(&server, &issuer, |c| c["exp"] = (now - 600).into());
    assert_eq!(
        parse_request(t.as_bytes(), &issuer, now),
        Err(Refusal::RequestClaims("expired"))
    );
    // no tokens: parsed, refused by decide
    let t = request(&server, &issuer, |c| c["nats"]["connect_opts"] = json!({}));
    let r = parse_request(t.as_bytes(), &issuer, now).unwrap();
    assert_eq!((r.wit, r.wpt), (None, None));
    assert!(parse_request(b"\xff", &issuer, now).is_err());
}

#[test]
fn an_agent_may_only_ask_for_and_read_its_own_feed() {
    let agent = AgentId::new_v7();
    let (publish, subscribe) = permissions(&agent);
    // no JetStream API at all: the ACA creates the consumer
    assert_eq!(publish, vec![format!("accord.feed.{agent}.open")]);
    assert_eq!(
        subscribe,
        vec![
            format!("accord.feed.{agent}.deliver"),
            format!("accord.feed.{agent}.inbox.>"),
        ]
    );
    assert!(publish.iter().chain(&subscribe).all(|p| !p.contains('*')));
    assert!(
        publish
            .iter()
            .all(|p| !p.contains('>') && !p.starts_with('$'))
    );
}
