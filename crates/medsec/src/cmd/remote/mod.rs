//! The remote CLI: `medsec login` saves a context (server, pinned CA, token, default output),
//! and the day-to-day commands (`device`, `alerts`, `incident`, `sbom`, `advisory`, `vex`,
//! `findings`, `ranking`, `token`, and `report compliance` without `--data-dir`) talk to the
//! operator API of the current context, from any machine and any directory. They never touch a
//! data directory: what they show is what the server answers, under the operator's own name
//! in its audit log.

#![allow(
    clippy::indexing_slicing,
    reason = "only serde_json::Value is indexed here, by key: a missing key reads as Null, never panics"
)]

pub mod audit;
pub mod client;
pub mod context;
pub mod defender;
pub mod output;
pub mod records;
pub mod risk;

use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use client::{Body, Client, query, segment};
use context::{Context, Contexts};
use output::{Col, Format, col, emit, time, wide};

/// Which context, and how to print: every remote command takes these.
#[derive(Args, Clone, Default)]
pub struct Remote {
    /// The context to use (default: the current one; `medsec context list`).
    #[arg(long, global = true, env = "MEDSEC_CONTEXT")]
    pub context: Option<String>,
    /// Output: table, wide, json or yaml (default: the context's, else table).
    #[arg(short = 'o', long, global = true)]
    pub output: Option<Format>,
}

impl Remote {
    /// The context, its client and the output format.
    pub fn open(&self) -> Result<(Client, Format)> {
        let contexts = Contexts::load()?;
        let ctx = contexts.pick(self.context.as_deref())?;
        let format = match self.output {
            Some(f) => f,
            None => ctx
                .output
                .parse()
                .map_err(|e: String| anyhow::anyhow!("context {:?}: {e}", ctx.name))?,
        };
        Ok((Client::new(ctx)?, format))
    }

    /// [`Remote::open`], with a command's older `--json` flag meaning `-o json`.
    pub fn open_with_json(&self, json: bool) -> Result<(Client, Format)> {
        let (client, format) = self.open()?;
        Ok((client, if json { Format::Json } else { format }))
    }
}

/// `medsec login`.
#[derive(Args)]
pub struct LoginArgs {
    /// The operator port, e.g. https://medsec.example.org:8444.
    pub server: String,
    /// The CA certificate(s) the server's certificate must chain to (PEM; the server's
    /// `DATA_DIR/ca/chain.pem`). Pinned in the context: the system's roots are never used.
    #[arg(long)]
    pub ca: PathBuf,
    /// A file holding the operator token (owner-only, as `medsec operator token create` prints
    /// it). Without it, MEDSEC_TOKEN.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// The context's name (default: HOST:PORT).
    #[arg(long)]
    pub name: Option<String>,
    /// The context's default output: table, wide, json or yaml.
    #[arg(short = 'o', long, default_value = "table")]
    pub output: Format,
}

/// `medsec context …`.
#[derive(Subcommand)]
pub enum ContextCommand {
    /// The saved contexts; `*` marks the current one.
    List,
    /// Makes a context current.
    Use {
        /// Its name.
        name: String,
    },
    /// Forgets a context (its token stays valid on the server until revoked).
    Delete {
        /// Its name.
        name: String,
    },
}

