//! Auditing a repository (every role's signatures, expiry, versions, and each artifact's
//! length and hashes), publishing it as static files, and a summary of its state.

use super::*;

impl Repo {
    /// `repo verify`: checks the repository as a client would, from version 1 of root, at `now`.
    pub fn verify(&self, now: OffsetDateTime) -> Result<Report> {
        let mut report = Report::default();
        let (first, _) = self.read_versioned("root", 1)?;
        let mut trusted = match TrustedSet::new(&first, now) {
            Ok(t) => t,
            Err(e) => {
                report.problems.push(format!("1.root.json: {e}"));
                return Ok(report);
            }
        };
        let latest = self.root()?.version;
        for v in 2..=latest {
            match self.read_versioned("root", v) {
                Ok((bytes, _)) => {
                    if let Err(e) = trusted.update_root(&bytes) {
                        report.problems.push(format!("{v}.root.json: {e}"));
                        return Ok(report);
                    }
                }
                Err(e) => {
                    report.problems.push(format!("{e}"));
                    return Ok(report);
                }
            }
        }
        report.ok.push(format!("root chain 1..{latest} verifies (each version signed by the previous and its own threshold)"));
        type Step<'a> = &'a dyn Fn(&mut TrustedSet) -> Result<()>;
        let steps: [(&str, Step<'_>); 2] = [
            ("timestamp", &|t| {
                t.update_timestamp(&self.read("timestamp")?.0)?;
                Ok(())
            }),
            ("snapshot", &|t| {
                t.update_snapshot(&self.read("snapshot")?.0, false)?;
                Ok(())
            }),
        ];
        for (name, step) in steps {
            match step(&mut trusted) {
                Ok(()) => report.ok.push(format!("{name} verifies")),
                Err(e) => {
                    report.problems.push(format!("{name}: {e:#}"));
                    return Ok(report);
                }
            }
        }
        // A role warns when less than a quarter of its default lifetime is left (at most a
        // day): a fresh timestamp (1 day) warns only after 18 hours, not from the start.
        let soon_for = |role: &str| {
            let quarter: time::Duration = super::default_expiry(role) / 4;
            now + quarter.min(time::Duration::days(1))
        };
        for (role, parent) in self.targets_roles()? {
            let bytes = self.read(&role)?.0;
            match trusted.update_delegated_targets(&bytes, &role, &parent) {
                Ok(t) => {
                    if t.expires.is_expired(soon_for(&role)) {
                        report
                            .warnings
                            .push(format!("{role} expires soon ({})", t.expires));
                    }
                    let t = t.clone();
                    let mut bad = 0;
                    for (path, info) in &t.targets {
                        report
                            .targets
                            .entry(path.clone())
                            .or_insert_with(|| info.clone());
                        if let Err(e) = check_artifact(&self.targets_dir().join(path), info) {
                            report
                                .problems
                                .push(format!("target {path:?} ({role}): {e}"));
                            bad += 1;
                        }
                    }
                    if bad == 0 {
                        report.ok.push(format!(
                            "{role} verifies ({} targets, all artifacts match)",
                            t.targets.len()
                        ));
                    }
                }
                Err(e) => report.problems.push(format!("{role}: {e}")),
            }
        }
        for role in ["timestamp", "snapshot"] {
            let expires = if role == "timestamp" {
                self.timestamp_meta()?.expires
            } else {
                self.snapshot()?.expires
            };
            if expires.is_expired(soon_for(role)) {
                report.warnings.push(format!(
                    "{role} expires soon ({expires}): run `medsec repo timestamp`"
                ));
            }
        }
        Ok(report)
    }

    /// `repo publish`: verifies, then writes `OUT/metadata/` and `OUT/targets/` (artifacts under
    /// `HASH.NAME` for consistent snapshots, and under their plain names otherwise).
    pub fn publish(&self, out: &Path) -> Result<(usize, usize)> {
        let report = self.verify(OffsetDateTime::now_utc())?;
        ensure!(
            report.problems.is_empty(),
            "the repository does not verify; nothing was published:\n  {}",
            report.problems.join("\n  ")
        );
        let meta_out = out.join("metadata");
        let targets_out = out.join("targets");
        std::fs::create_dir_all(&meta_out)?;
        std::fs::create_dir_all(&targets_out)?;
        let mut meta_count = 0;
        for entry in std::fs::read_dir(self.meta_dir())? {
            let entry = entry?;
            let temporary = entry.file_name().to_string_lossy().starts_with('.');
            if entry.file_type()?.is_file() && !temporary {
                copy_atomic(&entry.path(), &meta_out.join(entry.file_name()))?;
                meta_count += 1;
            }
        }
        let consistent = self.root()?.consistent_snapshot;
        let mut target_count = 0;
        for (role, _) in self.targets_roles()? {
            for (path, info) in self.targets(&role)?.targets {
                let src = self.targets_dir().join(&path);
                let name = if consistent {
                    let hash = info.hashes.get("sha256").cloned().unwrap_or_default();
                    match path.rsplit_once('/') {
                        Some((d, b)) => format!("{d}/{hash}.{b}"),
                        None => format!("{hash}.{path}"),
                    }
                } else {
                    path.clone()
                };
                let dest = targets_out.join(&name);
                if let Some(parent) = dest.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                if !dest.exists() {
                    copy_atomic(&src, &dest)?;
                }
                target_count += 1;
            }
        }
        Ok((meta_count, target_count))
    }

    /// One line per role: version, expiry and signature status.
    pub fn status(&self) -> Result<Vec<String>> {
        let mut lines = Vec::new();
        let mut roles: Vec<String> = vec!["root".into(), "timestamp".into(), "snapshot".into()];
        roles.extend(self.targets_roles()?.into_iter().map(|(r, _)| r));
        for role in roles {
            let (_, env) = self.read(&role)?;
            let (keymap, ids, threshold) = self.role_keys(&role)?;
            let valid = count_valid(&role, &keymap, &ids, &env);
            let signed = env.signed_value()?;
            let version = signed.get("version").and_then(Value::as_u64).unwrap_or(0);
            let expires = signed.get("expires").and_then(Value::as_str).unwrap_or("?");
            lines.push(format!(
                "{role:<12} v{version:<4} expires {expires}  signatures {valid}/{threshold}{}",
                if valid >= threshold {
                    ""
                } else {
                    "  (below threshold)"
                }
            ));
        }
        Ok(lines)
    }
}
