//! `accord dev`: a whole domain on one machine. The first start creates the domain in the data
//! folder (keys, NATS identities, a development PKI, the nats-server config); every start
//! launches that nats-server and then runs the same services `accord serve` runs, with the
//! config file written next to them. A second start on the same folder is the same domain.
//!
//! ```text
//! <data>/dev.json              domain and ports (chosen at the first start)
//! <data>/accord.toml           the serve-compatible config of this domain
//! <data>/keys/*.pk8            event-signing and audit keys (0600)
//! <data>/nats/*.nk             nkey seeds of the NATS identities (0600); callout.nk is the
//!                              account key that signs the auth callout's answers,
//!                              callout-service.nk the user the callout service connects as
//! <data>/nats/nats.conf        generated on every start; nats.pid, nats.log, js/ (the store)
//! <data>/tls/                  development CA and server certificate
//! <data>/http/admin.token      bearer token of the admin endpoints (0600)
//! <data>/authority/            the ACA: agent CA certificate (ca.pem) and, in software, its key
//!                              and the token-signing key (ca.pk8, token.pk8, 0600); with
//!                              --hsm both keys sit in a SoftHSM2 token and only its PINs are
//!                              here (hsm.pin, hsm-so.pin, 0600)
//! ```

use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use accord_events::{DomainId, Ed25519Key, TrustDomain};
use anyhow::{Context, bail};
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::natsconf::{self, Identities, ServerConfig, TlsFiles};
use crate::pki;

/// What the first start decided, kept in `dev.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DevState {
    pub domain: DomainId,
    pub trust_domain: TrustDomain,
    pub nats_port: u16,
    pub monitor_port: u16,
    pub http_port: u16,
    /// The registry's listener (added after the first release of dev.json: 0 until a start
    /// picks one).
    #[serde(default)]
    pub registry_port: u16,
    /// The ACA's keys are in a SoftHSM2 token (`--hsm` at the first start).
    #[serde(default)]
    pub hsm: bool,
}

/// Paths inside a dev data folder.
#[derive(Debug, Clone)]
pub struct DevPaths {
    pub root: PathBuf,
}

impl DevPaths {
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }
    pub fn state(&self) -> PathBuf {
        self.root.join("dev.json")
    }
    /// The domain's `dev.json`, for commands pointed at this folder.
    pub fn read_state(&self) -> anyhow::Result<DevState> {
        let bytes = std::fs::read(self.state())
            .with_context(|| format!("{} is not an accord dev folder", self.root.display()))?;
        serde_json::from_slice(&bytes)
            .with_context(|| format!("reading {}", self.state().display()))
    }
    pub fn config(&self) -> PathBuf {
        self.root.join("accord.toml")
    }
    pub fn event_key(&self) -> PathBuf {
        self.root.join("keys/event-signing.pk8")
    }
    pub fn audit_key(&self) -> PathBuf {
        self.root.join("keys/audit.pk8")
    }
    pub fn nkey(&self, who: &str) -> PathBuf {
        self.root.join(format!("nats/{who}.nk"))
    }
    /// The account seed that signs the auth callout's answers (`auth_callout.issuer`).
    pub fn callout_issuer(&self) -> PathBuf {
        self.nkey("callout")
    }
    /// The user seed of the auth callout service.
    pub fn callout_service(&self) -> PathBuf {
        self.nkey("callout-service")
    }
    pub fn nats_conf(&self) -> PathBuf {
        self.root.join("nats/nats.conf")
    }
    pub fn nats_pid(&self) -> PathBuf {
        self.root.join("nats/nats.pid")
    }
    pub fn nats_log(&self) -> PathBuf {
        self.root.join("nats/nats.log")
    }
    pub fn js_store(&self) -> PathBuf {
        self.root.join("nats/js")
    }
    pub fn ca_cert(&self) -> PathBuf {
        self.root.join("tls/ca.pem")
    }
    pub fn ca_key(&self) -> PathBuf {
        self.root.join("tls/ca.key")
    }
    pub fn server_cert(&self) -> PathBuf {
        self.root.join("tls/server.pem")
    }
    pub fn server_key(&self) -> PathBuf {
        self.root.join("tls/server.key")
    }
    pub fn authority(&self) -> PathBuf {
        self.root.join("authority")
    }
    pub fn agent_ca_cert(&self) -> PathBuf {
        self.authority().join("ca.pem")
    }
    pub fn agent_ca_key(&self) -> PathBuf {
        self.authority().join("ca.pk8")
    }
    pub fn token_key(&self) -> PathBuf {
        self.authority().join("token.pk8")
    }
    pub fn hsm_pin(&self) -> PathBuf {
        self.authority().join("hsm.pin")
    }
    /// The SoftHSM2 token of an `--hsm` domain.
    pub fn hsm_token(state: &DevState) -> String {
        format!("accord-{}", state.domain)
    }
    /// The PKCS#11 URI of key `object` of an `--hsm` domain.
    pub fn hsm_uri(&self, state: &DevState, object: &str) -> String {
        format!(
            "pkcs11:token={};object={object}?pin-source=file:{}",
            Self::hsm_token(state),
            self.hsm_pin().display()
        )
    }
    pub fn admin_token(&self) -> PathBuf {
        self.root.join("http/admin.token")
    }
}

