//! `medsec demo`: the update tooling end to end on embedded defaults, with nothing else
//! installed. Later work grows this into the full fleet demo.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, Result, ensure};
use medsec_crypto::Scheme;
use medsec_tuf_client::{Updater, UpdaterConfig};

use crate::editor::{InitOptions, Repo, TargetCustom};
use crate::keys::Passphrase;

fn step(n: u32, text: &str) {
    println!("\n[{n}/6] {text}");
}

/// Writes a deterministic pseudo-random "firmware image" (xorshift; content does not matter,
/// only that it is large enough to show streaming and hashing).
fn write_image(path: &Path, mib: u64) -> Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut block = vec![0u8; 1 << 20];
    for _ in 0..mib {
        for chunk in block.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.copy_from_slice(&state.to_le_bytes());
        }
        f.write_all(&block)?;
    }
    f.flush()?;
    Ok(())
}

/// The demo's directory: `dir`, created if needed, or a temporary one (removed when the guard
/// returned with it is dropped).
pub fn work_dir(dir: Option<PathBuf>) -> Result<(Option<tempfile::TempDir>, PathBuf)> {
    Ok(match dir {
        Some(d) => {
            std::fs::create_dir_all(&d)?;
            (None, d)
        }
        None => {
            let tmp = tempfile::Builder::new().prefix("medsec-demo-").tempdir()?;
            let path = tmp.path().to_owned();
            (Some(tmp), path)
        }
    })
}

/// The demos' repository: hybrid root 2-of-3 and targets 2-of-2, Ed25519 online keys,
/// consistent snapshots, encrypted keys.
pub fn demo_repository(dir: &Path, passphrase: &Passphrase) -> Result<Repo> {
    Repo::init(
        dir,
        &InitOptions {
            root_scheme: Scheme::MlDsa65Ed25519,
            targets_scheme: Scheme::MlDsa65Ed25519,
            online_scheme: Scheme::Ed25519,
            root_keys: 3,
            root_threshold: 2,
            targets_keys: 2,
            targets_threshold: 2,
            consistent_snapshot: true,
            plaintext_keys: false,
        },
        passphrase,
    )
}

