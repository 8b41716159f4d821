//! `medsec witness`: a small process, meant for another machine, that watches the audit log from
//! outside the server's host. It keeps its own Ed25519 key and the last tree head it co-signed;
//! on each round it fetches the log's newest signed head, checks the log key's signature, asks
//! for a consistency proof from the head it holds, and co-signs the new head (C2SP
//! tlog-cosignature v1 over a tlog-checkpoint body) only if the proof verifies. A head that
//! shrinks the log, disagrees with a head of the same size, or does not extend the held one is
//! refused and written down as evidence: the mark of a rewrite, a truncation or a split view,
//! made even with the log's own key.
//!
//! Files in the witness directory: `witness.key` (its private key, 0600), `witness.vkey` (its
//! verifier key, for `medsec audit verify --witness-key`), `log.pub` (the log key it pins),
//! `latest.json` (the last co-signed head, for `medsec audit verify --head`), `evidence-*.json`
//! (refusals).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use clap::Subcommand;
use medsec_audit::{SignedTreeHead, checkpoint};
use medsec_crypto::{KeySource as _, PublicKey, Scheme, SigningKey};
use medsec_server::audit_log::{ConsistencyProof, public_key_json, read_public_key};
use serde::{Deserialize, Serialize};

#[derive(Subcommand)]
pub enum WitnessCommand {
    /// Make a witness: its key, and the log key it pins.
    Init {
        /// The witness's directory (created).
        #[arg(long)]
        dir: PathBuf,
        /// The witness's name in its co-signatures (a host name it controls, say).
        #[arg(long)]
        name: String,
        /// The audit log's public key (`audit.pub` of the server's data directory), copied and
        /// pinned.
        #[arg(long)]
        log_key: PathBuf,
    },
    /// Watch the log: fetch its newest head, check it extends the one held, co-sign it.
    Run {
        /// The witness's directory.
        #[arg(long)]
        dir: PathBuf,
        /// The server's operator port (`https://HOST:8444`).
        #[arg(long)]
        server: String,
        /// A file holding an operator token allowed `audit.read` (the `auditor` role).
        #[arg(long)]
        token_file: PathBuf,
        /// Trust anchors for the server's certificate (PEM; the fleet `chain.pem`).
        #[arg(long)]
        cacert: PathBuf,
        /// One round, then exit: status 0 if the head was co-signed or unchanged, 1 if refused.
        #[arg(long)]
        once: bool,
        /// Time between rounds (e.g. 60s, 5m).
        #[arg(long, default_value = "60s", value_parser = crate::cmd::server::parse_duration_secs)]
        interval: i64,
    },
}

/// What the witness holds, and what `audit verify --head` reads: the log-signed head and the
/// checkpoint note that carries the witness's co-signature over it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cosigned {
    /// The head as the log signed it.
    pub head: SignedTreeHead,
    /// The checkpoint note: body, blank line, the witness's co-signature line.
    pub checkpoint: String,
    /// The witness's name.
    pub witness: String,
}

pub fn run(cmd: WitnessCommand) -> Result<()> {
    match cmd {
        WitnessCommand::Init { dir, name, log_key } => init(&dir, &name, &log_key),
        WitnessCommand::Run {
            dir,
            server,
            token_file,
            cacert,
            once,
            interval,
        } => {
            let token = medsec_util::read_secret(&token_file)?.trim().to_owned();
            let ca = std::fs::read(&cacert).with_context(|| format!("{}", cacert.display()))?;
            let agent = medsec_tuf_client::HttpTransport::new(Some(&ca), Duration::from_secs(30))?
                .agent()
                .clone();
            let witness = Witness::open(&dir)?;
            let server = server.trim_end_matches('/').to_owned();
            loop {
                match witness.round(&agent, &server, &token) {
                    Ok(said) => eprintln!("{said}"),
                    Err(e) if once => return Err(e),
                    Err(e) => eprintln!("witness: {e:#}"),
                }
                if once {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_secs(u64::try_from(interval).unwrap_or(60)));
            }
        }
    }
}

