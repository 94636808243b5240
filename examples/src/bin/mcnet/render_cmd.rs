//! `mcnet render` and `mcnet node tune`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use mcnet_core::render::{self, schema::CrdSchemas, DocKind, Options, Rendering};
use mcnet_datapath::node::{self, Finding, Scope};

use crate::output::{print_json, Format};

#[derive(Args)]
pub struct RenderArgs {
    /// Topology file (YAML or JSON).
    pub file: String,
    /// Output directory: one sub-directory per cluster. Replaced only if
    /// empty or an earlier rendering.
    #[arg(short = 'o', long = "out", value_name = "DIR")]
    pub out: String,
    /// Cilium `clustermesh.maxConnectedClusters` (255 or 511).
    #[arg(long, default_value_t = 255)]
    pub max_connected_clusters: u32,
    /// Trust domain of the clusters and of Linkerd identities.
    #[arg(long, default_value = "cluster.local")]
    pub trust_domain: String,
    /// Base URL of the monitoring network's metrics store as the clusters'
    /// vmagents reach it (default: `http://NAME.NETWORK.DOMAIN:PORT` of the
    /// topology's victoria-metrics component).
    #[arg(long, value_name = "URL")]
    pub monitoring_url: Option<String>,
    /// Alertmanager for vmalert (default: none; alerts are recorded as
    /// ALERTS series).
    #[arg(long, value_name = "URL")]
    pub alertmanager_url: Option<String>,
    /// Elasticsearch-compatible bulk endpoint for the flow logs Vector
    /// ships (default: a VictoriaLogs rendered in the monitoring network).
    #[arg(long, value_name = "URL")]
    pub log_store_url: Option<String>,
    /// The one cluster that runs `mcnet operator` (its CRD, RBAC and a
    /// two-replica Deployment under `operator/`); default: the topology's
    /// first cluster. One cluster only: each cluster's Lease elects its own
    /// leader, so operators in two clusters would both apply.
    #[arg(long, value_name = "CLUSTER")]
    pub operator_cluster: Option<String>,
    /// The operator's container image.
    #[arg(long, value_name = "IMAGE")]
    pub operator_image: Option<String>,
    /// Output format of the summary.
    #[arg(long, short = 'O', value_enum, default_value_t = Format::Text)]
    pub output: Format,
}

/// Adds the operator's objects to the cluster that runs it, and the node
/// agent's to every cluster.
fn add_operator(
    r: &mut Rendering,
    a: &RenderArgs,
    t: &mcnet_core::topology::Topology,
) -> anyhow::Result<()> {
    let mut opts = mcnet_cloud::operator::OperatorManifestOptions::default();
    if let Some(image) = &a.operator_image {
        opts.image = image.clone();
    }
    let rendered = |f: mcnet_cloud::operator::ManifestFile| render::RenderedFile {
        path: f.path,
        kind: if f.custom {
            DocKind::Custom
        } else {
            DocKind::BuiltIn
        },
        documents: f.documents,
    };
    for c in &mut r.clusters {
        c.files.extend(
            mcnet_cloud::operator::agent_manifests(&opts)
                .into_iter()
                .map(rendered),
        );
    }
    let t = mcnet_core::topology::ipam::allocate(t)
        .map_err(|p| anyhow::anyhow!("IPAM: {} problem(s)", p.len()))?;
    let cluster = match &a.operator_cluster {
        Some(c) => r
            .clusters
            .iter_mut()
            .find(|x| &x.cluster == c)
            .ok_or_else(|| {
                anyhow::anyhow!("--operator-cluster: no cluster named `{c}` in the topology")
            })?,
        None => match r.clusters.first_mut() {
            Some(c) => c,
            None => return Ok(()),
        },
    };
    let c = t.cluster(&cluster.cluster);
    // IPv4 only: the egress rule's block is 0.0.0.0/0.
    opts.cluster_cidrs = c
        .into_iter()
        .flat_map(|c| [&c.pod_cidr, &c.service_cidr])
        .filter_map(|n| n.net())
        .filter(|n| n.addr().is_ipv4())
        .map(|n| n.to_string())
        .collect();
    cluster.files.extend(
        mcnet_cloud::operator::manifests(&opts)
            .into_iter()
            .map(rendered),
    );
    // Its sample pod, at the end of the cluster's pod range (the other
    // samples take the start).
    let ip = c
        .and_then(|c| c.pod_cidr.net())
        .and_then(|n| n.hosts().last());
    if let Some(ip) = ip {
        cluster.files.push(render::RenderedFile {
            path: "preview/mcnet-operator.yaml".into(),
            kind: DocKind::Preview,
            documents: vec![mcnet_cloud::operator::operator_preview_pod(&opts, ip)],
        });
    }
    Ok(())
}

