//! `medsec mqtt`: the MQTT broker in front of telemetry ingestion.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;

use crate::cmd::server::Location;

/// MQTT telemetry ingestion (docs/defender.md).
#[derive(Subcommand)]
pub enum MqttCommand {
    /// Write a Mosquitto configuration whose clients are authenticated by fleet certificates:
    /// the broker's certificate from the fleet CA, the fleet chain and CRL, the device id taken
    /// from the certificate, and an ACL letting each device publish only its own telemetry.
    /// Start the broker with `mosquitto -c DIR/mosquitto.conf`, then set `mqtt.broker`.
    BrokerConfig {
        #[command(flatten)]
        location: Location,
        /// Where to write mosquitto.conf, the ACL and the broker's certificate and key.
        #[arg(long)]
        dir: PathBuf,
        /// The broker's TLS listener.
        #[arg(long, default_value = "127.0.0.1:8883")]
        listen: SocketAddr,
        /// Names and addresses in the broker's certificate (repeat; default: the listen
        /// address).
        #[arg(long = "hostname")]
        hostnames: Vec<String>,
        /// The user Mosquitto runs as when started as root (its `user` option; Mosquitto's
        /// default is `mosquitto`). The broker's key is readable by its owner only: give that
        /// user, or hand the key to the broker's user.
        #[arg(long)]
        run_as: Option<String>,
    },
}

pub fn run(cmd: MqttCommand) -> Result<()> {
    match cmd {
        MqttCommand::BrokerConfig {
            location,
            dir,
            listen,
            mut hostnames,
            run_as,
        } => {
            let config = location.existing()?;
            if hostnames.is_empty() {
                hostnames.push(listen.ip().to_string());
            }
            let mut ca = medsec_server::prepare_data_dir(&config)?;
            let files = medsec_server::mqtt::write_broker_config(
                &mut ca,
                &dir,
                listen,
                &hostnames,
                &config.mqtt,
                config.limits.max_body_bytes.saturating_add(1024),
                run_as.as_deref(),
            )?;
            println!("wrote {}", files.config.display());
            println!(
                "  start the broker: mosquitto -c {}",
                files.config.display()
            );
            println!(
                "  then in the server's configuration: [mqtt] broker = \"{}:{}\"",
                hostnames.first().map(String::as_str).unwrap_or("127.0.0.1"),
                listen.port()
            );
            println!(
                "  queued messages persist in {} (writable by the broker's user)",
                dir.join("persistence").display()
            );
            println!(
                "  on each CRL change send the broker SIGHUP: install {} and its .service",
                dir.join("medsec-broker-crl.path").display()
            );
            println!(
                "  devices publish to {}",
                medsec_server::mqtt::device_topic(&config.mqtt.topic_prefix, "<device id>")
            );
            Ok(())
        }
    }
}
