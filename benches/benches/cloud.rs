//! The planner at scale, and the API calls of a no-op plan.
//!
//! 1. Plan time for 1,000 networks and 5,000 routes: a first plan (all
//!    creates) and a no-op plan (everything converged), against the 1 s
//!    target and against a baseline measured in the same run: serialising
//!    the same desired state to JSON once, the least work any planner that
//!    looks at every resource does.
//! 2. API calls of a no-op plan against the sim holding 10 networks and
//!    holding 1,000: the count follows the resource kinds, not the number
//!    of resources. (The AWS count against moto is printed by the `aws`
//!    feature's test, `mcnet-cloud/tests/aws_moto.rs`.)
//!
//! Without `--bench` (as `cargo test` runs it) it does one small round.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use mcnet_cloud::connect::sim::{SimCloud, SimConfig, SimResource, SimState};
use mcnet_core::reconcile::{
    plan, Desired, Observed, Owner, ResourceId, ResourceProvider, ResourceState, Scope, Spec,
};

fn world(networks: usize, routes_per: usize) -> (Vec<Desired>, Vec<Observed>) {
    let mut want = Vec::new();
    for n in 0..networks {
        let name = format!("n{n}");
        let net = ResourceId::network(&name);
        want.push(Desired {
            id: net.clone(),
            scope: Scope::Aws,
            spec: Spec::Network {
                region: "us-east-1".into(),
                cidrs: vec![format!("10.{}.{}.0/24", n / 256, n % 256)],
            },
        });
        want.push(Desired {
            id: ResourceId::route_table(&name),
            scope: Scope::Aws,
            spec: Spec::RouteTable {
                network: net.to_string(),
                subnets: vec![],
                propagating_gateways: vec![],
            },
        });
        for r in 0..routes_per {
            let peer = (n + r + 1) % networks;
            let destination = format!("10.{}.{}.0/24", peer / 256, peer % 256);
            want.push(Desired {
                id: ResourceId::route(&name, &destination),
                scope: Scope::Aws,
                spec: Spec::Route {
                    route_table: ResourceId::route_table(&name).to_string(),
                    destination,
                    target: format!("peering/p{}", n.min(peer)),
                },
            });
        }
    }
    let have = want
        .iter()
        .enumerate()
        .map(|(i, d)| Observed {
            id: d.id.clone(),
            cloud_id: format!("c-{i:08x}").into(),
            scope: d.scope,
            spec: d.spec.clone(),
            state: ResourceState::Ready,
            outputs: Default::default(),
            links: vec![],
        })
        .collect();
    (want, have)
}

fn best_of(rounds: usize, mut f: impl FnMut()) -> Duration {
    (0..rounds)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .unwrap_or_default()
}

fn sim_noop_calls(networks: usize) -> u64 {
    let dir = std::env::temp_dir().join(format!(
        "mcnet-bench-cloud-{}-{networks}",
        std::process::id()
    ));
    let sim = SimCloud::with_config(&dir, SimConfig::default());
    let owner = Owner {
        topology: "bench".into(),
    };
    let mut st = SimState::default();
    for (i, d) in world(networks, 5).0.into_iter().enumerate() {
        st.resources.insert(
            format!("c-{i:08x}"),
            SimResource {
                tags: owner.tags(&d.id),
                spec: d.spec,
                created_ms: 0,
                accepted_ms: None,
                updated_ms: None,
                outputs: Default::default(),
            },
        );
    }
    std::fs::create_dir_all(dir.join("sim")).unwrap();
    std::fs::write(sim.state_path(Scope::Aws), serde_json::to_vec(&st).unwrap()).unwrap();
    let p = sim.provider(Scope::Aws);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let seen = rt.block_on(p.observe(&owner)).unwrap();
    assert_eq!(seen.len(), st.resources.len());
    let _ = std::fs::remove_dir_all(&dir);
    p.api_calls()
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (networks, routes_per, rounds) = if full { (1000, 5, 5) } else { (50, 5, 1) };
    let (want, have) = world(networks, routes_per);
    let routes = want
        .iter()
        .filter(|d| matches!(d.spec, Spec::Route { .. }))
        .count();
    let scopes = BTreeSet::from([Scope::Aws]);

    let baseline = best_of(rounds, || {
        std::hint::black_box(serde_json::to_vec(&want).unwrap());
    });
    let first = best_of(rounds, || {
        let p = plan("bench", &scopes, &want, &[]);
        assert_eq!(p.actions.len(), want.len());
    });
    let noop = best_of(rounds, || {
        let p = plan("bench", &scopes, &want, &have);
        assert!(p.is_empty());
    });
    println!(
        "planner: {networks} networks, {routes} routes ({} resources)",
        want.len()
    );
    println!(
        "  baseline (serialise the desired state): {:>9.1} ms",
        baseline.as_secs_f64() * 1e3
    );
    for (what, d) in [
        ("first plan (all creates)", first),
        ("no-op plan (converged)", noop),
    ] {
        println!(
            "  {what:<38} {:>9.1} ms  = {:.1}x baseline, {:.2} of the 1 s target",
            d.as_secs_f64() * 1e3,
            d.as_secs_f64() / baseline.as_secs_f64().max(1e-9),
            d.as_secs_f64()
        );
    }

    let small = sim_noop_calls(10);
    let large = sim_noop_calls(if full { 1000 } else { 100 });
    println!("API calls of a no-op plan (observe) against the sim's AWS:");
    println!("  10 networks ({} resources): {small} calls", 10 * 7);
    println!(
        "  {} networks ({} resources): {large} calls  (ratio {:.2}; AWS has {} resource kinds)",
        if full { 1000 } else { 100 },
        if full { 7000 } else { 700 },
        large as f64 / small as f64,
        mcnet_cloud::connect::SimCloud::with_config(
            std::path::Path::new("/nonexistent"),
            SimConfig::default()
        )
        .provider(Scope::Aws)
        .kinds()
        .len()
    );
}
