//! The [`Store`](crate::Store) methods of telemetry: batches with their cursor and alerts, identity
//! binding and learned baselines, for both backends: `impl_store!` expands this macro inside each
//! backend's `impl Store`.

/// Stores one occurrence of an alert in transaction `$tx`: counted into the open alert of
/// the same device, rule, key and suppression when its last occurrence is within
/// `aggregate_within_ms`, else a new alert; the occurrence itself goes to `alert_hits`.
/// Evaluates to a [`StoredAlert`].
macro_rules! insert_alert {
    ($tx:expr, $device:expr, $sequence:expr, $a:expr) => {{
        let counted: Option<i64> = if $a.aggregate_within_ms > 0 {
            sqlx::query_scalar::<_, i64>(
                "UPDATE alerts SET occurrences = occurrences + 1, last_seen_ms = $5, body = $6 \
                 WHERE id = (SELECT id FROM alerts WHERE device_id = $1 AND rule = $2 \
                   AND aggregate_key = $3 AND suppressed_by = $4 AND last_seen_ms >= $7 \
                   ORDER BY last_seen_ms DESC, id DESC LIMIT 1) \
                 RETURNING id",
            )
            .bind($device)
            .bind(&$a.rule)
            .bind(&$a.aggregate_key)
            .bind($a.suppressed_by)
            .bind($a.raised_at_ms)
            .bind(&$a.body)
            .bind($a.raised_at_ms.saturating_sub($a.aggregate_within_ms))
            .fetch_optional(&mut *$tx)
            .await?
        } else {
            None
        };
        let stored = match counted {
            Some(id) => StoredAlert { id, new: false },
            None => StoredAlert {
                id: sqlx::query_scalar::<_, i64>(
                    "INSERT INTO alerts (device_id, sequence, at_ms, raised_at_ms, rule, severity, body, \
                     aggregate_key, occurrences, last_seen_ms, suppressed_by) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, $4, $9) RETURNING id",
                )
                .bind($device)
                .bind($sequence)
                .bind($a.at_ms)
                .bind($a.raised_at_ms)
                .bind(&$a.rule)
                .bind(&$a.severity)
                .bind(&$a.body)
                .bind(&$a.aggregate_key)
                .bind($a.suppressed_by)
                .fetch_one(&mut *$tx)
                .await?,
                new: true,
            },
        };
        sqlx::query(
            "INSERT INTO alert_hits (alert_id, device_id, sequence, raised_at_ms) VALUES ($1, $2, $3, $4)",
        )
        .bind(stored.id)
        .bind($device)
        .bind($sequence)
        .bind($a.raised_at_ms)
        .execute(&mut *$tx)
        .await?;
        stored
    }};
}

/// The columns of an [`AlertRow`], in a `SELECT`.
macro_rules! alert_columns {
    () => {
        "id, device_id, sequence, at_ms, raised_at_ms, rule, severity, body, aggregate_key, \
         occurrences, last_seen_ms, suppressed_by"
    };
}

