//! `idgw`: the one binary. Each subcommand parses its flags and calls into a library crate;
//! errors become messages and exit codes here, and nowhere else.

mod allocator;
mod cli;

use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of glibc malloc: the pipeline allocates many short-lived strings per
/// event next to long-lived per-user state, a mix glibc handles slowly (docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    allocator::configure();
    let args = cli::Cli::parse();
    if let Err(err) = cli::init_logging(&args) {
        eprintln!("error: {err:#}");
        return ExitCode::from(2);
    }
    match cli::run(args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(1)
        }
    }
}
