//! `mcnet policy eval | matrix | diff | lint | generate | compile`.

use mcnet_core::diag::Code;
use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use mcnet_core::policy::analysis::{self, Matrix, PortProto};
use mcnet_core::policy::generate::{self, Intent};
use mcnet_core::policy::kafka::KafkaApiKey;
use mcnet_core::policy::{
    Compiled, Decision, DnsRequest, HttpRequest, KafkaRequest, Manifests, NumericIdentity, Proto,
    Query, QueryEndpoint,
};

use crate::output::{print_json, read, Format};

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Evaluate connections: a queries file (JSON array), or one --from/--to/--port.
    Eval(Box<EvalArgs>),
    /// The reachability matrix of every pod pair on the policies' ports.
    Matrix {
        #[command(flatten)]
        input: Input,
        /// Ports to show (`80`, `53/UDP`); default: the ports the policies name.
        #[arg(long = "port", value_name = "PORT[/PROTO]")]
        ports: Vec<PortProto>,
        /// Output format.
        #[arg(long, short = 'O', value_enum, default_value_t = Format::Text)]
        output: Format,
    },
    /// Which connections a policy change opens and closes.
    Diff {
        /// Manifests before the change.
        old: String,
        /// Manifests after the change.
        new: String,
        /// Extra manifests loaded on both sides (namespaces, pods).
        #[arg(long = "manifests", value_name = "FILE")]
        manifests: Vec<String>,
        /// Ports to compare; default: the ports either side names.
        #[arg(long = "port", value_name = "PORT[/PROTO]")]
        ports: Vec<PortProto>,
        /// Output format.
        #[arg(long, short = 'O', value_enum, default_value_t = Format::Text)]
        output: Format,
    },
    /// Which recorded flows a candidate policy set would drop (or let
    /// through): mcnet's flow events or Hubble's `observe -o jsonpb` lines,
    /// judged again; exit 1 when a previously allowed flow would be dropped.
    Replay(crate::replay_cmd::ReplayArgs),
    /// Find risky or useless policy; exit 1 when anything is found.
    Lint {
        #[command(flatten)]
        input: Input,
        /// Output format.
        #[arg(long, short = 'O', value_enum, default_value_t = Format::Text)]
        output: Format,
    },
    /// Generate policies: default deny per namespace, or from an intent.
    Generate {
        #[command(subcommand)]
        what: GenerateCommand,
    },
    /// Show identities and the compiled map state.
    Compile {
        #[command(flatten)]
        input: Input,
        /// Output format.
        #[arg(long, short = 'O', value_enum, default_value_t = Format::Text)]
        output: Format,
    },
}

#[derive(Subcommand)]
pub enum GenerateCommand {
    /// A default-deny-all NetworkPolicy (and, with --allow-dns, DNS egress) per namespace.
    DefaultDeny {
        /// Namespaces.
        #[arg(long = "namespace", short = 'n', required = true)]
        namespaces: Vec<String>,
        /// Also allow DNS to kube-dns.
        #[arg(long)]
        allow_dns: bool,
    },
    /// Policies from an intent: `frontend may GET /api/v1/.* and POST /api/v1/users on api-server:8080`.
    Intent {
        /// The sentence.
        intent: String,
        /// Namespace.
        #[arg(long, short = 'n', default_value = "default")]
        namespace: String,
        /// The label naming workloads.
        #[arg(long, default_value = "app")]
        label: String,
    },
}

#[derive(Args)]
pub struct Input {
    /// Manifests (Namespaces, Pods, policies; YAML or JSON, multi-document,
    /// `kind: List`), or a directory of them (e.g. a cluster of `mcnet render`;
    /// Helm `values.yaml` files are skipped). Repeatable.
    #[arg(long = "manifests", value_name = "FILE", required = true)]
    manifests: Vec<String>,
}

