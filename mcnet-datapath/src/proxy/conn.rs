//! One redirected client connection. Request heads are parsed with
//! httparse (see [`super::http1`]) and judged by the policy engine; an
//! allowed request's bytes go to the original destination unchanged on
//! this connection's upstream connection, and the response's bytes come
//! back unchanged; a denied one is answered `403 Forbidden` here. Each
//! request is a flow event. One task serves both sides, so a request costs
//! a read and a write on each.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use http::Uri;
use mcnet_core::policy::{Decision, HttpRequest, L7Request, Outcome, Proto, Resolved, RuleName};
use mcnet_ebpf_common::{ProxyKey4, ProxyOrigin, MARK_FROM_PROXY};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::http1::{self, Body, CopyError, Framer, Parsed, Refusal, RequestHead};
use super::{setsockopt_u32, Shared};
use crate::flows::{monotonic_ns, FlowRecord, HttpFlow};

/// A client connection as the kernel redirected it.
struct Conn {
    shared: Arc<Shared>,
    client: SocketAddrV4,
    dst: SocketAddrV4,
    origin: ProxyOrigin,
}

/// How one exchange ended.
enum Exchange {
    /// The connection may carry another request.
    KeepAlive,
    /// The connection ends here.
    Close,
}

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
    let conn = Conn {
        shared,
        client,
        dst,
        origin,
    };
    conn.serve(stream).await;
}

