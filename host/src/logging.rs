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
use tracing_subscriber::EnvFilter;

/// Installs the subscriber: `RUST_LOG` if set, else what `-v` asks for, else the
/// config's `log`, else `info`.
pub fn init(verbosity: u8, configured: Option<&str>) {
    let chosen = match (verbosity, configured) {
        (0, Some(configured)) => configured,
        (0, None) => "info,fuser=warn",
        (1, _) => "debug,fuser=info",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(chosen));
    // Fails only when a subscriber is already installed (in tests); keep that one.
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(colour).try_init();
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
