//! A whole topology on one machine: network namespaces for the networks,
//! the clusters' nodes and pods, the transit gateways, the Megaport Cloud
//! Routers and each VXC's cloud edge, with real BGP (BIRD 2) between the
//! MCR and the edges and between the edges and the networks, so that the
//! routes a packet follows are the ones BGP chose.
//!
//! Every address is the topology's own mapped into 198.18.0.0/15
//! ([`AddressMap`]); no namespace has a route out. The lab outlives the
//! process that built it (`mcnet lab up`); its state (the map, the
//! namespaces, the BGP speakers) is kept in `/run/mcnet-lab/PREFIX/`, and
//! [`TopologyLab::down`] removes everything with the prefix even when `up`
//! was killed half-way: it kills every process in the lab's namespaces
//! before deleting them.
//!
//! What the lab checks is every layer of [`mcnet_core::reach`]: cluster
//! CIDRs and masquerading, cloud routes, peering, transit and the MCR's BGP
//! with its prefix filters and limits, and failures; with the datapath
//! binary, policy (each node runs the eBPF datapath) and the mesh (each
//! linked cluster runs mcnet's gateway, and `verify` calls every
//! `SERVICE.NS.svc.clusterset.local` as a meshed pod's proxy would). L7
//! rules are audited, not enforced: `verify` probes them at L4.

mod bird;
mod gslb;
mod map;
mod mesh;
mod monitor;

pub use gslb::{predict as predict_gslb, GslbRow, LabGslb, AGENT_METRICS_PORT};
pub use map::{AddressMap, Block};
pub use mesh::LabGateway;
pub use monitor::{
    predict as predict_alerts, AlertKey, InterconnectCollector, LabMonitor, LabVxc, VxcSample,
    EXPORTER_PORT, VMALERT_PORT, VM_PORT,
};

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnet::{IpNet, Ipv4Net};
use serde::{Deserialize, Serialize};

use mcnet_core::reach::{self, Layer, Model, Verdict};
use mcnet_core::topology::paths::Component;
use mcnet_core::topology::{CniChaining, Protocol, Topology, VxcTargetKind};

use crate::lab::{run, serve, tcp_ok, udp_ok};
use crate::{Error, Result};

/// Where labs keep their state.
pub const STATE_ROOT: &str = "/run/mcnet-lab";
/// Probes in flight at once during `verify`.
const PROBES: usize = 16;
/// The layers the lab reproduces with real packets.
pub const CHECKED_LAYERS: [Layer; 3] = [Layer::ClusterCidr, Layer::CloudRoute, Layer::Clustermesh];

/// A BGP speaker of the lab.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Speaker {
    /// What it stands for (`mcr multicloud-mcr`, `edge vxc-aws-dx`, `router aws-vpc`).
    pub what: String,
    /// Its namespace.
    pub netns: String,
    /// Its configuration file.
    pub config: PathBuf,
    /// Its control socket.
    pub socket: PathBuf,
}

/// A pod of the lab.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Pod {
    /// `cluster/namespace/pod`.
    pub key: String,
    /// Its namespace.
    pub netns: String,
    /// Its lab address.
    pub lab: Ipv4Addr,
    /// Its topology address.
    pub topology: Ipv4Addr,
    /// Ports it serves.
    pub ports: Vec<u16>,
}

/// A lab, as built and as recorded in its state file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TopologyLab {
    /// Namespace prefix.
    pub prefix: String,
    /// The topology's name.
    pub topology: String,
    /// The address map.
    pub map: AddressMap,
    /// Every namespace, in creation order.
    pub namespaces: Vec<String>,
    /// The pods.
    pub pods: Vec<Pod>,
    /// The BGP speakers.
    pub speakers: Vec<Speaker>,
    /// Links that a `--fail` takes down: component → (namespace, interface).
    pub links: BTreeMap<String, Vec<(String, String)>>,
    /// What the lab could not reproduce on this machine.
    pub notes: Vec<String>,
    /// The datapaths running in the nodes: (namespace, log file).
    pub datapaths: Vec<(String, PathBuf)>,
    /// The manifests the lab's pods come from, kept so that `verify`
    /// predicts with the same ones.
    pub manifests: Vec<ManifestSource>,
    /// The Linkerd multicluster gateways (mcnet's), one per linked cluster.
    #[serde(default)]
    pub gateways: Vec<LabGateway>,
    /// The GSLB, when the topology has global hostnames.
    #[serde(default)]
    pub gslb: Option<LabGslb>,
    /// The monitoring stack, beside the GSLB.
    #[serde(default)]
    pub monitor: Option<LabMonitor>,
}

/// A manifest text and the cluster it describes (`None`: every cluster).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ManifestSource {
    /// The cluster, or every cluster.
    pub cluster: Option<String>,
    /// Where it came from.
    pub name: String,
    /// The YAML.
    pub text: String,
}

impl ManifestSource {
    /// The topology's workloads as pods, one per cluster their namespace
    /// spans, with no policy (see [`reach::topology_pods`]).
    pub fn from_topology(t: &Topology) -> Vec<ManifestSource> {
        reach::topology_pods(t)
            .into_iter()
            .map(|(scope, name, text)| ManifestSource {
                cluster: match scope {
                    reach::Scope::Cluster(c) => Some(c),
                    _ => None,
                },
                name,
                text,
            })
            .collect()
    }
}

/// The reachability model of a topology with these manifests.
pub fn model(t: &Topology, manifests: &[ManifestSource]) -> Result<Model> {
    Model::new(
        t,
        manifests.iter().map(|m| {
            let scope = match &m.cluster {
                Some(c) => reach::Scope::Cluster(c.clone()),
                None => reach::Scope::All,
            };
            (scope, m.name.as_str(), m.text.as_str())
        }),
    )
    .map_err(|e| Error::Command {
        command: "reach model".into(),
        stderr: e.to_string(),
    })
}

fn invalid(field: &str, value: &str, reason: &'static str) -> Error {
    Error::InvalidLab {
        field: field.to_string(),
        value: value.to_string(),
        reason,
    }
}

/// Checks a lab prefix: 1–6 lower-case letters or digits (it names
/// namespaces and a state directory).
pub fn check_prefix(prefix: &str) -> Result<()> {
    let ok = !prefix.is_empty()
        && prefix.len() <= 6
        && prefix
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "prefix",
            prefix,
            "must be 1–6 lower-case letters or digits",
        ))
    }
}

fn state_dir(prefix: &str) -> PathBuf {
    Path::new(STATE_ROOT).join(prefix)
}

/// Where the lab's node agents pin their maps and links: one directory per
/// lab, so `down` removes them even when the agents were killed.
fn pin_root(prefix: &str) -> PathBuf {
    PathBuf::from(format!("/sys/fs/bpf/mcnet-lab-{prefix}"))
}

fn ip(args: &[&str]) -> Result<()> {
    run("ip", args).map(|_| ())
}

