//! The server's configuration: one typed struct, read from a TOML file, then `MEDSEC_*`
//! environment variables (`MEDSEC_LIMITS__MAX_BODY_BYTES=…` for nested keys), then flags.
//! Every limit is here, with its default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format as _, Serialized, Toml};
use serde::{Deserialize, Serialize};

use crate::Error;

/// The top-level keys, as the environment may name them.
const TOP_KEYS: &[&str] = &[
    "data_dir",
    "database_url",
    "database_connections",
    "device_listen",
    "operator_listen",
    "hostnames",
    "ca_passphrase_file",
    "insecure_plaintext_audit_key",
    "audit_key_pkcs11",
    "require_hybrid_kx",
    "device_cert_days",
    "manufacturer_cas",
    "manufacturers",
    "policy_dir",
    "crl_reload_ms",
    "crl_days",
    "image_repository",
    "image_root",
    "director_expiry_hours",
    "defender_policy",
    "defender_sigma_dir",
    "defender_audit_interval_secs",
    "defender_baseline_reload_secs",
    "vendor_aliases",
    "mqtt",
    "console",
    "limits",
];

/// A manufacturer CA trusted to vouch for some devices: an IDevID it issued enrols the device
/// id its subject names (serialNumber, else CN) only if the id, the model and the hardware
/// type are in its scope, and only a device never enrolled (docs/server.md).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Manufacturer {
    /// A name for it, in audit entries ("acme").
    pub name: String,
    /// PEM file of the CA's certificate(s).
    pub ca: PathBuf,
    /// Patterns of the device ids it may vouch for (`*` any run of characters, `?` one); at
    /// least one.
    pub device_ids: Vec<String>,
    /// Models its devices may be registered as; a device without a record is registered as the
    /// first. Empty: any model a pre-registered device has, else `unspecified`.
    #[serde(default)]
    pub models: Vec<String>,
    /// Hardware types (RFC 4108 HardwareModuleName hwType OIDs, in the IDevID's subject
    /// alternative name, as IEEE 802.1AR recommends) it may vouch for. Empty: not checked.
    #[serde(default)]
    pub hardware_ids: Vec<String>,
}

impl Manufacturer {
    /// Whether `id` matches one of `device_ids`: shell-style wildcards, as TUF delegation
    /// paths match (device ids hold no `/`, and patterns no `[`).
    pub fn covers_id(&self, id: &str) -> bool {
        self.device_ids
            .iter()
            .any(|p| medsec_tuf::pattern::matches(p, id))
    }
}

/// A key held in a PKCS#11 token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Pkcs11Key {
    /// The PKCS#11 module (`libsofthsm2.so`, a vendor's library).
    pub module: PathBuf,
    /// The token's label.
    pub token: String,
    /// A file holding the user PIN (the owner's only, like a passphrase file).
    pub pin_file: PathBuf,
    /// The key's label in the token (made on first start).
    #[serde(default = "audit_key_label")]
    pub label: String,
}

fn audit_key_label() -> String {
    "medsec-audit".into()
}

