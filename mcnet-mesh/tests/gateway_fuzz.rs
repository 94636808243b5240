//! The gateway's handshake path against hostile peers, over loopback: random
//! bytes, a real ClientHello mutated, truncated, re-fragmented or with its
//! lengths rewritten, oversized records, and peers that half-close, vanish
//! or go silent. Every such connection is closed within the handshake
//! timeout, counted once as a handshake failure, and forwards nothing; the
//! caps close what is over them at once; and a real mTLS client still gets
//! through afterwards.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mcnet_mesh::gateway::{self, GatewayConfig, GatewayHandle, GatewayLimits};
use mcnet_mesh::identity::{
    IssuerCa, TrustAnchor, TrustBundle, WorkloadId, ANCHOR_LIFETIME, ISSUER_LIFETIME,
    WORKLOAD_LIFETIME,
};
use mcnet_mesh::tls::{Authorization, HandshakeFailure, TlsIdentity};
use mcnet_mesh::Error;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

const TD: &str = "cluster.local";
const GATEWAY_ID: &str =
    "linkerd-gateway.linkerd-multicluster.serviceaccount.identity.linkerd.cluster.local";
const FRONTEND_ID: &str = "frontend.production.serviceaccount.identity.linkerd.cluster.local";

/// What the gateway may take beyond its handshake timeout to close a
/// connection, on a loaded two-core machine.
const SLACK: Duration = Duration::from_secs(2);

struct Pki {
    anchor: TrustAnchor,
    issuer: IssuerCa,
}

impl Pki {
    fn new() -> Pki {
        let anchor = TrustAnchor::generate(TD, ANCHOR_LIFETIME).unwrap();
        let issuer = anchor.issue_issuer(TD, ISSUER_LIFETIME).unwrap();
        Pki { anchor, issuer }
    }

    fn identity(&self, ns: &str, sa: &str) -> TlsIdentity {
        let id = WorkloadId::new(ns, sa, TD).unwrap();
        TlsIdentity::new(
            self.issuer.issue(&id, WORKLOAD_LIFETIME).unwrap(),
            TrustBundle::new(&self.anchor.ca.cert_pem),
        )
        .unwrap()
    }
}

/// An echo target that counts every byte it receives.
async fn echo(received: Arc<AtomicU64>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                continue;
            };
            let received = received.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            received.fetch_add(n as u64, Ordering::Relaxed);
                            if s.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

struct Setup {
    gw: GatewayHandle,
    client: TlsIdentity,
    /// Bytes the echo target received.
    target_bytes: Arc<AtomicU64>,
    handshake_timeout: Duration,
}

async fn setup(handshake_timeout: Duration, limits: GatewayLimits) -> Setup {
    let pki = Pki::new();
    let target_bytes = Arc::new(AtomicU64::new(0));
    let target = echo(target_bytes.clone()).await;
    let gw = gateway::start_with(
        pki.identity("linkerd-multicluster", "linkerd-gateway"),
        GatewayConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            target,
            routes: Default::default(),
            probe: None,
            authz: Authorization::allow_only(vec![FRONTEND_ID.into()]),
            handshake_timeout,
        },
        limits,
    )
    .await
    .unwrap();
    Setup {
        gw,
        client: pki.identity("production", "frontend"),
        target_bytes,
        handshake_timeout,
    }
}

/// A real mTLS client through the gateway to the echo target.
async fn echoes(client: &TlsIdentity, gw: SocketAddr, msg: &[u8]) -> Result<(), String> {
    let tcp = TcpStream::connect(gw).await.map_err(|e| e.to_string())?;
    let mut tls = client
        .connect(tcp, GATEWAY_ID)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tls.write_all(msg)
        .await
        .map_err(|e| format!("write: {e}"))?;
    tls.flush().await.map_err(|e| format!("flush: {e}"))?;
    let mut buf = vec![0u8; msg.len()];
    tls.read_exact(&mut buf)
        .await
        .map_err(|e| format!("read: {e}"))?;
    if buf == msg {
        Ok(())
    } else {
        Err(format!("echoed {buf:?}"))
    }
}