fn in_ns(ns: &str, program: &str, args: &[&str]) -> Result<std::process::Output> {
    let mut all = vec!["netns", "exec", ns, program];
    all.extend_from_slice(args);
    run("ip", &all)
}

fn v4(a: IpAddr) -> Option<Ipv4Addr> {
    match a {
        IpAddr::V4(a) => Some(a),
        IpAddr::V6(_) => None,
    }
}

/// Writes a file through a temporary one and a rename, so that a reader
/// never sees half of it.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let result = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|source| Error::Spawn {
        command: format!("write {}", path.display()),
        source,
    })
}

/// Hands out /30s for the lab's own links.
struct Infra(u32);

impl Infra {
    fn pair(&mut self) -> (Ipv4Addr, Ipv4Addr) {
        let base = map::INFRA + 4 * self.0;
        self.0 += 1;
        (Ipv4Addr::from(base + 1), Ipv4Addr::from(base + 2))
    }
}

/// Builds labs; its namespaces are recorded as they are made, so that a
/// failure half-way tears down what exists.
struct Builder<'t> {
    lab: TopologyLab,
    t: &'t Topology,
    /// The `mcnet` binary that runs each node's datapath, if any.
    datapath: Option<PathBuf>,
    infra: Infra,
    dir: PathBuf,
}

impl Builder<'_> {
    fn ns(&mut self, suffix: &str) -> Result<String> {
        let name = format!("{}-{suffix}", self.lab.prefix);
        ip(&["netns", "add", &name])?;
        self.lab.namespaces.push(name.clone());
        ip(&["-n", &name, "link", "set", "lo", "up"])?;
        in_ns(&name, "sysctl", &["-qw", "net.ipv4.ip_forward=1"])?;
        in_ns(&name, "sysctl", &["-qw", "net.ipv4.conf.all.rp_filter=0"])?;
        in_ns(
            &name,
            "sysctl",
            &["-qw", "net.ipv4.conf.default.rp_filter=0"],
        )?;
        Ok(name)
    }

    /// A veth between two namespaces with point-to-point addresses.
    fn link(&mut self, a: (&str, &str, Ipv4Addr), b: (&str, &str, Ipv4Addr)) -> Result<()> {
        ip(&[
            "-n", a.0, "link", "add", a.1, "type", "veth", "peer", "name", b.1, "netns", b.0,
        ])?;
        for ((ns, dev, local), remote) in [(a, b.2), (b, a.2)] {
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &local.to_string(),
                "peer",
                &format!("{remote}/32"),
                "dev",
                dev,
            ])?;
            ip(&["-n", ns, "link", "set", dev, "up"])?;
        }
        Ok(())
    }

    fn route(&self, ns: &str, to: &str, via: Ipv4Addr) -> Result<()> {
        ip(&["-n", ns, "route", "replace", to, "via", &via.to_string()])
    }

    fn speaker(&mut self, what: String, ns: &str, conf: String) -> Result<()> {
        let i = self.lab.speakers.len();
        let config = self.dir.join(format!("bird{i}.conf"));
        let socket = self.dir.join(format!("bird{i}.ctl"));
        write_atomic(&config, conf.as_bytes())?;
        let s = Speaker {
            what,
            netns: ns.to_string(),
            config,
            socket,
        };
        start(&s)?;
        self.lab.speakers.push(s);
        Ok(())
    }
}

/// Stops every process in a namespace: SIGTERM, so a datapath detaches its
/// programs and a gateway closes its listener, then SIGKILL for what is
/// still running after 2 s, waiting (at most 5 s more) until each is gone.
fn kill_all_in(ns: &str) {
    // Listed again before SIGKILL: only what is still in the namespace.
    for (signal, wait) in [(libc::SIGTERM, 2), (libc::SIGKILL, 5)] {
        let Ok(out) = run("ip", &["netns", "pids", ns]) else {
            return;
        };
        let pids: Vec<i32> = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        signal_and_wait(&pids, signal, Duration::from_secs(wait));
    }
}

/// Sends `signal` to each of `pids` still running and waits until none is.
fn signal_and_wait(pids: &[i32], signal: libc::c_int, wait: Duration) {
    let running = |pid: &i32| {
        // Gone, or a zombie (exited, waiting for a parent that may never reap it).
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                s.rsplit(')')
                    .next()
                    .map(|rest| !rest.trim_start().starts_with('Z'))
            })
            .unwrap_or(false)
    };
    for pid in pids.iter().filter(|p| running(p)) {
        // SAFETY: kill(2) with a pid the kernel listed for the namespace; no memory is touched.
        unsafe { libc::kill(*pid, signal) };
    }
    let deadline = Instant::now() + wait;
    while pids.iter().any(running) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts a BGP speaker (BIRD daemonises).
fn start(s: &Speaker) -> Result<()> {
    let (c, k) = (
        s.config.display().to_string(),
        s.socket.display().to_string(),
    );
    in_ns(&s.netns, "bird", &["-c", &c, "-s", &k]).map(|_| ())
}

/// BGP local preference of routes learnt over a VPN backup (BIRD's
/// default is 100): the interconnect's routes are preferred.
const VPN_LOCAL_PREF: u32 = 50;

/// The private ASN of network router `i`.
fn router_asn(i: usize) -> u32 {
    4_200_000_000 + i as u32
}

/// The edge's ASN: the VXC's declared peer ASN, else the cloud's usual one.
fn edge_asn(v: &mcnet_core::topology::Vxc) -> u32 {
    v.bgp.peers.first().map_or(
        match v.target.kind {
            VxcTargetKind::AwsDirectConnect => 64512,
            VxcTargetKind::AzureExpressroute => 12076,
            VxcTargetKind::GcpPartnerInterconnect => 16550,
        },
        |p| p.peer_asn,
    )
}

