//! The [`Store`](crate::Store) methods of credentials: device keys, enrolment tokens and operator
//! tokens, for both backends: `impl_store!` expands this macro inside each backend's `impl Store`.

macro_rules! store_credentials {
    () => {
        async fn add_device_key(&self, key: &DeviceKey) -> Result<()> {
            let mut tx = self.pool.begin().await?;
            sqlx::query(
                "INSERT INTO device_keys (spki_sha256, device_id, serial, not_after_ms, created_at_ms) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&key.spki_sha256)
            .bind(&key.device_id)
            .bind(&key.serial)
            .bind(key.not_after_ms)
            .bind(key.created_at_ms)
            .execute(&mut *tx)
            .await
            .map_err(conflict("certified key", hex_key(&key.spki_sha256)))?;
            // The device's newest certificate expiry, read by the fleet summary.
            sqlx::query(
                "UPDATE devices SET certificate_not_after_ms = $2 WHERE id = $1 \
                 AND (certificate_not_after_ms IS NULL OR certificate_not_after_ms < $2)",
            )
            .bind(&key.device_id)
            .bind(key.not_after_ms)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
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
                 WHERE token_sha256 = $1 AND used_at_ms IS NULL AND revoked_at_ms IS NULL \
                 AND expires_at_ms > $2 RETURNING device_id",
            )
            .bind(token_sha256)
            .bind(now_ms)
            .fetch_optional(&self.pool)
            .await?;
            if let Some(row) = used {
                return Ok(row.try_get("device_id")?);
            }
            // Say why, without changing anything.
            let row = sqlx::query(
                "SELECT used_at_ms, revoked_at_ms FROM enrolment_tokens WHERE token_sha256 = $1",
            )
            .bind(token_sha256)
            .fetch_optional(&self.pool)
            .await?;
            let reason = match row {
                None => "unknown token",
                Some(r) if r.try_get::<Option<i64>, _>("used_at_ms")?.is_some() => "token already used",
                Some(r) if r.try_get::<Option<i64>, _>("revoked_at_ms")?.is_some() => "token revoked",
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
            let row = sqlx::query(&format!(
                "SELECT {OPERATOR_TOKEN_COLUMNS} FROM operator_tokens WHERE token_sha256 = $1"
            ))
            .bind(token_sha256)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| not_found("operator token", "(hash)"))?;
            operator_token_from_row(&row)
        }

        async fn operator_tokens(&self) -> Result<Vec<OperatorToken>> {
            sqlx::query(&format!(
                "SELECT {OPERATOR_TOKEN_COLUMNS} FROM operator_tokens ORDER BY created_at_ms, token_sha256"
            ))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(operator_token_from_row)
            .collect()
        }

        async fn revoke_operator_token(&self, token_sha256: &[u8], now_ms: i64) -> Result<OperatorToken> {
            let row = sqlx::query(&format!(
                "UPDATE operator_tokens SET revoked_at_ms = $2 \
                 WHERE token_sha256 = $1 AND revoked_at_ms IS NULL RETURNING {OPERATOR_TOKEN_COLUMNS}"
            ))
            .bind(token_sha256)
            .bind(now_ms)
            .fetch_optional(&self.pool)
            .await?;
            match row {
                Some(row) => operator_token_from_row(&row),
                None => {
                    // Say why, without changing anything: unknown, or revoked already.
                    self.operator_token(token_sha256).await?;
                    Err(Error::WrongState {
                        what: "operator token",
                        key: crate::token_id(token_sha256),
                        reason: "is revoked already",
                    })
                }
            }
        }

        async fn put_console_session(&self, row: &ConsoleSession) -> Result<()> {
            let mut tx = self.pool.begin().await?;
            sqlx::query("DELETE FROM console_sessions WHERE expires_at_ms <= $1")
                .bind(row.created_at_ms)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO console_sessions (id_sha256, kind, principal, display_name, roles, csrf, \
                 data, created_at_ms, last_seen_ms, expires_at_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(&row.id_sha256)
            .bind(&row.kind)
            .bind(&row.principal)
            .bind(&row.display_name)
            .bind(row.roles.join(","))
            .bind(&row.csrf)
            .bind(&row.data)
            .bind(row.created_at_ms)
            .bind(row.last_seen_ms)
            .bind(row.expires_at_ms)
            .execute(&mut *tx)
            .await
            .map_err(conflict("console session", "(hash)".to_owned()))?;
            tx.commit().await?;
            Ok(())
        }

        async fn console_session(&self, id_sha256: &[u8], kind: &str, now_ms: i64) -> Result<ConsoleSession> {
            let row = sqlx::query(&format!(
                "SELECT {CONSOLE_SESSION_COLUMNS} FROM console_sessions \
                 WHERE id_sha256 = $1 AND kind = $2 AND expires_at_ms > $3"
            ))
            .bind(id_sha256)
            .bind(kind)
            .bind(now_ms)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| not_found("console session", "(hash)"))?;
            console_session_from_row(&row)
        }

        async fn take_console_session(&self, id_sha256: &[u8], kind: &str, now_ms: i64) -> Result<ConsoleSession> {
            // One statement: two concurrent uses of a link cannot both succeed.
            let row = sqlx::query(&format!(
                "DELETE FROM console_sessions \
                 WHERE id_sha256 = $1 AND kind = $2 AND expires_at_ms > $3 \
                 RETURNING {CONSOLE_SESSION_COLUMNS}"
            ))
            .bind(id_sha256)
            .bind(kind)
            .bind(now_ms)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| not_found("console session", "(hash)"))?;
            console_session_from_row(&row)
        }

        async fn touch_console_session(&self, id_sha256: &[u8], now_ms: i64) -> Result<()> {
            sqlx::query("UPDATE console_sessions SET last_seen_ms = $2 WHERE id_sha256 = $1")
                .bind(id_sha256)
                .bind(now_ms)
                .execute(&self.pool)
                .await?;
            Ok(())
        }

        async fn end_console_session(&self, id_sha256: &[u8]) -> Result<()> {
            sqlx::query("DELETE FROM console_sessions WHERE id_sha256 = $1")
                .bind(id_sha256)
                .execute(&self.pool)
                .await?;
            Ok(())
        }

        async fn enrolment_token(&self, token_sha256: &[u8]) -> Result<EnrolmentToken> {
            sqlx::query_as::<_, EnrolmentToken>(&format!(
                "SELECT {ENROLMENT_TOKEN_COLUMNS} FROM enrolment_tokens WHERE token_sha256 = $1"
            ))
            .bind(token_sha256)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| not_found("enrolment token", "(by hash)"))
        }

        async fn enrolment_tokens(&self, device_id: Option<&str>) -> Result<Vec<EnrolmentToken>> {
            Ok(sqlx::query_as::<_, EnrolmentToken>(&format!(
                "SELECT {ENROLMENT_TOKEN_COLUMNS} FROM enrolment_tokens \
                 WHERE $1 IS NULL OR device_id = $1 ORDER BY created_at_ms, token_sha256"
            ))
            .bind(device_id)
            .fetch_all(&self.pool)
            .await?)
        }

        async fn revoke_enrolment_token(&self, token_sha256: &[u8], now_ms: i64) -> Result<EnrolmentToken> {
            let row = sqlx::query_as::<_, EnrolmentToken>(&format!(
                "UPDATE enrolment_tokens SET revoked_at_ms = $2 \
                 WHERE token_sha256 = $1 AND revoked_at_ms IS NULL AND used_at_ms IS NULL \
                 RETURNING {ENROLMENT_TOKEN_COLUMNS}"
            ))
            .bind(token_sha256)
            .bind(now_ms)
            .fetch_optional(&self.pool)
            .await?;
            match row {
                Some(token) => Ok(token),
                None => {
                    let exists = sqlx::query("SELECT 1 FROM enrolment_tokens WHERE token_sha256 = $1")
                        .bind(token_sha256)
                        .fetch_optional(&self.pool)
                        .await?;
                    if exists.is_none() {
                        return Err(not_found("enrolment token", &crate::token_id(token_sha256)));
                    }
                    Err(Error::WrongState {
                        what: "enrolment token",
                        key: crate::token_id(token_sha256),
                        reason: "is used or revoked already",
                    })
                }
            }
        }
    };
}
