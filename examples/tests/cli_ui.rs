//! `mcnet ui` over HTTP, as a browser uses it: the page and its assets come
//! from the binary with nothing fetched elsewhere, the topology shows its
//! three clusters, a cluster's matrix explains its denied cells, a flow
//! appended to the flows file reaches a connected stream within two seconds
//! with the engine's explanation, and a token guards every data request.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::{listening, start_server, TempDir};

const ADR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/topologies/adr-003.yaml");
const PROD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/policies/adr-003-production.yaml"
);

/// GET `path` with optional headers: (status, headers, body).
fn get(port: u16, path: &str, extra: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

fn ui(args: &[&str]) -> (common::Proc, u16) {
    let (p, [port]) = start_server(
        "mcnet-ui",
        |[port]| {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_mcnet"));
            cmd.args(["ui", ADR, "--listen", &format!("127.0.0.1:{port}")])
                .args(args)
                .stdout(Stdio::null());
            cmd
        },
        |[port]| listening(port),
    );
    (p, port)
}

#[test]
fn the_page_topology_matrix_and_live_flows_are_served_from_the_binary() {
    let dir = TempDir::new("ui");
    let flows = dir.path("flows.jsonl");
    std::fs::write(&flows, "").unwrap();
    let (_ui, port) = ui(&[
        "--manifests",
        &format!("eks-prod={PROD}"),
        "--flows",
        &flows,
    ]);

    // The page and its assets, from this origin only.
    let (code, head, page) = get(port, "/", "");
    assert_eq!(code, 200, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-security-policy: default-src 'self'"),
        "{head}"
    );
    assert!(page.contains("<script src=\"app.js\""), "{page}");
    for asset in ["/", "/app.js", "/app.css"] {
        let (code, _, body) = get(port, asset, "");
        assert_eq!(code, 200, "{asset}");
        assert!(
            !body.contains("http://") && !body.contains("https://"),
            "{asset} names another origin"
        );
    }

    // The topology's three clusters, and the diagram.
    let (code, _, body) = get(port, "/api/topology", "");
    assert_eq!(code, 200);
    let t: Value = serde_json::from_str(&body).unwrap();
    let names: Vec<&str> = t["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["eks-prod", "aks-prod", "gke-prod"]);
    assert!(t["svg"].as_str().unwrap().starts_with("<svg"));

    // eks-prod's matrix: batch cannot reach the API, and says why.
    let (code, _, body) = get(port, "/api/matrix?cluster=eks-prod", "");
    assert_eq!(code, 200, "{body}");
    let m: Value = serde_json::from_str(&body).unwrap();
    let cell = m["cells"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| {
            c["from"] == "eks-prod/production/batch" && c["to"] == "eks-prod/production/api-server"
        })
        .unwrap_or_else(|| panic!("{m}"));
    assert_eq!(cell["verdict"], "deny");
    assert!(
        !cell["explanation"].as_str().unwrap_or("").is_empty(),
        "{cell}"
    );
    let (code, _, _) = get(port, "/api/matrix?cluster=nowhere", "");
    assert_eq!(code, 404);

    // A cloud link: the cluster pairs it carries, and what its loss costs.
    let (code, _, body) = get(port, "/api/component?name=vxc-gcp-pi", "");
    assert_eq!(code, 200, "{body}");
    let c: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        c["component"],
        serde_json::json!({"kind": "vxc", "name": "vxc-gcp-pi"})
    );
    let carries = c["carries"].as_array().unwrap();
    assert!(
        carries.contains(&serde_json::json!(["eks-prod", "gke-prod"])),
        "{c}"
    );
    assert!(
        !carries
            .iter()
            .any(|p| p[0] == "eks-prod" && p[1] == "aks-prod"),
        "{c}"
    );
    assert!(c["if_failed"]["disconnected"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!(["aws-vpc", "gcp-vpc"])));
    assert_eq!(c["single_point_of_failure"], true);
    let (code, _, body) = get(port, "/api/component?name=nope", "");
    assert_eq!(code, 404);
    assert!(body.contains("known: mcr/multicloud-mcr"), "{body}");

    // A stream of flows: a denied one appended to the file arrives within
    // two seconds, with the engine's explanation.
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .write_all(b"GET /api/flows HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let (_, _, metrics) = get(port, "/metrics", "");
    assert!(metrics.contains("mcnet_ui_clients 1"), "{metrics}");
    common::promtool_accepts(&metrics);
    let denied = r#"{"time_ns":77,"type":"L3_L4","verdict":"deny","hubble_verdict":"DROPPED","reason":"drop-no-rule","src":"198.18.0.30","dst":"198.18.0.20","sport":42138,"dport":8080,"protocol":"TCP","direction":"egress","src_identity":257,"dst_identity":256,"is_reply":false,"l7":false,"ifindex":4}"#;
    let appended = Instant::now();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&flows)
        .unwrap();
    writeln!(f, "{denied}").unwrap();
    drop(f);
    let mut got = String::new();
    let mut buf = [0u8; 4096];
    while appended.elapsed() < Duration::from_secs(2) && !got.contains("production/batch") {
        if let Ok(n) = stream.read(&mut buf) {
            got.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    }
    let line = got
        .lines()
        .find(|l| l.starts_with("data:") && l.contains("production/batch"))
        .unwrap_or_else(|| panic!("no flow within 2 s: {got}"));
    let flow: Value = serde_json::from_str(line.trim_start_matches("data:").trim()).unwrap();
    assert_eq!(flow["verdict"], "deny");
    assert_eq!(flow["recorded"], "deny");
    assert_eq!(flow["from"], "production/batch");
    assert!(
        flow["explanation"]
            .as_str()
            .unwrap()
            .contains("default-deny-all"),
        "{flow}"
    );
}

#[test]
fn a_token_guards_every_data_request_and_other_addresses_need_one() {
    let out = Command::new(env!("CARGO_BIN_EXE_mcnet"))
        .args(["ui", ADR, "--listen", "0.0.0.0:0"])
        .env_remove("MCNET_UI_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--token"));

    let (_ui, port) = ui(&["--token", "s3cret"]);
    assert_eq!(get(port, "/api/topology", "").0, 401);
    assert_eq!(get(port, "/metrics", "").0, 401);
    // The page and its assets hold no data: a browser loads them as is.
    assert_eq!(get(port, "/", "").0, 200);
    assert_eq!(get(port, "/app.js", "").0, 200);
    assert_eq!(
        get(port, "/api/topology", "Authorization: Bearer wrong\r\n").0,
        401
    );
    assert_eq!(
        get(port, "/api/topology", "Authorization: Bearer s3cret\r\n").0,
        200
    );
    assert_eq!(get(port, "/api/topology?token=s3cret", "").0, 200);
    // Without --flows there is no stream to follow.
    assert_eq!(get(port, "/api/flows?token=s3cret", "").0, 404);
}
