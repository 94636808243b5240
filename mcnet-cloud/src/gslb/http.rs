//! The two HTTP/1.x exchanges of the GSLB, both parsed with httparse and
//! bounded in size and time: the health check's response (the client side)
//! and the `/metrics` listener (the server side).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::server::Backoff;

/// The most of a health check's response read: its status line and
/// headers must end within these many bytes.
const HEALTH_RESPONSE_MAX: usize = 4096;

/// Headers a health check's response, or a metrics request, may carry.
const MAX_HEADERS: usize = 64;

/// Whether an HTTP health check passes: `GET path` on `addr` answers
/// `HTTP/1.x NNN` with NNN from 200 to 399, its head complete within 4 KiB.
/// The caller bounds the time.
pub(super) async fn http_check(addr: &str, host: &str, path: &str) -> bool {
    let Ok(mut s) = TcpStream::connect(addr).await else {
        return false;
    };
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: mcnet-gslb\r\nConnection: close\r\n\r\n"
    );
    if s.write_all(req.as_bytes()).await.is_err() {
        return false;
    }
    let mut buf = vec![0u8; HEALTH_RESPONSE_MAX];
    let mut n = 0;
    loop {
        match health_status(&buf[..n]) {
            Head::Complete(code) => return (200..400).contains(&code),
            Head::Invalid => return false,
            Head::Partial if n == buf.len() => return false,
            Head::Partial => {}
        }
        match s.read(&mut buf[n..]).await {
            Ok(0) | Err(_) => return false,
            Ok(k) => n += k,
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Head {
    Complete(u16),
    Partial,
    Invalid,
}

/// The status of a response head in `bytes`.
fn health_status(bytes: &[u8]) -> Head {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut r = httparse::Response::new(&mut headers);
    match r.parse(bytes) {
        Ok(httparse::Status::Complete(_)) => r.code.map_or(Head::Invalid, Head::Complete),
        Ok(httparse::Status::Partial) => Head::Partial,
        Err(_) => Head::Invalid,
    }
}

/// Limits of [`serve_metrics`]; the defaults are documented on each field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricsOptions {
    /// Open connections at most (default 32; a handful of scrapers is
    /// normal). At the cap, new connections are closed at once.
    pub max_connections: usize,
    /// How long the request head may take to arrive (default 5 s).
    pub read_timeout: Duration,
    /// How long the answer may take to be written (default 10 s).
    pub write_timeout: Duration,
    /// The largest request head, bytes (default 8 KiB); a longer one gets 431.
    pub max_request_bytes: usize,
    /// The longest sleep after `accept` fails (default 1 s).
    pub accept_backoff_max: Duration,
}

impl Default for MetricsOptions {
    fn default() -> MetricsOptions {
        MetricsOptions {
            max_connections: 32,
            read_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(10),
            max_request_bytes: 8192,
            accept_backoff_max: Duration::from_secs(1),
        }
    }
}

/// Serves `registry` at `GET /metrics` (Prometheus text format, also
/// `HEAD`) on `listener`, forever, one request per connection: 404 for
/// another path, 405 for another method, 400 for a request that is not
/// HTTP/1.x, 431 for a head over [`MetricsOptions::max_request_bytes`]; a
/// connection whose request does not arrive within the read timeout is
/// closed without an answer.
pub async fn serve_metrics(
    listener: TcpListener,
    registry: Arc<Registry>,
    options: MetricsOptions,
) {
    let options = Arc::new(options);
    let slots = Arc::new(Semaphore::new(options.max_connections.max(1)));
    let at_cap = AtomicBool::new(false);
    let mut backoff = Backoff::new("metrics accept", options.accept_backoff_max);
    loop {
        let (s, _) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                backoff.failed(&e).await;
                continue;
            }
        };
        backoff.succeeded();
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            if !at_cap.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    max = options.max_connections,
                    "metrics connection cap reached: closing new connections"
                );
            }
            drop(s);
            continue;
        };
        at_cap.store(false, Ordering::Relaxed);
        let (registry, options) = (Arc::clone(&registry), Arc::clone(&options));
        tokio::spawn(async move {
            metrics_connection(s, &registry, &options).await;
            drop(permit);
        });
    }
}

async fn metrics_connection(mut s: TcpStream, registry: &Registry, o: &MetricsOptions) {
    let mut buf = vec![0u8; o.max_request_bytes.max(16)];
    let read = async {
        let mut n = 0;
        loop {
            match parse_request(&buf[..n], buf.len()) {
                Request::Partial => {}
                done => return Some(done),
            }
            match s.read(&mut buf[n..]).await {
                // A client that closes mid-request gets nothing.
                Ok(0) | Err(_) => return None,
                Ok(k) => n += k,
            }
        }
    };
    let Ok(Some(req)) = tokio::time::timeout(o.read_timeout, read).await else {
        return;
    };
    let reply = answer(req, registry);
    let write = async {
        s.write_all(&reply).await?;
        s.shutdown().await
    };
    let _ = tokio::time::timeout(o.write_timeout, write).await;
}

