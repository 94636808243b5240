//! `mcnet mesh ca init | ca issuer | cert issue | gateway | apply | check`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use clap::{Args, Subcommand};
use mcnet_mesh::gateway::{self, GatewayConfig, GatewayLimits, ProbeOptions};
use mcnet_mesh::identity::{
    check_trust_domain, issuer_trust_domain, IssuerCa, TrustAnchor, TrustBundle, WorkloadId,
    ANCHOR_LIFETIME, MAX_LIFETIME,
};
use mcnet_mesh::multicluster;
use mcnet_mesh::store::{self, IdentityDir};
use mcnet_mesh::tls::{Authorization, DefaultPolicy, HandshakeFailure, TlsIdentity};

use crate::output::{print_json, Format};

#[derive(Subcommand)]
pub enum MeshCommand {
    /// Certificate authority.
    #[command(subcommand)]
    Ca(CaCommand),
    /// Workload certificates.
    #[command(subcommand)]
    Cert(CertCommand),
    /// Run the cross-cluster gateway in the foreground (mTLS in, bytes to the target).
    Gateway(GatewayArgs),
    /// The Linkerd multicluster manifests of a topology (Links, the gateway
    /// Service, remote-access credentials): server-side applied through kube
    /// when a kubeconfig is given (or $KUBECONFIG is set), printed otherwise.
    #[command(visible_alias = "link")]
    Apply(LinkArgs),
    /// Check two clusters' trust material before linking them.
    Check(CheckArgs),
}

#[derive(Subcommand)]
pub enum CaCommand {
    /// Create a trust anchor and an issuer: DIR/ca.crt, DIR/issuer.crt,
    /// DIR/issuer.key (and DIR/ca.key, to keep offline, for future issuers).
    Init {
        /// Output directory.
        #[arg(long)]
        dir: PathBuf,
        /// Trust domain.
        #[arg(long, default_value = "cluster.local")]
        trust_domain: String,
        /// Issuer lifetime (`365d`, `24h`, `90m`, `30s`; at most `36500d`).
        #[arg(long, default_value = "365d", value_parser = parse_duration)]
        issuer_lifetime: Duration,
    },
    /// Create another cluster's issuer under the same anchor: OUT/ca.crt,
    /// OUT/issuer.crt, OUT/issuer.key (needs DIR/ca.key).
    Issuer {
        /// Directory written by `mcnet mesh ca init`.
        #[arg(long)]
        ca: PathBuf,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Issuer lifetime (at most `36500d`).
        #[arg(long, default_value = "365d", value_parser = parse_duration)]
        issuer_lifetime: Duration,
    },
}

#[derive(Subcommand)]
pub enum CertCommand {
    /// Issue a workload certificate: OUT/tls.crt (leaf then issuer), OUT/tls.key, OUT/ca.crt.
    Issue {
        /// Directory written by `mcnet mesh ca init`.
        #[arg(long)]
        ca: PathBuf,
        /// Namespace.
        #[arg(long)]
        namespace: String,
        /// Service account.
        #[arg(long)]
        service_account: String,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Lifetime (`24h` by default, as Linkerd; at most `36500d`).
        #[arg(long, default_value = "24h", value_parser = parse_duration)]
        lifetime: Duration,
    },
}

