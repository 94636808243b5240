//! One redirected client connection: hyper serves it, every request is
//! judged by the policy engine, allowed ones go to the original
//! destination on an upstream connection, and each is a flow event.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use mcnet_core::policy::{Decision, HttpRequest, L7Request, Outcome, Proto, Resolved, RuleName};
use mcnet_ebpf_common::{ProxyKey4, ProxyOrigin, MARK_FROM_PROXY};

use super::{setsockopt_u32, Shared};
use crate::flows::{monotonic_ns, FlowRecord, HttpFlow};

/// A client connection as the kernel redirected it.
struct Conn {
    shared: Arc<Shared>,
    client: SocketAddrV4,
    dst: SocketAddrV4,
    origin: ProxyOrigin,
    upstream: tokio::sync::Mutex<Option<hyper::client::conn::http1::SendRequest<Incoming>>>,
}

type ProxyBody = Either<Incoming, Full<Bytes>>;

pub(super) async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
) {
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
