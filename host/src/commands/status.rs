//! `fusehost status` and `fusehost reload`: clients of a running host's control socket.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::commands::say;
use crate::config;
use crate::control::{self, ask};
use crate::error::HostError;
use crate::prometheus;
use crate::status_report::{HostStatus, STATUS_VERSION};
use crate::supervisor::ReloadReport;

/// The socket to talk to: `--socket`, else the config's, else the default.
pub fn socket_path(socket: Option<PathBuf>, config_file: Option<&Path>) -> Result<PathBuf, HostError> {
    if let Some(socket) = socket {
        return Ok(socket);
    }
    if let Some(file) = config_file {
        let config = config::load(file).map_err(|error| HostError::Config(error.to_string()))?;
        if let Some(socket) = config.host.control_socket {
            return Ok(socket);
        }
    }
    Ok(control::default_socket_path())
}

/// How `fusehost status` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusFormat {
    /// A table for people.
    Text,
    /// The status document, as the host wrote it (see README "Status and metrics").
    Json,
    /// Prometheus' text format, for node_exporter's textfile collector.
    Prometheus,
}

/// An answer of the control socket: what was asked for, or why the host refused.
#[derive(Deserialize)]
#[serde(untagged)]
enum Answer<T> {
    Refused { error: String },
    Given(T),
}

fn parse<T: DeserializeOwned>(answer: &str) -> Result<T, HostError> {
    let parsed: Answer<T> = serde_json::from_str(answer).map_err(|error| {
        HostError::Usage(format!("the host answered something this fusehost cannot read ({error}): {answer}"))
    })?;
    match parsed {
        Answer::Refused { error } => Err(HostError::Usage(format!("the host refused: {error}"))),
        Answer::Given(value) => Ok(value),
    }
}

/// Asks the host at `socket` for its status, refusing a newer document than this
/// binary reads rather than misread it.
pub fn fetch(socket: &Path) -> Result<HostStatus, HostError> {
    let answer = ask(socket, "status")?;
    let document: serde_json::Value = parse(&answer)?;
    let version = document.get("version").and_then(serde_json::Value::as_u64).unwrap_or(0);
    if version > u64::from(STATUS_VERSION) {
        return Err(HostError::Usage(format!(
            "the host writes status version {version}, this fusehost reads up to {STATUS_VERSION}: use the host's own fusehost binary"
        )));
    }
    serde_json::from_value(document).map_err(|error| {
        HostError::Usage(format!("the host answered a status this fusehost cannot read ({error}): {answer}"))
    })
}

pub fn status(socket: &Path, format: StatusFormat) -> Result<(), HostError> {
    let status = fetch(socket)?;
    match format {
        StatusFormat::Json => {
            let text = serde_json::to_string_pretty(&status)
                .map_err(|error| HostError::Usage(format!("cannot write JSON: {error}")))?;
            say(format_args!("{text}"));
        }
        StatusFormat::Prometheus => print!("{}", prometheus::render(&status)),
        StatusFormat::Text => print_table(&status),
    }
    Ok(())
}

fn print_table(status: &HostStatus) {
    let config = status.config.as_ref().map_or_else(|| "one mount".to_owned(), |file| file.display().to_string());
    say(format_args!("fusehost pid {} serving {config}", status.pid));
    say(format_args!(
        "{:<16} {:<12} {:>9} {:>7} {:>8} {:>9} {:>9} {:>7} {:>9} {:>11} {:>8}  PATH",
        "MOUNT",
        "PLUGIN",
        "UPTIME",
        "INODES",
        "FORGETS",
        "ANOMALIES",
        "REQUESTS",
        "ERRORS",
        "NOT-FOUND",
        "UNSUPPORTED",
        "INFLIGHT"
    ));
    for mount in &status.mounts {
        let (requests, errors, not_found, unsupported) =
            mount.requests.values().fold((0, 0, 0, 0), |(r, e, n, u), op| {
                (r + op.requests, e + op.errors, n + op.not_found, u + op.unsupported)
            });
        say(format_args!(
            "{:<16} {:<12} {:>8.0}s {:>7} {:>8} {:>9} {:>9} {:>7} {:>9} {:>11} {:>8}  {}",
            mount.name,
            mount.plugin,
            mount.uptime_secs,
            mount.inodes_known,
            mount.forgets,
            mount.anomalies,
            requests,
            errors,
            not_found,
            unsupported,
            mount.in_flight,
            mount.path.display(),
        ));
        let by_op: Vec<String> = mount
            .requests
            .iter()
            .map(|(op, figures)| {
                let answered: u64 = figures.latency_counts.iter().sum();
                let mean_us = if answered > 0 { figures.latency_sum_secs * 1e6 / answered as f64 } else { 0.0 };
                format!("{op} {}/{}/{} {mean_us:.0}µs", figures.requests, figures.errors, figures.not_found)
            })
            .collect();
        if !by_op.is_empty() {
            say(format_args!("    requests/errors/not-found, mean latency: {}", by_op.join(", ")));
        }
        if mount.bytes_read + mount.bytes_written > 0 {
            say(format_args!("    bytes read {}, written {}", mount.bytes_read, mount.bytes_written));
        }
        if let Some(later) = &mount.answered_later {
            let oldest = match (&later.oldest_operation, later.oldest_age_secs) {
                (Some(op), Some(age)) => format!(", oldest {op} waiting {age:.3}s"),
                _ => String::new(),
            };
            say(format_args!(
                "    answered later: {} waiting (peak {}, cap {}), {} in all, {} dropped replies{oldest}",
                later.in_flight, later.peak, later.max_in_flight, later.total, later.dropped_replies
            ));
        }
    }
}

/// Asks the host to reload; returns whether the new config was applied.
pub fn reload(socket: &Path) -> Result<bool, HostError> {
    let report: ReloadReport = parse(&ask(socket, "reload")?)?;
    if let Some(reason) = &report.refused {
        say(format_args!("reload refused, nothing changed: {reason}"));
        return Ok(false);
    }
    let kinds = [
        ("added", &report.added),
        ("removed", &report.removed),
        ("changed", &report.changed),
        ("unchanged", &report.unchanged),
        ("failed", &report.failed),
    ];
    for (kind, names) in kinds {
        if !names.is_empty() {
            say(format_args!("{kind}: {}", names.join(", ")));
        }
    }
    Ok(report.failed.is_empty())
}
