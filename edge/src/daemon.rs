//! `edge run`: load the configuration, serve clients and the admin API,
//! stop gracefully.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use shared::admin::AdminTls;
use shared::{AdminServer, Signals};
use tokio_util::sync::CancellationToken;

use crate::access_log::AccessLog;
use crate::acme::{AcmeMetrics, AcmeTasks};
use crate::cluster::Cluster;
use crate::config::{AccessLogConfig, Config, DEFAULT_ADMIN_PORT};
use crate::metrics::EdgeMetrics;
use crate::proxy::Edge;
use crate::server::HttpServer;
use crate::tls::{TlsMetrics, TlsTermination};

/// A running edge.
pub struct Daemon {
    http: HttpServer,
    admin: AdminServer,
    edge: Edge,
    cluster: Option<Cluster>,
    tls: Option<(Arc<TlsTermination>, std::time::Duration)>,
    metrics: Arc<EdgeMetrics>,
    /// Reopened on SIGHUP, for logrotate.
    access_log: Option<AccessLog>,
    /// The file SIGHUP re-reads, and the configuration the process started
    /// with (what needs a restart is compared with it).
    source: PathBuf,
    started: Config,
}

/// Loads and validates a configuration file.
pub fn load(path: &Path) -> anyhow::Result<Config> {
    let mut config: Config = shared::config::load(path)?;
    let directory = path.parent().unwrap_or(Path::new("."));
    if let Some(etcd) = &mut config.cluster {
        etcd.resolve_paths(directory);
    }
    config.tls.resolve_paths(directory);
    config.origin.resolve_paths(directory);
    if let Some(acme) = &mut config.acme {
        acme.resolve_paths(directory);
    }
    if let Some(access_log) = &mut config.access_log {
        access_log.resolve_paths(directory);
    }
    // Every check runs, so that one check-config shows every error.
    let mut errors: Vec<String> = [
        config.admin.validate(),
        config.server.validate(),
        config.cache.validate(),
        config.tls.validate(config.acme.is_some()),
    ]
    .into_iter()
    .filter_map(Result::err)
    .collect();
    if let Some(acme) = &config.acme {
        errors.extend(acme.validate(config.cluster.is_some()));
    }
    if let Some(Err(error)) = config.access_log.as_ref().map(AccessLogConfig::validate) {
        errors.push(error);
    }
    if let Err(certificate_errors) = crate::tls::check(&config.tls) {
        errors.extend(
            certificate_errors
                .iter()
                .map(|error| format!("tls.certificates: {error}")),
        );
    }
    // Building the proxy checks what the schema cannot (URLs, header names).
    let metrics = EdgeMetrics::register(&mut shared::metrics::Registry::default());
    if let Err(error) = Edge::new(&config, metrics) {
        errors.push(shared::report::describe(error.as_ref()));
    }
    if let Err(error) = Cluster::validate(&config) {
        errors.push(shared::report::describe(error.as_ref()));
    }
    shared::config::SemanticErrors::check(path, errors)?;
    Ok(config)
}

impl Daemon {
    /// Starts serving `config`, read from `source`, until `shutdown`.
    pub async fn start(
        source: &Path,
        config: &Config,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        // A running edge on the handover socket gives us its listeners,
        // and ours are kept for the next one.
        let taken = match &config.server.handover_socket {
            Some(path) => {
                shared::handover::keep_for_handover();
                shared::handover::take(path)?
            }
            None => None,
        };
        let mut registry = shared::metrics::new_registry("edge", env!("CARGO_PKG_VERSION"));
        let metrics = EdgeMetrics::register(&mut registry);
        budget_descriptors(config.server.max_connections, &metrics);
        let edge = Edge::new(config, metrics.clone())?;
        let tls = if config.tls.listen.is_empty() {
            None
        } else {
            let tls_metrics = TlsMetrics::register(&mut registry);
            let managed = config
                .acme
                .as_ref()
                .map(crate::acme::managed_files)
                .unwrap_or_default();
            Some(Arc::new(TlsTermination::new(
                &config.tls,
                managed,
                edge.acme_challenges(),
                tls_metrics,
            )?))
        };
        let access_log = config
            .access_log
            .as_ref()
            .map(|log| AccessLog::start(log, &mut registry))
            .transpose()?;
        let http = HttpServer::start(
            &config.server,
            tls.clone()
                .map(|termination| (config.tls.listen.as_slice(), termination)),
            edge.clone(),
            metrics.clone(),
            access_log.clone(),
            shutdown.clone(),
        )
        .await?;
        // Once the listeners answer challenges. Validated at load: [acme]
        // needs tls.listen.
        if let (Some(acme), Some(termination), Some(challenges)) =
            (&config.acme, &tls, edge.acme_challenges())
        {
            tokio::spawn(crate::acme::run(
                AcmeTasks {
                    config: acme.clone(),
                    etcd: config.cluster.clone(),
                    node: config.server.name.clone(),
                    challenges,
                    termination: termination.clone(),
                    metrics: AcmeMetrics::register(&mut registry),
                },
                shutdown.clone(),
            ));
        }
        let cluster = Cluster::start(config, &edge, &mut registry, &shutdown)?;
        tokio::spawn(crate::proxy::peer_check::run(
            edge.clone(),
            shutdown.clone(),
        ));
        let router = crate::admin::router(
            edge.clone(),
            Arc::new(registry),
            metrics.clone(),
            http.connections().clone(),
            cluster.as_ref().map(Cluster::publisher),
        );
        let admin_address = config.admin.listen_or(DEFAULT_ADMIN_PORT);
        let admin_tls = tls.clone().filter(|_| config.tls.admin).map(|termination| {
            Arc::new(crate::tls::AdminTermination(termination)) as Arc<dyn AdminTls>
        });
        let admin = AdminServer::start_with_tls(
            admin_address,
            &config.admin,
            router,
            admin_tls,
            shutdown.clone(),
        )
        .await
        .map_err(|error| {
            anyhow::anyhow!("admin.listen: cannot listen on {admin_address}: {error}")
        })?;
        // Serving: the previous process may drain, and the next may take over.
        if let Some(taken) = taken {
            taken.ready()?;
        }
        if let Some(path) = &config.server.handover_socket {
            shared::handover::offer(path, shutdown.clone(), shutdown.clone())?;
        }
        Ok(Self {
            http,
            admin,
            edge,
            cluster,
            tls: tls.map(|termination| (termination, config.tls.watch_interval.as_std())),
            metrics,
            access_log,
            source: source.to_path_buf(),
            started: config.clone(),
        })
    }

