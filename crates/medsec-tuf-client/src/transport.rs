//! Where metadata and artifacts come from.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The file does not exist (HTTP 403/404, or no such file). For root, this ends the rotation
    /// walk normally.
    #[error("{url} not found")]
    NotFound {
        /// URL.
        url: String,
    },
    /// The server answered with another error status.
    #[error("{url} answered HTTP {status}")]
    Status {
        /// URL.
        url: String,
        /// Status code.
        status: u16,
    },
    /// Connection, TLS or read failure.
    #[error("fetching {url} failed: {reason}")]
    Failed {
        /// URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The URL's scheme is not one this transport serves.
    #[error("{url}: unsupported URL (expected {expected})")]
    Unsupported {
        /// URL.
        url: String,
        /// What this transport takes.
        expected: &'static str,
    },
}

/// The response header in which a server announces, beside `timestamp.json`, the newest root
/// version it has for that repository (medsec's director sends it).
pub const ROOT_VERSION_HEADER: &str = "tuf-root-version";

/// Something that opens a URL for reading. Length caps are the caller's: the updater stops reading
/// one byte past what metadata allows.
pub trait Transport: Send + Sync {
    /// Opens `url`.
    fn fetch(&self, url: &str) -> Result<Box<dyn Read + Send>, TransportError>;

    /// Opens `url` and returns with it the newest root version the server announces
    /// ([`ROOT_VERSION_HEADER`]), if it announces one. Transports that cannot tell return `None`,
    /// and the updater then probes for the next root as the specification says.
    fn fetch_announced(
        &self,
        url: &str,
    ) -> Result<(Box<dyn Read + Send>, Option<u64>), TransportError> {
        Ok((self.fetch(url)?, None))
    }
}

/// Reads `file://` URLs or plain paths from the local file system (USB sticks, mirrors on disk).
#[derive(Debug, Default, Clone)]
pub struct FileTransport;

impl Transport for FileTransport {
    fn fetch(&self, url: &str) -> Result<Box<dyn Read + Send>, TransportError> {
        let path = PathBuf::from(
            percent_encoding::percent_decode_str(url.strip_prefix("file://").unwrap_or(url))
                .decode_utf8_lossy()
                .into_owned(),
        );
        match std::fs::File::open(&path) {
            Ok(f) => Ok(Box::new(f)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(TransportError::NotFound {
                url: url.to_owned(),
            }),
            Err(e) => Err(TransportError::Failed {
                url: url.to_owned(),
                reason: e.to_string(),
            }),
        }
    }
}

/// HTTP and HTTPS (rustls with aws-lc-rs; TLS 1.3 prefers X25519MLKEM768).
pub struct HttpTransport {
    agent: ureq::Agent,
}

impl std::fmt::Debug for HttpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HttpTransport")
    }
}

impl HttpTransport {
    /// A transport that trusts the CA certificates in `ca_pem` for HTTPS (none: HTTPS is refused
    /// unless the roots are given; TUF's signatures, not TLS, are what make the content safe).
    pub fn new(ca_pem: Option<&[u8]>, timeout: Duration) -> Result<Self, TransportError> {
        Self::build(ca_pem, None, timeout)
    }

    /// A transport that also presents a client certificate (mutual TLS, as medsec's device port
    /// requires): `chain_pem` is the device certificate and its chain, `key_pem` its private key.
    pub fn with_identity(
        ca_pem: &[u8],
        chain_pem: &[u8],
        key_pem: &[u8],
        timeout: Duration,
    ) -> Result<Self, TransportError> {
        let bad = |reason: String| TransportError::Failed {
            url: "(client identity)".into(),
            reason,
        };
        let chain: Vec<_> = ureq::tls::parse_pem(chain_pem)
            .filter_map(|item| match item {
                Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                _ => None,
            })
            .collect();
        if chain.is_empty() {
            return Err(bad(
                "the client certificate file holds no certificate".into()
            ));
        }
        let key = ureq::tls::PrivateKey::from_pem(key_pem)
            .map_err(|e| bad(format!("the client key does not parse: {e}")))?;
        let identity = ureq::tls::ClientCert::new_with_certs(&chain, key);
        Self::build(Some(ca_pem), Some(identity), timeout)
    }

