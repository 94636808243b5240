//! `mcnet lab up|verify|down`: the topology in network namespaces with
//! real BGP, checked against `mcnet reach`'s predictions.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Subcommand;
use mcnet_core::policy::manifest_files;
use mcnet_core::reach::Verdict;
use mcnet_core::topology::paths::Component;
use mcnet_datapath::toplab::{self, ManifestSource, TopologyLab, Verification};
use serde_json::json;

use crate::output::{print_json, read, Format};
use crate::topology_cmd::load_valid;

#[derive(Subcommand)]
pub enum LabCommand {
    /// Build the topology in network namespaces: a router per network,
    /// nodes and pods per cluster, peerings and transit gateways, the MCR
    /// and each VXC's cloud edge speaking BGP (BIRD 2), addresses mapped
    /// into 198.18.0.0/15 (root).
    Up {
        /// Topology file.
        topology: String,
        /// Pods to build (`[CLUSTER=]FILE`); by default one per workload
        /// of the topology's namespaces, in each cluster they span.
        #[arg(long, value_name = "[CLUSTER=]FILE")]
        manifests: Vec<String>,
        /// Namespace prefix (1–6 lower-case letters or digits).
        #[arg(long, default_value = "mcl")]
        prefix: String,
        /// Do not run the eBPF datapath in the nodes (policy is then not
        /// enforced, and `verify` leaves policy-stopped pairs unchecked).
        #[arg(long)]
        no_datapath: bool,
        /// Output format (the address map and what was built).
        #[arg(long, short = 'O', value_enum, default_value_t = Format::Text)]
        output: Format,
    },
    /// Send real TCP for every pair `mcnet reach --matrix` predicts and
    /// compare; with `--fail`, take the components down, wait for BGP to
    /// withdraw, check again, and bring them back. Exit 1 on a mismatch.
    Verify {
        /// Topology file (the one the lab was built from).
        topology: String,
        /// Fail a component (`mcnet paths --fail` names), or a cluster's
        /// public ingress (`ingress/CLUSTER`, which the GSLB checks).
        /// Repeatable.
        #[arg(long = "fail", value_name = "COMPONENT")]
        fail: Vec<String>,
        /// Namespace prefix.
        #[arg(long, default_value = "mcl")]
        prefix: String,
        /// Output format.
        #[arg(long, short = 'O', value_enum, default_value_t = Format::Text)]
        output: Format,
    },
    /// Remove the lab: its BGP speakers and servers, namespaces, links and
    /// state, even after an interrupted `up`.
    Down {
        /// Namespace prefix.
        #[arg(long, default_value = "mcl")]
        prefix: String,
    },
    /// Serve the lab's interconnect metrics at /metrics (each VXC's BGP
    /// session as its cloud edge sees it, and its bytes); `up` runs it in
    /// the internet namespace for the lab's VictoriaMetrics.
    Exporter {
        /// Namespace prefix.
        #[arg(long, default_value = "mcl")]
        prefix: String,
        /// Address to listen on.
        #[arg(long, value_name = "ADDR")]
        listen: std::net::SocketAddr,
    },
}

pub fn run(cmd: LabCommand) -> anyhow::Result<ExitCode> {
    if !mcnet_datapath::is_root() {
        eprintln!("error: the lab needs root (network namespaces)");
        return Ok(ExitCode::from(2));
    }
    match cmd {
        LabCommand::Up {
            topology,
            manifests,
            prefix,
            no_datapath,
            output,
        } => up(&topology, &manifests, &prefix, !no_datapath, output),
        LabCommand::Verify {
            topology,
            fail,
            prefix,
            output,
        } => verify(&topology, &fail, &prefix, output),
        LabCommand::Down { prefix } => {
            let gone = TopologyLab::down(&prefix)?;
            eprintln!("removed {} namespaces of lab `{prefix}`", gone.len());
            Ok(ExitCode::SUCCESS)
        }
        LabCommand::Exporter { prefix, listen } => exporter(&prefix, listen),
    }
}

/// Refreshes the VXC samples every 500 ms and serves them until SIGTERM.
fn exporter(prefix: &str, listen: std::net::SocketAddr) -> anyhow::Result<ExitCode> {
    use std::sync::{Arc, Mutex};
    let lab = TopologyLab::load(prefix)?;
    anyhow::ensure!(
        lab.monitor.is_some(),
        "lab `{prefix}` runs no monitoring stack"
    );
    let samples = Arc::new(Mutex::new(lab.interconnect()));
    let mut registry = mcnet_core::metrics::Registry::default();
    registry.register_collector(Box::new(toplab::InterconnectCollector(samples.clone())));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let l = tokio::net::TcpListener::bind(listen).await?;
        eprintln!("mcnet lab exporter: serving /metrics on {listen}");
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let lab = lab.clone();
                if let Ok(now) = tokio::task::spawn_blocking(move || lab.interconnect()).await {
                    *samples.lock().unwrap_or_else(|p| p.into_inner()) = now;
                }
            }
        });
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            () = crate::metrics_http::serve(l, Arc::new(registry)) => {}
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        Ok::<_, anyhow::Error>(ExitCode::SUCCESS)
    })
}

