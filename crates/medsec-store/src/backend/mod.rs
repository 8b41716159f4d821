//! The two backends. Their SQL is the same text (numbered placeholders, `ON CONFLICT`,
//! `RETURNING` work in both), so one macro writes both implementations; what differs — connection
//! set-up and migrations — is written per backend.

use std::path::Path;
use std::str::FromStr as _;
use std::time::Duration;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{FromRow as _, PgPool, QueryBuilder, Row as _, SqlitePool};

use crate::{
    AdvisoryDoc, AlertAck, AlertRow, AttentionCounts, AuditRow, AuditStore, BaselineRow,
    CampaignRow, ConsoleSession, CredentialStore, DeadLetter, Device, DeviceCensus, DeviceKey,
    DevicePoll, DeviceQuery, DeviceStore, DirectorMetadata, DirectorTimestamp, EnrolmentToken,
    Error, HeadRow, IdentityBindingRow, IncidentRow, IncidentStore, Inventory, InventoryKind,
    OperatorToken, ReleaseSbomRow, Result, RiskGroup, RiskStore, SequenceWindow, StoredAlert,
    SuppressionRow, TelemetryBatch, TelemetryGap, TelemetryStore, UpdateStore, VersionReport,
    mask_password,
};

/// SQLite in WAL mode with `synchronous=FULL`: a committed transaction survives power loss.
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

