//! `medsec repo`: the release engineer's commands over a signed TUF repository (the editing
//! itself is `crate::editor`).

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};
use medsec_crypto::Scheme;

use super::risk;
use crate::editor as repo;
use crate::keys;

#[derive(Args)]
pub struct KeyArgs {
    /// Private key file to sign with (repeat for several). Default: the repository's own keys
    /// for the role, from DIR/keys/.
    #[arg(long = "key")]
    keys: Vec<PathBuf>,
    /// File holding the key passphrase (else MEDSEC_PASSPHRASE, else a prompt).
    #[arg(long)]
    passphrase_file: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum RepoCommand {
    /// Create a repository with new keys for root, targets, snapshot and timestamp.
    Init {
        /// Repository directory.
        dir: PathBuf,
        /// Scheme of root keys: hybrid (ML-DSA-65 + Ed25519), ed25519 or ecdsa.
        #[arg(long, default_value = "hybrid", value_parser = keys::parse_scheme)]
        root_scheme: Scheme,
        /// Scheme of targets keys.
        #[arg(long, default_value = "hybrid", value_parser = keys::parse_scheme)]
        targets_scheme: Scheme,
        /// Scheme of the online snapshot and timestamp keys.
        #[arg(long, default_value = "ed25519", value_parser = keys::parse_scheme)]
        online_scheme: Scheme,
        /// Number of root keys.
        #[arg(long, default_value_t = 1)]
        root_keys: u64,
        /// Root signatures required.
        #[arg(long, default_value_t = 1)]
        root_threshold: u64,
        /// Number of targets keys.
        #[arg(long, default_value_t = 1)]
        targets_keys: u64,
        /// Targets signatures required.
        #[arg(long, default_value_t = 1)]
        targets_threshold: u64,
        /// Publish without versioned file names (not recommended).
        #[arg(long)]
        no_consistent_snapshot: bool,
        /// Store the new private keys unencrypted.
        #[arg(long)]
        plaintext_keys: bool,
        /// File holding the passphrase for the new keys.
        #[arg(long)]
        passphrase_file: Option<PathBuf>,
    },
    /// Add a firmware image as a target and sign the role that lists it.
    AddTarget {
        /// Repository directory.
        dir: PathBuf,
        /// The image file.
        file: PathBuf,
        /// Target path (default: the file name).
        #[arg(long)]
        path: Option<String>,
        /// Role to list it in (default: targets, or its hash bin).
        #[arg(long)]
        role: Option<String>,
        /// Hardware id the image is built for (repeat for several).
        #[arg(long = "hardware-id", required = true)]
        hardware_ids: Vec<String>,
        /// Semantic version of the firmware.
        #[arg(long = "version")]
        fw_version: String,
        /// Anti-rollback release counter.
        #[arg(long)]
        release_counter: u64,
        /// SHA-256 of the release's SBOM (prefer --sbom, which also checks it).
        #[arg(long, conflicts_with = "sbom")]
        sbom_sha256: Option<String>,
        /// The release's SBOM (CycloneDX or SPDX JSON): validated, and its SHA-256, format and
        /// component count go into the target's signed custom metadata.
        #[arg(long)]
        sbom: Option<PathBuf>,
        /// Lifetime of the new role metadata (e.g. 90d).
        #[arg(long, value_parser = repo::parse_expiry)]
        expires: Option<time::Duration>,
        #[command(flatten)]
        keys: KeyArgs,
    },
    /// Delegate target paths to a new role, or split targets into hash bins.
    Delegate {
        /// Repository directory.
        dir: PathBuf,
        /// Name of the new role (path delegation).
        #[arg(long, required_unless_present = "hash_bins")]
        name: Option<String>,
        /// Role that delegates.
        #[arg(long, default_value = "targets")]
        from: String,
        /// Path pattern the role is trusted for (repeat for several).
        #[arg(long = "path")]
        paths: Vec<String>,
        /// Stop the search at this role when its paths match.
        #[arg(long)]
        terminating: bool,
        /// Keys to create for the role.
        #[arg(long, default_value_t = 1)]
        key_count: u64,
        /// Signatures required.
        #[arg(long, default_value_t = 1)]
        threshold: u64,
        /// Scheme of the new keys.
        #[arg(long, default_value = "hybrid", value_parser = keys::parse_scheme)]
        scheme: Scheme,
        /// Split all targets into 2^BITS hash bins (TAP 15) instead.
        #[arg(long, value_name = "BITS", conflicts_with_all = ["name", "paths"])]
        hash_bins: Option<u32>,
        /// Name prefix of the bins.
        #[arg(long, default_value = "bins")]
        bin_prefix: String,
        /// Store the new private keys unencrypted.
        #[arg(long)]
        plaintext_keys: bool,
        #[command(flatten)]
        keys: KeyArgs,
    },
    /// Add signatures to a role's current metadata, one key holder at a time.
    Sign {
        /// Repository directory.
        dir: PathBuf,
        /// Role to sign.
        #[arg(long)]
        role: String,
        #[command(flatten)]
        keys: KeyArgs,
    },
    /// Snapshot changed targets roles and refresh the timestamp (online keys).
    Timestamp {
        /// Repository directory.
        dir: PathBuf,
        /// Lifetime of the timestamp (e.g. 1d, 6h).
        #[arg(long, value_parser = repo::parse_expiry)]
        expires: Option<time::Duration>,
        #[command(flatten)]
        keys: KeyArgs,
    },
    /// Write a new root that changes a top-level role's keys or threshold.
    Rotate {
        /// Repository directory.
        dir: PathBuf,
        /// Role whose keys change.
        #[arg(long, default_value = "root")]
        role: String,
        /// Private key file whose public key joins the role (repeat).
        #[arg(long = "add-key")]
        add: Vec<PathBuf>,
        /// Key id (or unique prefix) leaving the role (repeat).
        #[arg(long = "remove-key")]
        remove: Vec<String>,
        /// New threshold.
        #[arg(long)]
        threshold: Option<u64>,
        /// Lifetime of the new root.
        #[arg(long, value_parser = repo::parse_expiry)]
        expires: Option<time::Duration>,
        #[command(flatten)]
        keys: KeyArgs,
    },
    /// Generate a key file (for a key holder who keeps it offline).
    Keygen {
        /// Where to write the private key.
        out: PathBuf,
        /// Scheme.
        #[arg(long, default_value = "hybrid", value_parser = keys::parse_scheme)]
        scheme: Scheme,
        /// Store it unencrypted.
        #[arg(long)]
        plaintext_keys: bool,
        /// File holding the passphrase.
        #[arg(long)]
        passphrase_file: Option<PathBuf>,
    },
    /// Check the whole repository as a client would, and say what is wrong.
    Verify {
        /// Repository directory.
        dir: PathBuf,
    },
    /// Show each role's version, expiry and signatures.
    Status {
        /// Repository directory.
        dir: PathBuf,
    },
    /// Verify, then write a directory any static web server can serve.
    Publish {
        /// Repository directory.
        dir: PathBuf,
        /// Output directory (gets metadata/ and targets/).
        #[arg(long)]
        out: PathBuf,
    },
}

/// Runs one `medsec repo` subcommand.
pub fn run(cmd: RepoCommand) -> Result<()> {
    match cmd {
        RepoCommand::Init {
            dir,
            root_scheme,
            targets_scheme,
            online_scheme,
            root_keys,
            root_threshold,
            targets_keys,
            targets_threshold,
            no_consistent_snapshot,
            plaintext_keys,
            passphrase_file,
        } => {
            let opts = repo::InitOptions {
                root_scheme,
                targets_scheme,
                online_scheme,
                root_keys,
                root_threshold,
                targets_keys,
                targets_threshold,
                consistent_snapshot: !no_consistent_snapshot,
                plaintext_keys,
            };
            let r = repo::Repo::init(&dir, &opts, &keys::Passphrase::new(passphrase_file)?)?;
            println!("created repository {}", dir.display());
            println!(
                "  root: {root_keys} {root_scheme} key(s), threshold {root_threshold}; targets: \
                 {targets_keys} {targets_scheme} key(s), threshold {targets_threshold}; \
                 snapshot/timestamp: {online_scheme}"
            );
            println!(
                "  private keys in {} — move offline keys off this machine",
                r.keys_dir().display()
            );
            println!(
                "  clients trust {}",
                r.meta_dir().join("1.root.json").display()
            );
        }
        RepoCommand::AddTarget {
            dir,
            file,
            path,
            role,
            hardware_ids,
            fw_version,
            release_counter,
            sbom_sha256,
            sbom,
            expires,
            keys: k,
        } => {
            let r = repo::Repo::open(&dir)?;
            let sbom = match sbom {
                Some(f) => {
                    let (bytes, parsed) = risk::read_sbom(&f)?;
                    Some(repo::SbomRef {
                        sha256: hex::encode(medsec_crypto::digest::sha256(&bytes)),
                        format: Some(parsed.format),
                        components: Some(parsed.components.len()),
                    })
                }
                None => sbom_sha256.map(|sha256| repo::SbomRef {
                    sha256,
                    format: None,
                    components: None,
                }),
            };
            let path = match path {
                Some(p) => p,
                None => file
                    .file_name()
                    .and_then(|n| n.to_str())
                    .ok_or_else(|| anyhow::anyhow!("give --path: the file name is not UTF-8"))?
                    .to_owned(),
            };
            let custom = repo::TargetCustom {
                hardware_ids,
                version: fw_version,
                release_counter,
                sbom,
            };
            let (role, info) = r.add_target(
                &file,
                &path,
                role.as_deref(),
                &custom,
                expires,
                &k.keys,
                &keys::Passphrase::new(k.passphrase_file)?,
            )?;
            println!(
                "added {path} ({} bytes, sha256 {}) to role {role}",
                info.length,
                info.hashes.get("sha256").map(String::as_str).unwrap_or("?")
            );
            println!(
                "next: `medsec repo timestamp {}` to publish it in a new snapshot",
                dir.display()
            );
        }
        RepoCommand::Delegate {
            dir,
            name,
            from,
            paths,
            terminating,
            key_count,
            threshold,
            scheme,
            hash_bins,
            bin_prefix,
            plaintext_keys,
            keys: k,
        } => {
            let r = repo::Repo::open(&dir)?;
            let pass = keys::Passphrase::new(k.passphrase_file)?;
            if let Some(bits) = hash_bins {
                let n = r.delegate_hash_bins(
                    bits,
                    &bin_prefix,
                    scheme,
                    plaintext_keys,
                    &k.keys,
                    &pass,
                )?;
                println!("targets now delegates to {n} hash bins named {bin_prefix}-*");
            } else {
                let name = name.unwrap_or_default();
                let ids = r.delegate(
                    &from,
                    &name,
                    paths,
                    terminating,
                    threshold,
                    scheme,
                    key_count,
                    plaintext_keys,
                    &k.keys,
                    &pass,
                )?;
                println!(
                    "{from} delegates to {name} ({} key(s), threshold {threshold}{})",
                    ids.len(),
                    if terminating { ", terminating" } else { "" }
                );
            }
        }
        RepoCommand::Sign { dir, role, keys: k } => {
            let r = repo::Repo::open(&dir)?;
            let (valid, threshold) =
                r.sign(&role, &k.keys, &keys::Passphrase::new(k.passphrase_file)?)?;
            println!(
                "{role}: {valid} of {threshold} required signature(s){}",
                if valid >= threshold {
                    " — threshold met"
                } else {
                    ""
                }
            );
        }
        RepoCommand::Timestamp {
            dir,
            expires,
            keys: k,
        } => {
            let r = repo::Repo::open(&dir)?;
            let (s, t) =
                r.timestamp(expires, &k.keys, &keys::Passphrase::new(k.passphrase_file)?)?;
            println!("snapshot v{s}, timestamp v{t}");
        }
        RepoCommand::Rotate {
            dir,
            role,
            add,
            remove,
            threshold,
            expires,
            keys: k,
        } => {
            let r = repo::Repo::open(&dir)?;
            let (v, old, new) = r.rotate(
                &role,
                &add,
                &remove,
                threshold,
                expires,
                &k.keys,
                &keys::Passphrase::new(k.passphrase_file)?,
            )?;
            println!(
                "root v{v} written: {old} signature(s) from the old root keys, {new} from the new ones"
            );
            println!(
                "collect the rest with `medsec repo sign {} --role root --key FILE`",
                dir.display()
            );
        }
        RepoCommand::Keygen {
            out,
            scheme,
            plaintext_keys,
            passphrase_file,
        } => {
            let pass = keys::Passphrase::new(passphrase_file)?.protection(plaintext_keys)?;
            let k = keys::generate(&out, scheme, pass.as_deref())?;
            println!("{} key {} written to {}", scheme, k.keyid, out.display());
        }
        RepoCommand::Verify { dir } => {
            let r = repo::Repo::open(&dir)?;
            let report = r.verify(time::OffsetDateTime::now_utc())?;
            for line in &report.ok {
                println!("ok       {line}");
            }
            for line in &report.warnings {
                println!("warning  {line}");
            }
            for line in &report.problems {
                println!("PROBLEM  {line}");
            }
            anyhow::ensure!(
                report.problems.is_empty(),
                "{} problem(s) found in {}",
                report.problems.len(),
                dir.display()
            );
            println!("repository verifies");
        }
        RepoCommand::Status { dir } => {
            for line in repo::Repo::open(&dir)?.status()? {
                println!("{line}");
            }
        }
        RepoCommand::Publish { dir, out } => {
            let (m, t) = repo::Repo::open(&dir)?.publish(&out)?;
            println!(
                "published {m} metadata file(s) and {t} target(s) to {}",
                out.display()
            );
        }
    }
    Ok(())
}
