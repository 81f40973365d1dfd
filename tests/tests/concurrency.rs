//! memfs under concurrent namespace churn: 8 threads create, rename, link, unlink and
//! read in four shared directories for 20 s. Each thread owns its names (a per-thread
//! prefix), so it knows exactly what must exist; at the end the directories must hold
//! exactly the union of what the threads expect (no lost or phantom entries), every
//! link count must be right, the host's lookup-anomaly counter must be 0, and after
//! unmount no unlinked inode may be left unforgotten.

use std::collections::{BTreeSet, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fusehost_tests::{mount_lines, status_json, Host};
use rustix::process::Signal;

const THREADS: u64 = 8;
const DIRS: u64 = 4;
const DURATION: Duration = Duration::from_secs(20);

/// xorshift64*: a small deterministic generator per thread.
struct Rng(u64);

impl Rng {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % below.max(1)
    }
}

/// What one thread expects: each name (relative to the root) and the file it names,
/// and each file's content.
#[derive(Default)]
struct Model {
    names: HashMap<PathBuf, u64>,
    contents: HashMap<u64, Vec<u8>>,
}

impl Model {
    fn names_of(&self, file: u64) -> Vec<&PathBuf> {
        self.names.iter().filter(|(_, id)| **id == file).map(|(name, _)| name).collect()
    }

    fn drop_name(&mut self, name: &Path) {
        if let Some(file) = self.names.remove(name) {
            if self.names_of(file).is_empty() {
                self.contents.remove(&file);
            }
        }
    }
}

fn churn(root: &Path, thread: u64) -> Model {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (thread + 1));
    let mut model = Model::default();
    let mut serial = 0u64;
    // A fresh name in a random shared directory, and its serial number.
    let mut new_name = |rng: &mut Rng| {
        serial += 1;
        (PathBuf::from(format!("d{}", rng.next(DIRS))).join(format!("t{thread}-{serial}")), serial)
    };
    let deadline = Instant::now() + DURATION;
    while Instant::now() < deadline {
        let existing: Vec<PathBuf> = model.names.keys().cloned().collect();
        let pick = |rng: &mut Rng| existing.get(rng.next(existing.len() as u64) as usize).cloned();
        match rng.next(10) {
            0..=2 if existing.len() < 200 => {
                let (name, file) = new_name(&mut rng);
                let content = format!("thread {thread} file {file} ").repeat(1 + rng.next(50) as usize).into_bytes();
                std::fs::write(root.join(&name), &content).unwrap();
                model.names.insert(name, file);
                model.contents.insert(file, content);
            }
            3 => {
                if let Some(from) = pick(&mut rng) {
                    let (to, _) = new_name(&mut rng);
                    std::fs::rename(root.join(&from), root.join(&to)).unwrap();
                    let file = model.names.remove(&from).unwrap();
                    model.names.insert(to, file);
                }
            }
            4 => {
                if let (Some(from), Some(over)) = (pick(&mut rng), pick(&mut rng)) {
                    if model.names[&from] != model.names[&over] {
                        std::fs::rename(root.join(&from), root.join(&over)).unwrap();
                        let file = model.names.remove(&from).unwrap();
                        model.drop_name(&over);
                        model.names.insert(over, file);
                    }
                }
            }
            5 => {
                if let Some(from) = pick(&mut rng) {
                    let (to, _) = new_name(&mut rng);
                    std::fs::hard_link(root.join(&from), root.join(&to)).unwrap();
                    model.names.insert(to, model.names[&from]);
                }
            }
            6 => {
                if let Some(name) = pick(&mut rng) {
                    std::fs::remove_file(root.join(&name)).unwrap();
                    model.drop_name(&name);
                }
            }
            _ => {
                if let Some(name) = pick(&mut rng) {
                    let file = model.names[&name];
                    assert_eq!(std::fs::read(root.join(&name)).unwrap(), model.contents[&file], "{name:?}");
                    let meta = std::fs::metadata(root.join(&name)).unwrap();
                    assert_eq!(meta.nlink() as usize, model.names_of(file).len(), "{name:?}");
                }
            }
        }
    }
    model
}

#[test]
fn eight_threads_churning_shared_directories_leave_a_consistent_tree() {
    let host = Host::run_mounts(&[mount_lines("churn", "memfs", "threads = 4")]);
    let root = host.mountpoint().to_path_buf();
    for dir in 0..DIRS {
        std::fs::create_dir(root.join(format!("d{dir}"))).unwrap();
    }
    let models: Vec<Model> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..THREADS)
            .map(|thread| {
                scope.spawn({
                    let root = root.clone();
                    move || churn(&root, thread)
                })
            })
            .collect();
        workers.into_iter().map(|worker| worker.join().expect("a worker panicked")).collect()
    });

    let expected: BTreeSet<PathBuf> = models.iter().flat_map(|model| model.names.keys().cloned()).collect();
    let mut found = BTreeSet::new();
    for dir in 0..DIRS {
        let dir = PathBuf::from(format!("d{dir}"));
        for entry in std::fs::read_dir(root.join(&dir)).unwrap() {
            found.insert(dir.join(entry.unwrap().file_name()));
        }
    }
    let lost: Vec<_> = expected.difference(&found).collect();
    let phantom: Vec<_> = found.difference(&expected).collect();
    assert!(lost.is_empty() && phantom.is_empty(), "lost {lost:?}, phantom {phantom:?}");

    let mut files = 0;
    for model in &models {
        for (file, content) in &model.contents {
            files += 1;
            let names = model.names_of(*file);
            let inodes: BTreeSet<u64> =
                names.iter().map(|name| std::fs::metadata(root.join(name)).unwrap().ino()).collect();
            assert_eq!(inodes.len(), 1, "all names of one file are one inode");
            let meta = std::fs::metadata(root.join(names[0])).unwrap();
            assert_eq!(meta.nlink() as usize, names.len());
            assert_eq!(&std::fs::read(root.join(names[0])).unwrap(), content);
        }
    }
    for dir in 0..DIRS {
        assert_eq!(std::fs::metadata(root.join(format!("d{dir}"))).unwrap().nlink(), 2);
    }
    assert_eq!(std::fs::metadata(&root).unwrap().nlink(), 2 + DIRS);

    let status = status_json(&host.control_socket());
    assert_eq!(status["mounts"][0]["anomalies"], 0, "{status}");
    println!("churn: {} names over {files} files survive; status {}", expected.len(), status["mounts"][0]["requests"]);

    host.signal(Signal::TERM);
    let mut host = host;
    let exit = host.wait_exit(Duration::from_secs(15)).expect("fusehost exits");
    assert_eq!(exit.code(), Some(0));
    let stderr = host.stderr();
    let expected_inodes = 1 + DIRS as usize + files;
    assert!(
        stderr.contains(&format!("memfs destroyed: {expected_inodes} inodes, 0 unlinked inodes still held")),
        "every unlinked inode was forgotten and freed before destroy:\n{}",
        stderr.lines().rev().take(10).collect::<Vec<_>>().join("\n")
    );
    assert!(!stderr.contains("lookup-count anomaly"));
}
