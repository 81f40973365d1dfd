//! A regular file's bytes: a sparse map of 1 MiB chunks, each holding its bytes at
//! least up to its last page in use and a bit per 4 KiB page that holds data. A page
//! without its bit is a hole and reads as zeros (its bytes, where the chunk has them,
//! are kept zero, and take no memory until written: see `Chunk::grow`); only pages
//! with data count against the mount's space and `st_blocks`.
//!
//! Chunks rather than single pages: a 1 MiB write is one map lookup and one
//! allocation (without zeroing, when whole pages arrive) instead of 256 of each; what
//! is left of a first write is the kernel zeroing the memory it faults in. 1 MiB
//! rather than less: a read the kernel sends (at most 1 MiB, aligned when the
//! reader's blocks are) lies in one chunk, so it can go to the kernel straight from
//! the chunk's bytes ([`FileData::stored`]) instead of being copied out first.

use std::collections::BTreeMap;

use bitmaps::Bitmap;
use fusehost_plugin_api::{Errno, Result};

use crate::space::{Space, PAGE};

const PAGE_U64: u64 = PAGE as u64;
const PAGES_PER_CHUNK: usize = 256;
const CHUNK: usize = PAGE * PAGES_PER_CHUNK;
const CHUNK_U64: u64 = CHUNK as u64;

/// A set of a chunk's pages.
type Pages = Bitmap<PAGES_PER_CHUNK>;

/// `SEEK_DATA` and `SEEK_HOLE`.
pub const SEEK_DATA: i32 = 3;
pub const SEEK_HOLE: i32 = 4;

#[derive(Debug, Default)]
struct Chunk {
    /// The chunk's bytes, at least up to its last page with data; zeros in pages
    /// without data and past the last one.
    bytes: Vec<u8>,
    /// The pages of the chunk that hold data.
    present: Pages,
}

impl Chunk {
    /// Bytes up to the end of the last page with data.
    fn used(&self) -> usize {
        self.present.last_index().map_or(0, |last| (last + 1) * PAGE)
    }

    /// Drops the bytes past the last page with data, and the memory they held once
    /// it is most of the allocation.
    fn shrink(&mut self) {
        let used = self.used();
        self.bytes.truncate(used);
        if self.bytes.capacity() > 2 * used {
            self.bytes.shrink_to_fit();
        }
    }

    /// Extends the stored bytes with zeros to at least `needed`. A larger chunk is a
    /// fresh zeroed allocation (`calloc`, whose large blocks are fresh mappings the
    /// kernel fills on first touch) that the old bytes are copied into: a hole's pages
    /// cost no memory until written, and a chunk with one page at its end costs that
    /// page, not the megabyte before it. It doubles (appends stay linear) up to the
    /// chunk's size.
    fn grow(&mut self, needed: usize) {
        let len = self.bytes.len();
        if needed <= len {
            return;
        }
        let mut grown = vec![0u8; needed.max(2 * len).min(CHUNK)];
        grown[..len].copy_from_slice(&self.bytes);
        self.bytes = grown;
    }
}

/// Pages `[first, end)` of a chunk.
fn pages(first: usize, end: usize) -> Pages {
    if first >= end {
        return Pages::new();
    }
    Pages::mask(end.min(PAGES_PER_CHUNK)) & !Pages::mask(first)
}

/// How many pages a set holds, as a page count.
fn count(pages: Pages) -> u64 {
    pages.len() as u64
}

fn split(offset: u64) -> (u64, usize) {
    (offset / CHUNK_U64, (offset % CHUNK_U64) as usize)
}

#[derive(Debug, Default)]
pub struct FileData {
    chunks: BTreeMap<u64, Chunk>,
    /// Pages with data, over all chunks.
    pages: u64,
}

impl FileData {
    /// Pages in use (for `st_blocks`).
    pub fn page_count(&self) -> u64 {
        self.pages
    }

