//! The [`Store`](crate::Store) methods of telemetry: batches with their cursor and alerts, identity
//! binding and learned baselines, for both backends: `impl_store!` expands this macro inside each
//! backend's `impl Store`.

/// Inserts one alert in transaction `$tx` and evaluates to its id.
macro_rules! insert_alert {
    ($tx:expr, $device:expr, $sequence:expr, $a:expr) => {
        sqlx::query_scalar::<_, i64>(
            "INSERT INTO alerts (device_id, sequence, at_ms, raised_at_ms, rule, severity, body) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind($device)
        .bind($sequence)
        .bind($a.at_ms)
        .bind($a.raised_at_ms)
        .bind(&$a.rule)
        .bind(&$a.severity)
        .bind(&$a.body)
        .fetch_one(&mut *$tx)
        .await?
    };
}

macro_rules! store_telemetry {
    () => {
        async fn record_telemetry(&self, b: &TelemetryBatch, alerts: &[AlertRow], window: SequenceWindow) -> Result<Vec<i64>> {
            let mut tx = self.pool.begin().await?;
            // The cursor moves only forward, and by at most `max_step`: a batch outside that
            // changes no row. (Sequence numbers are at least 1, so the difference cannot
            // overflow.) A device without a cursor starts from 0.
            let moved = sqlx::query(
                "INSERT INTO telemetry_cursors (device_id, last_sequence) SELECT $1, $2 \
                 WHERE $2 <= $3 OR EXISTS (SELECT 1 FROM telemetry_cursors WHERE device_id = $1) \
                 ON CONFLICT (device_id) DO UPDATE SET last_sequence = excluded.last_sequence \
                 WHERE telemetry_cursors.last_sequence < excluded.last_sequence \
                 AND excluded.last_sequence - telemetry_cursors.last_sequence <= $3",
            )
            .bind(&b.device_id)
            .bind(b.sequence)
            .bind(window.max_step)
            .execute(&mut *tx)
            .await?;
            let mut last = None;
            if moved.rows_affected() == 0 {
                let newest: Option<i64> = sqlx::query_scalar(
                    "SELECT last_sequence FROM telemetry_cursors WHERE device_id = $1",
                )
                .bind(&b.device_id)
                .fetch_optional(&mut *tx)
                .await?;
                let base = newest.unwrap_or(0);
                if b.sequence > base && b.sequence - base > window.max_step {
                    return Err(Error::SequenceJump {
                        device: b.device_id.clone(),
                        sequence: b.sequence,
                        last: base,
                        max_step: window.max_step,
                    });
                }
                // Inside the reorder window a batch never stored is late, not replayed;
                // one stored already inserts no row below.
                if b.sequence <= base.saturating_sub(window.reorder.max(0)) {
                    return Err(Error::Replayed {
                        device: b.device_id.clone(),
                        sequence: b.sequence,
                        last: base,
                    });
                }
                last = Some(base);
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
                ids.push(insert_alert!(tx, &b.device_id, b.sequence, a));
            }
            sqlx::query("UPDATE devices SET last_seen_ms = $2 WHERE id = $1 AND (last_seen_ms IS NULL OR last_seen_ms < $2)")
                .bind(&b.device_id)
                .bind(b.received_at_ms)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(ids)
        }

        async fn record_alerts(&self, alerts: &[AlertRow]) -> Result<Vec<i64>> {
            let mut tx = self.pool.begin().await?;
            let mut ids = Vec::with_capacity(alerts.len());
            for a in alerts {
                ids.push(insert_alert!(tx, &a.device_id, a.sequence, a));
            }
            tx.commit().await?;
            Ok(ids)
        }

        async fn reset_telemetry_cursor(&self, device_id: &str) -> Result<Option<i64>> {
            Ok(sqlx::query_scalar(
                "DELETE FROM telemetry_cursors WHERE device_id = $1 RETURNING last_sequence",
            )
            .bind(device_id)
            .fetch_optional(&self.pool)
            .await?)
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
            Ok(sqlx::query_as::<_, BaselineRow>(
                "SELECT model, version, created_at_ms, created_by, body, signature \
                 FROM defender_baselines WHERE model = $1 ORDER BY version DESC LIMIT 1",
            )
            .bind(model)
            .fetch_optional(&self.pool)
            .await?)
        }

        async fn telemetry(
            &self,
            device_id: &str,
            since_ms: i64,
            limit: u32,
        ) -> Result<Vec<TelemetryBatch>> {
            Ok(sqlx::query_as::<_, TelemetryBatch>(
                "SELECT device_id, sequence, received_at_ms, events, source, body FROM telemetry_batches \
                 WHERE device_id = $1 AND received_at_ms >= $2 ORDER BY sequence DESC LIMIT $3",
            )
            .bind(device_id)
            .bind(since_ms)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
                .await?)
        }

        async fn alerts(
            &self,
            device_id: Option<&str>,
            since_ms: i64,
            limit: u32,
        ) -> Result<Vec<AlertRow>> {
            Ok(sqlx::query_as::<_, AlertRow>(
                "SELECT id, device_id, sequence, at_ms, raised_at_ms, rule, severity, body FROM alerts \
                 WHERE ($1 IS NULL OR device_id = $1) AND raised_at_ms >= $2 \
                 ORDER BY raised_at_ms DESC, id DESC LIMIT $3",
            )
            .bind(device_id)
            .bind(since_ms)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
                .await?)
        }
    };
}
