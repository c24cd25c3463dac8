//! The `edge` binary.

use clap::Parser;

/// Caching reverse proxy node of the CDN.
#[derive(Debug, Parser)]
#[command(name = "edge", version, about, long_about = None, arg_required_else_help = true)]
struct Cli {
    /// Logging options.
    #[command(flatten)]
    log: shared::telemetry::LogArgs,
}

fn main() {
    let _cli = Cli::parse();
}
