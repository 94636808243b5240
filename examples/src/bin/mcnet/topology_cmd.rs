//! `mcnet validate | paths | ipam | diagram | demo`.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use mcnet_core::topology::{self, diagram, ipam, paths, Topology};
use mcnet_core::Report;

use crate::output::{print_json, read, write_atomic, Format};

pub fn validate(file: &str, format: Format) -> anyhow::Result<ExitCode> {
    let text = read(file)?;
    let report = topology::validate_str(&text);
    match format {
        Format::Json => print_json(&report)?,
        Format::Text => print_report(file, &report),
    }
    Ok(ExitCode::from(if report.valid { 0 } else { 1 }))
}

fn print_report(file: &str, report: &Report) {
    let verdict = if report.valid { "valid" } else { "INVALID" };
    println!(
        "{file}: {verdict} ({} error{}, {} warning{})",
        report.errors.len(),
        if report.errors.len() == 1 { "" } else { "s" },
        report.warnings.len(),
        if report.warnings.len() == 1 { "" } else { "s" }
    );
    for (kind, list) in [("error", &report.errors), ("warning", &report.warnings)] {
        for d in list {
            if d.path.is_empty() {
                println!("  {kind}[{}]", d.code);
            } else {
                println!("  {kind}[{}] at {}", d.code, d.path);
            }
            println!("      {}", d.message);
        }
    }
}

/// Parses, validates and allocates; prints the errors and returns `None` when invalid.
pub fn load_valid(file: &str) -> anyhow::Result<Option<Topology>> {
    let text = read(file)?;
    let report = topology::validate_str(&text);
    if !report.valid {
        eprintln!("{file} is invalid; run `mcnet validate {file}` for details:");
        for d in &report.errors {
            eprintln!("  {d}");
        }
        return Ok(None);
    }
    let t = topology::parse(&text)
        .topology
        .context("parsed once already")?;
    let t = ipam::allocate(&t).map_err(|p| anyhow::anyhow!("allocation failed: {}", p[0]))?;
    Ok(Some(t))
}

pub fn paths(file: &str, fail: &[String], format: Format) -> anyhow::Result<ExitCode> {
    let Some(t) = load_valid(file)? else {
        return Ok(ExitCode::from(1));
    };
    let mut failed = Vec::new();
    for f in fail {
        match paths::Component::resolve(&t, f) {
            Ok(c) => failed.push(c),
            Err(e) => {
                eprintln!("error: --fail {f}: {e}");
                return Ok(ExitCode::from(2));
            }
        }
    }
    let report = paths::analyze(&t, &failed);
    match format {
        Format::Json => print_json(&report)?,
        Format::Text => print_paths(&t, &report),
    }
    Ok(ExitCode::SUCCESS)
}

/// What a move from one path to another does to the per-GB egress price
/// of the pair's first network (the embedded price table).
fn egress_change(t: &Topology, network: &str, was: &paths::Path, now: &paths::Path) -> String {
    let prices = mcnet_core::cost::Prices::embedded();
    let Some(cloud) = t
        .network(network)
        .and_then(|n| t.spec.providers.iter().find(|p| p.name == n.provider))
        .map(|p| format!("{:?}", p.kind).to_ascii_lowercase())
    else {
        return String::new();
    };
    let per_gb = |p: &paths::Path| {
        let table = match p.via.as_str() {
            "interconnect" => &prices.interconnect_egress_per_gb,
            "internet-vpn" => &prices.internet_egress_per_gb,
            "peering" => &prices.peering_per_gb,
            _ => return None,
        };
        table.get(&cloud).copied()
    };
    match (per_gb(was), per_gb(now)) {
        (Some(a), Some(b)) => format!(
            "; egress from {network} {b:.3} {}/GB, was {a:.3}",
            prices.currency
        ),
        _ => String::new(),
    }
}

