//! The cross-cluster gateway, as Linkerd's multicluster gateway: mTLS in
//! (port 4143 by default), the peer authorized, bytes forwarded to a local
//! target; a probe and metrics endpoint (4191: `/ready`, `/metrics`).
//!
//! Both listeners face the network, so both are bounded: a handshake must
//! finish within [`GatewayConfig::handshake_timeout`], and at most
//! [`GatewayLimits::max_handshakes`] may be in progress and
//! [`GatewayLimits::max_connections`] open at once; the probe reads a
//! request head of [`ProbeOptions::max_request_bytes`] at most within
//! [`ProbeOptions::read_timeout`], on [`ProbeOptions::max_connections`]
//! connections at most. At a cap, new connections are closed at once.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use crate::tls::{Authorization, HandshakeFailure, TlsIdentity};

mod probe;
pub mod transport;
use crate::{Error, Result};
use probe::probe;
pub use transport::TransportHeader;

/// Linkerd's gateway port.
pub const GATEWAY_PORT: u16 = 4143;
/// Linkerd's probe port.
pub const PROBE_PORT: u16 = 4191;
/// The handshake timeout to use when there is no reason to pick another
/// ([`GatewayConfig::handshake_timeout`], `mcnet mesh gateway
/// --handshake-timeout`): 10 s.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Gateway settings.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    /// Where remote clusters connect (mTLS).
    pub listen: SocketAddr,
    /// The local target bytes are forwarded to, when `routes` is empty.
    pub target: SocketAddr,
    /// Destination routing, as Linkerd's gateway does for opaque traffic:
    /// when not empty, each client must send a [`TransportHeader`] first,
    /// and its `NAME:PORT` ([`TransportHeader::route_key`]) picks the
    /// target here. A connection without a header, or naming a destination
    /// that is not here, is closed and counted in
    /// [`GatewayMetrics::unroutable`]: the gateway forwards only to what it
    /// exports.
    pub routes: BTreeMap<String, SocketAddr>,
    /// Probe and metrics (`/ready`, `/metrics`); `None` for none.
    pub probe: Option<SocketAddr>,
    /// Who may come in.
    pub authz: Authorization,
    /// Longest a handshake may take, from the TCP accept to the client's
    /// Finished, however the bytes trickle in ([`DEFAULT_HANDSHAKE_TIMEOUT`]
    /// unless there is a reason for another). A connection still
    /// handshaking then is closed and counted as
    /// [`HandshakeFailure::Timeout`]. Must be positive.
    pub handshake_timeout: Duration,
}

/// Caps on what the gateway holds open for its peers; the defaults are
/// documented on each field.
#[derive(Clone, Debug)]
pub struct GatewayLimits {
    /// Connections open at once, handshaking or forwarding (default 4096).
    /// At the cap a new connection is closed at once and counted in
    /// [`GatewayMetrics::refused`].
    pub max_connections: usize,
    /// Handshakes in progress at once (default 256): connections whose
    /// peer has not yet proven an identity. At the cap a new connection is
    /// closed at once and counted in [`GatewayMetrics::refused`]; each
    /// slot is freed when its handshake ends or times out.
    pub max_handshakes: usize,
    /// Longest wait for the local target to accept a connection (default
    /// 3 s); then the peer's connection is closed and counted in
    /// [`GatewayMetrics::target_errors`].
    pub connect_timeout: Duration,
    /// A forwarding connection on which neither side has sent a byte for
    /// this long is closed (default 10 minutes) and counted in
    /// [`GatewayMetrics::idle_closed`]. It is checked every `idle_timeout`,
    /// so a connection goes between one and two timeouts after its last
    /// byte.
    pub idle_timeout: Duration,
    /// The probe listener's limits.
    pub probe: ProbeOptions,
}

impl Default for GatewayLimits {
    fn default() -> GatewayLimits {
        GatewayLimits {
            max_connections: 4096,
            max_handshakes: 256,
            connect_timeout: Duration::from_secs(3),
            idle_timeout: Duration::from_secs(600),
            probe: ProbeOptions::default(),
        }
    }
}

