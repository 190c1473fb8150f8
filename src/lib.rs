//! EventTracker: records what users do in a product and awards points for it.

pub mod access;
pub mod bulk;
pub mod cache;
pub mod cli;
pub mod clock;
pub mod config;
pub mod domain;
pub mod faults;
pub mod http;
pub mod recompute;
pub mod rules_reload;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod wallet_sweeper;
pub mod webhooks;
