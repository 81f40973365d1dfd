//! hello: the smallest complete fusehost plugin, and the template to copy.
//!
//! A read-only root directory holding three files whose contents come from the
//! options: `hello.txt` (the greeting), `name.txt` (the mount's name) and, when
//! `repeat` is above 1, `many.txt` (the greeting repeated).
#![forbid(unsafe_code)]

use std::ffi::OsStr;
use std::time::{SystemTime, UNIX_EPOCH};

use fusehost_plugin_api::flags::open;
use fusehost_plugin_api::*;

const OPTIONS: &[OptionSpec] = &[
    OptionSpec::new("greeting", OptionKind::String, "Hello, world!", "text of hello.txt (a newline is added)"),
    OptionSpec::new("repeat", OptionKind::Integer, "1", "how many times many.txt repeats the greeting"),
];

/// The files, by inode number: 2, 3, 4 (the root is 1).
pub struct Hello {
    files: Vec<(&'static str, Vec<u8>)>,
    started: SystemTime,
}

impl Hello {
    fn file(&self, ino: u64) -> Result<&(&'static str, Vec<u8>)> {
        let index = ino.checked_sub(2).ok_or(Errno::ENOENT)?;
        self.files.get(index as usize).ok_or(Errno::ENOENT)
    }

    fn attr(&self, ino: u64) -> Result<FileAttr> {
        if ino == ROOT_INO {
            return Ok(FileAttr::new(ino, FileKind::Directory, 0o555, self.started));
        }
        let (_, data) = self.file(ino)?;
        let mut attr = FileAttr::new(ino, FileKind::RegularFile, 0o444, self.started);
        attr.size = data.len() as u64;
        attr.blocks = attr.size.div_ceil(512);
        Ok(attr)
    }
}

impl Plugin for Hello {
    const NAME: &'static str = "hello";
    const DESCRIPTION: &'static str = "a read-only directory of greeting files";
    const OPTIONS: &'static [OptionSpec] = OPTIONS;
    const READ_ONLY: bool = true;

    fn validate(options: &Options) -> std::result::Result<(), SetupError> {
        match options.integer("repeat") {
            Some(1..=10_000) => Ok(()),
            _ => Err(SetupError::new("option `repeat` must be between 1 and 10000")),
        }
    }

    fn new(mount: &MountInfo, options: &Options) -> std::result::Result<Self, SetupError> {
        let greeting = format!("{}\n", options.string("greeting").unwrap_or_default());
        let repeat = options.integer("repeat").unwrap_or(1) as usize;
        let mut files =
            vec![("hello.txt", greeting.clone().into_bytes()), ("name.txt", format!("{}\n", mount.name).into_bytes())];
        if repeat > 1 {
            files.push(("many.txt", greeting.repeat(repeat).into_bytes()));
        }
        tracing::info!(files = files.len(), "hello is ready");
        let started = SystemTime::now().max(UNIX_EPOCH);
        Ok(Hello { files, started })
    }
}

impl Filesystem for Hello {
    fn lookup(&self, _req: &Request, parent: u64, name: &OsStr) -> Result<Entry> {
        if parent != ROOT_INO {
            return Err(Errno::ENOENT);
        }
        let index = self.files.iter().position(|(file, _)| OsStr::new(file) == name).ok_or(Errno::ENOENT)?;
        Ok(Entry::new(self.attr(index as u64 + 2)?))
    }

    fn getattr(&self, _req: &Request, ino: u64, _fh: Option<u64>) -> Result<FileAttr> {
        self.attr(ino)
    }

    fn open(&self, _req: &Request, ino: u64, flags: i32) -> Result<Opened> {
        self.file(ino)?;
        if flags & open::ACCESS_MODE != open::READ_ONLY {
            return Err(Errno::EROFS);
        }
        // The contents never change, so the page cache may keep them across opens.
        Ok(Opened::handle(0).keep_cache())
    }

    fn read(&self, _req: &Request, ino: u64, _fh: u64, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let (_, data) = self.file(ino)?;
        let start = (offset as usize).min(data.len());
        let count = buf.len().min(data.len() - start);
        buf[..count].copy_from_slice(&data[start..start + count]);
        Ok(count)
    }

    fn readdir(&self, _req: &Request, ino: u64, _fh: u64, offset: i64, sink: &mut dyn DirSink) -> Result<()> {
        if ino != ROOT_INO {
            return Err(Errno::ENOTDIR);
        }
        let dots = [(ROOT_INO, FileKind::Directory, "."), (ROOT_INO, FileKind::Directory, "..")];
        let files = self.files.iter().enumerate().map(|(i, (name, _))| (i as u64 + 2, FileKind::RegularFile, *name));
        for (position, (ino, kind, name)) in dots.into_iter().chain(files).enumerate().skip(offset as usize) {
            if sink.add(ino, position as i64 + 1, kind, OsStr::new(name)) {
                break;
            }
        }
        Ok(())
    }

    fn statfs(&self, _req: &Request, _ino: u64) -> Result<StatFs> {
        let used: u64 = self.files.iter().map(|(_, data)| (data.len() as u64).div_ceil(512)).sum();
        Ok(StatFs {
            blocks: used,
            files: self.files.len() as u64 + 1,
            bsize: 512,
            frsize: 512,
            namelen: 255,
            ..StatFs::default()
        })
    }
}

export_plugin!(Hello);
