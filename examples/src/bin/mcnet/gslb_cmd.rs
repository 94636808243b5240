//! `mcnet gslb serve | check`.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

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
    },
    /// Check a configuration; exit 1 when it is invalid.
    Check {
        /// Configuration (YAML).
        config: String,
    },
}

pub fn run(cmd: GslbCommand) -> anyhow::Result<ExitCode> {
    match cmd {
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
            rt.block_on(serve(cfg, listen, metrics))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn serve(cfg: Config, listen: SocketAddr, metrics: Option<SocketAddr>) -> anyhow::Result<()> {
    let g = Gslb::new(&cfg);
    let mut registry = Registry::default();
    g.register(&mut registry);
    let _checks = gslb::spawn_health_checks(&g);
    let (addr, _tasks) = gslb::serve(Arc::clone(&g), listen).await?;
    eprintln!(
        "gslb serving {} name(s) on {addr} (UDP and TCP), TTL {}s",
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