    /// Mutual TLS 1.3 with a client key that signs through `key`, which may keep it in a
    /// hardware token: `chain_pem` is the certificate for that key and its chain. Refused when the
    /// first certificate is not for `key`.
    pub fn with_key_source(
        ca_pem: &[u8],
        chain_pem: &[u8],
        key: Arc<dyn medsec_crypto::KeySource>,
        timeout: Duration,
    ) -> Result<Self, TransportError> {
        let bad = |reason: String| TransportError::Failed {
            url: "(client identity)".into(),
            reason,
        };
        let certs = |pem: &[u8]| -> Vec<rustls::pki_types::CertificateDer<'static>> {
            ureq::tls::parse_pem(pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => {
                        Some(rustls::pki_types::CertificateDer::from(c.der().to_vec()))
                    }
                    _ => None,
                })
                .collect()
        };
        let chain = certs(chain_pem);
        if chain.is_empty() {
            return Err(bad(
                "the client certificate file holds no certificate".into()
            ));
        }
        let config = crate::tls_identity::client_config(certs(ca_pem), chain, key).map_err(bad)?;
        use ureq::unversioned::transport::Connector as _;
        let connector =
            ().chain(ureq::unversioned::transport::TcpConnector::default())
                .chain(crate::tls_identity::KeySourceConnector {
                    config: Arc::new(config),
                });
        let agent = ureq::Agent::with_parts(
            Self::agent_config(None, timeout),
            connector,
            ureq::unversioned::resolver::DefaultResolver::default(),
        );
        Ok(Self { agent })
    }

    fn agent_config(tls: Option<ureq::tls::TlsConfig>, timeout: Duration) -> ureq::config::Config {
        let mut builder = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(timeout))
            .timeout_recv_response(Some(timeout))
            .timeout_recv_body(Some(timeout))
            .max_redirects(0);
        if let Some(tls) = tls {
            builder = builder.tls_config(tls);
        }
        builder.build()
    }

    fn build(
        ca_pem: Option<&[u8]>,
        identity: Option<ureq::tls::ClientCert>,
        timeout: Duration,
    ) -> Result<Self, TransportError> {
        let mut roots = Vec::new();
        if let Some(pem) = ca_pem {
            for item in ureq::tls::parse_pem(pem) {
                if let Ok(ureq::tls::PemItem::Certificate(c)) = item {
                    roots.push(c);
                }
            }
        }
        let tls = ureq::tls::TlsConfig::builder()
            .provider(ureq::tls::TlsProvider::Rustls)
            .root_certs(ureq::tls::RootCerts::Specific(Arc::new(roots)))
            .client_cert(identity)
            .unversioned_rustls_crypto_provider(Arc::new(
                rustls::crypto::aws_lc_rs::default_provider(),
            ))
            .build();
        let agent = Self::agent_config(Some(tls), timeout).new_agent();
        Ok(Self { agent })
    }
}

impl HttpTransport {
    /// The underlying HTTP agent (same TLS configuration and identity), for the other requests
    /// a device makes to the same server. It does not treat HTTP error statuses as errors.
    pub fn agent(&self) -> &ureq::Agent {
        &self.agent
    }
}

impl Transport for HttpTransport {
    fn fetch(&self, url: &str) -> Result<Box<dyn Read + Send>, TransportError> {
        Ok(self.fetch_announced(url)?.0)
    }

    fn fetch_announced(
        &self,
        url: &str,
    ) -> Result<(Box<dyn Read + Send>, Option<u64>), TransportError> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(TransportError::Unsupported {
                url: url.to_owned(),
                expected: "http:// or https://",
            });
        }
        let response = self
            .agent
            .get(url)
            .call()
            .map_err(|e| TransportError::Failed {
                url: url.to_owned(),
                reason: e.to_string(),
            })?;
        let status = response.status().as_u16();
        match status {
            200 => {
                let announced = response
                    .headers()
                    .get(ROOT_VERSION_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok());
                let body = response
                    .into_body()
                    .into_with_config()
                    .limit(u64::MAX)
                    .reader();
                Ok((Box::new(body), announced))
            }
            403 | 404 => Err(TransportError::NotFound {
                url: url.to_owned(),
            }),
            _ => Err(TransportError::Status {
                url: url.to_owned(),
                status,
            }),
        }
    }
}

/// Picks the transport by URL: files for `file://` and plain paths, HTTP(S) otherwise.
pub(crate) struct AnyTransport {
    pub(crate) http: HttpTransport,
    pub(crate) file: FileTransport,
}

impl Transport for AnyTransport {
    fn fetch(&self, url: &str) -> Result<Box<dyn Read + Send>, TransportError> {
        Ok(self.fetch_announced(url)?.0)
    }

    fn fetch_announced(
        &self,
        url: &str,
    ) -> Result<(Box<dyn Read + Send>, Option<u64>), TransportError> {
        if url.starts_with("http://") || url.starts_with("https://") {
            self.http.fetch_announced(url)
        } else {
            self.file.fetch_announced(url)
        }
    }
}
