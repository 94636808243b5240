//! `mcnet datapath enforce | lab | flows`.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use mcnet_core::policy::{Compiled, Manifests};
use mcnet_datapath::enforcer::{Bind, Enforcer, EnforcerOptions};
use mcnet_datapath::lab::Lab;
use mcnet_datapath::state::Binding;
use mcnet_datapath::{netns, L7Mode};

use crate::output::{print_json, read, Format};

#[derive(Subcommand)]
pub enum DatapathCommand {
    /// Enforce the manifests' policy in the kernel on bound interfaces, in the foreground.
    Enforce {
        /// Manifests (the same inputs as `mcnet policy eval`). Repeatable.
        #[arg(long = "manifests", value_name = "FILE", required = true)]
        manifests: Vec<String>,
        /// `IFACE=NAMESPACE/POD`: the host-side interface through which the pod's traffic passes. Repeatable.
        #[arg(long = "bind", value_name = "IFACE=NAMESPACE/POD", required = true)]
        binds: Vec<String>,
        /// Write one JSON object per flow event (new flows and drops) to this file.
        #[arg(long, value_name = "FILE")]
        flows: Option<String>,
        /// Pin maps here (a bpffs directory) so that a restarted agent keeps established connections.
        #[arg(long, value_name = "DIR")]
        pin_dir: Option<PathBuf>,
        /// Ports with L7 rules: `enforce` hands their TCP connections to the
        /// mcnet L7 proxy, which judges every request (403 when denied; if the
        /// proxy is not running the connection is dropped); `audit` passes
        /// them at L4 unchecked and says so on every flow; `deny` drops them.
        #[arg(long, value_enum, default_value = "enforce")]
        l7: L7Arg,
        /// Format of the counters printed on exit.
        #[arg(long, short = 'O', value_enum, default_value_t = Format::Text)]
        output: Format,
        /// Serve Prometheus metrics (packets and bytes by verdict and reason, flow events) on http://ADDR/metrics.
        #[arg(long, value_name = "ADDR")]
        metrics: Option<std::net::SocketAddr>,
        /// This node's ClusterMesh cluster: pods without an
        /// `io.cilium.k8s.policy.cluster` label belong to it.
        #[arg(long, value_name = "NAME")]
        cluster: Option<String>,
    },
    /// Build or remove the ADR production namespace as a netns lab.
    Lab {
        /// `up` or `down`.
        #[arg(value_enum)]
        action: LabAction,
        /// Name prefix of the namespaces.
        #[arg(long, default_value = "mlab")]
        prefix: String,
        /// Manifests whose pods (with their 198.18.0.0/15 IPs) make the lab.
        #[arg(long, default_value = "examples/policies/adr-003-production.yaml")]
        manifests: String,
    },
    /// Print a flows file (from `enforce --flows`) readably.
    Flows {
        /// The file.
        file: String,
        /// Keep reading as the file grows.
        #[arg(long, short = 'f')]
        follow: bool,
    },
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum L7Arg {
    /// Judge every request in the L7 proxy (the default).
    Enforce,
    /// Pass at L4 unchecked and mark the flows (L7 rules not enforced).
    Audit,
    /// Drop (fail closed).
    Deny,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum LabAction {
    /// Create.
    Up,
    /// Remove.
    Down,
}

pub fn run(cmd: DatapathCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        DatapathCommand::Enforce {
            manifests,
            binds,
            flows,
            pin_dir,
            l7,
            output,
            metrics,
            cluster,
        } => match load_manifests_in(&manifests, cluster.as_deref())? {
            Some(m) => enforce(m, &binds, flows.as_deref(), pin_dir, l7, output, metrics),
            None => Ok(ExitCode::from(1)),
        },
        DatapathCommand::Lab {
            action,
            prefix,
            manifests,
        } => lab(action, &prefix, &manifests),
        DatapathCommand::Flows { file, follow } => show_flows(&file, follow),
    }
}

fn load_manifests(files: &[String]) -> anyhow::Result<Option<Manifests>> {
    load_manifests_in(files, None)
}

fn load_manifests_in(files: &[String], cluster: Option<&str>) -> anyhow::Result<Option<Manifests>> {
    let texts: Vec<(String, String)> = files
        .iter()
        .map(|f| Ok((f.clone(), read(f)?)))
        .collect::<anyhow::Result<_>>()?;
    let mut options = mcnet_core::policy::LoadOptions::default();
    if let Some(c) = cluster {
        options.local_cluster = c.to_string();
    }
    match Manifests::load_with(texts.iter().map(|(n, t)| (n.as_str(), t.as_str())), options) {
        Ok(m) => Ok(Some(m)),
        Err(mcnet_core::Error::Invalid { problems, .. }) => {
            eprintln!("the manifests are invalid:");
            for p in &problems {
                eprintln!("  [{}] {} (at {})", p.code, p.message, p.path);
            }
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

fn enforce(
    m: Manifests,
    binds: &[String],
    flows: Option<&str>,
    pin_dir: Option<PathBuf>,
    l7: L7Arg,
    output: Format,
    metrics_addr: Option<std::net::SocketAddr>,
) -> anyhow::Result<ExitCode> {
    let c = std::sync::Arc::new(Compiled::new(&m));
    let mut bindings = Vec::new();
    let mut ifaces = Vec::new();
    for b in binds {
        let Some((iface, pod)) = b.split_once('=') else {
            eprintln!("error: --bind {b}: expected IFACE=NAMESPACE/POD");
            return Ok(ExitCode::from(2));
        };
        let ifindex = match netns::ifindex(iface) {
            Ok(i) => i,
            Err(e) => {
                eprintln!("error: --bind {b}: {e}");
                return Ok(ExitCode::from(2));
            }
        };
        if m.inventory.pod(pod).is_none() {
            eprintln!("error: --bind {b}: pod `{pod}` is not in the manifests");
            return Ok(ExitCode::from(1));
        }
        bindings.push(Binding {
            ifindex,
            pod: pod.to_string(),
        });
        ifaces.push(iface.to_string());
    }
    // Known-bad bindings were refused above; what is left fails as the
    // library says.
    let binds: Vec<Bind> = bindings
        .iter()
        .zip(&ifaces)
        .map(|(b, i)| Bind {
            iface: i.clone(),
            pod: b.pod.clone(),
        })
        .collect();
    let metrics = std::sync::Arc::new(mcnet_datapath::metrics::DatapathMetrics::default());
    let mut options = EnforcerOptions::default().pinned(pin_dir).l7(match l7 {
        L7Arg::Enforce => L7Mode::Enforce,
        L7Arg::Audit => L7Mode::Audit,
        L7Arg::Deny => L7Mode::Deny,
    });
    if metrics_addr.is_some() {
        options = options.metrics(metrics.clone());
    }
    let mut enforcer = match Enforcer::start(c.clone(), &binds, &options) {
        Ok(e) => e,
        Err(e @ mcnet_datapath::Error::RemotePod { .. }) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(1));
        }
        Err(e) => {
            return Err(anyhow::Error::new(e).context("loading the eBPF datapath (needs root)"))
        }
    };
    let mut sink = match flows {
        Some(f) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(f)
                .with_context(|| format!("cannot open `{f}`"))?,
        ),
        None => None,
    };
    eprintln!(
        "mcnet: enforcing on {} interface(s): {} ({} map updates); Ctrl-C or SIGTERM to stop",
        ifaces.len(),
        bindings
            .iter()
            .zip(&ifaces)
            .map(|(b, i)| format!(
                "{i}={} (identity {})",
                b.pod,
                c.pod_identity[m.inventory.pod(&b.pod).unwrap_or(0)]
            ))
            .collect::<Vec<_>>()
            .join(", "),
        enforcer.initial_updates()
    );
    match (l7, enforcer.proxy()) {
        (L7Arg::Enforce, Some(p)) => eprintln!(
            "mcnet: L7 rules enforced by the mcnet proxy (listener {}); denied requests get 403",
            p.local_addr()
        ),
        (L7Arg::Audit, _) => eprintln!(
            "mcnet: L7 AUDIT mode: ports with L7 rules pass at L4 and their requests are NOT checked"
        ),
        _ => eprintln!("mcnet: ports with L7 rules are dropped (--l7 deny)"),
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result: anyhow::Result<()> = rt.block_on(async {
        if let Some(addr) = metrics_addr {
            let mut registry = mcnet_core::metrics::Registry::default();
            registry.register_collector(Box::new(mcnet_datapath::metrics::DatapathCollector(
                metrics.clone(),
            )));
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("--metrics {addr}"))?;
            eprintln!("mcnet: metrics on http://{}/metrics", l.local_addr()?);
            tokio::spawn(crate::metrics_http::serve(l, std::sync::Arc::new(registry)));
        }
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let shutdown = async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        };
        enforcer
            .run(shutdown, |rec| {
                if let Some(f) = sink.as_mut() {
                    let written = serde_json::to_writer(&mut *f, &rec)
                        .map_err(std::io::Error::from)
                        .and_then(|()| f.write_all(b"\n"))
                        .and_then(|()| f.flush());
                    written.map_err(|source| mcnet_datapath::Error::Io {
                        what: "writing flow events".into(),
                        source,
                    })?;
                }
                Ok(())
            })
            .await?;
        Ok(())
    });
    let counters = enforcer.stop();
    let counters = counters?;
    match output {
        Format::Json => print_json(&counters)?,
        Format::Text => {
            println!("mcnet: detached; counters:");
            for (reason, (p, b)) in &counters.by_reason {
                if *p > 0 {
                    println!("  {reason:<22} {p:>10} packets {b:>12} bytes");
                }
            }
        }
    }
    result?;
    Ok(ExitCode::SUCCESS)
}

