//! HTTP/1.1 framing for the proxy: heads are parsed by httparse, bodies
//! are delimited as RFC 9112 section 6 says and copied through unchanged.
//!
//! The proxy forwards the bytes the client sent, so the destination parses
//! exactly what the policy judged. That makes framing the security
//! boundary: anything two parsers could read differently (both
//! `Content-Length` and `Transfer-Encoding`, differing lengths, a transfer
//! coding other than `chunked`, obsolete line folding, an upgrade) is
//! refused rather than forwarded.

use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The largest request or response head accepted, and the most bytes a
/// chunk-size line or trailer section may take.
pub(super) const MAX_HEAD: usize = 64 * 1024;
/// The most header fields in a head.
pub(super) const MAX_HEADERS: usize = 100;

/// How a message's body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Body {
    /// No body.
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the sender closes (responses only).
    UntilClose,
}

/// Why a head is refused, with the status that says so.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Refusal {
    pub status: u16,
    pub why: &'static str,
}

const fn refuse(status: u16, why: &'static str) -> Refusal {
    Refusal { status, why }
}

/// What parsing a head gave.
#[derive(Debug)]
pub(super) enum Parsed<T> {
    Complete(T),
    /// More bytes are needed.
    Partial,
    Invalid(Refusal),
}

/// A request head.
#[derive(Debug)]
pub(super) struct RequestHead {
    pub method: String,
    /// The request target as sent (origin form, absolute form, `*`).
    pub target: String,
    /// Header fields in order, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Bytes the head takes, up to and including the blank line.
    pub len: usize,
    pub body: Body,
    /// The connection ends after this exchange (`Connection: close`, or
    /// HTTP/1.0 without `keep-alive`).
    pub close: bool,
    /// `Expect: 100-continue`.
    pub expect_continue: bool,
}

/// A response head.
#[derive(Debug)]
pub(super) struct ResponseHead {
    pub code: u16,
    pub len: usize,
    pub body: Body,
    pub close: bool,
}

fn has_token(value: &str, token: &str) -> bool {
    value
        .split(',')
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// The `Content-Length` of a message: every value, in every field and
/// comma-separated list, must be the same decimal number.
fn content_length(values: &[&str]) -> Result<Option<u64>, ()> {
    let mut found = None;
    for v in values {
        for part in v.split(',') {
            let part = part.trim();
            if part.is_empty() || part.len() > 19 || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(());
            }
            let n: u64 = part.parse().map_err(|_| ())?;
            if found.is_some_and(|f| f != n) {
                return Err(());
            }
            found = Some(n);
        }
    }
    Ok(found)
}

/// Parses a request head from the start of `buf`.
pub(super) fn parse_request(buf: &[u8]) -> Parsed<RequestHead> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut fields);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) if len <= MAX_HEAD => len,
        Ok(httparse::Status::Complete(_)) => {
            return Parsed::Invalid(refuse(431, "request head too large"))
        }
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => {
            return Parsed::Invalid(refuse(431, "request head too large"))
        }
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(httparse::Error::TooManyHeaders) => {
            return Parsed::Invalid(refuse(431, "too many header fields"))
        }
        Err(_) => return Parsed::Invalid(refuse(400, "malformed request head")),
    };
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Parsed::Invalid(refuse(400, "malformed request line"));
    };
    let mut headers = Vec::with_capacity(req.headers.len());
    for h in req.headers.iter() {
        let Ok(value) = std::str::from_utf8(h.value) else {
            return Parsed::Invalid(refuse(400, "a header value is not UTF-8"));
        };
        headers.push((h.name.to_ascii_lowercase(), value.to_string()));
    }
    let values = |name: &str| -> Vec<&str> {
        headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    let connection = values("connection");
    if !values("upgrade").is_empty() || connection.iter().any(|v| has_token(v, "upgrade")) {
        return Parsed::Invalid(refuse(403, "protocol upgrades are not proxied"));
    }
    let te = values("transfer-encoding");
    let cl = values("content-length");
    let body = if !te.is_empty() {
        if !cl.is_empty() {
            return Parsed::Invalid(refuse(
                400,
                "both Content-Length and Transfer-Encoding are set",
            ));
        }
        if minor == 0 {
            return Parsed::Invalid(refuse(400, "Transfer-Encoding in an HTTP/1.0 request"));
        }
        if te.len() != 1 || !te[0].trim().eq_ignore_ascii_case("chunked") {
            return Parsed::Invalid(refuse(501, "a transfer coding other than chunked"));
        }
        Body::Chunked
    } else {
        match content_length(&cl) {
            Ok(None | Some(0)) => Body::Empty,
            Ok(Some(n)) => Body::Length(n),
            Err(()) => return Parsed::Invalid(refuse(400, "invalid Content-Length")),
        }
    };
    let close = if minor == 0 {
        !connection.iter().any(|v| has_token(v, "keep-alive"))
    } else {
        connection.iter().any(|v| has_token(v, "close"))
    };
    let expect_continue = values("expect")
        .iter()
        .any(|v| v.trim().eq_ignore_ascii_case("100-continue"));
    Parsed::Complete(RequestHead {
        method: method.to_string(),
        target: target.to_string(),
        headers,
        len,
        body,
        close,
        expect_continue,
    })
}