macro_rules! store_telemetry {
    () => {
        async fn record_telemetry(&self, b: &TelemetryBatch, alerts: &[AlertRow], window: SequenceWindow) -> Result<Vec<StoredAlert>> {
            let mut tx = self.pool.begin().await?;
            // The device's cursor row is locked first (a no-op update: a row lock on
            // PostgreSQL, the write lock on SQLite), so two replicas storing batches of one
            // device take turns and the cursor and the gaps stay consistent.
            let lock = "UPDATE telemetry_cursors SET last_sequence = last_sequence \
                        WHERE device_id = $1 RETURNING last_sequence";
            let mut cursor: Option<i64> = sqlx::query_scalar(lock)
                .bind(&b.device_id)
                .fetch_optional(&mut *tx)
                .await?;
            if cursor.is_none() {
                // A device's first batch (or the first after a reset), held to max_step from 0.
                if b.sequence > window.max_step {
                    return Err(Error::SequenceJump {
                        device: b.device_id.clone(),
                        sequence: b.sequence,
                        last: 0,
                        max_step: window.max_step,
                    });
                }
                let made = sqlx::query(
                    "INSERT INTO telemetry_cursors (device_id, last_sequence) VALUES ($1, $2) \
                     ON CONFLICT (device_id) DO NOTHING",
                )
                .bind(&b.device_id)
                .bind(b.sequence)
                .execute(&mut *tx)
                .await?;
                if made.rows_affected() == 0 {
                    // Another replica made it first: take its lock and go on from its number.
                    cursor = sqlx::query_scalar(lock)
                        .bind(&b.device_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                } else if b.sequence > 1 {
                    // A device numbers from 1: what its first batch to arrive skipped is a gap
                    // (the batches before it are late, as over two MQTT consumers). After a
                    // reset the device has stored batches and its numbering starts anew.
                    let fresh: bool = sqlx::query_scalar(
                        "SELECT NOT EXISTS (SELECT 1 FROM telemetry_batches WHERE device_id = $1)",
                    )
                    .bind(&b.device_id)
                    .fetch_one(&mut *tx)
                    .await?;
                    if fresh {
                        sqlx::query(
                            "INSERT INTO telemetry_gaps (device_id, first_sequence, last_sequence, opened_at_ms) \
                             VALUES ($1, 1, $2, $3)",
                        )
                        .bind(&b.device_id)
                        .bind(b.sequence - 1)
                        .bind(b.received_at_ms)
                        .execute(&mut *tx)
                        .await?;
                    }
                }
            }
            // Whether the batch may be stored: after the cursor (by at most max_step), or in a
            // gap, which it then splits. Anything else is a duplicate or a replay.
            let mut in_gap = false;
            if let Some(last) = cursor {
                if b.sequence > last {
                    if b.sequence - last > window.max_step {
                        return Err(Error::SequenceJump {
                            device: b.device_id.clone(),
                            sequence: b.sequence,
                            last,
                            max_step: window.max_step,
                        });
                    }
                    sqlx::query("UPDATE telemetry_cursors SET last_sequence = $2 WHERE device_id = $1")
                        .bind(&b.device_id)
                        .bind(b.sequence)
                        .execute(&mut *tx)
                        .await?;
                    if b.sequence > last + 1 {
                        sqlx::query(
                            "INSERT INTO telemetry_gaps (device_id, first_sequence, last_sequence, opened_at_ms) \
                             VALUES ($1, $2, $3, $4)",
                        )
                        .bind(&b.device_id)
                        .bind(last + 1)
                        .bind(b.sequence - 1)
                        .bind(b.received_at_ms)
                        .execute(&mut *tx)
                        .await?;
                    }
                } else {
                    let gap: Option<(i64, i64, i64, Option<i64>)> = sqlx::query_as(
                        "SELECT first_sequence, last_sequence, opened_at_ms, alerted_at_ms FROM telemetry_gaps \
                         WHERE device_id = $1 AND first_sequence <= $2 AND last_sequence >= $2",
                    )
                    .bind(&b.device_id)
                    .bind(b.sequence)
                    .fetch_optional(&mut *tx)
                    .await?;
                    if let Some((first, end, opened, alerted)) = gap {
                        in_gap = true;
                        sqlx::query("DELETE FROM telemetry_gaps WHERE device_id = $1 AND first_sequence = $2")
                            .bind(&b.device_id)
                            .bind(first)
                            .execute(&mut *tx)
                            .await?;
                        for (from, to) in [(first, b.sequence - 1), (b.sequence + 1, end)] {
                            if from <= to {
                                sqlx::query(
                                    "INSERT INTO telemetry_gaps (device_id, first_sequence, last_sequence, opened_at_ms, alerted_at_ms) \
                                     VALUES ($1, $2, $3, $4, $5)",
                                )
                                .bind(&b.device_id)
                                .bind(from)
                                .bind(to)
                                .bind(opened)
                                .bind(alerted)
                                .execute(&mut *tx)
                                .await?;
                            }
                        }
                    }
                }
            }
            let may_store = in_gap || cursor.is_none_or(|last| b.sequence > last);
            let inserted = if may_store {
                sqlx::query(
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
                .await?
                .rows_affected()
            } else {
                0
            };
            if inserted == 0 {
                // Not stored: the number was used. The same content is the same batch sent
                // again (a lost acknowledgement, a broker's redelivery); other content under a
                // used number is a replay, as is a number below the cursor that was never
                // skipped (stored once, before a reset of the cursor).
                let same: Option<bool> = sqlx::query_scalar(
                    "SELECT body = $3 FROM telemetry_batches WHERE device_id = $1 AND sequence = $2",
                )
                .bind(&b.device_id)
                .bind(b.sequence)
                .bind(&b.body)
                .fetch_optional(&mut *tx)
                .await?;
                let last = cursor.unwrap_or(b.sequence).max(b.sequence);
                return Err(match same {
                    Some(true) => Error::Duplicate {
                        device: b.device_id.clone(),
                        sequence: b.sequence,
                        last,
                    },
                    Some(false) => Error::ReplayConflict {
                        device: b.device_id.clone(),
                        sequence: b.sequence,
                        last,
                    },
                    None => Error::Replayed {
                        device: b.device_id.clone(),
                        sequence: b.sequence,
                        last,
                    },
                });
            }
            let mut ids = Vec::with_capacity(alerts.len());
            for a in alerts {
                let stored = insert_alert!(tx, &b.device_id, b.sequence, a);
                ids.push(stored);
            }
            sqlx::query("UPDATE devices SET last_seen_ms = $2 WHERE id = $1 AND (last_seen_ms IS NULL OR last_seen_ms < $2)")
                .bind(&b.device_id)
                .bind(b.received_at_ms)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(ids)
        }

        async fn telemetry_gaps(&self, device_id: &str) -> Result<Vec<TelemetryGap>> {
            Ok(sqlx::query_as::<_, TelemetryGap>(
                "SELECT device_id, first_sequence, last_sequence, opened_at_ms, alerted_at_ms \
                 FROM telemetry_gaps WHERE device_id = $1 ORDER BY first_sequence",
            )
            .bind(device_id)
            .fetch_all(&self.pool)
            .await?)
        }

        async fn expire_telemetry_gaps(&self, opened_before_ms: i64, now_ms: i64, limit: u32) -> Result<Vec<TelemetryGap>> {
            // One statement marks and returns them, so of two replicas sweeping at once each
            // gap is alerted by one.
            Ok(sqlx::query_as::<_, TelemetryGap>(
                "UPDATE telemetry_gaps SET alerted_at_ms = $2 WHERE (device_id, first_sequence) IN \
                 (SELECT device_id, first_sequence FROM telemetry_gaps \
                  WHERE alerted_at_ms IS NULL AND opened_at_ms < $1 ORDER BY opened_at_ms LIMIT $3) \
                 AND alerted_at_ms IS NULL \
                 RETURNING device_id, first_sequence, last_sequence, opened_at_ms, alerted_at_ms",
            )
            .bind(opened_before_ms)
            .bind(now_ms)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?)
        }

        async fn record_alerts(&self, alerts: &[AlertRow]) -> Result<Vec<StoredAlert>> {
            let mut tx = self.pool.begin().await?;
            let mut ids = Vec::with_capacity(alerts.len());
            for a in alerts {
                // The device's row is locked first (a no-op update: a row lock on PostgreSQL,
                // the write lock on SQLite), so two replicas raising one alert at once count
                // into one row instead of opening two.
                sqlx::query("UPDATE devices SET last_seen_ms = last_seen_ms WHERE id = $1")
                    .bind(&a.device_id)
                    .execute(&mut *tx)
                    .await?;
                let stored = insert_alert!(tx, &a.device_id, a.sequence, a);
                ids.push(stored);
            }
            tx.commit().await?;
            Ok(ids)
        }

        async fn reset_telemetry_cursor(&self, device_id: &str) -> Result<Option<i64>> {
            let mut tx = self.pool.begin().await?;
            let last = sqlx::query_scalar(
                "DELETE FROM telemetry_cursors WHERE device_id = $1 RETURNING last_sequence",
            )
            .bind(device_id)
            .fetch_optional(&mut *tx)
            .await?;
            // The gaps belong to the old numbering.
            sqlx::query("DELETE FROM telemetry_gaps WHERE device_id = $1")
                .bind(device_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(last)
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
            Ok(sqlx::query_as::<_, AlertRow>(concat!(
                "SELECT ",
                alert_columns!(),
                " FROM alerts WHERE ($1 IS NULL OR device_id = $1) AND last_seen_ms >= $2 \
                 ORDER BY last_seen_ms DESC, id DESC LIMIT $3"
            ))
            .bind(device_id)
            .bind(since_ms)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
                .await?)
        }

        async fn alerts_after(&self, after_id: i64, raised_before_ms: i64, limit: u32) -> Result<Vec<AlertRow>> {
            Ok(sqlx::query_as::<_, AlertRow>(concat!(
                "SELECT ",
                alert_columns!(),
                " FROM alerts WHERE id > $1 AND raised_at_ms < $2 ORDER BY id LIMIT $3"
            ))
            .bind(after_id)
            .bind(raised_before_ms)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?)
        }

        async fn alert(&self, id: i64) -> Result<AlertRow> {
            sqlx::query_as::<_, AlertRow>(concat!("SELECT ", alert_columns!(), " FROM alerts WHERE id = $1"))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?
                .ok_or_else(|| not_found("alert", &id.to_string()))
        }

        async fn max_alert_id(&self) -> Result<i64> {
            let max: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM alerts")
                .fetch_one(&self.pool)
                .await?;
            Ok(max.unwrap_or(0))
        }

        async fn acknowledge_alert(&self, ack: &AlertAck) -> Result<()> {
            self.alert(ack.alert_id).await?;
            let done = sqlx::query(
                "INSERT INTO alert_acknowledgements (alert_id, acknowledged_by, at_ms, note) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (alert_id) DO NOTHING",
            )
            .bind(ack.alert_id)
            .bind(&ack.acknowledged_by)
            .bind(ack.at_ms)
            .bind(&ack.note)
            .execute(&self.pool)
            .await?;
            if done.rows_affected() == 0 {
                return Err(Error::WrongState {
                    what: "alert",
                    key: ack.alert_id.to_string(),
                    reason: "is acknowledged already",
                });
            }
            Ok(())
        }

        async fn alert_acks(&self, first: i64, last: i64) -> Result<Vec<AlertAck>> {
            Ok(sqlx::query_as::<_, AlertAck>(
                "SELECT alert_id, acknowledged_by, at_ms, note FROM alert_acknowledgements \
                 WHERE alert_id >= $1 AND alert_id <= $2 ORDER BY alert_id",
            )
            .bind(first)
            .bind(last)
            .fetch_all(&self.pool)
            .await?)
        }

        async fn alerted_sequences(&self, device_id: &str, since_ms: i64) -> Result<Vec<i64>> {
            Ok(sqlx::query_scalar(
                "SELECT DISTINCT sequence FROM alert_hits WHERE device_id = $1 AND raised_at_ms >= $2",
            )
            .bind(device_id)
            .bind(since_ms)
            .fetch_all(&self.pool)
            .await?)
        }

        async fn alert_hits(&self, alert_id: i64) -> Result<Vec<(i64, i64)>> {
            Ok(sqlx::query_as(
                "SELECT sequence, raised_at_ms FROM alert_hits WHERE alert_id = $1 ORDER BY raised_at_ms",
            )
            .bind(alert_id)
            .fetch_all(&self.pool)
            .await?)
        }

        async fn put_suppression(&self, s: &SuppressionRow) -> Result<i64> {
            Ok(sqlx::query_scalar(
                "INSERT INTO suppressions (rule, scope, value, reason, created_by, created_at_ms, expires_at_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            )
            .bind(&s.rule)
            .bind(&s.scope)
            .bind(&s.value)
            .bind(&s.reason)
            .bind(&s.created_by)
            .bind(s.created_at_ms)
            .bind(s.expires_at_ms)
            .fetch_one(&self.pool)
            .await?)
        }

        async fn suppressions(&self, active_at_ms: Option<i64>) -> Result<Vec<SuppressionRow>> {
            Ok(sqlx::query_as::<_, SuppressionRow>(
                "SELECT id, rule, scope, value, reason, created_by, created_at_ms, expires_at_ms, lifted_at_ms \
                 FROM suppressions WHERE $1 IS NULL OR (lifted_at_ms IS NULL AND expires_at_ms > $1) \
                 ORDER BY id",
            )
            .bind(active_at_ms)
            .fetch_all(&self.pool)
            .await?)
        }

        async fn lift_suppression(&self, id: i64, now_ms: i64) -> Result<bool> {
            let done = sqlx::query(
                "UPDATE suppressions SET lifted_at_ms = $2 WHERE id = $1 AND lifted_at_ms IS NULL",
            )
            .bind(id)
            .bind(now_ms)
            .execute(&self.pool)
            .await?;
            Ok(done.rows_affected() == 1)
        }
    };
}
