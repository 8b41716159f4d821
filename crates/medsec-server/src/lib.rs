//! The medsec server: EST enrolment (RFC 7030), the device API behind mutual TLS 1.3 with
//! X25519MLKEM768 key exchange, the operator API behind scoped, expiring tokens, a Cedar decision
//! on every request, and every decision in the tamper-evident audit log.
//!
//! [`Server::start`] opens the data directory (creating the fleet CA, server certificate and
//! audit key on first start), binds both ports and returns where they listen. The routers are
//! built by [`api::device_router`] and [`api::operator_router`]; the accept loop, handshake
//! timeouts and connection limits are in `serve`.
//!
//! Never: trusts an identity from a header or a body (devices are who their certificate says;
//! operators are who their token says), logs a token or key, or answers before the audit entry
//! for the decision is durable.

#![forbid(unsafe_code)]

pub mod access;
pub mod api;
pub mod audit_log;
pub mod authz;
pub mod baselines;
pub mod campaigns;
pub mod changes;
pub mod compliance;
pub mod config;
pub(crate) mod console;
pub mod defender_audit;
pub mod director;
pub mod export;
pub mod health;
mod incidents;
pub mod inventory;
pub mod metrics;
pub mod mqtt;
mod repeats;
mod revocation;
pub mod risk;
mod serve;
pub mod sessions;
pub mod state;
pub mod suppressions;
mod telemetry;
pub mod timeline;
pub mod tls;
pub mod tokens;
pub mod version_report;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use medsec_pki::{CaAlgorithm, FleetCa};
use medsec_store::{AnyStore, mask_password};

pub use config::{Config, Limits, Overrides};

