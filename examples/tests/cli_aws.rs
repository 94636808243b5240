//! `mcnet apply --provider aws` against moto's EC2 server on loopback (the
//! test command installs moto). The result is checked independently with
//! boto3; the re-plan must be empty; an apply killed with SIGKILL and run
//! again must converge without duplicate VPCs.
//!
//! moto shows no pending states and accepts overlapping peerings; those
//! behaviours are covered by the sim's tests (`mcnet-cloud/tests/sim_reconcile.rs`).

mod common;

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{have, listening, start_server, Proc, TempDir};
use serde_json::Value;

const TOPO: &str = "topologies/aws-two-region.yaml";

struct Moto {
    _proc: Proc,
    url: String,
}

fn moto() -> Option<Moto> {
    if !have("moto_server") {
        mcnet_core::testing::skip("moto_server is not installed (scripts/test.sh installs it)");
        return None;
    }
    let (p, [port]) = start_server(
        "moto_server",
        |[port]| {
            let mut cmd = Command::new("moto_server");
            cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdout(Stdio::null());
            cmd
        },
        |[port]| listening(port),
    );
    Some(Moto {
        _proc: p,
        url: format!("http://127.0.0.1:{port}"),
    })
}

fn aws_env(cmd: &mut Command) -> &mut Command {
    cmd.env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_PROFILE")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
}

/// `mcnet VERB TOPO --provider aws --state STATE --aws-endpoint MOTO EXTRA...`.
fn args<'a>(verb: &'a str, m: &'a Moto, state: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        verb,
        TOPO,
        "--provider",
        "aws",
        "--state",
        state,
        "--aws-endpoint",
        &m.url,
    ];
    v.extend_from_slice(extra);
    v
}

fn run(args: &[&str]) -> Output {
    aws_env(&mut Command::new(env!("CARGO_BIN_EXE_mcnet")))
        .args(args)
        .output()
        .expect("run mcnet")
}

fn plan_actions(m: &Moto, state: &str) -> Vec<Value> {
    let out = run(&args("plan", m, state, &["-O", "json"]));
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{e}: {text}\n{}", String::from_utf8_lossy(&out.stderr)));
    v["actions"].as_array().unwrap().clone()
}

/// Asks moto, through boto3, what exists: VPCs by region with CIDRs and
/// tags, peering states, and each route table's routes through a peering.
fn boto3_view(m: &Moto) -> Value {
    let script = r#"
import boto3, json, sys
url = sys.argv[1]
out = {"vpcs": [], "peerings": [], "routes": []}
for region in ["us-east-1", "us-west-2"]:
    ec2 = boto3.client("ec2", region_name=region, endpoint_url=url,
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    f = [{"Name": "tag:mcnet.io/topology", "Values": ["aws-two-region"]}]
    for v in ec2.describe_vpcs(Filters=f)["Vpcs"]:
        tags = {t["Key"]: t["Value"] for t in v.get("Tags", [])}
        cidrs = sorted(a["CidrBlock"] for a in v["CidrBlockAssociationSet"])
        out["vpcs"].append({"region": region, "id": tags.get("mcnet.io/id"), "cidrs": cidrs,
                            "managedBy": tags.get("mcnet.io/managed-by")})
    for p in ec2.describe_vpc_peering_connections(Filters=f)["VpcPeeringConnections"]:
        out["peerings"].append({"region": region, "status": p["Status"]["Code"]})
    for t in ec2.describe_route_tables(Filters=f)["RouteTables"]:
        tags = {x["Key"]: x["Value"] for x in t.get("Tags", [])}
        for r in t["Routes"]:
            if r.get("VpcPeeringConnectionId"):
                out["routes"].append({"table": tags.get("mcnet.io/id"), "dest": r["DestinationCidrBlock"]})
print(json.dumps(out))
"#;
    let out = Command::new("python3")
        .args(["-c", script, &m.url])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "boto3: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_two_region_topology_applies_on_moto_and_replans_empty() {
    let Some(m) = moto() else { return };
    let dir = TempDir::new("aws-moto");
    let state = dir.path("state");
    let first = plan_actions(&m, &state);
    assert_eq!(first.len(), 13, "{first:?}");

    let out = run(&args("apply", &m, &state, &["--auto-approve"]));
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");

    let v = boto3_view(&m);
    let mut vpcs: Vec<(String, String, Vec<String>)> = v["vpcs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            assert_eq!(x["managedBy"], "mcnet");
            (
                x["region"].as_str().unwrap().into(),
                x["id"].as_str().unwrap().into(),
                x["cidrs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c.as_str().unwrap().into())
                    .collect(),
            )
        })
        .collect();
    vpcs.sort();
    assert_eq!(
        vpcs,
        [
            (
                "us-east-1".into(),
                "network/east".into(),
                vec!["10.20.0.0/16".into()]
            ),
            (
                "us-west-2".into(),
                "network/west".into(),
                vec!["10.30.0.0/16".into(), "10.31.0.0/16".into()]
            ),
        ]
    );
    let peerings = v["peerings"].as_array().unwrap();
    assert!(
        !peerings.is_empty() && peerings.iter().all(|p| p["status"] == "active"),
        "{peerings:?}"
    );
    let mut routes: Vec<(String, String)> = v["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["table"].as_str().unwrap().into(),
                r["dest"].as_str().unwrap().into(),
            )
        })
        .collect();
    routes.sort();
    assert_eq!(
        routes,
        [
            ("route-table/east".into(), "10.30.0.0/16".into()),
            ("route-table/east".into(), "10.31.0.0/16".into()),
            ("route-table/west".into(), "10.20.0.0/16".into()),
        ]
    );

    assert_eq!(
        plan_actions(&m, &state),
        Vec::<Value>::new(),
        "the re-plan is empty"
    );
    // A no-op plan lists each kind once per region (route tables carry the
    // routes, listed again; transit gateways likewise): 12 calls in each of
    // 2 regions (customer gateways and VPN connections among them), whatever
    // the count of resources.
    let out = run(&args("plan", &m, &state, &["-O", "json"]));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    eprintln!("no-op plan against moto: {} API calls", v["apiCalls"]);
    assert_eq!(v["apiCalls"], 24);

    let out = run(&args("destroy", &m, &state, &["--auto-approve"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(boto3_view(&m)["vpcs"].as_array().unwrap().is_empty());
}

#[test]
fn an_apply_killed_mid_way_converges_with_no_duplicate_vpcs() {
    let Some(m) = moto() else { return };
    let dir = TempDir::new("aws-kill");
    let state = dir.path("state");
    for after in [Duration::from_millis(300), Duration::from_millis(900)] {
        let mut child = Proc(
            aws_env(&mut Command::new(env!("CARGO_BIN_EXE_mcnet")))
                .args(args("apply", &m, &state, &["--auto-approve"]))
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        std::thread::sleep(after);
        child.0.kill().unwrap(); // SIGKILL
        let _ = child.0.wait();
    }
    let out = run(&args("apply", &m, &state, &["--auto-approve"]));
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let v = boto3_view(&m);
    let mut ids: Vec<&str> = v["vpcs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, ["network/east", "network/west"], "no duplicate VPCs");
    assert_eq!(plan_actions(&m, &state), Vec::<Value>::new());
}