/// Everything `medsec server` can be told.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the CA, keys and the SQLite database live.
    pub data_dir: PathBuf,
    /// `sqlite://PATH` or `postgres://…`; default: `sqlite://<data_dir>/medsec.db`.
    pub database_url: Option<String>,
    /// Connections in the database pool; 0 (the default) picks: for SQLite, one per CPU core
    /// (each SQLite connection is a worker thread, and on a small machine more threads mostly
    /// add hand-offs: see docs/benchmarks.md, director polls); for PostgreSQL, 8.
    pub database_connections: u32,
    /// The device port: mutual TLS 1.3, EST and the device API.
    pub device_listen: SocketAddr,
    /// The operator port: TLS, API tokens.
    pub operator_listen: SocketAddr,
    /// Names and addresses in the server's certificate.
    pub hostnames: Vec<String>,
    /// File holding the passphrase of the issuing CA key, if it is encrypted.
    pub ca_passphrase_file: Option<PathBuf>,
    /// Allow the audit log's signing key unencrypted on disk (no CA passphrase). Off by
    /// default: whoever reads a plaintext key can re-sign a rewritten log. For tests and
    /// throw-away demos; `--insecure-plaintext-audit-key`.
    pub insecure_plaintext_audit_key: bool,
    /// Keep the audit log's signing key in a PKCS#11 token (an HSM; SoftHSM in tests) instead
    /// of `audit.key`: it signs there and never leaves it.
    pub audit_key_pkcs11: Option<Pkcs11Key>,
    /// Refuse device-port clients that cannot do the hybrid post-quantum key exchange
    /// X25519MLKEM768 (by default they get X25519 or P-256; a client that lists the hybrid
    /// group anywhere always gets it).
    pub require_hybrid_kx: bool,
    /// Lifetime of device certificates issued by EST, in days.
    pub device_cert_days: i64,
    /// Refused when not empty: it trusted a CA to vouch for any device id. Each CA is now a
    /// `[[manufacturers]]` entry that names what it may vouch for.
    pub manufacturer_cas: Vec<PathBuf>,
    /// Manufacturer CAs whose certificates (IDevIDs) may enrol devices, each scoped to the
    /// devices it may vouch for.
    pub manufacturers: Vec<Manufacturer>,
    /// A directory with `medsec.cedarschema` and `*.cedar` policies; default: the shipped ones.
    pub policy_dir: Option<PathBuf>,
    /// How often the CRL file is checked for changes, in milliseconds.
    pub crl_reload_ms: u64,
    /// Lifetime of the CRLs the server signs, in days; it re-signs at half that age.
    pub crl_days: i64,
    /// A published TUF image repository (the output of `medsec repo publish`): served to
    /// devices at `/repo/`, and where the director takes image entries from.
    pub image_repository: Option<PathBuf>,
    /// The image repository root the server trusts (default: the published `1.root.json`,
    /// trusted on first use).
    pub image_root: Option<PathBuf>,
    /// Lifetime of the director's per-device metadata, in hours; re-signed at half of it.
    pub director_expiry_hours: u64,
    /// The Defender's rule policy (JSON: allowlists and thresholds per device model; see
    /// docs/defender.md). Default: the rules that need no profile (implausible clinical
    /// readings, failed attestation, logging turned off, bursts of failed logins).
    pub defender_policy: Option<PathBuf>,
    /// A directory of Sigma rules (`*.yml`, `*.yaml`, one rule per file) run on every telemetry
    /// event at ingestion (docs/defender.md). A rule that does not parse stops the server.
    pub defender_sigma_dir: Option<PathBuf>,
    /// How often the Defender's audit checks run on their own, in seconds (default 3600; 0
    /// turns the schedule off). New findings go to the audit log (docs/defender.md).
    pub defender_audit_interval_secs: u64,
    /// How long a replica keeps the learned baseline it loaded before it checks for a newer
    /// version, in seconds (default 30, 1 to 3600). Only a newer version is read and verified
    /// again (docs/defender.md).
    pub defender_baseline_reload_secs: u64,
    /// A vendor alias table added to medsec's own for matching SBOM components to
    /// advisories by vendor and product name (lines `Canonical: alias; alias`; docs/risk.md).
    /// A table that does not read stops the server.
    pub vendor_aliases: Option<PathBuf>,
    /// Telemetry ingestion through an MQTT broker (scale-out; docs/defender.md). Off unless
    /// `mqtt.broker` is set.
    pub mqtt: Mqtt,
    /// Sinks security events are exported to (`[[export]]`: webhook, splunk-hec, syslog; see
    /// docs/operations.md).
    pub export: Vec<crate::export::SinkConfig>,
    /// The web console under `/ui/` on the operator port (docs/console.md).
    pub console: Console,
    /// Limits.
    pub limits: Limits,
}

/// The web console under `/ui/` on the operator port (docs/console.md).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Console {
    /// Serve the console (default true).
    pub enabled: bool,
    /// A session ends after this long without a request, in seconds (default 900; 60 to 86400).
    pub idle_timeout_secs: u64,
    /// A session ends this long after sign-in whatever happens, in seconds (default 43200;
    /// 300 to 604800).
    pub max_session_secs: u64,
    /// How often a live page's server checks for changes, in milliseconds (default 2000; 250 to
    /// 60000).
    pub live_interval_ms: u64,
    /// Live-update streams open at once, over all operators (default 200; 1 to 10000); one
    /// more is refused with 503 and the page falls back to reloading itself.
    pub max_live_streams: usize,
    /// A device not heard from for this long is "silent" on the dashboard, in seconds (default
    /// 86400).
    pub silent_after_secs: u64,
    /// Devices the dashboard's census reads at most (default 1000000); a larger fleet is
    /// summarised from its first this many, and the dashboard says so.
    pub max_census_devices: u32,
    /// Single sign-on with OpenID Connect; off unless `issuer` is set.
    pub oidc: Oidc,
}

