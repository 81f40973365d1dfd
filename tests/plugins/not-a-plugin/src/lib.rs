//! Test-only: a perfectly good shared library that is not a fusehost plugin.

/// Something for the library to export.
#[no_mangle]
pub extern "C" fn not_a_plugin_answer() -> i32 {
    42
}
