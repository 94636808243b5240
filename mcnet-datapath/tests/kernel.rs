//! The kernel programs, run through BPF_PROG_TEST_RUN, give the policy
//! engine's verdict for every packet of the conformance suites (each pod
//! in turn bound to the loopback interface, each query's side run through
//! the program of its direction). Needs root; skipped otherwise.

mod common;

use std::net::IpAddr;

use mcnet_core::policy::eval::Decision;
use mcnet_core::policy::Compiled;
use mcnet_datapath::state::{Binding, DesiredState};
use mcnet_datapath::{testrun, Datapath, FROM_POD, TO_POD};

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

fn v4(ip: IpAddr) -> Option<[u8; 4]> {
    match ip {
        IpAddr::V4(a) => Some(a.octets()),
        IpAddr::V6(_) => None,
    }
}

#[test]
fn kernel_verdicts_equal_the_engine() {
    if cfg!(mcnet_ebpf_stub) || !is_root() {
        eprintln!("skipped: needs root and the real eBPF object");
        return;
    }
    let mut dp = Datapath::load().expect("load");
    let from_pod = dp.program_fd(FROM_POD).unwrap();
    let to_pod = dp.program_fd(TO_POD).unwrap();
    let mut sport: u16 = 1024;
    let (mut runs, mut failures) = (0usize, Vec::new());
    for (name, m, queries) in common::cases() {
        let c = Compiled::new(&m);
        for (pi, pod) in m.inventory.pods.iter().enumerate() {
            if pod.cluster != c.local_cluster || pod.ips.is_empty() {
                continue;
            }
            let desired = DesiredState::from_compiled(
                &c,
                &[Binding {
                    ifindex: 1,
                    pod: pod.key(),
                }],
            )
            .unwrap();
            dp.sync(&desired).unwrap();
            for (qi, q) in queries.iter().enumerate() {
                if q.http.is_some() {
                    continue;
                }
                let resolve =
                    |e: &mcnet_core::policy::QueryEndpoint| -> Option<(Option<usize>, IpAddr)> {
                        match (&e.pod, &e.ip) {
                            (Some(p), _) => {
                                let i = m.inventory.pod(p)?;
                                Some((Some(i), *m.inventory.pods[i].ips.first()?))
                            }
                            (_, Some(ip)) => {
                                let ip: IpAddr = ip.parse().ok()?;
                                Some((
                                    m.inventory.pods.iter().position(|p| p.ips.contains(&ip)),
                                    ip,
                                ))
                            }
                            _ => None,
                        }
                    };
                let (Some((src_pod, src_ip)), Some((dst_pod, dst_ip))) =
                    (resolve(&q.from), resolve(&q.to))
                else {
                    continue;
                };
                let (Some(s4), Some(d4)) = (v4(src_ip), v4(dst_ip)) else {
                    continue;
                };
                let out = c.eval(q).unwrap();
                let proto = common::proto_number(q.protocol);
                for (is_src, prog, side) in
                    [(true, from_pod, &out.egress), (false, to_pod, &out.ingress)]
                {
                    let me = if is_src { src_pod } else { dst_pod };
                    if me != Some(pi) {
                        continue;
                    }
                    sport = if sport == u16::MAX { 1024 } else { sport + 1 };
                    let pkt = testrun::ipv4_packet(s4, d4, proto, sport, q.port);
                    let r = testrun::run(prog, &pkt, 1, 0).expect("BPF_PROG_TEST_RUN");
                    runs += 1;
                    let kernel = if r.retval == 0 {
                        Decision::Allow
                    } else {
                        Decision::Deny
                    };
                    if kernel != side.verdict {
                        failures.push(format!(
                            "{name} query {qi} ({}): engine {} but kernel {} ({})",
                            if is_src { "egress" } else { "ingress" },
                            side.verdict,
                            kernel,
                            out.explanation
                        ));
                    }
                }
            }
        }
    }
    eprintln!("{runs} packets through the kernel");
    assert!(runs > 10_000, "only {runs} packets were run");
    assert!(
        failures.is_empty(),
        "{} mismatches, first: {:#?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
}