impl Default for Console {
    fn default() -> Self {
        Self {
            enabled: true,
            idle_timeout_secs: 900,
            max_session_secs: 43_200,
            live_interval_ms: 2000,
            max_live_streams: 200,
            silent_after_secs: 86_400,
            max_census_devices: 1_000_000,
            oidc: Oidc::default(),
        }
    }
}

impl Console {
    fn check(&self) -> Result<(), String> {
        if !(60..=86_400).contains(&self.idle_timeout_secs) {
            return Err("console.idle_timeout_secs must be 60 to 86400".into());
        }
        if !(300..=604_800).contains(&self.max_session_secs) {
            return Err("console.max_session_secs must be 300 to 604800".into());
        }
        if !(250..=60_000).contains(&self.live_interval_ms) {
            return Err("console.live_interval_ms must be 250 to 60000".into());
        }
        if !(1..=10_000).contains(&self.max_live_streams) {
            return Err("console.max_live_streams must be 1 to 10000".into());
        }
        if self.max_census_devices == 0 {
            return Err("console.max_census_devices must be at least 1".into());
        }
        self.oidc.check()
    }
}

/// OpenID Connect sign-in (authorisation code with PKCE): the identity provider's groups give
/// medsec roles through `roles`; a person whose groups map to no role is not signed in.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Oidc {
    /// The issuer URL, exactly as the provider's discovery document and ID tokens name it
    /// (`https://…`; `http://` only on a loopback address). Unset: no single sign-on.
    pub issuer: Option<String>,
    /// The name on the sign-in button (default "single sign-on").
    pub provider_name: String,
    /// medsec's client id at the provider.
    pub client_id: String,
    /// A file holding the client secret (`client_secret_basic`); unset: a public client
    /// (PKCE alone).
    pub client_secret_file: Option<PathBuf>,
    /// PEM trust anchors for the provider's TLS certificate (default: the system's,
    /// `/etc/ssl/certs/ca-certificates.crt`).
    pub ca_file: Option<PathBuf>,
    /// Where the provider sends the browser back: `https://HOST:PORT/ui/login/callback`, as
    /// registered at the provider (default: built from the request's Host).
    pub redirect_url: Option<String>,
    /// Scopes asked for (default `openid profile email groups`).
    pub scopes: Vec<String>,
    /// The ID token claim that lists the person's groups (default `groups`).
    pub groups_claim: String,
    /// Group → medsec roles (`"fleet-security" = ["security"]`).
    pub roles: std::collections::BTreeMap<String, Vec<String>>,
}

impl Default for Oidc {
    fn default() -> Self {
        Self {
            issuer: None,
            provider_name: "single sign-on".into(),
            client_id: String::new(),
            client_secret_file: None,
            ca_file: None,
            redirect_url: None,
            scopes: ["openid", "profile", "email", "groups"]
                .map(str::to_owned)
                .to_vec(),
            groups_claim: "groups".into(),
            roles: std::collections::BTreeMap::new(),
        }
    }
}

impl Oidc {
    fn check(&self) -> Result<(), String> {
        let Some(issuer) = &self.issuer else {
            return Ok(());
        };
        let loopback = ["http://127.0.0.1", "http://[::1]", "http://localhost"]
            .iter()
            .any(|p| {
                issuer
                    .strip_prefix(p)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with([':', '/']))
            });
        if !issuer.starts_with("https://") && !loopback {
            return Err(format!(
                "console.oidc.issuer {issuer:?} must be an https:// URL (http:// only on a \
                 loopback address)"
            ));
        }
        if self.client_id.is_empty() {
            return Err("console.oidc.client_id is required with console.oidc.issuer".into());
        }
        if !self.scopes.iter().any(|s| s == "openid") {
            return Err("console.oidc.scopes must include \"openid\"".into());
        }
        if self.roles.is_empty() {
            return Err(
                "console.oidc.roles maps no group to a medsec role: nobody could sign in".into(),
            );
        }
        for (group, roles) in &self.roles {
            if let Some(bad) = roles
                .iter()
                .find(|r| !crate::tokens::ROLES.contains(&r.as_str()))
            {
                return Err(format!(
                    "console.oidc.roles[{group:?}]: unknown role {bad:?}: use {}",
                    crate::tokens::ROLES.join(", ")
                ));
            }
        }
        if let Some(url) = &self.redirect_url
            && !url.ends_with("/ui/login/callback")
        {
            return Err(format!(
                "console.oidc.redirect_url {url:?} must end in /ui/login/callback"
            ));
        }
        Ok(())
    }
}

