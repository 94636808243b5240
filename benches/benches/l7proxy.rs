//! The L7 proxy's cost, in one run, in the netns lab: keep-alive HTTP/1.1
//! requests from the frontend pod to a real server in the api-server pod,
//!
//! - direct: no policy, no proxy (the baseline);
//! - mcnet: the ADR's policy in the kernel, every request redirected to the
//!   mcnet L7 proxy and judged by the engine (`GET /api/v1/.*`, `POST
//!   /api/v1/users`);
//! - nginx (Debian) in the node namespace as a reverse proxy enforcing the
//!   same method and path rules (`limit_except`, regex locations), with
//!   upstream keep-alive.
//!
//! Each path is measured twice: throughput with several keep-alive
//! connections sending back to back (on two cores that saturates the
//! machine, so its latencies are mostly queueing), and latency with one
//! connection, one request at a time. The paths take turns over several
//! rounds, and each figure is the median over the rounds. It prints requests per second, p50
//! and p99 latency, what each proxy adds to the direct p50 and p99, and
//! mcnet's requests per second as a ratio to nginx's. Both proxies get the same
//! number of workers (`MCNET_L7BENCH_WORKERS`, default 2). Without `--bench` (as `cargo
//! test` runs it) it does a short smoke run. `MCNET_L7BENCH_ROUNDS` sets the
//! number of rounds (default 5); the spread of the per-round ratios is
//! printed too. Needs root.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use mcnet_core::policy::{Compiled, Manifests};
use mcnet_datapath::enforcer::{Bind, Enforcer, EnforcerOptions};
use mcnet_datapath::lab::{HttpServer, Lab, GATEWAY};
use mcnet_datapath::netns;
use mcnet_datapath::proxy::ProxyConfig;

const ADR: &str = include_str!("../../examples/policies/adr-003-production.yaml");
const NGINX_PORT: u16 = 8081;

/// One path's two measurements.
struct Case {
    /// Several connections, back to back.
    load: Figures,
    /// One connection, one request at a time.
    single: Figures,
}

impl Case {
    /// Each figure's median over rounds.
    fn median(rounds: Vec<Case>) -> Case {
        let m = |f: &dyn Fn(&Case) -> f64| {
            let mut v: Vec<f64> = rounds.iter().map(f).collect();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let figures = |pick: &dyn Fn(&Case) -> &Figures| Figures {
            rps: m(&|c| pick(c).rps),
            p50_us: m(&|c| pick(c).p50_us),
            p99_us: m(&|c| pick(c).p99_us),
            requests: rounds.iter().map(|c| pick(c).requests).sum(),
        };
        Case {
            load: figures(&|c| &c.load),
            single: figures(&|c| &c.single),
        }
    }
}

fn measure(ns: &str, dst: Ipv4Addr, port: u16, conns: usize, run: Duration) -> Case {
    load(ns, dst, port, conns, run / 4);
    Case {
        load: load(ns, dst, port, conns, run),
        single: load(ns, dst, port, 1, run),
    }
}

struct Figures {
    rps: f64,
    p50_us: f64,
    p99_us: f64,
    requests: usize,
}

/// `conns` keep-alive connections from pod namespace `ns` to `dst:port`,
/// each sending `GET /api/v1/orders` back to back for `run`.
fn load(ns: &str, dst: Ipv4Addr, port: u16, conns: usize, run: Duration) -> Figures {
    netns::run_in(&netns::named(ns), || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut tasks = Vec::new();
            let start = Instant::now();
            for _ in 0..conns {
                tasks.push(tokio::spawn(async move {
                    let stream = tokio::net::TcpStream::connect((dst, port)).await.unwrap();
                    stream.set_nodelay(true).unwrap();
                    let (mut tx, conn) =
                        hyper::client::conn::http1::handshake(TokioIo::new(stream))
                            .await
                            .unwrap();
                    tokio::spawn(conn);
                    let mut lat = Vec::new();
                    while start.elapsed() < run {
                        let req = hyper::Request::builder()
                            .uri("/api/v1/orders")
                            .header("host", format!("{dst}:{port}"))
                            .body(http_body_util::Empty::<bytes::Bytes>::new())
                            .unwrap();
                        let t = Instant::now();
                        tx.ready().await.unwrap();
                        let resp = tx.send_request(req).await.unwrap();
                        assert_eq!(resp.status(), 200, "the allowed request is answered");
                        let _ = http_body_util::BodyExt::collect(resp.into_body())
                            .await
                            .unwrap();
                        lat.push(t.elapsed());
                    }
                    lat
                }));
            }
            let mut all = Vec::new();
            for t in tasks {
                all.extend(t.await.unwrap());
            }
            let secs = start.elapsed().as_secs_f64();
            all.sort();
            let q = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
            Figures {
                rps: all.len() as f64 / secs,
                p50_us: q(0.50).as_secs_f64() * 1e6,
                p99_us: q(0.99).as_secs_f64() * 1e6,
                requests: all.len(),
            }
        })
    })
    .unwrap()
}

