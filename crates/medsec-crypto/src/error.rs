/// Everything that can go wrong with keys and signatures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The scheme name is not one medsec knows.
    #[error(
        "unknown signature scheme {name:?} (known: ed25519, ecdsa-sha2-nistp256, rsassa-pss-sha256, id-MLDSA65-Ed25519-SHA512)"
    )]
    UnknownScheme {
        /// The name that was given.
        name: String,
    },
    /// The key type does not go with the scheme.
    #[error("key type {keytype:?} does not match scheme {scheme:?}")]
    KeyTypeMismatch {
        /// The key type that was given.
        keytype: String,
        /// The scheme that was given.
        scheme: String,
    },
    /// A public key could not be decoded.
    #[error("malformed {scheme} public key: {reason}")]
    MalformedPublicKey {
        /// The scheme of the key.
        scheme: &'static str,
        /// What was wrong.
        reason: &'static str,
    },
    /// A private key could not be decoded.
    #[error("malformed private key: {reason}")]
    MalformedPrivateKey {
        /// What was wrong.
        reason: &'static str,
    },
    /// A signature did not verify.
    #[error("{scheme} signature does not verify")]
    BadSignature {
        /// The scheme of the key.
        scheme: &'static str,
    },
    /// Only one half of a hybrid signature verified.
    #[error("hybrid signature rejected: the {half} half does not verify")]
    HybridHalfFailed {
        /// `ML-DSA-65` or `Ed25519`.
        half: &'static str,
    },
    /// The scheme can verify but medsec will not create keys of it.
    #[error("scheme {scheme} is supported for verification only")]
    VerifyOnly {
        /// The scheme.
        scheme: &'static str,
    },
    /// The passphrase does not open the key file.
    #[error("wrong passphrase, or the key file was modified")]
    WrongPassphrase,
    /// The key file is encrypted and no passphrase was available.
    #[error("the key file is encrypted: a passphrase is needed")]
    PassphraseRequired,
    /// The PEM or key-file envelope is malformed.
    #[error("malformed key file: {reason}")]
    MalformedKeyFile {
        /// What was wrong.
        reason: String,
    },
    /// A hardware token (PKCS#11) refused or failed an operation.
    #[error("{operation}: {reason}")]
    Token {
        /// What was being done.
        operation: &'static str,
        /// What the token said.
        reason: String,
    },
    /// The cryptographic library failed (for example, no randomness).
    #[error("cryptographic operation failed: {operation}")]
    Crypto {
        /// What was being done.
        operation: &'static str,
    },
}