/// Telemetry through an MQTT broker: devices publish their batches to
/// `<topic_prefix>/<device id>/telemetry` with their fleet certificate (the broker takes the
/// device id from the certificate and lets each device publish only under its own id: see
/// `medsec mqtt broker-config`), and every server replica subscribes to the shared subscription
/// `$share/<group>/<topic_prefix>/+/telemetry`, so the replicas split the load.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Mqtt {
    /// The broker, `host:port` (TLS only). Unset: no MQTT ingestion.
    pub broker: Option<String>,
    /// The name in the broker's certificate; default: the host part of `broker`.
    pub server_name: Option<String>,
    /// PEM trust anchors for the broker's certificate; default: the fleet CA chain (the broker
    /// certificate made by `medsec mqtt broker-config`).
    pub ca_file: Option<PathBuf>,
    /// This replica's MQTT client id prefix; each connection adds `-<n>`. Must be unique per
    /// replica: the broker keeps each id's unacknowledged messages for it.
    pub client_id: String,
    /// The shared-subscription group all replicas join.
    pub group: String,
    /// Topic prefix; a device publishes to `<topic_prefix>/<id>/telemetry`.
    pub topic_prefix: String,
    /// Connections (shared-subscription members) this replica opens (1 to 64).
    pub connections: usize,
    /// Keep-alive interval, seconds (5 to 3600).
    pub keep_alive_secs: u64,
}

impl Default for Mqtt {
    fn default() -> Self {
        Self {
            broker: None,
            server_name: None,
            ca_file: None,
            client_id: "medsec-ingest".into(),
            group: "medsec".into(),
            topic_prefix: "medsec/devices".into(),
            connections: 2,
            keep_alive_secs: 30,
        }
    }
}

