//! The medsec fleet certificate authority: an offline root, an online issuing intermediate, and
//! short-lived device certificates issued from PKCS#10 requests, with revocation and CRLs.
//!
//! Device certificates carry the identity the CA decides, never what the request asks for: the
//! subject CN is the [`DeviceId`] and the only SAN is `urn:medsec:device:<id>`; the request
//! contributes its public key (after its self-signature verifies) and nothing else.
//!
//! Keys: ECDSA P-256 by default, ML-DSA-65 as an option, made by rcgen with aws-lc-rs. CA private
//! keys are stored with `medsec_crypto::keyfile` (encrypted unless the caller asks otherwise).
//! The CA works on one directory ([`FleetCa::init`], [`FleetCa::open`]) and does no other IO.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

use medsec_crypto::keyfile::{self, KdfCost, Protection};
use medsec_util::Access;
pub use rcgen::RevocationReason;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams,
    CertificateSigningRequestParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams, SanType, SerialNumber,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

#[cfg(test)]
mod tests;

/// Everything the CA can refuse or fail at.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A device id with characters or length outside what medsec allows.
    #[error("device id {id:?} is not allowed: use 1 to 64 of A-Z a-z 0-9 . _ -")]
    BadDeviceId {
        /// The id given.
        id: String,
    },
    /// A signature made with a certified key does not verify.
    #[error("signature refused: {reason}")]
    Signature {
        /// Why.
        reason: String,
    },
    /// The request does not parse or its self-signature does not verify.
    #[error("certificate request refused: {reason}")]
    BadRequest {
        /// Why.
        reason: String,
    },
    /// No certificate with this serial was issued by this CA.
    #[error("no certificate with serial {serial} was issued by this CA")]
    UnknownSerial {
        /// Serial, hex.
        serial: String,
    },
    /// A certificate is already revoked.
    #[error("certificate {serial} is already revoked")]
    AlreadyRevoked {
        /// Serial, hex.
        serial: String,
    },
    /// The directory already holds a CA, or does not hold one.
    #[error("{reason}: {dir}")]
    Directory {
        /// What is wrong.
        reason: &'static str,
        /// The directory.
        dir: PathBuf,
    },
    /// A validity period outside what the CA allows.
    #[error("validity of {days} days is not allowed: {reason}")]
    BadValidity {
        /// Days asked for.
        days: i64,
        /// Why.
        reason: &'static str,
    },
    /// Key file problems (wrong passphrase, malformed file).
    #[error(transparent)]
    Key(#[from] medsec_crypto::Error),
    /// Certificate encoding or signing failed.
    #[error("certificate operation failed: {0}")]
    Certificate(#[from] rcgen::Error),
    /// Reading or writing the CA directory failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// Where.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The CA state file is unreadable.
    #[error("CA state {path} is corrupt: {reason}")]
    State {
        /// Where.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// A device's stable identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DeviceId(String);

impl DeviceId {
    /// Parses a device id: 1–64 characters of `A-Z a-z 0-9 . _ -`.
    pub fn new(id: &str) -> Result<Self, Error> {
        let ok = (1..=64).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
        if ok {
            Ok(Self(id.to_owned()))
        } else {
            Err(Error::BadDeviceId { id: id.to_owned() })
        }
    }
    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The URI SAN the CA writes into the device's certificate.
    pub fn uri(&self) -> String {
        format!("urn:medsec:device:{}", self.0)
    }
}

impl TryFrom<String> for DeviceId {
    type Error = Error;
    fn try_from(s: String) -> Result<Self, Error> {
        Self::new(&s)
    }
}

impl From<DeviceId> for String {
    fn from(d: DeviceId) -> String {
        d.0
    }
}

/// Signature algorithm of the CA and its certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum CaAlgorithm {
    /// ECDSA P-256 with SHA-256.
    #[serde(rename = "ecdsa-p256")]
    EcdsaP256,
    /// ML-DSA-65 (FIPS 204).
    #[serde(rename = "ml-dsa-65")]
    MlDsa65,
}

impl CaAlgorithm {
    fn rcgen(self) -> &'static rcgen::SignatureAlgorithm {
        match self {
            CaAlgorithm::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            CaAlgorithm::MlDsa65 => &rcgen::PKCS_ML_DSA_65,
        }
    }
}

/// A certificate the CA issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedCert {
    /// Serial number, hex.
    pub serial: String,
    /// The device it identifies.
    pub device_id: DeviceId,
    /// Start of validity (RFC 3339).
    pub not_before: String,
    /// End of validity (RFC 3339).
    pub not_after: String,
    /// Revocation, if revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<Revocation>,
}

