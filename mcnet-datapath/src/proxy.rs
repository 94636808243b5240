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
//! [`MARK_TO_PROXY`]. The node's policy routing (see [`install_routing`])
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
//! [`MARK_FROM_PROXY`] plus the client's identity, which the destination's
//! TC program checks; a denied one is answered `403 Forbidden` with a body
//! that names the policy, and never leaves the node.
//!
//! # Fail closed
//!
//! When the proxy is not running its listener is not in the sockmap, and
//! the kernel drops the connection with `drop-proxy-unavailable`.
//!
//! HTTP/1.1 only (keep-alive and pipelining, parsed by hyper). Kafka and
//! DNS rules are not proxied: a Kafka port's connections get HTTP errors
//! from here (and so fail), and UDP (DNS) ports with L7 rules are dropped in
//! the kernel.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use mcnet_core::policy::{
    Compiled, Decision, HttpRequest, L7Request, Outcome, Proto, Resolved, RuleName,
};
use mcnet_ebpf_common::{
    ProxyKey4, ProxyOrigin, MARK_FROM_PROXY, MARK_TO_PROXY, PROXY_ROUTE_TABLE,
};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use crate::flows::{monotonic_ns, FlowRecord, HttpFlow};
use crate::{Error, Result};

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

/// A client connection as the kernel redirected it.
struct Conn {
    shared: Arc<Shared>,
    client: SocketAddrV4,
    dst: SocketAddrV4,
    origin: ProxyOrigin,
    upstream: tokio::sync::Mutex<Option<hyper::client::conn::http1::SendRequest<Incoming>>>,
}

type ProxyBody = Either<Incoming, Full<Bytes>>;

async fn serve_connection(stream: tokio::net::TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    shared.stats.connections.fetch_add(1, Ordering::Relaxed);
    let (SocketAddr::V4(client), Ok(SocketAddr::V4(dst))) = (peer, stream.local_addr()) else {
        shared.stats.refused.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let _ = stream.set_nodelay(true);
    let key = ProxyKey4 {
        client: client.ip().octets(),
        dst: dst.ip().octets(),
        client_port: client.port(),
        dst_port: dst.port(),
    };
    let Some(origin) = shared.origins.origin(&key) else {
        tracing::warn!(%client, %dst, "L7 proxy: a connection the kernel did not redirect; closed");
        shared.stats.refused.fetch_add(1, Ordering::Relaxed);
        return;
    };
    // The kernel judged the client by its address as the policy then
    // stood; if the policy now resolves that address elsewhere, the
    // connection is not trusted.
    let policy = shared.policy.current();
    let now = policy.identity_of_ip((*client.ip()).into()).get();
    if now != origin.src_identity || origin.src_identity >> 24 != 0 {
        tracing::warn!(%client, kernel = origin.src_identity, policy = now,
            "L7 proxy: client identity disagrees with the policy; closed");
        shared.stats.refused.fetch_add(1, Ordering::Relaxed);
        return;
    }
    drop(policy);
    let conn = Arc::new(Conn {
        shared: shared.clone(),
        client,
        dst,
        origin,
        upstream: tokio::sync::Mutex::new(None),
    });
    let service = hyper::service::service_fn(move |req| {
        let conn = conn.clone();
        async move { Ok::<_, Infallible>(conn.handle(req).await) }
    });
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(shared.config.header_timeout)
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service)
        .await;
    if let Err(e) = served {
        tracing::debug!(%client, %dst, error = %e, "L7 proxy connection ended");
    }
}

/// The request as the policy engine sees it.
fn http_request(req: &Request<Incoming>) -> HttpRequest {
    let mut headers = std::collections::BTreeMap::<String, String>::new();
    for (name, value) in req.headers() {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        headers
            .entry(name.as_str().to_string())
            .and_modify(|v| {
                v.push(',');
                v.push_str(&value);
            })
            .or_insert(value);
    }
    HttpRequest {
        method: req.method().as_str().to_string(),
        path: req
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string(),
        host: req.uri().authority().map(|a| a.as_str().to_string()),
        headers,
    }
}

/// The rule that decided, for events and the 403 body.
fn deciding_rule(o: &Outcome) -> Option<&RuleName> {
    let side = if o.ingress.verdict != Decision::Allow || o.ingress.l7_enforced {
        &o.ingress
    } else {
        &o.egress
    };
    side.rules.first()
}

