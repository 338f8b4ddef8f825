//! Against SoftHSM2: every test makes its own token (random label) and deletes it at the end.
//! SoftHSM reads `SOFTHSM2_CONF` when set, else its default configuration.

use std::sync::Arc;

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
use cryptoki::object::AttributeInfo;

use super::uri::{PinSource, read_pin_file, utf8};
use super::*;
use crate::signer::tests::signer_suite;

const SO_PIN: &str = "accord-so-pin";

/// A fresh SoftHSM token, deleted on drop; its user PIN is random and sits in a file.
struct TestToken {
    label: String,
    pin: String,
    pin_file: PathBuf,
    dir: tempfile::TempDir,
}

fn random_hex(n: usize) -> String {
    uuid::Uuid::new_v4().simple().to_string()[..n].to_owned()
}

impl TestToken {
    fn new() -> Self {
        context(Path::new(DEFAULT_MODULE))
            .expect("SoftHSM2: run scripts/setup, and export SOFTHSM2_CONF if it says so");
        let label = format!("accord-test-{}", random_hex(16));
        let pin = format!("pin-{}", random_hex(12));
        init_token(Path::new(DEFAULT_MODULE), &label, SO_PIN, &pin).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let pin_file = dir.path().join("pin");
        std::fs::write(&pin_file, format!("{pin}\n")).unwrap();
        Self {
            label,
            pin,
            pin_file,
            dir,
        }
    }

    fn uri(&self, object: &str) -> String {
        format!(
            "pkcs11:token={};object={object}?module-path={DEFAULT_MODULE}&pin-source=file:{}",
            self.label,
            self.pin_file.display()
        )
    }
}

impl Drop for TestToken {
    fn drop(&mut self) {
        let _lock = token_lock().unwrap();
        let _ = std::process::Command::new("softhsm2-util")
            .args(["--delete-token", "--token", &self.label])
            .output();
    }
}

fn parse(uri: &str) -> Result<Pkcs11Uri, UriError> {
    Pkcs11Uri::parse_with_env(uri, |_| Some(DEFAULT_MODULE.to_owned()))
}

#[test]
fn a_generated_softhsm_p256_key_passes_the_suite() {
    let token = TestToken::new();
    let signer = Pkcs11Signer::generate_p256(&token.uri("ca")).unwrap();
    assert_eq!(signer.algorithm(), SignerAlgorithm::EcdsaP256Sha256);
    signer_suite(&signer);
    assert_eq!(
        signer.backend(),
        format!("pkcs11:token={};object=ca", token.label)
    );
    assert!(!format!("{signer:?}").contains(&token.pin));

    // opened again by its URI, it is the same key
    let again = Pkcs11Signer::open(&token.uri("ca")).unwrap();
    assert_eq!(again.public_key(), signer.public_key());
    signer_suite(&again);
    // and a second key under the same name is refused
    assert!(matches!(
        Pkcs11Signer::generate_p256(&token.uri("ca")),
        Err(SignerError::Pkcs11(_))
    ));
}

#[test]
fn an_ed25519_key_passes_the_suite() {
    let token = TestToken::new();
    let uri = Pkcs11Uri::parse(&token.uri("jwt")).unwrap();
    generate(&uri, SignerAlgorithm::Ed25519).unwrap();
    let signer = Pkcs11Signer::open_uri(&uri).unwrap();
    assert_eq!(signer.algorithm(), SignerAlgorithm::Ed25519);
    assert_eq!(signer.public_key().len(), 32);
    signer_suite(&signer);
}

