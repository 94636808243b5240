//! Transit gateways through the AWS provider against moto's EC2 server on
//! loopback: a hub with two VPC attachments, static TGW routes and VPC
//! routes through the hub. Applied, checked with boto3, re-planned empty,
//! changed in place, destroyed. Skips when moto_server is not installed
//! (`scripts/test.sh` installs it).

#[path = "support/mod.rs"]
mod support;

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use mcnet_cloud::connect::aws::AwsProvider;
use mcnet_core::reconcile::{
    apply, plan, Action, ApplyOptions, Desired, Op, Owner, Plan, Providers, ResourceKind, Scope,
    Spec,
};
use support::moto::moto;

fn d(id: &str, spec: Spec) -> Desired {
    Desired {
        id: id.parse().unwrap(),
        scope: Scope::Aws,
        spec,
    }
}

fn hub(spoke_b_subnets: &[&str]) -> Vec<Desired> {
    let mut v = Vec::new();
    for (n, cidr, other) in [
        ("a", "10.40.0.0/16", "10.41.0.0/16"),
        ("b", "10.41.0.0/16", "10.40.0.0/16"),
    ] {
        v.push(d(
            &format!("network/{n}"),
            Spec::Network {
                region: "us-east-1".into(),
                cidrs: vec![cidr.into()],
            },
        ));
        for (s, sub) in [("x", 0), ("y", 1)] {
            v.push(d(
                &format!("subnet/{n}/{s}"),
                Spec::Subnet {
                    network: format!("network/{n}"),
                    cidr: cidr.replace(".0.0/16", &format!(".{sub}.0/24")),
                    zone: Some(format!("us-east-1{}", ["a", "b"][sub])),
                },
            ));
        }
        v.push(d(
            &format!("route-table/{n}"),
            Spec::RouteTable {
                network: format!("network/{n}"),
                subnets: vec![format!("subnet/{n}/x"), format!("subnet/{n}/y")],
                propagating_gateways: vec![],
            },
        ));
        let subnets = if n == "b" {
            spoke_b_subnets
                .iter()
                .map(|s| format!("subnet/b/{s}"))
                .collect()
        } else {
            vec!["subnet/a/x".to_string()]
        };
        v.push(d(
            &format!("transit-gateway-attachment/hub/{n}"),
            Spec::TransitGatewayAttachment {
                transit_gateway: "transit-gateway/hub".into(),
                network: format!("network/{n}"),
                subnets,
            },
        ));
        v.push(d(
            &format!("transit-gateway-route/hub/{cidr}"),
            Spec::TransitGatewayRoute {
                transit_gateway: "transit-gateway/hub".into(),
                destination: cidr.into(),
                attachment: format!("transit-gateway-attachment/hub/{n}"),
            },
        ));
        v.push(d(
            &format!("route/{n}/{other}"),
            Spec::Route {
                route_table: format!("route-table/{n}"),
                destination: other.into(),
                target: "transit-gateway/hub".into(),
            },
        ));
    }
    v.push(d(
        "transit-gateway/hub",
        Spec::TransitGateway {
            region: "us-east-1".into(),
            asn: 64600,
        },
    ));
    v
}

/// An action moto causes: it reports a static transit gateway route with
/// no attachment (`TransitGatewayAttachments: []`), so the planner cannot
/// see that the route already points at the right one and would re-assert
/// it with ReplaceTransitGatewayRoute, which moto does not implement. AWS
/// reports the attachment.
fn moto_gap(a: &Action) -> bool {
    a.kind == ResourceKind::TransitGatewayRoute
        && a.op == Op::Update
        && a.changes
            .iter()
            .all(|c| c.field == "attachment" && c.from == "unmanaged:")
}

fn without_moto_gaps(p: &Plan) -> Vec<(Op, String)> {
    p.actions
        .iter()
        .filter(|a| !moto_gap(a))
        .map(|a| (a.op, a.resource.to_string()))
        .collect()
}

