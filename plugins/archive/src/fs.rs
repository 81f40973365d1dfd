//! The archive as a read-only filesystem: lookups and listings from the tree, reads
//! from the source, `EROFS` for every change.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use fusehost_plugin_api::{
    DirPlusSink, DirSink, Entry, Errno, FileAttr, FileKind, Filesystem, Opened, Request, Result, SetAttr, StatFs,
};

use crate::source::Source;
use crate::tree::Tree;

pub struct ArchiveFs {
    pub tree: Tree,
    pub source: Source,
    /// The archive file's size, for statfs.
    pub archive_bytes: u64,
}

const O_ACCMODE: i32 = 0o3;

impl ArchiveFs {
    fn attr(&self, ino: u64) -> Result<FileAttr> {
        self.tree.attr(ino).ok_or(Errno::ENOENT)
    }

    fn directory(&self, ino: u64) -> Result<&crate::tree::Node> {
        let node = self.tree.get(ino).ok_or(Errno::ENOENT)?;
        if node.kind == FileKind::Directory {
            Ok(node)
        } else {
            Err(Errno::ENOTDIR)
        }
    }
}

impl Filesystem for ArchiveFs {
    fn lookup(&self, _req: &Request, parent: u64, name: &OsStr) -> Result<Entry> {
        let dir = self.directory(parent)?;
        let ino = match name.as_bytes() {
            b"." => parent,
            b".." => dir.parent,
            name => *dir.children.get(name).ok_or(Errno::ENOENT)?,
        };
        Ok(Entry::new(self.attr(ino)?))
    }

    fn getattr(&self, _req: &Request, ino: u64, _fh: Option<u64>) -> Result<FileAttr> {
        self.attr(ino)
    }

    fn setattr(&self, _req: &Request, _ino: u64, _changes: &SetAttr) -> Result<FileAttr> {
        Err(Errno::EROFS)
    }

    fn readlink(&self, _req: &Request, ino: u64) -> Result<Vec<u8>> {
        let node = self.tree.get(ino).ok_or(Errno::ENOENT)?;
        if node.kind == FileKind::Symlink {
            Ok(node.link_target.clone())
        } else {
            Err(Errno::EINVAL)
        }
    }

    fn mknod(&self, _req: &Request, _parent: u64, _name: &OsStr, _mode: u32, _rdev: u32) -> Result<Entry> {
        Err(Errno::EROFS)
    }

    fn mkdir(&self, _req: &Request, _parent: u64, _name: &OsStr, _mode: u32) -> Result<Entry> {
        Err(Errno::EROFS)
    }

    fn unlink(&self, _req: &Request, _parent: u64, _name: &OsStr) -> Result<()> {
        Err(Errno::EROFS)
    }

    fn rmdir(&self, _req: &Request, _parent: u64, _name: &OsStr) -> Result<()> {
        Err(Errno::EROFS)
    }

    fn symlink(&self, _req: &Request, _parent: u64, _name: &OsStr, _target: &OsStr) -> Result<Entry> {
        Err(Errno::EROFS)
    }

    fn rename(&self, _req: &Request, _p: u64, _n: &OsStr, _np: u64, _nn: &OsStr, _flags: u32) -> Result<()> {
        Err(Errno::EROFS)
    }

    fn link(&self, _req: &Request, _ino: u64, _new_parent: u64, _new_name: &OsStr) -> Result<Entry> {
        Err(Errno::EROFS)
    }

    fn open(&self, _req: &Request, ino: u64, flags: i32) -> Result<Opened> {
        self.attr(ino)?;
        if flags & O_ACCMODE != 0 {
            return Err(Errno::EROFS);
        }
        // An archive does not change under the mount: the page cache stays valid.
        Ok(Opened::handle(0).keep_cache())
    }

    fn read(&self, _req: &Request, ino: u64, _fh: u64, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let node = self.tree.get(ino).ok_or(Errno::ENOENT)?;
        self.source.read(node.data, offset, node.size, buf)
    }

    fn write(&self, _req: &Request, _ino: u64, _fh: u64, _o: u64, _d: &[u8], _wf: u32, _f: i32) -> Result<u32> {
        Err(Errno::EROFS)
    }

    fn readdir(&self, _req: &Request, ino: u64, _fh: u64, offset: i64, sink: &mut dyn DirSink) -> Result<()> {
        let dir = self.directory(ino)?;
        let dots = [(ino, FileKind::Directory, &b"."[..]), (dir.parent, FileKind::Directory, &b".."[..])];
        let children = dir.children.iter().filter_map(|(name, child)| {
            let kind = self.tree.get(*child)?.kind;
            Some((*child, kind, name.as_slice()))
        });
        for (position, (child, kind, name)) in dots.into_iter().chain(children).enumerate().skip(offset.max(0) as usize)
        {
            if sink.add(child, position as i64 + 1, kind, OsStr::from_bytes(name)) {
                break;
            }
        }
        Ok(())
    }

    fn readdirplus(&self, _req: &Request, ino: u64, _fh: u64, offset: i64, sink: &mut dyn DirPlusSink) -> Result<()> {
        let dir = self.directory(ino)?;
        let dots = [(ino, &b"."[..]), (dir.parent, &b".."[..])];
        let children = dir.children.iter().map(|(name, child)| (*child, name.as_slice()));
        for (position, (child, name)) in dots.into_iter().chain(children).enumerate().skip(offset.max(0) as usize) {
            let entry = Entry::new(self.attr(child)?);
            if sink.add(position as i64 + 1, OsStr::from_bytes(name), &entry) {
                break;
            }
        }
        Ok(())
    }

    fn statfs(&self, _req: &Request, _ino: u64) -> Result<StatFs> {
        Ok(StatFs {
            blocks: self.archive_bytes.div_ceil(512),
            files: self.tree.len() as u64,
            bsize: 512,
            frsize: 512,
            namelen: 255,
            ..StatFs::default()
        })
    }

    fn setxattr(&self, _req: &Request, _ino: u64, _n: &OsStr, _v: &[u8], _f: i32, _p: u32) -> Result<()> {
        Err(Errno::EROFS)
    }

    fn removexattr(&self, _req: &Request, _ino: u64, _name: &OsStr) -> Result<()> {
        Err(Errno::EROFS)
    }

    fn create(&self, _req: &Request, _p: u64, _n: &OsStr, _m: u32, _f: i32) -> Result<(Entry, Opened)> {
        Err(Errno::EROFS)
    }

    fn fallocate(&self, _req: &Request, _ino: u64, _fh: u64, _o: u64, _l: u64, _m: i32) -> Result<()> {
        Err(Errno::EROFS)
    }
}
