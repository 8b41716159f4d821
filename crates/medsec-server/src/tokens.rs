//! Bearer secrets: enrolment tokens and operator API tokens. A token is 256 random bits behind a
//! prefix that says what it is; only its SHA-256 is stored (the secret is high-entropy, so a slow
//! hash adds nothing), and the secret is shown once, when made.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use medsec_store::{EnrolmentToken, OperatorToken, Store};

use crate::Error;

/// Prefix of enrolment tokens.
pub const ENROLMENT_PREFIX: &str = "medsec-enrol-";
/// Prefix of operator tokens.
pub const OPERATOR_PREFIX: &str = "medsec-op-";

/// Roles operators can hold (the shipped policies give them meaning).
pub const ROLES: &[&str] = &["admin", "security", "enroller", "release", "viewer"];

/// `N` random bytes from the OS, URL-safe base64.
fn random<const N: usize>() -> Result<String, Error> {
    use aws_lc_rs::rand::SecureRandom as _;
    let mut bytes = [0u8; N];
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| medsec_crypto::Error::Crypto {
            operation: "random number generation",
        })?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

fn secret(prefix: &str) -> Result<String, Error> {
    Ok(format!("{prefix}{}", random::<32>()?))
}

/// A single-use nonce: 128 random bits, URL-safe base64.
pub fn nonce() -> Result<String, Error> {
    random::<16>()
}

/// SHA-256 of a token, as stored.
pub fn hash(token: &str) -> Vec<u8> {
    medsec_crypto::digest::sha256(token.as_bytes()).to_vec()
}

/// Model recorded for a device registered without one.
pub const UNSPECIFIED_MODEL: &str = "unspecified";

/// Registers `device` (if new), applies `inventory` to it, and makes a one-time enrolment token
/// for it, valid `ttl_secs`. Nothing is stored when the inventory or lifetime is refused.
pub async fn create_enrolment_token<S: Store>(
    store: &S,
    device: &medsec_pki::DeviceId,
    inventory: &crate::inventory::InventoryPatch,
    created_by: &str,
    now_ms: i64,
    ttl_secs: i64,
) -> Result<String, Error> {
    if !(60..=30 * 24 * 3600).contains(&ttl_secs) {
        return Err(Error::Config {
            reason: format!("enrolment token lifetime {ttl_secs}s is outside 60s to 30 days"),
        });
    }
    inventory.check()?;
    let model = inventory.model.as_deref().unwrap_or(UNSPECIFIED_MODEL);
    let new = store
        .register_device(device.as_str(), model, now_ms)
        .await?;
    let rest = crate::inventory::InventoryPatch {
        // A new device already has the model it was registered with.
        model: if new { None } else { inventory.model.clone() },
        ..inventory.clone()
    };
    if !rest.is_empty() {
        crate::inventory::update(store, device.as_str(), &rest).await?;
    }
    let token = secret(ENROLMENT_PREFIX)?;
    store
        .create_enrolment_token(&EnrolmentToken {
            token_sha256: hash(&token),
            device_id: device.as_str().to_owned(),
            created_by: created_by.to_owned(),
            created_at_ms: now_ms,
            expires_at_ms: now_ms.saturating_add(ttl_secs.saturating_mul(1000)),
        })
        .await?;
    Ok(token)
}

/// Makes an operator token with `roles`, valid `ttl_secs`.
pub async fn create_operator_token<S: Store>(
    store: &S,
    name: &str,
    roles: &[String],
    now_ms: i64,
    ttl_secs: i64,
) -> Result<String, Error> {
    if let Some(bad) = roles.iter().find(|r| !ROLES.contains(&r.as_str())) {
        return Err(Error::Config {
            reason: format!("unknown role {bad:?}: use {}", ROLES.join(", ")),
        });
    }
    if !(1..=366 * 24 * 3600).contains(&ttl_secs) {
        return Err(Error::Config {
            reason: format!("operator token lifetime {ttl_secs}s is outside 1s to 366 days"),
        });
    }
    if name.is_empty() || name.len() > 64 || name.chars().any(|c| c.is_control()) {
        return Err(Error::Config {
            reason: "operator name must be 1 to 64 printable characters".into(),
        });
    }
    let token = secret(OPERATOR_PREFIX)?;
    store
        .create_operator_token(&OperatorToken {
            token_sha256: hash(&token),
            name: name.to_owned(),
            roles: roles.to_vec(),
            created_at_ms: now_ms,
            expires_at_ms: now_ms.saturating_add(ttl_secs.saturating_mul(1000)),
        })
        .await?;
    Ok(token)
}
