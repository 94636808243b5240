//! L7 enforcement through the proxy, with real packets: the netns lab, the
//! kernel programs redirecting to the mcnet proxy, a real HTTP server in the
//! api-server pod that logs what reaches it, and real clients (curl, and
//! hyper from Rust) in the frontend pod. Needs root, curl and nsenter.

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use mcnet_core::policy::{Compiled, HttpRequest, Manifests, Proto, Query, QueryEndpoint};
use mcnet_datapath::enforcer::{Bind, Enforcer, EnforcerOptions};
use mcnet_datapath::flows::FlowRecord;
use mcnet_datapath::lab::{http_requests, tcp_ok, Call, HttpServer, Lab};
use mcnet_datapath::{netns, Datapath, L7Mode};

const ADR: &str = include_str!("../../examples/policies/adr-003-production.yaml");

fn ready() -> bool {
    if cfg!(mcnet_ebpf_stub) || !mcnet_datapath::is_root() {
        mcnet_core::testing::skip("needs root and the real eBPF object");
        return false;
    }
    for tool in ["curl", "nsenter"] {
        if Command::new(tool).arg("--version").output().is_err() {
            mcnet_core::testing::skip(&format!("needs {tool}"));
            return false;
        }
    }
    true
}

fn v4(m: &Manifests, pod: &str) -> Ipv4Addr {
    match m.inventory.pods[m.inventory.pod(pod).unwrap()].ips[0] {
        std::net::IpAddr::V4(a) => a,
        other => panic!("{pod} has {other}"),
    }
}