    /// Copies the bytes at `offset` of a file of `size` into `buf`; returns the count.
    pub fn read(&self, offset: u64, buf: &mut [u8], size: u64) -> usize {
        if offset >= size {
            return 0;
        }
        let count = buf.len().min((size - offset) as usize);
        let mut done = 0;
        while done < count {
            let (index, within) = split(offset + done as u64);
            let step = (CHUNK - within).min(count - done);
            let target = &mut buf[done..done + step];
            // Bytes past a chunk's end, and of a missing chunk, are zeros.
            let stored = self.chunks.get(&index).map_or(&[][..], |chunk| chunk.bytes.get(within..).unwrap_or(&[]));
            let copied = stored.len().min(step);
            target[..copied].copy_from_slice(&stored[..copied]);
            target[copied..].fill(0);
            done += step;
        }
        count
    }

    /// The `len` bytes at `offset` of a file of `size` (fewer at its end), when they
    /// are stored in one piece: a read that can be answered from memfs's own bytes.
    /// `None` when the range crosses a chunk or reaches past the bytes a chunk stores
    /// (its trailing hole, or a missing chunk), where [`FileData::read`] fills zeros.
    pub fn stored(&self, offset: u64, len: usize, size: u64) -> Option<&[u8]> {
        if offset >= size {
            return Some(&[]);
        }
        let len = len.min((size - offset) as usize);
        let (index, within) = split(offset);
        self.chunks.get(&index)?.bytes.get(within..within.checked_add(len)?)
    }

    /// Writes `data` at `offset`, allocating pages as needed. Returns the bytes
    /// written: all of them, or as many as fit before the space ran out (`ENOSPC`
    /// when none did).
    pub fn write(&mut self, offset: u64, data: &[u8], space: &Space) -> Result<usize> {
        let mut done = 0;
        while done < data.len() {
            let (index, within) = split(offset + done as u64);
            let mut step = (CHUNK - within).min(data.len() - done);
            let chunk = self.chunks.entry(index).or_default();
            let (first, end) = (within / PAGE, (within + step).div_ceil(PAGE));
            let missing = pages(first, end) & !chunk.present;
            if !missing.is_empty() && space.reserve_pages(count(missing)).is_err() {
                // Write up to the first new page that does not fit.
                let mut granted = Pages::new();
                for page in (first..end).filter(|&page| missing.get(page)) {
                    if space.reserve_pages(1).is_err() {
                        step = step.min((page * PAGE).saturating_sub(within));
                        break;
                    }
                    granted.set(page, true);
                }
                chunk.present |= granted;
                self.pages += count(granted);
                if step == 0 {
                    if chunk.present.is_empty() {
                        self.chunks.remove(&index);
                    }
                    return if done > 0 { Ok(done) } else { Err(Errno::ENOSPC) };
                }
            } else {
                chunk.present |= missing;
                self.pages += count(missing);
            }
            let source = &data[done..done + step];
            let needed = (within + step).div_ceil(PAGE) * PAGE;
            if chunk.bytes.is_empty() && within == 0 && step == needed {
                // Whole pages into a new chunk: copy, without zeroing first.
                chunk.bytes = source.to_vec();
            } else {
                chunk.grow(needed);
                chunk.bytes[within..within + step].copy_from_slice(source);
            }
            done += step;
        }
        Ok(done)
    }

    /// Zeroes `[start, end)`, dropping whole pages (a hole) and clearing partial ones.
    pub fn punch(&mut self, start: u64, end: u64, space: &Space) {
        if start >= end {
            return;
        }
        let (first_chunk, _) = split(start);
        let (last_chunk, _) = split(end - 1);
        let mut released = 0u64;
        let mut emptied = Vec::new();
        for (&index, chunk) in self.chunks.range_mut(first_chunk..=last_chunk) {
            let base = index * CHUNK_U64;
            let from = start.saturating_sub(base) as usize;
            let to = (end - base).min(CHUNK_U64) as usize;
            let stored = chunk.bytes.len();
            if from < stored {
                chunk.bytes[from..to.min(stored)].fill(0);
            }
            let whole = pages(from.div_ceil(PAGE), to / PAGE) & chunk.present;
            chunk.present &= !whole;
            released += count(whole);
            if chunk.present.is_empty() {
                emptied.push(index);
            } else {
                chunk.shrink();
            }
        }
        for index in emptied {
            self.chunks.remove(&index);
        }
        self.pages -= released;
        space.release_pages(released);
    }