#[test]
fn eight_threads_sign_at_once() {
    let token = TestToken::new();
    let signer = Arc::new(Pkcs11Signer::generate_p256(&token.uri("ca")).unwrap());
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let signer = Arc::clone(&signer);
            std::thread::spawn(move || {
                for i in 0..25 {
                    let msg = format!("thread {t} message {i}");
                    let sig = signer.sign_raw(msg.as_bytes()).unwrap();
                    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, signer.public_key())
                        .verify(msg.as_bytes(), &sig)
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let idle = signer.pool.lock().unwrap().len();
    assert!(
        (1..=MAX_IDLE_SESSIONS).contains(&idle),
        "{idle} idle sessions"
    );
}

#[test]
fn the_private_key_does_not_leave_the_token() {
    let token = TestToken::new();
    let signer = Pkcs11Signer::generate_p256(&token.uri("ca")).unwrap();
    let session = signer.take_session().unwrap();
    let attrs = session
        .get_attributes(
            signer.key,
            &[
                AttributeType::Extractable,
                AttributeType::Sensitive,
                AttributeType::NeverExtractable,
                AttributeType::AlwaysSensitive,
                AttributeType::Token,
                AttributeType::Value,
            ],
        )
        .unwrap();
    for want in [
        Attribute::Extractable(false),
        Attribute::Sensitive(true),
        Attribute::NeverExtractable(true),
        Attribute::AlwaysSensitive(true),
        Attribute::Token(true),
    ] {
        assert!(attrs.contains(&want), "{want:?} not in {attrs:?}");
    }
    assert!(!attrs.iter().any(|a| matches!(a, Attribute::Value(_))));
    let info = session
        .get_attribute_info(signer.key, &[AttributeType::Value])
        .unwrap();
    assert!(matches!(info[..], [AttributeInfo::Sensitive]), "{info:?}");
}

#[test]
fn a_wrong_pin_is_refused_without_showing_it() {
    let token = TestToken::new();
    drop(Pkcs11Signer::generate_p256(&token.uri("ca")).unwrap());
    // no session of this process is open on the token now, so the token checks the PIN
    let wrong = format!("wrong-{}", random_hex(8));
    let by_value = format!(
        "pkcs11:token={};object=ca?module-path={DEFAULT_MODULE}&pin-value={wrong}",
        token.label
    );
    let wrong_file = token.dir.path().join("wrong");
    std::fs::write(&wrong_file, &wrong).unwrap();
    let by_file = format!(
        "pkcs11:token={};object=ca?module-path={DEFAULT_MODULE}&pin-source=file:{}",
        token.label,
        wrong_file.display()
    );
    for uri in [by_value, by_file] {
        let err = Pkcs11Signer::open(&uri).unwrap_err();
        assert!(matches!(err, SignerError::Pkcs11(_)), "{err:?}");
        for shown in [err.to_string(), format!("{err:?}")] {
            assert!(
                !shown.contains(&wrong) && !shown.contains(&token.pin),
                "{shown}"
            );
        }
    }
    // the right PIN still works
    Pkcs11Signer::open(&token.uri("ca")).unwrap();
}

#[test]
fn an_unknown_key_or_token_is_a_clear_error() {
    let token = TestToken::new();
    let err = Pkcs11Signer::open(&token.uri("no-such-key")).unwrap_err();
    assert!(
        matches!(&err, SignerError::Pkcs11(m) if m.contains("no-such-key") && m.contains("no private key")),
        "{err}"
    );

    let absent = format!("accord-absent-{}", random_hex(8));
    let err = Pkcs11Signer::open(&token.uri("ca").replace(&token.label, &absent)).unwrap_err();
    assert!(
        matches!(&err, SignerError::Pkcs11(m) if m.contains("no token")),
        "{err}"
    );
}

#[test]
fn good_uris_parse() {
    let uri = parse(
        "pkcs11:token=Accord%20CA;object=ca%3Bkey;id=%01%a2;type=private\
         ?module-path=%2Fopt%2Fhsm%2Flib.so&pin-value=12%2634",
    )
    .unwrap();
    assert_eq!(uri.token(), "Accord CA");
    assert_eq!(uri.object(), Some("ca;key"));
    assert_eq!(uri.id(), Some(&[0x01, 0xa2][..]));
    assert_eq!(uri.module_path(), Path::new("/opt/hsm/lib.so"));
    assert!(matches!(uri.pin, PinSource::Value(_)));
    assert_eq!(utf8("pin-value", "12%2634").unwrap(), "12&34");
    let shown = format!("{uri} {uri:?}");
    assert!(
        !shown.contains("12&34") && !shown.contains("12%2634"),
        "{shown}"
    );
    assert_eq!(
        uri.to_string(),
        "pkcs11:token=Accord%20CA;object=ca%3Bkey;id=%01%A2;type=private?module-path=/opt/hsm/lib.so"
    );
    // its Display parses back to the same key
    let back = parse(&format!("{uri}&pin-value=1")).unwrap();
    assert_eq!(
        (back.token(), back.object(), back.id()),
        (uri.token(), uri.object(), uri.id())
    );

    // pin-source forms; the module from the environment; id alone names a key
    for source in [
        "file:/run/pin",
        "file:///run/pin",
        "file://localhost/run/pin",
    ] {
        let uri =
            Pkcs11Uri::parse_with_env(&format!("PKCS11:token=t;id=%07?pin-source={source}"), |k| {
                (k == MODULE_ENV).then(|| "/from/env.so".to_owned())
            })
            .unwrap();
        assert!(
            matches!(&uri.pin, PinSource::File(p) if p == Path::new("/run/pin")),
            "{source}"
        );
        assert_eq!(uri.module_path(), Path::new("/from/env.so"));
        assert_eq!(uri.object(), None);
    }
}

#[test]
fn the_pin_file_loses_one_trailing_newline() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pin");
    for (content, want) in [
        ("1234\n", Some("1234")),
        ("1234\r\n", Some("1234")),
        ("12 34", Some("12 34")),
        ("\n", None),
    ] {
        std::fs::write(&path, content).unwrap();
        assert_eq!(read_pin_file(&path).ok().as_deref(), want, "{content:?}");
    }
    std::fs::write(&path, "1".repeat(2000)).unwrap();
    assert!(matches!(read_pin_file(&path), Err(SignerError::Pkcs11(_))));
    let missing = parse("pkcs11:token=t;object=o?pin-source=file:/nonexistent/accord/pin").unwrap();
    assert!(matches!(missing.read_pin(), Err(SignerError::Pkcs11(_))));
}

#[test]
fn bad_uris_are_refused_by_kind() {
    let pin = "?pin-value=1234";
    let mut cases: Vec<(String, UriError)> = vec![
        (
            format!("pkcs11:token=t;object=o;serial=42{pin}"),
            UriError::UnknownAttribute("serial".into()),
        ),
        (
            format!("pkcs11:token=t;object=o;x-vendor=1{pin}"),
            UriError::UnknownAttribute("x-vendor".into()),
        ),
        (
            "pkcs11:token=t;object=o?module-name=softhsm2&pin-value=1".into(),
            UriError::UnknownAttribute("module-name".into()),
        ),
        // a query attribute in the path is not one
        (
            "pkcs11:token=t;object=o;pin-value=1234".into(),
            UriError::UnknownAttribute("pin-value".into()),
        ),
        (
            format!("pkcs11:token=t;object=o;type=public{pin}"),
            UriError::NotPrivate("public".into()),
        ),
        (
            format!("pkcs11:token=t;object=o;type=cert{pin}"),
            UriError::NotPrivate("cert".into()),
        ),
        (
            "pkcs11:token=t;object=o?pin-source=1234".into(),
            UriError::PinSource,
        ),
        (
            "pkcs11:token=t;object=o?pin-source=https://example.com/pin".into(),
            UriError::PinSource,
        ),
        (
            "pkcs11:token=t;object=o?pin-source=file://host/pin".into(),
            UriError::PinSource,
        ),
        (
            "pkcs11:token=t;object=o?pin-source=file://localhostpin".into(),
            UriError::PinSource,
        ),
        (
            "pkcs11:token=t;object=o?pin-source=file:".into(),
            UriError::PinSource,
        ),
        (format!("pkcs11:object=o{pin}"), UriError::MissingToken),
        (format!("pkcs11:{pin}"), UriError::MissingToken),
        (format!("pkcs11:token=t{pin}"), UriError::MissingObject),
        ("pkcs11:token=t;object=o".into(), UriError::MissingPin),
        (
            "pkcs11:token=t;object=o?pin-value=1&pin-source=file:/p".into(),
            UriError::TwoPins,
        ),
        (
            format!("pkcs11:token=t;token=u;object=o{pin}"),
            UriError::Duplicate("token".into()),
        ),
        (
            format!("pkcs11:token=t;object=%zz{pin}"),
            UriError::Malformed("object".into()),
        ),
        (
            format!("pkcs11:token=t;object=%ff{pin}"),
            UriError::Malformed("object".into()),
        ),
        (
            format!("pkcs11:token=t;object={pin}"),
            UriError::Malformed("object".into()),
        ),
        (
            format!("pkcs11:token={};object=o{pin}", "x".repeat(33)),
            UriError::Malformed("token".into()),
        ),
        (
            format!("pkcs11:token=t;object{pin}"),
            UriError::NotAttribute,
        ),
        (
            format!("pkcs11:token=t;;object=o{pin}"),
            UriError::NotAttribute,
        ),
        (
            format!("pkcs11x:token=t;object=o{pin}"),
            UriError::NotPkcs11,
        ),
        (format!("token=t;object=o{pin}"), UriError::NotPkcs11),
    ];
    let long = format!("pkcs11:token=t;object={}{pin}", "a".repeat(MAX_URI_LEN));
    cases.push((long.clone(), UriError::TooLong(long.len())));
    for (uri, want) in cases {
        let got = parse(&uri);
        assert_eq!(got.as_ref().err(), Some(&want), "{uri}");
        // no refusal repeats the PIN
        assert!(!want.to_string().contains("1234"), "{want}");
        // and the Signer-facing parse refuses too, as a PKCS#11 error
        assert!(
            matches!(Pkcs11Uri::parse(&uri), Err(SignerError::Pkcs11(_))),
            "{uri}"
        );
    }
}
