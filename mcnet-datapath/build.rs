//! Provides the kernel programs' object in `OUT_DIR/mcnet.bpf.o` for
//! `include_bytes_aligned!`, in one of three ways:
//!
//! - by default, the object that ships in this crate (`ebpf/mcnet.bpf.o`),
//!   so that a dependent crate builds on stable Rust with no nightly and no
//!   bpf-linker;
//! - with the `build-ebpf` feature, from the sources in `../mcnet-ebpf`
//!   (this workspace enables it), for `bpfel-unknown-none` with the nightly
//!   toolchain, `-Z build-std=core` and bpf-linker. Paths are remapped
//!   (`--remap-path-prefix`) so that the object is the same bytes whatever
//!   directory the workspace, cargo's registry or the toolchain sit in; a
//!   test checks that the shipped object is exactly what the sources build;
//! - with `MCNET_EBPF_STUB=1`, an empty object, so that `cargo check` and
//!   `cargo clippy` work without bpf-linker (loading it fails with a clear
//!   error at run time).

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let object = out_dir.join("mcnet.bpf.o");
    let shipped = manifest_dir.join("ebpf/mcnet.bpf.o");
    println!("cargo:rustc-check-cfg=cfg(mcnet_ebpf_stub)");
    println!("cargo:rustc-check-cfg=cfg(mcnet_ebpf_from_source)");
    println!("cargo:rerun-if-env-changed=MCNET_EBPF_STUB");

    if env::var_os("MCNET_EBPF_STUB").is_some_and(|v| !v.is_empty() && v != "0") {
        println!("cargo:warning=MCNET_EBPF_STUB is set: embedding an empty eBPF object; loading it will fail");
        std::fs::write(&object, b"").expect("write stub object");
        println!("cargo:rustc-cfg=mcnet_ebpf_stub");
        return;
    }
    if env::var_os("CARGO_FEATURE_BUILD_EBPF").is_none() {
        println!("cargo:rerun-if-changed={}", shipped.display());
        std::fs::copy(&shipped, &object).unwrap_or_else(|e| {
            panic!(
                "the shipped eBPF object {} cannot be read ({e}); build it from source with the `build-ebpf` feature",
                shipped.display()
            )
        });
        return;
    }
    println!("cargo:rustc-cfg=mcnet_ebpf_from_source");
    let workspace = manifest_dir
        .parent()
        .expect("with `build-ebpf`, mcnet-datapath sits in its workspace beside mcnet-ebpf");
    let ebpf_dir = workspace.join("mcnet-ebpf");
    for dir in [ebpf_dir.join("src"), ebpf_dir.join("mcnet-ebpf-common/src")] {
        rerun_for_dir(&dir);
    }
    println!(
        "cargo:rerun-if-changed={}",
        ebpf_dir.join("Cargo.toml").display()
    );
    build_from_source(workspace, &out_dir.join("ebpf-target"), &object);
}

/// The rustflags of the eBPF build: BTF for the loader, and every absolute
/// path remapped, so that the object does not depend on where things sit.
fn rustflags(workspace: &Path) -> String {
    let mut flags = vec![
        "-Cdebuginfo=2".to_string(),
        "-Clink-arg=--btf".to_string(),
        format!("--remap-path-prefix={}=/mcnet", workspace.display()),
    ];
    let home = env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    if let Some(h) = home {
        flags.push(format!("--remap-path-prefix={}=/cargo", h.display()));
    }
    let sysroot = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    if let Some(s) = sysroot.filter(|s| !s.is_empty()) {
        flags.push(format!("--remap-path-prefix={s}=/rust"));
    }
    flags.join("\u{1f}")
}

fn build_from_source(workspace: &Path, target_dir: &Path, object: &Path) {
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
    .arg(target_dir)
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
    cmd.env("CARGO_ENCODED_RUSTFLAGS", rustflags(workspace));
    let status = cmd.status().unwrap_or_else(|e| {
        panic!("cannot run `rustup run nightly cargo` to build mcnet-ebpf: {e}; run scripts/setup.sh, build without the `build-ebpf` feature to use the shipped object, or set MCNET_EBPF_STUB=1 to check without eBPF")
    });
    if !status.success() {
        panic!(
            "building mcnet-ebpf failed ({status}); it needs the nightly toolchain with rust-src and bpf-linker 0.10.0 \
             (scripts/setup.sh installs both); without the `build-ebpf` feature the shipped object is used"
        );
    }
    let built = target_dir.join("bpfel-unknown-none/release/mcnet-ebpf");
    std::fs::copy(&built, object)
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