fn up(
    file: &str,
    manifests: &[String],
    prefix: &str,
    datapath: bool,
    output: Format,
) -> anyhow::Result<ExitCode> {
    let Some(t) = load_valid(file)? else {
        return Ok(ExitCode::from(1));
    };
    let sources = if manifests.is_empty() {
        ManifestSource::from_topology(&t)
    } else {
        let mut v = Vec::new();
        for m in manifests {
            let (cluster, path) = match m.split_once('=') {
                Some((c, p)) => (Some(c.to_string()), p),
                None => (None, m.as_str()),
            };
            for f in manifest_files(&[Path::new(path)])? {
                let name = f.display().to_string();
                v.push(ManifestSource {
                    cluster: cluster.clone(),
                    text: read(&name)?,
                    name,
                });
            }
        }
        v
    };
    let started = Instant::now();
    eprintln!("building lab `{prefix}` for {}…", t.metadata.name);
    // Each node's datapath is this binary's `datapath enforce`.
    let exe = std::env::current_exe()?;
    let datapath = (datapath && !mcnet_datapath::EBPF_OBJECT.is_empty()).then_some(exe.as_path());
    let lab = TopologyLab::up(&t, sources, prefix, datapath)?;
    eprintln!(
        "{} namespaces, {} pods, {} BGP speakers, {} node datapaths, {} mesh gateways; waiting for BGP…",
        lab.namespaces.len(),
        lab.pods.len(),
        lab.speakers.len(),
        lab.datapaths.len(),
        lab.gateways.len()
    );
    lab.wait_for_bgp(Duration::from_secs(60))?;
    eprintln!("BGP established in {:.1?} after start", started.elapsed());
    match output {
        Format::Json => print_json(&json!({
            "prefix": lab.prefix,
            "topology": lab.topology,
            "map": lab.map,
            "namespaces": lab.namespaces,
            "pods": lab.pods,
            "speakers": lab.speakers,
            "gateways": lab.gateways,
            "monitor": lab.monitor,
            "notes": lab.notes,
        }))?,
        Format::Text => {
            println!("Address map (topology → lab):");
            for b in &lab.map.blocks {
                println!("  {:<18} → {:<16} {}", b.topology, b.lab, b.what);
            }
            println!("Pods:");
            for p in &lab.pods {
                println!(
                    "  {:<40} {:<15} → {:<15} {}",
                    p.key, p.topology, p.lab, p.netns
                );
            }
            println!("BGP speakers:");
            for s in &lab.speakers {
                println!("  {:<28} in {}", s.what, s.netns);
            }
            if !lab.gateways.is_empty() {
                println!(
                    "Mesh gateways (mTLS on the node address :4143, forwarded to the gateway pod):"
                );
                for g in &lab.gateways {
                    println!("  {:<12} {} → {} in {}", g.cluster, g.node, g.lab, g.netns);
                    for (name, to) in &g.routes {
                        println!("    {name:<50} → {to}");
                    }
                }
            }
            if let Some(m) = &lab.monitor {
                println!(
                    "Monitoring (in {}): VictoriaMetrics http://{}:{}, vmalert http://{}:{} with the ADR's rules ({}), interconnect exporter http://{}:{}/metrics",
                    m.netns,
                    m.addr,
                    toplab::VM_PORT,
                    m.addr,
                    toplab::VMALERT_PORT,
                    m.rules.display(),
                    m.addr,
                    toplab::EXPORTER_PORT
                );
            }
            for n in &lab.notes {
                println!("note: {n}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn verify(file: &str, fail: &[String], prefix: &str, output: Format) -> anyhow::Result<ExitCode> {
    let Some(t) = load_valid(file)? else {
        return Ok(ExitCode::from(1));
    };
    let lab = TopologyLab::load(prefix)?;
    anyhow::ensure!(
        lab.topology == t.metadata.name,
        "lab `{prefix}` was built from topology `{}`, not `{}`",
        lab.topology,
        t.metadata.name
    );
    let mut failed = Vec::new();
    let mut ingress_down = Vec::new();
    for f in fail {
        if let Some(c) = f.strip_prefix("ingress/") {
            anyhow::ensure!(
                lab.gslb.as_ref().is_some_and(|g| g.ingress.iter().any(|(n, _)| n == c)),
                "--fail {f}: lab `{prefix}` has no ingress for cluster `{c}` (it has one per cluster when the topology has global hostnames and the lab runs its datapath)"
            );
            ingress_down.push(c.to_string());
            continue;
        }
        failed.push(Component::resolve(&t, f).map_err(|e| anyhow::anyhow!("--fail {f}: {e}"))?);
    }
    let model = toplab::model(&t, &lab.manifests)?;
    lab.wait_for_bgp(Duration::from_secs(30))?;
    let settle = Duration::from_secs(6);
    let gslb_check = |down: &[String]| -> anyhow::Result<Vec<toplab::GslbRow>> {
        Ok(match &lab.gslb {
            Some(g) => g.check(&t, down, settle)?,
            None => Vec::new(),
        })
    };
    // The alerts vmalert fires, against the ones the failure predicts.
    let alert_check = |failed: &[Component]| -> anyhow::Result<Option<AlertCheck>> {
        if lab.monitor.is_none() {
            return Ok(None);
        }
        let predicted = toplab::predict_alerts(&t, failed);
        let t0 = Instant::now();
        let observed = lab.wait_for_alerts(&predicted, Duration::from_secs(20))?;
        Ok(Some(AlertCheck {
            agree: predicted == observed,
            settled_ms: t0.elapsed().as_millis() as u64,
            predicted,
            observed,
        }))
    };
    let before = lab.verify(&model, &[]);
    let gslb_before = gslb_check(&[])?;
    let alerts_before = alert_check(&[])?;
    let after = if failed.is_empty() && ingress_down.is_empty() {
        None
    } else {
        for c in &failed {
            lab.fail(c)?;
        }
        for c in &ingress_down {
            lab.fail_ingress(c)?;
        }
        // The GSLB's answers, polled from the cut until they agree: how
        // long they took to move.
        let cut = Instant::now();
        let g = gslb_check(&ingress_down)?;
        // BGP's hold time is 3 s: a cut link is noticed within it.
        std::thread::sleep(Duration::from_secs(4).saturating_sub(cut.elapsed()));
        let v = lab.verify(&model, &failed);
        let a = alert_check(&failed)?;
        for c in &failed {
            lab.restore(c)?;
        }
        for c in &ingress_down {
            lab.restore_ingress(c)?;
        }
        lab.wait_for_bgp(Duration::from_secs(30))?;
        Some((v, g, a))
    };
    let gslb_ok = |rows: &[toplab::GslbRow]| rows.iter().all(|r| r.agree);
    let alerts_ok = |a: &Option<AlertCheck>| a.as_ref().is_none_or(|a| a.agree);
    let ok = before.mismatches.is_empty()
        && gslb_ok(&gslb_before)
        && alerts_ok(&alerts_before)
        && after
            .as_ref()
            .is_none_or(|(a, g, al)| a.mismatches.is_empty() && gslb_ok(g) && alerts_ok(al));
    match output {
        Format::Json => {
            let mut v = json!({
                "pairs": before.pairs,
                "agree": before.agree,
                "mismatches": before.mismatches,
                "unchecked": before.unchecked,
                "rows": before.rows,
                "gslb": gslb_before,
                "alerts": alerts_before,
            });
            if let Some((a, g, al)) = &after {
                let mut names: Vec<String> = failed.iter().map(|c| c.to_string()).collect();
                names.extend(ingress_down.iter().map(|c| format!("ingress/{c}")));
                v["failed"] = json!(names);
                v["after_failure"] = json!({
                    "pairs": a.pairs,
                    "agree": a.agree,
                    "mismatches": a.mismatches,
                    "unchecked": a.unchecked,
                    "rows": a.rows,
                    "lost": lost(&before, a),
                    "gslb": g,
                    "alerts": al,
                });
            }
            print_json(&v)?;
        }
        Format::Text => {
            print_verification("predicted vs observed", &before);
            print_gslb(&gslb_before);
            print_alerts(&alerts_before);
            if let Some((a, g, al)) = &after {
                let mut names: Vec<String> = failed.iter().map(|c| c.to_string()).collect();
                names.extend(ingress_down.iter().map(|c| format!("ingress/{c}")));
                println!();
                print_verification(&format!("with {} failed", names.join(", ")), a);
                let l = lost(&before, a);
                println!("  pairs lost by the failure: {}", l.len());
                for (from, to, port) in l {
                    println!("    {from} → {to}:{port}");
                }
                print_gslb(g);
                print_alerts(al);
            }
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The alerts the lab's vmalert fires, against the predicted ones.
#[derive(serde::Serialize)]
struct AlertCheck {
    predicted: std::collections::BTreeSet<toplab::AlertKey>,
    observed: std::collections::BTreeSet<toplab::AlertKey>,
    agree: bool,
    /// How long until they agreed (or the 20 s limit).
    settled_ms: u64,
}

fn print_alerts(a: &Option<AlertCheck>) {
    let Some(a) = a else { return };
    let show = |set: &std::collections::BTreeSet<toplab::AlertKey>| {
        if set.is_empty() {
            "none".to_string()
        } else {
            set.iter()
                .map(|k| format!("{} {}", k.alert, k.vxc).trim_end().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    println!(
        "  alerts firing (vmalert, the ADR's rules): predicted {}; observed {}{} after {} ms",
        show(&a.predicted),
        show(&a.observed),
        if a.agree { "" } else { "  MISMATCH" },
        a.settled_ms
    );
}

/// Pairs that worked before the failure and not after it.
fn lost(before: &Verification, after: &Verification) -> Vec<(String, String, u16)> {
    after
        .rows
        .iter()
        .filter(|r| r.observed == Verdict::Deny)
        .filter(|r| {
            before.rows.iter().any(|b| {
                b.from == r.from && b.to == r.to && b.port == r.port && b.observed == Verdict::Allow
            })
        })
        .map(|r| (r.from.clone(), r.to.clone(), r.port))
        .collect()
}

fn print_verification(title: &str, v: &Verification) {
    println!("{title}:");
    let w = v.rows.iter().map(|r| r.from.len()).max().unwrap_or(4);
    let x = v.rows.iter().map(|r| r.to.len() + 6).max().unwrap_or(2);
    println!(
        "  {:<w$}  {:<x$}  {:<9} {:<9}",
        "from", "to:port", "predicted", "observed"
    );
    let word = |v: Verdict| match v {
        Verdict::Allow => "allow",
        Verdict::Deny => "deny",
    };
    for r in &v.rows {
        let to = format!("{}:{}", r.to, r.port);
        let mark = if r.predicted == r.observed {
            ""
        } else {
            "  ← MISMATCH"
        };
        println!(
            "  {:<w$}  {to:<x$}  {:<9} {:<9}{mark}",
            r.from,
            word(r.predicted),
            word(r.observed)
        );
    }
    println!(
        "  {} pairs: {} agree, {} mismatches, {} unchecked (policy when the lab runs without its datapath; clusterset services when it runs no mesh gateway)",
        v.pairs,
        v.agree,
        v.mismatches.len(),
        v.unchecked
    );
}

fn print_gslb(rows: &[toplab::GslbRow]) {
    if rows.is_empty() {
        return;
    }
    println!("  GSLB (dig in the internet namespace):");
    for r in rows {
        let mark = if r.agree { "" } else { "  ← MISMATCH" };
        println!(
            "    {:<28} {:<9} predicted {:<28} answered {:<28} settled in {} ms{mark}",
            r.name,
            format!("{:?}", r.policy).to_lowercase(),
            r.predicted.join(","),
            r.observed.join(","),
            r.settled_ms
        );
    }
}

/// Whether BIRD 2 is installed.
pub fn have_bird() -> bool {
    ["/usr/sbin/bird", "/usr/bin/bird"]
        .iter()
        .any(|p| Path::new(p).exists())
}

/// The demo's step: up, verify, fail the first MCR and verify, down.
pub fn demo(topology: &str) -> anyhow::Result<()> {
    let prefix = "mcdemo";
    let _ = TopologyLab::down(prefix);
    let result = (|| -> anyhow::Result<()> {
        up(topology, &[], prefix, true, Format::Text)?;
        let t = load_valid(topology)?.ok_or_else(|| anyhow::anyhow!("{topology} is invalid"))?;
        let mut fail: Vec<String> = t
            .spec
            .interconnect
            .routers
            .first()
            .map(|r| vec![format!("mcr/{}", r.name)])
            .unwrap_or_default();
        // And the ingress the first global name prefers, so GSLB moves.
        let first = t.spec.load_balancing.hostnames.first();
        if let Some(target) = first.and_then(|h| h.targets.iter().min_by_key(|x| x.priority)) {
            if mcnet_datapath::is_root() && !mcnet_datapath::EBPF_OBJECT.is_empty() {
                fail.push(format!("ingress/{}", target.cluster));
            }
        }
        println!();
        verify(topology, &fail, prefix, Format::Text)?;
        Ok(())
    })();
    let gone = TopologyLab::down(prefix)?;
    eprintln!("lab down: {} namespaces removed", gone.len());
    result
}