    /// Cuts the file to `new_size` (the caller keeps the size itself): pages past it
    /// go, and the tail of the last one is zeroed so that growing again reads zeros.
    pub fn truncate(&mut self, new_size: u64, old_size: u64, space: &Space) {
        if new_size < old_size {
            // Also drops pages preallocated past the old size (fallocate KEEP_SIZE).
            self.punch(new_size, u64::MAX, space);
        }
    }

    /// Allocates every page of `[start, end)` (all or nothing).
    pub fn allocate(&mut self, start: u64, end: u64, space: &Space) -> Result<()> {
        if start >= end {
            return Ok(());
        }
        let (first_page, end_page) = (start / PAGE_U64, end.div_ceil(PAGE_U64));
        let range = |index: u64| {
            let base = index * PAGES_PER_CHUNK as u64;
            let first = first_page.saturating_sub(base).min(PAGES_PER_CHUNK as u64) as usize;
            let end = (end_page - base.min(end_page)).min(PAGES_PER_CHUNK as u64) as usize;
            pages(first, end)
        };
        let (first_chunk, last_chunk) = (first_page / PAGES_PER_CHUNK as u64, (end_page - 1) / PAGES_PER_CHUNK as u64);
        let already: u64 = self
            .chunks
            .range(first_chunk..=last_chunk)
            .map(|(&index, chunk)| count(range(index) & chunk.present))
            .sum();
        let missing = end_page - first_page - already;
        space.reserve_pages(missing)?;
        for index in first_chunk..=last_chunk {
            let chunk = self.chunks.entry(index).or_default();
            chunk.present |= range(index);
            chunk.grow(chunk.used());
        }
        self.pages += missing;
        Ok(())
    }

    /// `SEEK_DATA` / `SEEK_HOLE` from `offset` in a file of `size`.
    pub fn seek(&self, offset: u64, whence: i32, size: u64) -> Result<u64> {
        if offset >= size {
            return Err(Errno::ENXIO);
        }
        let page = offset / PAGE_U64;
        let (chunk_index, within) = (page / PAGES_PER_CHUNK as u64, (page % PAGES_PER_CHUNK as u64) as usize);
        let below = pages(0, within);
        let page_offset = |index: u64, page: usize| (index * PAGES_PER_CHUNK as u64 + page as u64) * PAGE_U64;
        match whence {
            SEEK_DATA => {
                let found = self.chunks.range(chunk_index..).find_map(|(&index, chunk)| {
                    let present = if index == chunk_index { chunk.present & !below } else { chunk.present };
                    present.first_index().map(|page| page_offset(index, page))
                });
                match found.map(|found| found.max(offset)) {
                    Some(found) if found < size => Ok(found),
                    _ => Err(Errno::ENXIO),
                }
            }
            SEEK_HOLE => {
                let mut expected = chunk_index;
                for (&index, chunk) in self.chunks.range(chunk_index..) {
                    if index != expected {
                        break;
                    }
                    let filled = if index == chunk_index { chunk.present | below } else { chunk.present };
                    if let Some(hole) = filled.first_false_index() {
                        return Ok(page_offset(index, hole).max(offset).min(size));
                    }
                    expected += 1;
                }
                Ok(page_offset(expected, 0).max(offset).min(size))
            }
            _ => Err(Errno::EINVAL),
        }
    }