    /// Client addresses bound.
    pub fn addresses(&self) -> &[SocketAddr] {
        self.http.addresses()
    }

    /// Serves until shutdown, reloading the configuration on each SIGHUP
    /// ([`crate::reload`]); then waits for in-flight requests (bounded).
    pub async fn run(self, signals: Signals) {
        if let Some((termination, interval)) = &self.tls {
            tokio::spawn(crate::tls::watch(
                termination.clone(),
                *interval,
                signals.shutdown.clone(),
            ));
        }
        let mut reload = signals.reload.clone();
        let mut signals_open = true;
        loop {
            tokio::select! {
                _ = signals.shutdown.cancelled() => break,
                changed = reload.changed(), if signals_open => match changed {
                    Ok(()) => self.reload(),
                    Err(_) => signals_open = false,
                },
            }
        }
        // The listeners close with the accept loops (after a handover, the
        // new process holds its own copies).
        shared::handover::release();
        // Leave the answers first, so that no new client is sent here.
        if let Some(cluster) = self.cluster {
            cluster.leave().await;
        }
        tracing::info!(
            in_flight = self.edge.in_flight(),
            "stopping: finishing in-flight requests"
        );
        self.http.stopped().await;
        self.admin.stopped().await;
        tracing::info!("stopped");
    }
}

impl Daemon {
    /// Re-reads the configuration file and applies it (see
    /// [`crate::reload`]); an invalid file changes nothing.
    fn reload(&self) {
        let path = self.source.display().to_string();
        tracing::info!(file = path, "SIGHUP: reloading the configuration");
        if let Some(log) = &self.access_log {
            log.reopen();
        }
        let config = match load(&self.source) {
            Ok(config) => config,
            Err(error) => {
                self.metrics.config_reloaded(false);
                tracing::error!(
                    file = path,
                    error = %shared::report::describe(error.as_ref()),
                    "configuration not reloaded; the one in force stays"
                );
                return;
            }
        };
        // The admin section first: it is the one that can still refuse.
        let applied = self
            .admin
            .reconfigure(&config.admin)
            .map_err(|error| format!("admin: {error}"))
            .and_then(|()| {
                self.edge
                    .reconfigure(&config)
                    .map_err(|error| shared::report::describe(error.as_ref()))
            });
        if let Err(error) = applied {
            self.metrics.config_reloaded(false);
            tracing::error!(file = path, %error, "configuration not reloaded; the one in force stays");
            return;
        }
        self.http
            .connections()
            .set_limits(crate::server::connections::Limits::from(&config.server));
        if let Some((termination, _)) = &self.tls {
            match termination.replace_files(config.tls.certificates.clone()) {
                Ok(count) => {
                    tracing::info!(
                        certificates = count,
                        why = "SIGHUP",
                        "TLS certificates reloaded"
                    );
                }
                Err(error) => tracing::error!(
                    %error,
                    why = "SIGHUP",
                    "TLS certificates not reloaded; the current ones keep serving"
                ),
            }
        }
        self.metrics.config_reloaded(true);
        let restart = crate::reload::needs_restart(&self.started, &config);
        if restart.is_empty() {
            tracing::info!(file = path, "configuration reloaded");
        } else {
            tracing::warn!(
                file = path,
                needs_restart = ?restart,
                "configuration reloaded; these changes take effect at the next restart"
            );
        }
    }
}

/// Shares the open files limit between sockets and sealed cache bodies
/// (see [`crate::cache::sealed`]), and says so when the limit is too low
/// for the configured connections.
fn budget_descriptors(max_connections: usize, metrics: &EdgeMetrics) {
    use nix::sys::resource::{Resource, getrlimit};
    let Ok((open_files, _)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    let budget = crate::cache::sealed::descriptor_budget(open_files, max_connections);
    crate::cache::sealed::set_descriptor_budget(budget);
    metrics
        .sealed_budget
        .set(i64::try_from(budget).unwrap_or(i64::MAX));
    if budget == 0 {
        tracing::warn!(
            open_files,
            max_connections,
            "the open files limit leaves no room beside server.max_connections: raise it (LimitNOFILE) or lower server.max_connections; cache bodies stay in memory instead of sealed files"
        );
    } else {
        tracing::info!(
            open_files,
            sealed_bodies = budget,
            "descriptors for sealed cache bodies"
        );
    }
}