#[derive(Args)]
pub struct GatewayArgs {
    /// Where remote clusters connect (mTLS), e.g. 127.0.0.1:4143.
    #[arg(long)]
    listen: SocketAddr,
    /// The local target, e.g. 127.0.0.1:8080, for every connection (or,
    /// with `--route`, for none: give one or the other).
    #[arg(long, required_unless_present = "routes", conflicts_with = "routes")]
    target: Option<SocketAddr>,
    /// Route by Linkerd's transport header instead: `NAME:PORT=ADDRESS:PORT`
    /// (e.g. `orders.shop.svc.cluster.local:8080=10.0.1.5:8080`), repeatable.
    /// A client must name one of these destinations or is closed.
    #[arg(long = "route", value_name = "NAME:PORT=ADDR", value_parser = parse_route)]
    routes: Vec<(String, SocketAddr)>,
    /// The gateway's identity: a directory with tls.crt, tls.key and ca.crt
    /// (re-read when they change, for rotation without a restart).
    #[arg(long)]
    identity: PathBuf,
    /// An identity allowed in (Linkerd name, SPIFFE id, `*`, or `*.<suffix>`);
    /// repeatable. Without any, every client chaining to the anchor is allowed.
    #[arg(long = "allow", value_name = "IDENTITY")]
    allow: Vec<String>,
    /// Probe and metrics address (`/ready`, `/metrics`), e.g. 127.0.0.1:4191.
    #[arg(long)]
    probe: Option<SocketAddr>,
    /// Log violations but let them through.
    #[arg(long)]
    audit: bool,
    /// Close a connection whose mTLS handshake has not finished within this
    /// (e.g. 10s, 500ms), and count it as a `timeout` handshake failure.
    #[arg(long, default_value = "10s", value_parser = parse_timeout, value_name = "DURATION")]
    handshake_timeout: Duration,
    /// Open connections at most, handshaking or forwarding; at the cap new
    /// ones are closed at once.
    #[arg(long, default_value_t = 4096, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: u32,
    /// Handshakes in progress at most; at the cap new connections are closed at once.
    #[arg(long, default_value_t = 256, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_handshakes: u32,
    /// Close a probe connection whose request has not arrived within this,
    /// without an answer.
    #[arg(long, default_value = "5s", value_parser = parse_timeout, value_name = "DURATION")]
    probe_read_timeout: Duration,
}

impl GatewayArgs {
    fn limits(&self) -> GatewayLimits {
        GatewayLimits {
            max_connections: self.max_connections as usize,
            max_handshakes: self.max_handshakes as usize,
            probe: ProbeOptions {
                read_timeout: self.probe_read_timeout,
                ..ProbeOptions::default()
            },
            ..GatewayLimits::default()
        }
    }
}

#[derive(Args)]
pub struct LinkArgs {
    /// Topology file.
    file: String,
    /// Trust domain.
    #[arg(long, default_value = "cluster.local")]
    trust_domain: String,
    /// Apply with this kubeconfig (server-side apply, field manager `mcnet`)
    /// instead of printing; default: $KUBECONFIG when set.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Only this cluster's manifests.
    #[arg(long)]
    cluster: Option<String>,
}

#[derive(Args)]
pub struct CheckArgs {
    /// One cluster's CA directory (`mcnet mesh ca init`).
    a: PathBuf,
    /// The other's.
    b: PathBuf,
    /// Output format.
    #[arg(long, short = 'O', value_enum, default_value_t = Format::Text)]
    output: Format,
}

/// Parses `30s`, `90m`, `24h`, `365d` (or plain seconds): a lifetime from
/// one second to [`MAX_LIFETIME`] (`36500d`, 100 years). Anything longer,
/// including numbers past what 64 bits hold, is refused, never wrapped.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    if digits.is_empty() {
        return Err(format!("`{s}` is not a duration like 24h"));
    }
    let unit_secs: u64 = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(format!("`{s}`: unit must be s, m, h or d")),
    };
    let max = MAX_LIFETIME.as_secs();
    let too_long = || {
        format!(
            "`{s}` is longer than the largest accepted lifetime, {}d (100 years)",
            max / 86400
        )
    };
    // Only digits are left, so the one way to fail is a number too large.
    let secs = digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit_secs))
        .filter(|secs| *secs <= max)
        .ok_or_else(too_long)?;
    if secs == 0 {
        return Err("a lifetime must be positive".into());
    }
    Ok(Duration::from_secs(secs))
}

