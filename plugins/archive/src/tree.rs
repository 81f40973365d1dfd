//! The archive's directory tree, built once at mount: one node per path, directories
//! implied by paths created on the way, hard links sharing one node. Only metadata and
//! where each file's bytes are live here, so memory follows the entry count, not the
//! data.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fusehost_plugin_api::{FileAttr, FileKind, ROOT_INO};

/// Where a regular file's bytes are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Data {
    None,
    /// At this offset of the (decompressed) tar stream.
    Stream(u64),
    /// The zip entry with this index.
    ZipEntry(usize),
}

#[derive(Debug)]
pub struct Node {
    pub kind: FileKind,
    pub perm: u16,
    pub uid: u32,
    pub gid: u32,
    pub mtime: SystemTime,
    pub size: u64,
    pub nlink: u32,
    pub data: Data,
    pub link_target: Vec<u8>,
    /// Directory entries by name.
    pub children: BTreeMap<Vec<u8>, u64>,
    pub parent: u64,
}

impl Node {
    /// A directory entry met after the directory was implied: its own metadata wins.
    fn take_metadata(&mut self, member: &Member) {
        self.perm = member.perm;
        self.uid = member.uid;
        self.gid = member.gid;
        self.mtime = time_of(member.mtime_secs);
    }
}

/// What an archive says about one member.
pub struct Member {
    pub path: Vec<u8>,
    pub kind: FileKind,
    pub perm: u16,
    pub uid: u32,
    pub gid: u32,
    pub mtime_secs: i64,
    pub size: u64,
    pub data: Data,
    pub link_target: Vec<u8>,
    /// For a tar hard link: the path of the member it links to.
    pub hard_link_to: Option<Vec<u8>>,
}

#[derive(Debug)]
pub struct Tree {
    nodes: Vec<Node>,
    /// When the archive was opened: the mtime of implied directories.
    opened: SystemTime,
}

fn time_of(secs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs as u64)
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    }
}

/// The non-empty components of an archive path (`./a//b/` is `a`, `b`).
fn components(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    path.split(|byte| *byte == b'/').filter(|part| !part.is_empty() && *part != b".")
}

impl Tree {
    pub fn new(root_mtime: SystemTime) -> Tree {
        let root = Node {
            kind: FileKind::Directory,
            perm: 0o755,
            uid: 0,
            gid: 0,
            mtime: root_mtime,
            size: 0,
            nlink: 2,
            data: Data::None,
            link_target: Vec::new(),
            children: BTreeMap::new(),
            parent: ROOT_INO,
        };
        Tree { nodes: vec![root], opened: root_mtime }
    }