/// Writes a file only its owner can read, whatever the mode of a file already there.
pub fn write_secret(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    // the mode applies only when the file is created: an existing one is made private
    // (fchmod) before it is emptied and holds the secret
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("making {} private", path.display()))?;
    f.set_len(0)?;
    f.write_all(bytes)?;
    Ok(())
}

/// Ports for a new dev domain, each free when picked and distinct from the others (each
/// picked port stays bound until all are picked). They are drawn from 20000–31999, below the
/// kernel's ephemeral range (32768–60999 by default): between the pick and the moment the
/// domain's servers bind them, neither an outgoing connection's local port nor another
/// process's bind to port 0 can take them. A port taken from the ephemeral range was once
/// taken meanwhile ("Address already in use" at start).
#[derive(Default)]
struct Ports(Vec<std::net::TcpListener>);

impl Ports {
    fn pick(&mut self) -> anyhow::Result<u16> {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        let start = h.finish();
        for i in 0..256u64 {
            let port = 20_000 + ((start.wrapping_add(i * 7_919)) % 12_000) as u16;
            if let Ok(l) = std::net::TcpListener::bind(("127.0.0.1", port)) {
                self.0.push(l);
                return Ok(port);
            }
        }
        // a crowded range: any free port
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = l.local_addr()?.port();
        self.0.push(l);
        Ok(port)
    }
}

/// Options of `accord dev`.
#[derive(Debug, Clone)]
pub struct DevOptions {
    pub data_dir: PathBuf,
    pub domain: DomainId,
    pub trust_domain: TrustDomain,
    pub database_url: Option<String>,
    /// The PostgreSQL server's CA: TLS, verified. Without it, plaintext to a local host.
    pub database_ca: Option<PathBuf>,
    pub nats_port: Option<u16>,
    pub http_port: Option<u16>,
    /// Keep the ACA's keys in a SoftHSM2 token (decided at the first start).
    pub hsm: bool,
}

/// Held while an `accord dev` runs on a folder: a second one on the same folder is refused.
#[derive(Debug)]
pub struct FolderLock {
    _file: std::fs::File,
}

/// Takes the folder's lock, or says who holds it.
pub fn lock(paths: &DevPaths) -> anyhow::Result<FolderLock> {
    let path = paths.root.join("accord.lock");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("{}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {
            file.set_len(0)?;
            writeln!(file, "{}", std::process::id())?;
            Ok(FolderLock { _file: file })
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            bail!(
                "another accord dev (pid {}) is running on {}",
                holder.trim(),
                paths.root.display()
            )
        }
        Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
    }
}

