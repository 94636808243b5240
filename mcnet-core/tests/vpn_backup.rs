//! Internet VPN backups (ADR-003's mitigation for an interconnect failure):
//! validation, path analysis with the MCR failed, `reach` across the
//! tunnels, and the cost model.

use mcnet_core::cost::{estimate, Optimisations, Prices, Traffic};
use mcnet_core::topology::paths::{analyze, Component};
use mcnet_core::topology::{ipam, validate, Topology, VpnBackup};

fn read(name: &str) -> Topology {
    let text = std::fs::read_to_string(format!(
        "{}/../examples/topologies/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    ipam::allocate(&Topology::from_str_strict(&text).unwrap()).unwrap()
}

fn mcr() -> Component {
    Component::Router("multicloud-mcr".into())
}

#[test]
fn the_mcr_failure_moves_cross_cloud_pairs_to_the_vpn_instead_of_losing_them() {
    let plain = analyze(&read("adr-003.yaml"), &[mcr()]);
    let t = read("adr-003-vpn.yaml");
    let r = analyze(&t, &[mcr()]);
    let pair = |r: &mcnet_core::topology::paths::PathReport, a: &str, b: &str| {
        r.networks
            .iter()
            .find(|p| p.from == a && p.to == b)
            .cloned()
            .unwrap()
    };
    for (a, b, vpn) in [
        ("aws-vpc", "azure-vnet", "vpn-aws-azure"),
        ("aws-vpc", "gcp-vpc", "vpn-aws-gcp"),
        ("azure-vnet", "gcp-vpc", "vpn-azure-gcp"),
    ] {
        assert!(!pair(&plain, a, b).reachable, "{a} ↔ {b} without a backup");
        let p = pair(&r, a, b);
        assert!(p.reachable, "{a} ↔ {b}");
        let now = p.active.unwrap();
        assert_eq!(now.path.via, "internet-vpn");
        assert_eq!(now.path.hops, [Component::Vpn(vpn.into())]);
        let was = p.moved_from.unwrap();
        assert_eq!(was.path.via, "interconnect");
        assert!(now.rtt_ms > was.rtt_ms);
    }
    // The clusters' pairs all survive; the monitoring VPC's, with no
    // backup, do not.
    assert!(r.clusters.iter().all(|c| c.reachable));
    assert!(r
        .disconnected
        .contains(&("azure-vnet".to_string(), "monitoring-vpc".to_string())));
    // With everything up, the interconnect is preferred to the VPN.
    let up = analyze(&t, &[]);
    let p = pair(&up, "aws-vpc", "azure-vnet");
    assert_eq!(p.paths.len(), 2);
    assert_eq!(p.active.unwrap().path.via, "interconnect");
    assert!(p.moved_from.is_none());
    // And `vpn/NAME` names it for --fail.
    assert_eq!(
        Component::resolve(&t, "vpn/vpn-aws-gcp").unwrap(),
        Component::Vpn("vpn-aws-gcp".into())
    );
    let both = analyze(&t, &[mcr(), Component::Vpn("vpn-aws-gcp".into())]);
    assert!(!pair(&both, "aws-vpc", "gcp-vpc").reachable);
}

#[test]
fn reach_crosses_the_tunnels_when_the_mcr_is_down() {
    use mcnet_core::reach::{Model, Query, Verdict};
    for (file, verdict) in [
        ("adr-003.yaml", Verdict::Deny),
        ("adr-003-vpn.yaml", Verdict::Allow),
    ] {
        let t = read(file);
        // One pod per workload, as `mcnet reach` makes them without manifests.
        let pods = mcnet_core::reach::topology_pods(&t);
        let m = Model::new(
            &t,
            pods.iter()
                .map(|(scope, name, text)| (scope.clone(), name.as_str(), text.as_str())),
        )
        .unwrap();
        let q = Query::parse(
            &m,
            "eks-prod/production/frontend",
            "gke-prod/production/api-server",
            8080,
        )
        .unwrap()
        .failing(vec![mcr()]);
        let proof = m.prove(&q);
        let hop = proof
            .hops
            .iter()
            .find(|h| h.layer == mcnet_core::reach::Layer::CloudRoute)
            .unwrap();
        assert_eq!(hop.verdict, verdict, "{file}: {}", hop.explanation);
        if verdict == Verdict::Allow {
            assert!(
                hop.explanation.contains("internet-vpn"),
                "{}",
                hop.explanation
            );
            assert!(
                hop.explanation.contains("VPN gateway advertises"),
                "{}",
                hop.explanation
            );
        }
    }
}

#[test]
fn backups_are_validated_and_the_spof_warning_names_the_fix() {
    let t = read("adr-003.yaml");
    let report = validate(&t);
    let spof = report
        .warnings
        .iter()
        .find(|w| w.code.as_str() == "spof.mcr")
        .unwrap();
    assert!(spof.message.contains("spec.vpnBackups"), "{spof}");
    // With backups between the workload clouds, the warning names only a
    // pair still without one.
    let vpn = validate(&read("adr-003-vpn.yaml"));
    assert!(vpn.valid);
    let spof = vpn
        .warnings
        .iter()
        .find(|w| w.code.as_str() == "spof.mcr")
        .unwrap();
    assert!(spof.message.contains("monitoring-vpc"), "{spof}");

    let bad = |networks: &[&str], mbps: u32| {
        let mut t = t.clone();
        t.spec.vpn_backups.push(VpnBackup {
            name: "b".into(),
            networks: networks.iter().map(|n| n.to_string()).collect(),
            bandwidth_mbps: mbps,
        });
        validate(&t).errors
    };
    let same_cloud = bad(&["aws-vpc", "monitoring-vpc"], 1250);
    assert!(
        same_cloud.iter().any(|e| e.code.as_str() == "vpn.endpoints"
            && e.path == "spec.vpnBackups[0].networks"
            && e.message.contains("peer them")),
        "{same_cloud:?}"
    );
    let dangling = bad(&["aws-vpc", "nowhere"], 1250);
    assert!(dangling
        .iter()
        .any(|e| e.code.as_str() == "ref.dangling" && e.path == "spec.vpnBackups[0].networks[1]"));
    assert!(bad(&["aws-vpc"], 1250)
        .iter()
        .any(|e| e.code.as_str() == "vpn.endpoints"));
    assert!(bad(&["aws-vpc", "azure-vnet"], 0)
        .iter()
        .any(|e| e.path == "spec.vpnBackups[0].bandwidthMbps"));
}

#[test]
fn the_cost_model_prices_the_backups_and_an_mcr_outage() {
    let prices = Prices::embedded();
    let traffic = Traffic::from_yaml(
        "flows:\n  - {from: eks-prod, to: aks-prod, gb_per_month: 1000}\n  - {from: gke-prod, to: internet, gb_per_month: 100}\n",
    )
    .unwrap();
    let opt = Optimisations {
        compression_ratio: 0.6,
        cache_hit_rate: 0.3,
    };
    let plain = estimate(&read("adr-003.yaml"), &traffic, &prices, &opt).unwrap();
    let e = estimate(&read("adr-003-vpn.yaml"), &traffic, &prices, &opt).unwrap();
    let hourly = |c: &str| prices.vpn_per_hour[c];
    let item = |name: &str| {
        e.fixed
            .iter()
            .find(|f| f.item.starts_with(&format!("VPN backup {name} ")))
            .unwrap()
            .monthly
    };
    let close = |a: f64, b: f64| (a - b).abs() < 0.01;
    assert!(close(
        item("vpn-aws-azure"),
        (hourly("aws") + hourly("azure")) * 730.0
    ));
    assert!(close(
        item("vpn-aws-gcp"),
        (hourly("aws") + hourly("gcp")) * 730.0
    ));
    let backups: f64 = ["vpn-aws-azure", "vpn-aws-gcp", "vpn-azure-gcp"]
        .iter()
        .map(|n| item(n))
        .sum();
    assert!(close(e.fixed_monthly, plain.fixed_monthly + backups));
    // During an outage the eks→aks flow pays internet egress instead.
    let outage = e.what_if["the MCR down: interconnect flows over the VPN backups"];
    let flow = &e.flows[0];
    assert_eq!(flow.path, "interconnect");
    assert!(close(
        outage,
        e.total_monthly - flow.monthly + flow.via_internet_vpn
    ));
    assert!(!plain
        .what_if
        .contains_key("the MCR down: interconnect flows over the VPN backups"));
}
