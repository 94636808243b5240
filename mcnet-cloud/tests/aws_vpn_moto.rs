//! A VPN backup between an AWS VPC and an Azure VNet: the AWS side through
//! the AWS provider against moto's EC2 server on loopback (virtual private
//! gateway, customer gateway, VPN connection), the Azure side on the
//! embedded sim (no Azure API runs here). The customer gateway takes the
//! Azure gateway's address, the Azure side's peer takes the AWS tunnel's,
//! boto3 (not mcnet) sees both AWS objects tagged as mcnet's, the re-plan
//! is empty, and a destroy leaves nothing. Skips when moto_server is not
//! installed (`scripts/test.sh` installs it).
//!
//! moto does not implement EnableVgwRoutePropagation, so the VPC's route
//! table (whose routes the gateway propagates into) is left out of the
//! moto run: the one action the re-plan still shows.

#[path = "support/mod.rs"]
mod support;

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use mcnet_cloud::connect::aws::AwsProvider;
use mcnet_cloud::connect::sim::SimCloud;
use mcnet_core::reconcile::{
    apply, desired, plan, Action, ApplyOptions, Op, Owner, Plan, Providers, Scope,
};
use mcnet_core::topology::Topology;
use support::moto::moto;

const TOPOLOGY: &str = "
apiVersion: mcnet.io/v1alpha1
kind: Topology
metadata: {name: vpn-moto}
spec:
  providers:
    - {name: aws, kind: aws, regions: [us-east-1]}
    - {name: azure, kind: azure, regions: [eastus]}
  networks:
    - {name: aws-vpc, provider: aws, region: us-east-1, cidrs: [10.60.0.0/16], subnets: [{name: a, cidr: 10.60.1.0/24, zone: us-east-1a}]}
    - {name: azure-vnet, provider: azure, region: eastus, cidrs: [10.61.0.0/16], subnets: [{name: GatewaySubnet, cidr: 10.61.255.0/27}]}
  vpnBackups:
    - {name: backup, networks: [aws-vpc, azure-vnet]}
";