/// Creates the domain's files on the first start; reads them afterwards. Takes the folder's
/// lock first.
pub fn prepare(opts: &DevOptions) -> anyhow::Result<(DevPaths, DevState, FolderLock)> {
    std::fs::create_dir_all(&opts.data_dir)
        .with_context(|| format!("creating {}", opts.data_dir.display()))?;
    let root = opts
        .data_dir
        .canonicalize()
        .with_context(|| format!("{}", opts.data_dir.display()))?;
    let paths = DevPaths::new(&root);
    let folder_lock = lock(&paths)?;
    let state = if paths.state().exists() {
        let mut state: DevState = serde_json::from_slice(&std::fs::read(paths.state())?)
            .with_context(|| format!("reading {}", paths.state().display()))?;
        if state.registry_port == 0 {
            // a folder from before the registry: it gets its port now, and keeps it
            state.registry_port = Ports::default().pick()?;
            std::fs::write(paths.state(), serde_json::to_vec_pretty(&state)?)?;
        }
        if state.domain != opts.domain && opts.domain.as_str() != "dev" {
            bail!(
                "{} holds domain {}, not {}",
                paths.root.display(),
                state.domain,
                opts.domain
            );
        }
        state
    } else {
        let mut ports = Ports::default();
        let state = DevState {
            domain: opts.domain.clone(),
            trust_domain: opts.trust_domain.clone(),
            nats_port: opts.nats_port.map_or_else(|| ports.pick(), Ok)?,
            monitor_port: ports.pick()?,
            http_port: opts.http_port.map_or_else(|| ports.pick(), Ok)?,
            registry_port: ports.pick()?,
            hsm: opts.hsm,
        };
        drop(ports);
        init(&paths, &state)?;
        std::fs::write(paths.state(), serde_json::to_vec_pretty(&state)?)?;
        state
    };
    if !paths.agent_ca_cert().exists() {
        init_authority(&paths, &state)?;
    }
    if !paths.callout_issuer().exists() {
        init_callout(&paths)?;
    }
    write_nats_conf(&paths, &state)?;
    write_config(
        &paths,
        &state,
        opts.database_url.as_deref(),
        opts.database_ca.as_deref(),
    )?;
    Ok((paths, state, folder_lock))
}

fn init(paths: &DevPaths, state: &DevState) -> anyhow::Result<()> {
    let (_, event_der) = Ed25519Key::generate()?;
    write_secret(&paths.event_key(), &event_der)?;
    let (_, audit_der) = Ed25519Key::generate()?;
    write_secret(&paths.audit_key(), &audit_der)?;
    for who in ["services", "admin", "auditor", "system"] {
        let kp = nkeys::KeyPair::new_user();
        let seed = kp.seed().map_err(|e| anyhow::anyhow!("nkey seed: {e}"))?;
        write_secret(&paths.nkey(who), seed.as_bytes())?;
    }
    let p = pki::generate(state.domain.as_str())?;
    std::fs::create_dir_all(paths.root.join("tls"))?;
    std::fs::write(paths.ca_cert(), &p.ca_cert)?;
    write_secret(&paths.ca_key(), p.ca_key.as_bytes())?;
    std::fs::write(paths.server_cert(), &p.server_cert)?;
    write_secret(&paths.server_key(), p.server_key.as_bytes())?;
    let mut token = [0u8; 32];
    aws_lc_rs::rand::fill(&mut token).map_err(|_| anyhow::anyhow!("no randomness"))?;
    write_secret(
        &paths.admin_token(),
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(token)
            .as_bytes(),
    )?;
    Ok(())
}

/// The auth callout's keys: the account key that signs its answers, and its service user.
fn init_callout(paths: &DevPaths) -> anyhow::Result<()> {
    let service = nkeys::KeyPair::new_user()
        .seed()
        .map_err(|e| anyhow::anyhow!("nkey seed: {e}"))?;
    write_secret(&paths.callout_service(), service.as_bytes())?;
    let issuer = nkeys::KeyPair::new_account()
        .seed()
        .map_err(|e| anyhow::anyhow!("nkey seed: {e}"))?;
    write_secret(&paths.callout_issuer(), issuer.as_bytes())?;
    Ok(())
}

