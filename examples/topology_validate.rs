//! Validates a topology file with the library and prints the report.
//!
//! `cargo run -p mcnet-examples --example topology_validate -- examples/topologies/adr-003.yaml`

fn main() -> anyhow::Result<()> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "examples/topologies/adr-003.yaml".into());
    let text = std::fs::read_to_string(&path)?;
    let report = mcnet_core::topology::validate_str(&text);
    println!("{path}: valid = {}", report.valid);
    for d in report.errors.iter().chain(&report.warnings) {
        println!("  {d}");
    }
    Ok(())
}
