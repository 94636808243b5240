//! The lab's global load balancing: an "internet" namespace with a link to
//! each cluster's node (the cluster's public ingress, at its node address),
//! mcnet's GSLB serving the topology's `loadBalancing` hostnames there
//! (configuration from [`mcnet_cloud::gslb::from_topology`]), health-checking
//! each ingress over its link: the node agent's metrics endpoint, which the
//! node's datapath serves, as a load balancer checks a node.
//!
//! An ingress fails when its link goes down (`ingress/CLUSTER`); nothing of
//! the clouds' private paths (MCR, VXCs, peerings) lies on an ingress path,
//! so failing those leaves every answer as it was, and [`predict`] says so.
//! Answers are read with `dig`, a real DNS client.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use mcnet_core::topology::{RoutingPolicy, Topology};

use crate::lab::run;
use crate::Result;

/// The port the node agent serves its metrics on (Cilium's agent's).
pub const AGENT_METRICS_PORT: u16 = 9962;

/// The GSLB of a lab.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LabGslb {
    /// The "internet" namespace it runs in.
    pub netns: String,
    /// Its DNS address.
    pub dns: SocketAddrV4,
    /// Each cluster's ingress address as the GSLB answers it.
    pub ingress: Vec<(String, Ipv4Addr)>,
    /// Its configuration file.
    pub config: PathBuf,
    /// Its log.
    pub log: PathBuf,
}

/// What the GSLB answered for a hostname, against the prediction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GslbRow {
    /// The hostname.
    pub name: String,
    /// Its routing policy.
    pub policy: RoutingPolicy,
    /// Clusters the answer may hold (failover: exactly these; weighted,
    /// latency and geo: one or more of these).
    pub predicted: Vec<String>,
    /// Clusters answered, over several queries.
    pub observed: Vec<String>,
    /// Whether they agree.
    pub agree: bool,
    /// How long the answers took to settle, milliseconds.
    pub settled_ms: u64,
}

/// The clusters `name`'s answer may hold when `down` ingresses are failed:
/// the healthy targets (every target when none is: the GSLB fails open),
/// and for `failover` only those of the lowest priority.
pub fn predict(t: &Topology, name: &str, down: &[String]) -> Vec<String> {
    let Some(h) = t
        .spec
        .load_balancing
        .hostnames
        .iter()
        .find(|h| h.name == name)
    else {
        return Vec::new();
    };
    let mut up: Vec<_> = h
        .targets
        .iter()
        .filter(|x| !down.contains(&x.cluster))
        .collect();
    if up.is_empty() {
        up = h.targets.iter().collect();
    }
    if h.policy == RoutingPolicy::Failover {
        let low = up.iter().map(|x| x.priority).min();
        up.retain(|x| Some(x.priority) == low);
    }
    let mut out: Vec<String> = up.iter().map(|x| x.cluster.clone()).collect();
    out.sort();
    out.dedup();
    out
}

impl LabGslb {
    /// The A records answered for `name`, read with `dig` in the internet
    /// namespace.
    fn query(&self, name: &str) -> Result<Vec<Ipv4Addr>> {
        let out = run(
            "nsenter",
            &[
                &format!("--net=/run/netns/{}", self.netns),
                "--",
                "dig",
                &format!("@{}", self.dns.ip()),
                "-p",
                &self.dns.port().to_string(),
                "+short",
                "+time=1",
                "+tries=2",
                name,
                "A",
            ],
        )?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect())
    }

    fn cluster_of(&self, a: Ipv4Addr) -> String {
        self.ingress
            .iter()
            .find(|(_, x)| *x == a)
            .map_or_else(|| format!("unknown {a}"), |(c, _)| c.clone())
    }

    /// Queries every hostname until its answers agree with [`predict`] or
    /// `settle` passes; several queries each time, since weighted answers
    /// vary.
    pub fn check(&self, t: &Topology, down: &[String], settle: Duration) -> Result<Vec<GslbRow>> {
        let mut rows = Vec::new();
        for h in &t.spec.load_balancing.hostnames {
            let predicted = predict(t, &h.name, down);
            let want: BTreeSet<&String> = predicted.iter().collect();
            let start = Instant::now();
            let (observed, agree) = loop {
                let mut seen = BTreeSet::new();
                for _ in 0..6 {
                    for a in self.query(&h.name)? {
                        seen.insert(self.cluster_of(a));
                    }
                }
                let got: BTreeSet<&String> = seen.iter().collect();
                let agree = match h.policy {
                    RoutingPolicy::Failover => got == want,
                    _ => !got.is_empty() && got.is_subset(&want),
                };
                if agree || start.elapsed() > settle {
                    break (seen.into_iter().collect::<Vec<_>>(), agree);
                }
                std::thread::sleep(Duration::from_millis(200));
            };
            rows.push(GslbRow {
                name: h.name.clone(),
                policy: h.policy,
                predicted,
                observed,
                agree,
                settled_ms: start.elapsed().as_millis() as u64,
            });
        }
        Ok(rows)
    }
}

/// The health check the lab's GSLB runs on each ingress: the agent's
/// metrics, every 300 ms, unhealthy after two failures.
pub(super) fn health() -> mcnet_cloud::gslb::HealthTemplate {
    mcnet_cloud::gslb::HealthTemplate {
        path: Some("/metrics".into()),
        port: AGENT_METRICS_PORT,
        interval_ms: 300,
        timeout_ms: 250,
        healthy: 1,
        unhealthy: 2,
    }
}

/// Starts `mcnet gslb serve` in `g.netns` with `g.config`; returns once it serves.
pub(super) fn start(g: &LabGslb, bin: &std::path::Path) -> Result<()> {
    let args = [
        "gslb".to_string(),
        "serve".into(),
        "--config".into(),
        g.config.display().to_string(),
        "--listen".into(),
        g.dns.to_string(),
    ];
    super::spawn_in(
        &g.netns,
        bin,
        &args,
        &g.log,
        "gslb serving",
        Duration::from_secs(20),
    )
}