/// The ACA's keys (in software, or in a new SoftHSM2 token) and its agent CA certificate.
fn init_authority(paths: &DevPaths, state: &DevState) -> anyhow::Result<()> {
    use accord_authority::signer::{DevFileSigner, Signer};
    std::fs::create_dir_all(paths.authority())?;
    let ca_signer: std::sync::Arc<dyn Signer> = if state.hsm {
        let random = || -> anyhow::Result<String> {
            let mut b = [0u8; 16];
            aws_lc_rs::rand::fill(&mut b).map_err(|_| anyhow::anyhow!("no randomness"))?;
            Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
        };
        let (pin, so_pin) = (random()?, random()?);
        write_secret(&paths.hsm_pin(), pin.as_bytes())?;
        write_secret(&paths.authority().join("hsm-so.pin"), so_pin.as_bytes())?;
        let module = accord_authority::pkcs11::Pkcs11Uri::parse(&paths.hsm_uri(state, "ca"))?
            .module_path()
            .to_path_buf();
        accord_authority::pkcs11::init_token(&module, &DevPaths::hsm_token(state), &so_pin, &pin)
            .context(
            "creating the SoftHSM2 token (is softhsm2 installed? scripts/setup installs it)",
        )?;
        accord_authority::pkcs11::Pkcs11Signer::generate_p256(&paths.hsm_uri(state, "token"))?;
        std::sync::Arc::new(accord_authority::pkcs11::Pkcs11Signer::generate_p256(
            &paths.hsm_uri(state, "ca"),
        )?)
    } else {
        let (ca, ca_der) = DevFileSigner::generate_p256()?;
        write_secret(&paths.agent_ca_key(), &ca_der)?;
        let (_, token_der) = DevFileSigner::generate_p256()?;
        write_secret(&paths.token_key(), &token_der)?;
        std::sync::Arc::new(ca)
    };
    let ca = accord_authority::ca::Ca::generate(
        ca_signer,
        &state.trust_domain,
        time::Duration::days(365),
    )?;
    std::fs::write(paths.agent_ca_cert(), ca.chain_pem())?;
    Ok(())
}

/// The public nkey of a seed file.
pub fn nkey_public(path: &Path) -> anyhow::Result<String> {
    let seed = std::fs::read_to_string(path)?;
    let kp = nkeys::KeyPair::from_seed(seed.trim())
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(kp.public_key())
}

fn write_nats_conf(paths: &DevPaths, state: &DevState) -> anyhow::Result<()> {
    let conf = ServerConfig {
        server_name: format!("accord-{}", state.domain),
        listen: format!("127.0.0.1:{}", state.nats_port),
        monitor: format!("127.0.0.1:{}", state.monitor_port),
        store_dir: paths.js_store(),
        pid_file: Some(paths.nats_pid()),
        domain: state.domain.clone(),
        stream: accord_store::EVENTS_STREAM.to_owned(),
        tls: Some(TlsFiles {
            cert: paths.server_cert(),
            key: paths.server_key(),
        }),
        identities: Identities {
            services: nkey_public(&paths.nkey("services"))?,
            admin: nkey_public(&paths.nkey("admin"))?,
            auditor: nkey_public(&paths.nkey("auditor"))?,
            system: nkey_public(&paths.nkey("system"))?,
            callout: nkey_public(&paths.callout_service())?,
            callout_issuer: nkey_public(&paths.callout_issuer())?,
        },
        cluster: None,
    };
    std::fs::write(paths.nats_conf(), natsconf::render(&conf))?;
    Ok(())
}

