//! What `fusehost status --json` prints and the control socket answers: typed,
//! versioned structs that the host writes and the client reads back.
//!
//! [`STATUS_VERSION`] changes only when a field changes meaning or goes away; fields
//! are added without a new version (readers ignore fields they do not know). Every field
//! is documented in README.md ("Status fields").

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::dispatch::MountShared;
use crate::later_requests::LaterSnapshot;
use crate::stats::{is_not_found, is_unsupported, LATENCY_BOUNDS_NS, OTHER_ERRNO};

/// The version of the status document this host writes.
pub const STATUS_VERSION: u32 = 1;

/// The whole host.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct HostStatus {
    pub version: u32,
    pub pid: u32,
    /// The config file served; absent for a single `fusehost mount`.
    pub config: Option<PathBuf>,
    /// Upper bounds of the latency buckets every operation's `latency_counts` uses, in
    /// seconds (the last count is beyond the last bound).
    pub latency_bounds_secs: Vec<f64>,
    pub mounts: Vec<MountStatus>,
}

/// One mount.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct MountStatus {
    pub name: String,
    pub path: PathBuf,
    pub plugin: String,
    pub plugin_version: String,
    pub uptime_secs: f64,
    /// Inodes the kernel currently holds references to (the lookup table's size).
    pub inodes_known: u64,
    /// Inodes the plugin was told to forget.
    pub forgets: u64,
    /// Plugin answers the host had to correct (see the log for each).
    pub anomalies: u64,
    /// Requests inside the host or the plugin right now.
    pub in_flight: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    /// By operation name, the operations that saw at least one request.
    pub requests: BTreeMap<String, OpStatus>,
    /// Requests the plugin answers later (ABI 1.2); absent until the first one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answered_later: Option<LaterStatus>,
}

/// The requests of a mount that its plugin answers later, from its own threads.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LaterStatus {
    /// Waiting inside the plugin now.
    pub in_flight: u64,
    /// The most that ever waited at once.
    pub peak: u64,
    /// The mount's `max_in_flight`: at the cap, new requests wait for a free slot.
    pub max_in_flight: u64,
    /// Every request sent to be answered later.
    pub total: u64,
    /// Replies the plugin dropped without answering (answered `EIO` by the host).
    pub dropped_replies: u64,
    /// The request that has waited longest: its operation and age.
    pub oldest_operation: Option<String>,
    pub oldest_age_secs: Option<f64>,
}

/// One operation of one mount.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct OpStatus {
    pub requests: u64,
    /// Answers with an errno that is neither "not found" nor "unsupported".
    pub errors: u64,
    /// ENOENT and ENODATA answers: how the kernel asks whether a name or an extended
    /// attribute exists, not failures.
    pub not_found: u64,
    /// ENOSYS and EOPNOTSUPP answers: the plugin declining an operation or an
    /// attribute namespace, not failures.
    #[serde(default)]
    pub unsupported: u64,
    /// Every errno answer, by name (`ENOENT`, `EIO`, ...).
    pub errnos: BTreeMap<String, u64>,
    /// Answers per latency bucket (see `latency_bounds_secs`), not cumulative.
    pub latency_counts: Vec<u64>,
    pub latency_sum_secs: f64,
}

/// What names a mount in its status.
#[derive(Clone, Debug)]
pub struct MountIdentity {
    pub name: String,
    pub path: PathBuf,
    pub plugin: String,
    pub plugin_version: String,
}

impl HostStatus {
    pub fn new(config: Option<PathBuf>, mounts: Vec<MountStatus>) -> HostStatus {
        HostStatus {
            version: STATUS_VERSION,
            pid: std::process::id(),
            config,
            latency_bounds_secs: LATENCY_BOUNDS_NS.iter().map(|&bound| bound as f64 / 1e9).collect(),
            mounts,
        }
    }
}