/// Renders, checks every custom resource against its upstream CRD schema,
/// and writes the tree; nothing is written when a check fails.
pub fn render(a: &RenderArgs) -> anyhow::Result<ExitCode> {
    let Some(t) = crate::topology_cmd::load_valid(&a.file)? else {
        return Ok(ExitCode::from(1));
    };
    let opts = Options {
        trust_domain: a.trust_domain.clone(),
        max_connected_clusters: a.max_connected_clusters,
        domain: None,
        monitoring_url: a.monitoring_url.clone(),
        alertmanager_url: a.alertmanager_url.clone(),
        log_store_url: a.log_store_url.clone(),
    };
    let mut r = match render::render(&t, &opts) {
        Ok(r) => r,
        Err(mcnet_core::Error::Invalid { what, problems }) => {
            eprintln!("cannot render {what}:");
            for p in &problems {
                eprintln!("  {p}");
            }
            return Ok(ExitCode::from(1));
        }
        Err(e) => return Err(e.into()),
    };
    if let Err(e) = add_operator(&mut r, a, &t) {
        eprintln!("error: {e}");
        return Ok(ExitCode::from(2));
    }
    let failures = check_custom_resources(&r)?;
    if !failures.is_empty() {
        eprintln!(
            "{} rendered custom resource(s) fail their upstream schema (a bug in mcnet; nothing written):",
            failures.len()
        );
        for f in &failures {
            eprintln!("  {f}");
        }
        return Ok(ExitCode::from(1));
    }
    let summary = render::write_dir(&r, Path::new(&a.out))?;
    let schemas = CrdSchemas::embedded()?;
    let (mut custom, mut unchecked) = (0, std::collections::BTreeSet::new());
    for (f, d) in r.clusters.iter().flat_map(|c| c.documents()) {
        if f.kind != DocKind::Custom {
            continue;
        }
        match schemas.check(d) {
            Some(_) => custom += 1,
            None => {
                unchecked.insert(d["kind"].as_str().unwrap_or("?").to_string());
            }
        }
    }
    match a.output {
        Format::Json => print_json(&serde_json::json!({
            "dir": summary.dir,
            "files": summary.files,
            "documents": summary.documents,
            "custom_resources_checked": custom,
            "custom_kinds_without_schema": unchecked,
            "clusters": summary.clusters.iter().map(|(c, folders)| {
                let mesh = r.clusters.iter().find(|x| &x.cluster == c).and_then(|x| x.cluster_mesh.clone());
                (c.clone(), serde_json::json!({
                    "cluster_mesh": mesh.map(|(id, name)| serde_json::json!({"id": id, "name": name})),
                    "folders": folders.iter().map(|(f, (files, docs))| (f.clone(), serde_json::json!({"files": files, "documents": docs}))).collect::<BTreeMap<_, _>>()
                }))
            }).collect::<BTreeMap<_, _>>(),
            "warnings": r.warnings,
        }))?,
        Format::Text => print_summary(&r, &summary, custom, &unchecked),
    }
    Ok(ExitCode::SUCCESS)
}

fn print_summary(
    r: &Rendering,
    s: &render::WriteSummary,
    custom: usize,
    unchecked: &std::collections::BTreeSet<String>,
) {
    let folders: Vec<String> = {
        let mut f: Vec<String> = s
            .clusters
            .values()
            .flat_map(|m| m.keys().cloned())
            .collect();
        f.sort();
        f.dedup();
        f
    };
    let without = if unchecked.is_empty() {
        String::new()
    } else {
        format!(
            "; {} have no upstream schema here and are not checked",
            unchecked.iter().cloned().collect::<Vec<_>>().join(", ")
        )
    };
    println!(
        "rendered `{}` into {}: {} files, {} objects ({} custom resources, each valid against its upstream CRD schema{without})",
        r.topology,
        s.dir.display(),
        s.files,
        s.documents,
        custom
    );
    let w = r
        .clusters
        .iter()
        .chain(&r.monitoring)
        .map(|c| c.cluster.len())
        .max()
        .unwrap_or(7)
        .max(7);
    print!("  {:<w$} {:<14}", "cluster", "mesh id/name");
    for f in &folders {
        print!(" {f:>11}");
    }
    println!();
    for c in r.clusters.iter().chain(&r.monitoring) {
        let mesh = c
            .cluster_mesh
            .as_ref()
            .map_or("-".to_string(), |(id, n)| format!("{id}/{n}"));
        print!("  {:<w$} {:<14}", c.cluster, mesh);
        for f in &folders {
            let n = s
                .clusters
                .get(&c.cluster)
                .and_then(|m| m.get(f))
                .map_or(0, |x| x.1);
            print!(" {n:>11}");
        }
        println!();
    }
    println!("  (objects per folder; preview/ holds sample pods for `mcnet policy matrix`, not for applying)");
    if let Some(m) = &r.monitoring {
        println!(
            "  {}/ is the monitoring network's stack; monitoring/ holds plain copies of its rules, dashboards and scrape and Vector configurations",
            m.cluster
        );
    }
    for w in &r.warnings {
        eprintln!("warning: {w}");
    }
}

