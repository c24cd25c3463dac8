//! The access log (`[access_log]`): one line per request once its response
//! has been sent (or the client went away), in the combined log format with
//! the CDN's fields appended, or as JSON.
//!
//! Lines are written off the request path: requests hand an [`Entry`] to a
//! bounded queue and a writer thread formats and appends them, flushing
//! when the queue runs dry. A full queue drops the entry and counts it
//! (`edge_access_log_dropped_total`): a slow disk never slows clients, and
//! memory stays bounded. The file is reopened on SIGHUP, for logrotate.
//! Fields a client controls are cut to a bound and escaped, so that a line
//! is always one line.

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, SystemTime};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;

use crate::config::{AccessLogConfig, AccessLogFormat};

/// Longest request target, `Referer` and `User-Agent` written.
const MAX_TARGET: usize = 2048;
const MAX_FIELD: usize = 512;

/// How often an idle writer looks for a reopening.
const FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// Lines written between flushes at most, under load.
const BURST: usize = 1024;

/// What one exchange did, as logged.
#[derive(Debug, Clone)]
pub struct Entry {
    /// When the request arrived.
    pub at: SystemTime,
    /// The client (after the PROXY protocol, before `X-Forwarded-For`).
    pub client: IpAddr,
    /// Request method.
    pub method: String,
    /// Path and query.
    pub target: String,
    /// `HTTP/1.1`, `HTTP/2.0`...
    pub protocol: &'static str,
    /// The `Host` (or `:authority`).
    pub host: String,
    /// Response status.
    pub status: u16,
    /// Body bytes sent.
    pub bytes: u64,
    /// `X-Cache` of the response (`HIT`, `MISS`...), `-` when none.
    pub cache: &'static str,
    /// Who answered a fill or pass: `origin`, `peer`, `parent`, or `-`.
    pub upstream: &'static str,
    /// From the request's arrival to the end of the response body.
    pub duration: Duration,
    /// From the request's arrival to the response head.
    pub first_byte: Duration,
    /// Whether the whole body was sent (false: the client went away).
    pub completed: bool,
    /// `Referer`, `-` when none.
    pub referer: String,
    /// `User-Agent`, `-` when none.
    pub user_agent: String,
}

/// Counters of the access log.
#[derive(Debug, Clone, Default)]
struct LogMetrics {
    lines: Counter,
    dropped: Counter,
    write_errors: Counter,
}

/// The access log: cheap to clone, shared by every connection.
#[derive(Clone)]
pub struct AccessLog {
    queue: SyncSender<Entry>,
    sample: f64,
    reopen: Arc<AtomicBool>,
    metrics: LogMetrics,
}

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLog")
            .field("sample", &self.sample)
            .finish_non_exhaustive()
    }
}

/// Where lines go.
enum Sink {
    Stdout,
    File(PathBuf),
}

impl AccessLog {
    /// Opens the log of `config` and starts its writer thread.
    pub fn start(config: &AccessLogConfig, registry: &mut Registry) -> anyhow::Result<Self> {
        let sink = if config.path.as_os_str() == "-" {
            Sink::Stdout
        } else {
            Sink::File(config.path.clone())
        };
        let output = open(&sink).map_err(|error| {
            anyhow::anyhow!(
                "access_log.path: cannot open {}: {error}",
                config.path.display()
            )
        })?;
        let metrics = LogMetrics::default();
        registry.register(
            "edge_access_log_lines",
            "Access log lines written",
            metrics.lines.clone(),
        );
        registry.register(
            "edge_access_log_dropped",
            "Access log lines dropped because the writer fell behind (access_log.queue was full)",
            metrics.dropped.clone(),
        );
        registry.register(
            "edge_access_log_write_errors",
            "Access log writes or reopenings that failed (disk full, say)",
            metrics.write_errors.clone(),
        );
        let (queue, entries) = std::sync::mpsc::sync_channel(config.queue.max(1));
        let reopen = Arc::new(AtomicBool::new(false));
        let writer = Writer {
            sink,
            output,
            format: config.format,
            reopen: reopen.clone(),
            metrics: metrics.clone(),
        };
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || writer.run(entries))?;
        Ok(Self {
            queue,
            sample: config.sample.clamp(0.0, 1.0),
            reopen,
            metrics,
        })
    }

    /// Whether to log the next request (`access_log.sample`).
    pub fn sampled(&self) -> bool {
        self.sample >= 1.0 || rand::random::<f64>() < self.sample
    }

    /// Queues `entry`; drops (and counts) it when the writer is behind.
    pub fn record(&self, entry: Entry) {
        match self.queue.try_send(entry) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.metrics.dropped.inc();
            }
            Err(TrySendError::Disconnected(_)) => {
                self.metrics.write_errors.inc();
            }
        }
    }

    /// Reopens the file before the next line (after logrotate moved it).
    pub fn reopen(&self) {
        self.reopen.store(true, Ordering::Relaxed);
    }
}

