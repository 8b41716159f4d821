//! Private and public key files.
//!
//! - Plaintext private keys are standard `PRIVATE KEY` PEM (PKCS#8), readable by OpenSSL for Ed25519
//!   and P-256. medsec writes them only when the caller asks for [`Protection::Plaintext`].
//! - Encrypted private keys are `MEDSEC ENCRYPTED PRIVATE KEY` PEM. PKCS#8's own encryption (PBES2)
//!   has no registered Argon2id profile that common tools read, so the body is medsec's envelope:
//!
//!   ```text
//!   "MSEK" | version=1 (u8) | m_cost KiB (u32 BE) | t_cost (u32 BE) | lanes (u32 BE)
//!          | salt (16) | nonce (12) | AES-256-GCM(key = Argon2id(passphrase, salt), PKCS#8 DER)
//!   ```
//!   with everything before the ciphertext as the AEAD's associated data, so a changed parameter
//!   is detected just as a changed ciphertext is.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};

use crate::{Error, SigningKey};

const ENCRYPTED_LABEL: &str = "MEDSEC ENCRYPTED PRIVATE KEY";
const PLAIN_LABEL: &str = "PRIVATE KEY";
const MAGIC: &[u8; 4] = b"MSEK";
const HEADER_LEN: usize = 4 + 1 + 12 + 16 + 12;
/// Upper bound on the memory cost a key file may ask for, so a hostile file cannot exhaust memory.
const MAX_M_COST_KIB: u32 = 4 * 1024 * 1024;
const MAX_T_COST: u32 = 64;
const MAX_LANES: u32 = 16;

/// How a private key is stored.
#[derive(Clone, Copy)]
pub enum Protection<'a> {
    /// Encrypted under this passphrase.
    Passphrase(&'a str),
    /// Not encrypted: the caller asked for it explicitly.
    Plaintext,
}

/// Argon2id cost parameters for new key files.
#[derive(Debug, Clone, Copy)]
pub struct KdfCost {
    /// Memory in KiB.
    pub m_cost_kib: u32,
    /// Iterations.
    pub t_cost: u32,
    /// Lanes.
    pub lanes: u32,
}

impl Default for KdfCost {
    /// 64 MiB, 3 passes, 1 lane: RFC 9106's second recommended option.
    fn default() -> Self {
        Self {
            m_cost_kib: 64 * 1024,
            t_cost: 3,
            lanes: 1,
        }
    }
}

fn derive(passphrase: &str, salt: &[u8], cost: KdfCost) -> Result<LessSafeKey, Error> {
    let params =
        argon2::Params::new(cost.m_cost_kib, cost.t_cost, cost.lanes, Some(32)).map_err(|_| {
            Error::MalformedKeyFile {
                reason: "Argon2id parameters out of range".into(),
            }
        })?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut key = [0u8; 32];
    argon
        .hash_password_into(passphrase.as_bytes(), salt, &mut key)
        .map_err(|_| Error::Crypto {
            operation: "Argon2id key derivation",
        })?;
    let unbound = UnboundKey::new(&AES_256_GCM, &key).map_err(|_| Error::Crypto {
        operation: "AES-256-GCM key setup",
    })?;
    key.fill(0);
    Ok(LessSafeKey::new(unbound))
}

/// Encodes a private key file.
pub fn encode_private(key: &SigningKey, protection: Protection<'_>) -> Result<String, Error> {
    encode_private_with_cost(key, protection, KdfCost::default())
}

/// Encodes a private key file with explicit Argon2id costs.
pub fn encode_private_with_cost(
    key: &SigningKey,
    protection: Protection<'_>,
    cost: KdfCost,
) -> Result<String, Error> {
    let mut der = key.to_pkcs8_der()?;
    let pem = seal_pkcs8(&der, protection, cost);
    der.fill(0);
    pem
}

