//! `mcnet gslb serve` against real clients on loopback: `dig` sees answers
//! follow health (failover within two intervals and back), the weighted split
//! over 10,000 queries, TCP and EDNS Client Subnet; `promtool` accepts the
//! metrics and VictoriaMetrics scrapes and stores them. Servers that face a
//! network keep serving: `dig` is answered while 1,000 idle TCP connections
//! are open and while the server is out of file descriptors (without
//! spinning a core), idle and stalled TCP connections are closed, answers
//! fit the client's EDNS payload size, and `/metrics` refuses what is not a
//! request for it.
//!
//! `dig` (bind9-dnsutils, installed by scripts/setup.sh) is required: the
//! tests that use it fail when it is missing.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;
use common::{free_port, have, listening, promtool_accepts, start_server, Proc};

/// Fails the test when `dig` is not installed: these tests never pass by
/// skipping.
fn need_dig() {
    assert!(
        have("dig"),
        "dig is not installed: scripts/setup.sh installs bind9-dnsutils (apt-get install bind9-dnsutils)"
    );
}

/// A health endpoint on loopback that answers 200 while `up`, and closes
/// its port while down (connections are refused).
struct Health {
    up: Arc<AtomicBool>,
    port: u16,
}

impl Health {
    fn start() -> Health {
        let port = free_port();
        let up = Arc::new(AtomicBool::new(true));
        let flag = up.clone();
        std::thread::spawn(move || loop {
            if !flag.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            let Ok(l) = TcpListener::bind(("127.0.0.1", port)) else {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            };
            l.set_nonblocking(true).unwrap();
            while flag.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((mut s, _)) => {
                        let mut buf = [0u8; 512];
                        s.set_nonblocking(false).unwrap();
                        let _ = s.read(&mut buf);
                        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n");
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Health { up, port }
    }
}

fn serve(config: &str) -> (Proc, String, u16) {
    serve_with(config, None, &[])
}

/// `mcnet gslb serve` with `flags`, under `ulimit -n FILES` when given.
fn serve_with(config: &str, open_files: Option<u32>, flags: &[&str]) -> (Proc, String, u16) {
    let (p, [dns, metrics]) = start_server(
        "gslb",
        |[dns, metrics]| {
            let cfg = common::temp(&format!("gslb-{dns}.yaml"), config);
            let mut cmd = match open_files {
                Some(n) => {
                    let mut c = Command::new("sh");
                    c.args([
                        "-c",
                        &format!("ulimit -n {n} && exec \"$0\" \"$@\""),
                        env!("CARGO_BIN_EXE_mcnet"),
                    ]);
                    c
                }
                None => Command::new(env!("CARGO_BIN_EXE_mcnet")),
            };
            cmd.args([
                "gslb",
                "serve",
                "--config",
                &cfg,
                "--listen",
                &format!("127.0.0.1:{dns}"),
                "--metrics",
                &format!("127.0.0.1:{metrics}"),
            ])
            .args(flags);
            cmd
        },
        |[_, metrics]| listening(metrics),
    );
    (p, dns.to_string(), metrics)
}

fn dig(port: &str, args: &[&str]) -> Vec<String> {
    let out = Command::new("dig")
        .args(["@127.0.0.1", "-p", port, "+short", "+tries=1", "+time=2"])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .filter(|l| !l.is_empty())
        .collect()
}

fn http_get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

/// Polls `dig` until `want` is the answer; returns how long it took.
fn until(port: &str, want: &[&str], limit: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if dig(port, &["api.example.test", "A"]) == want {
            return Some(t0.elapsed());
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    None
}

#[test]
fn answers_follow_health_for_dig() {
    need_dig();
    let (aws, gcp) = (Health::start(), Health::start());
    let interval = 500;
    let (_p, port, metrics) = serve(&format!(
        "ttl: 5\nrecords:\n  - name: api.example.test\n    policy: failover\n    endpoints:\n\
         \x20     - {{name: aws, address: 198.18.0.10, priority: 1, weight: 50, health: {{http: \"http://127.0.0.1:{}/healthz\", interval_ms: {interval}, healthy: 2, unhealthy: 2}}}}\n\
         \x20     - {{name: gcp, address: 198.18.0.20, priority: 2, weight: 50, health: {{tcp: \"127.0.0.1:{}\", interval_ms: {interval}, healthy: 2, unhealthy: 2}}}}\n",
        aws.port, gcp.port
    ));
    assert!(until(&port, &["198.18.0.10"], Duration::from_secs(5)).is_some());
    assert_eq!(
        dig(&port, &["api.example.test", "A", "+tcp"]),
        ["198.18.0.10"],
        "over TCP too"
    );

    // Outage: it leaves the answers. That it takes exactly two failed checks
    // (two intervals) is the thresholds' unit test in mcnet-cloud; here the
    // time and the checks are printed, not asserted: a loaded machine
    // stretches both how fast dig polls and how often checks run.
    aws.up.store(false, Ordering::Relaxed);
    let took = until(&port, &["198.18.0.20"], Duration::from_secs(10)).expect("failover");
    let text = http_get(metrics, "/metrics");
    let failed = text
        .lines()
        .find(|l| l.starts_with("mcnet_gslb_health_checks_total{endpoint=\"aws\",result=\"fail\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    eprintln!("failover seen after {took:?} and {failed} failed checks (interval {interval} ms)");
    assert!(
        failed >= 2,
        "it failed over after {failed} failed check(s), before the threshold"
    );
    assert!(
        text.contains("mcnet_gslb_endpoint_healthy{name=\"api.example.test\",endpoint=\"aws\"} 0"),
        "{text}"
    );
    // Back: it returns.
    aws.up.store(true, Ordering::Relaxed);
    let took = until(&port, &["198.18.0.10"], Duration::from_secs(10)).expect("failback");
    eprintln!("failback after {took:?}");

    // Every exposition passes promtool.
    let text = http_get(metrics, "/metrics");
    assert!(text.contains("mcnet_gslb_endpoint_healthy"), "{text}");
    promtool_accepts(&text);
}

#[test]
fn the_weighted_split_holds_over_ten_thousand_queries() {
    need_dig();
    let (_p, port, _) = serve(
        "ttl: 5\nrecords:\n  - name: api.example.test\n    policy: weighted\n    endpoints:\n\
         \x20     - {name: aws, address: 198.18.0.10, weight: 70}\n\
         \x20     - {name: azure, address: 198.18.0.11, weight: 30}\n",
    );
    let n = 10_000;
    let batch = common::temp(
        &format!("dig-batch-{port}"),
        &"api.example.test A\n".repeat(n),
    );
    let answers = dig(&port, &["-f", &batch]);
    assert_eq!(answers.len(), n, "every query answered");
    let aws = answers.iter().filter(|a| *a == "198.18.0.10").count() as f64 / n as f64;
    eprintln!("weighted: aws {:.1}% (configured 70%)", aws * 100.0);
    assert!((aws - 0.70).abs() <= 0.05, "aws share {aws}");
}

#[test]
fn geo_follows_the_edns_client_subnet() {
    need_dig();
    let (_p, port, _) = serve(
        "records:\n  - name: api.example.test\n    policy: geo\n    endpoints:\n\
         \x20     - {name: eu, address: 198.18.0.10, geo: [203.0.113.0/24]}\n\
         \x20     - {name: us, address: 198.18.0.20, priority: 1, geo: [198.51.100.0/24]}\n",
    );
    assert_eq!(
        dig(&port, &["api.example.test", "A", "+subnet=198.51.100.0/24"]),
        ["198.18.0.20"]
    );
    assert_eq!(
        dig(&port, &["api.example.test", "A", "+subnet=203.0.113.0/24"]),
        ["198.18.0.10"]
    );
    // Without a subnet, the source (127.0.0.1) matches no region: failover order.
    assert_eq!(dig(&port, &["api.example.test", "A"]), ["198.18.0.10"]);
}

#[test]
fn victoria_metrics_scrapes_and_stores_the_series() {
    if !have("victoria-metrics") {
        assert!(
            std::env::var_os("MCNET_REQUIRE_ALL").is_none_or(|v| v != "1"),
            "victoria-metrics is not installed (scripts/setup.sh installs it) and MCNET_REQUIRE_ALL=1"
        );
        mcnet_core::testing::skip(
            "victoria-metrics is not installed (scripts/setup.sh installs it)",
        );
        return;
    }
    let (_p, _port, metrics) = serve(
        "records:\n  - name: api.example.test\n    endpoints:\n      - {name: aws, address: 198.18.0.10}\n",
    );
    let dir = std::env::temp_dir().join(format!("mcnet-vm-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let scrape = dir.join("scrape.yaml");
    std::fs::write(
        &scrape,
        format!(
            "scrape_configs:\n  - job_name: mcnet\n    scrape_interval: 1s\n    static_configs:\n      - targets: ['127.0.0.1:{metrics}']\n"
        ),
    )
    .unwrap();
    let (_vm, [http]) = start_server(
        "victoria-metrics",
        |[http]| {
            let mut cmd = Command::new("victoria-metrics");
            cmd.args([
                &format!("-storageDataPath={}", dir.join("data").display()),
                &format!("-httpListenAddr=127.0.0.1:{http}"),
                &format!("-promscrape.config={}", scrape.display()),
                "-search.latencyOffset=0s",
            ])
            .stdout(Stdio::null());
            cmd
        },
        |[http]| listening(http),
    );
    let t0 = Instant::now();
    let mut found = String::new();
    while t0.elapsed() < Duration::from_secs(40) {
        std::thread::sleep(Duration::from_millis(500));
        if TcpStream::connect(("127.0.0.1", http)).is_err() {
            continue;
        }
        let body = http_get(http, "/api/v1/query?query=mcnet_gslb_endpoint_healthy");
        if body.contains("\"endpoint\":\"aws\"") {
            found = body;
            break;
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        found.contains("\"value\""),
        "VictoriaMetrics never returned the series: {found}"
    );
}

/// `dig` output in full (not `+short`), with extra `args`.
fn dig_full(port: &str, args: &[&str]) -> String {
    let out = Command::new("dig")
        .args(["@127.0.0.1", "-p", port, "+tries=1", "+time=2"])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The flags and the size of a full `dig` answer.
fn flags_and_size(out: &str) -> (String, usize) {
    let flags = out
        .lines()
        .find_map(|l| l.strip_prefix(";; flags: "))
        .and_then(|l| l.split(';').next())
        .unwrap_or_else(|| panic!("no flags in: {out}"))
        .to_string();
    let size = out
        .lines()
        .find_map(|l| l.strip_prefix(";; MSG SIZE  rcvd: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no size in: {out}"));
    (flags, size)
}

/// This process's soft limit of open files.
fn open_files_limit(pid: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    line.split_whitespace().nth(3).unwrap().parse().unwrap()
}

/// CPU time (user + system) a process has used so far.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let hz: u64 = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100);
    Duration::from_millis(ticks * 1000 / hz)
}

/// The CPU time `pid` uses over `window`.
fn cpu_over(pid: u32, window: Duration) -> Duration {
    let before = cpu_time(pid);
    std::thread::sleep(window);
    cpu_time(pid) - before
}

/// Which of `conns` the server has closed (a read sees the end or a reset).
fn closed(conns: &[TcpStream]) -> Vec<bool> {
    conns
        .iter()
        .map(|mut s| {
            s.set_nonblocking(true).unwrap();
            let mut b = [0u8; 16];
            match s.read(&mut b) {
                Ok(0) => true,
                Ok(_) => false,
                Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
            }
        })
        .collect()
}

/// The stderr of the `gslb` server on DNS port `port` (see `start_server`).
fn server_log(port: &str) -> String {
    let prefix = format!("mcnet-cli-{}-gslb-{port}-", std::process::id());
    std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect()
}

fn one_name() -> &'static str {
    "records:\n  - name: api.example.test\n    endpoints:\n      - {name: aws, address: 198.18.0.10}\n"
}

/// Polls `dig` (over TCP when `tcp`) until it answers, at most `limit`.
fn answers_within(port: &str, tcp: bool, limit: Duration) -> bool {
    let t0 = Instant::now();
    let args: &[&str] = if tcp {
        &["api.example.test", "A", "+tcp"]
    } else {
        &["api.example.test", "A"]
    };
    while t0.elapsed() < limit {
        if dig(port, args) == ["198.18.0.10"] {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// The acceptance load test of issue 16: with the default limits (512 TCP
/// connections), 1,000 idle TCP connections leave UDP answering at once,
/// the 488 over the cap are closed promptly, the server does not spin, and
/// TCP answers again as soon as a slot frees.
#[test]
fn dig_is_answered_while_a_thousand_idle_tcp_connections_are_open() {
    need_dig();
    let mine = open_files_limit("self");
    assert!(
        mine >= 1200,
        "this test opens 1,000 connections but its open-files limit is {mine}: run it under `ulimit -n 4096`"
    );
    let (p, port, metrics) = serve(one_name());
    let pid = p.0.id();
    let conns: Vec<TcpStream> = (0..1000)
        .map(|_| {
            TcpStream::connect_timeout(
                &format!("127.0.0.1:{port}").parse().unwrap(),
                Duration::from_secs(5),
            )
            .expect("connect")
        })
        .collect();
    let t0 = Instant::now();
    assert_eq!(
        dig(&port, &["api.example.test", "A"]),
        ["198.18.0.10"],
        "UDP with 1,000 idle TCP connections open"
    );
    eprintln!("dig over UDP answered in {:?}", t0.elapsed());
    let t0 = Instant::now();
    let mut shut = closed(&conns);
    while shut.iter().filter(|c| **c).count() < 488 && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(100));
        shut = closed(&conns);
    }
    let open = shut.iter().filter(|c| !**c).count();
    eprintln!(
        "after {:?}: {open} held, {} closed",
        t0.elapsed(),
        1000 - open
    );
    assert!(open <= 512, "{open} idle connections held: the cap is 512");
    let cpu = cpu_over(pid, Duration::from_secs(1));
    assert!(
        cpu < Duration::from_millis(300),
        "the server used {cpu:?} of CPU in 1 s"
    );
    let text = http_get(metrics, "/metrics");
    let rejected = text
        .lines()
        .find_map(|l| l.strip_prefix("mcnet_gslb_tcp_rejected_total "))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(rejected >= 488, "{text}");
    assert_eq!(
        server_log(&port).matches("connection cap reached").count(),
        1,
        "the cap is logged once per burst: {}",
        server_log(&port)
    );
    // Some clients leave: TCP answers again.
    let mut conns = conns;
    let held: Vec<usize> = (0..conns.len()).filter(|i| !shut[*i]).take(20).collect();
    for i in held.into_iter().rev() {
        drop(conns.remove(i));
    }
    assert!(
        answers_within(&port, true, Duration::from_secs(5)),
        "TCP never answered after connections closed"
    );
    assert_eq!(
        dig(&port, &["api.example.test", "A"]),
        ["198.18.0.10"],
        "UDP still"
    );
}

/// Out of file descriptors (`ulimit -n 64`, below what 150 connections
/// need), `accept` fails with EMFILE: the server backs off instead of
/// spinning a core, logs once, keeps answering UDP, and serves TCP again
/// once descriptors free.
#[test]
fn out_of_file_descriptors_the_acceptor_backs_off_and_udp_answers() {
    need_dig();
    let (p, port, _) = serve_with(one_name(), Some(64), &[]);
    let pid = p.0.id();
    assert_eq!(open_files_limit(&pid.to_string()), 64);
    let conns: Vec<TcpStream> = (0..150)
        .map(|_| TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap())).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let cpu = cpu_over(pid, Duration::from_secs(2));
    eprintln!("CPU at the descriptor limit: {cpu:?} in 2 s");
    assert!(
        cpu < Duration::from_millis(500),
        "the accept loop spins at EMFILE: {cpu:?} of CPU in 2 s"
    );
    assert_eq!(
        dig(&port, &["api.example.test", "A"]),
        ["198.18.0.10"],
        "UDP at the descriptor limit"
    );
    let log = server_log(&port);
    assert!(
        log.contains("limit is 64"),
        "no warning about the limit: {log}"
    );
    // One line per burst of failures: a burst ends when an accept
    // succeeds again (a descriptor freed for a moment), and only then may
    // another be logged; never a line per failure.
    // (per listener: the metrics listener logs its own bursts).
    let count = |word: &str| {
        log.lines()
            .filter(|l| l.contains(word) && l.contains("DNS TCP accept"))
            .count()
    };
    let (bursts, recoveries) = (count("backing off"), count("recovered"));
    assert!(
        bursts >= 1 && bursts <= recoveries + 1 && bursts <= 10,
        "one log line per burst of failures ({bursts} bursts, {recoveries} recoveries): {log}"
    );
    drop(conns);
    assert!(
        answers_within(&port, true, Duration::from_secs(5)),
        "TCP never recovered: {}",
        server_log(&port)
    );
    assert!(server_log(&port).contains("recovered"));
}

/// `--tcp-idle-timeout` and `--tcp-read-timeout`: a connection that sends
/// nothing, or half a query, is closed after the timeout; one that asks is
/// answered.
#[test]
fn idle_and_stalled_tcp_connections_are_closed_after_the_timeouts() {
    need_dig();
    let (_p, port, _) = serve_with(
        one_name(),
        None,
        &["--tcp-idle-timeout", "500ms", "--tcp-read-timeout", "500ms"],
    );
    let closes_after = |send: &[u8]| {
        let mut s = TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap())).unwrap();
        s.write_all(send).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let t0 = Instant::now();
        let mut b = [0u8; 16];
        let r = s.read(&mut b);
        assert!(
            matches!(r, Ok(0)) || r.is_err() && t0.elapsed() < Duration::from_secs(9),
            "{r:?}"
        );
        t0.elapsed()
    };
    let idle = closes_after(b"");
    assert!(
        idle >= Duration::from_millis(400) && idle < Duration::from_secs(5),
        "idle connection closed after {idle:?}"
    );
    let stalled = closes_after(&[0]);
    assert!(
        stalled >= Duration::from_millis(400) && stalled < Duration::from_secs(5),
        "stalled query closed after {stalled:?}"
    );
    assert_eq!(
        dig(&port, &["api.example.test", "A", "+tcp"]),
        ["198.18.0.10"]
    );
    // A bad value is a usage error.
    let (code, _, err) = common::mcnet(&[
        "gslb",
        "serve",
        "--config",
        "x",
        "--listen",
        "127.0.0.1:1",
        "--tcp-idle-timeout",
        "0s",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("tcp-idle-timeout"), "{err}");
}

/// Answers fit the client's EDNS payload size (512 without EDNS, never more
/// than our 1,232 over UDP): an answer too big is sent with TC set and no
/// answer records, and TCP carries it whole.
#[test]
fn big_answers_fit_the_clients_payload_size_and_come_whole_over_tcp() {
    need_dig();
    let mut cfg = String::from("records:\n");
    for (name, n) in [("big.example.test", 100), ("mid.example.test", 60)] {
        cfg.push_str(&format!("  - name: {name}\n    endpoints:\n"));
        for i in 0..n {
            cfg.push_str(&format!(
                "      - {{name: e{i}, address: 198.18.0.{}}}\n",
                i + 1
            ));
        }
    }
    let (_p, port, _) = serve(&cfg);
    // About 1,700 bytes of answers.
    for (args, limit) in [
        (&["+bufsize=512"][..], 512),
        (&["+noedns"], 512),
        (&["+bufsize=1232"], 1232),
        (&["+bufsize=4096"], 1232),
    ] {
        let mut a = vec!["big.example.test", "A", "+ignore"];
        a.extend_from_slice(args);
        let out = dig_full(&port, &a);
        let (flags, size) = flags_and_size(&out);
        eprintln!("{args:?}: {size} bytes, flags {flags}");
        assert!(size <= limit, "{args:?}: {size} bytes > {limit}:\n{out}");
        assert!(
            flags.split(' ').any(|f| f == "tc"),
            "{args:?}: TC not set:\n{out}"
        );
        assert_eq!(
            out.contains("OPT PSEUDOSECTION"),
            args[0] != "+noedns",
            "the OPT record is kept:\n{out}"
        );
    }
    assert_eq!(
        dig(&port, &["big.example.test", "A", "+tcp"]).len(),
        100,
        "TCP: the whole answer"
    );
    assert_eq!(
        dig(&port, &["big.example.test", "A", "+bufsize=512"]).len(),
        100,
        "dig retries over TCP on TC"
    );
    // About 1,000 bytes: whole at 1,232, truncated at 512.
    let out = dig_full(
        &port,
        &["mid.example.test", "A", "+bufsize=1232", "+ignore"],
    );
    let (flags, size) = flags_and_size(&out);
    assert!(
        !flags.split(' ').any(|f| f == "tc") && size <= 1232,
        "{out}"
    );
    let out = dig_full(&port, &["mid.example.test", "A", "+bufsize=512", "+ignore"]);
    let (flags, size) = flags_and_size(&out);
    assert!(flags.split(' ').any(|f| f == "tc") && size <= 512, "{out}");
}

/// `mcnet gslb check` refuses health checks that could never run, naming
/// the record, the endpoint and the field of each.
#[test]
fn check_refuses_broken_health_checks() {
    let cfg = common::temp(
        "gslb-broken-health.yaml",
        "records:\n  - name: api.example.test\n    endpoints:\n\
         \x20     - {name: aws, address: 198.18.0.10, health: {tcp: \"not an address\"}}\n\
         \x20     - {name: gcp, address: 198.18.0.20, health: {tcp: \"127.0.0.1:99999\"}}\n\
         \x20     - {name: azure, address: 198.18.0.30, health: {http: \"http://127.0.0.1:8080/h\", timeout_ms: 0}}\n",
    );
    let (code, out, err) = common::mcnet(&["gslb", "check", &cfg]);
    assert_eq!(code, 1, "{out}{err}");
    for want in [
        "records[0].endpoints[0].health.tcp",
        "endpoint `aws`",
        "records[0].endpoints[1].health.tcp",
        "99999",
        "records[0].endpoints[2].health.timeout_ms",
        "endpoint `azure`",
    ] {
        assert!(err.contains(want), "{want} missing from: {err}");
    }
}

/// The metrics listener answers 404 for another path, 400 for what is not
/// HTTP and 431 for an oversized head, and still serves `/metrics`.
#[test]
fn the_metrics_listener_refuses_what_is_not_a_request_for_metrics() {
    let (_p, _port, metrics) = serve(one_name());
    let raw = |req: &[u8]| {
        let mut s = TcpStream::connect(("127.0.0.1", metrics)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(req).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    };
    for (req, status) in [
        (b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), "404"),
        (b"\x16\x03\x01\x00\x05hello\r\n\r\n".to_vec(), "400"),
        (b"GET /metrics HTTP/7\r\n\r\n".to_vec(), "400"),
        (
            format!("GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(9000)).into_bytes(),
            "431",
        ),
    ] {
        let out = raw(&req);
        assert!(
            out.starts_with(&format!("HTTP/1.1 {status} ")),
            "{}: {out}",
            String::from_utf8_lossy(&req[..req.len().min(40)])
        );
    }
    assert!(http_get(metrics, "/metrics").contains("mcnet_gslb_endpoint_healthy"));
}

#[test]
fn the_config_generated_from_a_topology_serves_its_hostnames_and_fails_over() {
    need_dig();
    let adr = concat!(env!("CARGO_MANIFEST_DIR"), "/topologies/adr-003.yaml");
    // Each cluster's ingress on its own loopback address, one health port.
    let gke = TcpListener::bind(("127.0.0.4", 0)).unwrap();
    let port = gke.local_addr().unwrap().port();
    let _eks = TcpListener::bind(("127.0.0.2", port)).unwrap();
    let _aks = TcpListener::bind(("127.0.0.3", port)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mcnet"))
        .args(["gslb", "config", adr])
        .args([
            "--ingress",
            "eks-prod=127.0.0.2",
            "--ingress",
            "aks-prod=127.0.0.3",
        ])
        .args(["--ingress", "gke-prod=127.0.0.4", "--health-tcp"])
        .args([
            "--health-port",
            &port.to_string(),
            "--health-interval",
            "200ms",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let yaml = String::from_utf8(out.stdout).unwrap();
    assert!(yaml.contains("tcp: 127.0.0.4:"), "{yaml}");
    let (_p, dns, _) = serve(&yaml);
    let answer = |want: &str| {
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(10) {
            if dig(&dns, &["api.multicloud-k8s.com", "A"]) == [want] {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    };
    // Failover by the topology's priorities: gke-prod (0), then eks-prod (1).
    assert!(answer("127.0.0.4"));
    drop(gke);
    assert!(answer("127.0.0.2"), "the answer did not move to eks-prod");
    // The weighted name answers one of its three targets.
    let one = dig(&dns, &["app.multicloud-k8s.com", "A"]);
    assert!(
        one.len() == 1 && ["127.0.0.2", "127.0.0.3"].contains(&one[0].as_str()),
        "{one:?}"
    );

    // A cluster that is not in the topology is named.
    let out = Command::new(env!("CARGO_BIN_EXE_mcnet"))
        .args(["gslb", "config", adr, "--ingress", "nope=127.0.0.9"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no cluster named `nope`"), "{err}");
}