impl TopologyLab {
    /// Builds the lab for a topology (with `auto` CIDRs allocated) and the
    /// pods of `model`. Needs root, iproute2, iptables and BIRD 2. On
    /// failure, what was built is torn down.
    ///
    /// With `datapath` (a binary with mcnet's `datapath enforce` command,
    /// such as `mcnet` itself), each cluster's node runs the eBPF datapath
    /// on its pods' interfaces, enforcing that cluster's policies with its
    /// ClusterMesh peers' pods known by identity; L7 rules are audited
    /// (passed at L4), since `verify` probes with TCP.
    pub fn up(
        t: &Topology,
        manifests: Vec<ManifestSource>,
        prefix: &str,
        datapath: Option<&Path>,
    ) -> Result<TopologyLab> {
        check_prefix(prefix)?;
        let model = model(t, &manifests)?;
        let dir = state_dir(prefix);
        let listed = run("ip", &["netns", "list"])?;
        let taken = String::from_utf8_lossy(&listed.stdout)
            .lines()
            .any(|l| l.starts_with(&format!("{prefix}-")));
        if taken || dir.join("lab.json").exists() {
            return Err(invalid(
                "prefix",
                prefix,
                "a lab with this prefix exists (perhaps half-built); run `mcnet lab down --prefix` with it first",
            ));
        }
        std::fs::create_dir_all(&dir).map_err(|source| Error::Spawn {
            command: format!("mkdir {}", dir.display()),
            source,
        })?;
        let mut b = Builder {
            lab: TopologyLab {
                prefix: prefix.to_string(),
                topology: t.metadata.name.clone(),
                map: AddressMap::new(t)?,
                namespaces: Vec::new(),
                pods: Vec::new(),
                speakers: Vec::new(),
                links: BTreeMap::new(),
                notes: Vec::new(),
                datapaths: Vec::new(),
                manifests,
                gateways: Vec::new(),
                gslb: None,
                monitor: None,
            },
            t,
            datapath: datapath.map(Path::to_path_buf),
            infra: Infra(0),
            dir: dir.clone(),
        };
        let built = build(&mut b, &model);
        // The state is written even when building failed, so `down` finds it.
        let saved = b.lab.save();
        match built.and(saved) {
            Ok(()) => Ok(b.lab),
            Err(e) => {
                let _ = TopologyLab::down(prefix);
                Err(e)
            }
        }
    }

    fn save(&self) -> Result<()> {
        let path = state_dir(&self.prefix).join("lab.json");
        let text = serde_json::to_vec_pretty(self).map_err(|e| Error::Spawn {
            command: "serialise lab state".into(),
            source: std::io::Error::other(e),
        })?;
        write_atomic(&path, &text)
    }

    /// The lab that is up under `prefix`.
    pub fn load(prefix: &str) -> Result<TopologyLab> {
        check_prefix(prefix)?;
        let path = state_dir(prefix).join("lab.json");
        let text = std::fs::read(&path).map_err(|source| Error::Spawn {
            command: format!("read {} (is the lab up?)", path.display()),
            source,
        })?;
        serde_json::from_slice(&text).map_err(|e| Error::Spawn {
            command: format!("parse {}", path.display()),
            source: std::io::Error::other(e),
        })
    }