pub fn run(dir: Option<PathBuf>, image_mib: u64) -> Result<()> {
    let keep = dir.clone();
    let (_tmp, base) = work_dir(dir)?;
    let started = Instant::now();
    println!(
        "medsec demo — signed firmware updates with The Update Framework and hybrid post-quantum keys"
    );
    println!("working in {}", base.display());

    step(
        1,
        "release engineering creates a repository (root 2-of-3 and targets 2-of-2, ML-DSA-65 + Ed25519)",
    );
    let pass_file = base.join("passphrase.txt");
    medsec_util::write_atomic(
        &pass_file,
        "demo passphrase — use your own".as_bytes(),
        medsec_util::Access::Private,
    )?;
    let passphrase = Passphrase::new(Some(pass_file))?;
    let repo_dir = base.join("repository");
    let repo = demo_repository(&repo_dir, &passphrase)?;
    println!(
        "      keys (Argon2id + AES-256-GCM encrypted) in {}",
        repo.keys_dir().display()
    );

    step(
        2,
        &format!("build and sign infusion-pump firmware 1.1.0 ({image_mib} MiB)"),
    );
    let image = base.join("pump-fw-1.1.0.img");
    write_image(&image, image_mib)?;
    let target_path = "infusion-pump/pump-fw-1.1.0.img";
    let custom = TargetCustom {
        hardware_ids: vec!["acme-ip200-rev3".into()],
        version: "1.1.0".into(),
        release_counter: 11,
        sbom: None,
    };
    let first_key = [repo.keys_dir().join("targets-1.key")];
    let (_, info) = repo.add_target(
        &image,
        target_path,
        None,
        &custom,
        None,
        &first_key,
        &passphrase,
    )?;
    println!(
        "      signed by targets key 1: {}",
        repo.status()?.last().cloned().unwrap_or_default().trim()
    );
    let refused = repo.timestamp(None, &[], &passphrase);
    ensure!(
        refused.is_err(),
        "a snapshot below the targets threshold must be refused"
    );
    println!("      snapshot refused while targets has 1 of 2 signatures, as it should be");
    let (valid, threshold) = repo.sign(
        "targets",
        &[repo.keys_dir().join("targets-2.key")],
        &passphrase,
    )?;
    println!("      second key holder signs offline: {valid}/{threshold} signatures");
    let (s, t) = repo.timestamp(None, &[], &passphrase)?;
    println!("      snapshot v{s} and timestamp v{t} signed with the online keys");

    step(
        3,
        "verify the whole repository and publish it as static files",
    );
    let report = repo.verify(time::OffsetDateTime::now_utc())?;
    ensure!(
        report.problems.is_empty(),
        "repository problems: {:?}",
        report.problems
    );
    for line in &report.ok {
        println!("      ok: {line}");
    }
    let www = base.join("www");
    let (m, n) = repo.publish(&www)?;
    println!(
        "      {m} metadata files and {n} target(s) in {}",
        www.display()
    );

    step(
        4,
        "a device that trusts only root v1 refreshes and downloads the image",
    );
    let device = base.join("device");
    let meta_dir = device.join("metadata");
    let downloads = device.join("downloads");
    std::fs::create_dir_all(&downloads)?;
    Updater::init(
        &meta_dir,
        &std::fs::read(repo.meta_dir().join("1.root.json"))?,
    )?;
    let metadata_url = format!("file://{}/", www.join("metadata").display());
    let targets_url = format!("file://{}/", www.join("targets").display());
    let t0 = Instant::now();
    let mut updater = Updater::new(
        &meta_dir,
        &metadata_url,
        Some(&targets_url),
        Updater::default_transport(None)?,
        UpdaterConfig::default(),
    )?;
    updater.refresh()?;
    let found = updater.get_target_info(target_path)?;
    let stored = updater.download_target(&found, target_path, &downloads, None)?;
    println!(
        "      refreshed and downloaded {} bytes in {:.0} ms; length, SHA-256 and SHA-512 verified",
        found.length,
        t0.elapsed().as_secs_f64() * 1000.0
    );
    println!("      stored at {}", stored.display());
    if let Some(m) = found.custom.as_ref().and_then(|c| c.get("medsec")) {
        println!("      custom metadata: {m}");
    }

    step(5, "an attacker swaps one byte of the image on the mirror");
    let hash = info.hashes.get("sha256").cloned().unwrap_or_default();
    let mirror_copy = www
        .join("targets/infusion-pump")
        .join(format!("{hash}.pump-fw-1.1.0.img"));
    let mut bytes = std::fs::read(&mirror_copy).context("reading the published image")?;
    if let Some(b) = bytes.get_mut(4096) {
        *b ^= 0x01;
    }
    std::fs::write(&mirror_copy, &bytes)?;
    let victim = device.join("downloads-2");
    std::fs::create_dir_all(&victim)?;
    match updater.download_target(&found, target_path, &victim, None) {
        Ok(_) => anyhow::bail!("a tampered image was accepted"),
        Err(e) => println!("      refused: {e}"),
    }
    ensure!(
        std::fs::read_dir(&victim)?.next().is_none(),
        "nothing may be left behind by a refused download"
    );
    println!("      nothing was written where the image would go");

    step(6, "summary");
    println!("      repository      {}", repo_dir.display());
    println!("      published       {}", www.display());
    println!("      device metadata {}", meta_dir.display());
    println!("      took {:.1} s", started.elapsed().as_secs_f64());
    println!("\nnext: `medsec repo --help`, docs/updates.md, and `medsec-tuf-client --help`.");
    if keep.is_none() {
        println!("(the demo directory is temporary and removed now: pass --dir DIR to keep it)");
    }
    Ok(())
}
