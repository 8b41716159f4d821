//! The two backends. Their SQL is the same text (numbered placeholders, `ON CONFLICT`,
//! `RETURNING` work in both), so one macro writes both implementations; what differs — connection
//! set-up and migrations — is written per backend.

use std::path::Path;
use std::str::FromStr as _;
use std::time::Duration;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, QueryBuilder, Row as _, SqlitePool};

use crate::{
    AdvisoryDoc, AlertRow, AssetKind, AuditRow, BaselineRow, CampaignRow, Device, DeviceKey,
    DevicePoll, DeviceQuery, DirectorMetadata, DirectorTimestamp, EnrolmentToken, Error, HeadRow,
    IdentityBindingRow, IncidentRow, Inventory, OperatorToken, ReleaseSbomRow, Result, Store,
    TelemetryBatch, VersionReport, mask_password,
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
        include_str!("../migrations/sqlite/0001_init.sql"),
    ),
    (
        2,
        "inventory",
        include_str!("../migrations/sqlite/0002_inventory.sql"),
    ),
    (
        3,
        "version reports",
        include_str!("../migrations/sqlite/0003_version_reports.sql"),
    ),
    (
        4,
        "campaigns",
        include_str!("../migrations/sqlite/0004_campaigns.sql"),
    ),
    (
        5,
        "director",
        include_str!("../migrations/sqlite/0005_director.sql"),
    ),
    (
        6,
        "telemetry",
        include_str!("../migrations/sqlite/0006_telemetry.sql"),
    ),
    (
        7,
        "incidents",
        include_str!("../migrations/sqlite/0007_incidents.sql"),
    ),
    (
        8,
        "identity_bindings",
        include_str!("../migrations/sqlite/0008_identity_bindings.sql"),
    ),
    (
        9,
        "defender_baselines",
        include_str!("../migrations/sqlite/0009_defender_baselines.sql"),
    ),
    (
        10,
        "risk",
        include_str!("../migrations/sqlite/0010_risk.sql"),
    ),
    (
        11,
        "assets",
        include_str!("../migrations/sqlite/0011_assets.sql"),
    ),
];
const POSTGRES_MIGRATIONS: Migrations = &[
    (
        1,
        "init",
        include_str!("../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "inventory",
        include_str!("../migrations/postgres/0002_inventory.sql"),
    ),
    (
        3,
        "version reports",
        include_str!("../migrations/postgres/0003_version_reports.sql"),
    ),
    (
        4,
        "campaigns",
        include_str!("../migrations/postgres/0004_campaigns.sql"),
    ),
    (
        5,
        "director",
        include_str!("../migrations/postgres/0005_director.sql"),
    ),
    (
        6,
        "telemetry",
        include_str!("../migrations/postgres/0006_telemetry.sql"),
    ),
    (
        7,
        "incidents",
        include_str!("../migrations/postgres/0007_incidents.sql"),
    ),
    (
        8,
        "identity_bindings",
        include_str!("../migrations/postgres/0008_identity_bindings.sql"),
    ),
    (
        9,
        "defender_baselines",
        include_str!("../migrations/postgres/0009_defender_baselines.sql"),
    ),
    (
        10,
        "risk",
        include_str!("../migrations/postgres/0010_risk.sql"),
    ),
    (
        11,
        "assets",
        include_str!("../migrations/postgres/0011_assets.sql"),
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

macro_rules! incident_from_row {
    ($row:expr) => {
        IncidentRow {
            id: $row.try_get("id")?,
            version: $row.try_get("version")?,
            phase: $row.try_get("phase")?,
            opened_at_ms: $row.try_get("opened_at_ms")?,
            updated_at_ms: $row.try_get("updated_at_ms")?,
            body: $row.try_get("body")?,
        }
    };
}

macro_rules! campaign_from_row {
    ($row:expr) => {
        CampaignRow {
            id: $row.try_get("id")?,
            status: $row.try_get("status")?,
            state: $row.try_get("state")?,
            version: $row.try_get("version")?,
            created_by: $row.try_get("created_by")?,
            created_at_ms: $row.try_get("created_at_ms")?,
            updated_at_ms: $row.try_get("updated_at_ms")?,
        }
    };
}

/// The device columns, as a literal so queries stay constant strings.
macro_rules! device_select {
    () => {
        "SELECT id, model, state, quarantined, status, created_at_ms, last_seen_ms, hardware_id, site, \
         installed_version, release_counter FROM devices "
    };
}

macro_rules! device_from_row {
    ($row:expr) => {
        Device {
            id: $row.try_get("id")?,
            model: $row.try_get("model")?,
            state: $row.try_get("state")?,
            quarantined: $row.try_get("quarantined")?,
            status: $row.try_get("status")?,
            created_at_ms: $row.try_get("created_at_ms")?,
            last_seen_ms: $row.try_get("last_seen_ms")?,
            hardware_id: $row.try_get("hardware_id")?,
            site: $row.try_get("site")?,
            groups: Vec::new(),
            installed_version: $row.try_get("installed_version")?,
            release_counter: $row.try_get("release_counter")?,
        }
    };
}

/// `$agg` is the dialect's string aggregate taking (value, separator): the one SQL word the two
/// backends spell differently.
macro_rules! impl_store {
    ($store:ty, $agg:literal) => {
        impl Store for $store {
            async fn register_device(&self, id: &str, model: &str, now_ms: i64) -> Result<bool> {
                let done = sqlx::query(
                    "INSERT INTO devices (id, model, state, created_at_ms) VALUES ($1, $2, 'registered', $3) \
                     ON CONFLICT (id) DO NOTHING",
                )
                .bind(id)
                .bind(model)
                .bind(now_ms)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn device(&self, id: &str) -> Result<Device> {
                let row = sqlx::query(concat!(device_select!(), "WHERE id = $1"))
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?
                    .ok_or_else(|| not_found("device", id))?;
                let mut device = device_from_row!(row);
                let groups = sqlx::query("SELECT name FROM device_groups WHERE device_id = $1 ORDER BY name")
                    .bind(id)
                    .fetch_all(&self.pool)
                    .await?;
                device.groups = groups.iter().map(|r| r.try_get("name")).collect::<std::result::Result<_, _>>()?;
                Ok(device)
            }

            async fn devices(&self, q: &DeviceQuery) -> Result<Vec<Device>> {
                // One static statement: an empty filter value matches everything.
                let rows = sqlx::query(concat!(
                    device_select!(),
                    "WHERE id > $1 AND ($3 = '' OR model = $3) AND ($4 = '' OR site = $4) \
                     AND ($5 = '' OR EXISTS (SELECT 1 FROM device_groups g WHERE g.device_id = devices.id AND g.name = $5)) \
                     ORDER BY id LIMIT $2"
                ))
                .bind(q.after.as_deref().unwrap_or(""))
                .bind(i64::from(q.limit))
                .bind(q.model.as_deref().unwrap_or(""))
                .bind(q.site.as_deref().unwrap_or(""))
                .bind(q.group.as_deref().unwrap_or(""))
                .fetch_all(&self.pool)
                .await?;
                let mut devices = rows.iter().map(|row| Ok(device_from_row!(row))).collect::<Result<Vec<Device>>>()?;
                // The groups of the page, in one range query over the primary key.
                if let (Some(first), Some(last)) = (devices.first(), devices.last()) {
                    let groups = sqlx::query(
                        "SELECT device_id, name FROM device_groups WHERE device_id >= $1 AND device_id <= $2 \
                         ORDER BY device_id, name",
                    )
                    .bind(&first.id)
                    .bind(&last.id)
                    .fetch_all(&self.pool)
                    .await?;
                    let mut by_device: std::collections::HashMap<String, Vec<String>> = std::collections::HashMap::new();
                    for g in &groups {
                        by_device.entry(g.try_get("device_id")?).or_default().push(g.try_get("name")?);
                    }
                    for d in &mut devices {
                        if let Some(names) = by_device.remove(&d.id) {
                            d.groups = names;
                        }
                    }
                }
                Ok(devices)
            }

            async fn set_device_inventory(&self, id: &str, inventory: &Inventory) -> Result<()> {
                let mut tx = self.pool.begin().await?;
                let done = sqlx::query("UPDATE devices SET model = $2, hardware_id = $3, site = $4 WHERE id = $1")
                    .bind(id)
                    .bind(&inventory.model)
                    .bind(&inventory.hardware_id)
                    .bind(&inventory.site)
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err(not_found("device", id));
                }
                sqlx::query("DELETE FROM device_groups WHERE device_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                for name in &inventory.groups {
                    sqlx::query("INSERT INTO device_groups (device_id, name) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                        .bind(id)
                        .bind(name)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn set_device_state(&self, id: &str, state: &str) -> Result<()> {
                let done = sqlx::query("UPDATE devices SET state = $2 WHERE id = $1")
                    .bind(id)
                    .bind(state)
                    .execute(&self.pool)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err(not_found("device", id));
                }
                Ok(())
            }

            async fn set_device_status(&self, id: &str, status_json: &str, now_ms: i64) -> Result<()> {
                let done = sqlx::query("UPDATE devices SET status = $2, last_seen_ms = $3 WHERE id = $1")
                    .bind(id)
                    .bind(status_json)
                    .bind(now_ms)
                    .execute(&self.pool)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err(not_found("device", id));
                }
                Ok(())
            }

            async fn add_report_nonce(
                &self,
                device_id: &str,
                nonce: &str,
                now_ms: i64,
                expires_at_ms: i64,
                max_outstanding: u32,
            ) -> Result<()> {
                let mut tx = self.pool.begin().await?;
                sqlx::query("DELETE FROM report_nonces WHERE device_id = $1 AND expires_at_ms <= $2")
                    .bind(device_id)
                    .bind(now_ms)
                    .execute(&mut *tx)
                    .await?;
                // Keep room for this one: the oldest go first.
                let held: i64 = sqlx::query("SELECT COUNT(*) AS n FROM report_nonces WHERE device_id = $1")
                    .bind(device_id)
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get("n")?;
                let excess = held - i64::from(max_outstanding.max(1)) + 1;
                if excess > 0 {
                    sqlx::query(
                        "DELETE FROM report_nonces WHERE nonce IN (SELECT nonce FROM report_nonces \
                         WHERE device_id = $1 ORDER BY created_at_ms, nonce LIMIT $2)",
                    )
                    .bind(device_id)
                    .bind(excess)
                    .execute(&mut *tx)
                    .await?;
                }
                sqlx::query(
                    "INSERT INTO report_nonces (nonce, device_id, created_at_ms, expires_at_ms) VALUES ($1, $2, $3, $4)",
                )
                .bind(nonce)
                .bind(device_id)
                .bind(now_ms)
                .bind(expires_at_ms)
                .execute(&mut *tx)
                .await
                .map_err(conflict("nonce", nonce.to_owned()))?;
                tx.commit().await?;
                Ok(())
            }

            async fn record_version_report(&self, r: &VersionReport) -> Result<()> {
                let mut tx = self.pool.begin().await?;
                let used = sqlx::query(
                    "DELETE FROM report_nonces WHERE nonce = $1 AND device_id = $2 AND expires_at_ms > $3",
                )
                .bind(&r.nonce)
                .bind(&r.device_id)
                .bind(r.received_at_ms)
                .execute(&mut *tx)
                .await?;
                if used.rows_affected() == 0 {
                    return Err(Error::NonceRefused { nonce: r.nonce.clone() });
                }
                sqlx::query(
                    "INSERT INTO version_reports (nonce, device_id, received_at_ms, version, release_counter, \
                     payload, signature, certificate) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(&r.nonce)
                .bind(&r.device_id)
                .bind(r.received_at_ms)
                .bind(&r.version)
                .bind(r.release_counter)
                .bind(&r.payload)
                .bind(&r.signature)
                .bind(&r.certificate)
                .execute(&mut *tx)
                .await
                .map_err(conflict("version report", r.nonce.clone()))?;
                sqlx::query(
                    "UPDATE devices SET installed_version = $2, release_counter = $3, last_seen_ms = $4 WHERE id = $1",
                )
                .bind(&r.device_id)
                .bind(&r.version)
                .bind(r.release_counter)
                .bind(r.received_at_ms)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn record_telemetry(&self, b: &TelemetryBatch, alerts: &[AlertRow], reorder_window: i64) -> Result<Vec<i64>> {
                let mut tx = self.pool.begin().await?;
                // The cursor moves only forward: a batch not after it changes no row.
                let moved = sqlx::query(
                    "INSERT INTO telemetry_cursors (device_id, last_sequence) VALUES ($1, $2) \
                     ON CONFLICT (device_id) DO UPDATE SET last_sequence = excluded.last_sequence \
                     WHERE telemetry_cursors.last_sequence < excluded.last_sequence",
                )
                .bind(&b.device_id)
                .bind(b.sequence)
                .execute(&mut *tx)
                .await?;
                let mut last = None;
                if moved.rows_affected() == 0 {
                    let newest: i64 = sqlx::query_scalar(
                        "SELECT last_sequence FROM telemetry_cursors WHERE device_id = $1",
                    )
                    .bind(&b.device_id)
                    .fetch_one(&mut *tx)
                    .await?;
                    // Inside the reorder window a batch never stored is late, not replayed;
                    // one stored already inserts no row below.
                    if b.sequence <= newest.saturating_sub(reorder_window.max(0)) {
                        return Err(Error::Replayed {
                            device: b.device_id.clone(),
                            sequence: b.sequence,
                            last: newest,
                        });
                    }
                    last = Some(newest);
                }
                let inserted = sqlx::query(
                    "INSERT INTO telemetry_batches (device_id, sequence, received_at_ms, events, source, body) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (device_id, sequence) DO NOTHING",
                )
                .bind(&b.device_id)
                .bind(b.sequence)
                .bind(b.received_at_ms)
                .bind(b.events)
                .bind(&b.source)
                .bind(&b.body)
                .execute(&mut *tx)
                .await?;
                if inserted.rows_affected() == 0 {
                    return Err(Error::Replayed {
                        device: b.device_id.clone(),
                        sequence: b.sequence,
                        last: last.unwrap_or(b.sequence),
                    });
                }
                let mut ids = Vec::with_capacity(alerts.len());
                for a in alerts {
                    let id: i64 = sqlx::query_scalar(
                        "INSERT INTO alerts (device_id, sequence, at_ms, raised_at_ms, rule, severity, body) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                    )
                    .bind(&b.device_id)
                    .bind(b.sequence)
                    .bind(a.at_ms)
                    .bind(a.raised_at_ms)
                    .bind(&a.rule)
                    .bind(&a.severity)
                    .bind(&a.body)
                    .fetch_one(&mut *tx)
                    .await?;
                    ids.push(id);
                }
                sqlx::query("UPDATE devices SET last_seen_ms = $2 WHERE id = $1 AND (last_seen_ms IS NULL OR last_seen_ms < $2)")
                    .bind(&b.device_id)
                    .bind(b.received_at_ms)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(ids)
            }

            async fn telemetry_sources(&self, device_id: &str, since_ms: i64, limit: u32) -> Result<Vec<String>> {
                Ok(sqlx::query_scalar(
                    "SELECT source FROM telemetry_batches WHERE device_id = $1 AND received_at_ms >= $2 \
                     ORDER BY received_at_ms DESC, sequence DESC LIMIT $3",
                )
                .bind(device_id)
                .bind(since_ms)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?)
            }

            async fn bind_identity(&self, device_id: &str, kind: &str, value: &str, now_ms: i64) -> Result<String> {
                sqlx::query(
                    "INSERT INTO identity_bindings (device_id, kind, value, bound_at_ms) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (device_id, kind) DO NOTHING",
                )
                .bind(device_id)
                .bind(kind)
                .bind(value)
                .bind(now_ms)
                .execute(&self.pool)
                .await?;
                Ok(sqlx::query_scalar(
                    "SELECT value FROM identity_bindings WHERE device_id = $1 AND kind = $2",
                )
                .bind(device_id)
                .bind(kind)
                .fetch_one(&self.pool)
                .await?)
            }

            async fn rebind_identity(&self, device_id: &str, kind: &str, value: &str, now_ms: i64) -> Result<Option<String>> {
                let mut tx = self.pool.begin().await?;
                let before: Option<String> = sqlx::query_scalar(
                    "SELECT value FROM identity_bindings WHERE device_id = $1 AND kind = $2",
                )
                .bind(device_id)
                .bind(kind)
                .fetch_optional(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO identity_bindings (device_id, kind, value, bound_at_ms) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (device_id, kind) \
                     DO UPDATE SET value = excluded.value, bound_at_ms = excluded.bound_at_ms",
                )
                .bind(device_id)
                .bind(kind)
                .bind(value)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(before)
            }

            async fn identity_bindings(&self, device_id: &str) -> Result<Vec<IdentityBindingRow>> {
                let rows: Vec<(String, String, i64)> = sqlx::query_as(
                    "SELECT kind, value, bound_at_ms FROM identity_bindings WHERE device_id = $1 \
                     ORDER BY kind",
                )
                .bind(device_id)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(kind, value, bound_at_ms)| IdentityBindingRow { kind, value, bound_at_ms })
                    .collect())
            }

            async fn add_baseline(&self, b: &BaselineRow) -> Result<()> {
                sqlx::query(
                    "INSERT INTO defender_baselines (model, version, created_at_ms, created_by, body, signature) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&b.model)
                .bind(b.version)
                .bind(b.created_at_ms)
                .bind(&b.created_by)
                .bind(&b.body)
                .bind(&b.signature)
                .execute(&self.pool)
                .await
                .map_err(conflict("baseline version", format!("{} v{}", b.model, b.version)))?;
                Ok(())
            }

            async fn latest_baseline_version(&self, model: &str) -> Result<Option<i64>> {
                Ok(sqlx::query_scalar(
                    "SELECT MAX(version) FROM defender_baselines WHERE model = $1",
                )
                .bind(model)
                .fetch_one(&self.pool)
                .await?)
            }

            async fn latest_baseline(&self, model: &str) -> Result<Option<BaselineRow>> {
                let row = sqlx::query(
                    "SELECT model, version, created_at_ms, created_by, body, signature \
                     FROM defender_baselines WHERE model = $1 ORDER BY version DESC LIMIT 1",
                )
                .bind(model)
                .fetch_optional(&self.pool)
                .await?;
                row.map(|r| {
                    Ok(BaselineRow {
                        model: r.try_get(0)?,
                        version: r.try_get(1)?,
                        created_at_ms: r.try_get(2)?,
                        created_by: r.try_get(3)?,
                        body: r.try_get(4)?,
                        signature: r.try_get(5)?,
                    })
                })
                .transpose()
            }

            async fn put_release_sbom(&self, rows: &[ReleaseSbomRow]) -> Result<()> {
                let mut tx = self.pool.begin().await?;
                for r in rows {
                    sqlx::query(
                        "INSERT INTO release_sboms (target, hardware_id, version, sha256, body, uploaded_at_ms) \
                         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (target, hardware_id) DO UPDATE SET \
                         version = excluded.version, sha256 = excluded.sha256, body = excluded.body, \
                         uploaded_at_ms = excluded.uploaded_at_ms",
                    )
                    .bind(&r.target)
                    .bind(&r.hardware_id)
                    .bind(&r.version)
                    .bind(&r.sha256)
                    .bind(&r.body)
                    .bind(r.uploaded_at_ms)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn release_sbom(&self, hardware_id: &str, version: &str) -> Result<Option<ReleaseSbomRow>> {
                let row: Option<(String, String, String, String, String, i64)> = sqlx::query_as(
                    "SELECT target, hardware_id, version, sha256, body, uploaded_at_ms FROM release_sboms \
                     WHERE hardware_id = $1 AND version = $2 ORDER BY uploaded_at_ms DESC, target LIMIT 1",
                )
                .bind(hardware_id)
                .bind(version)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(|(target, hardware_id, version, sha256, body, uploaded_at_ms)| ReleaseSbomRow {
                    target, hardware_id, version, sha256, body, uploaded_at_ms,
                }))
            }

            async fn release_sboms(&self) -> Result<Vec<ReleaseSbomRow>> {
                let rows: Vec<(String, String, String, String, String, i64)> = sqlx::query_as(
                    "SELECT target, hardware_id, version, sha256, body, uploaded_at_ms FROM release_sboms \
                     ORDER BY target, hardware_id",
                )
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(target, hardware_id, version, sha256, body, uploaded_at_ms)| ReleaseSbomRow {
                        target, hardware_id, version, sha256, body, uploaded_at_ms,
                    })
                    .collect())
            }

            async fn put_advisory_doc(&self, identity: &str, modified: &str, body: &str, now_ms: i64) -> Result<bool> {
                let done = sqlx::query(ADVISORY_UPSERT)
                    .bind(identity)
                    .bind(modified)
                    .bind(body)
                    .bind(now_ms)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn put_advisory_docs(&self, docs: &[AdvisoryDoc], now_ms: i64) -> Result<usize> {
                let mut tx = self.pool.begin().await?;
                let mut changed = 0;
                for d in docs {
                    let done = sqlx::query(ADVISORY_UPSERT)
                        .bind(&d.identity)
                        .bind(&d.modified)
                        .bind(&d.body)
                        .bind(now_ms)
                        .execute(&mut *tx)
                        .await?;
                    if done.rows_affected() > 0 {
                        changed += 1;
                    }
                }
                tx.commit().await?;
                Ok(changed)
            }

            async fn advisory_docs(&self) -> Result<Vec<String>> {
                Ok(sqlx::query_scalar("SELECT body FROM advisory_docs ORDER BY identity")
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn put_vex_doc(&self, sha256: &str, body: &str, now_ms: i64) -> Result<bool> {
                let done = sqlx::query(
                    "INSERT INTO vex_docs (sha256, body, imported_at_ms) VALUES ($1, $2, $3) \
                     ON CONFLICT (sha256) DO NOTHING",
                )
                .bind(sha256)
                .bind(body)
                .bind(now_ms)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn vex_docs(&self) -> Result<Vec<String>> {
                Ok(sqlx::query_scalar("SELECT body FROM vex_docs ORDER BY imported_at_ms, sha256")
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn put_asset(&self, kind: AssetKind, name: &str, body: &str, now_ms: i64) -> Result<()> {
                sqlx::query(
                    "INSERT INTO asset_records (kind, name, body, updated_at_ms) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (kind, name) DO UPDATE SET body = excluded.body, \
                     updated_at_ms = excluded.updated_at_ms",
                )
                .bind(kind.as_str())
                .bind(name)
                .bind(body)
                .bind(now_ms)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn assets(&self, kind: AssetKind) -> Result<Vec<(String, String)>> {
                Ok(sqlx::query_as("SELECT name, body FROM asset_records WHERE kind = $1 ORDER BY name")
                    .bind(kind.as_str())
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn risk_generation(&self) -> Result<(i64, i64)> {
                let (count, latest): (i64, i64) = sqlx::query_as(
                    // Every insert adds a row and every replacement moves its time forward, so
                    // the count and the sum of the import times change with any change.
                    "SELECT (SELECT COUNT(*) FROM advisory_docs) + (SELECT COUNT(*) FROM vex_docs) \
                     + (SELECT COUNT(*) FROM release_sboms), \
                     CAST((SELECT COALESCE(SUM(imported_at_ms), 0) FROM advisory_docs) AS BIGINT) + \
                     CAST((SELECT COALESCE(SUM(imported_at_ms), 0) FROM vex_docs) AS BIGINT) + \
                     CAST((SELECT COALESCE(SUM(uploaded_at_ms), 0) FROM release_sboms) AS BIGINT)",
                )
                .fetch_one(&self.pool)
                .await?;
                Ok((count, latest))
            }

            async fn devices_running(&self, hardware_id: &str, version: &str) -> Result<Vec<String>> {
                Ok(sqlx::query_scalar(
                    "SELECT id FROM devices WHERE hardware_id = $1 AND installed_version = $2 ORDER BY id",
                )
                .bind(hardware_id)
                .bind(version)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn set_device_quarantined(&self, id: &str, quarantined: bool) -> Result<()> {
                let done = sqlx::query("UPDATE devices SET quarantined = $2 WHERE id = $1")
                    .bind(id)
                    .bind(quarantined)
                    .execute(&self.pool)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err(not_found("device", id));
                }
                Ok(())
            }

            async fn create_incident(&self, i: &IncidentRow) -> Result<()> {
                sqlx::query(
                    "INSERT INTO incidents (id, version, phase, opened_at_ms, updated_at_ms, body) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&i.id)
                .bind(i.version)
                .bind(&i.phase)
                .bind(i.opened_at_ms)
                .bind(i.updated_at_ms)
                .bind(&i.body)
                .execute(&self.pool)
                .await
                .map_err(conflict("incident", i.id.clone()))?;
                Ok(())
            }

            async fn incident(&self, id: &str) -> Result<IncidentRow> {
                let row = sqlx::query(
                    "SELECT id, version, phase, opened_at_ms, updated_at_ms, body FROM incidents WHERE id = $1",
                )
                .bind(id)
                .fetch_optional(&self.pool)
                .await?
                .ok_or_else(|| not_found("incident", id))?;
                Ok(incident_from_row!(row))
            }

            async fn incidents(&self, open_only: bool, limit: u32) -> Result<Vec<IncidentRow>> {
                let rows = sqlx::query(
                    "SELECT id, version, phase, opened_at_ms, updated_at_ms, body FROM incidents \
                     WHERE ($1 = FALSE OR phase <> 'closed') ORDER BY updated_at_ms DESC, id LIMIT $2",
                )
                .bind(open_only)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(|row| Ok(incident_from_row!(row))).collect()
            }

            async fn update_incident(&self, i: &IncidentRow) -> Result<bool> {
                let done = sqlx::query(
                    "UPDATE incidents SET version = version + 1, phase = $3, updated_at_ms = $4, body = $5 \
                     WHERE id = $1 AND version = $2",
                )
                .bind(&i.id)
                .bind(i.version)
                .bind(&i.phase)
                .bind(i.updated_at_ms)
                .bind(&i.body)
                .execute(&self.pool)
                .await?;
                if done.rows_affected() == 1 {
                    return Ok(true);
                }
                self.incident(&i.id).await?;
                Ok(false)
            }

            async fn telemetry(
                &self,
                device_id: &str,
                since_ms: i64,
                limit: u32,
            ) -> Result<Vec<TelemetryBatch>> {
                let rows = sqlx::query(
                    "SELECT device_id, sequence, received_at_ms, events, source, body FROM telemetry_batches \
                     WHERE device_id = $1 AND received_at_ms >= $2 ORDER BY sequence DESC LIMIT $3",
                )
                .bind(device_id)
                .bind(since_ms)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|row| {
                        Ok(TelemetryBatch {
                            device_id: row.try_get("device_id")?,
                            sequence: row.try_get("sequence")?,
                            received_at_ms: row.try_get("received_at_ms")?,
                            events: row.try_get("events")?,
                            source: row.try_get("source")?,
                            body: row.try_get("body")?,
                        })
                    })
                    .collect()
            }

            async fn alerts(
                &self,
                device_id: Option<&str>,
                since_ms: i64,
                limit: u32,
            ) -> Result<Vec<AlertRow>> {
                let rows = sqlx::query(
                    "SELECT id, device_id, sequence, at_ms, raised_at_ms, rule, severity, body FROM alerts \
                     WHERE ($1 IS NULL OR device_id = $1) AND raised_at_ms >= $2 \
                     ORDER BY raised_at_ms DESC, id DESC LIMIT $3",
                )
                .bind(device_id)
                .bind(since_ms)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|row| {
                        Ok(AlertRow {
                            id: row.try_get("id")?,
                            device_id: row.try_get("device_id")?,
                            sequence: row.try_get("sequence")?,
                            at_ms: row.try_get("at_ms")?,
                            raised_at_ms: row.try_get("raised_at_ms")?,
                            rule: row.try_get("rule")?,
                            severity: row.try_get("severity")?,
                            body: row.try_get("body")?,
                        })
                    })
                    .collect()
            }

            async fn version_reports(&self, device_id: &str, limit: u32) -> Result<Vec<VersionReport>> {
                let rows = sqlx::query(
                    "SELECT nonce, device_id, received_at_ms, version, release_counter, payload, signature, \
                     certificate FROM version_reports WHERE device_id = $1 \
                     ORDER BY received_at_ms DESC, nonce LIMIT $2",
                )
                .bind(device_id)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|row| {
                        Ok(VersionReport {
                            nonce: row.try_get("nonce")?,
                            device_id: row.try_get("device_id")?,
                            received_at_ms: row.try_get("received_at_ms")?,
                            version: row.try_get("version")?,
                            release_counter: row.try_get("release_counter")?,
                            payload: row.try_get("payload")?,
                            signature: row.try_get("signature")?,
                            certificate: row.try_get("certificate")?,
                        })
                    })
                    .collect()
            }

            async fn create_campaign(&self, c: &CampaignRow, devices: &[String]) -> Result<()> {
                let mut tx = self.pool.begin().await?;
                sqlx::query(
                    "INSERT INTO campaigns (id, status, state, version, created_by, created_at_ms, updated_at_ms) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&c.id)
                .bind(&c.status)
                .bind(&c.state)
                .bind(c.version)
                .bind(&c.created_by)
                .bind(c.created_at_ms)
                .bind(c.updated_at_ms)
                .execute(&mut *tx)
                .await
                .map_err(conflict("campaign", c.id.clone()))?;
                for device in devices {
                    sqlx::query(
                        "INSERT INTO campaign_devices (campaign_id, device_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                    )
                    .bind(&c.id)
                    .bind(device)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn campaign(&self, id: &str) -> Result<CampaignRow> {
                let row = sqlx::query(
                    "SELECT id, status, state, version, created_by, created_at_ms, updated_at_ms FROM campaigns WHERE id = $1",
                )
                .bind(id)
                .fetch_optional(&self.pool)
                .await?
                .ok_or_else(|| not_found("campaign", id))?;
                Ok(campaign_from_row!(row))
            }

            async fn campaigns(&self) -> Result<Vec<CampaignRow>> {
                let rows = sqlx::query(
                    "SELECT id, status, state, version, created_by, created_at_ms, updated_at_ms FROM campaigns \
                     ORDER BY created_at_ms DESC, id",
                )
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(|row| Ok(campaign_from_row!(row))).collect()
            }

            async fn update_campaign(
                &self,
                id: &str,
                expected_version: i64,
                status: &str,
                state: &str,
                now_ms: i64,
            ) -> Result<bool> {
                let done = sqlx::query(
                    "UPDATE campaigns SET status = $3, state = $4, version = version + 1, updated_at_ms = $5 \
                     WHERE id = $1 AND version = $2",
                )
                .bind(id)
                .bind(expected_version)
                .bind(status)
                .bind(state)
                .bind(now_ms)
                .execute(&self.pool)
                .await?;
                if done.rows_affected() == 1 {
                    return Ok(true);
                }
                // Tell a lost race from a missing campaign.
                self.campaign(id).await?;
                Ok(false)
            }

            async fn active_device_campaigns(&self, device_id: &str) -> Result<Vec<(String, i64)>> {
                let rows = sqlx::query(
                    "SELECT c.id, c.version FROM campaign_devices d JOIN campaigns c ON c.id = d.campaign_id \
                     WHERE d.device_id = $1 AND c.status IN ('running', 'paused') \
                     ORDER BY c.created_at_ms DESC, c.id",
                )
                .bind(device_id)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(|r| Ok((r.try_get("id")?, r.try_get("version")?))).collect()
            }

            async fn device_poll(&self, device_id: &str) -> Result<DevicePoll> {
                // Lists come back as one string each, one entry per line: group names have no
                // control characters and campaign names are [A-Za-z0-9._-], so neither a newline
                // nor a space can be part of one. Orders are restored below (aggregate order is
                // not portable).
                let row = sqlx::query(concat!(
                    "SELECT d.id AS id, d.model AS model, d.state AS state, d.quarantined AS quarantined, \
                     d.status AS status, d.created_at_ms AS created_at_ms, d.last_seen_ms AS last_seen_ms, \
                     d.hardware_id AS hardware_id, d.site AS site, d.installed_version AS installed_version, \
                     d.release_counter AS release_counter, \
                     (SELECT ", $agg, "(g.name, '\n') FROM device_groups g WHERE g.device_id = d.id) AS groups, \
                     (SELECT ", $agg, "(c.id || ' ' || CAST(c.version AS TEXT) || ' ' || CAST(c.created_at_ms AS TEXT), '\n') \
                      FROM campaign_devices cd JOIN campaigns c ON c.id = cd.campaign_id \
                      WHERE cd.device_id = d.id AND c.status IN ('running', 'paused')) AS campaigns, \
                     m.version AS m_version, m.assignment AS m_assignment, m.timestamp AS m_timestamp, \
                     m.expires_at_ms AS m_expires_at_ms \
                     FROM devices d LEFT JOIN director_metadata m ON m.device_id = d.id WHERE d.id = $1"
                ))
                .bind(device_id)
                .fetch_optional(&self.pool)
                .await?
                .ok_or_else(|| not_found("device", device_id))?;
                let mut device = device_from_row!(row);
                let groups: Option<String> = row.try_get("groups")?;
                device.groups = groups.as_deref().unwrap_or("").lines().map(str::to_owned).collect();
                device.groups.sort();
                let listed: Option<String> = row.try_get("campaigns")?;
                let mut campaigns = Vec::new();
                for line in listed.as_deref().unwrap_or("").lines() {
                    let mut parts = line.split(' ');
                    let (Some(id), Some(version), Some(created), None) =
                        (parts.next(), parts.next(), parts.next(), parts.next())
                    else {
                        return Err(Error::Corrupt { reason: format!("campaign list entry {line:?}") });
                    };
                    let number = |v: &str| v.parse::<i64>().map_err(|_| Error::Corrupt {
                        reason: format!("campaign list entry {line:?}"),
                    });
                    campaigns.push((number(created)?, id.to_owned(), number(version)?));
                }
                // Newest first, then by id, as active_device_campaigns orders them.
                campaigns.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
                let version: Option<i64> = row.try_get("m_version")?;
                let director = match version {
                    Some(version) => Some(DirectorTimestamp {
                        version,
                        assignment: row.try_get("m_assignment")?,
                        timestamp: row.try_get("m_timestamp")?,
                        expires_at_ms: row.try_get("m_expires_at_ms")?,
                    }),
                    None => None,
                };
                Ok(DevicePoll {
                    device,
                    campaigns: campaigns.into_iter().map(|(_, id, v)| (id, v)).collect(),
                    director,
                })
            }

            async fn device_campaigns(&self, device_id: &str) -> Result<Vec<String>> {
                let rows = sqlx::query(
                    "SELECT c.id FROM campaign_devices d JOIN campaigns c ON c.id = d.campaign_id \
                     WHERE d.device_id = $1 ORDER BY c.created_at_ms DESC, c.id",
                )
                .bind(device_id)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(|r| Ok(r.try_get("id")?)).collect()
            }

            async fn director_metadata(&self, device_id: &str) -> Result<Option<DirectorMetadata>> {
                let row = sqlx::query(
                    "SELECT device_id, version, assignment, targets, snapshot, timestamp, expires_at_ms, updated_at_ms \
                     FROM director_metadata WHERE device_id = $1",
                )
                .bind(device_id)
                .fetch_optional(&self.pool)
                .await?;
                row.map(|row| {
                    Ok(DirectorMetadata {
                        device_id: row.try_get("device_id")?,
                        version: row.try_get("version")?,
                        assignment: row.try_get("assignment")?,
                        targets: row.try_get("targets")?,
                        snapshot: row.try_get("snapshot")?,
                        timestamp: row.try_get("timestamp")?,
                        expires_at_ms: row.try_get("expires_at_ms")?,
                        updated_at_ms: row.try_get("updated_at_ms")?,
                    })
                })
                .transpose()
            }

            async fn put_director_metadata(&self, m: &DirectorMetadata) -> Result<bool> {
                // Version 1 creates the row; any later version replaces exactly its predecessor.
                let done = sqlx::query(
                    "INSERT INTO director_metadata \
                     (device_id, version, assignment, targets, snapshot, timestamp, expires_at_ms, updated_at_ms) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                     ON CONFLICT (device_id) DO UPDATE SET version = excluded.version, \
                     assignment = excluded.assignment, targets = excluded.targets, \
                     snapshot = excluded.snapshot, timestamp = excluded.timestamp, \
                     expires_at_ms = excluded.expires_at_ms, updated_at_ms = excluded.updated_at_ms \
                     WHERE director_metadata.version = excluded.version - 1",
                )
                .bind(&m.device_id)
                .bind(m.version)
                .bind(&m.assignment)
                .bind(&m.targets)
                .bind(&m.snapshot)
                .bind(&m.timestamp)
                .bind(m.expires_at_ms)
                .bind(m.updated_at_ms)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn add_device_key(&self, key: &DeviceKey) -> Result<()> {
                sqlx::query(
                    "INSERT INTO device_keys (spki_sha256, device_id, serial, not_after_ms, created_at_ms) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&key.spki_sha256)
                .bind(&key.device_id)
                .bind(&key.serial)
                .bind(key.not_after_ms)
                .bind(key.created_at_ms)
                .execute(&self.pool)
                .await
                .map_err(conflict("certified key", hex_key(&key.spki_sha256)))?;
                Ok(())
            }

            async fn device_keys(&self, device_id: &str) -> Result<Vec<DeviceKey>> {
                let rows = sqlx::query(
                    "SELECT spki_sha256, device_id, serial, not_after_ms, created_at_ms FROM device_keys \
                     WHERE device_id = $1 ORDER BY created_at_ms, serial",
                )
                .bind(device_id)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| {
                        Ok(DeviceKey {
                            spki_sha256: r.try_get("spki_sha256")?,
                            device_id: r.try_get("device_id")?,
                            serial: r.try_get("serial")?,
                            not_after_ms: r.try_get("not_after_ms")?,
                            created_at_ms: r.try_get("created_at_ms")?,
                        })
                    })
                    .collect()
            }

            async fn create_enrolment_token(&self, token: &EnrolmentToken) -> Result<()> {
                sqlx::query(
                    "INSERT INTO enrolment_tokens (token_sha256, device_id, created_by, created_at_ms, expires_at_ms) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&token.token_sha256)
                .bind(&token.device_id)
                .bind(&token.created_by)
                .bind(token.created_at_ms)
                .bind(token.expires_at_ms)
                .execute(&self.pool)
                .await
                .map_err(conflict("enrolment token", "(hash)".to_owned()))?;
                Ok(())
            }

            async fn consume_enrolment_token(&self, token_sha256: &[u8], now_ms: i64) -> Result<String> {
                // One statement: two concurrent uses cannot both succeed.
                let used = sqlx::query(
                    "UPDATE enrolment_tokens SET used_at_ms = $2 \
                     WHERE token_sha256 = $1 AND used_at_ms IS NULL AND expires_at_ms > $2 RETURNING device_id",
                )
                .bind(token_sha256)
                .bind(now_ms)
                .fetch_optional(&self.pool)
                .await?;
                if let Some(row) = used {
                    return Ok(row.try_get("device_id")?);
                }
                // Say why, without changing anything.
                let row = sqlx::query("SELECT used_at_ms FROM enrolment_tokens WHERE token_sha256 = $1")
                    .bind(token_sha256)
                    .fetch_optional(&self.pool)
                    .await?;
                let reason = match row {
                    None => "unknown token",
                    Some(r) if r.try_get::<Option<i64>, _>("used_at_ms")?.is_some() => "token already used",
                    Some(_) => "token expired",
                };
                Err(Error::TokenRefused { reason })
            }

            async fn create_operator_token(&self, token: &OperatorToken) -> Result<()> {
                sqlx::query(
                    "INSERT INTO operator_tokens (token_sha256, name, roles, created_at_ms, expires_at_ms) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&token.token_sha256)
                .bind(&token.name)
                .bind(token.roles.join(","))
                .bind(token.created_at_ms)
                .bind(token.expires_at_ms)
                .execute(&self.pool)
                .await
                .map_err(conflict("operator token", "(hash)".to_owned()))?;
                Ok(())
            }

            async fn operator_token(&self, token_sha256: &[u8]) -> Result<OperatorToken> {
                let row = sqlx::query(
                    "SELECT name, roles, created_at_ms, expires_at_ms FROM operator_tokens WHERE token_sha256 = $1",
                )
                .bind(token_sha256)
                .fetch_optional(&self.pool)
                .await?
                .ok_or_else(|| not_found("operator token", "(hash)"))?;
                let roles: String = row.try_get("roles")?;
                Ok(OperatorToken {
                    token_sha256: token_sha256.to_vec(),
                    name: row.try_get("name")?,
                    roles: roles.split(',').filter(|r| !r.is_empty()).map(str::to_owned).collect(),
                    created_at_ms: row.try_get("created_at_ms")?,
                    expires_at_ms: row.try_get("expires_at_ms")?,
                })
            }

            async fn append_audit(&self, rows: &[AuditRow], head: &HeadRow) -> Result<()> {
                let mut tx = self.pool.begin().await?;
                for chunk in rows.chunks(AUDIT_CHUNK) {
                    let mut insert = QueryBuilder::new("INSERT INTO audit_entries (seq, entry) ");
                    insert.push_values(chunk, |mut b, row| {
                        b.push_bind(row.seq).push_bind(&row.entry);
                    });
                    insert
                        .build()
                        .execute(&mut *tx)
                        .await
                        .map_err(conflict("audit entry", chunk.first().map(|r| r.seq).unwrap_or(0).to_string()))?;
                }
                sqlx::query("INSERT INTO audit_heads (tree_size, head) VALUES ($1, $2)")
                    .bind(head.tree_size)
                    .bind(&head.head)
                    .execute(&mut *tx)
                    .await
                    .map_err(conflict("audit tree head", head.tree_size.to_string()))?;
                tx.commit().await?;
                Ok(())
            }

            async fn audit_entries(&self, from: i64, limit: u32) -> Result<Vec<AuditRow>> {
                let rows = sqlx::query("SELECT seq, entry FROM audit_entries WHERE seq >= $1 ORDER BY seq LIMIT $2")
                    .bind(from)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|r| Ok(AuditRow { seq: r.try_get("seq")?, entry: r.try_get("entry")? }))
                    .collect()
            }

            async fn audit_entries_mentioning(&self, text: &str, limit: u32) -> Result<Vec<AuditRow>> {
                // LIKE with every wildcard of the text escaped: a plain substring search on both
                // backends.
                let mut pattern = String::with_capacity(text.len() + 2);
                pattern.push('%');
                for c in text.chars() {
                    if matches!(c, '%' | '_' | '\\') {
                        pattern.push('\\');
                    }
                    pattern.push(c);
                }
                pattern.push('%');
                let rows = sqlx::query(
                    "SELECT seq, entry FROM audit_entries WHERE entry LIKE $1 ESCAPE '\\' ORDER BY seq DESC LIMIT $2",
                )
                .bind(pattern)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| Ok(AuditRow { seq: r.try_get("seq")?, entry: r.try_get("entry")? }))
                    .collect()
            }

            async fn audit_heads(&self) -> Result<Vec<HeadRow>> {
                let rows = sqlx::query("SELECT tree_size, head FROM audit_heads ORDER BY tree_size")
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|r| Ok(HeadRow { tree_size: r.try_get("tree_size")?, head: r.try_get("head")? }))
                    .collect()
            }
        }
    };
}

fn hex_key(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl_store!(SqliteStore, "group_concat");
impl_store!(PostgresStore, "string_agg");

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "test code")]
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
