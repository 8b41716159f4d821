//! Mutual TLS whose client key signs through a [`KeySource`], so the key can stay in a PKCS#11
//! token or a TPM: rustls asks the key for one signature per handshake and never sees it.
//!
//! ureq's own TLS connector only takes a private key as bytes, so this module has its own
//! connector (the same steps as ureq's `RustlsConnector`, with our `ClientConfig`), chained after
//! ureq's TCP connector. Connections are TLS 1.3 only, preferring X25519MLKEM768.

use std::fmt;
use std::io::{Read as _, Write as _};
use std::sync::Arc;

use medsec_crypto::{KeySource, Scheme};
use rustls::client::ResolvesClientCert;
use rustls::pki_types::{CertificateDer, ServerName, SubjectPublicKeyInfoDer};
use rustls::sign::{CertifiedKey, Signer, SigningKey};
use rustls::{ClientConfig, ClientConnection, RootCertStore, SignatureAlgorithm, SignatureScheme};
use rustls::{StreamOwned, version::TLS13};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, Either, LazyBuffers, NextTimeout, Transport,
    TransportAdapter,
};

/// A [`KeySource`] as a rustls signing key. ECDSA P-256 keys sign `ecdsa_secp256r1_sha256`
/// (the source's DER signatures are what TLS carries) and Ed25519 keys `ed25519`.
struct SourceKey {
    key: Arc<dyn KeySource>,
    scheme: SignatureScheme,
    spki: Vec<u8>,
}

impl fmt::Debug for SourceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SourceKey({:?})", self.scheme)
    }
}

impl SourceKey {
    fn new(key: Arc<dyn KeySource>) -> Result<Self, String> {
        let public = key.public_key();
        let scheme = match public.scheme() {
            Scheme::EcdsaP256Sha256 => SignatureScheme::ECDSA_NISTP256_SHA256,
            Scheme::Ed25519 => SignatureScheme::ED25519,
            other => return Err(format!("a {other} key cannot authenticate a TLS client")),
        };
        let spki = public
            .to_spki_der()
            .ok_or_else(|| format!("no SubjectPublicKeyInfo for a {} key", public.scheme()))?;
        Ok(Self { key, scheme, spki })
    }
}

impl SigningKey for SourceKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        offered.contains(&self.scheme).then(|| {
            Box::new(SourceSigner {
                key: Arc::clone(&self.key),
                scheme: self.scheme,
            }) as Box<dyn Signer>
        })
    }

    fn public_key(&self) -> Option<SubjectPublicKeyInfoDer<'_>> {
        Some(SubjectPublicKeyInfoDer::from(self.spki.as_slice()))
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        match self.scheme {
            SignatureScheme::ED25519 => SignatureAlgorithm::ED25519,
            _ => SignatureAlgorithm::ECDSA,
        }
    }
}

struct SourceSigner {
    key: Arc<dyn KeySource>,
    scheme: SignatureScheme,
}

impl fmt::Debug for SourceSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SourceSigner({:?})", self.scheme)
    }
}

impl Signer for SourceSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        self.key
            .sign(message)
            .map_err(|e| rustls::Error::General(format!("the client key did not sign: {e}")))
    }

    fn scheme(&self) -> SignatureScheme {
        self.scheme
    }
}

/// Always presents the one identity (the device has one certificate).
#[derive(Debug)]
struct OneIdentity(Arc<CertifiedKey>);

impl ResolvesClientCert for OneIdentity {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// The rustls client configuration: trust `roots`, present `chain` signed by `key`. Refuses a
/// chain whose first certificate is not for `key`.
pub(crate) fn client_config(
    roots: Vec<CertificateDer<'static>>,
    chain: Vec<CertificateDer<'static>>,
    key: Arc<dyn KeySource>,
) -> Result<ClientConfig, String> {
    let mut store = RootCertStore::empty();
    let (added, _) = store.add_parsable_certificates(roots);
    if added == 0 {
        return Err("no CA certificate to trust".into());
    }
    let certified = CertifiedKey::new(chain, Arc::new(SourceKey::new(key)?));
    certified.keys_match().map_err(|e| {
        format!("the client certificate is not for the key that would sign with it ({e})")
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&TLS13])
        .map_err(|e| e.to_string())?
        .with_root_certificates(store)
        .with_client_cert_resolver(Arc::new(OneIdentity(Arc::new(certified)))))
}

/// Wraps HTTPS connections in TLS with [`client_config`]'s configuration.
pub(crate) struct KeySourceConnector {
    pub(crate) config: Arc<ClientConfig>,
}

impl fmt::Debug for KeySourceConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeySourceConnector")
    }
}

impl<In: Transport> Connector<In> for KeySourceConnector {
    type Out = Either<In, TlsTransport>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        let Some(transport) = chained else {
            return Err(ureq::Error::Tls("TLS needs a TCP connection under it"));
        };
        if !details.needs_tls() || transport.is_tls() {
            return Ok(Some(Either::A(transport)));
        }
        let host = details
            .uri
            .host()
            .ok_or(ureq::Error::Tls("the URL names no host"))?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let name = ServerName::try_from(host.to_owned())
            .map_err(|_| ureq::Error::Tls("the host is not a valid TLS server name"))?;
        let mut conn = ClientConnection::new(Arc::clone(&self.config), name)?;
        let mut sock = TransportAdapter::new(transport.boxed(), details.current_time.clone());
        sock.set_timeout(details.timeout);
        conn.complete_io(&mut sock)?;
        let buffers = LazyBuffers::new(
            details.config.input_buffer_size(),
            details.config.output_buffer_size(),
        );
        Ok(Some(Either::B(TlsTransport {
            buffers,
            stream: StreamOwned { conn, sock },
        })))
    }
}

/// A TLS connection for ureq (as ureq's own rustls transport).
pub(crate) struct TlsTransport {
    buffers: LazyBuffers,
    stream: StreamOwned<ClientConnection, TransportAdapter>,
}

impl fmt::Debug for TlsTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TlsTransport")
    }
}

impl Transport for TlsTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let output = self
            .buffers
            .output()
            .get(..amount)
            .ok_or(ureq::Error::Tls("ureq asked to send more than it buffered"))?;
        self.stream.write_all(output)?;
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let input = self.buffers.input_append_buf();
        let amount = self.stream.read(input)?;
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        self.stream.get_mut().get_mut().is_open()
    }

    fn is_tls(&self) -> bool {
        true
    }
}
