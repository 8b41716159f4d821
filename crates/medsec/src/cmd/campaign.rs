//! `medsec campaign`: create, control and watch update campaigns on the server's data
//! directory or database (the same store and audit log the server uses; changes made here and
//! by the server never overwrite each other).

use anyhow::{Context as _, Result, anyhow, bail};
use clap::Subcommand;
use medsec_campaign::{Release, Spec, WaveSize, WindowSpec};
use medsec_server::{audit_log, campaigns};
use medsec_store::prelude::*;

use crate::cmd::remote::Remote;
use crate::cmd::remote::client::{Body, segment};
use crate::cmd::remote::output::{self, Format, col, time};
use crate::cmd::server::{Location, cli_principal, now_ms, open_with_audit, runtime};

#[derive(Subcommand)]
pub enum CampaignCommand {
    /// Plan a campaign: select devices, split them into a canary and growing waves.
    Create(Box<CreateArgs>),
    /// Start a created campaign: its canary wave opens.
    Start(Named),
    /// Pause: nothing new is offered until resume.
    Pause(Named),
    /// Resume a paused campaign (a halted one cannot be resumed).
    Resume(Named),
    /// Abort for good.
    Abort(Named),
    /// Progress per wave (and per device with --devices).
    Status {
        #[command(flatten)]
        named: Named,
        /// List every device and where it is.
        #[arg(long)]
        devices: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Every campaign, newest first.
    List {
        #[command(flatten)]
        location: Location,
    },
}

#[derive(clap::Args)]
pub struct CreateArgs {
    #[command(flatten)]
    location: Location,
    /// Campaign name (its id).
    #[arg(long)]
    name: String,
    /// Release version devices will report.
    #[arg(long)]
    version: String,
    /// Release counter (anti-rollback).
    #[arg(long)]
    release_counter: i64,
    /// Target name in the image repository.
    #[arg(long)]
    target: String,
    /// Every device (filters narrow it).
    #[arg(long)]
    all: bool,
    /// Only this model.
    #[arg(long)]
    model: Option<String>,
    /// Only this site.
    #[arg(long)]
    site: Option<String>,
    /// Only members of this group.
    #[arg(long)]
    group: Option<String>,
    /// This device too (repeat).
    #[arg(long = "device")]
    devices: Vec<String>,
    /// Canary size: a count (10) or a percentage (5%).
    #[arg(long, default_value = "5%", value_parser = parse_wave_size)]
    canary: WaveSize,
    /// Each next wave is this many times the previous.
    #[arg(long, default_value_t = 2.0)]
    growth: f64,
    /// Halt when a wave's failures pass this fraction of it.
    #[arg(long, default_value_t = 0.1)]
    max_failure_rate: f64,
    /// Open the next wave when this fraction of the current one finished.
    #[arg(long, default_value_t = 0.9)]
    advance_when_finished: f64,
    /// Time an offered device has to report (e.g. 2h).
    #[arg(long, default_value = "2h", value_parser = crate::cmd::server::parse_duration_secs)]
    report_timeout: i64,
    /// Maintenance window of a site: 'SITE|CRON|MINUTES|TIME ZONE', e.g.
    /// 'north|0 2 * * SAT,SUN|180|Europe/Berlin' (repeat for several sites).
    #[arg(long = "window", value_parser = parse_window)]
    windows: Vec<(String, WindowSpec)>,
}

#[derive(clap::Args)]
pub struct Named {
    #[command(flatten)]
    location: Location,
    /// Campaign name.
    name: String,
}

fn parse_wave_size(s: &str) -> Result<WaveSize, String> {
    if let Some(p) = s.strip_suffix('%') {
        let p: f64 = p
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not a percentage"))?;
        return Ok(WaveSize::Percent(p));
    }
    s.parse()
        .map(WaveSize::Count)
        .map_err(|_| format!("{s:?} is neither a device count nor a percentage like 5%"))
}

fn parse_window(s: &str) -> Result<(String, WindowSpec), String> {
    WindowSpec::parse_line(s)
}

/// Runs one command: on the server host's store when a location is given (`--data-dir`,
/// `--config`, `--database-url`), else through the current context's server.
pub fn run(cmd: CampaignCommand, remote: &Remote) -> Result<()> {
    match cmd {
        CampaignCommand::Create(args) => {
            let CreateArgs {
                location,
                name,
                version,
                release_counter,
                target,
                all,
                model,
                site,
                group,
                devices,
                canary,
                growth,
                max_failure_rate,
                advance_when_finished,
                report_timeout,
                windows,
            } = *args;
            let mut spec = Spec::new(
                &name,
                Release {
                    version,
                    release_counter,
                    target,
                },
            );
            spec.canary = canary;
            spec.growth = growth;
            spec.max_failure_rate = max_failure_rate;
            spec.advance_when_finished = advance_when_finished;
            spec.report_timeout_ms = report_timeout.saturating_mul(1000);
            spec.windows = windows.into_iter().collect();
            let selection = campaigns::Selection {
                all,
                model,
                site,
                group,
                devices,
            };
            create(&location, remote, spec, &selection)
        }
        CampaignCommand::Start(n) => control(&n, remote, campaigns::Control::Start),
        CampaignCommand::Pause(n) => control(&n, remote, campaigns::Control::Pause),
        CampaignCommand::Resume(n) => control(&n, remote, campaigns::Control::Resume),
        CampaignCommand::Abort(n) => control(&n, remote, campaigns::Control::Abort),
        CampaignCommand::Status {
            named,
            devices,
            json,
        } => status(&named, remote, devices, json),
        CampaignCommand::List { location } => list(&location, remote),
    }
}

fn create(
    location: &Location,
    remote: &Remote,
    spec: Spec,
    selection: &campaigns::Selection,
) -> Result<()> {
    if !location.direct(remote) {
        let (client, format) = remote.open()?;
        let body = serde_json::json!({ "spec": spec, "selection": selection });
        let v = client.json("POST", "/api/v1/campaigns", Body::Json(&body))?;
        if matches!(format, Format::Json | Format::Yaml) {
            return output::print(format, &v, &[], &[]);
        }
        let waves: Vec<String> = v
            .get("waves")
            .and_then(|w| w.as_array())
            .into_iter()
            .flatten()
            .map(|w| w.get("size").map_or_else(String::new, ToString::to_string))
            .collect();
        println!(
            "campaign {} planned: waves of {}; start it with `medsec campaign start {}`",
            spec.name,
            waves.join(", "),
            spec.name
        );
        return Ok(());
    }
    let config = location.existing()?;
    runtime()?.block_on(async move {
        let (store, log) = open_with_audit(&config).await?;
        let image = medsec_server::open_image_repository(&config)?;
        let result = campaigns::create(
            &store,
            image.as_ref(),
            spec,
            selection,
            config.limits.max_campaign_devices,
            &cli_principal(),
            now_ms(),
        )
        .await;
        let outcome = match result {
            Ok(c) => {
                let mut e = audit_log::event(
                    "campaign",
                    &cli_principal(),
                    "campaign.create",
                    &format!("Campaign::{:?}", c.spec().name),
                    "info",
                );
                e.detail = format!(
                    "release {} (counter {}), {} device(s) in {} wave(s), on the command line",
                    c.spec().release.version,
                    c.spec().release.release_counter,
                    c.devices().count(),
                    c.waves().len()
                );
                log.record(e).await?;
                let sizes: Vec<String> = c.waves().iter().map(|w| w.len().to_string()).collect();
                println!(
                    "campaign {} planned: {} device(s), waves of {}; start it with `medsec campaign start {}`",
                    c.spec().name,
                    c.devices().count(),
                    sizes.join(", "),
                    c.spec().name
                );
                Ok(())
            }
            Err(e) => Err(anyhow!(e)),
        };
        store.close().await;
        outcome
    })
}

fn control(named: &Named, remote: &Remote, control: campaigns::Control) -> Result<()> {
    if !named.location.direct(remote) {
        let (client, format) = remote.open()?;
        let v = client.json(
            "POST",
            &format!(
                "/api/v1/campaigns/{}/{}",
                segment(&named.name),
                control.name()
            ),
            Body::None,
        )?;
        if matches!(format, Format::Json | Format::Yaml) {
            return output::print(format, &v, &[], &[]);
        }
        println!("campaign {} is {}", named.name, status_name(&v));
        return Ok(());
    }
    let config = named.location.existing()?;
    runtime()?.block_on(async move {
        let (store, log) = open_with_audit(&config).await?;
        let result = campaigns::control(&store, &named.name, control, now_ms()).await;
        let outcome = match result {
            Ok(c) => {
                let mut e = audit_log::event(
                    "campaign",
                    &cli_principal(),
                    &format!("campaign.{}", control.name()),
                    &format!("Campaign::{:?}", named.name),
                    "info",
                );
                e.detail = format!("now {}, on the command line", c.status().name());
                log.record(e).await?;
                println!("campaign {} is {}", named.name, c.status().name());
                Ok(())
            }
            Err(medsec_server::Error::Store(medsec_store::Error::NotFound { .. })) => {
                Err(anyhow!("no campaign {:?}", named.name))
            }
            Err(e) => Err(anyhow!(e)),
        };
        store.close().await;
        outcome
    })
}

fn bar(done: usize, failed: usize, size: usize) -> String {
    const WIDTH: usize = 30;
    if size == 0 {
        return String::new();
    }
    let ok = done * WIDTH / size;
    let bad = (failed * WIDTH).div_ceil(size).min(WIDTH - ok);
    format!(
        "[{}{}{}]",
        "#".repeat(ok),
        "x".repeat(bad),
        ".".repeat(WIDTH - ok - bad)
    )
}

/// A campaign view's status name (`{"status": {"status": "halted", "reason": …}}`).
fn status_name(v: &serde_json::Value) -> String {
    v.pointer("/status/status")
        .and_then(|s| s.as_str())
        .unwrap_or("-")
        .to_owned()
}

fn status(named: &Named, remote: &Remote, devices: bool, json: bool) -> Result<()> {
    if !named.location.direct(remote) {
        let (client, format) = remote.open_with_json(json)?;
        let v = client.get(&format!(
            "/api/v1/campaigns/{}?devices={devices}",
            segment(&named.name)
        ))?;
        if matches!(format, Format::Json | Format::Yaml) {
            return output::print(format, &v, &[], &[]);
        }
        let release = v.get("release").cloned().unwrap_or_default();
        println!(
            "campaign {}: {} — release {} (counter {}, target {})",
            named.name,
            status_name(&v),
            release
                .get("version")
                .and_then(|x| x.as_str())
                .unwrap_or("-"),
            release
                .get("release_counter")
                .unwrap_or(&serde_json::Value::Null),
            release
                .get("target")
                .and_then(|x| x.as_str())
                .unwrap_or("-"),
        );
        if let Some(reason) = v.pointer("/status/reason").and_then(|r| r.as_str()) {
            println!("  halted: {reason}");
        }
        let n = |w: &serde_json::Value, k: &str| {
            w.get(k)
                .and_then(serde_json::Value::as_u64)
                .and_then(|x| usize::try_from(x).ok())
                .unwrap_or(0)
        };
        for w in v
            .get("waves")
            .and_then(|w| w.as_array())
            .into_iter()
            .flatten()
        {
            println!(
                "  wave {:<2} {} {:>5}/{:<5} succeeded {:>4} failed {:>4} deferred {:>4} installing {:>4} waiting{}",
                n(w, "wave"),
                bar(n(w, "succeeded"), n(w, "failed"), n(w, "size")),
                n(w, "succeeded"),
                n(w, "size"),
                n(w, "failed"),
                n(w, "deferred"),
                n(w, "offered"),
                n(w, "waiting"),
                if w.get("open").and_then(serde_json::Value::as_bool) == Some(true) {
                    ""
                } else {
                    "  (not open)"
                }
            );
        }
        for d in v
            .get("devices")
            .and_then(|d| d.as_array())
            .into_iter()
            .flatten()
        {
            println!(
                "  {:<24} wave {:<2} {}",
                d.get("device").and_then(|x| x.as_str()).unwrap_or("-"),
                n(d, "wave"),
                d.get("progress")
                    .map_or_else(String::new, ToString::to_string)
            );
        }
        return Ok(());
    }
    let config = named.location.existing()?;
    runtime()?.block_on(async move {
        medsec_server::prepare_data_dir(&config)?;
        let store = medsec_server::open_store(&config).await?;
        let row = store.campaign(&named.name).await;
        store.close().await;
        let row = match row {
            Err(medsec_store::Error::NotFound { .. }) => bail!("no campaign {:?}", named.name),
            other => other?,
        };
        let c = campaigns::load(&row)?;
        if json {
            let v = campaigns::view(&row, &c, devices);
            println!("{}", serde_json::to_string_pretty(&v)?);
            return Ok(());
        }
        let release = &c.spec().release;
        println!(
            "campaign {}: {} — release {} (counter {}, target {})",
            row.id,
            c.status().name(),
            release.version,
            release.release_counter,
            release.target
        );
        if let medsec_campaign::Status::Halted { reason, .. } = c.status() {
            println!("  halted: {reason}");
        }
        for w in c.progress() {
            println!(
                "  wave {:<2} {} {:>5}/{:<5} succeeded {:>4} failed {:>4} deferred {:>4} installing {:>4} waiting{}",
                w.wave,
                bar(w.succeeded, w.failed, w.size),
                w.succeeded,
                w.size,
                w.failed,
                w.deferred,
                w.offered,
                w.waiting,
                if w.open { "" } else { "  (not open)" }
            );
        }
        if devices {
            for (id, wave, state) in c.devices() {
                println!(
                    "  {id:<24} wave {wave:<2} {}",
                    serde_json::to_string(state).context("device state")?
                );
            }
        }
        Ok(())
    })
}

fn list(location: &Location, remote: &Remote) -> Result<()> {
    if !location.direct(remote) {
        let (client, format) = remote.open()?;
        let v = client.get("/api/v1/campaigns")?;
        let mut rows = v.as_array().cloned().unwrap_or_default();
        for r in &mut rows {
            let name = status_name(r);
            let waves = r
                .get("waves")
                .and_then(|w| w.as_array())
                .cloned()
                .unwrap_or_default();
            let sum = |k: &str| waves.iter().filter_map(|w| w.get(k)?.as_u64()).sum::<u64>();
            if let Some(o) = r.as_object_mut() {
                o.insert("state".into(), name.into());
                o.insert(
                    "done".into(),
                    format!("{}/{}", sum("succeeded"), sum("size")).into(),
                );
                o.insert("failed".into(), sum("failed").into());
            }
        }
        return output::print(
            format,
            &v,
            &rows,
            &[
                col("NAME", "id"),
                col("STATUS", "state"),
                col("RELEASE", "release.version"),
                col("SUCCEEDED", "done"),
                col("FAILED", "failed"),
                time("UPDATED", "updated_at_ms"),
                output::wide(col("TARGET", "release.target")),
                output::wide(col("CREATED BY", "created_by")),
            ],
        );
    }
    let config = location.existing()?;
    runtime()?.block_on(async move {
        medsec_server::prepare_data_dir(&config)?;
        let store = medsec_server::open_store(&config).await?;
        let rows = store.campaigns().await;
        store.close().await;
        for row in rows? {
            let c = campaigns::load(&row)?;
            let total: usize = c.progress().iter().map(|w| w.size).sum();
            let done: usize = c.progress().iter().map(|w| w.succeeded).sum();
            println!(
                "{:<24} {:<10} release {:<12} {done}/{total} succeeded",
                row.id,
                c.status().name(),
                c.spec().release.version
            );
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wave_sizes_and_windows_parse() {
        assert_eq!(parse_wave_size("10"), Ok(WaveSize::Count(10)));
        assert_eq!(parse_wave_size("5%"), Ok(WaveSize::Percent(5.0)));
        assert!(parse_wave_size("five").is_err());
        let (site, w) = parse_window("north|0 2 * * SAT,SUN|180|Europe/Berlin").unwrap();
        assert_eq!(site, "north");
        assert_eq!(
            (w.cron.as_str(), w.duration_minutes, w.time_zone.as_str()),
            ("0 2 * * SAT,SUN", 180, "Europe/Berlin")
        );
        assert!(parse_window("north|0 2 * * *|180").is_err());
        assert!(parse_window("north|0 2 * * *|long|UTC").is_err());
    }
}
