//! The node agent (feature `agent`): `mcnet agent` as a library.
//!
//! It watches Pods, Namespaces, NetworkPolicies, CiliumNetworkPolicies and
//! CiliumClusterwideNetworkPolicies through kube-runtime reflectors; on a
//! change it waits for the changes to settle (debounced), compiles the
//! policy of the whole cluster (every pod's identity matters, not only this
//! node's), and syncs the datapath for the pods scheduled on its node,
//! attached at each pod's host-side interface. It is ready only after
//! every reflector has listed its objects and the first sync succeeded.
//!
//! A set of objects the engine refuses (an unknown field, a rule it cannot
//! enforce) is never half applied: the last good compilation stays in
//! force, the error names the object and field, and the agent reports it
//! in its status until a change fixes it.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::reflector::{store::Writer, Store};
use kube::runtime::{reflector, watcher, WatchStreamExt};
use kube::{Api, Client, ResourceExt};
use mcnet_core::policy::{Compiled, Manifests};
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};

use crate::enforcer::{Bind, Enforcer, EnforcerOptions};

/// How the agent runs.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct AgentConfig {
    /// This node's name (`spec.nodeName` of its pods).
    pub node: String,
    /// Quiet time after a change before recompiling.
    pub debounce: Duration,
    /// Longest wait after the first of a burst of changes.
    pub max_delay: Duration,
    /// Watch Cilium's policies too (their CRDs must be installed).
    pub cilium: bool,
}

impl AgentConfig {
    /// Defaults for `node`: 300 ms debounce, at most 2 s, Cilium's policies watched.
    pub fn new(node: &str) -> AgentConfig {
        AgentConfig {
            node: node.into(),
            debounce: Duration::from_millis(300),
            max_delay: Duration::from_secs(2),
            cilium: true,
        }
    }

    /// The same, with other debounce timings.
    pub fn with_debounce(mut self, quiet: Duration, max: Duration) -> AgentConfig {
        self.debounce = quiet;
        self.max_delay = max;
        self
    }

    /// The same, without Cilium's policy kinds.
    pub fn without_cilium(mut self) -> AgentConfig {
        self.cilium = false;
        self
    }
}

/// What the agent reports.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AgentStatus {
    /// Every reflector has listed, and a sync succeeded.
    pub ready: bool,
    /// Syncs done.
    pub syncs: u64,
    /// The node's pods bound at the last sync (`namespace/name`).
    pub bound: Vec<String>,
    /// The node's pods with no host interface found (not enforced yet).
    pub unresolved: Vec<String>,
    /// Why the last compilation or sync failed (the previous one stays).
    pub error: Option<String>,
}

/// Where the agent puts a compilation: the kernel datapath, or a test's recorder.
pub trait DatapathSink: Send {
    /// Enforces `compiled` for `binds` (the node's pods and their host
    /// interfaces); returns the map updates made.
    fn apply(&mut self, compiled: Arc<Compiled>, binds: &[Bind]) -> crate::Result<usize>;
}

/// The kernel datapath: started on the first sync, rebound after.
pub struct EnforcerSink {
    options: EnforcerOptions,
    enforcer: Option<Enforcer>,
}

impl EnforcerSink {
    /// A sink that starts an [`Enforcer`] with `options` on the first sync.
    pub fn new(options: EnforcerOptions) -> EnforcerSink {
        EnforcerSink {
            options,
            enforcer: None,
        }
    }

    /// The enforcer, once started.
    pub fn enforcer(&mut self) -> Option<&mut Enforcer> {
        self.enforcer.as_mut()
    }
}

impl DatapathSink for EnforcerSink {
    fn apply(&mut self, compiled: Arc<Compiled>, binds: &[Bind]) -> crate::Result<usize> {
        match &mut self.enforcer {
            Some(e) => e.rebind(compiled, binds),
            None => {
                let e = Enforcer::start(compiled, binds, &self.options)?;
                let n = e.initial_updates();
                self.enforcer = Some(e);
                Ok(n)
            }
        }
    }
}

/// Finds a pod's host-side interface from its IP.
pub trait InterfaceResolver: Send + Sync {
    /// The interface, or None when this node has no route to `ip` through one.
    fn iface(&self, ip: IpAddr) -> Option<String>;
}

/// The interface of the node's route to the pod's address, as
/// `ip route get` reports it: CNIs in native routing (Cilium, Calico) route
/// each local pod's /32 through its host-side veth.
#[derive(Clone, Copy, Debug, Default)]
pub struct RouteResolver;

impl InterfaceResolver for RouteResolver {
    fn iface(&self, ip: IpAddr) -> Option<String> {
        let out = std::process::Command::new("ip")
            .args(["-j", "route", "get", &ip.to_string()])
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        let v: Value = serde_json::from_slice(&out.stdout).ok()?;
        let r = v.get(0)?;
        // Only a direct route to the pod: not the default gateway's device.
        if r.get("gateway").is_some() {
            return None;
        }
        r.get("dev")?.as_str().map(str::to_string)
    }
}

