use std::fmt;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{
    self as sig, ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair,
    Ed25519KeyPair, KeyPair, UnparsedPublicKey,
};

use crate::{Error, der, digest, mldsa};

/// A signature scheme. Its [`Scheme::name`] is written next to every key and signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Scheme {
    /// Ed25519 (RFC 8032).
    Ed25519,
    /// ECDSA on P-256 with SHA-256, DER signatures.
    EcdsaP256Sha256,
    /// RSASSA-PSS with SHA-256 and MGF1-SHA-256 (verification only).
    RsaPssSha256,
    /// Composite ML-DSA-65 + Ed25519 with SHA-512 pre-hash (draft-ietf-lamps-pq-composite-sigs).
    MlDsa65Ed25519,
}

/// Domain-separation prefix of every composite signature (draft-ietf-lamps-pq-composite-sigs).
const COMPOSITE_PREFIX: &[u8] = b"CompositeAlgorithmSignatures2025";
/// Label of `id-MLDSA65-Ed25519-SHA512`; also the ML-DSA context of its ML-DSA half.
const COMPOSITE_LABEL: &[u8] = b"COMPSIG-MLDSA65-Ed25519-SHA512";
const ED25519_LEN: usize = 32;
const ED25519_SIG_LEN: usize = 64;

impl Scheme {
    /// All schemes, in the order they are documented.
    pub const ALL: [Scheme; 4] = [
        Scheme::Ed25519,
        Scheme::EcdsaP256Sha256,
        Scheme::RsaPssSha256,
        Scheme::MlDsa65Ed25519,
    ];

    /// The scheme's name as TUF metadata writes it.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Ed25519 => "ed25519",
            Scheme::EcdsaP256Sha256 => "ecdsa-sha2-nistp256",
            Scheme::RsaPssSha256 => "rsassa-pss-sha256",
            Scheme::MlDsa65Ed25519 => "id-MLDSA65-Ed25519-SHA512",
        }
    }

    /// The TUF `keytype` medsec writes for keys of this scheme.
    pub fn keytype(self) -> &'static str {
        match self {
            Scheme::Ed25519 => "ed25519",
            Scheme::EcdsaP256Sha256 => "ecdsa",
            Scheme::RsaPssSha256 => "rsa",
            Scheme::MlDsa65Ed25519 => "mldsa65-ed25519",
        }
    }

    /// Looks a scheme up by name.
    pub fn from_name(name: &str) -> Result<Self, Error> {
        Scheme::ALL
            .into_iter()
            .find(|s| s.name() == name)
            .ok_or_else(|| Error::UnknownScheme {
                name: name.to_owned(),
            })
    }

    fn accepts_keytype(self, keytype: &str) -> bool {
        match self {
            // securesystemslib has written both spellings for ECDSA keys.
            Scheme::EcdsaP256Sha256 => keytype == "ecdsa" || keytype == "ecdsa-sha2-nistp256",
            _ => keytype == self.keytype(),
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A public key with its scheme.
///
/// The bytes are the scheme's raw form: Ed25519 32 bytes, P-256 an uncompressed point, RSA a PKCS#1
/// `RSAPublicKey`, composite the ML-DSA-65 key followed by the Ed25519 key (1984 bytes).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PublicKey {
    scheme: Scheme,
    bytes: Vec<u8>,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix: String = hex::encode(self.bytes.get(..8).unwrap_or(&self.bytes));
        write!(f, "PublicKey({}, {prefix}…)", self.scheme)
    }
}

impl PublicKey {
    /// Builds a key from the scheme's raw bytes, checking their shape.
    pub fn from_raw(scheme: Scheme, bytes: Vec<u8>) -> Result<Self, Error> {
        let bad = |reason| Error::MalformedPublicKey {
            scheme: scheme.name(),
            reason,
        };
        match scheme {
            Scheme::Ed25519 if bytes.len() != ED25519_LEN => {
                return Err(bad("an Ed25519 key is 32 bytes"));
            }
            Scheme::EcdsaP256Sha256 if bytes.len() != 65 || bytes.first() != Some(&4) => {
                return Err(bad("a P-256 key is an uncompressed 65-byte point"));
            }
            Scheme::MlDsa65Ed25519 if bytes.len() != mldsa::PUBLIC_KEY_LEN + ED25519_LEN => {
                return Err(bad("a composite ML-DSA-65/Ed25519 key is 1984 bytes"));
            }
            _ => {}
        }
        Ok(Self { scheme, bytes })
    }

