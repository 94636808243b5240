//! mcnet as a platform team uses it: a crate outside this workspace that
//! depends on mcnet-core and mcnet-datapath by path (as it would from a
//! registry) builds with stable Rust alone (no nightly, no bpf-linker on
//! PATH), validates the ADR-003 topology, compiles its policy and, as
//! root, loads the eBPF object that mcnet-datapath ships.

use std::path::{Path, PathBuf};
use std::process::Command;

const MAIN: &str = r#"
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let topology = std::fs::read_to_string(&args[1]).expect("topology");
    let report = mcnet_core::topology::validate_str(&topology);
    assert!(report.valid, "{:?}", report.errors);
    let manifests = std::fs::read_to_string(&args[2]).expect("manifests");
    let m = mcnet_core::policy::Manifests::parse_str(&manifests).expect("policy");
    let c = mcnet_core::policy::Compiled::new(&m);
    println!("valid; {} pod identities", c.pod_identity_count());
    assert!(!mcnet_datapath::EBPF_FROM_SOURCE, "a dependent uses the shipped object");
    if args.get(3).is_some_and(|a| a == "--load") {
        let dp = mcnet_datapath::Datapath::load().expect("load the shipped object");
        drop(dp);
        println!("loaded");
    }
}
"#;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

#[test]
fn a_crate_outside_the_workspace_builds_on_stable_and_loads_the_shipped_object() {
    let ws = workspace();
    let dir = std::env::temp_dir().join(format!("mcnet-as-dependency-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            r#"[package]
name = "platform"
version = "0.1.0"
edition = "2021"
publish = false

[dependencies]
mcnet-core = {{ path = "{ws}/mcnet-core" }}
mcnet-datapath = {{ path = "{ws}/mcnet-datapath" }}
"#,
            ws = ws.display()
        ),
    )
    .unwrap();
    std::fs::write(dir.join("src/main.rs"), MAIN).unwrap();
    // The workspace's lock file, so that the same versions are used.
    std::fs::copy(ws.join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();

    // Stable cargo and rustc, and the system's tools: no ~/.cargo/bin, so
    // no bpf-linker and no rustup proxy that could reach nightly.
    let cargo = Command::new("rustup")
        .args(["which", "--toolchain", "stable", "cargo"])
        .output()
        .expect("rustup");
    assert!(cargo.status.success(), "no stable toolchain");
    let cargo = PathBuf::from(String::from_utf8(cargo.stdout).unwrap().trim());
    let bin = cargo.parent().unwrap();
    let path = format!("{}:/usr/local/bin:/usr/bin:/bin", bin.display());
    let which = Command::new("sh")
        .args(["-c", "command -v bpf-linker"])
        .env("PATH", &path)
        .output()
        .unwrap();
    assert!(!which.status.success(), "bpf-linker is on the test's PATH");

    let target = ws.join("target/as-dependency");
    let mut build = Command::new(&cargo);
    build
        .args(["build", "--quiet"])
        .current_dir(&dir)
        .env_clear()
        .env("PATH", &path)
        .env("CARGO_TARGET_DIR", &target);
    for keep in ["HOME", "CARGO_HOME", "RUSTUP_HOME", "TMPDIR"] {
        if let Some(v) = std::env::var_os(keep) {
            build.env(keep, v);
        }
    }
    let out = build.output().expect("cargo build");
    assert!(
        out.status.success(),
        "the dependent crate does not build:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let exe = target.join("debug/platform");
    let mut run = Command::new(&exe);
    run.arg(ws.join("examples/topologies/adr-003.yaml"))
        .arg(ws.join("examples/policies/adr-003-production.yaml"));
    let root = mcnet_datapath::is_root();
    if root {
        run.arg("--load");
    }
    let out = run.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("valid;"), "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
    if root {
        assert!(stdout.contains("loaded"), "{stdout}");
    } else {
        mcnet_core::testing::skip("loading the shipped eBPF object needs root");
    }
}
