//! memfs on a real mount: the behaviours its issue names, one test each.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use fusehost_tests::Host;
use rustix::fs::{statvfs, FallocateFlags, Mode, RenameFlags, CWD};
use rustix::io::Errno;

fn used_inodes(root: &Path) -> u64 {
    let figures = statvfs(root).expect("statvfs");
    figures.f_files - figures.f_ffree
}

/// Waits (bounded) until `used` inodes are in use: the kernel's RELEASE and FORGET,
/// which free an unlinked file, arrive asynchronously after the last close.
fn wait_for_used_inodes(root: &Path, used: u64) {
    let deadline = std::time::Instant::now() + fusehost_tests::TIMEOUT;
    while used_inodes(root) != used && std::time::Instant::now() < deadline {
        std::thread::yield_now();
    }
}

fn drop_caches() {
    std::fs::write("/proc/sys/vm/drop_caches", "2").expect("tests run as root (see README)");
}

#[test]
fn an_unlinked_open_file_stays_usable_and_is_freed_after_close() {
    let host = Host::mount("memfs", &[]);
    let before = used_inodes(host.mountpoint());

    let path = host.path("doomed");
    let mut file = OpenOptions::new().create(true).truncate(true).read(true).write(true).open(&path).unwrap();
    file.write_all(b"still here").unwrap();
    std::fs::remove_file(&path).unwrap();
    assert!(!path.exists());

    // Readable and writable through the descriptor, and still counted.
    file.write_all(b", and growing").unwrap();
    file.seek(SeekFrom::Start(0)).unwrap();
    let mut text = String::new();
    file.read_to_string(&mut text).unwrap();
    assert_eq!(text, "still here, and growing");
    drop_caches();
    assert_eq!(used_inodes(host.mountpoint()), before + 1, "not freed while open");

    drop(file);
    drop_caches();
    wait_for_used_inodes(host.mountpoint(), before);
    assert_eq!(used_inodes(host.mountpoint()), before, "freed after close and forget");
}

#[test]
fn statfs_reports_real_limits_and_writes_stop_at_enospc() {
    let host = Host::mount("memfs", &["max_size=1MiB,max_inodes=10"]);
    let figures = statvfs(host.mountpoint()).unwrap();
    assert_eq!(figures.f_bsize, 4096);
    assert_eq!(figures.f_blocks, 256);
    assert_eq!(figures.f_files, 10);
    assert_eq!(figures.f_namemax, 255);

    let mut file = File::create(host.path("big")).unwrap();
    let error = file.write_all(&vec![1u8; 2 << 20]).and_then(|()| file.sync_all()).unwrap_err();
    assert_eq!(error.raw_os_error(), Some(Errno::NOSPC.raw_os_error()), "{error}");
    assert_eq!(statvfs(host.mountpoint()).unwrap().f_bfree, 0);
    drop(file);
    std::fs::remove_file(host.path("big")).unwrap();
    // Only the root is left once the kernel has released and forgotten `big`.
    wait_for_used_inodes(host.mountpoint(), 1);

    for i in 0..9 {
        File::create(host.path(&format!("f{i}"))).unwrap();
    }
    let error = File::create(host.path("one-too-many")).unwrap_err();
    assert_eq!(error.raw_os_error(), Some(Errno::NOSPC.raw_os_error()));

    let long = "n".repeat(256);
    let error = File::create(host.path(&long)).unwrap_err();
    assert_eq!(error.raw_os_error(), Some(Errno::NAMETOOLONG.raw_os_error()));
}

#[test]
fn sparse_files_have_holes_and_seek_data_finds_the_data() {
    let host = Host::mount("memfs", &[]);
    let path = host.path("sparse");
    let mut file = OpenOptions::new().create(true).truncate(true).read(true).write(true).open(&path).unwrap();
    file.seek(SeekFrom::Start(1 << 20)).unwrap();
    file.write_all(b"data").unwrap();
    let meta = file.metadata().unwrap();
    assert_eq!(meta.len(), (1 << 20) + 4);
    assert_eq!(meta.blocks(), 8, "one 4 KiB page allocated");

    assert_eq!(rustix::fs::seek(&file, rustix::fs::SeekFrom::Data(0)).unwrap(), 1 << 20);
    assert_eq!(rustix::fs::seek(&file, rustix::fs::SeekFrom::Hole(0)).unwrap(), 0);

    // Punch the data out again: zeros, no pages, same size.
    rustix::fs::fallocate(&file, FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE, 1 << 20, 4096).unwrap();
    let meta = file.metadata().unwrap();
    assert_eq!((meta.len(), meta.blocks()), ((1 << 20) + 4, 0));
    let mut tail = [9u8; 4];
    file.seek(SeekFrom::Start(1 << 20)).unwrap();
    file.read_exact(&mut tail).unwrap();
    assert_eq!(tail, [0; 4]);

    // Preallocation keeping the size, then copy_file_range.
    rustix::fs::fallocate(&file, FallocateFlags::KEEP_SIZE, 0, 8192).unwrap();
    assert_eq!(file.metadata().unwrap().blocks(), 16);
    std::fs::write(host.path("source"), b"0123456789").unwrap();
    let source = File::open(host.path("source")).unwrap();
    let target = File::create(host.path("copy")).unwrap();
    let copied = rustix::fs::copy_file_range(&source, Some(&mut 2), &target, Some(&mut 0), 5).unwrap();
    assert_eq!(copied, 5);
    assert_eq!(std::fs::read(host.path("copy")).unwrap(), b"23456");
}

