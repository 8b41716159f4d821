//! The records the store reads and writes: one plain type per table or query answer. The
//! callers build and read them; the store only moves them in and out of SQL, reading a row into
//! its type by column name (`sqlx::FromRow`, the field names are the column names).

/// A device record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct Device {
    /// Stable device id.
    pub id: String,
    /// Model name.
    pub model: String,
    /// `registered` (a token exists, not yet enrolled), `enrolled`, `revoked`.
    pub state: String,
    /// Whether the device is quarantined.
    pub quarantined: bool,
    /// Last status the device reported (JSON object text).
    pub status: String,
    /// When the record was created.
    pub created_at_ms: i64,
    /// When the device was last seen.
    pub last_seen_ms: Option<i64>,
    /// The hardware id firmware must be built for (empty until set).
    pub hardware_id: String,
    /// Where the device is (a hospital, ward or site name; empty until set).
    pub site: String,
    /// Groups operators put it in, sorted (read by a query of their own).
    #[sqlx(skip)]
    pub groups: Vec<String>,
    /// The firmware version its last signed version report named (empty until it reports).
    pub installed_version: String,
    /// The release counter of that firmware (0 until it reports).
    pub release_counter: i64,
}

/// A stored campaign: its state machine as JSON, with a version for optimistic updates.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, sqlx::FromRow)]
pub struct CampaignRow {
    /// Campaign id (its name).
    pub id: String,
    /// Status name (created, running, paused, halted, aborted, completed), for listing.
    pub status: String,
    /// The `medsec_campaign::Campaign`, as JSON.
    pub state: String,
    /// Incremented by every update.
    pub version: i64,
    /// Who created it.
    pub created_by: String,
    /// When.
    pub created_at_ms: i64,
    /// Last change.
    pub updated_at_ms: i64,
}

/// The director's signed TUF metadata for one device (one version of all three files).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DirectorMetadata {
    /// The device.
    pub device_id: String,
    /// Version of the targets, snapshot and timestamp files (they move together).
    pub version: i64,
    /// What the targets metadata names, as JSON, to tell whether it must change.
    pub assignment: String,
    /// `targets.json` bytes.
    pub targets: Vec<u8>,
    /// `snapshot.json` bytes.
    pub snapshot: Vec<u8>,
    /// `timestamp.json` bytes.
    pub timestamp: Vec<u8>,
    /// When the earliest of them expires.
    pub expires_at_ms: i64,
    /// When they were signed.
    pub updated_at_ms: i64,
}

/// What the director needs of a device's stored metadata to answer a poll: the timestamp it
/// serves, and what decides whether that is still current (the targets and snapshot files are
/// not read on a poll).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectorTimestamp {
    /// Version of the three files.
    pub version: i64,
    /// What the targets metadata names, as JSON.
    pub assignment: String,
    /// `timestamp.json` bytes.
    pub timestamp: Vec<u8>,
    /// When the earliest of the three files expires.
    pub expires_at_ms: i64,
}

impl From<DirectorMetadata> for DirectorTimestamp {
    fn from(m: DirectorMetadata) -> Self {
        Self {
            version: m.version,
            assignment: m.assignment,
            timestamp: m.timestamp,
            expires_at_ms: m.expires_at_ms,
        }
    }
}

/// Everything a director poll reads, in one query: the device record (for its Cedar principal),
/// the running or paused campaigns it is in, and its stored director timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevicePoll {
    /// The device, groups included.
    pub device: Device,
    /// As [`Store::active_device_campaigns`] returns them: newest first, with versions.
    pub campaigns: Vec<(String, i64)>,
    /// Its stored director metadata, if any was signed yet.
    pub director: Option<DirectorTimestamp>,
}

/// A signed version report as received: what the device signed, its signature, and the
/// certificate whose key verified it, so that it can be checked again later.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, sqlx::FromRow)]
pub struct VersionReport {
    /// The single-use nonce the server issued and the report carried.
    pub nonce: String,
    /// The device.
    pub device_id: String,
    /// When the server accepted it.
    pub received_at_ms: i64,
    /// The firmware version it reported.
    pub version: String,
    /// That firmware's release counter.
    pub release_counter: i64,
    /// The signed bytes.
    pub payload: Vec<u8>,
    /// The signature over them.
    pub signature: Vec<u8>,
    /// The DER certificate whose key verified the signature.
    pub certificate: Vec<u8>,
}