/// What boto3 sees of the topology's customer gateways and VPN connections.
fn boto3(url: &str) -> serde_json::Value {
    let script = r#"
import boto3, json, sys
ec2 = boto3.client("ec2", region_name="us-east-1", endpoint_url=sys.argv[1],
                   aws_access_key_id="testing", aws_secret_access_key="testing")
def ours(tags):
    t = {x["Key"]: x["Value"] for x in tags or []}
    return t.get("mcnet.io/topology") == "vpn-moto", t
out = {"cgws": [], "vpns": [], "vgws": []}
for g in ec2.describe_customer_gateways()["CustomerGateways"]:
    mine, t = ours(g.get("Tags"))
    if mine and g["State"] not in ("deleted", "deleting"):
        out["cgws"].append({"id": g["CustomerGatewayId"], "ip": g["IpAddress"],
                            "asn": g["BgpAsn"], "tag": t.get("mcnet.io/id"),
                            "by": t.get("mcnet.io/managed-by")})
for v in ec2.describe_vpn_connections()["VpnConnections"]:
    mine, t = ours(v.get("Tags"))
    if mine and v["State"] not in ("deleted", "deleting"):
        out["vpns"].append({"cgw": v["CustomerGatewayId"], "vgw": v["VpnGatewayId"],
                            "type": v["Type"], "tag": t.get("mcnet.io/id")})
for g in ec2.describe_vpn_gateways()["VpnGateways"]:
    mine, t = ours(g.get("Tags"))
    if mine and g["State"] not in ("deleted", "deleting"):
        att = [a["VpcId"] for a in g.get("VpcAttachments", []) if a["State"] == "attached"]
        out["vgws"].append({"id": g["VpnGatewayId"], "vpcs": att})
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

/// The action moto cannot do: a route table with VGW route propagation.
fn moto_gap(a: &Action) -> bool {
    a.resource.as_str() == "route-table/aws-vpc"
}

fn without_moto_gap(mut p: Plan) -> Plan {
    p.actions.retain(|a| !moto_gap(a));
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vpn_backup_applies_on_moto_and_the_sim_replans_empty_and_destroys() {
    let Some((_moto, url)) = moto() else { return };
    support::moto::test_credentials();
    let dir = std::env::temp_dir().join(format!("mcnet-vpn-moto-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let sim = SimCloud::open(&dir).unwrap();
    let aws = Arc::new(AwsProvider::new(vec!["us-east-1".into()], Some(url.clone())).await);
    let providers = Providers::default()
        .with(aws)
        .with(sim.provider(Scope::Azure));
    let t = Topology::from_str_strict(TOPOLOGY).unwrap();
    assert!(mcnet_core::topology::validate(&t).valid);
    let owner = Owner {
        topology: "vpn-moto".into(),
    };
    let scopes = BTreeSet::from([Scope::Aws, Scope::Azure]);
    let want = desired(&t, &scopes).unwrap();
    let opts = ApplyOptions {
        poll: Duration::from_millis(20),
        ..ApplyOptions::default()
    };
    let replan = |want: Vec<_>| {
        let (providers, owner, scopes) = (providers.clone(), owner.clone(), scopes.clone());
        async move {
            let have = providers.observe(&owner).await.unwrap();
            plan("vpn-moto", &scopes, &want, &have)
        }
    };

    let p = without_moto_gap(replan(want.clone()).await);
    let r = apply(&p, &owner, &providers, &opts, Arc::new(|_: &_| {})).await;
    assert!(r.ok(), "{p}\n{r:?}");

    // boto3 sees the customer gateway at the Azure gateway's address with
    // Azure's ASN, and the VPN connection from the VPC's gateway to it.
    let have = providers.observe(&owner).await.unwrap();
    let output = |id: &str, key: &str| {
        have.iter()
            .find(|o| o.id.as_str() == id)
            .and_then(|o| o.outputs.get(key).cloned())
            .unwrap_or_else(|| panic!("no {key} on {id}"))
    };
    let azure_ip = output("vpn-gateway/azure-vnet/ipsec", "publicIp");
    let v = boto3(&url);
    let cgws = v["cgws"].as_array().unwrap();
    assert_eq!(cgws.len(), 1, "{v}");
    assert_eq!(cgws[0]["ip"], azure_ip.as_str());
    assert_eq!(cgws[0]["asn"], "65515");
    assert_eq!(cgws[0]["tag"], "vpn-peer/backup/aws-vpc");
    assert_eq!(cgws[0]["by"], "mcnet");
    let vpns = v["vpns"].as_array().unwrap();
    assert_eq!(vpns.len(), 1, "{v}");
    assert_eq!(vpns[0]["cgw"], cgws[0]["id"]);
    assert_eq!(vpns[0]["type"], "ipsec.1");
    assert_eq!(vpns[0]["tag"], "vpn-connection/backup/aws-vpc");
    let vgw = v["vgws"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["id"] == vpns[0]["vgw"])
        .unwrap_or_else(|| panic!("the connection's gateway is not the VPC's: {v}"));
    assert_eq!(vgw["vpcs"].as_array().unwrap().len(), 1);
    // The Azure side's peer points at the AWS tunnel's address.
    let aws_ip = output("vpn-connection/backup/aws-vpc", "outsideIp");
    assert_eq!(output("vpn-peer/backup/azure-vnet", "address"), aws_ip);

    // Nothing left to do but what moto cannot.
    let again = replan(want.clone()).await;
    assert!(again.actions.iter().all(moto_gap), "{again}");
    assert_eq!(again.actions.len(), 1, "{again}");

    // Destroyed: nothing of the topology's is left on moto.
    let gone = replan(Vec::new()).await;
    assert!(gone.count(Op::Delete) >= 8, "{gone}");
    let r = apply(&gone, &owner, &providers, &opts, Arc::new(|_: &_| {})).await;
    assert!(r.ok(), "{gone}\n{r:?}");
    let v = boto3(&url);
    for k in ["cgws", "vpns", "vgws"] {
        assert!(v[k].as_array().unwrap().is_empty(), "{k}: {v}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
