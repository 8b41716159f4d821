//! `medsec server`, `medsec fleet`, `medsec operator`, `medsec audit` and `medsec policy`: the
//! server and the commands that work on its data directory or database directly.

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::{Context as _, Result, anyhow, bail};
use clap::{Args, Subcommand};
use medsec_server::authz::{Policies, RequestContext, Subject, Target};
use medsec_server::{Config, DataDir, Overrides, audit_log, tokens};
use medsec_store::prelude::*;

/// Where the server's configuration and data are.
#[derive(Args, Clone)]
pub struct Location {
    /// TOML configuration file (see docs/server.md); MEDSEC_* variables and flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Data directory (CA, keys, SQLite database).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Database URL: sqlite://PATH or postgres://USER@HOST/DB[?search_path=SCHEMA].
    #[arg(long)]
    database_url: Option<String>,
}

impl Location {
    pub(crate) fn load(
        &self,
        device: Option<SocketAddr>,
        operator: Option<SocketAddr>,
    ) -> Result<Config> {
        let overrides = Overrides {
            data_dir: self.data_dir.clone(),
            database_url: self.database_url.clone(),
            device_listen: device,
            operator_listen: operator,
        };
        Ok(Config::load(self.config.as_deref(), &overrides)?)
    }

    /// Whether a location was named (a flag, or MEDSEC_DATA_DIR / MEDSEC_DATABASE_URL):
    /// commands that can also work remotely read the store only then.
    pub(crate) fn given(&self) -> bool {
        self.config.is_some()
            || self.data_dir.is_some()
            || self.database_url.is_some()
            || std::env::var_os("MEDSEC_DATA_DIR").is_some()
            || std::env::var_os("MEDSEC_DATABASE_URL").is_some()
    }

    /// Whether a command that works both ways reads the store here rather than asking the
    /// current context's server: with a location given, yes; with a context selected
    /// (`--context`, `MEDSEC_CONTEXT`, or a current one), no; otherwise yes when the default
    /// data directory exists here (on the server host, run from beside its data), so that
    /// nothing is ever created and a missing directory or context is named by the error.
    pub(crate) fn direct(&self, remote: &crate::cmd::remote::Remote) -> bool {
        if self.given() {
            return true;
        }
        if remote.context.is_some() {
            return false;
        }
        let has_context =
            crate::cmd::remote::context::Contexts::load().is_ok_and(|c| c.current.is_some());
        !has_context
            && self
                .load(None, None)
                .is_ok_and(|c| DataDir::new(&c.data_dir).ca().join("state.json").exists())
    }