/// Status code of one curl request from a pod namespace (0: no response).
fn curl(ns: &str, method: &str, url: &str) -> u16 {
    let out = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{ns}"))
        .args(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .args(["--max-time", "5", "-X", method, url])
        .output()
        .expect("curl runs");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

fn binds(lab: &Lab) -> Vec<Bind> {
    lab.pods
        .iter()
        .map(|p| Bind {
            iface: p.host_iface.clone(),
            pod: p.key.clone(),
        })
        .collect()
}

/// Everything the enforcer reports within `wait`.
fn collect(e: &mut Enforcer, wait: Duration) -> Vec<FlowRecord> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut out = Vec::new();
    rt.block_on(async {
        e.run(tokio::time::sleep(wait), |f| {
            out.push(f);
            Ok(())
        })
        .await
    })
    .unwrap();
    out
}

#[test]
fn the_adr_http_rules_are_enforced_by_the_proxy() {
    if !ready() {
        return;
    }
    let m = Manifests::load([("adr", ADR)]).unwrap();
    let c = Arc::new(Compiled::new(&m));
    let lab = Lab::for_inventory(&format!("lp{}", std::process::id() % 10000), &m.inventory)
        .expect("lab");
    let (fe, api, batch) = (
        lab.pod("production/frontend").unwrap().netns.clone(),
        lab.pod("production/api-server").unwrap().netns.clone(),
        lab.pod("production/batch").unwrap().netns.clone(),
    );
    let api_ip = v4(&m, "production/api-server");
    let server = HttpServer::start(&api, 8080).expect("api-server's HTTP server");
    let node = netns::named(&lab.node);
    let url = |p: &str| format!("http://{api_ip}:8080{p}");

    netns::run_in(&node, || {
        let mut e = Enforcer::start(c.clone(), &binds(&lab), &EnforcerOptions::default())
            .expect("enforcer");
        assert!(e.proxy().is_some(), "enforce is the default L7 mode");

        // hyper, on one keep-alive connection.
        let calls = [
            Call::new("GET", "/api/v1/orders"),
            Call::new("POST", "/api/v1/users"),
            Call::new("DELETE", "/api/v1/users"),
            Call::new("GET", "/admin"),
            Call::new("GET", "/api/v1/orders?page=2"),
        ];
        let got = http_requests(&fe, api_ip, 8080, &calls).expect("frontend reaches the proxy");
        let codes: Vec<u16> = got.iter().map(|r| r.0).collect();
        assert_eq!(codes, [200, 200, 403, 403, 200], "{got:?}");
        assert!(
            got[2].1.contains("api-access-policy"),
            "the 403 body names the policy: {}",
            got[2].1
        );
        assert_eq!(got[0].1, "GET /api/v1/orders\n", "the answer is the server's");

        // curl, one connection per request.
        for (method, path, want) in [
            ("GET", "/api/v1/orders", 200),
            ("POST", "/api/v1/users", 200),
            ("DELETE", "/api/v1/users", 403),
            ("GET", "/admin", 403),
        ] {
            assert_eq!(curl(&fe, method, &url(path)), want, "curl {method} {path}");
        }

        // batch cannot connect at all, at L4.
        assert!(!tcp_ok(&batch, api_ip, 8080));
        assert_eq!(curl(&batch, "GET", &url("/api/v1/orders")), 0);
        assert!(http_requests(&batch, api_ip, 8080, &[Call::new("GET", "/")]).is_err());

        // One L7 event per request, with the deciding policy and rule.
        let flows = collect(&mut e, Duration::from_millis(300));
        let l7: Vec<&FlowRecord> = flows.iter().filter(|f| f.kind == "L7").collect();
        assert_eq!(l7.len(), 9, "{l7:#?}");
        let delete = l7
            .iter()
            .find(|f| f.http.as_ref().unwrap().method == "DELETE")
            .unwrap();
        assert_eq!(
            (delete.verdict, delete.hubble_verdict, delete.http.as_ref().unwrap().code),
            ("deny", "DROPPED", 403)
        );
        assert!(
            delete.policy.as_deref().unwrap_or("").contains("api-access-policy"),
            "{delete:?}"
        );
        assert_eq!(delete.src_identity, c.pod_identity[m.inventory.pod("production/frontend").unwrap()].get());
        let get = l7
            .iter()
            .find(|f| f.http.as_ref().unwrap().url == "/api/v1/orders")
            .unwrap();
        assert_eq!((get.verdict, get.http.as_ref().unwrap().code), ("allow", 200));
        assert!(get.rule.as_deref().unwrap_or("").contains("GET"), "{get:?}");
        assert!(flows.iter().any(|f| f.kind == "L3_L4" && f.reason == "redirected-l7"));
        assert!(flows.iter().any(|f| f.kind == "L3_L4" && f.reason == "allowed-l7-proxied"));
        assert!(flows
            .iter()
            .any(|f| f.kind == "L3_L4" && f.verdict == "deny" && f.src == std::net::IpAddr::V4(v4(&m, "production/batch"))));

        // Live update: on an open keep-alive connection, DELETE becomes
        // allowed for the next request and the connection stays.
        let with_delete = ADR.replace(
            "        - method: \"POST\"\n          path: \"/api/v1/users\"",
            "        - method: \"POST\"\n          path: \"/api/v1/users\"\n        - method: \"DELETE\"\n          path: \"/api/v1/users\"",
        );
        assert_ne!(with_delete, ADR);
        let c2 = Arc::new(Compiled::new(&Manifests::load([("adr", with_delete.as_str())]).unwrap()));
        let (to_update, updated) = std::sync::mpsc::channel::<()>();
        let (to_client, go) = std::sync::mpsc::channel::<()>();
        let fe2 = fe.clone();
        let client = std::thread::spawn(move || {
            netns::run_in(&netns::named(&fe2), || keep_alive_across_update(api_ip, to_update, go))
                .unwrap()
        });
        updated.recv().unwrap();
        e.update(c2).unwrap();
        to_client.send(()).unwrap();
        let (before, after) = client.join().unwrap();
        assert_eq!((before, after), (403, 200), "same connection, new rules");

        let counters = e.stop().unwrap();
        assert!(counters.packets("redirected-l7") > 0, "{counters:?}");
        assert!(counters.packets("drop-no-rule") > 0, "{counters:?}");
    })
    .unwrap();

    let log = server.log();
    assert!(log.iter().any(|l| l == "GET /api/v1/orders"), "{log:?}");
    assert!(log.iter().any(|l| l == "POST /api/v1/users"), "{log:?}");
    assert!(!log.iter().any(|l| l == "GET /admin"), "{log:?}");
    // The one DELETE the server saw is the one allowed after the update.
    assert_eq!(
        log.iter().filter(|l| *l == "DELETE /api/v1/users").count(),
        1,
        "{log:?}"
    );
    drop(lab);
}

/// Sends `bytes` from pod namespace `ns` on one connection (then, if
/// given, waits for `then.0` in the answer and sends `then.1`), and reads
/// until the proxy closes or is quiet for a second: everything answered.
fn raw_exchange(ns: &str, dst: Ipv4Addr, bytes: &str, then: Option<(&str, &str)>) -> String {
    use std::io::{Read, Write};
    netns::run_in(&netns::named(ns), || {
        let mut s = std::net::TcpStream::connect((dst, 8080)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        s.write_all(bytes.as_bytes()).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        let mut sent_rest = then.is_none();
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
            if let Some((wait_for, rest)) = then.filter(|_| !sent_rest) {
                if String::from_utf8_lossy(&got).contains(wait_for) {
                    s.write_all(rest.as_bytes()).unwrap();
                    sent_rest = true;
                }
            }
        }
        String::from_utf8_lossy(&got).into_owned()
    })
    .unwrap()
}

/// The status codes in an answer, in order.
fn statuses(answer: &str) -> Vec<u16> {
    answer
        .lines()
        .filter_map(|l| l.strip_prefix("HTTP/1.1 "))
        .filter_map(|l| l.get(..3)?.parse().ok())
        .collect()
}

#[test]
fn framing_is_exact_for_pipelined_chunked_and_continued_requests_and_smuggling_is_refused() {
    if !ready() {
        return;
    }
    let m = Manifests::load([("adr", ADR)]).unwrap();
    let c = Arc::new(Compiled::new(&m));
    let lab = Lab::for_inventory(&format!("lf{}", std::process::id() % 10000), &m.inventory)
        .expect("lab");
    let fe = lab.pod("production/frontend").unwrap().netns.clone();
    let api = lab.pod("production/api-server").unwrap().netns.clone();
    let api_ip = v4(&m, "production/api-server");
    let server = HttpServer::start(&api, 8080).expect("api-server's HTTP server");
    let node = netns::named(&lab.node);
    netns::run_in(&node, || {
        let e = Enforcer::start(c.clone(), &binds(&lab), &EnforcerOptions::default())
            .expect("enforcer");

        // Pipelined in one write: each request judged on its own, answers
        // in order, a body forwarded whole.
        let got = raw_exchange(
            &fe,
            api_ip,
            "GET /api/v1/orders HTTP/1.1\r\nHost: a\r\n\r\n\
             DELETE /api/v1/users HTTP/1.1\r\nHost: a\r\n\r\n\
             POST /api/v1/users HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello\
             GET /api/v1/orders?p=2 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            None,
        );
        assert_eq!(statuses(&got), [200, 403, 200, 200], "{got}");
        assert!(got.contains("POST /api/v1/users hello\n"), "{got}");
        assert!(got.contains("GET /api/v1/orders?p=2\n"), "{got}");

        // A chunked body, chunk extensions and all, reaches the server whole.
        let got = raw_exchange(
            &fe,
            api_ip,
            "POST /api/v1/users HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\
             Connection: close\r\n\r\n5;x=1\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
            None,
        );
        assert_eq!(statuses(&got), [200], "{got}");
        assert!(got.contains("POST /api/v1/users hello world\n"), "{got}");

        // Expect: 100-continue: the client hears one 100 Continue (the
        // proxy's; the server's own is not passed on), then the answer.
        let got = raw_exchange(
            &fe,
            api_ip,
            "POST /api/v1/users HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\
             Expect: 100-continue\r\nConnection: close\r\n\r\n",
            Some(("100 Continue", "hi")),
        );
        assert_eq!(statuses(&got), [100, 200], "{got}");
        assert!(got.contains("POST /api/v1/users hi\n"), "{got}");

        // A denied request's small body is skipped and the connection
        // carries on; a HEAD's 403 has no body to desynchronise the next.
        let got = raw_exchange(
            &fe,
            api_ip,
            "DELETE /api/v1/users HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc\
             HEAD /admin HTTP/1.1\r\nHost: a\r\n\r\n\
             GET /api/v1/orders HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            None,
        );
        assert_eq!(statuses(&got), [403, 403, 200], "{got}");
        assert!(got.ends_with("GET /api/v1/orders\n"), "{got}");

        // Smuggling: Content-Length beside chunked, a DELETE hidden in
        // what one parser reads as the body. Refused, the connection closed.
        let got = raw_exchange(
            &fe,
            api_ip,
            "POST /api/v1/users HTTP/1.1\r\nHost: a\r\nContent-Length: 44\r\n\
             Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n\
             DELETE /api/v1/users HTTP/1.1\r\nHost: a\r\n\r\n",
            None,
        );
        assert_eq!(statuses(&got), [400], "{got}");
        // Upgrades would leave L7 behind: refused.
        let got = raw_exchange(
            &fe,
            api_ip,
            "GET /api/v1/orders HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\n\r\n",
            None,
        );
        assert_eq!(statuses(&got), [403], "{got}");
        e.stop().unwrap();
    })
    .unwrap();
    let log = server.log();
    assert!(
        !log.iter()
            .any(|l| l.starts_with("DELETE") || l.starts_with("HEAD")),
        "{log:?}"
    );
    assert_eq!(
        log.iter().filter(|l| l.starts_with("POST")).count(),
        3,
        "pipelined, chunked and continued POSTs, and not the smuggling one: {log:?}"
    );
    drop(lab);
}

/// DELETE on a keep-alive connection, then (after the policy update) DELETE
/// again on the same connection: the two statuses.
fn keep_alive_across_update(
    dst: Ipv4Addr,
    updated: std::sync::mpsc::Sender<()>,
    go: std::sync::mpsc::Receiver<()>,
) -> (u16, u16) {
    use hyper_util::rt::TokioIo;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let stream = tokio::net::TcpStream::connect((dst, 8080)).await.unwrap();
        let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        let conn = tokio::spawn(conn);
        let req = || {
            hyper::Request::builder()
                .method("DELETE")
                .uri("/api/v1/users")
                .header("host", format!("{dst}:8080"))
                .body(http_body_util::Empty::<bytes::Bytes>::new())
                .unwrap()
        };
        let before = tx.send_request(req()).await.unwrap().status().as_u16();
        updated.send(()).unwrap();
        tokio::task::spawn_blocking(move || go.recv().unwrap())
            .await
            .unwrap();
        tx.ready()
            .await
            .expect("the connection survives the update");
        let after = tx.send_request(req()).await.unwrap().status().as_u16();
        drop(tx);
        let _ = conn.await;
        (before, after)
    })
}

