//! Forwards a plugin's `tracing` events to the host.
//!
//! Each `.so` has its own copy of `tracing`'s globals, so events raised inside a plugin
//! never reach the host's subscriber on their own. When the host attaches, this module
//! installs a small subscriber in the plugin's copy that hands every enabled event
//! (level, target, message, fields, location) to the host's log callback. The host
//! re-emits it inside the span of the request being served, so the line carries the
//! mount's name.
//!
//! The host's most verbose level is read once at attach time and becomes this
//! subscriber's level hint, so filtered-out events are rejected at the callsite and
//! never cross. Spans opened inside a plugin are accepted but not forwarded.

use std::fmt::Write as _;
use std::sync::OnceLock;

use fusehost_abi::abi_stable::std_types::RStr;
use fusehost_abi::{log_level, HostServices, LogRecord};
use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};

static HOST: OnceLock<HostServices> = OnceLock::new();

/// Remembers the host's callbacks and installs the forwarding subscriber (once).
pub(crate) fn attach(host: HostServices) {
    if HOST.set(host).is_ok() {
        let max_level = (host.max_level)();
        // Fails only if the plugin installed its own global subscriber; keep that one.
        let _ = tracing::subscriber::set_global_default(Forwarder { max_level });
    }
}

fn level_code(level: &Level) -> u8 {
    match *level {
        Level::ERROR => log_level::ERROR,
        Level::WARN => log_level::WARN,
        Level::INFO => log_level::INFO,
        Level::DEBUG => log_level::DEBUG,
        Level::TRACE => log_level::TRACE,
    }
}

struct Forwarder {
    max_level: u8,
}

impl Forwarder {
    fn wants(&self, metadata: &Metadata<'_>) -> bool {
        level_code(metadata.level()) <= self.max_level
    }
}

impl Subscriber for Forwarder {
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        if self.wants(metadata) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.wants(metadata)
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(match self.max_level {
            log_level::ERROR => LevelFilter::ERROR,
            log_level::WARN => LevelFilter::WARN,
            log_level::INFO => LevelFilter::INFO,
            log_level::DEBUG => LevelFilter::DEBUG,
            log_level::TRACE => LevelFilter::TRACE,
            _ => LevelFilter::OFF,
        })
    }

    fn new_span(&self, _span: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _span: &Id, _values: &Record<'_>) {}

    fn record_follows_from(&self, _span: &Id, _follows: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let Some(host) = HOST.get() else { return };
        let metadata = event.metadata();
        let mut text = EventText::default();
        event.record(&mut text);
        let record = LogRecord {
            level: level_code(metadata.level()),
            target: RStr::from_str(metadata.target()),
            message: RStr::from_str(&text.message),
            fields: RStr::from_str(&text.fields),
            file: RStr::from_str(metadata.file().unwrap_or("")),
            line: metadata.line().unwrap_or(0),
        };
        (host.log)(&record);
    }

    fn enter(&self, _span: &Id) {}

    fn exit(&self, _span: &Id) {}
}

/// An event's `message` field and its other fields as `key=value` pairs.
#[derive(Default)]
struct EventText {
    message: String,
    fields: String,
}

impl Visit for EventText {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            if !self.fields.is_empty() {
                self.fields.push(' ');
            }
            let _ = write!(self.fields, "{}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.record_debug(field, &value);
        }
    }
}
