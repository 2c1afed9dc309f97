//! Build script of the Mosquitto plugin crate (`plugin/Cargo.toml` points here).
//!
//! Mosquitto's headers are vendored in `plugin/vendor/` (2.0.11 and 2.1.2; see its README), so
//! the build needs no Mosquitto package installed and sees exactly the headers we checked.
//!
//! 1. bindgen turns the 2.0 headers into Rust declarations (`$OUT_DIR/bindings_2_0.rs`, the ABI
//!    common to 2.0 and 2.1 that the plugin is written against), and the few 2.1 items the
//!    plugin uses into `$OUT_DIR/bindings_2_1.rs`.
//! 2. cbindgen writes the entry points we export as a C header (`$OUT_DIR/mosquitto_oauth.h`);
//!    `MOSQUITTO_OAUTH_UPDATE_HEADER=1` also copies it to `include/`, and a test fails when the
//!    committed header is stale.
//! 3. cc compiles `plugin/abi_check.c`, which includes Mosquitto's headers and ours together,
//!    once against each version, so an exported signature that drifts from Mosquitto's
//!    prototype is a compile error.

use std::env;
use std::path::{Path, PathBuf};

/// Mosquitto 2.1's `mosquitto.h` includes its cJSON helpers, which need cJSON's own header (not
/// vendored; the plugin uses none of them): predefining their include guards skips them.
const SKIP_CJSON_HELPERS: [&str; 2] =
    ["-DMOSQUITTO_LIBCOMMON_CJSON_H", "-DMOSQUITTO_BROKER_CONTROL_H"];

/// Opaque C types the 2.1 bindings take from the 2.0 ones (`plugin/src/ffi.rs` imports them),
/// so that a 2.1 function signature compares equal to the 2.0 one.
const SHARED_OPAQUE_TYPES: &str =
    "mosquitto|mosquitto_property|mqtt5__property|mosquitto_plugin_id_t";

/// The 2.1 declarations the plugin needs: the codes, events and structs it reads or writes, and
/// the broker functions it calls (checked against 2.1's prototypes as well as 2.0's).
const TYPES_2_1: &str = "mosq_err_t|mosquitto_plugin_event|mosquitto_opt|mosquitto_acl_msg\
                         |mosquitto_evt_(basic_auth|extended_auth|acl_check|disconnect|client_offline|tick)";
const VARS_2_1: &str = "MOSQ_ACL_.*|MOSQ_LOG_.*";
const FUNCTIONS_2_1: &str = "mosquitto_log_printf|mosquitto_client_(id|username|clean_session|protocol_version|certificate)\
                             |mosquitto_set_username|mosquitto_kick_client_by_clientid\
                             |mosquitto_broker_publish_copy|mosquitto_callback_(un)?register\
                             |mosquitto_complete_basic_auth";

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let workspace = manifest_dir.parent().expect("plugin/ lives in the workspace").to_path_buf();
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("set by cargo"));
    let headers_2_0 = manifest_dir.join("vendor/mosquitto-2.0");
    let headers_2_1 = manifest_dir.join("vendor/mosquitto-2.1");

    println!("cargo:rerun-if-env-changed=MOSQUITTO_OAUTH_UPDATE_HEADER");
    for file in ["wrapper.h", "wrapper_2_1.h", "abi_check.c", "cbindgen.toml", "vendor"] {
        println!("cargo:rerun-if-changed={}", manifest_dir.join(file).display());
    }
    println!("cargo:rerun-if-changed={}", manifest_dir.join("src").display());

    bindgen::Builder::default()
        .header(manifest_dir.join("wrapper.h").to_string_lossy())
        .clang_arg(format!("-I{}", headers_2_0.display()))
        .allowlist_function("mosquitto_.*")
        .allowlist_type("mosquitto_.*")
        .allowlist_var("MOSQ_.*")
        .allowlist_type("mosq_.*")
        // The v5/v4 entry points are ours to define, not the broker's to provide.
        .blocklist_function("mosquitto_plugin_.*")
        .blocklist_function("mosquitto_auth_.*")
        .layout_tests(false)
        .derive_default(true)
        .generate_comments(false)
        .generate()
        .expect("bindgen failed on Mosquitto 2.0's headers")
        .write_to_file(out_dir.join("bindings_2_0.rs"))
        .expect("cannot write bindings_2_0.rs");

    bindgen::Builder::default()
        .header(manifest_dir.join("wrapper_2_1.h").to_string_lossy())
        .clang_arg(format!("-I{}", headers_2_1.display()))
        .clang_args(SKIP_CJSON_HELPERS)
        .allowlist_type(TYPES_2_1)
        .allowlist_var(VARS_2_1)
        .allowlist_function(FUNCTIONS_2_1)
        .blocklist_type(SHARED_OPAQUE_TYPES)
        .layout_tests(false)
        .derive_default(true)
        .generate_comments(false)
        .generate()
        .expect("bindgen failed on Mosquitto 2.1's headers")
        .write_to_file(out_dir.join("bindings_2_1.rs"))
        .expect("cannot write bindings_2_1.rs");

    let header = out_dir.join("mosquitto_oauth.h");
    let config = cbindgen::Config::from_file(manifest_dir.join("cbindgen.toml"))
        .expect("plugin/cbindgen.toml is invalid");
    cbindgen::Builder::new()
        .with_crate(&manifest_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen failed")
        .write_to_file(&header);
    if env::var_os("MOSQUITTO_OAUTH_UPDATE_HEADER").is_some() {
        std::fs::copy(&header, workspace.join("include/mosquitto_oauth.h"))
            .expect("cannot update include/mosquitto_oauth.h");
    }

    abi_check(&manifest_dir, &out_dir, "2_0", &headers_2_0, &[]);
    // 2.1 keeps mosquitto_broker.h and mosquitto_plugin.h (which our header includes) as
    // shims that `#warning` about their new names: not an error here.
    let flags_2_1 = [&SKIP_CJSON_HELPERS[..], &["-Wno-cpp"]].concat();
    abi_check(&manifest_dir, &out_dir, "2_1", &headers_2_1, &flags_2_1);
}

/// Compiles `abi_check.c` against one version's headers. The object is only compiled, never
/// linked: the compiler's type check is the whole point.
fn abi_check(manifest_dir: &Path, out_dir: &Path, version: &str, headers: &Path, flags: &[&str]) {
    let mut build = cc::Build::new();
    build
        .file(manifest_dir.join("abi_check.c"))
        .out_dir(out_dir.join(format!("abi_check_{version}")))
        .include(headers)
        .include(out_dir)
        .warnings_into_errors(true)
        .flag_if_supported("-Werror=incompatible-pointer-types");
    for flag in flags {
        build.flag(flag);
    }
    build.compile_intermediates();
}
