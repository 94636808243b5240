//! `mcnet gslb serve | check`.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Subcommand;
use mcnet_cloud::gslb::{self, Config, Gslb};
use mcnet_core::metrics::Registry;

use crate::output::read;

#[derive(Subcommand)]
pub enum GslbCommand {
    /// Serve DNS (UDP and TCP) for the configured names, answering from health, in the foreground.
    Serve {
        /// Configuration (YAML; see docs/gslb.md).
        #[arg(long)]
        config: String,
        /// DNS address, e.g. 127.0.0.1:5353.
        #[arg(long)]
        listen: SocketAddr,
        /// Serve Prometheus metrics on http://ADDR/metrics.
        #[arg(long, value_name = "ADDR")]
        metrics: Option<SocketAddr>,
        #[command(flatten)]
        limits: TcpLimits,
    },
    /// The configuration for a topology's `loadBalancing` hostnames: one
    /// endpoint per target cluster at its ingress address, each with the
    /// same health check. Prints YAML for `gslb serve --config`.
    Config {
        /// Topology file.
        topology: String,
        /// A cluster's ingress (load balancer) address, `CLUSTER=IP`;
        /// repeatable. Clusters not given are at the address the topology
        /// models for their network's hosts (the tenth of its first CIDR),
        /// which the real load balancer will not have: give them.
        #[arg(long = "ingress", value_name = "CLUSTER=IP")]
        ingress: Vec<String>,
        /// The health check's port on each ingress (default: the
        /// topology's `loadBalancing.healthCheck`, as every `--health-*`).
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
        health_port: Option<u16>,
        /// The health check's HTTP path (2xx or 3xx is healthy).
        #[arg(long, conflicts_with = "health_tcp")]
        health_path: Option<String>,
        /// Check with a TCP connect instead of HTTP.
        #[arg(long)]
        health_tcp: bool,
        /// Interval between checks.
        #[arg(long, value_parser = parse_timeout, value_name = "DURATION")]
        health_interval: Option<Duration>,
    },
    /// Check a configuration; exit 1 when it is invalid.
    Check {
        /// Configuration (YAML).
        config: String,
    },
}

/// The DNS TCP limits (`mcnet_cloud::gslb::ServeOptions`).
#[derive(clap::Args)]
pub struct TcpLimits {
    /// Open DNS TCP connections at most; at the cap new ones are closed at once.
    #[arg(long, default_value_t = 512, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    tcp_max_connections: u32,
    /// Close a DNS TCP connection that starts no query for this long (e.g. 10s, 500ms).
    #[arg(long, default_value = "10s", value_parser = parse_timeout, value_name = "DURATION")]
    tcp_idle_timeout: Duration,
    /// Close a DNS TCP connection whose query does not arrive in full within this.
    #[arg(long, default_value = "5s", value_parser = parse_timeout, value_name = "DURATION")]
    tcp_read_timeout: Duration,
    /// Close a DNS TCP connection whose answer is not written within this.
    #[arg(long, default_value = "5s", value_parser = parse_timeout, value_name = "DURATION")]
    tcp_write_timeout: Duration,
}

impl TcpLimits {
    fn options(&self) -> gslb::ServeOptions {
        gslb::ServeOptions {
            max_tcp_connections: self.tcp_max_connections as usize,
            tcp_idle_timeout: self.tcp_idle_timeout,
            tcp_read_timeout: self.tcp_read_timeout,
            tcp_write_timeout: self.tcp_write_timeout,
            ..gslb::ServeOptions::default()
        }
    }
}

/// Parses `500ms`, `10s`, `2m` (or plain seconds); positive, at most an hour.
fn parse_timeout(s: &str) -> Result<Duration, String> {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = n
        .parse()
        .map_err(|_| format!("`{s}` is not a duration like 10s or 500ms"))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        _ => return Err(format!("`{s}`: the unit must be ms, s or m")),
    };
    if d.is_zero() || d > Duration::from_secs(3600) {
        return Err(format!("`{s}`: from 1ms to 1h"));
    }
    Ok(d)
}

/// This process's soft limit of open files (Linux; `None` elsewhere).
fn open_files_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Descriptors the rest of the process needs besides DNS TCP connections:
/// stdio, the runtime, the UDP and listening sockets, the metrics
/// connections (32 at most) and health checks.
const FD_RESERVE: u64 = 96;

