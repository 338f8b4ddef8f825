//! PKCS#11 key custody: a [`Signer`] whose private key never leaves its token (an HSM in
//! production, SoftHSM2 in tests and `accord dev --hsm`).
//!
//! The key is named by an RFC 7512 URI, for example
//! `pkcs11:token=accord;object=ca?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/secrets/pin`.
//! The module is loaded and `C_Initialize`d once per process ([`context`]); a signer keeps one
//! session open for its lifetime (login state belongs to the token and the application, and
//! ends when the application's last session on the token closes) plus a small pool of sessions
//! for signing, since a session serves one operation at a time.
//!
//! Because login is shared by every session of the process on a token, a second URI naming a
//! token that this process is already logged in to is not checked against its PIN: the token
//! answers `CKR_USER_ALREADY_LOGGED_IN`. All URIs come from the one configuration file.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, ED25519, UnparsedPublicKey};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;

use crate::signer::{Signer, SignerAlgorithm, SignerError};

mod uri;
pub use uri::{Pkcs11Uri, UriError};

/// The longest URI [`Pkcs11Uri::parse`] reads.
pub const MAX_URI_LEN: usize = 4096;
/// The environment variable naming the module when the URI has no `module-path`.
pub const MODULE_ENV: &str = "ACCORD_PKCS11_MODULE";
/// The module used when neither the URI nor [`MODULE_ENV`] names one, if it is installed.
pub const DEFAULT_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

const MAX_IDLE_SESSIONS: usize = 16;
/// DER OID 1.2.840.10045.3.1.7 (P-256) as `CKA_EC_PARAMS`.
const P256_PARAMS: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// DER OID 1.3.101.112 (Ed25519) as `CKA_EC_PARAMS`.
const ED25519_PARAMS: [u8; 5] = [0x06, 0x03, 0x2b, 0x65, 0x70];
/// `PrintableString "edwards25519"`, the other `CKA_EC_PARAMS` form PKCS#11 3.0 allows.
const ED25519_PARAMS_NAME: &[u8] = b"\x13\x0cedwards25519";

/// A signing key in a PKCS#11 token.
pub struct Pkcs11Signer {
    algorithm: SignerAlgorithm,
    public: Vec<u8>,
    key: ObjectHandle,
    ctx: Pkcs11,
    slot: Slot,
    pin: AuthPin,
    backend: String,
    /// Idle sessions, each serving one signature at a time.
    pool: Mutex<Vec<Session>>,
    /// Never used: while it is open, the token keeps this application logged in. Declared
    /// last so that it closes after the pool.
    _login: Mutex<Session>,
}

