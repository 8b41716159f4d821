//! The agent's conversation with `medsec server`: EST enrolment and renewal, version reports,
//! the two TUF repositories, and range-resumed downloads. One HTTP agent (ureq over rustls,
//! TLS 1.3 with X25519MLKEM768 preferred) per identity, so polls reuse one kept-alive connection.

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use medsec_api::report;
use medsec_tuf_client::{HttpTransport, Transport, TransportError, Updater, UpdaterConfig};

use crate::Error;

/// Network timeout for every request.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A transport shared by several updaters (one TLS session for the whole poll).
#[derive(Clone)]
pub struct Shared(pub Arc<HttpTransport>);

impl Transport for Shared {
    fn fetch(&self, url: &str) -> Result<Box<dyn std::io::Read + Send>, TransportError> {
        self.0.fetch(url)
    }

    fn fetch_announced(
        &self,
        url: &str,
    ) -> Result<(Box<dyn std::io::Read + Send>, Option<u64>), TransportError> {
        self.0.fetch_announced(url)
    }
}

fn net(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Network(format!("{what}: {e}"))
}

/// The PEM of a list of DER certificates.
pub fn certs_pem(certs: &[Vec<u8>]) -> Result<String, Error> {
    let mut out = String::new();
    for der in certs {
        out.push_str(
            &pem_rfc7468::encode_string("CERTIFICATE", pem_rfc7468::LineEnding::LF, der)
                .map_err(|e| Error::State(format!("encoding a certificate: {e}")))?,
        );
    }
    Ok(out)
}

/// An EST certificate request (base64 DER, RFC 7030 section 4.2) signed by `key`. The CA sets
/// every name from its own record; the subject is only a hint.
pub fn request(key: &dyn medsec_crypto::KeySource, device: &str) -> Result<String, Error> {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())
        .map_err(|e| Error::State(e.to_string()))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, device);
    let csr = params
        .serialize_request(&crate::keys::RcgenKey(key))
        .map_err(|e| Error::State(format!("making the certificate request: {e}")))?;
    Ok(STANDARD.encode(csr.der()))
}

/// A new P-256 key kept in a file (PKCS#8 PEM) and an EST request for it.
pub fn key_and_request(device: &str) -> Result<(String, String), Error> {
    let key = crate::keys::KeyStore::File.generate()?;
    Ok((key.stored, request(key.source.as_ref(), device)?))
}

/// The header an enrolling device states its hardware id in.
pub const HARDWARE_ID_HEADER: &str = "Medsec-Hardware-Id";

/// Sends an EST request to `endpoint` (`simpleenroll` or `simplereenroll`) and returns the
/// certificate chain (PEM), device certificate first.
pub fn est(
    agent: &ureq::Agent,
    server: &str,
    endpoint: &str,
    request_b64: &str,
    token: Option<&str>,
    hardware_id: Option<&str>,
) -> Result<String, Error> {
    let url = format!("{server}/.well-known/est/{endpoint}");
    let mut req = agent
        .post(&url)
        .header("Content-Type", "application/pkcs10");
    if let Some(t) = token {
        req = req.header("Authorization", &format!("Bearer {t}"));
    }
    // The hardware id the device is built as: the server refuses the enrolment, before the
    // token is spent, when the device's record or its model's profile names others.
    if let Some(h) = hardware_id {
        req = req.header(HARDWARE_ID_HEADER, h);
    }
    let mut resp = req.send(request_b64).map_err(|e| net(&url, e))?;
    let status = resp.status().as_u16();
    let body = resp
        .body_mut()
        .with_config()
        .limit(1 << 20)
        .read_to_string()
        .map_err(|e| net(&url, e))?;
    if status != 200 {
        // The server's reason as it wrote it, not as JSON escapes it.
        let reason = serde_json::from_str::<medsec_api::ErrorBody>(&body)
            .map_or_else(|_| body.trim().to_owned(), |b| b.error);
        return Err(Error::Refused(format!("{url}: HTTP {status}: {reason}")));
    }
    let compact: String = body.split_whitespace().collect();
    let der = STANDARD
        .decode(compact.as_bytes())
        .map_err(|e| net(&url, format!("the answer is not base64: {e}")))?;
    let certs = medsec_crypto::pkcs7_certificates(&der)
        .ok_or_else(|| net(&url, "the answer is not a PKCS#7 certificate bundle"))?;
    // The device certificate is the one that is not a CA: the bundle is a SET, in DER order.
    let (leaf, rest): (Vec<Vec<u8>>, Vec<Vec<u8>>) = certs.into_iter().partition(|c| !is_ca(c));
    if leaf.len() != 1 {
        return Err(net(
            &url,
            "the answer does not hold exactly one device certificate",
        ));
    }
    certs_pem(&[leaf, rest].concat())
}

