//! The network cost model: what a topology and a traffic matrix cost a
//! month, path by path, with what-if comparisons (VXC vs peering vs an
//! internet VPN, and the ADR's compression and caching).
//!
//! Prices are data ([`Prices`], YAML) with their source and date; the
//! embedded table ([`Prices::embedded`]) is a starting point, to be
//! overridden with a user's contract prices.

use crate::diag::Code;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::diag::Diagnostic;
use crate::topology::paths::Connectivity;
use crate::topology::{ProviderKind, Topology};
use crate::{Error, Result};

/// A price table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prices {
    /// Where the prices come from.
    pub source: String,
    /// When they were read (ISO date).
    pub date: String,
    /// Currency.
    pub currency: String,
    /// Per-GB egress to the internet, by cloud (`aws`, `azure`, `gcp`).
    pub internet_egress_per_gb: BTreeMap<String, f64>,
    /// Per-GB egress over a private interconnect (Direct Connect,
    /// ExpressRoute, Cloud Interconnect), by cloud.
    pub interconnect_egress_per_gb: BTreeMap<String, f64>,
    /// Per-GB transfer between regions of the same cloud.
    pub inter_region_per_gb: BTreeMap<String, f64>,
    /// Per-GB transfer over a peering in one region (charged at each side's
    /// rate; 0 where free).
    pub peering_per_gb: BTreeMap<String, f64>,
    /// Hourly price of one site-to-site VPN connection, by cloud.
    pub vpn_per_hour: BTreeMap<String, f64>,
    /// Megaport Cloud Router monthly price by port speed (Mbps).
    pub mcr_monthly: BTreeMap<u32, f64>,
    /// Megaport VXC monthly price by rate limit (Mbps): the smallest listed
    /// speed at or above the VXC's rate applies.
    pub vxc_monthly: BTreeMap<u32, f64>,
    /// Discount by term in months (0.15 = 15% off).
    #[serde(default)]
    pub term_discount: BTreeMap<u32, f64>,
}

const EMBEDDED: &str = include_str!("../data/prices.yaml");

/// Parses YAML (or JSON) into `T`; an error names the field's path.
fn from_yaml<T: serde::de::DeserializeOwned>(text: &str, what: &str, code: Code) -> Result<T> {
    crate::input::check(what, text)?;
    let de = serde_yaml::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| Error::Invalid {
        what: what.into(),
        problems: vec![Diagnostic::new(
            code,
            e.path().to_string(),
            e.inner().to_string(),
        )],
    })
}

/// A price the table lacks.
fn missing(field: impl Into<String>, message: String) -> Error {
    Error::Invalid {
        what: "price table".into(),
        problems: vec![Diagnostic::new(Code::CostPriceMissing, field, message)],
    }
}

/// Hours in a billing month (730, the clouds' convention).
pub const HOURS_PER_MONTH: f64 = 730.0;

impl Prices {
    /// The embedded table (see its `source` and `date`).
    pub fn embedded() -> Prices {
        Prices::from_yaml(EMBEDDED).unwrap_or_else(|e| panic!("embedded price table: {e}"))
    }

    /// Parses a price table.
    pub fn from_yaml(text: &str) -> Result<Prices> {
        from_yaml(text, "price table", Code::CostPrices)
    }

    fn per_gb(&self, table: &BTreeMap<String, f64>, which: &str, cloud: &str) -> Result<f64> {
        table.get(cloud).copied().ok_or_else(|| {
            missing(
                format!("{which}.{cloud}"),
                format!("no `{which}` price for `{cloud}`"),
            )
        })
    }

    fn tier(table: &BTreeMap<u32, f64>, speed: u32) -> Option<f64> {
        table.range(speed..).next().map(|(_, p)| *p)
    }

    fn discount(&self, term: u32) -> f64 {
        self.term_discount
            .range(..=term)
            .next_back()
            .map_or(0.0, |(_, d)| *d)
    }
}

/// Monthly traffic between clusters (or to `internet`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Traffic {
    /// The flows.
    pub flows: Vec<Flow>,
}

/// One flow: GB per month from a cluster to a cluster or `internet`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Flow {
    /// Source cluster.
    pub from: String,
    /// Destination cluster, or `internet`.
    pub to: String,
    /// GB per month.
    pub gb_per_month: f64,
}

impl Traffic {
    /// Parses a traffic matrix (YAML or JSON).
    pub fn from_yaml(text: &str) -> Result<Traffic> {
        from_yaml(text, "traffic matrix", Code::CostTraffic)
    }
}

