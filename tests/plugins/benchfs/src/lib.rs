//! Benchmark plugin: a root directory with one 16 MiB file, `data`, whose bytes are a
//! function of their offset. The benchmark mounts it as a `.so` and in-process through
//! the same dispatch, so any difference is the cost of the ABI boundary.
#![forbid(unsafe_code)]

use std::ffi::OsStr;
use std::time::UNIX_EPOCH;

use fusehost_plugin_api::*;

/// Size of `data`.
pub const DATA_SIZE: u64 = 16 << 20;

/// The byte at `offset` of `data`.
pub fn byte_at(offset: u64) -> u8 {
    (offset % 251) as u8
}

pub struct BenchFs {
    data: Vec<u8>,
}

impl BenchFs {
    pub fn new() -> BenchFs {
        BenchFs { data: (0..DATA_SIZE).map(byte_at).collect() }
    }
}

impl Default for BenchFs {
    fn default() -> Self {
        BenchFs::new()
    }
}

impl Plugin for BenchFs {
    const NAME: &'static str = "benchfs";
    const DESCRIPTION: &'static str = "benchmark plugin: one 16 MiB file";

    fn new(_mount: &MountInfo, _options: &Options) -> std::result::Result<Self, SetupError> {
        Ok(BenchFs::new())
    }
}

fn attr(ino: u64) -> Result<FileAttr> {
    match ino {
        ROOT_INO => Ok(FileAttr::new(ino, FileKind::Directory, 0o555, UNIX_EPOCH)),
        2 => {
            let mut attr = FileAttr::new(ino, FileKind::RegularFile, 0o444, UNIX_EPOCH);
            attr.size = DATA_SIZE;
            attr.blocks = DATA_SIZE / 512;
            Ok(attr)
        }
        _ => Err(Errno::ENOENT),
    }
}

impl Filesystem for BenchFs {
    fn lookup(&self, _req: &Request, parent: u64, name: &OsStr) -> Result<Entry> {
        if parent == ROOT_INO && name == "data" {
            Ok(Entry::new(attr(2)?))
        } else {
            Err(Errno::ENOENT)
        }
    }

    fn getattr(&self, _req: &Request, ino: u64, _fh: Option<u64>) -> Result<FileAttr> {
        attr(ino)
    }

    fn open(&self, _req: &Request, _ino: u64, _flags: i32) -> Result<Opened> {
        // Every read reaches the filesystem: the benchmark measures requests, not the cache.
        Ok(Opened::handle(0).direct_io())
    }

    fn read(&self, _req: &Request, _ino: u64, _fh: u64, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let data = self.data.get(offset as usize..).unwrap_or_default();
        let count = data.len().min(buf.len());
        buf[..count].copy_from_slice(&data[..count]);
        Ok(count)
    }

    fn statfs(&self, _req: &Request, _ino: u64) -> Result<StatFs> {
        Ok(StatFs { blocks: DATA_SIZE / 4096, bsize: 4096, frsize: 4096, files: 2, namelen: 255, ..StatFs::default() })
    }
}

export_plugin!(BenchFs);
