//! A [`HostStatus`] in Prometheus' text exposition format (version 0.0.4), for
//! `fusehost status --format prometheus` (node_exporter's textfile collector) and the
//! `/metrics` endpoint.
//!
//! Written by hand from the status document rather than through a metrics crate: the
//! counters already live in the host's atomics, and the format is a few lines per family.

use std::fmt::Write;

use crate::status_report::{HostStatus, MountStatus};

/// The `Content-Type` of what [`render`] writes.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Escapes a label value: backslash, double quote and newline.
fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

struct Family<'a> {
    out: &'a mut String,
}

impl Family<'_> {
    fn header<'a>(out: &'a mut String, name: &str, kind: &str, help: &str) -> Family<'a> {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        Family { out }
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        let labels: Vec<String> = labels.iter().map(|(key, value)| format!("{key}=\"{}\"", label(value))).collect();
        let _ = writeln!(self.out, "{name}{{{}}} {value}", labels.join(","));
    }
}

/// Writes one family: `value` gives each mount's samples.
fn per_mount(
    out: &mut String,
    status: &HostStatus,
    (name, kind, help): (&str, &str, &str),
    mut value: impl FnMut(&MountStatus, &mut dyn FnMut(&[(&str, &str)], f64)),
) {
    let mut family = Family::header(out, name, kind, help);
    for mount in &status.mounts {
        value(mount, &mut |labels, sample| {
            let mut all = vec![("mount", mount.name.as_str())];
            all.extend_from_slice(labels);
            family.sample(name, &all, sample);
        });
    }
}

/// A family with one sample per mount: name, type, help, and the value.
type MountFamily = (&'static str, &'static str, &'static str, fn(&MountStatus) -> f64);

pub fn render(status: &HostStatus) -> String {
    let mut out = String::new();
    per_mount(
        &mut out,
        status,
        ("fusehost_mount_info", "gauge", "A mounted filesystem: where, and which plugin serves it."),
        |mount, sample| {
            let path = mount.path.display().to_string();
            sample(&[("path", &path), ("plugin", &mount.plugin), ("plugin_version", &mount.plugin_version)], 1.0);
        },
    );
    let simple: [MountFamily; 10] = [
        ("fusehost_uptime_seconds", "gauge", "Seconds since the mount came up.", |m| m.uptime_secs),
        ("fusehost_inodes_known", "gauge", "Inodes the kernel holds references to.", |m| m.inodes_known as f64),
        ("fusehost_forgets_total", "counter", "Inodes the plugin was told to forget.", |m| m.forgets as f64),
        ("fusehost_anomalies_total", "counter", "Plugin answers the host had to correct.", |m| m.anomalies as f64),
        ("fusehost_requests_in_flight", "gauge", "Requests being served now.", |m| m.in_flight as f64),
        ("fusehost_read_bytes_total", "counter", "Bytes answered to reads.", |m| m.bytes_read as f64),
        ("fusehost_written_bytes_total", "counter", "Bytes accepted by writes.", |m| m.bytes_written as f64),
        ("fusehost_later_in_flight", "gauge", "Requests waiting inside a plugin that answers later.", |m| {
            m.answered_later.as_ref().map_or(0.0, |later| later.in_flight as f64)
        }),
        ("fusehost_later_oldest_seconds", "gauge", "Age of the request waiting longest inside the plugin.", |m| {
            m.answered_later.as_ref().and_then(|later| later.oldest_age_secs).unwrap_or(0.0)
        }),
        (
            "fusehost_later_dropped_replies_total",
            "counter",
            "Replies the plugin dropped unanswered (answered EIO).",
            |m| m.answered_later.as_ref().map_or(0.0, |later| later.dropped_replies as f64),
        ),
    ];
    for (name, kind, help, value) in simple {
        per_mount(&mut out, status, (name, kind, help), |mount, sample| sample(&[], value(mount)));
    }
    per_mount(
        &mut out,
        status,
        ("fusehost_requests_total", "counter", "FUSE requests served, by operation."),
        |mount, sample| {
            for (op, figures) in &mount.requests {
                sample(&[("operation", op)], figures.requests as f64);
            }
        },
    );
    per_mount(
        &mut out,
        status,
        (
            "fusehost_request_errors_total",
            "counter",
            "Requests answered with an errno, by operation and errno (ENOENT and ENODATA are how the kernel asks, not failures).",
        ),
        |mount, sample| {
            for (op, figures) in &mount.requests {
                for (errno, answers) in &figures.errnos {
                    sample(&[("operation", op), ("errno", errno)], *answers as f64);
                }
            }
        },
    );
    let bounds: Vec<String> = status.latency_bounds_secs.iter().map(|bound| bound.to_string()).collect();
    let name = "fusehost_request_duration_seconds";
    let mut family =
        Family::header(&mut out, name, "histogram", "Time from a request's arrival to its answer, by operation.");
    for mount in &status.mounts {
        for (op, figures) in &mount.requests {
            let mut cumulative = 0;
            for (bucket, count) in figures.latency_counts.iter().enumerate() {
                cumulative += count;
                let bound = bounds.get(bucket).map_or("+Inf", String::as_str);
                family.sample(
                    &format!("{name}_bucket"),
                    &[("mount", mount.name.as_str()), ("operation", op.as_str()), ("le", bound)],
                    cumulative,
                );
            }
            let labels = [("mount", mount.name.as_str()), ("operation", op.as_str())];
            family.sample(&format!("{name}_sum"), &labels, figures.latency_sum_secs);
            family.sample(&format!("{name}_count"), &labels, cumulative);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status_report::OpStatus;
    use std::collections::BTreeMap;

    #[test]
    fn renders_counters_errnos_and_a_cumulative_histogram() {
        let op = OpStatus {
            requests: 3,
            errors: 0,
            not_found: 1,
            unsupported: 0,
            errnos: BTreeMap::from([("ENOENT".to_owned(), 1)]),
            latency_counts: vec![1, 2, 0],
            latency_sum_secs: 0.5,
        };
        let mount = MountStatus {
            name: "a \"b\"".into(),
            path: "/mnt/a".into(),
            plugin: "memfs".into(),
            plugin_version: "0.1.0".into(),
            uptime_secs: 1.0,
            inodes_known: 2,
            forgets: 0,
            anomalies: 0,
            in_flight: 0,
            answered_later: None,
            bytes_read: 10,
            bytes_written: 0,
            requests: BTreeMap::from([("lookup".to_owned(), op)]),
        };
        let mut status = HostStatus::new(None, vec![mount]);
        status.latency_bounds_secs = vec![0.001, 0.01];
        let text = render(&status);
        assert!(text.contains(r#"fusehost_requests_total{mount="a \"b\"",operation="lookup"} 3"#), "{text}");
        assert!(text.contains(r#"fusehost_request_errors_total{mount="a \"b\"",operation="lookup",errno="ENOENT"} 1"#));
        assert!(text
            .contains(r#"fusehost_request_duration_seconds_bucket{mount="a \"b\"",operation="lookup",le="0.01"} 3"#));
        assert!(text.contains(r#"le="+Inf"} 3"#));
        assert!(text.contains(r#"fusehost_request_duration_seconds_count{mount="a \"b\"",operation="lookup"} 3"#));
        assert!(text.contains(r#"fusehost_read_bytes_total{mount="a \"b\""} 10"#));
        assert!(text.contains("# TYPE fusehost_request_duration_seconds histogram"));
    }
}