fn write_config(
    paths: &DevPaths,
    state: &DevState,
    database_url: Option<&str>,
    database_ca: Option<&Path>,
) -> anyhow::Result<()> {
    let q = |p: PathBuf| format!("{:?}", p.display().to_string());
    let f = |p: PathBuf| format!("{:?}", format!("file:{}", p.display()));
    let mut toml = format!(
        "# accord dev: the configuration of this development domain (rewritten on every start)\n\
         version = 1\n\n\
         [domain]\nid = {:?}\ntrust_domain = {:?}\n\n\
         [keys]\nevent_signing = {}\naudit = {}\n\n\
         [nats]\nurl = {:?}\nca = {}\ncredentials = {}\njs_domain = {:?}\nreplicas = 1\n\n\
         [http]\nlisten = {:?}\ntls_cert = {}\ntls_key = {}\nadmin_token = {}\n",
        state.domain.as_str(),
        state.trust_domain.as_str(),
        f(paths.event_key()),
        f(paths.audit_key()),
        format!("tls://127.0.0.1:{}", state.nats_port),
        q(paths.ca_cert()),
        f(paths.nkey("services")),
        state.domain.as_str(),
        format!("127.0.0.1:{}", state.http_port),
        q(paths.server_cert()),
        f(paths.server_key()),
        f(paths.admin_token()),
    );
    let (ca_key, token_key) = if state.hsm {
        (
            format!("{:?}", paths.hsm_uri(state, "ca")),
            format!("{:?}", paths.hsm_uri(state, "token")),
        )
    } else {
        (f(paths.agent_ca_key()), f(paths.token_key()))
    };
    toml.push_str(&format!(
        "\n[authority]\nca_key = {ca_key}\nca_certificate = {}\ntoken_key = {token_key}\n\
         public_url = {:?}\nnats_callout_issuer = {}\nnats_callout_credentials = {}\n\
         nats_system_credentials = {}\n",
        q(paths.agent_ca_cert()),
        format!("https://127.0.0.1:{}", state.http_port),
        f(paths.callout_issuer()),
        f(paths.callout_service()),
        f(paths.nkey("system")),
    ));
    toml.push_str(&format!(
        "\n[registry]\nlisten = {:?}\npublic_url = {:?}\n",
        format!("127.0.0.1:{}", state.registry_port),
        format!("https://127.0.0.1:{}", state.registry_port),
    ));
    if database_url.is_some() {
        // with PostgreSQL, discovery reads the projection's rows there, over its indexes
        toml.push_str("directory = \"postgres\"\n");
    }
    if let Some(url) = database_url {
        // a password given on the command line goes to a file; the config only refers to it
        let (url, password) = split_password(url);
        toml.push_str(&format!("\n[postgres]\nurl = {url:?}\n"));
        match database_ca {
            Some(ca) => {
                let ca = ca
                    .canonicalize()
                    .with_context(|| format!("--database-ca {}", ca.display()))?;
                toml.push_str(&format!("ca = {}\n", q(ca)));
            }
            // no CA: plaintext, which the config allows only to this machine (ADR 0012)
            None => toml.push_str("dangerous_plaintext_local = true\n"),
        }
        if let Some(pw) = password {
            let path = paths.root.join("postgres.password");
            write_secret(&path, pw.as_bytes())?;
            toml.push_str(&format!(
                "password = {:?}\n",
                format!("file:{}", path.display())
            ));
        }
    }
    std::fs::write(paths.config(), toml)?;
    Ok(())
}

/// `postgres://user:pw@host/db` → (`postgres://user@host/db`, `pw` percent-decoded).
fn split_password(url: &str) -> (String, Option<String>) {
    let Some((scheme, rest)) = url.split_once("://") else {
        return (url.to_owned(), None);
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return (url.to_owned(), None);
    };
    let Some((user, pw)) = userinfo.split_once(':') else {
        return (url.to_owned(), None);
    };
    let mut decoded = Vec::with_capacity(pw.len());
    let bytes = pw.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&pw[i + 1..i + 3], 16)
        {
            decoded.push(b);
            i += 3;
            continue;
        }
        decoded.push(bytes[i]);
        i += 1;
    }
    (
        format!("{scheme}://{user}@{host}"),
        Some(String::from_utf8_lossy(&decoded).into_owned()),
    )
}

