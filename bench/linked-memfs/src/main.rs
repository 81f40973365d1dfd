//! `linked-memfs MOUNTPOINT [THREADS]`: memfs linked into the host and mounted through
//! the same dispatch and session as `fusehost mount memfs`, but called directly instead
//! of through the plugin ABI. The benchmark suite compares the two to show what the ABI
//! costs. Serves until SIGINT or SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use fusehost::commands::foreground::{announce, serve_until_stopped};
use fusehost::mount_options::MountOptions;
use fusehost::session::{self, MountTarget};
use fusehost_memfs::{MemFs, RootOwner};
use fusehost_plugin_api::FfiFilesystem;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let Some(mountpoint) = args.next().map(PathBuf::from) else {
        eprintln!("usage: linked-memfs MOUNTPOINT [THREADS]");
        return ExitCode::from(2);
    };
    let threads = args.next().and_then(|n| n.to_str()?.parse().ok()).unwrap_or(MountOptions::default().threads);
    let signals = match fusehost::signals::listen() {
        Ok(signals) => signals,
        Err(error) => {
            eprintln!("linked-memfs: installing signal handlers: {error}");
            return ExitCode::FAILURE;
        }
    };
    // The plugin's defaults (max_size aside: the suite writes 1 GiB files).
    let memfs = MemFs::new(8 << 30, 1_000_000, RootOwner { uid: 0, gid: 0, perm: 0o755 });
    let target = MountTarget {
        name: "linked-memfs".to_owned(),
        mountpoint,
        plugin_name: "memfs".to_owned(),
        options: MountOptions { threads, ..MountOptions::default() },
        require_empty: false,
    };
    match session::start_with(target, FfiFilesystem::new(memfs), false) {
        Ok(mount) => {
            announce(&mount);
            serve_until_stopped(vec![mount], &signals, Duration::from_secs(5));
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("linked-memfs: {error}");
            ExitCode::FAILURE
        }
    }
}
