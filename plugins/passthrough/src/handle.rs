//! File handles (`name_to_handle_at`/`open_by_handle_at`): a name for a source file
//! that holds no descriptor, so that the mount can keep more files than the process's
//! open-file limit allows. Like a descriptor, and unlike a path, a handle names one
//! inode: a rename or a symlink planted in the source cannot redirect it.
//!
//! Reopening needs `CAP_DAC_READ_SEARCH` (the kernel's own check: a handle bypasses
//! the path's permissions), so handles are used only where a round trip on the
//! source's root works ([`reopenable`]).

use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// Room for the header and the largest handle the kernel gives out (`MAX_HANDLE_SZ`).
const BUFFER_WORDS: usize = (std::mem::size_of::<libc::file_handle>() + libc::MAX_HANDLE_SZ as usize).div_ceil(8);

/// One file's handle, as `name_to_handle_at` wrote it (a `struct file_handle`).
#[derive(Debug)]
pub struct FileHandle {
    // u64 words: `struct file_handle` needs 4-byte alignment.
    buffer: Box<[u64; BUFFER_WORDS]>,
}

impl FileHandle {
    /// The handle of the file `fd` refers to (any descriptor, `O_PATH` included).
    pub fn of(fd: BorrowedFd<'_>) -> std::io::Result<FileHandle> {
        let mut buffer = Box::new([0u64; BUFFER_WORDS]);
        let header = buffer.as_mut_ptr().cast::<libc::file_handle>();
        let mut mount_id: libc::c_int = 0;
        let empty: &CStr = c"";
        // SAFETY: `header` points at a buffer of BUFFER_WORDS * 8 bytes, aligned for
        // `struct file_handle`, whose `handle_bytes` is set below to the room after the
        // header; `empty` is a NUL-terminated string and `fd` a live descriptor.
        let result = unsafe {
            (*header).handle_bytes = libc::MAX_HANDLE_SZ as libc::c_uint;
            libc::name_to_handle_at(fd.as_raw_fd(), empty.as_ptr(), header, &mut mount_id, libc::AT_EMPTY_PATH)
        };
        if result == 0 {
            Ok(FileHandle { buffer })
        } else {
            Err(std::io::Error::last_os_error())
        }
    }

    /// An `O_PATH` descriptor of the file, found through `mount` (a descriptor on the
    /// same filesystem, not itself `O_PATH`). `ESTALE` once the file is gone from the
    /// source.
    pub fn open(&self, mount: BorrowedFd<'_>) -> std::io::Result<OwnedFd> {
        let header = self.buffer.as_ptr().cast::<libc::file_handle>().cast_mut();
        // SAFETY: `header` is the `struct file_handle` `name_to_handle_at` filled in, in
        // a buffer this value owns; the kernel only reads it. `mount` is a live descriptor.
        let fd = unsafe { libc::open_by_handle_at(mount.as_raw_fd(), header, libc::O_PATH | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by the kernel and is owned by no one else.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }
}

/// Whether this process can reopen handles on `root`'s filesystem: a round trip on
/// `root` itself.
pub fn reopenable(root: BorrowedFd<'_>) -> bool {
    FileHandle::of(root).and_then(|handle| handle.open(root)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::fs::{fstat, open, Mode, OFlags};
    use std::os::fd::AsFd;

    #[test]
    fn a_handle_names_the_file_not_the_path() {
        let folder = std::env::temp_dir().join(format!("fusehost-handle-{}", std::process::id()));
        std::fs::create_dir_all(&folder).unwrap();
        let (file, moved) = (folder.join("file"), folder.join("moved"));
        std::fs::write(&file, b"x").unwrap();
        let path_fd = open(&file, OFlags::PATH | OFlags::CLOEXEC, Mode::empty()).unwrap();
        let anchor = open(&folder, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()).unwrap();
        let handle = FileHandle::of(path_fd.as_fd()).unwrap();
        std::fs::rename(&file, &moved).unwrap();
        std::fs::write(&file, b"another file under the old name").unwrap();
        let reopened = handle.open(anchor.as_fd());
        let as_root = rustix::process::geteuid().is_root();
        match reopened {
            Ok(fd) => assert_eq!(fstat(&fd).unwrap().st_ino, fstat(&path_fd).unwrap().st_ino),
            // Reopening needs CAP_DAC_READ_SEARCH.
            Err(error) => assert!(!as_root && error.raw_os_error() == Some(libc::EPERM), "{error}"),
        }
        assert_eq!(reopenable(anchor.as_fd()), as_root);
        std::fs::remove_dir_all(&folder).unwrap();
    }
}
