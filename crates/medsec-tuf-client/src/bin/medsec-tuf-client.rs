//! The TUF client with the command line of the tuf-conformance suite's client protocol:
//!
//! ```text
//! medsec-tuf-client --metadata-dir DIR init TRUSTED_ROOT
//! medsec-tuf-client --metadata-url URL --metadata-dir DIR refresh
//! medsec-tuf-client --metadata-url URL --metadata-dir DIR --target-name P [--target-name P2 ...] \
//!                   --target-dir TD --target-base-url TURL download
//! ```
//! Exit status 0 on full success, 1 on any failure (the reason goes to standard error).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use medsec_tuf_client::{Updater, UpdaterConfig};

#[derive(Parser)]
#[command(
    name = "medsec-tuf-client",
    version,
    about = "TUF client (tuf-conformance protocol)"
)]
struct Cli {
    /// Directory holding the trusted metadata.
    #[arg(long)]
    metadata_dir: PathBuf,
    /// Base URL of the repository's metadata.
    #[arg(long)]
    metadata_url: Option<String>,
    /// Target to download; repeat for several (downloaded in order, stopping at the first failure).
    #[arg(long = "target-name")]
    target_names: Vec<String>,
    /// Directory to store downloaded targets in.
    #[arg(long)]
    target_dir: Option<PathBuf>,
    /// Base URL of the repository's targets.
    #[arg(long)]
    target_base_url: Option<String>,
    /// Pretend the update starts this many days from now (expiry tests).
    #[arg(long, default_value_t = 0)]
    days_in_future: i64,
    /// Most root rotations one refresh follows.
    #[arg(long)]
    max_root_rotations: Option<u64>,
    /// PEM file of CA certificates trusted for HTTPS.
    #[arg(long)]
    ca_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Trust this root (copied into the metadata directory; no network).
    Init {
        /// The root metadata file to trust.
        trusted_root: PathBuf,
    },
    /// Update the trusted metadata.
    Refresh,
    /// Refresh, then download each --target-name.
    Download,
}

fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    if let Command::Init { trusted_root } = &cli.command {
        let root = std::fs::read(trusted_root)
            .map_err(|e| format!("reading {}: {e}", trusted_root.display()))?;
        Updater::init(&cli.metadata_dir, &root)?;
        return Ok(());
    }
    let url = cli
        .metadata_url
        .as_deref()
        .ok_or("--metadata-url is required")?;
    let mut config = UpdaterConfig::default();
    if cli.days_in_future != 0 {
        config.reference_time =
            Some(time::OffsetDateTime::now_utc() + time::Duration::days(cli.days_in_future));
    }
    if let Some(max) = cli.max_root_rotations {
        config.limits.max_root_rotations = max;
    }
    let ca = match &cli.ca_file {
        Some(p) => Some(std::fs::read(p).map_err(|e| format!("reading {}: {e}", p.display()))?),
        None => None,
    };
    let transport = Updater::default_transport(ca.as_deref())?;
    let mut updater = Updater::new(
        &cli.metadata_dir,
        url,
        cli.target_base_url.as_deref(),
        transport,
        config,
    )?;
    updater.refresh()?;
    if let Command::Download = cli.command {
        let dir = cli
            .target_dir
            .as_deref()
            .ok_or("--target-dir is required")?;
        if cli.target_names.is_empty() {
            return Err("at least one --target-name is required".into());
        }
        for name in &cli.target_names {
            let info = updater.get_target_info(name)?;
            let dest = Updater::local_path(dir, name);
            if !Updater::is_cached(&info, &dest)? {
                updater.download_target(&info, name, dir, None)?;
            }
        }
    }
    // The process ends next: freeing tens of thousands of parsed targets one by one would only
    // cost time (a fifth of a 10k-target refresh).
    std::mem::forget(updater);
    Ok(())
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(1);
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("medsec-tuf-client: {e}");
            ExitCode::from(1)
        }
    }
}
