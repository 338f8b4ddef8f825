//! RFC 7512 PKCS#11 URIs: which token and key, which module, where the PIN comes from. Only the
//! attributes Accord understands are accepted; anything else would widen which key matches.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use cryptoki::types::AuthPin;

use super::{DEFAULT_MODULE, MAX_URI_LEN, MODULE_ENV};
use crate::signer::SignerError;

const MAX_PIN_FILE_LEN: u64 = 1024;

/// Why a PKCS#11 URI was refused. No variant carries a PIN.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    #[error("PKCS#11 URI of {0} bytes (at most {MAX_URI_LEN})")]
    TooLong(usize),
    #[error("not a PKCS#11 URI (RFC 7512): it must start with `pkcs11:`")]
    NotPkcs11,
    #[error("PKCS#11 URI has a part that is not `name=value`")]
    NotAttribute,
    #[error(
        "PKCS#11 URI attribute `{0}` is not supported (path: token, object, id, type; \
         query: module-path, pin-source, pin-value)"
    )]
    UnknownAttribute(String),
    #[error("PKCS#11 URI attribute `{0}` appears twice")]
    Duplicate(String),
    #[error(
        "PKCS#11 URI attribute `{0}` is malformed (percent-encoding, UTF-8, empty, or too long)"
    )]
    Malformed(String),
    #[error("PKCS#11 URI names a `type={0}` object: only a private key signs (`type=private`)")]
    NotPrivate(String),
    #[error("PKCS#11 URI has no `token=` label")]
    MissingToken,
    #[error("PKCS#11 URI names no key: give `object=` (its label) and/or `id=`")]
    MissingObject,
    #[error("PKCS#11 URI `pin-source` must be a `file:` path")]
    PinSource,
    #[error("PKCS#11 URI gives no PIN: add `pin-source=file:/path/to/pin`")]
    MissingPin,
    #[error("PKCS#11 URI gives both `pin-source` and `pin-value`")]
    TwoPins,
    #[error("no PKCS#11 module: give `module-path=`, set {MODULE_ENV}, or install SoftHSM2")]
    NoModule,
}

impl From<UriError> for SignerError {
    fn from(e: UriError) -> Self {
        SignerError::Pkcs11(e.to_string())
    }
}

/// A parsed RFC 7512 URI naming a private key. `Debug` and `Display` never show the PIN.
#[derive(Clone)]
pub struct Pkcs11Uri {
    pub(super) token: String,
    pub(super) object: Option<String>,
    pub(super) id: Option<Vec<u8>>,
    pub(super) module: PathBuf,
    pub(super) pin: PinSource,
}

#[derive(Clone)]
pub(super) enum PinSource {
    File(PathBuf),
    Value(AuthPin),
}

impl Pkcs11Uri {
    /// Parses `uri`, taking the default module from the process environment ([`MODULE_ENV`]).
    pub fn parse(uri: &str) -> Result<Self, SignerError> {
        Ok(Self::parse_with_env(uri, |k| std::env::var(k).ok())?)
    }