fn init(dir: &Path, name: &str, log_key: &Path) -> Result<()> {
    ensure!(
        !dir.join("witness.key").exists(),
        "{} already holds a witness key",
        dir.display()
    );
    let pinned = read_public_key(log_key)?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    medsec_util::make_private(dir)?;
    let key = SigningKey::generate(Scheme::Ed25519)?;
    let vkey = checkpoint::verifier_key(name, key.public_key())?;
    let pem = medsec_crypto::keyfile::encode_private(
        &key,
        medsec_crypto::keyfile::Protection::Plaintext,
    )?;
    let private = medsec_util::Access::Private;
    let public = medsec_util::Access::Public;
    medsec_util::write_atomic(&dir.join("witness.key"), pem.as_bytes(), private)?;
    medsec_util::write_atomic(
        &dir.join("witness.vkey"),
        format!("{vkey}\n").as_bytes(),
        public,
    )?;
    medsec_util::write_atomic(&dir.join("name"), name.as_bytes(), public)?;
    medsec_util::write_atomic(
        &dir.join("log.pub"),
        public_key_json(&pinned).as_bytes(),
        public,
    )?;
    println!("{vkey}");
    eprintln!(
        "witness {name} made in {}; give its verifier key (above, also in witness.vkey) to \
         whoever runs `medsec audit verify --witness-key`",
        dir.display()
    );
    Ok(())
}

struct Witness {
    dir: PathBuf,
    name: String,
    key: SigningKey,
    log_key: PublicKey,
}

impl Witness {
    fn open(dir: &Path) -> Result<Self> {
        let name = std::fs::read_to_string(dir.join("name"))
            .with_context(|| format!("{} is not a witness directory", dir.display()))?
            .trim()
            .to_owned();
        let pem = medsec_util::read_secret(&dir.join("witness.key"))?;
        let key = medsec_crypto::keyfile::decode_private(&pem, || None)?;
        let log_key = read_public_key(&dir.join("log.pub"))?;
        Ok(Self {
            dir: dir.to_owned(),
            name,
            key,
            log_key,
        })
    }

