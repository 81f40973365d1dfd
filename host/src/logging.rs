//! Logging: the host's `tracing` subscriber, and the host side of the plugin log bridge.
//!
//! Plugin events arrive through [`host_services`]' `log` callback and are re-emitted
//! with target `plugin` (tracing needs a constant target) and the plugin's own target
//! as the `plugin_target` field, inside whatever span is current: during a request,
//! the mount's dispatch span, so each line names its mount. `RUST_LOG=plugin=debug`
//! selects them. Plugin warnings and errors are rate-limited (a plugin that warns per
//! request, or panics on one, must not let a client flood the log).

use std::io::IsTerminal as _;

use fusehost_abi::{log_level, HostServices, LogRecord};
use tracing::level_filters::LevelFilter;

use crate::log_limit::LogLimiter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// How log lines are written to stderr.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Timestamped lines for a terminal or a file.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
    /// For journald: no timestamp (the journal adds its own), and each line starts with
    /// its syslog priority (`<3>` error ... `<7>` debug) so the journal records it.
    Journal,
}

/// The format to use when none was asked for: `journal` when stderr is the journal
/// (systemd sets `$JOURNAL_STREAM` to its device and inode), else `text`.
pub fn default_format() -> LogFormat {
    if stderr_is_journal() {
        LogFormat::Journal
    } else {
        LogFormat::Text
    }
}

fn stderr_is_journal() -> bool {
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else { return false };
    let Ok(stat) = rustix::fs::fstat(std::io::stderr()) else { return false };
    // `struct stat`'s field types differ between architectures.
    #[allow(clippy::unnecessary_cast)]
    let ours = format!("{}:{}", stat.st_dev as u64, stat.st_ino as u64);
    stream.to_str() == Some(ours.as_str())
}

/// Prefixes each line with its syslog priority, for journald (`sd-daemon(3)`).
struct WithPriority<F>(F);

impl<S, N, F> FormatEvent<S, N> for WithPriority<F>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let priority = match *event.metadata().level() {
            tracing::Level::ERROR => 3,
            tracing::Level::WARN => 4,
            tracing::Level::INFO => 6,
            _ => 7,
        };
        write!(writer, "<{priority}>")?;
        self.0.format_event(ctx, writer, event)
    }
}

/// Installs the subscriber: `RUST_LOG` if set, else what `-v` asks for, else the
/// config's `log`, else `info`; lines in `format`.
pub fn init(verbosity: u8, configured: Option<&str>, format: LogFormat) {
    let chosen = match (verbosity, configured) {
        (0, Some(configured)) => configured,
        (0, None) => "info,fuser=warn",
        (1, _) => "debug,fuser=info",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(chosen));
    // Fails only when a subscriber is already installed (in tests); keep that one.
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.with_ansi(colour).try_init(),
        LogFormat::Json => builder.json().with_current_span(true).with_span_list(false).try_init(),
        LogFormat::Journal => builder
            .with_ansi(false)
            .event_format(WithPriority(tracing_subscriber::fmt::format().without_time().with_ansi(false)))
            .try_init(),
    };
}

/// The callbacks every plugin gets when it is loaded.
pub fn host_services() -> HostServices {
    HostServices { log: plugin_log, max_level: plugin_max_level }
}

extern "C" fn plugin_max_level() -> u8 {
    match LevelFilter::current().into_level() {
        None => log_level::OFF,
        Some(tracing::Level::ERROR) => log_level::ERROR,
        Some(tracing::Level::WARN) => log_level::WARN,
        Some(tracing::Level::INFO) => log_level::INFO,
        Some(tracing::Level::DEBUG) => log_level::DEBUG,
        Some(tracing::Level::TRACE) => log_level::TRACE,
    }
}

/// Plugin lines at warn and above, across all plugins of the process.
static PLUGIN_WARNINGS: LogLimiter = LogLimiter::with_lines("plugin warnings and errors", 50);

extern "C" fn plugin_log(record: &LogRecord<'_>) {
    if matches!(record.level, log_level::ERROR | log_level::WARN) && !PLUGIN_WARNINGS.allow() {
        return;
    }
    let plugin_target = record.target.as_str();
    let message = record.message.as_str();
    let fields = record.fields.as_str();
    let separator = if fields.is_empty() { "" } else { " " };
    macro_rules! emit {
        ($level:expr) => {
            tracing::event!(target: "plugin", $level, plugin_target, "{message}{separator}{fields}")
        };
    }
    match record.level {
        log_level::ERROR => emit!(tracing::Level::ERROR),
        log_level::WARN => emit!(tracing::Level::WARN),
        log_level::INFO => emit!(tracing::Level::INFO),
        log_level::DEBUG => emit!(tracing::Level::DEBUG),
        _ => emit!(tracing::Level::TRACE),
    }
}