/// The name of `errno` (`ENOENT`); `other` for the slot of errnos past Linux's.
pub fn errno_name(errno: i32) -> String {
    if errno == OTHER_ERRNO {
        return "other".to_owned();
    }
    match nix::errno::Errno::from_raw(errno) {
        nix::errno::Errno::UnknownErrno => format!("E{errno}"),
        known => format!("{known:?}"),
    }
}

impl MountStatus {
    /// The status of the mount `identity` names, from its counters, now.
    pub fn now(identity: MountIdentity, shared: &MountShared, started: std::time::Instant) -> MountStatus {
        let MountIdentity { name, path, plugin, plugin_version } = identity;
        let stats = shared.stats.snapshot();
        let requests = stats
            .ops
            .into_iter()
            .map(|count| {
                let answers_where = |kind: fn(i32) -> bool| -> u64 {
                    count.errnos.iter().filter(|&&(errno, _)| kind(errno)).map(|&(_, answers)| answers).sum()
                };
                let not_found = answers_where(is_not_found);
                let unsupported = answers_where(is_unsupported);
                let all: u64 = count.errnos.iter().map(|&(_, answers)| answers).sum();
                let status = OpStatus {
                    requests: count.requests,
                    errors: all - not_found - unsupported,
                    not_found,
                    unsupported,
                    errnos: count.errnos.iter().map(|&(errno, answers)| (errno_name(errno), answers)).collect(),
                    latency_counts: count.latency.to_vec(),
                    latency_sum_secs: count.latency_sum_ns as f64 / 1e9,
                };
                (count.op.name().to_owned(), status)
            })
            .collect();
        MountStatus {
            name,
            path,
            plugin,
            plugin_version,
            uptime_secs: started.elapsed().as_secs_f64(),
            inodes_known: shared.lookups.len() as u64,
            forgets: shared.lookups.forgotten(),
            anomalies: shared.lookups.anomalies() + shared.anomalies.count(),
            in_flight: stats.in_flight,
            bytes_read: stats.bytes_read,
            bytes_written: stats.bytes_written,
            requests,
            answered_later: later_status(&shared.later.snapshot()),
        }
    }
}

fn later_status(later: &LaterSnapshot) -> Option<LaterStatus> {
    (later.total > 0).then(|| LaterStatus {
        in_flight: later.in_flight,
        peak: later.peak,
        max_in_flight: later.cap,
        total: later.total,
        dropped_replies: later.dropped,
        oldest_operation: later.oldest.map(|(op, _)| op.name().to_owned()),
        oldest_age_secs: later.oldest.map(|(_, age)| age.as_secs_f64()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errnos_are_named_as_in_errno_h() {
        assert_eq!(errno_name(libc::ENOENT), "ENOENT");
        assert_eq!(errno_name(libc::ENODATA), "ENODATA");
        assert_eq!(errno_name(9999), "E9999");
        assert_eq!(errno_name(OTHER_ERRNO), "other");
    }

    #[test]
    fn a_status_reads_back_as_written() {
        let shared = MountShared::default();
        shared.stats.begin(crate::stats::Op::Lookup);
        shared.stats.error(crate::stats::Op::Lookup, libc::ENOENT);
        shared.stats.error(crate::stats::Op::Lookup, libc::EIO);
        shared.stats.error(crate::stats::Op::Lookup, libc::ENOSYS);
        let identity =
            MountIdentity { name: "m".into(), path: "/mnt".into(), plugin: "memfs".into(), plugin_version: "1".into() };
        let status = HostStatus::new(None, vec![MountStatus::now(identity, &shared, std::time::Instant::now())]);
        let lookup = &status.mounts[0].requests["lookup"];
        assert_eq!((lookup.requests, lookup.errors, lookup.not_found, lookup.unsupported), (1, 1, 1, 1));
        let text = serde_json::to_string(&status).unwrap();
        let back: HostStatus = serde_json::from_str(&text).unwrap();
        assert_eq!(back, status);
    }
}