    /// The configuration of an existing data directory. Only `medsec server` and `medsec init`
    /// create one: a command run from the wrong directory must fail naming the directory and
    /// the fix, never answer from a fresh, empty fleet.
    pub(crate) fn existing(&self) -> Result<Config> {
        let config = self.load(None, None)?;
        let dir = &config.data_dir;
        if !DataDir::new(dir).ca().join("state.json").exists() {
            let shown = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
            bail!(
                "{} is not a medsec data directory (no fleet CA in it){}. On the server host pass \
                 --data-dir DIR or --config FILE; from anywhere else use `medsec login URL --ca \
                 chain.pem` and the remote commands (`medsec device list`, `medsec alerts list`, \
                 …); `medsec init --data-dir DIR` creates a new one",
                shown.display(),
                if self.given() {
                    ""
                } else {
                    " and no --data-dir was given"
                }
            );
        }
        Ok(config)
    }
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

pub(crate) use medsec_util::now_ms;

/// A duration (`90s`, `15m`, `24h`, `7d`; medsec-util's one rule) in whole seconds, as tokens'
/// lifetimes and the campaign's report timeout are stored.
pub fn parse_duration_secs(s: &str) -> Result<i64, String> {
    medsec_util::parse_duration(s).map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// `medsec init`: the data directory, its fleet CA, server certificate and audit key, and the
/// database with its migrations, as the server's first start would make them.
pub fn init(location: &Location) -> Result<()> {
    let config = location.load(None, None)?;
    let existed = DataDir::new(&config.data_dir)
        .ca()
        .join("state.json")
        .exists();
    medsec_server::prepare_data_dir(&config)?;
    runtime()?.block_on(async {
        let store = medsec_server::open_store(&config).await?;
        store.close().await;
        anyhow::Ok(())
    })?;
    println!(
        "{} {} (fleet CA in {}; database {})",
        if existed {
            "data directory is ready:"
        } else {
            "created the data directory"
        },
        config.data_dir.display(),
        DataDir::new(&config.data_dir).ca().display(),
        medsec_store::mask_password(&config.database_url())
    );
    Ok(())
}

/// Runs the server until interrupted.
pub fn serve(
    location: &Location,
    device_listen: Option<SocketAddr>,
    operator_listen: Option<SocketAddr>,
    insecure_plaintext_audit_key: bool,
) -> Result<()> {
    let mut config = location.load(device_listen, operator_listen)?;
    config.insecure_plaintext_audit_key |= insecure_plaintext_audit_key;
    runtime()?.block_on(async move {
        let data_dir = config.data_dir.clone();
        let server = medsec_server::Server::start(config).await?;
        let key = audit_log::read_public_key(&DataDir::new(&data_dir).audit_pub())?;
        // The banner must not kill the server when whoever started it stopped reading its
        // output (`medsec server | head -1`): println! would panic on the closed pipe.
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "medsec server: device port https://{} (mutual TLS 1.3; EST at /.well-known/est/), \
             operator port https://{} (API tokens)",
            server.device_addr, server.operator_addr
        );
        let _ = writeln!(
            out,
            "data in {}; trust anchor {}; audit log key {} {}",
            data_dir.display(),
            DataDir::new(&data_dir).ca().join("chain.pem").display(),
            key.scheme(),
            key.to_tuf_public()
        );
        drop(out);
        tokio::signal::ctrl_c()
            .await
            .context("waiting for Ctrl-C")?;
        let _ = writeln!(std::io::stdout(), "medsec server: stopping");
        server.state.store.close().await;
        Ok(())
    })
}

#[derive(Subcommand)]
pub enum FleetCommand {
    /// Enrolment tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// The device inventory.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// `medsec inventory model`, under its old name.
    #[command(subcommand, hide = true)]
    Model(crate::cmd::inventory::RecordCommand),
    /// `medsec inventory vendor`, under its old name.
    #[command(subcommand, hide = true)]
    Vendor(crate::cmd::inventory::RecordCommand),
    /// `medsec inventory support`, under its old name.
    #[command(hide = true)]
    Support {
        #[command(flatten)]
        location: Location,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Inventory fields given on the command line; those left out keep their value.
#[derive(Args, Clone, Default)]
pub struct InventoryArgs {
    /// Model.
    #[arg(long)]
    model: Option<String>,
    /// Hardware id firmware must target.
    #[arg(long)]
    hardware_id: Option<String>,
    /// Site (hospital, ward).
    #[arg(long)]
    site: Option<String>,
    /// Group (repeat for several; replaces the device's groups).
    #[arg(long = "group")]
    groups: Vec<String>,
    /// Remove the device from all groups.
    #[arg(long, conflicts_with = "groups")]
    no_groups: bool,
}

impl InventoryArgs {
    pub(crate) fn patch(self) -> medsec_server::inventory::InventoryPatch {
        medsec_server::inventory::InventoryPatch {
            model: self.model,
            hardware_id: self.hardware_id,
            site: self.site,
            groups: if self.no_groups {
                Some(Vec::new())
            } else if self.groups.is_empty() {
                None
            } else {
                Some(self.groups)
            },
        }
    }
}

#[derive(Subcommand)]
pub enum DeviceCommand {
    /// List devices in id order, optionally only those of one model, site or group.
    List {
        #[command(flatten)]
        location: Location,
        /// Only this model.
        #[arg(long)]
        model: Option<String>,
        /// Only this site.
        #[arg(long)]
        site: Option<String>,
        /// Only members of this group.
        #[arg(long)]
        group: Option<String>,
        /// Print JSON (one array) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Change a device's model, hardware id, site or groups.
    Update {
        #[command(flatten)]
        location: Location,
        /// The device's id.
        device: String,
        #[command(flatten)]
        inventory: InventoryArgs,
    },
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Register a device (if new) and print a one-time enrolment token for it.
    Create {
        #[command(flatten)]
        location: Location,
        /// The device's id.
        #[arg(long)]
        device: String,
        /// How long the token works (e.g. 1h, 24h, 7d).
        #[arg(long, default_value = "24h", value_parser = parse_duration_secs)]
        ttl: i64,
        #[command(flatten)]
        inventory: InventoryArgs,
        /// Give a decommissioned device's name to a device again.
        #[arg(long)]
        re_register: bool,
    },
    /// List enrolment tokens (never their secrets): id, device, state, who made them.
    List {
        #[command(flatten)]
        location: Location,
        /// Only this device's tokens.
        #[arg(long)]
        device: Option<String>,
        /// Print JSON (one array) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke an unused enrolment token by the id `list` shows; it is refused from then on.
    Revoke {
        #[command(flatten)]
        location: Location,
        /// The token's id (16 hex digits).
        id: String,
    },
}

#[derive(Subcommand)]
pub enum OperatorCommand {
    /// Operator API tokens.
    #[command(subcommand)]
    Token(OperatorTokenCommand),
    /// Print a one-time sign-in link to the web console (valid 10 minutes, used once), made on
    /// the server host: the break-glass and first way in before single sign-on is set up.
    ConsoleLink {
        #[command(flatten)]
        location: Location,
        /// Operator name (what the audit log records).
        #[arg(long)]
        name: String,
        /// Role (repeat): admin, security, enroller, release, viewer, auditor, monitor.
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// The console's address as browsers reach it (default: https:// and the configured
        /// operator_listen).
        #[arg(long)]
        url: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum OperatorTokenCommand {
    /// Print a new operator token with the given roles.
    Create {
        #[command(flatten)]
        location: Location,
        /// Operator name.
        #[arg(long)]
        name: String,
        /// Role (repeat): admin, security, enroller, release, viewer, auditor (reads the audit
        /// log only: for witnesses).
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// How long the token works.
        #[arg(long, default_value = "8h", value_parser = parse_duration_secs)]
        ttl: i64,
    },
    /// List operator tokens (never their secrets): id, operator, roles, state.
    List {
        #[command(flatten)]
        location: Location,
        /// Print JSON (one array) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke an operator token by the id `list` shows; its next request is refused.
    Revoke {
        #[command(flatten)]
        location: Location,
        /// The token's id (16 hex digits).
        id: String,
    },
}

/// Opens the store and the audit writer the way the server does, for commands that change state.
pub(crate) async fn open_with_audit(
    config: &Config,
) -> Result<(medsec_store::AnyStore, audit_log::AuditLog)> {
    medsec_server::prepare_data_dir(config)?;
    let store = medsec_server::open_store(config).await?;
    let key = medsec_server::audit_key(config)?;
    let log = audit_log::AuditLog::start(store.clone(), key, 1024, 1024).await?;
    Ok((store, log))
}

/// Who runs an admin command on the server host, for its audit entries: the login name
/// (`USER`, `LOGNAME`), else the name `/etc/passwd` gives the process's user id, else that id.
/// Never "unknown": an entry must name who acted.
pub(crate) fn cli_principal() -> String {
    format!("Cli::{:?}", os_user())
}

fn os_user() -> String {
    for var in ["USER", "LOGNAME"] {
        if let Ok(name) = std::env::var(var)
            && !name.trim().is_empty()
        {
            return name;
        }
    }
    let uid = rustix::process::getuid().as_raw();
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|passwd| {
            passwd.lines().find_map(|line| {
                let mut fields = line.split(':');
                let name = fields.next()?;
                (fields.nth(1)? == uid.to_string()).then(|| name.to_owned())
            })
        })
        .unwrap_or_else(|| format!("uid {uid}"))
}

pub fn run_fleet(cmd: FleetCommand) -> Result<()> {
    match cmd {
        FleetCommand::Token(TokenCommand::Create {
            location,
            device,
            ttl,
            inventory,
            re_register,
        }) => create_token(&location, &device, ttl, inventory.patch(), re_register),
        FleetCommand::Token(TokenCommand::List {
            location,
            device,
            json,
        }) => list_enrolment_tokens(&location, device.as_deref(), json),
        FleetCommand::Token(TokenCommand::Revoke { location, id }) => {
            revoke_enrolment_token(&location, &id)
        }
        FleetCommand::Device(DeviceCommand::List {
            location,
            model,
            site,
            group,
            json,
        }) => list_devices(&location, model, site, group, json),
        FleetCommand::Device(DeviceCommand::Update {
            location,
            device,
            inventory,
        }) => update_device(&location, &device, &inventory.patch()),
        FleetCommand::Model(cmd) => crate::cmd::inventory::run(
            crate::cmd::inventory::InventoryCommand::Model(cmd),
            &crate::cmd::remote::Remote::default(),
        ),
        FleetCommand::Vendor(cmd) => crate::cmd::inventory::run(
            crate::cmd::inventory::InventoryCommand::Vendor(cmd),
            &crate::cmd::remote::Remote::default(),
        ),
        FleetCommand::Support { location, json } => crate::cmd::inventory::run(
            crate::cmd::inventory::InventoryCommand::Support { location, json },
            &crate::cmd::remote::Remote::default(),
        ),
    }
}

fn list_devices(
    location: &Location,
    model: Option<String>,
    site: Option<String>,
    group: Option<String>,
    json: bool,
) -> Result<()> {
    let config = location.existing()?;
    runtime()?.block_on(async move {
        medsec_server::prepare_data_dir(&config)?;
        let store = medsec_server::open_store(&config).await?;
        let all = medsec_server::inventory::records::devices_matching(
            &store,
            medsec_store::DeviceQuery {
                model,
                site,
                group,
                ..medsec_store::DeviceQuery::default()
            },
        )
        .await;
        store.close().await;
        let all = all?;
        if json {
            println!("{}", serde_json::to_string_pretty(&all)?);
            return Ok(());
        }
        println!(
            "{:<24} {:<20} {:<12} {:<16} {:<14} {:<12} GROUPS",
            "DEVICE", "MODEL", "STATE", "HARDWARE ID", "SITE", "VERSION"
        );
        for d in &all {
            println!(
                "{:<24} {:<20} {:<12} {:<16} {:<14} {:<12} {}",
                d.id,
                d.model,
                d.state,
                d.hardware_id,
                d.site,
                d.installed_version,
                d.groups.join(",")
            );
        }
        eprintln!("{} device(s)", all.len());
        Ok(())
    })
}

fn update_device(
    location: &Location,
    device: &str,
    patch: &medsec_server::inventory::InventoryPatch,
) -> Result<()> {
    let config = location.existing()?;
    let device = medsec_pki::DeviceId::new(device)?;
    if patch.is_empty() {
        bail!("nothing to change: give --model, --hardware-id, --site, --group or --no-groups");
    }
    runtime()?.block_on(async move {
        let (store, log) = open_with_audit(&config).await?;
        let result = medsec_server::inventory::update(&store, device.as_str(), patch).await;
        if let Ok(updated) = &result {
            let mut e = audit_log::event(
                "inventory",
                &cli_principal(),
                "device.update",
                &format!("Device::{:?}", device.as_str()),
                "info",
            );
            e.detail = format!("{}, on the command line", patch.describe());
            log.record(e).await?;
            println!("{}", serde_json::to_string_pretty(updated)?);
        }
        store.close().await;
        result.map(|_| ()).map_err(|e| match e {
            medsec_server::Error::Store(medsec_store::Error::NotFound { .. }) => {
                anyhow!("no device {:?}", device.as_str())
            }
            other => other.into(),
        })
    })
}

fn create_token(
    location: &Location,
    device: &str,
    ttl: i64,
    inventory: medsec_server::inventory::InventoryPatch,
    re_register: bool,
) -> Result<()> {
    let config = location.existing()?;
    let device = medsec_pki::DeviceId::new(device)?;
    runtime()?.block_on(async move {
        let (store, log) = open_with_audit(&config).await?;
        let token = tokens::create_enrolment_token(
            &store,
            &device,
            &inventory,
            &cli_principal(),
            now_ms(),
            ttl,
            re_register,
        )
        .await?;
        let mut e = audit_log::event(
            "token",
            &cli_principal(),
            "token.create",
            &format!("Device::{:?}", device.as_str()),
            "info",
        );
        e.detail = format!("enrolment token valid {ttl}s, made on the command line");
        if !inventory.is_empty() {
            e.detail = format!("{}; {}", e.detail, inventory.describe());
        }
        log.record(e).await?;
        store.close().await;
        println!("{token}");
        eprintln!(
            "one-time enrolment token for {} (valid {ttl}s); it is shown only now",
            device.as_str()
        );
        Ok(())
    })
}

fn list_enrolment_tokens(location: &Location, device: Option<&str>, json: bool) -> Result<()> {
    let config = location.existing()?;
    runtime()?.block_on(async move {
        medsec_server::prepare_data_dir(&config)?;
        let store = medsec_server::open_store(&config).await?;
        let all = store.enrolment_tokens(device).await;
        store.close().await;
        let now = now_ms();
        let all: Vec<_> = all?
            .iter()
            .map(|t| tokens::enrolment_view(t, now))
            .collect();
        if json {
            println!("{}", serde_json::to_string_pretty(&all)?);
            return Ok(());
        }
        println!(
            "{:<16}  {:<24} {:<8} {:<20} EXPIRES",
            "ID", "DEVICE", "STATE", "MADE BY"
        );
        for t in &all {
            println!(
                "{:<16}  {:<24} {:<8} {:<20} {}",
                t.id,
                t.device,
                t.state,
                t.created_by,
                medsec_risk::compliance::rfc3339(t.expires_at_ms)
            );
        }
        eprintln!("{} enrolment token(s)", all.len());
        Ok(())
    })
}

fn revoke_enrolment_token(location: &Location, id: &str) -> Result<()> {
    revoke_token(
        location,
        id,
        "enrolment token",
        "token.revoke",
        async |store| {
            let token = tokens::revoke_enrolment_token(store, id, now_ms()).await?;
            Ok((
                format!("Device::{:?}", token.device_id),
                format!("for {} revoked; it can no longer enrol", token.device_id),
            ))
        },
    )
}

/// Revokes a token beside a running server: `revoke` takes it back and says which resource
/// the audit entry names and what to tell the user; a revocation is audited as `action`.
fn revoke_token(
    location: &Location,
    id: &str,
    what: &str,
    action: &str,
    revoke: impl AsyncFnOnce(&medsec_store::AnyStore) -> Result<(String, String)>,
) -> Result<()> {
    let config = location.existing()?;
    runtime()?.block_on(async move {
        let (store, log) = open_with_audit(&config).await?;
        let result = revoke(&store).await;
        if let Ok((resource, _)) = &result {
            let mut e = audit_log::event("token", &cli_principal(), action, resource, "info");
            e.detail = format!("{what} {id} revoked on the command line");
            log.record(e).await?;
        }
        store.close().await;
        let (_, outcome) = result?;
        eprintln!("{what} {id} {outcome}");
        Ok(())
    })
}

fn list_operator_tokens(location: &Location, json: bool) -> Result<()> {
    let config = location.existing()?;
    runtime()?.block_on(async move {
        medsec_server::prepare_data_dir(&config)?;
        let store = medsec_server::open_store(&config).await?;
        let all = store.operator_tokens().await;
        store.close().await;
        let now = now_ms();
        let all: Vec<_> = all?.iter().map(|t| tokens::operator_view(t, now)).collect();
        if json {
            println!("{}", serde_json::to_string_pretty(&all)?);
            return Ok(());
        }
        println!(
            "{:<16}  {:<20} {:<8} {:<24} ROLES",
            "ID", "OPERATOR", "STATE", "EXPIRES"
        );
        for t in &all {
            println!(
                "{:<16}  {:<20} {:<8} {:<24} {}",
                t.id,
                t.name,
                t.state,
                medsec_risk::compliance::rfc3339(t.expires_at_ms),
                t.roles.join(",")
            );
        }
        eprintln!("{} operator token(s)", all.len());
        Ok(())
    })
}

fn revoke_operator_token(location: &Location, id: &str) -> Result<()> {
    revoke_token(
        location,
        id,
        "operator token",
        "operator.token.revoke",
        async |store| {
            let token = tokens::revoke_operator_token(store, id, now_ms()).await?;
            Ok((
                format!("Operator::{:?}", token.name),
                format!("of {} revoked; its next request is refused", token.name),
            ))
        },
    )
}

pub fn run_operator(cmd: OperatorCommand, remote: &crate::cmd::remote::Remote) -> Result<()> {
    let (location, name, roles, ttl) = match cmd {
        OperatorCommand::Token(OperatorTokenCommand::Create {
            location,
            name,
            roles,
            ttl,
        }) => (location, name, roles, ttl),
        OperatorCommand::Token(OperatorTokenCommand::List { location, json }) => {
            if !location.direct(remote) {
                return crate::cmd::remote::records::operator_tokens(remote, json);
            }
            return list_operator_tokens(&location, json);
        }
        OperatorCommand::Token(OperatorTokenCommand::Revoke { location, id }) => {
            if !location.direct(remote) {
                return crate::cmd::remote::records::revoke_operator_token(remote, &id);
            }
            return revoke_operator_token(&location, &id);
        }
        OperatorCommand::ConsoleLink {
            location,
            name,
            roles,
            url,
        } => return console_link(&location, &name, &roles, url.as_deref()),
    };
    let config = location.existing()?;
    runtime()?.block_on(async move {
        let (store, log) = open_with_audit(&config).await?;
        let token = tokens::create_operator_token(&store, &name, &roles, now_ms(), ttl).await?;
        let mut e = audit_log::event(
            "token",
            &cli_principal(),
            "operator.token.create",
            &format!("Operator::{name:?}"),
            "info",
        );
        e.detail = format!("roles {}, valid {ttl}s", roles.join(","));
        log.record(e).await?;
        store.close().await;
        println!("{token}");
        eprintln!(
            "operator token for {name} ({}); it is shown only now",
            roles.join(", ")
        );
        Ok(())
    })
}

/// `medsec operator console-link`: a one-time sign-in link, audited as made by the host
/// account.
fn console_link(
    location: &Location,
    name: &str,
    roles: &[String],
    url: Option<&str>,
) -> Result<()> {
    let config = location.existing()?;
    let base = url.map_or_else(
        || format!("https://{}", config.operator_listen),
        |u| u.trim_end_matches('/').to_owned(),
    );
    runtime()?.block_on(async move {
        let (store, log) = open_with_audit(&config).await?;
        let person = medsec_server::sessions::Person {
            principal: name.to_owned(),
            display_name: name.to_owned(),
            roles: roles.to_vec(),
        };
        let secret = medsec_server::sessions::make_link(&store, &person, now_ms()).await?;
        let mut e = audit_log::event(
            "console",
            &cli_principal(),
            "console.link",
            &format!("Operator::{name:?}"),
            "info",
        );
        e.detail = format!("one-time console sign-in link, roles {}", roles.join(","));
        log.record(e).await?;
        store.close().await;
        println!("{base}/ui/login/link/{secret}");
        eprintln!(
            "one-time sign-in link for {name} ({}): it works once, within {} minutes",
            roles.join(", "),
            medsec_server::sessions::LINK_SECS / 60
        );
        Ok(())
    })
}

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Load and strictly validate the schema and policies.
    Validate {
        /// Policy directory (default: the shipped policies).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Print every policy with its id.
    List {
        /// Policy directory (default: the shipped policies).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Decide one request and say which policies decided it.
    Check {
        /// Policy directory (default: the shipped policies).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The principal as a device id.
        #[arg(long, conflicts_with = "operator")]
        device: Option<String>,
        /// Device state (registered, enrolled, revoked).
        #[arg(long, default_value = "enrolled")]
        state: String,
        /// Whether the device is quarantined.
        #[arg(long)]
        quarantined: bool,
        /// The principal as an operator name.
        #[arg(long)]
        operator: Option<String>,
        /// Operator role (repeat).
        #[arg(long = "role")]
        roles: Vec<String>,
        /// Action, e.g. device.read.
        #[arg(long)]
        action: String,
        /// Resource: device:ID, fleet or audit.
        #[arg(long)]
        resource: String,
        /// Credential: fleet-certificate (default for devices), manufacturer-certificate,
        /// enrolment-token, operator-token (default for operators).
        #[arg(long)]
        credential: Option<String>,
        /// Source address.
        #[arg(long, default_value = "127.0.0.1")]
        source: IpAddr,
    },
}

fn policies(dir: Option<&PathBuf>) -> Result<Policies> {
    Ok(match dir {
        Some(d) => Policies::from_dir(d)?,
        None => Policies::shipped()?,
    })
}

const CREDENTIALS: &[&str] = &[
    "fleet-certificate",
    "manufacturer-certificate",
    "enrolment-token",
    "operator-token",
    "console-session",
];

pub fn run_policy(cmd: PolicyCommand) -> Result<()> {
    match cmd {
        PolicyCommand::Validate { dir } => {
            let p = policies(dir.as_ref())?;
            println!(
                "{} policies validate strictly against the schema",
                p.list().len()
            );
        }
        PolicyCommand::List { dir } => {
            for (id, text) in policies(dir.as_ref())?.list() {
                println!("# {id}\n{text}\n");
            }
        }
        PolicyCommand::Check {
            dir,
            device,
            state,
            quarantined,
            operator,
            roles,
            action,
            resource,
            credential,
            source,
        } => {
            let p = policies(dir.as_ref())?;
            let (subject, default_credential) = match (device, operator) {
                (Some(id), None) => (
                    Subject::Device {
                        id,
                        model: "unspecified".into(),
                        state,
                        quarantined,
                    },
                    "fleet-certificate",
                ),
                (None, Some(name)) => (Subject::Operator { name, roles }, "operator-token"),
                _ => bail!("name the principal with --device ID or --operator NAME"),
            };
            let target = match resource.split_once(':') {
                Some(("device", id)) => Target::Device(id.to_owned()),
                None if resource == "fleet" => Target::Fleet,
                None if resource == "audit" => Target::AuditLog,
                _ => bail!("resource {resource:?}: use device:ID, fleet or audit"),
            };
            let credential = credential.as_deref().unwrap_or(default_credential);
            let credential = CREDENTIALS
                .iter()
                .find(|c| **c == credential)
                .ok_or_else(|| {
                    anyhow!("credential {credential:?}: use {}", CREDENTIALS.join(", "))
                })?;
            let now = now_ms() / 1000;
            let d = p.decide(
                &subject,
                &action,
                &target,
                &RequestContext {
                    time: now,
                    source,
                    credential,
                },
            )?;
            println!(
                "{} {} {action} {}",
                if d.allowed { "ALLOW" } else { "DENY " },
                subject.label(),
                target.label()
            );
            if d.policies.is_empty() {
                println!("  no policy permits this (default deny)");
            }
            for id in &d.policies {
                println!("  decided by {id}");
            }
            for e in &d.errors {
                println!("  error: {e}");
            }
            if !d.allowed {
                std::process::exit(2);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_duration_secs;

    #[test]
    fn durations_come_in_whole_seconds_and_need_a_unit() {
        assert_eq!(parse_duration_secs("90s"), Ok(90));
        assert_eq!(parse_duration_secs("15m"), Ok(900));
        assert_eq!(parse_duration_secs("24h"), Ok(86_400));
        assert_eq!(parse_duration_secs("7d"), Ok(604_800));
        let e = parse_duration_secs("90").unwrap_err();
        assert!(e.contains("no unit"), "{e}");
        assert!(parse_duration_secs("1w").is_err());
        assert!(parse_duration_secs("h").is_err());
        assert!(parse_duration_secs("99999999999999999999d").is_err());
    }
}