fn deciding_policy(o: &Outcome) -> Option<String> {
    if let Some(r) = deciding_rule(o) {
        return Some(r.policy.clone());
    }
    let side = if o.ingress.verdict != Decision::Allow {
        &o.ingress
    } else {
        &o.egress
    };
    side.isolated_by.first().cloned()
}

impl Conn {
    async fn handle(&self, req: Request<Incoming>) -> Response<ProxyBody> {
        let started = Instant::now();
        let http = http_request(&req);
        let policy = self.shared.policy.current();
        let resolve = |a: &Ipv4Addr| Resolved {
            pod: policy.pod_by_ip(&(*a).into()),
            identity: policy.identity_of_ip((*a).into()),
        };
        let (src, dst) = (resolve(self.client.ip()), resolve(self.dst.ip()));
        let l7 = Some(L7Request::Http(&http));
        let mut outcome =
            policy.eval_resolved_unexplained(src, dst, self.dst.port(), Proto::Tcp, l7);
        if !outcome.verdict.is_allow() {
            // Refusals are explained (the 403 body); allowed requests skip it.
            outcome = policy.eval_resolved(src, dst, self.dst.port(), Proto::Tcp, l7);
        }
        drop(policy);
        let stats = &self.shared.stats;
        let (response, reason, code) = if outcome.verdict.is_allow() {
            match self.forward(req).await {
                Ok(resp) => {
                    stats.forwarded.fetch_add(1, Ordering::Relaxed);
                    let code = resp.status().as_u16();
                    (resp.map(Either::Left), "l7-allowed", code)
                }
                Err(status) => {
                    stats.upstream_errors.fetch_add(1, Ordering::Relaxed);
                    let body = format!(
                        "mcnet L7 proxy: {}\n",
                        status.canonical_reason().unwrap_or("")
                    );
                    (plain(status, body), "l7-upstream-error", status.as_u16())
                }
            }
        } else {
            stats.denied.fetch_add(1, Ordering::Relaxed);
            let body = format!("Access denied: {}\n", outcome.explanation);
            (plain(StatusCode::FORBIDDEN, body), "l7-denied", 403)
        };
        self.event(&outcome, &http, reason, code, started.elapsed());
        response
    }

