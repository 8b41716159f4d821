//! TLS for both ports: TLS 1.3 only, key exchange X25519MLKEM768 first (then X25519 and P-256
//! for peers without ML-KEM), aws-lc-rs underneath. The device port verifies client certificates
//! against the fleet CA and its current CRL (and, for first enrolment only, manufacturer CAs);
//! its configuration is swapped atomically when the CRL changes, so revocation needs no restart.
//! The CRL's serials are also kept as a set: every request's certificate is checked against it,
//! and connections open when the CRL changes are closed if it lists their certificate.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, UnixTime};

use crate::Error;

/// The crypto provider: aws-lc-rs with the post-quantum hybrid group preferred.
pub fn provider() -> Arc<CryptoProvider> {
    use rustls::crypto::aws_lc_rs::{self, kx_group};
    let mut p = aws_lc_rs::default_provider();
    p.kx_groups = vec![
        kx_group::X25519MLKEM768,
        kx_group::X25519,
        kx_group::SECP256R1,
    ];
    Arc::new(p)
}

/// The crypto provider with X25519MLKEM768 as its only key exchange.
fn hybrid_only_provider() -> Arc<CryptoProvider> {
    let mut p = (*provider()).clone();
    p.kx_groups = vec![rustls::crypto::aws_lc_rs::kx_group::X25519MLKEM768];
    Arc::new(p)
}

/// Whether a ClientHello lists X25519MLKEM768 among its supported groups, but not first (a
/// client that lists it first gets it from the usual configuration, which follows the
/// client's order).
pub fn offers_hybrid_after_another(hello: &rustls::server::ClientHello<'_>) -> bool {
    hello.named_groups().is_some_and(|g| {
        g.first() != Some(&rustls::NamedGroup::X25519MLKEM768)
            && g.contains(&rustls::NamedGroup::X25519MLKEM768)
    })
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| Error::Tls {
            reason: format!("reading certificates from {}: {e}", path.display()),
        })?;
    if certs.is_empty() {
        return Err(Error::Tls {
            reason: format!("{} holds no certificate", path.display()),
        });
    }
    Ok(certs)
}

fn roots(paths: &[PathBuf]) -> Result<RootCertStore, Error> {
    let mut store = RootCertStore::empty();
    for p in paths {
        for c in certs(p)? {
            store.add(c).map_err(|e| Error::Tls {
                reason: format!("trust anchor in {}: {e}", p.display()),
            })?;
        }
    }
    Ok(store)
}

/// What the device port needs, and where it reads it from.
#[derive(Debug, Clone)]
pub struct DeviceTlsFiles {
    /// The fleet CA chain (issuing, root): trust anchors for device certificates.
    pub fleet_chain: PathBuf,
    /// The fleet CA's CRL.
    pub crl: PathBuf,
    /// Manufacturer CAs (IDevID issuers), trusted for enrolment only, in the order of
    /// `manufacturers` in the configuration.
    pub manufacturer_cas: Vec<PathBuf>,
    /// The server's certificate chain.
    pub server_chain: PathBuf,
    /// The server's key.
    pub server_key: PathBuf,
}

/// The device port's current TLS state.
pub struct DeviceTls {
    /// The rustls configuration new connections use (key exchange: X25519MLKEM768, X25519,
    /// P-256; only X25519MLKEM768 when `require_hybrid_kx`).
    pub config: Arc<ServerConfig>,
    /// The configuration for a client that lists X25519MLKEM768 among its groups after
    /// another: that group only, so it is chosen by the server's preference, not the client's
    /// order (rustls picks the client's first supported group; a client that sent no
    /// X25519MLKEM768 key share gets a HelloRetryRequest for it).
    pub hybrid_config: Arc<ServerConfig>,
    /// Fleet-only verification (no manufacturer anchors, CRL required), to tell fleet devices
    /// from devices presenting a manufacturer certificate.
    pub fleet_verifier: Arc<dyn ClientCertVerifier>,
    /// Whether manufacturer certificates are accepted at the handshake.
    pub manufacturers: bool,
    /// One verifier per manufacturer CA, in the configuration's order: which CA vouches for a
    /// presented IDevID decides the scope it is held to.
    manufacturer_verifiers: Vec<Arc<dyn ClientCertVerifier>>,
    /// The serials (DER integer contents) the CRL lists: checked on every request and against
    /// open connections when the CRL changes, not only at the handshake.
    revoked: HashSet<Vec<u8>>,
}

