use std::process::ExitCode;

use clap::Parser;

/// mimalloc rather than the system allocator: event decoding, projections and verification
/// allocate many small, short-lived objects on several threads (docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = accord::cli::Cli::parse();
    let env = accord::environment();
    match accord::commands::run(cli, env) {
        Ok(code) => code,
        Err(e) => {
            let usage = e.downcast_ref::<accord::UsageError>().is_some()
                || e.downcast_ref::<accord::config::ConfigError>().is_some()
                || e.downcast_ref::<accord::tools::ToolError>().is_some();
            // one line: the error and its causes
            let msg: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            eprintln!("accord: {}", msg.join(": ").replace('\n', " "));
            ExitCode::from(if usage { 2 } else { 1 })
        }
    }
}