    /// Removes every trace of the lab `prefix`: kills the processes in its
    /// namespaces (the BGP speakers, servers), deletes the namespaces (and
    /// with them every link), and the state directory. Returns the
    /// namespaces deleted. Safe to run twice, and after a killed `up`.
    pub fn down(prefix: &str) -> Result<Vec<String>> {
        check_prefix(prefix)?;
        let out = run("ip", &["netns", "list"])?;
        let mut gone = Vec::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let name = line.split_whitespace().next().unwrap_or("");
            if !name.starts_with(&format!("{prefix}-")) {
                continue;
            }
            kill_all_in(name);
            ip(&["netns", "del", name])?;
            gone.push(name.to_string());
        }
        for dir in [state_dir(prefix), pin_root(prefix)] {
            if dir.exists() {
                std::fs::remove_dir_all(&dir).map_err(|source| Error::Spawn {
                    command: format!("rm -r {}", dir.display()),
                    source,
                })?;
            }
        }
        Ok(gone)
    }

    /// Waits until every BGP session of every speaker is established.
    pub fn wait_for_bgp(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut down = Vec::new();
            for s in &self.speakers {
                match self.sessions(s) {
                    Ok(list) => down.extend(
                        list.into_iter()
                            .filter(|(_, up)| !up)
                            .map(|(n, _)| format!("{} {n}", s.what)),
                    ),
                    Err(_) => down.push(format!("{} (not answering)", s.what)),
                }
            }
            if down.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::Command {
                    command: "wait for BGP".into(),
                    stderr: format!("sessions not established: {}", down.join(", ")),
                });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// A speaker's BGP sessions and whether each is established.
    fn sessions(&self, s: &Speaker) -> Result<Vec<(String, bool)>> {
        let out = run(
            "birdc",
            &["-s", &s.socket.display().to_string(), "show", "protocols"],
        )?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.split_whitespace().nth(1) == Some("BGP"))
            .map(|l| {
                let name = l.split_whitespace().next().unwrap_or("").to_string();
                (name, l.contains("Established"))
            })
            .collect())
    }

    /// Takes a component down: an MCR's BGP speaker is killed; a VXC,
    /// peering or transit gateway has its links set down.
    pub fn fail(&self, c: &Component) -> Result<()> {
        match c {
            Component::Router(name) => {
                let what = format!("mcr {name}");
                for s in self.speakers.iter().filter(|s| s.what == what) {
                    let pids = run("ip", &["netns", "pids", &s.netns])?;
                    for pid in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
                        if let Ok(pid) = pid.parse::<i32>() {
                            // SAFETY: kill(2) on a pid of the MCR's namespace; no memory is touched.
                            unsafe { libc::kill(pid, libc::SIGKILL) };
                        }
                    }
                }
                Ok(())
            }
            other => self.set_links(&other.to_string(), "down"),
        }
    }

    /// Brings a failed component back.
    pub fn restore(&self, c: &Component) -> Result<()> {
        match c {
            Component::Router(name) => {
                let what = format!("mcr {name}");
                for s in self.speakers.iter().filter(|s| s.what == what) {
                    let _ = std::fs::remove_file(&s.socket);
                    start(s)?;
                }
                Ok(())
            }
            other => self.set_links(&other.to_string(), "up"),
        }
    }

    /// The `SERVICE.NS.svc.clusterset.local` rows: every pod to every
    /// service port of the topology, probed as the pod's proxy would call
    /// it: a backend in its own cluster directly, else through each linked
    /// cluster's gateway (mTLS when the pod is meshed, in the clear when
    /// not). Unchecked when the lab runs no gateway.
    fn service_jobs<'a>(
        &'a self,
        model: &Model,
        failed: &[Component],
        by_key: &BTreeMap<&str, &'a Pod>,
        v: &mut Verification,
        jobs: &mut Vec<(Row, Probe<'a>)>,
    ) {
        let t = model.topology();
        let dir = state_dir(&self.prefix);
        for from in &self.pods {
            let Ok(src) = model.pod_ref(&from.key, "source") else {
                continue;
            };
            let client = if mesh::meshed(t, &src.cluster, &src.namespace) {
                let sa = model
                    .cluster_pods(&src.cluster)
                    .into_iter()
                    .find(|(p, local)| *local && p.namespace == src.namespace && p.name == src.name)
                    .map(|(p, _)| p.service_account);
                sa.and_then(|sa| mesh::identity(&dir, &src.namespace, &sa).ok())
            } else {
                None
            };
            for ns in &t.spec.namespaces {
                for w in &ns.workloads {
                    let svc = w.service_name();
                    let asked = format!("{svc}.{}.svc.clusterset.local", ns.name);
                    let backends = model.backends(&ns.name, svc);
                    for port in w.ports.iter().filter(|p| p.protocol == Protocol::Tcp) {
                        let Ok(q) = reach::Query::parse(model, &from.key, &asked, port.port) else {
                            continue;
                        };
                        let proof = model.prove(&q.failing(failed.to_vec()));
                        v.pairs += 1;
                        if self.gateways.is_empty() {
                            v.unchecked += 1;
                            continue;
                        }
                        let local: Vec<Ipv4Addr> = backends
                            .iter()
                            .filter(|b| b.cluster == src.cluster)
                            .filter_map(|b| by_key.get(b.to_string().as_str()).map(|p| p.lab))
                            .collect();
                        let gateways: Vec<&LabGateway> = self
                            .gateways
                            .iter()
                            .filter(|g| {
                                mesh::linked(t, &src.cluster, &g.cluster)
                                    && backends.iter().any(|b| b.cluster == g.cluster)
                            })
                            .collect();
                        let row = Row {
                            from: from.key.clone(),
                            to: asked.clone(),
                            port: port.port,
                            predicted: proof.verdict,
                            observed: Verdict::Deny,
                            stopped_at: proof.stopped_at,
                        };
                        let probe = Probe::Service {
                            ns: from.netns.as_str(),
                            client: client.clone(),
                            local,
                            gateways,
                            name: format!("{svc}.{}.svc.cluster.local", ns.name),
                            port: port.port,
                        };
                        jobs.push((row, probe));
                    }
                }
            }
        }
    }

    /// Takes `cluster`'s ingress down (its link to the internet namespace):
    /// the GSLB's health checks fail and its answers move.
    pub fn fail_ingress(&self, cluster: &str) -> Result<()> {
        self.set_links(&format!("ingress/{cluster}"), "down")
    }

    /// Brings `cluster`'s ingress back.
    pub fn restore_ingress(&self, cluster: &str) -> Result<()> {
        self.set_links(&format!("ingress/{cluster}"), "up")
    }

    fn set_links(&self, key: &str, state: &str) -> Result<()> {
        let links = self
            .links
            .get(key)
            .ok_or_else(|| invalid("component", key, "not in this lab"))?;
        for (ns, dev) in links {
            ip(&["-n", ns, "link", "set", dev, state])?;
        }
        Ok(())
    }

    /// Sends an echo (TCP, or UDP for UDP ports) for every pair of
    /// `model`'s matrix, and calls every pod's every
    /// `SERVICE.NS.svc.clusterset.local` port as its proxy would, and
    /// compares what happens with the predictions. Pairs decided by a layer
    /// the lab does not run are counted as unchecked.
    pub fn verify(&self, model: &Model, failed: &[Component]) -> Verification {
        let matrix = model.matrix(failed);
        // With the datapath running, policy is checked too.
        let enforced = !self.datapaths.is_empty();
        let stop = Arc::new(AtomicBool::new(false));
        for p in &self.pods {
            for &port in &p.ports {
                serve(&p.netns, port, stop.clone());
            }
        }
        std::thread::sleep(Duration::from_millis(100));
        let by_key: BTreeMap<&str, &Pod> = self.pods.iter().map(|p| (p.key.as_str(), p)).collect();
        let mut v = Verification::default();
        let mut jobs: Vec<(Row, Probe<'_>)> = Vec::new();
        for cell in &matrix.cells {
            let checked = match cell.stopped_at {
                None => true,
                Some(Layer::SourceEgress | Layer::TargetIngress) => enforced,
                Some(l) => CHECKED_LAYERS.contains(&l),
            };
            let (Some(from), Some(to)) =
                (by_key.get(cell.from.as_str()), by_key.get(cell.to.as_str()))
            else {
                continue;
            };
            v.pairs += 1;
            if !checked {
                v.unchecked += 1;
                continue;
            }
            let row = Row {
                from: cell.from.clone(),
                to: cell.to.clone(),
                port: cell.port,
                predicted: cell.verdict,
                observed: Verdict::Deny,
                stopped_at: cell.stopped_at,
            };
            let probe = Probe::Pod {
                ns: from.netns.as_str(),
                dst: to.lab,
                port: cell.port,
                udp: cell.protocol == mcnet_core::policy::model::Proto::Udp,
            };
            jobs.push((row, probe));
        }
        self.service_jobs(model, failed, &by_key, &mut v, &mut jobs);
        // Probes run side by side: a dropped SYN costs its whole timeout
        // (Linux keeps retrying a SYN through ICMP unreachables).
        let next = std::sync::atomic::AtomicUsize::new(0);
        let observed: Vec<std::sync::Mutex<Option<bool>>> =
            jobs.iter().map(|_| std::sync::Mutex::new(None)).collect();
        std::thread::scope(|scope| {
            for _ in 0..PROBES.min(jobs.len()) {
                scope.spawn(|| loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some((_, probe)) = jobs.get(i) else {
                        break;
                    };
                    let ok = probe.run();
                    if let Ok(mut slot) = observed[i].lock() {
                        *slot = Some(ok);
                    }
                });
            }
        });
        for ((mut row, _), seen) in jobs.into_iter().zip(observed) {
            let ok = seen.into_inner().ok().flatten().unwrap_or(false);
            row.observed = if ok { Verdict::Allow } else { Verdict::Deny };
            if row.observed == row.predicted {
                v.agree += 1;
            } else {
                v.mismatches.push(row.clone());
            }
            v.rows.push(row);
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        // The servers notice within 50 ms and close their sockets.
        std::thread::sleep(Duration::from_millis(150));
        v
    }
}