    /// The scheme.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The raw key bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Decodes a key as TUF metadata carries it: `keyval.public` is hex for Ed25519 and the
    /// composite, a PEM SubjectPublicKeyInfo for ECDSA and RSA.
    pub fn from_tuf(keytype: &str, scheme: &str, public: &str) -> Result<Self, Error> {
        let scheme = Scheme::from_name(scheme)?;
        if !scheme.accepts_keytype(keytype) {
            return Err(Error::KeyTypeMismatch {
                keytype: keytype.to_owned(),
                scheme: scheme.name().to_owned(),
            });
        }
        let bad = |reason| Error::MalformedPublicKey {
            scheme: scheme.name(),
            reason,
        };
        match scheme {
            Scheme::Ed25519 | Scheme::MlDsa65Ed25519 => {
                let bytes = hex::decode(public).map_err(|_| bad("public key is not hex"))?;
                Self::from_raw(scheme, bytes)
            }
            Scheme::EcdsaP256Sha256 | Scheme::RsaPssSha256 => {
                let (label, spki) = pem_rfc7468::decode_vec(public.trim().as_bytes())
                    .map_err(|_| bad("public key is not PEM"))?;
                if label != "PUBLIC KEY" {
                    return Err(bad("PEM label is not PUBLIC KEY"));
                }
                let (alg, key) =
                    der::parse_spki(&spki).ok_or(bad("not a DER SubjectPublicKeyInfo"))?;
                let alg_ok = match scheme {
                    Scheme::EcdsaP256Sha256 => alg == der::ALG_EC_P256,
                    _ => {
                        alg == der::ALG_RSA
                            || alg
                                .get(2..2 + der::OID_RSA_PSS.len())
                                .is_some_and(|oid| oid == der::OID_RSA_PSS)
                    }
                };
                if !alg_ok {
                    return Err(bad("SubjectPublicKeyInfo names another algorithm"));
                }
                Self::from_raw(scheme, key.to_vec())
            }
        }
    }

    /// Reads an ECDSA P-256 or Ed25519 key from a DER SubjectPublicKeyInfo (as certificates
    /// carry it).
    pub fn from_spki_der(spki: &[u8]) -> Result<Self, Error> {
        let (alg, key) = der::parse_spki(spki).ok_or(Error::MalformedPublicKey {
            scheme: "X.509",
            reason: "not a DER SubjectPublicKeyInfo",
        })?;
        if alg == der::ALG_EC_P256 {
            Self::from_raw(Scheme::EcdsaP256Sha256, key.to_vec())
        } else if alg == der::ALG_ED25519 {
            Self::from_raw(Scheme::Ed25519, key.to_vec())
        } else {
            Err(Error::MalformedPublicKey {
                scheme: "X.509",
                reason: "the key is neither ECDSA P-256 nor Ed25519",
            })
        }
    }

    /// The DER SubjectPublicKeyInfo of an ECDSA P-256 or Ed25519 key (`None` for other schemes).
    pub fn to_spki_der(&self) -> Option<Vec<u8>> {
        match self.scheme {
            Scheme::EcdsaP256Sha256 => Some(der::encode_spki(der::ALG_EC_P256, &self.bytes)),
            Scheme::Ed25519 => Some(der::encode_spki(der::ALG_ED25519, &self.bytes)),
            Scheme::RsaPssSha256 | Scheme::MlDsa65Ed25519 => None,
        }
    }

    /// Encodes `keyval.public` as TUF metadata carries it (see [`PublicKey::from_tuf`]).
    pub fn to_tuf_public(&self) -> String {
        match self.scheme {
            Scheme::Ed25519 | Scheme::MlDsa65Ed25519 => hex::encode(&self.bytes),
            Scheme::EcdsaP256Sha256 | Scheme::RsaPssSha256 => {
                let alg = if self.scheme == Scheme::EcdsaP256Sha256 {
                    der::ALG_EC_P256
                } else {
                    der::ALG_RSA
                };
                let spki = der::encode_spki(alg, &self.bytes);
                let mut pem =
                    pem_rfc7468::encode_string("PUBLIC KEY", pem_rfc7468::LineEnding::LF, &spki)
                        .unwrap_or_default();
                if !pem.ends_with('\n') {
                    pem.push('\n');
                }
                pem
            }
        }
    }