/// With the L7 mode set to enforce and no proxy listener, a port with L7
/// rules is dropped with its own reason: never forwarded unchecked.
#[test]
fn without_the_proxy_l7_ports_are_dropped() {
    if !ready() {
        return;
    }
    let m = Manifests::load([("adr", ADR)]).unwrap();
    let c = Compiled::new(&m);
    let lab = Lab::for_inventory(&format!("lq{}", std::process::id() % 10000), &m.inventory)
        .expect("lab");
    let fe = lab.pod("production/frontend").unwrap().netns.clone();
    let api = lab.pod("production/api-server").unwrap().netns.clone();
    let api_ip = v4(&m, "production/api-server");
    let server = HttpServer::start(&api, 8080).unwrap();
    let node = netns::named(&lab.node);
    netns::run_in(&node, || {
        let mut dp = Datapath::load().unwrap();
        let bindings: Vec<_> = lab
            .pods
            .iter()
            .map(|p| mcnet_datapath::state::Binding {
                ifindex: netns::ifindex(&p.host_iface).unwrap(),
                pod: p.key.clone(),
            })
            .collect();
        dp.sync(&mcnet_datapath::state::DesiredState::from_compiled(&c, &bindings).unwrap())
            .unwrap();
        dp.set_l7_mode(L7Mode::Enforce).unwrap();
        for p in &lab.pods {
            dp.attach(&p.host_iface).unwrap();
        }
        assert!(http_requests(&fe, api_ip, 8080, &[Call::new("GET", "/api/v1/orders")]).is_err());
        let counters = dp.counters().unwrap();
        assert!(
            counters.packets("drop-proxy-unavailable") > 0,
            "{counters:?}"
        );
        dp.detach_all().unwrap();
    })
    .unwrap();
    assert!(server.log().is_empty(), "nothing reached the server");
}

