//! The cost model against a hand computation on adr-003.

use mcnet_core::cost::{estimate, Optimisations, Prices, Traffic};
use mcnet_core::topology::{ipam, Topology};

const PRICES: &str = r#"
source: test table
date: "2026-11-27"
currency: USD
internet_egress_per_gb: {aws: 0.10, azure: 0.08, gcp: 0.12}
interconnect_egress_per_gb: {aws: 0.02, azure: 0.03, gcp: 0.04}
inter_region_per_gb: {aws: 0.02, azure: 0.02, gcp: 0.02}
peering_per_gb: {aws: 0.01, azure: 0.01, gcp: 0.01}
vpn_per_hour: {aws: 0.05, azure: 0.20, gcp: 0.06}
mcr_monthly: {10000: 1000}
vxc_monthly: {1000: 200, 2000: 300, 5000: 500, 10000: 800}
term_discount: {1: 0.0, 12: 0.10}
"#;

const TRAFFIC: &str = r#"
flows:
  - {from: eks-prod, to: aks-prod, gb_per_month: 1000}
  - {from: aks-prod, to: gke-prod, gb_per_month: 500}
  - {from: gke-prod, to: internet, gb_per_month: 2000}
  - {from: eks-prod, to: eks-prod, gb_per_month: 100}
"#;

fn adr() -> Topology {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/topologies/adr-003.yaml"
    ))
    .unwrap();
    ipam::allocate(&Topology::from_str_strict(&text).unwrap()).unwrap()
}

#[test]
fn adr_003_costs_what_a_hand_computation_says() {
    let e = estimate(
        &adr(),
        &Traffic::from_yaml(TRAFFIC).unwrap(),
        &Prices::from_yaml(PRICES).unwrap(),
        &Optimisations::default(),
    )
    .unwrap();
    // Transfer: AWS→Azure over the MCR at AWS's interconnect rate, Azure→GCP
    // at Azure's, GCP to the internet at GCP's internet rate, and nothing
    // inside one VPC: 1000×0.02 + 500×0.03 + 2000×0.12 + 0 = 275.
    let paths: Vec<(&str, f64)> = e
        .flows
        .iter()
        .map(|f| (f.path.as_str(), f.monthly))
        .collect();
    assert_eq!(
        paths,
        [
            ("interconnect", 20.0),
            ("interconnect", 15.0),
            ("internet", 240.0),
            ("same-network", 0.0)
        ]
    );
    assert_eq!(e.transfer_monthly, 275.0);
    // Per-flow alternatives: the VXC where the MCR reaches both ends, a
    // peering only inside one cloud, the internet always.
    assert_eq!(e.flows[0].via_vxc, Some(20.0));
    assert_eq!(e.flows[0].via_peering, None, "AWS and Azure cannot peer");
    assert_eq!(e.flows[0].via_internet_vpn, 100.0);
    assert_eq!(e.flows[2].via_vxc, None, "to the internet");
    assert_eq!(e.flows[3].via_vxc, None, "inside one VPC");
    // Fixed: the 10 Gbps MCR (1000) and VXCs of 5000, 2000 and 2000 Mbps
    // (500, 300, 300), all on a 12-month term (10% off): 0.9 × 2100 = 1890.
    assert_eq!(e.fixed_monthly, 1890.0);
    assert_eq!(e.total_monthly, 2165.0);
    // Internet VPN instead: every cross-network byte at internet rates
    // (1000×0.10 + 500×0.08 + 2000×0.12 = 380) plus a VPN connection for
    // each cluster pair, paid at both ends for 730 h:
    // (0.05+0.20) + (0.20+0.06) = 0.51 × 730 = 372.30.
    assert_eq!(e.what_if["internet VPN instead of the interconnect"], 752.3);
    // Compression to 60% and 30% cache hits on the 35 of cross-cloud transfer:
    // 35 × 0.6 × 0.7 = 14.70, so 275 − 35 + 14.70 + 1890 = 2144.70.
    assert_eq!(
        e.what_if["with compression 40% smaller and 30% cache hits on cross-cloud traffic"],
        2144.7
    );
    assert_eq!(e.what_if["current"], 2165.0);
}

#[test]
fn bad_input_names_the_field() {
    let prices = Prices::from_yaml(PRICES).unwrap();
    let t = adr();
    let bad =
        Traffic::from_yaml("flows: [{from: eks-prod, to: nowhere, gb_per_month: 1}]").unwrap();
    let err = estimate(&t, &bad, &prices, &Optimisations::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("flows[0].to") && err.contains("nowhere"),
        "{err}"
    );
    let err = Traffic::from_yaml("flows: [{from: a, to: b, gb: 1}]")
        .unwrap_err()
        .to_string();
    assert!(err.contains("gb"), "{err}");
    let err = Prices::from_yaml("source: x").unwrap_err().to_string();
    assert!(err.contains("price table"), "{err}");
    // The embedded table parses and names its source and date.
    let p = Prices::embedded();
    assert!(p.source.contains("list prices") && p.date.starts_with("2026"));
}
