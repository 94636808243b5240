//! Shared by the CLI tests: running `mcnet` and writing input files.

#![allow(dead_code)]

use std::process::Command;

/// Runs `mcnet` with `args`: (exit code, stdout, stderr).
pub fn mcnet(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mcnet"))
        .args(args)
        .output()
        .expect("run mcnet");
    (
        out.status.code().expect("exited"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Writes `text` to a file `name` in this test process's temporary directory.
pub fn temp(name: &str, text: &str) -> String {
    let dir = std::env::temp_dir().join(format!("mcnet-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_string_lossy().into_owned()
}
