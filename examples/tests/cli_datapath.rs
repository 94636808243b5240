//! `mcnet datapath enforce` as a user runs it: in the lab's node namespace,
//! with flows to a file; killed with SIGKILL and restarted without dropping
//! an established connection; stopped with SIGTERM, detaching and printing
//! its counters. Needs root; skipped otherwise.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mcnet_datapath::lab::{http_requests, serve, tcp_ok, Call, HttpServer, Lab};
use mcnet_datapath::netns;

const ADR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/policies/adr-003-production.yaml"
);

/// Removes a directory when dropped, also when the test fails.
struct RemoveOnDrop(String);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

mod common;
use common::Proc as Agent;

/// The ADR's three production pods in a netns lab, with the agent's
/// arguments: the lab, `IFACE=NS/POD` binds, a scratch directory, the
/// flows file and a pin directory (both removed on drop).
struct AdrLab {
    lab: Lab,
    binds: Vec<String>,
    dir: std::path::PathBuf,
    flows: String,
    pins: String,
    _cleanup: (RemoveOnDrop, RemoveOnDrop),
}

/// `None` (a skip, which fails under `MCNET_REQUIRE_ALL=1`) without root,
/// the eBPF object or nsenter.
fn adr_lab(tag: &str) -> Option<AdrLab> {
    if mcnet_datapath::EBPF_OBJECT.is_empty()
        || !mcnet_datapath::is_root()
        || !std::path::Path::new("/usr/bin/nsenter").exists()
    {
        mcnet_core::testing::skip("needs root and nsenter");
        return None;
    }
    let pods = [
        ("production/frontend", Ipv4Addr::new(198, 18, 0, 10)),
        ("production/api-server", Ipv4Addr::new(198, 18, 0, 20)),
        ("production/batch", Ipv4Addr::new(198, 18, 0, 30)),
    ];
    let id = std::process::id();
    let lab = Lab::new(&format!("{tag}{}", id % 10000), &pods).expect("lab");
    let binds = lab
        .pods
        .iter()
        .map(|p| format!("{}={}", p.host_iface, p.key))
        .collect();
    let dir = std::env::temp_dir().join(format!("mcnet-{tag}-{id}"));
    std::fs::create_dir_all(&dir).unwrap();
    let flows = dir.join("flows.jsonl").to_string_lossy().into_owned();
    let pins = format!("/sys/fs/bpf/mcnet-{tag}-{id}");
    let _cleanup = (
        RemoveOnDrop(pins.clone()),
        RemoveOnDrop(dir.to_string_lossy().into_owned()),
    );
    Some(AdrLab {
        lab,
        binds,
        dir,
        flows,
        pins,
        _cleanup,
    })
}

/// Starts the agent in the node namespace and waits until it enforces.
fn start(
    node: &str,
    binds: &[String],
    flows: &str,
    pins: &str,
    metrics: Option<u16>,
    l7: Option<&str>,
) -> Agent {
    let mut args: Vec<String> = vec![
        format!("--net=/run/netns/{node}"),
        env!("CARGO_BIN_EXE_mcnet").into(),
        "datapath".into(),
        "enforce".into(),
        "--manifests".into(),
        ADR.into(),
        "--flows".into(),
        flows.into(),
        "--pin-dir".into(),
        pins.into(),
    ];
    for b in binds {
        args.push("--bind".into());
        args.push(b.clone());
    }
    if let Some(port) = metrics {
        args.push("--metrics".into());
        args.push(format!("127.0.0.1:{port}"));
    }
    if let Some(mode) = l7 {
        args.push("--l7".into());
        args.push(mode.into());
    }
    let mut child = Command::new("nsenter")
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nsenter");
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        if err.read_line(&mut line).unwrap() == 0 {
            panic!("the agent exited before enforcing: {:?}", child.wait());
        }
        if line.contains("enforcing on") {
            break;
        }
    }
    // Keep draining stderr so the agent never blocks on it.
    std::thread::spawn(move || {
        let mut sink = String::new();
        let _ = err.read_to_string(&mut sink);
    });
    Agent(child)
}

