//! `medsec audit`: the audit log verified on the server host (`--data-dir`), or through the
//! current context's server with its head and inclusion proofs checked here under a pinned key
//! (`remote/audit.rs`).

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Subcommand;
use medsec_server::{DataDir, audit_log};

use crate::cmd::server::{Location, runtime};

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Check the whole audit log: every entry, every signed tree head. Exits 1 and names the
    /// entry if anything was altered, removed or reordered.
    Verify {
        #[command(flatten)]
        location: Location,
        /// The log's public key (default: DATA_DIR/audit.pub). Pin a copy kept elsewhere: whoever
        /// can rewrite the data directory can also replace audit.pub.
        #[arg(long)]
        key: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// A head saved earlier (`GET /api/v1/audit/head`), or a witness's co-signed one
        /// (its `latest.json`): the log's first entries must still hash to its root, which
        /// detects a rewrite or truncation even by someone holding the log key.
        #[arg(long)]
        head: Option<PathBuf>,
        /// The witness's verifier key (`witness.vkey`): the saved head's co-signature must
        /// verify under it.
        #[arg(long, requires = "head")]
        witness_key: Option<PathBuf>,
    },
    /// The newest signed tree head, from the current context's server; with --key its
    /// signature is checked under that copy of audit.pub.
    Head {
        /// A copy of the log's public key (the server's audit.pub), kept apart from it.
        #[arg(long)]
        key: Option<PathBuf>,
    },
    /// One entry with its inclusion proof, from the current context's server, checked here:
    /// the entry hashes into a head signed by the pinned key.
    Proof {
        /// The entry's position.
        seq: u64,
        /// A copy of the log's public key (the server's audit.pub), kept apart from it.
        #[arg(long)]
        key: PathBuf,
    },
}

pub fn run_audit(cmd: AuditCommand, remote: &crate::cmd::remote::Remote) -> Result<()> {
    let (location, key, json, head, witness_key) = match cmd {
        AuditCommand::Head { key } => {
            return crate::cmd::remote::audit::head(remote, key.as_deref());
        }
        AuditCommand::Proof { seq, key } => {
            return crate::cmd::remote::audit::proof(remote, seq, &key);
        }
        AuditCommand::Verify {
            location,
            key,
            json,
            head,
            witness_key,
        } => (location, key, json, head, witness_key),
    };
    if !location.direct(remote) {
        if head.is_some() {
            bail!("--head is checked against the store on the server host: pass --data-dir");
        }
        return crate::cmd::remote::audit::verify(remote, key.as_deref(), json);
    }
    let config = location.existing()?;
    let key_path = key.unwrap_or_else(|| DataDir::new(&config.data_dir).audit_pub());
    let key = audit_log::read_public_key(&key_path)?;
    let saved = head
        .as_deref()
        .map(|h| crate::cmd::witness::read_saved_head(h, witness_key.as_deref()))
        .transpose()?;
    let (mut report, against_saved) = runtime()?.block_on(async {
        let store = medsec_server::open_store(&config).await?;
        let report = audit_log::verify(&store, &key).await;
        let against = match &saved {
            Some(h) => audit_log::check_saved_head(&store, &key, h).await.map(Some),
            None => Ok(None),
        };
        store.close().await;
        anyhow::Ok((report?, against?.flatten()))
    })?;
    if let Some(finding) = against_saved {
        report
            .findings
            .insert(0, medsec_audit::Finding::SavedHead { reason: finding });
    } else if let Some(h) = &saved {
        eprintln!(
            "the log extends the saved head of {} entries",
            h.head.tree_size
        );
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for f in &report.findings {
            println!("TAMPERED  {f}");
        }
        println!(
            "{} entries, {} signed tree heads, root {}",
            report.entries, report.heads, report.root_hash
        );
    }
    if let Some(first) = report.findings.first() {
        bail!("the audit log does not verify: {first}");
    }
    println!("audit log verifies");
    Ok(())
}
