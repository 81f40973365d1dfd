//! Test-only plugin that breaks the FUSE protocol on purpose, one way per name, so the
//! tests can show the host refusing each answer the kernel would choke on:
//!
//! | name in `/`      | what the plugin does                                           |
//! |------------------|----------------------------------------------------------------|
//! | `data`           | a readable file (`data\n`), served honestly                   |
//! | `errno600`       | lookup fails with errno 600 (the kernel would hang the caller) |
//! | `huge`           | lookup returns a size beyond `i64::MAX`                        |
//! | `denied`         | lookup hands out inode 4, getattr(4) then says ENOENT          |
//! | `slow`           | lookup sleeps `slow_ms`, then says ENOENT                      |
//! | `big/`           | 3000 files, for readdirplus replies that cannot hold them all  |
//! | `crash`          | reading it aborts or segfaults, as option `crash` says         |
//! | `data-again`     | hands out `data`'s inode again under a new generation          |
//! | `whoami`         | logs the request's id (ABI 1.1), then says ENOENT              |
//! | `fleeting`       | `data`'s twin whose entry and attributes have TTLs of zero     |
//! | create `as-root` | answers with inode 1                                           |
//! | create `as-dir`  | answers with a directory                                       |
//! | mkdir `as-file`  | answers with a regular file                                    |
//!
//! It logs what was negotiated at init, every forget, release and destroy, and at destroy how many inodes it
//! handed out that it never heard `forget` for (`outstanding=`).
#![deny(unsafe_code)]

use std::collections::HashSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, UNIX_EPOCH};

use fusehost_plugin_api::sync::Mutex;
use fusehost_plugin_api::*;

const DATA: &[u8] = b"data\n";
const BIG_FILES: u64 = 3000;
const DATA_INO: u64 = 2;
const HUGE_INO: u64 = 3;
const DENIED_INO: u64 = 4;
const BIG_INO: u64 = 5;
const CRASH_INO: u64 = 7;
const FLEETING_INO: u64 = 8;
const FIRST_BIG_FILE: u64 = 1000;

struct Liar {
    slow: Duration,
    crash: String,
    /// Inodes handed out (lookup, create, mkdir) and not yet forgotten.
    outstanding: Mutex<HashSet<u64>>,
    next_fh: AtomicU64,
    host: OnceLock<MountHost>,
    whoami_calls: AtomicU64,
}

impl Plugin for Liar {
    const NAME: &'static str = "liar";
    const DESCRIPTION: &'static str = "test plugin that breaks the protocol on purpose";
    const OPTIONS: &'static [OptionSpec] = &[
        OptionSpec::new("slow_ms", OptionKind::Integer, "2000", "how long a lookup of `slow` takes"),
        OptionSpec::new("crash", OptionKind::String, "abort", "how reading `crash` dies: abort or segv"),
    ];

    fn new(_mount: &MountInfo, options: &Options) -> std::result::Result<Self, SetupError> {
        let slow_ms = options.integer("slow_ms").unwrap_or(2000).max(0) as u64;
        Ok(Liar {
            slow: Duration::from_millis(slow_ms),
            crash: options.string("crash").unwrap_or_else(|| "abort".to_owned()),
            outstanding: Mutex::new(HashSet::new()),
            next_fh: AtomicU64::new(1),
            host: OnceLock::new(),
            whoami_calls: AtomicU64::new(0),
        })
    }
}

fn file(ino: u64, size: u64) -> FileAttr {
    let mut attr = FileAttr::new(ino, FileKind::RegularFile, 0o644, UNIX_EPOCH);
    attr.size = size;
    attr
}

fn dir(ino: u64) -> FileAttr {
    FileAttr::new(ino, FileKind::Directory, 0o755, UNIX_EPOCH)
}

fn big_file_name(ino: u64) -> String {
    format!("f{:04}", ino - FIRST_BIG_FILE)
}

impl Liar {
    fn hand_out(&self, attr: FileAttr) -> Result<Entry> {
        self.outstanding.lock().insert(attr.ino);
        Ok(Entry::new(attr))
    }
}

impl Filesystem for Liar {
    fn init(&self, negotiated: &Negotiated, host: MountHost) {
        tracing::info!(
            "negotiated capabilities={:#x} max_write={} protocol=7.{}",
            negotiated.capabilities.bits(),
            negotiated.max_write,
            negotiated.protocol.1
        );
        let _ = self.host.set(host);
    }