/// When and why a certificate was revoked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// When (RFC 3339).
    pub at: String,
    /// RFC 5280 reason.
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CaState {
    name: String,
    algorithm: CaAlgorithm,
    crl_number: u64,
    issued: Vec<IssuedCert>,
}

/// Limits on what the CA issues.
#[derive(Debug, Clone)]
pub struct CaPolicy {
    /// Longest device certificate lifetime, in days.
    pub max_device_days: i64,
}

impl Default for CaPolicy {
    fn default() -> Self {
        Self {
            max_device_days: 90,
        }
    }
}

/// The issuing CA's private key, as rcgen signs with it.
///
/// rcgen can generate ML-DSA keys but cannot load them back from PKCS#8 (it panics on the
/// algorithm), so stored ML-DSA keys are loaded with aws-lc-rs directly and signed with through
/// this adapter.
enum CaKey {
    Rcgen(KeyPair),
    MlDsa(aws_lc_rs::signature::PqdsaKeyPair),
}

impl rcgen::PublicKeyData for CaKey {
    fn der_bytes(&self) -> &[u8] {
        use aws_lc_rs::signature::KeyPair as _;
        match self {
            CaKey::Rcgen(k) => k.der_bytes(),
            CaKey::MlDsa(k) => k.public_key().as_ref(),
        }
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        match self {
            CaKey::Rcgen(k) => k.algorithm(),
            CaKey::MlDsa(_) => &rcgen::PKCS_ML_DSA_65,
        }
    }
}

impl rcgen::SigningKey for CaKey {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        match self {
            CaKey::Rcgen(k) => k.sign(msg),
            CaKey::MlDsa(k) => {
                let mut sig = vec![0u8; k.algorithm().signature_len()];
                let n = k
                    .sign(msg, &mut sig)
                    .map_err(|_| rcgen::Error::RemoteKeyError)?;
                sig.truncate(n);
                Ok(sig)
            }
        }
    }
}

/// An opened fleet CA (issuing key loaded).
pub struct FleetCa {
    dir: PathBuf,
    state: CaState,
    issuer: Issuer<'static, CaKey>,
    /// The issuing certificate's end of validity: nothing it signs outlives it.
    issuing_not_after: OffsetDateTime,
    policy: CaPolicy,
}

const ROOT_KEY: &str = "root.key";
const ROOT_CERT: &str = "root.crt";
const ISSUING_KEY: &str = "issuing.key";
const ISSUING_CERT: &str = "issuing.crt";
const CHAIN: &str = "chain.pem";
const STATE: &str = "state.json";

fn io<'p>(action: &'static str, path: &'p Path) -> impl FnOnce(std::io::Error) -> Error + 'p {
    move |source| Error::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// Keys, certificates, the CRL and the state are replaced whole (medsec-util's atomic write); the
/// CA's own files are readable by its owner only.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    Ok(medsec_util::write_atomic(path, bytes, Access::Private)?)
}

impl From<medsec_util::FsError> for Error {
    fn from(e: medsec_util::FsError) -> Self {
        Error::Io {
            action: e.action,
            path: e.path,
            source: e.source,
        }
    }
}

fn read_state(path: &Path) -> Result<CaState, Error> {
    serde_json::from_slice(&std::fs::read(path).map_err(io("reading", path))?).map_err(|e| {
        Error::State {
            path: path.to_owned(),
            reason: e.to_string(),
        }
    })
}