/// Runs cluster `ci`'s datapath in its node namespace: the cluster's
/// manifests with every pod at its lab address (its ClusterMesh peers'
/// pods renamed `NAME.CLUSTER` and labelled with their cluster), and
/// `datapath enforce` bound to the pods' interfaces. Returns once it
/// enforces.
fn enforce(
    b: &mut Builder<'_>,
    model: &Model,
    ci: usize,
    (node, node_addr): (&str, Ipv4Addr),
    binds: &[String],
    bin: &Path,
) -> Result<()> {
    let t = b.t;
    let c = &t.spec.clusters[ci];
    let mut docs: Vec<String> = b
        .lab
        .manifests
        .iter()
        .filter(|m| m.cluster.as_deref().is_none_or(|x| x == c.name))
        .map(|m| m.text.clone())
        .collect();
    for (pod, local) in model.cluster_pods(&c.name) {
        let Some(lab) = pod
            .ips
            .first()
            .copied()
            .and_then(v4)
            .and_then(|a| b.lab.map.to_lab(a))
        else {
            continue;
        };
        let mut labels = pod.labels.clone();
        let name = if local {
            pod.name.clone()
        } else {
            labels.insert(
                mcnet_core::policy::model::CLUSTER_LABEL.into(),
                pod.cluster.clone(),
            );
            format!("{}.{}", pod.name, pod.cluster)
        };
        let ports: Vec<serde_json::Value> = pod
            .named_ports
            .iter()
            .map(|p| serde_json::json!({"name": p.name, "containerPort": p.port, "protocol": format!("{:?}", p.proto).to_uppercase()}))
            .collect();
        docs.push(
            serde_json::json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "namespace": pod.namespace, "labels": labels},
                "spec": {"serviceAccountName": pod.service_account, "containers": [{"name": "c", "ports": ports}]},
                "status": {"podIP": lab.to_string()}
            })
            .to_string(),
        );
    }
    let file = b.dir.join(format!("cluster{ci}.yaml"));
    write_atomic(&file, docs.join("\n---\n").as_bytes())?;
    let log = b.dir.join(format!("datapath{ci}.log"));
    let flows = b.dir.join(format!("flows{ci}.jsonl"));
    let mut args: Vec<String> = vec![
        "datapath".into(),
        "enforce".into(),
        "--cluster".into(),
        c.name.clone(),
        "--l7".into(),
        "audit".into(),
        "--flows".into(),
        flows.display().to_string(),
        "--manifests".into(),
        file.display().to_string(),
        // The node agent's metrics, which the GSLB health-checks.
        "--metrics".into(),
        std::net::SocketAddrV4::new(node_addr, AGENT_METRICS_PORT).to_string(),
        // Pinned under the lab's own directory, which `down` removes.
        "--pin-dir".into(),
        pin_root(&b.lab.prefix)
            .join(format!("c{ci}"))
            .display()
            .to_string(),
    ];
    for bind in binds {
        args.push("--bind".into());
        args.push(bind.clone());
    }
    b.lab.datapaths.push((node.to_string(), log.clone()));
    spawn_in(
        node,
        bin,
        &args,
        &log,
        "mcnet: enforcing on",
        Duration::from_secs(30),
    )
}

/// Runs `bin args` in namespace `ns` (entered with setns through
/// `nsenter --net`, which keeps /sys/fs/bpf visible), its output in `log`,
/// and returns once the log shows `ready`. A process that exits first, or
/// is not ready within `wait`, is killed and reported with its last lines.
fn spawn_in(
    ns: &str,
    bin: &Path,
    args: &[String],
    log: &Path,
    ready: &str,
    wait: Duration,
) -> Result<()> {
    let what = format!(
        "{} in {ns}",
        args.iter().take(2).cloned().collect::<Vec<_>>().join(" ")
    );
    let out = std::fs::File::create(log).map_err(|source| Error::Spawn {
        command: format!("create {}", log.display()),
        source,
    })?;
    let err = out.try_clone().map_err(|source| Error::Spawn {
        command: format!("open {}", log.display()),
        source,
    })?;
    let mut child = std::process::Command::new("nsenter")
        .arg(format!("--net=/run/netns/{ns}"))
        .arg("--")
        .arg(bin)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|source| Error::Spawn {
            command: format!("nsenter … {what}"),
            source,
        })?;
    let deadline = Instant::now() + wait;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains(ready) {
            return Ok(());
        }
        let exited = matches!(child.try_wait(), Ok(Some(_)));
        if exited || Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::Command {
                command: what,
                stderr: text.lines().rev().take(5).collect::<Vec<_>>().join(" | "),
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One probe of `verify`.
enum Probe<'a> {
    /// A pod's address, directly.
    Pod {
        ns: &'a str,
        dst: Ipv4Addr,
        port: u16,
        udp: bool,
    },
    /// A clusterset service: local backends, then remote gateways.
    Service {
        ns: &'a str,
        client: Option<mcnet_mesh::tls::TlsIdentity>,
        local: Vec<Ipv4Addr>,
        gateways: Vec<&'a LabGateway>,
        name: String,
        port: u16,
    },
}

impl Probe<'_> {
    /// Whether an echo comes back. A refusal is checked twice, the second
    /// time with a longer timeout, so that a busy machine does not pass for
    /// a drop.
    fn run(&self) -> bool {
        match self {
            Probe::Pod {
                ns,
                dst,
                port,
                udp: true,
            } => udp_ok(ns, *dst, *port) || udp_ok(ns, *dst, *port),
            Probe::Pod { ns, dst, port, .. } => {
                tcp_ok(ns, *dst, *port) || tcp_echo(ns, *dst, *port, Duration::from_millis(1500))
            }
            Probe::Service {
                ns,
                client,
                local,
                gateways,
                name,
                port,
            } => {
                local.iter().any(|dst| {
                    tcp_ok(ns, *dst, *port)
                        || tcp_echo(ns, *dst, *port, Duration::from_millis(1500))
                }) || gateways.iter().any(|g| {
                    [Duration::from_millis(500), Duration::from_millis(1500)]
                        .into_iter()
                        .any(|t| mesh::via_gateway(ns, client.as_ref(), g, name, *port, t))
                })
            }
        }
    }
}

/// A TCP echo round trip from a namespace, within `timeout`.
fn tcp_echo(ns: &str, dst: Ipv4Addr, port: u16, timeout: Duration) -> bool {
    use std::io::{Read, Write};
    crate::netns::run_in(&crate::netns::named(ns), || {
        let Ok(mut s) = std::net::TcpStream::connect_timeout(&(dst, port).into(), timeout) else {
            return false;
        };
        s.set_read_timeout(Some(timeout)).ok();
        let mut buf = [0u8; 4];
        s.write_all(b"ping").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"ping"
    })
    .unwrap_or(false)
}

/// One checked pair.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    /// Source pod.
    pub from: String,
    /// Target pod.
    pub to: String,
    /// Port.
    pub port: u16,
    /// What `reach` predicted.
    pub predicted: Verdict,
    /// What the packets did.
    pub observed: Verdict,
    /// The layer `reach` stopped at.
    pub stopped_at: Option<Layer>,
}

/// What `verify` found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    /// Pairs in the matrix.
    pub pairs: usize,
    /// Pairs where prediction and packets agree.
    pub agree: usize,
    /// Pairs where they do not.
    pub mismatches: Vec<Row>,
    /// Pairs whose deciding layer the lab does not run: policy without the
    /// datapath, clusterset services without mesh gateways.
    pub unchecked: usize,
    /// Every checked pair.
    pub rows: Vec<Row>,
}

/// What `cluster`'s gateway forwards: for each service it exports (its
/// namespace is meshed there), `SERVICE.NS.svc.cluster.local:PORT` to a
/// backend pod of the cluster.
fn exported_routes(
    t: &Topology,
    model: &Model,
    cluster: &str,
    pods: &[Pod],
) -> Vec<(String, std::net::SocketAddrV4)> {
    let mut out = Vec::new();
    for ns in t
        .spec
        .namespaces
        .iter()
        .filter(|n| mesh::meshed(t, cluster, &n.name))
    {
        for w in &ns.workloads {
            let svc = w.service_name();
            let backend = model
                .backends(&ns.name, svc)
                .into_iter()
                .filter(|p| p.cluster == cluster)
                .find_map(|p| pods.iter().find(|x| x.key == p.to_string()));
            let Some(backend) = backend else { continue };
            for port in w.ports.iter().filter(|p| p.protocol == Protocol::Tcp) {
                out.push((
                    format!("{svc}.{}.svc.cluster.local:{}", ns.name, port.port),
                    std::net::SocketAddrV4::new(backend.lab, port.port),
                ));
            }
        }
    }
    out
}

