use super::*;

fn write(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("accord.toml");
    std::fs::write(&p, text).unwrap();
    p
}

fn base(dir: &Path) -> String {
    for f in ["event.pk8", "audit.pk8", "services.nk", "ca.pem"] {
        std::fs::write(dir.join(f), b"x").unwrap();
    }
    format!(
        r#"version = 1
[domain]
id = "org-a"
trust_domain = "org-a.example"
[keys]
event_signing = "file:{d}/event.pk8"
audit = "file:{d}/audit.pk8"
[nats]
url = "tls://127.0.0.1:4222"
ca = "{d}/ca.pem"
credentials = "file:{d}/services.nk"
"#,
        d = dir.display()
    )
}

#[test]
fn a_valid_config_loads_with_defaults() {
    let t = tempfile::tempdir().unwrap();
    let c = load(&write(t.path(), &base(t.path())), &[]).unwrap();
    assert_eq!(c.domain.id.as_str(), "org-a");
    assert_eq!(c.nats.replicas, 1);
    assert!(c.postgres.is_none());
    assert_eq!(c.projections.batch_size, 500);
}

#[test]
fn unknown_keys_are_rejected_with_their_name() {
    let t = tempfile::tempdir().unwrap();
    let text = base(t.path()).replace("[nats]", "[nats]\nspeed = 3");
    let e = load(&write(t.path(), &text), &[]).unwrap_err();
    assert!(e.to_string().contains("speed"), "{e}");
    let text = format!("{}\n[colour]\nx = 1\n", base(t.path()));
    assert!(load(&write(t.path(), &text), &[]).is_err());
}

#[test]
fn bad_values_are_rejected() {
    let t = tempfile::tempdir().unwrap();
    let b = base(t.path());
    for (from, to) in [
        ("version = 1", "version = 2"),
        ("id = \"org-a\"", "id = \"org.a\""),
        (
            "trust_domain = \"org-a.example\"",
            "trust_domain = \"Org A\"",
        ),
        ("url = \"tls://127.0.0.1:4222\"", "url = \"\""),
    ] {
        let e = load(&write(t.path(), &b.replace(from, to)), &[]);
        assert!(e.is_err(), "{to} should be refused");
    }
    let e = load(&write(t.path(), &format!("{b}replicas_typo = 1\n")), &[]);
    assert!(e.is_err());
}

#[test]
fn secrets_must_be_references() {
    let t = tempfile::tempdir().unwrap();
    let b = base(t.path());
    let text = b.replace(
        &format!("credentials = \"file:{}/services.nk\"", t.path().display()),
        "credentials = \"SUAGMJH5XLGZKQQWAWKRZJIGMOU4HPFUYLXJMXOO5NLFEO2OOQJ5LPRDPM\"",
    );
    let e = load(&write(t.path(), &text), &[]).unwrap_err();
    assert!(e.to_string().contains("secret reference"), "{e}");
    let pg = format!("{b}\n[postgres]\nurl = \"postgres://accord:hunter2@db/accord\"\n");
    let e = load(&write(t.path(), &pg), &[]).unwrap_err();
    assert!(e.to_string().contains("password"), "{e}");
}

#[test]
fn environment_overrides_apply_and_are_checked() {
    let t = tempfile::tempdir().unwrap();
    let p = write(t.path(), &base(t.path()));
    let env = vec![
        ("ACCORD_NATS__REPLICAS".to_owned(), "3".to_owned()),
        ("ACCORD_PROJECTIONS__BATCH_SIZE".to_owned(), "50".to_owned()),
        ("ACCORD_TELEMETRY__LOG_FORMAT".to_owned(), "json".to_owned()),
        // tool variables that are not config are left alone
        (
            "ACCORD_NATS_SERVER".to_owned(),
            "/usr/bin/nats-server".to_owned(),
        ),
        ("PATH".to_owned(), "/bin".to_owned()),
    ];
    let c = load(&p, &env).unwrap();
    assert_eq!(c.nats.replicas, 3);
    assert_eq!(c.projections.batch_size, 50);
    assert_eq!(c.telemetry.log_format, LogFormat::Json);
    let e = load(&p, &[("ACCORD_NATS__REPLICAS".into(), "2".into())]).unwrap_err();
    assert!(e.to_string().contains("replicas"), "{e}");
    let e = load(&p, &[("ACCORD_COLOUR__X".into(), "1".into())]).unwrap_err();
    assert!(e.to_string().contains("colour"), "{e}");
}

#[test]
fn missing_referenced_files_are_reported() {
    let t = tempfile::tempdir().unwrap();
    let b = base(t.path());
    std::fs::remove_file(t.path().join("services.nk")).unwrap();
    let e = load(&write(t.path(), &b), &[]).unwrap_err();
    assert!(e.to_string().contains("services.nk"), "{e}");
}

#[test]
fn the_authority_section_is_checked() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    std::fs::write(d.join("agent-ca.pem"), b"x").unwrap();
    std::fs::write(d.join("token.pk8"), b"x").unwrap();
    let section = |extra: &str| {
        format!(
            "{}[authority]\nca_key = \"pkcs11:token=accord;object=ca?pin-source=file:/run/pin\"\n\
             ca_certificate = \"{}/agent-ca.pem\"\ntoken_key = \"file:{}/token.pk8\"\n\
             public_url = \"https://aca.org-a.example:8443\"\n{extra}",
            base(d),
            d.display(),
            d.display()
        )
    };
    let c = load(&write(d, &section("")), &[]).unwrap();
    let a = c.authority.unwrap();
    assert_eq!(a.lifetime_secs, 3600);
    assert!(matches!(a.ca_key, SecretRef::Pkcs11(_)));
    assert_eq!(a.policy, "issuance");
    for (extra, wanted) in [
        ("lifetime_secs = 10\n", "lifetime_secs"),
        ("extension_arc = \"1.3.x\"\n", "extension_arc"),
        ("policy = \"Issuance.x\"\n", "authority.policy"),
        ("rate_limit_per_minute = 0\n", "rate_limit_per_minute"),
        ("crl_validity_secs = 5\n", "crl_validity_secs"),
        ("surprise = 1\n", "surprise"),
    ] {
        let e = load(&write(d, &section(extra)), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains(wanted), "{extra}: {e}");
    }
    // a secret in clear is refused, and so is a missing certificate
    let e = load(&write(d, &section("").replace("file:", "")), &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("secret"), "{e}");
    std::fs::remove_file(d.join("agent-ca.pem")).unwrap();
    let e = load(&write(d, &section("")), &[]).unwrap_err().to_string();
    assert!(e.contains("ca_certificate"), "{e}");
    // environment overrides reach the section
    std::fs::write(d.join("agent-ca.pem"), b"x").unwrap();
    let env = [(
        "ACCORD_AUTHORITY__LIFETIME_SECS".to_owned(),
        "600".to_owned(),
    )];
    assert_eq!(
        load(&write(d, &section("")), &env)
            .unwrap()
            .authority
            .unwrap()
            .lifetime_secs,
        600
    );
}