fn cert_not_after(pem: &str, path: &Path) -> Result<OffsetDateTime, Error> {
    let corrupt = |reason: String| Error::State {
        path: path.to_owned(),
        reason,
    };
    let (_, der) =
        pem_rfc7468::decode_vec(pem.trim().as_bytes()).map_err(|e| corrupt(e.to_string()))?;
    let (_, cert) =
        x509_parser::parse_x509_certificate(&der).map_err(|e| corrupt(e.to_string()))?;
    Ok(cert.validity().not_after.to_datetime())
}

/// What a verified certificate request says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestInfo {
    /// SHA-256 of the request's SubjectPublicKeyInfo DER: the key's fingerprint.
    pub spki_sha256: [u8; 32],
    /// Common names in the subject.
    pub common_names: Vec<String>,
    /// Subject alternative names asked for, as text (`DNSName(…)`, `URI(…)`, …).
    pub alt_names: Vec<String>,
}

/// Parses a PEM PKCS#10 request, verifies its self-signature, and says what it asks for. The CA
/// ignores the names when issuing; an enrolment service uses them to refuse a request that claims
/// another identity.
pub fn inspect_request(csr_pem: &str) -> Result<RequestInfo, Error> {
    use x509_parser::prelude::FromDer as _;
    requested_key(csr_pem)?;
    let bad = |reason: String| Error::BadRequest { reason };
    let (_, der) = pem_rfc7468::decode_vec(csr_pem.trim().as_bytes())
        .map_err(|e| bad(format!("not PEM ({e})")))?;
    let (_, req) = x509_parser::certification_request::X509CertificationRequest::from_der(&der)
        .map_err(|e| bad(format!("not a PKCS#10 request ({e})")))?;
    let info = &req.certification_request_info;
    let common_names = info
        .subject
        .iter_common_name()
        .map(|cn| {
            cn.as_str()
                .map(str::to_owned)
                .map_err(|e| bad(format!("subject CN: {e}")))
        })
        .collect::<Result<_, _>>()?;
    let mut alt_names = Vec::new();
    for ext in req.requested_extensions().into_iter().flatten() {
        if let x509_parser::extensions::ParsedExtension::SubjectAlternativeName(san) = ext {
            alt_names.extend(san.general_names.iter().map(|n| n.to_string()));
        }
    }
    Ok(RequestInfo {
        spki_sha256: medsec_crypto::digest::sha256(info.subject_pki.raw),
        common_names,
        alt_names,
    })
}

fn random_serial() -> Result<SerialNumber, Error> {
    use aws_lc_rs::rand::SecureRandom as _;
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| medsec_crypto::Error::Crypto {
            operation: "random number generation",
        })?;
    // Positive and with no leading zero byte, so the DER encoding keeps all 16 bytes.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(SerialNumber::from_slice(&bytes))
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn ca_params(cn: String, days: i64, path_len: u8) -> Result<CertificateParams, Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + time::Duration::days(days);
    params.serial_number = Some(random_serial()?);
    params.key_identifier_method = KeyIdMethod::Sha256;
    Ok(params)
}

