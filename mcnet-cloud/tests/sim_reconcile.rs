//! The planner against the embedded sim: adr-003 end to end, drift, fault
//! injection, quotas and leaks.

#[path = "support/mod.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mcnet_cloud::connect::sim::{FailRule, Faults, Quotas, SimCloud, SimConfig};
use mcnet_core::reconcile::DriftStatus;
use mcnet_core::reconcile::{
    apply, desired, plan, ApplyOptions, ApplyReport, CloudMetrics, ErrorKind, Op, Owner, Plan,
    Providers, Retry, Scope, Spec,
};
use mcnet_core::topology::Topology;

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let p =
            std::env::temp_dir().join(format!("mcnet-sim-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn example(name: &str) -> Topology {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../examples/topologies/{name}"));
    Topology::from_str_strict(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn adr003() -> Topology {
    example("adr-003.yaml")
}

fn fast(step_ms: u64) -> SimConfig {
    SimConfig {
        step_ms,
        ..SimConfig::default()
    }
}

fn opts() -> ApplyOptions {
    ApplyOptions {
        concurrency: 4,
        retry: Retry {
            attempts: 12,
            base: Duration::from_millis(2),
            cap: Duration::from_millis(20),
        },
        wait_timeout: Duration::from_secs(30),
        poll: Duration::from_millis(5),
    }
}

struct World {
    topology: Topology,
    owner: Owner,
    scopes: BTreeSet<Scope>,
    providers: Providers,
}

impl World {
    fn new(dir: &Path, config: SimConfig) -> World {
        World::of(adr003(), dir, config)
    }

    fn of(topology: Topology, dir: &Path, config: SimConfig) -> World {
        let sim = SimCloud::with_config(dir, config);
        let mut providers = Providers::default();
        for s in Scope::ALL {
            providers = providers.with(sim.provider(s));
        }
        World {
            owner: Owner {
                topology: topology.metadata.name.clone(),
            },
            topology,
            scopes: Scope::ALL.into_iter().collect(),
            providers,
        }
    }

    async fn plan(&self) -> Plan {
        let want = desired(&self.topology, &self.scopes).unwrap();
        let have = self.providers.observe(&self.owner).await.unwrap();
        plan(&self.owner.topology, &self.scopes, &want, &have)
    }

    async fn apply(&self) -> ApplyReport {
        let p = self.plan().await;
        apply(
            &p,
            &self.owner,
            &self.providers,
            &opts(),
            Arc::new(|_: &_| {}),
        )
        .await
    }

    async fn destroy(&self) -> ApplyReport {
        let have = self.providers.observe(&self.owner).await.unwrap();
        let p = plan(&self.owner.topology, &self.scopes, &[], &have);
        apply(
            &p,
            &self.owner,
            &self.providers,
            &opts(),
            Arc::new(|_: &_| {}),
        )
        .await
    }
}

/// Logical id → how many cloud resources carry it, across every state file.
fn census(dir: &Path) -> BTreeMap<String, usize> {
    let mut n = BTreeMap::new();
    for s in Scope::ALL {
        let sim = SimCloud::with_config(dir, SimConfig::default());
        for r in sim.read(s).unwrap().resources.values() {
            *n.entry(r.tags["mcnet.io/id"].clone()).or_default() += 1;
        }
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adr003_applies_fully_replans_empty_and_drift_is_repaired() {
    let dir = TempDir::new("e2e");
    let w = World::new(&dir.0, fast(20));
    let first = w.plan().await;
    assert_eq!(first.count(Op::Create), first.actions.len());
    let kinds: BTreeSet<_> = first.actions.iter().map(|a| a.kind.as_str()).collect();
    for k in [
        "network",
        "subnet",
        "peering",
        "route",
        "router",
        "vxc",
        "interconnect-gateway",
        "private-endpoint",
    ] {
        assert!(kinds.contains(k), "{k} missing from {kinds:?}");
    }
    let r = w.apply().await;
    assert!(r.ok(), "{r:?}");
    assert_eq!(r.completed, first.actions.len());

    let again = w.plan().await;
    assert!(again.is_empty(), "{again}");
    assert_eq!(again.unchanged, first.actions.len());
    let c = census(&dir.0);
    assert_eq!(c.len(), first.actions.len());
    assert!(c.values().all(|&n| n == 1), "{c:?}");
    // The monitoring VPC and its peering are there; the VXCs went LIVE, so the
    // cloud ends that waited on them are provisioned.
    let have = w.providers.observe(&w.owner).await.unwrap();
    let status = |id: &str| have.iter().find(|o| o.id == id).unwrap().outputs["status"].clone();
    assert_eq!(status("network/monitoring-vpc"), "available");
    assert_eq!(status("peering/aws-vpc-monitoring"), "active");
    assert_eq!(status("vxc/vxc-azure-er"), "LIVE");
    assert_eq!(status("interconnect-gateway/vxc-azure-er"), "Provisioned");
    assert_eq!(status("interconnect-attachment/vxc-gcp-pi"), "ACTIVE");

    // A manual change: someone lowers a VXC's rate and deletes a route.
    let sim = SimCloud::with_config(&dir.0, SimConfig::default());
    for (scope, f) in [(Scope::Megaport, "rateLimitMbps"), (Scope::Aws, "route")] {
        let path = sim.state_path(scope);
        let mut v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let res = v["resources"].as_object_mut().unwrap();
        if f == "route" {
            let key = res
                .iter()
                .find(|(_, r)| r["tags"]["mcnet.io/id"] == "route/aws-vpc/10.100.0.0/16")
                .map(|(k, _)| k.clone())
                .unwrap();
            res.remove(&key);
        } else {
            for r in res
                .values_mut()
                .filter(|r| r["spec"]["name"] == "vxc-aws-dx")
            {
                r["spec"][f] = 1000.into();
            }
        }
        std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
    }
    let p = w.plan().await;
    let items = mcnet_core::reconcile::drift(&p);
    let seen: Vec<(DriftStatus, &str)> = items
        .iter()
        .map(|d| (d.status, d.resource.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            (DriftStatus::Missing, "route/aws-vpc/10.100.0.0/16"),
            (DriftStatus::Changed, "vxc/vxc-aws-dx")
        ]
    );
    let vxc = p
        .actions
        .iter()
        .find(|a| a.resource == "vxc/vxc-aws-dx")
        .unwrap();
    assert_eq!(vxc.op, Op::Update, "a rate change is made in place");
    assert_eq!(
        (vxc.changes[0].from.clone(), vxc.changes[0].to.clone()),
        (1000.into(), 5000.into())
    );
    let before = vxc.cloud_id.clone();
    assert!(w.apply().await.ok());
    assert!(w.plan().await.is_empty());
    let have = w.providers.observe(&w.owner).await.unwrap();
    assert_eq!(
        have.iter()
            .find(|o| o.id == "vxc/vxc-aws-dx")
            .map(|o| o.cloud_id.clone()),
        before
    );

    // Destroy leaves nothing behind.
    let r = w.destroy().await;
    assert!(r.ok(), "{r:?}");
    assert!(census(&dir.0).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_storms_and_lost_responses_converge_without_duplicates() {
    let dir = TempDir::new("storm");
    let w = World::new(
        &dir.0,
        SimConfig {
            seed: 42,
            step_ms: 10,
            faults: Faults {
                throttle: 0.4,
                timeout: 0.2,
                fail: vec![],
            },
            quotas: Quotas::default(),
        },
    );
    // The storm as the cloud-API metrics see it.
    let metrics = CloudMetrics::new();
    let w = World {
        providers: Providers(
            w.providers
                .0
                .into_iter()
                .map(|(s, p)| (s, metrics.wrap(p)))
                .collect(),
        ),
        ..w
    };
    let r = w.apply().await;
    assert!(r.retries > 10, "the storm was felt: {r:?}");
    let throttled: u64 = Scope::ALL
        .iter()
        .map(|s| metrics.errors(*s, "create", ErrorKind::Throttled))
        .sum();
    let creates: u64 = Scope::ALL
        .iter()
        .map(|s| metrics.operations(*s, "create"))
        .sum();
    assert!(
        throttled > 0 && creates > throttled,
        "{throttled} of {creates}"
    );
    // Whatever did not finish, a re-run on a calm sim finishes, and nothing
    // is duplicated even though responses of calls that took effect were lost.
    let calm = World::new(&dir.0, fast(10));
    let r2 = calm.apply().await;
    assert!(r2.ok(), "{r2:?}");
    assert!(calm.plan().await.is_empty());
    let c = census(&dir.0);
    assert!(c.values().all(|&n| n == 1), "duplicates: {c:?}");
    assert!(calm.destroy().await.ok());
    assert!(census(&dir.0).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resource_failing_mid_dag_skips_its_dependents_and_the_apply_resumes() {
    let dir = TempDir::new("fail");
    let failing = World::new(
        &dir.0,
        SimConfig {
            step_ms: 10,
            faults: Faults {
                fail: vec![FailRule {
                    resource: "vxc/vxc-azure-er".into(),
                    operation: "create".into(),
                }],
                ..Faults::default()
            },
            ..SimConfig::default()
        },
    );
    let r = failing.apply().await;
    assert!(!r.ok());
    assert_eq!(r.failed.len(), 1);
    assert_eq!(r.failed[0].resource, "vxc/vxc-azure-er");
    assert_eq!(r.failed[0].kind, ErrorKind::Conflict);
    assert!(
        r.failed[0]
            .error
            .contains("megaport create vxc: vxc/vxc-azure-er"),
        "{}",
        r.failed[0].error
    );
    // The ExpressRoute connection needs the VXC: skipped, not attempted.
    assert_eq!(
        r.skipped,
        ["interconnect-attachment/vxc-azure-er/azure-vnet"]
    );
    // Everything independent was done.
    let c = census(&dir.0);
    assert!(c.contains_key("vxc/vxc-gcp-pi") && c.contains_key("route/aws-vpc/10.100.0.0/16"));

    let fixed = World::new(&dir.0, fast(10));
    let p = fixed.plan().await;
    let left: Vec<&str> = p.actions.iter().map(|a| a.resource.as_str()).collect();
    assert_eq!(
        left,
        [
            "vxc/vxc-azure-er",
            "interconnect-attachment/vxc-azure-er/azure-vnet"
        ]
    );
    assert!(fixed.apply().await.ok());
    assert!(fixed.plan().await.is_empty());
    assert!(census(&dir.0).values().all(|&n| n == 1));
}

#[tokio::test]
async fn quotas_and_megaport_speeds_are_clear_errors() {
    let dir = TempDir::new("quota");
    let w = World::new(
        &dir.0,
        SimConfig {
            step_ms: 1,
            quotas: Quotas {
                vpcs_per_region: 1,
                peerings_per_vpc: 50,
            },
            ..SimConfig::default()
        },
    );
    let r = w.apply().await;
    let q = r
        .failed
        .iter()
        .find(|f| f.kind == ErrorKind::Quota)
        .expect("a quota error");
    assert!(
        q.error.contains("maximum number of VPCs in us-east-1 (1)"),
        "{}",
        q.error
    );

    let dir = TempDir::new("speed");
    let mut w = World::new(&dir.0, fast(1));
    w.topology.spec.interconnect.routers[0].speed_mbps = 3000;
    let r = w.apply().await;
    let f = r
        .failed
        .iter()
        .find(|f| f.resource == "router/multicloud-mcr")
        .unwrap();
    assert_eq!(f.kind, ErrorKind::Invalid);
    assert!(
        f.error.contains("3000 Mbps is not an MCR speed"),
        "{}",
        f.error
    );
    // Nothing that needs the MCR was attempted.
    assert!(r.skipped.iter().any(|s| s == "vxc/vxc-aws-dx"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_never_corrupt_the_state() {
    let dir = TempDir::new("race");
    // Two applies of the same topology race without the CLI's lock: each
    // call is atomic, so the files stay valid; the next plan deletes any
    // duplicate the race made and the state converges.
    let a = World::new(&dir.0, fast(5));
    let b = World::new(&dir.0, fast(5));
    let (ra, rb) = tokio::join!(a.apply(), b.apply());
    let _ = (ra, rb);
    for s in Scope::ALL {
        let text = std::fs::read(SimCloud::with_config(&dir.0, SimConfig::default()).state_path(s))
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&text).expect("valid JSON after the race");
    }
    for _ in 0..3 {
        if a.plan().await.is_empty() {
            break;
        }
        let _ = a.apply().await;
    }
    let p = a.plan().await;
    assert!(p.is_empty(), "{p}");
    assert!(census(&dir.0).values().all(|&n| n == 1));
}

/// What a lost race can leave: a second copy of a VPC, with the peering
/// built on the copy and routes through that peering. The plan keeps the
/// first copy, so the peering is replaced; its routes are blackholed for a
/// moment (as EC2 does when a next hop goes away), repointed, and the copy
/// is deleted. One apply converges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peering_built_on_a_duplicate_vpc_is_replaced_and_the_copy_deleted() {
    let dir = TempDir::new("dup-peer");
    let w = World::new(&dir.0, fast(5));
    assert!(w.apply().await.ok());
    let sim = SimCloud::with_config(&dir.0, SimConfig::default());
    let path = sim.state_path(Scope::Aws);
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let res = v["resources"].as_object_mut().unwrap();
    let find = |res: &serde_json::Map<String, serde_json::Value>, id: &str| {
        res.iter()
            .find(|(_, r)| r["tags"]["mcnet.io/id"] == id)
            .map(|(k, _)| k.clone())
            .unwrap()
    };
    let vpc = find(res, "network/aws-vpc");
    let copy = "vpc-ffffffffffffffff0".to_string();
    let dup = res[&vpc].clone();
    res.insert(copy.clone(), dup);
    let pcx = find(res, "peering/aws-vpc-monitoring");
    assert_eq!(res[&pcx]["spec"]["requester"], serde_json::json!(vpc));
    res.get_mut(&pcx).unwrap()["spec"]["requester"] = copy.clone().into();
    std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();

    let p = w.plan().await;
    let ops: BTreeSet<(Op, &str)> = p
        .actions
        .iter()
        .map(|a| (a.op, a.resource.as_str()))
        .collect();
    assert!(
        ops.contains(&(Op::Replace, "peering/aws-vpc-monitoring")),
        "{p}"
    );
    assert!(ops.contains(&(Op::Delete, "network/aws-vpc")), "{p}");
    let r = w.apply().await;
    assert!(r.ok(), "{r:?}");
    let p = w.plan().await;
    assert!(p.is_empty(), "{p}");
    assert!(census(&dir.0).values().all(|&n| n == 1));
    let have = w.providers.observe(&w.owner).await.unwrap();
    let kept = have.iter().find(|o| o.id == "network/aws-vpc").unwrap();
    assert_eq!(kept.cloud_id, vpc, "the first copy is kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transit_gateway_hub_from_the_topology_applies_and_replans_empty() {
    let dir = TempDir::new("hub");
    let w = World::of(example("aws-hub.yaml"), &dir.0, fast(5));
    let p = w.plan().await;
    let ids: BTreeSet<&str> = p.actions.iter().map(|a| a.resource.as_str()).collect();
    for id in [
        "transit-gateway/hub",
        "transit-gateway-attachment/hub/app-b",
        "transit-gateway-route/hub/10.21.0.0/16",
        "route/app-a/10.22.0.0/16",
        "route/app-b/10.20.0.0/16",
    ] {
        assert!(ids.contains(id), "{id} missing from {p}");
    }
    // 3 VPCs, 5 subnets, 3 route tables, the hub, 3 attachments, 3 hub
    // routes and 6 VPC routes (each VPC to the two others).
    assert_eq!(p.actions.len(), 24, "{p}");
    let att = p
        .actions
        .iter()
        .find(|a| a.resource == "transit-gateway-attachment/hub/shared-services")
        .and_then(|a| a.desired.as_ref())
        .unwrap();
    let Spec::TransitGatewayAttachment { subnets, .. } = &att.spec else {
        unreachable!()
    };
    assert_eq!(subnets.len(), 2, "one subnet per zone");
    let r = w.apply().await;
    assert!(r.ok(), "{r:?}");
    assert!(w.plan().await.is_empty());
    assert!(w.destroy().await.ok());
    assert!(census(&dir.0).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroying_prod_never_touches_prod_colon_x_or_prod_dash_x_on_the_sim() {
    for theirs in ["prod:x", "prod-x"] {
        let dir = TempDir::new("owner");
        let sim = SimCloud::with_config(&dir.0, fast(5));
        let providers = Scope::ALL
            .into_iter()
            .fold(Providers::default(), |p, s| p.with(sim.provider(s)));
        support::rig::destroy_of_prod_spares(&adr003(), theirs, providers).await;
    }
}