/// The internet namespace, a link from it to each node (the cluster's
/// ingress), and the GSLB serving the topology's hostnames there.
fn global(b: &mut Builder<'_>, nodes: &[(usize, String, Ipv4Addr)], bin: &Path) -> Result<()> {
    let t = b.t;
    let inet = b.ns("i")?;
    let (dns, _) = b.infra.pair();
    ip(&[
        "-n",
        &inet,
        "addr",
        "add",
        &format!("{dns}/32"),
        "dev",
        "lo",
    ])?;
    let mut ingress = Vec::new();
    for (ci, node, node_addr) in nodes {
        let cluster = &t.spec.clusters[*ci].name;
        if ingress.iter().any(|(_, a)| a == node_addr) {
            b.lab.notes.push(format!(
                "cluster {cluster} shares its ingress address {node_addr} with another cluster of its network: the GSLB checks the first"
            ));
            continue;
        }
        let (i_side, _) = b.infra.pair();
        let dev = format!("n{ci}");
        b.link((&inet, &dev, i_side), (node, "inet", *node_addr))?;
        b.lab.links.insert(
            format!("ingress/{cluster}"),
            vec![(node.clone(), "inet".into())],
        );
        ingress.push((cluster.clone(), *node_addr));
    }
    let at = |c: &mcnet_core::topology::Cluster| {
        ingress
            .iter()
            .find(|(n, _)| *n == c.name)
            .map(|(_, a)| IpAddr::V4(*a))
    };
    let config =
        mcnet_cloud::gslb::from_topology(t, at, &gslb::health()).map_err(|e| Error::Command {
            command: format!("the GSLB configuration of topology {}", t.metadata.name),
            stderr: e.to_string(),
        })?;
    let yaml = serde_json::to_vec_pretty(&config).map_err(|e| Error::Spawn {
        command: "serialise the GSLB configuration".into(),
        source: std::io::Error::other(e),
    })?;
    let path = b.dir.join("gslb.yaml");
    write_atomic(&path, &yaml)?;
    let g = LabGslb {
        netns: inet,
        dns: std::net::SocketAddrV4::new(dns, 53),
        ingress,
        config: path,
        log: b.dir.join("gslb.log"),
    };
    b.lab.gslb = Some(g.clone());
    gslb::start(&g, bin)
}