/// The differential check: random HTTP rules (on the destination's ingress
/// and on the client's egress), random requests; the proxy's answer per
/// request equals `mcnet policy eval`'s verdict, and the server sees
/// exactly the allowed ones.
#[test]
fn proxy_verdicts_equal_the_engine_on_random_http_policies() {
    if !ready() {
        return;
    }
    let base = Manifests::load([("adr", ADR)]).unwrap();
    let lab = Lab::for_inventory(
        &format!("lr{}", std::process::id() % 10000),
        &base.inventory,
    )
    .expect("lab");
    let fe = lab.pod("production/frontend").unwrap().netns.clone();
    let api = lab.pod("production/api-server").unwrap().netns.clone();
    let api_ip = v4(&base, "production/api-server");
    let server = HttpServer::start(&api, 8080).unwrap();
    let node = netns::named(&lab.node);
    let mut rng = Lcg(0x6d63_6e65_7420_6c37);
    let mut checked = 0;
    let mut allowed_total = 0;
    netns::run_in(&node, || {
        let c0 = Arc::new(Compiled::new(&base));
        let mut e = Enforcer::start(c0, &binds(&lab), &EnforcerOptions::default()).unwrap();
        for round in 0..8 {
            let text = random_policy(&mut rng, round);
            let m = Manifests::load([("p", text.as_str())])
                .unwrap_or_else(|err| panic!("round {round}: {err}\n{text}"));
            let c = Arc::new(Compiled::new(&m));
            e.update(c.clone()).unwrap();
            let calls: Vec<(String, String, bool)> = (0..10)
                .map(|_| {
                    (
                        rng.pick(&["GET", "POST", "DELETE", "PUT", "HEAD"]).to_string(),
                        rng.pick(&["/api/v1/orders", "/api/v1/users", "/admin", "/", "/api/v1/users?x=1"])
                            .to_string(),
                        rng.next().is_multiple_of(2),
                    )
                })
                .collect();
            let token: &[(&str, &str)] = &[("x-token", "42")];
            let requests: Vec<Call<'_>> = calls
                .iter()
                .map(|(method, path, with_token)| Call {
                    method,
                    path,
                    headers: if *with_token { token } else { &[] },
                })
                .collect();
            let got = http_requests(&fe, api_ip, 8080, &requests)
                .unwrap_or_else(|err| panic!("round {round}: {err}\n{text}"));
            assert_eq!(got.len(), calls.len(), "round {round}: {got:?}");
            for ((method, path, with_token), (code, body)) in calls.iter().zip(&got) {
                let mut headers = std::collections::BTreeMap::new();
                headers.insert("host".to_string(), format!("{api_ip}:8080"));
                if *with_token {
                    headers.insert("x-token".to_string(), "42".to_string());
                }
                let q = Query {
                    http: Some(HttpRequest {
                        method: method.clone(),
                        path: path.clone(),
                        headers,
                        host: None,
                    }),
                    ..Query::l4(
                        QueryEndpoint { pod: Some("production/frontend".into()), ip: None },
                        QueryEndpoint { pod: Some("production/api-server".into()), ip: None },
                        8080,
                        Proto::Tcp,
                    )
                };
                let want = c.eval(&q).unwrap().verdict.is_allow();
                assert_eq!(
                    *code == 200,
                    want,
                    "round {round}: {method} {path} token={with_token}: proxy {code} {body:?}, engine {}\n{text}",
                    if want { "allow" } else { "deny" }
                );
                assert!(*code == 200 || *code == 403, "{code} {body}");
                allowed_total += usize::from(want);
                checked += 1;
            }
        }
        e.stop().unwrap();
    })
    .unwrap();
    assert_eq!(checked, 80);
    assert!(
        allowed_total > 0 && allowed_total < checked,
        "both verdicts occur"
    );
    assert_eq!(
        server.log().len(),
        allowed_total,
        "the server saw exactly the allowed requests"
    );
}

