//! archive: a tar, tar.gz or zip archive as a read-only folder.
//!
//! The format is told by the file's first bytes, not its name. One streaming pass at
//! mount lists every member into an in-memory tree (modes, owners, mtimes, symlinks,
//! hard links, directories implied by paths) and, for tar.gz, builds a seek index of
//! decompressor access points, so reads anywhere in the archive are fast without
//! decompressing from the start. Memory follows the number of members and the index,
//! not the data. Every change answers `EROFS`.
#![forbid(unsafe_code)]

mod fs;
mod source;
mod tree;

use std::time::{Instant, SystemTime};

use fusehost_plugin_api::*;

pub use fs::ArchiveFs;

const OPTIONS: &[OptionSpec] =
    &[OptionSpec::new("archive", OptionKind::Path, "", "the tar, tar.gz or zip file to show (required)")];

impl Plugin for ArchiveFs {
    const READ_ONLY: bool = true;
    const SOURCE_OPTION: Option<&'static str> = Some("archive");
    const NAME: &'static str = "archive";
    const DESCRIPTION: &'static str = "a tar, tar.gz or zip archive as a read-only folder";
    const OPTIONS: &'static [OptionSpec] = OPTIONS;

    fn validate(options: &Options) -> std::result::Result<(), SetupError> {
        let path = options.path("archive").ok_or_else(|| SetupError::new("option `archive` is required"))?;
        source::detect(&path).map(|_| ()).map_err(SetupError::new)
    }

    fn new(_mount: &MountInfo, options: &Options) -> std::result::Result<Self, SetupError> {
        let path = options.path("archive").ok_or_else(|| SetupError::new("option `archive` is required"))?;
        let format = source::detect(&path).map_err(SetupError::new)?;
        let started = Instant::now();
        let meta = std::fs::metadata(&path)?;
        let mut tree = tree::Tree::new(meta.modified().unwrap_or(SystemTime::UNIX_EPOCH));
        let source = source::Source::open(&path, format, &mut tree).map_err(SetupError::new)?;
        tracing::info!(
            "indexed {} ({}): {} inodes in {:.2?}, index {} bytes",
            path.display(),
            format.name(),
            tree.len(),
            started.elapsed(),
            source.index_bytes()
        );
        Ok(ArchiveFs { tree, source, archive_bytes: meta.len() })
    }
}

export_plugin!(ArchiveFs);
