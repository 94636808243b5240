//! The L7 proxy: where the kernel sends TCP connections whose policy has
//! HTTP rules, so that every request is judged by the policy engine before
//! it reaches its destination.
//!
//! # How a connection gets here
//!
//! The TC program at the client's host-side interface sees the SYN, finds
//! that the port carries L7 rules (in the client's egress or the
//! destination's ingress) and, in [`crate::L7Mode::Enforce`], records what
//! it knows in `MCNET_PROXY_ORIGIN4` (the client's identity, keyed by the
//! connection's addresses and ports), assigns the packet to this proxy's
//! listening socket with `bpf_sk_assign` and marks it
//! [`MARK_TO_PROXY`](mcnet_ebpf_common::MARK_TO_PROXY). The node's policy routing (see [`install_routing`])
//! delivers marked packets locally, so the connection is accepted here with
//! its original destination as the local address: the proxy is transparent
//! to the client. `bpf_sk_assign` was chosen over TPROXY because it needs
//! no netfilter rules and works at the same hook that judged the packet;
//! the cost is that it only works at TC ingress, so connections are
//! redirected on the client's side.
//!
//! The proxy trusts the kernel's record of the client, never what the
//! packet or the request claims: a connection without an origin record, or
//! whose record disagrees with the current policy's view of the client
//! address, is closed unanswered. Each request is evaluated with the same
//! compiled rules as `mcnet policy eval` (method, path with its query,
//! headers, host). An allowed request is forwarded on one upstream
//! connection per client connection, opened from the node with the mark
//! [`MARK_FROM_PROXY`](mcnet_ebpf_common::MARK_FROM_PROXY) plus the client's identity, which the destination's
//! TC program checks; a denied one is answered `403 Forbidden` with a body
//! that names the policy, and never leaves the node.
//!
//! # Fail closed
//!
//! When the proxy is not running its listener is not in the sockmap, and
//! the kernel drops the connection with `drop-proxy-unavailable`.
//!
//! HTTP/1.1 only, with keep-alive and pipelining: heads are parsed by
//! httparse, bodies are framed as RFC 9112 says and forwarded unchanged,
//! and what two parsers could read differently is refused (see `http1`).
//! Kafka and DNS rules are not proxied: a Kafka port's connections get
//! HTTP errors from here (and so fail), and UDP (DNS) ports with L7 rules
//! are dropped in the kernel.

use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use mcnet_core::policy::Compiled;
use mcnet_ebpf_common::{ProxyKey4, ProxyOrigin};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use crate::flows::FlowRecord;
use crate::{Error, Result};

mod conn;
mod http1;
mod routing;

use conn::serve_connection;
pub use routing::install_routing;

/// The policy the proxy judges with; replacing it moves every
/// connection's next request to the new rules.
#[derive(Clone, Debug)]
pub struct SharedPolicy(Arc<RwLock<Arc<Compiled>>>);

impl SharedPolicy {
    /// Starts with `compiled`.
    pub fn new(compiled: Arc<Compiled>) -> SharedPolicy {
        SharedPolicy(Arc::new(RwLock::new(compiled)))
    }

    /// The policy now.
    pub fn current(&self) -> Arc<Compiled> {
        match self.0.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces the policy.
    pub fn replace(&self, compiled: Arc<Compiled>) {
        match self.0.write() {
            Ok(mut g) => *g = compiled,
            Err(poisoned) => *poisoned.into_inner() = compiled,
        }
    }
}

/// Where the proxy learns who a redirected connection's client is: the
/// kernel's `MCNET_PROXY_ORIGIN4` map (see
/// [`crate::Datapath::take_proxy_origins`]), or a stand-in in tests.
pub trait OriginLookup: Send + Sync + 'static {
    /// The kernel's record of a connection, if it redirected it.
    fn origin(&self, key: &ProxyKey4) -> Option<ProxyOrigin>;
}

impl OriginLookup for aya::maps::HashMap<aya::maps::MapData, ProxyKey4, ProxyOrigin> {
    fn origin(&self, key: &ProxyKey4) -> Option<ProxyOrigin> {
        self.get(key, 0).ok()
    }
}

