//! medsec end to end, in one test binary with a module per area: the `medsec` binary as a child
//! process with real peers (`openssl` makes keys, requests and rogue certificates, `curl` enrols
//! over EST and calls both APIs, a rustls client checks the key exchange, python-tuf reads and
//! writes repositories, SoftHSM holds a device key), every refusal looked up in the audit log.
//!
//! What is tested here is what only the wire shows: mutual TLS, EST with real clients, limits,
//! tampering, process crashes, interop. One binary links once, and its tests share one pool of
//! threads.
//!
//! | module | area |
//! |---|---|
//! | `identity` | EST enrolment, mutual TLS, zero trust, limits, idle connections |
//! | `inventory` | the inventory through the operator API and the CLI |
//! | `updates` | version reports, campaigns, the director |
//! | `defender` | telemetry, rules, identity binding, baselines, incidents |
//! | `defender_evaluate` | `medsec defender evaluate` on WUSTL-EHMS-2020 |
//! | `hardening` | tokens taken back, revocation on open connections, slow heads, connection caps |
//! | `mqtt` | telemetry through a real Mosquitto broker |
//! | `audit` | audit-log tampering (SQLite, PostgreSQL) and the Defender's audit checks |
//! | `risk` | per-device findings through the server |
//! | `export` | security events to a signed webhook (down, SIGKILL) and to rsyslog as CEF over TLS |
//! | `ops` | the remote CLI with contexts, the data-directory guard, health, readiness, metrics |
//! | `agent` | `medsec agent` against a real server, kills included |
//! | `cli` | the `medsec` and `medsec-tuf-client` command lines, python-tuf interop |
//! | `console` | the web console in Chromium, signed in through a real OpenID provider |
//!
//! Helpers shared by the modules (the server child process, curl, openssl, the image
//! repository publisher) are in `common/`.

#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a panic is a failed test; not every module uses every helper"
)]

mod agent;
mod audit;
mod cli;
mod console;
mod defender;
mod defender_evaluate;
mod export;
mod hardening;
mod identity;
mod inventory;
mod mqtt;
mod ops;
mod risk;
mod updates;
