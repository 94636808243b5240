//! The state lock: a second writer waits (or gives up after
//! `--lock-timeout`, naming who holds the lock); readers (`plan`, `drift`)
//! never wait on it and read the last committed state.

use std::time::Duration;

use mcnet_cloud::lock::{StateLock, Wait};

mod common;
use common::mcnet;

const TOPOLOGY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/topologies/adr-003.yaml");

#[test]
fn writers_wait_or_give_up_naming_the_holder_and_readers_never_wait() {
    let dir = std::env::temp_dir().join(format!("mcnet-cli-lock-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let state = dir.to_str().unwrap();
    let held = StateLock::acquire(&dir, "apply", Wait::For(Duration::ZERO), |_| {}).unwrap();
    let apply = |timeout: &str| {
        mcnet(&[
            "apply",
            TOPOLOGY,
            "--provider",
            "sim",
            "--state",
            state,
            "--auto-approve",
            "--lock-timeout",
            timeout,
        ])
    };

    let (code, _, err) = apply("1s");
    assert_ne!(code, 0, "{err}");
    assert!(
        err.contains("held by `mcnet apply` (pid") && err.contains("gave up"),
        "{err}"
    );
    // Readers do not wait on the writer's lock.
    for cmd in ["plan", "drift"] {
        let (code, out, err) = mcnet(&[cmd, TOPOLOGY, "--provider", "sim", "--state", state]);
        assert!(code == 0 || (cmd == "drift" && code == 1), "{cmd}: {err}");
        assert!(!err.contains("held by"), "{cmd} waited: {err}");
        assert!(!out.is_empty(), "{cmd}");
    }
    // Out-of-range waits are refused, naming the flag.
    let (code, _, err) = apply("99999999999999999999h");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--lock-timeout"), "{err}");

    drop(held);
    let (code, _, err) = apply("0");
    assert_eq!(code, 0, "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
