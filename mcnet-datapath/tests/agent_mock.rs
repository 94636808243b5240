//! The node agent against a MOCK Kubernetes API: no API server runs here,
//! so a tower-test service answers the reflectors' lists and holds their
//! watches open, pushing an event when the test says so. The datapath is a
//! recording sink and interfaces come from a fixed table (both fakes; the
//! kernel side is `Enforcer::rebind`, tested with the netns lab).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{Request, Response};
use kube::client::Body;
use mcnet_core::policy::{Compiled, Query};
use mcnet_datapath::agent::{self, AgentConfig, AgentStatus, DatapathSink, InterfaceResolver};
use mcnet_datapath::enforcer::Bind;
use serde_json::{json, Value};
use tokio::sync::watch;

const PROD: &str = include_str!("../../examples/policies/adr-003-production.yaml");

type Responder = tower_test::mock::SendResponse<Response<Body>>;

/// The mock API server: lists by collection path, parked watches.
#[derive(Default)]
struct Server {
    lists: HashMap<String, Vec<Value>>,
    /// Collections whose list is held back until released.
    held: HashMap<String, Vec<Responder>>,
    hold: Vec<String>,
    watches: HashMap<String, Vec<Responder>>,
    /// Every change by collection, with its resourceVersion: a watch from
    /// version N gets what came after N, as from an API server.
    events: HashMap<String, Vec<(u64, Value)>>,
    version: u64,
}

fn list_kind(path: &str) -> &'static str {
    match path.rsplit('/').next().unwrap() {
        "pods" => "PodList",
        "namespaces" => "NamespaceList",
        "networkpolicies" => "NetworkPolicyList",
        "ciliumnetworkpolicies" => "CiliumNetworkPolicyList",
        _ => "CiliumClusterwideNetworkPolicyList",
    }
}

fn respond(send: Responder, body: String) {
    send.send_response(
        Response::builder()
            .body(Body::from(body.into_bytes()))
            .unwrap(),
    );
}

impl Server {
    fn list(&self, path: &str) -> String {
        json!({"apiVersion": "v1", "kind": list_kind(path), "metadata": {"resourceVersion": self.version.to_string()},
            "items": self.lists.get(path).cloned().unwrap_or_default()})
        .to_string()
    }

    /// Adds (or replaces) an object and tells the collection's watchers.
    fn push(&mut self, path: &str, mut obj: Value) {
        self.version += 1;
        obj["metadata"]["resourceVersion"] = json!(self.version.to_string());
        let items = self.lists.entry(path.into()).or_default();
        items.retain(|o| {
            o["metadata"]["name"] != obj["metadata"]["name"]
                || o["metadata"]["namespace"] != obj["metadata"]["namespace"]
        });
        items.push(obj.clone());
        self.events
            .entry(path.into())
            .or_default()
            .push((self.version, json!({"type": "ADDED", "object": obj})));
        for w in self.watches.remove(path).unwrap_or_default() {
            let body = self.since(path, self.version - 1);
            respond(w, body);
        }
    }

    /// Deletes an object and tells the collection's watchers.
    fn delete(&mut self, path: &str, namespace: &str, name: &str) {
        self.version += 1;
        let items = self.lists.entry(path.into()).or_default();
        let Some(i) = items
            .iter()
            .position(|o| o["metadata"]["name"] == name && o["metadata"]["namespace"] == namespace)
        else {
            panic!("no {namespace}/{name} in {path}");
        };
        let mut gone = items.remove(i);
        gone["metadata"]["resourceVersion"] = json!(self.version.to_string());
        self.events
            .entry(path.into())
            .or_default()
            .push((self.version, json!({"type": "DELETED", "object": gone})));
        for w in self.watches.remove(path).unwrap_or_default() {
            let body = self.since(path, self.version - 1);
            respond(w, body);
        }
    }

    /// The watch events of `path` after version `from`, one JSON per line.
    fn since(&self, path: &str, from: u64) -> String {
        self.events
            .get(path)
            .into_iter()
            .flatten()
            .filter(|(v, _)| *v > from)
            .map(|(_, event)| format!("{event}\n"))
            .collect()
    }

    fn release(&mut self, path: &str) {
        self.hold.retain(|p| p != path);
        for send in self.held.remove(path).unwrap_or_default() {
            let body = self.list(path);
            respond(send, body);
        }
    }
}

