//! One module per `medsec` subcommand (helpers that serve one of them sit beside it).

pub mod advisories;
pub mod audit;
pub mod ca;
pub mod campaign;
pub mod defender;
pub mod demo;
pub mod fleet_demo;
pub mod inventory;
pub mod investigate;
pub mod mqtt;
pub mod remote;
pub mod repo;
pub mod report;
pub mod risk;
pub mod server;
pub mod witness;
