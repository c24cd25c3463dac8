//! The `edge` binary.

use clap::Parser;
use edge::cli::{Cli, Command};

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
    raise_open_files_limit(config.server.max_connections);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let signals = shared::Signals::install()?;
        let daemon = edge::daemon::Daemon::start(path, &config, signals.shutdown.clone()).await?;
        daemon.run(signals).await;
        Ok(())
    })
}

/// Client connections and large cached bodies (one sealed memory file each)
/// both take file descriptors: ask for enough for both, which a privileged
/// process gets even above the hard limit (up to `fs.nr_open`); otherwise
/// use all the hard limit allows.
fn raise_open_files_limit(max_connections: usize) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok(limits) => limits,
        Err(error) => {
            tracing::warn!(%error, "cannot read the open files limit");
            return;
        }
    };
    let ceiling = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok())
        .unwrap_or(hard);
    let wanted = edge::cache::sealed::descriptors_wanted(max_connections).min(ceiling);
    if soft >= wanted {
        return;
    }
    if wanted > hard && setrlimit(Resource::RLIMIT_NOFILE, wanted, wanted).is_ok() {
        return;
    }
    if soft < hard
        && let Err(error) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard)
    {
        tracing::warn!(%error, soft, hard, "cannot raise the open files limit");
    }
}
