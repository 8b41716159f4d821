//! Telemetry through an MQTT broker, for scale-out (`[mqtt]` in the configuration).
//!
//! - Devices publish each batch (the same JSON as over HTTPS, gzip or plain) with QoS 1 to
//!   `<topic_prefix>/<device id>/telemetry`, connecting to the broker with their fleet
//!   certificate. The broker (Mosquitto, configured by [`write_broker_config`]) takes the
//!   device id from the certificate's CN and lets each device publish only under its own id.
//! - Each replica opens `mqtt.connections` connections into the shared subscription
//!   `$share/<group>/<topic_prefix>/+/telemetry`, so replicas and connections split the load.
//! - A message is acknowledged to the broker (PUBACK, with manual acks) only once its batch is
//!   committed, or is a duplicate of a stored batch (same device, number and content: a
//!   redelivery), or is refused for good (malformed, a replay of a stored number with other
//!   content, not permitted, over the device's rate: audited as over HTTPS, summarised per
//!   window). If the store fails, the connection is dropped without the acknowledgement and the
//!   broker delivers the message again (the session is persistent).
//! - Order does not matter: a device's batches reach two connections (or two replicas) and
//!   commit in any order. The store keeps the numbers a device skipped as gaps and fills them
//!   when the late batches come; no window bounds how late (docs/defender.md).
//! - Backpressure: each connection handles one message at a time and the broker holds at most
//!   its `max_inflight_messages` unacknowledged messages per connection; the rest queue at the
//!   broker (`max_queued_messages`, `max_queued_bytes`, kept on disk), then the broker drops
//!   them.
//! - Each device is held to `limits.requests_per_second` with the burst
//!   `limits.mqtt_device_burst`, as over HTTPS but with room for the backlog the broker keeps
//!   while the server is down.
//! - The server checks what the broker cannot: the device's current record (a device revoked,
//!   online or by an offline CRL, which the server copies into the store, is refused
//!   even while its connection to the broker stays open, as Mosquitto applies a CRL only to new
//!   connections), Cedar's `telemetry.send`, and the sequence numbers.
//! - A refused payload is logged by its size and hash, never its content.
//!
//! The ingestion client's certificate is issued by the fleet CA for each connection and kept in
//! memory only; its CN (`medsec:ingest`) holds a `:` that no device id may hold.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use medsec_store::prelude::*;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, TlsConfiguration, Transport};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::access::{authorize, device_caller};
use crate::authz::Target;
use crate::config::Mqtt;
use crate::state::{AppState, Conn, Peer};
use crate::telemetry::{ACTION, Ingested, ingest};

/// Messages the broker configuration lets queue per ingestion connection.
pub const BROKER_MAX_QUEUED_MESSAGES: u64 = 100_000;
/// Bytes the broker configuration lets queue per ingestion connection (1 GiB).
pub const BROKER_MAX_QUEUED_BYTES: u64 = 1 << 30;
/// How often the broker saves its queues to disk, in seconds.
pub const BROKER_AUTOSAVE_SECS: u64 = 60;

/// Acknowledgements that may wait to be sent (see `session`).
const ACK_QUEUE: usize = 4_096;

/// The CN of the ingestion client's certificate; the broker's ACL names it.
pub const INGEST_IDENTITY: &str = "medsec:ingest";

/// The topic a device publishes its telemetry to.
pub fn device_topic(prefix: &str, device: &str) -> String {
    format!("{prefix}/{device}/telemetry")
}

/// The device a topic names, if it has the form `<prefix>/<id>/telemetry`.
fn topic_device<'a>(prefix: &str, topic: &'a str) -> Option<&'a str> {
    topic
        .strip_prefix(prefix)?
        .strip_prefix('/')?
        .strip_suffix("/telemetry")
        .filter(|id| !id.contains('/'))
}

/// What became of one message; anything but `Retry` is acknowledged to the broker.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Stored,
    Refused,
    Retry,
}

