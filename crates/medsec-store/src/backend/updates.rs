//! The [`Store`](crate::Store) methods of updates: campaigns, the director's per-device metadata
//! and the one-query device poll, for both backends: `impl_store!` expands this macro inside each
//! backend's `impl Store`.

macro_rules! store_updates {
    ($agg:literal) => {
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
            sqlx::query_as::<_, CampaignRow>(
                "SELECT id, status, state, version, created_by, created_at_ms, updated_at_ms FROM campaigns WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| not_found("campaign", id))
        }

        async fn campaigns(&self) -> Result<Vec<CampaignRow>> {
            Ok(sqlx::query_as::<_, CampaignRow>(
                "SELECT id, status, state, version, created_by, created_at_ms, updated_at_ms FROM campaigns \
                 ORDER BY created_at_ms DESC, id",
            )
            .fetch_all(&self.pool)
            .await?)
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
            let mut device = Device::from_row(&row)?;
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
            Ok(sqlx::query_as::<_, DirectorMetadata>(
                "SELECT device_id, version, assignment, targets, snapshot, timestamp, expires_at_ms, updated_at_ms \
                 FROM director_metadata WHERE device_id = $1",
            )
            .bind(device_id)
            .fetch_optional(&self.pool)
            .await?)
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
    };
}