impl fmt::Debug for Pkcs11Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Signer")
            .field("backend", &self.backend)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl Pkcs11Signer {
    /// Opens the private key `uri` names (see [`Pkcs11Uri::parse`]), with its public key.
    pub fn open(uri: &str) -> Result<Self, SignerError> {
        Self::open_uri(&Pkcs11Uri::parse(uri)?)
    }

    /// Generates a P-256 key pair in the token under the URI's label and/or id (a random id
    /// when it has none), private key sensitive and not extractable, then opens it. Refuses
    /// when a key of that name exists.
    pub fn generate_p256(uri: &str) -> Result<Self, SignerError> {
        let uri = Pkcs11Uri::parse(uri)?;
        generate(&uri, SignerAlgorithm::EcdsaP256Sha256)?;
        Self::open_uri(&uri)
    }

    /// Opens the private key a parsed URI names. Refuses keys other than P-256 and Ed25519,
    /// and a public key object that does not verify the private key's signature.
    pub fn open_uri(uri: &Pkcs11Uri) -> Result<Self, SignerError> {
        let ctx = context(uri.module_path())?;
        let slot = find_token(&ctx, uri)?;
        let pin = uri.read_pin()?;
        let login = open_session(&ctx, slot, &pin, uri)?;
        let key = find_one(&login, uri, ObjectClass::PRIVATE_KEY)?;
        let public_key = find_one(&login, uri, ObjectClass::PUBLIC_KEY)?;
        let attrs = [
            AttributeType::KeyType,
            AttributeType::EcParams,
            AttributeType::EcPoint,
        ];
        let (mut key_type, mut params, mut point) = (None, Vec::new(), Vec::new());
        for a in login
            .get_attributes(public_key, &attrs)
            .map_err(pk(uri, "reading the public key"))?
        {
            match a {
                Attribute::KeyType(t) => key_type = Some(t),
                Attribute::EcParams(p) => params = p,
                Attribute::EcPoint(p) => point = p,
                _ => {}
            }
        }
        let algorithm = match key_type {
            Some(KeyType::EC) if params == P256_PARAMS => SignerAlgorithm::EcdsaP256Sha256,
            Some(KeyType::EC_EDWARDS)
                if params == ED25519_PARAMS || params == ED25519_PARAMS_NAME =>
            {
                SignerAlgorithm::Ed25519
            }
            Some(KeyType::EC) => {
                return Err(unsupported(uri, "an EC key on a curve other than P-256"));
            }
            Some(t) => return Err(unsupported(uri, &format!("a {t} key"))),
            None => return Err(unsupported(uri, "a public key without a key type")),
        };
        let public = unwrap_point(&point, algorithm).ok_or_else(|| {
            SignerError::Pkcs11(format!("{}: malformed CKA_EC_POINT", uri.key_name()))
        })?;
        check_custody(&login, key, uri);
        let signer = Self {
            algorithm,
            public,
            key,
            ctx,
            slot,
            pin,
            backend: uri.key_name(),
            pool: Mutex::new(Vec::new()),
            _login: Mutex::new(login),
        };
        signer.check_pair()?;
        Ok(signer)
    }

    /// Signs once and verifies under the public key: a public key object that does not belong
    /// to the private key would otherwise go into every certificate.
    fn check_pair(&self) -> Result<(), SignerError> {
        let msg = b"accord pkcs11 key pair check";
        let sig = self.sign_raw(msg)?;
        let alg: &dyn aws_lc_rs::signature::VerificationAlgorithm = match self.algorithm {
            SignerAlgorithm::EcdsaP256Sha256 => &ECDSA_P256_SHA256_FIXED,
            SignerAlgorithm::Ed25519 => &ED25519,
        };
        UnparsedPublicKey::new(alg, &self.public)
            .verify(msg, &sig)
            .map_err(|_| {
                SignerError::Pkcs11(format!(
                    "{}: the public key does not match the private key",
                    self.backend
                ))
            })
    }

    /// An idle session, or a new one (logged in) when none is idle.
    fn take_session(&self) -> Result<Session, SignerError> {
        let idle = self
            .pool
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        match idle {
            Some(s) => Ok(s),
            None => {
                let s = self
                    .ctx
                    .open_ro_session(self.slot)
                    .map_err(|e| self.sign_error(e))?;
                login(&s, &self.pin).map_err(|e| self.sign_error(e))?;
                Ok(s)
            }
        }
    }

    fn put_session(&self, session: Session) {
        let mut pool = self.pool.lock().unwrap_or_else(PoisonError::into_inner);
        if pool.len() < MAX_IDLE_SESSIONS {
            pool.push(session);
        }
    }

    fn sign_error(&self, e: CkError) -> SignerError {
        SignerError::Sign(format!("{}: {e}", self.backend))
    }
}

impl Signer for Pkcs11Signer {
    fn algorithm(&self) -> SignerAlgorithm {
        self.algorithm
    }

    fn public_key(&self) -> &[u8] {
        &self.public
    }

    fn sign_raw(&self, msg: &[u8]) -> Result<Vec<u8>, SignerError> {
        let digest;
        let (mechanism, data) = match self.algorithm {
            SignerAlgorithm::EcdsaP256Sha256 => {
                digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, msg);
                (Mechanism::Ecdsa, digest.as_ref())
            }
            SignerAlgorithm::Ed25519 => (
                Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure)),
                msg,
            ),
        };
        let session = self.take_session()?;
        let signed = match session.sign(&mechanism, self.key, data) {
            // the token logged this application out (another handle's C_Logout): once more
            Err(CkError::Pkcs11(RvError::UserNotLoggedIn, _)) => {
                login(&session, &self.pin).and_then(|()| session.sign(&mechanism, self.key, data))
            }
            other => other,
        };
        // a session that failed is closed rather than reused: its state is unknown
        let sig = signed.map_err(|e| self.sign_error(e))?;
        self.put_session(session);
        if sig.len() != 64 {
            return Err(SignerError::Sign(format!(
                "{}: a signature of {} bytes",
                self.backend,
                sig.len()
            )));
        }
        Ok(sig)
    }

    fn backend(&self) -> String {
        self.backend.clone()
    }
}

