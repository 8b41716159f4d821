//! The console's pages, one file per area. Each reads what it shows from the operator API as
//! the signed-in person ([`super::Ctx`]), and sends each change there too.
//!
//! The pages read the API's JSON answers by key (`v["field"]`): a `serde_json::Value` indexed
//! by a key or a position never panics (a missing field reads as `null`, shown as nothing).
#![allow(
    clippy::indexing_slicing,
    reason = "serde_json::Value indexing returns Null for a missing key or position, never panics"
)]

pub(crate) mod alerts;
pub(crate) mod audit;
pub(crate) mod campaigns;
pub(crate) mod compliance;
pub(crate) mod dashboard;
pub(crate) mod devices;
pub(crate) mod incidents;
pub(crate) mod releases;
pub(crate) mod risk;