pub fn run(cmd: GslbCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        GslbCommand::Config {
            topology,
            ingress,
            health_port,
            health_path,
            health_tcp,
            health_interval,
        } => {
            let t = mcnet_core::topology::Topology::from_str_strict(&read(&topology)?)?;
            let mut given = std::collections::BTreeMap::new();
            for i in &ingress {
                let (c, ip) = i
                    .split_once('=')
                    .ok_or_else(|| anyhow::anyhow!("--ingress `{i}`: expected CLUSTER=IP"))?;
                if t.cluster(c).is_none() {
                    anyhow::bail!("--ingress `{i}`: no cluster named `{c}` in {topology}");
                }
                let ip: std::net::IpAddr = ip
                    .parse()
                    .map_err(|e| anyhow::anyhow!("--ingress `{i}`: `{ip}`: {e}"))?;
                given.insert(c.to_string(), ip);
            }
            // The topology's check, as the cloud load balancers run it;
            // each flag overrides one part.
            let mut health = gslb::HealthTemplate::from(&t.spec.load_balancing.health_check);
            if let Some(p) = health_port {
                health.port = p;
            }
            if let Some(p) = health_path {
                health.path = Some(p);
            }
            if health_tcp {
                health.path = None;
            }
            if let Some(i) = health_interval {
                let interval = i.as_millis().clamp(100, 3_600_000) as u64;
                health.interval_ms = interval;
                health.timeout_ms = health.timeout_ms.min(interval);
            }
            let at = |c: &mcnet_core::topology::Cluster| {
                given.get(&c.name).copied().or_else(|| {
                    t.network(&c.network)
                        .and_then(mcnet_core::reach::node_address)
                })
            };
            match gslb::from_topology(&t, at, &health) {
                Ok(c) => {
                    print!("{}", serde_yaml::to_string(&c)?);
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("{topology}: {e}");
                    Ok(ExitCode::from(1))
                }
            }
        }
        GslbCommand::Check { config } => match Config::from_yaml(&read(&config)?) {
            Ok(c) => {
                println!("{config}: {} name(s), valid", c.records.len());
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                eprintln!("{config}: {e}");
                Ok(ExitCode::from(1))
            }
        },
        GslbCommand::Serve {
            config,
            listen,
            metrics,
            limits,
        } => {
            let cfg = match Config::from_yaml(&read(&config)?) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{config}: {e}");
                    return Ok(ExitCode::from(1));
                }
            };
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            rt.block_on(serve(cfg, listen, metrics, limits.options()))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn serve(
    cfg: Config,
    listen: SocketAddr,
    metrics: Option<SocketAddr>,
    options: gslb::ServeOptions,
) -> anyhow::Result<()> {
    // Raising the soft limit needs setrlimit(2), which this binary does not
    // link; a cap the limit cannot hold is reported, and at the limit the
    // acceptor backs off instead of spinning.
    if let Some(soft) = open_files_limit() {
        let need = options.max_tcp_connections as u64 + FD_RESERVE;
        if need > soft {
            eprintln!(
                "warning: --tcp-max-connections {} needs about {need} open files but the limit is {soft} \
                 (ulimit -n); TCP accepts will back off at the limit",
                options.max_tcp_connections
            );
        }
    }
    let g = Gslb::new(&cfg);
    let mut registry = Registry::default();
    g.register(&mut registry);
    let _checks = gslb::spawn_health_checks(&g);
    let limits = format!(
        "TCP: at most {} connections, idle timeout {:?}, read timeout {:?}",
        options.max_tcp_connections, options.tcp_idle_timeout, options.tcp_read_timeout
    );
    let (addr, _tasks) = gslb::serve_with(Arc::clone(&g), listen, options).await?;
    eprintln!(
        "gslb serving {} name(s) on {addr} (UDP and TCP), TTL {}s; {limits}",
        cfg.records.len(),
        cfg.ttl
    );
    if let Some(m) = metrics {
        let registry = Arc::new(registry);
        let l = tokio::net::TcpListener::bind(m).await?;
        eprintln!("metrics on http://{}/metrics", l.local_addr()?);
        tokio::spawn(crate::metrics_http::serve(l, registry));
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    eprintln!("gslb stopped");
    Ok(())
}
