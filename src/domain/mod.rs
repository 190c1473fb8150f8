//! The domain: rules, events, time and periods, and ranking. Nothing here does I/O.

pub mod caps;
pub mod engine;
pub mod event;
pub mod period;
pub mod progression;
pub mod ranking;
pub mod rules;
pub mod time;
pub mod wallet;