#[derive(Args)]
pub struct EvalArgs {
    #[command(flatten)]
    input: Input,
    /// A JSON array of queries: {"from": {"pod": "ns/name"} | {"ip": "a.b.c.d"}, "to": ..., "port": N, "protocol": "TCP", "http"?: {...}}.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["from", "to"])]
    queries: Option<String>,
    /// Source: `namespace/pod` or an IP.
    #[arg(long, requires = "to")]
    from: Option<String>,
    /// Destination: `namespace/pod` or an IP.
    #[arg(long)]
    to: Option<String>,
    /// Destination port (TCP, UDP, SCTP).
    #[arg(long)]
    port: Option<u16>,
    /// TCP, UDP, SCTP, ICMP or ICMPv6.
    #[arg(long, default_value = "TCP")]
    protocol: String,
    /// The ICMP or ICMPv6 message type (with `--protocol ICMP|ICMPv6`).
    #[arg(long = "type", alias = "icmp-type", value_name = "TYPE")]
    icmp_type: Option<u8>,
    /// Kafka API key (`produce`, `fetch`, ...): judges one Kafka request at L7.
    #[arg(long, conflicts_with_all = ["method", "dns_name", "kafka_role"])]
    kafka_api_key: Option<String>,
    /// Kafka role (`produce` or `consume`): every request of the role must be allowed.
    #[arg(long, conflicts_with_all = ["method", "dns_name"])]
    kafka_role: Option<String>,
    /// Kafka topic of the request.
    #[arg(long)]
    kafka_topic: Option<String>,
    /// Kafka client id of the request.
    #[arg(long)]
    kafka_client_id: Option<String>,
    /// DNS name queried: judges one DNS query at L7.
    #[arg(long, conflicts_with = "method")]
    dns_name: Option<String>,
    /// HTTP method (judges one request at L7).
    #[arg(long, requires = "path")]
    method: Option<String>,
    /// HTTP path.
    #[arg(long, requires = "method")]
    path: Option<String>,
    /// HTTP header `Name: value`. Repeatable.
    #[arg(long = "header", requires = "method")]
    headers: Vec<String>,
    /// Output format.
    #[arg(long, short = 'O', value_enum, default_value_t = Format::Text)]
    output: Format,
}

pub fn run(cmd: PolicyCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PolicyCommand::Eval(a) => eval(*a),
        PolicyCommand::Matrix {
            input,
            ports,
            output,
        } => matrix(&input, ports, output),
        PolicyCommand::Diff {
            old,
            new,
            manifests,
            ports,
            output,
        } => diff(&old, &new, &manifests, ports, output),
        PolicyCommand::Lint { input, output } => lint(&input, output),
        PolicyCommand::Generate { what } => generate(what),
        PolicyCommand::Compile { input, output } => compile(&input, output),
        PolicyCommand::Replay(a) => crate::replay_cmd::run(&a),
    }
}

