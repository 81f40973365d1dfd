//! Writes are staged in a local file and uploaded whole on `flush`, `fsync` and
//! `release`: other clients see the old object or the new one, never half of it
//! (a single PUT, or a multipart upload that completes atomically).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use fusehost_plugin_api::sync::Mutex;
use fusehost_plugin_api::Errno;

use crate::store::Store;

/// Uploads in parts of this size (S3 allows at most 10,000 parts: 80 GiB objects).
const PART_SIZE: usize = 8 << 20;
/// Parts uploaded at once.
const PARTS_AT_ONCE: usize = 4;

/// One file's local copy while it is open for writing.
pub struct Staged {
    file: File,
    size: AtomicU64,
    dirty: AtomicBool,
    /// Handles open on it; the copy is dropped with the last.
    pub handles: AtomicUsize,
    /// One upload at a time.
    uploading: tokio::sync::Mutex<()>,
}

impl Staged {
    /// An empty local copy in `dir` (deleted from the disk at once: only the open
    /// descriptor holds it).
    pub fn new(dir: &std::path::Path, dirty: bool) -> Result<Staged, Errno> {
        let file = tempfile::tempfile_in(dir).map_err(|error| Errno::from_io(&error))?;
        Ok(Staged {
            file,
            size: AtomicU64::new(0),
            dirty: AtomicBool::new(dirty),
            handles: AtomicUsize::new(0),
            uploading: tokio::sync::Mutex::new(()),
        })
    }

    pub fn size(&self) -> u64 {
        self.size.load(Ordering::SeqCst)
    }

    /// Fills the copy with the object's current content (`size` bytes).
    pub async fn fill_from(&self, store: &Store, path: &str, size: u64) -> Result<(), Errno> {
        let reader = store.call("read", store.operator.reader_with(path).chunk(PART_SIZE)).await?;
        let mut offset = 0u64;
        while offset < size {
            let end = (offset + PART_SIZE as u64).min(size);
            let chunk = store.call("read", reader.read(offset..end)).await?;
            if chunk.is_empty() {
                break;
            }
            let bytes = chunk.to_bytes();
            self.file.write_all_at(&bytes, offset).map_err(|error| Errno::from_io(&error))?;
            offset += bytes.len() as u64;
        }
        self.size.store(offset, Ordering::SeqCst);
        Ok(())
    }

    pub fn read(&self, offset: u64, size: u32) -> Result<Vec<u8>, Errno> {
        let end = offset.saturating_add(u64::from(size)).min(self.size());
        let mut data = vec![0; end.saturating_sub(offset) as usize];
        let mut filled = 0;
        while filled < data.len() {
            match self.file.read_at(&mut data[filled..], offset + filled as u64) {
                Ok(0) => break,
                Ok(count) => filled += count,
                Err(error) => return Err(Errno::from_io(&error)),
            }
        }
        data.truncate(filled);
        Ok(data)
    }

    pub fn write(&self, offset: u64, data: &[u8]) -> Result<u32, Errno> {
        self.file.write_all_at(data, offset).map_err(|error| Errno::from_io(&error))?;
        self.size.fetch_max(offset + data.len() as u64, Ordering::SeqCst);
        self.dirty.store(true, Ordering::SeqCst);
        Ok(data.len() as u32)
    }

    pub fn truncate(&self, size: u64) -> Result<(), Errno> {
        self.file.set_len(size).map_err(|error| Errno::from_io(&error))?;
        self.size.store(size, Ordering::SeqCst);
        self.dirty.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Uploads the copy to `path` if it changed since the last upload; returns the
    /// size and version uploaded, `None` when there was nothing to do.
    pub async fn upload(&self, store: &Store, path: &str) -> Result<Option<(u64, String)>, Errno> {
        let _one_upload = self.uploading.lock().await;
        if !self.dirty.swap(false, Ordering::SeqCst) {
            return Ok(None);
        }
        let outcome = self.upload_all(store, path).await;
        if outcome.is_err() {
            self.dirty.store(true, Ordering::SeqCst);
        }
        outcome.map(Some)
    }

    async fn upload_all(&self, store: &Store, path: &str) -> Result<(u64, String), Errno> {
        let size = self.size();
        let writer = store.operator.writer_with(path).chunk(PART_SIZE).concurrent(PARTS_AT_ONCE);
        let mut writer = store.call("upload", writer).await?;
        let mut offset = 0u64;
        while offset < size {
            let part = self.read(offset, PART_SIZE.min((size - offset) as usize) as u32)?;
            if part.is_empty() {
                break;
            }
            offset += part.len() as u64;
            store.call("upload", writer.write(part)).await?;
        }
        let metadata = store.call("upload", writer.close()).await?;
        Ok((size, metadata.etag().unwrap_or_default().to_owned()))
    }
}

/// The staged copies of one mount, by inode.
pub struct Staging {
    dir: PathBuf,
    files: Mutex<std::collections::HashMap<u64, Arc<Staged>>>,
}

impl Staging {
    pub fn new(dir: PathBuf) -> Staging {
        Staging { dir, files: Mutex::default() }
    }

    /// The staged copies now, by inode.
    pub fn files(&self) -> Vec<(u64, Arc<Staged>)> {
        self.files.lock().iter().map(|(&ino, staged)| (ino, Arc::clone(staged))).collect()
    }

    pub fn get(&self, ino: u64) -> Option<Arc<Staged>> {
        self.files.lock().get(&ino).cloned()
    }

    /// The staged copy of `ino`, made with `make` when there is none; counts a handle.
    pub async fn open<F, Fut>(&self, ino: u64, make: F) -> Result<Arc<Staged>, Errno>
    where
        F: FnOnce(Arc<Staged>) -> Fut,
        Fut: std::future::Future<Output = Result<(), Errno>>,
    {
        if let Some(existing) = self.get(ino) {
            existing.handles.fetch_add(1, Ordering::SeqCst);
            return Ok(existing);
        }
        let staged = Arc::new(Staged::new(&self.dir, false)?);
        make(Arc::clone(&staged)).await?;
        let mut files = self.files.lock();
        let staged = Arc::clone(files.entry(ino).or_insert(staged));
        staged.handles.fetch_add(1, Ordering::SeqCst);
        Ok(staged)
    }

    /// A new empty file: staged and dirty, so that closing it creates the object.
    pub fn create(&self, ino: u64) -> Result<Arc<Staged>, Errno> {
        let staged = Arc::new(Staged::new(&self.dir, true)?);
        staged.handles.fetch_add(1, Ordering::SeqCst);
        self.files.lock().insert(ino, Arc::clone(&staged));
        Ok(staged)
    }

    /// A handle of `ino` closed; the copy goes with the last one.
    pub fn close(&self, ino: u64) {
        let mut files = self.files.lock();
        if let Some(staged) = files.get(&ino) {
            if staged.handles.fetch_sub(1, Ordering::SeqCst) <= 1 {
                files.remove(&ino);
            }
        }
    }
}
