//! Build script of the Mosquitto plugin crate (`plugin/Cargo.toml` points here).
//!
//! 1. bindgen turns Debian's Mosquitto headers into Rust declarations (`$OUT_DIR/bindings.rs`).
//! 2. cbindgen writes the entry points we export as a C header (`$OUT_DIR/mosquitto_oauth.h`);
//!    `MOSQUITTO_OAUTH_UPDATE_HEADER=1` also copies it to `include/`, and a test fails when the
//!    committed header is stale.
//! 3. cc compiles `plugin/abi_check.c`, which includes Mosquitto's headers and ours together, so
//!    an exported signature that drifts from Mosquitto's prototype is a compile error.

use std::env;
use std::path::PathBuf;

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let workspace = manifest_dir.parent().expect("plugin/ lives in the workspace").to_path_buf();
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("set by cargo"));
    let include_dir = env::var("MOSQUITTO_INCLUDE_DIR").unwrap_or_else(|_| "/usr/include".into());

    println!("cargo:rerun-if-env-changed=MOSQUITTO_INCLUDE_DIR");
    println!("cargo:rerun-if-env-changed=MOSQUITTO_OAUTH_UPDATE_HEADER");
    for file in ["wrapper.h", "abi_check.c", "cbindgen.toml"] {
        println!("cargo:rerun-if-changed={}", manifest_dir.join(file).display());
    }
    println!("cargo:rerun-if-changed={}", manifest_dir.join("src").display());
    for header in ["mosquitto.h", "mosquitto_broker.h", "mosquitto_plugin.h"] {
        let path = PathBuf::from(&include_dir).join(header);
        assert!(
            path.exists(),
            "{} not found: install Debian's mosquitto-dev and libmosquitto-dev, or set MOSQUITTO_INCLUDE_DIR",
            path.display()
        );
        println!("cargo:rerun-if-changed={}", path.display());
    }

    bindgen::Builder::default()
        .header(manifest_dir.join("wrapper.h").to_string_lossy())
        .clang_arg(format!("-I{include_dir}"))
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
        .expect("bindgen failed on Mosquitto's headers")
        .write_to_file(out_dir.join("bindings.rs"))
        .expect("cannot write bindings.rs");

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

    cc::Build::new()
        .file(manifest_dir.join("abi_check.c"))
        .include(&include_dir)
        .include(&out_dir)
        .warnings_into_errors(true)
        .flag_if_supported("-Werror=incompatible-pointer-types")
        .compile("mosquitto_oauth_abi_check");
}