/// Limits of the probe and metrics listener (the same as
/// `mcnet_cloud::gslb::MetricsOptions`); the defaults are documented on
/// each field.
#[derive(Clone, Debug)]
pub struct ProbeOptions {
    /// Open connections at most (default 32; a kubelet and a few scrapers
    /// are normal). At the cap new connections are closed at once.
    pub max_connections: usize,
    /// How long the request head may take to arrive (default 5 s); a
    /// connection whose head has not arrived by then is closed without an
    /// answer.
    pub read_timeout: Duration,
    /// How long the answer may take to be written (default 10 s).
    pub write_timeout: Duration,
    /// The largest request head, bytes (default 8 KiB, from 64 B to 1 MiB);
    /// a longer one gets 431.
    pub max_request_bytes: usize,
}

impl Default for ProbeOptions {
    fn default() -> ProbeOptions {
        ProbeOptions {
            max_connections: 32,
            read_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(10),
            max_request_bytes: 8192,
        }
    }
}

/// The smallest accepted [`ProbeOptions::max_request_bytes`]: room for
/// `GET /metrics HTTP/1.1` and the blank line.
const MIN_REQUEST_BYTES: usize = 64;
/// The largest accepted [`ProbeOptions::max_request_bytes`] (1 MiB): the
/// buffer is allocated whole for each connection.
const MAX_REQUEST_BYTES: usize = 1 << 20;

fn check_limits(cfg: &GatewayConfig, limits: &GatewayLimits) -> Result<()> {
    let mut problems = Vec::new();
    let mut positive = |name: &str, zero: bool| {
        if zero {
            problems.push(format!("{name} must be positive"));
        }
    };
    positive("handshake_timeout", cfg.handshake_timeout.is_zero());
    positive("max_connections", limits.max_connections == 0);
    positive("max_handshakes", limits.max_handshakes == 0);
    positive("connect_timeout", limits.connect_timeout.is_zero());
    positive("idle_timeout", limits.idle_timeout.is_zero());
    positive("probe.max_connections", limits.probe.max_connections == 0);
    positive("probe.read_timeout", limits.probe.read_timeout.is_zero());
    positive("probe.write_timeout", limits.probe.write_timeout.is_zero());
    if !(MIN_REQUEST_BYTES..=MAX_REQUEST_BYTES).contains(&limits.probe.max_request_bytes) {
        problems.push(format!(
            "probe.max_request_bytes must be from {MIN_REQUEST_BYTES} to {MAX_REQUEST_BYTES}"
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::Invalid(format!("gateway: {}", problems.join("; "))))
    }
}

/// A semaphore of `n` permits, `n` clamped to what tokio can count.
fn slots(n: usize) -> Arc<Semaphore> {
    Arc::new(Semaphore::new(n.min(Semaphore::MAX_PERMITS)))
}

/// The gateway's counters.
#[derive(Debug, Default)]
pub struct GatewayMetrics {
    /// Connections accepted at TCP level.
    pub connections: AtomicU64,
    /// Connections currently forwarding.
    pub active: AtomicU64,
    /// Bytes from clients to the target.
    pub bytes_in: AtomicU64,
    /// Bytes from the target to clients.
    pub bytes_out: AtomicU64,
    /// Authorization denials.
    pub authz_denials: AtomicU64,
    /// Violations let through in audit mode.
    pub authz_audited: AtomicU64,
    /// Target connection failures.
    pub target_errors: AtomicU64,
    /// Forwarding connections closed after [`GatewayLimits::idle_timeout`]
    /// without a byte either way.
    pub idle_closed: AtomicU64,
    /// Connections closed at once, unread, because the gateway was at
    /// [`GatewayLimits::max_connections`] or
    /// [`GatewayLimits::max_handshakes`].
    pub refused: AtomicU64,
    /// Connections closed because their transport header was missing,
    /// malformed, or named a destination not in [`GatewayConfig::routes`].
    pub unroutable: AtomicU64,
    handshake_failures: Mutex<BTreeMap<HandshakeFailure, u64>>,
}

impl GatewayMetrics {
    fn failed(&self, why: HandshakeFailure) {
        *self
            .handshake_failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(why)
            .or_default() += 1;
    }

    /// Handshake failures of every reason together.
    pub fn handshake_failures_total(&self) -> u64 {
        self.handshake_failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .sum()
    }

    /// Handshake failures of one reason.
    pub fn handshake_failures(&self, why: HandshakeFailure) -> u64 {
        self.handshake_failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&why)
            .copied()
            .unwrap_or(0)
    }

    /// The Prometheus text exposition (through a prometheus-client registry).
    pub fn render(self: &Arc<Self>) -> String {
        let mut r = mcnet_core::metrics::Registry::default();
        r.register_collector(Box::new(GatewayCollector(Arc::clone(self))));
        mcnet_core::metrics::encode(&r)
    }
}