    /// Drops every page (the inode is being freed).
    pub fn clear(&mut self, space: &Space) {
        space.release_pages(self.pages);
        self.pages = 0;
        self.chunks.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space() -> Space {
        Space::new(1 << 30, 100)
    }

    #[test]
    fn holes_read_as_zeros_and_cost_nothing() {
        let space = space();
        let mut data = FileData::default();
        data.write(10 * PAGE_U64 + 5, b"xyz", &space).unwrap();
        assert_eq!(data.page_count(), 1);
        let mut buf = vec![1u8; 16];
        let size = 10 * PAGE_U64 + 8;
        assert_eq!(data.read(10 * PAGE_U64, &mut buf, size), 8);
        assert_eq!(&buf[..8], b"\0\0\0\0\0xyz");
        let mut buf = vec![1u8; 4];
        assert_eq!(data.read(0, &mut buf, size), 4);
        assert_eq!(buf, [0; 4]);
    }

    #[test]
    fn punch_and_truncate_zero_what_they_cut() {
        let space = space();
        let mut data = FileData::default();
        data.write(0, &[7u8; 3 * PAGE], &space).unwrap();
        data.punch(100, 2 * PAGE_U64 + 10, &space);
        assert_eq!(data.page_count(), 2, "the middle page is a hole now");
        let mut buf = vec![9u8; 3 * PAGE];
        data.read(0, &mut buf, 3 * PAGE_U64);
        assert!(buf[..100].iter().all(|b| *b == 7));
        assert!(buf[100..2 * PAGE + 10].iter().all(|b| *b == 0));
        assert!(buf[2 * PAGE + 10..].iter().all(|b| *b == 7));

        data.truncate(50, 3 * PAGE_U64, &space);
        assert_eq!(data.page_count(), 1);
        let mut buf = vec![9u8; 100];
        assert_eq!(data.read(0, &mut buf, 100), 100);
        assert!(buf[50..].iter().all(|b| *b == 0), "growing again shows zeros, not old bytes");
    }

    #[test]
    fn seek_data_and_hole_follow_pages() {
        let space = space();
        let mut data = FileData::default();
        data.write(2 * PAGE_U64, &[1; PAGE], &space).unwrap();
        let size = 5 * PAGE_U64;
        assert_eq!(data.seek(0, SEEK_DATA, size), Ok(2 * PAGE_U64));
        assert_eq!(data.seek(0, SEEK_HOLE, size), Ok(0));
        assert_eq!(data.seek(2 * PAGE_U64 + 1, SEEK_HOLE, size), Ok(3 * PAGE_U64));
        assert_eq!(data.seek(3 * PAGE_U64, SEEK_DATA, size), Err(Errno::ENXIO));
        assert_eq!(data.seek(size, SEEK_HOLE, size), Err(Errno::ENXIO));
    }

    #[test]
    fn writes_across_chunks_keep_holes_and_count_pages() {
        let space = space();
        let mut data = FileData::default();
        let start = CHUNK_U64 - 10;
        data.write(start, &[5; 20], &space).unwrap();
        assert_eq!(data.page_count(), 2, "the last page of one chunk and the first of the next");
        data.write(3 * CHUNK_U64, &[6; PAGE], &space).unwrap();
        let size = 3 * CHUNK_U64 + PAGE_U64;
        let mut buf = vec![9u8; size as usize];
        assert_eq!(data.read(0, &mut buf, size), size as usize);
        assert!(buf[..start as usize].iter().all(|b| *b == 0));
        assert!(buf[start as usize..start as usize + 20].iter().all(|b| *b == 5));
        assert!(buf[start as usize + 20..3 * CHUNK].iter().all(|b| *b == 0));
        assert!(buf[3 * CHUNK..].iter().all(|b| *b == 6));
        assert_eq!(data.seek(0, SEEK_DATA, size), Ok(CHUNK_U64 - PAGE_U64));
        assert_eq!(data.seek(CHUNK_U64 - PAGE_U64, SEEK_HOLE, size), Ok(CHUNK_U64 + PAGE_U64));
        assert_eq!(data.seek(CHUNK_U64 + PAGE_U64, SEEK_DATA, size), Ok(3 * CHUNK_U64));

        // A hole punched and written again reads the new bytes and zeros around them.
        data.punch(0, 3 * CHUNK_U64, &space);
        assert_eq!(data.page_count(), 1);
        data.write(CHUNK_U64 + 100, b"ab", &space).unwrap();
        let mut buf = vec![9u8; PAGE];
        data.read(CHUNK_U64, &mut buf, size);
        assert_eq!(&buf[98..104], b"\0\0ab\0\0");
    }

    #[test]
    fn stored_bytes_are_lent_only_from_one_chunk_and_never_past_what_it_holds() {
        let space = space();
        let mut data = FileData::default();
        let bytes: Vec<u8> = (0..CHUNK + PAGE).map(|index| index as u8).collect();
        data.write(0, &bytes, &space).unwrap();
        let size = bytes.len() as u64;
        assert_eq!(data.stored(0, CHUNK, size), Some(&bytes[..CHUNK]), "an aligned 1 MiB read is one chunk");
        assert_eq!(data.stored(5, 100, size), Some(&bytes[5..105]));
        assert_eq!(data.stored(CHUNK_U64 - 10, 20, size), None, "across two chunks");
        assert_eq!(data.stored(CHUNK_U64, CHUNK, size), Some(&bytes[CHUNK..]), "short at the end of the file");
        assert_eq!(data.stored(size, 10, size), Some(&[][..]), "at the end of the file");

        // Past the last page a chunk stores (a hole at its end) and in a missing chunk.
        let grown = 4 * CHUNK_U64;
        assert_eq!(data.stored(CHUNK_U64 + PAGE_U64, 10, grown), None);
        assert_eq!(data.stored(3 * CHUNK_U64, 10, grown), None);
        // A hole inside the stored bytes is kept zero, so it may be lent.
        data.punch(PAGE_U64, 2 * PAGE_U64, &space);
        assert_eq!(data.stored(PAGE_U64, PAGE, grown), Some(&[0u8; PAGE][..]));
    }

    #[test]
    fn a_full_chunk_has_its_first_hole_in_the_next() {
        let space = space();
        let mut data = FileData::default();
        data.write(0, &vec![1; CHUNK + PAGE], &space).unwrap();
        let size = 3 * CHUNK_U64;
        assert_eq!(data.seek(0, SEEK_HOLE, size), Ok(CHUNK_U64 + PAGE_U64));
        assert_eq!(data.seek(CHUNK_U64 + PAGE_U64, SEEK_DATA, size), Err(Errno::ENXIO));
        assert_eq!(data.page_count(), (PAGES_PER_CHUNK + 1) as u64);
    }

    #[test]
    fn allocate_reserves_only_missing_pages_across_chunks() {
        let space = Space::new(200 * PAGE_U64, 10);
        let mut data = FileData::default();
        data.write(PAGE_U64 * 70, &[1; 10], &space).unwrap();
        data.allocate(PAGE_U64 * 60, PAGE_U64 * 140, &space).unwrap();
        assert_eq!(data.page_count(), 80);
        assert_eq!(space.statfs().bfree, 120);
        let mut buf = vec![9u8; 20];
        data.read(PAGE_U64 * 70, &mut buf, PAGE_U64 * 140);
        assert_eq!(&buf[..12], &[1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0]);
        assert_eq!(data.allocate(0, PAGE_U64 * 1000, &space), Err(Errno::ENOSPC), "all or nothing");
        assert_eq!(data.page_count(), 80);
        data.truncate(PAGE_U64 * 64 + 1, PAGE_U64 * 140, &space);
        assert_eq!(data.page_count(), 5);
        assert_eq!(data.seek(PAGE_U64 * 60, SEEK_HOLE, PAGE_U64 * 100), Ok(PAGE_U64 * 65));
    }

    #[test]
    fn a_write_starting_inside_a_page_stops_before_the_first_page_that_does_not_fit() {
        let space = Space::new(2 * PAGE_U64, 10);
        let mut data = FileData::default();
        assert_eq!(data.write(PAGE_U64 / 2, &[1; 3 * PAGE], &space), Ok(PAGE + PAGE / 2));
        assert_eq!(data.write(5 * PAGE_U64 + 7, &[1; 10], &space), Err(Errno::ENOSPC));
        assert_eq!(data.page_count(), 2);
    }

    #[test]
    fn writes_stop_at_enospc() {
        let space = Space::new(2 * PAGE_U64, 10);
        let mut data = FileData::default();
        assert_eq!(data.write(0, &[1; 3 * PAGE], &space), Ok(2 * PAGE));
        assert_eq!(data.write(4 * PAGE_U64, &[1; 10], &space), Err(Errno::ENOSPC));
        data.clear(&space);
        assert_eq!(space.statfs().bfree, 2);
    }
}
