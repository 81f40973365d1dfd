//! Test a fusehost plugin from `cargo test`, in two ways.
//!
//! [`Harness`] drives your filesystem **through the real ABI adapter** (the same
//! `export_plugin!` code the host calls: options checked against your
//! `Plugin::OPTIONS` and `validate`, your `new`, panics caught and answered `EIO`),
//! with no mount and no root. It counts the entries it is handed, as the host does,
//! and forgets them all when dropped, so forget handling is exercised too:
//!
//! ```
//! use fusehost_hello::Hello;
//!
//! let mut fs = fusehost_plugin_test::Harness::new::<Hello>(&[("greeting", "hi")]).unwrap();
//! assert_eq!(fs.read("hello.txt").unwrap(), b"hi\n");
//! assert_eq!(fs.list("").unwrap(), ["hello.txt", "name.txt"]);
//! ```
//!
//! [`TestMount`] mounts your filesystem type on a real kernel mount **in-process**
//! (the host's own session and dispatch, no `.so` to build and so no stale library),
//! in a temporary folder, unmounted when dropped. It needs root, or `fusermount3`
//! (Debian: `apt install fuse3`):
//!
//! ```no_run
//! use fusehost_hello::Hello;
//!
//! let mount = fusehost_plugin_test::TestMount::start::<Hello>(&[("greeting", "hi")]).expect("root, or fuse3");
//! assert_eq!(std::fs::read_to_string(mount.path("hello.txt")).unwrap(), "hi\n");
//! ```
//!
//! Options are `(key, value)` pairs as on `fusehost mount -o`: host keys (`ro`,
//! `attr_ttl`, ...) configure the mount, every other key goes to your plugin.
//!
//! Your crate must be importable from `tests/`: build it as
//! `crate-type = ["cdylib", "rlib"]` (`fusehost new-plugin` does).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use fusehost::mount_options::split_option_lists;
use fusehost::session::{self, MountTarget, RunningMount, Unmounted};
use fusehost_plugin_api::abi::abi_stable::sabi_trait::TD_Opaque;
use fusehost_plugin_api::abi::abi_stable::std_types::{ROption, RSlice, RSliceMut, RStr};
use fusehost_plugin_api::abi::{DirSink, DirSink_TO, FsObject, MountInit, RequestCtx};
use fusehost_plugin_api::flags::open;
use fusehost_plugin_api::{Errno, FileAttr, FileKind, Plugin, ThreadModel, ROOT_INO};

/// How long dropping a [`TestMount`] waits for its session to end.
const UNMOUNT_TIMEOUT: Duration = Duration::from_secs(10);

/// Builds `P`'s filesystem object the way the host does, from `-o`-style pairs.
fn build<P: Plugin>(name: &str, mountpoint: &Path, options: &[(&str, &str)]) -> Result<FsObject, String> {
    let lists: Vec<String> = options.iter().map(|(key, value)| format!("{key}={value}")).collect();
    let (host_options, plugin_options) = split_option_lists(&lists)?;
    let options_toml = toml::to_string(&plugin_options).map_err(|error| error.to_string())?;
    let mountpoint = mountpoint.to_string_lossy();
    let init = MountInit {
        mount_name: RStr::from_str(name),
        mountpoint: RStr::from_str(&mountpoint),
        options_toml: RStr::from_str(&options_toml),
        read_only: host_options.read_only || P::READ_ONLY,
    };
    fusehost_plugin_api::__private::new_filesystem::<P>(&init)
        .into_result()
        .map_err(|error| format!("plugin `{}` refused to start: {}", P::NAME, error.message))
}

/// A plugin's filesystem, driven through the ABI adapter without a mount.
///
/// Paths are relative to the root, `/`-separated (`""` is the root). Every method
/// answers as the plugin did, errno included.
pub struct Harness {
    fs: FsObject,
    ctx: RequestCtx,
    /// Entries handed out and not forgotten yet, by inode: the kernel's view.
    held: BTreeMap<u64, u64>,
}