    /// Sends the request on this connection's upstream connection (opened
    /// on first use); an error status when the destination fails.
    async fn forward(&self, req: Request<Incoming>) -> Result<Response<Incoming>, StatusCode> {
        let config = &self.shared.config;
        let mut upstream = self.upstream.lock().await;
        let reusable = upstream.as_ref().is_some_and(|s| !s.is_closed());
        if !reusable {
            *upstream = Some(self.connect().await?);
        }
        let Some(sender) = upstream.as_mut() else {
            return Err(StatusCode::BAD_GATEWAY);
        };
        if sender.ready().await.is_err() {
            *upstream = None;
            return Err(StatusCode::BAD_GATEWAY);
        }
        match tokio::time::timeout(config.response_timeout, sender.send_request(req)).await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => {
                tracing::debug!(dst = %self.dst, error = %e, "L7 proxy: upstream request failed");
                *upstream = None;
                Err(StatusCode::BAD_GATEWAY)
            }
            Err(_) => {
                *upstream = None;
                Err(StatusCode::GATEWAY_TIMEOUT)
            }
        }
    }

    /// Opens the upstream connection from the node, marked with the
    /// client's identity for the destination's TC program.
    async fn connect(
        &self,
    ) -> Result<hyper::client::conn::http1::SendRequest<Incoming>, StatusCode> {
        let config = &self.shared.config;
        let socket = tokio::net::TcpSocket::new_v4().map_err(|_| StatusCode::BAD_GATEWAY)?;
        let mark = MARK_FROM_PROXY | (self.origin.src_identity << 8);
        setsockopt_u32(socket.as_raw_fd(), libc::SOL_SOCKET, libc::SO_MARK, mark)
            .map_err(|_| StatusCode::BAD_GATEWAY)?;
        let _ = socket.set_nodelay(true);
        let stream = match tokio::time::timeout(
            config.connect_timeout,
            socket.connect(SocketAddr::V4(self.dst)),
        )
        .await
        {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::debug!(dst = %self.dst, error = %e, "L7 proxy: connect failed");
                return Err(StatusCode::BAD_GATEWAY);
            }
            Err(_) => return Err(StatusCode::GATEWAY_TIMEOUT),
        };
        let (sender, connection) = hyper::client::conn::http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|_| StatusCode::BAD_GATEWAY)?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(sender)
    }

    fn event(
        &self,
        o: &Outcome,
        http: &HttpRequest,
        reason: &'static str,
        code: u16,
        took: Duration,
    ) {
        if self.shared.events.capacity() == 0 {
            // The reader is behind: count the loss before building a record.
            self.shared
                .stats
                .events_lost
                .fetch_add(1, Ordering::Relaxed);
            return;
        }
        let allowed = reason == "l7-allowed";
        let direction = if o.ingress.l7_enforced || o.ingress.verdict != Decision::Allow {
            "ingress"
        } else {
            "egress"
        };
        let record = FlowRecord {
            time_ns: monotonic_ns(),
            kind: "L7",
            verdict: if allowed { "allow" } else { "deny" },
            hubble_verdict: if allowed { "FORWARDED" } else { "DROPPED" },
            reason,
            src: (*self.client.ip()).into(),
            dst: (*self.dst.ip()).into(),
            sport: self.client.port(),
            dport: self.dst.port(),
            icmp_type: None,
            protocol: "TCP".into(),
            direction,
            src_identity: o.from_identity.get(),
            dst_identity: o.to_identity.get(),
            is_reply: false,
            l7: true,
            ifindex: self.origin.ifindex,
            http: Some(HttpFlow {
                method: http.method.clone(),
                url: http.path.clone(),
                host: http.host.clone().or_else(|| {
                    http.headers
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case("host"))
                        .map(|(_, v)| v.clone())
                }),
                code,
                protocol: "HTTP/1.1",
                latency_ns: took.as_nanos().min(u64::MAX as u128) as u64,
            }),
            policy: deciding_policy(o),
            rule: deciding_rule(o).map(|r| r.to_string()),
        };
        if self.shared.events.try_send(record).is_err() {
            self.shared
                .stats
                .events_lost
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn plain(status: StatusCode, body: String) -> Response<ProxyBody> {
    let mut resp = Response::new(Either::Right(Full::new(Bytes::from(body))));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// Configures the node's policy routing so that packets the kernel marked
/// [`MARK_TO_PROXY`] are delivered locally (to the proxy) rather than
/// forwarded: `ip rule add pref 90 fwmark 0x4d/0xff lookup 100` and `ip
/// route replace local 0.0.0.0/0 dev lo table 100`, in the network
/// namespace at `netns` (the caller's when `None`). Idempotent.
pub fn install_routing(netns: Option<&std::path::Path>) -> Result<()> {
    let mut prefix: Vec<String> = Vec::new();
    if let Some(ns) = netns {
        // `ip -n` takes a name under /run/netns; other paths go through nsenter.
        match (ns.parent(), ns.file_name()) {
            (Some(dir), Some(name)) if dir == std::path::Path::new("/run/netns") => {
                prefix = vec!["-n".into(), name.to_string_lossy().into_owned()];
            }
            _ => {
                return crate::netns::run_in(ns, || install_routing(None)).map_err(|source| {
                    Error::Netns {
                        what: format!("entering {}", ns.display()),
                        source,
                    }
                })?;
            }
        }
    }
    let table = PROXY_ROUTE_TABLE.to_string();
    let mark = format!("{MARK_TO_PROXY:#x}/0xff");
    let ip = |args: &[&str]| -> Result<std::process::Output> {
        let mut all: Vec<&str> = prefix.iter().map(String::as_str).collect();
        all.extend_from_slice(args);
        let out = std::process::Command::new("ip")
            .args(&all)
            .output()
            .map_err(|source| Error::Spawn {
                command: format!("ip {}", all.join(" ")),
                source,
            })?;
        if out.status.success() {
            Ok(out)
        } else {
            Err(Error::Command {
                command: format!("ip {}", all.join(" ")),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            })
        }
    };
    let rules = ip(&["-4", "rule", "show", "pref", "90"])?;
    if !String::from_utf8_lossy(&rules.stdout).contains(&format!("lookup {table}")) {
        ip(&[
            "-4", "rule", "add", "pref", "90", "fwmark", &mark, "lookup", &table,
        ])?;
    }
    ip(&[
        "-4",
        "route",
        "replace",
        "local",
        "0.0.0.0/0",
        "dev",
        "lo",
        "table",
        &table,
    ])?;
    Ok(())
}