fn boto3(url: &str) -> serde_json::Value {
    let script = r#"
import boto3, json, sys
ec2 = boto3.client("ec2", region_name="us-east-1", endpoint_url=sys.argv[1],
                   aws_access_key_id="testing", aws_secret_access_key="testing")
f = [{"Name": "tag:mcnet.io/topology", "Values": ["tgw"]}]
out = {"tgws": [], "attachments": [], "routes": []}
for g in ec2.describe_transit_gateways(Filters=f)["TransitGateways"]:
    if g["State"] in ("deleted", "deleting"):
        continue
    out["tgws"].append(g["Options"]["AmazonSideAsn"])
    rtb = g["Options"]["AssociationDefaultRouteTableId"]
    rs = ec2.search_transit_gateway_routes(TransitGatewayRouteTableId=rtb,
        Filters=[{"Name": "type", "Values": ["static"]}])["Routes"]
    out["routes"] += sorted(r["DestinationCidrBlock"] for r in rs)
for a in ec2.describe_transit_gateway_vpc_attachments(Filters=f)["TransitGatewayVpcAttachments"]:
    if a["State"] not in ("deleted", "deleting"):
        out["attachments"].append(len(a["SubnetIds"]))
print(json.dumps(out))
"#;
    let out = Command::new("python3")
        .args(["-c", script, url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transit_gateway_hub_applies_replans_empty_updates_in_place_and_destroys() {
    let Some((_moto, url)) = moto() else { return };
    support::moto::test_credentials();
    let aws = Arc::new(AwsProvider::new(vec!["us-east-1".into()], Some(url.clone())).await);
    let providers = Providers::default().with(aws);
    let owner = Owner {
        topology: "tgw".into(),
    };
    let scopes = BTreeSet::from([Scope::Aws]);
    let opts = ApplyOptions {
        poll: Duration::from_millis(20),
        ..ApplyOptions::default()
    };
    let run = |want: Vec<Desired>| {
        let (providers, owner, scopes, opts) = (
            providers.clone(),
            owner.clone(),
            scopes.clone(),
            opts.clone(),
        );
        async move {
            let have = providers.observe(&owner).await.unwrap();
            let mut p = plan("tgw", &scopes, &want, &have);
            p.actions.retain(|a| !moto_gap(a));
            let r = apply(&p, &owner, &providers, &opts, Arc::new(|_: &_| {})).await;
            assert!(r.ok(), "{p}\n{r:?}");
            p
        }
    };
    let replan = |want: Vec<Desired>| {
        let (providers, owner, scopes) = (providers.clone(), owner.clone(), scopes.clone());
        async move {
            plan(
                "tgw",
                &scopes,
                &want,
                &providers.observe(&owner).await.unwrap(),
            )
        }
    };

    let first = run(hub(&["x"])).await;
    assert_eq!(first.count(Op::Create), 15);
    let v = boto3(&url);
    assert_eq!(v["tgws"], serde_json::json!([64600]));
    assert_eq!(
        v["routes"],
        serde_json::json!(["10.40.0.0/16", "10.41.0.0/16"])
    );
    assert_eq!(v["attachments"].as_array().unwrap().len(), 2);
    let again = replan(hub(&["x"])).await;
    assert_eq!(without_moto_gaps(&again), [], "{again}");
    assert_eq!(
        again.actions.len(),
        2,
        "the two static routes moto reports without their attachment"
    );

    // A second subnet for spoke b's attachment: modified in place.
    let p = run(hub(&["x", "y"])).await;
    let ops: Vec<(Op, &str)> = p
        .actions
        .iter()
        .map(|a| (a.op, a.resource.as_str()))
        .collect();
    assert_eq!(ops, [(Op::Update, "transit-gateway-attachment/hub/b")]);
    let mut counts: Vec<u64> = boto3(&url)["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap())
        .collect();
    counts.sort();
    assert_eq!(counts, [1, 2]);
    assert_eq!(without_moto_gaps(&replan(hub(&["x", "y"])).await), []);

    let gone = run(vec![]).await;
    assert_eq!(gone.count(Op::Delete), 15);
    let v = boto3(&url);
    assert_eq!(
        (
            v["tgws"].as_array().unwrap().len(),
            v["attachments"].as_array().unwrap().len()
        ),
        (0, 0)
    );

    // The same from a topology's `transitGateways`: three VPCs through one hub.
    let t = mcnet_core::topology::Topology::from_str_strict(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../examples/topologies/aws-hub.yaml"),
        )
        .unwrap(),
    )
    .unwrap();
    let hub_owner = Owner {
        topology: "aws-hub".into(),
    };
    let want = mcnet_core::reconcile::desired(&t, &scopes).unwrap();
    let have = providers.observe(&hub_owner).await.unwrap();
    let p = plan("aws-hub", &scopes, &want, &have);
    assert_eq!(p.count(Op::Create), 24, "{p}");
    let r = apply(&p, &hub_owner, &providers, &opts, Arc::new(|_: &_| {})).await;
    assert!(r.ok(), "{r:?}");
    let have = providers.observe(&hub_owner).await.unwrap();
    let again = plan("aws-hub", &scopes, &want, &have);
    assert_eq!(without_moto_gaps(&again), [], "{again}");
    let r = apply(
        &plan("aws-hub", &scopes, &[], &have),
        &hub_owner,
        &providers,
        &opts,
        Arc::new(|_: &_| {}),
    )
    .await;
    assert!(r.ok(), "{r:?}");
    assert!(providers.observe(&hub_owner).await.unwrap().is_empty());
}

/// EC2 resources carry their owner in the `mcnet.io/topology` tag,
/// compared whole: a topology named `prod:x` (or `prod-x`) is not `prod`'s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroying_prod_never_touches_prod_colon_x_or_prod_dash_x_resources() {
    let t = mcnet_core::topology::Topology::from_str_strict(
        "apiVersion: mcnet.io/v1alpha1\nkind: Topology\nmetadata: {name: t}\nspec:\n  providers: [{name: aws, kind: aws, regions: [us-east-1]}]\n  networks:\n    - {name: a, provider: aws, region: us-east-1, cidrs: [10.50.0.0/16], subnets: [{name: x, cidr: 10.50.0.0/24, zone: us-east-1a}]}\n",
    )
    .unwrap();
    for theirs in ["prod:x", "prod-x"] {
        let Some((_moto, url)) = moto() else { return };
        for (k, v) in [
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_REGION", "us-east-1"),
        ] {
            // The standard credential chain reads these (the same in each test).
            std::env::set_var(k, v);
        }
        let aws = Arc::new(AwsProvider::new(vec!["us-east-1".into()], Some(url)).await);
        support::rig::destroy_of_prod_spares(&t, theirs, Providers::default().with(aws)).await;
    }
}