/// Wraps any PKCS#8 DER private key (for example an ML-DSA CA key made by another library) in a
/// key file, encrypted unless `protection` is [`Protection::Plaintext`].
pub fn seal_pkcs8(der: &[u8], protection: Protection<'_>, cost: KdfCost) -> Result<String, Error> {
    let der = der.to_vec();
    let (label, body) = match protection {
        Protection::Plaintext => (PLAIN_LABEL, der.clone()),
        Protection::Passphrase(passphrase) => {
            let rng = SystemRandom::new();
            let mut salt = [0u8; 16];
            let mut nonce = [0u8; 12];
            rng.fill(&mut salt)
                .and_then(|()| rng.fill(&mut nonce))
                .map_err(|_| Error::Crypto {
                    operation: "random number generation",
                })?;
            let mut body = Vec::with_capacity(HEADER_LEN + der.len() + 16);
            body.extend_from_slice(MAGIC);
            body.push(1);
            body.extend_from_slice(&cost.m_cost_kib.to_be_bytes());
            body.extend_from_slice(&cost.t_cost.to_be_bytes());
            body.extend_from_slice(&cost.lanes.to_be_bytes());
            body.extend_from_slice(&salt);
            body.extend_from_slice(&nonce);
            let aead = derive(passphrase, &salt, cost)?;
            let mut sealed = der.clone();
            aead.seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&body[..]),
                &mut sealed,
            )
            .map_err(|_| Error::Crypto {
                operation: "AES-256-GCM sealing",
            })?;
            body.extend_from_slice(&sealed);
            (ENCRYPTED_LABEL, body)
        }
    };
    pem_rfc7468::encode_string(label, pem_rfc7468::LineEnding::LF, &body).map_err(|_| {
        Error::Crypto {
            operation: "PEM encoding",
        }
    })
}

/// Whether a key file is encrypted (so the caller knows to ask for a passphrase).
pub fn is_encrypted(pem: &str) -> bool {
    pem.trim_start()
        .starts_with(&format!("-----BEGIN {ENCRYPTED_LABEL}-----"))
}

fn read_u32(bytes: &[u8], at: usize) -> Result<u32, Error> {
    bytes
        .get(at..at + 4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_be_bytes)
        .ok_or_else(|| Error::MalformedKeyFile {
            reason: "truncated header".into(),
        })
}

/// Decodes a private key file. `passphrase` is asked for only when the file is encrypted.
pub fn decode_private(
    pem: &str,
    passphrase: impl FnOnce() -> Option<String>,
) -> Result<SigningKey, Error> {
    let mut der = open_pkcs8(pem, passphrase)?;
    let key = SigningKey::from_pkcs8_der(&der);
    der.fill(0);
    key
}

/// Opens a key file and returns the PKCS#8 DER inside (handle as secret). `passphrase` is asked
/// for only when the file is encrypted.
pub fn open_pkcs8(
    pem: &str,
    passphrase: impl FnOnce() -> Option<String>,
) -> Result<Vec<u8>, Error> {
    let (label, body) =
        pem_rfc7468::decode_vec(pem.trim().as_bytes()).map_err(|e| Error::MalformedKeyFile {
            reason: format!("not PEM ({e})"),
        })?;
    match label {
        PLAIN_LABEL => Ok(body),
        ENCRYPTED_LABEL => {
            if body.len() < HEADER_LEN + 16 || body.get(..4) != Some(&MAGIC[..]) {
                return Err(Error::MalformedKeyFile {
                    reason: "not a medsec encrypted key envelope".into(),
                });
            }
            if body.get(4) != Some(&1) {
                return Err(Error::MalformedKeyFile {
                    reason: "unsupported envelope version".into(),
                });
            }
            let cost = KdfCost {
                m_cost_kib: read_u32(&body, 5)?,
                t_cost: read_u32(&body, 9)?,
                lanes: read_u32(&body, 13)?,
            };
            if cost.m_cost_kib > MAX_M_COST_KIB
                || cost.t_cost > MAX_T_COST
                || cost.lanes > MAX_LANES
            {
                return Err(Error::MalformedKeyFile {
                    reason: "Argon2id costs above medsec's limits".into(),
                });
            }
            let (header, sealed) = body.split_at(HEADER_LEN);
            let salt = header.get(17..33).unwrap_or_default();
            let nonce: [u8; 12] = header
                .get(33..45)
                .and_then(|n| n.try_into().ok())
                .ok_or_else(|| Error::MalformedKeyFile {
                    reason: "truncated header".into(),
                })?;
            let passphrase = passphrase().ok_or(Error::PassphraseRequired)?;
            let aead = derive(&passphrase, salt, cost)?;
            let mut buf = sealed.to_vec();
            let plain = aead
                .open_in_place(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(header),
                    &mut buf,
                )
                .map_err(|_| Error::WrongPassphrase)?
                .to_vec();
            buf.fill(0);
            Ok(plain)
        }
        other => Err(Error::MalformedKeyFile {
            reason: format!("PEM label {other:?} is not a private key"),
        }),
    }
}