/// Logs in: checks the token against the server (over TLS pinned to `--ca`), then saves the
/// context and makes it current.
pub fn login(args: LoginArgs) -> Result<()> {
    let ca_pem = std::fs::read_to_string(&args.ca)
        .with_context(|| format!("reading the CA certificate {}", args.ca.display()))?;
    if !ca_pem.contains("-----BEGIN CERTIFICATE-----") {
        bail!("{} holds no PEM certificate", args.ca.display());
    }
    let token = match &args.token_file {
        Some(f) => medsec_util::read_secret(f)?.trim().to_owned(),
        None => std::env::var("MEDSEC_TOKEN")
            .map_err(|_| anyhow::anyhow!("no token: pass --token-file FILE or set MEDSEC_TOKEN"))?,
    };
    let server = args.server.trim_end_matches('/').to_owned();
    let name = args.name.unwrap_or_else(|| context::name_for(&server));
    let client = Client::connect(&server, &ca_pem, &token, &name)?;
    let session = client.get("/api/v1/session")?;
    let operator = session["name"].as_str().unwrap_or_default().to_owned();
    let roles: Vec<String> = session["roles"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let mut contexts = Contexts::load()?;
    contexts.put(Context {
        name: name.clone(),
        server,
        ca_pem,
        token,
        operator: operator.clone(),
        roles: roles.clone(),
        output: match args.output {
            Format::Table => "table",
            Format::Wide => "wide",
            Format::Json => "json",
            Format::Yaml => "yaml",
        }
        .into(),
    });
    contexts.save()?;
    emit(&format!(
        "logged in to {} as {operator} ({}); context {name:?} saved in {} and made current\n",
        session["server_version"]
            .as_str()
            .map_or_else(|| "the server".into(), |v| format!("medsec {v}")),
        roles.join(", "),
        Contexts::path()?.display()
    ))
}

/// `medsec context …`.
pub fn run_context(cmd: ContextCommand) -> Result<()> {
    let mut contexts = Contexts::load()?;
    match cmd {
        ContextCommand::List => {
            let rows: Vec<Value> = contexts
                .contexts
                .iter()
                .map(|c| {
                    json!({
                        "current": if contexts.current.as_deref() == Some(&c.name) { "*" } else { "" },
                        "name": c.name, "server": c.server, "operator": c.operator,
                        "roles": c.roles, "output": c.output,
                    })
                })
                .collect();
            emit(&output::table(
                Format::Table,
                &rows,
                &[
                    col("CURRENT", "current"),
                    col("NAME", "name"),
                    col("SERVER", "server"),
                    col("OPERATOR", "operator"),
                    col("ROLES", "roles"),
                    col("OUTPUT", "output"),
                ],
                0,
            ))
        }
        ContextCommand::Use { name } => {
            contexts.pick(Some(&name))?;
            contexts.current = Some(name.clone());
            contexts.save()?;
            emit(&format!("context {name:?} is current\n"))
        }
        ContextCommand::Delete { name } => {
            contexts.pick(Some(&name))?;
            contexts.contexts.retain(|c| c.name != name);
            if contexts.current.as_deref() == Some(&name) {
                contexts.current = None;
            }
            contexts.save()?;
            emit(&format!(
                "context {name:?} deleted; its token stays valid until revoked on the server \
                 (`medsec operator token revoke`)\n"
            ))
        }
    }
}

/// `medsec device …`.
#[derive(Subcommand)]
pub enum DeviceCommand {
    /// Devices in id order, optionally of one model, site or group.
    List {
        /// Only this model.
        #[arg(long)]
        model: Option<String>,
        /// Only this site.
        #[arg(long)]
        site: Option<String>,
        /// Only this group.
        #[arg(long)]
        group: Option<String>,
        /// Start after this device id (paging).
        #[arg(long)]
        after: Option<String>,
        /// Most devices (1 to 1000).
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// One device's record.
    Show {
        /// The device id.
        id: String,
    },
    /// Changes a device's inventory fields.
    Update {
        /// The device id.
        id: String,
        #[command(flatten)]
        inventory: crate::cmd::server::InventoryArgs,
    },
    /// Revokes a device's certificates (it can no longer connect).
    Revoke {
        /// The device id.
        id: String,
    },
    /// Takes a device out of service for good: its certificates revoked, no more updates or
    /// requests, its history kept; its name is reused only with `token create --re-register`.
    Decommission {
        /// The device id.
        id: String,
        /// Why (recorded in the audit log).
        #[arg(long)]
        reason: String,
    },
    /// Lifts a device's quarantine, whatever became of the incident that set it.
    Release {
        /// The device id.
        id: String,
        /// Why (recorded in the audit log).
        #[arg(long)]
        reason: String,
    },
    /// Its signed version reports, newest first.
    Versions {
        /// The device id.
        id: String,
    },
}

const DEVICE_COLS: &[Col] = &[
    col("ID", "id"),
    col("MODEL", "model"),
    col("STATE", "state"),
    col("QUARANTINED", "quarantined"),
    col("SITE", "site"),
    col("VERSION", "installed_version"),
    time("LAST SEEN", "last_seen_ms"),
    wide(col("HARDWARE ID", "hardware_id")),
    wide(col("GROUPS", "groups")),
    wide(col("RELEASE COUNTER", "release_counter")),
];

/// `medsec device …`.
pub fn run_device(remote: &Remote, cmd: DeviceCommand) -> Result<()> {
    let (client, format) = remote.open()?;
    match cmd {
        DeviceCommand::List {
            model,
            site,
            group,
            after,
            limit,
        } => {
            let q = query(&[
                ("model", model),
                ("site", site),
                ("group", group),
                ("after", after),
                ("limit", Some(limit.to_string())),
            ]);
            let v = client.get(&format!("/api/v1/devices{q}"))?;
            let rows = v.as_array().cloned().unwrap_or_default();
            output::print(format, &v, &rows, DEVICE_COLS)?;
            if matches!(format, Format::Table | Format::Wide) && rows.len() as u32 == limit {
                eprintln!(
                    "(first {limit}; the next page: --after {})",
                    rows.last().and_then(|r| r["id"].as_str()).unwrap_or("")
                );
            }
            Ok(())
        }
        DeviceCommand::Show { id } => {
            let v = client.get(&format!("/api/v1/devices/{}", segment(&id)))?;
            output::print(format, &v, std::slice::from_ref(&v), DEVICE_COLS)
        }
        DeviceCommand::Update { id, inventory } => {
            let body = serde_json::to_value(inventory.patch())?;
            let v = client.json(
                "PATCH",
                &format!("/api/v1/devices/{}", segment(&id)),
                Body::Json(&body),
            )?;
            output::print(format, &v, std::slice::from_ref(&v), DEVICE_COLS)
        }
        DeviceCommand::Revoke { id } => {
            let v = client.json(
                "POST",
                &format!("/api/v1/devices/{}/revoke", segment(&id)),
                Body::None,
            )?;
            print_done(format, &v, &format!("device {id} revoked"))
        }
        DeviceCommand::Decommission { id, reason } => {
            let v = client.json(
                "POST",
                &format!("/api/v1/devices/{}/decommission", segment(&id)),
                Body::Json(&json!({ "reason": reason })),
            )?;
            let revoked = v["revoked"].as_array().map_or(0, Vec::len);
            print_done(
                format,
                &v,
                &format!("device {id} decommissioned; {revoked} certificate(s) revoked"),
            )
        }
        DeviceCommand::Release { id, reason } => {
            let v = client.json(
                "POST",
                &format!("/api/v1/devices/{}/release", segment(&id)),
                Body::Json(&json!({ "reason": reason })),
            )?;
            print_done(format, &v, &format!("device {id} released from quarantine"))
        }
        DeviceCommand::Versions { id } => {
            let v = client.get(&format!("/api/v1/devices/{}/versions", segment(&id)))?;
            let rows = v.as_array().cloned().unwrap_or_default();
            output::print(
                format,
                &v,
                &rows,
                &[
                    col("VERSION", "version"),
                    col("RELEASE COUNTER", "release_counter"),
                    time("REPORTED", "received_at_ms"),
                    wide(col("NONCE", "nonce")),
                ],
            )
        }
    }
}

/// A change's answer: the JSON in json/yaml, one line otherwise.
fn print_done(format: Format, v: &Value, line: &str) -> Result<()> {
    match format {
        Format::Json | Format::Yaml => output::print(format, v, &[], &[]),
        _ => emit(&format!("{line}\n")),
    }
}

/// `medsec alerts …`.
#[derive(Subcommand)]
pub enum AlertsCommand {
    /// Alerts, newest first, fleet-wide or of one device.
    List {
        /// Only this device's.
        #[arg(long)]
        device: Option<String>,
        /// Only those raised within this long (`90s`, `15m`, `24h`, `7d`).
        #[arg(long)]
        since: Option<String>,
        /// Most alerts (1 to 1000).
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// One alert with its evidence and acknowledgement.
    Show {
        /// The alert's id.
        id: i64,
    },
    /// Acknowledges an alert (seen, by you, with a note; audited).
    Ack {
        /// The alert's id.
        id: i64,
        /// Why it is understood.
        #[arg(long, default_value = "")]
        note: String,
    },
}

const ALERT_COLS: &[Col] = &[
    col("ID", "id"),
    col("DEVICE", "device"),
    col("SEVERITY", "severity"),
    col("RULE", "rule"),
    col("SEEN", "count"),
    time("LAST", "last_seen_ms"),
    col("ACK BY", "acknowledged.by"),
    col("SUMMARY", "summary"),
    wide(col("TECHNIQUE", "technique.id")),
    wide(time("FIRST", "first_seen_ms")),
    wide(col("SUPPRESSED BY", "suppressed_by")),
    wide(col("NOTE", "acknowledged.note")),
];

/// One alert in full (table formats): its columns, then each piece of evidence.
fn show_alert(format: Format, v: &Value) -> Result<()> {
    output::print(format, v, std::slice::from_ref(v), ALERT_COLS)?;
    if matches!(format, Format::Table | Format::Wide) {
        for e in v["evidence"].as_array().into_iter().flatten() {
            emit(&format!("evidence: {e}\n"))?;
        }
    }
    Ok(())
}

/// `medsec alerts …`.
pub fn run_alerts(remote: &Remote, cmd: AlertsCommand) -> Result<()> {
    let (client, format) = remote.open()?;
    let (device, since, limit) = match cmd {
        AlertsCommand::List {
            device,
            since,
            limit,
        } => (device, since, limit),
        AlertsCommand::Show { id } => {
            return show_alert(format, &client.get(&format!("/api/v1/alerts/{id}"))?);
        }
        AlertsCommand::Ack { id, note } => {
            let v = client.json(
                "POST",
                &format!("/api/v1/alerts/{id}/acknowledge"),
                Body::Json(&json!({ "note": note })),
            )?;
            return show_alert(format, &v);
        }
    };
    let since_ms = since
        .map(|s| {
            medsec_util::parse_duration(&s)
                .map(|d| medsec_util::now_ms() - i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
                .map_err(|e| anyhow::anyhow!("--since {s:?}: {e}"))
        })
        .transpose()?;
    let q = query(&[
        ("since_ms", since_ms.map(|m| m.to_string())),
        ("limit", Some(limit.to_string())),
    ]);
    let path = match &device {
        Some(d) => format!("/api/v1/devices/{}/alerts{q}", segment(d)),
        None => format!("/api/v1/alerts{q}"),
    };
    let v = client.get(&path)?;
    let rows = v.as_array().cloned().unwrap_or_default();
    output::print(format, &v, &rows, ALERT_COLS)
}

/// `medsec incident …`.
#[derive(Subcommand)]
pub enum IncidentCommand {
    /// Incidents, newest first.
    List {
        /// Only those not closed.
        #[arg(long)]
        open: bool,
    },
    /// One incident with its alerts, actions and reporting clocks.
    Show {
        /// The incident id.
        id: String,
    },
    /// Confirms it: the reporting clocks start.
    Confirm {
        /// The incident id.
        id: String,
        /// What the EU CRA needs reported: exploited-vulnerability or severe-incident.
        #[arg(long)]
        cra: Option<String>,
        /// Protected health information may be affected (HIPAA breach clock).
        #[arg(long)]
        personal_data: bool,
    },
    /// Moves it to a later phase: analysing, contained, eradicated, recovered, closed.
    Phase {
        /// The incident id.
        id: String,
        /// The phase.
        phase: String,
    },
    /// Closes it.
    Close {
        /// The incident id.
        id: String,
    },
    /// Runs a playbook on one of its devices: quarantine, release, revoke, force-update
    /// (with --version, --release-counter and --target), cancel-update.
    Playbook {
        /// The incident id.
        id: String,
        /// quarantine, release, revoke, force-update or cancel-update.
        playbook: String,
        /// The device.
        #[arg(long)]
        device: String,
        /// force-update: the release's version.
        #[arg(long, requires_all = ["release_counter", "target"])]
        version: Option<String>,
        /// force-update: its release counter.
        #[arg(long)]
        release_counter: Option<i64>,
        /// force-update: its target in the image repository.
        #[arg(long)]
        target: Option<String>,
    },
}

const INCIDENT_COLS: &[Col] = &[
    col("ID", "id"),
    col("SEVERITY", "severity"),
    col("PHASE", "phase"),
    col("DEVICES", "devices"),
    time("OPENED", "opened_at_ms"),
    col("TITLE", "title"),
    wide(time("UPDATED", "updated_at_ms")),
    wide(time("CONFIRMED", "confirmation.at_ms")),
];

/// `medsec incident …`.
pub fn run_incident(remote: &Remote, cmd: IncidentCommand) -> Result<()> {
    let (client, format) = remote.open()?;
    let command = |id: &str, body: Value| -> Result<()> {
        let v = client.json(
            "POST",
            &format!("/api/v1/incidents/{}", segment(id)),
            Body::Json(&body),
        )?;
        show_incident(format, &v)
    };
    match cmd {
        IncidentCommand::List { open } => {
            let q = query(&[("open", open.then(|| "true".to_owned()))]);
            let v = client.get(&format!("/api/v1/incidents{q}"))?;
            let rows = v.as_array().cloned().unwrap_or_default();
            output::print(format, &v, &rows, INCIDENT_COLS)
        }
        IncidentCommand::Show { id } => {
            let v = client.get(&format!("/api/v1/incidents/{}", segment(&id)))?;
            show_incident(format, &v)
        }
        IncidentCommand::Confirm {
            id,
            cra,
            personal_data,
        } => command(
            &id,
            json!({"action": "confirm", "cra": cra.map(|c| c.replace('-', "_")), "personal_data": personal_data}),
        ),
        IncidentCommand::Phase { id, phase } => {
            command(&id, json!({"action": "phase", "phase": phase}))
        }
        IncidentCommand::Close { id } => {
            command(&id, json!({"action": "phase", "phase": "closed"}))
        }
        IncidentCommand::Playbook {
            id,
            playbook,
            device,
            version,
            release_counter,
            target,
        } => {
            let mut body = json!({"action": "playbook", "playbook": playbook.replace('-', "_"), "device": device});
            if let (Some(version), Some(release_counter), Some(target)) =
                (version, release_counter, target)
            {
                body["release"] = json!({
                    "version": version, "release_counter": release_counter, "target": target,
                });
            }
            command(&id, body)
        }
    }
}

fn show_incident(format: Format, v: &Value) -> Result<()> {
    if !matches!(format, Format::Table | Format::Wide) {
        return output::print(format, v, &[], &[]);
    }
    output::print(format, v, std::slice::from_ref(v), INCIDENT_COLS)?;
    let now = medsec_util::now_ms();
    for clock in v["clocks"].as_array().into_iter().flatten() {
        let due = clock["due_at_ms"].as_i64().map_or_else(
            || "not yet".to_owned(),
            |d| format!("{} ({})", output::rfc3339(d), output::relative(d, now)),
        );
        emit(&format!(
            "clock: {} ({}) due {due}\n",
            clock["report"].as_str().unwrap_or("-"),
            clock["basis"].as_str().unwrap_or("-")
        ))?;
    }
    for a in v["actions"].as_array().into_iter().flatten() {
        emit(&format!(
            "action: {} {} by {} {}: {}\n",
            a["playbook"].as_str().unwrap_or("-"),
            a["device"].as_str().unwrap_or("-"),
            a["by"].as_str().unwrap_or("-"),
            a["at_ms"]
                .as_i64()
                .map_or_else(String::new, |t| output::relative(t, now)),
            a["detail"].as_str().unwrap_or("-"),
        ))?;
    }
    Ok(())
}

/// `medsec token …`: enrolment tokens.
#[derive(Subcommand)]
pub enum TokenCommand {
    /// Registers a device and makes its one-time enrolment token (printed once).
    Create {
        /// The device id.
        #[arg(long)]
        device: String,
        /// How long the token stays valid (`90s`, `15m`, `24h`, `7d`).
        #[arg(long, default_value = "24h")]
        ttl: String,
        #[command(flatten)]
        inventory: crate::cmd::server::InventoryArgs,
        /// Give a decommissioned device's name to a device again.
        #[arg(long)]
        re_register: bool,
    },
    /// Enrolment tokens (never their secrets).
    List,
    /// Revokes an unused token.
    Revoke {
        /// Its id.
        id: String,
    },
}

/// `medsec token …`.
pub fn run_token(remote: &Remote, cmd: TokenCommand) -> Result<()> {
    let (client, format) = remote.open()?;
    match cmd {
        TokenCommand::Create {
            device,
            ttl,
            inventory,
            re_register,
        } => {
            let ttl_secs = crate::cmd::server::parse_duration_secs(&ttl)
                .map_err(|e| anyhow::anyhow!("--ttl {ttl:?}: {e}"))?;
            let patch = inventory.patch();
            let body = json!({
                "device": device, "ttl_secs": ttl_secs, "model": patch.model,
                "hardware_id": patch.hardware_id, "site": patch.site, "groups": patch.groups,
                "re_register": re_register,
            });
            let v = client.json("POST", "/api/v1/enrolment-tokens", Body::Json(&body))?;
            match format {
                Format::Json | Format::Yaml => output::print(format, &v, &[], &[]),
                _ => emit(&format!("{}\n", v["token"].as_str().unwrap_or_default())),
            }
        }
        TokenCommand::List => {
            let v = client.get("/api/v1/enrolment-tokens")?;
            let rows = v.as_array().cloned().unwrap_or_default();
            output::print(
                format,
                &v,
                &rows,
                &[
                    col("ID", "id"),
                    col("DEVICE", "device"),
                    wide(col("CREATED BY", "created_by")),
                    col("STATE", "state"),
                    time("EXPIRES", "expires_at_ms"),
                    wide(time("CREATED", "created_at_ms")),
                ],
            )
        }
        TokenCommand::Revoke { id } => {
            let v = client.json(
                "POST",
                &format!("/api/v1/enrolment-tokens/{}/revoke", segment(&id)),
                Body::None,
            )?;
            print_done(format, &v, &format!("enrolment token {id} revoked"))
        }
    }
}

/// `medsec report compliance` against the current context: the same files as on the server
/// host.
pub fn compliance(remote: &Remote, as_of_ms: Option<i64>) -> Result<crate::cmd::report::Fetched> {
    let (client, _) = remote.open()?;
    let v = client.get(&format!(
        "/api/v1/reports/compliance{}",
        query(&[("as_of_ms", as_of_ms.map(|m| m.to_string()))])
    ))?;
    let text = |key: &str| {
        v[key]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("the server's report has no {key}"))
    };
    let bundle = v["bundle"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| {
            Ok((
                f["name"]
                    .as_str()
                    .context("a bundle file without a name")?
                    .to_owned(),
                f["content"]
                    .as_str()
                    .context("a bundle file without content")?
                    .as_bytes()
                    .to_vec(),
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(crate::cmd::report::Fetched {
        json: text("report_json")?,
        html: text("html")?,
        bundle,
    })
}

/// `medsec export …`: the event export's state on the current context's server.
#[derive(Subcommand)]
pub enum ExportCommand {
    /// Each configured sink: its positions, how far behind the audit log, its dead letters.
    Status,
    /// Events a sink refused for good, oldest first.
    DeadLetters {
        /// Only this sink's.
        #[arg(long)]
        sink: Option<String>,
        /// Most letters (1 to 1000).
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
}

/// `medsec export …`.
pub fn run_export(remote: &Remote, cmd: ExportCommand) -> Result<()> {
    let (client, format) = remote.open()?;
    match cmd {
        ExportCommand::Status => {
            let v = client.get("/api/v1/export/status")?;
            let rows = v.as_array().cloned().unwrap_or_default();
            output::print(
                format,
                &v,
                &rows,
                &[
                    col("SINK", "name"),
                    col("KIND", "kind"),
                    col("AUDIT POSITION", "audit_position"),
                    col("BEHIND", "audit_behind"),
                    col("ALERTS POSITION", "alerts_position"),
                    col("DEAD LETTERS", "dead_letters"),
                    wide(col("KINDS", "kinds")),
                    wide(col("MIN SEVERITY", "min_severity")),
                ],
            )
        }
        ExportCommand::DeadLetters { sink, limit } => {
            let q = query(&[("sink", sink), ("limit", Some(limit.to_string()))]);
            let v = client.get(&format!("/api/v1/export/dead-letters{q}"))?;
            let rows = v.as_array().cloned().unwrap_or_default();
            output::print(
                format,
                &v,
                &rows,
                &[
                    col("SINK", "sink"),
                    col("EVENT", "event_id"),
                    col("ATTEMPTS", "attempts"),
                    time("GIVEN UP", "at_ms"),
                    col("ERROR", "error"),
                    wide(col("BODY", "event")),
                ],
            )
        }
    }
}
