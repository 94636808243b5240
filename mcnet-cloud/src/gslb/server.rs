//! The sockets: DNS over UDP and TCP, with limits that keep the server
//! answering when clients misbehave or the process runs out of descriptors.
//!
//! - Each TCP connection has an idle timeout (no query starts), a read
//!   timeout (a query that started does not finish) and a write timeout (the
//!   client does not read its answer); on any of them the connection closes.
//! - Open TCP connections are capped. At the cap the server keeps accepting
//!   and closes each new connection at once (it never reads from it), so a
//!   client learns promptly and falls back, instead of waiting in the
//!   kernel's backlog; the connections already open are served as before.
//! - When `accept` fails (EMFILE, ENFILE, ENOBUFS, ...) the acceptor sleeps
//!   with exponential backoff up to a cap, logs once per burst of failures,
//!   and never spins.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;

use super::{Error, Gslb, Result};

/// Limits of [`serve_with`]. The defaults are the figures documented on
/// each field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServeOptions {
    /// Open TCP connections at most (default 512: well under the usual
    /// soft limit of 1,024 open files, with room for the rest of the
    /// process). At the cap, new connections are closed at once.
    pub max_tcp_connections: usize,
    /// How long a TCP connection may wait for its next query to start
    /// (default 10 s, RFC 7766's "order of seconds").
    pub tcp_idle_timeout: Duration,
    /// How long a query may take to arrive once its first byte has (default 5 s).
    pub tcp_read_timeout: Duration,
    /// How long an answer may take to be written (default 5 s).
    pub tcp_write_timeout: Duration,
    /// The longest sleep after `accept` fails (default 1 s); the first is
    /// 5 ms, doubling after each failure in a row.
    pub accept_backoff_max: Duration,
}

impl Default for ServeOptions {
    fn default() -> ServeOptions {
        ServeOptions {
            max_tcp_connections: 512,
            tcp_idle_timeout: Duration::from_secs(10),
            tcp_read_timeout: Duration::from_secs(5),
            tcp_write_timeout: Duration::from_secs(5),
            accept_backoff_max: Duration::from_secs(1),
        }
    }
}

/// Serves DNS on UDP and TCP at `addr` with [`ServeOptions::default`] until
/// the tasks are dropped; returns the bound address.
pub async fn serve(
    g: Arc<Gslb>,
    addr: SocketAddr,
) -> Result<(SocketAddr, Vec<tokio::task::JoinHandle<()>>)> {
    serve_with(g, addr, ServeOptions::default()).await
}

/// [`serve`] with explicit limits.
pub async fn serve_with(
    g: Arc<Gslb>,
    addr: SocketAddr,
    options: ServeOptions,
) -> Result<(SocketAddr, Vec<tokio::task::JoinHandle<()>>)> {
    if options.max_tcp_connections == 0 {
        return Err(Error::Config(
            "max_tcp_connections: must be positive".into(),
        ));
    }
    let (udp, tcp, bound) = bind(addr).await?;
    let udp = Arc::new(udp);
    let mut tasks = Vec::new();
    // Two UDP workers share the socket.
    for _ in 0..2 {
        let (g, udp) = (Arc::clone(&g), Arc::clone(&udp));
        let max = options.accept_backoff_max;
        tasks.push(tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let mut backoff = Backoff::new("DNS UDP receive", max);
            loop {
                let (n, from) = match udp.recv_from(&mut buf).await {
                    Ok(x) => x,
                    Err(e) => {
                        backoff.failed(&e).await;
                        continue;
                    }
                };
                backoff.succeeded();
                if let Some(out) = g.handle_udp(&buf[..n], from.ip()) {
                    let _ = udp.send_to(&out, from).await;
                }
            }
        }));
    }
    let options = Arc::new(options);
    tasks.push(tokio::spawn(accept_loop(g, tcp, options)));
    Ok((bound, tasks))
}

/// Binds UDP and TCP on one port. For port 0 the kernel picks UDP's, which
/// may be taken for TCP: then it tries again with another (8 times).
async fn bind(addr: SocketAddr) -> Result<(UdpSocket, TcpListener, SocketAddr)> {
    let mut attempts = 0;
    loop {
        let udp = UdpSocket::bind(addr).await.map_err(|source| Error::Io {
            context: format!("cannot bind UDP {addr}"),
            source,
        })?;
        let bound = udp.local_addr().map_err(|source| Error::Io {
            context: "UDP socket address".into(),
            source,
        })?;
        match TcpListener::bind(bound).await {
            Ok(tcp) => return Ok((udp, tcp, bound)),
            Err(e)
                if addr.port() == 0
                    && e.kind() == std::io::ErrorKind::AddrInUse
                    && attempts < 8 =>
            {
                attempts += 1;
            }
            Err(source) => {
                return Err(Error::Io {
                    context: format!("cannot bind TCP {bound}"),
                    source,
                })
            }
        }
    }
}