    fn lookup(&self, _req: &Request, parent: u64, name: &OsStr) -> Result<Entry> {
        if parent == BIG_INO {
            let index: u64 =
                name.to_str().and_then(|name| name.strip_prefix('f')?.parse().ok()).ok_or(Errno::ENOENT)?;
            return if index < BIG_FILES { self.hand_out(file(FIRST_BIG_FILE + index, 0)) } else { Err(Errno::ENOENT) };
        }
        if parent != ROOT_INO {
            return Err(Errno::ENOENT);
        }
        match name.as_bytes() {
            b"data" => self.hand_out(file(DATA_INO, DATA.len() as u64)),
            b"data-again" => {
                let mut entry = self.hand_out(file(DATA_INO, DATA.len() as u64))?;
                entry.generation = 7;
                Ok(entry)
            }
            b"fleeting" => Ok(self.hand_out(file(FLEETING_INO, 1))?.with_ttls(Duration::ZERO, Duration::ZERO)),
            b"whoami" => {
                let id = self.host.get().map_or(0, MountHost::request_id);
                let call = self.whoami_calls.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::info!("request id={id} call={call}");
                Err(Errno::ENOENT)
            }
            b"errno600" => Err(Errno(600)),
            b"huge" => self.hand_out(file(HUGE_INO, u64::MAX)),
            b"denied" => self.hand_out(file(DENIED_INO, 0)),
            b"big" => self.hand_out(dir(BIG_INO)),
            b"crash" => self.hand_out(file(CRASH_INO, 1)),
            b"slow" => {
                tracing::info!("lookup of slow started");
                std::thread::sleep(self.slow);
                Err(Errno::ENOENT)
            }
            _ => Err(Errno::ENOENT),
        }
    }

    fn forget(&self, ino: u64) {
        self.outstanding.lock().remove(&ino);
        tracing::info!("forget ino={ino}");
    }

    fn getattr(&self, _req: &Request, ino: u64, _fh: Option<u64>) -> Result<FileAttr> {
        match ino {
            ROOT_INO => Ok(dir(ROOT_INO)),
            DATA_INO => Ok(file(DATA_INO, DATA.len() as u64)),
            BIG_INO => Ok(dir(BIG_INO)),
            CRASH_INO => Ok(file(CRASH_INO, 1)),
            FLEETING_INO => Ok(file(FLEETING_INO, 1)),
            ino if (FIRST_BIG_FILE..FIRST_BIG_FILE + BIG_FILES).contains(&ino) => Ok(file(ino, 0)),
            _ => Err(Errno::ENOENT),
        }
    }

    fn open(&self, _req: &Request, _ino: u64, _flags: i32) -> Result<Opened> {
        Ok(Opened::handle(self.next_fh.fetch_add(1, Ordering::Relaxed)).direct_io())
    }

    fn read(&self, _req: &Request, ino: u64, _fh: u64, offset: u64, buf: &mut [u8]) -> Result<usize> {
        if ino == CRASH_INO {
            die(&self.crash);
        }
        let data = DATA.get(offset as usize..).unwrap_or_default();
        let count = data.len().min(buf.len());
        buf[..count].copy_from_slice(&data[..count]);
        Ok(count)
    }

    fn release(&self, _req: &Request, _ino: u64, fh: u64, _flags: i32, _flush: bool) -> Result<()> {
        tracing::info!("release fh={fh}");
        Ok(())
    }

    fn readdir(&self, _req: &Request, ino: u64, _fh: u64, offset: i64, sink: &mut dyn DirSink) -> Result<()> {
        let names: Vec<(u64, FileKind, String)> = match ino {
            ROOT_INO => vec![(DATA_INO, FileKind::RegularFile, "data".to_owned())],
            BIG_INO => (FIRST_BIG_FILE..FIRST_BIG_FILE + BIG_FILES)
                .map(|ino| (ino, FileKind::RegularFile, big_file_name(ino)))
                .collect(),
            _ => return Err(Errno::ENOTDIR),
        };
        for (index, (ino, kind, name)) in names.iter().enumerate().skip(offset.max(0) as usize) {
            if sink.add(*ino, index as i64 + 1, *kind, OsStr::new(name)) {
                break;
            }
        }
        Ok(())
    }

    fn create(&self, _req: &Request, parent: u64, name: &OsStr, _mode: u32, _flags: i32) -> Result<(Entry, Opened)> {
        if parent != ROOT_INO {
            return Err(Errno::EACCES);
        }
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        tracing::info!("created fh={fh}");
        let attr = match name.as_bytes() {
            b"as-root" => dir(ROOT_INO),
            b"as-dir" => dir(6),
            _ => return Err(Errno::EACCES),
        };
        Ok((self.hand_out(attr)?, Opened::handle(fh)))
    }

    fn mkdir(&self, _req: &Request, parent: u64, name: &OsStr, _mode: u32) -> Result<Entry> {
        match (parent, name.as_bytes()) {
            (ROOT_INO, b"as-file") => self.hand_out(file(8, 0)),
            _ => Err(Errno::EACCES),
        }
    }

    fn destroy(&self) {
        let mut outstanding: Vec<u64> =
            self.outstanding.lock().iter().copied().filter(|&ino| ino != ROOT_INO).collect();
        outstanding.sort_unstable();
        tracing::info!("destroy outstanding={} first={:?}", outstanding.len(), outstanding.first());
    }
}

/// Dies the way a buggy plugin does.
fn die(how: &str) -> ! {
    if how == "segv" {
        // SAFETY: not safe at all, on purpose: this plugin exists to crash the way a
        // buggy C library would, so that the host's fatal-signal handler is tested.
        // raise() itself is an FFI call with no preconditions.
        #[allow(unsafe_code)]
        unsafe {
            libc::raise(libc::SIGSEGV);
        }
    }
    std::process::abort()
}

export_plugin!(Liar);
