//! One mount's life: check the mountpoint, build the plugin's filesystem, mount it
//! with a fuser session on its own threads, and take it down again.
//!
//! Unmounting is the host's job: in fuser 0.18.0 an in-process unmount does nothing
//! when `AutoUnmount` is set (fuser issue #407), and `BackgroundSession::umount_and_join`
//! consumes the session even when the unmount fails with `EBUSY`, leaving a dead mount
//! behind when the process exits. So the host never sets `AutoUnmount`, runs the
//! session on a thread of its own, unmounts through the session's own unmounter
//! (`umount2(path, 0)`, or `fusermount3 -u` without root) so that fuser does not try
//! again when the session ends, falls back to a lazy `MNT_DETACH` when the mount is
//! busy, and waits for the session threads with a timeout.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use fusehost_abi::RawFilesystem;
use fuser::{Config, MountOption, Session, SessionACL, SessionUnmounter};
use rustix::io::Errno;
use rustix::mount::{unmount, UnmountFlags};

use crate::dispatch::{Dispatch, DispatchConfig, MountCore, MountShared};
use crate::error::HostError;
use crate::loader::{LoadedPlugin, ThreadModel};
use crate::mount_options::MountOptions;

/// Where and how to mount, whatever serves the filesystem.
#[derive(Clone, Debug)]
pub struct MountTarget {
    pub name: String,
    pub mountpoint: PathBuf,
    /// The default source name (`fusehost:<plugin>`); the type is `fuse.fusehost`.
    pub plugin_name: String,
    pub options: MountOptions,
    /// Refuse a mountpoint that is not empty (mounting would hide its files).
    pub require_empty: bool,
}

/// Everything needed to bring up one mount of a loaded plugin.
#[derive(Clone, Debug)]
pub struct MountRequest {
    pub target: MountTarget,
    pub plugin: Arc<LoadedPlugin>,
    /// The plugin's options, as a TOML document.
    pub plugin_options: String,
}

/// A mount that is up, served by its own session threads.
pub struct RunningMount {
    pub name: String,
    pub mountpoint: PathBuf,
    pub plugin_name: String,
    pub started: Instant,
    pub shared: Arc<MountShared>,
    session: Option<JoinHandle<()>>,
    ended: Receiver<std::io::Result<()>>,
    unmounter: SessionUnmounter,
    /// The filesystem behind the session, to destroy once if the session outlives us.
    core: Arc<dyn MountCore>,
    /// Set once [`RunningMount::unmount`] ran; otherwise dropping unmounts.
    unmounted: bool,
}

/// How an unmount went.
pub enum Unmounted {
    /// Unmounted, the session ended and the plugin was destroyed.
    Clean,
    /// The mount was busy: detached lazily. Its session serves the open files until
    /// the last one closes.
    Lazily(Lingering),
    /// Unmounted, but the session did not end within the timeout (a request is still
    /// inside the plugin).
    SessionStuck(Lingering),
}

/// A session still serving after its mount was taken down.
pub struct Lingering {
    pub name: String,
    pub mountpoint: PathBuf,
    session: Option<JoinHandle<()>>,
    core: Arc<dyn MountCore>,
}