#[test]
fn enforce_contract_restart_and_clean_stop() {
    let Some(AdrLab {
        lab,
        binds,
        flows,
        pins,
        _cleanup,
        ..
    }) = adr_lab("mc")
    else {
        return;
    };
    let stop = Arc::new(AtomicBool::new(false));
    for p in &lab.pods {
        serve(&p.netns, 8080, stop.clone());
    }
    let (fe, api, batch) = (&lab.pods[0].netns, lab.pods[1].ip, &lab.pods[2].netns);

    // The node namespace's loopback carries the agent's /metrics.
    let up = Command::new("ip")
        .args(["-n", &lab.node, "link", "set", "lo", "up"])
        .status()
        .unwrap();
    assert!(up.success());
    let metrics_port = 19_000 + (std::process::id() % 1000) as u16;
    // Audit mode: the port with HTTP rules passes at L4 (the kernel cannot
    // judge requests); the default, checked at the end, drops it.
    let agent = start(
        &lab.node,
        &binds,
        &flows,
        &pins,
        Some(metrics_port),
        Some("audit"),
    );
    assert!(
        tcp_ok(fe, api, 8080),
        "frontend → api-server:8080 is allowed"
    );
    assert!(
        !tcp_ok(batch, api, 8080),
        "batch → api-server:8080 is denied"
    );
    std::thread::sleep(Duration::from_millis(200));
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&flows)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for key in ["verdict", "src", "dst", "dport", "protocol", "direction"] {
        assert!(
            lines.iter().all(|l| !l[key].is_null()),
            "every flow has `{key}`"
        );
    }
    assert!(lines.iter().any(|l| l["verdict"] == "deny"
        && l["src"] == "198.18.0.30"
        && l["dst"] == "198.18.0.20"
        && l["dport"] == 8080
        && l["protocol"] == "TCP"));
    assert!(lines.iter().any(|l| l["verdict"] == "allow"
        && l["src"] == "198.18.0.10"
        && l["dst"] == "198.18.0.20"
        && l["direction"] == "egress"));

    // The agent's /metrics: verdicts by reason and flow events, valid for promtool.
    std::thread::sleep(Duration::from_millis(700));
    let text = netns::run_in(&netns::named(&lab.node), || {
        let mut s = TcpStream::connect(("127.0.0.1", metrics_port)).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    })
    .unwrap();
    let body = text.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
    assert!(
        body.contains("mcnet_datapath_packets_total{verdict=\"dropped\",reason=\"drop-no-rule\"}"),
        "{body}"
    );
    assert!(body.contains("mcnet_datapath_flow_events_total"), "{body}");
    common::promtool_accepts(body);

    // An established connection survives SIGKILL and a restart.
    let mut conn = netns::run_in(&netns::named(fe), || {
        TcpStream::connect_timeout(&SocketAddr::from((api, 8080)), Duration::from_secs(1)).unwrap()
    })
    .unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let mut echo = |tag: &[u8; 4]| -> bool {
        let mut b = [0u8; 4];
        conn.write_all(tag).is_ok() && conn.read_exact(&mut b).is_ok() && &b == tag
    };
    assert!(echo(b"one1"));
    let mut agent = agent;
    agent.0.kill().unwrap();
    agent.0.wait().unwrap();
    drop(agent);
    assert!(
        echo(b"two2"),
        "the pinned programs keep the connection while no agent runs"
    );
    assert!(!tcp_ok(batch, api, 8080), "and keep denying");
    let agent = start(&lab.node, &binds, &flows, &pins, None, Some("audit"));
    assert!(
        echo(b"thr3"),
        "the restarted agent keeps the established connection"
    );
    assert!(!tcp_ok(batch, api, 8080));
    assert!(tcp_ok(fe, api, 8080));

    // SIGTERM: clean detach and counters.
    let mut child = {
        let mut a = agent;
        std::mem::replace(&mut a.0, Command::new("true").spawn().unwrap())
    };
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(status.success(), "{status}: {out}");
    assert!(
        out.contains("counters") && out.contains("drop-no-rule"),
        "{out}"
    );
    assert!(tcp_ok(batch, api, 8080), "detached: traffic flows again");

    // By default the agent enforces L7 rules through its proxy: the
    // frontend's allowed request reaches a real HTTP server in the
    // api-server pod, the DELETE is answered 403 by the proxy and never
    // reaches it, and each request is a flow event of its own.
    stop.store(true, Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(100));
    let server = (0..20)
        .find_map(|_| {
            HttpServer::start(&lab.pods[1].netns, 8080)
                .map_err(|_| std::thread::sleep(Duration::from_millis(50)))
                .ok()
        })
        .expect("an HTTP server in the api-server pod");
    let pins2 = format!("{pins}-default");
    let _cleanup2 = RemoveOnDrop(pins2.clone());
    let mut agent = start(&lab.node, &binds, &flows, &pins2, None, None);
    let got = http_requests(
        fe,
        api,
        8080,
        &[
            Call::new("GET", "/api/v1/orders"),
            Call::new("DELETE", "/api/v1/users"),
        ],
    )
    .expect("frontend reaches the proxy");
    assert_eq!(got[0].0, 200, "{got:?}");
    assert_eq!(got[1].0, 403, "{got:?}");
    assert!(got[1].1.contains("api-access-policy"), "{got:?}");
    assert!(!tcp_ok(batch, api, 8080), "batch still cannot connect");
    assert_eq!(server.log(), ["GET /api/v1/orders"]);
    std::thread::sleep(Duration::from_millis(300));
    let l7: Vec<serde_json::Value> = std::fs::read_to_string(&flows)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|l| l["type"] == "L7")
        .collect();
    assert!(
        l7.iter().any(|l| l["http"]["method"] == "DELETE"
            && l["http"]["code"] == 403
            && l["verdict"] == "deny"
            && l["policy"]
                .as_str()
                .unwrap_or("")
                .contains("api-access-policy")),
        "{l7:?}"
    );
    assert!(
        l7.iter().any(|l| l["http"]["method"] == "GET"
            && l["http"]["url"] == "/api/v1/orders"
            && l["verdict"] == "allow"),
        "{l7:?}"
    );
    // SIGKILL: the pinned programs stay, the listener dies with the agent,
    // and the L7 port drops rather than passing unchecked.
    agent.0.kill().unwrap();
    agent.0.wait().unwrap();
    drop(agent);
    assert!(
        http_requests(fe, api, 8080, &[Call::new("DELETE", "/api/v1/users")]).is_err(),
        "no agent: the L7 port is dropped"
    );
    // The restarted agent has its listener in place before it redirects.
    let mut agent = start(&lab.node, &binds, &flows, &pins2, None, None);
    let got = http_requests(
        fe,
        api,
        8080,
        &[
            Call::new("DELETE", "/api/v1/users"),
            Call::new("POST", "/api/v1/users"),
        ],
    )
    .expect("the restarted agent's proxy answers");
    assert_eq!((got[0].0, got[1].0), (403, 200), "{got:?}");
    assert_eq!(server.log(), ["GET /api/v1/orders", "POST /api/v1/users"]);
    agent.0.kill().unwrap();
    agent.0.wait().unwrap();
    drop(agent);
}