/// A running gateway.
#[derive(Debug)]
pub struct GatewayHandle {
    /// The mTLS listener's address.
    pub addr: SocketAddr,
    /// The probe listener's address.
    pub probe_addr: Option<SocketAddr>,
    /// Live counters.
    pub metrics: Arc<GatewayMetrics>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl GatewayHandle {
    /// Stops accepting; connections already forwarding finish on their own.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Starts a gateway with `identity` (the gateway's own certificate and the
/// bundle clients must chain to), with the default [`GatewayLimits`].
pub async fn start(identity: TlsIdentity, cfg: GatewayConfig) -> Result<GatewayHandle> {
    start_with(identity, cfg, GatewayLimits::default()).await
}

/// Starts a gateway as [`start`], with `limits`. A zero timeout or cap is
/// refused ([`Error::Invalid`], naming the field).
pub async fn start_with(
    identity: TlsIdentity,
    cfg: GatewayConfig,
    limits: GatewayLimits,
) -> Result<GatewayHandle> {
    check_limits(&cfg, &limits)?;
    let listener = TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| Error::io_at(format!("cannot listen on {}", cfg.listen), e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::io_at("listener address", e))?;
    let metrics = Arc::new(GatewayMetrics::default());
    let (stop, stopped) = watch::channel(false);
    let mut tasks = Vec::new();
    let mut probe_addr = None;
    if let Some(p) = cfg.probe {
        let l = TcpListener::bind(p)
            .await
            .map_err(|e| Error::io_at(format!("cannot listen on {p}"), e))?;
        probe_addr = Some(
            l.local_addr()
                .map_err(|e| Error::io_at("probe listener address", e))?,
        );
        tasks.push(tokio::spawn(probe(
            l,
            metrics.clone(),
            Arc::new(limits.probe.clone()),
            stopped.clone(),
        )));
    }
    let cfg = Arc::new(cfg);
    let m = metrics.clone();
    let mut stopped_accept = stopped.clone();
    let (connections, handshakes) = (slots(limits.max_connections), slots(limits.max_handshakes));
    tasks.push(tokio::spawn(async move {
        let mut at_cap = false;
        loop {
            let (tcp, _) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!("gateway accept: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = stopped_accept.changed() => break,
            };
            m.connections.fetch_add(1, Ordering::Relaxed);
            // Both slots or neither: a connection over either cap is closed
            // before a byte of it is read.
            let permits = Arc::clone(&connections)
                .try_acquire_owned()
                .ok()
                .zip(Arc::clone(&handshakes).try_acquire_owned().ok());
            let Some((open, handshaking)) = permits else {
                m.refused.fetch_add(1, Ordering::Relaxed);
                if !std::mem::replace(&mut at_cap, true) {
                    tracing::warn!(
                        max_connections = limits.max_connections,
                        max_handshakes = limits.max_handshakes,
                        "gateway at its connection cap: closing new connections"
                    );
                }
                drop(tcp);
                continue;
            };
            at_cap = false;
            let (id, cfg, m) = (identity.clone(), cfg.clone(), m.clone());
            let (connect_timeout, idle_timeout) = (limits.connect_timeout, limits.idle_timeout);
            tokio::spawn(async move {
                let timeouts = Timeouts {
                    connect: connect_timeout,
                    idle: idle_timeout,
                };
                serve(tcp, id, cfg, m, handshaking, timeouts).await;
                drop(open);
            });
        }
    }));
    Ok(GatewayHandle {
        addr,
        probe_addr,
        metrics,
        stop,
        tasks,
    })
}

/// Connects to a gateway as a meshed client's proxy does: TCP to
/// `gateway`, mTLS proving `identity` and requiring the gateway to prove
/// `gateway_identity`, then the [`TransportHeader`] naming where the
/// connection goes. All of it within `timeout`.
pub async fn dial(
    identity: &TlsIdentity,
    gateway: SocketAddr,
    gateway_identity: &str,
    destination: &TransportHeader,
    timeout: Duration,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let work = async {
        let tcp = TcpStream::connect(gateway)
            .await
            .map_err(|e| Error::io_at(format!("connect to gateway {gateway}"), e))?;
        let _ = tcp.set_nodelay(true);
        let mut tls = identity
            .connect(tcp, gateway_identity)
            .await
            .map_err(|why| {
                Error::Invalid(format!(
                    "mTLS to gateway {gateway} ({gateway_identity}): {why}"
                ))
            })?;
        tls.write_all(&destination.encode())
            .await
            .map_err(|e| Error::io_at(format!("transport header to gateway {gateway}"), e))?;
        Ok(tls)
    };
    tokio::time::timeout(timeout, work).await.map_err(|_| {
        Error::Invalid(format!(
            "gateway {gateway}: no connection within {timeout:?}"
        ))
    })?
}

/// The timeouts of a forwarding connection (from [`GatewayLimits`]).
#[derive(Clone, Copy)]
struct Timeouts {
    connect: Duration,
    idle: Duration,
}

async fn serve(
    tcp: TcpStream,
    id: TlsIdentity,
    cfg: Arc<GatewayConfig>,
    m: Arc<GatewayMetrics>,
    handshaking: OwnedSemaphorePermit,
    timeouts: Timeouts,
) {
    let _ = tcp.set_nodelay(true);
    let peer = tcp.peer_addr().ok();
    // Pinned here, so that a timed-out connection (still inside `accept`)
    // is closed only after it is counted.
    let accept = id.accept(tcp);
    tokio::pin!(accept);
    let accepted = tokio::time::timeout(cfg.handshake_timeout, &mut accept).await;
    drop(handshaking);
    let (mut tls, ids) = match accepted {
        Ok(Ok(x)) => x,
        Ok(Err(why)) => {
            m.failed(why);
            tracing::info!(?peer, reason = %why, "gateway handshake failed");
            return;
        }
        Err(_) => {
            m.failed(HandshakeFailure::Timeout);
            tracing::info!(?peer, timeout = ?cfg.handshake_timeout, "gateway handshake timed out");
            return;
        }
    };
    let d = cfg.authz.authorize(cfg.listen.port(), &ids);
    if d.violation {
        if d.allowed {
            m.authz_audited.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(?peer, identities = ?ids, "{}", d.reason);
        } else {
            m.authz_denials.fetch_add(1, Ordering::Relaxed);
            tracing::info!(?peer, identities = ?ids, "{}", d.reason);
            let _ = tls.shutdown().await;
            return;
        }
    }
    let target_addr = if cfg.routes.is_empty() {
        cfg.target
    } else {
        // The header must arrive as promptly as the handshake did.
        let header =
            tokio::time::timeout(cfg.handshake_timeout, TransportHeader::read(&mut tls)).await;
        let routed = match header {
            Ok(Ok(h)) => cfg.routes.get(&h.route_key()).copied().ok_or_else(|| {
                format!(
                    "no route for {} (the gateway exports {})",
                    h.route_key(),
                    cfg.routes.keys().cloned().collect::<Vec<_>>().join(", ")
                )
            }),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("no transport header within the handshake timeout".to_string()),
        };
        match routed {
            Ok(a) => a,
            Err(why) => {
                m.unroutable.fetch_add(1, Ordering::Relaxed);
                tracing::info!(?peer, identities = ?ids, "gateway: {why}");
                let _ = tls.shutdown().await;
                return;
            }
        }
    };
    let target = match tokio::time::timeout(timeouts.connect, TcpStream::connect(target_addr)).await
    {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => {
            m.target_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("gateway target {target_addr}: {e}");
            return;
        }
        Err(_) => {
            m.target_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(timeout = ?timeouts.connect, "gateway target {target_addr}: connect timed out");
            return;
        }
    };
    let _ = target.set_nodelay(true);
    m.active.fetch_add(1, Ordering::Relaxed);
    // One task copies both ways (no lock between the halves of the TLS
    // stream), counting bytes as they are read; a watchdog closes the
    // connection when a whole idle period passes with no byte either way.
    let seen = AtomicU64::new(0);
    let mut client = Counted {
        inner: tls,
        read: &m.bytes_in,
        seen: &seen,
    };
    let mut target = Counted {
        inner: target,
        read: &m.bytes_out,
        seen: &seen,
    };
    let copy =
        tokio::io::copy_bidirectional_with_sizes(&mut client, &mut target, COPY_BUF, COPY_BUF);
    tokio::pin!(copy);
    let mut last = 0;
    loop {
        tokio::select! {
            _ = &mut copy => break,
            _ = tokio::time::sleep(timeouts.idle) => {
                let now = seen.load(Ordering::Relaxed);
                if now == last {
                    m.idle_closed.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(?peer, idle = ?timeouts.idle, "gateway connection idle; closed");
                    break;
                }
                last = now;
            }
        }
    }
    m.active.fetch_sub(1, Ordering::Relaxed);
}

/// Each direction's copy buffer: several TLS records at once.
const COPY_BUF: usize = 256 * 1024;

/// A stream that counts the bytes read from it into a metric.
struct Counted<'a, S> {
    inner: S,
    /// The gateway's byte counter for this direction.
    read: &'a AtomicU64,
    /// This connection's bytes, both directions (for the idle watchdog).
    seen: &'a AtomicU64,
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Counted<'_, S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        self.seen.fetch_add(n as u64, Ordering::Relaxed);
        r
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Counted<'_, S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Exposes [`GatewayMetrics`] to a prometheus-client registry, read at each scrape.
#[derive(Debug)]
pub struct GatewayCollector(pub Arc<GatewayMetrics>);

impl prometheus_client::collector::Collector for GatewayCollector {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder<'_>,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::counter::ConstCounter;
        use prometheus_client::metrics::gauge::ConstGauge;
        use prometheus_client::metrics::MetricType;
        let m = &self.0;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        for (name, help, v) in [
            (
                "mcnet_gateway_connections",
                "TCP connections accepted by the gateway",
                load(&m.connections),
            ),
            (
                "mcnet_gateway_authz_denials",
                "Connections refused by the authorization policy",
                load(&m.authz_denials),
            ),
            (
                "mcnet_gateway_authz_audited",
                "Policy violations let through in audit mode",
                load(&m.authz_audited),
            ),
            (
                "mcnet_gateway_target_errors",
                "Failed connections to the local target",
                load(&m.target_errors),
            ),
            (
                "mcnet_gateway_idle_closed",
                "Forwarding connections closed after the idle timeout",
                load(&m.idle_closed),
            ),
            (
                "mcnet_gateway_unroutable",
                "Connections closed for a missing, malformed or unknown transport header destination",
                load(&m.unroutable),
            ),
            (
                "mcnet_gateway_refused_connections",
                "Connections closed unread at the connection or handshake cap",
                load(&m.refused),
            ),
        ] {
            let e = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            ConstCounter::new(v).encode(e)?;
        }
        let mut e = encoder.encode_descriptor(
            "mcnet_gateway_bytes",
            "Bytes forwarded, by direction",
            None,
            MetricType::Counter,
        )?;
        for (dir, v) in [("in", load(&m.bytes_in)), ("out", load(&m.bytes_out))] {
            let labels = [("direction", dir)];
            ConstCounter::new(v).encode(e.encode_family(&labels)?)?;
        }
        let mut e = encoder.encode_descriptor(
            "mcnet_gateway_handshake_failures",
            "mTLS handshake failures, by reason",
            None,
            MetricType::Counter,
        )?;
        for why in HandshakeFailure::ALL {
            let labels = [("reason", why.as_str())];
            ConstCounter::new(m.handshake_failures(why)).encode(e.encode_family(&labels)?)?;
        }
        let e = encoder.encode_descriptor(
            "mcnet_gateway_active_connections",
            "Connections currently forwarding",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(load(&m.active) as i64).encode(e)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::probe::{find, parse_probe_request, ProbeRequest};
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn probe_requests_are_read_from_the_request_line() {
        use ProbeRequest::*;
        for (bytes, want) in [
            (
                &b"GET /ready HTTP/1.1\r\nHost: x\r\n\r\n"[..],
                Ready { head: false },
            ),
            (b"HEAD /ready HTTP/1.0\r\n\r\n", Ready { head: true }),
            (
                b"GET /metrics?x=1 HTTP/1.1\r\n\r\n",
                Metrics { head: false },
            ),
            (
                b"HEAD /metrics HTTP/1.1\r\nA: b\r\n\r\n",
                Metrics { head: true },
            ),
            (b"GET / HTTP/1.1\r\n\r\n", NotFound),
            (b"POST /ready HTTP/1.1\r\n\r\n", Method),
            (b"GET /ready HTTP/1.1\r\nHost: x\r\n", Partial),
            (b"GET /rea", Partial),
            (b"", Partial),
            // Answered as soon as the request line is known to be wrong.
            (b"GET /ready HTTP/2.0\r\n", Bad),
            (b"GET  /ready HTTP/1.1\r\n", Bad),
            (b"GET http://x/ready HTTP/1.1\r\n", Bad),
            (b"G\xc3\xa9T /ready HTTP/1.1\r\n", Bad),
            (b"\x16\x03\x01\x00\xc4\x01\r\n", Bad),
            (b"GET /ready\x00 HTTP/1.1\r\n\r\n", Bad),
        ] {
            assert_eq!(
                parse_probe_request(bytes, 8192),
                want,
                "{}",
                String::from_utf8_lossy(bytes)
            );
        }
        let long = format!("GET /ready HTTP/1.1\r\nX: {}", "a".repeat(100));
        assert_eq!(parse_probe_request(long.as_bytes(), 64), TooLarge);
        assert_eq!(parse_probe_request(&[b'G'; 64], 64), TooLarge);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

        /// Any bytes: no panic, and only a complete head within the limit
        /// is answered as a request.
        #[test]
        fn the_probe_parser_takes_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300), max in 1usize..300) {
            let bytes = &bytes[..bytes.len().min(max)];
            match parse_probe_request(bytes, max) {
                ProbeRequest::Ready { .. } | ProbeRequest::Metrics { .. } | ProbeRequest::NotFound | ProbeRequest::Method => {
                    prop_assert!(find(bytes, b"\r\n\r\n").is_some());
                }
                ProbeRequest::Partial => prop_assert!(bytes.len() < max),
                ProbeRequest::TooLarge => prop_assert!(bytes.len() >= max),
                ProbeRequest::Bad => {}
            }
        }

        /// A valid request with any headers is read the same, and every
        /// prefix of it waits for more.
        #[test]
        fn a_request_is_partial_until_its_head_ends(
            path in prop::sample::select(vec!["/ready", "/metrics", "/other", "/ready?verbose"]),
            head in any::<bool>(),
            headers in proptest::collection::vec(("[A-Za-z-]{1,12}", "[ -~]{0,20}"), 0..5),
        ) {
            let mut req = format!("{} {path} HTTP/1.1\r\n", if head { "HEAD" } else { "GET" });
            for (k, v) in &headers {
                req.push_str(&format!("{k}: {v}\r\n"));
            }
            req.push_str("\r\n");
            let want = match path {
                "/ready" | "/ready?verbose" => ProbeRequest::Ready { head },
                "/metrics" => ProbeRequest::Metrics { head },
                _ => ProbeRequest::NotFound,
            };
            prop_assert_eq!(parse_probe_request(req.as_bytes(), 8192), want);
            for cut in 0..req.len() {
                prop_assert_eq!(parse_probe_request(&req.as_bytes()[..cut], 8192), ProbeRequest::Partial);
            }
        }
    }

    async fn probe_on(o: ProbeOptions) -> (SocketAddr, watch::Sender<bool>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(probe(
            l,
            Arc::new(GatewayMetrics::default()),
            Arc::new(o),
            stopped,
        ));
        (addr, stop)
    }

    /// Reads until the peer closes: what it sent, and the instant it
    /// closed (`None` if it did not within `within`).
    async fn until_closed(
        s: &mut TcpStream,
        within: Duration,
    ) -> (Vec<u8>, Option<tokio::time::Instant>) {
        let mut out = Vec::new();
        let closed = tokio::time::timeout(within, async {
            let mut buf = [0u8; 4096];
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => out.extend_from_slice(&buf[..n]),
                }
            }
        })
        .await;
        (out, closed.ok().map(|_| tokio::time::Instant::now()))
    }

    #[tokio::test]
    async fn an_idle_probe_connection_is_closed_unanswered_after_the_read_timeout() {
        let (addr, _stop) = probe_on(ProbeOptions {
            read_timeout: Duration::from_millis(300),
            ..ProbeOptions::default()
        })
        .await;
        let t0 = tokio::time::Instant::now();
        let mut idle = TcpStream::connect(addr).await.unwrap();
        let mut half = TcpStream::connect(addr).await.unwrap();
        half.write_all(b"GET /ready HTTP/1.1\r\nHost:")
            .await
            .unwrap();
        for s in [&mut idle, &mut half] {
            let (got, closed) = until_closed(s, Duration::from_secs(5)).await;
            let closed = closed.expect("closed by the probe") - t0;
            assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
            assert!(
                closed >= Duration::from_millis(250) && closed < Duration::from_secs(3),
                "closed after {closed:?}"
            );
        }
        let mut ok = TcpStream::connect(addr).await.unwrap();
        ok.write_all(b"GET /ready HTTP/1.1\r\n\r\n").await.unwrap();
        let (got, _) = until_closed(&mut ok, Duration::from_secs(5)).await;
        assert!(got.starts_with(b"HTTP/1.1 200 OK\r\n"), "{got:?}");
        assert!(got.ends_with(b"\r\n\r\nready\n"), "{got:?}");
    }

    #[tokio::test]
    async fn the_probe_closes_connections_over_its_cap_and_answers_oversized_heads_431() {
        let (addr, _stop) = probe_on(ProbeOptions {
            max_connections: 2,
            max_request_bytes: 128,
            ..ProbeOptions::default()
        })
        .await;
        let mut held = Vec::new();
        for _ in 0..2 {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(b"GET").await.unwrap();
            held.push(s);
        }
        // The two are in (they are read from) before the third comes.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut over = TcpStream::connect(addr).await.unwrap();
        let (got, closed) = until_closed(&mut over, Duration::from_secs(2)).await;
        assert!(closed.is_some() && got.is_empty(), "{got:?} {closed:?}");
        drop(held);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut big = TcpStream::connect(addr).await.unwrap();
        big.write_all(format!("GET /ready HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(200)).as_bytes())
            .await
            .unwrap();
        let (got, _) = until_closed(&mut big, Duration::from_secs(5)).await;
        assert!(
            got.starts_with(b"HTTP/1.1 431 "),
            "{}",
            String::from_utf8_lossy(&got)
        );
    }
}
