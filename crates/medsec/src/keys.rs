//! Private key files for the command line: where passphrases come from, and loading keys.

use std::cell::RefCell;
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use medsec_crypto::keyfile::{self, Protection};
use medsec_crypto::{KeySource as _, Scheme, SigningKey};
use medsec_tuf::{Key, KeyId};

/// Environment variable holding the key passphrase (for scripts and CI).
pub const PASSPHRASE_ENV: &str = "MEDSEC_PASSPHRASE";

/// Where the passphrase comes from: `--passphrase-file`, then `MEDSEC_PASSPHRASE`, then a prompt
/// on the terminal. Asked for at most once per command.
pub struct Passphrase {
    file: Option<PathBuf>,
    cached: RefCell<Option<String>>,
}

impl Passphrase {
    /// A passphrase source; a file must be readable by its owner only (it is read here, once,
    /// and refused by name otherwise).
    pub fn new(file: Option<PathBuf>) -> Result<Self> {
        let cached = match &file {
            Some(path) => Some(medsec_util::read_secret(path)?),
            None => None,
        };
        Ok(Self {
            file,
            cached: RefCell::new(cached),
        })
    }

    /// The passphrase, or `None` when there is no way to get one.
    pub fn get(&self, purpose: &str) -> Option<String> {
        if let Some(p) = self.cached.borrow().as_ref() {
            return Some(p.clone());
        }
        let value = if self.file.is_some() {
            // Read (and checked) by `new`.
            None
        } else if let Ok(v) = std::env::var(PASSPHRASE_ENV) {
            Some(v)
        } else if std::io::stdin().is_terminal() {
            rpassword::prompt_password(format!("passphrase for {purpose}: ")).ok()
        } else {
            None
        };
        self.cached.borrow_mut().clone_from(&value);
        value
    }

    /// How new private keys are protected.
    pub fn protection(&self, plaintext: bool) -> Result<Option<String>> {
        if plaintext {
            return Ok(None);
        }
        match self.get("the new keys") {
            Some(p) if !p.is_empty() => Ok(Some(p)),
            _ => bail!(
                "new private keys are encrypted: give a passphrase with --passphrase-file or \
                 {PASSPHRASE_ENV}, or pass --plaintext-keys to store them unencrypted"
            ),
        }
    }
}

/// A private key loaded from a file, with its TUF key id.
pub struct LoadedKey {
    pub keyid: KeyId,
    pub key: SigningKey,
}

pub fn load(path: &Path, passphrase: &Passphrase) -> Result<LoadedKey> {
    let pem = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read key file {}", path.display()))?;
    let key = keyfile::decode_private(&pem, || {
        passphrase.get(&path.display().to_string())
    })
    .map_err(|e| match e {
        medsec_crypto::Error::PassphraseRequired => anyhow::anyhow!(
            "key {} is encrypted: give its passphrase with --passphrase-file or {PASSPHRASE_ENV}",
            path.display()
        ),
        medsec_crypto::Error::WrongPassphrase => {
            anyhow::anyhow!("wrong passphrase for key {}", path.display())
        }
        other => anyhow::Error::new(other).context(format!("cannot load key {}", path.display())),
    })?;
    let keyid = Key::from_public(key.public_key()).key_id()?;
    Ok(LoadedKey { keyid, key })
}

/// Generates a key and writes it to `path` (mode 0600), refusing to overwrite.
pub fn generate(path: &Path, scheme: Scheme, passphrase: Option<&str>) -> Result<LoadedKey> {
    let key = SigningKey::generate(scheme)?;
    let protection = match passphrase {
        Some(p) => Protection::Passphrase(p),
        None => Protection::Plaintext,
    };
    let pem = keyfile::encode_private(&key, protection)?;
    write_private(path, pem.as_bytes())?;
    let public = Key::from_public(key.public_key());
    let keyid = public.key_id()?;
    // The public half beside it, so the right key can be picked without decrypting every key.
    std::fs::write(
        path.with_extension("pub"),
        serde_json::to_vec_pretty(&public)?,
    )
    .with_context(|| format!("cannot write {}", path.with_extension("pub").display()))?;
    Ok(LoadedKey { keyid, key })
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut f = options.open(path).with_context(|| {
        format!(
            "cannot create key file {} (does it exist already?)",
            path.display()
        )
    })?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

/// Parses a scheme given on the command line (`hybrid` is an alias for the composite).
pub fn parse_scheme(s: &str) -> Result<Scheme, String> {
    match s {
        "hybrid" | "pq" => Ok(Scheme::MlDsa65Ed25519),
        "ecdsa" | "p256" => Ok(Scheme::EcdsaP256Sha256),
        other => Scheme::from_name(other).map_err(|e| e.to_string()),
    }
}

/// The key id of the private key at `path`, from its `.pub` file when there is one (no
/// passphrase needed), else by loading the key.
pub fn key_id_of(path: &Path, passphrase: &Passphrase) -> Result<KeyId> {
    if let Ok(bytes) = std::fs::read(path.with_extension("pub"))
        && let Ok(key) = serde_json::from_slice::<Key>(&bytes)
    {
        return Ok(key.key_id()?);
    }
    Ok(load(path, passphrase)?.keyid)
}
