//! The archive plugin on real mounts: tar, tar.gz and zip built here from a source
//! tree, each file's bytes and mode compared with the source.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use fusehost_tests::{fusehost, is_mounted, run_to_end, stderr_text, target_dir, Host};

/// A small tree: nested folders, a 3 MB file, odd modes, a symlink and a hard link.
struct SourceTree {
    dir: tempfile::TempDir,
    files: BTreeMap<String, (Vec<u8>, u32)>,
}

fn source_tree() -> SourceTree {
    let dir = tempfile::tempdir().unwrap();
    let mut files = BTreeMap::new();
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    for (path, data, mode) in [
        ("a.txt", b"hello archive\n".to_vec(), 0o644),
        ("sub/big.bin", big, 0o600),
        ("sub/deep/er/tool.sh", b"#!/bin/sh\necho hi\n".to_vec(), 0o755),
        ("empty", Vec::new(), 0o400),
    ] {
        let full = dir.path().join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(&full, &data).unwrap();
        std::fs::set_permissions(&full, std::fs::Permissions::from_mode(mode)).unwrap();
        files.insert(path.to_owned(), (data, mode));
    }
    SourceTree { dir, files }
}

/// A tar of the tree, without directory entries (so they are implied), plus a
/// symlink and a hard link.
fn tar_bytes(tree: &SourceTree) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for path in tree.files.keys() {
        builder.append_path_with_name(tree.dir.path().join(path), path).unwrap();
    }
    let mut link = tar::Header::new_gnu();
    link.set_entry_type(tar::EntryType::Symlink);
    link.set_size(0);
    link.set_mode(0o777);
    builder.append_link(&mut link, "sub/link", "../a.txt").unwrap();
    let mut hard = tar::Header::new_gnu();
    hard.set_entry_type(tar::EntryType::Link);
    hard.set_size(0);
    builder.append_link(&mut hard, "hard.txt", "a.txt").unwrap();
    builder.into_inner().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn zip_bytes(tree: &SourceTree) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (path, (data, mode)) in &tree.files {
        // Big members stored (read in place), small ones deflated (inflated on read).
        let method =
            if data.len() > 1_000_000 { zip::CompressionMethod::Stored } else { zip::CompressionMethod::Deflated };
        let options = zip::write::SimpleFileOptions::default().compression_method(method).unix_permissions(*mode);
        writer.start_file(path.as_str(), options).unwrap();
        writer.write_all(data).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

/// Mounts `bytes` written as `file_name`; the folder holding the archive lives as
/// long as the returned guard.
fn mount_archive(bytes: &[u8], file_name: &str) -> (Host, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join(file_name);
    std::fs::write(&archive, bytes).unwrap();
    let host = Host::mount("archive", &[&format!("archive={}", archive.display())]);
    (host, dir)
}

/// Reads the big member near its end, near its start, then its end again, bypassing
/// the page cache, before anything read it whole.
fn assert_reads_anywhere(tree: &SourceTree, host: &Host) {
    use std::os::unix::fs::{FileExt, OpenOptionsExt};
    let big = &tree.files["sub/big.bin"].0;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::DIRECT.bits() as i32)
        .open(host.path("sub/big.bin"))
        .or_else(|_| std::fs::File::open(host.path("sub/big.bin")))
        .unwrap();
    for offset in [2_899_968u64, 4096, 2_949_120] {
        let mut buf = vec![0u8; 4096];
        let count = file.read_at(&mut buf, offset).unwrap();
        assert_eq!(count, 4096);
        assert_eq!(&buf[..count], &big[offset as usize..offset as usize + count], "at {offset}");
    }
}

fn assert_same_files(tree: &SourceTree, root: &Path) {
    for (path, (data, mode)) in &tree.files {
        let mounted = root.join(path);
        assert_eq!(&std::fs::read(&mounted).unwrap(), data, "{path}");
        assert_eq!(std::fs::metadata(&mounted).unwrap().permissions().mode() & 0o7777, *mode, "{path}");
    }
    assert!(std::fs::metadata(root.join("sub/deep/er")).unwrap().is_dir(), "implied directories exist");
}