/// Parses a response head from the start of `buf`; `head_request` says
/// whether it answers a HEAD request (which has no body).
pub(super) fn parse_response(buf: &[u8], head_request: bool) -> Parsed<ResponseHead> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut fields);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(len)) if len <= MAX_HEAD => len,
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => return Parsed::Partial,
        Ok(_) => return Parsed::Invalid(refuse(502, "response head too large")),
        Err(_) => return Parsed::Invalid(refuse(502, "malformed response head")),
    };
    let (Some(code), Some(minor)) = (resp.code, resp.version) else {
        return Parsed::Invalid(refuse(502, "malformed status line"));
    };
    let values = |name: &str| -> Vec<&str> {
        resp.headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .filter_map(|h| std::str::from_utf8(h.value).ok())
            .collect()
    };
    let connection = values("connection");
    let mut close = if minor == 0 {
        !connection.iter().any(|v| has_token(v, "keep-alive"))
    } else {
        connection.iter().any(|v| has_token(v, "close"))
    };
    let te = values("transfer-encoding");
    let cl = values("content-length");
    let body = if head_request || (100..200).contains(&code) || code == 204 || code == 304 {
        Body::Empty
    } else if !te.is_empty() {
        if !cl.is_empty() {
            return Parsed::Invalid(refuse(
                502,
                "both Content-Length and Transfer-Encoding in a response",
            ));
        }
        let last = te.last().and_then(|v| v.rsplit(',').next()).map(str::trim);
        if last.is_some_and(|c| c.eq_ignore_ascii_case("chunked")) {
            Body::Chunked
        } else {
            close = true;
            Body::UntilClose
        }
    } else {
        match content_length(&cl) {
            Ok(Some(0)) => Body::Empty,
            Ok(Some(n)) => Body::Length(n),
            Ok(None) => {
                close = true;
                Body::UntilClose
            }
            Err(()) => return Parsed::Invalid(refuse(502, "invalid Content-Length in a response")),
        }
    };
    Parsed::Complete(ResponseHead {
        code,
        len,
        body,
        close,
    })
}

/// Where a chunked body's scan stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// Inside a chunk's data, this many bytes to go.
    Data(u64),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: the trailer section.
    Trailer,
    Done,
}

/// Finds where a body ends in a stream of bytes, without changing them.
#[derive(Clone, Copy, Debug)]
pub(super) struct Framer {
    body: Body,
    left: u64,
    chunk: Chunk,
}

impl Framer {
    pub(super) fn new(body: Body) -> Framer {
        let left = match body {
            Body::Length(n) => n,
            _ => 0,
        };
        Framer {
            body,
            left,
            chunk: Chunk::Size,
        }
    }