/// A telemetry batch as a device sent it. The server checked its form before storing it;
/// `body` is the batch's JSON, uncompressed, as received.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, sqlx::FromRow)]
pub struct TelemetryBatch {
    /// The device (from its certificate, never from the body).
    pub device_id: String,
    /// The device's sequence number for the batch; each must be greater than the last.
    pub sequence: i64,
    /// When the server accepted it.
    pub received_at_ms: i64,
    /// How many events it holds.
    pub events: i64,
    /// The address it came from.
    pub source: String,
    /// The batch (JSON).
    pub body: Vec<u8>,
}

/// A learned baseline of a device model, as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct BaselineRow {
    /// The model.
    pub model: String,
    /// Its version (1, 2, …; the newest is in force).
    pub version: i64,
    /// When it was trained.
    pub created_at_ms: i64,
    /// Who asked for it.
    pub created_by: String,
    /// The baseline (JSON).
    pub body: String,
    /// The signature over it (hex).
    pub signature: String,
}

/// An advisory document to store: its identity (`osv:ID`, `csaf:TRACKING-ID`, `kev`), its
/// `modified` date and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdvisoryDoc {
    /// Identity.
    pub identity: String,
    /// Modified date (a re-import with the same one changes nothing).
    pub modified: String,
    /// The document as received.
    pub body: String,
}

/// Which inventory records: model profiles or vendor records (table `asset_records`, its name
/// from before the inventory had one name; renaming a table is a migration for no reader's gain).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InventoryKind {
    /// A device model's profile.
    Model,
    /// A vendor's record.
    Vendor,
}

impl InventoryKind {
    /// Its name in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Model => "model",
            Self::Vendor => "vendor",
        }
    }
}

/// A release's SBOM, for one hardware id the release is signed for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseSbomRow {
    /// The image repository target.
    pub target: String,
    /// A hardware id its signed metadata names.
    pub hardware_id: String,
    /// The release's version (as devices report it).
    pub version: String,
    /// The SBOM's SHA-256 (hex), as signed into the target.
    pub sha256: String,
    /// The SBOM (JSON).
    pub body: String,
    /// When it was uploaded.
    pub uploaded_at_ms: i64,
}

/// An identity a device is bound to (its MAC address).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IdentityBindingRow {
    /// What kind of identity (`mac`).
    pub kind: String,
    /// The bound value.
    pub value: String,
    /// When it was bound (first reported, or re-bound by an operator).
    pub bound_at_ms: i64,
}

/// An alert the Defender raised on a device's telemetry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, sqlx::FromRow)]
pub struct AlertRow {
    /// Assigned by the store (0 when not stored yet).
    pub id: i64,
    /// The device.
    pub device_id: String,
    /// The telemetry batch it was raised on.
    pub sequence: i64,
    /// When the event that raised it happened (device clock, Unix ms).
    pub at_ms: i64,
    /// When the server raised it.
    pub raised_at_ms: i64,
    /// The rule.
    pub rule: String,
    /// `low`, `medium`, `high` or `critical`.
    pub severity: String,
    /// The whole alert (JSON: technique, summary, evidence); for an aggregate, the latest
    /// occurrence's.
    pub body: String,
    /// What, beside the device and the rule, makes occurrences one alert (a destination, a
    /// signal; empty: the rule alone).
    #[serde(default)]
    pub aggregate_key: String,
    /// Occurrences aggregated into it (1 when new).
    #[serde(default = "one")]
    pub occurrences: i64,
    /// When it last occurred (the first occurrence is `raised_at_ms`).
    #[serde(default)]
    pub last_seen_ms: i64,
    /// The suppression it fell under (0: none). Suppressed alerts are stored and counted,
    /// never dropped.
    #[serde(default)]
    pub suppressed_by: i64,
    /// When storing: an occurrence within this many ms of the last one of the same device,
    /// rule, key and suppression is counted into it (0: never aggregate). Not stored.
    #[serde(skip)]
    #[sqlx(skip)]
    pub aggregate_within_ms: i64,
}

fn one() -> i64 {
    1
}

/// An alert as stored: its id, and whether this occurrence opened it (false: counted into an
/// alert already open).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredAlert {
    /// The alert's id.
    pub id: i64,
    /// A new alert (not an occurrence of an open one).
    pub new: bool,
}

