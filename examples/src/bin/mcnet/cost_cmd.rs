//! `mcnet cost`.

use std::process::ExitCode;

use clap::Args;
use mcnet_core::cost::{self, Optimisations, Prices, Traffic};

use crate::output::{print_json, read, Format};

#[derive(Args)]
pub struct CostArgs {
    /// Topology file.
    pub file: String,
    /// Traffic matrix (YAML or JSON): `flows: [{from, to, gb_per_month}]`, `to` a cluster or `internet`.
    #[arg(long)]
    pub traffic: String,
    /// Price table overriding the embedded one (same format as mcnet-core/data/prices.yaml).
    #[arg(long)]
    pub prices: Option<String>,
    /// What-if: bytes left after compression (0.6 = 40% smaller).
    #[arg(long, default_value_t = 0.6)]
    pub compression: f64,
    /// What-if: share of cross-cloud traffic a cache answers.
    #[arg(long, default_value_t = 0.3)]
    pub cache_hit: f64,
    /// Also write the estimate as Prometheus metrics
    /// (`mcnet_cost_monthly_usd{topology, item}`) to this file, atomically:
    /// for the node exporter's textfile collector, which the rendered
    /// `CostOverBudget` alert reads through.
    #[arg(long, value_name = "FILE")]
    pub metrics_file: Option<String>,
    /// Output format.
    #[arg(long, short = 'O', value_enum, default_value_t = Format::Text)]
    pub output: Format,
}

pub fn run(a: &CostArgs) -> anyhow::Result<ExitCode> {
    let Some(t) = crate::topology_cmd::load_valid(&a.file)? else {
        return Ok(ExitCode::from(1));
    };
    let prices = match &a.prices {
        Some(p) => Prices::from_yaml(&read(p)?)?,
        None => Prices::embedded(),
    };
    anyhow::ensure!(
        (0.0..=1.0).contains(&a.compression) && (0.0..=1.0).contains(&a.cache_hit),
        "--compression and --cache-hit are fractions between 0 and 1"
    );
    let traffic = Traffic::from_yaml(&read(&a.traffic)?)?;
    let e = match cost::estimate(
        &t,
        &traffic,
        &prices,
        &Optimisations {
            compression_ratio: a.compression,
            cache_hit_rate: a.cache_hit,
        },
    ) {
        Ok(e) => e,
        Err(mcnet_core::Error::Invalid { what, problems }) => {
            eprintln!("{what} is invalid:");
            for p in problems {
                eprintln!("  {p}");
            }
            return Ok(ExitCode::from(1));
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(path) = &a.metrics_file {
        let Some(text) = e.to_prometheus(&t.metadata.name) else {
            anyhow::bail!(
                "--metrics-file: the price table is in {}, and the metric is in US dollars",
                e.currency
            );
        };
        crate::output::write_atomic(path, text.as_bytes())?;
    }
    match a.output {
        Format::Json => print_json(&e)?,
        Format::Text => print_table(&e),
    }
    Ok(ExitCode::SUCCESS)
}

pub fn print_table(e: &cost::Estimate) {
    let c = &e.currency;
    println!("Monthly network cost ({c}); prices: {}", e.prices);
    println!(
        "  {:<12} {:<12} {:>10} {:<14} {:>9} {:>11}   {:>9} {:>9} {:>12}",
        "from", "to", "GB/month", "path", "per GB", "monthly", "via VXC", "peering", "internet VPN"
    );
    let opt = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.2}"));
    for f in &e.flows {
        println!(
            "  {:<12} {:<12} {:>10.0} {:<14} {:>9.3} {:>11.2}   {:>9} {:>9} {:>12.2}",
            f.flow.from,
            f.flow.to,
            f.flow.gb_per_month,
            f.path,
            f.per_gb,
            f.monthly,
            opt(f.via_vxc),
            opt(f.via_peering),
            f.via_internet_vpn
        );
    }
    for x in &e.fixed {
        println!("  {:<60} {:>11.2}", x.item, x.monthly);
    }
    println!(
        "  transfer {:.2} + fixed {:.2} = total {:.2} {c}/month",
        e.transfer_monthly, e.fixed_monthly, e.total_monthly
    );
    println!("  what if:");
    for (k, v) in &e.what_if {
        println!("    {k:<70} {v:>11.2}");
    }
}