fn build(b: &mut Builder<'_>, model: &Model) -> Result<()> {
    let t = b.t;
    let map = b.lab.map.clone();
    let lab_of = |a: IpAddr| -> Result<Ipv4Addr> {
        v4(a).and_then(|a| map.to_lab(a)).ok_or_else(|| {
            invalid(
                "address",
                &a.to_string(),
                "outside the mapped prefixes (the first 256 of each)",
            )
        })
    };
    let block_of = |n: &IpNet| map.block(n);

    // Networks: one router namespace each; networks without clusters get a
    // host on their node address.
    let mut routers = Vec::new();
    for (i, n) in t.spec.networks.iter().enumerate() {
        let r = b.ns(&format!("r{i}"))?;
        if !t.spec.clusters.iter().any(|c| c.network == n.name) {
            if let Some(host) = reach::node_address(n) {
                let h = lab_of(host)?;
                ip(&["-n", &r, "addr", "add", &format!("{h}/32"), "dev", "lo"])?;
            }
        }
        routers.push(r);
    }
    let net_index = |name: &str| t.spec.networks.iter().position(|n| n.name == name);

    // The mesh runs where the gateway can: with the datapath's binary.
    let mesh_bin = b.datapath.clone().filter(|_| {
        t.spec
            .clusters
            .iter()
            .any(|c| model.gateway(&c.name).is_some())
    });
    if mesh_bin.is_some() {
        mesh::pki(&b.dir)?;
    }

    // Clusters: a node namespace behind its network's router, pods behind the node.
    let mut nodes: Vec<(usize, String, Ipv4Addr)> = Vec::new();
    for (ci, c) in t.spec.clusters.iter().enumerate() {
        let Some(ni) = net_index(&c.network) else {
            continue;
        };
        let network = &t.spec.networks[ni];
        let node_addr = reach::node_address(network)
            .map(lab_of)
            .transpose()?
            .ok_or_else(|| {
                invalid(
                    &format!("network {}", network.name),
                    "",
                    "has no CIDR for its nodes",
                )
            })?;
        let node = b.ns(&format!("n{ci}"))?;
        nodes.push((ci, node.clone(), node_addr));
        let (r_side, _) = b.infra.pair();
        let router = routers[ni].clone();
        b.link(
            (&node, "uplink", node_addr),
            (&router, &format!("n{ci}"), r_side),
        )?;
        b.route(&node, "default", r_side)?;
        let pod_block = c.pod_cidr.net().and_then(|p| block_of(&p));
        if let Some(pb) = pod_block {
            b.route(&router, &pb.to_string(), node_addr)?;
        }
        // Pods.
        let mut k = 0;
        let mut binds = Vec::new();
        for pref in model.pods().filter(|p| p.cluster == c.name) {
            let Some((addr, _)) = model.address(pref) else {
                continue;
            };
            let lab_addr = lab_of(addr)?;
            let pod_ns = b.ns(&format!("c{ci}p{k}"))?;
            b.link(
                (&pod_ns, "eth0", lab_addr),
                (&node, &format!("p{k}"), node_addr),
            )?;
            b.route(&pod_ns, "default", node_addr)?;
            let ports = model.ports_of(pref).into_iter().map(|(p, _)| p).collect();
            binds.push(format!("p{k}={}/{}", pref.namespace, pref.name));
            b.lab.pods.push(Pod {
                key: pref.to_string(),
                netns: pod_ns,
                lab: lab_addr,
                topology: v4(addr).unwrap_or(Ipv4Addr::UNSPECIFIED),
                ports,
            });
            k += 1;
        }
        // The Linkerd gateway pod, behind the node's gateway port.
        let gateway = match (model.gateway(&c.name), &mesh_bin) {
            (Some(addr), Some(_)) => {
                let lab = lab_of(addr)?;
                let gw_ns = b.ns(&format!("c{ci}gw"))?;
                b.link((&gw_ns, "eth0", lab), (&node, "gw", node_addr))?;
                b.route(&gw_ns, "default", node_addr)?;
                binds.push(format!("gw={}/{}", reach::GATEWAY.0, reach::GATEWAY.2));
                in_ns(
                    &node,
                    "iptables",
                    &[
                        "-t",
                        "nat",
                        "-A",
                        "PREROUTING",
                        "-d",
                        &node_addr.to_string(),
                        "-p",
                        "tcp",
                        "--dport",
                        &reach::GATEWAY_PORT.to_string(),
                        "-j",
                        "DNAT",
                        "--to-destination",
                        &format!("{lab}:{}", reach::GATEWAY_PORT),
                    ],
                )?;
                let gw = LabGateway {
                    cluster: c.name.clone(),
                    log: b.dir.join(format!("gateway{ci}.log")),
                    routes: exported_routes(t, model, &c.name, &b.lab.pods),
                    netns: gw_ns,
                    lab,
                    node: node_addr,
                };
                Some(gw)
            }
            _ => None,
        };
        if let Some(bin) = b.datapath.clone() {
            if !binds.is_empty() {
                enforce(b, model, ci, (&node, node_addr), &binds, &bin)?;
            }
        }
        // A cluster that exports nothing has the gateway pod but no
        // gateway process: its port refuses every connection.
        if let (Some(gw), Some(bin)) = (gateway.filter(|g| !g.routes.is_empty()), &mesh_bin) {
            b.lab.gateways.push(gw.clone());
            mesh::start(&b.dir, &gw, bin)?;
        }
        // Masquerade what leaves for outside the native-routing CIDR.
        if c.cni.chaining == CniChaining::None {
            if let Some(pb) = pod_block {
                let src = pb.to_string();
                let nat = |tail: &[&str]| -> Result<()> {
                    let mut rule = vec!["-t", "nat", "-A", "POSTROUTING", "-s", &src];
                    rule.extend_from_slice(tail);
                    in_ns(&node, "iptables", &rule).map(|_| ())
                };
                if let Some(native) = reach::native_cidr(t, c) {
                    for nb in map.blocks_within(&native) {
                        nat(&["-d", &nb.to_string(), "-j", "RETURN"])?;
                    }
                }
                nat(&["-o", "uplink", "-j", "MASQUERADE"])?;
            }
        }
    }

    // Global load balancing, health-checking each node's agent.
    if let Some(bin) = b.datapath.clone() {
        if !t.spec.load_balancing.hostnames.is_empty() {
            global(b, &nodes, &bin)?;
        }
    }

    // What each network announces: its CIDRs and its native clusters' pods.
    let own_blocks =
        |ni: usize| -> Vec<Ipv4Net> {
            let n = &t.spec.networks[ni];
            let mut v: Vec<Ipv4Net> = n
                .cidrs
                .iter()
                .filter_map(|c| c.net())
                .filter_map(|c| block_of(&c))
                .collect();
            for c in t.spec.clusters.iter().filter(|c| {
                c.network == n.name && c.cni.mode == mcnet_core::topology::CniMode::Native
            }) {
                if let Some(p) = c.pod_cidr.net().and_then(|p| block_of(&p)) {
                    v.push(p);
                }
            }
            v
        };
    let net_blocks = |ni: usize| -> Vec<Ipv4Net> {
        t.spec.networks[ni]
            .cidrs
            .iter()
            .filter_map(|c| c.net())
            .filter_map(|c| block_of(&c))
            .collect()
    };

    // Peerings: a link between the two routers, routes for the networks' own CIDRs.
    for (pi, p) in t.spec.peerings.iter().enumerate() {
        let (Some(a), Some(c)) = (
            p.networks.first().and_then(|n| net_index(n)),
            p.networks.get(1).and_then(|n| net_index(n)),
        ) else {
            continue;
        };
        let (x, y) = b.infra.pair();
        let (ra, rc) = (routers[a].clone(), routers[c].clone());
        let dev = format!("p{pi}");
        b.link((&ra, &dev, x), (&rc, &dev, y))?;
        for nb in net_blocks(c) {
            b.route(&ra, &nb.to_string(), y)?;
        }
        for nb in net_blocks(a) {
            b.route(&rc, &nb.to_string(), x)?;
        }
        b.lab.links.insert(
            Component::Peering(p.name.clone()).to_string(),
            vec![(ra, dev.clone()), (rc, dev)],
        );
    }

    // Transit gateways: a hub namespace routing between its networks.
    for (gi, g) in t.spec.transit_gateways.iter().enumerate() {
        let hub = b.ns(&format!("t{gi}"))?;
        let attached: Vec<usize> = g.networks.iter().filter_map(|n| net_index(n)).collect();
        let mut sides = Vec::new();
        for &ni in &attached {
            let (h, r) = b.infra.pair();
            let dev = format!("t{gi}");
            let router = routers[ni].clone();
            b.link((&hub, &format!("r{ni}"), h), (&router, &dev, r))?;
            for nb in net_blocks(ni) {
                b.route(&hub, &nb.to_string(), r)?;
            }
            sides.push((ni, h));
            b.lab
                .links
                .entry(Component::TransitGateway(g.name.clone()).to_string())
                .or_default()
                .push((router, dev));
        }
        for &(ni, _) in &sides {
            for &(other, h) in &sides {
                if other != ni {
                    for nb in net_blocks(other) {
                        b.route(&routers[ni], &nb.to_string(), h)?;
                    }
                }
            }
        }
    }

    // The interconnect: MCRs, each VXC's edge, and BGP between them.
    let mut mcr_ns = BTreeMap::new();
    for (ri, r) in t.spec.interconnect.routers.iter().enumerate() {
        mcr_ns.insert(r.name.clone(), (b.ns(&format!("m{ri}"))?, r.asn));
    }
    let mut mcr_sessions: BTreeMap<String, Vec<bird::Session>> = BTreeMap::new();
    let mut router_sessions: BTreeMap<usize, Vec<bird::Session>> = BTreeMap::new();
    for (vi, v) in t.spec.interconnect.vxcs.iter().enumerate() {
        let Some((mcr, mcr_asn)) = mcr_ns.get(&v.router).cloned() else {
            continue;
        };
        let edge = b.ns(&format!("e{vi}"))?;
        let e_asn = edge_asn(v);
        // The VXC: a veth, a VLAN on it, the BGP addresses on the VLAN.
        let (m_addr, e_addr) = match v.bgp.peers.first() {
            Some(p) => {
                let local = map::interface_address(&p.local_address)
                    .map(|n| n.addr())
                    .and_then(v4)
                    .and_then(|a| map.to_lab(a));
                let peer = p
                    .peer_address
                    .parse::<Ipv4Addr>()
                    .ok()
                    .and_then(|a| map.to_lab(a));
                match (local, peer) {
                    (Some(l), Some(r)) => (l, r),
                    _ => b.infra.pair(),
                }
            }
            None => b.infra.pair(),
        };
        let dev = format!("v{vi}");
        ip(&[
            "-n", &mcr, "link", "add", &dev, "type", "veth", "peer", "name", &dev, "netns", &edge,
        ])?;
        let mut vxc_links = Vec::new();
        for (ns, local, remote) in [(&mcr, m_addr, e_addr), (&edge, e_addr, m_addr)] {
            ip(&["-n", ns, "link", "set", &dev, "up"])?;
            let l3 = match v.vlan {
                Some(vlan) => {
                    let sub = format!("{dev}.{vlan}");
                    let tagged = ip(&[
                        "-n",
                        ns,
                        "link",
                        "add",
                        "link",
                        &dev,
                        "name",
                        &sub,
                        "type",
                        "vlan",
                        "id",
                        &vlan.to_string(),
                    ]);
                    match tagged {
                        Ok(()) => {
                            ip(&["-n", ns, "link", "set", &sub, "up"])?;
                            sub
                        }
                        // A kernel without 802.1Q: the VXC runs untagged.
                        Err(Error::Command { stderr, .. })
                            if stderr.contains("Unknown device type") =>
                        {
                            let note = format!("VXC {} runs untagged: this kernel has no 802.1Q VLAN devices (VLAN {vlan} is recorded, not applied)", v.name);
                            if !b.lab.notes.contains(&note) {
                                b.lab.notes.push(note);
                            }
                            dev.clone()
                        }
                        Err(e) => return Err(e),
                    }
                }
                None => dev.clone(),
            };
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &local.to_string(),
                "peer",
                &format!("{remote}/32"),
                "dev",
                &l3,
            ])?;
            vxc_links.push((ns.to_string(), dev.clone()));
        }
        // The VXC's rate limit, scaled down 10× (at least 1 Mbit/s).
        let rate = format!("{}mbit", (v.rate_limit_mbps / 10).max(1));
        run(
            "tc",
            &[
                "-n", &mcr, "qdisc", "add", "dev", &dev, "root", "tbf", "rate", &rate, "burst",
                "64kb", "latency", "50ms",
            ],
        )?;
        b.lab
            .links
            .insert(Component::Vxc(v.name.clone()).to_string(), vxc_links);

        // The cloud accepts at most this many prefixes from the MCR.
        let limit = match v.target.kind {
            VxcTargetKind::AwsDirectConnect => t.spec.limits.aws_dx_private_vif_prefixes as usize,
            VxcTargetKind::AzureExpressroute => reach::AZURE_ER_PRIVATE_PREFIXES,
            VxcTargetKind::GcpPartnerInterconnect => reach::GCP_CLOUD_ROUTER_PEER_PREFIXES,
        };
        let filter = |list: &[mcnet_core::topology::Cidr]| -> String {
            if list.is_empty() {
                return "all".into();
            }
            let blocks: Vec<Ipv4Net> = list
                .iter()
                .filter_map(|c| c.net())
                .flat_map(|f| map.blocks_within(&f))
                .collect();
            bird::only(&blocks)
        };
        mcr_sessions
            .entry(v.router.clone())
            .or_default()
            .push(bird::Session {
                name: format!("vxc{vi}"),
                local: m_addr,
                local_as: mcr_asn,
                neighbor: e_addr,
                neighbor_as: e_asn,
                import: filter(&v.bgp.prefix_filters.import),
                export: filter(&v.bgp.prefix_filters.export),
                channel_extra: String::new(),
            });
        let mut edge_sessions = vec![bird::Session {
            name: "mcr".into(),
            local: e_addr,
            local_as: e_asn,
            neighbor: m_addr,
            neighbor_as: mcr_asn,
            import: "all".into(),
            export: "where proto != \"mcr\"".into(),
            channel_extra: format!("receive limit {limit} action disable;"),
        }];
        // The edge's networks.
        for name in &v.target.networks {
            let Some(ni) = net_index(name) else { continue };
            let (e_side, r_side) = b.infra.pair();
            let router = routers[ni].clone();
            b.link(
                (&edge, &format!("r{ni}"), e_side),
                (&router, &format!("e{vi}"), r_side),
            )?;
            edge_sessions.push(bird::Session {
                name: format!("net{ni}"),
                local: e_side,
                local_as: e_asn,
                neighbor: r_side,
                neighbor_as: router_asn(ni),
                import: "all".into(),
                export: "where proto = \"mcr\"".into(),
                channel_extra: String::new(),
            });
            router_sessions.entry(ni).or_default().push(bird::Session {
                name: format!("edge{vi}"),
                local: r_side,
                local_as: router_asn(ni),
                neighbor: e_side,
                neighbor_as: e_asn,
                import: "all".into(),
                export: "where proto = \"own\"".into(),
                channel_extra: String::new(),
            });
        }
        let conf = bird::config(e_addr, &[], &edge_sessions);
        b.speaker(format!("edge {}", v.name), &edge, conf)?;
    }
    // VPN backups: a link between the two networks' routers (the tunnels)
    // and eBGP over it; each side imports the other's routes at a lower
    // local preference, so the interconnect's routes win while they exist.
    for (k, v) in t.spec.vpn_backups.iter().enumerate() {
        let (Some(na), Some(nb)) = (
            v.networks.first().and_then(|n| net_index(n)),
            v.networks.get(1).and_then(|n| net_index(n)),
        ) else {
            continue;
        };
        let (a_side, b_side) = b.infra.pair();
        let dev = format!("t{k}");
        let (ra, rb) = (routers[na].clone(), routers[nb].clone());
        b.link((&ra, &dev, a_side), (&rb, &dev, b_side))?;
        b.lab.links.insert(
            Component::Vpn(v.name.clone()).to_string(),
            vec![(ra.clone(), dev.clone()), (rb.clone(), dev.clone())],
        );
        for (ni, local, other, remote) in [(na, a_side, nb, b_side), (nb, b_side, na, a_side)] {
            router_sessions.entry(ni).or_default().push(bird::Session {
                name: format!("vpn{k}"),
                local,
                local_as: router_asn(ni),
                neighbor: remote,
                neighbor_as: router_asn(other),
                import: format!("filter {{ bgp_local_pref = {VPN_LOCAL_PREF}; accept; }}"),
                export: "where proto = \"own\"".into(),
                channel_extra: String::new(),
            });
        }
    }
    for (name, sessions) in mcr_sessions {
        let (ns, _) = mcr_ns[&name].clone();
        let id = sessions
            .first()
            .map_or(Ipv4Addr::new(198, 19, 255, 254), |s| s.local);
        b.speaker(format!("mcr {name}"), &ns, bird::config(id, &[], &sessions))?;
    }
    for (ni, sessions) in router_sessions {
        let id = sessions
            .first()
            .map_or(Ipv4Addr::new(198, 19, 255, 253), |s| s.local);
        let conf = bird::config(id, &own_blocks(ni), &sessions);
        let router = routers[ni].clone();
        b.speaker(
            format!("router {}", t.spec.networks[ni].name),
            &router,
            conf,
        )?;
    }

    // The monitoring stack, beside the GSLB in the internet namespace,
    // which reaches every node's agent.
    if let (Some(bin), Some(g)) = (b.datapath.clone(), b.lab.gslb.clone()) {
        monitor::start(
            t,
            &mut b.lab,
            &b.dir,
            (&g.netns, *g.dns.ip()),
            &g.ingress,
            &bin,
        )?;
    }
    Ok(())
}
