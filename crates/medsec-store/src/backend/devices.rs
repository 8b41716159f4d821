//! The [`Store`](crate::Store) methods of the device records: registration, inventory, state and
//! status, report nonces and signed version reports, for both backends: `impl_store!` expands this
//! macro inside each backend's `impl Store`.

macro_rules! store_devices {
    () => {
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
            let mut device = sqlx::query_as::<_, Device>(concat!(device_select!(), "WHERE id = $1"))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?
                .ok_or_else(|| not_found("device", id))?;
            device.groups = sqlx::query_scalar("SELECT name FROM device_groups WHERE device_id = $1 ORDER BY name")
                .bind(id)
                .fetch_all(&self.pool)
                .await?;
            Ok(device)
        }

        async fn device_census(&self) -> Result<Vec<DeviceCensus>> {
            Ok(sqlx::query_as::<_, DeviceCensus>(
                "SELECT state, quarantined, model, installed_version, COUNT(*) AS count FROM devices \
                 GROUP BY state, quarantined, model, installed_version \
                 ORDER BY state, quarantined, model, installed_version",
            )
            .fetch_all(&self.pool)
            .await?)
        }

        async fn risk_groups(&self) -> Result<Vec<RiskGroup>> {
            Ok(sqlx::query_as::<_, RiskGroup>(
                "SELECT hardware_id, installed_version, model, quarantined, COUNT(*) AS count FROM devices \
                 GROUP BY hardware_id, installed_version, model, quarantined \
                 ORDER BY hardware_id, installed_version, model, quarantined",
            )
            .fetch_all(&self.pool)
            .await?)
        }

        async fn attention_counts(&self, silent_before_ms: i64, expires_before_ms: i64) -> Result<AttentionCounts> {
            // One scan of the table for both counts. `state || ''` keeps SQLite from reaching
            // most rows through the census index on state (a lookup per row), which is slower
            // than the scan; PostgreSQL scans either way.
            let row = sqlx::query(
                "SELECT \
                 COALESCE(SUM(CASE WHEN COALESCE(last_seen_ms, 0) < $1 THEN 1 ELSE 0 END), 0) AS silent, \
                 COALESCE(SUM(CASE WHEN certificate_not_after_ms < $2 THEN 1 ELSE 0 END), 0) AS expiring \
                 FROM devices WHERE state || '' = 'enrolled'",
            )
            .bind(silent_before_ms)
            .bind(expires_before_ms)
            .fetch_one(&self.pool)
            .await?;
            Ok(AttentionCounts {
                silent: row.try_get("silent")?,
                certificates_expiring: row.try_get("expiring")?,
            })
        }

        async fn devices(&self, q: &DeviceQuery) -> Result<Vec<Device>> {
            // One static statement: an empty filter value matches everything.
            let mut devices = sqlx::query_as::<_, Device>(concat!(
                device_select!(),
                "WHERE id > $1 AND ($3 = '' OR model = $3) AND ($4 = '' OR site = $4) \
                 AND ($5 = '' OR EXISTS (SELECT 1 FROM device_groups g WHERE g.device_id = devices.id AND g.name = $5)) \
                 AND ($6 = '' OR state = $6) AND ($7 = '' OR installed_version = $7) \
                 AND ($8 = 0 OR quarantined) \
                 AND ($9 = 0 OR (state = 'enrolled' AND COALESCE(last_seen_ms, 0) < $9)) \
                 AND ($10 = 0 OR certificate_not_after_ms < $10) \
                 ORDER BY id LIMIT $2"
            ))
            .bind(q.after.as_deref().unwrap_or(""))
            .bind(i64::from(q.limit))
            .bind(q.model.as_deref().unwrap_or(""))
            .bind(q.site.as_deref().unwrap_or(""))
            .bind(q.group.as_deref().unwrap_or(""))
            .bind(q.state.as_deref().unwrap_or(""))
            .bind(q.version.as_deref().unwrap_or(""))
            .bind(i64::from(q.quarantined_only))
            .bind(q.silent_before_ms.unwrap_or(0).max(0))
            .bind(q.certificate_expires_before_ms.unwrap_or(0).max(0))
            .fetch_all(&self.pool)
            .await?;
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

        async fn version_reports(&self, device_id: &str, limit: u32) -> Result<Vec<VersionReport>> {
            Ok(sqlx::query_as::<_, VersionReport>(
                "SELECT nonce, device_id, received_at_ms, version, release_counter, payload, signature, \
                 certificate FROM version_reports WHERE device_id = $1 \
                 ORDER BY received_at_ms DESC, nonce LIMIT $2",
            )
            .bind(device_id)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?)
        }
    };
}