/// Every bound the server enforces.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// Largest document uploaded to the risk routes (an SBOM, an advisory, the KEV catalogue,
    /// a VEX document), in bytes (64 KiB to 256 MiB).
    pub max_document_bytes: usize,
    /// Most a zip archive of advisories uploaded to `POST /api/v1/risk/advisories` may unpack
    /// to, in bytes (1 MiB to 4 GiB); each file in it is held to `max_document_bytes`.
    pub max_archive_bytes: u64,
    /// Largest request head (request line and headers), in bytes; at least 8192 (hyper's floor).
    pub max_header_bytes: usize,
    /// Time allowed for a TLS handshake, in milliseconds.
    pub handshake_timeout_ms: u64,
    /// Time allowed to receive a request's head once its first byte arrived, in milliseconds,
    /// on every connection; on the operator port, and on device-port connections that carry no
    /// fleet device certificate, also how long an idle kept-alive connection stays open.
    pub header_timeout_ms: u64,
    /// How long an idle kept-alive connection of an enrolled device (fleet certificate verified
    /// in the handshake) stays open between requests, in milliseconds; longer than the agents'
    /// poll interval, so a poll needs no new handshake. A request head that has begun is still
    /// held to `header_timeout_ms`.
    pub device_idle_timeout_ms: u64,
    /// Time allowed for a whole request, in milliseconds.
    pub request_timeout_ms: u64,
    /// Open connections on the device port; further connections wait in the kernel's backlog.
    pub max_connections: usize,
    /// Open connections on the operator port, a budget of its own: a flood of the device port
    /// never takes the operators' slots or file descriptors.
    pub max_operator_connections: usize,
    /// Open connections from one source address (an IPv6 address by its /64) on each port;
    /// more are closed at once. Devices behind one NAT share it: raise it for large sites.
    pub max_connections_per_address: usize,
    /// Open connections presenting one device's certificate; more are closed after the
    /// handshake.
    pub max_connections_per_device: usize,
    /// Sustained requests per second per principal (device, operator, or source address for
    /// unauthenticated requests).
    pub requests_per_second: u32,
    /// Burst allowance above the sustained rate.
    pub request_burst: u32,
    /// Audit events waiting to be written; when full, requests wait (backpressure).
    pub audit_queue: usize,
    /// Most audit events written in one transaction.
    pub audit_batch: usize,
    /// How long a version-report nonce stays usable, in seconds.
    pub report_nonce_secs: u64,
    /// Unused version-report nonces a device may hold; asking for more drops its oldest.
    pub report_nonces_per_device: u32,
    /// Allowed routine decisions (a device's update poll) identical to one logged less than
    /// this many seconds ago are counted and logged as a summary instead of one by one; 0 logs
    /// every decision.
    pub audit_repeat_window_secs: u64,
    /// Most decision streams counted at once; past it, new streams are logged one by one.
    pub audit_repeat_streams: usize,
    /// Most devices one campaign may cover (1 to 200,000). A campaign is stored as one document
    /// rewritten on every offer and report, so each change costs time in proportion to its size
    /// (docs/benchmarks.md: about 11 ms at 10,000 devices, 128 ms at 100,000); split larger
    /// rollouts into several campaigns.
    pub max_campaign_devices: usize,
    /// Largest telemetry batch once decoded (gzip), in bytes (1 KiB to 64 MiB); the body as
    /// sent is bounded by `max_body_bytes`.
    pub telemetry_max_batch_bytes: usize,
    /// Most events in one telemetry batch (1 to 1,000,000).
    pub telemetry_max_events: usize,
    /// Most a device's telemetry batch may advance its sequence number past the last accepted
    /// one (1 to 10^12; from 0 for a device with none). A larger jump is refused with an alert:
    /// accepted, it would refuse every later batch of the device.
    pub telemetry_max_sequence_step: i64,
    /// How long sequence numbers a device skipped may stay missing before the alert
    /// `telemetry-gap` is raised, in seconds (1 to 30 days). A late batch still fills its gap
    /// after that.
    pub telemetry_gap_timeout_secs: u64,
    /// An alert that occurs again (same device, rule and key, such as the destination) within
    /// this many seconds of its last occurrence is counted into the open alert instead of
    /// raised again (0 to 30 days; 0: never aggregate). Every occurrence is still stored.
    pub alert_aggregate_secs: u64,
    /// The longest a suppression may last, in seconds (1 hour to 365 days).
    pub max_suppression_secs: u64,
    /// Burst allowance of a device's telemetry over MQTT above `requests_per_second`, its
    /// sustained rate as over HTTPS (at least 1). Larger than `request_burst` because the
    /// broker holds what devices published while the server was down and delivers it at once:
    /// a device sending one batch every 10 s may be away this many times 10 s before its
    /// backlog meets the limit. Batches over it are refused (acknowledged, not stored), counted
    /// in the audit log and raised as the alert `telemetry-rate-limit`.
    pub mqtt_device_burst: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 64 * 1024,
            max_document_bytes: 16 * 1024 * 1024,
            max_archive_bytes: 512 * 1024 * 1024,
            max_header_bytes: 16 * 1024,
            handshake_timeout_ms: 10_000,
            header_timeout_ms: 10_000,
            device_idle_timeout_ms: 600_000,
            request_timeout_ms: 30_000,
            max_connections: 16_384,
            max_operator_connections: 256,
            max_connections_per_address: 256,
            max_connections_per_device: 8,
            requests_per_second: 20,
            request_burst: 100,
            audit_queue: 65_536,
            audit_batch: 8_192,
            report_nonce_secs: 300,
            report_nonces_per_device: 4,
            audit_repeat_window_secs: 3_600,
            audit_repeat_streams: 1_000_000,
            max_campaign_devices: 20_000,
            telemetry_max_batch_bytes: 1024 * 1024,
            telemetry_max_events: 10_000,
            telemetry_max_sequence_step: 1_000_000,
            telemetry_gap_timeout_secs: 3_600,
            alert_aggregate_secs: 86_400,
            max_suppression_secs: 90 * 86_400,
            mqtt_device_burst: 6_000,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("medsec-data"),
            database_url: None,
            database_connections: 0,
            device_listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            operator_listen: SocketAddr::from(([127, 0, 0, 1], 8444)),
            hostnames: vec!["localhost".into(), "127.0.0.1".into()],
            ca_passphrase_file: None,
            insecure_plaintext_audit_key: false,
            audit_key_pkcs11: None,
            require_hybrid_kx: false,
            device_cert_days: 30,
            manufacturer_cas: Vec::new(),
            manufacturers: Vec::new(),
            policy_dir: None,
            crl_reload_ms: 1_000,
            crl_days: 7,
            image_repository: None,
            image_root: None,
            director_expiry_hours: 24,
            defender_policy: None,
            defender_sigma_dir: None,
            defender_audit_interval_secs: 3_600,
            defender_baseline_reload_secs: 30,
            vendor_aliases: None,
            mqtt: Mqtt::default(),
            export: Vec::new(),
            console: Console::default(),
            limits: Limits::default(),
        }
    }
}