/// The first flight of a real rustls client with a mesh certificate: one
/// TLS record holding its ClientHello.
async fn record_client_hello(client: &TlsIdentity) -> Vec<u8> {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let client = client.clone();
    let c = tokio::spawn(async move {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let _ = client.connect(tcp, GATEWAY_ID).await;
    });
    let (mut s, _) = l.accept().await.unwrap();
    let mut header = [0u8; 5];
    s.read_exact(&mut header).await.unwrap();
    assert_eq!(header[0], 0x16, "a handshake record");
    let len = u16::from_be_bytes([header[3], header[4]]) as usize;
    let mut hello = header.to_vec();
    hello.resize(5 + len, 0);
    s.read_exact(&mut hello[5..]).await.unwrap();
    assert_eq!(hello[5], 0x01, "a ClientHello");
    drop(s);
    c.await.unwrap();
    hello
}

/// How the hostile peer ends.
#[derive(Clone, Copy, Debug)]
enum End {
    /// Shuts its write side and waits for the gateway to close.
    HalfClose,
    /// Closes at once with a reset.
    Reset,
    /// Sends nothing more and waits for the gateway to close.
    Silent,
}

/// What the hostile peer sends, built from the recorded ClientHello.
#[derive(Clone, Debug)]
enum Bytes {
    Random(Vec<u8>),
    /// The ClientHello with bytes overwritten at (index, value).
    Mutated(Vec<(prop::sample::Index, u8)>),
    /// The ClientHello cut short.
    Truncated(prop::sample::Index),
    /// The ClientHello with a big-endian u16 written at an offset: record,
    /// handshake, extension and vector lengths among them.
    Length(prop::sample::Index, u16),
    /// The ClientHello's handshake message split over records of these
    /// sizes (a valid fragmentation), then `tail` appended.
    Fragmented(Vec<u8>, Vec<u8>),
    /// A record of `len` (over the 16 KiB plaintext limit or near it) of
    /// content type `kind`, in full.
    Oversized {
        kind: u8,
        len: u16,
        fill: u8,
    },
    /// The ClientHello sent twice, then random bytes.
    Repeated(Vec<u8>),
}

impl Bytes {
    fn build(&self, hello: &[u8]) -> Vec<u8> {
        match self {
            Bytes::Random(b) => b.clone(),
            Bytes::Mutated(edits) => {
                let mut h = hello.to_vec();
                for (i, v) in edits {
                    let i = i.index(h.len());
                    h[i] = *v;
                }
                h
            }
            Bytes::Truncated(i) => hello[..i.index(hello.len())].to_vec(),
            Bytes::Length(i, v) => {
                let mut h = hello.to_vec();
                let i = i.index(h.len() - 1);
                h[i..i + 2].copy_from_slice(&v.to_be_bytes());
                h
            }
            Bytes::Fragmented(sizes, tail) => {
                let body = &hello[5..];
                let mut out = Vec::new();
                let mut at = 0;
                for size in sizes.iter().cycle() {
                    if at == body.len() {
                        break;
                    }
                    let n = (*size as usize).max(1).min(body.len() - at);
                    out.extend_from_slice(&[0x16, 0x03, 0x01]);
                    out.extend_from_slice(&(n as u16).to_be_bytes());
                    out.extend_from_slice(&body[at..at + n]);
                    at += n;
                }
                out.extend_from_slice(tail);
                out
            }
            Bytes::Oversized { kind, len, fill } => {
                let mut out = vec![*kind, 0x03, 0x03];
                out.extend_from_slice(&len.to_be_bytes());
                out.resize(5 + *len as usize, *fill);
                out
            }
            Bytes::Repeated(tail) => {
                let mut out = hello.to_vec();
                out.extend_from_slice(hello);
                out.extend_from_slice(tail);
                out
            }
        }
    }
}