fn open(sink: &Sink) -> std::io::Result<Box<dyn Write + Send>> {
    use std::os::unix::fs::OpenOptionsExt;
    match sink {
        Sink::Stdout => Ok(Box::new(std::io::stdout())),
        Sink::File(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o640)
                .open(path)?;
            Ok(Box::new(std::io::BufWriter::with_capacity(64 * 1024, file)))
        }
    }
}

struct Writer {
    sink: Sink,
    output: Box<dyn Write + Send>,
    format: AccessLogFormat,
    reopen: Arc<AtomicBool>,
    metrics: LogMetrics,
}

impl Writer {
    fn run(mut self, entries: Receiver<Entry>) {
        let mut line = String::with_capacity(512);
        loop {
            let entry = match entries.recv_timeout(FLUSH_INTERVAL) {
                Ok(entry) => entry,
                Err(RecvTimeoutError::Timeout) => {
                    self.reopen_if_asked();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.flush();
                    return;
                }
            };
            self.reopen_if_asked();
            self.write(&entry, &mut line);
            // The rest of the burst, then one flush for all of it.
            for _ in 0..BURST {
                match entries.try_recv() {
                    Ok(entry) => self.write(&entry, &mut line),
                    Err(_) => break,
                }
            }
            self.flush();
        }
    }

    fn write(&mut self, entry: &Entry, line: &mut String) {
        line.clear();
        format(self.format, entry, line);
        line.push('\n');
        if self.output.write_all(line.as_bytes()).is_ok() {
            self.metrics.lines.inc();
        } else {
            self.metrics.write_errors.inc();
        }
    }

    fn flush(&mut self) {
        if self.output.flush().is_err() {
            self.metrics.write_errors.inc();
        }
    }

    fn reopen_if_asked(&mut self) {
        if !self.reopen.swap(false, Ordering::Relaxed) {
            return;
        }
        self.flush();
        match open(&self.sink) {
            Ok(output) => self.output = output,
            Err(error) => {
                self.metrics.write_errors.inc();
                tracing::error!(%error, "cannot reopen the access log; writing to the old file");
            }
        }
    }
}

/// Appends `entry` to `line` in `format`.
pub fn format(format: AccessLogFormat, entry: &Entry, line: &mut String) {
    match format {
        AccessLogFormat::Combined => combined(entry, line),
        AccessLogFormat::Json => json(entry, line),
    }
}

/// `client - - [time] "method target protocol" status bytes "referer"
/// "user-agent" "host" cache upstream duration first-byte`, times in
/// seconds with millisecond resolution; a response cut short ends in `!`.
fn combined(entry: &Entry, line: &mut String) {
    use std::fmt::Write as _;
    let _ = write!(
        line,
        "{} - - [{}] \"{} ",
        entry.client,
        clf_time(entry.at),
        escaped(&entry.method, 32)
    );
    line.push_str(&escaped(&entry.target, MAX_TARGET));
    let _ = write!(
        line,
        " {}\" {} {} \"{}\" \"{}\" \"{}\" {} {} {:.3} {:.3}{}",
        entry.protocol,
        entry.status,
        entry.bytes,
        escaped(&entry.referer, MAX_FIELD),
        escaped(&entry.user_agent, MAX_FIELD),
        escaped(&entry.host, MAX_FIELD),
        entry.cache,
        entry.upstream,
        entry.duration.as_secs_f64(),
        entry.first_byte.as_secs_f64(),
        if entry.completed { "" } else { " !" }
    );
}

