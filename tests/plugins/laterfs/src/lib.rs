//! Test-only plugin that answers later (ABI 1.2), as a network filesystem would: every
//! lookup, getattr, readdir and read is answered from a thread of its own after
//! `delay_ms`, while the host's worker thread has long gone back to the kernel.
//!
//! | name in `/` | what the plugin does                                            |
//! |-------------|-----------------------------------------------------------------|
//! | `f0`..      | `files` regular files, each holding `file N\n`                   |
//! | `dropped`   | a file whose read reply is dropped without an answer             |
//!
//! A file created in `/` is answered later with TTLs of `created_ttl_ms` and then
//! forgotten at once: only the kernel's cache of create's answer keeps it visible,
//! which shows whether those TTLs reached the kernel. Its inodes count up from
//! [`FIRST_CREATED_INO`].
//!
//! Every file has one extended attribute, `user.later` = `answered later`, answered
//! later too (getxattr and listxattr).
#![deny(unsafe_code)]

use std::ffi::OsStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use fusehost_plugin_api::*;

const DROPPED_INO: u64 = 2;
const FIRST_FILE_INO: u64 = 10;
/// Far above every `f` file's inode.
const FIRST_CREATED_INO: u64 = 1 << 40;

struct LaterFs {
    files: u64,
    delay: Duration,
    created_ttl: Duration,
    next_created: AtomicU64,
}

impl Plugin for LaterFs {
    const NAME: &'static str = "laterfs";
    const DESCRIPTION: &'static str = "test plugin that answers requests later, from its own threads";
    const OPTIONS: &'static [OptionSpec] = &[
        OptionSpec::new("files", OptionKind::Integer, "64", "how many files `/` holds"),
        OptionSpec::new("delay_ms", OptionKind::Integer, "300", "how long each answer takes"),
        OptionSpec::new("created_ttl_ms", OptionKind::Integer, "60000", "the TTLs of a created file's entry"),
    ];

    fn new(_mount: &MountInfo, options: &Options) -> std::result::Result<Self, SetupError> {
        Ok(LaterFs {
            files: options.integer("files").unwrap_or(64).max(0) as u64,
            delay: Duration::from_millis(options.integer("delay_ms").unwrap_or(300).max(0) as u64),
            created_ttl: Duration::from_millis(options.integer("created_ttl_ms").unwrap_or(60_000).max(0) as u64),
            next_created: AtomicU64::new(FIRST_CREATED_INO),
        })
    }
}

fn file(ino: u64, size: u64) -> FileAttr {
    let mut attr = FileAttr::new(ino, FileKind::RegularFile, 0o644, UNIX_EPOCH);
    attr.size = size;
    attr
}

fn content(ino: u64) -> Vec<u8> {
    format!("file {}\n", ino - FIRST_FILE_INO).into_bytes()
}

impl LaterFs {
    fn attr(&self, ino: u64) -> Result<FileAttr> {
        match ino {
            ROOT_INO => Ok(FileAttr::new(ROOT_INO, FileKind::Directory, 0o755, UNIX_EPOCH)),
            DROPPED_INO => Ok(file(DROPPED_INO, 4096)),
            ino if (FIRST_FILE_INO..FIRST_FILE_INO + self.files).contains(&ino) => {
                Ok(file(ino, content(ino).len() as u64))
            }
            _ => Err(Errno::ENOENT),
        }
    }

    fn ino_of(&self, name: &OsStr) -> Option<u64> {
        if name == "dropped" {
            return Some(DROPPED_INO);
        }
        let index: u64 = name.to_str()?.strip_prefix('f')?.parse().ok()?;
        (index < self.files).then_some(FIRST_FILE_INO + index)
    }

    /// Runs `answer` on a thread of its own after the delay.
    fn later(&self, answer: impl FnOnce() + Send + 'static) {
        let delay = self.delay;
        std::thread::spawn(move || {
            std::thread::sleep(delay);
            answer();
        });
    }
}

impl Filesystem for LaterFs {
    fn answers_later(&self) -> Operations {
        Operations::LOOKUP
            | Operations::GETATTR
            | Operations::READDIR
            | Operations::READ
            | Operations::GETXATTR
            | Operations::LISTXATTR
            | Operations::CREATE
    }

    fn create_later(
        &self,
        _req: &Request,
        parent: u64,
        name: &OsStr,
        mode: u32,
        _flags: i32,
        reply: Reply<(Entry, Opened)>,
    ) {
        let answer = if parent != ROOT_INO || self.ino_of(name).is_some() {
            Err(Errno::EEXIST)
        } else {
            let ino = self.next_created.fetch_add(1, Ordering::Relaxed);
            let attr = FileAttr::new(ino, FileKind::RegularFile, (mode & 0o7777) as u16, UNIX_EPOCH);
            Ok((Entry::new(attr).with_ttls(self.created_ttl, self.created_ttl), Opened::handle(ino)))
        };
        self.later(move || reply.send(answer));
    }

    fn getxattr_later(&self, _req: &Request, _ino: u64, name: &OsStr, reply: Reply<Vec<u8>>) {
        let answer = if name == "user.later" { Ok(b"answered later".to_vec()) } else { Err(Errno::ENODATA) };
        self.later(move || reply.send(answer));
    }

    fn listxattr_later(&self, _req: &Request, _ino: u64, reply: Reply<Vec<u8>>) {
        self.later(move || reply.send(Ok(b"user.later\0".to_vec())));
    }

    fn lookup_later(&self, _req: &Request, parent: u64, name: &OsStr, reply: Reply<Entry>) {
        let answer = match self.ino_of(name) {
            Some(ino) if parent == ROOT_INO => self.attr(ino).map(Entry::new),
            _ => Err(Errno::ENOENT),
        };
        self.later(move || reply.send(answer));
    }

    fn getattr_later(&self, _req: &Request, ino: u64, _fh: Option<u64>, reply: Reply<(FileAttr, Option<Duration>)>) {
        let answer = self.attr(ino).map(|attr| (attr, None));
        self.later(move || reply.send(answer));
    }

    fn readdir_later(&self, _req: &Request, ino: u64, _fh: u64, offset: i64, mut reply: ReplyDir) {
        if ino != ROOT_INO {
            return reply.send(Err(Errno::ENOTDIR));
        }
        let files = self.files;
        self.later(move || {
            let mut names =
                vec![(ROOT_INO, FileKind::Directory, ".".to_owned()), (ROOT_INO, FileKind::Directory, "..".to_owned())];
            names.push((DROPPED_INO, FileKind::RegularFile, "dropped".to_owned()));
            names.extend((0..files).map(|index| (FIRST_FILE_INO + index, FileKind::RegularFile, format!("f{index}"))));
            for (position, (ino, kind, name)) in names.iter().enumerate().skip(offset.max(0) as usize) {
                if reply.add(*ino, position as i64 + 1, *kind, OsStr::new(name)) {
                    break;
                }
            }
            reply.send(Ok(()));
        });
    }

    fn read_later(&self, _req: &Request, ino: u64, _fh: u64, offset: u64, size: u32, reply: Reply<Vec<u8>>) {
        if ino == DROPPED_INO {
            // Dropped on another thread without an answer: the host must answer EIO.
            self.later(move || drop(reply));
            return;
        }
        let data = content(ino);
        self.later(move || {
            let start = (offset as usize).min(data.len());
            let end = (start + size as usize).min(data.len());
            reply.data(&data[start..end]);
        });
    }
}

export_plugin!(LaterFs);
