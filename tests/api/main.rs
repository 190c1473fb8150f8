//! The integration tests: one crate, so the application and its dependencies are linked
//! into one test binary instead of one per file. A module per area; what they share is
//! in `helpers` (which the modules import as `common`, its name when it was
//! tests/common). docs/testing.md says what lives where, how to run one area alone
//! (`cargo test --test api webhooks::`), and why no test needs a binary of its own.

mod helpers;

mod api_description;
mod auth;
mod bulk;
mod caps;
mod checkpoint;
mod cli;
mod compression;
mod crash;
mod dashboard;
mod defaults;
mod endpoints;
mod hostile_input;
mod ledger;
mod lifecycle;
mod limits;
mod mongo_migration;
mod mongo_outage;
mod mongo_progression;
mod mongo_recovery;
mod mongo_webhooks_recovery;
mod multi_instance;
mod persistence;
mod progression;
mod readme_examples;
mod recompute;
mod redis_cache;
mod rules;
mod soak;
mod sqlite_failures;
mod wallet;
mod webhooks;