fn json(entry: &Entry, line: &mut String) {
    let cut = |text: &str, limit: usize| truncate(text, limit).to_string();
    let value = serde_json::json!({
        "time": humantime::format_rfc3339_millis(entry.at).to_string(),
        "client": entry.client.to_string(),
        "method": cut(&entry.method, 32),
        "target": cut(&entry.target, MAX_TARGET),
        "protocol": entry.protocol,
        "host": cut(&entry.host, MAX_FIELD),
        "status": entry.status,
        "bytes": entry.bytes,
        "cache": entry.cache,
        "upstream": entry.upstream,
        "duration_ms": (entry.duration.as_secs_f64() * 1e6).round() / 1e3,
        "first_byte_ms": (entry.first_byte.as_secs_f64() * 1e6).round() / 1e3,
        "completed": entry.completed,
        "referer": cut(&entry.referer, MAX_FIELD),
        "user_agent": cut(&entry.user_agent, MAX_FIELD),
    });
    line.push_str(&value.to_string());
}

/// At most `limit` bytes of `text`, cut at a character boundary.
fn truncate(text: &str, limit: usize) -> &str {
    if text.len() <= limit {
        return text;
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// `text` cut to `limit` with `"`, `\` and control bytes escaped as nginx
/// does (`\x22`), so that fields stay parseable.
fn escaped(text: &str, limit: usize) -> String {
    let mut out = String::with_capacity(text.len().min(limit));
    for c in truncate(text, limit).chars() {
        match c {
            '"' | '\\' => out.push_str(&format!("\\x{:02X}", c as u32)),
            c if c.is_control() => {
                let mut buffer = [0u8; 4];
                for byte in c.encode_utf8(&mut buffer).bytes() {
                    out.push_str(&format!("\\x{byte:02X}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// `04/Dec/2026:20:15:56 +0000`: the common log format's time, in UTC.
fn clf_time(at: SystemTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let seconds = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let (year, month, day) = civil_from_days(i64::try_from(seconds / 86_400).unwrap_or(0));
    let rest = seconds % 86_400;
    format!(
        "{day:02}/{}/{year}:{:02}:{:02}:{:02} +0000",
        MONTHS[usize::try_from(month - 1).unwrap_or(0).min(11)],
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// The Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry {
            at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_415_356),
            client: "192.0.2.7".parse().unwrap(),
            method: "GET".into(),
            target: "/a \"b\"\n".into(),
            protocol: "HTTP/1.1",
            host: "cdn.example.com".into(),
            status: 200,
            bytes: 1024,
            cache: "HIT",
            upstream: "-",
            duration: Duration::from_micros(1_500),
            first_byte: Duration::from_micros(700),
            completed: true,
            referer: "-".into(),
            user_agent: "curl/7.88".into(),
        }
    }

    #[test]
    fn combined_lines_stay_one_parseable_line() {
        let mut line = String::new();
        format(AccessLogFormat::Combined, &entry(), &mut line);
        assert_eq!(
            line,
            "192.0.2.7 - - [04/Dec/2026:20:15:56 +0000] \"GET /a \\x22b\\x22\\x0A HTTP/1.1\" 200 1024 \"-\" \"curl/7.88\" \"cdn.example.com\" HIT - 0.002 0.001"
        );
    }

    #[test]
    fn json_lines_carry_every_field() {
        let mut line = String::new();
        format(AccessLogFormat::Json, &entry(), &mut line);
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["time"], "2026-12-04T20:15:56.000Z");
        assert_eq!(value["target"], "/a \"b\"\n");
        assert_eq!(value["cache"], "HIT");
        assert_eq!(value["duration_ms"], 1.5);
    }

    #[test]
    fn dates_are_gregorian() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_791), (2026, 12, 4));
    }

    #[test]
    fn long_fields_are_cut_at_a_character_boundary() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(escaped(&"x".repeat(5000), MAX_FIELD).len(), MAX_FIELD);
    }
}
