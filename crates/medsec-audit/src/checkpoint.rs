//! Witness co-signatures in the transparency-log conventions: a tree head written as a
//! C2SP `tlog-checkpoint` body, co-signed as C2SP `tlog-cosignature` v1 specifies, and carried
//! as a C2SP `signed-note` signature line. Written by hand because no maintained Rust crate
//! implements these formats; they are a few lines each and tested against their specification's
//! rules (key hash, signed message, line layout).
//!
//! A witness holds the last head it co-signed. It co-signs a new head only after checking a
//! consistency proof from the one it holds, and never co-signs two heads that disagree, so a
//! co-signed head is evidence, outside the log's host, of what the log held: a rewrite or a
//! truncation made later, even with the log's own key, no longer matches it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use medsec_crypto::{KeySource, PublicKey, Scheme};

use crate::{Error, Hash};

/// The signature type byte of a `cosignature/v1` key (C2SP tlog-cosignature).
const COSIGNATURE_V1: u8 = 0x04;

/// The checkpoint body of a tree head: origin, size, root (base64), each on its own line.
pub fn body(origin: &str, tree_size: u64, root: &Hash) -> String {
    format!("{origin}\n{tree_size}\n{}\n", STANDARD.encode(root))
}

/// The origin line medsec's audit log uses: unique per log key.
pub fn origin(log_key: &PublicKey) -> String {
    let id = medsec_crypto::digest::sha256(log_key.as_bytes());
    format!("medsec.audit/{}", hex::encode(&id[..8]))
}

/// A note key's 4-byte hash: SHA-256 of name, newline, signature type, public key.
fn key_hash(name: &str, public: &[u8]) -> [u8; 4] {
    let mut m = name.as_bytes().to_vec();
    m.push(b'\n');
    m.push(COSIGNATURE_V1);
    m.extend_from_slice(public);
    let h = medsec_crypto::digest::sha256(&m);
    [h[0], h[1], h[2], h[3]]
}

/// The message a `cosignature/v1` signs: a header naming the format and time, then the body.
fn message(time_secs: u64, body: &str) -> Vec<u8> {
    format!("cosignature/v1\ntime {time_secs}\n{body}").into_bytes()
}

fn check_name(name: &str) -> Result<(), Error> {
    if name.is_empty() || name.contains('+') || name.chars().any(char::is_whitespace) {
        return Err(Error::Malformed {
            reason: format!("witness name {name:?} must be non-empty, without spaces or '+'"),
        });
    }
    Ok(())
}

/// The witness's verifier key in note form: `name+hash+base64(type || public key)`.
pub fn verifier_key(name: &str, key: &PublicKey) -> Result<String, Error> {
    check_name(name)?;
    if key.scheme() != Scheme::Ed25519 {
        return Err(Error::Malformed {
            reason: "a cosignature/v1 key is Ed25519".into(),
        });
    }
    let mut typed = vec![COSIGNATURE_V1];
    typed.extend_from_slice(key.as_bytes());
    Ok(format!(
        "{name}+{}+{}",
        hex::encode(key_hash(name, key.as_bytes())),
        STANDARD.encode(typed)
    ))
}

/// Reads a verifier key written by [`verifier_key`]: its name and public key.
pub fn parse_verifier_key(text: &str) -> Result<(String, PublicKey), Error> {
    let bad = |reason: &str| Error::Malformed {
        reason: format!("witness key: {reason}"),
    };
    // The name and the hash hold no '+'; the base64 key may.
    let mut parts = text.trim().splitn(3, '+');
    let (Some(name), Some(hash), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad("not name+hash+key"));
    };
    check_name(name)?;
    let typed = STANDARD.decode(key).map_err(|_| bad("key is not base64"))?;
    let Some((&COSIGNATURE_V1, public)) = typed.split_first() else {
        return Err(bad("not a cosignature/v1 key"));
    };
    if hex::encode(key_hash(name, public)) != hash {
        return Err(bad("its hash does not match its name and key"));
    }
    let key =
        PublicKey::from_raw(Scheme::Ed25519, public.to_vec()).map_err(|e| bad(&e.to_string()))?;
    Ok((name.to_owned(), key))
}

/// Co-signs `body` at `time_secs` as the witness `name`: the note signature line, without its
/// newline (`— name base64(key hash || time || signature)`).
pub fn cosign(
    name: &str,
    key: &dyn KeySource,
    body: &str,
    time_secs: u64,
) -> Result<String, Error> {
    check_name(name)?;
    let signature = key.sign(&message(time_secs, body))?;
    let mut blob = key_hash(name, key.public_key().as_bytes()).to_vec();
    blob.extend_from_slice(&time_secs.to_be_bytes());
    blob.extend_from_slice(&signature);
    Ok(format!("\u{2014} {name} {}", STANDARD.encode(blob)))
}

