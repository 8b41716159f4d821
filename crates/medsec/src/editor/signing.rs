//! Adding signatures to a role's metadata (offline key holders), and rotating root keys under
//! the old and the new root thresholds.

use super::*;

impl Repo {
    /// `repo sign`: adds one signature per key to `role`'s current metadata, without changing it.
    pub fn sign(
        &self,
        role: &str,
        key_files: &[PathBuf],
        passphrase: &Passphrase,
    ) -> Result<(u64, u64)> {
        ensure!(
            !key_files.is_empty(),
            "give the key to sign with: --key FILE"
        );
        let (_, env) = self.read(role)?;
        let (keymap, ids, threshold) = if role == "root" {
            // A new root must be signed by its own keys and by the previous root's keys.
            let root = Root::from_envelope(&env)?;
            let mut ids = root
                .role("root")
                .map(|(i, _)| i.to_vec())
                .unwrap_or_default();
            let mut keymap = root.keys.clone();
            if root.version > 1 {
                let (_, prev_env) = self.read_versioned("root", root.version - 1)?;
                let prev = Root::from_envelope(&prev_env)?;
                ids.extend(
                    prev.role("root")
                        .map(|(i, _)| i.to_vec())
                        .unwrap_or_default(),
                );
                keymap.extend(prev.keys);
            }
            let t = root.role("root").map_or(1, |(_, t)| t);
            (keymap, ids, t)
        } else {
            self.role_keys(role)?
        };
        let mut sigs: Vec<Value> = env
            .signatures
            .iter()
            .map(|s| json!({"keyid": s.keyid, "sig": s.sig}))
            .collect();
        for path in key_files {
            let k = keys::load(path, passphrase)?;
            ensure!(
                ids.contains(&k.keyid),
                "key {} (id {}) may not sign {role:?}",
                path.display(),
                short(&k.keyid)
            );
            ensure!(
                env.signatures.iter().all(|s| s.keyid != k.keyid),
                "{role:?} is already signed by key {}",
                short(&k.keyid)
            );
            let sig = k.key.sign(&env.canonical)?;
            sigs.push(json!({"keyid": k.keyid, "sig": hex::encode(sig)}));
        }
        let signed = env.signed_value()?;
        let version = signed.get("version").and_then(Value::as_u64).unwrap_or(1);
        let bytes = medsec_tuf::sign_raw(signed, sigs);
        let consistent = self.root()?.consistent_snapshot || role == "root";
        self.write(role, version, &bytes, consistent)?;
        let env = Envelope::parse(role, &bytes)?;
        let valid = count_valid(role, &keymap, &ids, &env);
        Ok((valid, threshold))
    }

    /// `repo rotate`: a new root version with keys added to or removed from a top-level role,
    /// signed by the given keys (it needs the old root threshold *and* the new one: sign with
    /// `--key` here, or later with `repo sign --role root`).
    #[expect(clippy::too_many_arguments, reason = "one CLI command's options")]
    pub fn rotate(
        &self,
        role: &str,
        add: &[PathBuf],
        remove: &[String],
        threshold: Option<u64>,
        expiry: Option<time::Duration>,
        key_files: &[PathBuf],
        passphrase: &Passphrase,
    ) -> Result<(u64, u64, u64)> {
        ensure!(
            medsec_tuf::TOP_LEVEL_ROLES.contains(&role),
            "rotate changes top-level roles (root, targets, snapshot, timestamp); {role:?} is not one"
        );
        let old = self.root()?;
        let mut root = old.clone();
        root.version += 1;
        root.expires = expires_in(expiry.unwrap_or_else(|| default_expiry("root")));
        let entry = root
            .roles
            .get_mut(role)
            .ok_or_else(|| anyhow!("root has no role {role:?}"))?;
        for prefix in remove {
            let matching: Vec<KeyId> = entry
                .keyids
                .iter()
                .filter(|k| k.starts_with(prefix.as_str()))
                .cloned()
                .collect();
            ensure!(
                matching.len() == 1,
                "--remove-key {prefix:?} matches {} keys of {role:?}",
                matching.len()
            );
            entry.keyids.retain(|k| !matching.contains(k));
        }
        for p in add {
            let k = keys::load(p, passphrase)?;
            if !entry.keyids.contains(&k.keyid) {
                entry.keyids.push(k.keyid.clone());
            }
            root.keys
                .insert(k.keyid.clone(), Key::from_public(k.key.public_key()));
        }
        if let Some(t) = threshold {
            entry.threshold = t;
        }
        ensure!(
            entry.threshold >= 1 && entry.threshold <= entry.keyids.len() as u64,
            "threshold {} is not between 1 and the {} keys of {role:?}",
            entry.threshold,
            entry.keyids.len()
        );
        let used: BTreeSet<&KeyId> = root.roles.values().flat_map(|r| &r.keyids).collect();
        root.keys.retain(|id, _| used.contains(id));
        let mut signers = Vec::new();
        let old_ids = old
            .role("root")
            .map(|(i, _)| i.to_vec())
            .unwrap_or_default();
        let new_ids = root
            .role("root")
            .map(|(i, _)| i.to_vec())
            .unwrap_or_default();
        if key_files.is_empty() {
            let both: Vec<KeyId> = old_ids.iter().chain(&new_ids).cloned().collect();
            signers = self.signing_keys("root", &both, &[], passphrase)?;
        }
        for p in key_files {
            let k = keys::load(p, passphrase)?;
            ensure!(
                old_ids.contains(&k.keyid) || new_ids.contains(&k.keyid),
                "key {} is neither an old nor a new root key",
                p.display()
            );
            signers.push(k);
        }
        self.sign_and_write("root", &root, root.version, &signers, true)?;
        let (_, env) = self.read("root")?;
        let old_valid = count_valid("root", &old.keys, &old_ids, &env);
        let new_valid = count_valid("root", &root.keys, &new_ids, &env);
        Ok((root.version, old_valid, new_valid))
    }
}
