//! The cross-cluster gateway, as Linkerd's multicluster gateway: mTLS in
//! (port 4143 by default), the peer authorized, bytes forwarded to a local
//! target; a probe and metrics endpoint (4191: `/ready`, `/metrics`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::tls::{Authorization, HandshakeFailure, TlsIdentity};
use crate::{Error, Result};

/// Linkerd's gateway port.
pub const GATEWAY_PORT: u16 = 4143;
/// Linkerd's probe port.
pub const PROBE_PORT: u16 = 4191;

/// Gateway settings.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    /// Where remote clusters connect (mTLS).
    pub listen: SocketAddr,
    /// The local target bytes are forwarded to.
    pub target: SocketAddr,
    /// Probe and metrics (`/ready`, `/metrics`); `None` for none.
    pub probe: Option<SocketAddr>,
    /// Who may come in.
    pub authz: Authorization,
    /// Longest a handshake may take.
    pub handshake_timeout: Duration,
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
/// bundle clients must chain to).
pub async fn start(identity: TlsIdentity, cfg: GatewayConfig) -> Result<GatewayHandle> {
    let listener = TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| Error::Io(format!("cannot listen on {}: {e}", cfg.listen)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::Io(e.to_string()))?;
    let metrics = Arc::new(GatewayMetrics::default());
    let (stop, stopped) = watch::channel(false);
    let mut tasks = Vec::new();
    let mut probe_addr = None;
    if let Some(p) = cfg.probe {
        let l = TcpListener::bind(p)
            .await
            .map_err(|e| Error::Io(format!("cannot listen on {p}: {e}")))?;
        probe_addr = Some(l.local_addr().map_err(|e| Error::Io(e.to_string()))?);
        tasks.push(tokio::spawn(probe(l, metrics.clone(), stopped.clone())));
    }
    let cfg = Arc::new(cfg);
    let m = metrics.clone();
    let mut stopped_accept = stopped.clone();
    tasks.push(tokio::spawn(async move {
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
            let (id, cfg, m) = (identity.clone(), cfg.clone(), m.clone());
            tokio::spawn(async move { serve(tcp, id, cfg, m).await });
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

async fn serve(tcp: TcpStream, id: TlsIdentity, cfg: Arc<GatewayConfig>, m: Arc<GatewayMetrics>) {
    let _ = tcp.set_nodelay(true);
    let peer = tcp.peer_addr().ok();
    let accepted = tokio::time::timeout(cfg.handshake_timeout, id.accept(tcp)).await;
    let (mut tls, ids) = match accepted {
        Ok(Ok(x)) => x,
        Ok(Err(why)) => {
            m.failed(why);
            tracing::info!(?peer, reason = %why, "gateway handshake failed");
            return;
        }
        Err(_) => {
            m.failed(HandshakeFailure::Io);
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
    let target = match TcpStream::connect(cfg.target).await {
        Ok(t) => t,
        Err(e) => {
            m.target_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("gateway target {}: {e}", cfg.target);
            return;
        }
    };
    let _ = target.set_nodelay(true);
    m.active.fetch_add(1, Ordering::Relaxed);
    // One task copies both ways (no lock between the halves of the TLS
    // stream), counting bytes as they are read.
    let mut client = Counted {
        inner: tls,
        read: &m.bytes_in,
    };
    let mut target = Counted {
        inner: target,
        read: &m.bytes_out,
    };
    let _ = tokio::io::copy_bidirectional_with_sizes(&mut client, &mut target, COPY_BUF, COPY_BUF)
        .await;
    m.active.fetch_sub(1, Ordering::Relaxed);
}

/// Each direction's copy buffer: several TLS records at once.
const COPY_BUF: usize = 256 * 1024;

/// A stream that counts the bytes read from it into a metric.
struct Counted<'a, S> {
    inner: S,
    read: &'a AtomicU64,
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

/// A minimal HTTP/1.1 responder for `/ready` and `/metrics`.
async fn probe(l: TcpListener, m: Arc<GatewayMetrics>, mut stopped: watch::Receiver<bool>) {
    loop {
        let (mut s, _) = tokio::select! {
            r = l.accept() => match r { Ok(x) => x, Err(_) => continue },
            _ = stopped.changed() => break,
        };
        let m = m.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            let mut n = 0;
            while n < buf.len() {
                match tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf[n..])).await {
                    Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
                    Ok(Ok(k)) => {
                        n += k;
                        if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                            break;
                        }
                    }
                }
            }
            let req = String::from_utf8_lossy(&buf[..n]);
            let path = req.split_whitespace().nth(1).unwrap_or("");
            let (status, ctype, body) = match path {
                "/ready" => ("200 OK", "text/plain", "ready\n".to_string()),
                "/metrics" => ("200 OK", "text/plain; version=0.0.4", m.render()),
                _ => ("404 Not Found", "text/plain", "not found\n".to_string()),
            };
            let resp = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(resp.as_bytes()).await;
            let _ = s.shutdown().await;
        });
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