/// Starts the ingestion connections (they reconnect forever; errors are logged).
pub(crate) fn start(state: &Arc<AppState>) -> Result<(), crate::Error> {
    let config = &state.config.mqtt;
    let Some(broker) = config.broker.clone() else {
        return Ok(());
    };
    let (host, port) = split_broker(&broker)?;
    for n in 0..config.connections {
        let state = state.clone();
        let host = host.clone();
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(200);
            loop {
                match session(&state, &host, port, n).await {
                    Ok(()) => backoff = Duration::from_millis(200),
                    Err(e) => {
                        tracing::warn!(broker = %format!("{host}:{port}"), connection = n, error = %e,
                            "MQTT ingestion connection ended; reconnecting");
                        backoff = (backoff * 2).min(Duration::from_secs(30));
                    }
                }
                tokio::time::sleep(backoff).await;
            }
        });
    }
    tracing::info!(broker = %broker, connections = config.connections, "MQTT telemetry ingestion started");
    Ok(())
}

fn split_broker(broker: &str) -> Result<(String, u16), crate::Error> {
    broker
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h.trim_matches(['[', ']']).to_owned(), p.parse().ok()?)))
        .ok_or_else(|| crate::Error::Config {
            reason: format!("mqtt.broker {broker:?} must be host:port"),
        })
}

/// The TLS client configuration: TLS 1.3 only, the broker verified against `ca_file` (default:
/// the fleet chain), and a fresh ingestion certificate from the fleet CA.
async fn tls_config(state: &AppState) -> Result<rustls::ClientConfig, String> {
    let config = &state.config.mqtt;
    let (chain_pem, key_pem, default_ca) = {
        let mut ca = state.ca.lock().await;
        let (chain, key) = ca
            .issue_service_client(INGEST_IDENTITY, 30)
            .map_err(|e| format!("issuing the ingestion certificate: {e}"))?;
        (chain, key, ca.chain_path())
    };
    let ca_file = config.ca_file.clone().unwrap_or(default_ca);
    let ca_pem = std::fs::read(&ca_file)
        .map_err(|e| format!("reading mqtt.ca_file {}: {e}", ca_file.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&ca_pem) {
        let cert = cert.map_err(|e| format!("mqtt.ca_file {}: {e}", ca_file.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("mqtt.ca_file {}: {e}", ca_file.display()))?;
    }
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| e.to_string())?;
    rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_client_auth_cert(chain, key)
    .map_err(|e| e.to_string())
}

/// One connection, until it fails.
async fn session(state: &Arc<AppState>, host: &str, port: u16, n: usize) -> Result<(), String> {
    let config: &Mqtt = &state.config.mqtt;
    let limits = &state.config.limits;
    let mut options = MqttOptions::new(format!("{}-{n}", config.client_id), host, port);
    options
        .set_keep_alive(Duration::from_secs(config.keep_alive_secs))
        .set_clean_session(false)
        .set_manual_acks(true)
        // A batch is bounded as over HTTPS (its compressed size), plus the topic and header.
        .set_max_packet_size(limits.max_body_bytes.saturating_add(1024), 64 * 1024)
        .set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            Arc::new(tls_config(state).await?),
        )));
    let broker_addr = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("resolving {host}:{port}: {e}"))?
        .next()
        .unwrap_or(SocketAddr::from(([0, 0, 0, 0], port)));
    // Stored beside each batch as `mqtt://<broker>/<client id>`: which connection took it.
    let broker_label: Arc<str> = Arc::from(format!("{host}:{port}/{}-{n}", config.client_id));
    // Acknowledgements wait in this channel until the event loop next writes to the network,
    // which it does only once it has handed out every packet it already read: it must hold
    // every message the broker may have unacknowledged at once (`max_inflight_messages`, 64 in
    // the configuration medsec writes), or the loop would wait on itself.
    let (client, mut events) = AsyncClient::new(options, ACK_QUEUE);
    let filter = format!(
        "$share/{}/{}/+/telemetry",
        config.group, config.topic_prefix
    );
    loop {
        let event = events.poll().await.map_err(|e| e.to_string())?;
        match event {
            // A new session (the broker kept none for this id) subscribes; a resumed one
            // still holds its subscription and its unacknowledged messages.
            Event::Incoming(Packet::ConnAck(ack)) if !ack.session_present => {
                client
                    .subscribe(filter.clone(), QoS::AtLeastOnce)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Event::Incoming(Packet::SubAck(ack)) => {
                if ack
                    .return_codes
                    .iter()
                    .any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure))
                {
                    return Err(format!(
                        "the broker refused the subscription {filter}: check its ACL for {INGEST_IDENTITY}"
                    ));
                }
                tracing::info!(connection = n, filter = %filter, "subscribed");
            }
            Event::Incoming(Packet::Publish(publish)) => {
                let conn_source = (broker_addr, broker_label.clone());
                match handle(state, &conn_source, &publish.topic, &publish.payload).await {
                    Outcome::Retry => {
                        // Not acknowledged: dropping the connection makes the broker deliver it
                        // again to this or another member of the group.
                        let _ = client.disconnect().await;
                        return Err("the store failed; the message goes back to the broker".into());
                    }
                    Outcome::Stored | Outcome::Refused => {
                        // Never waits: a full queue means a broker sending more than
                        // ACK_QUEUE unacknowledged messages; reconnecting makes it resend them
                        // (the stored ones are then duplicates, acknowledged, not stored again).
                        client.try_ack(&publish).map_err(|e| {
                            format!(
                                "more than {ACK_QUEUE} unacknowledged messages: lower the \
                                 broker's max_inflight_messages ({e})"
                            )
                        })?;
                    }
                }
            }
            _ => {}
        }
    }
}