impl FleetCa {
    /// Creates a CA in `dir`: a root (valid `root_days`) and an issuing CA (valid `issuing_days`)
    /// signed by it. Both private keys are written with `protection`; move `root.key` offline.
    pub fn init(
        dir: &Path,
        name: &str,
        algorithm: CaAlgorithm,
        root_days: i64,
        issuing_days: i64,
        protection: Protection<'_>,
    ) -> Result<Self, Error> {
        if dir.join(STATE).exists() {
            return Err(Error::Directory {
                reason: "a CA already exists in this directory",
                dir: dir.to_owned(),
            });
        }
        if issuing_days > root_days || issuing_days < 1 {
            return Err(Error::BadValidity {
                days: issuing_days,
                reason: "the issuing CA must expire before the root and live at least a day",
            });
        }
        std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
        let root_key = KeyPair::generate_for(algorithm.rcgen())?;
        let root_params = ca_params(format!("{name} Root CA"), root_days, 1)?;
        let root_cert = root_params.self_signed(&root_key)?;
        let root_pem = root_cert.pem();
        let root_key_der = root_key.serialize_der();
        let issuing_key = KeyPair::generate_for(algorithm.rcgen())?;
        let issuing_params = ca_params(format!("{name} Issuing CA"), issuing_days, 0)?;
        let issuing_params_not_after = issuing_params.not_after;
        let root_issuer = Issuer::new(root_params, root_key);
        let issuing_cert = issuing_params.signed_by(&issuing_key, &root_issuer)?;
        let issuing_pem = issuing_cert.pem();
        let cost = KdfCost::default();
        write_atomic(
            &dir.join(ROOT_KEY),
            keyfile::seal_pkcs8(&root_key_der, protection, cost)?.as_bytes(),
        )?;
        write_atomic(
            &dir.join(ISSUING_KEY),
            keyfile::seal_pkcs8(&issuing_key.serialize_der(), protection, cost)?.as_bytes(),
        )?;
        write_atomic(&dir.join(ROOT_CERT), root_pem.as_bytes())?;
        write_atomic(&dir.join(ISSUING_CERT), issuing_pem.as_bytes())?;
        write_atomic(
            &dir.join(CHAIN),
            format!("{issuing_pem}{root_pem}").as_bytes(),
        )?;
        let ca = Self {
            dir: dir.to_owned(),
            state: CaState {
                name: name.to_owned(),
                algorithm,
                crl_number: 0,
                issued: Vec::new(),
            },
            issuer: Issuer::from_ca_cert_pem(&issuing_pem, CaKey::Rcgen(issuing_key))?,
            issuing_not_after: issuing_params_not_after,
            policy: CaPolicy::default(),
        };
        ca.save()?;
        Ok(ca)
    }

    /// Opens the CA in `dir`, decrypting the issuing key (`passphrase` is asked for only if the
    /// key file is encrypted).
    pub fn open(dir: &Path, passphrase: impl FnOnce() -> Option<String>) -> Result<Self, Error> {
        let state_path = dir.join(STATE);
        if !state_path.exists() {
            return Err(Error::Directory {
                reason: "no CA here: run `medsec ca init` first",
                dir: dir.to_owned(),
            });
        }
        let state = read_state(&state_path)?;
        let key_path = dir.join(ISSUING_KEY);
        let key_pem = std::fs::read_to_string(&key_path).map_err(io("reading", &key_path))?;
        let mut der = keyfile::open_pkcs8(&key_pem, passphrase)?;
        let key = match state.algorithm {
            CaAlgorithm::EcdsaP256 => KeyPair::from_pkcs8_der_and_sign_algo(
                &rustls_pki_types::PrivatePkcs8KeyDer::from(der.as_slice()),
                state.algorithm.rcgen(),
            )
            .map(CaKey::Rcgen),
            CaAlgorithm::MlDsa65 => aws_lc_rs::signature::PqdsaKeyPair::from_pkcs8(
                &aws_lc_rs::signature::ML_DSA_65_SIGNING,
                &der,
            )
            .map(CaKey::MlDsa)
            .map_err(|e| rcgen::Error::RingKeyRejected(e.to_string())),
        };
        der.fill(0);
        let cert_path = dir.join(ISSUING_CERT);
        let cert_pem = std::fs::read_to_string(&cert_path).map_err(io("reading", &cert_path))?;
        Ok(Self {
            dir: dir.to_owned(),
            issuer: Issuer::from_ca_cert_pem(&cert_pem, key?)?,
            issuing_not_after: cert_not_after(&cert_pem, &cert_path)?,
            state,
            policy: CaPolicy::default(),
        })
    }

    /// Replaces the issuing policy (certificate lifetimes).
    pub fn with_policy(mut self, policy: CaPolicy) -> Self {
        self.policy = policy;
        self
    }

    fn save(&self) -> Result<(), Error> {
        let bytes = serde_json::to_vec_pretty(&self.state).map_err(|e| Error::State {
            path: self.dir.join(STATE),
            reason: e.to_string(),
        })?;
        write_atomic(&self.dir.join(STATE), &bytes)
    }