const PODS: &str = "/api/v1/pods";
const NAMESPACES: &str = "/api/v1/namespaces";
const NETPOLS: &str = "/apis/networking.k8s.io/v1/networkpolicies";
const CNPS: &str = "/apis/cilium.io/v2/ciliumnetworkpolicies";
const CCNPS: &str = "/apis/cilium.io/v2/ciliumclusterwidenetworkpolicies";

fn mock_client(server: Arc<Mutex<Server>>) -> kube::Client {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    tokio::spawn(async move {
        while let Some((req, send)) = handle.next_request().await {
            let path = req.uri().path().to_string();
            let query = req.uri().query().unwrap_or("").to_string();
            let watching = query.contains("watch=true");
            let from: u64 = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("resourceVersion="))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let mut s = server.lock().unwrap();
            if watching {
                let pending = s.since(&path, from);
                if pending.is_empty() {
                    s.watches.entry(path).or_default().push(send);
                } else {
                    respond(send, pending);
                }
            } else if s.hold.contains(&path) {
                s.held.entry(path).or_default().push(send);
            } else {
                let body = s.list(&path);
                respond(send, body);
            }
        }
    });
    kube::Client::new(service, "default")
}

/// The ADR's production namespace as an API server would list it: the
/// frontend and api-server on node-a, batch on node-b.
fn cluster() -> Server {
    let mut s = Server {
        version: 1,
        ..Server::default()
    };
    for doc in serde_yaml::Deserializer::from_str(PROD) {
        let mut v: Value =
            serde_json::to_value(serde_yaml::Value::deserialize(doc).unwrap()).unwrap();
        if v.is_null() {
            continue;
        }
        let path = match v["kind"].as_str().unwrap() {
            "Pod" => {
                let node = if v["metadata"]["name"] == "batch" {
                    "node-b"
                } else {
                    "node-a"
                };
                v["spec"]["nodeName"] = json!(node);
                v["status"]["phase"] = json!("Running");
                PODS
            }
            "Namespace" => NAMESPACES,
            "NetworkPolicy" => NETPOLS,
            _ => CNPS,
        };
        // What an API server adds, which the agent must not trip over.
        v["metadata"]["uid"] = json!(format!("uid-{}", v["metadata"]["name"].as_str().unwrap()));
        v["metadata"]["resourceVersion"] = json!("1");
        v["metadata"]["managedFields"] = json!([{"manager": "kubectl", "operation": "Update"}]);
        s.lists.entry(path.into()).or_default().push(v);
    }
    s
}

use serde::Deserialize as _;

/// A FAKE resolver: the lab's interface names by pod address.
struct Table(BTreeMap<IpAddr, String>);

impl InterfaceResolver for Table {
    fn iface(&self, ip: IpAddr) -> Option<String> {
        self.0.get(&ip).cloned()
    }
}

/// A FAKE datapath: records every sync.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Synced>>>);

/// One sync: the compilation and the (interface, pod) bindings.
type Synced = (Arc<Compiled>, Vec<(String, String)>);

impl DatapathSink for Recorder {
    fn apply(&mut self, compiled: Arc<Compiled>, binds: &[Bind]) -> mcnet_datapath::Result<usize> {
        let b = binds
            .iter()
            .map(|b| (b.iface.clone(), b.pod.clone()))
            .collect();
        self.0.lock().unwrap().push((compiled, b));
        Ok(binds.len())
    }
}

fn verdict(c: &Compiled, from: &str, to: &str) -> String {
    let q: Query = serde_json::from_value(
        json!({"from": {"pod": from}, "to": {"pod": to}, "port": 8080, "protocol": "TCP"}),
    )
    .unwrap();
    let o = c.eval(&q).unwrap();
    if o.verdict.is_allow() {
        "allow".into()
    } else {
        "deny".into()
    }
}

