//! medsec's storage: the [`Store`] trait, a SQLite backend (the embedded default, WAL, every
//! commit fsynced) and a PostgreSQL backend (scale-out), each with its own migrations under
//! `migrations/<backend>/`. One contract suite (`tests/contract.rs`) runs against both.
//!
//! Queries are written once with numbered placeholders (`$1`, which both SQLite and PostgreSQL
//! accept) and bound, never built by string concatenation. Lookups of a single thing return
//! [`Error::NotFound`]; uniqueness violations that callers must react to return [`Error::Conflict`].
//!
//! The store keeps records; it makes no decisions. Token secrets, certificate issuance and audit
//! hashing belong to the callers, which hand over hashes and finished text.

#![forbid(unsafe_code)]

mod backend;
mod rows;
mod url;

use std::future::Future;

pub use backend::{PostgresStore, SqliteStore};
pub use rows::*;
pub use url::mask_password;

/// What storage can refuse or fail at.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The thing asked for does not exist.
    #[error("{what} {key:?} not found")]
    NotFound {
        /// What kind of record.
        what: &'static str,
        /// Its key.
        key: String,
    },
    /// A record that must be unique exists already.
    #[error("{what} {key:?} already exists")]
    Conflict {
        /// What kind of record.
        what: &'static str,
        /// Its key.
        key: String,
    },
    /// An enrolment token that cannot be used.
    #[error("enrolment token refused: {reason}")]
    TokenRefused {
        /// Unknown, used or expired.
        reason: &'static str,
    },
    /// A version-report nonce that was never issued to this device, was used, or expired.
    #[error("nonce {nonce:?} is unknown, already used or expired")]
    NonceRefused {
        /// The nonce presented.
        nonce: String,
    },
    /// A telemetry batch whose sequence number is not after the last one accepted from the
    /// device (a replay, or a batch sent out of order).
    #[error("telemetry batch {sequence} of {device} is not after the last accepted batch, {last}")]
    Replayed {
        /// The device.
        device: String,
        /// The batch's sequence number.
        sequence: i64,
        /// The last sequence number accepted from the device.
        last: i64,
    },
    /// The database URL is not one medsec can use. The URL in the message has its password masked.
    #[error("database URL {url} is not usable: {reason}")]
    BadUrl {
        /// The URL, password masked.
        url: String,
        /// Why.
        reason: String,
    },
    /// A stored value is not in the form medsec writes (changed outside medsec, or a bug).
    #[error("stored data is malformed: {reason}")]
    Corrupt {
        /// What was found.
        reason: String,
    },
    /// The database refused or failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Applying migrations failed.
    #[error("database migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
}

/// Result alias.
pub type Result<T> = std::result::Result<T, Error>;

