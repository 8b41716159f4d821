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
            sqlx::query_as::<_, IncidentRow>(
                "SELECT id, version, phase, opened_at_ms, updated_at_ms, body FROM incidents WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| not_found("incident", id))
        }

        async fn incidents(&self, open_only: bool, limit: u32) -> Result<Vec<IncidentRow>> {
            Ok(sqlx::query_as::<_, IncidentRow>(
                "SELECT id, version, phase, opened_at_ms, updated_at_ms, body FROM incidents \
                 WHERE ($1 = FALSE OR phase <> 'closed') ORDER BY updated_at_ms DESC, id LIMIT $2",
            )
            .bind(open_only)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?)
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



    };
}
