//! The [`Store`](crate::Store) methods of credentials: device keys, enrolment tokens and operator
//! tokens, for both backends: `impl_store!` expands this macro inside each backend's `impl Store`.

macro_rules! store_credentials {
    () => {
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
            Ok(sqlx::query_as::<_, DeviceKey>(
                "SELECT spki_sha256, device_id, serial, not_after_ms, created_at_ms FROM device_keys \
                 WHERE device_id = $1 ORDER BY created_at_ms, serial",
            )
            .bind(device_id)
            .fetch_all(&self.pool)
                .await?)
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
    };
}