impl Config {
    /// Loads defaults, then `file` (if given), then `MEDSEC_*` variables, then `overrides`
    /// (the flags that were given), and checks the result.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Self, Error> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            if !file.exists() {
                return Err(Error::Config {
                    reason: format!("config file {} does not exist", file.display()),
                });
            }
            figment = figment.merge(Toml::file(file));
        }
        figment = figment
            .merge(
                // Only this struct's keys: other MEDSEC_* variables (MEDSEC_PASSPHRASE, test
                // switches) belong to other commands.
                Env::prefixed("MEDSEC_")
                    .filter(|k| {
                        let top = k.as_str().split("__").next().unwrap_or_default();
                        TOP_KEYS.iter().any(|t| t.eq_ignore_ascii_case(top))
                    })
                    .split("__"),
            )
            .merge(Serialized::defaults(overrides));
        let config: Config = figment.extract().map_err(|e| Error::Config {
            reason: e.to_string(),
        })?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), Error> {
        let l = &self.limits;
        let bad = |reason: &str| {
            Err(Error::Config {
                reason: reason.to_owned(),
            })
        };
        if !self.manufacturer_cas.is_empty() {
            return bad(
                "manufacturer_cas trusts a CA to vouch for any device id and is no longer \
                 accepted: give each CA a [[manufacturers]] entry with name, ca, device_ids \
                 (and models, hardware_ids) naming what it may vouch for (docs/server.md)",
            );
        }
        self.console
            .check()
            .map_err(|reason| Error::Config { reason })?;
        let mut sinks = std::collections::BTreeSet::new();
        for sink in &self.export {
            sink.check().map_err(|reason| Error::Config { reason })?;
            if !sinks.insert(sink.name.as_str()) {
                return Err(Error::Config {
                    reason: format!("export {:?} is named twice", sink.name),
                });
            }
        }
        for (n, m) in self.manufacturers.iter().enumerate() {
            let named = |what: &str| format!("manufacturers[{n}] ({:?}): {what}", m.name);
            if m.name.trim().is_empty() {
                return bad(&named("name is empty"));
            }
            if m.device_ids.is_empty() {
                return bad(&named(
                    "device_ids is empty: name the device ids this CA may vouch for",
                ));
            }
            if let Some(p) = m.device_ids.iter().find(|p| {
                p.is_empty()
                    || !p
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.*?".contains(c))
            }) {
                return bad(&named(&format!(
                    "device id pattern {p:?} may hold letters, digits, '-', '_', '.', '*' and '?'"
                )));
            }
            if let Some(oid) = m.hardware_ids.iter().find(|o| {
                o.split('.').count() < 2
                    || !o
                        .split('.')
                        .all(|arc| !arc.is_empty() && arc.bytes().all(|b| b.is_ascii_digit()))
            }) {
                return bad(&named(&format!(
                    "hardware id {oid:?} is not a dotted OID (1.3.6.1.4.1.…)"
                )));
            }
        }
        if l.max_header_bytes < 8192 {
            return bad("limits.max_header_bytes must be at least 8192");
        }
        if l.requests_per_second == 0 || l.request_burst == 0 {
            return bad("limits.requests_per_second and limits.request_burst must be at least 1");
        }
        if l.audit_queue == 0
            || l.audit_batch == 0
            || l.max_connections == 0
            || l.max_operator_connections == 0
            || l.max_connections_per_address == 0
            || l.max_connections_per_device == 0
        {
            return bad(
                "limits.audit_queue, audit_batch, max_connections, max_operator_connections, \
                 max_connections_per_address and max_connections_per_device must be at least 1",
            );
        }
        if l.header_timeout_ms == 0 || l.device_idle_timeout_ms == 0 {
            return bad(
                "limits.header_timeout_ms and limits.device_idle_timeout_ms must be at least 1",
            );
        }
        if !(1..=crate::campaigns::MAX_DEVICES).contains(&l.max_campaign_devices) {
            return bad("limits.max_campaign_devices must be 1 to 200000");
        }
        if !(64 * 1024..=256 * 1024 * 1024).contains(&l.max_document_bytes) {
            return bad("limits.max_document_bytes must be 65536 to 268435456 (256 MiB)");
        }
        if !(1 << 20..=4 << 30).contains(&l.max_archive_bytes) {
            return bad("limits.max_archive_bytes must be 1048576 to 4294967296 (4 GiB)");
        }
        if !(1024..=64 * 1024 * 1024).contains(&l.telemetry_max_batch_bytes) {
            return bad("limits.telemetry_max_batch_bytes must be 1024 to 67108864 (64 MiB)");
        }
        if !(1..=1_000_000).contains(&l.telemetry_max_events) {
            return bad("limits.telemetry_max_events must be 1 to 1000000");
        }
        if !(1..=30 * 86_400).contains(&l.telemetry_gap_timeout_secs) {
            return bad("limits.telemetry_gap_timeout_secs must be 1 to 2592000 (30 days)");
        }
        if l.mqtt_device_burst == 0 {
            return bad("limits.mqtt_device_burst must be at least 1");
        }
        if l.alert_aggregate_secs > 30 * 86_400 {
            return bad("limits.alert_aggregate_secs must be 0 to 2592000 (30 days)");
        }
        if !(3_600..=365 * 86_400).contains(&l.max_suppression_secs) {
            return bad("limits.max_suppression_secs must be 3600 to 31536000 (365 days)");
        }
        if !(1..=1_000_000_000_000).contains(&l.telemetry_max_sequence_step) {
            return bad("limits.telemetry_max_sequence_step must be 1 to 1000000000000");
        }
        if l.audit_repeat_window_secs > 86_400 {
            return bad("limits.audit_repeat_window_secs must be at most 86400 (a day)");
        }
        if !(1..=86_400).contains(&l.report_nonce_secs) || l.report_nonces_per_device == 0 {
            return bad(
                "limits.report_nonce_secs must be 1 to 86400 and limits.report_nonces_per_device at least 1",
            );
        }
        if !(1..=90).contains(&self.device_cert_days) {
            return bad("device_cert_days must be 1 to 90");
        }
        if !(2..=30).contains(&self.crl_days) {
            return bad("crl_days must be 2 to 30");
        }
        if !(1..=720).contains(&self.director_expiry_hours) {
            return bad("director_expiry_hours must be 1 to 720");
        }
        if self.image_root.is_some() && self.image_repository.is_none() {
            return bad("image_root is set but image_repository is not");
        }
        if self.hostnames.is_empty() {
            return bad("hostnames must name at least one host");
        }
        if self.defender_audit_interval_secs > 7 * 86_400 {
            return bad(
                "defender_audit_interval_secs must be at most 604800 (a week); 0 turns it off",
            );
        }
        if !(1..=3_600).contains(&self.defender_baseline_reload_secs) {
            return bad("defender_baseline_reload_secs must be between 1 and 3600");
        }
        self.mqtt.check()
    }

    /// The database URL in effect.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("medsec.db").display()))
    }
}

