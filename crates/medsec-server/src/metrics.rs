//! The server's Prometheus metrics: counters and histograms updated where things happen
//! (requests, handshakes, the audit writer, telemetry ingestion), and gauges read from the store
//! when `/metrics` is scraped (the fleet census, incidents, campaigns, the audit log's size).
//!
//! Names follow Prometheus' conventions: the `medsec_` prefix, base units (`_seconds`,
//! `_bytes`), `_total` on counters, labels of bounded cardinality (a route's pattern, never its
//! path; a device's state and model, never its id).
//!
//! One registry per process ([`global`]): the writer task, the accept loop and the handlers
//! update it without passing it around, and several servers in one test process share it (their
//! counts add up, which no test reads as exact).

use std::sync::LazyLock;

use prometheus::{
    Encoder as _, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

use crate::Error;

/// The process's metrics.
pub struct Metrics {
    registry: Registry,
    /// HTTP requests answered, by port, method, route pattern and status code.
    pub requests: IntCounterVec,
    /// Time to answer, by port and route pattern.
    pub request_seconds: HistogramVec,
    /// TLS handshakes by port and outcome (`ok`, `failed`, `timeout`, `refused`).
    pub handshakes: IntCounterVec,
    /// Connections refused before the handshake (caps per port, address or device).
    pub connections_refused: IntCounterVec,
    /// Audit entries waiting for the writer.
    pub audit_queue: IntGauge,
    /// Time to commit one batch of audit entries with its signed tree head.
    pub audit_commit_seconds: Histogram,
    /// Audit batches whose commit failed.
    pub audit_failures: IntCounterVec,
    /// Telemetry batches by transport (`https`, `mqtt`) and outcome (`stored`, `duplicate`,
    /// `refused`).
    pub telemetry_batches: IntCounterVec,
    /// Alerts raised, by severity.
    pub alerts_raised: IntCounterVec,
    /// Exported events by sink and what became of them.
    pub exported: IntCounterVec,
    /// Devices by state, quarantine, model and installed version (read at scrape time).
    pub devices: IntGaugeVec,
    /// Open incidents by severity and phase (read at scrape time).
    pub incidents_open: IntGaugeVec,
    /// Campaigns by status (read at scrape time).
    pub campaigns: IntGaugeVec,
    /// The devices of each running, paused or halted campaign by their progress (read at
    /// scrape time; finished campaigns drop out, so the series stay few).
    pub campaign_devices: IntGaugeVec,
    /// Entries in the audit log (read at scrape time from the newest signed head).
    pub audit_entries: IntGauge,
    /// Time the scrape's store queries took.
    pub store_seconds: Histogram,
}

fn counter(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels).unwrap_or_else(|e| unreachable(name, &e))
}

fn gauge(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    IntGaugeVec::new(Opts::new(name, help), labels).unwrap_or_else(|e| unreachable(name, &e))
}

fn histogram(name: &str, help: &str, buckets: &[f64]) -> Histogram {
    Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))
        .unwrap_or_else(|e| unreachable(name, &e))
}

/// The metric definitions above are constants: an invalid one is a programming error that the
/// unit test below catches, so it aborts the process rather than run without metrics.
#[expect(
    clippy::panic,
    reason = "constant definitions, checked by the unit test"
)]
fn unreachable(name: &str, e: &prometheus::Error) -> ! {
    panic!("metric {name} is misdefined: {e}")
}

const LATENCY: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