impl Lingering {
    /// Whether the session has ended (its plugin was destroyed by it).
    pub fn has_ended(&self) -> bool {
        self.session.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// The host is leaving while the session still serves: forget and destroy the
    /// plugin's filesystem now, since the session never will. Files still open on the
    /// detached mount fail from here on.
    pub fn abandon(self) {
        if !self.has_ended() {
            self.core.destroy_once(&[]);
        }
    }
}

impl RunningMount {
    /// Whether the session ended on its own (someone unmounted it from outside).
    pub fn has_ended(&self) -> bool {
        self.session.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Unmounts and waits up to `timeout` for the session to end; a busy mount is
    /// detached lazily and handed back at once, still serving its open files.
    pub fn unmount(mut self, timeout: Duration) -> Unmounted {
        self.unmounted = true;
        let lazily = match unmount_path(&mut self.unmounter, &self.name, &self.mountpoint) {
            Ok(lazily) => lazily,
            Err(error) => {
                tracing::warn!(mount = %self.name, "unmounting {} failed: {error}", self.mountpoint.display());
                false
            }
        };
        if lazily {
            return Unmounted::Lazily(self.linger());
        }
        match self.ended.recv_timeout(timeout) {
            Ok(outcome) => {
                if let Some(session) = self.session.take() {
                    let _ = session.join();
                }
                if let Err(error) = outcome {
                    tracing::warn!(mount = %self.name, "session ended with an error: {error}");
                }
                Unmounted::Clean
            }
            Err(RecvTimeoutError::Disconnected) => Unmounted::Clean,
            Err(RecvTimeoutError::Timeout) => Unmounted::SessionStuck(self.linger()),
        }
    }

    fn linger(&mut self) -> Lingering {
        Lingering {
            name: self.name.clone(),
            mountpoint: self.mountpoint.clone(),
            session: self.session.take(),
            core: Arc::clone(&self.core),
        }
    }
}

impl Drop for RunningMount {
    /// A mount dropped without [`RunningMount::unmount`] (an early return, a panic
    /// unwinding the host) is still unmounted, so no dead mountpoint is left behind.
    fn drop(&mut self) {
        if !self.unmounted && !self.has_ended() {
            if let Err(error) = unmount_path(&mut self.unmounter, &self.name, &self.mountpoint) {
                tracing::warn!(mount = %self.name, "unmounting {} failed: {error}", self.mountpoint.display());
            }
        }
    }
}

/// Unmounts `path`; returns whether it had to detach lazily because it was busy.
fn unmount_path(unmounter: &mut SessionUnmounter, name: &str, path: &Path) -> std::io::Result<bool> {
    match unmounter.unmount() {
        Ok(()) => Ok(false),
        Err(error) if error.raw_os_error() == Some(Errno::BUSY.raw_os_error()) => {
            tracing::warn!(mount = %name, "{} is busy (files still open): detaching it lazily", path.display());
            unmount(path, UnmountFlags::DETACH)?;
            Ok(true)
        }
        Err(error) => Err(error),
    }
}

/// A FUSE mount whose daemon died: every access fails with `ENOTCONN`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DeadMount {
    /// Left by a fusehost that crashed or was killed (source `fusehost:*`).
    Ours,
    /// Left by some other FUSE program.
    Foreign,
}

/// What is mounted at `path`, if it is a dead FUSE mount.
fn dead_mount_at(path: &Path) -> Option<DeadMount> {
    match std::fs::metadata(path) {
        Err(error) if error.raw_os_error() == Some(Errno::NOTCONN.raw_os_error()) => {}
        _ => return None,
    }
    let mounted = crate::mount_table::mounted_at(path)?;
    Some(if mounted.is_fuse() && mounted.source.starts_with("fusehost:") {
        DeadMount::Ours
    } else {
        DeadMount::Foreign
    })
}

/// Checks the mountpoint without changing anything: a directory (empty, when the
/// target requires it), or missing with `create` set. A dead mount a crashed fusehost
/// left there is fine (mounting detaches it); any other dead mount is not.
pub fn check_mountpoint(target: &MountTarget) -> Result<(), String> {
    match dead_mount_at(&target.mountpoint) {
        Some(DeadMount::Ours) => return Ok(()),
        Some(DeadMount::Foreign) => {
            let path = target.mountpoint.display();
            return Err(format!(
                "the mountpoint is a dead FUSE mount of another program (Transport endpoint is not connected): \
                 unmount it with `fusermount3 -u {path}` or `umount -l {path}`"
            ));
        }
        None => {}
    }
    match std::fs::metadata(&target.mountpoint) {
        Ok(meta) if !meta.is_dir() => Err("the mountpoint is not a directory".to_owned()),
        Ok(_) if target.require_empty => match std::fs::read_dir(&target.mountpoint).map(|mut list| list.next()) {
            Ok(None) => Ok(()),
            Ok(Some(_)) => {
                Err("the mountpoint is not empty: mounting would hide its files; empty it, pick another, or set \
                     the option nonempty to mount over them"
                    .to_owned())
            }
            Err(error) => Err(format!("cannot list the mountpoint: {error}")),
        },
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound && target.options.create => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            Err("the mountpoint does not exist: create it, or use the `create` option".to_owned())
        }
        Err(error) => Err(format!("cannot use the mountpoint: {error}")),
    }
}

