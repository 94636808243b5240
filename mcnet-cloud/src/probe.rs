//! SLO probes between two endpoints: TCP connection success and rate,
//! request/response latency (p50, p95, p99), throughput, and UDP loss,
//! judged against the ADR's success metrics.
//!
//! The far end runs [`responder`]: a TCP and UDP echo on one port. Probes
//! go only to the target the user names.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

/// The ADR's success metrics.
#[derive(Clone, Debug, Serialize)]
pub struct Slo {
    /// p95 latency must stay under this (ms).
    pub p95_ms: f64,
    /// Packet loss must stay under this (percent).
    pub loss_percent: f64,
    /// Connection success must stay over this (percent).
    pub connect_success_percent: f64,
}

impl Default for Slo {
    fn default() -> Self {
        Slo {
            p95_ms: 50.0,
            loss_percent: 0.01,
            connect_success_percent: 99.9,
        }
    }
}

/// How much to probe.
#[derive(Clone, Debug)]
pub struct ProbeConfig {
    /// The responder.
    pub target: SocketAddr,
    /// TCP connections to attempt.
    pub connects: u32,
    /// Request/response round trips on one connection.
    pub requests: u32,
    /// Bytes for the throughput test (sent and echoed back).
    pub bulk_bytes: usize,
    /// UDP datagrams for the loss test.
    pub datagrams: u32,
    /// Time allowed for any single step.
    pub timeout: Duration,
}

impl ProbeConfig {
    /// Defaults for `target`: 1,000 connections, 10,000 requests, 32 MiB, 20,000 datagrams.
    pub fn new(target: SocketAddr) -> ProbeConfig {
        ProbeConfig {
            target,
            connects: 1000,
            requests: 10_000,
            bulk_bytes: 32 << 20,
            datagrams: 20_000,
            timeout: Duration::from_secs(2),
        }
    }
}

/// What a probe measured.
#[derive(Clone, Debug, Serialize)]
pub struct ProbeReport {
    /// Target.
    pub target: SocketAddr,
    /// Connections attempted.
    pub connects_attempted: u32,
    /// Connections that succeeded.
    pub connects_ok: u32,
    /// Successful connections per second.
    pub connects_per_second: f64,
    /// Round-trip latency, ms.
    pub latency_p50_ms: f64,
    /// Round-trip latency, ms.
    pub latency_p95_ms: f64,
    /// Round-trip latency, ms.
    pub latency_p99_ms: f64,
    /// Echo throughput, megabits per second (one direction).
    pub throughput_mbps: f64,
    /// UDP datagrams sent: fewer than asked once a whole window in a row
    /// went unanswered (the path is down).
    pub datagrams_sent: u32,
    /// UDP datagrams echoed back.
    pub datagrams_received: u32,
    /// Loss, percent.
    pub loss_percent: f64,
    /// Each SLO: name → (measured, limit, met).
    pub slo: Vec<SloResult>,
    /// Whether every SLO is met.
    pub pass: bool,
}

/// One SLO check.
#[derive(Clone, Debug, Serialize)]
pub struct SloResult {
    /// What.
    pub name: &'static str,
    /// Measured.
    pub measured: f64,
    /// The limit.
    pub limit: f64,
    /// Whether it is met.
    pub met: bool,
}

/// Serves TCP and UDP echo on `addr` (what probes measure against).
pub async fn responder(
    addr: SocketAddr,
) -> std::io::Result<(SocketAddr, Vec<tokio::task::JoinHandle<()>>)> {
    let tcp = TcpListener::bind(addr).await?;
    let bound = tcp.local_addr()?;
    let udp = Arc::new(UdpSocket::bind(bound).await?);
    let mut tasks = vec![tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = tcp.accept().await else {
                continue;
            };
            let _ = s.set_nodelay(true);
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    })];
    tasks.push(tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        loop {
            if let Ok((n, from)) = udp.recv_from(&mut buf).await {
                let _ = udp.send_to(&buf[..n], from).await;
            }
        }
    }));
    Ok((bound, tasks))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

/// Datagrams in flight at once during the loss test.
const LOSS_WINDOW: usize = 64;