/// What the server can fail at.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is not usable.
    #[error("configuration: {reason}")]
    Config {
        /// What is wrong.
        reason: String,
    },
    /// Policies or schema do not load or validate.
    #[error("policy: {reason}")]
    Policy {
        /// What is wrong.
        reason: String,
    },
    /// TLS set-up failed.
    #[error("TLS: {reason}")]
    Tls {
        /// What is wrong.
        reason: String,
    },
    /// The audit log could not be written.
    #[error("audit log: {reason}")]
    Audit {
        /// What is wrong.
        reason: String,
    },
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] medsec_store::Error),
    /// The CA failed.
    #[error(transparent)]
    Ca(#[from] medsec_pki::Error),
    /// Keys failed.
    #[error(transparent)]
    Crypto(#[from] medsec_crypto::Error),
    /// The audit mathematics refused something.
    #[error(transparent)]
    AuditMath(#[from] medsec_audit::Error),
    /// An internal step failed: a background task panicked, or stored data no longer reads.
    #[error("{reason}")]
    Internal {
        /// What failed.
        reason: String,
    },
    /// The caller's input was refused; the reason names the problem.
    #[error("{reason}")]
    Refused {
        /// What is wrong with it.
        reason: String,
    },
    /// Input over a size limit.
    #[error("larger than the limit of {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The caller presented no usable credential.
    #[error("{reason}")]
    Unauthenticated {
        /// Which credential is missing or refused.
        reason: String,
    },
    /// Policy does not permit the request.
    #[error("not permitted by policy")]
    Forbidden,
    /// A record kept changing under an optimistic update; the caller may try again.
    #[error("{reason}")]
    Contended {
        /// What kept changing.
        reason: String,
    },
    /// A file or socket operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// On what.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

impl From<medsec_util::FsError> for Error {
    fn from(e: medsec_util::FsError) -> Self {
        Error::Io {
            action: e.action,
            path: e.path.display().to_string(),
            source: e.source,
        }
    }
}

impl Error {
    fn io<'p>(action: &'static str, path: &'p Path) -> impl FnOnce(std::io::Error) -> Error + 'p {
        move |source| Error::Io {
            action,
            path: path.display().to_string(),
            source,
        }
    }
}

/// Where things live in a data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// The directory.
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_owned(),
        }
    }
    /// The fleet CA.
    pub fn ca(&self) -> PathBuf {
        self.root.join("ca")
    }
    /// The server's certificate chain.
    pub fn server_chain(&self) -> PathBuf {
        self.root.join("server.crt")
    }
    /// The server's key.
    pub fn server_key(&self) -> PathBuf {
        self.root.join("server.key")
    }
    /// The audit log's public key.
    pub fn audit_pub(&self) -> PathBuf {
        self.root.join("audit.pub")
    }
    /// The director's keys, root and image-repository cache.
    pub fn director(&self) -> PathBuf {
        self.root.join("director")
    }
    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

/// Opens the store named by the configuration.
pub async fn open_store(config: &Config) -> Result<AnyStore, Error> {
    let url = config.database_url();
    tracing::info!(database = %mask_password(&url), "opening the store");
    let connections = match config.database_connections {
        0 if url.starts_with("sqlite:") => std::thread::available_parallelism()
            .map_or(2, |n| u32::try_from(n.get()).unwrap_or(2).clamp(2, 8)),
        0 => 8,
        n => n,
    };
    Ok(AnyStore::open(&url, connections).await?)
}

/// The audit log's signing key: in the PKCS#11 token `audit_key_pkcs11` names, or else
/// `audit.key` encrypted under the CA passphrase (see [`audit_log::load_or_create_key`]).
pub fn audit_key(config: &Config) -> Result<Arc<dyn medsec_crypto::KeySource>, Error> {
    let Some(p11) = &config.audit_key_pkcs11 else {
        return Ok(Arc::new(audit_log::load_or_create_key(
            &config.data_dir,
            ca_passphrase(config)?.as_deref(),
            config.insecure_plaintext_audit_key,
        )?));
    };
    let pin = medsec_util::read_secret(&p11.pin_file)?;
    let token = medsec_crypto::pkcs11::Pkcs11Token::open(&p11.module, &p11.token, pin.trim())?;
    let public_path = DataDir::new(&config.data_dir).audit_pub();
    let key = if public_path.exists() {
        // The token holds the key whose public half the log was verified with so far.
        token.find(&audit_log::read_public_key(&public_path)?)?
    } else {
        let key = token.generate(&p11.label)?;
        medsec_util::write_atomic(
            &public_path,
            audit_log::public_key_json(medsec_crypto::KeySource::public_key(&key)).as_bytes(),
            medsec_util::Access::Public,
        )?;
        tracing::info!(token = %p11.token, label = %p11.label, "audit log key made in the PKCS#11 token");
        key
    };
    Ok(Arc::new(key))
}

/// Reads the CA passphrase from the configured file (which must be its owner's only) or
/// `MEDSEC_PASSPHRASE`.
fn ca_passphrase(config: &Config) -> Result<Option<String>, Error> {
    if let Some(file) = &config.ca_passphrase_file {
        return Ok(Some(medsec_util::read_secret(file)?));
    }
    Ok(std::env::var("MEDSEC_PASSPHRASE").ok())
}

/// Opens the fleet CA, creating it (keys unencrypted unless a passphrase is configured) on first
/// start, and makes sure a CRL, a server certificate and the audit key exist.
pub fn prepare_data_dir(config: &Config) -> Result<FleetCa, Error> {
    let dirs = DataDir::new(&config.data_dir);
    std::fs::create_dir_all(dirs.root()).map_err(Error::io("creating", dirs.root()))?;
    // Clinical readings, incidents and the audit log live here: the owner's only, whatever
    // the umask.
    medsec_util::make_private(dirs.root())?;
    let passphrase = ca_passphrase(config)?;
    let mut ca = if dirs.ca().join("state.json").exists() {
        FleetCa::open(&dirs.ca(), || passphrase.clone())?
    } else {
        let protection = match &passphrase {
            Some(p) => medsec_crypto::keyfile::Protection::Passphrase(p),
            None => {
                tracing::warn!(
                    dir = %dirs.ca().display(),
                    "creating a fleet CA with unencrypted keys; for production create it with \
                     `medsec ca init` and a passphrase, and move root.key offline"
                );
                medsec_crypto::keyfile::Protection::Plaintext
            }
        };
        FleetCa::init(
            &dirs.ca(),
            "medsec fleet",
            CaAlgorithm::EcdsaP256,
            3650,
            730,
            protection,
        )?
    };
    if !ca.crl_path().exists() {
        ca.crl(config.crl_days)?;
    }
    if !dirs.server_chain().exists() || !dirs.server_key().exists() {
        let (chain, key) = ca.issue_server(&config.hostnames, 397)?;
        medsec_util::write_atomic(
            &dirs.server_key(),
            key.as_bytes(),
            medsec_util::Access::Private,
        )?;
        medsec_util::write_atomic(
            &dirs.server_chain(),
            chain.as_bytes(),
            medsec_util::Access::Public,
        )?;
    }
    audit_key(config)?;
    Ok(ca)
}

/// Opens the configured image repository (`image_repository`), if any; its verified metadata
/// is kept in the data directory's `director/image-metadata/`.
pub fn open_image_repository(
    config: &Config,
) -> Result<Option<Arc<director::ImageRepository>>, Error> {
    let Some(published) = &config.image_repository else {
        return Ok(None);
    };
    let cache = DataDir::new(&config.data_dir)
        .director()
        .join("image-metadata");
    Ok(Some(Arc::new(director::ImageRepository::open(
        published,
        &cache,
        config.image_root.as_deref(),
    )?)))
}

/// How often campaigns are checked for devices that did not report in time.
const REPORT_TIMEOUT_INTERVAL: Duration = Duration::from_secs(60);

/// How often [`state::AppState::housekeeping`] runs.
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(600);

/// A running server.
pub struct Server {
    /// Where the device port listens.
    pub device_addr: SocketAddr,
    /// Where the operator port listens.
    pub operator_addr: SocketAddr,
    /// The state both ports share.
    pub state: Arc<state::AppState>,
}

/// medsec's vendor alias table with the configured `vendor_aliases` added.
pub fn vendor_names(config: &Config) -> Result<medsec_risk::names::Names, Error> {
    let mut names = medsec_risk::names::Names::builtin();
    if let Some(path) = &config.vendor_aliases {
        let bad = |e: String| Error::Config {
            reason: format!("vendor_aliases {}: {e}", path.display()),
        };
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        names.extend(&text).map_err(|e| bad(e.to_string()))?;
    }
    Ok(names)
}

/// The Sigma rules of `dir` (`*.yml`, `*.yaml`), in file-name order; none without a directory.
fn load_sigma(dir: Option<&Path>) -> Result<medsec_defender::sigma::SigmaRules, Error> {
    let Some(dir) = dir else {
        return Ok(medsec_defender::sigma::SigmaRules::default());
    };
    let bad = |reason: String| Error::Config {
        reason: format!("defender_sigma_dir {}: {reason}", dir.display()),
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| bad(e.to_string()))? {
        let path = entry.map_err(|e| bad(e.to_string()))?.path();
        if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yml" | "yaml")
        ) {
            let text = std::fs::read_to_string(&path).map_err(|e| bad(e.to_string()))?;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            files.push((name, text));
        }
    }
    files.sort();
    let rules = medsec_defender::sigma::SigmaRules::parse(&files).map_err(bad)?;
    tracing::info!(dir = %dir.display(), rules = rules.len(), "Sigma rules loaded");
    Ok(rules)
}

