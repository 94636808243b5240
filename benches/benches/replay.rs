//! `mcnet policy replay`'s engine on a stream of recorded flows: flows per
//! second through [`Replay`] (each distinct flow judged once) against a
//! naive re-evaluation of every line with the engine, in one run, and the
//! peak memory of a 10-million-line stream, generated on the fly and never
//! held (`--bench`; without it, as `cargo test` runs it, a short smoke run
//! checks both agree).
//!
//! The flows are the ADR's production pods talking on their ports, with
//! HTTP requests to the API: frontend's GETs and POSTs, and batch's drops,
//! in mcnet's flow-event format, as `datapath enforce --flows` writes them.

use std::time::Instant;

use mcnet_core::policy::replay::{parse_line, Replay};
use mcnet_core::policy::{Compiled, Manifests};

const ADR: &str = include_str!("../../examples/policies/adr-003-production.yaml");

/// Flow line `i`: one of a few shapes, with varying source ports and times.
fn line(i: u64) -> String {
    let (src, verdict, http) = match i % 5 {
        0 => ("198.18.0.10", "allow", None),
        1 => (
            "198.18.0.10",
            "allow",
            Some(("GET", format!("/api/v1/orders/{}", i % 50))),
        ),
        2 => (
            "198.18.0.10",
            "allow",
            Some(("POST", "/api/v1/users".to_string())),
        ),
        3 => (
            "198.18.0.10",
            "deny",
            Some(("DELETE", "/api/v1/users".to_string())),
        ),
        _ => ("198.18.0.30", "deny", None),
    };
    let http = http.map_or(String::new(), |(m, p)| {
        format!(r#","http":{{"method":"{m}","url":"{p}","code":200,"protocol":"HTTP/1.1","latency_ns":1000}}"#)
    });
    format!(
        r#"{{"time_ns":{i},"type":"L7","verdict":"{verdict}","hubble_verdict":"FORWARDED","reason":"x","src":"{src}","dst":"198.18.0.20","sport":{},"dport":8080,"protocol":"TCP","direction":"ingress","src_identity":1,"dst_identity":2,"is_reply":false,"l7":true,"ifindex":2{http}}}"#,
        30000 + i % 20000
    )
}

/// Peak resident memory of this process, kB.
fn peak_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let m = Manifests::load([("adr", ADR)]).unwrap();
    // The candidate drops the POST rule.
    let cut = ADR.replace(
        "        - method: \"POST\"\n          path: \"/api/v1/users\"\n",
        "",
    );
    let candidate = Compiled::new(&Manifests::load([("candidate", cut.as_str())]).unwrap());
    let baseline = Compiled::new(&m);
    // A long stream, generated line by line: memory stays flat.
    let stream: u64 = if full { 10_000_000 } else { 100_000 };
    let before = peak_kb();
    let t = Instant::now();
    let mut replay = Replay::new(&candidate, Some(&baseline));
    let mut buf = String::new();
    for i in 0..stream {
        buf.clear();
        buf.push_str(&line(i));
        replay.push_line(&buf);
    }
    let report = replay.finish();
    let took = t.elapsed();
    assert_eq!(report.counts.flows, stream);
    println!(
        "  a {stream}-line stream, generated on the fly: {:.1} s ({:.0} flows/s, generation included); peak resident memory {} kB at its start, {} kB at its end",
        took.as_secs_f64(),
        stream as f64 / took.as_secs_f64(),
        before,
        peak_kb()
    );

    let n: u64 = if full { 1_000_000 } else { 20_000 };
    let lines: Vec<String> = (0..n).map(line).collect();

    // Naive: every line parsed and judged by both policy sets, explained.
    let t = Instant::now();
    let mut naive_denied = 0u64;
    for l in &lines {
        let f = parse_line(l).unwrap().unwrap();
        let q = |c: &Compiled| {
            let ep = |ip: std::net::IpAddr| mcnet_core::policy::QueryEndpoint {
                pod: None,
                ip: Some(ip.to_string()),
            };
            let http = f
                .http
                .as_ref()
                .map(|(m, p)| mcnet_core::policy::HttpRequest {
                    method: m.clone(),
                    path: p.clone(),
                    ..Default::default()
                });
            let src = c.resolve_endpoint(&ep(f.src.ip.unwrap()), "from").unwrap();
            let dst = c.resolve_endpoint(&ep(f.dst.ip.unwrap()), "to").unwrap();
            let l7 = http.as_ref().map(mcnet_core::policy::L7Request::Http);
            c.eval_resolved(src, dst, f.port, f.proto, l7)
                .verdict
                .is_allow()
        };
        if q(&baseline) && !q(&candidate) {
            naive_denied += 1;
        }
    }
    let naive = t.elapsed();

    let t = Instant::now();
    let mut replay = Replay::new(&candidate, Some(&baseline));
    for l in &lines {
        replay.push_line(l);
    }
    let report = replay.finish();
    let ours = t.elapsed();
    assert_eq!(
        report.counts.newly_denied, naive_denied,
        "both see the same changes"
    );
    assert_eq!(report.counts.flows, n);

    let rate = |d: std::time::Duration| n as f64 / d.as_secs_f64();
    println!(
        "policy replay of {n} recorded flows (adr-003 production, the POST rule removed), {} run:",
        if full { "full" } else { "smoke" }
    );
    println!(
        "  naive (parse, judge both policy sets, every line)   {:>12.0} flows/s",
        rate(naive)
    );
    println!(
        "  mcnet Replay (each distinct flow judged once)       {:>12.0} flows/s   {:.1}× naive",
        rate(ours),
        naive.as_secs_f64() / ours.as_secs_f64()
    );
    println!(
        "  {} newly denied in {} groups, {} distinct flows",
        report.counts.newly_denied,
        report.changes.len(),
        report.counts.distinct
    );
}