/// The request as the policy engine sees it: method, path with query and
/// host from the request target, header fields by lower-case name (repeated
/// fields joined with commas). The head's fields move into it.
fn http_request(head: &mut RequestHead) -> HttpRequest {
    let mut headers = BTreeMap::<String, String>::new();
    for (name, value) in std::mem::take(&mut head.headers) {
        match headers.entry(name) {
            std::collections::btree_map::Entry::Occupied(mut o) => {
                let v = o.get_mut();
                v.push(',');
                v.push_str(&value);
            }
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(value);
            }
        }
    }
    let (path, host) = if head.target.starts_with('/') {
        (head.target.clone(), None)
    } else {
        match head.target.parse::<Uri>() {
            Ok(uri) => (
                uri.path_and_query().map_or("/", |p| p.as_str()).to_string(),
                uri.authority().map(|a| a.as_str().to_string()),
            ),
            Err(_) => (head.target.clone(), None),
        }
    };
    HttpRequest {
        method: head.method.clone(),
        path,
        host,
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
    /// Serves requests until either side closes, a timeout, or an error.
    async fn serve(&self, mut client: TcpStream) {
        let mut cbuf = BytesMut::with_capacity(16 * 1024);
        let mut ubuf = BytesMut::with_capacity(16 * 1024);
        let mut upstream: Option<TcpStream> = None;
        loop {
            let head = match self.read_head(&mut client, &mut cbuf).await {
                Ok(Some(h)) => h,
                Ok(None) => return,
                Err(refusal) => {
                    let body = format!("mcnet L7 proxy: {}\n", refusal.why);
                    let _ = answer(&mut client, refusal.status, &body, true, false).await;
                    return;
                }
            };
            match self
                .exchange(head, &mut client, &mut cbuf, &mut upstream, &mut ubuf)
                .await
            {
                Exchange::KeepAlive => {}
                Exchange::Close => return,
            }
        }
    }

    /// The next request head, waiting at most the header timeout; `None`
    /// when the client closes or goes quiet between requests.
    async fn read_head(
        &self,
        client: &mut TcpStream,
        cbuf: &mut BytesMut,
    ) -> Result<Option<RequestHead>, Refusal> {
        let deadline = Instant::now() + self.shared.config.header_timeout;
        loop {
            match http1::parse_request(cbuf) {
                Parsed::Complete(h) => return Ok(Some(h)),
                Parsed::Invalid(r) => return Err(r),
                Parsed::Partial => {}
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match http1::fill(client, cbuf, left).await {
                Ok(0) | Err(_) => return Ok(None),
                Ok(_) => {}
            }
        }
    }

    /// One request and its answer.
    async fn exchange(
        &self,
        mut head: RequestHead,
        client: &mut TcpStream,
        cbuf: &mut BytesMut,
        upstream: &mut Option<TcpStream>,
        ubuf: &mut BytesMut,
    ) -> Exchange {
        let started = Instant::now();
        let head_request = head.method.eq_ignore_ascii_case("HEAD");
        let http = http_request(&mut head);
        let outcome = self.judge(&http);
        let stats = &self.shared.stats;
        if !outcome.verdict.is_allow() {
            stats.denied.fetch_add(1, Ordering::Relaxed);
            self.event(&outcome, &http, "l7-denied", 403, started.elapsed());
            let body = format!("Access denied: {}\n", outcome.explanation);
            // The body, if any, is skipped only when it is small and here
            // already; otherwise the connection ends with the answer.
            let skip = match head.body {
                Body::Empty => Some(0),
                Body::Length(n) if !head.expect_continue => usize::try_from(n)
                    .ok()
                    .filter(|n| head.len + n <= cbuf.len()),
                _ => None,
            };
            let close = head.close || skip.is_none();
            if answer(client, 403, &body, close, head_request)
                .await
                .is_err()
                || close
            {
                return Exchange::Close;
            }
            cbuf.advance(head.len + skip.unwrap_or(0));
            return Exchange::KeepAlive;
        }
        let config = &self.shared.config;
        let fresh = match upstream.take() {
            Some(u) if alive(&u).await => u,
            _ => {
                ubuf.clear();
                match self.connect().await {
                    Ok(u) => u,
                    Err(status) => {
                        stats.upstream_errors.fetch_add(1, Ordering::Relaxed);
                        self.event(
                            &outcome,
                            &http,
                            "l7-upstream-error",
                            status,
                            started.elapsed(),
                        );
                        let _ = answer(client, status, &upstream_error(status), true, head_request)
                            .await;
                        return Exchange::Close;
                    }
                }
            }
        };
        let up = upstream.insert(fresh);
        if head.expect_continue && head.body != Body::Empty {
            // Allowed: the client may send its body now. The destination's
            // own 100 Continue is then skipped below.
            if client
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .await
                .is_err()
            {
                return Exchange::Close;
            }
        }
        let sent = http1::relay(
            client,
            cbuf,
            head.len,
            Framer::new(head.body),
            up,
            config.header_timeout,
        )
        .await;
        if let Err(e) = sent {
            *upstream = None;
            if let CopyError::Framing(why) = e {
                let _ = answer(
                    client,
                    400,
                    &format!("mcnet L7 proxy: {why}\n"),
                    true,
                    head_request,
                )
                .await;
            }
            return Exchange::Close;
        }
        // The response head (interim 1xx answers are passed on, or skipped
        // when they answer the proxy's own 100 Continue).
        let response = loop {
            match http1::parse_response(ubuf, head_request) {
                Parsed::Complete(r) if (100..200).contains(&r.code) => {
                    if r.code == 101 {
                        *upstream = None;
                        return Exchange::Close;
                    }
                    if !(r.code == 100 && head.expect_continue)
                        && client.write_all(&ubuf[..r.len]).await.is_err()
                    {
                        return Exchange::Close;
                    }
                    ubuf.advance(r.len);
                }
                Parsed::Complete(r) => break r,
                Parsed::Invalid(refusal) => {
                    *upstream = None;
                    stats.upstream_errors.fetch_add(1, Ordering::Relaxed);
                    self.event(&outcome, &http, "l7-upstream-error", 502, started.elapsed());
                    let _ = answer(
                        client,
                        502,
                        &format!("mcnet L7 proxy: {}\n", refusal.why),
                        true,
                        head_request,
                    )
                    .await;
                    return Exchange::Close;
                }
                Parsed::Partial => {
                    let Some(up) = upstream.as_mut() else {
                        return Exchange::Close;
                    };
                    let got = http1::fill(up, ubuf, config.response_timeout).await;
                    if !matches!(got, Ok(n) if n > 0) {
                        *upstream = None;
                        stats.upstream_errors.fetch_add(1, Ordering::Relaxed);
                        let status = match got {
                            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => 504,
                            _ => 502,
                        };
                        self.event(
                            &outcome,
                            &http,
                            "l7-upstream-error",
                            status,
                            started.elapsed(),
                        );
                        let _ = answer(client, status, &upstream_error(status), true, head_request)
                            .await;
                        return Exchange::Close;
                    }
                }
            }
        };
        stats.forwarded.fetch_add(1, Ordering::Relaxed);
        self.event(
            &outcome,
            &http,
            "l7-allowed",
            response.code,
            started.elapsed(),
        );
        let Some(up) = upstream.as_mut() else {
            return Exchange::Close;
        };
        let copied = http1::relay(
            up,
            ubuf,
            response.len,
            Framer::new(response.body),
            client,
            config.response_timeout,
        )
        .await;
        if copied.is_err() || response.close || !ubuf.is_empty() {
            // A destination that sent more than its answer, or whose
            // answer ends the connection, is not used again.
            *upstream = None;
        }
        if copied.is_err() || response.close || head.close {
            return Exchange::Close;
        }
        Exchange::KeepAlive
    }

    /// The engine's verdict on a request, explained only when refused (the
    /// 403 body); allowed requests skip building the explanation.
    fn judge(&self, http: &HttpRequest) -> Outcome {
        let policy = self.shared.policy.current();
        let resolve = |a: &Ipv4Addr| Resolved {
            pod: policy.pod_by_ip(&(*a).into()),
            identity: policy.identity_of_ip((*a).into()),
        };
        let (src, dst) = (resolve(self.client.ip()), resolve(self.dst.ip()));
        let l7 = Some(L7Request::Http(http));
        let outcome = policy.eval_resolved_unexplained(src, dst, self.dst.port(), Proto::Tcp, l7);
        if outcome.verdict.is_allow() {
            return outcome;
        }
        policy.eval_resolved(src, dst, self.dst.port(), Proto::Tcp, l7)
    }

    /// Opens the upstream connection from the node, marked with the
    /// client's identity for the destination's TC program; the status to
    /// answer when that fails.
    async fn connect(&self) -> Result<TcpStream, u16> {
        let config = &self.shared.config;
        let socket = tokio::net::TcpSocket::new_v4().map_err(|_| 502u16)?;
        let mark = MARK_FROM_PROXY | (self.origin.src_identity << 8);
        setsockopt_u32(socket.as_raw_fd(), libc::SOL_SOCKET, libc::SO_MARK, mark)
            .map_err(|_| 502u16)?;
        let _ = socket.set_nodelay(true);
        match tokio::time::timeout(
            config.connect_timeout,
            socket.connect(SocketAddr::V4(self.dst)),
        )
        .await
        {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(e)) => {
                tracing::debug!(dst = %self.dst, error = %e, "L7 proxy: connect failed");
                Err(502)
            }
            Err(_) => Err(504),
        }
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

/// Whether a kept upstream connection can carry another request: one the
/// destination closed (or wrote to unasked) cannot. Costs a system call
/// only when the socket has shown readiness since the last read.
async fn alive(up: &TcpStream) -> bool {
    let ready = std::future::poll_fn(|cx| Poll::Ready(up.poll_read_ready(cx).is_ready())).await;
    if !ready {
        return true;
    }
    let mut byte = [0u8; 1];
    matches!(up.try_read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

fn upstream_error(status: u16) -> String {
    let what = if status == 504 {
        "Gateway Timeout"
    } else {
        "Bad Gateway"
    };
    format!("mcnet L7 proxy: {what}\n")
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        403 => "Forbidden",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        504 => "Gateway Timeout",
        _ => "Error",
    }
}

/// Answers the client from the proxy itself (the head alone when the
/// request was HEAD).
async fn answer(
    client: &mut TcpStream,
    status: u16,
    body: &str,
    close: bool,
    head_request: bool,
) -> std::io::Result<()> {
    let connection = if close { "close" } else { "keep-alive" };
    let text = format!(
        "HTTP/1.1 {status} {}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: {connection}\r\n\r\n{}",
        reason_phrase(status),
        body.len(),
        if head_request { "" } else { body },
    );
    client.write_all(text.as_bytes()).await
}
