//! `mcnet probe`.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Args;
use mcnet_cloud::probe::{self, ProbeConfig, Slo};

use crate::output::{print_json, Format};

#[derive(Args)]
pub struct ProbeArgs {
    /// Probe this responder (one that `mcnet probe --serve` runs): exit 0
    /// when every ADR success metric is met, 1 otherwise.
    #[arg(long, required_unless_present = "serve", conflicts_with = "serve")]
    pub target: Option<SocketAddr>,
    /// Run a responder (TCP and UDP echo) on this address, in the foreground.
    #[arg(long, value_name = "ADDR")]
    pub serve: Option<SocketAddr>,
    /// TCP connections to attempt.
    #[arg(long, default_value_t = 1000)]
    pub connects: u32,
    /// Request/response round trips (64 bytes each way).
    #[arg(long, default_value_t = 10_000)]
    pub requests: u32,
    /// Megabytes for the throughput test.
    #[arg(long, default_value_t = 32)]
    pub bulk_mb: usize,
    /// UDP datagrams for the loss test.
    #[arg(long, default_value_t = 20_000)]
    pub datagrams: u32,
    /// Output format.
    #[arg(long, short = 'O', value_enum, default_value_t = Format::Text)]
    pub output: Format,
}

pub fn run(a: &ProbeArgs) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    if let Some(addr) = a.serve {
        return rt.block_on(async move {
            let (bound, _tasks) = probe::responder(addr).await?;
            eprintln!("probe responder on {bound} (TCP and UDP echo)");
            tokio::signal::ctrl_c().await?;
            Ok(ExitCode::SUCCESS)
        });
    }
    let target = a.target.expect("clap requires --target without --serve");
    let cfg = ProbeConfig {
        connects: a.connects,
        requests: a.requests,
        bulk_bytes: a.bulk_mb << 20,
        datagrams: a.datagrams,
        ..ProbeConfig::new(target)
    };
    eprintln!(
        "probing {target}: {} connections, {} requests, {} MB, {} datagrams",
        a.connects, a.requests, a.bulk_mb, a.datagrams
    );
    let r = rt.block_on(probe::run(&cfg, &Slo::default()))?;
    match a.output {
        Format::Json => print_json(&r)?,
        Format::Text => {
            println!(
                "{target}: {}/{} connections ({:.0}/s); latency p50 {:.3} ms, p95 {:.3} ms, p99 {:.3} ms; {:.0} Mbit/s; loss {:.4}% ({}/{})",
                r.connects_ok, r.connects_attempted, r.connects_per_second,
                r.latency_p50_ms, r.latency_p95_ms, r.latency_p99_ms, r.throughput_mbps,
                r.loss_percent, r.datagrams_sent - r.datagrams_received, r.datagrams_sent
            );
            for s in &r.slo {
                println!(
                    "  [{}] {} {}: measured {:.4}",
                    if s.met { "ok" } else { "FAIL" },
                    s.name,
                    s.limit,
                    s.measured
                );
            }
        }
    }
    Ok(ExitCode::from(if r.pass { 0 } else { 1 }))
}
