//! Bearer secrets: enrolment tokens and operator API tokens. A token is 256 random bits behind a
//! prefix that says what it is; only its SHA-256 is stored (the secret is high-entropy, so a slow
//! hash adds nothing), and the secret is shown once, when made.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use medsec_api::tokens as api;
use medsec_store::{EnrolmentToken, OperatorToken, Store};

use crate::Error;

/// Prefix of enrolment tokens.
pub const ENROLMENT_PREFIX: &str = "medsec-enrol-";
/// Prefix of operator tokens.
pub const OPERATOR_PREFIX: &str = "medsec-op-";

/// The state of a device taken out of service (`POST /api/v1/devices/{id}/decommission`).
pub const DECOMMISSIONED: &str = "decommissioned";

/// Roles operators can hold (the shipped policies give them meaning).
pub const ROLES: &[&str] = &[
    "admin", "security", "enroller", "release", "viewer", "auditor", "monitor",
];

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
    re_register: bool,
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
    // A decommissioned device keeps its history and its name: a new token for that name is
    // a new life for it, and only an explicit re-registration gives one.
    if !new && store.device(device.as_str()).await?.state == DECOMMISSIONED {
        if !re_register {
            return Err(Error::Refused {
                reason: format!(
                    "device {} is decommissioned; to give its name to a device again, \
                     re-register it explicitly (--re-register, \"re_register\": true)",
                    device.as_str()
                ),
            });
        }
        store
            .set_device_state(device.as_str(), "registered")
            .await?;
    }
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
            used_at_ms: None,
            revoked_at_ms: None,
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
            revoked_at_ms: None,
        })
        .await?;
    Ok(token)
}

/// A token id as lists show it: 16 lowercase hex digits. Anything else is refused before the
/// store is read.
fn check_id(id: &str) -> Result<(), Error> {
    if id.len() == 16
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(())
    } else {
        Err(Error::Refused {
            reason: format!(
                "token id {id:?} is not 16 lowercase hex digits (see the id column of the token list)"
            ),
        })
    }
}

/// The one token whose id is `id`: `NotFound` if none, refused if two share it (64-bit ids of
/// random secrets collide only in theory, but a revocation must never pick one by chance).
fn one_with_id<T>(id: &str, found: Vec<T>, what: &'static str) -> Result<T, Error> {
    let mut found = found.into_iter();
    match (found.next(), found.next()) {
        (Some(t), None) => Ok(t),
        (None, _) => Err(medsec_store::Error::NotFound {
            what,
            key: id.to_owned(),
        }
        .into()),
        (Some(_), Some(_)) => Err(Error::Refused {
            reason: format!("more than one {what} has id {id}; revoke by the token itself"),
        }),
    }
}

/// Revokes the operator token with public id `id`; it is refused from its next request on.
pub async fn revoke_operator_token<S: Store>(
    store: &S,
    id: &str,
    now_ms: i64,
) -> Result<OperatorToken, Error> {
    check_id(id)?;
    let matching = store
        .operator_tokens()
        .await?
        .into_iter()
        .filter(|t| t.id() == id)
        .collect();
    let token = one_with_id(id, matching, "operator token")?;
    Ok(store
        .revoke_operator_token(&token.token_sha256, now_ms)
        .await?)
}

/// Revokes the unused enrolment token with public id `id`.
pub async fn revoke_enrolment_token<S: Store>(
    store: &S,
    id: &str,
    now_ms: i64,
) -> Result<EnrolmentToken, Error> {
    check_id(id)?;
    let matching = store
        .enrolment_tokens(None)
        .await?
        .into_iter()
        .filter(|t| t.id() == id)
        .collect();
    let token = one_with_id(id, matching, "enrolment token")?;
    Ok(store
        .revoke_enrolment_token(&token.token_sha256, now_ms)
        .await?)
}

/// An operator token as lists show it, its state judged at `now_ms`.
pub fn operator_view(t: &OperatorToken, now_ms: i64) -> api::OperatorToken {
    let state = match t.refusal(now_ms) {
        None => "live",
        Some(_) if t.revoked_at_ms.is_some() => "revoked",
        Some(_) => "expired",
    };
    api::OperatorToken {
        id: t.id(),
        name: t.name.clone(),
        roles: t.roles.clone(),
        state: state.into(),
        created_at_ms: t.created_at_ms,
        expires_at_ms: t.expires_at_ms,
        revoked_at_ms: t.revoked_at_ms,
    }
}

/// An enrolment token as lists show it, its state judged at `now_ms`.
pub fn enrolment_view(t: &EnrolmentToken, now_ms: i64) -> api::EnrolmentToken {
    let state = if t.used_at_ms.is_some() {
        "used"
    } else if t.revoked_at_ms.is_some() {
        "revoked"
    } else if t.expires_at_ms <= now_ms {
        "expired"
    } else {
        "live"
    };
    api::EnrolmentToken {
        id: t.id(),
        device: t.device_id.clone(),
        created_by: t.created_by.clone(),
        state: state.into(),
        created_at_ms: t.created_at_ms,
        expires_at_ms: t.expires_at_ms,
        used_at_ms: t.used_at_ms,
        revoked_at_ms: t.revoked_at_ms,
    }
}
