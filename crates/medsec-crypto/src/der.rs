//! The few DER structures medsec reads and writes itself: SubjectPublicKeyInfo for ECDSA/RSA
//! public keys in TUF metadata, the PKCS#8 wrapper of the composite ML-DSA/Ed25519 key, the
//! ECDSA signature a PKCS#11 token returns raw, and EST's certs-only PKCS#7. This is medsec's
//! one DER writer: every other crate calls it.
//!
//! Written by hand because these are a few fixed shapes; pulling the `der`/`spki`/`pkcs8`/`cms`
//! stack in for them would cost more build time than the lines below.

use crate::Error;

/// OID 1.2.840.10045.2.1 (id-ecPublicKey) followed by 1.2.840.10045.3.1.7 (P-256).
pub(crate) const ALG_EC_P256: &[u8] = &[
    0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
    0xce, 0x3d, 0x03, 0x01, 0x07,
];
/// OID 1.3.101.112 (id-Ed25519), no parameters.
pub(crate) const ALG_ED25519: &[u8] = &[0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70];
/// OID 1.2.840.113549.1.1.1 (rsaEncryption) with NULL parameters.
pub(crate) const ALG_RSA: &[u8] = &[
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
];
/// OID 1.2.840.113549.1.1.10 (id-RSASSA-PSS), any parameters accepted by prefix.
pub(crate) const OID_RSA_PSS: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a,
];
/// OID 1.3.6.1.5.5.7.6.48 (id-MLDSA65-Ed25519-SHA512), no parameters.
pub(crate) const ALG_MLDSA65_ED25519: &[u8] = &[
    0x30, 0x0a, 0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x06, 0x30,
];

/// Splits one TLV off the front of `input`; returns (tag, content, rest).
pub(crate) fn read_tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let (len_bytes, after) = rest.split_at(n);
        rest = after;
        len_bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b))
    };
    if rest.len() < len {
        return None;
    }
    let (content, rest) = rest.split_at(len);
    Some((tag, content, rest))
}

/// id-signedData, 1.2.840.113549.1.7.2 (content only).
const OID_SIGNED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02];

/// The certificates (DER, in order) of a PKCS#7 / CMS SignedData, as EST answers carry them
/// (RFC 7030 section 4.1.3: "certs-only"). `None` if it is not a SignedData or is malformed.
/// Nothing is verified: the caller checks the certificates it needs.
pub fn pkcs7_certificates(der: &[u8]) -> Option<Vec<Vec<u8>>> {
    let (tag, content_info, rest) = read_tlv(der)?;
    if tag != 0x30 || !rest.is_empty() {
        return None;
    }
    let (oid_tag, oid, rest) = read_tlv(content_info)?;
    if oid_tag != 0x06 || oid != OID_SIGNED_DATA {
        return None;
    }
    let (explicit, wrapped, _) = read_tlv(rest)?;
    let (seq, signed_data, _) = read_tlv(wrapped)?;
    if explicit != 0xa0 || seq != 0x30 {
        return None;
    }
    // version, digestAlgorithms, encapContentInfo, then [0] IMPLICIT certificates.
    let mut rest = signed_data;
    for expected in [0x02, 0x31, 0x30] {
        let (t, _, after) = read_tlv(rest)?;
        if t != expected {
            return None;
        }
        rest = after;
    }
    let (t, mut certs, _) = read_tlv(rest)?;
    if t != 0xa0 {
        return None;
    }
    let mut out = Vec::new();
    while !certs.is_empty() {
        let (t, _, after) = read_tlv(certs)?;
        if t != 0x30 {
            return None;
        }
        out.push(certs.get(..certs.len() - after.len())?.to_vec());
        certs = after;
    }
    Some(out)
}

/// id-data, 1.2.840.113549.1.7.1 (content only).
const OID_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01];

/// DER of a certs-only PKCS#7 / CMS SignedData holding `certs` (each a DER certificate): no
/// content, no signers (RFC 7030 section 4.1.3, RFC 5652 section 5), as EST answers carry the CA
/// certificates and a newly issued one. The inverse of [`pkcs7_certificates`]; checked against
/// `openssl pkcs7` in the server's EST tests.
pub fn pkcs7_certs_only(certs: &[Vec<u8>]) -> Vec<u8> {
    // DER sorts the elements of a SET OF by their encodings.
    let mut sorted: Vec<&Vec<u8>> = certs.iter().collect();
    sorted.sort();
    let cert_set: Vec<u8> = sorted.into_iter().flatten().copied().collect();
    let mut signed_data = Vec::new();
    write_tlv(&mut signed_data, 0x02, &[0x01]); // version 1
    write_tlv(&mut signed_data, 0x31, &[]); // digestAlgorithms: empty SET
    let mut encap = Vec::new();
    write_tlv(&mut encap, 0x06, OID_DATA);
    write_tlv(&mut signed_data, 0x30, &encap); // encapContentInfo: id-data, no content
    write_tlv(&mut signed_data, 0xa0, &cert_set); // certificates [0] IMPLICIT SET OF Certificate
    write_tlv(&mut signed_data, 0x31, &[]); // signerInfos: empty SET
    let mut sequence = Vec::new();
    write_tlv(&mut sequence, 0x30, &signed_data);
    let mut content_info = Vec::new();
    write_tlv(&mut content_info, 0x06, OID_SIGNED_DATA);
    write_tlv(&mut content_info, 0xa0, &sequence); // [0] EXPLICIT SignedData
    let mut out = Vec::new();
    write_tlv(&mut out, 0x30, &content_info);
    out
}