    /// Path of the PEM chain (issuing CA, then root) devices and servers trust.
    pub fn chain_path(&self) -> PathBuf {
        self.dir.join(CHAIN)
    }

    /// Path of the root certificate.
    pub fn root_path(&self) -> PathBuf {
        self.dir.join(ROOT_CERT)
    }

    /// Issues a device certificate from a PEM PKCS#10 request. Only the request's public key is
    /// used (after its signature verifies); subject and SAN come from `device`.
    pub fn issue(
        &mut self,
        csr_pem: &str,
        device: &DeviceId,
        days: i64,
    ) -> Result<(IssuedCert, String), Error> {
        if !(1..=self.policy.max_device_days).contains(&days) {
            return Err(Error::BadValidity {
                days,
                reason: "device certificates are short-lived: 1 day up to the CA's max_device_days",
            });
        }
        let requested = requested_key(csr_pem)?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, device.as_str());
        dn.push(DnType::OrganizationName, self.state.name.clone());
        params.distinguished_name = dn;
        params.subject_alt_names = vec![SanType::URI(device.uri().try_into()?)];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        params.key_identifier_method = KeyIdMethod::Sha256;
        let now = OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::minutes(5);
        params.not_after = (now + time::Duration::days(days)).min(self.issuing_not_after);
        let serial = random_serial()?;
        params.serial_number = Some(serial.clone());
        let cert = params.signed_by(&requested, &self.issuer)?;
        let record = IssuedCert {
            serial: hex::encode(serial.as_ref()),
            device_id: device.clone(),
            not_before: rfc3339(params.not_before),
            not_after: rfc3339(params.not_after),
            revoked: None,
        };
        self.state.issued.push(record.clone());
        self.save()?;
        Ok((record, cert.pem()))
    }

    /// Marks a certificate revoked (it appears on the next CRL).
    pub fn revoke(
        &mut self,
        serial_hex: &str,
        reason: RevocationReason,
    ) -> Result<&IssuedCert, Error> {
        let serial = serial_hex.to_ascii_lowercase();
        let cert = self
            .state
            .issued
            .iter_mut()
            .find(|c| c.serial == serial)
            .ok_or(Error::UnknownSerial {
                serial: serial.clone(),
            })?;
        if cert.revoked.is_some() {
            return Err(Error::AlreadyRevoked { serial });
        }
        cert.revoked = Some(Revocation {
            at: rfc3339(OffsetDateTime::now_utc()),
            reason: format!("{reason:?}"),
        });
        self.save()?;
        self.state
            .issued
            .iter()
            .find(|c| c.serial == serial)
            .ok_or(Error::UnknownSerial { serial })
    }

    /// Issues a new CRL valid for `days` listing every revoked certificate, and writes it to
    /// `crl.pem` in the CA directory.
    pub fn crl(&mut self, days: i64) -> Result<String, Error> {
        if !(1..=30).contains(&days) {
            return Err(Error::BadValidity {
                days,
                reason: "a CRL is valid for 1 to 30 days",
            });
        }
        let now = OffsetDateTime::now_utc();
        let mut revoked = Vec::new();
        for c in &self.state.issued {
            if let Some(r) = &c.revoked {
                let at =
                    OffsetDateTime::parse(&r.at, &time::format_description::well_known::Rfc3339)
                        .map_err(|e| Error::State {
                            path: self.dir.join(STATE),
                            reason: e.to_string(),
                        })?;
                let serial = hex::decode(&c.serial).map_err(|e| Error::State {
                    path: self.dir.join(STATE),
                    reason: e.to_string(),
                })?;
                revoked.push(RevokedCertParams {
                    serial_number: SerialNumber::from_slice(&serial),
                    revocation_time: at,
                    reason_code: parse_reason(&r.reason),
                    invalidity_date: None,
                });
            }
        }
        self.state.crl_number += 1;
        let params = CertificateRevocationListParams {
            this_update: now,
            next_update: now + time::Duration::days(days),
            crl_number: SerialNumber::from(self.state.crl_number),
            issuing_distribution_point: None,
            revoked_certs: revoked,
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let pem = params.signed_by(&self.issuer)?.pem()?;
        self.save()?;
        write_atomic(&self.dir.join("crl.pem"), pem.as_bytes())?;
        Ok(pem)
    }

    /// Path of the latest CRL written by [`FleetCa::crl`].
    pub fn crl_path(&self) -> PathBuf {
        self.dir.join("crl.pem")
    }

    /// Rereads the state file, so that issuance and revocation done by another process (the
    /// `medsec ca` commands beside a running server) are not overwritten.
    pub fn reload_state(&mut self) -> Result<(), Error> {
        self.state = read_state(&self.dir.join(STATE))?;
        Ok(())
    }

    /// Issues a TLS server certificate for `hostnames` (DNS names or IP addresses) under the
    /// issuing CA, with a new ECDSA P-256 key. Returns (certificate chain PEM, private key PEM).
    pub fn issue_server(
        &mut self,
        hostnames: &[String],
        days: i64,
    ) -> Result<(String, String), Error> {
        let cn = hostnames
            .first()
            .cloned()
            .unwrap_or_else(|| "medsec".into());
        let sans = hostnames
            .iter()
            .map(|h| match h.parse::<std::net::IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => h.clone().try_into().map(SanType::DnsName),
            })
            .collect::<Result<_, _>>()?;
        self.issue_service(&cn, sans, ExtendedKeyUsagePurpose::ServerAuth, days)
    }

    /// Issues a TLS client certificate for one of medsec's own services (the MQTT ingestion
    /// client, say) under the issuing CA, with a new ECDSA P-256 key. The CN must hold a
    /// character no [`DeviceId`] may hold (`:`), so a service can never pass for a device where
    /// the CN is the identity (a broker's `use_identity_as_username`). Returns (certificate
    /// chain PEM, private key PEM).
    pub fn issue_service_client(
        &mut self,
        common_name: &str,
        days: i64,
    ) -> Result<(String, String), Error> {
        if !common_name.contains(':') || DeviceId::new(common_name).is_ok() {
            return Err(Error::BadDeviceId {
                id: format!(
                    "{common_name} (a service CN must contain ':' so that it can never name a device)"
                ),
            });
        }
        self.issue_service(
            common_name,
            Vec::new(),
            ExtendedKeyUsagePurpose::ClientAuth,
            days,
        )
    }

    fn issue_service(
        &mut self,
        common_name: &str,
        sans: Vec<SanType>,
        usage: ExtendedKeyUsagePurpose,
        days: i64,
    ) -> Result<(String, String), Error> {
        if !(1..=397).contains(&days) {
            return Err(Error::BadValidity {
                days,
                reason: "service certificates live 1 to 397 days",
            });
        }
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        dn.push(DnType::OrganizationName, self.state.name.clone());
        params.distinguished_name = dn;
        params.subject_alt_names = sans;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![usage];
        params.use_authority_key_identifier_extension = true;
        params.key_identifier_method = KeyIdMethod::Sha256;
        let now = OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::minutes(5);
        params.not_after = (now + time::Duration::days(days)).min(self.issuing_not_after);
        params.serial_number = Some(random_serial()?);
        let cert = params.signed_by(&key, &self.issuer)?;
        let chain = std::fs::read_to_string(self.chain_path())
            .map_err(io("reading", &self.chain_path()))?;
        Ok((format!("{}{chain}", cert.pem()), key.serialize_pem()))
    }

    /// Every certificate issued, oldest first.
    pub fn issued(&self) -> &[IssuedCert] {
        &self.state.issued
    }
}