/// Every custom resource of the rendering checked against the embedded
/// upstream schemas: `cluster/file: kind name: problem`.
pub fn check_custom_resources(r: &Rendering) -> anyhow::Result<Vec<String>> {
    let schemas = CrdSchemas::embedded()?;
    let mut out = Vec::new();
    for c in &r.clusters {
        for (f, d) in c.documents().filter(|(f, _)| f.kind == DocKind::Custom) {
            let name = d["metadata"]["name"].as_str().unwrap_or("?");
            let kind = d["kind"].as_str().unwrap_or("?");
            if let Some(problems) = schemas.check(d) {
                for p in problems {
                    out.push(format!("{}/{}: {kind} {name}: {p}", c.cluster, f.path));
                }
            }
        }
    }
    Ok(out)
}

#[derive(Subcommand)]
pub enum NodeCommand {
    /// Check (or apply) the ADR's kernel network profile.
    Tune(TuneArgs),
}

#[derive(Args)]
pub struct TuneArgs {
    /// Report each deviation from the profile; exit 1 when there is one.
    #[arg(long, conflicts_with = "apply", required_unless_present = "apply")]
    pub check: bool,
    /// Write the deviating values, all or nothing, and report what changed.
    #[arg(long)]
    pub apply: bool,
    /// Target a network namespace (a name under /var/run/netns, or a path);
    /// global settings are then reported but never written.
    #[arg(long, value_name = "NAME")]
    pub netns: Option<String>,
    /// Output format.
    #[arg(long, short = 'O', value_enum, default_value_t = Format::Text)]
    pub output: Format,
}

pub fn node(cmd: NodeCommand) -> anyhow::Result<ExitCode> {
    let NodeCommand::Tune(a) = cmd;
    let ns_path: Option<PathBuf> = a.netns.as_ref().map(|n| {
        if n.contains('/') {
            PathBuf::from(n)
        } else {
            mcnet_datapath::netns::named(n)
        }
    });
    if let Some(p) = &ns_path {
        anyhow::ensure!(
            p.exists(),
            "network namespace `{}` does not exist",
            p.display()
        );
    }
    let profile = node::adr_profile();
    let apply = a.apply;
    let findings: Vec<Finding> = node::in_netns(ns_path.as_deref(), |s| {
        if apply {
            s.apply(&profile, ns_path.is_some())
        } else {
            s.check(&profile)
        }
    })
    .with_context(|| {
        format!(
            "cannot enter network namespace `{}`",
            a.netns.as_deref().unwrap_or("")
        )
    })??;
    let deviations = findings.iter().filter(|f| !f.ok).count();
    let target = a
        .netns
        .as_deref()
        .map_or("host".to_string(), |n| format!("network namespace {n}"));
    match a.output {
        Format::Json => print_json(&serde_json::json!({
            "target": target,
            "mode": if apply { "apply" } else { "check" },
            "settings": findings,
            "deviations": deviations,
            "changed": findings.iter().filter(|f| f.changed_to.is_some()).count(),
        }))?,
        Format::Text => {
            println!("ADR kernel profile on the {target}:");
            for f in &findings {
                let scope = match f.scope {
                    Scope::PerNetns => "netns ",
                    Scope::Global => "global",
                };
                let current = f.current.as_deref().unwrap_or("(absent)");
                let status = match (&f.changed_to, &f.skipped, f.ok) {
                    (Some(now), _, _) => format!("changed {current} → {now}"),
                    (None, Some(why), _) => format!("deviates ({current}); skipped: {why}"),
                    (None, None, true) => format!("ok ({current})"),
                    (None, None, false) => format!("deviates: {current}"),
                };
                println!("  {:<34} {scope}  want {:<10} {status}", f.key, f.wanted);
            }
        }
    }
    // A check fails on any deviation; an apply succeeds once everything it
    // may write is written (globals inside a namespace are left alone).
    Ok(ExitCode::from(if apply || deviations == 0 { 0 } else { 1 }))
}
