//! The gateway's probe listener: `/ready` and `/metrics`, one small
//! request per connection, with a read timeout and a size cap.

use super::*;

/// The probe listener: `/ready` and `/metrics`, one request per
/// connection, within [`ProbeOptions`].
pub(super) async fn probe(
    l: TcpListener,
    m: Arc<GatewayMetrics>,
    o: Arc<ProbeOptions>,
    mut stopped: watch::Receiver<bool>,
) {
    let open = slots(o.max_connections);
    let mut at_cap = false;
    loop {
        let (s, _) = tokio::select! {
            r = l.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of descriptors, say: wait instead of spinning.
                    tracing::warn!("gateway probe accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopped.changed() => break,
        };
        let Ok(permit) = Arc::clone(&open).try_acquire_owned() else {
            if !std::mem::replace(&mut at_cap, true) {
                tracing::warn!(
                    max = o.max_connections,
                    "gateway probe at its connection cap: closing new connections"
                );
            }
            drop(s);
            continue;
        };
        at_cap = false;
        let (m, o) = (m.clone(), o.clone());
        tokio::spawn(async move {
            probe_connection(s, &m, &o).await;
            drop(permit);
        });
    }
}

pub(super) async fn probe_connection(mut s: TcpStream, m: &Arc<GatewayMetrics>, o: &ProbeOptions) {
    let mut buf = vec![
        0u8;
        o.max_request_bytes
            .clamp(MIN_REQUEST_BYTES, MAX_REQUEST_BYTES)
    ];
    let read = async {
        let mut n = 0;
        loop {
            match parse_probe_request(&buf[..n], buf.len()) {
                ProbeRequest::Partial => {}
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
    let reply = probe_answer(req, m);
    let write = async {
        s.write_all(&reply).await?;
        s.shutdown().await
    };
    let _ = tokio::time::timeout(o.write_timeout, write).await;
}

/// What a probe request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ProbeRequest {
    /// `GET` (`head: false`) or `HEAD` (`head: true`) of `/ready`.
    Ready { head: bool },
    /// `GET` or `HEAD` of `/metrics`.
    Metrics { head: bool },
    /// Another path.
    NotFound,
    /// Another method.
    Method,
    /// Not an HTTP/1.x request line.
    Bad,
    /// The head does not end within the limit.
    TooLarge,
    /// The head has not ended yet.
    Partial,
}

/// Parses the request head in `bytes`, which may grow to `max` bytes. Only
/// the request line is interpreted; header lines are skipped, up to the
/// blank line that ends the head.
pub(super) fn parse_probe_request(bytes: &[u8], max: usize) -> ProbeRequest {
    let Some(line_end) = find(bytes, b"\r\n") else {
        return if bytes.len() >= max {
            ProbeRequest::TooLarge
        } else {
            ProbeRequest::Partial
        };
    };
    // A bad request line is answered at once, without waiting for the head.
    let Some((method, target)) = request_line(&bytes[..line_end]) else {
        return ProbeRequest::Bad;
    };
    if find(&bytes[line_end..], b"\r\n\r\n").is_none() {
        return if bytes.len() >= max {
            ProbeRequest::TooLarge
        } else {
            ProbeRequest::Partial
        };
    }
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    let head = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return ProbeRequest::Method,
    };
    match path {
        "/ready" => ProbeRequest::Ready { head },
        "/metrics" => ProbeRequest::Metrics { head },
        _ => ProbeRequest::NotFound,
    }
}

/// `METHOD SP origin-form SP HTTP/1.x`: the method and the target.
pub(super) fn request_line(line: &[u8]) -> Option<(&str, &str)> {
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    let ok = parts.next().is_none()
        && matches!(version, "HTTP/1.0" | "HTTP/1.1")
        && !method.is_empty()
        && method.bytes().all(token)
        && target.starts_with('/')
        && target.bytes().all(|b| b.is_ascii_graphic());
    ok.then_some((method, target))
}

pub(super) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The whole HTTP response to `req`.
pub(super) fn probe_answer(req: ProbeRequest, m: &Arc<GatewayMetrics>) -> Vec<u8> {
    const TEXT: &str = "text/plain; charset=utf-8";
    let (status, ctype, body, head) = match req {
        ProbeRequest::Ready { head } => ("200 OK", TEXT, "ready\n".to_string(), head),
        ProbeRequest::Metrics { head } => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            m.render(),
            head,
        ),
        ProbeRequest::NotFound => ("404 Not Found", TEXT, "not found\n".into(), false),
        ProbeRequest::Method => (
            "405 Method Not Allowed",
            TEXT,
            "GET or HEAD\n".into(),
            false,
        ),
        ProbeRequest::TooLarge => (
            "431 Request Header Fields Too Large",
            TEXT,
            "request head too large\n".into(),
            false,
        ),
        ProbeRequest::Bad | ProbeRequest::Partial => {
            ("400 Bad Request", TEXT, "bad request\n".into(), false)
        }
    };
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head {
        out.extend_from_slice(body.as_bytes());
    }
    out
}
