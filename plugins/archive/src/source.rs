//! The archive file: which format it is (by its first bytes, not its name), one
//! streaming pass that lists its members, and random-access reads of their bytes.
//!
//! - plain tar: members are read in place with `pread`;
//! - tar.gz: the listing pass also builds an `indexed_deflate` index, an access point
//!   per ~1 MB of compressed input (as ratarmount does), so a read anywhere costs at
//!   most ~1 MB of decompression. Decoders are pooled and reused by position, so
//!   sequential reads continue where they stopped;
//! - zip: stored members are read in place; a deflated member gets the same kind of
//!   seek index on its first read (one pass over that member only), so memory follows
//!   the indexes (about 3% of the compressed bytes), not the data.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Cursor, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use fusehost_plugin_api::sync::Mutex;
use fusehost_plugin_api::{Errno, FileKind, Result};
use indexed_deflate::{AccessPointSpan, DeflateDecoder, DeflateIndexBuilder, GzDecoder, GzIndexBuilder};

use crate::tree::{Data, Member, Tree};

/// Formats recognised by their first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Tar,
    TarGz,
    Zip,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Tar => "tar",
            Format::TarGz => "tar.gz",
            Format::Zip => "zip",
        }
    }
}

/// Reads the first bytes of `path` and names its format, or says why it has none.
pub fn detect(path: &Path) -> std::result::Result<Format, String> {
    let mut head = [0u8; 512];
    let file = File::open(path).map_err(|error| format!("cannot open {}: {error}", path.display()))?;
    let mut filled = 0;
    while filled < head.len() {
        match file.read_at(&mut head[filled..], filled as u64) {
            Ok(0) => break,
            Ok(count) => filled += count,
            Err(error) => return Err(format!("cannot read {}: {error}", path.display())),
        }
    }
    let head = &head[..filled];
    let unsupported =
        |what: &str| Err(format!("{} is {what}, which is not supported: use tar, tar.gz or zip", path.display()));
    match head {
        [b'P', b'K', 3, 4, ..] | [b'P', b'K', 5, 6, ..] => Ok(Format::Zip),
        [0x1f, 0x8b, ..] => Ok(Format::TarGz),
        [0x28, 0xb5, 0x2f, 0xfd, ..] => unsupported("zstd-compressed"),
        [0xfd, b'7', b'z', b'X', b'Z', 0, ..] => unsupported("xz-compressed"),
        [b'B', b'Z', b'h', ..] => unsupported("bzip2-compressed"),
        _ if head.len() >= 262 && &head[257..262] == b"ustar" => Ok(Format::Tar),
        _ => Err(format!("{} is not a tar, tar.gz or zip archive (judging by its first bytes)", path.display())),
    }
}

/// A byte range of the archive file, seen as a file of its own (one zip member's
/// compressed bytes).
struct Window {
    file: File,
    start: u64,
    len: u64,
    position: u64,
}

impl Read for Window {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.len.saturating_sub(self.position);
        let count = buf.len().min(left as usize);
        let read = self.file.read_at(&mut buf[..count], self.start + self.position)?;
        self.position += read as u64;
        Ok(read)
    }
}

impl Seek for Window {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let target = match to {
            SeekFrom::Start(offset) => Some(offset),
            SeekFrom::Current(delta) => self.position.checked_add_signed(delta),
            SeekFrom::End(delta) => self.len.checked_add_signed(delta),
        };
        self.position = target.ok_or_else(|| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
        Ok(self.position)
    }
}

/// A decompressor that can seek through its index.
enum Decoder {
    Gz(GzDecoder<File, Cursor<Arc<[u8]>>>),
    Deflate(DeflateDecoder<Window, Cursor<Arc<[u8]>>>),
}