/// What-if knobs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Optimisations {
    /// Bytes left after compression (0.6 = 40% smaller).
    pub compression_ratio: f64,
    /// Share of cross-cloud requests a cache answers (0.3 = 30%).
    pub cache_hit_rate: f64,
}

impl Default for Optimisations {
    /// The ADR's levers at typical values: gzip on HTTP (ratio 0.6) and a
    /// 30% cache hit rate on cross-cloud reads.
    fn default() -> Self {
        Optimisations {
            compression_ratio: 0.6,
            cache_hit_rate: 0.3,
        }
    }
}

/// The cost of one flow.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FlowCost {
    /// The flow.
    pub flow: Flow,
    /// `interconnect`, `peering`, `inter-region`, `same-network` or `internet`.
    pub path: String,
    /// Price per GB on that path.
    pub per_gb: f64,
    /// Monthly cost.
    pub monthly: f64,
    /// The same flow over a VXC through the Megaport Cloud Router (the
    /// source cloud's interconnect egress), where the MCR reaches both ends.
    pub via_vxc: Option<f64>,
    /// The same flow over a cloud peering (same cloud only: the peering
    /// rate in one region, the inter-region rate across regions).
    pub via_peering: Option<f64>,
    /// The same flow over an internet VPN instead (egress at internet rates).
    pub via_internet_vpn: f64,
}

/// A fixed monthly charge.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FixedCost {
    /// What.
    pub item: String,
    /// Monthly cost (term discount applied).
    pub monthly: f64,
}

/// The whole estimate.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Estimate {
    /// Price table source and date.
    pub prices: String,
    /// Currency.
    pub currency: String,
    /// Per flow.
    pub flows: Vec<FlowCost>,
    /// Megaport ports and VXCs.
    pub fixed: Vec<FixedCost>,
    /// Transfer total.
    pub transfer_monthly: f64,
    /// Fixed total.
    pub fixed_monthly: f64,
    /// Everything.
    pub total_monthly: f64,
    /// What-ifs: name → monthly total.
    pub what_if: BTreeMap<String, f64>,
}

impl Estimate {
    /// The estimate as a Prometheus text exposition, for the node
    /// exporter's textfile collector or a push gateway: the gauge
    /// `mcnet_cost_monthly_usd{topology, item}`, one series for the
    /// transfer total and one per fixed charge (their sum is the total,
    /// which the rendered `CostOverBudget` alert compares with the
    /// budget). `None` when the price table is not in US dollars.
    pub fn to_prometheus(&self, topology: &str) -> Option<String> {
        if self.currency != "USD" {
            return None;
        }
        let escape = |v: &str| {
            v.replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n")
        };
        let mut out = String::from(
            "# HELP mcnet_cost_monthly_usd Estimated monthly network cost in US dollars, by item (mcnet cost).\n\
             # TYPE mcnet_cost_monthly_usd gauge\n",
        );
        let items = std::iter::once(("transfer", self.transfer_monthly))
            .chain(self.fixed.iter().map(|f| (f.item.as_str(), f.monthly)));
        for (item, monthly) in items {
            out.push_str(&format!(
                "mcnet_cost_monthly_usd{{topology=\"{}\",item=\"{}\"}} {monthly}\n",
                escape(topology),
                escape(item)
            ));
        }
        Some(out)
    }
}

