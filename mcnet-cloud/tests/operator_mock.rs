//! The operator against a MOCK Kubernetes API: no API server can run here,
//! so a tower-test service stands in for one. It keeps one `Topology` and
//! one Lease the way an API server does (finalizer patches, the status
//! subresource, events, and `resourceVersion` compare-and-swap with `409
//! Conflict`), and records every request. The clouds are the embedded
//! simulated cloud, as in every other reconciler test.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{Request, Response};
use kube::client::Body;
use kube::runtime::controller::Action;
use mcnet_cloud::connect::sim::{SimCloud, SimConfig};
use mcnet_cloud::operator::{
    self, Backoff, Context, LeaderElector, Leadership, LeaseConfig, ProviderSource, Topology,
};
use mcnet_core::reconcile::{Owner, Providers, Scope};
use serde_json::{json, Value};

const ADR: &str = include_str!("../../examples/topologies/adr-003.yaml");

/// What the mock API server holds.
#[derive(Default)]
struct Server {
    topology: Option<Value>,
    lease: Option<Value>,
    version: u64,
    /// (method, path, body) of every request, in order.
    log: Vec<(String, String, Value)>,
}

fn status(code: u16, reason: &str, message: &str) -> Response<Body> {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code});
    Response::builder()
        .status(code)
        .body(Body::from(body.to_string().into_bytes()))
        .unwrap()
}

fn ok(v: &Value) -> Response<Body> {
    Response::builder()
        .body(Body::from(v.to_string().into_bytes()))
        .unwrap()
}

impl Server {
    fn handle(&mut self, method: &str, path: &str, body: Value) -> Response<Body> {
        self.log.push((method.into(), path.into(), body.clone()));
        let lease_path = "/apis/coordination.k8s.io/v1/namespaces/mcnet-system/leases";
        match (method, path) {
            // A new event, or (patch) one more of a series.
            ("POST" | "PATCH", p) if p.starts_with("/apis/events.k8s.io/v1/namespaces/") => {
                ok(&body)
            }
            ("PATCH", p) if p.ends_with("/status") => {
                let t = self.topology.as_mut().expect("a topology");
                t["status"] = body["status"].clone();
                ok(t)
            }
            ("PATCH", p) if p.starts_with("/apis/mcnet.io/v1alpha1/topologies/") => {
                // The finalizer helper's JSON patches: add or remove.
                let t = self.topology.as_mut().expect("a topology");
                for op in body.as_array().unwrap() {
                    match (op["op"].as_str().unwrap(), op["path"].as_str().unwrap()) {
                        ("test", _) => {}
                        ("add", "/metadata/finalizers") => {
                            t["metadata"]["finalizers"] = op["value"].clone()
                        }
                        ("add", "/metadata/finalizers/-") => t["metadata"]["finalizers"]
                            .as_array_mut()
                            .unwrap()
                            .push(op["value"].clone()),
                        ("remove", p) => {
                            let i: usize = p.rsplit('/').next().unwrap().parse().unwrap();
                            t["metadata"]["finalizers"]
                                .as_array_mut()
                                .unwrap()
                                .remove(i);
                        }
                        other => panic!("unexpected patch {other:?}"),
                    }
                }
                ok(t)
            }
            ("GET", p) if p.starts_with(lease_path) => match &self.lease {
                Some(l) => ok(l),
                None => status(404, "NotFound", "leases \"mcnet-operator\" not found"),
            },
            ("POST", p) if p.starts_with(lease_path) => {
                if self.lease.is_some() {
                    return status(
                        409,
                        "AlreadyExists",
                        "leases \"mcnet-operator\" already exists",
                    );
                }
                self.version += 1;
                let mut l = body;
                l["metadata"]["resourceVersion"] = json!(self.version.to_string());
                self.lease = Some(l.clone());
                ok(&l)
            }
            ("PUT", p) if p.starts_with(lease_path) => {
                let have = self
                    .lease
                    .as_ref()
                    .and_then(|l| l["metadata"]["resourceVersion"].as_str().map(String::from));
                if have.as_deref() != body["metadata"]["resourceVersion"].as_str() {
                    return status(409, "Conflict", "the object has been modified; please apply your changes to the latest version and try again");
                }
                self.version += 1;
                let mut l = body;
                l["metadata"]["resourceVersion"] = json!(self.version.to_string());
                self.lease = Some(l.clone());
                ok(&l)
            }
            other => panic!("the mock API server does not expect {other:?}"),
        }
    }
}

