//! The three ways an event leaves: a signed webhook, Splunk's HTTP Event Collector, and syslog
//! over TLS carrying CEF. Each answers whether the receiver took the event, refused it for
//! good, or could not be reached (retried).

use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;
use tokio::io::AsyncWriteExt as _;

use super::{ExportEvent, SinkConfig, SinkKind};
use crate::config::Config;

/// Why an event was not delivered.
#[derive(Debug)]
pub enum Failure {
    /// The receiver refused it (HTTP 4xx other than 408 and 429): retrying will not help.
    Refused(String),
    /// The receiver could not be reached, or failed (5xx, 408, 429, a network error).
    Unavailable(String),
}

/// The header that carries a webhook's signature: `t=UNIX_SECONDS,v1=HEX`, where `HEX` is
/// HMAC-SHA256 under the shared secret of `"{t}.{body}"`. Receivers recompute it, compare in
/// constant time, and refuse a `t` outside their tolerance (five minutes is usual), so a
/// captured request cannot be replayed later.
pub const SIGNATURE_HEADER: &str = "Medsec-Signature";

/// A connected sink.
pub enum Delivery {
    /// Webhook or Splunk HEC.
    Http {
        /// Which.
        kind: SinkKind,
        /// The URL.
        url: String,
        /// The HMAC key or the HEC token.
        secret: String,
        /// An HTTP agent pinned to the receiver's CA.
        agent: ureq::Agent,
    },
    /// Syslog over TLS.
    Syslog {
        /// `HOST:PORT`.
        address: String,
        /// The name its certificate must carry.
        server_name: rustls_pki_types::ServerName<'static>,
        /// The TLS client.
        connector: tokio_rustls::TlsConnector,
        /// The open connection, if any (boxed: a TLS stream is large, the enum is moved).
        stream: Option<Box<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>>,
        /// Our name in each message.
        hostname: String,
    },
}

const TIMEOUT: Duration = Duration::from_secs(15);

impl Delivery {
    /// Prepares `sink` (reads its secret and CA; connects lazily).
    pub fn new(sink: &SinkConfig, config: &Config) -> Result<Self, String> {
        let ca_pem = match &sink.ca_file {
            Some(path) => {
                Some(std::fs::read(path).map_err(|e| format!("ca_file {}: {e}", path.display()))?)
            }
            None => None,
        };
        match sink.kind {
            SinkKind::Webhook | SinkKind::SplunkHec => {
                let secret_file = sink.secret_file.as_ref().ok_or("secret_file is required")?;
                let secret = medsec_util::read_secret(secret_file)
                    .map_err(|e| e.to_string())?
                    .trim()
                    .to_owned();
                let agent = medsec_tuf_client::HttpTransport::new(ca_pem.as_deref(), TIMEOUT)
                    .map_err(|e| e.to_string())?
                    .agent()
                    .clone();
                Ok(Delivery::Http {
                    kind: sink.kind,
                    url: sink.url.clone().unwrap_or_default(),
                    secret,
                    agent,
                })
            }
            SinkKind::Syslog => {
                let address = sink.address.clone().unwrap_or_default();
                let host = address
                    .rsplit_once(':')
                    .map_or(address.as_str(), |(h, _)| h)
                    .trim_matches(['[', ']'])
                    .to_owned();
                let name = sink.server_name.clone().unwrap_or(host);
                let server_name = rustls_pki_types::ServerName::try_from(name.clone())
                    .map_err(|e| format!("server_name {name:?}: {e}"))?;
                let mut roots = rustls::RootCertStore::empty();
                for cert in CertificateDer::pem_slice_iter(ca_pem.as_deref().unwrap_or_default()) {
                    roots
                        .add(cert.map_err(|e| format!("ca_file: {e}"))?)
                        .map_err(|e| format!("ca_file: {e}"))?;
                }
                let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
                    rustls::crypto::aws_lc_rs::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_root_certificates(roots)
                .with_no_client_auth();
                Ok(Delivery::Syslog {
                    address,
                    server_name,
                    connector: tokio_rustls::TlsConnector::from(Arc::new(tls)),
                    stream: None,
                    hostname: config
                        .hostnames
                        .first()
                        .cloned()
                        .unwrap_or_else(|| "medsec".into()),
                })
            }
        }
    }

