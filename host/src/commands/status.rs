//! `fusehost status` and `fusehost reload`: clients of a running host's control socket.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::commands::say;
use crate::config;
use crate::control::{self, ask};
use crate::error::HostError;

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

fn parse(answer: &str) -> Result<Value, HostError> {
    let value: Value = serde_json::from_str(answer).map_err(|error| {
        HostError::Usage(format!("the host answered something that is not JSON ({error}): {answer}"))
    })?;
    match value.get("error").and_then(Value::as_str) {
        Some(error) => Err(HostError::Usage(format!("the host refused: {error}"))),
        None => Ok(value),
    }
}

pub fn status(socket: &Path, json: bool) -> Result<(), HostError> {
    let answer = ask(socket, "status")?;
    if json {
        say(format_args!("{answer}"));
        return Ok(());
    }
    let status = parse(&answer)?;
    let text = |value: &Value| value.as_str().map(str::to_owned).unwrap_or_else(|| value.to_string());
    say(format_args!("fusehost pid {} serving {}", status["pid"], text(&status["config"])));
    say(format_args!(
        "{:<16} {:<12} {:>9} {:>7} {:>8} {:>9} {:>9} {:>7}  PATH",
        "MOUNT", "PLUGIN", "UPTIME", "INODES", "FORGETS", "ANOMALIES", "REQUESTS", "ERRORS"
    ));
    for mount in status["mounts"].as_array().into_iter().flatten() {
        let requests = mount["requests"].as_object().into_iter().flatten();
        let (total, errors) = requests.fold((0, 0), |(total, errors), (_, op)| {
            (total + op["requests"].as_u64().unwrap_or(0), errors + op["errors"].as_u64().unwrap_or(0))
        });
        say(format_args!(
            "{:<16} {:<12} {:>8.0}s {:>7} {:>8} {:>9} {:>9} {:>7}  {}",
            text(&mount["name"]),
            text(&mount["plugin"]),
            mount["uptime_secs"].as_f64().unwrap_or(0.0),
            mount["inodes_known"].to_string(),
            mount["forgets"].to_string(),
            mount["anomalies"].to_string(),
            total,
            errors,
            text(&mount["path"]),
        ));
        let by_op: Vec<String> = mount["requests"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(op, counts)| format!("{op} {}/{}", counts["requests"], counts["errors"]))
            .collect();
        if !by_op.is_empty() {
            say(format_args!("    requests/errors: {}", by_op.join(", ")));
        }
    }
    Ok(())
}

/// Asks the host to reload; returns whether the new config was applied.
pub fn reload(socket: &Path) -> Result<bool, HostError> {
    let report = parse(&ask(socket, "reload")?)?;
    if let Some(reason) = report["refused"].as_str() {
        say(format_args!("reload refused, nothing changed: {reason}"));
        return Ok(false);
    }
    for key in ["added", "removed", "changed", "unchanged", "failed"] {
        let names: Vec<String> =
            report[key].as_array().into_iter().flatten().filter_map(|name| name.as_str().map(str::to_owned)).collect();
        if !names.is_empty() {
            say(format_args!("{key}: {}", names.join(", ")));
        }
    }
    Ok(report["failed"].as_array().is_none_or(Vec::is_empty))
}