/// Checks the mountpoint and creates it when missing and `create` is set.
fn prepare_mountpoint(target: &MountTarget) -> Result<(), HostError> {
    let problem = |message: String| HostError::Mountpoint {
        mount: target.name.clone(),
        path: target.mountpoint.clone(),
        message,
    };
    if dead_mount_at(&target.mountpoint) == Some(DeadMount::Ours) {
        unmount(&target.mountpoint, UnmountFlags::DETACH)
            .map_err(|error| problem(format!("cannot detach the dead fusehost mount there: {error}")))?;
        tracing::warn!(
            mount = %target.name,
            "{} was a dead mount left by a fusehost that crashed or was killed: detached it",
            target.mountpoint.display()
        );
    }
    check_mountpoint(target).map_err(problem)?;
    if target.options.create && !target.mountpoint.exists() {
        std::fs::create_dir_all(&target.mountpoint)
            .map_err(|error| problem(format!("cannot create the mountpoint: {error}")))?;
    }
    Ok(())
}

fn fuser_config(target: &MountTarget) -> Config {
    let options = &target.options;
    let plugin_name = &target.plugin_name;
    let mut mount_options = vec![
        MountOption::FSName(options.fsname.clone().unwrap_or_else(|| format!("fusehost:{plugin_name}"))),
        // `fuse.fusehost` in the mount table: fusermount3 takes the subtype from its
        // option; fuser's own mount(2) as root passes only kernel options, which the
        // kernel's `subtype=` is.
        if rustix::process::geteuid().is_root() {
            MountOption::CUSTOM("subtype=fusehost".to_owned())
        } else {
            MountOption::Subtype("fusehost".to_owned())
        },
    ];
    let kernel = &options.kernel;
    mount_options.push(if kernel.dev { MountOption::Dev } else { MountOption::NoDev });
    mount_options.push(if kernel.suid { MountOption::Suid } else { MountOption::NoSuid });
    if !kernel.exec {
        mount_options.push(MountOption::NoExec);
    }
    match kernel.atime {
        Some(true) => mount_options.push(MountOption::Atime),
        Some(false) => mount_options.push(MountOption::NoAtime),
        None => {}
    }
    if kernel.sync {
        mount_options.push(MountOption::Sync);
    }
    if kernel.dirsync {
        mount_options.push(MountOption::DirSync);
    }
    mount_options.push(if options.read_only { MountOption::RO } else { MountOption::RW });
    if options.default_permissions {
        mount_options.push(MountOption::DefaultPermissions);
    }
    let mut config = Config::default();
    config.mount_options = mount_options;
    config.acl = if options.allow_other {
        SessionACL::All
    } else if options.allow_root {
        SessionACL::RootAndOwner
    } else {
        SessionACL::Owner
    };
    config.n_threads = Some(options.threads);
    config.clone_fd = true;
    config
}

/// The host's rules for a mount, whatever its mountpoint: no unchecked permissions
/// for every user while running as root, and no `panic = "abort"` plugin unless the
/// mount allows it. Checked before anything is built (by `check`, `run` and `mount`).
pub fn check_request(request: &MountRequest) -> Result<(), String> {
    let options = &request.target.options;
    options.check_safety(rustix::process::geteuid().is_root())?;
    request.plugin.check_panic_strategy(options.allow_panic_abort)
}

/// Checks the mountpoint, then builds the plugin's filesystem and mounts it. The
/// mountpoint comes first: building may be costly (an archive is indexed whole).
pub fn start(request: MountRequest) -> Result<RunningMount, HostError> {
    check_request(&request)
        .map_err(|message| HostError::Usage(format!("mount `{}`: {message}", request.target.name)))?;
    let MountRequest { mut target, plugin, plugin_options } = request;
    // A plugin that never changes anything shows so in the mount table.
    target.options.read_only |= plugin.description.read_only;
    prepare_mountpoint(&target)?;
    // The plugin's own log lines while it builds carry the mount's name too.
    let _span = tracing::info_span!(parent: None, "mount", mount = %target.name).entered();
    let fs = plugin
        .new_filesystem(&target.name, &target.mountpoint, &plugin_options, target.options.read_only)
        .map_err(|refusal| HostError::PluginFailed {
            plugin: plugin.description.name.clone(),
            mount: target.name.clone(),
            message: refusal.message,
        })?;
    let serialized = plugin.description.thread_model == ThreadModel::Serialized;
    mount(target, fs, serialized)
}

/// Mounts an already-built filesystem: a plugin's object, or one linked into the
/// binary (`fusehost_plugin_api::FfiFilesystem`), through the same dispatch.
pub fn start_with<O: RawFilesystem + 'static>(
    target: MountTarget,
    fs: O,
    serialized: bool,
) -> Result<RunningMount, HostError> {
    prepare_mountpoint(&target)?;
    mount(target, fs, serialized)
}

