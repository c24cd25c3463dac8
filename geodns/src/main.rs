//! The `geodns` binary: parses the command line and runs the chosen command.

use clap::Parser;

fn main() -> std::process::ExitCode {
    geodns::memory::map_large_allocations();
    let cli = geodns::commands::Cli::parse();
    let log_guard = match shared::telemetry::init(cli.log.log_format) {
        Ok(guard) => guard,
        Err(error) => {
            eprintln!("error: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match cli.command.run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            // Queued log lines first, so that the error is the last line.
            drop(log_guard);
            eprintln!("error: {}", shared::report::describe(error.as_ref()));
            std::process::ExitCode::FAILURE
        }
    }
}
