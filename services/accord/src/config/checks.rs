//! The checks that keep a config from running a domain insecurely: the transports (verified
//! TLS to PostgreSQL, ADR 0012; an `https://` remote PDP; HTTPS in front of the ACA) and the
//! modes of the secret files it references.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use accord_store::projection::postgres::{PgConnectError, PgTls, check_url};

use super::{Config, ConfigError, Insecure, PolicyEngine, Profile, SecretRef};

pub(super) fn transport(c: &Config, profile: Profile, path: &Path) -> Result<(), ConfigError> {
    let insecure = |what| ConfigError::Insecure {
        path: path.to_owned(),
        what,
    };
    if let Some(pg) = &c.postgres {
        let refused = |source| ConfigError::Postgres {
            path: path.to_owned(),
            source,
        };
        check_url(&pg.url, pg.dangerous_plaintext_local).map_err(refused)?;
        match (&pg.ca, pg.dangerous_plaintext_local) {
            (Some(_), true) => {
                return Err(ConfigError::Invalid {
                    path: path.to_owned(),
                    message:
                        "postgres.ca and postgres.dangerous_plaintext_local exclude each other"
                            .into(),
                });
            }
            (None, false) => return Err(refused(PgConnectError::NoCa)),
            (Some(ca), false) => {
                let pem = std::fs::read(ca).map_err(|source| ConfigError::Read {
                    path: ca.clone(),
                    source,
                })?;
                PgTls::verify_full(&pem).map_err(refused)?;
            }
            (None, true) => {}
        }
    }
    if c.policy.engine != PolicyEngine::Embedded
        && let Some(url) = &c.policy.url
        && !has_scheme(url, "https://")
        && !(c.policy.dangerous_plaintext_http && has_scheme(url, "http://"))
    {
        return Err(insecure(Insecure::PlaintextPdp));
    }
    if let Some(a) = &c.authority
        && profile == Profile::Serve
    {
        if c.http.tls_cert.is_none() {
            return Err(insecure(Insecure::AuthorityWithoutTls));
        }
        if !has_scheme(&a.public_url, "https://") {
            return Err(insecure(Insecure::AuthorityPlaintextUrl));
        }
    }
    Ok(())
}

fn has_scheme(url: &str, scheme: &str) -> bool {
    url.len() > scheme.len()
        && url
            .get(..scheme.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(scheme))
}

/// Refuses a secret file that other users may read (or write): every `file:` reference of the
/// config, and the PIN files its `pkcs11:` references name. A file that does not exist is left
/// to the code that reads it.
pub(super) fn secret_files(c: &Config, path: &Path) -> Result<(), ConfigError> {
    for (key, file) in secret_refs(c) {
        let meta = match std::fs::metadata(&file) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => return Err(ConfigError::Read { path: file, source }),
        };
        if !private_mode(meta.mode(), meta.uid()) {
            return Err(ConfigError::SecretFileExposed {
                path: path.to_owned(),
                key: key.to_owned(),
                file,
                mode: meta.mode() & 0o7777,
            });
        }
    }
    Ok(())
}

/// Whether a file with `mode`, owned by `owner`, is private to the service: no access at all
/// for others, and none for the group either, except read when root owns the file (the
/// `root:accord 0640` of a host, the `0440` of a Kubernetes secret volume with `fsGroup`), the
/// rule PostgreSQL applies to its own key file.
pub fn private_mode(mode: u32, owner: u32) -> bool {
    let (group, others) = (mode & 0o070, mode & 0o007);
    others == 0 && (group == 0 || (owner == 0 && group == 0o040))
}

/// Every secret file the config names, with its key.
fn secret_refs(c: &Config) -> Vec<(&'static str, PathBuf)> {
    let mut refs: Vec<(&'static str, &SecretRef)> = vec![
        ("keys.event_signing", &c.keys.event_signing),
        ("keys.audit", &c.keys.audit),
        ("nats.credentials", &c.nats.credentials),
    ];
    let optional = [
        (
            "postgres.password",
            c.postgres.as_ref().and_then(|p| p.password.as_ref()),
        ),
        ("http.tls_key", c.http.tls_key.as_ref()),
        ("http.admin_token", c.http.admin_token.as_ref()),
        ("http.read_token", c.http.read_token.as_ref()),
    ];
    refs.extend(optional.into_iter().filter_map(|(k, r)| r.map(|r| (k, r))));
    if let Some(a) = &c.authority {
        refs.push(("authority.ca_key", &a.ca_key));
        refs.push(("authority.token_key", &a.token_key));
        for (k, r) in [
            ("authority.nats_callout_issuer", &a.nats_callout_issuer),
            (
                "authority.nats_callout_credentials",
                &a.nats_callout_credentials,
            ),
            (
                "authority.nats_system_credentials",
                &a.nats_system_credentials,
            ),
        ] {
            if let Some(r) = r {
                refs.push((k, r));
            }
        }
    }
    refs.into_iter()
        .filter_map(|(k, r)| secret_file(r).map(|f| (k, f)))
        .collect()
}

/// The file holding a secret: the file itself, or a PKCS#11 URI's PIN file.
fn secret_file(r: &SecretRef) -> Option<PathBuf> {
    match r {
        SecretRef::File(p) => Some(p.clone()),
        // the module does not matter here (only the PIN's file is wanted), and a URI that
        // does not parse is reported when the key is opened
        SecretRef::Pkcs11(uri) => accord_authority::pkcs11::Pkcs11Uri::parse_with_env(uri, |_| {
            Some(accord_authority::pkcs11::DEFAULT_MODULE.to_owned())
        })
        .ok()
        .and_then(|u| u.pin_file().map(Path::to_path_buf)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_that_keep_a_secret_private() {
        let (root, service) = (0, 1000);
        for (mode, owner) in [
            (0o600, service),
            (0o400, service),
            (0o100600, service),
            (0o600, root),
            (0o640, root),
            (0o440, root),
        ] {
            assert!(private_mode(mode, owner), "{mode:o} owned by {owner}");
        }
        for (mode, owner) in [
            (0o644, service),
            (0o644, root),
            (0o604, service),
            (0o640, service),
            (0o660, root),
            (0o620, root),
            (0o610, root),
            (0o602, root),
            (0o601, root),
            (0o100644, service),
        ] {
            assert!(!private_mode(mode, owner), "{mode:o} owned by {owner}");
        }
    }
}