impl Decoder {
    fn read_at(&mut self, at: u64, buf: &mut [u8]) -> std::io::Result<()> {
        match self {
            Decoder::Gz(decoder) => {
                decoder.seek(SeekFrom::Start(at))?;
                decoder.read_exact(buf)
            }
            Decoder::Deflate(decoder) => {
                decoder.seek(SeekFrom::Start(at))?;
                decoder.read_exact(buf)
            }
        }
    }
}

/// Which compressed stream a pooled decoder reads: the tar.gz, or one zip member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stream {
    Gz,
    ZipMember(usize),
}

/// Decoders kept for reuse, each with its stream and position.
const DECODER_POOL: usize = 4;

/// A deflated zip member: where its compressed bytes are.
#[derive(Clone, Copy, Debug)]
pub struct Deflated {
    start: u64,
    len: u64,
}

pub struct Decoders {
    path: PathBuf,
    pool: Mutex<Vec<(Stream, u64, Decoder)>>,
}

pub enum Source {
    Tar {
        file: File,
    },
    TarGz {
        index: Arc<[u8]>,
        decoders: Decoders,
    },
    Zip {
        file: File,
        stored: HashMap<usize, u64>,
        deflated: HashMap<usize, Deflated>,
        /// Seek indexes of the deflated members read so far.
        indexes: Mutex<HashMap<usize, Arc<[u8]>>>,
        decoders: Decoders,
    },
}

fn corrupt(path: &Path, error: impl std::fmt::Display) -> String {
    format!("{} is not a readable archive: {error}", path.display())
}

/// Lists a tar stream's members into `tree`.
fn list_tar<R: Read + Seek>(reader: R, tree: &mut Tree, path: &Path) -> std::result::Result<(), String> {
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries_with_seek().map_err(|error| corrupt(path, error))? {
        let entry = entry.map_err(|error| corrupt(path, error))?;
        let header = entry.header();
        let kind = match header.entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::Link => FileKind::RegularFile,
            tar::EntryType::Directory => FileKind::Directory,
            tar::EntryType::Symlink => FileKind::Symlink,
            tar::EntryType::Char => FileKind::CharDevice,
            tar::EntryType::Block => FileKind::BlockDevice,
            tar::EntryType::Fifo => FileKind::NamedPipe,
            // PAX and GNU extension records are folded into the entries they describe.
            _ => continue,
        };
        let link = entry.link_name_bytes().map(|name| name.into_owned()).unwrap_or_default();
        let hard_link = header.entry_type() == tar::EntryType::Link;
        tree.add(Member {
            path: entry.path_bytes().into_owned(),
            kind,
            perm: (header.mode().unwrap_or(0o644) & 0o7777) as u16,
            uid: header.uid().unwrap_or(0) as u32,
            gid: header.gid().unwrap_or(0) as u32,
            mtime_secs: header.mtime().unwrap_or(0) as i64,
            size: entry.size(),
            data: Data::Stream(entry.raw_file_position()),
            link_target: if hard_link { Vec::new() } else { link.clone() },
            hard_link_to: hard_link.then_some(link),
        });
    }
    Ok(())
}

/// Where each zip member's bytes are: stored ones in place, deflated ones compressed.
type ZipLayout = (HashMap<usize, u64>, HashMap<usize, Deflated>);

