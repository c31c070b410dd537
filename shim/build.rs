//! Embeds the default kproxy filter as `$OUT_DIR/kproxy_filter.wasm` (see `shim::DEFAULT_FILTER`).
//!
//! With `KPROXY_FILTER_WASM` set (the justfile sets it after `just wasm`), that file is copied.
//! Otherwise the `filter` package is built for `wasm32-wasip1` with the `wasm` profile by a nested
//! cargo with its own target directory under `$OUT_DIR` (sharing the outer target directory would
//! wait forever on cargo's build-directory lock) and without the outer RUSTFLAGS.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=KPROXY_FILTER_WASM");
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let dest = out_dir.join("kproxy_filter.wasm");
    if let Some(path) = std::env::var_os("KPROXY_FILTER_WASM").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        println!("cargo:rerun-if-changed={}", path.display());
        copy(&path, &dest);
        return;
    }
    let manifest_dir = PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"),
    );
    let root = manifest_dir
        .parent()
        .expect("shim/ lives in the workspace root");
    println!(
        "cargo:rerun-if-changed={}",
        root.join("filter/src").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        root.join("filter/Cargo.toml").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        root.join("Cargo.lock").display()
    );
    let target_dir = out_dir.join("filter-target");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--package",
            "filter",
            "--target",
            "wasm32-wasip1",
            "--profile",
            "wasm",
        ])
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("RUSTC_WRAPPER")
        .status()
        .expect("failed to run cargo for the filter");
    if !status.success() {
        panic!(
            "building the kproxy filter for wasm32-wasip1 failed; run `rustup target add wasm32-wasip1` \
             or set KPROXY_FILTER_WASM to a prebuilt kproxy_filter.wasm"
        );
    }
    copy(
        &target_dir.join("wasm32-wasip1/wasm/kproxy_filter.wasm"),
        &dest,
    );
}

fn copy(from: &Path, to: &Path) {
    if let Err(e) = std::fs::copy(from, to) {
        panic!("cannot copy the filter from {}: {e}", from.display());
    }
}
