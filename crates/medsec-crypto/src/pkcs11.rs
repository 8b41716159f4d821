//! Keys held in a PKCS#11 token: an HSM, a smart card, a TPM through `tpm2-pkcs11`, or SoftHSM
//! in tests. The private key is generated inside the token, marked sensitive and not extractable,
//! and every signature is made there; medsec only ever sees the public half.
//!
//! Keys are ECDSA P-256 (what every token and TLS 1.3 client authentication support). A key's
//! `CKA_ID` is the first 16 bytes of the SHA-256 of its public point, so whoever holds a
//! certificate finds its private key in the token from the certificate alone: nothing else has
//! to be stored, and a crash between generating a key and storing its certificate leaves only an
//! unused key behind (removed with [`Pkcs11Token::remove_other_keys`]).
//!
//! Signing uses the raw `CKM_ECDSA` mechanism over a SHA-256 digest computed here (the one
//! mechanism every token implements) and converts the token's `r || s` into the DER form that
//! TUF, X.509 and TLS use.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;

use crate::{Error, KeySource, PublicKey, Scheme, digest};

/// DER of the named-curve OID prime256v1 (1.2.840.10045.3.1.7), the `CKA_EC_PARAMS` of P-256.
const P256_PARAMS: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

fn token_error(operation: &'static str) -> impl Fn(CkError) -> Error {
    move |e| Error::Token {
        operation,
        reason: e.to_string(),
    }
}

/// A PKCS#11 module loaded once per process: `C_Initialize` may be called only once per module,
/// and several agents (the demo's simulated fleet) share one process.
fn module(path: &Path) -> Result<Pkcs11, Error> {
    static MODULES: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
    let mut modules = MODULES
        .get_or_init(|| Mutex::new(HashMap::new()))
        .lock()
        .map_err(|_| Error::Token {
            operation: "loading the PKCS#11 module",
            reason: "a thread panicked while loading it".into(),
        })?;
    if let Some(m) = modules.get(path) {
        return Ok(m.clone());
    }
    let ctx = Pkcs11::new(path).map_err(|e| Error::Token {
        operation: "loading the PKCS#11 module",
        reason: format!("{}: {e}", path.display()),
    })?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(token_error("initialising the PKCS#11 module")(e)),
    }
    modules.insert(path.to_owned(), ctx.clone());
    Ok(ctx)
}

/// One token, logged in as its user. Its session is shared by its keys (PKCS#11 sessions are
/// not to be used by two threads at once, hence the lock).
pub struct Pkcs11Token {
    session: Mutex<Session>,
    label: String,
}

impl fmt::Debug for Pkcs11Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the PIN.
        write!(f, "Pkcs11Token({:?})", self.label)
    }
}