/// A small deterministic generator (the test must be reproducible).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[(self.next() % from.len() as u64) as usize]
    }
}

/// The ADR's pods and L4 policies, with random HTTP rules on api-server's
/// ingress from frontend and, every other round, on frontend's egress.
fn random_policy(rng: &mut Lcg, round: usize) -> String {
    let rules = |rng: &mut Lcg| {
        let n = 1 + rng.next() % 3;
        let mut out = String::new();
        for _ in 0..n {
            let mut rule = String::from("        - {");
            let mut fields = Vec::new();
            if !rng.next().is_multiple_of(4) {
                fields.push(format!(
                    "method: \"{}\"",
                    rng.pick(&["GET", "POST", "DELETE", "GET|HEAD", "P.*"])
                ));
            }
            if !rng.next().is_multiple_of(4) {
                fields.push(format!(
                    "path: \"{}\"",
                    rng.pick(&[
                        "/api/v1/.*",
                        "/api/v1/users",
                        "/admin",
                        "/",
                        "/api/v1/users\\\\?x=1"
                    ])
                ));
            }
            if rng.next().is_multiple_of(3) {
                fields.push("headers: [\"X-Token: 42\"]".into());
            }
            rule.push_str(&fields.join(", "));
            rule.push_str("}\n");
            out.push_str(&rule);
        }
        out
    };
    let ingress = rules(rng);
    let mut head = ADR
        .split("# Cilium L7 Network Policy")
        .next()
        .unwrap()
        .to_string();
    if round % 2 == 1 {
        // The frontend's egress then comes from its HTTP rules alone.
        head = head
            .split("\n---\n")
            .filter(|d| !d.trim().is_empty() && !d.contains("name: frontend-egress-api"))
            .collect::<Vec<_>>()
            .join("\n---\n");
        head.push_str("\n---\n");
    }
    let mut text = format!(
        "{head}\napiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {{name: api-http, namespace: production}}\nspec:\n  endpointSelector: {{matchLabels: {{app: api-server}}}}\n  ingress:\n  - fromEndpoints: [{{matchLabels: {{app: frontend}}}}]\n    toPorts:\n    - ports: [{{port: \"8080\", protocol: TCP}}]\n      rules:\n        http:\n{ingress}"
    );
    if round % 2 == 1 {
        let egress = rules(rng);
        text.push_str(&format!(
            "---\napiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {{name: frontend-http, namespace: production}}\nspec:\n  endpointSelector: {{matchLabels: {{app: frontend}}}}\n  egress:\n  - toEndpoints: [{{matchLabels: {{app: api-server}}}}]\n    toPorts:\n    - ports: [{{port: \"8080\", protocol: TCP}}]\n      rules:\n        http:\n{egress}"
        ));
    }
    text
}