impl DeviceTls {
    /// Builds the configuration from the files.
    pub fn load(files: &DeviceTlsFiles, require_hybrid_kx: bool) -> Result<Self, Error> {
        let provider = provider();
        let fleet = Arc::new(roots(std::slice::from_ref(&files.fleet_chain))?);
        let crl_pem = std::fs::read(&files.crl).map_err(Error::io("reading", &files.crl))?;
        let crls = CertificateRevocationListDer::pem_slice_iter(&crl_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::Tls {
                reason: format!("CRL {}: {e}", files.crl.display()),
            })?;
        let revoked = revoked_serials(&crls).map_err(|reason| Error::Tls {
            reason: format!("CRL {}: {reason}", files.crl.display()),
        })?;
        let strict = |anchors: Arc<RootCertStore>| {
            WebPkiClientVerifier::builder_with_provider(anchors, provider.clone())
                .with_crls(crls.clone())
                .only_check_end_entity_revocation()
        };
        let fleet_verifier = strict(fleet.clone()).build().map_err(|e| Error::Tls {
            reason: format!("client verifier: {e}"),
        })?;
        let manufacturers = !files.manufacturer_cas.is_empty();
        let manufacturer_verifiers = files
            .manufacturer_cas
            .iter()
            .map(|ca| {
                let anchors = Arc::new(roots(std::slice::from_ref(ca))?);
                WebPkiClientVerifier::builder_with_provider(anchors, provider.clone())
                    .build()
                    .map_err(|e| Error::Tls {
                        reason: format!("manufacturer CA {}: {e}", ca.display()),
                    })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        // Clients without a certificate may connect: EST enrolment with a token needs that.
        // Every other route refuses requests without a fleet principal.
        let handshake_verifier = if manufacturers {
            let mut all = (*fleet).clone();
            all.roots.extend(roots(&files.manufacturer_cas)?.roots);
            // Manufacturer CAs publish no CRL to us; the fleet's own status is still checked
            // strictly when the principal is derived.
            strict(Arc::new(all)).allow_unknown_revocation_status()
        } else {
            strict(fleet)
        }
        .allow_unauthenticated()
        .build()
        .map_err(|e| Error::Tls {
            reason: format!("client verifier: {e}"),
        })?;
        let chain = certs(&files.server_chain)?;
        let build = |provider: Arc<CryptoProvider>| -> Result<Arc<ServerConfig>, Error> {
            let key = PrivateKeyDer::from_pem_file(&files.server_key).map_err(|e| Error::Tls {
                reason: format!("server key {}: {e}", files.server_key.display()),
            })?;
            let mut config = ServerConfig::builder_with_provider(provider)
                .with_protocol_versions(&[&rustls::version::TLS13])
                .map_err(|e| Error::Tls {
                    reason: e.to_string(),
                })?
                .with_client_cert_verifier(handshake_verifier.clone())
                .with_single_cert(chain.clone(), key)
                .map_err(|e| Error::Tls {
                    reason: format!("server certificate: {e}"),
                })?;
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Ok(Arc::new(config))
        };
        let hybrid_config = build(hybrid_only_provider())?;
        let config = if require_hybrid_kx {
            hybrid_config.clone()
        } else {
            build(provider)?
        };
        Ok(Self {
            config,
            hybrid_config,
            fleet_verifier,
            manufacturers,
            manufacturer_verifiers,
            revoked,
        })
    }

    /// Whether the CRL in force lists the certificate with this serial (see [`serial_of`]).
    pub fn is_revoked(&self, serial: &[u8]) -> bool {
        self.revoked.contains(serial)
    }

    /// The index (in the configuration's `manufacturers`) of the first manufacturer CA the
    /// presented chain verifies against right now.
    pub fn manufacturer_of(&self, chain: &[CertificateDer<'static>]) -> Option<usize> {
        let (leaf, rest) = chain.split_first()?;
        self.manufacturer_verifiers
            .iter()
            .position(|v| v.verify_client_cert(leaf, rest, UnixTime::now()).is_ok())
    }

    /// Whether a presented chain verifies as a fleet device certificate right now.
    pub fn is_fleet_certificate(&self, chain: &[CertificateDer<'static>]) -> bool {
        let Some((leaf, rest)) = chain.split_first() else {
            return false;
        };
        self.fleet_verifier
            .verify_client_cert(leaf, rest, UnixTime::now())
            .is_ok()
    }
}

/// The operator port: TLS 1.3, server certificate only (operators authenticate with tokens).
pub fn operator_config(files: &DeviceTlsFiles) -> Result<Arc<ServerConfig>, Error> {
    let key = PrivateKeyDer::from_pem_file(&files.server_key).map_err(|e| Error::Tls {
        reason: format!("server key {}: {e}", files.server_key.display()),
    })?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| Error::Tls {
            reason: e.to_string(),
        })?
        .with_no_client_auth()
        .with_single_cert(certs(&files.server_chain)?, key)
        .map_err(|e| Error::Tls {
            reason: format!("server certificate: {e}"),
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The serials every CRL lists, as DER integer contents (what [`serial_of`] returns).
fn revoked_serials(crls: &[CertificateRevocationListDer<'_>]) -> Result<HashSet<Vec<u8>>, String> {
    let mut serials = HashSet::new();
    for der in crls {
        let (_, crl) = x509_parser::parse_x509_crl(der.as_ref()).map_err(|e| e.to_string())?;
        serials.extend(
            crl.iter_revoked_certificates()
                .map(|r| r.raw_serial().to_vec()),
        );
    }
    Ok(serials)
}

/// A certificate's serial as DER integer contents, the form a CRL lists it in; `None` if the
/// DER is not a certificate.
pub fn serial_of(certificate_der: &[u8]) -> Option<Vec<u8>> {
    let (_, cert) = x509_parser::parse_x509_certificate(certificate_der).ok()?;
    Some(cert.tbs_certificate.raw_serial().to_vec())
}

/// The device port's configuration, swapped when the CRL changes.
pub struct Reloadable {
    files: DeviceTlsFiles,
    require_hybrid_kx: bool,
    current: ArcSwap<DeviceTls>,
    crl_modified: std::sync::Mutex<Option<SystemTime>>,
    /// The open device connections, by id: their certificate's serial and the signal that
    /// tells one to close. On every reload those the new CRL lists are signalled. Each
    /// connection waits on its own `Notify`, so a request never touches a lock shared with
    /// other connections.
    open: std::sync::Mutex<std::collections::HashMap<u64, OpenConnection>>,
    next_id: std::sync::atomic::AtomicU64,
}

/// An open device connection's certificate serial, and the signal that closes it.
type OpenConnection = (Arc<[u8]>, Arc<tokio::sync::Notify>);

/// An open device connection known to [`Reloadable`]; forgotten when dropped.
pub struct CrlWatch {
    tls: Arc<Reloadable>,
    id: u64,
    /// Notified when a reloaded CRL lists the connection's certificate.
    pub revoked: Arc<tokio::sync::Notify>,
}

impl Drop for CrlWatch {
    fn drop(&mut self) {
        if let Ok(mut open) = self.tls.open.lock() {
            open.remove(&self.id);
        }
    }
}

impl Reloadable {
    /// Loads the files once.
    pub fn new(files: DeviceTlsFiles, require_hybrid_kx: bool) -> Result<Self, Error> {
        let modified = std::fs::metadata(&files.crl)
            .and_then(|m| m.modified())
            .ok();
        Ok(Self {
            current: ArcSwap::from_pointee(DeviceTls::load(&files, require_hybrid_kx)?),
            files,
            require_hybrid_kx,
            crl_modified: std::sync::Mutex::new(modified),
            open: std::sync::Mutex::new(std::collections::HashMap::new()),
            next_id: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Whether the CRL in force lists the certificate with `serial` (every request asks: a
    /// guard load, no reference count touched).
    pub fn is_revoked(&self, serial: &[u8]) -> bool {
        self.current.load().is_revoked(serial)
    }

    /// Registers an open connection presenting the certificate with `serial`, to be signalled
    /// when a reloaded CRL lists it.
    pub fn watch(self: &Arc<Self>, serial: Arc<[u8]>) -> CrlWatch {
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let revoked = Arc::new(tokio::sync::Notify::new());
        if let Ok(mut open) = self.open.lock() {
            open.insert(id, (serial, revoked.clone()));
        }
        CrlWatch {
            tls: self.clone(),
            id,
            revoked,
        }
    }

    /// The configuration in effect.
    pub fn current(&self) -> Arc<DeviceTls> {
        self.current.load_full()
    }

    /// Reloads now. A CRL that does not parse leaves the previous configuration in place.
    pub fn reload(&self) -> Result<(), Error> {
        let modified = std::fs::metadata(&self.files.crl)
            .and_then(|m| m.modified())
            .ok();
        let fresh = DeviceTls::load(&self.files, self.require_hybrid_kx)?;
        self.current.store(Arc::new(fresh));
        if let Ok(mut m) = self.crl_modified.lock() {
            *m = modified;
        }
        let current = self.current();
        if let Ok(open) = self.open.lock() {
            for (serial, signal) in open.values() {
                if current.is_revoked(serial) {
                    signal.notify_one();
                }
            }
        }
        Ok(())
    }

    /// Reloads if the CRL file changed since the last load; returns whether it did.
    pub fn reload_if_changed(&self) -> Result<bool, Error> {
        let modified = std::fs::metadata(&self.files.crl)
            .and_then(|m| m.modified())
            .ok();
        let last = self.crl_modified.lock().ok().and_then(|m| *m);
        if modified == last {
            return Ok(false);
        }
        self.reload()?;
        Ok(true)
    }
}
