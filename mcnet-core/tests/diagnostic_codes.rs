//! The diagnostic codes in the docs are the codes in [`Code`].
//!
//! `docs/diagnostics.md` is generated from [`Code::ALL`]; refresh it with
//! `MCNET_UPDATE_DOCS=1 cargo test -p mcnet-core --test diagnostic_codes`.
//! Every code another doc mentions must exist.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use mcnet_core::diag::Code;

fn docs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs")
}

fn generated_table() -> String {
    let mut out = String::from(
        "# Diagnostic codes\n\n\
         Every code that validation, the policy reader, the linter, rendering\n\
         and the cost model report, as `mcnet_core::diag::Code`. This file is\n\
         generated from that enum by `mcnet-core/tests/diagnostic_codes.rs`.\n\n\
         | code | meaning |\n|---|---|\n",
    );
    for code in Code::ALL {
        out.push_str(&format!("| `{code}` | {} |\n", code.description()));
    }
    out
}

#[test]
fn the_code_table_is_generated_from_the_enum() {
    let path = docs_dir().join("diagnostics.md");
    let want = generated_table();
    if std::env::var_os("MCNET_UPDATE_DOCS").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "{} is out of date; rerun with MCNET_UPDATE_DOCS=1",
        path.display()
    );
}

#[test]
fn every_code_the_docs_mention_exists() {
    let areas: BTreeSet<&str> = Code::ALL.iter().map(|c| c.area()).collect();
    let known: BTreeSet<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
    let mut mentioned = 0;
    for entry in std::fs::read_dir(docs_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "md") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        // Codes are written in backticks: `area.name`. A table whose first
        // column is `field` lists fields (`cni.mode`), not codes.
        let mut in_field_table = false;
        let prose = text.lines().filter(|line| {
            if line.starts_with("| field") {
                in_field_table = true;
            } else if !line.starts_with('|') {
                in_field_table = false;
            }
            !in_field_table
        });
        let prose: Vec<&str> = prose.collect();
        let prose = prose.join("\n");
        for quoted in prose.split('`').skip(1).step_by(2) {
            let Some((area, name)) = quoted.split_once('.') else {
                continue;
            };
            let looks_like_code = areas.contains(area)
                && !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if looks_like_code {
                mentioned += 1;
                assert!(
                    known.contains(quoted),
                    "{} mentions `{quoted}`, which is not a diagnostic code",
                    path.display()
                );
            }
        }
    }
    assert!(mentioned > 40, "only {mentioned} codes found in the docs");
}

#[test]
fn codes_round_trip_through_text_and_serde() {
    for code in Code::ALL {
        assert_eq!(code.as_str().parse::<Code>().unwrap(), *code);
        let json = serde_json::to_string(code).unwrap();
        assert_eq!(json, format!("\"{code}\""));
        assert_eq!(serde_json::from_str::<Code>(&json).unwrap(), *code);
        let description = code.description();
        assert!(!description.is_empty() && !description.starts_with(&format!("`{code}`")));
    }
    assert!("cidr.nope".parse::<Code>().is_err());
    assert!(serde_json::from_str::<Code>("\"cidr.nope\"").is_err());
}