fn list_zip(
    archive: &mut zip::ZipArchive<File>,
    tree: &mut Tree,
    path: &Path,
) -> std::result::Result<ZipLayout, String> {
    let (mut stored, mut deflated) = (HashMap::new(), HashMap::new());
    for index in 0..archive.len() {
        let member = archive.by_index_raw(index).map_err(|error| corrupt(path, error))?;
        let mode = member.unix_mode().unwrap_or(if member.is_dir() { 0o40755 } else { 0o100644 });
        let kind = if member.is_dir() {
            FileKind::Directory
        } else {
            FileKind::from_mode(mode).filter(|kind| *kind == FileKind::Symlink).unwrap_or(FileKind::RegularFile)
        };
        if kind == FileKind::RegularFile {
            match member.compression() {
                zip::CompressionMethod::Stored => {
                    stored.insert(index, member.data_start());
                }
                zip::CompressionMethod::Deflated => {
                    deflated.insert(index, Deflated { start: member.data_start(), len: member.compressed_size() });
                }
                other => fusehost_plugin_api::tracing::warn!(
                    "zip member {} uses {other:?}, which is not supported: it reads as EIO",
                    member.name()
                ),
            }
        }
        let mtime_secs = member
            .last_modified()
            .map(|time| unix_seconds(time.year(), time.month(), time.day(), time.hour(), time.minute(), time.second()));
        let size = member.size();
        let name = member.name_raw().to_vec();
        drop(member);
        let link_target = if kind == FileKind::Symlink {
            let mut target = Vec::new();
            archive
                .by_index(index)
                .and_then(|mut member| Ok(member.read_to_end(&mut target)?))
                .map_err(|e| corrupt(path, e))?;
            target
        } else {
            Vec::new()
        };
        tree.add(Member {
            path: name,
            kind,
            perm: (mode & 0o7777) as u16,
            uid: 0,
            gid: 0,
            mtime_secs: mtime_secs.unwrap_or(0),
            size,
            data: Data::ZipEntry(index),
            link_target,
            hard_link_to: None,
        });
    }
    Ok((stored, deflated))
}

impl Source {
    /// Lists the archive at `path` into `tree` (one pass) and opens it for reading.
    pub fn open(path: &Path, format: Format, tree: &mut Tree) -> std::result::Result<Source, String> {
        let file = File::open(path).map_err(|error| format!("cannot open {}: {error}", path.display()))?;
        match format {
            Format::Tar => {
                list_tar(&file, tree, path)?;
                Ok(Source::Tar { file })
            }
            Format::TarGz => {
                let mut index = Cursor::new(Vec::new());
                {
                    let mut builder = GzIndexBuilder::new(file, &mut index, AccessPointSpan::default())
                        .map_err(|error| corrupt(path, error))?;
                    list_tar(&mut builder, tree, path)?;
                    builder.finish().map_err(|error| corrupt(path, error))?;
                }
                let decoders = Decoders { path: path.to_path_buf(), pool: Mutex::new(Vec::new()) };
                Ok(Source::TarGz { index: index.into_inner().into(), decoders })
            }
            Format::Zip => {
                let mut archive = zip::ZipArchive::new(file.try_clone().map_err(|error| corrupt(path, error))?)
                    .map_err(|error| corrupt(path, error))?;
                let (stored, deflated) = list_zip(&mut archive, tree, path)?;
                let decoders = Decoders { path: path.to_path_buf(), pool: Mutex::new(Vec::new()) };
                Ok(Source::Zip { file, stored, deflated, indexes: Mutex::new(HashMap::new()), decoders })
            }
        }
    }

    /// How many bytes of index the archive needed (for the mount log line).
    pub fn index_bytes(&self) -> usize {
        match self {
            Source::TarGz { index, .. } => index.len(),
            Source::Zip { indexes, .. } => indexes.lock().values().map(|index| index.len()).sum(),
            Source::Tar { .. } => 0,
        }
    }