/// An operator's decision that a rule's alerts about a scope are known and accepted, with a
/// reason, until it expires or is lifted.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, sqlx::FromRow)]
pub struct SuppressionRow {
    /// Assigned by the store.
    pub id: i64,
    /// The rule (`destination-not-allowed`, `clinical-implausible`, ...).
    pub rule: String,
    /// `device`, `model`, `site` or `destination`.
    pub scope: String,
    /// The device id, model, site or destination address it covers.
    pub value: String,
    /// Why (mandatory).
    pub reason: String,
    /// Who decided it.
    pub created_by: String,
    /// When.
    pub created_at_ms: i64,
    /// When it stops applying by itself.
    pub expires_at_ms: i64,
    /// When it was lifted before its expiry, if it was.
    pub lifted_at_ms: Option<i64>,
}

/// A Defender incident (`medsec_defender::incident::Incident` as JSON), with the fields queries
/// need beside it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, sqlx::FromRow)]
pub struct IncidentRow {
    /// Its id.
    pub id: String,
    /// Incremented by every update (optimistic concurrency).
    pub version: i64,
    /// Its phase (`closed` ones are not open).
    pub phase: String,
    /// Opened.
    pub opened_at_ms: i64,
    /// Last change.
    pub updated_at_ms: i64,
    /// The incident.
    pub body: String,
}

/// What an operator says about a device: the inventory fields medsec does not learn itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Inventory {
    /// Model name.
    pub model: String,
    /// Hardware id.
    pub hardware_id: String,
    /// Site.
    pub site: String,
    /// Groups (duplicates are stored once).
    pub groups: Vec<String>,
}

/// An operator's acknowledgement of an alert.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct AlertAck {
    /// The alert.
    pub alert_id: i64,
    /// Who (`Operator::"olga"`).
    pub acknowledged_by: String,
    /// When.
    pub at_ms: i64,
    /// Their note (may be empty).
    pub note: String,
}

/// An event an export sink refused for good, kept for an operator.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct DeadLetter {
    /// Its number (0 before it is stored).
    pub id: i64,
    /// The sink.
    pub sink: String,
    /// The event's id (`audit-SEQ`, `alert-ID`).
    pub event_id: String,
    /// The event as JSON text.
    pub event: String,
    /// The last refusal.
    pub error: String,
    /// Attempts made.
    pub attempts: i64,
    /// When it was given up.
    pub at_ms: i64,
}

/// One group of the fleet census: the devices sharing a state, quarantine flag, model and
/// installed version.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct DeviceCensus {
    /// `registered`, `enrolled` or `revoked`.
    pub state: String,
    /// Whether these devices are quarantined.
    pub quarantined: bool,
    /// Their model.
    pub model: String,
    /// The version their last signed report named (empty before the first report).
    pub installed_version: String,
    /// How many devices.
    pub count: i64,
}

/// Which devices to list: a page in id order, optionally filtered (filters combine with AND).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceQuery {
    /// Start after this id.
    pub after: Option<String>,
    /// Page size.
    pub limit: u32,
    /// Only this model.
    pub model: Option<String>,
    /// Only this site.
    pub site: Option<String>,
    /// Only members of this group.
    pub group: Option<String>,
    /// Only devices in this state (`registered`, `enrolled`, `revoked`, `decommissioned`).
    pub state: Option<String>,
    /// Only devices whose last signed report named this version.
    pub version: Option<String>,
    /// Only quarantined devices.
    pub quarantined_only: bool,
    /// Only enrolled devices not heard from since this moment (never heard from included).
    pub silent_before_ms: Option<i64>,
    /// Only devices whose newest certificate expires before this moment.
    pub certificate_expires_before_ms: Option<i64>,
}

/// Devices alike for risk: the same release (hardware id and installed version), model and
/// quarantine, counted. A device's risk depends on these alone, so a fleet of 100,000 devices is
/// scored once per group.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct RiskGroup {
    /// The hardware id firmware is built for.
    pub hardware_id: String,
    /// The version of the last signed report (empty before one).
    pub installed_version: String,
    /// The model.
    pub model: String,
    /// Whether they are quarantined.
    pub quarantined: bool,
    /// How many devices.
    pub count: i64,
}

/// How many enrolled devices need attention for two reasons the census cannot show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AttentionCounts {
    /// Enrolled devices not heard from since the given moment.
    pub silent: i64,
    /// Enrolled devices whose newest certificate expires before the given moment.
    pub certificates_expiring: i64,
}

impl Default for DeviceQuery {
    fn default() -> Self {
        Self {
            after: None,
            limit: 100,
            model: None,
            site: None,
            group: None,
            state: None,
            version: None,
            quarantined_only: false,
            silent_before_ms: None,
            certificate_expires_before_ms: None,
        }
    }
}