/// Parses a reason name as the CLI accepts it (`key-compromise`, `superseded`, …).
pub fn reason_from_name(name: &str) -> Option<RevocationReason> {
    Some(match name {
        "unspecified" => RevocationReason::Unspecified,
        "key-compromise" => RevocationReason::KeyCompromise,
        "ca-compromise" => RevocationReason::CaCompromise,
        "affiliation-changed" => RevocationReason::AffiliationChanged,
        "superseded" => RevocationReason::Superseded,
        "cessation-of-operation" => RevocationReason::CessationOfOperation,
        "certificate-hold" => RevocationReason::CertificateHold,
        "privilege-withdrawn" => RevocationReason::PrivilegeWithdrawn,
        _ => return None,
    })
}

fn parse_reason(debug_name: &str) -> Option<RevocationReason> {
    [
        RevocationReason::Unspecified,
        RevocationReason::KeyCompromise,
        RevocationReason::CaCompromise,
        RevocationReason::AffiliationChanged,
        RevocationReason::Superseded,
        RevocationReason::CessationOfOperation,
        RevocationReason::CertificateHold,
        RevocationReason::PrivilegeWithdrawn,
    ]
    .into_iter()
    .find(|r| format!("{r:?}") == debug_name)
}

/// OID of ML-DSA-65 (FIPS 204), as signature algorithm and as key algorithm.
const ID_ML_DSA_65: &str = "2.16.840.1.101.3.4.3.18";

