//! Space accounting: pages and inodes in use against the mount's limits, for `statfs`
//! and `ENOSPC`. Lock-free: every reservation is one compare-and-swap loop.

use std::sync::atomic::{AtomicU64, Ordering};

use fusehost_plugin_api::{Errno, Result, StatFs};

/// The unit of allocation and of `st_blocks` accounting.
pub const PAGE: usize = 4096;

#[derive(Debug)]
pub struct Space {
    max_pages: u64,
    max_inodes: u64,
    pages: AtomicU64,
    inodes: AtomicU64,
}

fn reserve(counter: &AtomicU64, count: u64, limit: u64) -> Result<()> {
    counter
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
            used.checked_add(count).filter(|total| *total <= limit)
        })
        .map(|_| ())
        .map_err(|_| Errno::ENOSPC)
}

impl Space {
    pub fn new(max_bytes: u64, max_inodes: u64) -> Space {
        Space { max_pages: max_bytes / PAGE as u64, max_inodes, pages: AtomicU64::new(0), inodes: AtomicU64::new(0) }
    }

    pub fn reserve_pages(&self, count: u64) -> Result<()> {
        reserve(&self.pages, count, self.max_pages)
    }

    pub fn release_pages(&self, count: u64) {
        self.pages.fetch_sub(count, Ordering::AcqRel);
    }

    pub fn reserve_inode(&self) -> Result<()> {
        reserve(&self.inodes, 1, self.max_inodes)
    }

    pub fn release_inode(&self) {
        self.inodes.fetch_sub(1, Ordering::AcqRel);
    }

    pub fn inodes_used(&self) -> u64 {
        self.inodes.load(Ordering::Acquire)
    }

    pub fn statfs(&self) -> StatFs {
        let free_pages = self.max_pages.saturating_sub(self.pages.load(Ordering::Acquire));
        StatFs {
            blocks: self.max_pages,
            bfree: free_pages,
            bavail: free_pages,
            files: self.max_inodes,
            ffree: self.max_inodes.saturating_sub(self.inodes_used()),
            bsize: PAGE as u32,
            namelen: 255,
            frsize: PAGE as u32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_stop_at_the_limit() {
        let space = Space::new(4 * PAGE as u64, 2);
        space.reserve_pages(3).unwrap();
        assert_eq!(space.reserve_pages(2), Err(Errno::ENOSPC));
        space.reserve_pages(1).unwrap();
        space.release_pages(4);
        assert_eq!(space.statfs().bfree, 4);
        space.reserve_inode().unwrap();
        space.reserve_inode().unwrap();
        assert_eq!(space.reserve_inode(), Err(Errno::ENOSPC));
        assert_eq!(space.statfs().ffree, 0);
    }
}