/// Sends `n` numbered datagrams over the connected `udp`, keeping at most
/// [`LOSS_WINDOW`] unanswered, and counts the echoes. A datagram not echoed
/// within `timeout` is lost: its slot frees and a late echo is ignored.
/// After a whole window in a row is lost the path is down and sending stops.
/// Returns (sent, echoed).
async fn count_echoes(udp: &UdpSocket, n: u32, timeout: Duration) -> std::io::Result<(u32, u32)> {
    use std::collections::VecDeque;

    let mut sent_at: Vec<Option<Instant>> = vec![None; n as usize];
    let mut order: VecDeque<u32> = VecDeque::with_capacity(LOSS_WINDOW);
    let (mut next, mut in_flight, mut received) = (0u32, 0usize, 0u32);
    let mut lost_in_a_row = 0usize;
    let mut b = [0u8; 64];
    loop {
        // Retire answered datagrams and expire the overdue ones, oldest first.
        while let Some(&i) = order.front() {
            match sent_at[i as usize] {
                None => {
                    order.pop_front();
                }
                Some(at) if at.elapsed() >= timeout => {
                    sent_at[i as usize] = None;
                    in_flight -= 1;
                    lost_in_a_row += 1;
                    order.pop_front();
                }
                Some(_) => break,
            }
        }
        if next < n && in_flight < LOSS_WINDOW && lost_in_a_row < LOSS_WINDOW {
            let mut d = [0u8; 32];
            d[..4].copy_from_slice(&next.to_be_bytes());
            udp.send(&d).await?;
            sent_at[next as usize] = Some(Instant::now());
            order.push_back(next);
            in_flight += 1;
            next += 1;
            continue;
        }
        let Some(oldest) = order.front().and_then(|&i| sent_at[i as usize]) else {
            break; // all sent, none outstanding
        };
        let deadline = tokio::time::Instant::from_std(oldest + timeout);
        if let Ok(Ok(len)) = tokio::time::timeout_at(deadline, udp.recv(&mut b)).await {
            if len >= 4 {
                let i = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
                if sent_at.get(i).is_some_and(Option::is_some) {
                    sent_at[i] = None;
                    in_flight -= 1;
                    received += 1;
                    lost_in_a_row = 0;
                }
            }
        }
    }
    Ok((next, received))
}

