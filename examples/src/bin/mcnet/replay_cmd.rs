//! `mcnet policy replay`: recorded flows against a candidate policy set.

use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use mcnet_core::policy::replay::{Change, Replay, ReplayReport};
use mcnet_core::policy::Compiled;

use crate::output::{print_json, Format};

#[derive(Args)]
pub struct ReplayArgs {
    /// Recorded flows: JSON lines, mcnet's (`datapath enforce --flows`) or
    /// Hubble's (`hubble observe -o jsonpb`); `-` reads standard input.
    #[arg(long = "flows", value_name = "FILE", required = true)]
    pub flows: Vec<String>,
    /// The candidate policies, with the pods and namespaces they select.
    #[arg(long = "manifests", value_name = "FILE", required = true)]
    pub manifests: Vec<String>,
    /// The policies in force when the flows were recorded; without them,
    /// a flow's old verdict is the one it was recorded with.
    #[arg(long = "baseline", value_name = "FILE")]
    pub baseline: Vec<String>,
    /// Also write the counts by outcome as Prometheus metrics
    /// (`mcnet_replay_flows{outcome}`) to this file, atomically.
    #[arg(long, value_name = "FILE")]
    pub metrics_file: Option<String>,
    /// Output format.
    #[arg(long, short = 'O', value_enum, default_value_t = Format::Text)]
    pub output: Format,
}

/// A line at most this long is read (a longer one is malformed).
const MAX_LINE: u64 = 1 << 20;

pub fn run(a: &ReplayArgs) -> anyhow::Result<ExitCode> {
    let Some(candidate) = crate::policy_cmd::load(&a.manifests)? else {
        return Ok(ExitCode::from(2));
    };
    let candidate = Compiled::new(&candidate);
    let baseline = if a.baseline.is_empty() {
        None
    } else {
        let Some(b) = crate::policy_cmd::load(&a.baseline)? else {
            return Ok(ExitCode::from(2));
        };
        Some(Compiled::new(&b))
    };
    let mut replay = Replay::new(&candidate, baseline.as_ref());
    let tty = std::io::stderr().is_terminal();
    let started = Instant::now();
    let mut shown = Instant::now();
    for file in &a.flows {
        let reader: Box<dyn Read> = if file == "-" {
            Box::new(std::io::stdin())
        } else {
            Box::new(std::fs::File::open(file).map_err(|e| anyhow::anyhow!("--flows {file}: {e}"))?)
        };
        let total = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
        let mut r = BufReader::with_capacity(1 << 16, reader);
        let (mut line, mut read) = (Vec::new(), 0u64);
        loop {
            line.clear();
            let n = (&mut r).take(MAX_LINE).read_until(b'\n', &mut line)?;
            if n == 0 {
                break;
            }
            read += n as u64;
            if !line.ends_with(b"\n") && n as u64 == MAX_LINE {
                // Skip the rest of an over-long line; it counts as malformed.
                let mut rest = Vec::new();
                read += r.read_until(b'\n', &mut rest)? as u64;
                replay.push_line("{over-long line}");
                continue;
            }
            match std::str::from_utf8(&line) {
                Ok(text) => replay.push_line(text),
                Err(_) => replay.push_line("{not UTF-8}"),
            }
            if tty && shown.elapsed() > Duration::from_millis(200) {
                shown = Instant::now();
                let pct = (read * 100)
                    .checked_div(total)
                    .map(|p| format!(" {p:>3}%"))
                    .unwrap_or_default();
                let secs = started.elapsed().as_secs_f64().max(1e-3);
                let flows = replay.counts().lines;
                eprint!(
                    "\r  {file}{pct}  {flows} lines, {:.0}/s   ",
                    flows as f64 / secs
                );
                let _ = std::io::stderr().flush();
            }
        }
    }
    if tty {
        eprint!("\r{:60}\r", "");
    }
    let report = replay.finish();
    let denied = report.counts.newly_denied > 0;
    if let Some(path) = &a.metrics_file {
        crate::output::write_atomic(path, metrics(&report).as_bytes())?;
    }
    match a.output {
        Format::Json => print_json(&report)?,
        Format::Text => print(&report, started.elapsed()),
    }
    Ok(if denied {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The counts as a Prometheus text exposition.
fn metrics(r: &ReplayReport) -> String {
    let c = &r.counts;
    let mut out = String::from(
        "# HELP mcnet_replay_flows Recorded flow lines replayed against a candidate policy set, by outcome.\n\
         # TYPE mcnet_replay_flows gauge\n",
    );
    for (outcome, n) in [
        ("unchanged", c.unchanged),
        ("newly-denied", c.newly_denied),
        ("newly-allowed", c.newly_allowed),
        ("unknown-before", c.unknown_before),
        ("reply", c.replies),
        ("proxy-leg", c.proxy_legs),
        ("not-a-flow", c.not_flows),
        ("malformed", c.malformed),
    ] {
        out.push_str(&format!(
            "mcnet_replay_flows{{outcome=\"{outcome}\"}} {n}\n"
        ));
    }
    out
}

fn print(r: &ReplayReport, took: Duration) {
    let c = &r.counts;
    println!(
        "{} lines, {} flows judged ({} distinct) in {:.2?}: {} unchanged, {} newly denied, {} newly allowed; skipped {} replies, {} proxy legs, {} non-flow lines, {} malformed{}",
        c.lines,
        c.flows,
        c.distinct,
        took,
        c.unchanged,
        c.newly_denied,
        c.newly_allowed,
        c.replies,
        c.proxy_legs,
        c.not_flows,
        c.malformed,
        if c.unknown_before > 0 {
            format!(", {} with no old verdict", c.unknown_before)
        } else {
            String::new()
        }
    );
    for m in &r.malformed {
        println!("  malformed: {m}");
    }
    for ch in &r.changes {
        let what = match ch.change {
            Change::NewlyDenied => "DENIED now",
            Change::NewlyAllowed => "allowed now",
        };
        let http = ch
            .http
            .as_ref()
            .map(|(m, p)| format!(" {m} {p}"))
            .unwrap_or_default();
        println!(
            "\n{what}: {} → {}:{}/{:?}{http}  ({} flow{}, first {}, last {})",
            ch.from,
            ch.to,
            ch.port,
            ch.protocol,
            ch.count,
            if ch.count == 1 { "" } else { "s" },
            ch.first_seen,
            ch.last_seen
        );
        match (&ch.rule, &ch.policy) {
            (Some(rule), _) => println!("  decided by {rule}"),
            (None, Some(p)) => println!("  no rule allows it; isolated by {p}"),
            _ => {}
        }
        if let Some(w) = &ch.was {
            println!("  was: {w}");
        }
        println!("  {}", ch.explanation);
    }
}
