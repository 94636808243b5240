//! DNS throughput of the GSLB responder against NSD serving the same name
//! from a static zone, both measured by dnsperf on loopback in the same run.
//! Ours answers by health (a TCP check every 500 ms) while it is measured;
//! NSD runs with two servers and its response rate limiting off.
//!
//! Without `--bench` (as `cargo test` runs it) it does a one-second smoke
//! run; it skips, with a note, when dnsperf or NSD is not installed.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mcnet_cloud::gslb::{self, Config, Gslb};

struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// dnsperf's queries per second against `port`.
fn dnsperf(port: u16, queries: &Path, secs: u32) -> f64 {
    let out = Command::new("dnsperf")
        .args([
            "-s",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-d",
            &queries.display().to_string(),
            "-l",
            &secs.to_string(),
            "-c",
            "4",
            "-T",
            "1",
            "-q",
            "200",
        ])
        .output()
        .expect("dnsperf");
    let text = String::from_utf8_lossy(&out.stdout);
    let qps = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Queries per second:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0);
    let lost = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Queries lost:"))
        .unwrap_or("?")
        .trim()
        .to_string();
    eprintln!("  dnsperf → :{port}: {qps:.0} q/s, lost {lost}");
    qps
}

fn nsd(dir: &Path, port: u16) -> Option<Proc> {
    let bin = ["/usr/sbin/nsd", "/usr/bin/nsd"]
        .into_iter()
        .find(|p| Path::new(p).exists())?;
    let d = dir.display();
    std::fs::write(
        dir.join("example.test.zone"),
        "$ORIGIN example.test.\n$TTL 5\n@ IN SOA ns.example.test. admin.example.test. 1 3600 600 86400 5\n\
         @ IN NS ns.example.test.\nns IN A 198.18.0.53\napi IN A 198.18.0.10\n",
    )
    .ok()?;
    std::fs::write(
        dir.join("nsd.conf"),
        format!(
            "server:\n  ip-address: 127.0.0.1\n  port: {port}\n  username: \"\"\n  chroot: \"\"\n  zonesdir: \"{d}\"\n\
             \x20 pidfile: \"{d}/nsd.pid\"\n  database: \"\"\n  xfrdfile: \"{d}/xfrd.state\"\n  zonelistfile: \"{d}/zone.list\"\n\
             \x20 logfile: \"{d}/nsd.log\"\n  server-count: 2\n  verbosity: 0\n  rrl-ratelimit: 0\nremote-control:\n  control-enable: no\n\
             zone:\n  name: example.test\n  zonefile: example.test.zone\n"
        ),
    )
    .ok()?;
    let child = Command::new(bin)
        .args(["-d", "-c", &format!("{d}/nsd.conf")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let p = Proc(child);
    // Ready when it answers.
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(10) {
        let ok = Command::new("dig")
            .args([
                "@127.0.0.1",
                "-p",
                &port.to_string(),
                "api.example.test",
                "A",
                "+short",
                "+time=1",
                "+tries=1",
            ])
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("198.18.0.10"));
        if ok {
            return Some(p);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("NSD did not start; see {d}/nsd.log");
    None
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    if !have("dnsperf") || !have("dig") {
        mcnet_core::testing::skip(
            "gslb bench: dnsperf and dig are needed (scripts/setup.sh installs them)",
        );
        return;
    }
    let secs = if full { 5 } else { 1 };
    let dir = std::env::temp_dir().join(format!("mcnet-bench-dns-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let queries = dir.join("queries.txt");
    std::fs::write(&queries, "api.example.test A\n".repeat(100)).unwrap();

    // Ours, answering by health: a live TCP check of a local listener.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let health = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let health_addr = health.local_addr().unwrap();
    let cfg = Config::from_yaml(&format!(
        "ttl: 5\nrecords:\n  - name: api.example.test\n    policy: failover\n    endpoints:\n\
         \x20     - {{name: aws, address: 198.18.0.10, priority: 1, health: {{tcp: \"{health_addr}\", interval_ms: 500}}}}\n\
         \x20     - {{name: gcp, address: 198.18.0.20, priority: 2}}\n"
    ))
    .unwrap();
    let g = Gslb::new(&cfg);
    let port = free_port();
    let (_addr, _tasks, _checks) = rt.block_on(async {
        let checks = gslb::spawn_health_checks(&g);
        let (addr, tasks) = gslb::serve(Arc::clone(&g), SocketAddr::from(([127, 0, 0, 1], port)))
            .await
            .unwrap();
        (addr, tasks, checks)
    });
    let ours = dnsperf(port, &queries, secs);
    let answering = g.endpoints("api.example.test")[0].is_healthy();

    let nsd_port = free_port();
    let theirs = nsd(&dir, nsd_port).map(|p| (dnsperf(nsd_port, &queries, secs), p));

    println!("\nDNS queries per second on loopback (dnsperf, {secs} s each, same run):");
    println!("  mcnet gslb (answering by health, endpoint healthy: {answering}): {ours:>10.0}");
    match &theirs {
        Some((q, _)) => {
            println!("  NSD (static zone):                                 {q:>10.0}");
            println!("  mcnet / NSD: {:.2} (target ≥ 0.50)", ours / q);
        }
        None => println!("  NSD not available: no comparison (scripts/setup.sh installs nsd)"),
    }
    drop(theirs);
    drop(health);
    let _ = std::fs::remove_dir_all(&dir);
}
