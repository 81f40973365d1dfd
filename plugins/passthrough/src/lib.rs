//! passthrough: mirrors a source directory, read-write.
//!
//! Every operation reaches the source through the file's own `O_PATH` descriptor (or
//! its file handle, past half the open-file limit) and `*at()` calls (see `nodes`), as
//! libfuse's passthrough_ll does. Run as root, new
//! files get the caller's ownership. With `kernel_passthrough = true` open files are
//! handed to the kernel's FUSE passthrough (Linux 6.9+, root), so reads and writes skip
//! userspace entirely; where that is not possible the host logs why once and serves
//! them normally. Option `cache` (see `cache`) chooses what the kernel may keep.
// The one FFI boundary is `handle` (system calls rustix does not wrap).
#![deny(unsafe_code)]

mod cache;
mod fs;
#[allow(unsafe_code)]
mod handle;
mod nodes;
mod watch;

use fusehost_plugin_api::*;
use rustix::fs::{open, Mode, OFlags};

use crate::cache::CacheMode;

pub use fs::Passthrough;

const OPTIONS: &[OptionSpec] = &[
    OptionSpec::new("source", OptionKind::Path, "", "the directory to mirror (required)"),
    OptionSpec::new(
        "kernel_passthrough",
        OptionKind::Bool,
        "false",
        "let the kernel read and write open files directly (Linux 6.9+, root)",
    ),
    OptionSpec::new(
        "watch_source",
        OptionKind::Bool,
        "true",
        "show changes made in the source outside the mount at once (inotify), not only after the TTLs",
    ),
    OptionSpec::new(
        "cache",
        OptionKind::String,
        "auto",
        "what the kernel may cache: auto (names, missing names and attributes for 60 s, data and listings \
         across opens, while the source watch runs; else the mount's TTLs), always (the same for a day, for a \
         source only this mount changes), never (nothing)",
    ),
];

fn cache_mode(options: &Options) -> std::result::Result<CacheMode, SetupError> {
    CacheMode::parse(&options.string("cache").unwrap_or_else(|| "auto".to_owned())).map_err(SetupError::new)
}

impl Plugin for Passthrough {
    const SOURCE_OPTION: Option<&'static str> = Some("source");
    const NAME: &'static str = "passthrough";
    const DESCRIPTION: &'static str = "mirrors a source directory, read-write";
    const OPTIONS: &'static [OptionSpec] = OPTIONS;

    fn validate(options: &Options) -> std::result::Result<(), SetupError> {
        let source = options.path("source").ok_or_else(|| SetupError::new("option `source` is required"))?;
        cache_mode(options)?;
        match std::fs::metadata(&source) {
            Ok(meta) if meta.is_dir() => Ok(()),
            Ok(_) => Err(SetupError::new(format!("source {} is not a directory", source.display()))),
            Err(error) => Err(SetupError::new(format!("source {}: {error}", source.display()))),
        }
    }

    fn new(_mount: &MountInfo, options: &Options) -> std::result::Result<Self, SetupError> {
        let source = options.path("source").ok_or_else(|| SetupError::new("option `source` is required"))?;
        let root = open(&source, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
            .map_err(|error| SetupError::new(format!("opening source {}: {error}", source.display())))?;
        let watch_source = options.bool("watch_source").unwrap_or(true);
        Passthrough::new(root, options.bool("kernel_passthrough").unwrap_or(false), watch_source, cache_mode(options)?)
            .map_err(|error| SetupError::new(format!("reading source {}: {error}", source.display())))
    }
}

export_plugin!(Passthrough);
