//! The `geodns` binary: parses the command line and runs the chosen command.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = geodns::commands::Cli::parse();
    if let Err(error) = shared::telemetry::init(cli.log.log_format) {
        eprintln!("error: {error}");
        return std::process::ExitCode::FAILURE;
    }
    match cli.command.run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", shared::report::describe(error.as_ref()));
            std::process::ExitCode::FAILURE
        }
    }
}