fn lab(action: LabAction, prefix: &str, manifests: &str) -> anyhow::Result<ExitCode> {
    match action {
        LabAction::Down => {
            let gone = Lab::destroy(prefix)?;
            println!(
                "removed {} namespace(s){}",
                gone.len(),
                if gone.is_empty() {
                    String::new()
                } else {
                    format!(": {}", gone.join(", "))
                }
            );
        }
        LabAction::Up => {
            let Some(m) = load_manifests(&[manifests.to_string()])? else {
                return Ok(ExitCode::from(1));
            };
            let lab = Lab::for_inventory(prefix, &m.inventory)?;
            println!("lab `{prefix}` is up: node namespace {}", lab.node);
            let mut binds = Vec::new();
            for p in &lab.pods {
                println!(
                    "  {:<28} {:<15} netns {:<12} host side {}",
                    p.key, p.ip, p.netns, p.host_iface
                );
                binds.push(format!("--bind {}={}", p.host_iface, p.key));
            }
            println!("\nenforce with:\n  nsenter --net=/run/netns/{} mcnet datapath enforce --manifests {manifests} {} --flows flows.jsonl", lab.node, binds.join(" "));
            println!("remove with:\n  mcnet datapath lab down --prefix {prefix}");
            lab.persist();
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn show_flows(file: &str, follow: bool) -> anyhow::Result<ExitCode> {
    let f = std::fs::File::open(file).with_context(|| format!("cannot open `{file}`"))?;
    let mut r = std::io::BufReader::new(f);
    let mut line = String::new();
    loop {
        line.clear();
        let n = r.read_line(&mut line)?;
        if n == 0 {
            if follow {
                std::thread::sleep(std::time::Duration::from_millis(200));
                continue;
            }
            break;
        }
        let v: serde_json::Value = match serde_json::from_str(line.trim()) {
            Ok(v) => v,
            Err(_) => continue,
        };
        let s = |k: &str| {
            v[k].as_str()
                .map(String::from)
                .unwrap_or_else(|| v[k].to_string())
        };
        println!(
            "{:<9} {:<7} {}:{} ({}) → {}:{} ({}) {} {}{}",
            s("hubble_verdict"),
            s("direction"),
            s("src"),
            s("sport"),
            s("src_identity"),
            s("dst"),
            s("dport"),
            s("dst_identity"),
            s("protocol"),
            s("reason"),
            flow_note(&v)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// What a flow line adds after its reason: the request of an L7 event,
/// or what happened to a port with L7 rules.
fn flow_note(v: &serde_json::Value) -> String {
    if v["type"] == "L7" {
        let h = &v["http"];
        return format!(
            " HTTP {} {} → {}{}",
            h["method"].as_str().unwrap_or("?"),
            h["url"].as_str().unwrap_or("?"),
            h["code"],
            v["rule"]
                .as_str()
                .or(v["policy"].as_str())
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        );
    }
    match v["reason"].as_str() {
        Some("allowed-l7-audit") => " [AUDIT: L7 rules not enforced]".into(),
        Some("redirected-l7") => " [to the L7 proxy]".into(),
        Some("drop-l7") => " [L7 rules the kernel cannot judge: dropped, fail closed]".into(),
        Some("drop-proxy-unavailable") => " [L7 proxy not running: dropped, fail closed]".into(),
        _ => String::new(),
    }
}

/// The demo's datapath step: the manifests' pods as a lab, the policy in the
/// kernel with the L7 proxy, a few connections and HTTP requests, their flow
/// events and the counters.
pub fn demo(manifests: &str) -> anyhow::Result<()> {
    use mcnet_datapath::lab::{http_requests, tcp_ok, Call, HttpServer};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let Some(m) = load_manifests(&[manifests.to_string()])? else {
        anyhow::bail!("invalid manifests")
    };
    let c = Arc::new(Compiled::new(&m));
    let lab = Lab::for_inventory(&format!("md{}", std::process::id() % 10000), &m.inventory)?;
    let stop = Arc::new(AtomicBool::new(false));
    const API: &str = "production/api-server";
    for p in lab.pods.iter().filter(|p| p.key != API) {
        mcnet_datapath::lab::serve(&p.netns, 8080, stop.clone());
    }
    // The api-server runs a real HTTP server that logs what reaches it.
    let server = match lab.pod(API) {
        Some(p) => Some(HttpServer::start(&p.netns, 8080)?),
        None => None,
    };
    let binds: Vec<Bind> = lab
        .pods
        .iter()
        .map(|p| Bind {
            iface: p.host_iface.clone(),
            pod: p.key.clone(),
        })
        .collect();
    let node = netns::named(&lab.node);
    let ran = netns::run_in(&node, || -> anyhow::Result<()> {
        let mut e = Enforcer::start(c.clone(), &binds, &EnforcerOptions::default())?;
        eprintln!(
            "lab: {} pods in network namespaces, programs attached to their host-side veths, L7 proxy on {}",
            lab.pods.len(),
            e.proxy().map_or("-".into(), |p| p.local_addr().to_string())
        );
        for (from, to) in [
            ("production/batch", API),
            ("production/api-server", "production/frontend"),
        ] {
            let (Some(f), Some(t)) = (lab.pod(from), lab.pod(to)) else {
                continue;
            };
            let ok = tcp_ok(&f.netns, t.ip, 8080);
            println!(
                "  TCP  {from} → {to}:8080  {}",
                if ok { "connected" } else { "blocked" }
            );
        }
        if let (Some(f), Some(t)) = (lab.pod("production/frontend"), lab.pod(API)) {
            let calls = [
                Call::new("GET", "/api/v1/orders"),
                Call::new("POST", "/api/v1/users"),
                Call::new("DELETE", "/api/v1/users"),
            ];
            let got = http_requests(&f.netns, t.ip, 8080, &calls)
                .context("HTTP from frontend to api-server")?;
            for (call, (code, body)) in calls.iter().zip(&got) {
                println!(
                    "  HTTP production/frontend → {API}:8080  {:<6} {:<16} {code} {}",
                    call.method,
                    call.path,
                    if *code == 403 {
                        format!("refused by the L7 proxy: {}", body.trim())
                    } else {
                        "(served by api-server)".into()
                    }
                );
            }
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let mut flows = Vec::new();
        // The timer is made inside the runtime it runs on.
        rt.block_on(async {
            let stop = tokio::time::sleep(std::time::Duration::from_millis(200));
            e.run(stop, |f| {
                flows.push(f);
                Ok(())
            })
            .await
        })?;
        println!("  flow events:");
        for f in flows.iter().filter(|f| f.protocol == "TCP" && !f.is_reply) {
            let v = serde_json::to_value(f)?;
            println!(
                "    {:<9} {:<7} {:<5} {}:{} (id {}) → {}:{} (id {}) {}{}",
                f.hubble_verdict,
                f.direction,
                f.kind,
                f.src,
                f.sport,
                f.src_identity,
                f.dst,
                f.dport,
                f.dst_identity,
                f.reason,
                flow_note(&v)
            );
        }
        let counters = e.stop()?;
        println!(
            "  counters: {}",
            counters
                .by_reason
                .iter()
                .filter(|(_, c)| c.0 > 0)
                .map(|(r, c)| format!("{r}={}", c.0))
                .collect::<Vec<_>>()
                .join(", ")
        );
        Ok(())
    });
    stop.store(true, Ordering::Relaxed);
    if let Some(server) = &server {
        println!("  api-server's own log: {}", server.log().join(", "));
    }
    drop(server);
    drop(lab);
    ran??;
    Ok(())
}