/// The object kinds the agent watches, as the policy engine reads them:
/// only the fields it evaluates are kept (a Pod's labels, ports, service
/// account and IPs; a policy's labels and spec).
fn sanitize(kind: &str, api_version: &str, o: &Value) -> Value {
    let m = &o["metadata"];
    let mut meta =
        json!({"name": m["name"], "labels": m.get("labels").cloned().unwrap_or(json!({}))});
    if let Some(ns) = m.get("namespace").filter(|v| v.is_string()) {
        meta["namespace"] = ns.clone();
    }
    let mut out = json!({"apiVersion": api_version, "kind": kind, "metadata": meta});
    match kind {
        "Pod" => {
            let containers: Vec<Value> = o["spec"]["containers"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| json!({"name": c["name"], "ports": c.get("ports").cloned().unwrap_or(json!([]))}))
                .collect();
            let mut spec = json!({"containers": containers});
            for k in ["serviceAccountName", "hostNetwork"] {
                if let Some(v) = o["spec"].get(k).filter(|v| !v.is_null()) {
                    spec[k] = v.clone();
                }
            }
            out["spec"] = spec;
            let mut status = json!({});
            for k in ["podIP", "podIPs"] {
                if let Some(v) = o["status"].get(k).filter(|v| !v.is_null()) {
                    status[k] = v.clone();
                }
            }
            out["status"] = status;
        }
        "Namespace" => {}
        _ => {
            for k in ["spec", "specs"] {
                if let Some(v) = o.get(k).filter(|v| !v.is_null()) {
                    out[k] = v.clone();
                }
            }
        }
    }
    out
}

/// Objects of every watched kind, sanitized, keyed by a stable name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// `KIND NAMESPACE/NAME` → the object as the engine reads it.
    pub objects: BTreeMap<String, Value>,
    /// The node's pods: `namespace/name` → IPs.
    pub local: BTreeMap<String, Vec<IpAddr>>,
}

impl Snapshot {
    fn add(&mut self, kind: &str, api_version: &str, o: &Value) {
        let name = o["metadata"]["name"].as_str().unwrap_or_default();
        let ns = o["metadata"]["namespace"].as_str().unwrap_or_default();
        self.objects.insert(
            format!("{kind} {ns}/{name}"),
            sanitize(kind, api_version, o),
        );
    }

    /// Compiles every object: the policy of the whole cluster.
    pub fn compile(&self) -> mcnet_core::Result<Compiled> {
        let texts: Vec<(String, String)> = self
            .objects
            .iter()
            .map(|(k, v)| (k.clone(), v.to_string()))
            .collect();
        let m = Manifests::load(texts.iter().map(|(k, t)| (k.as_str(), t.as_str())))?;
        Ok(Compiled::new(&m))
    }
}

fn pod_ips(p: &Pod) -> Vec<IpAddr> {
    let s = p.status.as_ref();
    let mut ips: Vec<IpAddr> = s
        .and_then(|s| s.pod_ips.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|i| i.ip.parse().ok())
        .collect();
    if ips.is_empty() {
        ips.extend(
            s.and_then(|s| s.pod_ip.as_ref())
                .and_then(|i| i.parse::<IpAddr>().ok()),
        );
    }
    ips
}

/// The reflectors' stores.
#[derive(Clone)]
pub struct Stores {
    pods: Store<Pod>,
    namespaces: Store<Namespace>,
    netpols: Store<NetworkPolicy>,
    cnps: Option<Store<DynamicObject>>,
    ccnps: Option<Store<DynamicObject>>,
}

impl Stores {
    /// Everything the stores hold now, for `node`.
    pub fn snapshot(&self, node: &str) -> Snapshot {
        let mut s = Snapshot::default();
        for p in self.pods.state() {
            // A finished pod's address may already be someone else's.
            let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
            if matches!(phase, Some("Succeeded" | "Failed")) {
                continue;
            }
            let v = serde_json::to_value(&*p).unwrap_or(Value::Null);
            s.add("Pod", "v1", &v);
            let host = p
                .spec
                .as_ref()
                .and_then(|s| s.host_network)
                .unwrap_or(false);
            if !host && p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node) {
                let ips = pod_ips(&p);
                if !ips.is_empty() {
                    s.local.insert(
                        format!("{}/{}", p.namespace().unwrap_or_default(), p.name_any()),
                        ips,
                    );
                }
            }
        }
        for n in self.namespaces.state() {
            s.add(
                "Namespace",
                "v1",
                &serde_json::to_value(&*n).unwrap_or(Value::Null),
            );
        }
        for n in self.netpols.state() {
            s.add(
                "NetworkPolicy",
                "networking.k8s.io/v1",
                &serde_json::to_value(&*n).unwrap_or(Value::Null),
            );
        }
        for (store, kind) in [
            (&self.cnps, "CiliumNetworkPolicy"),
            (&self.ccnps, "CiliumClusterwideNetworkPolicy"),
        ] {
            for o in store.iter().flat_map(|s| s.state()) {
                s.add(
                    kind,
                    "cilium.io/v2",
                    &serde_json::to_value(&*o).unwrap_or(Value::Null),
                );
            }
        }
        s
    }

    async fn ready(&self) {
        let _ = self.pods.wait_until_ready().await;
        let _ = self.namespaces.wait_until_ready().await;
        let _ = self.netpols.wait_until_ready().await;
        for s in [&self.cnps, &self.ccnps].into_iter().flatten() {
            let _ = s.wait_until_ready().await;
        }
    }
}

