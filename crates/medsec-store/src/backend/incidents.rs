//! The [`Store`](crate::Store) methods of incidents and the Defender's reads: quarantine,
//! incidents, stored telemetry, alerts and version reports, for both backends: `impl_store!`
//! expands this macro inside each backend's `impl Store`.

macro_rules! store_incidents {
    () => {
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
    };
}
