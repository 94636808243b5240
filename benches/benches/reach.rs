//! What the cross-layer proof costs, in one run:
//!
//! - `reach --matrix` (the library: `Model::new` and `Model::matrix`) for a
//!   synthetic topology of 20 clusters (a redundant MCR pair, peerings,
//!   ClusterMesh) and 2,000 pods (100 per cluster, with a default deny,
//!   allows and a Cilium L7 policy per namespace), every ordered pod pair on
//!   every port;
//! - against the per-layer tools run one after another on the same input,
//!   as someone without `reach` would: each cluster's policy matrix (`mcnet
//!   policy matrix`: compile, then every identity pair on every port), and
//!   the network paths between every pair of networks (`mcnet paths`).
//!   These answer less (no layer sees another), so the ratio is what
//!   joining the layers costs;
//! - as root with BIRD 2: how long `lab up` takes for adr-003 (namespaces,
//!   links, BIRD, until every BGP session is established), and how long BGP
//!   takes to converge after the MCR fails (until no network router has a
//!   route learnt over the interconnect) and after it comes back.
//!
//! `MCNET_REACH_PODS` (default 100) sets the pods per cluster. Without
//! `--bench` (as `cargo test` runs it) it does a small smoke run.

use std::time::{Duration, Instant};

use mcnet_core::policy::analysis::Matrix as PolicyMatrix;
use mcnet_core::policy::analysis::PortProto;
use mcnet_core::policy::{Compiled, LoadOptions, Manifests, Proto};
use mcnet_core::reach::{Model, Scope};
use mcnet_core::topology::paths::{self, Component};
use mcnet_core::topology::synth::synthetic;
use mcnet_core::topology::Topology;

const CLUSTERS: usize = 20;

fn manifests(pods_per_cluster: usize) -> String {
    // 5 namespaces × 5 apps × replicas.
    let replicas = pods_per_cluster.div_ceil(25).max(1);
    mcnet_benches::synthetic_cluster(5, 5, replicas)
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let t0 = Instant::now();
    let v = f();
    (v, t0.elapsed())
}

