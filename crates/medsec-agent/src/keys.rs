//! Where the device key lives. Every use of it (the TLS handshake, certificate requests, signed
//! version reports) goes through a [`KeySource`], so a key in a hardware token never leaves it.
//!
//! - `file` (the default, and the simulated device's): a P-256 PKCS#8 key in `identity.pem`
//!   after the certificate chain, mode 0600, replaced with the chain in one rename.
//! - `pkcs11`: a P-256 key generated inside a PKCS#11 token (an HSM or secure element, a TPM
//!   through tpm2-pkcs11; SoftHSM in the tests). `identity.pem` then holds only the chain: the
//!   token key is found from the certificate's public key. Renewal makes a new key in the token
//!   and removes the device's other keys once the new certificate is stored.

use std::path::PathBuf;
use std::sync::Arc;

use medsec_crypto::{KeySource, PublicKey, Scheme, SigningKey};
use serde::{Deserialize, Serialize};

use crate::Error;

/// The `CKA_LABEL` of the agent's keys in a token.
pub const TOKEN_KEY_LABEL: &str = "medsec-agent";

/// Where the device key is kept (saved in `device.json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum KeyStore {
    /// PKCS#8 in `identity.pem`.
    #[default]
    File,
    /// A PKCS#11 token.
    Pkcs11 {
        /// The token's PKCS#11 module (a shared library).
        module: PathBuf,
        /// The token's label.
        token: String,
        /// A file holding the user PIN (read at each start; kept out of `device.json` and of
        /// process arguments).
        pin_file: PathBuf,
    },
}

/// A key about to be certified.
pub struct NewKey {
    /// Signs with it.
    pub source: Arc<dyn KeySource>,
    /// What to store after the certificate chain in `identity.pem` (the PKCS#8 PEM of a `file`
    /// key; nothing for a token key).
    pub stored: String,
}

impl std::fmt::Debug for NewKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        write!(f, "NewKey({:?})", self.source.public_key())
    }
}

fn crypto(what: &str) -> impl Fn(medsec_crypto::Error) -> Error + '_ {
    move |e| Error::State(format!("{what}: {e}"))
}

impl KeyStore {
    /// A short description for logs and `agent status`.
    pub fn describe(&self) -> String {
        match self {
            Self::File => "file (identity.pem)".into(),
            Self::Pkcs11 { module, token, .. } => {
                format!("PKCS#11 token {token:?} ({})", module.display())
            }
        }
    }

    fn token(&self) -> Result<Option<Arc<medsec_crypto::pkcs11::Pkcs11Token>>, Error> {
        let Self::Pkcs11 {
            module,
            token,
            pin_file,
        } = self
        else {
            return Ok(None);
        };
        let pin = std::fs::read_to_string(pin_file).map_err(Error::io("reading", pin_file))?;
        let pin = pin.trim_end_matches(['\r', '\n']);
        if pin.is_empty() {
            return Err(Error::State(format!(
                "{}: the PIN file is empty",
                pin_file.display()
            )));
        }
        medsec_crypto::pkcs11::Pkcs11Token::open(module, token, pin)
            .map(Some)
            .map_err(crypto("the key store"))
    }

    /// Makes a new P-256 key.
    pub fn generate(&self) -> Result<NewKey, Error> {
        if let Some(token) = self.token()? {
            let key = token
                .generate(TOKEN_KEY_LABEL)
                .map_err(crypto("generating the device key"))?;
            return Ok(NewKey {
                source: Arc::new(key),
                stored: String::new(),
            });
        }
        let key = SigningKey::generate(Scheme::EcdsaP256Sha256)
            .map_err(crypto("generating the device key"))?;
        let der = key
            .to_pkcs8_der()
            .map_err(crypto("encoding the device key"))?;
        let stored = pem_rfc7468::encode_string("PRIVATE KEY", pem_rfc7468::LineEnding::LF, &der)
            .map_err(|e| Error::State(format!("encoding the device key: {e}")))?;
        Ok(NewKey {
            source: Arc::new(key),
            stored,
        })
    }

    /// The key of the identity in `identity_pem` (certificate chain, then the key for `file`).
    pub fn open(&self, identity_pem: &[u8]) -> Result<Arc<dyn KeySource>, Error> {
        let certified = certificate_key(identity_pem)?;
        if let Some(token) = self.token()? {
            let key = token.find(&certified).map_err(crypto("the device key"))?;
            return Ok(Arc::new(key));
        }
        let text = String::from_utf8_lossy(identity_pem);
        let block = crate::net::pem_block(&text, "PRIVATE KEY").ok_or_else(|| {
            Error::State("identity.pem holds no private key (key_store is file)".into())
        })?;
        let (_, der) = pem_rfc7468::decode_vec(block.as_bytes())
            .map_err(|e| Error::State(format!("the device key: {e}")))?;
        let key = SigningKey::from_pkcs8_der(&der).map_err(crypto("the device key"))?;
        if key.public_key() != &certified {
            return Err(Error::State(
                "identity.pem: the certificate is not for the key beside it".into(),
            ));
        }
        Ok(Arc::new(key))
    }