impl Pkcs11Token {
    /// Opens the token labelled `token_label` through the module at `module_path`, and logs in
    /// with `pin`.
    pub fn open(module_path: &Path, token_label: &str, pin: &str) -> Result<Arc<Self>, Error> {
        let ctx = module(module_path)?;
        let slots = ctx
            .get_slots_with_token()
            .map_err(token_error("listing PKCS#11 slots"))?;
        let mut labels = Vec::new();
        let mut found = None;
        for slot in slots {
            let info = ctx
                .get_token_info(slot)
                .map_err(token_error("reading PKCS#11 token information"))?;
            let label = info.label().trim_end().to_owned();
            if label == token_label {
                found = Some(slot);
                break;
            }
            labels.push(label);
        }
        let slot = found.ok_or_else(|| Error::Token {
            operation: "finding the PKCS#11 token",
            reason: format!("no token labelled {token_label:?} (tokens present: {labels:?})"),
        })?;
        let session = ctx
            .open_rw_session(slot)
            .map_err(token_error("opening a PKCS#11 session"))?;
        match session.login(UserType::User, Some(&AuthPin::new(pin.into()))) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(CkError::Pkcs11(RvError::PinIncorrect, _)) => {
                return Err(Error::Token {
                    operation: "logging in to the PKCS#11 token",
                    reason: format!("wrong PIN for token {token_label:?}"),
                });
            }
            Err(e) => return Err(token_error("logging in to the PKCS#11 token")(e)),
        }
        Ok(Arc::new(Self {
            session: Mutex::new(session),
            label: token_label.to_owned(),
        }))
    }

    fn with_session<T>(&self, f: impl FnOnce(&Session) -> Result<T, Error>) -> Result<T, Error> {
        let session = self.session.lock().map_err(|_| Error::Token {
            operation: "using the PKCS#11 session",
            reason: "a thread panicked while using it".into(),
        })?;
        f(&session)
    }

    /// Generates a P-256 key pair inside the token, labelled `label`; the private half is
    /// sensitive and never leaves the token.
    pub fn generate(self: &Arc<Self>, label: &str) -> Result<Pkcs11Key, Error> {
        let (public, handle) = self.with_session(|s| {
            let public_template = [
                Attribute::Token(true),
                Attribute::Private(false),
                Attribute::KeyType(KeyType::EC),
                Attribute::EcParams(P256_PARAMS.to_vec()),
                Attribute::Verify(true),
                Attribute::Label(label.as_bytes().to_vec()),
            ];
            let private_template = [
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::Sign(true),
                Attribute::Label(label.as_bytes().to_vec()),
            ];
            let (pub_handle, priv_handle) = s
                .generate_key_pair(
                    &Mechanism::EccKeyPairGen,
                    &public_template,
                    &private_template,
                )
                .map_err(token_error("generating a key in the PKCS#11 token"))?;
            let point = ec_point(s, pub_handle)?;
            let public = PublicKey::from_raw(Scheme::EcdsaP256Sha256, point)?;
            // The id ties both halves to the public key, so a certificate finds them.
            let id = key_id(&public);
            for handle in [pub_handle, priv_handle] {
                s.update_attributes(handle, &[Attribute::Id(id.clone())])
                    .map_err(token_error("labelling the new PKCS#11 key"))?;
            }
            Ok((public, priv_handle))
        })?;
        Ok(Pkcs11Key {
            token: Arc::clone(self),
            handle,
            public,
        })
    }

    /// The private key in the token whose public half is `public` (for example the key of the
    /// device certificate).
    pub fn find(self: &Arc<Self>, public: &PublicKey) -> Result<Pkcs11Key, Error> {
        if public.scheme() != Scheme::EcdsaP256Sha256 {
            return Err(Error::Token {
                operation: "finding the key in the PKCS#11 token",
                reason: format!(
                    "medsec keeps only P-256 keys in tokens, not {}",
                    public.scheme()
                ),
            });
        }
        let handle = self.with_session(|s| {
            let found = s
                .find_objects(&[
                    Attribute::Class(ObjectClass::PRIVATE_KEY),
                    Attribute::Id(key_id(public)),
                ])
                .map_err(token_error("searching the PKCS#11 token"))?;
            found.first().copied().ok_or_else(|| Error::Token {
                operation: "finding the key in the PKCS#11 token",
                reason: format!(
                    "token {:?} holds no private key for this certificate (id {})",
                    self.label,
                    hex::encode(key_id(public))
                ),
            })
        })?;
        Ok(Pkcs11Key {
            token: Arc::clone(self),
            handle,
            public: public.clone(),
        })
    }

    /// Removes the keys labelled `label` other than `keep` (the keys of earlier certificates,
    /// or of a renewal that did not finish). Returns how many objects were removed.
    pub fn remove_other_keys(&self, label: &str, keep: &PublicKey) -> Result<usize, Error> {
        let keep_id = key_id(keep);
        self.with_session(|s| {
            let objects = s
                .find_objects(&[Attribute::Label(label.as_bytes().to_vec())])
                .map_err(token_error("searching the PKCS#11 token"))?;
            let mut removed = 0;
            for handle in objects {
                let attrs = s
                    .get_attributes(handle, &[AttributeType::Id])
                    .map_err(token_error("reading a PKCS#11 key id"))?;
                let same = attrs
                    .iter()
                    .any(|a| matches!(a, Attribute::Id(id) if *id == keep_id));
                if !same {
                    s.destroy_object(handle)
                        .map_err(token_error("removing an old PKCS#11 key"))?;
                    removed += 1;
                }
            }
            Ok(removed)
        })
    }
}

/// The public point of an EC public key object: `CKA_EC_POINT` is a DER OCTET STRING around the
/// uncompressed point (some tokens give the bare point; both are accepted).
fn ec_point(s: &Session, handle: ObjectHandle) -> Result<Vec<u8>, Error> {
    let attrs = s
        .get_attributes(handle, &[AttributeType::EcPoint])
        .map_err(token_error("reading the public key from the PKCS#11 token"))?;
    let raw = attrs
        .into_iter()
        .find_map(|a| match a {
            Attribute::EcPoint(p) => Some(p),
            _ => None,
        })
        .ok_or(Error::MalformedPublicKey {
            scheme: "ecdsa-sha2-nistp256",
            reason: "the token returned no EC point",
        })?;
    match raw.as_slice() {
        [0x04, 65, rest @ ..] if rest.len() == 65 => Ok(rest.to_vec()),
        [0x04, ..] if raw.len() == 65 => Ok(raw),
        _ => Err(Error::MalformedPublicKey {
            scheme: "ecdsa-sha2-nistp256",
            reason: "the token's EC point is not an uncompressed P-256 point",
        }),
    }
}

/// `CKA_ID` of a key: the first 16 bytes of the SHA-256 of its public point.
fn key_id(public: &PublicKey) -> Vec<u8> {
    digest::sha256(public.as_bytes())
        .get(..16)
        .map(<[u8]>::to_vec)
        .unwrap_or_default()
}

/// A P-256 private key inside a PKCS#11 token.
pub struct Pkcs11Key {
    token: Arc<Pkcs11Token>,
    handle: ObjectHandle,
    public: PublicKey,
}

impl fmt::Debug for Pkcs11Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pkcs11Key({:?}, {:?})", self.token, self.public)
    }
}

impl KeySource for Pkcs11Key {
    fn public_key(&self) -> &PublicKey {
        &self.public
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        let digest = digest::sha256(message);
        let raw = self.token.with_session(|s| {
            s.sign(&Mechanism::Ecdsa, self.handle, &digest)
                .map_err(token_error("signing in the PKCS#11 token"))
        })?;
        crate::der::ecdsa_signature_from_raw(&raw).ok_or(Error::Token {
            operation: "signing in the PKCS#11 token",
            reason: format!("the token returned a {}-byte signature, not 64", raw.len()),
        })
    }
}