/// The time of `name`'s co-signature on `body` among a note's signature `lines`, once checked
/// against `key`; an error if there is none or it does not verify.
pub fn verify_cosignature(
    lines: &str,
    body: &str,
    name: &str,
    key: &PublicKey,
) -> Result<u64, Error> {
    let hash = key_hash(name, key.as_bytes());
    let prefix = format!("\u{2014} {name} ");
    for line in lines.lines() {
        let Some(encoded) = line.strip_prefix(&prefix) else {
            continue;
        };
        let Ok(blob) = STANDARD.decode(encoded) else {
            continue;
        };
        // key hash (4) || time (8, big-endian) || Ed25519 signature (64)
        let Some((got, rest)) = blob.split_first_chunk::<4>() else {
            continue;
        };
        let Some((time, signature)) = rest.split_first_chunk::<8>() else {
            continue;
        };
        if *got != hash || signature.len() != 64 {
            continue;
        }
        let time = u64::from_be_bytes(*time);
        key.verify(&message(time, body), signature)?;
        return Ok(time);
    }
    Err(Error::Malformed {
        reason: format!("no co-signature of witness {name} on this checkpoint"),
    })
}

/// A note: a body, a blank line, signature lines.
pub fn note(body: &str, signature_lines: &[String]) -> String {
    let mut n = format!("{body}\n");
    for l in signature_lines {
        n.push_str(l);
        n.push('\n');
    }
    n
}

/// Splits a note into its body and its signature lines.
pub fn split_note(note: &str) -> Result<(&str, &str), Error> {
    note.find("\n\n")
        .map(|i| (&note[..=i], &note[i + 2..]))
        .ok_or_else(|| Error::Malformed {
            reason: "a note is a body, a blank line and signatures".into(),
        })
}

/// The size and root a checkpoint body states, and its origin.
pub fn parse_body(body: &str) -> Result<(String, u64, Hash), Error> {
    let bad = |reason: &str| Error::Malformed {
        reason: format!("checkpoint: {reason}"),
    };
    let mut lines = body.lines();
    let origin = lines.next().ok_or_else(|| bad("no origin"))?.to_owned();
    let size = lines
        .next()
        .and_then(|l| l.parse::<u64>().ok())
        .ok_or_else(|| bad("no tree size"))?;
    let root = lines
        .next()
        .and_then(|l| STANDARD.decode(l).ok())
        .and_then(|b| Hash::try_from(b).ok())
        .ok_or_else(|| bad("no 32-byte root hash"))?;
    Ok((origin, size, root))
}

#[cfg(test)]
mod tests {
    use super::*;
    use medsec_crypto::SigningKey;

    #[test]
    fn a_cosignature_verifies_for_its_body_only_and_names_its_key() {
        let key = SigningKey::generate(Scheme::Ed25519).unwrap();
        let log = SigningKey::generate(Scheme::Ed25519).unwrap();
        let origin = origin(log.public_key());
        let b = body(&origin, 7, &[3; 32]);
        assert_eq!(parse_body(&b).unwrap(), (origin.clone(), 7, [3; 32]));
        let line = cosign("w.example", &key, &b, 1_700_000_000).unwrap();
        assert!(line.starts_with("\u{2014} w.example "), "{line}");
        let n = note(&b, std::slice::from_ref(&line));
        let (body, sigs) = split_note(&n).unwrap();
        assert_eq!(body, b);
        let vkey = verifier_key("w.example", key.public_key()).unwrap();
        let (name, public) = parse_verifier_key(&vkey).unwrap();
        assert_eq!(
            verify_cosignature(sigs, body, &name, &public).unwrap(),
            1_700_000_000
        );
        // Another size, another root, another witness: refused.
        for other in [body_of(&origin, 8, [3; 32]), body_of(&origin, 7, [4; 32])] {
            assert!(verify_cosignature(sigs, &other, &name, &public).is_err());
        }
        let stranger = SigningKey::generate(Scheme::Ed25519).unwrap();
        assert!(verify_cosignature(sigs, body, &name, stranger.public_key()).is_err());
        // A key whose hash was edited is refused.
        let mut parts: Vec<&str> = vkey.splitn(3, '+').collect();
        parts[1] = "00000000";
        assert!(parse_verifier_key(&parts.join("+")).is_err());
    }

    proptest::proptest! {
        /// Anything read from a file parses or is refused, never panics; a co-signature made
        /// over one checkpoint never verifies for another.
        #[test]
        fn parsers_never_panic_and_cosignatures_bind_their_body(
            text in ".{0,200}",
            size in 0u64..u64::MAX,
            other in 0u64..u64::MAX,
            root in proptest::array::uniform32(0u8..),
        ) {
            let _ = parse_body(&text);
            let _ = parse_verifier_key(&text);
            let _ = split_note(&text);
            let key = SigningKey::generate(Scheme::Ed25519).unwrap();
            let b = body("medsec.audit/00", size, &root);
            let line = cosign("w", &key, &b, 1).unwrap();
            proptest::prop_assert!(verify_cosignature(&line, &b, "w", key.public_key()).is_ok());
            if other != size {
                let o = body("medsec.audit/00", other, &root);
                proptest::prop_assert!(verify_cosignature(&line, &o, "w", key.public_key()).is_err());
            }
            proptest::prop_assert!(verify_cosignature(&text, &b, "w", key.public_key()).is_err());
        }
    }

    fn body_of(origin: &str, size: u64, root: Hash) -> String {
        body(origin, size, &root)
    }
}