    /// After a renewal is stored: removes the device's token keys other than `keep` (a no-op
    /// for `file`, whose old key went with the old file). Returns how many objects went.
    pub fn remove_other_keys(&self, keep: &PublicKey) -> Result<usize, Error> {
        if let Some(token) = self.token()? {
            return token
                .remove_other_keys(TOKEN_KEY_LABEL, keep)
                .map_err(crypto("removing old device keys"));
        }
        let _ = keep;
        Ok(0)
    }
}

/// The public key of the first certificate in `pem`.
pub fn certificate_key(pem: &[u8]) -> Result<PublicKey, Error> {
    let der = ureq::tls::parse_pem(pem)
        .find_map(|i| match i {
            Ok(ureq::tls::PemItem::Certificate(c)) => Some(c.der().to_vec()),
            _ => None,
        })
        .ok_or_else(|| Error::State("identity.pem holds no certificate".into()))?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| Error::State(format!("the device certificate does not parse: {e}")))?;
    PublicKey::from_spki_der(cert.public_key().raw).map_err(crypto("the device certificate"))
}

/// rcgen's view of a [`KeySource`], to sign certificate requests with a key it cannot read.
pub(crate) struct RcgenKey<'a>(pub(crate) &'a dyn KeySource);

impl rcgen::PublicKeyData for RcgenKey<'_> {
    fn der_bytes(&self) -> &[u8] {
        self.0.public_key().as_bytes()
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        match self.0.public_key().scheme() {
            Scheme::Ed25519 => &rcgen::PKCS_ED25519,
            _ => &rcgen::PKCS_ECDSA_P256_SHA256,
        }
    }
}

impl rcgen::SigningKey for RcgenKey<'_> {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.0.sign(msg).map_err(|_| rcgen::Error::RemoteKeyError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate (PEM) for `key`, made through the `KeySource` (as a request is).
    fn certificate_for(key: &dyn KeySource) -> String {
        rcgen::CertificateParams::new(vec!["pump-k".to_owned()])
            .unwrap()
            .self_signed(&RcgenKey(key))
            .unwrap()
            .pem()
    }

    #[test]
    fn a_file_key_opens_only_beside_its_own_certificate() {
        let a = KeyStore::File.generate().unwrap();
        let b = KeyStore::File.generate().unwrap();
        let cert_a = certificate_for(a.source.as_ref());
        let good = KeyStore::File
            .open(format!("{cert_a}{}", a.stored).as_bytes())
            .unwrap();
        assert_eq!(good.public_key(), a.source.public_key());
        assert_eq!(
            &certificate_key(cert_a.as_bytes()).unwrap(),
            a.source.public_key()
        );

        // Another key beside the certificate: refused, never used to sign.
        let err = KeyStore::File
            .open(format!("{cert_a}{}", b.stored).as_bytes())
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("the certificate is not for the key beside it"),
            "{err}"
        );
        let err = KeyStore::File
            .open(cert_a.as_bytes())
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(err.contains("holds no private key"), "{err}");
        let err = KeyStore::File
            .open(a.stored.as_bytes())
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(err.contains("holds no certificate"), "{err}");

        // The TLS client refuses the mismatch too.
        let err = medsec_tuf_client::HttpTransport::with_key_source(
            cert_a.as_bytes(),
            cert_a.as_bytes(),
            Arc::clone(&b.source),
            std::time::Duration::from_secs(1),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("not for the key that would sign with it"),
            "{err}"
        );
        assert!(
            medsec_tuf_client::HttpTransport::with_key_source(
                cert_a.as_bytes(),
                cert_a.as_bytes(),
                Arc::clone(&a.source),
                std::time::Duration::from_secs(1),
            )
            .is_ok()
        );
    }

    #[test]
    fn a_token_store_without_its_pin_file_names_the_file() {
        let store = KeyStore::Pkcs11 {
            module: "/nonexistent/libpkcs11.so".into(),
            token: "t".into(),
            pin_file: "/nonexistent/pin".into(),
        };
        let err = store.generate().unwrap_err().to_string();
        assert!(err.contains("/nonexistent/pin"), "{err}");
    }
}