impl Mqtt {
    fn check(&self) -> Result<(), Error> {
        let bad = |reason: String| Err(Error::Config { reason });
        if let Some(broker) = &self.broker {
            let port = broker.rsplit_once(':').map(|(_, p)| p.parse::<u16>());
            if !matches!(port, Some(Ok(p)) if p > 0) {
                return bad(format!("mqtt.broker {broker:?} must be host:port"));
            }
        }
        if !(1..=64).contains(&self.connections) {
            return bad("mqtt.connections must be 1 to 64".into());
        }
        if !(5..=3600).contains(&self.keep_alive_secs) {
            return bad("mqtt.keep_alive_secs must be 5 to 3600".into());
        }
        let topic_ok = |s: &str| {
            !s.is_empty()
                && !s.starts_with('$')
                && !s.ends_with('/')
                && !s.contains(['+', '#', '\0'])
        };
        if !topic_ok(&self.topic_prefix) {
            return bad(format!(
                "mqtt.topic_prefix {:?} must be a topic without wildcards, not starting with $ or ending with /",
                self.topic_prefix
            ));
        }
        if !topic_ok(&self.group) || self.group.contains('/') {
            return bad(format!(
                "mqtt.group {:?} must be one topic level without wildcards",
                self.group
            ));
        }
        if self.client_id.is_empty() || self.client_id.len() > 20 {
            // MQTT 3.1.1 brokers must accept ids of 1 to 23 bytes; `-NN` is added.
            return bad("mqtt.client_id must be 1 to 20 bytes".into());
        }
        Ok(())
    }
}