    /// Verifies `signature` over `message` (empty composite context, as TUF uses).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), Error> {
        self.verify_with_context(message, &[], signature)
    }

    /// Verifies with a composite context string (ignored by the other schemes, which have none).
    pub fn verify_with_context(
        &self,
        message: &[u8],
        ctx: &[u8],
        signature: &[u8],
    ) -> Result<(), Error> {
        let bad = Error::BadSignature {
            scheme: self.scheme.name(),
        };
        let algorithm: &dyn sig::VerificationAlgorithm = match self.scheme {
            Scheme::Ed25519 => &sig::ED25519,
            Scheme::EcdsaP256Sha256 => &ECDSA_P256_SHA256_ASN1,
            Scheme::RsaPssSha256 => &sig::RSA_PSS_2048_8192_SHA256,
            Scheme::MlDsa65Ed25519 => return self.verify_composite(message, ctx, signature),
        };
        UnparsedPublicKey::new(algorithm, &self.bytes)
            .verify(message, signature)
            .map_err(|_| bad)
    }

    fn verify_composite(&self, message: &[u8], ctx: &[u8], signature: &[u8]) -> Result<(), Error> {
        let bad = || Error::BadSignature {
            scheme: self.scheme.name(),
        };
        if signature.len() != mldsa::SIGNATURE_LEN + ED25519_SIG_LEN {
            return Err(bad());
        }
        let m_prime = composite_message(message, ctx).ok_or_else(bad)?;
        let (ml_pk, ed_pk) = self.bytes.split_at(mldsa::PUBLIC_KEY_LEN);
        let (ml_sig, ed_sig) = signature.split_at(mldsa::SIGNATURE_LEN);
        // Both halves are always checked, so timing does not reveal which one failed first.
        let ml_ok = mldsa::verify(ml_pk, &m_prime, COMPOSITE_LABEL, ml_sig);
        let ed_ok = UnparsedPublicKey::new(&sig::ED25519, ed_pk)
            .verify(&m_prime, ed_sig)
            .is_ok();
        match (ml_ok, ed_ok) {
            (true, true) => Ok(()),
            (false, true) => Err(Error::HybridHalfFailed { half: "ML-DSA-65" }),
            (true, false) => Err(Error::HybridHalfFailed { half: "Ed25519" }),
            (false, false) => Err(bad()),
        }
    }
}

/// M' = Prefix || Label || len(ctx) || ctx || SHA-512(M); `None` when ctx is over 255 bytes.
fn composite_message(message: &[u8], ctx: &[u8]) -> Option<Vec<u8>> {
    let ctx_len = u8::try_from(ctx.len()).ok()?;
    let ph = digest::hash(digest::HashAlgorithm::Sha512, message);
    let mut m = Vec::with_capacity(COMPOSITE_PREFIX.len() + COMPOSITE_LABEL.len() + 1 + 255 + 64);
    m.extend_from_slice(COMPOSITE_PREFIX);
    m.extend_from_slice(COMPOSITE_LABEL);
    m.push(ctx_len);
    m.extend_from_slice(ctx);
    m.extend_from_slice(&ph);
    Some(m)
}

/// Anything that can sign with a private key it may not reveal: an in-memory key, and later a
/// PKCS#11 token or a TPM.
pub trait KeySource: Send + Sync {
    /// The public half.
    fn public_key(&self) -> &PublicKey;
    /// Signs `message` under the key's scheme.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error>;
}

enum Private {
    Ed25519(Ed25519KeyPair),
    Ecdsa(EcdsaKeyPair),
    Composite {
        mldsa_seed: [u8; 32],
        ed_seed: [u8; 32],
        ed: Ed25519KeyPair,
    },
}

/// A private key held in memory.
pub struct SigningKey {
    private: Private,
    public: PublicKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        write!(f, "SigningKey({:?})", self.public)
    }
}

fn random_seed() -> Result<[u8; 32], Error> {
    let mut seed = [0u8; 32];
    SystemRandom::new()
        .fill(&mut seed)
        .map_err(|_| Error::Crypto {
            operation: "random number generation",
        })?;
    Ok(seed)
}

impl SigningKey {
    /// Generates a new key.
    pub fn generate(scheme: Scheme) -> Result<Self, Error> {
        match scheme {
            Scheme::Ed25519 => {
                let pair = Ed25519KeyPair::from_seed_unchecked(&random_seed()?).map_err(|_| {
                    Error::Crypto {
                        operation: "Ed25519 key generation",
                    }
                })?;
                Self::from_ed25519(pair)
            }
            Scheme::EcdsaP256Sha256 => {
                let doc = EcdsaKeyPair::generate_pkcs8(
                    &ECDSA_P256_SHA256_ASN1_SIGNING,
                    &SystemRandom::new(),
                )
                .map_err(|_| Error::Crypto {
                    operation: "ECDSA key generation",
                })?;
                Self::from_pkcs8_der(doc.as_ref())
            }
            Scheme::RsaPssSha256 => Err(Error::VerifyOnly {
                scheme: scheme.name(),
            }),
            Scheme::MlDsa65Ed25519 => Self::composite_from_seeds(random_seed()?, random_seed()?),
        }
    }