/// The per-layer tools, one after another: each cluster's policy matrix,
/// then the paths between every pair of networks.
fn per_layer(t: &Topology, texts: &[(String, String)]) -> (usize, usize) {
    let ports = [
        PortProto {
            port: 8080,
            proto: Proto::Tcp,
        },
        PortProto {
            port: 9090,
            proto: Proto::Tcp,
        },
    ];
    let mut cells = 0;
    for (cluster, text) in texts {
        let options = LoadOptions {
            local_cluster: cluster.clone(),
            ..LoadOptions::default()
        };
        let m = Manifests::load_with([("bench.yaml", text.as_str())], options).expect("loads");
        let c = Compiled::new(&m);
        let matrix = PolicyMatrix::compute(&c, &ports);
        cells += matrix.allowed.iter().map(Vec::len).sum::<usize>();
    }
    let report = paths::analyze(t, &[]);
    (cells, std::hint::black_box(report).networks.len())
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let per_cluster: usize = std::env::var("MCNET_REACH_PODS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if full { 100 } else { 10 });
    let clusters = if full { CLUSTERS } else { 4 };
    let t = synthetic(clusters, clusters);
    let text = manifests(per_cluster);
    let texts: Vec<(String, String)> = t
        .spec
        .clusters
        .iter()
        .map(|c| (c.name.clone(), text.clone()))
        .collect();

    let ((model, matrix), reach) = timed(|| {
        let model = Model::new(
            &t,
            texts
                .iter()
                .map(|(c, x)| (Scope::Cluster(c.clone()), "bench.yaml", x.as_str())),
        )
        .expect("model");
        let matrix = model.matrix(&[]);
        (model, matrix)
    });
    let pods = model.pods().count();
    let ((policy_cells, path_pairs), layers) = timed(|| per_layer(&t, &texts));
    println!(
        "reach --matrix: {clusters} clusters, {pods} pods, {} proofs ({} allowed) in {:.2} s ({:.1} µs a proof)",
        matrix.cells.len(),
        matrix.allowed,
        reach.as_secs_f64(),
        reach.as_secs_f64() * 1e6 / matrix.cells.len().max(1) as f64
    );
    for (layer, n) in &matrix.denied_by_layer {
        println!("  denied at {layer}: {n}");
    }
    println!(
        "per-layer tools one after another: {clusters} policy matrices ({policy_cells} identity-pair cells) and paths between {path_pairs} network pairs in {:.3} s",
        layers.as_secs_f64()
    );
    println!(
        "ratio reach / per-layer: {:.1}× (reach answers every pod pair across every layer; the per-layer tools answer each layer alone)",
        reach.as_secs_f64() / layers.as_secs_f64().max(1e-9)
    );
    // With a failure: the same matrix, the MCR pair's red half down.
    let failed = vec![Component::Router("mcr-red".into())];
    let (m2, with_failure) = timed(|| model.matrix(&failed));
    println!(
        "reach --matrix --fail mcr/mcr-red: {} allowed, in {:.2} s",
        m2.allowed,
        with_failure.as_secs_f64()
    );
    lab(full);
}

#[cfg(target_os = "linux")]
fn lab(full: bool) {
    use mcnet_datapath::toplab::{ManifestSource, TopologyLab};
    let have = |b: &str| {
        std::process::Command::new("sh")
            .args(["-c", &format!("command -v {b}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !mcnet_datapath::is_root() || !have("bird") || !have("birdc") {
        println!("lab: skipped (needs root and BIRD 2)");
        return;
    }
    let text = include_str!("../../examples/topologies/adr-003.yaml");
    let t = mcnet_core::topology::Topology::from_str_strict(text).expect("adr-003");
    let prefix = "bre";
    let _ = TopologyLab::down(prefix);
    let rounds = if full { 3 } else { 1 };
    let mut ups = Vec::new();
    let mut withdraws = Vec::new();
    let mut returns = Vec::new();
    for _ in 0..rounds {
        let (lab, up) = timed(|| {
            let lab = TopologyLab::up(&t, ManifestSource::from_topology(&t), prefix, None)
                .expect("lab up");
            lab.wait_for_bgp(Duration::from_secs(60)).expect("BGP");
            lab
        });
        ups.push(up);
        let mcr = Component::Router("multicloud-mcr".into());
        let learnt = || -> usize {
            lab.speakers
                .iter()
                .filter(|s| s.what.starts_with("router "))
                .map(|s| {
                    let out = std::process::Command::new("ip")
                        .args(["-n", &s.netns, "route", "show", "proto", "bird"])
                        .output()
                        .expect("ip route");
                    String::from_utf8_lossy(&out.stdout).lines().count()
                })
                .sum()
        };
        let before = learnt();
        let poll = |want: &dyn Fn(usize) -> bool| -> Duration {
            let t0 = Instant::now();
            while !want(learnt()) && t0.elapsed() < Duration::from_secs(60) {
                std::thread::sleep(Duration::from_millis(20));
            }
            t0.elapsed()
        };
        lab.fail(&mcr).expect("fail");
        withdraws.push(poll(&|n| n == 0));
        lab.restore(&mcr).expect("restore");
        returns.push(poll(&|n| n >= before));
        TopologyLab::down(prefix).expect("down");
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    println!(
        "lab (adr-003, {rounds} round(s), medians): up with every BGP session established in {:.2} s; after the MCR fails, BGP withdraws every interconnect route in {:.2} s; after it returns, every route is back in {:.2} s",
        median(&mut ups).as_secs_f64(),
        median(&mut withdraws).as_secs_f64(),
        median(&mut returns).as_secs_f64()
    );
}

#[cfg(not(target_os = "linux"))]
fn lab(_: bool) {
    println!("lab: Linux only");
}
