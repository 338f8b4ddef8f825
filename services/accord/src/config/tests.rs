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