/// `mcnet demo`'s last step: the policy in the kernel and the L7 proxy,
/// with the DELETE refused and never served.
#[test]
fn the_demo_ends_with_the_delete_refused() {
    if mcnet_datapath::EBPF_OBJECT.is_empty() || !mcnet_datapath::is_root() {
        mcnet_core::testing::skip("needs root");
        return;
    }
    // The demo reads the repository's examples and writes under target/,
    // as scripts/demo.sh runs it: from the workspace root.
    let run = Command::new(env!("CARGO_BIN_EXE_mcnet"))
        .arg("demo")
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .expect("run mcnet demo");
    let (out, err) = (
        String::from_utf8_lossy(&run.stdout).into_owned(),
        String::from_utf8_lossy(&run.stderr).into_owned(),
    );
    assert!(run.status.success(), "{out}\n{err}");
    // The last step's results (its heading goes to stderr): from its first
    // connection on.
    let step = out
        .find("  TCP  production/batch → production/api-server:8080")
        .map(|i| &out[i..])
        .unwrap_or_else(|| panic!("no kernel step:\n{out}\n{err}"));
    let line = |needle: &str| {
        step.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no `{needle}` line:\n{step}"))
            .to_string()
    };
    assert!(line("DELETE /api/v1/users").contains("403 refused by the L7 proxy"));
    assert!(line("GET    /api/v1/orders").contains("200"));
    assert!(line("production/batch → production/api-server:8080").contains("blocked"));
    assert!(
        line("api-server's own log").ends_with("GET /api/v1/orders, POST /api/v1/users"),
        "{step}"
    );
}

