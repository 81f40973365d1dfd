//! Test-only plugin: a root directory with `calm` (reads fine) and `boom` (every read
//! panics), to show that a plugin panic becomes EIO and the mount keeps serving. It
//! also logs every `forget` and its `destroy`, so tests can check the host's lookup
//! counting end to end.
#![forbid(unsafe_code)]

use std::ffi::OsStr;
use std::time::UNIX_EPOCH;

use fusehost_plugin_api::*;

const CALM: &[u8] = b"still standing\n";
const FILES: [&str; 2] = ["calm", "boom"];

struct Panicky;

impl Plugin for Panicky {
    const NAME: &'static str = "panicky";
    const DESCRIPTION: &'static str = "test plugin whose `boom` file panics on read";
    const OPTIONS: &'static [OptionSpec] = &[OptionSpec::new(
        "fail_new",
        OptionKind::Bool,
        "false",
        "pass validation but refuse to build the filesystem (for rollback tests)",
    )];

    fn new(_mount: &MountInfo, options: &Options) -> std::result::Result<Self, SetupError> {
        if options.bool("fail_new") == Some(true) {
            return Err(SetupError::new("asked to fail by fail_new"));
        }
        Ok(Panicky)
    }
}

fn attr(ino: u64) -> Result<FileAttr> {
    match ino {
        ROOT_INO => Ok(FileAttr::new(ino, FileKind::Directory, 0o555, UNIX_EPOCH)),
        2 | 3 => {
            let mut attr = FileAttr::new(ino, FileKind::RegularFile, 0o444, UNIX_EPOCH);
            attr.size = CALM.len() as u64;
            Ok(attr)
        }
        _ => Err(Errno::ENOENT),
    }
}

impl Filesystem for Panicky {
    fn lookup(&self, _req: &Request, parent: u64, name: &OsStr) -> Result<Entry> {
        let index = FILES.iter().position(|file| OsStr::new(file) == name).ok_or(Errno::ENOENT)?;
        if parent != ROOT_INO {
            return Err(Errno::ENOENT);
        }
        Ok(Entry::new(attr(index as u64 + 2)?))
    }

    fn forget(&self, ino: u64) {
        tracing::info!("forget ino={ino}");
    }

    fn getattr(&self, _req: &Request, ino: u64, _fh: Option<u64>) -> Result<FileAttr> {
        attr(ino)
    }

    fn open(&self, _req: &Request, _ino: u64, _flags: i32) -> Result<Opened> {
        // direct_io: every read reaches the plugin, none is served from the page cache.
        Ok(Opened::handle(0).direct_io())
    }

    fn read(&self, _req: &Request, ino: u64, _fh: u64, offset: u64, buf: &mut [u8]) -> Result<usize> {
        if ino == 3 {
            panic!("boom was read at offset {offset}");
        }
        let data = CALM.get(offset as usize..).unwrap_or_default();
        let count = data.len().min(buf.len());
        buf[..count].copy_from_slice(&data[..count]);
        Ok(count)
    }

    fn destroy(&self) {
        tracing::info!("destroy");
    }
}

export_plugin!(Panicky);