    pub fn get(&self, ino: u64) -> Option<&Node> {
        ino.checked_sub(1).and_then(|index| self.nodes.get(index as usize))
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    fn node_mut(&mut self, ino: u64) -> &mut Node {
        &mut self.nodes[(ino - 1) as usize]
    }

    fn push(&mut self, node: Node) -> u64 {
        self.nodes.push(node);
        self.nodes.len() as u64
    }

    /// Finds a path's inode.
    pub fn resolve(&self, path: &[u8]) -> Option<u64> {
        components(path).try_fold(ROOT_INO, |dir, name| self.get(dir)?.children.get(name).copied())
    }

    /// The directory for `parts`, creating implied ones on the way.
    fn directory(&mut self, parts: &[&[u8]]) -> u64 {
        let mut dir = ROOT_INO;
        for part in parts {
            dir = match self.get(dir).and_then(|node| node.children.get(*part).copied()) {
                Some(existing) if self.get(existing).is_some_and(|node| node.kind == FileKind::Directory) => existing,
                _ => {
                    let implied = self.push(Node {
                        kind: FileKind::Directory,
                        perm: 0o755,
                        uid: 0,
                        gid: 0,
                        mtime: self.opened,
                        size: 0,
                        nlink: 2,
                        data: Data::None,
                        link_target: Vec::new(),
                        children: BTreeMap::new(),
                        parent: dir,
                    });
                    self.link(dir, part, implied);
                    implied
                }
            };
        }
        dir
    }

    fn link(&mut self, dir: u64, name: &[u8], ino: u64) {
        let is_dir = self.get(ino).is_some_and(|node| node.kind == FileKind::Directory);
        let parent = self.node_mut(dir);
        if parent.children.insert(name.to_vec(), ino).is_none() && is_dir {
            parent.nlink += 1;
        }
    }

    /// Adds one member; a later member of the same path replaces an earlier one, as
    /// extracting the archive would.
    pub fn add(&mut self, member: Member) {
        let parts: Vec<&[u8]> = components(&member.path).collect();
        let Some((name, parents)) = parts.split_last() else {
            // The archive's own root (`./`): take its metadata.
            self.node_mut(ROOT_INO).take_metadata(&member);
            return;
        };
        let dir = self.directory(parents);
        if let Some(target) = member.hard_link_to.as_deref().and_then(|target| self.resolve(target)) {
            if self.get(target).is_some_and(|node| node.kind != FileKind::Directory) {
                self.node_mut(target).nlink += 1;
                self.link(dir, name, target);
            }
            return;
        }
        if member.kind == FileKind::Directory {
            if let Some(existing) = self.get(dir).and_then(|node| node.children.get(*name).copied()) {
                if self.get(existing).is_some_and(|node| node.kind == FileKind::Directory) {
                    self.node_mut(existing).take_metadata(&member);
                    return;
                }
            }
        }
        let ino = self.push(Node {
            kind: member.kind,
            perm: member.perm,
            uid: member.uid,
            gid: member.gid,
            mtime: time_of(member.mtime_secs),
            size: if member.kind == FileKind::Symlink { member.link_target.len() as u64 } else { member.size },
            nlink: if member.kind == FileKind::Directory { 2 } else { 1 },
            data: member.data,
            link_target: member.link_target,
            children: BTreeMap::new(),
            parent: dir,
        });
        self.link(dir, name, ino);
    }

    pub fn attr(&self, ino: u64) -> Option<FileAttr> {
        let node = self.get(ino)?;
        let mut attr = FileAttr::new(ino, node.kind, node.perm, node.mtime);
        attr.size = node.size;
        attr.blocks = node.size.div_ceil(512);
        attr.uid = node.uid;
        attr.gid = node.gid;
        attr.nlink = node.nlink;
        Some(attr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, size: u64) -> Member {
        Member {
            path: path.as_bytes().to_vec(),
            kind: FileKind::RegularFile,
            perm: 0o644,
            uid: 1,
            gid: 2,
            mtime_secs: 1_700_000_000,
            size,
            data: Data::Stream(0),
            link_target: Vec::new(),
            hard_link_to: None,
        }
    }

    #[test]
    fn paths_imply_directories_and_hard_links_share_a_node() {
        let mut tree = Tree::new(UNIX_EPOCH);
        tree.add(file("./a/b/c.txt", 5));
        tree.add(Member { hard_link_to: Some(b"a/b/c.txt".to_vec()), ..file("a/link", 0) });
        let c = tree.resolve(b"a/b/c.txt").unwrap();
        assert_eq!(tree.resolve(b"a/link"), Some(c));
        assert_eq!(tree.get(c).unwrap().nlink, 2);
        let a = tree.resolve(b"a").unwrap();
        assert_eq!(tree.get(a).unwrap().kind, FileKind::Directory);
        assert_eq!(tree.get(a).unwrap().nlink, 3, "a holds directory b");
        assert_eq!(tree.attr(c).unwrap().uid, 1);
    }

    #[test]
    fn an_explicit_directory_entry_sets_the_implied_ones_metadata() {
        let mut tree = Tree::new(UNIX_EPOCH);
        tree.add(file("d/x", 1));
        tree.add(Member { kind: FileKind::Directory, perm: 0o700, ..file("d/", 0) });
        let d = tree.resolve(b"d").unwrap();
        assert_eq!(tree.get(d).unwrap().perm, 0o700);
        assert_eq!(tree.get(d).unwrap().children.len(), 1, "the file is still there");
    }
}
