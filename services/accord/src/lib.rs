//! The `accord` binary's library: configuration, the composition of a domain's services, and
//! the commands. `main.rs` only parses the command line and maps errors to exit codes.

pub mod aca;
pub mod audit;
pub mod cli;
pub mod commands;
pub mod config;
pub mod dev;
pub mod http;
pub mod natsconf;
pub mod pki;
pub mod registry;
pub mod registry_cmd;
pub mod runtime;
pub mod sidecar;
pub mod tail;
pub mod telemetry;
pub mod tools;
pub mod watch;

/// An error that means "fix your input", reported with exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// The process environment as (name, value) pairs: read once, in `main`.
pub fn environment() -> Vec<(String, String)> {
    std::env::vars().collect()
}