/// A key certified for a device.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DeviceKey {
    /// SHA-256 of the SubjectPublicKeyInfo DER.
    pub spki_sha256: Vec<u8>,
    /// Device.
    pub device_id: String,
    /// Serial of the certificate issued for it, hex.
    pub serial: String,
    /// Certificate expiry.
    pub not_after_ms: i64,
    /// When it was certified.
    pub created_at_ms: i64,
}

/// An enrolment token, identified by the SHA-256 of its secret.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct EnrolmentToken {
    /// SHA-256 of the token.
    pub token_sha256: Vec<u8>,
    /// The device it enrols.
    pub device_id: String,
    /// Who made it.
    pub created_by: String,
    /// When.
    pub created_at_ms: i64,
    /// Expiry.
    pub expires_at_ms: i64,
    /// When it was used, if it was.
    pub used_at_ms: Option<i64>,
    /// When it was revoked, if it was.
    pub revoked_at_ms: Option<i64>,
}

impl EnrolmentToken {
    /// The token's public id: what lists show and revocation names (see [`token_id`]).
    pub fn id(&self) -> String {
        token_id(&self.token_sha256)
    }
}

/// An operator API token, identified by the SHA-256 of its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorToken {
    /// SHA-256 of the token.
    pub token_sha256: Vec<u8>,
    /// Operator name.
    pub name: String,
    /// Roles.
    pub roles: Vec<String>,
    /// When made.
    pub created_at_ms: i64,
    /// Expiry.
    pub expires_at_ms: i64,
    /// When it was revoked, if it was.
    pub revoked_at_ms: Option<i64>,
}

impl OperatorToken {
    /// The token's public id: what lists show and revocation names (see [`token_id`]).
    pub fn id(&self) -> String {
        token_id(&self.token_sha256)
    }

    /// Why the token no longer works at `now_ms`, if it does not: revoked, or expired.
    pub fn refusal(&self, now_ms: i64) -> Option<&'static str> {
        if self.revoked_at_ms.is_some() {
            Some("operator token revoked")
        } else if self.expires_at_ms <= now_ms {
            Some("operator token expired")
        } else {
            None
        }
    }
}

/// A row of the web console's sessions table: a session (`kind` "session"), an OpenID Connect
/// sign-in under way ("oidc-login", its state in `data`) or a one-time sign-in link ("link").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSession {
    /// SHA-256 of the secret (the cookie's, or the link's).
    pub id_sha256: Vec<u8>,
    /// "session", "oidc-login" or "link".
    pub kind: String,
    /// The principal's name as Cedar and the audit log see it (empty while signing in).
    pub principal: String,
    /// The name the console shows.
    pub display_name: String,
    /// medsec roles.
    pub roles: Vec<String>,
    /// The session's CSRF token (a session only).
    pub csrf: String,
    /// Kind-specific data (JSON text; the sign-in's state, nonce and verifier).
    pub data: String,
    /// When made.
    pub created_at_ms: i64,
    /// Last activity.
    pub last_seen_ms: i64,
    /// Absolute expiry.
    pub expires_at_ms: i64,
}

/// A token's public id: the first 8 bytes of its SHA-256, hex. It names the token in lists and
/// in revocation without being usable as the token (finding a secret from 64 bits of its hash
/// is as hard as guessing the 256-bit secret).
pub fn token_id(token_sha256: &[u8]) -> String {
    token_sha256
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One stored audit entry: its position and its exact text.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AuditRow {
    /// Position, from 0.
    pub seq: i64,
    /// The entry's canonical text, as hashed into the log.
    pub entry: String,
}

/// One stored signed tree head.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct HeadRow {
    /// Entries covered.
    pub tree_size: i64,
    /// The signed head as JSON text.
    pub head: String,
}

/// How far a telemetry batch's sequence number may stand from the device's newest one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SequenceWindow {
    /// How far above it a batch may jump.
    pub max_step: i64,
}

/// Sequence numbers a device skipped and has not sent since: `first..=last`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct TelemetryGap {
    /// The device.
    pub device_id: String,
    /// The first number missing.
    pub first_sequence: i64,
    /// The last number missing.
    pub last_sequence: i64,
    /// When the batch that skipped them was stored.
    pub opened_at_ms: i64,
    /// When the gap was raised as the alert `telemetry-gap`, if it has been.
    pub alerted_at_ms: Option<i64>,
}
