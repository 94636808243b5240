//! Inputs have limits: devices, oversized files and documents nested
//! deeper than any mcnet input are refused before parsing, naming the file.

mod common;
use common::{mcnet, temp};

#[test]
fn devices_and_oversized_files_exit_2_naming_the_file() {
    let (code, _, err) = mcnet(&["validate", "/dev/zero"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("/dev/zero") && err.contains("not a regular file"),
        "{err}"
    );
    let big = "a: 1\n".repeat((mcnet_core::input::MAX_INPUT_BYTES / 5 + 2) as usize);
    let path = temp("big.yaml", &big);
    for args in [
        vec!["validate", path.as_str()],
        vec!["policy", "lint", "--manifests", path.as_str()],
    ] {
        let (code, _, err) = mcnet(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains("larger than the 16777216 bytes"), "{err}");
    }
}

#[test]
fn deeply_nested_documents_are_refused_before_parsing() {
    let flow = temp("deep-flow.yaml", &"[".repeat(100_000));
    let block: String = (0..1000)
        .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
        .collect();
    let block = temp("deep-block.yaml", &block);
    for f in [&flow, &block] {
        for args in [
            vec!["validate", f.as_str()],
            vec!["policy", "lint", "--manifests", f.as_str()],
            vec!["paths", f.as_str()],
        ] {
            let (code, _, err) = mcnet(&args);
            assert_eq!(code, 2, "{args:?}: {err}");
            assert!(err.contains("input.too-deep"), "{args:?}: {err}");
        }
    }
    // The library refuses the same text with a diagnostic, too.
    let text = "[".repeat(100_000);
    let report = mcnet_core::topology::validate_str(&text);
    assert!(!report.valid);
    assert_eq!(report.errors[0].code, "input.too-deep");
}
