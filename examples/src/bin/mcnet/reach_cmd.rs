//! `mcnet reach`: one reachability proof across every layer.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use mcnet_core::policy::{manifest_files, Proto};
use mcnet_core::reach::{Layer, Matrix, Model, Proof, Query, Scope, Verdict};
use mcnet_core::topology::paths::Component;

use crate::output::{print_json, read, Format};
use crate::topology_cmd::load_valid;

#[derive(Args)]
pub struct ReachArgs {
    /// Topology file.
    topology: String,
    /// Manifests (files or directories): `FILE` for every cluster, or
    /// `CLUSTER=FILE` for one. Repeatable.
    #[arg(long, value_name = "[CLUSTER=]FILE", num_args = 1.., required = true)]
    manifests: Vec<String>,
    /// Source pod: `CLUSTER/NAMESPACE/POD`.
    #[arg(long, required_unless_present = "matrix", conflicts_with = "matrix")]
    from: Option<String>,
    /// Target: `CLUSTER/NAMESPACE/POD`, an IP address, or
    /// `SERVICE.NAMESPACE.svc.clusterset.local`.
    #[arg(long, required_unless_present = "matrix", conflicts_with = "matrix")]
    to: Option<String>,
    /// Destination port.
    #[arg(long, required_unless_present = "matrix", conflicts_with = "matrix")]
    port: Option<u16>,
    /// TCP, UDP or SCTP.
    #[arg(long, default_value = "TCP")]
    protocol: String,
    /// HTTP method, for L7 rules.
    #[arg(long, requires = "path")]
    method: Option<String>,
    /// HTTP path, for L7 rules.
    #[arg(long, requires = "method")]
    path: Option<String>,
    /// Fail a component (`mcnet paths --fail` names). Repeatable.
    #[arg(long = "fail", value_name = "COMPONENT")]
    fail: Vec<String>,
    /// Prove every pod pair on each of the target's ports, and show which
    /// layer stops each denied pair.
    #[arg(long)]
    matrix: bool,
    /// Output format.
    #[arg(long, short = 'O', value_enum, default_value_t = Format::Text)]
    output: Format,
}

/// Exit 0 when allowed (or the matrix was printed), 1 when denied or the
/// input is invalid, 2 on usage errors.
pub fn run(a: &ReachArgs) -> anyhow::Result<ExitCode> {
    let Some(t) = load_valid(&a.topology)? else {
        return Ok(ExitCode::from(1));
    };
    let mut texts: Vec<(Scope, String, String)> = Vec::new();
    for m in &a.manifests {
        let (scope, path) = match m.split_once('=') {
            Some((cluster, path)) => (Scope::Cluster(cluster.to_string()), path),
            None => (Scope::All, m.as_str()),
        };
        for f in manifest_files(&[Path::new(path)])? {
            let name = f.display().to_string();
            let text = read(&name)?;
            texts.push((scope.clone(), name, text));
        }
    }
    let model = match Model::new(
        &t,
        texts
            .iter()
            .map(|(s, n, text)| (s.clone(), n.as_str(), text.as_str())),
    ) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    let mut failed = Vec::new();
    for f in &a.fail {
        match Component::resolve(&t, f) {
            Ok(c) => failed.push(c),
            Err(e) => anyhow::bail!("--fail {f}: {e}"),
        }
    }
    if a.matrix {
        let m = model.matrix(&failed);
        match a.output {
            Format::Json => print_json(&m)?,
            Format::Text => print_matrix(&m),
        }
        return Ok(ExitCode::SUCCESS);
    }
    let protocol = Proto::parse(&a.protocol)
        .filter(|p| matches!(p, Proto::Tcp | Proto::Udp | Proto::Sctp))
        .with_context(|| format!("--protocol {}: expected TCP, UDP or SCTP", a.protocol))?;
    let (from, to) = (
        a.from.as_deref().unwrap_or_default(),
        a.to.as_deref().unwrap_or_default(),
    );
    let port = a.port.context("--port is required")?;
    let mut q = match Query::parse(&model, from, to, port) {
        Ok(q) => q.protocol(protocol).failing(failed),
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    if let (Some(m), Some(p)) = (&a.method, &a.path) {
        q = q.http(m, p);
    }
    let proof = model.prove(&q);
    match a.output {
        Format::Json => print_json(&proof)?,
        Format::Text => print_proof(&proof),
    }
    Ok(if proof.verdict == Verdict::Allow {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print_proof(p: &Proof) {
    println!("{} → {} port {}/{}", p.from, p.to, p.port, p.protocol);
    for h in &p.hops {
        let mark = match h.verdict {
            Verdict::Allow => "✓",
            Verdict::Deny => "✗",
        };
        println!("  {mark} {:<15} {}", h.layer.name(), h.explanation);
    }
    let skipped: Vec<&str> = Layer::ALL
        .iter()
        .filter(|l| !p.hops.iter().any(|h| h.layer == **l))
        .map(|l| l.name())
        .collect();
    if !skipped.is_empty() {
        println!("  · not reached: {}", skipped.join(", "));
    }
    match p.stopped_at {
        None => println!("verdict: ALLOW"),
        Some(l) => println!("verdict: DENY at {l}"),
    }
}

fn print_matrix(m: &Matrix) {
    if !m.failed.is_empty() {
        let names: Vec<String> = m.failed.iter().map(|c| c.to_string()).collect();
        println!("Failed: {}", names.join(", "));
    }
    let w = m.cells.iter().map(|c| c.from.len()).max().unwrap_or(4);
    let v = m.cells.iter().map(|c| c.to.len() + 6).max().unwrap_or(2);
    println!("{:<w$}  {:<v$}  verdict", "from", "to:port");
    for c in &m.cells {
        let to = format!("{}:{}", c.to, c.port);
        let verdict = match c.stopped_at {
            None => "allow".to_string(),
            Some(l) => format!("deny at {l}"),
        };
        println!("{:<w$}  {to:<v$}  {verdict}", c.from);
    }
    let denied: usize = m.denied_by_layer.values().sum();
    println!();
    println!(
        "{} pairs: {} allowed, {denied} denied",
        m.cells.len(),
        m.allowed
    );
    for (layer, n) in &m.denied_by_layer {
        println!("  stopped at {layer}: {n}");
    }
}

/// The demo's step: three proofs across every layer on the ADR's
/// production namespace, and the matrix with the MCR failed.
pub fn demo(topology: &str, manifests: &str) -> anyhow::Result<()> {
    let args =
        |from: &str, to: &str, http: Option<(&str, &str)>, fail: &[&str], matrix: bool| ReachArgs {
            topology: topology.to_string(),
            manifests: vec![manifests.to_string()],
            from: (!matrix).then(|| from.to_string()),
            to: (!matrix).then(|| to.to_string()),
            port: (!matrix).then_some(8080),
            protocol: "TCP".into(),
            method: http.map(|h| h.0.to_string()),
            path: http.map(|h| h.1.to_string()),
            fail: fail.iter().map(|f| f.to_string()).collect(),
            matrix,
            output: Format::Text,
        };
    let fe = "eks-prod/production/frontend";
    let proofs = [
        (
            "eks-prod/production/api-server",
            Some(("DELETE", "/api/v1/users")),
        ),
        (
            "api-service.production.svc.clusterset.local",
            Some(("GET", "/api/v1/orders")),
        ),
        ("gke-prod/production/api-server", None),
    ];
    for (i, (to, http)) in proofs.into_iter().enumerate() {
        if i > 0 {
            println!();
        }
        run(&args(fe, to, http, &[], false))?;
    }
    Ok(())
}