/// What a metrics request asks for.
#[derive(Debug, PartialEq, Eq)]
enum Request {
    /// `GET` (`head: false`) or `HEAD` (`head: true`) of `/metrics`.
    Metrics { head: bool },
    /// Another path.
    NotFound,
    /// Another method.
    Method,
    /// Not HTTP/1.x.
    Bad,
    /// The head does not end within the limit.
    TooLarge,
    /// The head has not ended yet.
    Partial,
}

/// Parses the request head in `bytes`, which may grow to `max` bytes.
fn parse_request(bytes: &[u8], max: usize) -> Request {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut r = httparse::Request::new(&mut headers);
    match r.parse(bytes) {
        Ok(httparse::Status::Complete(_)) => {
            let (Some(method), Some(path)) = (r.method, r.path) else {
                return Request::Bad;
            };
            let path = path.split_once('?').map_or(path, |(p, _)| p);
            match (method, path) {
                ("GET", "/metrics") => Request::Metrics { head: false },
                ("HEAD", "/metrics") => Request::Metrics { head: true },
                ("GET" | "HEAD", _) => Request::NotFound,
                _ => Request::Method,
            }
        }
        Ok(httparse::Status::Partial) if bytes.len() >= max => Request::TooLarge,
        Ok(httparse::Status::Partial) => Request::Partial,
        Err(httparse::Error::TooManyHeaders) => Request::TooLarge,
        Err(_) => Request::Bad,
    }
}