/// The module at `path`, loaded and initialized once per process: `C_Initialize` may only run
/// once, and every session and handle of the process shares it.
pub(crate) fn context(path: &Path) -> Result<Pkcs11, SignerError> {
    static CONTEXTS: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
    let fail = |what: String| SignerError::Pkcs11(format!("module {}: {what}", path.display()));
    let key = std::fs::canonicalize(path).map_err(|e| fail(e.to_string()))?;
    let mut contexts = CONTEXTS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(ctx) = contexts.get(&key) {
        return Ok(ctx.clone());
    }
    let ctx = Pkcs11::new(&key).map_err(|e| fail(e.to_string()))?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(fail(e.to_string())),
    }
    contexts.insert(key, ctx.clone());
    Ok(ctx)
}

/// Held while a token is created (or deleted), across threads and processes of this machine:
/// two initialisations must not pick the same free slot, and concurrent
/// `softhsm2-util --delete-token` runs leave empty token directories behind.
pub fn token_lock() -> Result<std::fs::File, SignerError> {
    let path = std::env::temp_dir().join("accord-softhsm-tokens.lock");
    // made by another user, it is still lockable read-only
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .or_else(|_| std::fs::File::open(&path))
        .map_err(|e| SignerError::Pkcs11(format!("{}: {e}", path.display())))?;
    file.lock()
        .map_err(|e| SignerError::Pkcs11(format!("{}: {e}", path.display())))?;
    Ok(file)
}

/// Initialises a new token labelled `label` in the module's first free slot (SoftHSM always
/// offers one), with `so_pin` and the user PIN `user_pin`. For `accord dev --hsm` and the
/// tests; a production HSM is set up with its own tools.
pub fn init_token(
    module: &Path,
    label: &str,
    so_pin: &str,
    user_pin: &str,
) -> Result<(), SignerError> {
    let ctx = context(module)?;
    let fail = |e: CkError| SignerError::Pkcs11(format!("initialising token {label:?}: {e}"));
    let _lock = token_lock()?;
    let slot = ctx
        .get_all_slots()
        .map_err(fail)?
        .into_iter()
        .find(|s| ctx.get_token_info(*s).is_ok_and(|t| !t.token_initialized()))
        .ok_or_else(|| SignerError::Pkcs11("no free slot to initialise a token in".into()))?;
    ctx.init_token(slot, &AuthPin::from(so_pin), label)
        .map_err(fail)?;
    let so = ctx.open_rw_session(slot).map_err(fail)?;
    so.login(UserType::So, Some(&AuthPin::from(so_pin)))
        .map_err(fail)?;
    so.init_pin(&AuthPin::from(user_pin)).map_err(fail)?;
    so.logout().map_err(fail)?;
    Ok(())
}

fn generate(uri: &Pkcs11Uri, algorithm: SignerAlgorithm) -> Result<(), SignerError> {
    let ctx = context(uri.module_path())?;
    let slot = find_token(&ctx, uri)?;
    let pin = uri.read_pin()?;
    let session = ctx
        .open_rw_session(slot)
        .map_err(pk(uri, "opening a session"))?;
    login(&session, &pin).map_err(pk(uri, "logging in"))?;
    for class in [ObjectClass::PRIVATE_KEY, ObjectClass::PUBLIC_KEY] {
        let found = session
            .find_objects(&template(uri, class))
            .map_err(pk(uri, "searching"))?;
        if !found.is_empty() {
            return Err(SignerError::Pkcs11(format!(
                "{}: a key of that name exists",
                uri.key_name()
            )));
        }
    }
    let id = match &uri.id {
        Some(id) => id.clone(),
        None => {
            let mut id = vec![0; 16];
            aws_lc_rs::rand::fill(&mut id).map_err(|e| SignerError::Pkcs11(e.to_string()))?;
            id
        }
    };
    let (mechanism, params) = match algorithm {
        SignerAlgorithm::EcdsaP256Sha256 => (Mechanism::EccKeyPairGen, P256_PARAMS.to_vec()),
        SignerAlgorithm::Ed25519 => (Mechanism::EccEdwardsKeyPairGen, ED25519_PARAMS.to_vec()),
    };
    let mut common = vec![Attribute::Token(true), Attribute::Id(id)];
    if let Some(label) = &uri.object {
        common.push(Attribute::Label(label.as_bytes().to_vec()));
    }
    let public = [
        common.clone(),
        vec![
            Attribute::Private(false),
            Attribute::Verify(true),
            Attribute::EcParams(params),
        ],
    ];
    let private = [
        common,
        vec![
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
        ],
    ];
    session
        .generate_key_pair(&mechanism, &public.concat(), &private.concat())
        .map_err(pk(uri, "generating the key pair"))?;
    Ok(())
}