/// Runs every probe against `cfg.target` and judges the results against `slo`.
pub async fn run(cfg: &ProbeConfig, slo: &Slo) -> std::io::Result<ProbeReport> {
    let t = cfg.timeout;
    // Connections.
    let t0 = Instant::now();
    let mut ok = 0;
    for _ in 0..cfg.connects {
        if let Ok(Ok(s)) = tokio::time::timeout(t, TcpStream::connect(cfg.target)).await {
            ok += 1;
            drop(s);
        }
    }
    let connects_per_second = f64::from(ok) / t0.elapsed().as_secs_f64().max(1e-9);

    // Latency.
    let mut s = tokio::time::timeout(t, TcpStream::connect(cfg.target))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect"))??;
    s.set_nodelay(true)?;
    let mut lat = Vec::with_capacity(cfg.requests as usize);
    let req = [0x5au8; 64];
    let mut resp = [0u8; 64];
    for _ in 0..cfg.requests {
        let t1 = Instant::now();
        s.write_all(&req).await?;
        tokio::time::timeout(t, s.read_exact(&mut resp))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "response"))??;
        lat.push(t1.elapsed().as_secs_f64() * 1e3);
    }
    lat.sort_by(|a, b| a.total_cmp(b));

    // Throughput: write and read back at once.
    let bulk = TcpStream::connect(cfg.target).await?;
    bulk.set_nodelay(true)?;
    let (mut r, mut w) = bulk.into_split();
    let total = cfg.bulk_bytes;
    let t2 = Instant::now();
    let writer = tokio::spawn(async move {
        let chunk = vec![0xa5u8; 64 * 1024];
        let mut sent = 0;
        while sent < total {
            let n = chunk.len().min(total - sent);
            if w.write_all(&chunk[..n]).await.is_err() {
                break;
            }
            sent += n;
        }
    });
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0;
    while got < total {
        match tokio::time::timeout(t, r.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got += n,
            _ => break,
        }
    }
    let _ = writer.await;
    let throughput_mbps = got as f64 * 8.0 / t2.elapsed().as_secs_f64().max(1e-9) / 1e6;

    // Loss: numbered datagrams with at most `LOSS_WINDOW` in flight, so the
    // probe measures the path and never overflows its own socket buffers.
    let udp = UdpSocket::bind(if cfg.target.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    })
    .await?;
    udp.connect(cfg.target).await?;
    let (n, received) = count_echoes(&udp, cfg.datagrams, t).await?;
    let loss_percent = if n == 0 {
        0.0
    } else {
        f64::from(n - received) * 100.0 / f64::from(n)
    };

    let p95 = percentile(&lat, 0.95);
    let success = if cfg.connects == 0 {
        100.0
    } else {
        f64::from(ok) * 100.0 / f64::from(cfg.connects)
    };
    let checks = vec![
        SloResult {
            name: "latency p95 (ms) <",
            measured: p95,
            limit: slo.p95_ms,
            met: p95 < slo.p95_ms,
        },
        SloResult {
            name: "packet loss (%) <",
            measured: loss_percent,
            limit: slo.loss_percent,
            met: loss_percent < slo.loss_percent,
        },
        SloResult {
            name: "connection success (%) >",
            measured: success,
            limit: slo.connect_success_percent,
            met: success > slo.connect_success_percent,
        },
    ];
    Ok(ProbeReport {
        target: cfg.target,
        connects_attempted: cfg.connects,
        connects_ok: ok,
        connects_per_second,
        latency_p50_ms: percentile(&lat, 0.50),
        latency_p95_ms: p95,
        latency_p99_ms: percentile(&lat, 0.99),
        throughput_mbps,
        datagrams_sent: n,
        datagrams_received: received,
        loss_percent,
        pass: checks.iter().all(|c| c.met),
        slo: checks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.50), 50.0);
        assert_eq!(percentile(&v, 0.95), 95.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&[7.0], 0.99), 7.0);
    }

    #[tokio::test]
    async fn the_loss_test_counts_dropped_datagrams_and_stops_when_the_path_is_down() {
        // A responder that drops every tenth datagram.
        let lossy = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let at = lossy.local_addr().unwrap();
        let echo = tokio::spawn(async move {
            let mut b = [0u8; 64];
            while let Ok((len, from)) = lossy.recv_from(&mut b).await {
                let i = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
                if i % 10 != 9 {
                    let _ = lossy.send_to(&b[..len], from).await;
                }
            }
        });
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        udp.connect(at).await.unwrap();
        let (sent, echoed) = count_echoes(&udp, 1000, Duration::from_millis(300))
            .await
            .unwrap();
        assert_eq!((sent, echoed), (1000, 900));
        echo.abort();

        // A socket that never answers: one window goes out, then sending stops.
        let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        udp.connect(silent.local_addr().unwrap()).await.unwrap();
        let (sent, echoed) = count_echoes(&udp, 1000, Duration::from_millis(100))
            .await
            .unwrap();
        assert_eq!((sent as usize, echoed), (LOSS_WINDOW, 0));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_loopback_probe_meets_the_adr_slos_and_a_dead_target_does_not() {
        let (addr, _t) = responder("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let mut cfg = ProbeConfig::new(addr);
        cfg.connects = 200;
        cfg.requests = 1000;
        cfg.bulk_bytes = 4 << 20;
        cfg.datagrams = 2000;
        let r = run(&cfg, &Slo::default()).await.unwrap();
        assert_eq!(r.connects_ok, 200);
        assert_eq!(r.datagrams_received, 2000, "{r:?}");
        assert!(r.throughput_mbps > 0.0 && r.latency_p50_ms <= r.latency_p99_ms);
        assert!(r.pass, "{r:?}");

        // A port nobody listens on: every connection fails, so the SLO fails.
        let dead = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let mut cfg = ProbeConfig::new(dead);
        cfg.connects = 20;
        let e = run(&cfg, &Slo::default()).await;
        assert!(
            e.is_err(),
            "no latency can be measured against a dead target"
        );
    }
}