fn attack() -> impl Strategy<Value = (Bytes, End)> {
    let bytes = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..2048).prop_map(Bytes::Random),
        proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)
            .prop_map(Bytes::Mutated),
        any::<prop::sample::Index>().prop_map(Bytes::Truncated),
        (any::<prop::sample::Index>(), any::<u16>()).prop_map(|(i, v)| Bytes::Length(i, v)),
        (
            proptest::collection::vec(1u8..=255, 1..6),
            proptest::collection::vec(any::<u8>(), 0..64)
        )
            .prop_map(|(s, t)| Bytes::Fragmented(s, t)),
        (
            prop::sample::select(vec![0x14u8, 0x15, 0x16, 0x17, 0x18, 0x00, 0xff]),
            prop_oneof![16_000u16..=16_640, 16_641u16..=u16::MAX],
            any::<u8>()
        )
            .prop_map(|(kind, len, fill)| Bytes::Oversized { kind, len, fill }),
        proptest::collection::vec(any::<u8>(), 0..32).prop_map(Bytes::Repeated),
    ];
    // Silent peers cost a handshake timeout each: few of them.
    let end = prop_oneof![
        6 => Just(End::HalfClose),
        3 => Just(End::Reset),
        1 => Just(End::Silent),
    ];
    (bytes, end)
}

/// Reads until the gateway closes; the time that took (from `t0`), or an
/// error if it did not within `within`. Whatever comes back must be TLS
/// records (a ServerHello flight or an alert), never a plaintext echo.
async fn until_closed(
    s: &mut TcpStream,
    t0: Instant,
    within: Duration,
) -> Result<Duration, String> {
    let mut got = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(within, read)
        .await
        .map_err(|_| format!("still open after {within:?}"))?;
    if let Some(b) = got.first() {
        if !matches!(b, 0x15 | 0x16) {
            return Err(format!("answered with a non-TLS byte {b:#04x}"));
        }
    }
    Ok(t0.elapsed())
}