fn print_paths(t: &Topology, r: &paths::PathReport) {
    println!("Path analysis of `{}`", t.metadata.name);
    if !r.failed.is_empty() {
        println!(
            "Failed: {}",
            r.failed
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    println!();
    println!("Networks ({} pairs):", r.networks.len());
    let w = r
        .networks
        .iter()
        .map(|p| p.from.len() + p.to.len() + 3)
        .max()
        .unwrap_or(0);
    for p in &r.networks {
        let pair = format!("{} ↔ {}", p.from, p.to);
        let status = if p.reachable {
            format!(
                "reachable, {} path{}",
                p.paths.len(),
                if p.paths.len() == 1 { "" } else { "s" }
            )
        } else if p.lost.is_empty() {
            "no path".to_string()
        } else {
            "DISCONNECTED".to_string()
        };
        println!("  {pair:<w$}  {status}");
        for path in &p.paths {
            println!("  {:<w$}    {path}", "");
        }
        for path in &p.lost {
            println!("  {:<w$}    lost: {path}", "");
        }
        if let (Some(now), Some(was)) = (&p.active, &p.moved_from) {
            println!(
                "  {:<w$}    traffic moves to {} (est. RTT {} ms, was {} ms over {}){}",
                "",
                now.path.via,
                now.rtt_ms,
                was.rtt_ms,
                was.path.via,
                egress_change(t, &p.from, &was.path, &now.path)
            );
        }
    }
    if !r.clusters.is_empty() {
        println!();
        println!("Clusters ({} pairs):", r.clusters.len());
        for p in &r.clusters {
            let (a, b) = (t.cluster(&p.from), t.cluster(&p.to));
            let how = match (a, b) {
                (Some(a), Some(b)) if a.network == b.network => {
                    format!("same network {}", a.network)
                }
                (Some(a), Some(b)) => format!("via {} ↔ {}", a.network, b.network),
                _ => String::new(),
            };
            let status = if p.reachable {
                "reachable"
            } else {
                "UNREACHABLE"
            };
            println!("  {} ↔ {}  {status} ({how})", p.from, p.to);
        }
    }
    println!();
    if !r.failed.is_empty() {
        if r.disconnected.is_empty() {
            println!(
                "Connectivity lost: none ({} pair(s) lost redundancy)",
                r.degraded.len()
            );
        } else {
            println!("Connectivity lost ({} pair(s)):", r.disconnected.len());
            for (a, b) in &r.disconnected {
                println!("  {a} ↔ {b}");
            }
        }
        for (a, b) in &r.degraded {
            println!("  degraded: {a} ↔ {b}");
        }
    }
    if r.single_points_of_failure.is_empty() {
        println!("Single points of failure: none");
    } else {
        println!(
            "Single points of failure: {}",
            r.single_points_of_failure
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}

pub fn ipam(file: &str, format: Format) -> anyhow::Result<ExitCode> {
    let text = read(file)?;
    let parsed = topology::parse(&text);
    let Some(t) = parsed.topology else {
        for d in &parsed.problems {
            eprintln!("error: {d}");
        }
        return Ok(ExitCode::from(1));
    };
    match ipam::allocate(&t) {
        Ok(t) => {
            match format {
                Format::Json => print_json(&t)?,
                Format::Text => print!("{}", t.to_yaml()?),
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(problems) => {
            for d in &problems {
                eprintln!("error: {d}");
            }
            Ok(ExitCode::from(1))
        }
    }
}

pub fn diagram(file: &str, out: &str) -> anyhow::Result<ExitCode> {
    let Some(t) = load_valid(file)? else {
        return Ok(ExitCode::from(1));
    };
    let d = diagram::render_svg(&t);
    write_atomic(out, d.svg.as_bytes())?;
    eprintln!("wrote {out} ({:.0}×{:.0})", d.size.0, d.size.1);
    Ok(ExitCode::SUCCESS)
}

pub fn demo(topology_file: &str, out_dir: &str) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let step = |n: u32, what: &str| eprintln!("\n[{n}/10] {what}");
    step(1, &format!("validate {topology_file}"));
    let code = validate(topology_file, Format::Text)?;
    if code != ExitCode::SUCCESS {
        return Ok(code);
    }
    step(2, "path analysis, then the same with the MCR failed");
    paths(topology_file, &[], Format::Text)?;
    let t = load_valid(topology_file)?.context("validated above")?;
    if let Some(r) = t.spec.interconnect.routers.first() {
        println!();
        paths(topology_file, &[format!("mcr/{}", r.name)], Format::Text)?;
    }
    step(3, "diagram");
    let svg = format!("{out_dir}/{}.svg", t.metadata.name);
    diagram(topology_file, &svg)?;
    step(
        4,
        "render every cluster's manifests (Cilium, ClusterMesh, zero trust, Linkerd, resilience, ingress, monitoring) and the monitoring network's stack",
    );
    let rendered = format!("{out_dir}/{}-clusters", t.metadata.name);
    crate::render_cmd::render(&crate::render_cmd::RenderArgs {
        file: topology_file.to_string(),
        out: rendered.clone(),
        max_connected_clusters: 255,
        trust_domain: "cluster.local".into(),
        monitoring_url: None,
        alertmanager_url: None,
        log_store_url: None,
        operator_cluster: None,
        operator_image: None,
        output: Format::Text,
    })?;
    step(
        5,
        "plan and apply on the embedded simulated cloud (AWS, Azure, GCP, the MCR and VXCs), re-plan, drift and repair",
    );
    crate::cloud_cmd::demo(topology_file, &format!("{out_dir}/state"))?;
    step(
        6,
        "monthly network cost with a sample traffic matrix, and what-ifs",
    );
    let traffic = "examples/traffic/adr-003.yaml";
    if std::path::Path::new(traffic).exists() {
        crate::cost_cmd::run(&crate::cost_cmd::CostArgs {
            file: topology_file.to_string(),
            traffic: traffic.into(),
            prices: None,
            compression: 0.6,
            cache_hit: 0.3,
            metrics_file: None,
            output: Format::Text,
        })?;
    }
    step(
        7,
        "zero-trust policy of the production namespace (default deny + the ADR's L7 rule)",
    );
    let manifests = "examples/policies/adr-003-production.yaml";
    if std::path::Path::new(manifests).exists() {
        crate::policy_cmd::eval_files(
            &[manifests.to_string()],
            "examples/policies/adr-003-queries.json",
        )?;
    }
    step(
        8,
        "reachability across every layer: policy, CIDRs, cloud routes and BGP, ClusterMesh, mesh, L7",
    );
    if std::path::Path::new(manifests).exists() {
        crate::reach_cmd::demo(topology_file, manifests)?;
    }
    step(9, "the same policy enforced in the kernel (eBPF) and the L7 proxy, with real traffic in a network-namespace lab");
    if mcnet_datapath::is_root() && !mcnet_datapath::EBPF_OBJECT.is_empty() {
        crate::datapath_cmd::demo(manifests)?;
    } else {
        eprintln!("skipped: the eBPF datapath needs root");
    }
    step(
        10,
        "the whole topology in network namespaces with real BGP (BIRD): verify reach's predictions, fail the MCR, verify again",
    );
    if mcnet_datapath::is_root() && crate::lab_cmd::have_bird() {
        crate::lab_cmd::demo(topology_file)?;
    } else {
        eprintln!("skipped: the topology lab needs root and BIRD 2");
    }
    eprintln!(
        "\ndemo finished in {:.1?}; picture: {svg}; manifests: {rendered}/",
        started.elapsed()
    );
    Ok(ExitCode::SUCCESS)
}
