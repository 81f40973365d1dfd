//! Extended attributes: the namespaces memfs keeps (`user.`, `trusted.`, `security.`)
//! and tmpfs-like limits. The kernel already enforces who may touch which namespace,
//! name lengths (`ERANGE`) and the 64 KiB value limit (`E2BIG`).

use std::collections::BTreeMap;

use fusehost_plugin_api::{Errno, Result};

const XATTR_CREATE: i32 = 1;
const XATTR_REPLACE: i32 = 2;

/// The most bytes (names plus values) one inode's xattrs may take, as tmpfs limits
/// user xattrs.
pub const MAX_TOTAL: usize = 128 * 1024;

const NAMESPACES: [&[u8]; 3] = [b"user.", b"trusted.", b"security."];

pub type Xattrs = BTreeMap<Vec<u8>, Vec<u8>>;

fn check_name(name: &[u8]) -> Result<()> {
    if NAMESPACES.iter().any(|prefix| name.starts_with(prefix) && name.len() > prefix.len()) {
        Ok(())
    } else {
        Err(Errno::EOPNOTSUPP)
    }
}

fn total(xattrs: &Xattrs) -> usize {
    xattrs.iter().map(|(name, value)| name.len() + value.len()).sum()
}

pub fn set(xattrs: &mut Xattrs, name: &[u8], value: &[u8], flags: i32) -> Result<()> {
    check_name(name)?;
    let existing = xattrs.get(name);
    if flags & XATTR_CREATE != 0 && existing.is_some() {
        return Err(Errno::EEXIST);
    }
    if flags & XATTR_REPLACE != 0 && existing.is_none() {
        return Err(Errno::ENODATA);
    }
    let freed = existing.map_or(0, |old| name.len() + old.len());
    if total(xattrs) - freed + name.len() + value.len() > MAX_TOTAL {
        return Err(Errno::ENOSPC);
    }
    xattrs.insert(name.to_vec(), value.to_vec());
    Ok(())
}

pub fn get(xattrs: &Xattrs, name: &[u8]) -> Result<Vec<u8>> {
    check_name(name)?;
    xattrs.get(name).cloned().ok_or(Errno::ENODATA)
}

pub fn list(xattrs: &Xattrs) -> Vec<u8> {
    let mut names = Vec::new();
    for name in xattrs.keys() {
        names.extend_from_slice(name);
        names.push(0);
    }
    names
}

pub fn remove(xattrs: &mut Xattrs, name: &[u8]) -> Result<()> {
    check_name(name)?;
    xattrs.remove(name).map(|_| ()).ok_or(Errno::ENODATA)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_replace_and_missing_follow_linux() {
        let mut xattrs = Xattrs::new();
        assert_eq!(set(&mut xattrs, b"user.a", b"1", XATTR_REPLACE), Err(Errno::ENODATA));
        set(&mut xattrs, b"user.a", b"1", XATTR_CREATE).unwrap();
        assert_eq!(set(&mut xattrs, b"user.a", b"2", XATTR_CREATE), Err(Errno::EEXIST));
        set(&mut xattrs, b"user.a", b"2", XATTR_REPLACE).unwrap();
        assert_eq!(get(&xattrs, b"user.a").unwrap(), b"2");
        assert_eq!(get(&xattrs, b"user.b"), Err(Errno::ENODATA));
        assert_eq!(list(&xattrs), b"user.a\0");
        remove(&mut xattrs, b"user.a").unwrap();
        assert_eq!(remove(&mut xattrs, b"user.a"), Err(Errno::ENODATA));
        assert_eq!(set(&mut xattrs, b"os2.x", b"1", 0), Err(Errno::EOPNOTSUPP));
    }

    #[test]
    fn the_total_is_limited() {
        let mut xattrs = Xattrs::new();
        set(&mut xattrs, b"user.big", &vec![0; MAX_TOTAL - 8], 0).unwrap();
        assert_eq!(set(&mut xattrs, b"user.more", b"x", 0), Err(Errno::ENOSPC));
        set(&mut xattrs, b"user.big", &[0; 10], 0).unwrap();
        set(&mut xattrs, b"user.more", b"x", 0).unwrap();
    }
}
