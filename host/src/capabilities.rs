//! Kernel features as consent (ABI 1.1): the host asks the kernel for a feature only
//! when the plugin consents to it, and for a feature the operator switches on
//! (`writeback_cache`), only when the operator asked too. A mount asking for a feature
//! its plugin does not consent to is refused before anything is mounted.

use fusehost_abi::capability;
use fuser::{InitFlags, KernelConfig};

use crate::mount_options::MountOptions;

/// Refuses options that need a capability the plugin does not consent to.
pub fn check_consent(options: &MountOptions, plugin: &str, consent: u64) -> Result<(), String> {
    if options.writeback_cache && consent & capability::WRITEBACK_CACHE == 0 {
        return Err(format!(
            "plugin `{plugin}` does not support writeback_cache (the kernel would read through write-only handles \
             and turn appends into positioned writes, corrupting its files): remove `writeback_cache = true`"
        ));
    }
    Ok(())
}

/// The kernel flag each capability stands for (parallel direct writes is an open flag).
const INIT_FLAGS: &[(u64, InitFlags)] = &[
    (capability::WRITEBACK_CACHE, InitFlags::FUSE_WRITEBACK_CACHE),
    (capability::POSIX_LOCKS, InitFlags::FUSE_POSIX_LOCKS),
    (capability::HANDLE_KILLPRIV_V2, InitFlags::FUSE_HANDLE_KILLPRIV_V2),
    (capability::CACHE_SYMLINKS, InitFlags::FUSE_CACHE_SYMLINKS),
    (capability::NO_OPEN, InitFlags::FUSE_NO_OPEN_SUPPORT),
    (capability::NO_OPENDIR, InitFlags::FUSE_NO_OPENDIR_SUPPORT),
    (capability::PASSTHROUGH, InitFlags::FUSE_PASSTHROUGH),
];

/// What the operator asked for, of the capabilities behind a host option.
#[derive(Clone, Copy, Debug)]
pub struct Asked {
    pub writeback_cache: bool,
    pub kernel_passthrough: bool,
    /// READDIRPLUS: off for a plugin that answers readdir later but not readdirplus
    /// (its synchronous readdirplus would block a worker on every entry's lookup).
    pub readdirplus: bool,
}

/// Asks the kernel to keep handles opened with `FOPEN_DIRECT_IO` coherent with its page
/// cache (dirty pages written back before their direct I/O, written ranges dropped
/// after) and mappable; returns whether it does (kernels from 6.6). Only then does the
/// host serve `O_DIRECT` opens on the kernel's direct I/O path (see `fopen_flags`).
pub fn keep_direct_io_coherent(config: &mut KernelConfig) -> bool {
    config.capabilities().contains(InitFlags::FUSE_DIRECT_IO_ALLOW_MMAP)
        && config.add_capabilities(InitFlags::FUSE_DIRECT_IO_ALLOW_MMAP).is_ok()
}

/// Asks the kernel for what the host always wants and for every consented capability
/// the kernel offers (writeback and passthrough only when the operator asked; the
/// kernel does not combine the two); returns the capabilities in effect. (Coherent
/// direct I/O, which no plugin consents to, is asked by `keep_direct_io_coherent`.)
pub fn negotiate(config: &mut KernelConfig, consent: u64, asked: Asked) -> u64 {
    let offered = config.capabilities();
    let mut wanted = InitFlags::FUSE_PARALLEL_DIROPS;
    if asked.readdirplus {
        wanted |= InitFlags::FUSE_DO_READDIRPLUS | InitFlags::FUSE_READDIRPLUS_AUTO;
    }
    let mut granted = consent & capability::PARALLEL_DIRECT_WRITES;
    for &(bit, flag) in INIT_FLAGS {
        if consent & bit == 0 || !offered.contains(flag) {
            continue;
        }
        let asked = match bit {
            capability::WRITEBACK_CACHE => asked.writeback_cache,
            capability::PASSTHROUGH => {
                asked.kernel_passthrough && !asked.writeback_cache && config.set_max_stack_depth(1).is_ok()
            }
            _ => true,
        };
        if asked {
            wanted |= flag;
            granted |= bit;
        }
    }
    if let Err(unsupported) = config.add_capabilities(wanted) {
        tracing::debug!("kernel lacks capabilities {unsupported:?}");
        let _ = config.add_capabilities(wanted - unsupported);
    }
    granted
}