/// A kube client whose every request the mock server answers.
fn mock_client(server: Arc<Mutex<Server>>) -> kube::Client {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    tokio::spawn(async move {
        while let Some((req, send)) = handle.next_request().await {
            let method = req.method().to_string();
            let path = req.uri().path().to_string();
            let bytes = req.into_body().collect_bytes().await.unwrap();
            let body: Value = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).unwrap()
            };
            let resp = server.lock().unwrap().handle(&method, &path, body);
            send.send_response(resp);
        }
    });
    kube::Client::new(service, "default")
}

fn sim_source(dir: &std::path::Path, config: SimConfig) -> (Arc<SimCloud>, ProviderSource) {
    let sim = SimCloud::with_config(dir, config);
    let s = sim.clone();
    let source: ProviderSource = Arc::new(move |_t| {
        let mut p = Providers::default();
        for scope in Scope::ALL {
            p = p.with(s.provider(scope));
        }
        Ok(p)
    });
    (sim, source)
}

fn fast_sim() -> SimConfig {
    SimConfig {
        step_ms: 0,
        ..SimConfig::default()
    }
}

/// adr-003.yaml as the object an API server returns.
fn adr_object(finalizers: &[&str]) -> Value {
    let mut v: Value = serde_yaml::from_str(ADR).unwrap();
    v["metadata"]["uid"] = json!("6f1c1f9e-0000-4000-8000-000000000003");
    v["metadata"]["generation"] = json!(1);
    v["metadata"]["resourceVersion"] = json!("1");
    v["metadata"]["finalizers"] = json!(finalizers);
    v
}

fn as_topology(v: &Value) -> Arc<Topology> {
    Arc::new(serde_json::from_value(v.clone()).unwrap())
}

async fn what_the_sim_has(sim: &Arc<SimCloud>) -> usize {
    let mut p = Providers::default();
    for scope in Scope::ALL {
        p = p.with(sim.provider(scope));
    }
    p.observe(&Owner {
        topology: "adr-003".into(),
    })
    .await
    .unwrap()
    .len()
}

