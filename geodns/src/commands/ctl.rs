//! `geodns ctl`: cluster-wide operations through etcd.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use shared::cluster::{EtcdConfig, PurgeScope};

use crate::cluster::ctl::Control;
use crate::config::Config;

/// Where etcd is: the `[cluster]` of a geodns config, or given directly.
#[derive(Debug, Args)]
pub struct EtcdArgs {
    /// geodns configuration file whose `[cluster]` section names etcd.
    #[arg(long, short, conflicts_with = "endpoints")]
    pub config: Option<PathBuf>,
    /// etcd client URLs, comma separated, instead of a config file.
    #[arg(long, env = "GEOCDN_ETCD_ENDPOINTS", value_delimiter = ',')]
    pub endpoints: Vec<String>,
    /// Key prefix, with --endpoints.
    #[arg(long, default_value = "/geocdn")]
    pub prefix: String,
}

/// Where etcd is, and the edges the config file lists (none with
/// `--endpoints`).
struct Target {
    etcd: EtcdConfig,
    configured: BTreeSet<String>,
}

impl EtcdArgs {
    fn target(&self) -> anyhow::Result<Target> {
        if let Some(path) = &self.config {
            let config: Config = shared::config::load(path)?;
            let configured = config
                .services
                .values()
                .flat_map(|service| service.edges.iter().map(|edge| edge.name.clone()))
                .collect();
            let mut etcd = config
                .cluster
                .with_context(|| format!("{}: no [cluster] section", path.display()))?;
            etcd.resolve_paths(path.parent().unwrap_or(std::path::Path::new(".")));
            return Ok(Target { etcd, configured });
        }
        if self.endpoints.is_empty() {
            anyhow::bail!("give --config FILE (with a [cluster] section) or --endpoints URL,...");
        }
        let etcd = EtcdConfig::new(self.endpoints.clone(), self.prefix.clone());
        etcd.validate()?;
        Ok(Target {
            etcd,
            configured: BTreeSet::new(),
        })
    }
}

/// `geodns ctl` subcommands.
#[derive(Debug, Subcommand)]
pub enum CtlCommand {
    /// List announced edges and whether an operator drained them.
    Members,
    /// Stop sending new clients to EDGE, on every geodns, until `pool`.
    Drain {
        /// Edge name (announced, or configured in the --config file).
        edge: String,
        /// Note for other operators.
        #[arg(long)]
        reason: Option<String>,
        /// Drain it even though no geodns knows it yet (an edge about to
        /// join, or one configured only on other servers).
        #[arg(long)]
        force: bool,
    },
    /// Undo `drain`.
    Pool {
        /// Edge name.
        edge: String,
    },
    /// Remove objects from every edge's cache.
    Purge {
        /// One URL (absolute, or a path with --host).
        #[arg(long, group = "what")]
        url: Option<String>,
        /// Every URL starting with this (absolute, or a path with --host).
        #[arg(long, group = "what")]
        prefix: Option<String>,
        /// Everything.
        #[arg(long, group = "what")]
        all: bool,
        /// Site for path-only URLs and prefixes.
        #[arg(long, default_value = "")]
        host: String,
    },
}

impl CtlCommand {
    /// Runs against the etcd named by `args`.
    pub fn run(self, args: &EtcdArgs, out: &mut impl Write) -> anyhow::Result<()> {
        let Target { etcd, configured } = args.target()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async {
            let mut control = Control::connect(&etcd)
                .await
                .with_context(|| format!("connecting to {}", etcd.endpoints.join(",")))?;
            match self {
                Self::Members => {
                    let members = control.members().await?;
                    let drained = control.drained().await?;
                    if members.is_empty() && configured.is_empty() {
                        writeln!(out, "no edges announced under {}", etcd.prefix)?;
                    }
                    let announced: BTreeSet<&str> =
                        members.iter().map(|(member, _)| member.name.as_str()).collect();
                    for (member, drained) in &members {
                        let addresses: Vec<String> = member
                            .ipv4
                            .iter()
                            .map(ToString::to_string)
                            .chain(member.ipv6.iter().map(ToString::to_string))
                            .collect();
                        writeln!(
                            out,
                            "{:<16} service={} region={} status={}{} addresses={} admin={}",
                            member.name,
                            member.service,
                            member.region,
                            member.status,
                            if *drained { " drained" } else { "" },
                            addresses.join(","),
                            member.admin_url,
                        )?;
                    }
                    // Edges of the config file that are not announced, and
                    // drains of edges nobody knows (yet).
                    for name in configured.iter().filter(|name| !announced.contains(name.as_str())) {
                        let state = if drained.contains(name) { " drained" } else { "" };
                        writeln!(out, "{name:<16} configured{state}")?;
                    }
                    for name in drained
                        .iter()
                        .filter(|name| !announced.contains(name.as_str()) && !configured.contains(*name))
                    {
                        writeln!(out, "{name:<16} not announced drained")?;
                    }
                }
                Self::Drain {
                    edge,
                    reason,
                    force,
                } => {
                    if !force && !configured.contains(&edge) {
                        let members = control.members().await?;
                        if !members.iter().any(|(member, _)| member.name == edge) {
                            let mut known: Vec<String> =
                                members.into_iter().map(|(member, _)| member.name).collect();
                            known.extend(configured.iter().cloned());
                            known.sort();
                            known.dedup();
                            anyhow::bail!(
                                "no edge {edge:?} is announced under {}{} (known: {}); check the name, or give --force to drain it before it joins",
                                etcd.prefix,
                                if args.config.is_some() { " or configured" } else { "" },
                                if known.is_empty() { "none".to_string() } else { known.join(", ") }
                            );
                        }
                    }
                    control.drain(&edge, reason).await?;
                    writeln!(
                        out,
                        "{edge}: drained on every geodns watching {}",
                        etcd.prefix
                    )?;
                }
                Self::Pool { edge } => {
                    let was = control.pool(&edge).await?;
                    let note = if was { "" } else { " (it was not drained)" };
                    writeln!(out, "{edge}: back in the pool{note}")?;
                }
                Self::Purge {
                    url,
                    prefix,
                    all,
                    host,
                } => {
                    let scope = match (url, prefix, all) {
                        (Some(url), _, _) => PurgeScope::Url { url, host },
                        (None, Some(prefix), _) => PurgeScope::Prefix { prefix, host },
                        (None, None, true) => PurgeScope::All,
                        (None, None, false) => anyhow::bail!("give --url, --prefix or --all"),
                    };
                    let revision = control.purge(scope, "ctl").await?;
                    writeln!(out, "purge published at etcd revision {revision}")?;
                }
            }
            Ok(())
        })
    }
}
