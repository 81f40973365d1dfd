//! Dispatch's life, with a filesystem linked in that answers through the raw ABI trait
//! with panics, which no SDK guard catches, so each panic unwinds through dispatch as
//! a host bug would: a panic while serving a request is answered EIO and the mount
//! stays served and managed, and every filesystem dispatch was given is destroyed
//! exactly once, whether or not a session ever ran it.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::channel;
use std::sync::Arc;
use std::time::Duration;

use abi_stable::std_types::{ROption, RResult, RSlice, RSliceMut};
use fusehost::dispatch::{Dispatch, DispatchConfig, MountShared};
use fusehost::mount_options::MountOptions;
use fusehost::session::{start_with, MountTarget, Unmounted};
use fusehost_abi::{
    Attr, Created, DirPlusSinkRef, DirSinkRef, Entry, Errno, Opened, RawFilesystem, RequestCtx, SetAttr, StatFs,
};

/// Panics in every request; counts its `destroy` calls.
struct Bomb {
    destroyed: Arc<AtomicU32>,
}

type R<T> = RResult<T, Errno>;

#[rustfmt::skip]
impl RawFilesystem for Bomb {
    fn lookup(&self, _: &RequestCtx, _: u64, _: RSlice<'_, u8>) -> R<Entry> { panic!("lookup") }
    fn forget(&self, _: u64) {}
    fn getattr(&self, _: &RequestCtx, _: u64, _: ROption<u64>) -> R<Attr> { panic!("a host bug in getattr") }
    fn setattr(&self, _: &RequestCtx, _: u64, _: &SetAttr) -> R<Attr> { panic!("setattr") }
    fn readlink(&self, _: &RequestCtx, _: u64, _: RSliceMut<'_, u8>) -> R<u64> { panic!("readlink") }
    fn mknod(&self, _: &RequestCtx, _: u64, _: RSlice<'_, u8>, _: u32, _: u32) -> R<Entry> { panic!("mknod") }
    fn mkdir(&self, _: &RequestCtx, _: u64, _: RSlice<'_, u8>, _: u32) -> R<Entry> { panic!("mkdir") }
    fn unlink(&self, _: &RequestCtx, _: u64, _: RSlice<'_, u8>) -> R<()> { panic!("unlink") }
    fn rmdir(&self, _: &RequestCtx, _: u64, _: RSlice<'_, u8>) -> R<()> { panic!("rmdir") }
    fn symlink(&self, _: &RequestCtx, _: u64, _: RSlice<'_, u8>, _: RSlice<'_, u8>) -> R<Entry> { panic!("symlink") }
    fn rename(&self, _: &RequestCtx, _: u64, _: RSlice<'_, u8>, _: u64, _: RSlice<'_, u8>, _: u32) -> R<()> { panic!("rename") }
    fn link(&self, _: &RequestCtx, _: u64, _: u64, _: RSlice<'_, u8>) -> R<Entry> { panic!("link") }
    fn open(&self, _: &RequestCtx, _: u64, _: i32) -> R<Opened> { panic!("open") }
    fn read(&self, _: &RequestCtx, _: u64, _: u64, _: u64, _: RSliceMut<'_, u8>, _: i32, _: ROption<u64>) -> R<u64> { panic!("read") }
    fn write(&self, _: &RequestCtx, _: u64, _: u64, _: u64, _: RSlice<'_, u8>, _: u32, _: i32, _: ROption<u64>) -> R<u32> { panic!("write") }
    fn flush(&self, _: &RequestCtx, _: u64, _: u64, _: u64) -> R<()> { panic!("flush") }
    fn release(&self, _: &RequestCtx, _: u64, _: u64, _: i32, _: ROption<u64>, _: bool) -> R<()> { panic!("release") }
    fn fsync(&self, _: &RequestCtx, _: u64, _: u64, _: bool) -> R<()> { panic!("fsync") }
    fn opendir(&self, _: &RequestCtx, _: u64, _: i32) -> R<Opened> { panic!("opendir") }
    fn readdir(&self, _: &RequestCtx, _: u64, _: u64, _: i64, _: &mut DirSinkRef<'_, '_>) -> R<()> { panic!("readdir") }
    fn readdirplus(&self, _: &RequestCtx, _: u64, _: u64, _: i64, _: &mut DirPlusSinkRef<'_, '_>) -> R<()> { panic!("readdirplus") }
    fn releasedir(&self, _: &RequestCtx, _: u64, _: u64, _: i32) -> R<()> { panic!("releasedir") }
    fn fsyncdir(&self, _: &RequestCtx, _: u64, _: u64, _: bool) -> R<()> { panic!("fsyncdir") }
    fn statfs(&self, _: &RequestCtx, _: u64) -> R<StatFs> { panic!("statfs") }
    fn setxattr(&self, _: &RequestCtx, _: u64, _: RSlice<'_, u8>, _: RSlice<'_, u8>, _: i32, _: u32) -> R<()> { panic!("setxattr") }
    fn getxattr(&self, _: &RequestCtx, _: u64, _: RSlice<'_, u8>, _: RSliceMut<'_, u8>) -> R<u64> { panic!("getxattr") }
    fn listxattr(&self, _: &RequestCtx, _: u64, _: RSliceMut<'_, u8>) -> R<u64> { panic!("listxattr") }
    fn removexattr(&self, _: &RequestCtx, _: u64, _: RSlice<'_, u8>) -> R<()> { panic!("removexattr") }
    fn access(&self, _: &RequestCtx, _: u64, _: i32) -> R<()> { panic!("access") }
    fn create(&self, _: &RequestCtx, _: u64, _: RSlice<'_, u8>, _: u32, _: i32) -> R<Created> { panic!("create") }
    fn fallocate(&self, _: &RequestCtx, _: u64, _: u64, _: u64, _: u64, _: i32) -> R<()> { panic!("fallocate") }
    fn lseek(&self, _: &RequestCtx, _: u64, _: u64, _: i64, _: i32) -> R<i64> { panic!("lseek") }
    fn copy_file_range(&self, _: &RequestCtx, _: u64, _: u64, _: u64, _: u64, _: u64, _: u64, _: u64, _: u64) -> R<u32> { panic!("copy_file_range") }
    fn destroy(&self) { self.destroyed.fetch_add(1, Ordering::SeqCst); }
}

#[test]
fn a_panic_in_dispatch_answers_eio_and_leaves_the_mount_managed() {
    let dir = tempfile::tempdir().unwrap();
    let mountpoint = dir.path().join("mnt");
    std::fs::create_dir(&mountpoint).unwrap();
    let destroyed = Arc::new(AtomicU32::new(0));
    let target = MountTarget {
        name: "bomb".into(),
        mountpoint: mountpoint.clone(),
        plugin_name: "bomb".into(),
        options: MountOptions { attr_ttl: Duration::ZERO, ..MountOptions::default() },
        require_empty: true,
    };
    let mount =
        start_with(target, Bomb { destroyed: Arc::clone(&destroyed) }, false).expect("mounted (tests run as root)");

    // More panics than the mount has worker threads: each would have killed one.
    for _ in 0..4 {
        let (done, answer) = channel();
        let path = mountpoint.clone();
        std::thread::spawn(move || {
            let _ = done.send(std::fs::metadata(path).map(|_| ()));
        });
        let answer = answer.recv_timeout(Duration::from_secs(10)).expect("stat answered");
        assert_eq!(answer.expect_err("getattr panicked").raw_os_error(), Some(5), "EIO");
    }
    assert!(!mount.has_ended(), "the session still serves after the panics");
    // The EIO leaves while the panic unwinds, a moment before the panic is counted.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while mount.shared.anomalies.count() < 4 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(mount.shared.anomalies.count() >= 4, "each panic is counted");
    assert!(matches!(mount.unmount(Duration::from_secs(5)), Unmounted::Clean), "the host still manages the mount");
    assert_eq!(destroyed.load(Ordering::SeqCst), 1, "destroyed exactly once");
}

#[test]
fn a_filesystem_whose_mount_never_came_up_is_destroyed_once() {
    let destroyed = Arc::new(AtomicU32::new(0));
    let config = DispatchConfig {
        serialized: false,
        attr_ttl: Duration::ZERO,
        entry_ttl: Duration::ZERO,
        negative_ttl: Duration::ZERO,
        writeback_cache: false,
        allow_kernel_passthrough: true,
        consent: 0,
        default_permissions: true,
        read_only: false,
        presentation: Default::default(),
    };
    let dispatch = Dispatch::new(
        Bomb { destroyed: Arc::clone(&destroyed) },
        Arc::new(MountShared::default()),
        config,
        "never-mounted",
        tracing::Span::none(),
    );
    drop(dispatch);
    assert_eq!(destroyed.load(Ordering::SeqCst), 1);
}