fn temp(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("mcnet-operator-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[tokio::test]
async fn a_created_topology_gets_its_finalizer_then_is_applied_and_ready() {
    let dir = temp("create");
    let (sim, source) = sim_source(&dir, fast_sim());
    let server = Arc::new(Mutex::new(Server {
        topology: Some(adr_object(&[])),
        ..Server::default()
    }));
    let ctx = Arc::new(Context::new(
        mock_client(server.clone()),
        source,
        Leadership::always(),
        "test-0",
    ));

    let mut registry = mcnet_core::metrics::Registry::default();
    ctx.metrics.register(&mut registry);

    // First pass: only the finalizer, and nothing in the clouds yet.
    let first = operator::reconcile(as_topology(&adr_object(&[])), ctx.clone())
        .await
        .unwrap();
    assert_eq!(first, Action::await_change());
    assert_eq!(what_the_sim_has(&sim).await, 0);
    let obj = server.lock().unwrap().topology.clone().unwrap();
    assert_eq!(obj["metadata"]["finalizers"], json!([operator::FINALIZER]));

    // Second pass (the watch sees the finalizer): apply, then status and event.
    let second = operator::reconcile(as_topology(&obj), ctx.clone())
        .await
        .unwrap();
    assert_eq!(second, Action::requeue(ctx.resync));
    let have = what_the_sim_has(&sim).await;
    assert!(have > 10, "the sim holds {have} resources");
    {
        let s = server.lock().unwrap();
        let st = &s.topology.as_ref().unwrap()["status"];
        let ready = st["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap();
        assert_eq!(ready["status"], "True", "{st}");
        assert_eq!(ready["reason"], "Applied");
        assert_eq!(st["resourceCount"], json!(have));
        assert_eq!(st["resources"].as_object().unwrap().len(), have);
        assert!(
            st["resources"]["network/aws-vpc"]
                .as_str()
                .unwrap()
                .starts_with("vpc-"),
            "{st}"
        );
        assert!(
            st["resources"]["network/gcp-vpc"]
                .as_str()
                .unwrap()
                .starts_with("projects/"),
            "{st}"
        );
        assert_eq!(st["lastPlan"]["create"], json!(have));
        assert_eq!(st["drift"], json!([]));
        let events: Vec<&Value> = s
            .log
            .iter()
            .filter(|(m, p, _)| m == "POST" && p.contains("/events"))
            .map(|(_, _, b)| b)
            .collect();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0]["reason"], "Applied");
        assert_eq!(events[0]["type"], "Normal");
        assert_eq!(events[0]["regarding"]["name"], "adr-003");
    }

    // Unchanged: a third pass applies nothing and publishes nothing.
    let obj = server.lock().unwrap().topology.clone().unwrap();
    operator::reconcile(as_topology(&obj), ctx.clone())
        .await
        .unwrap();
    let s = server.lock().unwrap();
    assert_eq!(
        s.log
            .iter()
            .filter(|(_, p, _)| p.contains("/events"))
            .count(),
        1
    );
    let st = &s.topology.as_ref().unwrap()["status"];
    assert_eq!(st["drift"], json!([]));
    let text = mcnet_core::metrics::encode(&registry);
    assert!(
        text.contains("mcnet_operator_reconciles_total{result=\"applied\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("mcnet_operator_reconciles_total{result=\"unchanged\"} 1"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "mcnet_operator_resources{{topology=\"adr-003\"}} {have}"
        )),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_resource_deleted_outside_mcnet_is_reported_as_drift_and_repaired() {
    let dir = temp("drift");
    let (sim, source) = sim_source(&dir, fast_sim());
    let server = Arc::new(Mutex::new(Server {
        topology: Some(adr_object(&[operator::FINALIZER])),
        ..Server::default()
    }));
    let ctx = Arc::new(Context::new(
        mock_client(server.clone()),
        source.clone(),
        Leadership::always(),
        "test-0",
    ));
    let obj = server.lock().unwrap().topology.clone().unwrap();
    operator::reconcile(as_topology(&obj), ctx.clone())
        .await
        .unwrap();
    let before = what_the_sim_has(&sim).await;

    // Someone deletes a route by hand.
    let providers = source(&as_topology(&obj).model()).unwrap();
    let owner = Owner {
        topology: "adr-003".into(),
    };
    let have = providers.observe(&owner).await.unwrap();
    let victim = have
        .iter()
        .find(|o| o.id.to_string().starts_with("route/"))
        .unwrap()
        .clone();
    providers.0[&victim.scope].delete(&victim).await.unwrap();
    assert_eq!(what_the_sim_has(&sim).await, before - 1);

    let obj = server.lock().unwrap().topology.clone().unwrap();
    operator::reconcile(as_topology(&obj), ctx.clone())
        .await
        .unwrap();
    assert_eq!(what_the_sim_has(&sim).await, before, "repaired");
    let s = server.lock().unwrap();
    let st = &s.topology.as_ref().unwrap()["status"];
    assert_eq!(st["drift"][0]["id"], json!(victim.id.to_string()), "{st}");
    let drifted = st["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Drifted")
        .unwrap();
    assert_eq!(drifted["status"], "True");
    assert!(s
        .log
        .iter()
        .any(|(_, p, b)| p.contains("/events") && b["reason"] == "DriftRepaired"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_provider_error_fails_ready_and_requeues_with_exponential_backoff() {
    let dir = temp("error");
    let mut config = fast_sim();
    config.faults.fail =
        vec![serde_yaml::from_str("{resource: 'vxc/*', operation: create}").unwrap()];
    let (_sim, source) = sim_source(&dir, config);
    let server = Arc::new(Mutex::new(Server {
        topology: Some(adr_object(&[operator::FINALIZER])),
        ..Server::default()
    }));
    let backoff = Backoff {
        base: Duration::from_secs(5),
        max: Duration::from_secs(60),
    };
    let ctx = Arc::new(
        Context::new(
            mock_client(server.clone()),
            source,
            Leadership::always(),
            "test-0",
        )
        .with_backoff(backoff),
    );
    let obj = as_topology(&server.lock().unwrap().topology.clone().unwrap());
    let err = operator::reconcile(obj.clone(), ctx.clone())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("vxc/"), "{err}");
    {
        let s = server.lock().unwrap();
        let st = &s.topology.as_ref().unwrap()["status"];
        let ready = st["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap();
        assert_eq!(ready["status"], "False");
        assert_eq!(ready["reason"], "ApplyFailed");
        assert!(
            ready["message"].as_str().unwrap().contains("vxc/"),
            "{ready}"
        );
        assert!(s.log.iter().any(|(_, p, b)| p.contains("/events")
            && b["type"] == "Warning"
            && b["reason"] == "ApplyFailed"));
    }
    let delays: Vec<Action> = (0..6)
        .map(|_| operator::error_policy(obj.clone(), &err, ctx.clone()))
        .collect();
    let want: Vec<Action> = [5, 10, 20, 40, 60, 60]
        .iter()
        .map(|s| Action::requeue(Duration::from_secs(*s)))
        .collect();
    assert_eq!(delays, want);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn an_invalid_topology_is_not_ready_and_names_the_field() {
    let dir = temp("invalid");
    let (sim, source) = sim_source(&dir, fast_sim());
    let mut bad = adr_object(&[operator::FINALIZER]);
    bad["spec"]["clusters"][0]["network"] = json!("no-such-network");
    let server = Arc::new(Mutex::new(Server {
        topology: Some(bad.clone()),
        ..Server::default()
    }));
    let ctx = Arc::new(Context::new(
        mock_client(server.clone()),
        source,
        Leadership::always(),
        "test-0",
    ));
    let action = operator::reconcile(as_topology(&bad), ctx).await.unwrap();
    assert_eq!(action, Action::await_change());
    assert_eq!(what_the_sim_has(&sim).await, 0);
    let s = server.lock().unwrap();
    let ready = s.topology.as_ref().unwrap()["status"]["conditions"][0].clone();
    assert_eq!(
        (ready["status"].as_str(), ready["reason"].as_str()),
        (Some("False"), Some("Invalid"))
    );
    let msg = ready["message"].as_str().unwrap();
    assert!(
        msg.contains("spec.clusters[0].network") && msg.contains("no-such-network"),
        "{msg}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_deleted_topology_runs_its_finalizer_and_destroys_what_it_owned() {
    let dir = temp("delete");
    let (sim, source) = sim_source(&dir, fast_sim());
    let server = Arc::new(Mutex::new(Server {
        topology: Some(adr_object(&[operator::FINALIZER])),
        ..Server::default()
    }));
    let ctx = Arc::new(Context::new(
        mock_client(server.clone()),
        source,
        Leadership::always(),
        "test-0",
    ));
    let obj = server.lock().unwrap().topology.clone().unwrap();
    operator::reconcile(as_topology(&obj), ctx.clone())
        .await
        .unwrap();
    assert!(what_the_sim_has(&sim).await > 10);

    // kubectl delete: the API server sets deletionTimestamp and waits for the finalizer.
    let mut deleting = server.lock().unwrap().topology.clone().unwrap();
    deleting["metadata"]["deletionTimestamp"] = json!("2026-12-06T05:00:00Z");
    server.lock().unwrap().topology = Some(deleting.clone());
    let action = operator::reconcile(as_topology(&deleting), ctx.clone())
        .await
        .unwrap();
    assert_eq!(action, Action::await_change());
    assert_eq!(
        what_the_sim_has(&sim).await,
        0,
        "everything it owned is gone"
    );
    let s = server.lock().unwrap();
    assert_eq!(
        s.topology.as_ref().unwrap()["metadata"]["finalizers"],
        json!([])
    );
    let destroyed = s
        .log
        .iter()
        .position(|(_, p, b)| p.contains("/events") && b["reason"] == "Destroyed")
        .expect("a Destroyed event");
    let removed = s
        .log
        .iter()
        .rposition(|(m, p, _)| m == "PATCH" && p.ends_with("/topologies/adr-003"))
        .unwrap();
    assert!(
        destroyed < removed,
        "the finalizer goes only after the clouds are cleaned"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_replica_without_the_lease_changes_nothing() {
    let dir = temp("standby");
    let (sim, source) = sim_source(&dir, fast_sim());
    let server = Arc::new(Mutex::new(Server {
        topology: Some(adr_object(&[])),
        ..Server::default()
    }));
    let ctx = Arc::new(Context::new(
        mock_client(server.clone()),
        source,
        Leadership::default(),
        "test-1",
    ));
    let action = operator::reconcile(as_topology(&adr_object(&[])), ctx)
        .await
        .unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(5)));
    assert_eq!(what_the_sim_has(&sim).await, 0);
    assert!(
        server.lock().unwrap().log.is_empty(),
        "not even the finalizer"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_operators_on_one_lease_never_both_apply() {
    let server = Arc::new(Mutex::new(Server::default()));
    let timings = |id: &str| {
        LeaseConfig::new("mcnet-system", "mcnet-operator", id)
            .with_timings(Duration::from_secs(1), Duration::from_millis(100))
    };
    let a = LeaderElector::new(mock_client(server.clone()), timings("operator-a"));
    let b = LeaderElector::new(mock_client(server.clone()), timings("operator-b"));
    // Each replica "applies" in a loop while it holds the lease; an apply
    // records when it ran. A pauses renewing for a while, so B takes over.
    let applying = Arc::new(Mutex::new(Vec::<(&str, Instant, Instant)>::new()));
    let paused = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let t0 = Instant::now();
    let run = |who: &'static str, e: LeaderElector, pausable: bool| {
        let applying = applying.clone();
        let paused = paused.clone();
        tokio::spawn(async move {
            let lead = e.leadership();
            let mut last_try = Instant::now() - Duration::from_secs(1);
            while t0.elapsed() < Duration::from_secs(5) {
                let skip = pausable && paused.load(std::sync::atomic::Ordering::SeqCst);
                if !skip && last_try.elapsed() >= Duration::from_millis(100) {
                    last_try = Instant::now();
                    let _ = e.try_acquire_or_renew().await;
                }
                if lead.holds() {
                    let start = Instant::now();
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    // An apply counts when the lease held from start to end
                    // (one that outlives its lease is the caveat of every
                    // lease-based election, client-go's included).
                    if lead.holds() {
                        applying.lock().unwrap().push((who, start, Instant::now()));
                    }
                } else {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        })
    };
    // Meanwhile, every millisecond: never both leaders.
    let (lead_a, lead_b) = (a.leadership(), b.leadership());
    let sampler = tokio::spawn(async move {
        let mut samples = 0u32;
        while t0.elapsed() < Duration::from_secs(5) {
            assert!(!(lead_a.holds() && lead_b.holds()), "a and b both lead");
            samples += 1;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        samples
    });
    let ha = run("a", a, true);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let hb = run("b", b, false);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    paused.store(true, std::sync::atomic::Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(2000)).await;
    paused.store(false, std::sync::atomic::Ordering::SeqCst);
    ha.await.unwrap();
    hb.await.unwrap();
    assert!(sampler.await.unwrap() > 1000);

    let log = applying.lock().unwrap().clone();
    let by = |w: &str| {
        log.iter()
            .filter(|(x, _, _)| *x == w)
            .cloned()
            .collect::<Vec<_>>()
    };
    let (la, lb) = (by("a"), by("b"));
    assert!(
        !la.is_empty() && !lb.is_empty(),
        "both led at some time: a {} b {}",
        la.len(),
        lb.len()
    );
    for (_, s1, e1) in &la {
        for (_, s2, e2) in &lb {
            assert!(e1 <= s2 || e2 <= s1, "a and b applied at the same time");
        }
    }
    // B took over only after A's lease expired: at least a lease duration
    // after A's last renewal, which is before A's last apply ended.
    let s = server.lock().unwrap();
    let lease = s.lease.as_ref().unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "operator-b");
    assert_eq!(lease["spec"]["leaseTransitions"], 1, "{lease}");
    // One create (A's), then renewals and the takeover, each a compare-and-swap.
    assert_eq!(s.log.iter().filter(|(m, _, _)| m == "POST").count(), 1);
    assert!(s.log.iter().filter(|(m, _, _)| m == "PUT").count() > 10);
}
