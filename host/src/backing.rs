//! Kernel FUSE passthrough (Linux 6.9+): the backing files behind open handles.
//!
//! A plugin that answers open/create with a descriptor (`Opened::passthrough_fd`) asks
//! the kernel to read and write that file directly. The host registers it with the
//! session (`FUSE_DEV_IOC_BACKING_OPEN`) and keeps one backing id per inode, shared by
//! every open handle of that inode: the kernel refuses a second, different backing file
//! for an inode with `EBUSY`, and it opens its own backing file per handle with that
//! handle's flags, so sharing one is correct. The id is closed when the inode's last
//! passthrough handle is released.
//!
//! When the kernel or privileges do not allow passthrough, the file is served through
//! the plugin and the log says why, once; a refusal that cannot change (no privilege,
//! not negotiated) stops further attempts.

use std::io;
use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicBool, Ordering};

use dashmap::mapref::entry::Entry;
use dashmap::mapref::one::MappedRef;
use dashmap::DashMap;
use fusehost_abi::Opened;
use fuser::BackingId;
use rustc_hash::FxBuildHasher;

#[derive(Default)]
pub struct Backing {
    /// Set by the first passthrough open, so releases skip the maps otherwise.
    used: AtomicBool,
    /// Set when the kernel refused in a way that will not change.
    refused: AtomicBool,
    by_inode: DashMap<u64, (BackingId, u32), FxBuildHasher>,
    handles: DashMap<(u64, u64), (), FxBuildHasher>,
}

/// Errors from the registering ioctl that mean "never on this mount".
fn is_permanent(error: &io::Error) -> bool {
    matches!(
        rustix::io::Errno::from_io_error(error),
        Some(
            rustix::io::Errno::PERM
                | rustix::io::Errno::NOTTY
                | rustix::io::Errno::OPNOTSUPP
                | rustix::io::Errno::INVAL
        )
    )
}

impl Backing {
    /// The backing id for a new handle of `ino`, or `None` to serve it through the
    /// plugin. `register` turns the plugin's descriptor into a backing id.
    pub fn share(
        &self,
        ino: u64,
        opened: &Opened,
        register: impl FnOnce(BorrowedFd<'_>) -> io::Result<BackingId>,
    ) -> Option<MappedRef<'_, u64, (BackingId, u32), BackingId>> {
        if opened.passthrough_fd < 0 || self.refused.load(Ordering::Relaxed) {
            return None;
        }
        let shared = match self.by_inode.entry(ino) {
            Entry::Occupied(mut existing) => {
                existing.get_mut().1 += 1;
                existing.into_ref()
            }
            Entry::Vacant(vacant) => {
                // SAFETY: the plugin lends a descriptor it keeps open at least until this
                // open is answered (fusehost-abi's `Opened::passthrough_fd` contract), and
                // it is only borrowed for the registering ioctl.
                let fd = unsafe { BorrowedFd::borrow_raw(opened.passthrough_fd) };
                match register(fd) {
                    Ok(id) => vacant.insert((id, 1)),
                    Err(error) => {
                        if !is_permanent(&error) {
                            tracing::debug!(ino, "kernel passthrough refused for this file ({error})");
                        } else if !self.refused.swap(true, Ordering::Relaxed) {
                            tracing::warn!(
                                "kernel passthrough unavailable ({error}); serving files through the plugin"
                            );
                        }
                        return None;
                    }
                }
            }
        };
        self.used.store(true, Ordering::Relaxed);
        self.handles.insert((ino, opened.fh), ());
        Some(shared.downgrade().map(|(id, _)| id))
    }

    /// A handle was released: drops its share of the inode's backing id.
    pub fn release(&self, ino: u64, fh: u64) {
        if !self.used.load(Ordering::Relaxed) || self.handles.remove(&(ino, fh)).is_none() {
            return;
        }
        if let Entry::Occupied(mut shared) = self.by_inode.entry(ino) {
            shared.get_mut().1 -= 1;
            if shared.get().1 == 0 {
                shared.remove();
            }
        }
    }
}