async fn accept_loop(g: Arc<Gslb>, tcp: TcpListener, options: Arc<ServeOptions>) {
    let slots = Arc::new(Semaphore::new(options.max_tcp_connections));
    let at_cap = Arc::new(AtomicBool::new(false));
    let mut backoff = Backoff::new("DNS TCP accept", options.accept_backoff_max);
    loop {
        let (s, from) = match tcp.accept().await {
            Ok(x) => x,
            Err(e) => {
                g.metrics.accept_errors.inc();
                backoff.failed(&e).await;
                continue;
            }
        };
        backoff.succeeded();
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            g.metrics.tcp_rejected.inc();
            if !at_cap.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    max = options.max_tcp_connections,
                    "DNS TCP connection cap reached: closing new connections until some close"
                );
            }
            drop(s);
            continue;
        };
        if slots.available_permits() * 2 >= options.max_tcp_connections {
            at_cap.store(false, Ordering::Relaxed);
        }
        let (g, options) = (Arc::clone(&g), Arc::clone(&options));
        tokio::spawn(async move {
            g.metrics.tcp_connections.inc();
            let end = connection(&g, s, from, &options).await;
            if let Some(kind) = end {
                g.metrics
                    .tcp_timeouts
                    .get_or_create(&vec![("kind".into(), kind.into())])
                    .inc();
            }
            g.metrics.tcp_connections.dec();
            drop(permit);
        });
    }
}

/// Serves one TCP connection until the client closes it, sends something
/// that is not a query, or a timeout runs out (returned: `idle`, `read` or `write`).
async fn connection(
    g: &Gslb,
    mut s: TcpStream,
    from: SocketAddr,
    o: &ServeOptions,
) -> Option<&'static str> {
    use tokio::time::timeout;
    loop {
        let mut len = [0u8; 2];
        match timeout(o.tcp_idle_timeout, s.read(&mut len[..1])).await {
            Err(_) => return Some("idle"),
            Ok(Ok(1)) => {}
            Ok(_) => return None,
        }
        let read = async {
            s.read_exact(&mut len[1..]).await?;
            let mut q = vec![0u8; usize::from(u16::from_be_bytes(len))];
            s.read_exact(&mut q).await?;
            Ok::<_, std::io::Error>(q)
        };
        let q = match timeout(o.tcp_read_timeout, read).await {
            Err(_) => return Some("read"),
            Ok(Err(_)) => return None,
            Ok(Ok(q)) => q,
        };
        let out = g.handle(&q, from.ip())?;
        // `handle` keeps an answer within the prefix; a longer one is a bug
        // here, and closing beats sending a wrapped length.
        let n = u16::try_from(out.len()).ok()?;
        let mut framed = Vec::with_capacity(out.len() + 2);
        framed.extend_from_slice(&n.to_be_bytes());
        framed.extend_from_slice(&out);
        match timeout(o.tcp_write_timeout, s.write_all(&framed)).await {
            Err(_) => return Some("write"),
            Ok(Err(_)) => return None,
            Ok(Ok(())) => {}
        }
    }
}

/// Exponential backoff after a failing `accept` or `recv`: 5 ms doubling up
/// to a cap; one warning per burst of failures, one line when it ends.
pub(crate) struct Backoff {
    what: &'static str,
    max: Duration,
    next: Duration,
    failures: u64,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(5);

    pub(crate) fn new(what: &'static str, max: Duration) -> Backoff {
        Backoff {
            what,
            max: max.max(Self::FIRST),
            next: Self::FIRST,
            failures: 0,
        }
    }

    /// Sleeps after a failure.
    pub(crate) async fn failed(&mut self, e: &std::io::Error) {
        if self.failures == 0 {
            tracing::warn!(
                what = self.what,
                error = %e,
                max_backoff_ms = self.max.as_millis() as u64,
                "failing; backing off (logged once until it recovers)"
            );
        }
        self.failures += 1;
        tokio::time::sleep(self.next).await;
        self.next = (self.next * 2).min(self.max);
    }

    /// Ends a burst of failures, if one was going on.
    pub(crate) fn succeeded(&mut self) {
        if self.failures > 0 {
            tracing::warn!(what = self.what, failures = self.failures, "recovered");
            self.failures = 0;
            self.next = Self::FIRST;
        }
    }
}
