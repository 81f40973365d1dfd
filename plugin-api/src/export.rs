//! `export_plugin!` and the root-module functions it wires up.
//!
//! abi_stable's own `#[export_root_module]` expands to `::abi_stable::...` paths, which
//! would force every plugin to depend on abi_stable. The macro here emits the same
//! library header through `$crate::` paths, so a plugin depends on this crate alone and
//! can keep `#![forbid(unsafe_code)]`.

use std::sync::OnceLock;

use fusehost_abi::abi_stable::prefix_type::PrefixTypeTrait;
use fusehost_abi::abi_stable::sabi_trait::TD_Opaque;
use fusehost_abi::abi_stable::std_types::{RResult, RSlice, RStr, RString};
use fusehost_abi::{
    FsObject, HostServices, MountInit, OptionDoc, PluginError, PluginInfo, PluginMetadata, PluginModule,
    PluginModule_Ref, RawFilesystem_TO, ABI_MAJOR, SEMANTICS_REVISION,
};

use crate::adapter::FfiFilesystem;
use crate::options::Options;
use crate::panic_guard::{guarded, install_hook};
use crate::plugin::{MountInfo, Plugin};
use crate::types::Errno;

/// Exports a [`Plugin`] from a `cdylib`: the ABI-major symbol, the library header and
/// the root module. Use it once, at the crate root:
///
/// ```text
/// fusehost_plugin_api::export_plugin!(HelloFs);
/// ```
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        /// The ABI major this plugin was built for, read by the host before loading.
        #[no_mangle]
        #[allow(non_upper_case_globals)]
        pub static fusehost_abi_major: u32 = $crate::abi::ABI_MAJOR;

        /// abi_stable's library header (its symbol name is pinned by a test in
        /// `fusehost-abi`).
        #[no_mangle]
        #[allow(non_upper_case_globals)]
        pub static _1as_0lib_1header_0root_bmodule_bloader: $crate::abi::abi_stable::library::LibHeader = {
            extern "C" fn load_root_module() -> $crate::abi::abi_stable::library::RootModuleResult {
                $crate::abi::abi_stable::library::__call_root_module_loader(|| {
                    $crate::__private::root_module::<$plugin>(env!("CARGO_PKG_VERSION"))
                })
            }
            // SAFETY: `load_root_module` returns the `PluginModule_Ref` built by
            // `root_module`, erased by abi_stable's own loader helper, which is what
            // `from_constructor::<PluginModule_Ref>` requires.
            unsafe {
                $crate::abi::abi_stable::library::LibHeader::from_constructor::<$crate::abi::PluginModule_Ref>(
                    load_root_module,
                    $crate::abi::abi_stable::library::CheckTypeLayout::Yes,
                )
            }
        };
    };
}

/// The plugin crate's version, recorded by `root_module` (one plugin per library, and
/// every library has its own copy of this static).
static PLUGIN_VERSION: OnceLock<&'static str> = OnceLock::new();

/// Builds the root module for plugin `P` (called once, when the host loads the library).
pub fn root_module<P: Plugin>(plugin_version: &'static str) -> PluginModule_Ref {
    install_hook();
    let _ = PLUGIN_VERSION.set(plugin_version);
    PluginModule {
        abi_major: ABI_MAJOR,
        describe: describe::<P>,
        attach_host,
        validate: validate::<P>,
        new_filesystem: new_filesystem::<P>,
        metadata: metadata::<P>,
    }
    .leak_into_prefix()
}

extern "C" fn describe<P: Plugin>() -> PluginInfo {
    // One plugin per library, and every library has its own copy of this static.
    static OPTION_DOCS: OnceLock<Vec<OptionDoc>> = OnceLock::new();
    let options = OPTION_DOCS.get_or_init(|| {
        P::OPTIONS
            .iter()
            .map(|spec| OptionDoc {
                key: RStr::from_str(spec.key),
                kind: RStr::from_str(spec.kind.name()),
                default: RStr::from_str(spec.default),
                help: RStr::from_str(spec.help),
            })
            .collect()
    });
    PluginInfo {
        name: RStr::from_str(P::NAME),
        version: RStr::from_str(PLUGIN_VERSION.get().copied().unwrap_or("unknown")),
        description: RStr::from_str(P::DESCRIPTION),
        options: RSlice::from_slice(options),
        thread_model: P::THREAD_MODEL.to_abi(),
        panic_unwind: cfg!(panic = "unwind"),
        sdk_version: RStr::from_str(env!("CARGO_PKG_VERSION")),
    }
}

extern "C" fn metadata<P: Plugin>() -> PluginMetadata {
    PluginMetadata {
        semantics: SEMANTICS_REVISION,
        read_only: P::READ_ONLY,
        source_option: RStr::from_str(P::SOURCE_OPTION.unwrap_or("")),
    }
}

extern "C" fn attach_host(host: HostServices) {
    crate::log_bridge::attach(host);
}

fn setup_error(message: impl Into<String>) -> PluginError {
    PluginError { errno: Errno::EINVAL, message: RString::from(message.into()) }
}

fn checked_options<P: Plugin>(options_toml: &str) -> Result<Options, PluginError> {
    let options = Options::parse(options_toml, P::OPTIONS).map_err(setup_error)?;
    P::validate(&options).map_err(|error| setup_error(error.message()))?;
    Ok(options)
}

extern "C" fn validate<P: Plugin>(options_toml: RStr<'_>) -> RResult<(), PluginError> {
    let outcome = guarded("validate", || Ok(checked_options::<P>(options_toml.as_str())));
    match outcome.into_result() {
        Ok(Ok(_)) => RResult::ROk(()),
        Ok(Err(error)) => RResult::RErr(error),
        Err(_) => RResult::RErr(setup_error("the plugin panicked while checking its options")),
    }
}

/// Builds one mount's filesystem object for plugin `P`, exactly as the exported root
/// module does: options checked against `P::OPTIONS` and `P::validate`, `P::new`, the
/// FFI adapter with its panic guard. The test-support crate drives plugins through it.
pub extern "C" fn new_filesystem<P: Plugin>(init: &MountInit<'_>) -> RResult<FsObject, PluginError> {
    let build = || -> Result<FsObject, PluginError> {
        let options = checked_options::<P>(init.options_toml.as_str())?;
        let mount = MountInfo {
            name: init.mount_name.as_str().to_owned(),
            mountpoint: init.mountpoint.as_str().into(),
            read_only: init.read_only,
        };
        let fs = P::new(&mount, &options).map_err(|error| setup_error(error.message()))?;
        Ok(RawFilesystem_TO::from_value(FfiFilesystem::new(fs), TD_Opaque))
    };
    match guarded("new", || Ok(build())).into_result() {
        Ok(Ok(fs)) => RResult::ROk(fs),
        Ok(Err(error)) => RResult::RErr(error),
        Err(_) => RResult::RErr(setup_error("the plugin panicked while building its filesystem")),
    }
}

/// Wraps an author's filesystem as an ABI object without a library in between, for
/// tests and in-process mounts.
pub fn into_fs_object<F: crate::Filesystem>(fs: F) -> FsObject {
    RawFilesystem_TO::from_value(FfiFilesystem::new(fs), TD_Opaque)
}