struct Nginx(Child, PathBuf);

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM lets the master stop its workers.
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

/// nginx in namespace `node` on the gateway address, enforcing the ADR's
/// rules in front of `api`.
fn nginx(node: &str, api: Ipv4Addr, workers: usize) -> Option<Nginx> {
    let bin = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| Path::new(p).exists())?;
    let dir = std::env::temp_dir().join(format!("mcnet-l7bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    let d = dir.display();
    // GET (nginx's limit_except GET also admits HEAD) on /api/v1/.*, POST
    // too on /api/v1/users, nothing else.
    let conf = format!(
        "daemon off;\nworker_processes {workers};\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
         upstream api {{ server {api}:8080; keepalive 64; }}\n\
         server {{\n    listen {GATEWAY}:{NGINX_PORT};\n    keepalive_requests 1000000;\n\
         proxy_http_version 1.1;\n    proxy_set_header Connection \"\";\n\
         location = /api/v1/users {{ limit_except GET POST {{ deny all; }} proxy_pass http://api; }}\n\
         location ~ ^/api/v1/ {{ limit_except GET {{ deny all; }} proxy_pass http://api; }}\n\
         location / {{ return 403; }}\n  }}\n}}\n"
    );
    std::fs::write(dir.join("nginx.conf"), conf).ok()?;
    let child = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{node}"))
        .args([bin, "-p", &d.to_string(), "-c", &format!("{d}/nginx.conf")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let n = Nginx(child, dir.clone());
    let t0 = Instant::now();
    let path = netns::named(node);
    while !netns::run_in(&path, || {
        std::net::TcpStream::connect((GATEWAY, NGINX_PORT)).is_ok()
    })
    .unwrap_or(false)
    {
        if t0.elapsed() > Duration::from_secs(10) {
            eprintln!("nginx did not start; see {d}/error.log");
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(n)
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    if mcnet_datapath::EBPF_OBJECT.is_empty() || !mcnet_datapath::is_root() {
        mcnet_core::testing::skip("the L7 proxy bench needs root and the real eBPF object");
        return;
    }
    // Rounds interleave the three paths (in a rotating order), so that the
    // machine's drift falls on all of them alike; each figure is the
    // median over the rounds.
    let (run, conns, rounds) = if full {
        let rounds = std::env::var("MCNET_L7BENCH_ROUNDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(5usize)
            .max(1);
        (Duration::from_millis(1500), 8, rounds)
    } else {
        (Duration::from_millis(200), 2, 1)
    };
    // Worker threads of the mcnet proxy and worker processes of nginx.
    let workers: usize = std::env::var("MCNET_L7BENCH_WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let m = Manifests::load([("adr", ADR)]).unwrap();
    let c = Arc::new(Compiled::new(&m));
    let lab = Lab::for_inventory(&format!("lb{}", std::process::id() % 10000), &m.inventory)
        .expect("lab");
    let fe = lab.pod("production/frontend").unwrap().netns.clone();
    let api_pod = lab.pod("production/api-server").unwrap();
    let api = api_pod.ip;
    let _server = HttpServer::start(&api_pod.netns, 8080).unwrap();

    let node = netns::named(&lab.node);
    let binds: Vec<Bind> = lab
        .pods
        .iter()
        .map(|p| Bind {
            iface: p.host_iface.clone(),
            pod: p.key.clone(),
        })
        .collect();
    let through_mcnet = || {
        netns::run_in(&node, || {
            let options = EnforcerOptions::default().proxy(ProxyConfig::default().workers(workers));
            let e = Enforcer::start(c.clone(), &binds, &options).unwrap();
            let f = measure(&fe, api, 8080, conns, run);
            let proxied = e
                .proxy()
                .unwrap()
                .stats()
                .forwarded
                .load(std::sync::atomic::Ordering::Relaxed);
            assert!(
                proxied as usize >= f.load.requests + f.single.requests,
                "every request went through the proxy"
            );
            e.stop().unwrap();
            f
        })
        .unwrap()
    };
    let nginx_running = nginx(&lab.node, api, workers);
    let (mut direct, mut mcnet, mut via_nginx) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        for path in 0..3 {
            match (round + path) % 3 {
                0 => direct.push(measure(&fe, api, 8080, conns, run)),
                1 => mcnet.push(through_mcnet()),
                _ if nginx_running.is_some() => {
                    via_nginx.push(measure(&fe, GATEWAY, NGINX_PORT, conns, run))
                }
                _ => {}
            }
        }
    }
    drop(nginx_running);
    // Each round's own ratio (the paths of a round ran back to back), for
    // the spread behind the median.
    let mut round_ratios: Vec<f64> = mcnet
        .iter()
        .zip(&via_nginx)
        .map(|(m, n)| m.load.rps / n.load.rps)
        .collect();
    round_ratios.sort_by(f64::total_cmp);
    let direct = Case::median(direct);
    let mcnet = Case::median(mcnet);
    let nginx_figures = (!via_nginx.is_empty()).then(|| Case::median(via_nginx));

    println!(
        "L7 proxy, GET /api/v1/orders on keep-alive connections, {workers} proxy workers, \
         medians of {rounds} interleaved rounds of {run:?} per measurement ({}):",
        if full { "full run" } else { "smoke run" }
    );
    println!(
        "  {:<34} {:>13} {:>11} | {:>9} {:>9} {:>9} {:>9}",
        "",
        format!("{conns} conns"),
        "",
        "1 conn",
        "",
        "",
        ""
    );
    println!(
        "  {:<34} {:>13} {:>11} | {:>9} {:>9} {:>9} {:>9}",
        "path", "req/s", "p99 µs", "p50 µs", "p99 µs", "+p50 µs", "+p99 µs"
    );
    let row = |name: &str, c: &Case| {
        println!(
            "  {:<34} {:>13.0} {:>11.1} | {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
            name,
            c.load.rps,
            c.load.p99_us,
            c.single.p50_us,
            c.single.p99_us,
            c.single.p50_us - direct.single.p50_us,
            c.single.p99_us - direct.single.p99_us
        );
    };
    row("direct (no policy)", &direct);
    row("mcnet (eBPF redirect + L7 proxy)", &mcnet);
    match &nginx_figures {
        Some(n) => {
            row("nginx (reverse proxy, same rules)", n);
            println!(
                "  requests per second, {conns} conns: mcnet/nginx {:.2}×, mcnet/direct {:.2}×; \
                 added p99 at 1 conn: mcnet {:.0} µs, nginx {:.0} µs",
                mcnet.load.rps / n.load.rps,
                mcnet.load.rps / direct.load.rps,
                mcnet.single.p99_us - direct.single.p99_us,
                n.single.p99_us - direct.single.p99_us,
            );
            if let (Some(lo), Some(hi)) = (round_ratios.first(), round_ratios.last()) {
                let above = round_ratios.iter().filter(|r| **r >= 1.0).count();
                println!(
                    "  mcnet/nginx per round: {lo:.2}-{hi:.2}× ({above} of {} rounds at or above 1.00×)",
                    round_ratios.len()
                );
            }
        }
        None => mcnet_core::testing::skip("nginx is not installed or did not start"),
    }
}