/// PostgreSQL through a connection pool.
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path` and applies migrations.
    pub async fn open(path: &Path, max_connections: u32) -> Result<Self> {
        private_database_files(path)?;
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections.max(1))
            .connect_with(options)
            .await?;
        migrator(SQLITE_MIGRATIONS).run(&pool).await?;
        Ok(Self { pool })
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The pool, for tests and tools that must reach the tables directly (tamper tests).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

impl PostgresStore {
    /// Connects to `url` and applies migrations. A `search_path` query parameter (for example
    /// `?search_path=medsec`) selects the schema, which is created if missing.
    pub async fn open(url: &str, max_connections: u32) -> Result<Self> {
        let (base, schema) = split_search_path(url);
        let mut options = PgConnectOptions::from_str(&base).map_err(|e| Error::BadUrl {
            url: mask_password(url),
            reason: e.to_string(),
        })?;
        if let Some(schema) = &schema {
            if !schema
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                return Err(Error::BadUrl {
                    url: mask_password(url),
                    reason: "search_path must be lowercase letters, digits and _".into(),
                });
            }
            // Create the schema first, on a pool without the search path.
            let admin = PgPoolOptions::new()
                .max_connections(1)
                .connect_with(options.clone())
                .await?;
            // The name was checked above to be [a-z0-9_]+; identifiers cannot be bound.
            sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
                .execute(&admin)
                .await?;
            admin.close().await;
            options = options.options([("search_path", schema.as_str())]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        migrator(POSTGRES_MIGRATIONS).run(&pool).await?;
        Ok(Self { pool })
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The pool, for tests and tools that must reach the tables directly (tamper tests).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// Takes medsec's own `search_path=` parameter out of a PostgreSQL URL.
fn split_search_path(url: &str) -> (String, Option<String>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_owned(), None);
    };
    let mut schema = None;
    let rest: Vec<&str> = query
        .split('&')
        .filter(|kv| match kv.strip_prefix("search_path=") {
            Some(s) => {
                schema = Some(s.to_owned());
                false
            }
            None => true,
        })
        .collect();
    if rest.is_empty() {
        (base.to_owned(), schema)
    } else {
        (format!("{base}?{}", rest.join("&")), schema)
    }
}

/// Migrations as (version, description, SQL), embedded at build time. Listed by hand instead of
/// with `sqlx::migrate!`, which needs sqlx's proc-macro stack (a second build of both drivers).
type Migrations = &'static [(i64, &'static str, &'static str)];
/// Stores an advisory document; one already held is replaced only when `modified` differs.
const ADVISORY_UPSERT: &str = "INSERT INTO advisory_docs (identity, modified, body, imported_at_ms) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (identity) DO UPDATE SET modified = excluded.modified, body = excluded.body, \
                     imported_at_ms = excluded.imported_at_ms WHERE advisory_docs.modified <> excluded.modified";

const SQLITE_MIGRATIONS: Migrations = &[
    (
        1,
        "init",
        include_str!("../../migrations/sqlite/0001_init.sql"),
    ),
    (
        2,
        "inventory",
        include_str!("../../migrations/sqlite/0002_inventory.sql"),
    ),
    (
        3,
        "version reports",
        include_str!("../../migrations/sqlite/0003_version_reports.sql"),
    ),
    (
        4,
        "campaigns",
        include_str!("../../migrations/sqlite/0004_campaigns.sql"),
    ),
    (
        5,
        "director",
        include_str!("../../migrations/sqlite/0005_director.sql"),
    ),
    (
        6,
        "telemetry",
        include_str!("../../migrations/sqlite/0006_telemetry.sql"),
    ),
    (
        7,
        "incidents",
        include_str!("../../migrations/sqlite/0007_incidents.sql"),
    ),
    (
        8,
        "identity_bindings",
        include_str!("../../migrations/sqlite/0008_identity_bindings.sql"),
    ),
    (
        9,
        "defender_baselines",
        include_str!("../../migrations/sqlite/0009_defender_baselines.sql"),
    ),
    (
        10,
        "risk",
        include_str!("../../migrations/sqlite/0010_risk.sql"),
    ),
    (
        11,
        "assets",
        include_str!("../../migrations/sqlite/0011_assets.sql"),
    ),
    (
        12,
        "token_revocation",
        include_str!("../../migrations/sqlite/0012_token_revocation.sql"),
    ),
    (
        13,
        "telemetry_gaps",
        include_str!("../../migrations/sqlite/0013_telemetry_gaps.sql"),
    ),
    (
        14,
        "alert_aggregation",
        include_str!("../../migrations/sqlite/0014_alert_aggregation.sql"),
    ),
    (
        15,
        "export",
        include_str!("../../migrations/sqlite/0015_export.sql"),
    ),
    (
        16,
        "alert_acknowledgements",
        include_str!("../../migrations/sqlite/0016_alert_acknowledgements.sql"),
    ),
    (
        17,
        "console_sessions",
        include_str!("../../migrations/sqlite/0017_console_sessions.sql"),
    ),
    (
        18,
        "fleet_summary",
        include_str!("../../migrations/sqlite/0018_fleet_summary.sql"),
    ),
];
const POSTGRES_MIGRATIONS: Migrations = &[
    (
        1,
        "init",
        include_str!("../../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "inventory",
        include_str!("../../migrations/postgres/0002_inventory.sql"),
    ),
    (
        3,
        "version reports",
        include_str!("../../migrations/postgres/0003_version_reports.sql"),
    ),
    (
        4,
        "campaigns",
        include_str!("../../migrations/postgres/0004_campaigns.sql"),
    ),
    (
        5,
        "director",
        include_str!("../../migrations/postgres/0005_director.sql"),
    ),
    (
        6,
        "telemetry",
        include_str!("../../migrations/postgres/0006_telemetry.sql"),
    ),
    (
        7,
        "incidents",
        include_str!("../../migrations/postgres/0007_incidents.sql"),
    ),
    (
        8,
        "identity_bindings",
        include_str!("../../migrations/postgres/0008_identity_bindings.sql"),
    ),
    (
        9,
        "defender_baselines",
        include_str!("../../migrations/postgres/0009_defender_baselines.sql"),
    ),
    (
        10,
        "risk",
        include_str!("../../migrations/postgres/0010_risk.sql"),
    ),
    (
        11,
        "assets",
        include_str!("../../migrations/postgres/0011_assets.sql"),
    ),
    (
        12,
        "token_revocation",
        include_str!("../../migrations/postgres/0012_token_revocation.sql"),
    ),
    (
        13,
        "telemetry_gaps",
        include_str!("../../migrations/postgres/0013_telemetry_gaps.sql"),
    ),
    (
        14,
        "alert_aggregation",
        include_str!("../../migrations/postgres/0014_alert_aggregation.sql"),
    ),
    (
        15,
        "export",
        include_str!("../../migrations/postgres/0015_export.sql"),
    ),
    (
        16,
        "alert_acknowledgements",
        include_str!("../../migrations/postgres/0016_alert_acknowledgements.sql"),
    ),
    (
        17,
        "console_sessions",
        include_str!("../../migrations/postgres/0017_console_sessions.sql"),
    ),
    (
        18,
        "fleet_summary",
        include_str!("../../migrations/postgres/0018_fleet_summary.sql"),
    ),
];

fn migrator(list: Migrations) -> Migrator {
    Migrator {
        migrations: list
            .iter()
            .map(|&(version, description, sql)| {
                Migration::new(
                    version,
                    description.into(),
                    MigrationType::Simple,
                    sql.into(),
                    false,
                )
            })
            .collect(),
        ..Migrator::DEFAULT
    }
}

/// Rows per multi-row INSERT: 2 parameters each, far below SQLite's 32,766 and PostgreSQL's 65,535.
const AUDIT_CHUNK: usize = 4096;

/// The columns an [`OperatorToken`] is read from.
const OPERATOR_TOKEN_COLUMNS: &str =
    "token_sha256, name, roles, created_at_ms, expires_at_ms, revoked_at_ms";
/// The columns an [`EnrolmentToken`] is read from.
const ENROLMENT_TOKEN_COLUMNS: &str =
    "token_sha256, device_id, created_by, created_at_ms, expires_at_ms, used_at_ms, revoked_at_ms";

/// Roles as stored: one comma-separated text.
fn split_roles(text: &str) -> Vec<String> {
    text.split(',')
        .filter(|r| !r.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The columns a [`ConsoleSession`] is read from.
const CONSOLE_SESSION_COLUMNS: &str = "id_sha256, kind, principal, display_name, roles, csrf, data, \
     created_at_ms, last_seen_ms, expires_at_ms";

/// A console session from a row of [`CONSOLE_SESSION_COLUMNS`].
fn console_session_from_row<R>(row: &R) -> Result<ConsoleSession>
where
    R: sqlx::Row,
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    for<'r> Vec<u8>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let roles: String = row.try_get("roles")?;
    Ok(ConsoleSession {
        id_sha256: row.try_get("id_sha256")?,
        kind: row.try_get("kind")?,
        principal: row.try_get("principal")?,
        display_name: row.try_get("display_name")?,
        roles: split_roles(&roles),
        csrf: row.try_get("csrf")?,
        data: row.try_get("data")?,
        created_at_ms: row.try_get("created_at_ms")?,
        last_seen_ms: row.try_get("last_seen_ms")?,
        expires_at_ms: row.try_get("expires_at_ms")?,
    })
}

/// An operator token from a row of [`OPERATOR_TOKEN_COLUMNS`] (roles are stored as one
/// comma-separated text).
fn operator_token_from_row<R>(row: &R) -> Result<OperatorToken>
where
    R: sqlx::Row,
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    for<'r> Vec<u8>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let roles: String = row.try_get("roles")?;
    Ok(OperatorToken {
        token_sha256: row.try_get("token_sha256")?,
        name: row.try_get("name")?,
        roles: split_roles(&roles),
        created_at_ms: row.try_get("created_at_ms")?,
        expires_at_ms: row.try_get("expires_at_ms")?,
        revoked_at_ms: row.try_get("revoked_at_ms")?,
    })
}

fn conflict(what: &'static str, key: String) -> impl FnOnce(sqlx::Error) -> Error {
    move |e| match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => Error::Conflict { what, key },
        _ => Error::Database(e),
    }
}

fn not_found(what: &'static str, key: &str) -> Error {
    Error::NotFound {
        what,
        key: key.to_owned(),
    }
}

/// The device columns, as a literal so queries stay constant strings.
macro_rules! device_select {
    () => {
        "SELECT id, model, state, quarantined, status, created_at_ms, last_seen_ms, hardware_id, site, \
         installed_version, release_counter FROM devices "
    };
}

/// `$agg` is the dialect's string aggregate taking (value, separator): the one SQL word the two
/// backends spell differently.
// The methods of each area trait, one file per area, each a macro expanded inside `impl_store!`.
#[macro_use]
mod devices;
#[macro_use]
mod telemetry;
#[macro_use]
mod risk;
#[macro_use]
mod incidents;
#[macro_use]
mod updates;
#[macro_use]
mod credentials;
#[macro_use]
mod audit;

macro_rules! impl_store {
    ($store:ty, $agg:literal) => {
        impl DeviceStore for $store {
            store_devices!();
        }
        impl TelemetryStore for $store {
            store_telemetry!();
        }
        impl RiskStore for $store {
            store_risk!();
        }
        impl IncidentStore for $store {
            store_incidents!();
        }
        impl UpdateStore for $store {
            store_updates!($agg);
        }
        impl CredentialStore for $store {
            store_credentials!();
        }
        impl AuditStore for $store {
            store_audit!();
        }
    };
}

/// The database holds clinical readings, incidents and the audit log: it and its WAL and
/// shared-memory files are the owner's only (0600), whatever the umask. A new database file is
/// created empty with that mode before SQLite opens it (SQLite gives its `-wal` and `-shm`
/// files the database file's mode); an existing one is tightened.
fn private_database_files(path: &Path) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(source) => {
            return Err(Error::File(medsec_util::FsError {
                action: "creating",
                path: path.to_owned(),
                source,
            }));
        }
    }
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        let file = std::path::PathBuf::from(file);
        if file.exists() {
            medsec_util::make_private(&file)?;
        }
    }
    Ok(())
}

fn hex_key(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl_store!(SqliteStore, "group_concat");
impl_store!(PostgresStore, "string_agg");

#[cfg(test)]
mod tests {
    use super::*;

    /// A database made by an older medsec (schema v1 only) is upgraded in place on open, and
    /// what it held is kept.
    #[tokio::test]
    async fn an_older_database_is_upgraded_and_keeps_its_devices() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true);
        let pool = SqlitePool::connect_with(options).await.unwrap();
        migrator(&SQLITE_MIGRATIONS[..1]).run(&pool).await.unwrap();
        sqlx::query(
            "INSERT INTO devices (id, model, state, created_at_ms) VALUES ('pump-1', 'pump', 'enrolled', 5)",
        )
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;

        let store = SqliteStore::open(&path, 1).await.unwrap();
        let d = store.device("pump-1").await.unwrap();
        assert_eq!(
            (
                d.model.as_str(),
                d.state.as_str(),
                d.hardware_id.as_str(),
                d.site.as_str()
            ),
            ("pump", "enrolled", "", "")
        );
        assert!(d.groups.is_empty());
        store
            .set_device_inventory(
                "pump-1",
                &Inventory {
                    model: "pump".into(),
                    hardware_id: "hw".into(),
                    site: "north".into(),
                    groups: vec!["icu".into()],
                },
            )
            .await
            .unwrap();
        store.close().await;
        // Opening again applies nothing twice.
        let store = SqliteStore::open(&path, 1).await.unwrap();
        assert_eq!(store.device("pump-1").await.unwrap().groups, ["icu"]);
    }

    #[test]
    fn search_path_is_taken_out_of_the_url() {
        assert_eq!(
            split_search_path("postgres://u@h/test?search_path=m_1&sslmode=disable"),
            (
                "postgres://u@h/test?sslmode=disable".to_owned(),
                Some("m_1".to_owned())
            )
        );
        assert_eq!(
            split_search_path("postgres://u@h/test"),
            ("postgres://u@h/test".to_owned(), None)
        );
        assert_eq!(
            split_search_path("postgres://u@h/test?search_path=x"),
            ("postgres://u@h/test".to_owned(), Some("x".to_owned()))
        );
    }
}