impl Harness {
    /// Builds `P` with `options`, as `fusehost mount` would.
    pub fn new<P: Plugin>(options: &[(&str, &str)]) -> Result<Harness, String> {
        let fs = build::<P>("harness", Path::new("/nonexistent"), options)?;
        Ok(Harness::of(fs))
    }

    /// Drives an already-built filesystem object (for example
    /// `fusehost_plugin_api::into_fs_object(MyFs::new(..))`).
    pub fn of(fs: FsObject) -> Harness {
        // The caller's own credentials, as a mount would pass them.
        let ctx = RequestCtx {
            uid: rustix::process::geteuid().as_raw(),
            gid: rustix::process::getegid().as_raw(),
            pid: std::process::id(),
            umask: 0o022,
        };
        Harness { fs, ctx, held: BTreeMap::new() }
    }

    /// The filesystem object, for calls the helpers do not cover.
    pub fn filesystem(&self) -> &FsObject {
        &self.fs
    }

    /// Looks `name` up in `parent`; a success is one more reference held.
    pub fn lookup(&mut self, parent: u64, name: &str) -> Result<FileAttr, Errno> {
        let found = self.fs.lookup_ttl(&self.ctx, parent, RSlice::from_slice(name.as_bytes())).into_result()?;
        if found.entry.attr.ino == 0 {
            return Err(Errno::ENOENT);
        }
        *self.held.entry(found.entry.attr.ino).or_insert(0) += 1;
        FileAttr::from_abi(&found.entry.attr).ok_or(Errno::EIO)
    }

    /// The inode at `path`, looked up one component at a time as the kernel does.
    pub fn resolve(&mut self, path: &str) -> Result<u64, Errno> {
        let mut ino = ROOT_INO;
        for name in path.split('/').filter(|name| !name.is_empty()) {
            ino = self.lookup(ino, name)?.ino;
        }
        Ok(ino)
    }

    /// The attributes of `path`.
    pub fn attr(&mut self, path: &str) -> Result<FileAttr, Errno> {
        let ino = self.resolve(path)?;
        let attr = self.fs.getattr_ttl(&self.ctx, ino, ROption::RNone).into_result()?;
        FileAttr::from_abi(&attr.attr).ok_or(Errno::EIO)
    }

    /// The whole content of the file at `path`: open, read to the end, release.
    pub fn read(&mut self, path: &str) -> Result<Vec<u8>, Errno> {
        let ino = self.resolve(path)?;
        let opened = self.fs.open(&self.ctx, ino, open::READ_ONLY).into_result()?;
        let mut content = Vec::new();
        let mut chunk = vec![0u8; 128 * 1024];
        let outcome = loop {
            let buffer = RSliceMut::from_mut_slice(&mut chunk);
            match self.fs.read(&self.ctx, ino, opened.fh, content.len() as u64, buffer, 0, ROption::RNone).into_result()
            {
                Ok(0) => break Ok(()),
                Ok(count) => content.extend_from_slice(&chunk[..(count as usize).min(chunk.len())]),
                Err(errno) => break Err(errno),
            }
        };
        let _ = self.fs.release(&self.ctx, ino, opened.fh, open::READ_ONLY, ROption::RNone, true);
        outcome.map(|()| content)
    }

    /// The names in the directory at `path`, without `.` and `..`, in the order the
    /// plugin lists them.
    pub fn list(&mut self, path: &str) -> Result<Vec<String>, Errno> {
        Ok(self.list_kinds(path)?.into_iter().map(|(name, _)| name.to_string_lossy().into_owned()).collect())
    }

