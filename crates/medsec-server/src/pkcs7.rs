//! The one PKCS#7 / CMS structure EST needs: a "certs-only" degenerate SignedData (RFC 7030
//! section 4.1.3, RFC 5652 section 5) — no content, no signers, just certificates.
//!
//! Written by hand: it is five fixed fields, and a DER length encoder is twenty lines, where a CMS
//! crate would add a second ASN.1 stack beside x509-parser. Checked against `openssl pkcs7`.

/// id-signedData, 1.2.840.113549.1.7.2.
const ID_SIGNED_DATA: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02,
];
/// id-data, 1.2.840.113549.1.7.1.
const ID_DATA: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01,
];

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        let significant = bytes.get(skip..).unwrap_or_default();
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(significant);
    }
    out.extend_from_slice(content);
    out
}

/// DER of a certs-only SignedData holding `certs` (each a DER certificate).
pub fn certs_only(certs: &[Vec<u8>]) -> Vec<u8> {
    // DER sorts the elements of a SET OF by their encodings.
    let mut sorted: Vec<&Vec<u8>> = certs.iter().collect();
    sorted.sort();
    let cert_set: Vec<u8> = sorted.into_iter().flatten().copied().collect();
    let signed_data = [
        tlv(0x02, &[0x01]),   // version 1
        tlv(0x31, &[]),       // digestAlgorithms: empty SET
        tlv(0x30, ID_DATA),   // encapContentInfo: id-data, no content
        tlv(0xa0, &cert_set), // certificates [0] IMPLICIT SET OF Certificate
        tlv(0x31, &[]),       // signerInfos: empty SET
    ]
    .concat();
    let content = tlv(0xa0, &tlv(0x30, &signed_data)); // [0] EXPLICIT SignedData
    tlv(0x30, &[ID_SIGNED_DATA, &content].concat())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_use_the_shortest_form() {
        assert_eq!(tlv(0x04, &[1, 2]), [0x04, 2, 1, 2]);
        assert_eq!(tlv(0x04, &[0; 200])[..3], [0x04, 0x81, 200]);
        assert_eq!(tlv(0x04, &[0; 300])[..4], [0x04, 0x82, 0x01, 0x2c]);
    }

    #[test]
    fn empty_bundle_is_well_formed() {
        let der = certs_only(&[]);
        assert_eq!(der[0], 0x30);
        assert_eq!(usize::from(der[1]), der.len() - 2);
    }
}
