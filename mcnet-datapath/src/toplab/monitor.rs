//! The monitoring stack in the lab: Debian's VictoriaMetrics and vmalert in
//! the internet namespace, scraping every node agent's metrics (through
//! each cluster's ingress link) and the lab's interconnect exporter
//! (`mcnet lab exporter`: each VXC's BGP session as its cloud edge's BIRD
//! sees it, and the bytes its link carried), and evaluating the ADR's alert
//! rules from [`mcnet_core::monitoring::alert_rules`], with each `for`
//! shortened to 2 s (the lab's timescale: BGP's hold time is 3 s).

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use mcnet_core::metrics::prometheus_client;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use mcnet_core::topology::paths::Component;
use mcnet_core::topology::Topology;

use super::{spawn_in, write_atomic, TopologyLab, AGENT_METRICS_PORT};
use crate::lab::run;
use crate::{Error, Result};

/// VictoriaMetrics' HTTP port.
pub const VM_PORT: u16 = 8428;
/// vmalert's HTTP port.
pub const VMALERT_PORT: u16 = 8880;
/// The interconnect exporter's port.
pub const EXPORTER_PORT: u16 = 9101;
/// How long an alert's condition must hold in the lab.
const LAB_FOR: &str = "2s";

/// A VXC as the exporter reports it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LabVxc {
    /// The VXC's name.
    pub vxc: String,
    /// Its Megaport Cloud Router.
    pub mcr: String,
    /// The cloud side's BGP address, as the topology declares it.
    pub peer: String,
    /// The VXC's rate limit in the topology, in bits per second.
    pub speed_bits: u64,
    /// The lab's shaping of it (scaled down 10×), in bits per second.
    pub lab_speed_bits: u64,
    /// The edge speaker (`edge NAME`) whose session with the MCR is the VXC's.
    pub edge: String,
    /// (namespace, interface) at the MCR's end and at the edge's.
    pub links: Vec<(String, String)>,
}

/// The lab's monitoring stack.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LabMonitor {
    /// Where it runs (the internet namespace).
    pub netns: String,
    /// Its address there.
    pub addr: Ipv4Addr,
    /// The VXCs the exporter reports.
    pub vxcs: Vec<LabVxc>,
    /// The rules vmalert evaluates.
    pub rules: PathBuf,
}

/// One VXC's state at one moment.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VxcSample {
    /// The VXC.
    pub vxc: String,
    /// Its MCR.
    pub mcr: String,
    /// The cloud side's BGP address.
    pub peer: String,
    /// Whether the edge's session with the MCR is established.
    pub up: bool,
    /// Bytes sent toward the cloud (the MCR's end) and from it (the edge's).
    pub to_cloud_bytes: u64,
    /// Bytes sent from the cloud toward the MCR.
    pub from_cloud_bytes: u64,
    /// The lab's shaping, in bits per second.
    pub speed_bits: u64,
}

/// An alert vmalert reports as firing, or that the lab predicts.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct AlertKey {
    /// The alert's name.
    pub alert: String,
    /// The VXC it is about (the interconnect alerts), else empty.
    pub vxc: String,
}

/// The alerts a failure should fire: `VxcBgpSessionDown` for every VXC of
/// a failed MCR and for every failed VXC.
pub fn predict(t: &Topology, failed: &[Component]) -> BTreeSet<AlertKey> {
    t.spec
        .interconnect
        .vxcs
        .iter()
        .filter(|v| {
            failed.iter().any(|c| match c {
                Component::Router(r) => *r == v.router,
                Component::Vxc(x) => *x == v.name,
                _ => false,
            })
        })
        .map(|v| AlertKey {
            alert: "VxcBgpSessionDown".into(),
            vxc: v.name.clone(),
        })
        .collect()
}

