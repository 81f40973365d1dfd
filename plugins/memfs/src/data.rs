//! A regular file's bytes: a sparse map of 4 KiB pages. A page that is not there is a
//! hole and reads as zeros; only pages that exist count against the mount's space.

use std::collections::BTreeMap;

use fusehost_plugin_api::{Errno, Result};

use crate::space::{Space, PAGE};

const PAGE_U64: u64 = PAGE as u64;

/// `SEEK_DATA` and `SEEK_HOLE`.
pub const SEEK_DATA: i32 = 3;
pub const SEEK_HOLE: i32 = 4;

#[derive(Debug, Default)]
pub struct FileData {
    pages: BTreeMap<u64, Box<[u8; PAGE]>>,
}

fn split(offset: u64) -> (u64, usize) {
    (offset / PAGE_U64, (offset % PAGE_U64) as usize)
}

impl FileData {
    /// Pages in use (for `st_blocks`).
    pub fn page_count(&self) -> u64 {
        self.pages.len() as u64
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
            let step = (PAGE - within).min(count - done);
            let target = &mut buf[done..done + step];
            match self.pages.get(&index) {
                Some(page) => target.copy_from_slice(&page[within..within + step]),
                None => target.fill(0),
            }
            done += step;
        }
        count
    }

    /// Writes `data` at `offset`, allocating pages as needed. Returns the bytes
    /// written: all of them, or as many as fit before the space ran out (`ENOSPC`
    /// when none did).
    pub fn write(&mut self, offset: u64, data: &[u8], space: &Space) -> Result<usize> {
        let mut done = 0;
        while done < data.len() {
            let (index, within) = split(offset + done as u64);
            let step = (PAGE - within).min(data.len() - done);
            let page = match self.pages.get_mut(&index) {
                Some(page) => page,
                None => {
                    if let Err(error) = space.reserve_pages(1) {
                        return if done > 0 { Ok(done) } else { Err(error) };
                    }
                    self.pages.entry(index).or_insert_with(|| Box::new([0; PAGE]))
                }
            };
            page[within..within + step].copy_from_slice(&data[done..done + step]);
            done += step;
        }
        Ok(done)
    }

    /// Zeroes `[start, end)`, dropping whole pages (a hole) and clearing partial ones.
    pub fn punch(&mut self, start: u64, end: u64, space: &Space) {
        if start >= end {
            return;
        }
        let (first, first_within) = split(start);
        let (last, last_within) = split(end);
        if first == last {
            if let Some(page) = self.pages.get_mut(&first) {
                page[first_within..last_within].fill(0);
            }
            return;
        }
        if first_within > 0 {
            if let Some(page) = self.pages.get_mut(&first) {
                page[first_within..].fill(0);
            }
        }
        if last_within > 0 {
            if let Some(page) = self.pages.get_mut(&last) {
                page[..last_within].fill(0);
            }
        }
        let whole_start = if first_within > 0 { first + 1 } else { first };
        let dropped: Vec<u64> = self.pages.range(whole_start..last).map(|(index, _)| *index).collect();
        for index in &dropped {
            self.pages.remove(index);
        }
        space.release_pages(dropped.len() as u64);
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
        let (first, _) = split(start);
        let last = end.div_ceil(PAGE_U64);
        let missing: Vec<u64> = (first..last).filter(|index| !self.pages.contains_key(index)).collect();
        space.reserve_pages(missing.len() as u64)?;
        for index in missing {
            self.pages.insert(index, Box::new([0; PAGE]));
        }
        Ok(())
    }

    /// `SEEK_DATA` / `SEEK_HOLE` from `offset` in a file of `size`.
    pub fn seek(&self, offset: u64, whence: i32, size: u64) -> Result<u64> {
        if offset >= size {
            return Err(Errno::ENXIO);
        }
        let (index, _) = split(offset);
        match whence {
            SEEK_DATA => {
                let (data, _) = self.pages.range(index..).next().ok_or(Errno::ENXIO)?;
                let found = (data * PAGE_U64).max(offset);
                if found >= size {
                    Err(Errno::ENXIO)
                } else {
                    Ok(found)
                }
            }
            SEEK_HOLE => {
                let mut candidate = index;
                for (present, _) in self.pages.range(index..) {
                    if *present != candidate {
                        break;
                    }
                    candidate += 1;
                }
                Ok((candidate * PAGE_U64).max(offset).min(size))
            }
            _ => Err(Errno::EINVAL),
        }
    }

    /// Drops every page (the inode is being freed).
    pub fn clear(&mut self, space: &Space) {
        space.release_pages(self.page_count());
        self.pages.clear();
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
    fn writes_stop_at_enospc() {
        let space = Space::new(2 * PAGE_U64, 10);
        let mut data = FileData::default();
        assert_eq!(data.write(0, &[1; 3 * PAGE], &space), Ok(2 * PAGE));
        assert_eq!(data.write(4 * PAGE_U64, &[1; 10], &space), Err(Errno::ENOSPC));
        data.clear(&space);
        assert_eq!(space.statfs().bfree, 2);
    }
}
