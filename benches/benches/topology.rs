//! Validation at scale: 1,000 and 10,000 networks (with a tenth as many
//! clusters). Criterion measures both; a summary then prints the medians and
//! the growth ratio, which stays near 10× (linearithmic overlap detection),
//! far from the 100× a quadratic check would show.

use std::time::{Duration, Instant};

use criterion::{criterion_group, BenchmarkId, Criterion};
use mcnet_core::topology::{synth::synthetic, validate};

fn bench_validate(c: &mut Criterion) {
    let mut g = c.benchmark_group("topology/validate");
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    for n in [1_000usize, 10_000] {
        let t = synthetic(n, n / 10);
        g.bench_with_input(BenchmarkId::from_parameter(n), &t, |b, t| {
            b.iter(|| validate(t))
        });
    }
    g.finish();
}

fn median_secs(n: usize, runs: usize) -> f64 {
    let t = synthetic(n, n / 10);
    let report = validate(&t);
    assert!(
        report.valid,
        "the synthetic topology must be valid: {:?}",
        report.errors.first()
    );
    let mut samples: Vec<f64> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            std::hint::black_box(validate(&t));
            start.elapsed().as_secs_f64()
        })
        .collect();
    samples.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    samples[runs / 2]
}

fn summary() {
    let small = median_secs(1_000, 7);
    let large = median_secs(10_000, 7);
    println!();
    println!("topology/validate summary (median of 7 runs each, same process):");
    println!(
        "  1,000 networks / 100 clusters:     {:>9.2} ms",
        small * 1e3
    );
    println!(
        "  10,000 networks / 1,000 clusters:  {:>9.2} ms   (target < 1000 ms)",
        large * 1e3
    );
    println!(
        "  growth for 10x the input:          {:>9.1}x   (linear 10x, quadratic 100x)",
        large / small
    );
}

criterion_group!(benches, bench_validate);

fn main() {
    benches();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
    // `cargo test --benches` runs this binary without --bench: keep that quick.
    if std::env::args().any(|a| a == "--bench") {
        summary();
    }
}