/// The one initialized token labelled as the URI says.
fn find_token(ctx: &Pkcs11, uri: &Pkcs11Uri) -> Result<Slot, SignerError> {
    let slots = ctx
        .get_slots_with_token()
        .map_err(pk(uri, "listing slots"))?;
    let label = uri.token.trim_end_matches(' ');
    let matching: Vec<Slot> = slots
        .into_iter()
        .filter(|s| {
            ctx.get_token_info(*s)
                .is_ok_and(|t| t.token_initialized() && t.label() == label)
        })
        .collect();
    match matching[..] {
        [slot] => Ok(slot),
        [] => Err(SignerError::Pkcs11(format!(
            "{}: no token labelled {:?}",
            uri.key_name(),
            uri.token
        ))),
        _ => Err(SignerError::Pkcs11(format!(
            "{}: {} tokens share that label",
            uri.key_name(),
            matching.len()
        ))),
    }
}

fn open_session(
    ctx: &Pkcs11,
    slot: Slot,
    pin: &AuthPin,
    uri: &Pkcs11Uri,
) -> Result<Session, SignerError> {
    let session = ctx
        .open_ro_session(slot)
        .map_err(pk(uri, "opening a session"))?;
    login(&session, pin).map_err(pk(uri, "logging in"))?;
    Ok(session)
}

/// Logs the application in to the session's token; already being logged in is success.
fn login(session: &Session, pin: &AuthPin) -> Result<(), CkError> {
    match session.login(UserType::User, Some(pin)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(()),
        Err(e) => Err(e),
    }
}

fn template(uri: &Pkcs11Uri, class: ObjectClass) -> Vec<Attribute> {
    let mut t = vec![Attribute::Class(class)];
    if let Some(label) = &uri.object {
        t.push(Attribute::Label(label.as_bytes().to_vec()));
    }
    if let Some(id) = &uri.id {
        t.push(Attribute::Id(id.clone()));
    }
    t
}

/// The one object of `class` the URI names.
fn find_one(
    session: &Session,
    uri: &Pkcs11Uri,
    class: ObjectClass,
) -> Result<ObjectHandle, SignerError> {
    let found = session
        .find_objects(&template(uri, class))
        .map_err(pk(uri, "searching"))?;
    let what = if class == ObjectClass::PRIVATE_KEY {
        "private key"
    } else {
        "public key"
    };
    match found[..] {
        [one] => Ok(one),
        [] => Err(SignerError::Pkcs11(format!(
            "{}: no {what} with that label/id in the token",
            uri.key_name()
        ))),
        _ => Err(SignerError::Pkcs11(format!(
            "{}: {} {what}s match; give `id=` too",
            uri.key_name(),
            found.len()
        ))),
    }
}

/// Warns when the private key could leave the token.
fn check_custody(session: &Session, key: ObjectHandle, uri: &Pkcs11Uri) {
    let attrs =
        session.get_attributes(key, &[AttributeType::Sensitive, AttributeType::Extractable]);
    for a in attrs.unwrap_or_default() {
        if matches!(
            a,
            Attribute::Sensitive(false) | Attribute::Extractable(true)
        ) {
            let key = uri.key_name();
            tracing::warn!(%key, attribute = ?a, "the private key can leave its token");
        }
    }
}

/// The raw public key in a `CKA_EC_POINT`: a DER OCTET STRING around the point, or (as some
/// tokens give it) the bare point.
fn unwrap_point(value: &[u8], algorithm: SignerAlgorithm) -> Option<Vec<u8>> {
    let len = match algorithm {
        SignerAlgorithm::EcdsaP256Sha256 => 65,
        SignerAlgorithm::Ed25519 => 32,
    };
    let point = match value {
        [0x04, l, rest @ ..] if usize::from(*l) == len && rest.len() == len => rest,
        bare if bare.len() == len => bare,
        _ => return None,
    };
    if algorithm == SignerAlgorithm::EcdsaP256Sha256 && point[0] != 0x04 {
        return None;
    }
    Some(point.to_vec())
}

fn pk<'a>(uri: &'a Pkcs11Uri, doing: &'a str) -> impl Fn(CkError) -> SignerError + 'a {
    move |e| SignerError::Pkcs11(format!("{}: {doing}: {e}", uri.key_name()))
}

fn unsupported(uri: &Pkcs11Uri, what: &str) -> SignerError {
    SignerError::Unsupported(format!(
        "{}: {what} (P-256 and Ed25519 sign)",
        uri.key_name()
    ))
}

#[cfg(test)]
#[path = "pkcs11/tests.rs"]
mod tests;