impl Metrics {
    fn new() -> Self {
        let m = Self {
            registry: Registry::new(),
            requests: counter(
                "medsec_http_requests_total",
                "HTTP requests answered, by port, method, route pattern and status code.",
                &["port", "method", "route", "status"],
            ),
            request_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "medsec_http_request_duration_seconds",
                    "Time from the request's head to its answer, by port and route pattern.",
                )
                .buckets(LATENCY.to_vec()),
                &["port", "route"],
            )
            .unwrap_or_else(|e| unreachable("medsec_http_request_duration_seconds", &e)),
            handshakes: counter(
                "medsec_tls_handshakes_total",
                "TLS handshakes by port and outcome (ok, failed, timeout).",
                &["port", "outcome"],
            ),
            connections_refused: counter(
                "medsec_connections_refused_total",
                "Connections refused before the handshake, by port and the cap that refused them.",
                &["port", "cap"],
            ),
            audit_queue: IntGauge::new(
                "medsec_audit_queue_entries",
                "Audit entries waiting for the writer.",
            )
            .unwrap_or_else(|e| unreachable("medsec_audit_queue_entries", &e)),
            audit_commit_seconds: histogram(
                "medsec_audit_commit_duration_seconds",
                "Time to commit one batch of audit entries with its signed tree head.",
                LATENCY,
            ),
            audit_failures: counter(
                "medsec_audit_commit_failures_total",
                "Audit batches whose commit failed (the requests waiting on them failed too).",
                &["reason"],
            ),
            telemetry_batches: counter(
                "medsec_telemetry_batches_total",
                "Telemetry batches by transport (https, mqtt) and outcome (stored, duplicate, refused).",
                &["transport", "outcome"],
            ),
            alerts_raised: counter(
                "medsec_alerts_raised_total",
                "Alerts raised (first occurrences and repeats alike), by severity.",
                &["severity"],
            ),
            exported: counter(
                "medsec_export_events_total",
                "Export attempts by sink and result (delivered, retried, refused, dead-letter).",
                &["sink", "result"],
            ),
            devices: gauge(
                "medsec_devices",
                "Devices by state, quarantine, model and installed version.",
                &["state", "quarantined", "model", "version"],
            ),
            incidents_open: gauge(
                "medsec_incidents_open",
                "Open incidents by severity and phase.",
                &["severity", "phase"],
            ),
            campaigns: gauge(
                "medsec_campaigns",
                "Update campaigns by status.",
                &["status"],
            ),
            campaign_devices: gauge(
                "medsec_campaign_devices",
                "Devices of each running, paused or halted campaign by progress (waiting, offered, deferred, succeeded, failed, withdrawn).",
                &["campaign", "state"],
            ),
            audit_entries: IntGauge::new(
                "medsec_audit_log_entries",
                "Entries in the audit log under its newest signed tree head.",
            )
            .unwrap_or_else(|e| unreachable("medsec_audit_log_entries", &e)),
            store_seconds: histogram(
                "medsec_store_query_duration_seconds",
                "Time the store took to answer the scrape's and the readiness check's queries.",
                LATENCY,
            ),
        };
        let collectors: [Box<dyn prometheus::core::Collector>; 17] = [
            Box::new(m.requests.clone()),
            Box::new(m.request_seconds.clone()),
            Box::new(m.handshakes.clone()),
            Box::new(m.connections_refused.clone()),
            Box::new(m.audit_queue.clone()),
            Box::new(m.audit_commit_seconds.clone()),
            Box::new(m.audit_failures.clone()),
            Box::new(m.telemetry_batches.clone()),
            Box::new(m.alerts_raised.clone()),
            Box::new(m.exported.clone()),
            Box::new(m.devices.clone()),
            Box::new(m.incidents_open.clone()),
            Box::new(m.campaigns.clone()),
            Box::new(m.campaign_devices.clone()),
            Box::new(m.audit_entries.clone()),
            Box::new(m.store_seconds.clone()),
            Box::new(
                IntGauge::new(
                    "medsec_build_info",
                    concat!("Always 1; the version is ", env!("CARGO_PKG_VERSION"), "."),
                )
                .inspect(|g| g.set(1))
                .unwrap_or_else(|e| unreachable("medsec_build_info", &e)),
            ),
        ];
        for c in collectors {
            if let Err(e) = m.registry.register(c) {
                unreachable("registration", &e);
            }
        }
        m
    }

    /// Counts one answered request.
    pub fn request(&self, port: &str, method: &str, route: &str, status: u16, seconds: f64) {
        self.requests
            .with_label_values(&[port, method, route, &status.to_string()])
            .inc();
        self.request_seconds
            .with_label_values(&[port, route])
            .observe(seconds);
    }

    /// Counts a handshake's outcome.
    pub fn handshake(&self, port: &str, outcome: &str) {
        self.handshakes.with_label_values(&[port, outcome]).inc();
    }

    /// Counts a telemetry batch's outcome.
    pub fn telemetry(&self, transport: &str, outcome: &str) {
        self.telemetry_batches
            .with_label_values(&[transport, outcome])
            .inc();
    }

    /// The exposition text (Prometheus text format 0.0.4).
    pub fn render(&self) -> Result<String, Error> {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .map_err(|e| Error::Internal {
                reason: format!("encoding the metrics: {e}"),
            })?;
        String::from_utf8(out).map_err(|e| Error::Internal {
            reason: format!("encoding the metrics: {e}"),
        })
    }
}

/// The process's metrics.
pub fn global() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

/// The media type of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_defined_and_named_by_the_conventions() {
        let m = global();
        m.request("operator", "GET", "/api/v1/devices", 200, 0.002);
        m.handshake("device", "ok");
        let text = m.render().unwrap();
        assert!(text.contains("medsec_http_requests_total{method=\"GET\",port=\"operator\",route=\"/api/v1/devices\",status=\"200\"}"));
        assert!(text.contains("# TYPE medsec_http_request_duration_seconds histogram"));
        for line in text.lines().filter(|l| l.starts_with("# TYPE")) {
            let mut parts = line.split(' ').skip(2);
            let (name, kind) = (parts.next().unwrap(), parts.next().unwrap());
            assert!(name.starts_with("medsec_"), "{name}");
            assert_eq!(
                kind == "counter",
                name.ends_with("_total"),
                "{name} is a {kind}"
            );
        }
    }
}
