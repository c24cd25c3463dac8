//! The command line: `geodns <command>`.

mod geoip;

use clap::{Parser, Subcommand};

pub use self::geoip::GeoipCommand;

/// Geo-aware authoritative DNS load balancer.
#[derive(Debug, Parser)]
#[command(name = "geodns", version, about, long_about = None)]
pub struct Cli {
    /// Logging options.
    #[command(flatten)]
    pub log: shared::telemetry::LogArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Inspect GeoIP databases and build new ones from CSV.
    #[command(subcommand)]
    Geoip(GeoipCommand),
}

impl Command {
    /// Runs the command to completion.
    pub fn run(self) -> anyhow::Result<()> {
        match self {
            Self::Geoip(command) => command.run(&mut std::io::stdout().lock()),
        }
    }
}