fn write_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        let significant = bytes.get(skip..).unwrap_or_default();
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(significant);
    }
}

/// DER `ECDSA-Sig-Value` (SEQUENCE of two INTEGERs) from a P-256 signature given as `r || s`
/// (32 bytes each, as PKCS#11 tokens return it); `None` for any other length.
#[cfg(any(feature = "pkcs11", test))]
pub(crate) fn ecdsa_signature_from_raw(raw: &[u8]) -> Option<Vec<u8>> {
    if raw.len() != 64 {
        return None;
    }
    let (r, s) = raw.split_at(32);
    let mut body = Vec::with_capacity(72);
    for half in [r, s] {
        // Minimal two's-complement: no leading zero bytes, then one back if the top bit is set.
        let skip = half.iter().take_while(|b| **b == 0).count().min(31);
        let digits = half.get(skip..)?;
        let mut int = Vec::with_capacity(33);
        if digits.first().is_some_and(|b| b & 0x80 != 0) {
            int.push(0);
        }
        int.extend_from_slice(digits);
        write_tlv(&mut body, 0x02, &int);
    }
    let mut out = Vec::with_capacity(body.len() + 2);
    write_tlv(&mut out, 0x30, &body);
    Some(out)
}

pub(crate) fn write_tlv(out: &mut Vec<u8>, tag: u8, content: &[u8]) {
    out.push(tag);
    write_len(out, content.len());
    out.extend_from_slice(content);
}

/// Parses a SubjectPublicKeyInfo; returns (AlgorithmIdentifier TLV bytes, key bytes).
pub(crate) fn parse_spki(der: &[u8]) -> Option<(&[u8], &[u8])> {
    let (tag, body, rest) = read_tlv(der)?;
    if tag != 0x30 || !rest.is_empty() {
        return None;
    }
    let (alg_tag, _, after_alg) = read_tlv(body)?;
    if alg_tag != 0x30 {
        return None;
    }
    let alg = body.get(..body.len() - after_alg.len())?;
    let (bit_tag, bits, rest) = read_tlv(after_alg)?;
    if bit_tag != 0x03 || !rest.is_empty() {
        return None;
    }
    let (&unused, key) = bits.split_first()?;
    if unused != 0 {
        return None;
    }
    Some((alg, key))
}

pub(crate) fn encode_spki(alg: &[u8], key: &[u8]) -> Vec<u8> {
    let mut bits = Vec::with_capacity(key.len() + 1);
    bits.push(0);
    bits.extend_from_slice(key);
    let mut body = alg.to_vec();
    write_tlv(&mut body, 0x03, &bits);
    let mut out = Vec::with_capacity(body.len() + 4);
    write_tlv(&mut out, 0x30, &body);
    out
}

/// Encodes a PKCS#8 v1 PrivateKeyInfo with the given algorithm and raw private key bytes.
pub(crate) fn encode_pkcs8(alg: &[u8], private_key: &[u8]) -> Vec<u8> {
    let mut body = vec![0x02, 0x01, 0x00];
    body.extend_from_slice(alg);
    write_tlv(&mut body, 0x04, private_key);
    let mut out = Vec::with_capacity(body.len() + 4);
    write_tlv(&mut out, 0x30, &body);
    out
}

/// Parses a PKCS#8 PrivateKeyInfo; returns (AlgorithmIdentifier TLV bytes, private key bytes).
pub(crate) fn parse_pkcs8(der: &[u8]) -> Result<(&[u8], &[u8]), Error> {
    let bad = || Error::MalformedPrivateKey {
        reason: "not a PKCS#8 PrivateKeyInfo",
    };
    let (tag, body, rest) = read_tlv(der).ok_or_else(bad)?;
    if tag != 0x30 || !rest.is_empty() {
        return Err(bad());
    }
    let (vtag, _, after_version) = read_tlv(body).ok_or_else(bad)?;
    if vtag != 0x02 {
        return Err(bad());
    }
    let (atag, _, after_alg) = read_tlv(after_version).ok_or_else(bad)?;
    if atag != 0x30 {
        return Err(bad());
    }
    let alg = after_version
        .get(..after_version.len() - after_alg.len())
        .ok_or_else(bad)?;
    let (ktag, key, _) = read_tlv(after_alg).ok_or_else(bad)?;
    if ktag != 0x04 {
        return Err(bad());
    }
    Ok((alg, key))
}