/// Storage operations medsec needs. Every method is one transaction.
pub trait Store: Send + Sync + Clone + 'static {
    /// Creates a device if absent; returns whether it was created.
    fn register_device(
        &self,
        id: &str,
        model: &str,
        now_ms: i64,
    ) -> impl Future<Output = Result<bool>> + Send;
    /// One device, or `NotFound`.
    fn device(&self, id: &str) -> impl Future<Output = Result<Device>> + Send;
    /// Devices ordered by id, as `query` selects.
    fn devices(&self, query: &DeviceQuery) -> impl Future<Output = Result<Vec<Device>>> + Send;
    /// Replaces a device's model, hardware id, site and groups (`NotFound` if absent).
    fn set_device_inventory(
        &self,
        id: &str,
        inventory: &Inventory,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Sets a device's lifecycle state (`NotFound` if absent).
    fn set_device_state(&self, id: &str, state: &str) -> impl Future<Output = Result<()>> + Send;
    /// Stores the status a device reported and marks it seen (`NotFound` if absent).
    fn set_device_status(
        &self,
        id: &str,
        status_json: &str,
        now_ms: i64,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Issues a version-report nonce to a device: drops its expired nonces and, when it already
    /// has `max_outstanding`, its oldest, so each device holds a bounded number.
    fn add_report_nonce(
        &self,
        device_id: &str,
        nonce: &str,
        now_ms: i64,
        expires_at_ms: i64,
        max_outstanding: u32,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Consumes the report's nonce (`NonceRefused` unless it was issued to this device and has
    /// not expired or been used), stores the report and sets the device's installed version,
    /// release counter and last-seen time, all in one transaction.
    fn record_version_report(
        &self,
        report: &VersionReport,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Stores a telemetry batch and the alerts raised on it if its sequence number is greater
    /// than the device's last accepted one, or at most `reorder_window` below it and not stored
    /// yet (`Replayed` otherwise); advances that number and the device's last-seen time, all in
    /// one transaction: a batch acknowledged is a batch stored. Returns the ids given to the
    /// alerts, in order.
    fn record_telemetry(
        &self,
        batch: &TelemetryBatch,
        alerts: &[AlertRow],
        reorder_window: i64,
    ) -> impl Future<Output = Result<Vec<i64>>> + Send;
    /// The source addresses of the device's newest `limit` telemetry batches received at or
    /// after `since_ms`, newest first (identity binding; no bodies are read).
    fn telemetry_sources(
        &self,
        device_id: &str,
        since_ms: i64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<String>>> + Send;
    /// Stores a new baseline version (`Conflict` if that version exists: another replica
    /// trained at the same time).
    fn add_baseline(&self, baseline: &BaselineRow) -> impl Future<Output = Result<()>> + Send;
    /// The newest baseline version of `model`, if any, without reading the baseline.
    fn latest_baseline_version(
        &self,
        model: &str,
    ) -> impl Future<Output = Result<Option<i64>>> + Send;
    /// The newest baseline of `model`, if any.
    fn latest_baseline(
        &self,
        model: &str,
    ) -> impl Future<Output = Result<Option<BaselineRow>>> + Send;
    /// Stores a release's SBOM, one row per hardware id (replacing an earlier upload).
    fn put_release_sbom(&self, rows: &[ReleaseSbomRow]) -> impl Future<Output = Result<()>> + Send;
    /// The SBOM of the release a device with this hardware id and version runs.
    fn release_sbom(
        &self,
        hardware_id: &str,
        version: &str,
    ) -> impl Future<Output = Result<Option<ReleaseSbomRow>>> + Send;
    /// Every release SBOM.
    fn release_sboms(&self) -> impl Future<Output = Result<Vec<ReleaseSbomRow>>> + Send;
    /// Stores an advisory document under its identity; one already held is replaced only
    /// when `modified` differs. Returns whether anything changed.
    fn put_advisory_doc(
        &self,
        identity: &str,
        modified: &str,
        body: &str,
        now_ms: i64,
    ) -> impl Future<Output = Result<bool>> + Send;
    /// Stores many advisory documents in one transaction, each as `put_advisory_doc` does;
    /// returns how many changed.
    fn put_advisory_docs(
        &self,
        docs: &[AdvisoryDoc],
        now_ms: i64,
    ) -> impl Future<Output = Result<usize>> + Send;
    /// Every advisory document.
    fn advisory_docs(&self) -> impl Future<Output = Result<Vec<String>>> + Send;
    /// Stores a VEX document under its SHA-256; returns false if it was already held.
    fn put_vex_doc(
        &self,
        sha256: &str,
        body: &str,
        now_ms: i64,
    ) -> impl Future<Output = Result<bool>> + Send;
    /// Every VEX document, oldest first (a later statement wins over an earlier one).
    fn vex_docs(&self) -> impl Future<Output = Result<Vec<String>>> + Send;
    /// Stores (or replaces) an asset record: a model profile or a vendor's record, as JSON.
    fn put_asset(
        &self,
        kind: AssetKind,
        name: &str,
        body: &str,
        now_ms: i64,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Every asset record of a kind, as (name, JSON), by name.
    fn assets(&self, kind: AssetKind)
    -> impl Future<Output = Result<Vec<(String, String)>>> + Send;
    /// A value that changes whenever a release SBOM, advisory or VEX document is added or
    /// replaced, so a replica knows when to reload them.
    fn risk_generation(&self) -> impl Future<Output = Result<(i64, i64)>> + Send;
    /// The devices with this hardware id whose last signed version report named `version`.
    fn devices_running(
        &self,
        hardware_id: &str,
        version: &str,
    ) -> impl Future<Output = Result<Vec<String>>> + Send;
    /// Binds `value` as the device's identity of `kind` (a MAC address) if none is bound yet,
    /// and returns the bound value: `value` itself the first time, the earlier one after.
    fn bind_identity(
        &self,
        device_id: &str,
        kind: &str,
        value: &str,
        now_ms: i64,
    ) -> impl Future<Output = Result<String>> + Send;
    /// Replaces the device's identity of `kind` with `value` (an operator's re-bind after a
    /// repair) and returns the value it replaces, if one was bound.
    fn rebind_identity(
        &self,
        device_id: &str,
        kind: &str,
        value: &str,
        now_ms: i64,
    ) -> impl Future<Output = Result<Option<String>>> + Send;
    /// The identities the device is bound to, by kind.
    fn identity_bindings(
        &self,
        device_id: &str,
    ) -> impl Future<Output = Result<Vec<IdentityBindingRow>>> + Send;
    /// Sets whether a device is quarantined (`NotFound` for an unknown device).
    fn set_device_quarantined(
        &self,
        id: &str,
        quarantined: bool,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Stores a new incident (`Conflict` if the id exists).
    fn create_incident(&self, incident: &IncidentRow) -> impl Future<Output = Result<()>> + Send;
    /// One incident, or `NotFound`.
    fn incident(&self, id: &str) -> impl Future<Output = Result<IncidentRow>> + Send;
    /// Incidents, most recently changed first (open ones only if asked), at most `limit`.
    fn incidents(
        &self,
        open_only: bool,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<IncidentRow>>> + Send;
    /// Replaces an incident if its stored version is still `incident.version` (then the stored
    /// version goes up by one); `false` when another writer came first, `NotFound` when it does
    /// not exist.
    fn update_incident(&self, incident: &IncidentRow) -> impl Future<Output = Result<bool>> + Send;
    /// Alerts raised at or after `since_ms`, of one device or of all, newest first, at most
    /// `limit`.
    fn alerts(
        &self,
        device_id: Option<&str>,
        since_ms: i64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<AlertRow>>> + Send;
    /// A device's telemetry batches received at or after `since_ms`, newest first, at most
    /// `limit`.
    fn telemetry(
        &self,
        device_id: &str,
        since_ms: i64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<TelemetryBatch>>> + Send;
    /// A device's version reports, newest first, at most `limit`.
    fn version_reports(
        &self,
        device_id: &str,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<VersionReport>>> + Send;
    /// Stores a new campaign over `devices` (`Conflict` if the id exists).
    fn create_campaign(
        &self,
        campaign: &CampaignRow,
        devices: &[String],
    ) -> impl Future<Output = Result<()>> + Send;
    /// One campaign, or `NotFound`.
    fn campaign(&self, id: &str) -> impl Future<Output = Result<CampaignRow>> + Send;
    /// All campaigns, newest first.
    fn campaigns(&self) -> impl Future<Output = Result<Vec<CampaignRow>>> + Send;
    /// Replaces a campaign's status and state if its version is still `expected_version`
    /// (then the version goes up by one): `Ok(false)` if someone else changed it first.
    fn update_campaign(
        &self,
        id: &str,
        expected_version: i64,
        status: &str,
        state: &str,
        now_ms: i64,
    ) -> impl Future<Output = Result<bool>> + Send;
    /// The running or paused campaigns a device is in, newest first, with their versions (so a
    /// caller can reuse a campaign it already parsed).
    fn active_device_campaigns(
        &self,
        device_id: &str,
    ) -> impl Future<Output = Result<Vec<(String, i64)>>> + Send;
    /// [`Store::device`], [`Store::active_device_campaigns`] and the timestamp part of
    /// [`Store::director_metadata`] in one round trip (a poll is the server's hottest path);
    /// `NotFound` if there is no such device.
    fn device_poll(&self, device_id: &str) -> impl Future<Output = Result<DevicePoll>> + Send;
    /// The ids of the campaigns a device is in, newest first.
    fn device_campaigns(&self, device_id: &str)
    -> impl Future<Output = Result<Vec<String>>> + Send;
    /// The director's current metadata for a device, if it has any.
    fn director_metadata(
        &self,
        device_id: &str,
    ) -> impl Future<Output = Result<Option<DirectorMetadata>>> + Send;
    /// Stores a device's director metadata if it has none yet, or if the
    /// stored version is `m.version - 1`; `Ok(false)` if another writer got there first.
    fn put_director_metadata(
        &self,
        m: &DirectorMetadata,
    ) -> impl Future<Output = Result<bool>> + Send;
    /// Records a certified key; `Conflict` if this key was ever certified before (for any device).
    fn add_device_key(&self, key: &DeviceKey) -> impl Future<Output = Result<()>> + Send;
    /// Keys certified for a device, oldest first.
    fn device_keys(&self, device_id: &str) -> impl Future<Output = Result<Vec<DeviceKey>>> + Send;
    /// Stores a new enrolment token (`Conflict` if the hash exists).
    fn create_enrolment_token(
        &self,
        token: &EnrolmentToken,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Marks a token used and returns its device, atomically: a token works once, before expiry.
    fn consume_enrolment_token(
        &self,
        token_sha256: &[u8],
        now_ms: i64,
    ) -> impl Future<Output = Result<String>> + Send;
    /// Stores a new operator token.
    fn create_operator_token(
        &self,
        token: &OperatorToken,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Looks up an operator token by hash (`NotFound` if absent; expiry is the caller's check).
    fn operator_token(
        &self,
        token_sha256: &[u8],
    ) -> impl Future<Output = Result<OperatorToken>> + Send;
    /// Appends audit entries and the signed head that covers them, in one durable transaction.
    fn append_audit(
        &self,
        rows: &[AuditRow],
        head: &HeadRow,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Audit entries with `seq >= from`, in order, at most `limit`.
    fn audit_entries(
        &self,
        from: i64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<AuditRow>>> + Send;
    /// Audit entries whose text contains `text` (a plain substring), newest first, at most
    /// `limit`. A scan of the log: meant for investigations, not for hot paths.
    fn audit_entries_mentioning(
        &self,
        text: &str,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<AuditRow>>> + Send;
    /// Every signed tree head, smallest first.
    fn audit_heads(&self) -> impl Future<Output = Result<Vec<HeadRow>>> + Send;
}

/// A store of either backend, chosen at run time from a URL.
#[derive(Clone)]
pub enum AnyStore {
    /// SQLite.
    Sqlite(SqliteStore),
    /// PostgreSQL.
    Postgres(PostgresStore),
}

impl AnyStore {
    /// Opens `sqlite://PATH` (created if missing) or `postgres://…`, and applies migrations.
    pub async fn open(url: &str, max_connections: u32) -> Result<Self> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            Ok(Self::Sqlite(
                SqliteStore::open(std::path::Path::new(path), max_connections).await?,
            ))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres(
                PostgresStore::open(url, max_connections).await?,
            ))
        } else {
            Err(Error::BadUrl {
                url: mask_password(url),
                reason: "use sqlite://PATH or postgres://USER@HOST/DB".into(),
            })
        }
    }

    /// Which backend, for logs.
    pub fn backend(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }

    /// Closes the pool, waiting for connections to finish.
    pub async fn close(&self) {
        match self {
            Self::Sqlite(s) => s.close().await,
            Self::Postgres(s) => s.close().await,
        }
    }
}

/// Forwards each `Store` method to the backend inside.
macro_rules! dispatch {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            AnyStore::Sqlite($s) => $call.await,
            AnyStore::Postgres($s) => $call.await,
        }
    };
}

impl Store for AnyStore {
    async fn register_device(&self, id: &str, model: &str, now_ms: i64) -> Result<bool> {
        dispatch!(self, s => s.register_device(id, model, now_ms))
    }
    async fn device(&self, id: &str) -> Result<Device> {
        dispatch!(self, s => s.device(id))
    }
    async fn devices(&self, query: &DeviceQuery) -> Result<Vec<Device>> {
        dispatch!(self, s => s.devices(query))
    }
    async fn set_device_inventory(&self, id: &str, inventory: &Inventory) -> Result<()> {
        dispatch!(self, s => s.set_device_inventory(id, inventory))
    }
    async fn set_device_state(&self, id: &str, state: &str) -> Result<()> {
        dispatch!(self, s => s.set_device_state(id, state))
    }
    async fn set_device_status(&self, id: &str, status_json: &str, now_ms: i64) -> Result<()> {
        dispatch!(self, s => s.set_device_status(id, status_json, now_ms))
    }
    async fn add_report_nonce(
        &self,
        device_id: &str,
        nonce: &str,
        now_ms: i64,
        expires_at_ms: i64,
        max_outstanding: u32,
    ) -> Result<()> {
        dispatch!(self, s => s.add_report_nonce(device_id, nonce, now_ms, expires_at_ms, max_outstanding))
    }
    async fn record_version_report(&self, report: &VersionReport) -> Result<()> {
        dispatch!(self, s => s.record_version_report(report))
    }
    async fn version_reports(&self, device_id: &str, limit: u32) -> Result<Vec<VersionReport>> {
        dispatch!(self, s => s.version_reports(device_id, limit))
    }
    async fn record_telemetry(
        &self,
        batch: &TelemetryBatch,
        alerts: &[AlertRow],
        reorder_window: i64,
    ) -> Result<Vec<i64>> {
        dispatch!(self, s => s.record_telemetry(batch, alerts, reorder_window))
    }
    async fn add_baseline(&self, baseline: &BaselineRow) -> Result<()> {
        dispatch!(self, s => s.add_baseline(baseline))
    }
    async fn latest_baseline_version(&self, model: &str) -> Result<Option<i64>> {
        dispatch!(self, s => s.latest_baseline_version(model))
    }
    async fn latest_baseline(&self, model: &str) -> Result<Option<BaselineRow>> {
        dispatch!(self, s => s.latest_baseline(model))
    }
    async fn put_release_sbom(&self, rows: &[ReleaseSbomRow]) -> Result<()> {
        dispatch!(self, s => s.put_release_sbom(rows))
    }
    async fn release_sbom(
        &self,
        hardware_id: &str,
        version: &str,
    ) -> Result<Option<ReleaseSbomRow>> {
        dispatch!(self, s => s.release_sbom(hardware_id, version))
    }
    async fn release_sboms(&self) -> Result<Vec<ReleaseSbomRow>> {
        dispatch!(self, s => s.release_sboms())
    }
    async fn put_advisory_doc(
        &self,
        identity: &str,
        modified: &str,
        body: &str,
        now_ms: i64,
    ) -> Result<bool> {
        dispatch!(self, s => s.put_advisory_doc(identity, modified, body, now_ms))
    }
    async fn put_advisory_docs(&self, docs: &[AdvisoryDoc], now_ms: i64) -> Result<usize> {
        dispatch!(self, s => s.put_advisory_docs(docs, now_ms))
    }
    async fn advisory_docs(&self) -> Result<Vec<String>> {
        dispatch!(self, s => s.advisory_docs())
    }
    async fn put_vex_doc(&self, sha256: &str, body: &str, now_ms: i64) -> Result<bool> {
        dispatch!(self, s => s.put_vex_doc(sha256, body, now_ms))
    }
    async fn vex_docs(&self) -> Result<Vec<String>> {
        dispatch!(self, s => s.vex_docs())
    }
    async fn put_asset(&self, kind: AssetKind, name: &str, body: &str, now_ms: i64) -> Result<()> {
        dispatch!(self, s => s.put_asset(kind, name, body, now_ms))
    }
    async fn assets(&self, kind: AssetKind) -> Result<Vec<(String, String)>> {
        dispatch!(self, s => s.assets(kind))
    }
    async fn risk_generation(&self) -> Result<(i64, i64)> {
        dispatch!(self, s => s.risk_generation())
    }
    async fn devices_running(&self, hardware_id: &str, version: &str) -> Result<Vec<String>> {
        dispatch!(self, s => s.devices_running(hardware_id, version))
    }
    async fn telemetry_sources(
        &self,
        device_id: &str,
        since_ms: i64,
        limit: u32,
    ) -> Result<Vec<String>> {
        dispatch!(self, s => s.telemetry_sources(device_id, since_ms, limit))
    }
    async fn bind_identity(
        &self,
        device_id: &str,
        kind: &str,
        value: &str,
        now_ms: i64,
    ) -> Result<String> {
        dispatch!(self, s => s.bind_identity(device_id, kind, value, now_ms))
    }
    async fn rebind_identity(
        &self,
        device_id: &str,
        kind: &str,
        value: &str,
        now_ms: i64,
    ) -> Result<Option<String>> {
        dispatch!(self, s => s.rebind_identity(device_id, kind, value, now_ms))
    }
    async fn identity_bindings(&self, device_id: &str) -> Result<Vec<IdentityBindingRow>> {
        dispatch!(self, s => s.identity_bindings(device_id))
    }
    async fn set_device_quarantined(&self, id: &str, quarantined: bool) -> Result<()> {
        dispatch!(self, s => s.set_device_quarantined(id, quarantined))
    }
    async fn create_incident(&self, incident: &IncidentRow) -> Result<()> {
        dispatch!(self, s => s.create_incident(incident))
    }
    async fn incident(&self, id: &str) -> Result<IncidentRow> {
        dispatch!(self, s => s.incident(id))
    }
    async fn incidents(&self, open_only: bool, limit: u32) -> Result<Vec<IncidentRow>> {
        dispatch!(self, s => s.incidents(open_only, limit))
    }
    async fn update_incident(&self, incident: &IncidentRow) -> Result<bool> {
        dispatch!(self, s => s.update_incident(incident))
    }
    async fn alerts(
        &self,
        device_id: Option<&str>,
        since_ms: i64,
        limit: u32,
    ) -> Result<Vec<AlertRow>> {
        dispatch!(self, s => s.alerts(device_id, since_ms, limit))
    }
    async fn telemetry(
        &self,
        device_id: &str,
        since_ms: i64,
        limit: u32,
    ) -> Result<Vec<TelemetryBatch>> {
        dispatch!(self, s => s.telemetry(device_id, since_ms, limit))
    }
    async fn create_campaign(&self, campaign: &CampaignRow, devices: &[String]) -> Result<()> {
        dispatch!(self, s => s.create_campaign(campaign, devices))
    }
    async fn campaign(&self, id: &str) -> Result<CampaignRow> {
        dispatch!(self, s => s.campaign(id))
    }
    async fn campaigns(&self) -> Result<Vec<CampaignRow>> {
        dispatch!(self, s => s.campaigns())
    }
    async fn update_campaign(
        &self,
        id: &str,
        expected_version: i64,
        status: &str,
        state: &str,
        now_ms: i64,
    ) -> Result<bool> {
        dispatch!(self, s => s.update_campaign(id, expected_version, status, state, now_ms))
    }
    async fn active_device_campaigns(&self, device_id: &str) -> Result<Vec<(String, i64)>> {
        dispatch!(self, s => s.active_device_campaigns(device_id))
    }
    async fn device_poll(&self, device_id: &str) -> Result<DevicePoll> {
        dispatch!(self, s => s.device_poll(device_id))
    }
    async fn device_campaigns(&self, device_id: &str) -> Result<Vec<String>> {
        dispatch!(self, s => s.device_campaigns(device_id))
    }
    async fn director_metadata(&self, device_id: &str) -> Result<Option<DirectorMetadata>> {
        dispatch!(self, s => s.director_metadata(device_id))
    }
    async fn put_director_metadata(&self, m: &DirectorMetadata) -> Result<bool> {
        dispatch!(self, s => s.put_director_metadata(m))
    }
    async fn add_device_key(&self, key: &DeviceKey) -> Result<()> {
        dispatch!(self, s => s.add_device_key(key))
    }
    async fn device_keys(&self, device_id: &str) -> Result<Vec<DeviceKey>> {
        dispatch!(self, s => s.device_keys(device_id))
    }
    async fn create_enrolment_token(&self, token: &EnrolmentToken) -> Result<()> {
        dispatch!(self, s => s.create_enrolment_token(token))
    }
    async fn consume_enrolment_token(&self, token_sha256: &[u8], now_ms: i64) -> Result<String> {
        dispatch!(self, s => s.consume_enrolment_token(token_sha256, now_ms))
    }
    async fn create_operator_token(&self, token: &OperatorToken) -> Result<()> {
        dispatch!(self, s => s.create_operator_token(token))
    }
    async fn operator_token(&self, token_sha256: &[u8]) -> Result<OperatorToken> {
        dispatch!(self, s => s.operator_token(token_sha256))
    }
    async fn append_audit(&self, rows: &[AuditRow], head: &HeadRow) -> Result<()> {
        dispatch!(self, s => s.append_audit(rows, head))
    }
    async fn audit_entries(&self, from: i64, limit: u32) -> Result<Vec<AuditRow>> {
        dispatch!(self, s => s.audit_entries(from, limit))
    }
    async fn audit_entries_mentioning(&self, text: &str, limit: u32) -> Result<Vec<AuditRow>> {
        dispatch!(self, s => s.audit_entries_mentioning(text, limit))
    }
    async fn audit_heads(&self) -> Result<Vec<HeadRow>> {
        dispatch!(self, s => s.audit_heads())
    }
}