/// Flows recorded by the agent in the lab, replayed against a changed
/// policy: exactly the requests the change affects are reported, each with
/// the rule that decided it before and the one that decides it now.
#[test]
fn replay_of_recorded_flows_reports_exactly_what_a_change_affects() {
    let Some(AdrLab {
        lab,
        binds,
        dir,
        flows,
        pins,
        _cleanup,
    }) = adr_lab("mr")
    else {
        return;
    };
    let (fe, api, batch) = (&lab.pods[0].netns, lab.pods[1].ip, &lab.pods[2].netns);
    let _server = HttpServer::start(&lab.pods[1].netns, 8080).expect("a server in api-server");
    let agent = start(&lab.node, &binds, &flows, &pins, None, None);
    let got = http_requests(
        fe,
        api,
        8080,
        &[
            Call::new("GET", "/api/v1/orders"),
            Call::new("POST", "/api/v1/users"),
            Call::new("GET", "/api/v1/orders"),
            Call::new("POST", "/api/v1/users"),
            Call::new("DELETE", "/api/v1/users"),
        ],
    )
    .expect("frontend reaches the proxy");
    let codes: Vec<u16> = got.iter().map(|g| g.0).collect();
    assert_eq!(codes, [200, 200, 200, 200, 403]);
    assert!(!tcp_ok(batch, api, 8080));
    std::thread::sleep(Duration::from_millis(300));
    drop(agent);

    // The candidate drops the POST rule.
    let adr = std::fs::read_to_string(ADR).unwrap();
    let cut = adr.replace(
        "        - method: \"POST\"\n          path: \"/api/v1/users\"\n",
        "",
    );
    assert_ne!(cut, adr);
    let candidate = dir.join("candidate.yaml");
    std::fs::write(&candidate, cut).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mcnet"))
        .args(["policy", "replay", "--flows", &flows, "--manifests"])
        .arg(&candidate)
        .args(["--baseline", ADR, "-O", "json"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let changes = v["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "only the POSTs change: {v}");
    let ch = &changes[0];
    assert_eq!(ch["change"], "newly-denied");
    assert_eq!(ch["http"], serde_json::json!(["POST", "/api/v1/users"]));
    assert_eq!(ch["count"], 2, "{ch}");
    assert_eq!(
        (&ch["from"], &ch["to"]),
        (
            &"production/frontend".into(),
            &"production/api-server".into()
        )
    );
    assert!(
        ch["rule"].as_str().unwrap().contains("api-access-policy"),
        "{ch}"
    );
    assert!(ch["was"].as_str().unwrap().contains("POST"), "{ch}");
    assert_eq!(v["counts"]["newly_denied"], 2);
    assert_eq!(v["counts"]["newly_allowed"], 0);
    assert!(v["counts"]["unchanged"].as_u64().unwrap() >= 4, "{v}");

    // Replayed against the policy that recorded them: every verdict stays
    // (the recorded one is the engine's).
    let out = Command::new(env!("CARGO_BIN_EXE_mcnet"))
        .args([
            "policy",
            "replay",
            "--flows",
            &flows,
            "--manifests",
            ADR,
            "-O",
            "json",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        std::fs::read_to_string(&flows).unwrap()
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["changes"].as_array().unwrap().is_empty(), "{v}");
    assert_eq!(v["counts"]["unknown_before"], 0);
}