/// Values given as flags; `None` leaves the file/environment value.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Overrides {
    /// `--data-dir`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// `--database-url`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    /// `--device-listen`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_listen: Option<SocketAddr>,
    /// `--operator-listen`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operator_listen: Option<SocketAddr>,
}

#[cfg(test)]
#[expect(
    clippy::result_large_err,
    reason = "figment::Jail fixes the closure's error type"
)]
mod tests {
    use super::*;

    #[test]
    fn file_then_environment_then_flags() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "medsec.toml",
                "data_dir = \"/srv/medsec\"\ndevice_cert_days = 7\n[limits]\nmax_body_bytes = 1000\nrequest_burst = 5\n",
            )?;
            jail.set_env("MEDSEC_LIMITS__REQUEST_BURST", "9");
            jail.set_env("MEDSEC_DEVICE_LISTEN", "0.0.0.0:9443");
            let flags = Overrides {
                device_listen: Some("127.0.0.1:1".parse().unwrap()),
                ..Overrides::default()
            };
            let c = Config::load(Some(Path::new("medsec.toml")), &flags).unwrap();
            assert_eq!(c.data_dir, PathBuf::from("/srv/medsec"));
            assert_eq!(c.device_cert_days, 7);
            assert_eq!(c.limits.max_body_bytes, 1000);
            assert_eq!(c.limits.request_burst, 9, "environment beats the file");
            assert_eq!(c.device_listen.port(), 1, "flags beat the environment");
            assert_eq!(c.database_url(), "sqlite:///srv/medsec/medsec.db");
            Ok(())
        });
    }

    #[test]
    fn vendor_aliases_extend_the_table_and_a_bad_one_stops_the_server() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("aliases.txt", "Siemens: Siemens Healthineers\n")?;
            jail.create_file("bad.txt", "# ok\nno colon\n")?;
            let mut c = Config {
                vendor_aliases: Some("aliases.txt".into()),
                ..Config::default()
            };
            let names = crate::vendor_names(&c).unwrap();
            assert_eq!(
                names.vendor("Siemens Healthineers AG"),
                names.vendor("Siemens")
            );
            c.vendor_aliases = Some("bad.txt".into());
            let e = crate::vendor_names(&c).unwrap_err().to_string();
            assert!(
                e.contains("vendor_aliases bad.txt") && e.contains("line 2"),
                "{e}"
            );
            c.vendor_aliases = Some("missing.txt".into());
            assert!(crate::vendor_names(&c).is_err());
            Ok(())
        });
    }

    #[test]
    fn device_id_patterns_match_as_globs() {
        let m = Manufacturer {
            name: "acme".into(),
            ca: "ca.pem".into(),
            device_ids: vec!["acme-pump-*".into(), "acme-mon-??".into()],
            models: vec![],
            hardware_ids: vec![],
        };
        for id in ["acme-pump-1", "acme-pump-", "acme-mon-07"] {
            assert!(m.covers_id(id), "{id}");
        }
        for id in [
            "acme-pum",
            "pump-000",
            "acme-mon-7",
            "acme-mon-007",
            "xacme-pump-1",
        ] {
            assert!(!m.covers_id(id), "{id}");
        }
    }

    #[test]
    fn bad_values_are_named() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("a.toml", "[limits]\nmax_header_bytes = 100\n")?;
            let e = Config::load(Some(Path::new("a.toml")), &Overrides::default()).unwrap_err();
            assert!(e.to_string().contains("max_header_bytes"), "{e}");
            jail.create_file("b.toml", "devcie_listen = \"1.2.3.4:5\"\n")?;
            let e = Config::load(Some(Path::new("b.toml")), &Overrides::default()).unwrap_err();
            assert!(e.to_string().contains("devcie_listen"), "{e}");
            for bad in ["0", "200001"] {
                jail.create_file(
                    "c.toml",
                    &format!("[limits]\nmax_campaign_devices = {bad}\n"),
                )?;
                let e = Config::load(Some(Path::new("c.toml")), &Overrides::default()).unwrap_err();
                assert!(e.to_string().contains("max_campaign_devices"), "{e}");
            }
            let e =
                Config::load(Some(Path::new("missing.toml")), &Overrides::default()).unwrap_err();
            assert!(e.to_string().contains("does not exist"), "{e}");
            Ok(())
        });
    }
}