fn is_ca(der: &[u8]) -> bool {
    x509_parser::parse_x509_certificate(der)
        .ok()
        .and_then(|(_, c)| c.basic_constraints().ok().flatten().map(|b| b.value.ca))
        .unwrap_or(false)
}

/// Validity of the first certificate in `pem`: (not before, not after), Unix seconds.
pub fn validity(pem: &[u8]) -> Option<(i64, i64)> {
    let item = ureq::tls::parse_pem(pem).find_map(|i| match i {
        Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
        _ => None,
    })?;
    let (_, cert) = x509_parser::parse_x509_certificate(item.der()).ok()?;
    let v = cert.validity();
    Some((v.not_before.timestamp(), v.not_after.timestamp()))
}

/// A device's session with the server.
pub struct Session {
    server: String,
    device: String,
    transport: Shared,
    key: Arc<dyn medsec_crypto::KeySource>,
}

impl Session {
    /// Opens a session as the certificate chain in `chain_pem`, whose key is `key`.
    pub fn new(
        server: &str,
        device: &str,
        ca_pem: &[u8],
        chain_pem: &[u8],
        key: Arc<dyn medsec_crypto::KeySource>,
    ) -> Result<Self, Error> {
        let transport =
            HttpTransport::with_key_source(ca_pem, chain_pem, Arc::clone(&key), TIMEOUT)
                .map_err(|e| net("the device identity", e))?;
        Ok(Self {
            server: server.trim_end_matches('/').to_owned(),
            device: device.to_owned(),
            transport: Shared(Arc::new(transport)),
            key,
        })
    }

    /// The HTTP agent (mutual TLS with the device identity).
    pub fn agent(&self) -> &ureq::Agent {
        self.transport.0.agent()
    }

    /// The server's base URL.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// An updater for the director's per-device repository (metadata in `dir`).
    pub fn director(&self, dir: &Path) -> Result<Updater, Error> {
        let url = format!("{}/director/{}/", self.server, self.device);
        // The director is the server this device authenticated over mutual TLS, and it signs
        // the metadata whose newest root version it announces: a no-change poll may be one
        // request. The image repository keeps the specification's order.
        let config = UpdaterConfig {
            trust_announced_root_version: true,
            ..UpdaterConfig::default()
        };
        Updater::new(dir, &url, None, Box::new(self.transport.clone()), config).map_err(Error::Tuf)
    }

    /// An updater for the image repository (metadata in `dir`).
    pub fn image(&self, dir: &Path) -> Result<Updater, Error> {
        Updater::new(
            dir,
            &format!("{}/repo/metadata/", self.server),
            Some(&format!("{}/repo/targets/", self.server)),
            Box::new(self.transport.clone()),
            UpdaterConfig::default(),
        )
        .map_err(Error::Tuf)
    }

    /// GETs `path` on the server (for bootstrapping roots).
    pub fn get(&self, path: &str) -> Result<Vec<u8>, Error> {
        let url = format!("{}{path}", self.server);
        let mut r = self.agent().get(&url).call().map_err(|e| net(&url, e))?;
        if r.status() != 200 {
            return Err(Error::Refused(format!("{url}: HTTP {}", r.status())));
        }
        r.body_mut()
            .with_config()
            .limit(1 << 20)
            .read_to_vec()
            .map_err(|e| net(&url, e))
    }