/// Whether a program is on the PATH.
fn have(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

/// The VXCs of `t` as the lab built them.
fn vxcs(t: &Topology, lab: &TopologyLab) -> Vec<LabVxc> {
    t.spec
        .interconnect
        .vxcs
        .iter()
        .map(|v| LabVxc {
            vxc: v.name.clone(),
            mcr: v.router.clone(),
            peer: v
                .bgp
                .peers
                .first()
                .map(|p| p.peer_address.clone())
                .unwrap_or_default(),
            speed_bits: u64::from(v.rate_limit_mbps) * 1_000_000,
            lab_speed_bits: u64::from((v.rate_limit_mbps / 10).max(1)) * 1_000_000,
            edge: format!("edge {}", v.name),
            links: lab
                .links
                .get(&Component::Vxc(v.name.clone()).to_string())
                .cloned()
                .unwrap_or_default(),
        })
        .collect()
}

/// The ADR's rules with the lab's `for`.
fn lab_rules(t: &Topology) -> Value {
    let mut rules = mcnet_core::monitoring::alert_rules(t);
    for g in rules["groups"].as_array_mut().into_iter().flatten() {
        g["interval"] = json!("1s");
        for r in g["rules"].as_array_mut().into_iter().flatten() {
            r["for"] = json!(LAB_FOR);
        }
    }
    rules
}

/// Starts the stack in `netns` (which owns `addr` and reaches every node at
/// its address): the exporter, VictoriaMetrics, vmalert. Without Debian's
/// `victoria-metrics` and `vmalert`, the lab runs without it and says so.
pub(super) fn start(
    t: &Topology,
    lab: &mut TopologyLab,
    dir: &Path,
    (netns, addr): (&str, Ipv4Addr),
    nodes: &[(String, Ipv4Addr)],
    bin: &Path,
) -> Result<()> {
    let missing: Vec<&str> = ["victoria-metrics", "vmalert"]
        .into_iter()
        .filter(|p| !have(p))
        .collect();
    if !missing.is_empty() {
        lab.notes.push(format!(
            "no monitoring stack: {} not installed (Debian's victoria-metrics package)",
            missing.join(" and ")
        ));
        return Ok(());
    }
    let monitor = LabMonitor {
        netns: netns.to_string(),
        addr,
        vxcs: vxcs(t, lab),
        rules: dir.join("rules.yaml"),
    };
    let json_err = |e: serde_json::Error| Error::Spawn {
        command: "serialise the monitoring configuration".into(),
        source: std::io::Error::other(e),
    };
    // JSON is YAML: both tools read it.
    write_atomic(
        &monitor.rules,
        &serde_json::to_vec_pretty(&lab_rules(t)).map_err(json_err)?,
    )?;
    let mut targets: Vec<Value> = nodes
        .iter()
        .map(|(cluster, node)| {
            json!({"targets": [SocketAddrV4::new(*node, AGENT_METRICS_PORT).to_string()],
                "labels": {"cluster": cluster}})
        })
        .collect();
    targets.sort_by_key(|v| v["labels"]["cluster"].to_string());
    let scrape = json!({
        "global": {"scrape_interval": "1s"},
        "scrape_configs": [
            {"job_name": "mcnet-agent", "static_configs": targets},
            {"job_name": "mcnet-interconnect", "static_configs": [
                {"targets": [SocketAddrV4::new(addr, EXPORTER_PORT).to_string()]}
            ]}
        ]
    });
    let scrape_file = dir.join("scrape.yaml");
    write_atomic(
        &scrape_file,
        &serde_json::to_vec_pretty(&scrape).map_err(json_err)?,
    )?;
    lab.monitor = Some(monitor.clone());
    // The lab's state must be on disk before the exporter reads it.
    lab.save()?;
    let s = |v: &dyn std::fmt::Display| v.to_string();
    spawn_in(
        netns,
        bin,
        &[
            s(&"lab"),
            s(&"exporter"),
            s(&"--prefix"),
            s(&lab.prefix),
            s(&"--listen"),
            s(&SocketAddrV4::new(addr, EXPORTER_PORT)),
        ],
        &dir.join("exporter.log"),
        "serving",
        Duration::from_secs(20),
    )?;
    spawn_in(
        netns,
        Path::new("victoria-metrics"),
        &[
            format!("-storageDataPath={}", dir.join("vm").display()),
            format!("-httpListenAddr={addr}:{VM_PORT}"),
            format!("-promscrape.config={}", scrape_file.display()),
            "-search.latencyOffset=0s".into(),
            "-search.disableCache".into(),
        ],
        &dir.join("victoria-metrics.log"),
        "starting http server at",
        Duration::from_secs(30),
    )?;
    spawn_in(
        netns,
        Path::new("vmalert"),
        &[
            format!("-rule={}", monitor.rules.display()),
            format!("-datasource.url=http://{addr}:{VM_PORT}"),
            format!("-httpListenAddr={addr}:{VMALERT_PORT}"),
            // No Alertmanager in the lab (Debian's vmalert 1.79 has no
            // -notifier.blackhole): firing alerts are read from vmalert's
            // API, and its notifications go to a closed port.
            format!("-notifier.url=http://{addr}:9093"),
            "-evaluationInterval=1s".into(),
        ],
        &dir.join("vmalert.log"),
        "starting http server at",
        Duration::from_secs(30),
    )
}

/// A link's byte counters: (sent, received).
fn link_bytes(ns: &str, dev: &str) -> Option<(u64, u64)> {
    let out = run("ip", &["-n", ns, "-s", "-j", "link", "show", "dev", dev]).ok()?;
    let v: Value = serde_json::from_slice(&out.stdout).ok()?;
    let stats = &v.get(0)?["stats64"];
    Some((
        stats["tx"]["bytes"].as_u64()?,
        stats["rx"]["bytes"].as_u64()?,
    ))
}

impl TopologyLab {
    /// Every VXC's BGP session and bytes now (what `mcnet lab exporter`
    /// serves). Empty when the lab runs no monitoring stack.
    pub fn interconnect(&self) -> Vec<VxcSample> {
        let Some(m) = &self.monitor else {
            return Vec::new();
        };
        m.vxcs
            .iter()
            .map(|v| {
                let up = self
                    .speakers
                    .iter()
                    .find(|s| s.what == v.edge)
                    .and_then(|s| self.sessions(s).ok())
                    .is_some_and(|list| list.iter().any(|(name, up)| name == "mcr" && *up));
                let bytes = |i: usize| {
                    v.links
                        .get(i)
                        .and_then(|(ns, dev)| link_bytes(ns, dev))
                        .map_or(0, |b| b.0)
                };
                VxcSample {
                    vxc: v.vxc.clone(),
                    mcr: v.mcr.clone(),
                    peer: v.peer.clone(),
                    up,
                    to_cloud_bytes: bytes(0),
                    from_cloud_bytes: bytes(1),
                    speed_bits: v.lab_speed_bits,
                }
            })
            .collect()
    }

    /// The alerts vmalert reports as firing now.
    pub fn firing_alerts(&self) -> Result<BTreeSet<AlertKey>> {
        let m = self.monitor.as_ref().ok_or_else(|| Error::Command {
            command: "firing alerts".into(),
            stderr: format!("lab `{}` runs no monitoring stack", self.prefix),
        })?;
        let addr = SocketAddrV4::new(m.addr, VMALERT_PORT);
        let body = crate::netns::run_in(&crate::netns::named(&m.netns), || {
            http_get(addr, "/api/v1/alerts")
        })
        .map_err(|source| Error::Netns {
            what: format!("entering {}", m.netns),
            source,
        })?
        .map_err(|source| Error::Spawn {
            command: format!("GET http://{addr}/api/v1/alerts"),
            source,
        })?;
        let v: Value = serde_json::from_str(&body).map_err(|e| Error::Command {
            command: format!("GET http://{addr}/api/v1/alerts"),
            stderr: format!(
                "not JSON ({e}): {}",
                body.chars().take(200).collect::<String>()
            ),
        })?;
        Ok(v["data"]["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["state"] == "firing")
            .map(|a| AlertKey {
                alert: a["name"].as_str().unwrap_or_default().to_string(),
                vxc: a["labels"]["vxc"].as_str().unwrap_or_default().to_string(),
            })
            .collect())
    }

    /// Polls the firing alerts until they equal `want` (or `limit` passes);
    /// returns the last answer.
    pub fn wait_for_alerts(
        &self,
        want: &BTreeSet<AlertKey>,
        limit: Duration,
    ) -> Result<BTreeSet<AlertKey>> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let got = self.firing_alerts()?;
            if &got == want || std::time::Instant::now() > deadline {
                return Ok(got);
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

/// A bounded HTTP/1.0 GET (so the answer is not chunked) to a lab
/// address: 2 s timeouts, at most 1 MiB of answer.
fn http_get(addr: SocketAddrV4, path: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr.into(), Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.set_write_timeout(Some(Duration::from_secs(2)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut out = Vec::new();
    s.take(1 << 20).read_to_end(&mut out)?;
    let text = String::from_utf8_lossy(&out);
    Ok(text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default())
}

/// The interconnect exporter's metrics, from the latest [`VxcSample`]s
/// (refreshed by whoever runs it, as `mcnet lab exporter` does):
/// `mcnet_vxc_bgp_session_up{mcr, vxc, peer}`,
/// `mcnet_vxc_transmit_bytes_total{vxc, direction}` (`to-cloud`,
/// `from-cloud`) and `mcnet_vxc_speed_bits{vxc}`.
#[derive(Debug, Default)]
pub struct InterconnectCollector(pub std::sync::Arc<std::sync::Mutex<Vec<VxcSample>>>);

impl prometheus_client::collector::Collector for InterconnectCollector {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder<'_>,
    ) -> std::result::Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::counter::ConstCounter;
        use prometheus_client::metrics::gauge::ConstGauge;
        use prometheus_client::metrics::MetricType;
        let samples = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut e = encoder.encode_descriptor(
            "mcnet_vxc_bgp_session_up",
            "Whether the VXC's BGP session between the MCR and the cloud edge is established",
            None,
            MetricType::Gauge,
        )?;
        for s in &samples {
            let labels = [("mcr", s.mcr.as_str()), ("vxc", &s.vxc), ("peer", &s.peer)];
            ConstGauge::new(i64::from(s.up)).encode(e.encode_family(&labels)?)?;
        }
        let mut e = encoder.encode_descriptor(
            "mcnet_vxc_transmit_bytes",
            "Bytes the VXC carried, toward the cloud and from it",
            None,
            MetricType::Counter,
        )?;
        for s in &samples {
            for (direction, bytes) in [
                ("to-cloud", s.to_cloud_bytes),
                ("from-cloud", s.from_cloud_bytes),
            ] {
                let labels = [("vxc", s.vxc.as_str()), ("direction", direction)];
                ConstCounter::new(bytes).encode(e.encode_family(&labels)?)?;
            }
        }
        let mut e = encoder.encode_descriptor(
            "mcnet_vxc_speed_bits",
            "The VXC's rate limit, in bits per second",
            None,
            MetricType::Gauge,
        )?;
        for s in &samples {
            let labels = [("vxc", s.vxc.as_str())];
            ConstGauge::new(i64::try_from(s.speed_bits).unwrap_or(i64::MAX))
                .encode(e.encode_family(&labels)?)?;
        }
        Ok(())
    }
}
