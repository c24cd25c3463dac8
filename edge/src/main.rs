//! The `edge` binary.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Caching reverse proxy node of the CDN.
#[derive(Debug, Parser)]
#[command(name = "edge", version, about, long_about = None)]
struct Cli {
    /// Logging options.
    #[command(flatten)]
    log: shared::telemetry::LogArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
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

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let log_guard = match shared::telemetry::init(cli.log.log_format) {
        Ok(guard) => guard,
        Err(error) => {
            eprintln!("error: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Run { config } => run(&config),
        Command::CheckConfig { config } => edge::daemon::load(&config).map(|_| {
            println!("{}: OK", config.display());
        }),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            // Queued log lines first, so that the error is the last line.
            drop(log_guard);
            eprintln!("error: {}", shared::report::describe(error.as_ref()));
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(path: &std::path::Path) -> anyhow::Result<()> {
    let config = edge::daemon::load(path)?;
    raise_open_files_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let signals = shared::Signals::install()?;
        let daemon = edge::daemon::Daemon::start(&config, signals.shutdown.clone()).await?;
        daemon.run(signals).await;
        Ok(())
    })
}

/// Client connections and large cached bodies (one sealed memory file each)
/// both take file descriptors: use all the hard limit allows.
fn raise_open_files_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            if let Err(error) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                tracing::warn!(%error, soft, hard, "cannot raise the open files limit");
            }
        }
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "cannot read the open files limit"),
    }
}
