//! The policy engine at scale.
//!
//! - one query after compilation (target < 1 µs), against the naive
//!   reference evaluator that walks every policy for every query;
//! - compile plus the full reachability matrix for 10,000 pods, 1,000
//!   policies and 2 ports (target < 2 s and < 1 GiB), with the number of
//!   identities printed, against the naive evaluator on the same matrix
//!   (measured on a sample of pairs and scaled, since running it over all
//!   10⁸ pairs would take hours).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion};
use mcnet_benches::synthetic_cluster;
use mcnet_core::policy::analysis::{self, Matrix, PortProto};
use mcnet_core::policy::reference::{self, Party};
use mcnet_core::policy::{Compiled, Manifests, NumericIdentity, Proto};

const NAMESPACES: usize = 100;
const APPS: usize = 10;
const REPLICAS: usize = 10;

fn load() -> Manifests {
    let text = synthetic_cluster(NAMESPACES, APPS, REPLICAS);
    Manifests::parse_str(&text).expect("the synthetic manifests are valid")
}

fn ports() -> [PortProto; 2] {
    [
        PortProto {
            port: 8080,
            proto: Proto::Tcp,
        },
        PortProto {
            port: 9090,
            proto: Proto::Tcp,
        },
    ]
}

fn pairs(m: &Manifests, n: usize) -> Vec<(usize, usize)> {
    // A deterministic spread of pod pairs.
    let p = m.inventory.pods.len();
    (0..n)
        .map(|i| ((i * 7919) % p, (i * 104_729 + 13) % p))
        .collect()
}

fn bench_query(c: &mut Criterion) {
    let m = load();
    let compiled = Compiled::new(&m);
    let sample = pairs(&m, 1024);
    let ids: Vec<(NumericIdentity, NumericIdentity)> = sample
        .iter()
        .map(|&(a, b)| (compiled.pod_identity[a], compiled.pod_identity[b]))
        .collect();
    let mut g = c.benchmark_group("policy/query");
    g.measurement_time(Duration::from_secs(5));
    g.bench_function("compiled verdict", |b| {
        let mut i = 0;
        b.iter(|| {
            let (s, d) = ids[i % ids.len()];
            i += 1;
            black_box(compiled.verdict(s, d, 8080, Proto::Tcp))
        })
    });
    g.bench_function("naive reference", |b| {
        let mut i = 0;
        b.iter(|| {
            let (s, d) = sample[i % sample.len()];
            i += 1;
            let (a, z) = (
                Party::Pod(&m.inventory.pods[s]),
                Party::Pod(&m.inventory.pods[d]),
            );
            black_box(reference::eval(&m, &a, &z, 8080, Proto::Tcp, None))
        })
    });
    g.finish();
}

fn bench_matrix(c: &mut Criterion) {
    let m = load();
    let mut g = c.benchmark_group("policy/compile+matrix");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    g.bench_function("10k pods, 1k policies, 2 ports", |b| {
        b.iter(|| {
            let compiled = Compiled::new(&m);
            black_box(Matrix::compute(&compiled, &ports()).allowed_pairs())
        })
    });
    g.finish();
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<f64>().ok())
        })
        .map(|kib| kib / 1024.0)
        .unwrap_or(f64::NAN)
}

fn summary() {
    let t = Instant::now();
    let m = load();
    let parse = t.elapsed();
    let t = Instant::now();
    let compiled = Compiled::new(&m);
    let compile = t.elapsed();
    let t = Instant::now();
    let mx = Matrix::compute(&compiled, &ports());
    let allowed = mx.allowed_pairs();
    let matrix = t.elapsed();
    let stats = analysis::stats(&compiled);

    // Per query: compiled vs naive, on the same pairs.
    let sample = pairs(&m, 20_000);
    let t = Instant::now();
    for &(a, b) in &sample {
        black_box(compiled.verdict(
            compiled.pod_identity[a],
            compiled.pod_identity[b],
            8080,
            Proto::Tcp,
        ));
    }
    let per_compiled = t.elapsed().as_secs_f64() / sample.len() as f64;
    let naive_sample = &sample[..500];
    let t = Instant::now();
    let mut agree = 0;
    for &(a, b) in naive_sample {
        let (x, y) = (
            Party::Pod(&m.inventory.pods[a]),
            Party::Pod(&m.inventory.pods[b]),
        );
        let naive = reference::eval(&m, &x, &y, 8080, Proto::Tcp, None);
        if naive
            == compiled.verdict(
                compiled.pod_identity[a],
                compiled.pod_identity[b],
                8080,
                Proto::Tcp,
            )
        {
            agree += 1;
        }
    }
    let per_naive = t.elapsed().as_secs_f64() / naive_sample.len() as f64;
    let pods = m.inventory.pods.len() as f64;
    let naive_matrix = per_naive * pods * pods * 2.0;
    let ours = (compile + matrix).as_secs_f64();

    println!();
    println!(
        "policy summary ({} pods, {} policies, 2 ports; one process):",
        stats.pods, stats.policies
    );
    println!(
        "  identities: {} pod identities, {} CIDR identities, {} map entries",
        stats.pod_identities, stats.cidr_identities, stats.entries
    );
    println!("  parse {:.0} ms, compile {:.0} ms, full matrix {:.0} ms  → compile+matrix {:.2} s (target < 2 s)", parse.as_secs_f64() * 1e3, compile.as_secs_f64() * 1e3, matrix.as_secs_f64() * 1e3, ours);
    println!(
        "  allowed pod pairs: {} on 8080/TCP, {} on 9090/TCP",
        allowed[0], allowed[1]
    );
    println!("  peak RSS {:.0} MiB (target < 1024 MiB)", peak_rss_mib());
    println!("  one query: compiled {:.0} ns (target < 1000 ns), naive {:.1} µs → speedup {:.0}x ({agree}/{} sampled verdicts agree)", per_compiled * 1e9, per_naive * 1e6, per_naive / per_compiled, naive_sample.len());
    println!("  full matrix, naive (scaled from {} measured pairs): {:.0} s vs compiled {:.2} s → speedup {:.0}x", naive_sample.len(), naive_matrix, ours, naive_matrix / ours);
}

criterion_group!(benches, bench_query, bench_matrix);

fn main() {
    if std::env::args().any(|a| a == "--bench") {
        // Summary first, so that its peak RSS reflects one compile + matrix.
        summary();
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