/// The whole HTTP response to `req`.
fn answer(req: Request, registry: &Registry) -> Vec<u8> {
    let (status, body, head) = match req {
        Request::Metrics { head } => ("200 OK", mcnet_core::metrics::encode(registry), head),
        Request::NotFound => ("404 Not Found", "not found\n".into(), false),
        Request::Method => ("405 Method Not Allowed", "GET or HEAD\n".into(), false),
        Request::TooLarge => (
            "431 Request Header Fields Too Large",
            "request head too large\n".into(),
            false,
        ),
        Request::Bad | Request::Partial => ("400 Bad Request", "bad request\n".into(), false),
    };
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn health_status_reads_the_status_line() {
        for (bytes, want) in [
            (
                &b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"[..],
                Head::Complete(200),
            ),
            (
                b"HTTP/1.0 302 Found\r\nLocation: /\r\n\r\n",
                Head::Complete(302),
            ),
            (b"HTTP/1.1 503 Unavailable\r\n\r\n", Head::Complete(503)),
            (b"HTTP/1.1 200 OK\r\n", Head::Partial),
            (b"HTTP/1.1 2000 OK\r\n\r\n", Head::Invalid),
            (b"garbage!!200 OK\r\n\r\n", Head::Invalid),
            (b"HTTP/2.0 200 OK\r\n\r\n", Head::Invalid),
            (b"SSH-2.0-OpenSSH_9.6\r\n", Head::Invalid),
        ] {
            assert_eq!(
                health_status(bytes),
                want,
                "{}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    /// A loopback server that writes `reply` to every connection and keeps it open.
    async fn replying(reply: &'static [u8]) -> String {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut b = [0u8; 1024];
                    let _ = s.read(&mut b).await;
                    let _ = s.write_all(reply).await;
                    tokio::time::sleep(Duration::from_secs(5)).await;
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn the_http_check_passes_2xx_and_3xx_only() {
        let big: &'static [u8] = Box::leak(
            format!("HTTP/1.1 200 OK\r\nX: {}\r\n", "a".repeat(8000))
                .into_bytes()
                .into_boxed_slice(),
        );
        for (reply, healthy) in [
            (&b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"[..], true),
            (b"HTTP/1.0 301 Moved\r\nLocation: /x\r\n\r\n", true),
            (b"HTTP/1.1 500 Internal Server Error\r\n\r\n", false),
            (b"HTTP/1.1 404 Not Found\r\n\r\n", false),
            // Each passed the one-byte check (its tenth byte is a 2).
            (b"HTTP/1.1 2000 OK\r\n\r\n", false),
            (b"garbage!!200 OK\r\n\r\n", false),
            (b"HTTP/2.0 200 OK\r\n\r\n", false),
            (b"HTTP/1.1 204 No Content\r\n", false), // the head never ends
            (big, false),                            // nor within 4 KiB
        ] {
            let addr = replying(reply).await;
            let ok = tokio::time::timeout(
                Duration::from_millis(500),
                http_check(&addr, &addr, "/healthz"),
            )
            .await
            .unwrap_or(false);
            assert_eq!(
                ok,
                healthy,
                "{}",
                String::from_utf8_lossy(&reply[..reply.len().min(40)])
            );
        }
    }

    #[test]
    fn metrics_requests_are_classified() {
        let max = 8192;
        for (bytes, want) in [
            (
                &b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"[..],
                Request::Metrics { head: false },
            ),
            (
                b"GET /metrics?x=1 HTTP/1.0\r\n\r\n",
                Request::Metrics { head: false },
            ),
            (
                b"HEAD /metrics HTTP/1.1\r\n\r\n",
                Request::Metrics { head: true },
            ),
            (b"GET / HTTP/1.1\r\n\r\n", Request::NotFound),
            (b"POST /metrics HTTP/1.1\r\n\r\n", Request::Method),
            (b"GET /metrics HTTP/1.1\r\nHost", Request::Partial),
            (b"\x16\x03\x01\x00\xa5\x01\x00\x00\r\n\r\n", Request::Bad),
            (b"GET /metrics HTTP/9.9\r\n\r\n", Request::Bad),
        ] {
            assert_eq!(
                parse_request(bytes, max),
                want,
                "{}",
                String::from_utf8_lossy(bytes)
            );
        }
        let long = format!("GET /metrics HTTP/1.1\r\nX: {}", "a".repeat(100));
        assert_eq!(parse_request(long.as_bytes(), 64), Request::TooLarge);
    }

    /// A well-formed reply: a status line we send, a Content-Length that
    /// matches the body, and the head within the bytes.
    fn well_formed(reply: &[u8], head: bool) -> Result<u16, TestCaseError> {
        let mut headers = [httparse::EMPTY_HEADER; 8];
        let mut r = httparse::Response::new(&mut headers);
        let Ok(httparse::Status::Complete(at)) = r.parse(reply) else {
            return Err(TestCaseError::fail("not a complete HTTP response"));
        };
        let code = r.code.unwrap_or(0);
        prop_assert!([200, 400, 404, 405, 431].contains(&code), "status {code}");
        let len: usize = r
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("content-length"))
            .and_then(|h| std::str::from_utf8(h.value).ok()?.parse().ok())
            .ok_or_else(|| TestCaseError::fail("no Content-Length"))?;
        let body = reply.len() - at;
        prop_assert_eq!(body, if head { 0 } else { len });
        Ok(code)
    }

    fn valid_request() -> impl Strategy<Value = Vec<u8>> {
        (
            prop::sample::select(vec!["GET", "HEAD", "POST", "get", "GET "]),
            prop::sample::select(vec!["/metrics", "/", "/metrics?a=b", "*", "/metrics/x"]),
            prop::sample::select(vec!["HTTP/1.1", "HTTP/1.0", "HTTP/2", "http/1.1"]),
            prop::collection::vec(("[A-Za-z-]{1,12}", "[ -~]{0,40}"), 0..6),
        )
            .prop_map(|(m, p, v, hs)| {
                let mut s = format!("{m} {p} {v}\r\n");
                for (k, val) in hs {
                    s.push_str(&format!("{k}: {val}\r\n"));
                }
                s.push_str("\r\n");
                s.into_bytes()
            })
    }

    fn mutated(v: Vec<u8>, edits: Vec<(usize, u8)>, cut: usize) -> Vec<u8> {
        let mut v = v;
        for (at, b) in edits {
            if !v.is_empty() {
                let i = at % v.len();
                v[i] = b;
            }
        }
        v.truncate(v.len().saturating_sub(cut));
        v
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 5000, ..ProptestConfig::default() })]

        /// Random bytes and mutated requests: the reader never panics, and
        /// every reply is a well-formed response of a status we send.
        #[test]
        fn the_metrics_reader_never_panics_and_answers_well_formed(
            bytes in prop_oneof![
                prop::collection::vec(any::<u8>(), 0..600),
                (valid_request(), prop::collection::vec((any::<usize>(), any::<u8>()), 0..4), 0usize..8)
                    .prop_map(|(v, e, c)| mutated(v, e, c)),
            ],
            max in 16usize..1024,
        ) {
            let registry = Registry::default();
            let req = parse_request(&bytes, max);
            if req == Request::Partial {
                prop_assert!(bytes.len() < max);
                return Ok(());
            }
            let head = req == Request::Metrics { head: true };
            let code = well_formed(&answer(req, &registry), head)?;
            if code == 200 {
                prop_assert!(bytes.starts_with(b"GET /metrics") || bytes.starts_with(b"HEAD /metrics"));
            }
        }
    }
}
