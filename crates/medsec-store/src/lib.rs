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
    /// A record that cannot make the change asked for in the state it is in (a token revoked
    /// already, say).
    #[error("{what} {key:?} {reason}")]
    WrongState {
        /// What kind of record.
        what: &'static str,
        /// Its key.
        key: String,
        /// Its state, as a phrase ("is revoked already").
        reason: &'static str,
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
    /// A telemetry batch whose sequence number is at or below the device's newest, was never
    /// skipped, and is not stored (it was stored once, before the cursor was reset).
    #[error(
        "telemetry batch {sequence} of {device} is not after the newest batch, {last}, and was not skipped"
    )]
    Replayed {
        /// The device.
        device: String,
        /// The batch's sequence number.
        sequence: i64,
        /// The newest sequence number stored for the device.
        last: i64,
    },
    /// A telemetry batch stored already with the same content: sent again (a lost
    /// acknowledgement, a broker's redelivery). Nothing changed; it may be acknowledged.
    #[error("telemetry batch {sequence} of {device} is stored already")]
    Duplicate {
        /// The device.
        device: String,
        /// The batch's sequence number.
        sequence: i64,
        /// The newest sequence number stored for the device.
        last: i64,
    },
    /// A telemetry batch whose sequence number is stored already with other content: a replay
    /// or a forgery under a used number. Nothing changed.
    #[error("telemetry batch {sequence} of {device} is stored already with other content")]
    ReplayConflict {
        /// The device.
        device: String,
        /// The batch's sequence number.
        sequence: i64,
        /// The newest sequence number stored for the device.
        last: i64,
    },
    /// A telemetry batch whose sequence number runs further ahead of the last accepted one
    /// than a device's batches ever legitimately do: accepting it would refuse every later
    /// batch of the device.
    #[error(
        "telemetry batch {sequence} of {device} is more than {max_step} after the last accepted batch, {last}"
    )]
    SequenceJump {
        /// The device.
        device: String,
        /// The batch's sequence number.
        sequence: i64,
        /// The last sequence number accepted from the device (0 for none).
        last: i64,
        /// The largest step allowed.
        max_step: i64,
    },
    /// The database file's permissions could not be made the owner's only.
    #[error("database file: {0}")]
    File(#[from] medsec_util::FsError),
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

/// Storage operations medsec needs, one trait per area (every method is one transaction);
/// `Store` is all of them, and `use medsec_store::prelude::*` brings their methods into scope.
pub trait Store:
    DeviceStore
    + TelemetryStore
    + RiskStore
    + IncidentStore
    + UpdateStore
    + CredentialStore
    + AuditStore
{
}

impl<T> Store for T where
    T: DeviceStore
        + TelemetryStore
        + RiskStore
        + IncidentStore
        + UpdateStore
        + CredentialStore
        + AuditStore
{
}

/// The area traits, to bring every store method into scope: `use medsec_store::prelude::*`.
pub mod prelude {
    pub use crate::{
        AuditStore as _, CredentialStore as _, DeviceStore as _, IncidentStore as _,
        RiskStore as _, Store, TelemetryStore as _, UpdateStore as _,
    };
}

/// Declares one area trait and forwards each of its methods from [`AnyStore`] to the backend
/// inside, so that a method is written once in the trait and once per backend, never again
/// for the dispatch.
macro_rules! store_area {
    (
        $(#[$tmeta:meta])*
        pub trait $area:ident {
            $(
                $(#[$meta:meta])*
                async fn $name:ident(&self $(, $arg:ident: $ty:ty)* $(,)?) -> Result<$ret:ty>;
            )*
        }
    ) => {
        $(#[$tmeta])*
        pub trait $area: Send + Sync + Clone + 'static {
            $(
                $(#[$meta])*
                fn $name(&self $(, $arg: $ty)*) -> impl Future<Output = Result<$ret>> + Send;
            )*
        }

        impl $area for AnyStore {
            $(
                async fn $name(&self $(, $arg: $ty)*) -> Result<$ret> {
                    match self {
                        AnyStore::Sqlite(s) => s.$name($($arg),*).await,
                        AnyStore::Postgres(s) => s.$name($($arg),*).await,
                    }
                }
            )*
        }
    };
}

store_area! {
    /// Device records: registration, inventory, state and status, report nonces and signed
    /// version reports.
    pub trait DeviceStore {
        /// Creates a device if absent; returns whether it was created.
        async fn register_device(&self, id: &str, model: &str, now_ms: i64) -> Result<bool>;
        /// One device, or `NotFound`.
        async fn device(&self, id: &str) -> Result<Device>;
        /// Devices ordered by id, as `query` selects.
        async fn devices(&self, query: &DeviceQuery) -> Result<Vec<Device>>;
        /// Devices grouped by release, model and quarantine ([`RiskGroup`]), in that order.
        async fn risk_groups(&self) -> Result<Vec<RiskGroup>>;
        /// Enrolled devices silent since `silent_before_ms`, and those whose newest
        /// certificate expires before `expires_before_ms`.
        async fn attention_counts(&self, silent_before_ms: i64, expires_before_ms: i64) -> Result<AttentionCounts>;
        /// How many devices there are per state, quarantine, model and installed version (the
        /// metrics' and the readiness check's fleet census; one grouped query).
        async fn device_census(&self) -> Result<Vec<DeviceCensus>>;
        /// Replaces a device's model, hardware id, site and groups (`NotFound` if absent).
        async fn set_device_inventory(&self, id: &str, inventory: &Inventory) -> Result<()>;
        /// Sets a device's lifecycle state (`NotFound` if absent).
        async fn set_device_state(&self, id: &str, state: &str) -> Result<()>;
        /// Stores the status a device reported and marks it seen (`NotFound` if absent).
        async fn set_device_status(&self, id: &str, status_json: &str, now_ms: i64) -> Result<()>;
        /// Issues a version-report nonce to a device: drops its expired nonces and, when it already
        /// has `max_outstanding`, its oldest, so each device holds a bounded number.
        async fn add_report_nonce(&self, device_id: &str, nonce: &str, now_ms: i64, expires_at_ms: i64, max_outstanding: u32) -> Result<()>;
        /// Consumes the report's nonce (`NonceRefused` unless it was issued to this device and has
        /// not expired or been used), stores the report and sets the device's installed version,
        /// release counter and last-seen time, all in one transaction.
        async fn record_version_report(&self, report: &VersionReport) -> Result<()>;
        /// A device's version reports, newest first, at most `limit`.
        async fn version_reports(&self, device_id: &str, limit: u32) -> Result<Vec<VersionReport>>;
    }
}

store_area! {
    /// Telemetry batches with their alerts, identity bindings and learned baselines.
    pub trait TelemetryStore {
        /// Stores a telemetry batch and the alerts raised on it, all in one transaction (a batch
        /// acknowledged is a batch stored), if its sequence number is
        /// - greater than the device's newest, by at most `window.max_step` (from 0 for a device
        ///   with none; `SequenceJump` otherwise): it becomes the newest, and the numbers it
        ///   skipped become a gap;
        /// - or inside a gap, which it fills (late, not replayed).
        ///
        /// Otherwise nothing changes: `Duplicate` if that number is stored with the same body,
        /// `ReplayConflict` if with another, `Replayed` if it is not stored. Advances the
        /// device's last-seen time. Returns the ids given to the alerts, in order.
        async fn record_telemetry(&self, batch: &TelemetryBatch, alerts: &[AlertRow], window: SequenceWindow) -> Result<Vec<StoredAlert>>;
        /// The device's open gaps (numbers skipped and not filled since), lowest first.
        async fn telemetry_gaps(&self, device_id: &str) -> Result<Vec<TelemetryGap>>;
        /// Marks as alerted, and returns, at most `limit` gaps opened before `opened_before_ms`
        /// and not alerted yet (each is returned once, across replicas).
        async fn expire_telemetry_gaps(&self, opened_before_ms: i64, now_ms: i64, limit: u32) -> Result<Vec<TelemetryGap>>;
        /// Stores alerts that belong to no stored batch (a refused one's), returning their ids.
        async fn record_alerts(&self, alerts: &[AlertRow]) -> Result<Vec<StoredAlert>>;
        /// Forgets the device's telemetry cursor and its gaps, so that its next batch starts a new
        /// numbering (re-enrolment, an operator's reset); returns the cursor it held, if any.
        async fn reset_telemetry_cursor(&self, device_id: &str) -> Result<Option<i64>>;
        /// The source addresses of the device's newest `limit` telemetry batches received at or
        /// after `since_ms`, newest first (identity binding; no bodies are read).
        async fn telemetry_sources(&self, device_id: &str, since_ms: i64, limit: u32) -> Result<Vec<String>>;
        /// Binds `value` as the device's identity of `kind` (a MAC address) if none is bound yet,
        /// and returns the bound value: `value` itself the first time, the earlier one after.
        async fn bind_identity(&self, device_id: &str, kind: &str, value: &str, now_ms: i64) -> Result<String>;
        /// Replaces the device's identity of `kind` with `value` (an operator's re-bind after a
        /// repair) and returns the value it replaces, if one was bound.
        async fn rebind_identity(&self, device_id: &str, kind: &str, value: &str, now_ms: i64) -> Result<Option<String>>;
        /// The identities the device is bound to, by kind.
        async fn identity_bindings(&self, device_id: &str) -> Result<Vec<IdentityBindingRow>>;
        /// Stores a new baseline version (`Conflict` if that version exists: another replica
        /// trained at the same time).
        async fn add_baseline(&self, baseline: &BaselineRow) -> Result<()>;
        /// The newest baseline version of `model`, if any, without reading the baseline.
        async fn latest_baseline_version(&self, model: &str) -> Result<Option<i64>>;
        /// The newest baseline of `model`, if any.
        async fn latest_baseline(&self, model: &str) -> Result<Option<BaselineRow>>;
        /// A device's telemetry batches received at or after `since_ms`, newest first, at most
        /// `limit`.
        async fn telemetry(&self, device_id: &str, since_ms: i64, limit: u32) -> Result<Vec<TelemetryBatch>>;
        /// Alerts raised at or after `since_ms`, of one device or of all, newest first, at most
        /// `limit`.
        async fn alerts(&self, device_id: Option<&str>, since_ms: i64, limit: u32) -> Result<Vec<AlertRow>>;
        /// Alerts with an id above `after_id` raised before `raised_before_ms`, in id order, at
        /// most `limit` (the export's reading: the delay lets a transaction that took an id
        /// earlier commit before a later id is passed).
        async fn alerts_after(&self, after_id: i64, raised_before_ms: i64, limit: u32) -> Result<Vec<AlertRow>>;
        /// One alert (`NotFound` if absent).
        async fn alert(&self, id: i64) -> Result<AlertRow>;
        /// The highest alert id (0 with no alert).
        async fn max_alert_id(&self) -> Result<i64>;
        /// Records an operator's acknowledgement of an alert; `NotFound` if there is no such
        /// alert, `WrongState` if it was acknowledged already.
        async fn acknowledge_alert(&self, ack: &AlertAck) -> Result<()>;
        /// The acknowledgements of alerts with ids from `first` to `last`.
        async fn alert_acks(&self, first: i64, last: i64) -> Result<Vec<AlertAck>>;
        /// The sequence numbers of a device's batches that raised an alert (counted into an
        /// aggregate or not, suppressed or not) at or after `since_ms`.
        async fn alerted_sequences(&self, device_id: &str, since_ms: i64) -> Result<Vec<i64>>;
        /// Every occurrence of an alert: (batch sequence, raised at), oldest first.
        async fn alert_hits(&self, alert_id: i64) -> Result<Vec<(i64, i64)>>;
        /// Stores a suppression; returns its id.
        async fn put_suppression(&self, s: &SuppressionRow) -> Result<i64>;
        /// Suppressions: all (`None`), or those in force at a time (not lifted, not expired).
        async fn suppressions(&self, active_at_ms: Option<i64>) -> Result<Vec<SuppressionRow>>;
        /// Lifts a suppression before its expiry; false if there is none in force by that id.
        async fn lift_suppression(&self, id: i64, now_ms: i64) -> Result<bool>;
    }
}

store_area! {
    /// Risk documents: release SBOMs, advisories, VEX, model profiles and vendor records, and
    /// the devices running a release.
    pub trait RiskStore {
        /// Stores a release's SBOM, one row per hardware id (replacing an earlier upload).
        async fn put_release_sbom(&self, rows: &[ReleaseSbomRow]) -> Result<()>;
        /// The SBOM of the release a device with this hardware id and version runs.
        async fn release_sbom(&self, hardware_id: &str, version: &str) -> Result<Option<ReleaseSbomRow>>;
        /// Every release SBOM.
        async fn release_sboms(&self) -> Result<Vec<ReleaseSbomRow>>;
        /// Stores an advisory document under its identity; one already held is replaced only
        /// when `modified` differs. Returns whether anything changed.
        async fn put_advisory_doc(&self, identity: &str, modified: &str, body: &str, now_ms: i64) -> Result<bool>;
        /// Stores many advisory documents in one transaction, each as `put_advisory_doc` does;
        /// returns how many changed.
        async fn put_advisory_docs(&self, docs: &[AdvisoryDoc], now_ms: i64) -> Result<usize>;
        /// Every advisory document.
        async fn advisory_docs(&self) -> Result<Vec<(String, String)>>;
        /// Stores a VEX document under its SHA-256; returns false if it was already held.
        async fn put_vex_doc(&self, sha256: &str, body: &str, now_ms: i64) -> Result<bool>;
        /// Every VEX document, oldest first (a later statement wins over an earlier one).
        async fn vex_docs(&self) -> Result<Vec<String>>;
        /// Stores (or replaces) an inventory record: a model profile or a vendor's record, as JSON.
        async fn put_inventory_record(&self, kind: InventoryKind, name: &str, body: &str, now_ms: i64) -> Result<()>;
        /// Every inventory record of a kind, as (name, JSON), by name.
        async fn inventory_records(&self, kind: InventoryKind) -> Result<Vec<(String, String)>>;
        /// A value that changes whenever a release SBOM, advisory or VEX document is added or
        /// replaced, so a replica knows when to reload them.
        async fn risk_generation(&self) -> Result<(i64, i64)>;
        /// The devices with this hardware id whose last signed version report named `version`.
        async fn devices_running(&self, hardware_id: &str, version: &str) -> Result<Vec<String>>;
    }
}

store_area! {
    /// Incidents and the quarantine flag their playbooks set.
    pub trait IncidentStore {
        /// Sets whether a device is quarantined (`NotFound` for an unknown device).
        async fn set_device_quarantined(&self, id: &str, quarantined: bool) -> Result<()>;
        /// Stores a new incident (`Conflict` if the id exists).
        async fn create_incident(&self, incident: &IncidentRow) -> Result<()>;
        /// One incident, or `NotFound`.
        async fn incident(&self, id: &str) -> Result<IncidentRow>;
        /// Incidents, most recently changed first (open ones only if asked), at most `limit`.
        async fn incidents(&self, open_only: bool, limit: u32) -> Result<Vec<IncidentRow>>;
        /// Replaces an incident if its stored version is still `incident.version` (then the stored
        /// version goes up by one); `false` when another writer came first, `NotFound` when it does
        /// not exist.
        async fn update_incident(&self, incident: &IncidentRow) -> Result<bool>;
    }
}

store_area! {
    /// Update campaigns and the director's per-device metadata.
    pub trait UpdateStore {
        /// Stores a new campaign over `devices` (`Conflict` if the id exists).
        async fn create_campaign(&self, campaign: &CampaignRow, devices: &[String]) -> Result<()>;
        /// One campaign, or `NotFound`.
        async fn campaign(&self, id: &str) -> Result<CampaignRow>;
        /// All campaigns, newest first.
        async fn campaigns(&self) -> Result<Vec<CampaignRow>>;
        /// Replaces a campaign's status and state if its version is still `expected_version`
        /// (then the version goes up by one): `Ok(false)` if someone else changed it first.
        async fn update_campaign(&self, id: &str, expected_version: i64, status: &str, state: &str, now_ms: i64) -> Result<bool>;
        /// The running or paused campaigns a device is in, newest first, with their versions (so a
        /// caller can reuse a campaign it already parsed).
        async fn active_device_campaigns(&self, device_id: &str) -> Result<Vec<(String, i64)>>;
        /// [`Store::device`], [`Store::active_device_campaigns`] and the timestamp part of
        /// [`Store::director_metadata`] in one round trip (a poll is the server's hottest path);
        /// `NotFound` if there is no such device.
        async fn device_poll(&self, device_id: &str) -> Result<DevicePoll>;
        /// The ids of the campaigns a device is in, newest first.
        async fn device_campaigns(&self, device_id: &str) -> Result<Vec<String>>;
        /// The director's current metadata for a device, if it has any.
        async fn director_metadata(&self, device_id: &str) -> Result<Option<DirectorMetadata>>;
        /// Stores a device's director metadata if it has none yet, or if the
        /// stored version is `m.version - 1`; `Ok(false)` if another writer got there first.
        async fn put_director_metadata(&self, m: &DirectorMetadata) -> Result<bool>;
    }
}

store_area! {
    /// Device keys, enrolment tokens and operator tokens.
    pub trait CredentialStore {
        /// Records a certified key; `Conflict` if this key was ever certified before (for any device).
        async fn add_device_key(&self, key: &DeviceKey) -> Result<()>;
        /// Keys certified for a device, oldest first.
        async fn device_keys(&self, device_id: &str) -> Result<Vec<DeviceKey>>;
        /// Stores a new enrolment token (`Conflict` if the hash exists).
        async fn create_enrolment_token(&self, token: &EnrolmentToken) -> Result<()>;
        /// Marks a token used and returns its device, atomically: a token works once, before expiry.
        async fn consume_enrolment_token(&self, token_sha256: &[u8], now_ms: i64) -> Result<String>;
        /// Stores a new operator token.
        async fn create_operator_token(&self, token: &OperatorToken) -> Result<()>;
        /// Looks up an operator token by hash (`NotFound` if absent; expiry and revocation are
        /// the caller's check, [`OperatorToken::refusal`]).
        async fn operator_token(&self, token_sha256: &[u8]) -> Result<OperatorToken>;
        /// Every operator token, live or not, oldest first.
        async fn operator_tokens(&self) -> Result<Vec<OperatorToken>>;
        /// Revokes an operator token and returns it; `NotFound` if unknown, `WrongState` if it
        /// was revoked already.
        async fn revoke_operator_token(&self, token_sha256: &[u8], now_ms: i64) -> Result<OperatorToken>;
        /// One enrolment token by hash, whatever its state (`NotFound` if unknown): read, not
        /// consumed.
        async fn enrolment_token(&self, token_sha256: &[u8]) -> Result<EnrolmentToken>;
        /// Enrolment tokens (of one device, or all), oldest first.
        async fn enrolment_tokens(&self, device_id: Option<&str>) -> Result<Vec<EnrolmentToken>>;
        /// Revokes an unused enrolment token and returns it; `NotFound` if unknown, `WrongState`
        /// if it was used or revoked already.
        async fn revoke_enrolment_token(&self, token_sha256: &[u8], now_ms: i64) -> Result<EnrolmentToken>;
        /// Stores a console session, sign-in under way or one-time link (and drops the rows
        /// expired before `row.created_at_ms`); `Conflict` if the hash exists.
        async fn put_console_session(&self, row: &ConsoleSession) -> Result<()>;
        /// A live console row of `kind` by the hash of its secret (`NotFound` if absent, of
        /// another kind, or expired at `now_ms`).
        async fn console_session(&self, id_sha256: &[u8], kind: &str, now_ms: i64) -> Result<ConsoleSession>;
        /// Removes and returns a live console row of `kind`, atomically: a one-time link or a
        /// sign-in under way is used once (`NotFound` if absent, of another kind, or expired).
        async fn take_console_session(&self, id_sha256: &[u8], kind: &str, now_ms: i64) -> Result<ConsoleSession>;
        /// Records activity on a session (its idle clock restarts at `now_ms`).
        async fn touch_console_session(&self, id_sha256: &[u8], now_ms: i64) -> Result<()>;
        /// Ends a session (sign-out); ending an absent one is not an error.
        async fn end_console_session(&self, id_sha256: &[u8]) -> Result<()>;
    }
}

store_area! {
    /// The audit log's entries and signed tree heads.
    pub trait AuditStore {
        /// Appends audit entries and the signed head that covers them, in one durable transaction.
        async fn append_audit(&self, rows: &[AuditRow], head: &HeadRow) -> Result<()>;
        /// Audit entries with `seq >= from`, in order, at most `limit`.
        async fn audit_entries(&self, from: i64, limit: u32) -> Result<Vec<AuditRow>>;
        /// Audit entries whose text contains `text` (a plain substring), newest first, at most
        /// `limit`. A scan of the log: meant for investigations, not for hot paths.
        async fn audit_entries_mentioning(&self, text: &str, limit: u32) -> Result<Vec<AuditRow>>;
        /// Every signed tree head, smallest first.
        async fn audit_heads(&self) -> Result<Vec<HeadRow>>;
        /// The newest signed tree head (the largest), if any: one indexed row.
        async fn audit_latest_head(&self) -> Result<Option<HeadRow>>;
        /// Where an export sink stands in a source (`audit`, `alerts`): everything up to this
        /// position is delivered or filtered out; `None` for a sink not seen before.
        async fn export_cursor(&self, sink: &str, source: &str) -> Result<Option<i64>>;
        /// Moves an export sink's position in a source (after delivery).
        async fn set_export_cursor(&self, sink: &str, source: &str, position: i64, now_ms: i64) -> Result<()>;
        /// Keeps an event a sink refused for good.
        async fn add_export_dead_letter(&self, letter: &DeadLetter) -> Result<()>;
        /// Dead letters (of one sink, or all), oldest first, at most `limit`.
        async fn export_dead_letters(&self, sink: Option<&str>, limit: u32) -> Result<Vec<DeadLetter>>;
    }
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