    /// [`Harness::list`] with each entry's kind, names as bytes.
    pub fn list_kinds(&mut self, path: &str) -> Result<Vec<(OsString, FileKind)>, Errno> {
        let ino = self.resolve(path)?;
        let opened = self.fs.opendir(&self.ctx, ino, 0).into_result()?;
        let mut collected = Collected::default();
        let outcome = loop {
            let before = collected.entries.len();
            let offset = collected.next_offset;
            let answer = {
                let mut sink = DirSink_TO::from_ptr(&mut collected, TD_Opaque);
                self.fs.readdir(&self.ctx, ino, opened.fh, offset, &mut sink).into_result()
            };
            match answer {
                Ok(()) if collected.entries.len() == before => break Ok(()),
                Ok(()) => {}
                Err(errno) => break Err(errno),
            }
        };
        let _ = self.fs.releasedir(&self.ctx, ino, opened.fh, 0);
        outcome?;
        Ok(collected
            .entries
            .into_iter()
            .filter(|(name, _)| name.as_bytes() != b"." && name.as_bytes() != b"..")
            .collect())
    }

    /// The inodes the plugin handed out that the harness still holds, with how many
    /// references each (what the kernel would hold).
    pub fn held(&self) -> Vec<(u64, u64)> {
        self.held.iter().map(|(&ino, &count)| (ino, count)).collect()
    }

    /// Lets go of every inode held, as the kernel does at unmount: the plugin hears
    /// `forget(ino)` once for each.
    pub fn forget_all(&mut self) {
        for ino in std::mem::take(&mut self.held).into_keys() {
            self.fs.forget(ino);
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.forget_all();
        self.fs.destroy();
    }
}

/// A readdir sink that keeps every entry; it never reports the buffer full, and the
/// harness asks again from the last offset until nothing new comes.
#[derive(Default)]
struct Collected {
    entries: Vec<(OsString, FileKind)>,
    next_offset: i64,
}

impl DirSink for Collected {
    fn add(&mut self, _ino: u64, next_offset: i64, kind: u32, name: RSlice<'_, u8>) -> bool {
        let kind = FileKind::from_mode(kind).unwrap_or(FileKind::RegularFile);
        self.entries.push((OsString::from_vec(name.to_vec()), kind));
        self.next_offset = next_offset;
        false
    }
}

/// A plugin's filesystem mounted in-process on a real kernel mount, in a temporary
/// folder; unmounted (and the folder removed) when dropped.
pub struct TestMount {
    running: Option<RunningMount>,
    dir: tempfile::TempDir,
}

impl TestMount {
    /// Mounts `P` with `options`. Needs root, or `fusermount3` on the `PATH`.
    pub fn start<P: Plugin>(options: &[(&str, &str)]) -> Result<TestMount, String> {
        let dir = tempfile::tempdir().map_err(|error| format!("a temporary folder: {error}"))?;
        let mountpoint = dir.path().join("mnt");
        std::fs::create_dir(&mountpoint).map_err(|error| format!("the mountpoint: {error}"))?;
        let lists: Vec<String> = options.iter().map(|(key, value)| format!("{key}={value}")).collect();
        let (mut host_options, _) = split_option_lists(&lists)?;
        host_options.read_only |= P::READ_ONLY;
        let fs = build::<P>(P::NAME, &mountpoint, options)?;
        let target = MountTarget {
            name: P::NAME.to_owned(),
            mountpoint,
            plugin_name: P::NAME.to_owned(),
            options: host_options,
            require_empty: true,
        };
        let serialized = P::THREAD_MODEL == ThreadModel::Serialized;
        let running = session::start_with(target, fs, serialized).map_err(|error| {
            let hint = if rustix::process::geteuid().is_root() {
                ""
            } else {
                " (mounting needs root, or fusermount3: apt install fuse3)"
            };
            format!("{error}{hint}")
        })?;
        Ok(TestMount { running: Some(running), dir })
    }

    /// The mountpoint.
    pub fn mountpoint(&self) -> PathBuf {
        self.dir.path().join("mnt")
    }

    /// A path inside the mount.
    pub fn path(&self, relative: &str) -> PathBuf {
        self.mountpoint().join(relative)
    }
}

impl Drop for TestMount {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            if let Unmounted::Lazily(lingering) | Unmounted::SessionStuck(lingering) = running.unmount(UNMOUNT_TIMEOUT)
            {
                lingering.abandon();
            }
        }
    }
}
