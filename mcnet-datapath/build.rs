//! Builds the kernel programs in `mcnet-ebpf` for `bpfel-unknown-none` with
//! the nightly toolchain, `-Z build-std=core` and bpf-linker, and leaves the
//! object in `OUT_DIR/mcnet.bpf.o` for `include_bytes_aligned!`.
//!
//! Set `MCNET_EBPF_STUB=1` to skip that and embed an empty object, so that
//! `cargo check` and `cargo clippy` work on a machine without bpf-linker.
//! Loading a stub fails with a clear error at run time.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let workspace = manifest_dir
        .parent()
        .expect("mcnet-datapath sits in the workspace");
    let ebpf_dir = workspace.join("mcnet-ebpf");
    let object = out_dir.join("mcnet.bpf.o");

    println!("cargo:rerun-if-env-changed=MCNET_EBPF_STUB");
    for dir in [ebpf_dir.join("src"), ebpf_dir.join("mcnet-ebpf-common/src")] {
        rerun_for_dir(&dir);
    }
    println!(
        "cargo:rerun-if-changed={}",
        ebpf_dir.join("Cargo.toml").display()
    );

    if env::var_os("MCNET_EBPF_STUB").is_some_and(|v| !v.is_empty() && v != "0") {
        println!("cargo:warning=MCNET_EBPF_STUB is set: embedding an empty eBPF object; loading it will fail");
        std::fs::write(&object, b"").expect("write stub object");
        println!("cargo:rustc-cfg=mcnet_ebpf_stub");
        println!("cargo:rustc-check-cfg=cfg(mcnet_ebpf_stub)");
        return;
    }
    println!("cargo:rustc-check-cfg=cfg(mcnet_ebpf_stub)");

    let target_dir = out_dir.join("ebpf-target");
    let mut cmd = Command::new("rustup");
    cmd.args([
        "run",
        "nightly",
        "cargo",
        "build",
        "--package",
        "mcnet-ebpf",
        "--bin",
        "mcnet-ebpf",
    ])
    .args([
        "--release",
        "--target",
        "bpfel-unknown-none",
        "-Z",
        "build-std=core",
    ])
    .arg("--target-dir")
    .arg(&target_dir)
    .current_dir(workspace);
    // The outer build's settings must not leak into the nested nightly one.
    for var in [
        "RUSTC",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTDOC",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "RUSTUP_TOOLCHAIN",
        "CARGO",
    ] {
        cmd.env_remove(var);
    }
    cmd.env(
        "CARGO_ENCODED_RUSTFLAGS",
        "-Cdebuginfo=2\u{1f}-Clink-arg=--btf",
    );
    let status = cmd.status().unwrap_or_else(|e| {
        panic!("cannot run `rustup run nightly cargo` to build mcnet-ebpf: {e}; run scripts/setup.sh, or set MCNET_EBPF_STUB=1 to check without eBPF")
    });
    if !status.success() {
        panic!(
            "building mcnet-ebpf failed ({status}); it needs the nightly toolchain with rust-src and bpf-linker 0.10.0 \
             (scripts/setup.sh installs both), or set MCNET_EBPF_STUB=1 to check without eBPF"
        );
    }
    let built = target_dir.join("bpfel-unknown-none/release/mcnet-ebpf");
    std::fs::copy(&built, &object)
        .unwrap_or_else(|e| panic!("copy {} to {}: {e}", built.display(), object.display()));
}

fn rerun_for_dir(dir: &Path) {
    println!("cargo:rerun-if-changed={}", dir.display());
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                rerun_for_dir(&p);
            } else {
                println!("cargo:rerun-if-changed={}", p.display());
            }
        }
    }
}