/// Waits until `f()` holds, up to `within`.
async fn eventually(within: Duration, f: impl Fn() -> bool) -> bool {
    let t0 = Instant::now();
    while !f() {
        if t0.elapsed() > within {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    true
}

async fn one_attack(s: &Setup, hello: &[u8], bytes: &Bytes, end: End) -> Result<(), String> {
    let m = &s.gw.metrics;
    let (before, conns) = (
        m.handshake_failures_total(),
        m.connections.load(Ordering::Relaxed),
    );
    let payload = bytes.build(hello);
    let t0 = Instant::now();
    let mut tcp = TcpStream::connect(s.gw.addr)
        .await
        .map_err(|e| e.to_string())?;
    // The gateway may close before all of it is written: that is its right.
    let _ = tcp.write_all(&payload).await;
    let bound = s.handshake_timeout + SLACK;
    match end {
        End::HalfClose => {
            let _ = tcp.shutdown().await;
            until_closed(&mut tcp, t0, bound).await?;
        }
        End::Silent => {
            until_closed(&mut tcp, t0, bound).await?;
        }
        End::Reset => {
            tcp.set_zero_linger().map_err(|e| e.to_string())?;
            drop(tcp);
        }
    }
    // Counted once, as a failed handshake, and nothing reached the target.
    if !eventually(bound, || m.handshake_failures_total() > before).await {
        return Err("the failure was not counted".into());
    }
    tokio::time::sleep(Duration::from_millis(2)).await;
    let counted = m.handshake_failures_total() - before;
    if counted != 1 {
        return Err(format!("counted {counted} failures for one connection"));
    }
    if m.connections.load(Ordering::Relaxed) != conns + 1 {
        return Err("connection count".into());
    }
    if s.target_bytes.load(Ordering::Relaxed) != 0 || m.bytes_in.load(Ordering::Relaxed) != 0 {
        return Err("bytes reached the target".into());
    }
    Ok(())
}

/// 512 hostile peers, one after the other, against one gateway whose
/// handshake timeout is 300 ms: each is closed within the timeout (plus
/// slack), counted once as a handshake failure, and forwards nothing; then
/// a real client gets through.
#[test]
fn hostile_handshakes_are_closed_counted_and_never_forwarded() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let s = rt.block_on(setup(Duration::from_millis(300), GatewayLimits::default()));
    let hello = rt.block_on(record_client_hello(&s.client));
    let mut runner = TestRunner::new(Config {
        cases: 512,
        failure_persistence: None,
        ..Config::default()
    });
    let started = std::time::Instant::now();
    runner
        .run(&attack(), |(bytes, end)| {
            rt.block_on(one_attack(&s, &hello, &bytes, end))
                .map_err(TestCaseError::fail)
        })
        .unwrap();
    rt.block_on(async {
        let m = &s.gw.metrics;
        assert_eq!(m.refused.load(Ordering::Relaxed), 0);
        assert_eq!(m.active.load(Ordering::Relaxed), 0);
        echoes(&s.client, s.gw.addr, b"after the storm")
            .await
            .unwrap();
        assert_eq!(
            s.target_bytes.load(Ordering::Relaxed),
            b"after the storm".len() as u64
        );
        // Every reason the hostile peers can produce.
        for why in [
            HandshakeFailure::Plaintext,
            HandshakeFailure::Io,
            HandshakeFailure::Timeout,
        ] {
            assert!(m.handshake_failures(why) > 0, "none counted as {why}");
        }
    });
    eprintln!("512 hostile handshakes in {:?}", started.elapsed());
}

/// A peer that connects and sends nothing, and one that trickles a real
/// ClientHello a byte every 50 ms (so that no read ever waits long), are
/// both closed when the handshake timeout runs out, and counted as
/// `timeout`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_trickling_peers_are_closed_at_the_handshake_timeout() {
    let timeout = Duration::from_millis(600);
    let s = setup(timeout, GatewayLimits::default()).await;
    let hello = record_client_hello(&s.client).await;
    let t0 = Instant::now();
    let mut silent = TcpStream::connect(s.gw.addr).await.unwrap();
    let mut trickle = TcpStream::connect(s.gw.addr).await.unwrap();
    let feeder = tokio::spawn(async move {
        for b in hello {
            if trickle.write_all(&[b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        trickle
    });
    let closed = until_closed(&mut silent, t0, timeout + SLACK)
        .await
        .unwrap();
    assert!(closed >= timeout, "closed after {closed:?}");
    let mut trickle = feeder.await.unwrap();
    // The feeder stops at its first failed write, after the close.
    let closed = until_closed(&mut trickle, t0, SLACK).await.unwrap();
    assert!(
        closed >= timeout && closed < timeout + SLACK,
        "closed after {closed:?}"
    );
    let m = s.gw.metrics.clone();
    assert!(
        eventually(SLACK, || m.handshake_failures(HandshakeFailure::Timeout)
            == 2)
        .await,
        "timeouts counted: {}",
        m.handshake_failures(HandshakeFailure::Timeout)
    );
    assert_eq!(m.handshake_failures_total(), 2);
    echoes(&s.client, s.gw.addr, b"still serving")
        .await
        .unwrap();
}

/// At `max_handshakes` peers that have not finished a handshake, the next
/// connection is closed at once, unread, and counted as refused; when the
/// slots free up, a real client gets through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_handshake_cap_new_connections_are_closed_at_once() {
    let s = setup(
        Duration::from_secs(30),
        GatewayLimits {
            max_handshakes: 4,
            ..GatewayLimits::default()
        },
    )
    .await;
    let m = s.gw.metrics.clone();
    let mut silent = Vec::new();
    for _ in 0..4 {
        silent.push(TcpStream::connect(s.gw.addr).await.unwrap());
    }
    assert!(eventually(SLACK, || m.connections.load(Ordering::Relaxed) == 4).await);
    let t0 = Instant::now();
    let mut over = TcpStream::connect(s.gw.addr).await.unwrap();
    let closed = until_closed(&mut over, t0, SLACK).await.unwrap();
    assert!(closed < Duration::from_secs(1), "closed after {closed:?}");
    assert_eq!(m.refused.load(Ordering::Relaxed), 1);
    assert_eq!(
        m.handshake_failures_total(),
        0,
        "a refusal is not a handshake"
    );
    // A real client is refused too while the slots are taken...
    assert!(echoes(&s.client, s.gw.addr, b"x").await.is_err());
    assert_eq!(m.refused.load(Ordering::Relaxed), 2);
    // ...and gets through once they are freed.
    drop(silent);
    assert!(eventually(SLACK, || m.handshake_failures(HandshakeFailure::Io) == 4).await);
    echoes(&s.client, s.gw.addr, b"a free slot").await.unwrap();
}

/// At `max_connections` (forwarding ones included), the next connection is
/// closed at once; when one ends, a new client gets through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_connection_cap_new_connections_are_closed_at_once() {
    let s = setup(
        gateway::DEFAULT_HANDSHAKE_TIMEOUT,
        GatewayLimits {
            max_connections: 2,
            ..GatewayLimits::default()
        },
    )
    .await;
    let m = s.gw.metrics.clone();
    let mut open = Vec::new();
    for _ in 0..2 {
        let tcp = TcpStream::connect(s.gw.addr).await.unwrap();
        let mut tls = s.client.connect(tcp, GATEWAY_ID).await.unwrap();
        tls.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await.unwrap();
        open.push(tls);
    }
    assert_eq!(m.active.load(Ordering::Relaxed), 2);
    assert!(echoes(&s.client, s.gw.addr, b"x").await.is_err());
    assert_eq!(m.refused.load(Ordering::Relaxed), 1);
    drop(open.pop());
    assert!(eventually(SLACK, || m.active.load(Ordering::Relaxed) == 1).await);
    // The slot is given back just after the count drops.
    tokio::time::sleep(Duration::from_millis(100)).await;
    echoes(&s.client, s.gw.addr, b"room again").await.unwrap();
}

/// A zero timeout or cap would refuse everyone, a huge request limit would
/// allocate it per connection: both are refused, every field named.
#[tokio::test]
async fn zero_limits_are_refused_naming_the_field() {
    let pki = Pki::new();
    let cfg = |handshake_timeout| GatewayConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        target: "127.0.0.1:9".parse().unwrap(),
        routes: Default::default(),
        probe: None,
        authz: Authorization::default(),
        handshake_timeout,
    };
    let id = pki.identity("linkerd-multicluster", "linkerd-gateway");
    let e = gateway::start(id.clone(), cfg(Duration::ZERO))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Invalid(m) if m.contains("handshake_timeout must be positive")),
        "{e}"
    );
    let e = gateway::start_with(
        id,
        cfg(gateway::DEFAULT_HANDSHAKE_TIMEOUT),
        GatewayLimits {
            max_connections: 0,
            max_handshakes: 0,
            connect_timeout: Duration::ZERO,
            idle_timeout: Duration::ZERO,
            probe: gateway::ProbeOptions {
                max_request_bytes: usize::MAX,
                ..Default::default()
            },
        },
    )
    .await
    .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("max_connections must be positive")
            && msg.contains("max_handshakes must be positive")
            && msg.contains("connect_timeout must be positive")
            && msg.contains("idle_timeout must be positive")
            && msg.contains("probe.max_request_bytes must be from 64 to 1048576"),
        "{msg}"
    );
}