async fn until(
    status: &mut watch::Receiver<AgentStatus>,
    within: Duration,
    f: impl Fn(&AgentStatus) -> bool,
) -> AgentStatus {
    let t0 = Instant::now();
    loop {
        {
            let s = status.borrow_and_update().clone();
            if f(&s) {
                return s;
            }
        }
        let left = within.saturating_sub(t0.elapsed());
        assert!(
            !left.is_zero(),
            "not within {within:?}: {:?}",
            status.borrow().clone()
        );
        let _ = tokio::time::timeout(left, status.changed()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_is_ready_after_the_first_full_sync_and_follows_changes_debounced() {
    let mut s = cluster();
    s.hold = vec![CCNPS.to_string()];
    let server = Arc::new(Mutex::new(s));
    let client = mock_client(server.clone());
    let table = Table(BTreeMap::from([
        ("198.18.0.10".parse().unwrap(), "veth-frontend".to_string()),
        ("198.18.0.20".parse().unwrap(), "veth-api".to_string()),
        ("198.18.0.30".parse().unwrap(), "veth-batch".to_string()),
    ]));
    let sink = Recorder::default();
    let (tx, mut status) = watch::channel(AgentStatus::default());
    let config = AgentConfig::new("node-a")
        .with_debounce(Duration::from_millis(300), Duration::from_secs(2));
    tokio::spawn(agent::run(
        client,
        config,
        Arc::new(table),
        Box::new(sink.clone()),
        tx,
    ));

    // One collection not yet listed: not ready, nothing synced.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(!status.borrow().ready);
    assert!(sink.0.lock().unwrap().is_empty());

    server.lock().unwrap().release(CCNPS);
    let st = until(&mut status, Duration::from_secs(10), |s| s.ready).await;
    // Only node-a's pods are bound, at their interfaces.
    assert_eq!(st.bound, ["production/api-server", "production/frontend"]);
    {
        let syncs = sink.0.lock().unwrap();
        assert_eq!(syncs.len(), 1);
        let (c, binds) = &syncs[0];
        assert_eq!(
            binds,
            &[
                ("veth-api".to_string(), "production/api-server".to_string()),
                (
                    "veth-frontend".to_string(),
                    "production/frontend".to_string()
                )
            ]
        );
        // The whole cluster's policy: batch (on node-b) is still an identity here.
        assert_eq!(
            verdict(c, "production/frontend", "production/api-server"),
            "allow"
        );
        assert_eq!(
            verdict(c, "production/batch", "production/api-server"),
            "deny"
        );
    }

    // A burst of five changes within the debounce: one more sync, with the last.
    for i in 0..5 {
        let np = json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": format!("batch-to-api-{i}"), "namespace": "production"},
            "spec": {"podSelector": {"matchLabels": {"app": if i == 4 { "api-server" } else { "nothing" }}},
                     "policyTypes": ["Ingress"],
                     "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "batch"}}}], "ports": [{"port": 8080}]}]}});
        server.lock().unwrap().push(NETPOLS, np);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let egress = json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "batch-egress", "namespace": "production"},
        "spec": {"podSelector": {"matchLabels": {"app": "batch"}}, "policyTypes": ["Egress"],
                 "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "api-server"}}}], "ports": [{"port": 8080}]}]}});
    server.lock().unwrap().push(NETPOLS, egress);
    until(&mut status, Duration::from_secs(10), |s| s.syncs >= 2).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    {
        let syncs = sink.0.lock().unwrap();
        assert_eq!(syncs.len(), 2, "the burst was debounced into one sync");
        assert_eq!(
            verdict(&syncs[1].0, "production/batch", "production/api-server"),
            "allow"
        );
    }

    // A policy the engine refuses: the error names it, the last good stays.
    let bad = json!({"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
        "metadata": {"name": "typo", "namespace": "production"},
        "spec": {"endpointSelector": {}, "ingresss": [{}]}});
    server.lock().unwrap().push(CNPS, bad);
    let st = until(&mut status, Duration::from_secs(10), |s| s.error.is_some()).await;
    let e = st.error.unwrap();
    assert!(e.contains("typo") && e.contains("ingresss"), "{e}");
    assert!(st.ready);
    assert_eq!(sink.0.lock().unwrap().len(), 2);
}

/// Tries a TCP connection from pod namespace `ns` to `api:9090` (100 ms
/// at most) until it succeeds (`want`) or fails; how long that took.
fn wait_for_connect(ns: &str, api: std::net::Ipv4Addr, want: bool) -> Duration {
    let path = mcnet_datapath::netns::named(ns);
    let t0 = Instant::now();
    loop {
        let ok = mcnet_datapath::netns::run_in(&path, || {
            std::net::TcpStream::connect_timeout(&(api, 9090).into(), Duration::from_millis(100))
                .is_ok()
        })
        .unwrap();
        if ok == want {
            return t0.elapsed();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "connectivity did not follow within 10 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// As root, with the kernel: the agent (fed by the mock API) binds the
/// lab's pods at the interfaces `ip route get` names in the node
/// namespace, the eBPF datapath enforces the compiled policy on real
/// connections, and a policy pushed through a watch opens exactly the
/// connection it allows.
#[test]
fn as_root_the_agent_drives_the_kernel_datapath_and_follows_a_policy_change() {
    use mcnet_datapath::agent::{EnforcerSink, RouteResolver};
    use mcnet_datapath::enforcer::EnforcerOptions;
    use mcnet_datapath::lab::{self, Lab};
    use mcnet_datapath::netns;
    use std::sync::atomic::AtomicBool;

    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        mcnet_core::testing::skip("the agent's kernel test needs root (network namespaces, eBPF)");
        return;
    }
    let ip = |s: &str| -> std::net::Ipv4Addr { s.parse().unwrap() };
    let lab = Lab::new(
        "agnt",
        &[
            ("production/frontend", ip("198.18.0.10")),
            ("production/api-server", ip("198.18.0.20")),
            ("production/batch", ip("198.18.0.30")),
        ],
    )
    .unwrap();
    let ns = |k: &str| lab.pod(k).unwrap().netns.clone();
    let stop = Arc::new(AtomicBool::new(false));
    lab::serve(&ns("production/api-server"), 9090, stop.clone());
    let (fe, batch, api) = (
        ns("production/frontend"),
        ns("production/batch"),
        ip("198.18.0.20"),
    );
    // Before any agent: nothing is enforced.
    assert!(lab::tcp_ok(&batch, api, 9090));

    let mut s = cluster();
    for p in s.lists.get_mut(PODS).unwrap() {
        p["spec"]["nodeName"] = json!("lab-node");
    }
    let server = Arc::new(Mutex::new(s));
    // The agent on its own thread in the node namespace; the test probes
    // from the pods' namespaces meanwhile.
    let (tx, status) = watch::channel(AgentStatus::default());
    let (stop_agent, stopped) = tokio::sync::oneshot::channel::<()>();
    let node = netns::named(&lab.node);
    let server2 = server.clone();
    let agent_thread = std::thread::spawn(move || {
        netns::run_in(&node, move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let client = mock_client(server2);
                let sink = Box::new(EnforcerSink::new(EnforcerOptions::default()));
                let config = AgentConfig::new("lab-node");
                tokio::select! {
                    () = agent::run(client, config, Arc::new(RouteResolver), sink, tx) => {}
                    _ = stopped => {}
                }
            })
        })
        .unwrap()
    });
    let t0 = Instant::now();
    let st = loop {
        let st = status.borrow().clone();
        if st.ready || st.error.is_some() || t0.elapsed() > Duration::from_secs(20) {
            break st;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(st.ready, "{st:?}");
    assert_eq!(
        st.bound,
        [
            "production/api-server",
            "production/batch",
            "production/frontend"
        ]
    );
    assert!(st.unresolved.is_empty());

    // Default deny: neither batch nor the frontend reaches 9090.
    assert!(!lab::tcp_ok(&batch, api, 9090));
    assert!(!lab::tcp_ok(&fe, api, 9090));

    let allow = |name: &str, types: &str, rule: Value| {
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": "production"},
            "spec": {"podSelector": {"matchLabels": {"app": if types == "Egress" { "batch" } else { "api-server" }}},
                     "policyTypes": [types], (types.to_lowercase()): [rule]}})
    };
    let peer = |app: &str| json!({"podSelector": {"matchLabels": {"app": app}}});
    let port = json!([{"port": 9090, "protocol": "TCP"}]);
    server.lock().unwrap().push(
        NETPOLS,
        allow(
            "batch-out",
            "Egress",
            json!({"to": [peer("api-server")], "ports": port}),
        ),
    );
    server.lock().unwrap().push(
        NETPOLS,
        allow(
            "api-in",
            "Ingress",
            json!({"from": [peer("batch")], "ports": port}),
        ),
    );
    // Connectivity follows within the debounce: measured from the push to
    // the first connection that succeeds (the figure is printed; the bound
    // is generous, the machine is shared).
    let opened = wait_for_connect(&batch, api, true);
    eprintln!("a pushed NetworkPolicy changed real connectivity after {opened:?}");
    assert!(
        lab::tcp_ok(&batch, api, 9090),
        "the pushed policy opens batch → api-server:9090"
    );
    assert!(!lab::tcp_ok(&fe, api, 9090), "and nothing else");

    // Removing the ingress half closes it again.
    server
        .lock()
        .unwrap()
        .delete(NETPOLS, "production", "api-in");
    let closed = wait_for_connect(&batch, api, false);
    eprintln!("a removed NetworkPolicy restored the denial after {closed:?}");
    assert!(!lab::tcp_ok(&batch, api, 9090));
    let _ = stop_agent.send(());
    agent_thread.join().unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
}
