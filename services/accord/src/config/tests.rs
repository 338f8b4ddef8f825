use super::*;

fn write(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("accord.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// A secret file, private to its owner as `accord serve` wants it.
fn secret(dir: &Path, name: &str) {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, b"x").unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn base(dir: &Path) -> String {
    for f in ["event.pk8", "audit.pk8", "services.nk"] {
        secret(dir, f);
    }
    std::fs::write(dir.join("ca.pem"), b"x").unwrap();
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
    // every section of the file may be set from the environment, [registry] too (it was
    // refused as an unknown section); here it lacks its listener, which is what is reported
    let e = load(
        &p,
        &[("ACCORD_REGISTRY__RATE_LIMIT_PER_MINUTE".into(), "9".into())],
    )
    .unwrap_err();
    assert!(!e.to_string().contains("no section"), "{e}");
    assert!(e.to_string().contains("listen"), "{e}");
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
fn weak_or_misplaced_tokens_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let with = |extra: &str| format!("{}[http]\n{extra}", base(d));
    let token = |name: &str, text: &str| {
        std::fs::write(d.join(name), text).unwrap();
        set_mode(&d.join(name), 0o600);
    };
    token(
        "admin.token",
        "Xq3_9kPz-LmN0vB7tYc2RwE5uJ8hGf1sAaDd4Ke6Wo0\n",
    );
    token("read.token", "0123456789abcdef0123456789abcdef");
    token("weak.token", "hunter2");
    let admin = format!("admin_token = \"file:{}/admin.token\"\n", d.display());
    let read = format!("read_token = \"file:{}/read.token\"\n", d.display());
    let c = load(&write(d, &with(&format!("{admin}{read}"))), &[]).unwrap();
    assert!(c.http.read_token.is_some());
    assert_eq!(c.http.rate_limit_per_minute, 600);
    for weak in [
        format!("admin_token = \"file:{}/weak.token\"\n", d.display()),
        format!("{admin}read_token = \"file:{}/weak.token\"\n", d.display()),
    ] {
        let e = load(&write(d, &with(&weak)), &[]).unwrap_err();
        assert!(
            matches!(
                e,
                ConfigError::WeakToken {
                    weakness: accord_web::WeakToken::TooShort,
                    ..
                }
            ),
            "{e}"
        );
    }
    token("weak.token", &"a".repeat(64));
    let weak = format!("admin_token = \"file:{}/weak.token\"\n", d.display());
    let e = load(&write(d, &with(&weak)), &[]).unwrap_err();
    assert!(
        matches!(
            e,
            ConfigError::WeakToken {
                name: "http.admin_token",
                ..
            }
        ),
        "{e}"
    );
    // the read token is a secret file like the others
    set_mode(&d.join("read.token"), 0o644);
    let e = load(&write(d, &with(&format!("{admin}{read}"))), &[]).unwrap_err();
    assert!(matches!(e, ConfigError::SecretFileExposed { .. }), "{e}");
    // a missing token file, a token in a PKCS#11 token, no rate: refused
    for bad in [
        format!("admin_token = \"file:{}/none.token\"\n", d.display()),
        "admin_token = \"pkcs11:token=accord;object=admin\"\n".to_owned(),
        "rate_limit_per_minute = 0\n".to_owned(),
    ] {
        let e = load(&write(d, &with(&bad)), &[]).unwrap_err();
        assert!(matches!(e, ConfigError::Invalid { .. }), "{bad}: {e}");
    }
}

#[test]
fn the_authority_section_is_checked() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    std::fs::write(d.join("agent-ca.pem"), b"x").unwrap();
    secret(d, "token.pk8");
    let section = |extra: &str| {
        format!(
            "{}{}[authority]\nca_key = \"pkcs11:token=accord;object=ca?pin-source=file:/run/pin\"\n\
             ca_certificate = \"{}/agent-ca.pem\"\ntoken_key = \"file:{}/token.pk8\"\n\
             public_url = \"https://aca.org-a.example:8443\"\n{extra}",
            base(d),
            https(d),
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

/// An `[http]` section with TLS (the files need not be valid to load the config).
fn https(d: &Path) -> String {
    std::fs::write(d.join("http.pem"), b"x").unwrap();
    secret(d, "http.key");
    format!(
        "[http]\ntls_cert = \"{d}/http.pem\"\ntls_key = \"file:{d}/http.key\"\n",
        d = d.display()
    )
}

fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn a_plaintext_pdp_url_is_refused_unless_dangerous() {
    let t = tempfile::tempdir().unwrap();
    let b = base(t.path());
    let policy = |url: &str, extra: &str| {
        let text = format!("{b}[policy]\nengine = \"opa\"\nurl = \"{url}\"\n{extra}");
        load(&write(t.path(), &text), &[])
    };
    for url in [
        "http://opa.org-a.example:8181",
        "HTTP://opa:8181",
        "ftp://opa",
    ] {
        assert!(
            matches!(
                policy(url, ""),
                Err(ConfigError::Insecure {
                    what: Insecure::PlaintextPdp,
                    ..
                })
            ),
            "{url}"
        );
    }
    assert!(policy("https://opa.org-a.example:8181", "").is_ok());
    let dangerous = "dangerous_plaintext_http = true\n";
    assert!(policy("http://127.0.0.1:8181", dangerous).is_ok());
    assert!(matches!(
        policy("ftp://opa", dangerous),
        Err(ConfigError::Insecure { .. })
    ));
}

#[test]
fn postgres_without_verified_tls_is_refused_except_to_this_machine() {
    use accord_store::projection::postgres::PgConnectError as E;
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let b = base(d);
    let pki = crate::pki::generate("test").unwrap();
    std::fs::write(d.join("pg-ca.pem"), &pki.ca_cert).unwrap();
    std::fs::write(d.join("not-a-ca.pem"), b"x").unwrap();
    let pg = |section: &str| load(&write(d, &format!("{b}[postgres]\n{section}")), &[]);
    let ca = format!("ca = \"{}/pg-ca.pem\"\n", d.display());
    let plain = "dangerous_plaintext_local = true\n";
    let remote = "url = \"postgres://accord@db.org-a.example:5432/accord";
    let local = "url = \"postgres://accord@127.0.0.1:5432/accord";
    // verified TLS, sslmode absent, verify-full or require
    for mode in ["", "?sslmode=verify-full", "?sslmode=require"] {
        let c = pg(&format!("{remote}{mode}\"\n{ca}")).unwrap();
        assert!(c.postgres.unwrap().ca.is_some());
    }
    // plaintext to this machine, when asked by name
    for url in [
        format!("{local}\""),
        format!("{local}?sslmode=disable\""),
        "url = \"postgres://accord@%2Frun%2Fpostgresql/accord\"".to_owned(),
    ] {
        assert!(pg(&format!("{url}\n{plain}")).is_ok(), "{url}");
    }
    let refused = |section: String| match pg(&section) {
        Err(ConfigError::Postgres { source, .. }) => source,
        other => panic!("{section}: {other:?}"),
    };
    assert!(matches!(refused(format!("{remote}\"\n")), E::NoCa));
    assert!(matches!(
        refused(format!("{remote}\"\n{plain}")),
        E::PlaintextNotLocal(_)
    ));
    assert!(matches!(
        refused(format!("{remote}?sslmode=disable\"\n{ca}")),
        E::PlaintextNotChosen
    ));
    assert!(matches!(
        refused(format!("{local}?sslmode=disable\"\n")),
        E::PlaintextNotChosen
    ));
    for mode in ["prefer", "allow", "verify-ca"] {
        assert!(matches!(
            refused(format!("{remote}?sslmode={mode}\"\n{ca}")),
            E::SslMode(_)
        ));
    }
    assert!(matches!(
        refused(format!("{local}?sslmode=require\"\n{plain}")),
        E::NoCa
    ));
    assert!(matches!(
        refused(format!(
            "{remote}\"\nca = \"{}/not-a-ca.pem\"\n",
            d.display()
        )),
        E::Ca(_)
    ));
    assert!(matches!(
        pg(&format!("{local}\"\n{ca}{plain}")),
        Err(ConfigError::Invalid { .. })
    ));
}

#[test]
fn secret_files_readable_by_others_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let b = base(d);
    assert!(load(&write(d, &b), &[]).is_ok());
    for (file, key) in [
        ("services.nk", "nats.credentials"),
        ("event.pk8", "keys.event_signing"),
    ] {
        for mode in [0o644, 0o604, 0o660, 0o620] {
            set_mode(&d.join(file), mode);
            match load(&write(d, &b), &[]) {
                Err(ConfigError::SecretFileExposed {
                    key: k,
                    file: f,
                    mode: m,
                    ..
                }) => {
                    assert_eq!((k.as_str(), f, m), (key, d.join(file), mode));
                }
                other => panic!("{file} {mode:o}: {other:?}"),
            }
        }
        set_mode(&d.join(file), 0o600);
    }
    // optional secrets and the PIN file of a pkcs11: reference are checked too
    secret(d, "admin.token");
    // a token strong enough to be one (the file keeps its mode)
    std::fs::write(
        d.join("admin.token"),
        "Xq3_9kPz-LmN0vB7tYc2RwE5uJ8hGf1sAaDd4Ke6Wo0",
    )
    .unwrap();
    secret(d, "pin");
    std::fs::write(d.join("agent-ca.pem"), b"x").unwrap();
    let text = format!(
        "{b}{}admin_token = \"file:{d}/admin.token\"\n[authority]\n\
         ca_key = \"pkcs11:token=accord;object=ca?pin-source=file:{d}/pin\"\n\
         ca_certificate = \"{d}/agent-ca.pem\"\ntoken_key = \"file:{d}/http.key\"\n\
         public_url = \"https://aca.org-a.example\"\n",
        https(d),
        d = d.display()
    );
    assert!(load(&write(d, &text), &[]).is_ok());
    for (file, key) in [
        ("admin.token", "http.admin_token"),
        ("pin", "authority.ca_key"),
        ("http.key", "http.tls_key"),
    ] {
        set_mode(&d.join(file), 0o644);
        assert!(
            matches!(
                load(&write(d, &text), &[]),
                Err(ConfigError::SecretFileExposed { key: k, .. }) if k == key
            ),
            "{file}"
        );
        // the dev profile checks them just the same
        assert!(matches!(
            load_for(&write(d, &text), &[], Profile::Dev),
            Err(ConfigError::SecretFileExposed { .. })
        ));
        set_mode(&d.join(file), 0o600);
    }
}

#[test]
fn the_authority_needs_https_outside_dev() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let b = base(d);
    std::fs::write(d.join("agent-ca.pem"), b"x").unwrap();
    secret(d, "token.pk8");
    let authority = |public_url: &str| {
        format!(
            "[authority]\nca_key = \"file:{d}/token.pk8\"\nca_certificate = \"{d}/agent-ca.pem\"\n\
             token_key = \"file:{d}/token.pk8\"\npublic_url = \"{public_url}\"\n",
            d = d.display()
        )
    };
    let https_url = authority("https://aca.org-a.example:8443");
    let http_url = authority("http://aca.org-a.example:8443");
    let tls = https(d);
    for (text, refused) in [
        (
            format!("{b}{https_url}"),
            Some(Insecure::AuthorityWithoutTls),
        ),
        (
            format!("{b}{tls}{http_url}"),
            Some(Insecure::AuthorityPlaintextUrl),
        ),
        (format!("{b}{tls}{https_url}"), None),
    ] {
        let p = write(d, &text);
        match (load(&p, &[]), refused) {
            (Ok(_), None) => {}
            (Err(ConfigError::Insecure { what, .. }), Some(w)) => assert_eq!(what, w),
            (other, _) => panic!("{text}: {other:?}"),
        }
        // accord dev's domain lives on this machine: the flag it sets lets it through
        assert!(load_for(&p, &[], Profile::Dev).is_ok());
    }
}