#[test]
fn a_tar_shows_every_file_link_and_mode() {
    let tree = source_tree();
    let (host, _archive) = mount_archive(&tar_bytes(&tree), "tree.tar");
    assert_same_files(&tree, host.mountpoint());
    assert_eq!(std::fs::read_link(host.path("sub/link")).unwrap(), Path::new("../a.txt"));
    let (a, hard) = (std::fs::metadata(host.path("a.txt")).unwrap(), std::fs::metadata(host.path("hard.txt")).unwrap());
    assert_eq!((a.ino(), a.nlink()), (hard.ino(), 2), "a hard link is the same inode");
}

#[test]
fn a_tar_gz_is_detected_by_content_and_reads_anywhere() {
    let tree = source_tree();
    // Named .zip on purpose: the format comes from the bytes.
    let (host, _archive) = mount_archive(&gzip(&tar_bytes(&tree)), "misnamed.zip");
    assert_reads_anywhere(&tree, &host);
    assert_same_files(&tree, host.mountpoint());
    assert!(host.wait_for_stderr("(tar.gz)"), "{}", host.stderr());
}

#[test]
fn a_zip_shows_stored_and_deflated_members() {
    let tree = source_tree();
    let (host, _archive) = mount_archive(&zip_bytes(&tree), "tree.zip");
    assert_reads_anywhere(&tree, &host);
    assert_same_files(&tree, host.mountpoint());
}

#[test]
fn every_change_is_refused_with_erofs() {
    let tree = source_tree();
    let (host, _archive) = mount_archive(&tar_bytes(&tree), "tree.tar");
    let erofs = Some(rustix::io::Errno::ROFS.raw_os_error());
    assert_eq!(std::fs::write(host.path("new"), "x").unwrap_err().raw_os_error(), erofs);
    assert_eq!(std::fs::OpenOptions::new().write(true).open(host.path("a.txt")).unwrap_err().raw_os_error(), erofs);
    assert_eq!(std::fs::remove_file(host.path("a.txt")).unwrap_err().raw_os_error(), erofs);
    assert_eq!(std::fs::create_dir(host.path("d")).unwrap_err().raw_os_error(), erofs);
    assert_eq!(std::fs::rename(host.path("a.txt"), host.path("b")).unwrap_err().raw_os_error(), erofs);
}

#[test]
fn a_corrupt_or_foreign_file_is_refused_and_nothing_is_mounted() {
    let tree = source_tree();
    let truncated = gzip(&tar_bytes(&tree))[..4000].to_vec();
    for (name, bytes, expected) in [
        ("cut.tar.gz", truncated, "is not a readable archive"),
        ("notes.tar", b"just some text, not an archive".to_vec(), "is not a tar, tar.gz or zip archive"),
        ("x.tar.zst", vec![0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0], "zstd-compressed, which is not supported"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join(name);
        std::fs::write(&archive, bytes).unwrap();
        let mountpoint = dir.path().join("mnt");
        std::fs::create_dir(&mountpoint).unwrap();
        let mut command = fusehost();
        command.arg("mount").arg("archive").arg(&mountpoint).arg("--plugin-dir").arg(target_dir());
        command.arg("-o").arg(format!("archive={}", archive.display()));
        let output = run_to_end(command);
        let stderr = stderr_text(&output);
        assert_eq!(output.status.code(), Some(2), "{name}: {stderr}");
        assert!(stderr.contains(expected), "{name}: {stderr}");
        assert!(stderr.contains(&archive.display().to_string()), "names the file: {stderr}");
        assert!(!is_mounted(&mountpoint));
    }
}

#[test]
fn a_hundred_thousand_entry_tar_gz_mounts_and_lists() {
    const ENTRIES: usize = 100_000;
    let mut builder = tar::Builder::new(Vec::new());
    for i in 0..ENTRIES {
        let mut header = tar::Header::new_gnu();
        let data = format!("{i}\n");
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, format!("d{}/f{i}", i % 100), data.as_bytes()).unwrap();
    }
    let (host, _archive) = mount_archive(&gzip(&builder.into_inner().unwrap()), "many.tar.gz");
    assert_eq!(std::fs::read_dir(host.mountpoint()).unwrap().count(), 100);
    assert_eq!(std::fs::read_dir(host.path("d42")).unwrap().count(), ENTRIES / 100);
    assert_eq!(std::fs::read_to_string(host.path("d99/f99999")).unwrap(), "99999\n");
    assert_eq!(std::fs::read_to_string(host.path("d0/f0")).unwrap(), "0\n");
    assert!(host.wait_for_stderr(&format!("{} inodes", ENTRIES + 101)), "{}", host.stderr());
}
