//! The [`Store`](crate::Store) methods of risk: release SBOMs, advisory and VEX documents, model
//! and vendor records, and the devices a release runs on, for both backends: `impl_store!` expands
//! this macro inside each backend's `impl Store`.

macro_rules! store_risk {
    () => {
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

        async fn advisory_docs(&self) -> Result<Vec<(String, String)>> {
            Ok(sqlx::query_as("SELECT identity, body FROM advisory_docs ORDER BY identity")
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

        async fn put_inventory_record(&self, kind: InventoryKind, name: &str, body: &str, now_ms: i64) -> Result<()> {
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

        async fn inventory_records(&self, kind: InventoryKind) -> Result<Vec<(String, String)>> {
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
    };
}