impl Server {
    /// Prepares the data directory, opens the store, loads policies and binds both ports.
    pub async fn start(config: Config) -> Result<Self, Error> {
        serve::fit_file_descriptors(&config.limits)?;
        let ca = prepare_data_dir(&config)?;
        let dirs = DataDir::new(&config.data_dir);
        let store = open_store(&config).await?;
        let policies = match &config.policy_dir {
            Some(dir) => authz::Policies::from_dir(dir)?,
            None => authz::Policies::shipped()?,
        };
        let key = audit_key(&config)?;
        let audit = audit_log::AuditLog::start(
            store.clone(),
            key.clone(),
            config.limits.audit_queue,
            config.limits.audit_batch,
        )
        .await?;
        let files = tls::DeviceTlsFiles {
            fleet_chain: ca.chain_path(),
            crl: ca.crl_path(),
            manufacturer_cas: config.manufacturers.iter().map(|m| m.ca.clone()).collect(),
            server_chain: dirs.server_chain(),
            server_key: dirs.server_key(),
        };
        let device_tls = Arc::new(tls::Reloadable::new(
            files.clone(),
            config.require_hybrid_kx,
        )?);
        let operator_tls = tls::operator_config(&files)?;
        let image = open_image_repository(&config)?;
        let director = director::Director::load_or_create(
            &dirs.director(),
            ca_passphrase(&config)?.as_deref(),
            Duration::from_secs(config.director_expiry_hours * 3600),
            image,
        )?;
        let defender = match &config.defender_policy {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| Error::Config {
                    reason: format!("defender_policy {}: {e}", path.display()),
                })?;
                medsec_defender::rules::Policy::from_json(&text).map_err(|e| Error::Config {
                    reason: format!("defender_policy {}: {e}", path.display()),
                })?
            }
            None => medsec_defender::rules::Policy::default(),
        };
        let names = vendor_names(&config)?;
        let state = Arc::new(
            state::AppState::new(
                store,
                policies,
                audit,
                ca,
                device_tls.clone(),
                config.clone(),
                director,
                // Baselines are signed with the log key: both are records the server vouches
                // for, and the signed message is domain-separated (baselines.rs).
                key,
            )
            .with_defender(defender)
            .with_sigma(load_sigma(config.defender_sigma_dir.as_deref())?)
            .with_vendor_names(names),
        );
        state
            .audit(audit_log::event(
                "config",
                "system",
                "server.start",
                "Server",
                "info",
            ))
            .await
            .map_err(|e| Error::Audit {
                reason: format!("{e:?}"),
            })?;
        let device = tokio::net::TcpListener::bind(config.device_listen)
            .await
            .map_err(|source| Error::Io {
                action: "listening on",
                path: config.device_listen.to_string(),
                source,
            })?;
        let operator = tokio::net::TcpListener::bind(config.operator_listen)
            .await
            .map_err(|source| Error::Io {
                action: "listening on",
                path: config.operator_listen.to_string(),
                source,
            })?;
        let device_addr = device
            .local_addr()
            .map_err(Error::io("reading", Path::new("device socket")))?;
        mqtt::start(&state)?;
        export::spawn(&state)?;
        let operator_addr = operator
            .local_addr()
            .map_err(Error::io("reading", Path::new("operator socket")))?;
        tokio::spawn(serve::accept_loop(
            device,
            serve::Port::Device(device_tls.clone()),
            api::device_router(state.clone()),
            state.clone(),
        ));
        tokio::spawn(serve::accept_loop(
            operator,
            serve::Port::Operator(operator_tls),
            api::operator_router(state.clone()),
            state.clone(),
        ));
        // Hourly chores: re-sign the CRL before it goes stale, forget idle rate-limit keys.
        let chores = state.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(HOUSEKEEPING_INTERVAL).await;
                if let Err(e) = chores.housekeeping().await {
                    tracing::error!(error = ?e, "housekeeping failed; it is tried again");
                }
            }
        });
        // The Defender's audit checks, on their own schedule.
        let every = config.defender_audit_interval_secs;
        if every > 0 {
            let audits = state.clone();
            tokio::spawn(async move {
                let mut reported = std::collections::BTreeSet::new();
                loop {
                    tokio::time::sleep(Duration::from_secs(every)).await;
                    if let Err(e) = defender_audit::scheduled(&audits, &mut reported).await {
                        tracing::error!(error = %e, "scheduled audit checks failed; they run again at the next interval");
                    }
                }
            });
        }
        // Devices that were offered a release and never reported count as failed.
        let timeouts = state.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(REPORT_TIMEOUT_INTERVAL).await;
                timeouts.expire_reports().await;
            }
        });
        // The CRL may be replaced by `medsec ca crl` beside the running server.
        // Each change (and the start) also marks the devices it revoked in the store, so that
        // every path and every replica refuses them (see `revocation`).
        let interval = Duration::from_millis(config.crl_reload_ms.max(100));
        let revocations = state.clone();
        tokio::spawn(async move {
            let mut changed = true;
            loop {
                if changed && let Err(e) = revocation::sync_store(&revocations).await {
                    tracing::error!(error = %e, "marking devices revoked offline failed; retried at the next CRL check");
                    // Tried again next round.
                    tokio::time::sleep(interval).await;
                    continue;
                }
                tokio::time::sleep(interval).await;
                changed = match device_tls.reload_if_changed() {
                    Ok(true) => {
                        tracing::info!("CRL changed: device TLS configuration reloaded");
                        true
                    }
                    Ok(false) => false,
                    Err(e) => {
                        tracing::error!(error = %e, "CRL reload failed; the previous CRL stays in force");
                        false
                    }
                };
            }
        });
        Ok(Self {
            device_addr,
            operator_addr,
            state,
        })
    }
}