/// A forwarding connection that goes quiet is closed after the idle
/// timeout and counted; one that keeps talking is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_forwarding_connections_are_closed_and_busy_ones_kept() {
    let idle = Duration::from_millis(400);
    let s = setup(
        Duration::from_secs(30),
        GatewayLimits {
            idle_timeout: idle,
            ..GatewayLimits::default()
        },
    )
    .await;
    let m = s.gw.metrics.clone();
    let open = |client: TlsIdentity, gw: SocketAddr| async move {
        let tcp = TcpStream::connect(gw).await.unwrap();
        client.connect(tcp, GATEWAY_ID).await.unwrap()
    };
    let mut quiet = open(s.client.clone(), s.gw.addr).await;
    let mut busy = open(s.client.clone(), s.gw.addr).await;
    let mut buf = [0u8; 2];
    for tls in [&mut quiet, &mut busy] {
        tls.write_all(b"hi").await.unwrap();
        tls.flush().await.unwrap();
        tls.read_exact(&mut buf).await.unwrap();
    }
    // The busy one talks every 50 ms for five idle periods.
    let t0 = Instant::now();
    while t0.elapsed() < idle * 5 {
        busy.write_all(b"hi").await.unwrap();
        busy.flush().await.unwrap();
        busy.read_exact(&mut buf).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The quiet one has been closed by then: its read ends.
    let ended = tokio::time::timeout(Duration::from_secs(5), quiet.read(&mut buf)).await;
    assert!(
        matches!(ended, Ok(Ok(0)) | Ok(Err(_))),
        "the quiet connection is closed: {ended:?}"
    );
    assert_eq!(
        m.idle_closed.load(Ordering::Relaxed),
        1,
        "only the quiet one"
    );
    busy.write_all(b"ok").await.unwrap();
    busy.flush().await.unwrap();
    busy.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ok", "the busy one still forwards");
}