/// One message: the device from the topic (the broker bound it to the certificate), its rate,
/// its record (revoked: refused, whatever the broker still accepts), Cedar, then the same
/// ingestion as over HTTPS. What it logs names the payload by size and hash, never its text.
async fn handle(
    state: &AppState,
    (broker_addr, broker): &(SocketAddr, Arc<str>),
    topic: &str,
    payload: &[u8],
) -> Outcome {
    let config = &state.config.mqtt;
    let Some(id) =
        topic_device(&config.topic_prefix, topic).and_then(|id| medsec_pki::DeviceId::new(id).ok())
    else {
        tracing::warn!(
            topic = %medsec_util::clip(topic, 128),
            "MQTT message on a topic that names no device: dropped"
        );
        return Outcome::Refused;
    };
    let conn = Conn {
        addr: *broker_addr,
        peer: Peer::Device(id.clone()),
        certificate: None,
        serial: None,
        operator_port: false,
        broker: Some(broker.clone()),
    };
    let target = Target::Device(id.as_str().to_owned());
    let result = async {
        if !state.mqtt_rate_ok(id.as_str()) {
            return Err(rate_limited(state, &conn, &target, id.as_str()).await);
        }
        let record = state.store.device(id.as_str()).await.map_err(Into::into);
        let mut who = device_caller(state, &conn, &id, record, ACTION, &target).await?;
        who.credential = "broker-fleet-certificate";
        authorize(state, &conn, &who, ACTION, &target).await?;
        // MQTT 3.1.1 carries no content encoding: gzip is known by its magic number (a JSON
        // batch starts with `{` or white space).
        let encoding = payload.starts_with(&[0x1f, 0x8b]).then_some("gzip");
        ingest(state, &conn, &who, &target, encoding, payload).await
    }
    .await;
    match result {
        Ok(Ingested::Accepted { .. } | Ingested::Duplicate { .. }) => Outcome::Stored,
        Ok(Ingested::Replayed { .. }) => Outcome::Refused,
        // Not acknowledged, so the broker delivers it again: what failed on medsec's side
        // (storage, the audit log), not what the message is.
        Err(e) if retryable(&e) => {
            tracing::error!(device = id.as_str(), error = %e, "MQTT telemetry not stored");
            Outcome::Retry
        }
        Err(e) => {
            tracing::debug!(
                device = id.as_str(),
                bytes = payload.len(),
                sha256 = %short_hash(payload),
                error = %medsec_util::clip(&e.to_string(), 240),
                "MQTT telemetry refused"
            );
            Outcome::Refused
        }
    }
}

/// A device over its MQTT rate: the refusal is counted in the audit log (one entry per window
/// with the count), and the first of each window raises the alert `telemetry-rate-limit`.
async fn rate_limited(state: &AppState, conn: &Conn, target: &Target, id: &str) -> crate::Error {
    let mut e = crate::audit_log::event(
        crate::repeats::LIMIT_KIND,
        &format!("Device::{id:?}"),
        ACTION,
        &target.label(),
        "deny",
    );
    e.source = conn.addr.to_string();
    e.detail = format!(
        "rate limit exceeded over MQTT: more than {}/s sustained (burst {})",
        state.config.limits.requests_per_second, state.config.limits.mqtt_device_burst
    );
    match state.audit_or_count(e, conn.addr.ip()).await {
        Ok(true) => {
            let now = crate::state::now_ms();
            let alert = medsec_defender::rules::rate_limited(
                state.config.limits.requests_per_second,
                state.config.limits.mqtt_device_burst,
                now,
            );
            if let Err(err) = crate::telemetry::raise(state, id, 0, &alert, now).await {
                return err;
            }
        }
        Ok(false) => {}
        Err(err) => return err,
    }
    crate::Error::Refused {
        reason: "rate limit exceeded over MQTT".into(),
    }
}

