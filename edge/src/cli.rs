//! The command line: `edge <command>`. In the library so that packaging
//! can generate the man page and shell completions from the same definition.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Caching reverse proxy node of the CDN.
#[derive(Debug, Parser)]
#[command(name = "edge", version, about, long_about = None)]
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
    /// Serve clients and the admin API until SIGTERM.
    Run {
        /// Configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a configuration file; exit 1 with the errors.
    CheckConfig {
        /// Configuration file.
        config: PathBuf,
    },
}
