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