/// How the proxy runs.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ProxyConfig {
    /// Port of the listener on 127.0.0.1 (0: any free port). The kernel
    /// assigns connections to the socket, whatever its address.
    pub port: u16,
    /// Network namespace to run in (`/run/netns/NAME`); the caller's when
    /// `None`. It must be the namespace of the interfaces enforced on.
    pub netns: Option<PathBuf>,
    /// Worker threads.
    pub workers: usize,
    /// Client connections served at once; further ones wait in the
    /// listener's backlog.
    pub max_connections: usize,
    /// Time a client has to send a request's head (also the idle time
    /// allowed between keep-alive requests).
    pub header_timeout: Duration,
    /// Time to connect to the original destination.
    pub connect_timeout: Duration,
    /// Time the destination has to answer a forwarded request.
    pub response_timeout: Duration,
    /// Request events buffered for the reader; further ones are counted
    /// in [`ProxyStats::events_lost`] and dropped.
    pub event_buffer: usize,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            port: 0,
            netns: None,
            workers: 2,
            max_connections: 4096,
            header_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(3),
            response_timeout: Duration::from_secs(30),
            event_buffer: 65_536,
        }
    }
}

impl ProxyConfig {
    /// Running inside the network namespace at `path`.
    pub fn in_netns(mut self, path: impl Into<PathBuf>) -> Self {
        self.netns = Some(path.into());
        self
    }

    /// With this many worker threads (at least one).
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n.max(1);
        self
    }

    /// With the listener on this port.
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }
}

/// Counters of a running proxy.
#[derive(Debug, Default)]
pub struct ProxyStats {
    /// Client connections accepted.
    pub connections: AtomicU64,
    /// Connections closed unanswered: no origin record, or an identity
    /// that disagrees with the policy.
    pub refused: AtomicU64,
    /// Requests forwarded.
    pub forwarded: AtomicU64,
    /// Requests answered 403.
    pub denied: AtomicU64,
    /// Requests answered 502 or 504 (the destination failed).
    pub upstream_errors: AtomicU64,
    /// Request events dropped because the reader fell behind.
    pub events_lost: AtomicU64,
}