#[test]
fn rename_noreplace_and_exchange_and_directory_link_counts() {
    let host = Host::mount("memfs", &[]);
    let (a, b) = (host.path("a"), host.path("b"));
    std::fs::write(&a, "A").unwrap();
    std::fs::write(&b, "B").unwrap();
    let error = rustix::fs::renameat_with(CWD, &a, CWD, &b, RenameFlags::NOREPLACE).unwrap_err();
    assert_eq!(error, Errno::EXIST);
    rustix::fs::renameat_with(CWD, &a, CWD, &b, RenameFlags::EXCHANGE).unwrap();
    assert_eq!(std::fs::read_to_string(&a).unwrap(), "B");
    assert_eq!(std::fs::read_to_string(&b).unwrap(), "A");

    let (left, right) = (host.path("left"), host.path("right"));
    std::fs::create_dir_all(left.join("child")).unwrap();
    std::fs::create_dir(&right).unwrap();
    assert_eq!(std::fs::metadata(&left).unwrap().nlink(), 3);
    std::fs::rename(left.join("child"), right.join("child")).unwrap();
    assert_eq!(std::fs::metadata(&left).unwrap().nlink(), 2, "the old parent lost a subdirectory");
    assert_eq!(std::fs::metadata(&right).unwrap().nlink(), 3, "the new parent gained one");
}

#[test]
fn every_file_type_hard_links_and_xattrs() {
    let host = Host::mount("memfs", &[]);
    rustix::fs::mknodat(CWD, host.path("fifo"), rustix::fs::FileType::Fifo, Mode::from_raw_mode(0o644), 0).unwrap();
    rustix::fs::mknodat(CWD, host.path("chr"), rustix::fs::FileType::CharacterDevice, Mode::from(0o600), 0x0103)
        .unwrap();
    std::os::unix::fs::symlink("target/path", host.path("link")).unwrap();
    assert!(std::fs::symlink_metadata(host.path("fifo")).unwrap().file_type().is_fifo());
    let chr = std::fs::symlink_metadata(host.path("chr")).unwrap();
    assert!(chr.file_type().is_char_device());
    assert_eq!(chr.rdev(), 0x0103);
    assert_eq!(std::fs::read_link(host.path("link")).unwrap(), Path::new("target/path"));

    std::fs::write(host.path("file"), "x").unwrap();
    std::fs::hard_link(host.path("file"), host.path("file2")).unwrap();
    let (one, two) = (std::fs::metadata(host.path("file")).unwrap(), std::fs::metadata(host.path("file2")).unwrap());
    assert_eq!((one.ino(), one.nlink()), (two.ino(), 2));

    let file = host.path("file");
    rustix::fs::setxattr(&file, "user.color", b"blue", rustix::fs::XattrFlags::CREATE).unwrap();
    let mut value = [0u8; 16];
    let length = rustix::fs::getxattr(&file, "user.color", &mut value).unwrap();
    assert_eq!(&value[..length], b"blue");
    let missing = rustix::fs::getxattr(&file, "user.shape", &mut value).unwrap_err();
    assert_eq!(missing, Errno::NODATA);
    let too_small = rustix::fs::getxattr(&file, "user.color", &mut value[..2]).unwrap_err();
    assert_eq!(too_small, Errno::RANGE);
    let exists = rustix::fs::setxattr(&file, "user.color", b"red", rustix::fs::XattrFlags::CREATE).unwrap_err();
    assert_eq!(exists, Errno::EXIST);
}

#[test]
fn new_files_follow_umask_and_setgid_directories() {
    let host = Host::mount("memfs", &[]);
    let shared = host.path("shared");
    std::fs::create_dir(&shared).unwrap();
    std::os::unix::fs::chown(&shared, Some(0), Some(4321)).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o2775)).unwrap();
    std::fs::create_dir(shared.join("sub")).unwrap();
    File::create(shared.join("file")).unwrap();
    let sub = std::fs::metadata(shared.join("sub")).unwrap();
    assert_eq!(sub.gid(), 4321, "inherits the directory's group");
    assert_ne!(sub.permissions().mode() & 0o2000, 0, "a subdirectory inherits setgid");
    assert_eq!(std::fs::metadata(shared.join("file")).unwrap().gid(), 4321);
}

