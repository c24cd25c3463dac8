//! The command line: `geodns <command>`.

mod ctl;
mod explain;
mod geoip;
mod serve;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub use self::ctl::{CtlCommand, EtcdArgs};
pub use self::geoip::GeoipCommand;
use crate::snapshot::Sources;

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
    /// Serve DNS (and the admin API) until SIGTERM; SIGHUP reloads.
    Run {
        /// Configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a configuration file (and the files it names); exit 1 with every error found.
    CheckConfig {
        /// Configuration file.
        config: PathBuf,
        /// Check everything but the geoip databases and override files,
        /// which are not opened: for a host that does not have them.
        #[arg(long)]
        structure_only: bool,
    },
    /// Show how a client address is located and answered: by the running
    /// server (live health, drains) when its admin API answers, else offline.
    Explain {
        /// Configuration file.
        #[arg(long, short)]
        config: PathBuf,
        /// Client (or ECS) address.
        ip: std::net::IpAddr,
        /// Compute from the configuration without asking the running server.
        #[arg(long)]
        offline: bool,
        /// Offline: skip the one-off health check of each edge.
        #[arg(long)]
        no_health: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Inspect GeoIP databases and build new ones from CSV.
    #[command(subcommand)]
    Geoip(GeoipCommand),
    /// Cluster-wide operations through etcd: members, drain, pool, purge.
    Ctl {
        /// Where etcd is.
        #[command(flatten)]
        etcd: EtcdArgs,
        /// What to do.
        #[command(subcommand)]
        command: CtlCommand,
    },
}

impl Command {
    /// Runs the command to completion.
    pub fn run(self) -> anyhow::Result<()> {
        match self {
            Self::Run { config } => serve::run(&config),
            Self::CheckConfig {
                config,
                structure_only,
            } => serve::check_config(
                &config,
                if structure_only {
                    Sources::Skip
                } else {
                    Sources::Open
                },
                &mut std::io::stdout().lock(),
            ),
            Self::Explain {
                config,
                ip,
                offline,
                no_health,
                json,
            } => explain::explain(
                &config,
                ip,
                explain::ExplainOptions {
                    offline,
                    check_health: !no_health,
                    json,
                },
                &mut std::io::stdout().lock(),
            ),
            Self::Geoip(command) => command.run(&mut std::io::stdout().lock()),
            Self::Ctl { etcd, command } => command.run(&etcd, &mut std::io::stdout().lock()),
        }
    }
}