    /// Sends a signed version report: asks for a nonce, signs `CONTEXT || payload` with the
    /// device key, and PUTs it. The payload's `device` and `nonce` are filled in here.
    pub fn report(&self, mut payload: report::Payload) -> Result<(), Error> {
        let url = format!(
            "{}/api/v1/devices/{}/report-nonce",
            self.server, self.device
        );
        let mut r = self
            .agent()
            .post(&url)
            .send_empty()
            .map_err(|e| net(&url, e))?;
        let body = r.body_mut().read_to_string().map_err(|e| net(&url, e))?;
        if r.status() != 201 {
            return Err(Error::Refused(format!(
                "{url}: HTTP {}: {body}",
                r.status()
            )));
        }
        let nonce: report::Nonce = serde_json::from_str(&body).map_err(|e| net(&url, e))?;
        payload.device.clone_from(&self.device);
        payload.nonce = nonce.nonce;
        let payload =
            serde_json::to_vec(&payload).map_err(|e| Error::State(format!("the report: {e}")))?;
        let signature = self
            .key
            .sign(&report::message(&payload))
            .map_err(|e| Error::State(format!("signing the report: {e}")))?;
        let envelope = serde_json::to_string(&report::Envelope {
            payload: STANDARD.encode(&payload),
            signature: STANDARD.encode(signature),
        })
        .map_err(|e| Error::State(format!("the report: {e}")))?;
        let url = format!("{}/api/v1/devices/{}/version", self.server, self.device);
        let mut r = self
            .agent()
            .put(&url)
            .header("Content-Type", "application/json")
            .send(envelope)
            .map_err(|e| net(&url, e))?;
        if r.status() != 204 {
            let body = r.body_mut().read_to_string().unwrap_or_default();
            return Err(Error::Refused(format!(
                "{url}: HTTP {}: {body}",
                r.status()
            )));
        }
        Ok(())
    }

    /// POSTs a telemetry batch; returns the HTTP status and the answer's body.
    pub fn post_telemetry(&self, body: &[u8]) -> Result<(u16, String), Error> {
        let url = format!("{}/api/v1/devices/{}/telemetry", self.server, self.device);
        let mut r = self
            .agent()
            .post(&url)
            .header("Content-Type", "application/json")
            .send(body)
            .map_err(|e| net(&url, e))?;
        let answer = r
            .body_mut()
            .with_config()
            .limit(64 * 1024)
            .read_to_string()
            .map_err(|e| net(&url, e))?;
        Ok((r.status().as_u16(), answer))
    }

    /// Downloads `url` into `part`, resuming from what `part` holds (HTTP Range), up to
    /// `length` bytes, at most `max_rate` bytes per second. The caller verifies the result.
    /// Returns whether it resumed (a resumed file that fails verification may just hold a
    /// write torn by power loss).
    pub fn download(
        &self,
        url: &str,
        part: &Path,
        length: u64,
        max_rate: Option<u64>,
    ) -> Result<bool, Error> {
        let mut have = std::fs::metadata(part).map(|m| m.len()).unwrap_or(0);
        if have > length {
            std::fs::remove_file(part).map_err(Error::io("removing", part))?;
            have = 0;
        }
        if have == length {
            return Ok(true);
        }
        let mut r = self
            .agent()
            .get(url)
            .header("Range", &format!("bytes={have}-"))
            .call()
            .map_err(|e| net(url, e))?;
        let append = match r.status().as_u16() {
            206 => true,
            200 => false,
            s => return Err(Error::Refused(format!("{url}: HTTP {s}"))),
        };
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(append)
            .write(true)
            .truncate(!append)
            .open(part)
            .map_err(Error::io("opening", part))?;
        let start = if append { have } else { 0 };
        let mut reader = r.body_mut().with_config().limit(length - start).reader();
        let mut buf = vec![0u8; 64 * 1024];
        let began = Instant::now();
        let mut got = 0u64;
        loop {
            let n = reader.read(&mut buf).map_err(|e| net(url, e))?;
            if n == 0 {
                break;
            }
            file.write_all(buf.get(..n).unwrap_or_default())
                .map_err(Error::io("writing", part))?;
            got += n as u64;
            crate::fault::point("download");
            if let Some(rate) = max_rate.filter(|r| *r > 0) {
                // Sleep until the average rate is back under the cap.
                let due = Duration::from_secs_f64(got as f64 / rate as f64);
                if let Some(wait) = due.checked_sub(began.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
        }
        file.sync_all().map_err(Error::io("flushing", part))?;
        Ok(append)
    }
}

/// The text of the first PEM block labelled `label` in `text`.
pub(crate) fn pem_block(text: &str, label: &str) -> Option<String> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let from = text.find(&begin)?;
    let to = text.get(from..)?.find(&end)? + from + end.len();
    text.get(from..to).map(str::to_owned)
}
