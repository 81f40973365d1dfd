//! Inodes for the names of a bucket, and what the mount last learned about each.
//!
//! An object store has keys, not inodes: a key `a/b/c` makes `a` and `a/b`
//! directories (prefixes, or explicit `a/b/` markers) and `c` a file. Inode numbers
//! are handed out once per path and never reused (so a forget can never hit a number
//! the kernel is about to hold again); the host tells the plugin when the kernel
//! forgot one.

use std::collections::HashMap;
use std::time::{Instant, SystemTime};

use fusehost_plugin_api::sync::RwLock;
use fusehost_plugin_api::{FileKind, ROOT_INO};

/// What the mount knows of one name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Known {
    pub kind: FileKind,
    pub size: u64,
    pub mtime: SystemTime,
    /// The object's version as the store names it (ETag), or empty.
    pub version: String,
}

impl Known {
    pub fn directory() -> Known {
        Known { kind: FileKind::Directory, size: 0, mtime: SystemTime::UNIX_EPOCH, version: String::new() }
    }
}

#[derive(Debug)]
struct Node {
    path: String,
    known: Known,
    /// When `known` was read from the store (it is trusted for the mount's TTL).
    fetched: Instant,
}

#[derive(Debug, Default)]
struct Table {
    nodes: HashMap<u64, Node>,
    by_path: HashMap<String, u64>,
    next_ino: u64,
}

/// The inode table of one mount.
#[derive(Debug)]
pub struct Namespace {
    table: RwLock<Table>,
}

/// The key of `name` in directory `parent` (`""` is the root).
pub fn child_path(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_owned()
    } else {
        format!("{parent}/{name}")
    }
}

/// The directory holding `path`, and the name in it.
pub fn split(path: &str) -> (&str, &str) {
    match path.rsplit_once('/') {
        Some((parent, name)) => (parent, name),
        None => ("", path),
    }
}

impl Namespace {
    pub fn new() -> Namespace {
        let mut table = Table { next_ino: ROOT_INO + 1, ..Table::default() };
        let root = Node { path: String::new(), known: Known::directory(), fetched: Instant::now() };
        table.nodes.insert(ROOT_INO, root);
        table.by_path.insert(String::new(), ROOT_INO);
        Namespace { table: RwLock::new(table) }
    }

    /// The path of `ino`, if the kernel may still name it.
    pub fn path(&self, ino: u64) -> Option<String> {
        self.table.read().nodes.get(&ino).map(|node| node.path.clone())
    }

    /// What is known of `ino`, and since when.
    pub fn known(&self, ino: u64) -> Option<(String, Known, Instant)> {
        self.table.read().nodes.get(&ino).map(|node| (node.path.clone(), node.known.clone(), node.fetched))
    }

    /// What is known of `ino` while its path still names it: not once it was unlinked
    /// or renamed over (the node lives on while the kernel holds it, by its old path).
    pub fn named(&self, ino: u64) -> Option<(String, Known)> {
        let table = self.table.read();
        let node = table.nodes.get(&ino)?;
        (table.by_path.get(&node.path) == Some(&ino)).then(|| (node.path.clone(), node.known.clone()))
    }

    pub fn ino_of(&self, path: &str) -> Option<u64> {
        self.table.read().by_path.get(path).copied()
    }

    /// The inode of `path` with `known` attributes (new, or updated when the path
    /// already has one of the same kind; a path that changed kind gets a new inode).
    pub fn remember(&self, path: &str, known: Known) -> u64 {
        let mut table = self.table.write();
        if let Some(&ino) = table.by_path.get(path) {
            if let Some(node) = table.nodes.get_mut(&ino) {
                if node.known.kind == known.kind {
                    node.known = known;
                    node.fetched = Instant::now();
                    return ino;
                }
            }
        }
        let ino = table.next_ino;
        table.next_ino += 1;
        table.nodes.insert(ino, Node { path: path.to_owned(), known, fetched: Instant::now() });
        table.by_path.insert(path.to_owned(), ino);
        ino
    }

    /// Updates what is known of `ino` (after a write or truncate through the mount).
    pub fn update(&self, ino: u64, change: impl FnOnce(&mut Known)) {
        if let Some(node) = self.table.write().nodes.get_mut(&ino) {
            change(&mut node.known);
            node.fetched = Instant::now();
        }
    }

    /// `path` is gone from the store: its name no longer leads to its inode.
    pub fn unlink(&self, path: &str) -> Option<u64> {
        self.table.write().by_path.remove(path)
    }

    /// `from` is now called `to` (a file renamed through the mount).
    pub fn rename(&self, from: &str, to: &str) {
        let mut table = self.table.write();
        table.by_path.remove(to);
        if let Some(ino) = table.by_path.remove(from) {
            if let Some(node) = table.nodes.get_mut(&ino) {
                node.path = to.to_owned();
            }
            table.by_path.insert(to.to_owned(), ino);
        }
    }

    /// The kernel forgot `ino`: drop it (its number is never used again).
    pub fn forget(&self, ino: u64) {
        if ino == ROOT_INO {
            return;
        }
        let mut table = self.table.write();
        if let Some(node) = table.nodes.remove(&ino) {
            if table.by_path.get(&node.path) == Some(&ino) {
                table.by_path.remove(&node.path);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(size: u64) -> Known {
        Known { kind: FileKind::RegularFile, size, mtime: SystemTime::UNIX_EPOCH, version: String::new() }
    }

    #[test]
    fn a_path_keeps_its_inode_until_forgotten_and_numbers_are_never_reused() {
        let names = Namespace::new();
        let first = names.remember("a/b", file(1));
        assert_eq!(names.remember("a/b", file(2)), first);
        assert_eq!(names.known(first).map(|(_, known, _)| known.size), Some(2));
        names.forget(first);
        assert_eq!(names.path(first), None);
        let second = names.remember("a/b", file(3));
        assert!(second > first);
    }

    #[test]
    fn an_unlinked_or_replaced_inode_is_no_longer_named_by_its_old_path() {
        let names = Namespace::new();
        let unlinked = names.remember("gone", file(1));
        assert_eq!(names.named(unlinked).map(|(path, _)| path).as_deref(), Some("gone"));
        names.unlink("gone");
        assert_eq!(names.named(unlinked), None);
        assert_eq!(names.known(unlinked).map(|(path, ..)| path).as_deref(), Some("gone"), "known until forgotten");
        let replaced = names.remember("old", file(2));
        names.remember("new", file(3));
        names.rename("new", "old");
        assert_eq!(names.named(replaced), None);
    }

    #[test]
    fn a_path_that_changed_kind_gets_a_new_inode() {
        let names = Namespace::new();
        let file_ino = names.remember("x", file(1));
        let dir_ino = names.remember("x", Known::directory());
        assert_ne!(file_ino, dir_ino);
        assert_eq!(names.ino_of("x"), Some(dir_ino));
    }

    #[test]
    fn rename_moves_the_name_and_keeps_the_inode() {
        let names = Namespace::new();
        let ino = names.remember("old", file(1));
        names.rename("old", "dir/new");
        assert_eq!(names.ino_of("dir/new"), Some(ino));
        assert_eq!(names.ino_of("old"), None);
        assert_eq!(names.path(ino).as_deref(), Some("dir/new"));
        assert_eq!(split("dir/new"), ("dir", "new"));
        assert_eq!(split("top"), ("", "top"));
        assert_eq!(child_path("", "top"), "top");
    }
}