    /// Sends one event.
    pub async fn send(&mut self, event: &ExportEvent) -> Result<(), Failure> {
        match self {
            Delivery::Http {
                kind,
                url,
                secret,
                agent,
            } => {
                let (body, headers) = match kind {
                    SinkKind::SplunkHec => (
                        hec_body(event),
                        vec![("Authorization".to_owned(), format!("Splunk {secret}"))],
                    ),
                    _ => {
                        let body = serde_json::to_vec(event).unwrap_or_default();
                        let t = crate::state::now_ms() / 1000;
                        let signature = sign(secret.as_bytes(), t, &body);
                        (
                            body,
                            vec![(SIGNATURE_HEADER.to_owned(), format!("t={t},v1={signature}"))],
                        )
                    }
                };
                let (agent, url, id) = (agent.clone(), url.clone(), event.id.clone());
                tokio::task::spawn_blocking(move || post(&agent, &url, &id, &headers, body))
                    .await
                    .map_err(|e| Failure::Unavailable(e.to_string()))?
            }
            Delivery::Syslog {
                address,
                server_name,
                connector,
                stream,
                hostname,
            } => {
                let message = syslog_frame(hostname, event);
                if stream.is_none() {
                    let tcp =
                        tokio::time::timeout(TIMEOUT, tokio::net::TcpStream::connect(&*address))
                            .await
                            .map_err(|_| {
                                Failure::Unavailable(format!("connecting to {address}: timed out"))
                            })?
                            .map_err(|e| {
                                Failure::Unavailable(format!("connecting to {address}: {e}"))
                            })?;
                    let tls =
                        tokio::time::timeout(TIMEOUT, connector.connect(server_name.clone(), tcp))
                            .await
                            .map_err(|_| Failure::Unavailable("TLS handshake timed out".into()))?
                            .map_err(|e| {
                                Failure::Unavailable(format!("TLS with {address}: {e}"))
                            })?;
                    *stream = Some(Box::new(tls));
                }
                let Some(s) = stream.as_mut() else {
                    return Err(Failure::Unavailable("no connection".into()));
                };
                let written = tokio::time::timeout(TIMEOUT, async {
                    s.write_all(message.as_bytes()).await?;
                    s.flush().await
                })
                .await;
                match written {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => {
                        *stream = None;
                        Err(Failure::Unavailable(format!("writing to {address}: {e}")))
                    }
                    Err(_) => {
                        *stream = None;
                        Err(Failure::Unavailable(format!(
                            "writing to {address}: timed out"
                        )))
                    }
                }
            }
        }
    }
}

/// HMAC-SHA256 of `"{t}.{body}"` under `key`, in hex.
pub fn sign(key: &[u8], t: i64, body: &[u8]) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key);
    let mut ctx = aws_lc_rs::hmac::Context::with_key(&key);
    ctx.update(t.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    hex::encode(ctx.sign().as_ref())
}

fn post(
    agent: &ureq::Agent,
    url: &str,
    id: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> Result<(), Failure> {
    let mut request = agent
        .post(url)
        .header("Content-Type", "application/json")
        .header("Medsec-Event-Id", id);
    for (k, v) in headers {
        request = request.header(k.as_str(), v.as_str());
    }
    let answer = request
        .send(&body[..])
        .map_err(|e| Failure::Unavailable(format!("POST {url}: {e}")))?;
    let status = answer.status().as_u16();
    match status {
        200..=299 => Ok(()),
        408 | 429 | 500..=599 => Err(Failure::Unavailable(format!("POST {url}: HTTP {status}"))),
        _ => Err(Failure::Refused(format!("POST {url}: HTTP {status}"))),
    }
}

/// Splunk HEC's event envelope.
fn hec_body(event: &ExportEvent) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        // Seconds with milliseconds, as HEC reads `time`.
        "time": format!("{}.{:03}", event.at_ms / 1000, event.at_ms.rem_euclid(1000)),
        "source": "medsec",
        "sourcetype": "medsec:event",
        "event": event,
    }))
    .unwrap_or_default()
}

/// CEF's severity (0–10) of a medsec severity.
fn cef_severity(severity: &str) -> u8 {
    match severity {
        "critical" => 10,
        "high" => 8,
        "medium" => 5,
        "low" => 3,
        _ => 1,
    }
}

/// Syslog's severity (RFC 5424 section 6.2.1) of a medsec severity.
fn syslog_severity(severity: &str) -> u8 {
    match severity {
        "critical" => 2,
        "high" => 3,
        "medium" => 4,
        "low" => 5,
        _ => 6,
    }
}