/// The public key of a certificate request whose self-signature verified.
enum RequestedKey {
    Rcgen(rcgen::PublicKey),
    /// The raw ML-DSA-65 public key (rcgen's SPKI parser does not know the algorithm either).
    MlDsa65(Vec<u8>),
}

impl rcgen::PublicKeyData for RequestedKey {
    fn der_bytes(&self) -> &[u8] {
        match self {
            RequestedKey::Rcgen(k) => rcgen::PublicKeyData::der_bytes(k),
            RequestedKey::MlDsa65(k) => k,
        }
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        match self {
            RequestedKey::Rcgen(k) => rcgen::PublicKeyData::algorithm(k),
            RequestedKey::MlDsa65(_) => &rcgen::PKCS_ML_DSA_65,
        }
    }
}

/// Parses a PEM PKCS#10 request and verifies its self-signature. ML-DSA-65 requests are checked
/// here (rcgen's request parser does not know ML-DSA); the others by rcgen.
fn requested_key(csr_pem: &str) -> Result<RequestedKey, Error> {
    use x509_parser::prelude::FromDer as _;
    let bad = |reason: String| Error::BadRequest { reason };
    let (label, der) = pem_rfc7468::decode_vec(csr_pem.trim().as_bytes())
        .map_err(|e| bad(format!("not PEM ({e})")))?;
    if label != "CERTIFICATE REQUEST" && label != "NEW CERTIFICATE REQUEST" {
        return Err(bad(format!(
            "PEM label {label:?} is not CERTIFICATE REQUEST"
        )));
    }
    let (rest, req) = x509_parser::certification_request::X509CertificationRequest::from_der(&der)
        .map_err(|e| bad(format!("not a PKCS#10 request ({e})")))?;
    if !rest.is_empty() {
        return Err(bad("trailing bytes after the request".into()));
    }
    if req.signature_algorithm.algorithm.to_id_string() != ID_ML_DSA_65 {
        let csr = CertificateSigningRequestParams::from_der(&der.as_slice().into())
            .map_err(|e| bad(e.to_string()))?;
        return Ok(RequestedKey::Rcgen(csr.public_key));
    }
    let info = &req.certification_request_info;
    if info.subject_pki.algorithm.algorithm.to_id_string() != ID_ML_DSA_65
        || req.signature_algorithm.parameters.is_some()
    {
        return Err(bad(
            "an ML-DSA-65 signature needs an ML-DSA-65 key and no parameters".into(),
        ));
    }
    aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::ML_DSA_65,
        info.subject_pki.subject_public_key.data.as_ref(),
    )
    .verify(info.raw, req.signature_value.data.as_ref())
    .map_err(|_| bad("the request's ML-DSA-65 self-signature does not verify".into()))?;
    Ok(RequestedKey::MlDsa65(
        info.subject_pki.subject_public_key.data.to_vec(),
    ))
}