    fn from_ed25519(pair: Ed25519KeyPair) -> Result<Self, Error> {
        let public = PublicKey::from_raw(Scheme::Ed25519, pair.public_key().as_ref().to_vec())?;
        Ok(Self {
            private: Private::Ed25519(pair),
            public,
        })
    }

    /// Builds a composite key from its two 32-byte seeds (ML-DSA-65 ξ, then the Ed25519 seed).
    pub fn composite_from_seeds(mldsa_seed: [u8; 32], ed_seed: [u8; 32]) -> Result<Self, Error> {
        let ed = Ed25519KeyPair::from_seed_unchecked(&ed_seed).map_err(|_| {
            Error::MalformedPrivateKey {
                reason: "bad Ed25519 seed",
            }
        })?;
        let mut bytes = mldsa::public_key_from_seed(&mldsa_seed);
        bytes.extend_from_slice(ed.public_key().as_ref());
        Ok(Self {
            public: PublicKey::from_raw(Scheme::MlDsa65Ed25519, bytes)?,
            private: Private::Composite {
                mldsa_seed,
                ed_seed,
                ed,
            },
        })
    }

    /// Reads a PKCS#8 `PrivateKeyInfo` (v1 or v2) of any scheme medsec signs with.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, Error> {
        let (alg, key) = der::parse_pkcs8(der)?;
        if alg == der::ALG_MLDSA65_ED25519 {
            let (ml, ed) = key.split_at_checked(32).ok_or(Error::MalformedPrivateKey {
                reason: "a composite private key is two 32-byte seeds",
            })?;
            let (Ok(ml), Ok(ed)) = (<[u8; 32]>::try_from(ml), <[u8; 32]>::try_from(ed)) else {
                return Err(Error::MalformedPrivateKey {
                    reason: "a composite private key is two 32-byte seeds",
                });
            };
            return Self::composite_from_seeds(ml, ed);
        }
        if let Ok(pair) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der) {
            return Self::from_ed25519(pair);
        }
        if let Ok(pair) = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, der) {
            let public =
                PublicKey::from_raw(Scheme::EcdsaP256Sha256, pair.public_key().as_ref().to_vec())?;
            return Ok(Self {
                private: Private::Ecdsa(pair),
                public,
            });
        }
        Err(Error::MalformedPrivateKey {
            reason: "not an Ed25519, P-256 or composite ML-DSA-65/Ed25519 PKCS#8 key",
        })
    }

    /// Writes the key as PKCS#8 v1 DER. Handle the result as secret.
    pub fn to_pkcs8_der(&self) -> Result<Vec<u8>, Error> {
        let failed = || Error::Crypto {
            operation: "PKCS#8 encoding",
        };
        match &self.private {
            Private::Ed25519(pair) => {
                Ok(pair.to_pkcs8v1().map_err(|_| failed())?.as_ref().to_vec())
            }
            Private::Ecdsa(pair) => Ok(pair.to_pkcs8v1().map_err(|_| failed())?.as_ref().to_vec()),
            Private::Composite {
                mldsa_seed,
                ed_seed,
                ..
            } => {
                let mut both = Vec::with_capacity(64);
                both.extend_from_slice(mldsa_seed);
                both.extend_from_slice(ed_seed);
                Ok(der::encode_pkcs8(der::ALG_MLDSA65_ED25519, &both))
            }
        }
    }

    /// Signs with a composite context string (other schemes ignore it).
    pub fn sign_with_context(&self, message: &[u8], ctx: &[u8]) -> Result<Vec<u8>, Error> {
        match &self.private {
            Private::Ed25519(pair) => Ok(pair.sign(message).as_ref().to_vec()),
            Private::Ecdsa(pair) => Ok(pair
                .sign(&SystemRandom::new(), message)
                .map_err(|_| Error::Crypto {
                    operation: "ECDSA signing",
                })?
                .as_ref()
                .to_vec()),
            Private::Composite { mldsa_seed, ed, .. } => {
                let m_prime = composite_message(message, ctx).ok_or(Error::Crypto {
                    operation: "composite signing: context over 255 bytes",
                })?;
                let mut out = mldsa::sign(mldsa_seed, &m_prime, COMPOSITE_LABEL)?;
                out.extend_from_slice(ed.sign(&m_prime).as_ref());
                Ok(out)
            }
        }
    }
}

impl KeySource for SigningKey {
    fn public_key(&self) -> &PublicKey {
        &self.public
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        self.sign_with_context(message, &[])
    }
}