/// Loads manifests; `Ok(None)` after printing the problems when they are invalid.
/// The files behind `--manifests` arguments: a file as given, a directory
/// as every `.yaml`, `.yml` and `.json` file under it, in name order, but
/// Helm values (`values.yaml`).
pub fn load(files: &[String]) -> anyhow::Result<Option<Manifests>> {
    let texts: Vec<(String, String)> = mcnet_core::policy::manifest_files(files)?
        .iter()
        .map(|f| {
            let name = f.display().to_string();
            let text = read(&name)?;
            Ok((name, text))
        })
        .collect::<anyhow::Result<_>>()?;
    // A directory (a rendered cluster) holds other kinds by design.
    let from_dir = files.iter().any(|f| std::path::Path::new(f).is_dir());
    match Manifests::load(texts.iter().map(|(n, t)| (n.as_str(), t.as_str()))) {
        Ok(m) => {
            for w in &m.warnings {
                if from_dir && w.code == Code::ManifestIgnored {
                    tracing::debug!("{w}");
                } else {
                    tracing::warn!("{w}");
                }
            }
            Ok(Some(m))
        }
        Err(mcnet_core::Error::Invalid { problems, .. }) => {
            eprintln!(
                "the manifests are invalid ({} problem{}):",
                problems.len(),
                if problems.len() == 1 { "" } else { "s" }
            );
            for p in &problems {
                eprintln!("  [{}] {}", p.code, p.message);
                if !p.path.is_empty() {
                    eprintln!("      at {}", p.path);
                }
            }
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

fn endpoint(s: &str) -> QueryEndpoint {
    if s.parse::<std::net::IpAddr>().is_ok() {
        QueryEndpoint {
            pod: None,
            ip: Some(s.to_string()),
        }
    } else {
        QueryEndpoint {
            pod: Some(s.to_string()),
            ip: None,
        }
    }
}

fn describe(e: &QueryEndpoint) -> String {
    e.pod.clone().or_else(|| e.ip.clone()).unwrap_or_default()
}

/// Evaluates a queries file against manifests and prints the verdicts (the demo's step).
pub fn eval_files(manifests: &[String], queries: &str) -> anyhow::Result<ExitCode> {
    eval(EvalArgs {
        input: Input {
            manifests: manifests.to_vec(),
        },
        queries: Some(queries.to_string()),
        from: None,
        to: None,
        port: None,
        protocol: "TCP".into(),
        icmp_type: None,
        kafka_api_key: None,
        kafka_role: None,
        kafka_topic: None,
        kafka_client_id: None,
        dns_name: None,
        method: None,
        path: None,
        headers: Vec::new(),
        output: Format::Text,
    })
}

fn eval(a: EvalArgs) -> anyhow::Result<ExitCode> {
    let queries: Vec<Query> = match (&a.queries, &a.from) {
        (Some(file), _) => {
            let text = read(file)?;
            serde_json::from_str(&text)
                .or_else(|_| serde_yaml::from_str(&text))
                .with_context(|| format!("`{file}` is not a JSON array of queries"))?
        }
        (None, Some(from)) => {
            let protocol = Proto::parse(&a.protocol)
                .filter(|p| *p != Proto::Any)
                .with_context(|| {
                    format!(
                        "--protocol {}: expected TCP, UDP, SCTP, ICMP or ICMPv6",
                        a.protocol
                    )
                })?;
            let port = match (protocol.is_icmp(), a.icmp_type, a.port) {
                (true, Some(t), None) => u16::from(t),
                // As in a queries file, the port may carry the type.
                (true, None, Some(p)) if p <= 255 => p,
                (true, None, Some(p)) => anyhow::bail!("--port {p}: an ICMP type is 0–255"),
                (true, None, None) => {
                    anyhow::bail!("--protocol {protocol} needs --type (the message type)")
                }
                (true, Some(_), Some(_)) => {
                    anyhow::bail!("give the ICMP type once: --type, not --port too")
                }
                (false, Some(_), _) => anyhow::bail!("--type is for --protocol ICMP or ICMPv6"),
                (false, None, port) => port.context("--port is required with --from")?,
            };
            let kafka = if a.kafka_api_key.is_some() || a.kafka_role.is_some() {
                Some(KafkaRequest {
                    role: a.kafka_role.clone(),
                    api_key: a.kafka_api_key.clone().map(|k| match k.parse::<u16>() {
                        Ok(n) => KafkaApiKey::Number(n),
                        Err(_) => KafkaApiKey::Name(k),
                    }),
                    api_version: None,
                    client_id: a.kafka_client_id.clone(),
                    topic: a.kafka_topic.clone(),
                })
            } else {
                None
            };
            let dns = a.dns_name.clone().map(|name| DnsRequest { name });
            let http = a.method.as_ref().map(|m| HttpRequest {
                method: m.clone(),
                path: a.path.clone().unwrap_or_default(),
                headers: a
                    .headers
                    .iter()
                    .filter_map(|h| {
                        h.split_once(':')
                            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                    })
                    .collect::<BTreeMap<_, _>>(),
                host: None,
            });
            vec![Query {
                http,
                kafka,
                dns,
                ..Query::l4(
                    endpoint(from),
                    endpoint(a.to.as_deref().unwrap_or_default()),
                    port,
                    protocol,
                )
            }]
        }
        (None, None) => anyhow::bail!("give --queries FILE, or --from, --to and --port"),
    };
    let Some(m) = load(&a.input.manifests)? else {
        return Ok(ExitCode::from(1));
    };
    // What the engine cannot enforce is said on every evaluation.
    for d in &m.not_enforced {
        eprintln!("warning: [{}] {}: {}", d.code, d.path, d.message);
    }
    let c = Compiled::new(&m);
    let mut outcomes = Vec::with_capacity(queries.len());
    for (i, q) in queries.iter().enumerate() {
        match c.eval(q) {
            Ok(o) => outcomes.push(o),
            Err(e) => {
                eprintln!(
                    "error: query {i} ({} → {}): {e}",
                    describe(&q.from),
                    describe(&q.to)
                );
                return Ok(ExitCode::from(1));
            }
        }
    }
    match a.output {
        Format::Json => print_json(&outcomes)?,
        Format::Text => {
            for (q, o) in queries.iter().zip(&outcomes) {
                let mark = match o.verdict {
                    Decision::Allow => "ALLOW",
                    Decision::Deny => "DENY ",
                    Decision::NotEvaluable => "N/E  ",
                };
                let port = if q.protocol.is_icmp() {
                    format!("{} type {}", q.protocol, q.port)
                } else {
                    format!("{}/{}", q.port, q.protocol)
                };
                println!("{mark} {} → {} {port}", describe(&q.from), describe(&q.to));
                println!("      {}", o.explanation);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn matrix(input: &Input, ports: Vec<PortProto>, output: Format) -> anyhow::Result<ExitCode> {
    let Some(m) = load(&input.manifests)? else {
        return Ok(ExitCode::from(1));
    };
    let c = Compiled::new(&m);
    let ports = if ports.is_empty() {
        analysis::policy_ports(&c)
    } else {
        ports
    };
    let ports = if ports.is_empty() {
        vec![PortProto {
            port: 80,
            proto: Proto::Tcp,
        }]
    } else {
        ports
    };
    let mx = Matrix::compute(&c, &ports);
    let pairs = mx.allowed_pairs();
    match output {
        Format::Json => {
            let n = mx.pods.len();
            let by_port: Vec<serde_json::Value> = ports
                .iter()
                .enumerate()
                .map(|(pi, pp)| {
                    let mut allowed = Vec::new();
                    for a in 0..n {
                        for b in 0..n {
                            if mx.allowed(pi, a, b) {
                                allowed.push([mx.pods[a].clone(), mx.pods[b].clone()]);
                            }
                        }
                    }
                    serde_json::json!({"port": pp.port, "protocol": pp.proto, "allowed_pairs": pairs[pi], "allowed": allowed})
                })
                .collect();
            print_json(
                &serde_json::json!({"pods": mx.pods, "identities": mx.identities.len(), "ports": by_port}),
            )?;
        }
        Format::Text => {
            println!("{} pods, {} identities; rows are sources, columns destinations; . allowed, X denied", mx.pods.len(), mx.identities.len());
            for (pi, pp) in ports.iter().enumerate() {
                println!(
                    "\n{pp}: {} of {} pod pairs allowed",
                    pairs[pi],
                    mx.pods.len() * mx.pods.len()
                );
                if mx.pods.len() > 40 {
                    continue;
                }
                let w = mx.pods.iter().map(String::len).max().unwrap_or(0);
                print!("{:w$} ", "");
                for (j, _) in mx.pods.iter().enumerate() {
                    print!("{}", j % 10);
                }
                println!();
                for (a, name) in mx.pods.iter().enumerate() {
                    print!("{name:w$} ");
                    for b in 0..mx.pods.len() {
                        print!("{}", if mx.allowed(pi, a, b) { '.' } else { 'X' });
                    }
                    println!();
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn diff(
    old: &str,
    new: &str,
    extra: &[String],
    ports: Vec<PortProto>,
    output: Format,
) -> anyhow::Result<ExitCode> {
    let side = |f: &str| -> Vec<String> { extra.iter().cloned().chain([f.to_string()]).collect() };
    let (Some(mo), Some(mn)) = (load(&side(old))?, load(&side(new))?) else {
        return Ok(ExitCode::from(1));
    };
    let (co, cn) = (Compiled::new(&mo), Compiled::new(&mn));
    let ports = if ports.is_empty() {
        let mut p = analysis::policy_ports(&co);
        p.extend(analysis::policy_ports(&cn));
        p.sort();
        p.dedup();
        p
    } else {
        ports
    };
    let d = analysis::diff(&co, &cn, &ports);
    match output {
        Format::Json => print_json(&d)?,
        Format::Text => {
            println!(
                "compared {} ports: {} connection{} opened, {} closed",
                ports.len(),
                d.opened.len(),
                if d.opened.len() == 1 { "" } else { "s" },
                d.closed.len()
            );
            for c in &d.opened {
                println!("  + {} → {} {}/{}", c.from, c.to, c.port, c.protocol);
            }
            for c in &d.closed {
                println!("  - {} → {} {}/{}", c.from, c.to, c.port, c.protocol);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn lint(input: &Input, output: Format) -> anyhow::Result<ExitCode> {
    let Some(m) = load(&input.manifests)? else {
        return Ok(ExitCode::from(1));
    };
    let c = Compiled::new(&m);
    // Errors first: fields the engine reads but cannot enforce.
    let errors = m.not_enforced.clone();
    let mut findings = errors.clone();
    findings.extend(analysis::lint(&c));
    match output {
        Format::Json => print_json(&serde_json::json!({
            "clean": findings.is_empty(),
            "errors": errors,
            "findings": findings,
        }))?,
        Format::Text => {
            if findings.is_empty() {
                println!("no findings");
            }
            for f in &errors {
                println!("error [{}] {}: {}", f.code, f.path, f.message);
            }
            for f in &findings[errors.len()..] {
                println!("[{}] {}", f.code, f.message);
            }
        }
    }
    Ok(ExitCode::from(if findings.is_empty() { 0 } else { 1 }))
}

fn generate(what: GenerateCommand) -> anyhow::Result<ExitCode> {
    let docs: Vec<serde_json::Value> = match what {
        GenerateCommand::DefaultDeny {
            namespaces,
            allow_dns,
        } => namespaces
            .iter()
            .flat_map(|ns| {
                let mut v = vec![generate::default_deny(ns)];
                if allow_dns {
                    v.push(generate::allow_dns(ns));
                }
                v
            })
            .collect(),
        GenerateCommand::Intent {
            intent,
            namespace,
            label,
        } => match Intent::parse(&intent) {
            Ok(i) => i.policies(&namespace, &label),
            Err(e) => {
                eprintln!("error: {e}");
                return Ok(ExitCode::from(1));
            }
        },
    };
    for d in docs {
        println!("---");
        print!("{}", serde_yaml::to_string(&d)?);
    }
    Ok(ExitCode::SUCCESS)
}

fn compile(input: &Input, output: Format) -> anyhow::Result<ExitCode> {
    let Some(m) = load(&input.manifests)? else {
        return Ok(ExitCode::from(1));
    };
    let c = Compiled::new(&m);
    let stats = analysis::stats(&c);
    match output {
        Format::Json => {
            let states: BTreeMap<NumericIdentity, Vec<serde_json::Value>> = c
                .states
                .keys()
                .map(|&id| {
                    let entries = c
                        .map_state(id)
                        .into_iter()
                        .map(|(k, v)| serde_json::json!({"key": k, "verdict": v}))
                        .collect();
                    (id, entries)
                })
                .collect();
            print_json(
                &serde_json::json!({"stats": stats, "identities": c.identities, "map_state": states}),
            )?;
        }
        Format::Text => {
            println!(
                "{} pods → {} pod identities, {} CIDR identities; {} policies; {} map entries",
                stats.pods,
                stats.pod_identities,
                stats.cidr_identities,
                stats.policies,
                stats.entries
            );
            for x in c
                .identities
                .iter()
                .filter(|x| x.id >= mcnet_core::policy::compile::FIRST_USER_IDENTITY)
            {
                println!("\nidentity {}: {}", x.id, x.describe(&c.inventory));
                for (k, v) in c.map_state(x.id) {
                    let peer = if k.peer == mcnet_core::policy::compile::WILDCARD {
                        "*".to_string()
                    } else {
                        k.peer.to_string()
                    };
                    let ports = if k.lo == k.hi {
                        k.lo.to_string()
                    } else {
                        format!("{}-{}", k.lo, k.hi)
                    };
                    println!(
                        "  {:<7} peer {:<9} {:<4} {:<11} {:?}",
                        k.direction.to_string(),
                        peer,
                        k.proto.to_string(),
                        ports,
                        v
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