/// Checks that `signature` over `message` was made with the key `certificate_der` certifies:
/// ECDSA P-256 with SHA-256 (DER signature, what `openssl dgst -sha256 -sign` makes) or ML-DSA-65.
/// The caller must have verified the certificate itself (here: the TLS handshake did).
pub fn verify_with_certificate(
    certificate_der: &[u8],
    message: &[u8],
    signature: &[u8],
) -> Result<(), Error> {
    const ID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
    const ID_P256: &str = "1.2.840.10045.3.1.7";
    let bad = |reason: &str| Error::Signature {
        reason: reason.to_owned(),
    };
    let (_, cert) = x509_parser::parse_x509_certificate(certificate_der)
        .map_err(|_| bad("the certificate does not parse"))?;
    let spki = cert.public_key();
    let key = spki.subject_public_key.data.as_ref();
    let algorithm: &'static dyn aws_lc_rs::signature::VerificationAlgorithm =
        match spki.algorithm.algorithm.to_id_string().as_str() {
            ID_EC_PUBLIC_KEY => {
                let curve = spki
                    .algorithm
                    .parameters
                    .as_ref()
                    .and_then(|p| p.as_oid().ok())
                    .map(|o| o.to_id_string());
                if curve.as_deref() != Some(ID_P256) {
                    return Err(bad("the certificate's EC key is not on P-256"));
                }
                &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1
            }
            ID_ML_DSA_65 => &aws_lc_rs::signature::ML_DSA_65,
            other => {
                return Err(Error::Signature {
                    reason: format!("the certificate's key algorithm {other} is not supported"),
                });
            }
        };
    aws_lc_rs::signature::UnparsedPublicKey::new(algorithm, key)
        .verify(message, signature)
        .map_err(|_| bad("the signature does not verify with the certificate's key"))
}

/// The device a fleet certificate names: its `urn:medsec:device:<id>` SAN. The caller must have
/// verified the certificate first; this only reads it.
pub fn certificate_device_id(der: &[u8]) -> Option<DeviceId> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let san = cert.subject_alternative_name().ok()??;
    san.value.general_names.iter().find_map(|n| match n {
        x509_parser::extensions::GeneralName::URI(uri) => uri
            .strip_prefix("urn:medsec:device:")
            .and_then(|id| DeviceId::new(id).ok()),
        _ => None,
    })
}

/// The hardware types an IDevID states: the hwType OIDs (dotted) of the RFC 4108
/// HardwareModuleNames in its subject alternative name (`otherName` 1.3.6.1.5.5.7.8.4, value
/// `SEQUENCE { hwType OBJECT IDENTIFIER, hwSerialNum OCTET STRING }`), as IEEE 802.1AR
/// recommends. Malformed entries are skipped (they state nothing); empty if there are none.
pub fn hardware_module_types(der: &[u8]) -> Vec<String> {
    use x509_parser::der_parser::asn1_rs::{Any, FromDer as _, Oid};
    use x509_parser::extensions::GeneralName;
    const HARDWARE_MODULE_NAME: &str = "1.3.6.1.5.5.7.8.4";
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return Vec::new();
    };
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::OtherName(oid, value) if oid.to_id_string() == HARDWARE_MODULE_NAME => {
                // [0] EXPLICIT, then the SEQUENCE, then its first element.
                let (_, explicit) = Any::from_der(value).ok()?;
                let (_, sequence) = Any::from_der(explicit.data).ok()?;
                let (_, hw_type) = Oid::from_der(sequence.data).ok()?;
                Some(hw_type.to_id_string())
            }
            _ => None,
        })
        .collect()
}

/// The device id a manufacturer certificate (IDevID) vouches for: its subject serialNumber
/// attribute (the hardware serial, as IEEE 802.1AR suggests), else its CN. The caller must have
/// verified the certificate against a trusted manufacturer CA first.
pub fn manufacturer_device_id(der: &[u8]) -> Option<DeviceId> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let serial = subject
        .iter_by_oid(&x509_parser::oid_registry::OID_X509_SERIALNUMBER)
        .next()
        .or_else(|| subject.iter_common_name().next())?;
    DeviceId::new(serial.as_str().ok()?).ok()
}
