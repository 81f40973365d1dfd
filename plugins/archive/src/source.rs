//! The archive file: which format it is (by its first bytes, not its name), one
//! streaming pass that lists its members, and random-access reads of their bytes.
//!
//! - plain tar: members are read in place with `pread`;
//! - tar.gz: the listing pass also builds an `indexed_deflate` index, an access point
//!   per ~1 MB of compressed input (as ratarmount does), so a read anywhere costs at
//!   most ~1 MB of decompression. Decoders are pooled and reused by position, so
//!   sequential reads continue where they stopped;
//! - zip: stored members are read in place; compressed members are inflated whole on
//!   first read and kept in a bounded cache.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Cursor, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use fusehost_plugin_api::sync::Mutex;
use fusehost_plugin_api::{Errno, FileKind, Result};
use indexed_deflate::{AccessPointSpan, GzDecoder, GzIndexBuilder};

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

type Decoder = GzDecoder<File, Cursor<Arc<[u8]>>>;

/// Decoders kept for reuse, each with its position in the decompressed stream.
const DECODER_POOL: usize = 4;
/// Compressed zip members kept inflated, in bytes.
const ZIP_CACHE_BYTES: usize = 256 << 20;

pub enum Source {
    Tar { file: File },
    TarGz { path: PathBuf, index: Arc<[u8]>, decoders: Mutex<Vec<(u64, Decoder)>> },
    Zip { file: File, archive: Mutex<zip::ZipArchive<File>>, stored: HashMap<usize, u64>, cache: Mutex<ZipCache> },
}

#[derive(Default)]
pub struct ZipCache {
    members: HashMap<usize, Arc<Vec<u8>>>,
    bytes: usize,
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

fn list_zip(
    archive: &mut zip::ZipArchive<File>,
    tree: &mut Tree,
    path: &Path,
) -> std::result::Result<HashMap<usize, u64>, String> {
    let mut stored = HashMap::new();
    for index in 0..archive.len() {
        let member = archive.by_index_raw(index).map_err(|error| corrupt(path, error))?;
        let mode = member.unix_mode().unwrap_or(if member.is_dir() { 0o40755 } else { 0o100644 });
        let kind = if member.is_dir() {
            FileKind::Directory
        } else {
            FileKind::from_mode(mode).filter(|kind| *kind == FileKind::Symlink).unwrap_or(FileKind::RegularFile)
        };
        if member.compression() == zip::CompressionMethod::Stored && kind == FileKind::RegularFile {
            stored.insert(index, member.data_start());
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
    Ok(stored)
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
                Ok(Source::TarGz {
                    path: path.to_path_buf(),
                    index: index.into_inner().into(),
                    decoders: Mutex::new(Vec::new()),
                })
            }
            Format::Zip => {
                let mut archive = zip::ZipArchive::new(file.try_clone().map_err(|error| corrupt(path, error))?)
                    .map_err(|error| corrupt(path, error))?;
                let stored = list_zip(&mut archive, tree, path)?;
                Ok(Source::Zip { file, archive: Mutex::new(archive), stored, cache: Mutex::new(ZipCache::default()) })
            }
        }
    }

    /// How many bytes of index the archive needed (for the mount log line).
    pub fn index_bytes(&self) -> usize {
        match self {
            Source::TarGz { index, .. } => index.len(),
            _ => 0,
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
            (Source::TarGz { path, index, decoders }, Data::Stream(start)) => {
                read_gz(path, index, decoders, start + offset, buf)?
            }
            (Source::Zip { file, archive, stored, cache }, Data::ZipEntry(member)) => match stored.get(&member) {
                Some(start) => file.read_exact_at(buf, start + offset).map_err(Errno::from)?,
                None => {
                    let bytes = inflated(archive, cache, member)?;
                    let end = (offset as usize + count).min(bytes.len());
                    let part = bytes.get(offset as usize..end).ok_or(Errno::EIO)?;
                    buf[..part.len()].copy_from_slice(part);
                    return Ok(part.len());
                }
            },
            _ => return Err(Errno::EIO),
        }
        Ok(count)
    }
}

fn read_gz(path: &Path, index: &Arc<[u8]>, pool: &Mutex<Vec<(u64, Decoder)>>, at: u64, buf: &mut [u8]) -> Result<()> {
    // Reuse the decoder that is closest behind `at` (a sequential read continues),
    // else any, else a new one.
    let taken = {
        let mut pool = pool.lock();
        let best =
            (0..pool.len()).filter(|i| pool[*i].0 <= at).max_by_key(|i| pool[*i].0).or((!pool.is_empty()).then_some(0));
        best.map(|i| pool.swap_remove(i))
    };
    let mut decoder = match taken {
        Some((_, decoder)) => decoder,
        None => GzDecoder::new(File::open(path)?, Cursor::new(Arc::clone(index))).map_err(|_| Errno::EIO)?,
    };
    decoder.seek(SeekFrom::Start(at))?;
    decoder.read_exact(buf)?;
    let mut pool = pool.lock();
    if pool.len() < DECODER_POOL {
        pool.push((at + buf.len() as u64, decoder));
    }
    Ok(())
}

fn inflated(archive: &Mutex<zip::ZipArchive<File>>, cache: &Mutex<ZipCache>, member: usize) -> Result<Arc<Vec<u8>>> {
    if let Some(bytes) = cache.lock().members.get(&member) {
        return Ok(Arc::clone(bytes));
    }
    let mut bytes = Vec::new();
    archive.lock().by_index(member).map_err(|_| Errno::EIO)?.read_to_end(&mut bytes)?;
    let bytes = Arc::new(bytes);
    let mut cache = cache.lock();
    while cache.bytes + bytes.len() > ZIP_CACHE_BYTES {
        let Some(evicted) = cache.members.keys().next().copied() else { break };
        if let Some(old) = cache.members.remove(&evicted) {
            cache.bytes -= old.len();
        }
    }
    cache.bytes += bytes.len();
    cache.members.insert(member, Arc::clone(&bytes));
    Ok(bytes)
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
