//! No input makes parse + validate panic: random bytes, and random edits of
//! the ADR-003 example (deletions, duplications, swapped values).

use mcnet_core::topology::{ipam, paths, validate_str};
use proptest::prelude::*;

const ADR: &str = include_str!("../../examples/topologies/adr-003.yaml");

fn exercise(text: &str) {
    let report = validate_str(text);
    assert_eq!(report.valid, report.errors.is_empty());
    if let Some(t) = mcnet_core::topology::parse(text).topology {
        let _ = ipam::allocate(&t);
        let _ = paths::analyze(&t, &[]);
        let _ = mcnet_core::topology::diagram::render_svg(&t);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn random_text(s in "\\PC{0,400}") {
        exercise(&s);
    }

    #[test]
    fn truncations(cut in 0usize..ADR.len()) {
        let cut = (0..=cut).rev().find(|&i| ADR.is_char_boundary(i)).unwrap_or(0);
        exercise(&ADR[..cut]);
    }

    #[test]
    fn line_edits(ops in proptest::collection::vec((0usize..200, 0u8..4, "[ -~]{0,12}"), 1..6)) {
        let mut lines: Vec<String> = ADR.lines().map(String::from).collect();
        for (at, op, junk) in ops {
            if lines.is_empty() { break; }
            let i = at % lines.len();
            match op {
                0 => { lines.remove(i); }
                1 => { let l = lines[i].clone(); lines.insert(i, l); }
                2 => { if let Some((k, _)) = lines[i].clone().split_once(": ") { lines[i] = format!("{k}: {junk}"); } }
                _ => { lines[i].push_str(&junk); }
            }
        }
        exercise(&lines.join("\n"));
    }

    #[test]
    fn numeric_values(speed in any::<u32>(), vlan in any::<u16>(), id in any::<u32>(), len in 0u8..=40) {
        let t = ADR
            .replacen("speedMbps: 10000", &format!("speedMbps: {speed}"), 1)
            .replacen("vlan: 100", &format!("vlan: {vlan}"), 1)
            .replacen("id: 1,", &format!("id: {id},"), 1)
            .replacen("prefixLength: 24", &format!("prefixLength: {len}"), 1)
            .replacen("10.12.0.0/16", &format!("10.12.0.0/{len}"), 1);
        exercise(&t);
    }
}