    /// Parses `uri` with `env` as the environment.
    ///
    /// Path attributes: `token` (required), `object` (label) and/or `id`, `type=private`.
    /// Query attributes: `module-path`, `pin-source=file:PATH`, and `pin-value`, which works but
    /// is discouraged: it puts the PIN itself into the configuration. Anything else is refused,
    /// since an ignored attribute would widen which key matches.
    pub fn parse_with_env(
        uri: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, UriError> {
        if uri.len() > MAX_URI_LEN {
            return Err(UriError::TooLong(uri.len()));
        }
        let rest = match uri.get(..7) {
            Some(scheme) if scheme.eq_ignore_ascii_case("pkcs11:") => &uri[7..],
            _ => return Err(UriError::NotPkcs11),
        };
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let path_parts = path
            .split(';')
            .filter(|_| !path.is_empty())
            .map(|p| (false, p));
        let query_parts = query
            .split('&')
            .filter(|_| !query.is_empty())
            .map(|p| (true, p));

        let mut seen = Vec::new();
        let (mut token, mut object, mut id, mut module) = (None, None, None, None);
        let (mut pin_file, mut pin_value) = (None, None);
        for (in_query, part) in path_parts.chain(query_parts) {
            let (name, raw) = part.split_once('=').ok_or(UriError::NotAttribute)?;
            if seen.contains(&name) {
                return Err(UriError::Duplicate(shorten(name)));
            }
            seen.push(name);
            let text = || utf8(name, raw);
            match (in_query, name) {
                (false, "token") => token = Some(text()?),
                (false, "object") => object = Some(text()?),
                (false, "id") => id = Some(decode(name, raw)?),
                (false, "type") => {
                    let t = text()?;
                    if t != "private" {
                        return Err(UriError::NotPrivate(shorten(&t)));
                    }
                }
                (true, "module-path") => module = Some(PathBuf::from(text()?)),
                (true, "pin-source") => pin_file = Some(pin_source_path(raw)?),
                (true, "pin-value") => pin_value = Some(AuthPin::from(text()?)),
                _ => return Err(UriError::UnknownAttribute(shorten(name))),
            }
        }

        let token = token.ok_or(UriError::MissingToken)?;
        if token.len() > 32 {
            return Err(UriError::Malformed("token".into()));
        }
        if object.is_none() && id.is_none() {
            return Err(UriError::MissingObject);
        }
        let pin = match (pin_file, pin_value) {
            (Some(path), None) => PinSource::File(path),
            (None, Some(value)) => PinSource::Value(value),
            (Some(_), Some(_)) => return Err(UriError::TwoPins),
            (None, None) => return Err(UriError::MissingPin),
        };
        let module = module
            .or_else(|| env(MODULE_ENV).filter(|m| !m.is_empty()).map(PathBuf::from))
            .or_else(|| Some(PathBuf::from(DEFAULT_MODULE)).filter(|p| p.exists()))
            .ok_or(UriError::NoModule)?;
        Ok(Self {
            token,
            object,
            id,
            module,
            pin,
        })
    }

    /// The token's label.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The key's label (`CKA_LABEL`), if given.
    pub fn object(&self) -> Option<&str> {
        self.object.as_deref()
    }

    /// The key's `CKA_ID`, if given.
    pub fn id(&self) -> Option<&[u8]> {
        self.id.as_deref()
    }

    /// The PKCS#11 module (shared library) to load.
    pub fn module_path(&self) -> &Path {
        &self.module
    }

    /// The file the PIN is read from (`pin-source`), if it comes from one.
    pub fn pin_file(&self) -> Option<&Path> {
        match &self.pin {
            PinSource::File(p) => Some(p),
            PinSource::Value(_) => None,
        }
    }

    /// `pkcs11:token=…;object=…` (or `id=…`): which key, without module or PIN.
    pub(super) fn key_name(&self) -> String {
        let mut s = format!(
            "pkcs11:token={}",
            pct_encode(self.token.as_bytes(), unreserved)
        );
        if let Some(o) = &self.object {
            s.push_str(&format!(";object={}", pct_encode(o.as_bytes(), unreserved)));
        } else if let Some(id) = &self.id {
            s.push_str(&format!(";id={}", pct_encode(id, |_| false)));
        }
        s
    }

    /// The PIN, read from its file when it comes from one.
    pub(super) fn read_pin(&self) -> Result<AuthPin, SignerError> {
        match &self.pin {
            PinSource::Value(pin) => Ok(pin.clone()),
            PinSource::File(path) => read_pin_file(path).map(AuthPin::from),
        }
    }
}

/// A PIN file's content, one trailing newline trimmed.
pub(super) fn read_pin_file(path: &Path) -> Result<String, SignerError> {
    let fail = |what: &str| SignerError::Pkcs11(format!("PIN file {}: {what}", path.display()));
    let file = std::fs::File::open(path).map_err(|e| fail(&e.to_string()))?;
    let mut bytes = Vec::new();
    file.take(MAX_PIN_FILE_LEN + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(&e.to_string()))?;
    if bytes.len() as u64 > MAX_PIN_FILE_LEN {
        return Err(fail("longer than a PIN"));
    }
    let mut pin = String::from_utf8(bytes).map_err(|_| fail("not UTF-8"))?;
    if pin.ends_with('\n') {
        pin.pop();
        if pin.ends_with('\r') {
            pin.pop();
        }
    }
    if pin.is_empty() {
        return Err(fail("empty"));
    }
    Ok(pin)
}

impl fmt::Debug for Pkcs11Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pin = match &self.pin {
            PinSource::File(p) => format!("file:{}", p.display()),
            PinSource::Value(_) => "pin-value (redacted)".to_owned(),
        };
        f.debug_struct("Pkcs11Uri")
            .field("key", &self.key_name())
            .field(
                "id",
                &self.id.as_deref().map(|id| pct_encode(id, |_| false)),
            )
            .field("module", &self.module)
            .field("pin", &pin)
            .finish()
    }
}

