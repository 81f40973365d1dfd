//! What the plugin ABI costs.
//!
//! The benchfs filesystem is mounted twice through the same dispatch: once loaded from
//! `libfusehost_benchfs.so` (every call crosses the abi_stable vtable), once linked into
//! this binary (the baseline: direct calls). The same requests are timed on both, in
//! alternating rounds, and the medians compared. Needs root and `/dev/fuse`:
//!
//! ```text
//! cargo build --release --workspace && cargo bench -p fusehost --bench abi_cost
//! ```

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fusehost::loader::Loader;
use fusehost::mount_options::MountOptions;
use fusehost::session::{self, MountRequest, MountTarget, RunningMount};
use fusehost_benchfs::{byte_at, BenchFs, DATA_SIZE};
use fusehost_plugin_api::FfiFilesystem;

const ROUNDS: usize = 5;

fn options() -> MountOptions {
    // No attribute or name caching: every stat is a request.
    MountOptions { attr_ttl: Duration::ZERO, entry_ttl: Duration::ZERO, ..MountOptions::default() }
}

fn target(name: &str, mountpoint: &Path) -> MountTarget {
    MountTarget {
        name: name.to_owned(),
        mountpoint: mountpoint.to_path_buf(),
        plugin_name: "benchfs".to_owned(),
        options: options(),
        require_empty: false,
    }
}

fn plugin_library() -> PathBuf {
    let exe = std::env::current_exe().expect("own path");
    let release = exe.parent().and_then(Path::parent).expect("target/release/deps");
    let library = release.join("libfusehost_benchfs.so");
    if !library.is_file() {
        eprintln!("{} is missing: run `cargo build --release --workspace` first", library.display());
        std::process::exit(1);
    }
    library
}

fn mount_both(so_dir: &Path, linked_dir: &Path) -> (RunningMount, RunningMount) {
    let plugin = Loader::new().load(&plugin_library()).unwrap_or_else(|error| {
        eprintln!("loading benchfs: {error}");
        std::process::exit(1)
    });
    let request = MountRequest { target: target("benchfs-so", so_dir), plugin, plugin_options: String::new() };
    let so = session::start(request).unwrap_or_else(|error| {
        eprintln!("mounting (needs root and /dev/fuse): {error}");
        std::process::exit(1)
    });
    let linked = session::start_with(target("benchfs-linked", linked_dir), FfiFilesystem::new(BenchFs::new()), false)
        .unwrap_or_else(|error| {
            eprintln!("mounting in-process: {error}");
            std::process::exit(1)
        });
    (so, linked)
}

/// One workload: runs it once against a mountpoint and returns (operations, elapsed).
type Workload = fn(&Path) -> (u64, Duration);

fn statfs_calls(root: &Path) -> (u64, Duration) {
    const CALLS: u64 = 50_000;
    let start = Instant::now();
    for _ in 0..CALLS {
        rustix::fs::statvfs(root).expect("statvfs");
    }
    (CALLS, start.elapsed())
}

fn stat_calls(root: &Path) -> (u64, Duration) {
    const CALLS: u64 = 50_000;
    let data = root.join("data");
    let start = Instant::now();
    for _ in 0..CALLS {
        let meta = std::fs::metadata(&data).expect("stat");
        assert_eq!(meta.len(), DATA_SIZE);
    }
    (CALLS, start.elapsed())
}

fn random_4k_reads(root: &Path) -> (u64, Duration) {
    const READS: u64 = 50_000;
    let file = File::open(root.join("data")).expect("open");
    let mut buf = [0u8; 4096];
    let mut offset = 0u64;
    let start = Instant::now();
    for _ in 0..READS {
        // A fixed pseudo-random walk over 4 KiB-aligned offsets.
        offset = (offset + 7919 * 4096) % (DATA_SIZE - 4096);
        file.read_exact_at(&mut buf, offset).expect("read");
    }
    let elapsed = start.elapsed();
    assert_eq!(buf[0], byte_at(offset));
    (READS, elapsed)
}

fn sequential_1m_reads(root: &Path) -> (u64, Duration) {
    const PASSES: u64 = 8;
    let file = File::open(root.join("data")).expect("open");
    let mut buf = vec![0u8; 1 << 20];
    let start = Instant::now();
    for _ in 0..PASSES {
        let mut offset = 0;
        while offset < DATA_SIZE {
            file.read_exact_at(&mut buf, offset).expect("read");
            offset += buf.len() as u64;
        }
    }
    (PASSES * DATA_SIZE / (1 << 20), start.elapsed())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let so_dir = tempfile::tempdir().expect("temp folder");
    let linked_dir = tempfile::tempdir().expect("temp folder");
    let (so, linked) = mount_both(so_dir.path(), linked_dir.path());

    let workloads: [(&str, &str, Workload); 4] = [
        ("statfs", "ns/op", statfs_calls),
        ("stat (attr_ttl=0)", "ns/op", stat_calls),
        ("4 KiB random read", "ns/op", random_4k_reads),
        ("1 MiB sequential read", "ns/MiB", sequential_1m_reads),
    ];
    println!("fusehost ABI cost: benchfs from a .so against benchfs linked in, same dispatch");
    println!("median of {ROUNDS} alternating rounds, 2 worker threads with clone_fd, unpinned\n");
    println!("{:<30} {:>12} {:>12} {:>8}", "workload", ".so plugin", "in-process", "ratio");
    for (name, unit, workload) in workloads {
        let (mut via_so, mut in_process) = (Vec::new(), Vec::new());
        workload(so.mountpoint.as_path()); // warm up both
        workload(linked.mountpoint.as_path());
        for _ in 0..ROUNDS {
            for (mount, samples) in [(&so, &mut via_so), (&linked, &mut in_process)] {
                let (ops, elapsed) = workload(&mount.mountpoint);
                samples.push(elapsed.as_nanos() as f64 / ops as f64);
            }
        }
        let (so_ns, linked_ns) = (median(via_so), median(in_process));
        println!("{:<30} {:>12.0} {:>12.0} {:>7.3}x", format!("{name} ({unit})"), so_ns, linked_ns, so_ns / linked_ns);
    }
    for mount in [so, linked] {
        mount.unmount(Duration::from_secs(5));
    }
}
