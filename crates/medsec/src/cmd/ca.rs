//! `medsec ca`: the fleet certificate authority on the command line.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow};
use clap::Subcommand;
use medsec_crypto::keyfile::Protection;
use medsec_pki::{CaAlgorithm, DeviceId, FleetCa};

use crate::keys::Passphrase;

#[derive(Subcommand)]
pub enum CaCommand {
    /// Create an offline root and an online issuing CA.
    Init {
        /// CA directory.
        dir: PathBuf,
        /// Name written into the CA certificates and device certificates' O=.
        #[arg(long, default_value = "medsec fleet")]
        name: String,
        /// ecdsa-p256 (default) or ml-dsa-65.
        #[arg(long, default_value = "ecdsa-p256", value_parser = parse_algorithm)]
        algorithm: CaAlgorithm,
        /// Root lifetime in days.
        #[arg(long, default_value_t = 3650)]
        root_days: i64,
        /// Issuing CA lifetime in days.
        #[arg(long, default_value_t = 730)]
        issuing_days: i64,
        /// Store the CA keys unencrypted.
        #[arg(long)]
        plaintext_keys: bool,
        /// File holding the passphrase for the CA keys.
        #[arg(long)]
        passphrase_file: Option<PathBuf>,
    },
    /// Issue a short-lived device certificate from a PKCS#10 request (PEM).
    Issue {
        /// CA directory.
        dir: PathBuf,
        /// The request.
        #[arg(long)]
        csr: PathBuf,
        /// The device's id (becomes CN and urn:medsec:device:ID; the request's names are ignored).
        #[arg(long)]
        device: String,
        /// Lifetime in days.
        #[arg(long, default_value_t = 30)]
        days: i64,
        /// Where to write the certificate (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
        /// File holding the CA key passphrase.
        #[arg(long)]
        passphrase_file: Option<PathBuf>,
    },
    /// Revoke a certificate by serial (it appears on the next CRL).
    Revoke {
        /// CA directory.
        dir: PathBuf,
        /// Serial number, hex (as `medsec ca list` shows it).
        #[arg(long)]
        serial: String,
        /// key-compromise, superseded, cessation-of-operation, privilege-withdrawn, …
        #[arg(long, default_value = "unspecified")]
        reason: String,
        /// File holding the CA key passphrase.
        #[arg(long)]
        passphrase_file: Option<PathBuf>,
    },
    /// Sign a new CRL (written to DIR/crl.pem, and to --out).
    Crl {
        /// CA directory.
        dir: PathBuf,
        /// Days until the next update.
        #[arg(long, default_value_t = 7)]
        days: i64,
        /// Also write it here.
        #[arg(long)]
        out: Option<PathBuf>,
        /// File holding the CA key passphrase.
        #[arg(long)]
        passphrase_file: Option<PathBuf>,
    },
    /// List issued certificates.
    List {
        /// CA directory.
        dir: PathBuf,
        /// File holding the CA key passphrase.
        #[arg(long)]
        passphrase_file: Option<PathBuf>,
    },
}

fn parse_algorithm(s: &str) -> Result<CaAlgorithm, String> {
    match s {
        "ecdsa-p256" | "p256" => Ok(CaAlgorithm::EcdsaP256),
        "ml-dsa-65" | "mldsa65" => Ok(CaAlgorithm::MlDsa65),
        other => Err(format!(
            "unknown CA algorithm {other:?} (ecdsa-p256, ml-dsa-65)"
        )),
    }
}

fn open(dir: &Path, passphrase_file: Option<PathBuf>) -> Result<FleetCa> {
    let pass = Passphrase::new(passphrase_file)?;
    Ok(FleetCa::open(dir, || pass.get("the CA key"))?)
}

pub fn run(cmd: CaCommand) -> Result<()> {
    match cmd {
        CaCommand::Init {
            dir,
            name,
            algorithm,
            root_days,
            issuing_days,
            plaintext_keys,
            passphrase_file,
        } => {
            let pass = Passphrase::new(passphrase_file)?.protection(plaintext_keys)?;
            let protection = match &pass {
                Some(p) => Protection::Passphrase(p),
                None => Protection::Plaintext,
            };
            let ca = FleetCa::init(&dir, &name, algorithm, root_days, issuing_days, protection)?;
            println!(
                "created fleet CA {name:?} ({algorithm:?}) in {}",
                dir.display()
            );
            println!("  trust anchor: {}", ca.root_path().display());
            println!(
                "  chain for servers and devices: {}",
                ca.chain_path().display()
            );
            println!(
                "  move {} offline: it is needed only to renew the issuing CA",
                dir.join("root.key").display()
            );
        }
        CaCommand::Issue {
            dir,
            csr,
            device,
            days,
            out,
            passphrase_file,
        } => {
            let device = DeviceId::new(&device)?;
            let request = std::fs::read_to_string(&csr)
                .with_context(|| format!("cannot read {}", csr.display()))?;
            let mut ca = open(&dir, passphrase_file)?;
            let (record, pem) = ca.issue(&request, &device, days)?;
            match out {
                Some(path) => {
                    std::fs::write(&path, &pem)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    eprintln!(
                        "issued {} for {} until {} -> {}",
                        record.serial,
                        record.device_id.as_str(),
                        record.not_after,
                        path.display()
                    );
                }
                None => print!("{pem}"),
            }
        }
        CaCommand::Revoke {
            dir,
            serial,
            reason,
            passphrase_file,
        } => {
            let reason = medsec_pki::reason_from_name(&reason)
                .ok_or_else(|| anyhow!("unknown revocation reason {reason:?}"))?;
            let mut ca = open(&dir, passphrase_file)?;
            let cert = ca.revoke(&serial, reason)?;
            println!(
                "revoked {} ({}); run `medsec ca crl {}` to publish it",
                cert.serial,
                cert.device_id.as_str(),
                dir.display()
            );
        }
        CaCommand::Crl {
            dir,
            days,
            out,
            passphrase_file,
        } => {
            let mut ca = open(&dir, passphrase_file)?;
            let pem = ca.crl(days)?;
            if let Some(path) = out {
                std::fs::write(&path, &pem)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            let revoked = ca.issued().iter().filter(|c| c.revoked.is_some()).count();
            println!("CRL signed: {revoked} revoked certificate(s), next update in {days} day(s)");
        }
        CaCommand::List {
            dir,
            passphrase_file,
        } => {
            let ca = open(&dir, passphrase_file)?;
            for c in ca.issued() {
                println!(
                    "{}  {:<24} until {}  {}",
                    c.serial,
                    c.device_id.as_str(),
                    c.not_after,
                    c.revoked
                        .as_ref()
                        .map(|r| format!("REVOKED {} ({})", r.at, r.reason))
                        .unwrap_or_else(|| "valid".into())
                );
            }
        }
    }
    Ok(())
}