/// A running proxy; dropping it (or [`L7Proxy::stop`]) closes the
/// listener, which takes it out of the kernel's sockmap.
pub struct L7Proxy {
    fd: RawFd,
    addr: SocketAddr,
    stats: Arc<ProxyStats>,
    events: Option<mpsc::Receiver<FlowRecord>>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for L7Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("L7Proxy")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

struct Shared {
    policy: SharedPolicy,
    origins: Arc<dyn OriginLookup>,
    config: ProxyConfig,
    stats: Arc<ProxyStats>,
    events: mpsc::Sender<FlowRecord>,
}

impl L7Proxy {
    /// Starts the proxy on its own runtime thread(s) and returns once its
    /// listener accepts.
    pub fn start(
        config: ProxyConfig,
        policy: SharedPolicy,
        origins: Arc<dyn OriginLookup>,
    ) -> Result<L7Proxy> {
        let io = |what: &str| {
            let what = what.to_string();
            move |source| Error::Io { what, source }
        };
        let ns = match &config.netns {
            Some(p) => Some(
                std::fs::File::open(p)
                    .map_err(io(&format!("opening network namespace {}", p.display())))?,
            ),
            None => None,
        };
        let stats = Arc::new(ProxyStats::default());
        let (events_tx, events_rx) = mpsc::channel(config.event_buffer.max(1));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = oneshot::channel();
        let shared = Arc::new(Shared {
            policy,
            origins,
            config: config.clone(),
            stats: stats.clone(),
            events: events_tx,
        });
        let thread = std::thread::Builder::new()
            .name("mcnet-l7-proxy".into())
            .spawn(move || {
                // Threads the runtime starts from here inherit the namespace.
                if let Some(ns) = &ns {
                    // SAFETY: setns on a valid namespace descriptor changes
                    // only this thread's namespace.
                    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                        let _ = ready_tx.send(Err(std::io::Error::last_os_error()));
                        return;
                    }
                }
                // Thread per worker, each with its own single-threaded
                // runtime: a connection's client side and its upstream
                // connection stay on one thread (no cross-thread wakeups
                // per request). This thread accepts and deals out.
                let mut workers = Vec::new();
                let mut queues = Vec::new();
                for i in 0..shared.config.workers.max(1) {
                    let (tx, rx) = mpsc::unbounded_channel::<Accepted>();
                    let worker = std::thread::Builder::new()
                        .name(format!("mcnet-l7-worker-{i}"))
                        .spawn(move || worker(rx));
                    match worker {
                        Ok(w) => {
                            workers.push(w);
                            queues.push(tx);
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    }
                }
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                let rt = match rt {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                rt.block_on(async move {
                    let listener = match listen(shared.config.port) {
                        Ok(l) => l,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    let addr = listener.local_addr();
                    let _ = ready_tx.send(addr.map(|a| (listener.as_raw_fd(), a)));
                    tokio::select! {
                        _ = stop_rx => {}
                        _ = accept_loop(listener, shared, queues) => {}
                    }
                });
                drop(rt);
                // The queues are gone: each worker drops its runtime, which
                // closes its connections, and ends.
                for w in workers {
                    let _ = w.join();
                }
            })
            .map_err(io("starting the L7 proxy thread"))?;
        let (fd, addr) = match ready_rx.recv() {
            Ok(Ok(v)) => v,
            Ok(Err(source)) => {
                let _ = thread.join();
                return Err(Error::Io {
                    what: "starting the L7 proxy listener".into(),
                    source,
                });
            }
            Err(_) => {
                let _ = thread.join();
                return Err(Error::Io {
                    what: "starting the L7 proxy".into(),
                    source: std::io::Error::other("the proxy thread exited"),
                });
            }
        };
        tracing::info!(%addr, "L7 proxy listening");
        Ok(L7Proxy {
            fd,
            addr,
            stats,
            events: Some(events_rx),
            shutdown: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// The listening socket, to put in the kernel's sockmap (see
    /// [`crate::Datapath::set_proxy_listener`]).
    pub fn listener(&self) -> BorrowedFd<'_> {
        // SAFETY: the listener lives as long as the runtime, which lives
        // until `self` is stopped or dropped; the borrow cannot outlive `self`.
        unsafe { BorrowedFd::borrow_raw(self.fd) }
    }

    /// The listener's own address (connections arrive with their original
    /// destination as the local address instead).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Counters.
    pub fn stats(&self) -> &ProxyStats {
        &self.stats
    }

    /// One flow record per request (type `L7`), once; `None` after the
    /// first call.
    pub fn take_events(&mut self) -> Option<mpsc::Receiver<FlowRecord>> {
        self.events.take()
    }

    /// Closes the listener and every connection, and waits for the threads.
    pub fn stop(mut self) {
        self.shutdown_now();
    }

    fn shutdown_now(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for L7Proxy {
    fn drop(&mut self) {
        self.shutdown_now();
    }
}

fn setsockopt_u32(fd: RawFd, level: i32, name: i32, value: u32) -> std::io::Result<()> {
    // SAFETY: `value` outlives the call and its size is passed.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            &value as *const u32 as *const libc::c_void,
            std::mem::size_of::<u32>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// A transparent listener: it may accept connections to any address.
fn listen(port: u16) -> std::io::Result<tokio::net::TcpListener> {
    let s = tokio::net::TcpSocket::new_v4()?;
    s.set_reuseaddr(true)?;
    setsockopt_u32(s.as_raw_fd(), libc::SOL_IP, libc::IP_TRANSPARENT, 1)?;
    s.bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))?;
    s.listen(1024)
}

/// A connection handed from the accepting thread to a worker.
struct Accepted {
    stream: std::net::TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    permit: OwnedSemaphorePermit,
}

/// A worker thread: serves the connections it is handed until the
/// accepting thread goes away, then closes them all.
fn worker(mut queue: mpsc::UnboundedReceiver<Accepted>) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "L7 proxy worker could not start; its connections close");
            return;
        }
    };
    rt.block_on(async move {
        while let Some(a) = queue.recv().await {
            let Ok(stream) = tokio::net::TcpStream::from_std(a.stream) else {
                continue;
            };
            tokio::spawn(async move {
                serve_connection(stream, a.peer, a.shared).await;
                drop(a.permit);
            });
        }
    });
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    workers: Vec<mpsc::UnboundedSender<Accepted>>,
) {
    let permits = Arc::new(Semaphore::new(shared.config.max_connections.max(1)));
    let mut backoff = Duration::from_millis(5);
    let mut next = 0usize;
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        match listener.accept().await {
            Ok((stream, peer)) => {
                backoff = Duration::from_millis(5);
                let Ok(stream) = stream.into_std() else {
                    continue;
                };
                let accepted = Accepted {
                    stream,
                    peer,
                    shared: shared.clone(),
                    permit,
                };
                next = (next + 1) % workers.len().max(1);
                if workers.get(next).is_none_or(|w| w.send(accepted).is_err()) {
                    return;
                }
            }
            Err(e) => {
                // Out of descriptors and the like: wait, and try again.
                tracing::warn!(error = %e, "L7 proxy accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}