/// The key's path attributes and the module, never the PIN.
impl fmt::Display for Pkcs11Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pkcs11:token={}",
            pct_encode(self.token.as_bytes(), unreserved)
        )?;
        if let Some(o) = &self.object {
            write!(f, ";object={}", pct_encode(o.as_bytes(), unreserved))?;
        }
        if let Some(id) = &self.id {
            write!(f, ";id={}", pct_encode(id, |_| false))?;
        }
        let module = self.module.to_string_lossy();
        write!(
            f,
            ";type=private?module-path={}",
            pct_encode(module.as_bytes(), |b| unreserved(b) || b == b'/')
        )
    }
}

/// `file:PATH`, `file:///PATH` or `file://localhost/PATH` to PATH.
fn pin_source_path(raw: &str) -> Result<PathBuf, UriError> {
    let value = utf8("pin-source", raw)?;
    let rest = match value.get(..5) {
        Some(scheme) if scheme.eq_ignore_ascii_case("file:") => &value[5..],
        _ => return Err(UriError::PinSource),
    };
    let path = match rest.strip_prefix("//") {
        Some(authority_path) if authority_path.starts_with('/') => authority_path,
        Some(authority_path) => authority_path
            .strip_prefix("localhost")
            .filter(|p| p.starts_with('/'))
            .ok_or(UriError::PinSource)?,
        None => rest,
    };
    if path.is_empty() {
        return Err(UriError::PinSource);
    }
    Ok(PathBuf::from(path))
}

fn decode(name: &str, raw: &str) -> Result<Vec<u8>, UriError> {
    let malformed = || UriError::Malformed(shorten(name));
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = raw.get(i + 1..i + 3).ok_or_else(malformed)?;
            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(malformed());
            }
            out.push(u8::from_str_radix(hex, 16).map_err(|_| malformed())?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    if out.is_empty() {
        return Err(malformed());
    }
    Ok(out)
}

pub(super) fn utf8(name: &str, raw: &str) -> Result<String, UriError> {
    String::from_utf8(decode(name, raw)?).map_err(|_| UriError::Malformed(shorten(name)))
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~".contains(&b)
}

/// Percent-encodes every byte but those `keep` accepts.
fn pct_encode(bytes: &[u8], keep: impl Fn(u8) -> bool) -> String {
    let mut s = String::with_capacity(bytes.len());
    for &b in bytes {
        if keep(b) {
            s.push(char::from(b));
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

/// An attribute name or value as an error shows it: short, whatever was passed.
fn shorten(s: &str) -> String {
    s.chars().take(40).collect()
}