/// Parses a timeout: `500ms`, `10s`, `2m` (or plain seconds), from 1 ms to
/// an hour.
fn parse_timeout(s: &str) -> Result<Duration, String> {
    let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let unit_ms: u64 = match unit {
        "ms" => 1,
        "" | "s" => 1000,
        "m" => 60_000,
        _ => return Err(format!("`{s}`: the unit must be ms, s or m")),
    };
    let hour_ms = 3_600_000;
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit_ms))
        .filter(|ms| (1..=hour_ms).contains(ms))
        .map(Duration::from_millis)
        .ok_or_else(|| format!("`{s}` is not a timeout from 1ms to 1h, like 10s or 500ms"))
}

fn read(p: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(p).with_context(|| format!("cannot read `{}`", p.display()))
}

pub fn run(cmd: MeshCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        MeshCommand::Ca(CaCommand::Init {
            dir,
            trust_domain,
            issuer_lifetime,
        }) => {
            check_trust_domain(&trust_domain)?;
            let anchor = TrustAnchor::generate(&trust_domain, ANCHOR_LIFETIME)?;
            let issuer = anchor.issue_issuer(&trust_domain, issuer_lifetime)?;
            store::write_file(&dir.join("ca.crt"), anchor.ca.cert_pem.as_bytes(), 0o644)?;
            store::write_key(&dir.join("ca.key"), &anchor.ca.key)?;
            store::write_file(
                &dir.join("issuer.crt"),
                issuer.ca.cert_pem.as_bytes(),
                0o644,
            )?;
            store::write_key(&dir.join("issuer.key"), &issuer.ca.key)?;
            eprintln!(
                "wrote {0}/ca.crt (trust anchor root.linkerd.{trust_domain}), {0}/issuer.crt and {0}/issuer.key (identity.linkerd.{trust_domain}); {0}/ca.key signs future issuers: keep it offline",
                dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        MeshCommand::Ca(CaCommand::Issuer {
            ca,
            out,
            issuer_lifetime,
        }) => {
            let ca_pem = read(&ca.join("ca.crt"))?;
            let anchor = TrustAnchor::from_pem(&ca_pem, &read(&ca.join("ca.key"))?)?;
            let td = issuer_trust_domain(&read(&ca.join("issuer.crt"))?)?;
            let issuer = anchor.issue_issuer(&td, issuer_lifetime)?;
            store::write_file(&out.join("ca.crt"), ca_pem.as_bytes(), 0o644)?;
            store::write_file(
                &out.join("issuer.crt"),
                issuer.ca.cert_pem.as_bytes(),
                0o644,
            )?;
            store::write_key(&out.join("issuer.key"), &issuer.ca.key)?;
            eprintln!(
                "wrote {0}/ca.crt, {0}/issuer.crt and {0}/issuer.key",
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        MeshCommand::Cert(CertCommand::Issue {
            ca,
            namespace,
            service_account,
            out,
            lifetime,
        }) => {
            let issuer_pem = read(&ca.join("issuer.crt"))?;
            let td = issuer_trust_domain(&issuer_pem)?;
            let issuer = IssuerCa::from_pem(&issuer_pem, &read(&ca.join("issuer.key"))?, &td)?;
            let id = WorkloadId::new(&namespace, &service_account, &td)?;
            let cert = issuer.issue(&id, lifetime)?;
            store::write_file(&out.join("tls.crt"), cert.chain_pem.as_bytes(), 0o644)?;
            store::write_key(&out.join("tls.key"), &cert.key)?;
            store::write_file(
                &out.join("ca.crt"),
                read(&ca.join("ca.crt"))?.as_bytes(),
                0o644,
            )?;
            eprintln!(
                "wrote {0}/tls.crt, {0}/tls.key, {0}/ca.crt for {1} ({2})",
                out.display(),
                id.linkerd_name(),
                id.spiffe_id()
            );
            Ok(ExitCode::SUCCESS)
        }
        MeshCommand::Gateway(a) => gateway_cmd(a),
        MeshCommand::Apply(a) => link_cmd(a),
        MeshCommand::Check(a) => check_cmd(a),
    }
}

/// `NAME:PORT=ADDR:PORT`, the name checked as the gateway checks headers.
fn parse_route(s: &str) -> Result<(String, SocketAddr), String> {
    let (key, addr) = s
        .split_once('=')
        .ok_or_else(|| format!("route `{s}`: expected NAME:PORT=ADDRESS:PORT"))?;
    let (name, port) = key
        .rsplit_once(':')
        .ok_or_else(|| format!("route `{s}`: expected NAME:PORT before `=`"))?;
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("route `{s}`: port `{port}` is not 1..=65535"))?;
    let h = mcnet_mesh::gateway::TransportHeader {
        port,
        name: Some(name.to_string()),
    };
    let check = mcnet_mesh::gateway::TransportHeader::decode(
        &h.encode()[mcnet_mesh::gateway::transport::PREFACE.len() + 4..],
    );
    check.map_err(|e| format!("route `{s}`: {e}"))?;
    let addr: SocketAddr = addr
        .parse()
        .map_err(|e| format!("route `{s}`: target `{addr}`: {e}"))?;
    Ok((h.route_key(), addr))
}

fn gateway_cmd(a: GatewayArgs) -> anyhow::Result<ExitCode> {
    let dir = IdentityDir::new(&a.identity);
    let (cert, bundle) = dir.load()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let identity = TlsIdentity::new(cert.clone(), bundle)?;
        let authz = if a.allow.is_empty() {
            Authorization {
                default: DefaultPolicy::AllAuthenticated,
                audit: a.audit,
                ..Authorization::default()
            }
        } else {
            Authorization {
                audit: a.audit,
                ..Authorization::allow_only(a.allow.clone())
            }
        };
        let gw = gateway::start_with(
            identity.clone(),
            GatewayConfig {
                listen: a.listen,
                // Unused when routing by header.
                target: a.target.unwrap_or(SocketAddr::from(([127, 0, 0, 1], 9))),
                routes: a.routes.iter().cloned().collect(),
                probe: a.probe,
                authz,
                handshake_timeout: a.handshake_timeout,
            },
            a.limits(),
        )
        .await?;
        eprintln!(
            "gateway {} listening on {} (mTLS) → {}{}; allowing {}",
            cert.id.linkerd_name(),
            gw.addr,
            match a.target {
                Some(t) => t.to_string(),
                None => format!("{} routes", a.routes.len()),
            },
            gw.probe_addr
                .map(|p| format!("; probe http://{p}/ready"))
                .unwrap_or_default(),
            if a.allow.is_empty() {
                "every identity of the trust anchor".to_string()
            } else {
                a.allow.join(", ")
            }
        );
        // Rotation: new files take effect for new handshakes, certificate,
        // key and bundle together; anything inconsistent leaves all three.
        let dir_path = dir.path().display().to_string();
        let _watch = mcnet_mesh::rotation::DirWatch::spawn(
            dir,
            identity.clone(),
            Duration::from_millis(500),
            move |event| match event {
                mcnet_mesh::rotation::DirEvent::Reloaded => {
                    eprintln!("identity reloaded from {dir_path}")
                }
                mcnet_mesh::rotation::DirEvent::Rejected(e) => {
                    eprintln!(
                        "identity reload failed (keeping the old one): {}",
                        mcnet_core::error::Chain(&e)
                    )
                }
                _ => {}
            },
        );
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        let m = gw.metrics.clone();
        gw.shutdown().await;
        use std::sync::atomic::Ordering::Relaxed;
        eprintln!(
            "gateway stopped: {} connections, {} bytes in, {} bytes out, {} denied, {} audited, {} refused at the caps",
            m.connections.load(Relaxed),
            m.bytes_in.load(Relaxed),
            m.bytes_out.load(Relaxed),
            m.authz_denials.load(Relaxed),
            m.authz_audited.load(Relaxed),
            m.refused.load(Relaxed)
        );
        for why in HandshakeFailure::ALL {
            let n = m.handshake_failures(why);
            if n > 0 {
                eprintln!("  handshake failures ({why}): {n}");
            }
        }
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

fn link_cmd(a: LinkArgs) -> anyhow::Result<ExitCode> {
    let text = crate::output::read(&a.file)?;
    let t = mcnet_core::topology::Topology::from_str_strict(&text)?;
    let domain = t
        .spec
        .load_balancing
        .hostnames
        .first()
        .and_then(|h| h.name.split_once('.').map(|(_, d)| d.to_string()))
        .unwrap_or_else(|| "mesh.internal".into());
    let mut out: Vec<(String, serde_json::Value)> = Vec::new();
    for c in &t.spec.clusters {
        if a.cluster.as_ref().is_some_and(|x| x != &c.name) {
            continue;
        }
        out.push((
            c.name.clone(),
            serde_json::to_value(multicluster::gateway_service(&a.trust_domain)?)?,
        ));
        let ra = multicluster::remote_access()?;
        for v in [
            serde_json::to_value(&ra.service_account)?,
            serde_json::to_value(&ra.role)?,
            serde_json::to_value(&ra.binding)?,
            serde_json::to_value(&ra.token)?,
        ] {
            out.push((c.name.clone(), v));
        }
        for o in t.spec.clusters.iter().filter(|o| o.name != c.name) {
            let shares = t
                .spec
                .namespaces
                .iter()
                .any(|n| n.clusters.contains(&c.name) && n.clusters.contains(&o.name));
            if !shares {
                continue;
            }
            let l = multicluster::link(&multicluster::LinkTarget {
                cluster: o.name.clone(),
                gateway_address: format!("linkerd-gateway.{}.{domain}", o.name),
                trust_domain: a.trust_domain.clone(),
            });
            let mut v = serde_json::to_value(&l)?;
            v["apiVersion"] = "multicluster.linkerd.io/v1alpha3".into();
            v["kind"] = "Link".into();
            out.push((c.name.clone(), v));
        }
    }
    let kubeconfig = a
        .kubeconfig
        .clone()
        .or_else(|| std::env::var_os("KUBECONFIG").map(PathBuf::from));
    match kubeconfig {
        Some(path) => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let docs: Vec<serde_json::Value> = out.iter().map(|(_, v)| v.clone()).collect();
            let applied = rt.block_on(multicluster::apply_with_kubeconfig(&path, &docs))?;
            for (kind, name) in applied {
                println!("applied {kind} {name}");
            }
        }
        None => {
            let mut last = String::new();
            for (cluster, v) in &out {
                if *cluster != last {
                    println!("# cluster {cluster}");
                    last = cluster.clone();
                }
                println!("---\n{}", serde_yaml::to_string(v)?.trim_end());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn check_cmd(a: CheckArgs) -> anyhow::Result<ExitCode> {
    let load = |dir: &Path| -> anyhow::Result<multicluster::ClusterTrust> {
        let issuer_pem = read(&dir.join("issuer.crt"))?;
        let td = issuer_trust_domain(&issuer_pem)?;
        Ok(multicluster::ClusterTrust {
            name: dir.display().to_string(),
            bundle: TrustBundle::from_pem(&read(&dir.join("ca.crt"))?)?,
            issuer: IssuerCa::from_pem(&issuer_pem, &read(&dir.join("issuer.key"))?, &td)?,
            now: SystemTime::now(),
        })
    };
    let checks = multicluster::check_link(&load(&a.a)?, &load(&a.b)?)?;
    let failed = checks.iter().any(|c| c.status == "error");
    match a.output {
        Format::Json => print_json(&serde_json::json!({"ok": !failed, "checks": checks}))?,
        Format::Text => {
            for c in &checks {
                println!("[{}] {:<16} {}", c.status, c.name, c.message);
            }
        }
    }
    Ok(ExitCode::from(if failed { 1 } else { 0 }))
}