    /// Whether the body has ended.
    pub(super) fn done(&self) -> bool {
        match self.body {
            Body::Empty => true,
            Body::Length(_) => self.left == 0,
            Body::Chunked => self.chunk == Chunk::Done,
            Body::UntilClose => false,
        }
    }

    /// How many bytes at the start of `avail` belong to the body (they can
    /// be forwarded); the rest waits for more bytes or belongs to the next
    /// message.
    pub(super) fn take(&mut self, avail: &[u8]) -> Result<usize, &'static str> {
        match self.body {
            Body::Empty => Ok(0),
            Body::UntilClose => Ok(avail.len()),
            Body::Length(_) => {
                let n = self.left.min(avail.len() as u64);
                self.left -= n;
                Ok(n as usize)
            }
            Body::Chunked => self.take_chunked(avail),
        }
    }

    fn take_chunked(&mut self, avail: &[u8]) -> Result<usize, &'static str> {
        let mut at = 0;
        loop {
            let rest = &avail[at..];
            match self.chunk {
                Chunk::Done => return Ok(at),
                Chunk::Size => match httparse::parse_chunk_size(rest) {
                    Ok(httparse::Status::Complete((n, 0))) => {
                        at += n;
                        self.chunk = Chunk::Trailer;
                    }
                    Ok(httparse::Status::Complete((n, size))) => {
                        at += n;
                        self.chunk = Chunk::Data(size);
                    }
                    Ok(httparse::Status::Partial) if rest.len() < 1024 => return Ok(at),
                    Ok(httparse::Status::Partial) => return Err("chunk-size line too long"),
                    Err(_) => return Err("malformed chunk size"),
                },
                Chunk::Data(left) => {
                    let n = left.min(rest.len() as u64);
                    at += n as usize;
                    if n == left {
                        self.chunk = Chunk::DataEnd;
                    } else {
                        self.chunk = Chunk::Data(left - n);
                        return Ok(at);
                    }
                }
                Chunk::DataEnd => {
                    if rest.len() < 2 {
                        return Ok(at);
                    }
                    if &rest[..2] != b"\r\n" {
                        return Err("chunk data not followed by CRLF");
                    }
                    at += 2;
                    self.chunk = Chunk::Size;
                }
                Chunk::Trailer => {
                    if rest.starts_with(b"\r\n") {
                        self.chunk = Chunk::Done;
                        return Ok(at + 2);
                    }
                    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
                    match httparse::parse_headers(rest, &mut fields) {
                        Ok(httparse::Status::Complete((n, _))) => {
                            self.chunk = Chunk::Done;
                            return Ok(at + n);
                        }
                        Ok(httparse::Status::Partial) if rest.len() < MAX_HEAD => return Ok(at),
                        Ok(httparse::Status::Partial) => return Err("trailer section too large"),
                        Err(_) => return Err("malformed trailer section"),
                    }
                }
            }
        }
    }
}