    /// Fills `buf` with the member bytes at `offset` (of a member of `size` bytes).
    pub fn read(&self, data: Data, offset: u64, size: u64, buf: &mut [u8]) -> Result<usize> {
        if offset >= size {
            return Ok(0);
        }
        let count = buf.len().min((size - offset) as usize);
        let buf = &mut buf[..count];
        match (self, data) {
            (Source::Tar { file }, Data::Stream(start)) => {
                file.read_exact_at(buf, start + offset).map_err(Errno::from)?
            }
            (Source::TarGz { index, decoders }, Data::Stream(start)) => {
                decoders.read(Stream::Gz, start + offset, buf, |file| {
                    GzDecoder::new(file, Cursor::new(Arc::clone(index))).map(Decoder::Gz)
                })?
            }
            (Source::Zip { file, stored, deflated, indexes, decoders }, Data::ZipEntry(member)) => {
                if let Some(start) = stored.get(&member) {
                    file.read_exact_at(buf, start + offset).map_err(Errno::from)?;
                } else {
                    let range = *deflated.get(&member).ok_or(Errno::EIO)?;
                    let index = member_index(file, indexes, member, range)?;
                    decoders.read(Stream::ZipMember(member), offset, buf, |file| {
                        let window = Window { file, start: range.start, len: range.len, position: 0 };
                        DeflateDecoder::new(window, Cursor::new(index)).map(Decoder::Deflate)
                    })?;
                }
            }
            _ => return Err(Errno::EIO),
        }
        Ok(count)
    }
}

impl Decoders {
    /// Reads `buf` at `at` of `stream`, reusing the pooled decoder of that stream that
    /// is closest behind `at` (so a sequential read continues where it stopped).
    fn read(
        &self,
        stream: Stream,
        at: u64,
        buf: &mut [u8],
        open: impl FnOnce(File) -> indexed_deflate::Result<Decoder>,
    ) -> Result<()> {
        let taken = {
            let mut pool = self.pool.lock();
            let best = (0..pool.len())
                .filter(|i| pool[*i].0 == stream && pool[*i].1 <= at)
                .max_by_key(|i| pool[*i].1)
                .or_else(|| (0..pool.len()).find(|i| pool[*i].0 == stream));
            best.map(|i| pool.swap_remove(i))
        };
        let mut decoder = match taken {
            Some((_, _, decoder)) => decoder,
            None => open(File::open(&self.path)?).map_err(|_| Errno::EIO)?,
        };
        decoder.read_at(at, buf)?;
        let mut pool = self.pool.lock();
        if pool.len() >= DECODER_POOL {
            pool.remove(0);
        }
        pool.push((stream, at + buf.len() as u64, decoder));
        Ok(())
    }
}

/// The seek index of a deflated zip member, built by one pass over it the first time.
fn member_index(
    file: &File,
    indexes: &Mutex<HashMap<usize, Arc<[u8]>>>,
    member: usize,
    range: Deflated,
) -> Result<Arc<[u8]>> {
    if let Some(index) = indexes.lock().get(&member) {
        return Ok(Arc::clone(index));
    }
    let window = Window { file: file.try_clone()?, start: range.start, len: range.len, position: 0 };
    let mut index = Cursor::new(Vec::new());
    {
        let mut builder =
            DeflateIndexBuilder::new(window, &mut index, AccessPointSpan::default()).map_err(|_| Errno::EIO)?;
        std::io::copy(&mut builder, &mut std::io::sink())?;
        builder.finish().map_err(|_| Errno::EIO)?;
    }
    let index: Arc<[u8]> = index.into_inner().into();
    indexes.lock().insert(member, Arc::clone(&index));
    Ok(index)
}

/// Seconds since the epoch of a zip timestamp (local time without a zone, taken as
/// UTC as `unzip -l` shows it), by the days-from-civil algorithm.
fn unix_seconds(year: u16, month: u8, day: u8, hour: u8, minute: u8, second: u8) -> i64 {
    let (year, month) = (i64::from(year), i64::from(month));
    let shifted = if month <= 2 { year - 1 } else { year };
    let era = shifted.div_euclid(400);
    let year_of_era = shifted - era * 400;
    let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    days * 86_400 + i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zip_timestamps_convert_to_unix_seconds() {
        assert_eq!(unix_seconds(1970, 1, 1, 0, 0, 0), 0);
        assert_eq!(unix_seconds(2000, 3, 1, 12, 30, 15), 951_913_815);
        assert_eq!(unix_seconds(2024, 2, 29, 0, 0, 0), 1_709_164_800);
    }
}