fn cilium(kind: &str) -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk("cilium.io", "v2", kind))
}

/// Starts the reflectors; each change of any kind is a message on the channel.
fn reflect(client: &Client, config: &AgentConfig) -> (Stores, mpsc::Receiver<()>) {
    let (tx, rx) = mpsc::channel::<()>(1);
    fn spawn<S, T>(stream: S, tx: mpsc::Sender<()>)
    where
        S: Stream<Item = Result<T, watcher::Error>> + Send + 'static,
        T: Send,
    {
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(r) = stream.next().await {
                match r {
                    // A full channel already says "something changed".
                    Ok(_) => {
                        let _ = tx.try_send(());
                    }
                    Err(e) => tracing::warn!(error = %e, "watch"),
                }
            }
        });
    }
    let wc = watcher::Config::default;
    let (pods, w) = reflector::store();
    spawn(
        reflector(w, watcher(Api::<Pod>::all(client.clone()), wc()))
            .default_backoff()
            .touched_objects(),
        tx.clone(),
    );
    let (namespaces, w) = reflector::store();
    spawn(
        reflector(w, watcher(Api::<Namespace>::all(client.clone()), wc()))
            .default_backoff()
            .touched_objects(),
        tx.clone(),
    );
    let (netpols, w) = reflector::store();
    spawn(
        reflector(w, watcher(Api::<NetworkPolicy>::all(client.clone()), wc()))
            .default_backoff()
            .touched_objects(),
        tx.clone(),
    );
    let (mut cnps, mut ccnps) = (None, None);
    if config.cilium {
        for (kind, slot) in [
            ("CiliumNetworkPolicy", &mut cnps),
            ("CiliumClusterwideNetworkPolicy", &mut ccnps),
        ] {
            let ar = cilium(kind);
            let w = Writer::<DynamicObject>::new(ar.clone());
            let r = w.as_reader();
            let api = Api::<DynamicObject>::all_with(client.clone(), &ar);
            spawn(
                reflector(w, watcher(api, wc()))
                    .default_backoff()
                    .touched_objects(),
                tx.clone(),
            );
            *slot = Some(r);
        }
    }
    (
        Stores {
            pods,
            namespaces,
            netpols,
            cnps,
            ccnps,
        },
        rx,
    )
}

/// Runs the agent until the process ends: reflect, debounce, compile, sync.
/// `status` says how it goes (readiness for the probe).
pub async fn run(
    client: Client,
    config: AgentConfig,
    resolver: Arc<dyn InterfaceResolver>,
    mut sink: Box<dyn DatapathSink>,
    status: watch::Sender<AgentStatus>,
) {
    let (stores, mut changes) = reflect(&client, &config);
    stores.ready().await;
    tracing::info!(node = %config.node, "every reflector has listed");
    let mut last: Option<Snapshot> = None;
    loop {
        let snap = stores.snapshot(&config.node);
        if last.as_ref() != Some(&snap) {
            let ok = sync(&snap, resolver.as_ref(), sink.as_mut(), &status);
            if ok {
                last = Some(snap);
            }
        }
        // Wait for a change, then for quiet (or the longest delay).
        if changes.recv().await.is_none() {
            return;
        }
        let first = Instant::now();
        loop {
            let left = config.max_delay.saturating_sub(first.elapsed());
            if left.is_zero() {
                break;
            }
            match tokio::time::timeout(config.debounce.min(left), changes.recv()).await {
                Ok(Some(())) => continue,
                Ok(None) => return,
                Err(_) => break,
            }
        }
    }
}

/// One sync; false (with the error in the status) when it failed.
fn sync(
    snap: &Snapshot,
    resolver: &dyn InterfaceResolver,
    sink: &mut dyn DatapathSink,
    status: &watch::Sender<AgentStatus>,
) -> bool {
    let fail = |e: String| {
        tracing::error!(error = %e, "policy sync failed; the last good policy stays");
        status.send_modify(|s| s.error = Some(e));
        false
    };
    let compiled = match snap.compile() {
        Ok(c) => Arc::new(c),
        Err(e) => return fail(e.to_string()),
    };
    let (mut binds, mut unresolved) = (Vec::new(), Vec::new());
    for (pod, ips) in &snap.local {
        match ips.iter().find_map(|ip| resolver.iface(*ip)) {
            Some(iface) => binds.push(Bind {
                iface,
                pod: pod.clone(),
            }),
            None => unresolved.push(pod.clone()),
        }
    }
    match sink.apply(compiled, &binds) {
        Ok(updates) => {
            tracing::info!(pods = binds.len(), updates, "datapath synced");
            status.send_modify(|s| {
                s.ready = true;
                s.syncs += 1;
                s.bound = binds.iter().map(|b| b.pod.clone()).collect();
                s.unresolved = unresolved;
                s.error = None;
            });
            true
        }
        Err(e) => fail(e.to_string()),
    }
}