/// The first 8 bytes of a payload's SHA-256, hex: names a refused payload in the log without
/// its content.
fn short_hash(payload: &[u8]) -> String {
    hex::encode(&medsec_crypto::digest::sha256(payload)[..8])
}

/// Whether a message that failed should stay unacknowledged: everything but a refusal of the
/// message or its sender (bad input, no record, policy, a conflict), as the HTTPS path answers
/// 4xx for those and 500 for the rest.
fn retryable(e: &crate::Error) -> bool {
    use medsec_store::Error as Store;
    !matches!(
        e,
        crate::Error::Refused { .. }
            | crate::Error::TooLarge { .. }
            | crate::Error::Unauthenticated { .. }
            | crate::Error::Forbidden
            | crate::Error::Contended { .. }
            | crate::Error::Store(Store::NotFound { .. } | Store::Conflict { .. })
    )
}

/// The files `medsec mqtt broker-config` writes for Mosquitto.
#[derive(Debug)]
pub struct BrokerFiles {
    /// `mosquitto.conf`: start the broker with `mosquitto -c <this>`.
    pub config: PathBuf,
    /// The ACL file.
    pub acl: PathBuf,
}

/// Writes a Mosquitto configuration into `dir` for a TLS listener on `listen` whose clients are
/// authenticated by fleet certificates: the broker's own certificate (for `hostnames`) from the
/// fleet CA, the fleet chain as the client CA, the fleet CRL, `use_identity_as_username` (so
/// the username is the certificate's CN, the device id), and an ACL that lets each device
/// publish only to its own telemetry topic and the ingestion identity only read them.
pub fn write_broker_config(
    ca: &mut medsec_pki::FleetCa,
    dir: &Path,
    listen: SocketAddr,
    hostnames: &[String],
    mqtt: &Mqtt,
    max_message_bytes: usize,
    run_as: Option<&str>,
) -> Result<BrokerFiles, crate::Error> {
    if let Some(user) = run_as
        && (user.is_empty()
            || !user
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)))
    {
        return Err(crate::Error::Config {
            reason: format!("--run-as {user:?} is not a user name"),
        });
    }
    std::fs::create_dir_all(dir).map_err(crate::Error::io("creating", dir))?;
    let (chain, key) = ca.issue_server(hostnames, 397)?;
    let write = |name: &str, text: &str, public: bool| -> Result<PathBuf, crate::Error> {
        let path = dir.join(name);
        medsec_util::write_atomic(
            &path,
            text.as_bytes(),
            if public {
                medsec_util::Access::Public
            } else {
                medsec_util::Access::Private
            },
        )?;
        Ok(path)
    };
    let cert = write("broker.pem", &chain, true)?;
    let key = write("broker.key", &key, false)?;
    let fleet = std::fs::read_to_string(ca.chain_path())
        .map_err(crate::Error::io("reading", &ca.chain_path()))?;
    let cafile = write("fleet-chain.pem", &fleet, true)?;
    let acl = write(
        "acl",
        &format!(
            "# Written by `medsec mqtt broker-config`. With use_identity_as_username the user is\n\
             # the certificate's CN: a device id, or {INGEST_IDENTITY} for medsec's ingestion.\n\
             # Each device publishes only its own telemetry.\n\
             pattern write {prefix}/%u/telemetry\n\n\
             user {INGEST_IDENTITY}\n\
             topic read {prefix}/+/telemetry\n",
            prefix = mqtt.topic_prefix,
        ),
        true,
    )?;
    // The broker's store of queued messages: what the ingestion sessions have not taken yet
    // survives a broker restart. The broker's user must be able to write it.
    let persistence = dir.join("persistence");
    std::fs::create_dir_all(&persistence).map_err(crate::Error::io("creating", &persistence))?;
    let config = write(
        "mosquitto.conf",
        &format!(
            "# Written by `medsec mqtt broker-config` (docs/defender.md, MQTT ingestion).\n\
             per_listener_settings false\n\
             allow_anonymous false\n\
             acl_file {acl}\n\
             # Unacknowledged messages per client: medsec acknowledges a batch once stored.\n\
             max_inflight_messages 64\n\
             # Messages, and bytes, queued per client beyond those in flight (each ingestion\n\
             # connection is a client): what the broker holds while the server is down. Past\n\
             # either, the broker drops new messages for that client.\n\
             max_queued_messages {queued}\n\
             max_queued_bytes {queued_bytes}\n\
             message_size_limit {max_message_bytes}\n\
             # Queued messages and sessions are kept on disk: saved every {autosave} s and at a\n\
             # clean shutdown, so a restart keeps them and a crash of the broker loses at most\n\
             # the last {autosave} s of what it had not handed to medsec.\n\
             persistence true\n\
             persistence_location {persistence}/\n\
             autosave_interval {autosave}\n\
             {user}\n\
             listener {port} {addr}\n\
             cafile {cafile}\n\
             certfile {cert}\n\
             keyfile {key}\n\
             # Reread on SIGHUP (see medsec-broker-crl.path): new connections of a revoked\n\
             # device are refused; medsec refuses the messages of one already connected.\n\
             crlfile {crl}\n\
             tls_version tlsv1.3\n\
             require_certificate true\n\
             use_identity_as_username true\n",
            acl = acl.display(),
            queued = BROKER_MAX_QUEUED_MESSAGES,
            queued_bytes = BROKER_MAX_QUEUED_BYTES,
            autosave = BROKER_AUTOSAVE_SECS,
            persistence = persistence.display(),
            user = run_as.map(|u| format!("user {u}")).unwrap_or_default(),
            port = listen.port(),
            addr = listen.ip(),
            cafile = cafile.display(),
            cert = cert.display(),
            key = key.display(),
            crl = ca.crl_path().display(),
        ),
        true,
    )?;
    // Mosquitto rereads its CRL on SIGHUP only: a systemd path unit sends it on each change.
    write(
        "medsec-broker-crl.path",
        &format!(
            "# Written by `medsec mqtt broker-config`: reloads the broker when the fleet CRL\n\
             # changes. Install with medsec-broker-crl.service in /etc/systemd/system, then\n\
             # `systemctl enable --now medsec-broker-crl.path`.\n\
             [Unit]\n\
             Description=Reload Mosquitto when the medsec fleet CRL changes\n\n\
             [Path]\n\
             PathChanged={crl}\n\n\
             [Install]\n\
             WantedBy=multi-user.target\n",
            crl = ca.crl_path().display()
        ),
        true,
    )?;
    write(
        "medsec-broker-crl.service",
        "# Written by `medsec mqtt broker-config`: see medsec-broker-crl.path.\n\
         [Unit]\n\
         Description=Reload Mosquitto's CRL (SIGHUP)\n\n\
         [Service]\n\
         Type=oneshot\n\
         ExecStart=/bin/systemctl reload-or-restart mosquitto.service\n",
        true,
    )?;
    Ok(BrokerFiles { config, acl })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_name_exactly_one_device() {
        assert_eq!(
            topic_device("medsec/devices", "medsec/devices/pump-1/telemetry"),
            Some("pump-1")
        );
        for bad in [
            "medsec/devices/pump-1/telemetry/x",
            "medsec/devices/a/b/telemetry",
            "medsec/devicespump-1/telemetry",
            "other/pump-1/telemetry",
            "medsec/devices/pump-1/status",
        ] {
            assert_eq!(topic_device("medsec/devices", bad), None, "{bad}");
        }
        assert_eq!(
            device_topic("medsec/devices", "pump-1"),
            "medsec/devices/pump-1/telemetry"
        );
    }

    #[test]
    fn broker_addresses_parse() {
        assert_eq!(
            split_broker("127.0.0.1:8883").unwrap(),
            ("127.0.0.1".into(), 8883)
        );
        assert_eq!(split_broker("[::1]:8883").unwrap(), ("::1".into(), 8883));
        assert!(split_broker("broker").is_err());
    }
}
