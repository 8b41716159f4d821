//! Delegating target paths to a new role: by path pattern, or as TAP 15 succinct hash bins.

use super::*;

impl Repo {
    /// `repo delegate` with path patterns: creates role `name` with new keys (or the public keys
    /// of the given key files) and lists it in `from`'s delegations.
    #[expect(clippy::too_many_arguments, reason = "one CLI command's options")]
    pub fn delegate(
        &self,
        from: &str,
        name: &str,
        paths: Vec<String>,
        terminating: bool,
        threshold: u64,
        scheme: Scheme,
        key_count: u64,
        plaintext_keys: bool,
        key_files: &[PathBuf],
        passphrase: &Passphrase,
    ) -> Result<Vec<KeyId>> {
        ensure!(!paths.is_empty(), "give at least one --path pattern");
        ensure!(
            !medsec_tuf::TOP_LEVEL_ROLES.contains(&name),
            "{name:?} is a top-level role name"
        );
        let mut parent = self.targets(from)?;
        let mut delegations = parent.delegations.take().unwrap_or(Delegations {
            keys: BTreeMap::new(),
            roles: Some(vec![]),
            succinct_roles: None,
            unrecognized: BTreeMap::new(),
        });
        let roles = delegations.roles.as_mut().ok_or_else(|| {
            anyhow!("{from:?} delegates to hash bins; it cannot also delegate by path")
        })?;
        ensure!(
            roles.iter().all(|r| r.name != name),
            "{from:?} already delegates {name:?}"
        );
        let pass = passphrase.protection(plaintext_keys)?;
        let mut new_keys = Vec::new();
        for n in 1..=key_count {
            let path = self.keys_dir().join(format!("{}-{n}.key", quote(name)));
            new_keys.push(keys::generate(&path, scheme, pass.as_deref())?);
        }
        ensure!(
            threshold >= 1 && threshold <= new_keys.len() as u64,
            "threshold must be between 1 and the number of keys"
        );
        let ids: Vec<KeyId> = new_keys.iter().map(|k| k.keyid.clone()).collect();
        for k in &new_keys {
            delegations
                .keys
                .insert(k.keyid.clone(), Key::from_public(k.key.public_key()));
        }
        if let Some(roles) = delegations.roles.as_mut() {
            roles.push(DelegatedRole {
                name: name.to_owned(),
                keyids: ids.clone(),
                threshold,
                terminating,
                paths: Some(paths),
                path_hash_prefixes: None,
                unrecognized: BTreeMap::new(),
            });
        }
        parent.delegations = Some(delegations);
        let consistent = self.root()?.consistent_snapshot;
        let child = Targets::new(1, expires_in(default_expiry(name)));
        self.sign_and_write(name, &child, 1, &new_keys, consistent)?;
        self.resign_targets(from, parent, None, key_files, passphrase)?;
        Ok(ids)
    }

    /// `repo delegate --hash-bins`: splits all of `targets` over 2^bits bins (TAP 15), moving the
    /// targets it lists now into their bins.
    pub fn delegate_hash_bins(
        &self,
        bits: u32,
        prefix: &str,
        scheme: Scheme,
        plaintext_keys: bool,
        key_files: &[PathBuf],
        passphrase: &Passphrase,
    ) -> Result<u64> {
        ensure!((1..=16).contains(&bits), "--hash-bins must be 1 to 16 bits");
        let mut top = self.targets("targets")?;
        ensure!(
            top.delegations.is_none(),
            "targets already delegates; hash bins need a targets role without delegations"
        );
        let pass = passphrase.protection(plaintext_keys)?;
        let key = keys::generate(
            &self.keys_dir().join(format!("{}-1.key", quote(prefix))),
            scheme,
            pass.as_deref(),
        )?;
        let bins = SuccinctRoles {
            keyids: vec![key.keyid.clone()],
            threshold: 1,
            bit_length: bits,
            name_prefix: prefix.to_owned(),
            unrecognized: BTreeMap::new(),
        };
        let mut per_bin: BTreeMap<String, Targets> = BTreeMap::new();
        for n in 0..bins.bin_count() {
            per_bin.insert(
                bins.bin_name(n),
                Targets::new(1, expires_in(default_expiry("bins"))),
            );
        }
        for (path, info) in std::mem::take(&mut top.targets) {
            if let Some(bin) = per_bin.get_mut(&bins.role_for_target(&path)) {
                bin.targets.insert(path, info);
            }
        }
        let consistent = self.root()?.consistent_snapshot;
        let bar = progress::bar(bins.bin_count(), "signing hash bins");
        for (name, bin) in &per_bin {
            self.sign_and_write(name, bin, 1, std::slice::from_ref(&key), consistent)?;
            bar.inc(1);
        }
        bar.finish_and_clear();
        top.delegations = Some(Delegations {
            keys: BTreeMap::from([(key.keyid.clone(), Key::from_public(key.key.public_key()))]),
            roles: None,
            succinct_roles: Some(bins.clone()),
            unrecognized: BTreeMap::new(),
        });
        self.resign_targets("targets", top, None, key_files, passphrase)?;
        Ok(bins.bin_count())
    }
}