    fn held(&self) -> Result<Option<Cosigned>> {
        let path = self.dir.join("latest.json");
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes).with_context(|| {
                format!("{} is not a co-signed head", path.display())
            })?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(anyhow!("reading {}: {e}", path.display())),
        }
    }

    /// Writes the evidence of a refusal and returns the error that names it.
    fn refuse(&self, held: &SignedTreeHead, offered: &SignedTreeHead, why: &str) -> anyhow::Error {
        let at = medsec_util::now_ms();
        let path = self.dir.join(format!("evidence-{at}.json"));
        let evidence = serde_json::json!({
            "refused_at_ms": at,
            "reason": why,
            "held": held,
            "offered": offered,
        });
        let written = medsec_util::write_atomic(
            &path,
            evidence.to_string().as_bytes(),
            medsec_util::Access::Public,
        );
        let saved = match written {
            Ok(()) => format!("evidence in {}", path.display()),
            Err(e) => format!("the evidence could not be written: {e}"),
        };
        anyhow!("REFUSED to co-sign: {why} ({saved})")
    }

    fn get(&self, agent: &ureq::Agent, url: &str, token: &str) -> Result<String> {
        let mut resp = agent
            .get(url)
            .header("Authorization", &format!("Bearer {token}"))
            .call()
            .with_context(|| format!("GET {url}"))?;
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string()?;
        ensure!(status == 200, "GET {url}: HTTP {status}: {text}");
        Ok(text)
    }

    /// One round: returns what happened, or an error (a refusal names its evidence).
    fn round(&self, agent: &ureq::Agent, server: &str, token: &str) -> Result<String> {
        let text = self.get(agent, &format!("{server}/api/v1/audit/head"), token)?;
        let Some(offered): Option<SignedTreeHead> = serde_json::from_str(&text)? else {
            return Ok("the log is empty: nothing to co-sign".into());
        };
        offered
            .verify(&self.log_key)
            .map_err(|e| anyhow!("the offered head is not signed by the pinned log key: {e}"))?;
        let size = offered.head.tree_size;
        if let Some(held) = self.held()? {
            let held_size = held.head.head.tree_size;
            if size < held_size {
                return Err(self.refuse(
                    &held.head,
                    &offered,
                    &format!(
                        "the log shrank from {held_size} to {size} entries: truncated or rolled back"
                    ),
                ));
            }
            if size == held_size {
                if offered.head.root_hash != held.head.head.root_hash {
                    return Err(self.refuse(
                        &held.head,
                        &offered,
                        &format!(
                            "two different roots for {size} entries: rewritten, or a split view"
                        ),
                    ));
                }
                return Ok(format!("unchanged at {size} entries: already co-signed"));
            }
            let url = format!("{server}/api/v1/audit/proof/consistency?from={held_size}&to={size}");
            let proof: ConsistencyProof = match self.get(agent, &url, token) {
                Ok(text) => serde_json::from_str(&text)?,
                Err(e) => {
                    return Err(self.refuse(
                        &held.head,
                        &offered,
                        &format!("the log proves no consistency from the held head: {e:#}"),
                    ));
                }
            };
            let hashes: Vec<medsec_audit::Hash> = proof
                .proof
                .iter()
                .filter_map(|h| hex::decode(h).ok()?.try_into().ok())
                .collect();
            let consistent = hashes.len() == proof.proof.len()
                && proof.new.head.root_hash == offered.head.root_hash
                && medsec_audit::verify_consistency(
                    held_size,
                    size,
                    &held.head.head.root()?,
                    &offered.head.root()?,
                    &hashes,
                )
                .is_ok();
            if !consistent {
                return Err(self.refuse(
                    &held.head,
                    &offered,
                    &format!(
                        "the head of {size} entries does not extend the held head of {held_size}: \
                         the log was rewritten"
                    ),
                ));
            }
        }
        let body = checkpoint::body(
            &checkpoint::origin(&self.log_key),
            size,
            &offered.head.root()?,
        );
        let time = u64::try_from(medsec_util::now_ms() / 1000).unwrap_or(0);
        let line = checkpoint::cosign(&self.name, &self.key, &body, time)?;
        let cosigned = Cosigned {
            head: offered,
            checkpoint: checkpoint::note(&body, &[line]),
            witness: self.name.clone(),
        };
        medsec_util::write_atomic(
            &self.dir.join("latest.json"),
            serde_json::to_string_pretty(&cosigned)?.as_bytes(),
            medsec_util::Access::Public,
        )?;
        Ok(format!("co-signed the head of {size} entries"))
    }
}

/// Reads a saved head: a co-signed one (`latest.json` of a witness) or a bare signed head (the
/// answer of `GET /api/v1/audit/head`). With `witness_key`, the co-signature must verify and
/// state the same size and root as the head.
pub fn read_saved_head(path: &Path, witness_key: Option<&Path>) -> Result<SignedTreeHead> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    if let Ok(cosigned) = serde_json::from_str::<Cosigned>(&text) {
        if let Some(vkey_path) = witness_key {
            let vkey = std::fs::read_to_string(vkey_path)
                .with_context(|| format!("{}", vkey_path.display()))?;
            let (name, key) = checkpoint::parse_verifier_key(&vkey)?;
            let (body, sigs) = checkpoint::split_note(&cosigned.checkpoint)?;
            checkpoint::verify_cosignature(sigs, body, &name, &key)
                .map_err(|e| anyhow!("{}: witness {name}: {e}", path.display()))?;
            let (_, size, root) = checkpoint::parse_body(body)?;
            ensure!(
                size == cosigned.head.head.tree_size && root == cosigned.head.head.root()?,
                "{}: the co-signed checkpoint and the head disagree",
                path.display()
            );
        }
        return Ok(cosigned.head);
    }
    if witness_key.is_some() {
        bail!(
            "{} carries no witness co-signature to check",
            path.display()
        );
    }
    serde_json::from_str::<SignedTreeHead>(&text).with_context(|| {
        format!(
            "{} is neither a signed head nor a co-signed one",
            path.display()
        )
    })
}
