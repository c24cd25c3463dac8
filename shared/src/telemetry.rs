//! Logging setup shared by both binaries.
//!
//! Logs go to stderr through `tracing`. The level is taken from `RUST_LOG` (the
//! usual `EnvFilter` syntax, e.g. `info,geodns::health=debug`) and defaults to
//! `info` (with the protocol libraries at `error`: their per-packet warnings
//! about malformed input are the client's doing, and our own rate-limited
//! lines report it). Text is for people at a terminal; JSON (one object per
//! line) is for log shippers.
//!
//! Lines are written by a background thread through a bounded queue: a slow
//! or blocked stderr never stalls a thread that answers clients, and lines
//! that do not fit are dropped (and counted) rather than waited for.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Command-line options for logging, flattened into each binary's arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct LogArgs {
    /// Log line format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true, env = "LOG_FORMAT")]
    pub log_format: LogFormat,
}

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// `RUST_LOG` does not parse as a filter.
    #[error("RUST_LOG: {0}")]
    Filter(#[from] tracing_subscriber::filter::FromEnvError),
    /// Another subscriber was installed first.
    #[error("logging was already initialised: {0}")]
    AlreadySet(#[from] tracing_subscriber::util::TryInitError),
}

/// The filter without `RUST_LOG`.
const DEFAULT_FILTER: &str = "info,hickory_proto=error";

/// Lines queued for the writer thread before new ones are dropped.
const QUEUED_LINES: usize = 16_384;

/// Keeps the log writer thread running; dropping it writes out what is
/// queued. Hold it in `main` until the end.
#[must_use = "logs written after the guard is dropped are lost"]
pub struct LogGuard {
    _worker: tracing_appender::non_blocking::WorkerGuard,
}

impl std::fmt::Debug for LogGuard {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("LogGuard")
    }
}

/// Installs the global subscriber. Call once, first thing in `main`.
pub fn init(format: LogFormat) -> Result<LogGuard, TelemetryError> {
    use tracing_subscriber::util::SubscriberInitExt;

    let filter = match std::env::var("RUST_LOG") {
        Ok(text) if !text.trim().is_empty() => EnvFilter::builder()
            .with_default_directive(tracing::Level::INFO.into())
            .from_env()?,
        _ => EnvFilter::new(DEFAULT_FILTER),
    };
    let (writer, worker) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(QUEUED_LINES)
        .lossy(true)
        .thread_name("log-writer")
        .finish(std::io::stderr());
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(writer)
        .with_span_events(FmtSpan::NONE);
    match format {
        LogFormat::Text => builder.finish().try_init()?,
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .finish()
            .try_init()?,
    }
    Ok(LogGuard { _worker: worker })
}