/// Why a copy stopped.
#[derive(Debug)]
pub(super) enum CopyError {
    /// The sending side failed, timed out, or closed mid-body.
    Source,
    /// The receiving side failed.
    Sink,
    /// The body's framing is broken.
    Framing(&'static str),
}

/// Reads more of `src` into `buf`, waiting at most `idle`; the count read
/// (0 at end of stream).
pub(super) async fn fill(
    src: &mut TcpStream,
    buf: &mut BytesMut,
    idle: Duration,
) -> std::io::Result<usize> {
    if buf.capacity() - buf.len() < 4096 {
        buf.reserve(16 * 1024);
    }
    match tokio::time::timeout(idle, src.read_buf(buf)).await {
        Ok(r) => r,
        Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
    }
}

/// Sends `buf[..head]` and then the body that `framer` delimits from
/// `src` (starting with what `buf` already holds after the head) to
/// `dst`, unchanged. Leaves in `buf` whatever follows the body.
pub(super) async fn relay(
    src: &mut TcpStream,
    buf: &mut BytesMut,
    head: usize,
    mut framer: Framer,
    dst: &mut TcpStream,
    idle: Duration,
) -> Result<(), CopyError> {
    let first = framer.take(&buf[head..]).map_err(CopyError::Framing)?;
    dst.write_all(&buf[..head + first])
        .await
        .map_err(|_| CopyError::Sink)?;
    buf.advance(head + first);
    while !framer.done() {
        let got = fill(src, buf, idle).await.map_err(|_| CopyError::Source)?;
        if got == 0 {
            return if framer.body == Body::UntilClose {
                Ok(())
            } else {
                Err(CopyError::Source)
            };
        }
        let n = framer.take(buf).map_err(CopyError::Framing)?;
        if n > 0 {
            dst.write_all(&buf[..n])
                .await
                .map_err(|_| CopyError::Sink)?;
            buf.advance(n);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(text: &str) -> Result<RequestHead, Refusal> {
        match parse_request(text.as_bytes()) {
            Parsed::Complete(h) => Ok(h),
            Parsed::Invalid(r) => Err(r),
            Parsed::Partial => panic!("partial: {text:?}"),
        }
    }

    #[test]
    fn request_bodies_are_framed_as_rfc_9112_says() {
        let h = request("GET /a?b=1 HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!((h.method.as_str(), h.target.as_str()), ("GET", "/a?b=1"));
        assert_eq!((h.body, h.close), (Body::Empty, false));
        let h = request("POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello").unwrap();
        assert_eq!(h.body, Body::Length(5));
        assert_eq!(h.len, "POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n".len());
        let h = request("POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n").unwrap();
        assert_eq!(h.body, Body::Chunked);
        let h = request("GET / HTTP/1.0\r\n\r\n").unwrap();
        assert!(h.close, "HTTP/1.0 closes unless keep-alive");
        let h = request("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").unwrap();
        assert!(!h.close);
        let h = request("GET / HTTP/1.1\r\nConnection: foo, close\r\n\r\n").unwrap();
        assert!(h.close);
        let h = request("PUT / HTTP/1.1\r\nContent-Length: 3, 3\r\nExpect: 100-continue\r\n\r\n")
            .unwrap();
        assert_eq!((h.body, h.expect_continue), (Body::Length(3), true));
    }

    #[test]
    fn ambiguous_framing_and_upgrades_are_refused() {
        let cases = [
            ("POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nContent-Length: 3, 4\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nContent-Length: +3\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
            ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
            ("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", 403),
            ("GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n", 400),
            ("GET / HTTP/2.0\r\n\r\n", 400),
        ];
        for (text, status) in cases {
            match request(text) {
                Err(r) => assert_eq!(r.status, status, "{text:?}: {}", r.why),
                Ok(h) => panic!("{text:?} accepted as {h:?}"),
            }
        }
        let huge = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(MAX_HEAD));
        assert!(matches!(parse_request(huge.as_bytes()), Parsed::Invalid(r) if r.status == 431));
        let many: String = (0..=MAX_HEADERS).map(|i| format!("X{i}: 1\r\n")).collect();
        let many = format!("GET / HTTP/1.1\r\n{many}\r\n");
        assert!(matches!(parse_request(many.as_bytes()), Parsed::Invalid(r) if r.status == 431));
        assert!(matches!(
            parse_request(b"GET / HTTP/1.1\r\nHost: x\r\n"),
            Parsed::Partial
        ));
    }

    fn response(text: &str, head: bool) -> ResponseHead {
        match parse_response(text.as_bytes(), head) {
            Parsed::Complete(h) => h,
            other => panic!("{text:?}: {other:?}"),
        }
    }

    #[test]
    fn response_bodies_are_framed_as_rfc_9112_says() {
        let r = response("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false);
        assert_eq!((r.code, r.body, r.close), (200, Body::Length(2), false));
        let r = response("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", true);
        assert_eq!(r.body, Body::Empty, "a HEAD answer has no body");
        for code in ["100 Continue", "204 No Content", "304 Not Modified"] {
            let r = response(
                &format!("HTTP/1.1 {code}\r\nContent-Length: 9\r\n\r\n"),
                false,
            );
            assert_eq!(r.body, Body::Empty, "{code}");
        }
        let r = response(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            false,
        );
        assert_eq!(r.body, Body::Chunked);
        let r = response("HTTP/1.1 200 OK\r\n\r\n", false);
        assert_eq!((r.body, r.close), (Body::UntilClose, true));
        let r = response("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", false);
        assert!(r.close);
        assert!(matches!(
            parse_response(
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
                false
            ),
            Parsed::Invalid(_)
        ));
    }

    /// Feeds `wire` to a framer in pieces of `step` bytes, as reads would
    /// deliver them; how many bytes the body took, if it ended.
    fn frame(body: Body, wire: &[u8], step: usize) -> Result<Option<usize>, &'static str> {
        let mut f = Framer::new(body);
        let mut buf = Vec::new();
        let mut taken = 0;
        for piece in wire.chunks(step.max(1)) {
            buf.extend_from_slice(piece);
            let n = f.take(&buf)?;
            buf.drain(..n);
            taken += n;
            if f.done() {
                return Ok(Some(taken));
            }
        }
        Ok(f.done().then_some(taken))
    }

    #[test]
    fn chunked_bodies_end_where_the_last_chunk_and_trailers_end() {
        let body = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n";
        let wire = [&body[..], b"GET /next HTTP/1.1\r\n\r\n"].concat();
        for step in [1, 2, 3, 7, 64] {
            assert_eq!(
                frame(Body::Chunked, &wire, step),
                Ok(Some(body.len())),
                "step {step}"
            );
        }
        let trailers = b"3\r\nabc\r\n0\r\nX-Sum: 1\r\nY: 2\r\n\r\n";
        let wire = [&trailers[..], b"next"].concat();
        for step in [1, 5, 100] {
            assert_eq!(
                frame(Body::Chunked, &wire, step),
                Ok(Some(trailers.len())),
                "step {step}"
            );
        }
        assert!(
            frame(Body::Chunked, b"5\r\nhelloXX", 100).is_err(),
            "data without CRLF"
        );
        assert!(frame(Body::Chunked, b"zz\r\n", 100).is_err(), "not hex");
        assert_eq!(frame(Body::Chunked, b"5\r\nhel", 100), Ok(None));
        assert_eq!(frame(Body::Length(3), b"abcdef", 2), Ok(Some(3)));
        assert_eq!(frame(Body::Empty, b"abc", 1), Ok(Some(0)));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]

        /// Whatever arrives, parsing never panics, a head never claims more
        /// bytes than it was given, and a framer never takes more than it
        /// is offered.
        #[test]
        fn hostile_bytes_never_panic_or_overrun(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
            step in 1usize..64,
        ) {
            if let Parsed::Complete(h) = parse_request(&bytes) {
                proptest::prop_assert!(h.len <= bytes.len());
            }
            if let Parsed::Complete(h) = parse_response(&bytes, false) {
                proptest::prop_assert!(h.len <= bytes.len());
            }
            for body in [Body::Chunked, Body::Length(100), Body::UntilClose] {
                let mut f = Framer::new(body);
                let mut buf = Vec::new();
                for piece in bytes.chunks(step) {
                    buf.extend_from_slice(piece);
                    match f.take(&buf) {
                        Ok(n) => { proptest::prop_assert!(n <= buf.len()); buf.drain(..n); }
                        Err(_) => break,
                    }
                    if f.done() { break; }
                }
            }
        }

        /// A chunked body built from random chunks and split at random
        /// points is found to end exactly where it ends.
        #[test]
        fn random_chunked_bodies_are_delimited_exactly(
            chunks in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 1..40), 0..8),
            step in 1usize..50,
        ) {
            let mut wire = Vec::new();
            for c in &chunks {
                wire.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                wire.extend_from_slice(c);
                wire.extend_from_slice(b"\r\n");
            }
            wire.extend_from_slice(b"0\r\n\r\n");
            let len = wire.len();
            wire.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
            proptest::prop_assert_eq!(frame(Body::Chunked, &wire, step), Ok(Some(len)));
        }
    }
}