/// The dev domain's nats-server, a child process; stopped on drop.
#[derive(Debug)]
pub struct DevNats {
    child: Option<Child>,
}

impl DevNats {
    /// Stops a server a previous `accord dev` left running (it was killed), then starts one.
    pub fn start(bin: &Path, paths: &DevPaths, state: &DevState) -> anyhow::Result<Self> {
        stop_orphan(paths);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(paths.nats_log())?;
        let child = Command::new(bin)
            .arg("-c")
            .arg(paths.nats_conf())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut me = Self { child: Some(child) };
        me.wait_ready(paths, state, Duration::from_secs(30))?;
        Ok(me)
    }

    fn wait_ready(
        &mut self,
        paths: &DevPaths,
        state: &DevState,
        within: Duration,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(c) = self.child.as_mut()
                && let Some(status) = c.try_wait()?
            {
                let log = std::fs::read_to_string(paths.nats_log()).unwrap_or_default();
                let last = log
                    .lines()
                    .rev()
                    .find(|l| l.contains("[FTL]") || l.contains("[ERR]"))
                    .unwrap_or("");
                bail!("nats-server exited ({status}): {last}");
            }
            if healthz(state.monitor_port) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "nats-server not ready after {within:?}; see {}",
                    paths.nats_log().display()
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Asks the server to shut down (SIGTERM) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for DevNats {
    fn drop(&mut self) {
        self.stop();
    }
}

fn healthz(port: u16) -> bool {
    use std::io::Read;
    let Ok(mut s) = std::net::TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    ) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 32];
    matches!(s.read(&mut buf), Ok(n) if std::str::from_utf8(&buf[..n]).is_ok_and(|h| h.contains(" 200 ")))
}

/// A nats-server whose pid file is ours and whose command line names our config is a server
/// a killed `accord dev` left behind: stop it so this start can use the store.
fn stop_orphan(paths: &DevPaths) {
    let Ok(pid) = std::fs::read_to_string(paths.nats_pid()) else {
        return;
    };
    let pid = pid.trim();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    if !cmdline.contains("nats-server")
        || !cmdline.contains(&paths.nats_conf().display().to_string())
    {
        return;
    }
    tracing::warn!(
        pid,
        "stopping the nats-server a previous accord dev left running"
    );
    let _ = Command::new("kill").args(["-TERM", pid]).status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && Path::new(&format!("/proc/{pid}")).exists() {
        std::thread::sleep(Duration::from_millis(20));
    }
    if Path::new(&format!("/proc/{pid}")).exists() {
        let _ = Command::new("kill").args(["-KILL", pid]).status();
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_existing_secret_file_becomes_private_when_written() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("postgres.password");
        std::fs::write(&p, b"old").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_secret(&p, b"new secret").unwrap();
        let meta = std::fs::metadata(&p).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read(&p).unwrap(), b"new secret");
        // and a new one is private from the start
        let q = d.path().join("sub/admin.token");
        write_secret(&q, b"t").unwrap();
        assert_eq!(
            std::fs::metadata(&q).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn passwords_leave_the_url() {
        assert_eq!(
            split_password("postgres://accord:s%40cr%3At@db:5432/accord"),
            (
                "postgres://accord@db:5432/accord".to_owned(),
                Some("s@cr:t".to_owned())
            )
        );
        assert_eq!(
            split_password("postgres://accord@db/accord"),
            ("postgres://accord@db/accord".to_owned(), None)
        );
        let back =
            crate::runtime::with_password("postgres://accord@db:5432/accord", "s@cr:t").unwrap();
        assert_eq!(back, "postgres://accord:s%40cr%3At@db:5432/accord");
        assert!(crate::runtime::with_password("postgres://db/accord", "x").is_err());
    }
}