fn cloud(kind: ProviderKind) -> &'static str {
    match kind {
        ProviderKind::Aws => "aws",
        ProviderKind::Azure => "azure",
        ProviderKind::Gcp => "gcp",
        _ => "other",
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Estimates the monthly cost of `traffic` over `t` (valid, allocated).
pub fn estimate(
    t: &Topology,
    traffic: &Traffic,
    prices: &Prices,
    opt: &Optimisations,
) -> Result<Estimate> {
    let conn = Connectivity::new(t);
    let bad = |path: String, msg: String| Error::Invalid {
        what: "traffic matrix".into(),
        problems: vec![Diagnostic::new(Code::CostTraffic, path, msg)],
    };
    // Cluster → (cloud, region, network index).
    let locate = |name: &str, i: usize, field: &str| -> Result<(String, String, usize)> {
        let c = t
            .spec
            .clusters
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| {
                bad(
                    format!("flows[{i}].{field}"),
                    format!("cluster `{name}` is not in the topology"),
                )
            })?;
        let n = t
            .spec
            .networks
            .iter()
            .find(|n| n.name == c.network)
            .ok_or_else(|| {
                bad(
                    format!("flows[{i}].{field}"),
                    format!("cluster `{name}` has no network"),
                )
            })?;
        let kind = t
            .spec
            .providers
            .iter()
            .find(|p| p.name == n.provider)
            .map(|p| p.kind)
            .ok_or_else(|| {
                bad(
                    format!("flows[{i}].{field}"),
                    format!("network `{}` has no provider", n.name),
                )
            })?;
        let idx = conn
            .network_index(&n.name)
            .ok_or_else(|| bad(format!("flows[{i}].{field}"), "unknown network".into()))?;
        Ok((cloud(kind).to_string(), n.region.clone(), idx))
    };
    let mut flows = Vec::new();
    // Cluster pairs that would each need a VPN connection without the interconnect.
    let mut vpn_tunnels: std::collections::BTreeSet<(String, String)> = Default::default();
    for (i, f) in traffic.flows.iter().enumerate() {
        if !(f.gb_per_month >= 0.0 && f.gb_per_month.is_finite()) {
            return Err(bad(
                format!("flows[{i}].gb_per_month"),
                "must be a number ≥ 0".into(),
            ));
        }
        let (src_cloud, src_region, src_net) = locate(&f.from, i, "from")?;
        let internet = prices.per_gb(
            &prices.internet_egress_per_gb,
            "internet_egress_per_gb",
            &src_cloud,
        )?;
        let mut via_vxc = None;
        let mut via_peering = None;
        let (path, per_gb) = if f.to == "internet" {
            ("internet".to_string(), internet)
        } else {
            let (dst_cloud, dst_region, dst_net) = locate(&f.to, i, "to")?;
            if src_net != dst_net {
                vpn_tunnels.insert((
                    f.from.clone().min(f.to.clone()),
                    f.from.clone().max(f.to.clone()),
                ));
                if !conn
                    .routers_of(src_net)
                    .is_disjoint(&conn.routers_of(dst_net))
                {
                    let rate = prices.per_gb(
                        &prices.interconnect_egress_per_gb,
                        "interconnect_egress_per_gb",
                        &src_cloud,
                    )?;
                    via_vxc = Some(round2(f.gb_per_month * rate));
                }
                if src_cloud == dst_cloud {
                    let rate = if src_region == dst_region {
                        prices.per_gb(&prices.peering_per_gb, "peering_per_gb", &src_cloud)?
                    } else {
                        prices.per_gb(
                            &prices.inter_region_per_gb,
                            "inter_region_per_gb",
                            &src_cloud,
                        )?
                    };
                    via_peering = Some(round2(f.gb_per_month * rate));
                }
            }
            if src_net == dst_net {
                ("same-network".to_string(), 0.0)
            } else if src_cloud == dst_cloud && conn.peered(src_net, dst_net) {
                if src_region == dst_region {
                    (
                        "peering".to_string(),
                        prices.per_gb(&prices.peering_per_gb, "peering_per_gb", &src_cloud)?,
                    )
                } else {
                    (
                        "inter-region".to_string(),
                        prices.per_gb(
                            &prices.inter_region_per_gb,
                            "inter_region_per_gb",
                            &src_cloud,
                        )?,
                    )
                }
            } else if conn.reachable(src_net, dst_net) {
                (
                    "interconnect".to_string(),
                    prices.per_gb(
                        &prices.interconnect_egress_per_gb,
                        "interconnect_egress_per_gb",
                        &src_cloud,
                    )?,
                )
            } else {
                ("internet".to_string(), internet)
            }
        };
        flows.push(FlowCost {
            flow: f.clone(),
            path,
            per_gb,
            monthly: round2(f.gb_per_month * per_gb),
            via_vxc,
            via_peering,
            via_internet_vpn: round2(f.gb_per_month * internet),
        });
    }
    let mut fixed = Vec::new();
    for r in &t.spec.interconnect.routers {
        let base = Prices::tier(&prices.mcr_monthly, r.speed_mbps).ok_or_else(|| {
            missing(
                "mcr_monthly",
                format!("no MCR price at or above {} Mbps", r.speed_mbps),
            )
        })?;
        let d = prices.discount(r.term_months.unwrap_or(1));
        fixed.push(FixedCost {
            item: format!(
                "MCR {} ({} Mbps, {}-month term)",
                r.name,
                r.speed_mbps,
                r.term_months.unwrap_or(1)
            ),
            monthly: round2(base * (1.0 - d)),
        });
        for v in t
            .spec
            .interconnect
            .vxcs
            .iter()
            .filter(|v| v.router == r.name)
        {
            let base = Prices::tier(&prices.vxc_monthly, v.rate_limit_mbps).ok_or_else(|| {
                missing(
                    "vxc_monthly",
                    format!("no VXC price at or above {} Mbps", v.rate_limit_mbps),
                )
            })?;
            fixed.push(FixedCost {
                item: format!("VXC {} ({} Mbps)", v.name, v.rate_limit_mbps),
                monthly: round2(base * (1.0 - d)),
            });
        }
    }
    // VPN backups: both ends' connections, every hour, used or not.
    let cloud_of_network = |name: &str| {
        t.spec
            .networks
            .iter()
            .find(|n| n.name == name)
            .and_then(|n| t.spec.providers.iter().find(|p| p.name == n.provider))
            .map(|p| cloud(p.kind))
    };
    for v in &t.spec.vpn_backups {
        let ends: Vec<&str> = v
            .networks
            .iter()
            .filter_map(|n| cloud_of_network(n))
            .collect();
        let hourly: f64 = ends
            .iter()
            .map(|c| prices.vpn_per_hour.get(*c).copied().unwrap_or(0.0))
            .sum();
        fixed.push(FixedCost {
            item: format!("VPN backup {} ({})", v.name, ends.join(" ↔ ")),
            monthly: round2(hourly * HOURS_PER_MONTH),
        });
    }
    let transfer: f64 = flows.iter().map(|f| f.monthly).sum();
    let fixed_total: f64 = fixed.iter().map(|f| f.monthly).sum();
    let cross: f64 = flows
        .iter()
        .filter(|f| f.path == "interconnect")
        .map(|f| f.monthly)
        .sum();
    // What-ifs.
    // A VPN connection costs at both ends.
    let vpn_price = |cluster: &str| -> f64 {
        t.spec
            .clusters
            .iter()
            .find(|c| c.name == cluster)
            .and_then(|c| t.spec.networks.iter().find(|n| n.name == c.network))
            .and_then(|n| t.spec.providers.iter().find(|p| p.name == n.provider))
            .and_then(|p| prices.vpn_per_hour.get(cloud(p.kind)).copied())
            .unwrap_or(0.0)
    };
    let vpn_hours: f64 = vpn_tunnels
        .iter()
        .map(|(a, b)| vpn_price(a) + vpn_price(b))
        .sum::<f64>()
        * HOURS_PER_MONTH;
    let all_internet: f64 = flows
        .iter()
        .map(|f| {
            if f.path == "same-network" {
                0.0
            } else {
                f.via_internet_vpn
            }
        })
        .sum();
    let mut what_if = BTreeMap::new();
    what_if.insert("current".into(), round2(transfer + fixed_total));
    what_if.insert(
        "internet VPN instead of the interconnect".into(),
        round2(all_internet + vpn_hours),
    );
    if !t.spec.vpn_backups.is_empty() {
        // An MCR outage: the interconnect's flows between networks with a
        // VPN backup go over it at internet egress rates; the rest stop.
        let network_of = |cluster: &str| {
            t.spec
                .clusters
                .iter()
                .find(|c| c.name == cluster)
                .map(|c| c.network.as_str())
        };
        let backed = |f: &FlowCost| {
            let (Some(a), Some(b)) = (network_of(&f.flow.from), network_of(&f.flow.to)) else {
                return false;
            };
            t.spec
                .vpn_backups
                .iter()
                .any(|v| v.networks.iter().any(|n| n == a) && v.networks.iter().any(|n| n == b))
        };
        let outage: f64 = flows
            .iter()
            .map(|f| match f.path.as_str() {
                "interconnect" if backed(f) => f.via_internet_vpn,
                "interconnect" => 0.0,
                _ => f.monthly,
            })
            .sum();
        what_if.insert(
            "the MCR down: interconnect flows over the VPN backups".into(),
            round2(outage + fixed_total),
        );
    }
    let kept = opt.compression_ratio * (1.0 - opt.cache_hit_rate);
    what_if.insert(
        format!(
            "with compression {:.0}% smaller and {:.0}% cache hits on cross-cloud traffic",
            (1.0 - opt.compression_ratio) * 100.0,
            opt.cache_hit_rate * 100.0
        ),
        round2(transfer - cross + cross * kept + fixed_total),
    );
    Ok(Estimate {
        prices: format!("{} ({})", prices.source, prices.date),
        currency: prices.currency.clone(),
        flows,
        fixed,
        transfer_monthly: round2(transfer),
        fixed_monthly: round2(fixed_total),
        total_monthly: round2(transfer + fixed_total),
        what_if,
    })
}
