//! The [`Store`](crate::Store) methods of the audit log: entries with their signed heads, appended
//! in one transaction, and read back, for both backends: `impl_store!` expands this macro inside
//! each backend's `impl Store`.

macro_rules! store_audit {
    () => {
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
            Ok(sqlx::query_as::<_, AuditRow>("SELECT seq, entry FROM audit_entries WHERE seq >= $1 ORDER BY seq LIMIT $2")
                .bind(from)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?)
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
            Ok(sqlx::query_as::<_, AuditRow>(
                "SELECT seq, entry FROM audit_entries WHERE entry LIKE $1 ESCAPE '\\' ORDER BY seq DESC LIMIT $2",
            )
            .bind(pattern)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
                .await?)
        }

        async fn export_cursor(&self, sink: &str, source: &str) -> Result<Option<i64>> {
            Ok(sqlx::query_scalar("SELECT position FROM export_cursors WHERE sink = $1 AND source = $2")
                .bind(sink)
                .bind(source)
                .fetch_optional(&self.pool)
                .await?)
        }

        async fn set_export_cursor(&self, sink: &str, source: &str, position: i64, now_ms: i64) -> Result<()> {
            sqlx::query(
                "INSERT INTO export_cursors (sink, source, position, updated_at_ms) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (sink, source) DO UPDATE SET position = $3, updated_at_ms = $4",
            )
            .bind(sink)
            .bind(source)
            .bind(position)
            .bind(now_ms)
            .execute(&self.pool)
            .await?;
            Ok(())
        }

        async fn add_export_dead_letter(&self, d: &DeadLetter) -> Result<()> {
            sqlx::query(
                "INSERT INTO export_dead_letters (sink, event_id, event, error, attempts, at_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&d.sink)
            .bind(&d.event_id)
            .bind(&d.event)
            .bind(&d.error)
            .bind(d.attempts)
            .bind(d.at_ms)
            .execute(&self.pool)
            .await?;
            Ok(())
        }

        async fn export_dead_letters(&self, sink: Option<&str>, limit: u32) -> Result<Vec<DeadLetter>> {
            Ok(sqlx::query_as::<_, DeadLetter>(
                "SELECT id, sink, event_id, event, error, attempts, at_ms FROM export_dead_letters \
                 WHERE $1 IS NULL OR sink = $1 ORDER BY id LIMIT $2",
            )
            .bind(sink)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?)
        }

        async fn audit_latest_head(&self) -> Result<Option<HeadRow>> {
            Ok(sqlx::query_as::<_, HeadRow>("SELECT tree_size, head FROM audit_heads ORDER BY tree_size DESC LIMIT 1")
                .fetch_optional(&self.pool)
                .await?)
        }

        async fn audit_heads(&self) -> Result<Vec<HeadRow>> {
            Ok(sqlx::query_as::<_, HeadRow>("SELECT tree_size, head FROM audit_heads ORDER BY tree_size")
                .fetch_all(&self.pool)
                .await?)
        }
    };
}