/// A CEF header field: `\` and `|` escaped, line breaks as spaces.
fn cef_header(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace(['\r', '\n'], " ")
}

/// A CEF extension value: `\` and `=` escaped, line breaks as `\n`.
fn cef_value(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('=', "\\=")
        .replace("\r\n", "\\n")
        .replace(['\r', '\n'], "\\n")
}

/// The event as CEF (ArcSight Common Event Format, version 0).
pub fn cef(event: &ExportEvent) -> String {
    let mut ext = vec![
        format!("rt={}", event.at_ms),
        format!("externalId={}", cef_value(&event.id)),
        format!("cat={}", cef_value(&event.kind)),
        format!("act={}", cef_value(&event.action)),
        format!("suser={}", cef_value(&event.principal)),
        format!("outcome={}", cef_value(&event.outcome)),
    ];
    if let Some(device) = &event.device {
        ext.push(format!("cs1Label=device cs1={}", cef_value(device)));
    }
    if let Some(t) = &event.technique {
        ext.push(format!("cs2Label=attackTechnique cs2={}", cef_value(t)));
    }
    if let Ok(addr) = event.source.parse::<std::net::SocketAddr>() {
        ext.push(format!("src={}", addr.ip()));
    }
    ext.push(format!("msg={}", cef_value(&event.summary)));
    format!(
        "CEF:0|medsec|medsec|{}|{}|{}|{}|{}",
        env!("CARGO_PKG_VERSION"),
        cef_header(&event.action),
        cef_header(&format!("{} {}", event.kind, event.action)),
        cef_severity(&event.severity),
        ext.join(" ")
    )
}

/// One RFC 5424 message (facility 13, log audit) carrying the CEF text, framed by octet
/// counting (RFC 5425 section 4.3: `LENGTH SP MESSAGE`).
pub fn syslog_frame(hostname: &str, event: &ExportEvent) -> String {
    let pri = 13 * 8 + u32::from(syslog_severity(&event.severity));
    let message = format!(
        "<{pri}>1 {} {hostname} medsec - {} - {}",
        event.at,
        event.kind,
        cef(event)
    );
    format!("{} {message}", message.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> ExportEvent {
        ExportEvent {
            id: "alert-7".into(),
            kind: "alert".into(),
            severity: "high".into(),
            at_ms: 1_796_600_000_123,
            at: "2026-12-07T05:33:20.123Z".into(),
            action: "egress-not-allowed".into(),
            principal: "Device::\"pump-1\"".into(),
            resource: "Device::\"pump-1\"".into(),
            outcome: "alert".into(),
            summary: "flow to 203.0.113.9:443 = not allowed | exfil?\nsecond line".into(),
            device: Some("pump-1".into()),
            source: "10.0.1.5:51000".into(),
            technique: Some("T0882".into()),
        }
    }

    #[test]
    fn cef_escapes_its_delimiters_and_the_frame_counts_octets() {
        let c = cef(&event());
        assert!(c.starts_with("CEF:0|medsec|medsec|"), "{c}");
        assert!(
            c.contains("|egress-not-allowed|alert egress-not-allowed|8|"),
            "{c}"
        );
        assert!(
            c.contains("msg=flow to 203.0.113.9:443 \\= not allowed | exfil?\\nsecond line"),
            "{c}"
        );
        assert!(c.contains("src=10.0.1.5") && c.contains("cs1=pump-1") && c.contains("cs2=T0882"));
        let frame = syslog_frame("medsec.example", &event());
        let (len, rest) = frame.split_once(' ').unwrap();
        assert_eq!(len.parse::<usize>().unwrap(), rest.len());
        assert!(
            rest.starts_with(
                "<107>1 2026-12-07T05:33:20.123Z medsec.example medsec - alert - CEF:0|"
            ),
            "{rest}"
        );
    }

    #[test]
    fn the_webhook_signature_is_hmac_sha256_over_time_and_body() {
        // RFC 4231 test case 2's key and data, split as "t.body".
        let s = sign(b"Jefe", 1, b"what do ya want for nothing?");
        assert_eq!(s.len(), 64);
        assert_ne!(
            s,
            sign(b"Jefe", 2, b"what do ya want for nothing?"),
            "the time is signed"
        );
        assert_ne!(
            s,
            sign(b"Jefe", 1, b"what do ya want for nothing!"),
            "the body is signed"
        );
    }
}