#[test]
fn two_memfs_mounts_do_not_share_state() {
    let first = Host::mount("memfs", &[]);
    let second = Host::mount("memfs", &[]);
    std::fs::write(first.path("only-here"), "1").unwrap();
    assert!(first.path("only-here").exists());
    assert!(!second.path("only-here").exists());
    assert_eq!(std::fs::read_dir(second.mountpoint()).unwrap().count(), 0);
}

/// `len` bytes starting at a page boundary inside `storage`, as O_DIRECT wants them.
fn page_aligned(storage: &mut Vec<u8>, len: usize) -> &mut [u8] {
    storage.resize(len + 4096, 0);
    let start = storage.as_ptr().align_offset(4096);
    &mut storage[start..start + len]
}

#[test]
fn direct_reads_return_the_stored_bytes_whether_lent_from_one_chunk_or_gathered() {
    // memfs stores a file in 1 MiB chunks and answers a read lying in one chunk's
    // bytes straight from them; a read across chunks, into a hole or past the end is
    // gathered. O_DIRECT sends each read to memfs as asked, so every kind is met.
    use std::os::unix::fs::FileExt;
    const MIB: u64 = 1 << 20;
    let host = Host::run_mounts(&[fusehost_tests::mount_lines("chunks", "memfs", "")]);
    let path = host.mountpoints[0].join("chunks");
    // Data in [0, 2 MiB), a hole in [2 MiB, 3 MiB + 8 KiB), data in its last 4 KiB up
    // to 3 MiB + 12 KiB, and a hole again up to the end at 3 MiB + 20 KiB.
    let pattern = |offset: u64| (offset % 251) as u8;
    let size = 3 * MIB + 20 * 1024;
    let expected: Vec<u8> =
        (0..size)
            .map(|offset| {
                if offset < 2 * MIB || (3 * MIB + 8192..3 * MIB + 12288).contains(&offset) {
                    pattern(offset)
                } else {
                    0
                }
            })
            .collect();
    let file = OpenOptions::new().create(true).truncate(true).read(true).write(true).open(&path).unwrap();
    file.write_all_at(&expected[..2 * MIB as usize], 0).unwrap();
    file.write_all_at(&expected[(3 * MIB + 8192) as usize..(3 * MIB + 12288) as usize], 3 * MIB + 8192).unwrap();
    file.set_len(size).unwrap();
    file.sync_all().unwrap();
    drop(file);

    let direct = OpenOptions::new().read(true).custom_flags(libc::O_DIRECT).open(&path).unwrap();
    let mut storage = Vec::new();
    let reads: [(u64, usize, &str); 8] = [
        (0, MIB as usize, "one whole chunk"),
        (3 * 4096, 8192, "pages inside a chunk"),
        (MIB, MIB as usize, "the second chunk"),
        (MIB / 2, MIB as usize, "across two chunks"),
        (MIB - 4096, 8192, "a page either side of a chunk boundary"),
        (2 * MIB + 4096, 8192, "a chunk that is all hole"),
        (3 * MIB, MIB as usize, "a chunk with data between holes, short at the end"),
        (size, 4096, "at the end"),
    ];
    for (offset, len, what) in reads {
        let buffer = page_aligned(&mut storage, len);
        buffer.fill(0xee);
        let count = direct.read_at(buffer, offset).unwrap();
        let want = &expected[(offset.min(size) as usize)..((offset + len as u64).min(size) as usize)];
        assert_eq!(count, want.len(), "{what}: byte count");
        assert!(buffer[..count] == *want, "{what}: the bytes differ from those written");
    }
    // Every one went through the reply path (lent or gathered), none through `read`'s
    // copy into a buffer the host lends.
    let later = &fusehost_tests::status_json(&host.control_socket())["mounts"][0]["answered_later"];
    assert!(later["total"].as_u64() >= Some(reads.len() as u64), "memfs answered its reads synchronously: {later}");
}

/// The daemon's resident memory, in KiB.
fn resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the daemon's status");
    let line = status.lines().find(|line| line.starts_with("VmRSS:")).expect("a VmRSS line");
    line.split_whitespace().nth(1).and_then(|kib| kib.parse().ok()).expect("VmRSS in kB")
}

#[test]
fn the_holes_of_a_sparse_file_take_no_memory() {
    // One page written at the end of each of 128 MiB: 512 KiB of data. memfs stores
    // a file in 1 MiB chunks; a chunk's hole before its page must not be resident.
    let host = Host::mount("memfs", &[]);
    let before = resident_kib(host.pid());
    let file = File::create(host.path("sparse")).unwrap();
    for mib in 0..128u64 {
        std::os::unix::fs::FileExt::write_all_at(&file, &[7u8; 4096], (mib << 20) + (1 << 20) - 4096).unwrap();
    }
    file.sync_all().unwrap();
    assert_eq!(file.metadata().unwrap().blocks(), 128 * 8, "128 pages of 4 KiB in use");
    let grown_mib = resident_kib(host.pid()).saturating_sub(before) / 1024;
    assert!(grown_mib < 32, "128 pages written cost the daemon {grown_mib} MiB of memory");
}