/// Raises this process's soft limit on open files to its hard limit, once: plugins
/// that keep a descriptor per file the kernel holds (passthrough keeps an `O_PATH`
/// handle per node, as libfuse's passthrough_hp does) would otherwise fail with
/// `EMFILE` after ~1,000 files under the usual soft limit of 1024.
fn raise_open_file_limit() {
    static RAISED: std::sync::Once = std::sync::Once::new();
    RAISED.call_once(|| {
        use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
        let limit = getrlimit(Resource::Nofile);
        // `None` is unlimited; the kernel caps the descriptors anyway (`fs.nr_open`).
        let Some(maximum) = limit.maximum else { return };
        if limit.current.is_some_and(|current| current < maximum) {
            if let Err(error) = setrlimit(Resource::Nofile, Rlimit { current: Some(maximum), maximum: Some(maximum) }) {
                tracing::warn!("could not raise the open file limit to {maximum}: {error}");
            }
        }
    });
}

/// Mounts `fs` at a prepared mountpoint and starts its session thread.
fn mount<O: RawFilesystem + 'static>(target: MountTarget, fs: O, serialized: bool) -> Result<RunningMount, HostError> {
    raise_open_file_limit();
    let shared = Arc::new(MountShared::with_max_in_flight(target.options.max_in_flight));
    // The field is `mount`, as on every other line about a mount (and not `name`,
    // which JSON logs would collide with the span's own name).
    let span = tracing::info_span!(parent: None, "mount", mount = %target.name);
    let consent = fs.capabilities();
    crate::capabilities::check_consent(&target.options, &target.plugin_name, consent)
        .map_err(|message| HostError::Usage(format!("mount `{}`: {message}", target.name)))?;
    let options = &target.options;
    let config = DispatchConfig {
        serialized,
        attr_ttl: options.attr_ttl,
        entry_ttl: options.entry_ttl,
        negative_ttl: options.negative_ttl.unwrap_or(options.entry_ttl),
        writeback_cache: options.writeback_cache,
        allow_kernel_passthrough: options.allow_kernel_passthrough,
        consent,
        default_permissions: options.default_permissions,
        read_only: options.read_only,
        presentation: options.presentation,
    };
    let notification_span = span.clone();
    let mut dispatch = Dispatch::new(fs, Arc::clone(&shared), config, &target.name, span);
    dispatch.report_crashes_as(crate::crash::register(&target.name, &target.plugin_name, &target.mountpoint));
    let core = dispatch.core();
    let notifications = dispatch.notifications();
    // A failed mount drops the dispatch, which destroys the plugin's filesystem.
    let mut session = Session::new(dispatch, &target.mountpoint, &fuser_config(&target)).map_err(|source| {
        HostError::MountFailed { mount: target.name.clone(), path: target.mountpoint.clone(), source }
    })?;
    notifications
        .start(&target.name, session.notifier(), &notification_span)
        .map_err(|source| HostError::Io { context: "starting the notification thread".to_owned(), source })?;
    let unmounter = session.unmount_callable();
    let (report_end, ended) = std::sync::mpsc::channel();
    let (name, mountpoint) = (target.name.clone(), target.mountpoint.clone());
    let thread = std::thread::Builder::new()
        .name(format!("session-{}", target.name))
        .spawn(move || {
            // run() joins the worker threads, then calls destroy (forgets + plugin destroy).
            let outcome = session.run();
            if let Err(error) = &outcome {
                // run() gives up early when a worker thread died, while the others may
                // still serve: detach the mount so that nothing is left that the host
                // no longer manages. The last worker's exit destroys the filesystem.
                tracing::error!(mount = %name, "session failed ({error}): detaching {}", mountpoint.display());
                let _ = unmount(&mountpoint, UnmountFlags::DETACH);
            }
            let _ = report_end.send(outcome);
        })
        .map_err(|source| HostError::Io { context: "starting the session thread".to_owned(), source })?;
    Ok(RunningMount {
        name: target.name,
        mountpoint: target.mountpoint,
        plugin_name: target.plugin_name,
        started: Instant::now(),
        shared,
        session: Some(thread),
        ended,
        unmounter,
        core,
        unmounted: false,
    })
}
