//! Reads as ranged GETs of fixed-size blocks, kept in a bounded in-memory cache and
//! fetched ahead of a sequential reader.
//!
//! A block is named by the object's path, its version (ETag) and its index, so a
//! changed object never serves stale blocks once its new version is known. Readers
//! of the same block share one GET: the first inserts a cell, the others wait on it.

use std::num::NonZeroUsize;
use std::sync::Arc;

use bytes::Bytes;
use fusehost_plugin_api::sync::Mutex;
use fusehost_plugin_api::Errno;
use lru::LruCache;
use tokio::sync::OnceCell;

use crate::store::Store;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct BlockKey {
    path: Arc<str>,
    version: Arc<str>,
    index: u64,
}

/// One object as a reader sees it: where, which version, how long.
#[derive(Clone, Debug)]
pub struct Object {
    pub path: Arc<str>,
    pub version: Arc<str>,
    pub size: u64,
}

/// The mount's block cache.
pub struct Blocks {
    block_size: u64,
    /// How many blocks past the one read a sequential reader fetches ahead.
    readahead: u64,
    cache: Mutex<LruCache<BlockKey, Arc<OnceCell<Bytes>>>>,
}

impl Blocks {
    /// A cache of `cache_size` bytes in blocks of `block_size`, fetching up to
    /// `readahead` bytes ahead.
    pub fn new(block_size: u64, cache_size: u64, readahead: u64) -> Blocks {
        let block_size = block_size.max(64 * 1024);
        let capacity = NonZeroUsize::new(((cache_size / block_size).max(2)) as usize).unwrap_or(NonZeroUsize::MIN);
        Blocks { block_size, readahead: readahead.div_ceil(block_size), cache: Mutex::new(LruCache::new(capacity)) }
    }

    fn cell(&self, object: &Object, index: u64) -> Arc<OnceCell<Bytes>> {
        let key = BlockKey { path: Arc::clone(&object.path), version: Arc::clone(&object.version), index };
        let mut cache = self.cache.lock();
        if let Some(cell) = cache.get(&key) {
            return Arc::clone(cell);
        }
        let cell = Arc::new(OnceCell::new());
        cache.put(key, Arc::clone(&cell));
        cell
    }

    async fn block(&self, store: &Store, object: &Object, index: u64) -> Result<Bytes, Errno> {
        let cell = self.cell(object, index);
        let start = index * self.block_size;
        let end = (start + self.block_size).min(object.size);
        let fetched = cell
            .get_or_try_init(|| async {
                let read = store.operator.read_with(&object.path).range(start..end);
                store.call("read", read).await.map(|buffer| buffer.to_bytes())
            })
            .await?;
        Ok(fetched.clone())
    }

    /// Up to `size` bytes of `object` from `offset` (a slice of a cached block when the
    /// range lies in one, else a copy); a `sequential` reader entering a block gets the
    /// next blocks fetched in the background.
    pub async fn read(
        self: &Arc<Self>,
        store: &Arc<Store>,
        object: &Object,
        offset: u64,
        size: u32,
        sequential: bool,
    ) -> Result<Bytes, Errno> {
        let end = offset.saturating_add(u64::from(size)).min(object.size);
        if offset >= end {
            return Ok(Bytes::new());
        }
        let (first, last) = (offset / self.block_size, (end - 1) / self.block_size);
        if sequential && offset % self.block_size < u64::from(size) {
            let last_block = (object.size - 1) / self.block_size;
            for index in (last + 1)..=(last + self.readahead).min(last_block) {
                let (blocks, store, object) = (Arc::clone(self), Arc::clone(store), object.clone());
                tokio::spawn(async move {
                    let _ = blocks.block(&store, &object, index).await;
                });
            }
        }
        let slice = |block: &Bytes, index: u64| {
            let block_start = index * self.block_size;
            let from = (offset.max(block_start) - block_start).min(block.len() as u64);
            let to = (end.min(block_start + block.len() as u64) - block_start).max(from);
            block.slice(from as usize..to as usize)
        };
        if first == last {
            let block = self.block(store, object, first).await?;
            return Ok(slice(&block, first));
        }
        let mut data = Vec::with_capacity((end - offset) as usize);
        for index in first..=last {
            let block = self.block(store, object, index).await?;
            data.extend_from_slice(&slice(&block, index));
            if (block.len() as u64) < self.block_size && index < last {
                break; // The object is shorter than it was said to be.
            }
        }
        Ok(Bytes::from(data))
    }
}
