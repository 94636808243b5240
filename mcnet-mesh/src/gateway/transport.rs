//! Linkerd's opaque transport header: what a client proxy sends first, inside
//! the mTLS session, to tell a gateway where the connection is going.
//!
//! On the wire: the preface `transport.l5d.io/v1\r\n\r\n`, a 4-byte
//! big-endian length, then a protobuf message with `int32 port = 1`,
//! `string name = 2` (the logical destination, such as
//! `orders.shop.svc.cluster.local`) and `session_protocol = 3` (a hint the
//! gateway does not need, skipped). The decoder is written for hostile
//! input: the message is capped at [`MAX_HEADER_BYTES`], every length is
//! checked before it is used, and unknown fields are skipped by wire type
//! as protobuf requires.

use tokio::io::{AsyncRead, AsyncReadExt};

/// The bytes before the length.
pub const PREFACE: &[u8] = b"transport.l5d.io/v1\r\n\r\n";
/// The largest header message accepted, bytes.
pub const MAX_HEADER_BYTES: usize = 4096;
/// The longest destination name (a DNS name).
const MAX_NAME: usize = 253;

/// Where a connection through the gateway goes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TransportHeader {
    /// The destination port (1 to 65535).
    pub port: u16,
    /// The logical destination (`SERVICE.NS.svc.cluster.local`), if any.
    pub name: Option<String>,
}

/// Why a transport header was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// The stream does not start with [`PREFACE`].
    #[error("no transport header: the stream does not start with the transport.l5d.io/v1 preface")]
    NoPreface,
    /// The declared length is over [`MAX_HEADER_BYTES`].
    #[error("transport header of {0} bytes is over the {MAX_HEADER_BYTES}-byte cap")]
    TooLong(usize),
    /// The stream ended inside the header.
    #[error("the stream ended inside the transport header")]
    Truncated,
    /// The protobuf message is malformed.
    #[error("malformed transport header: {0}")]
    Malformed(&'static str),
    /// The port is missing or outside 1..=65535.
    #[error("transport header port {0} is not in 1..=65535")]
    Port(i64),
    /// The name is not a DNS name.
    #[error("transport header name is not a DNS name of at most 253 lowercase letters, digits, '-' and '.'")]
    Name,
}

impl TransportHeader {
    /// The header with its preface and length, ready to write.
    pub fn encode(&self) -> Vec<u8> {
        let mut msg = Vec::new();
        msg.push(0x08); // field 1, varint
        put_varint(&mut msg, u64::from(self.port));
        if let Some(name) = &self.name {
            msg.push(0x12); // field 2, length-delimited
            put_varint(&mut msg, name.len() as u64);
            msg.extend_from_slice(name.as_bytes());
        }
        let mut out = Vec::with_capacity(PREFACE.len() + 4 + msg.len());
        out.extend_from_slice(PREFACE);
        out.extend_from_slice(&(msg.len() as u32).to_be_bytes());
        out.extend_from_slice(&msg);
        out
    }

    /// Decodes the protobuf message (without preface and length).
    pub fn decode(mut msg: &[u8]) -> Result<TransportHeader, HeaderError> {
        if msg.len() > MAX_HEADER_BYTES {
            return Err(HeaderError::TooLong(msg.len()));
        }
        let mut port: i64 = 0;
        let mut name = None;
        while !msg.is_empty() {
            let key = varint(&mut msg)?;
            let (field, wire) = (key >> 3, key & 7);
            if field == 0 {
                return Err(HeaderError::Malformed("field number 0"));
            }
            match (field, wire) {
                // int32: negative values come as ten-byte varints.
                (1, 0) => port = varint(&mut msg)? as i64,
                (2, 2) => {
                    let bytes = delimited(&mut msg)?;
                    let s = std::str::from_utf8(bytes).map_err(|_| HeaderError::Name)?;
                    name = (!s.is_empty()).then(|| s.to_string());
                }
                (_, 0) => {
                    varint(&mut msg)?;
                }
                (_, 1) => skip(&mut msg, 8)?,
                (_, 2) => {
                    delimited(&mut msg)?;
                }
                (_, 5) => skip(&mut msg, 4)?,
                _ => return Err(HeaderError::Malformed("unsupported wire type")),
            }
        }
        let port = u16::try_from(port)
            .ok()
            .filter(|p| *p != 0)
            .ok_or(HeaderError::Port(port))?;
        if let Some(n) = &name {
            check_name(n)?;
        }
        Ok(TransportHeader { port, name })
    }

    /// Reads a header (preface, length, message) from the start of a
    /// stream, reading no byte past it.
    pub async fn read<R: AsyncRead + Unpin>(r: &mut R) -> Result<TransportHeader, HeaderError> {
        let mut head = [0u8; PREFACE.len() + 4];
        r.read_exact(&mut head)
            .await
            .map_err(|_| HeaderError::Truncated)?;
        if &head[..PREFACE.len()] != PREFACE {
            return Err(HeaderError::NoPreface);
        }
        let mut len = [0u8; 4];
        len.copy_from_slice(&head[PREFACE.len()..]);
        let len = u32::from_be_bytes(len) as usize;
        if len > MAX_HEADER_BYTES {
            return Err(HeaderError::TooLong(len));
        }
        let mut msg = vec![0u8; len];
        r.read_exact(&mut msg)
            .await
            .map_err(|_| HeaderError::Truncated)?;
        TransportHeader::decode(&msg)
    }

    /// The gateway's route key: `NAME:PORT`, or `:PORT` without a name.
    pub fn route_key(&self) -> String {
        format!("{}:{}", self.name.as_deref().unwrap_or(""), self.port)
    }
}

fn check_name(n: &str) -> Result<(), HeaderError> {
    let ok = n.len() <= MAX_NAME
        && n.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(HeaderError::Name)
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint(buf: &mut &[u8]) -> Result<u64, HeaderError> {
    let mut v: u64 = 0;
    for i in 0..10 {
        let (&b, rest) = buf.split_first().ok_or(HeaderError::Truncated)?;
        *buf = rest;
        if i == 9 && b > 1 {
            return Err(HeaderError::Malformed("varint over 64 bits"));
        }
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(HeaderError::Malformed("varint over 10 bytes"))
}

fn delimited<'a>(buf: &mut &'a [u8]) -> Result<&'a [u8], HeaderError> {
    let len = varint(buf)?;
    let len = usize::try_from(len).map_err(|_| HeaderError::Truncated)?;
    if len > buf.len() {
        return Err(HeaderError::Truncated);
    }
    let (field, rest) = buf.split_at(len);
    *buf = rest;
    Ok(field)
}

fn skip(buf: &mut &[u8], n: usize) -> Result<(), HeaderError> {
    if n > buf.len() {
        return Err(HeaderError::Truncated);
    }
    *buf = &buf[n..];
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header(port: u16, name: Option<&str>) -> TransportHeader {
        TransportHeader {
            port,
            name: name.map(str::to_string),
        }
    }

    #[test]
    fn a_header_is_the_preface_a_length_and_the_message() {
        let h = header(8080, Some("orders.shop.svc.cluster.local"));
        let bytes = h.encode();
        assert!(bytes.starts_with(b"transport.l5d.io/v1\r\n\r\n"));
        let len = u32::from_be_bytes(bytes[23..27].try_into().unwrap()) as usize;
        assert_eq!(len, bytes.len() - 27);
        // field 1 = 8080 (varint 0x90 0x3f), field 2 = the name.
        assert_eq!(&bytes[27..30], &[0x08, 0x90, 0x3f]);
        assert_eq!(bytes[30], 0x12);
        assert_eq!(TransportHeader::decode(&bytes[27..]), Ok(h));
    }

    #[tokio::test]
    async fn read_takes_the_header_and_leaves_the_payload() {
        let h = header(443, Some("api.prod.svc.cluster.local"));
        let mut bytes = h.encode();
        bytes.extend_from_slice(b"payload");
        let mut r = &bytes[..];
        assert_eq!(TransportHeader::read(&mut r).await, Ok(h));
        assert_eq!(r, b"payload");
    }

    #[test]
    fn a_session_protocol_and_unknown_fields_are_skipped() {
        // port 80; field 3 {field 1 {}} (HTTP/1 hint); field 9 fixed64; field 10 fixed32.
        let msg = [
            0x08, 80, 0x1a, 0x02, 0x0a, 0x00, 0x49, 1, 2, 3, 4, 5, 6, 7, 8, 0x55, 1, 2, 3, 4,
        ];
        assert_eq!(TransportHeader::decode(&msg), Ok(header(80, None)));
    }

    #[test]
    fn bad_headers_are_refused_with_their_reason() {
        use HeaderError::*;
        let neg: Vec<u8> = [0x08].into_iter().chain([0xff; 9]).chain([0x01]).collect();
        for (msg, want) in [
            (&[][..], Port(0)),
            (&[0x08, 0x00][..], Port(0)),
            (&[0x08, 0x80, 0x80, 0x04][..], Port(65536)),
            (&neg[..], Port(-1)),
            (&[0x08, 0x80][..], Truncated),
            (&[0x08, 80, 0x12, 0x05, b'a'][..], Truncated),
            (&[0x08, 80, 0x12, 0x01, b'A'][..], Name),
            (&[0x08, 80, 0x12, 0x02, b'a', b'.'][..], Name),
            (&[0x08, 80, 0x12, 0x01, 0xff][..], Name),
            (&[0x0b, 0x00][..], Malformed("unsupported wire type")),
            (&[0x00, 0x00][..], Malformed("field number 0")),
            (
                &[
                    0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
                ][..],
                Malformed("varint over 64 bits"),
            ),
        ] {
            assert_eq!(TransportHeader::decode(msg), Err(want), "{msg:?}");
        }
    }

    #[tokio::test]
    async fn a_stream_without_the_preface_or_with_a_long_header_is_refused() {
        let mut plain = &b"GET / HTTP/1.1\r\nHost: example\r\n\r\n"[..];
        assert_eq!(
            TransportHeader::read(&mut plain).await,
            Err(HeaderError::NoPreface)
        );
        let mut long = PREFACE.to_vec();
        long.extend_from_slice(&(MAX_HEADER_BYTES as u32 + 1).to_be_bytes());
        assert_eq!(
            TransportHeader::read(&mut &long[..]).await,
            Err(HeaderError::TooLong(MAX_HEADER_BYTES + 1))
        );
        let short = &header(1, None).encode()[..25];
        assert_eq!(
            TransportHeader::read(&mut &short[..]).await,
            Err(HeaderError::Truncated)
        );
    }

    proptest! {
        #[test]
        fn any_bytes_decode_or_are_refused(msg in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(h) = TransportHeader::decode(&msg) {
                prop_assert!(h.port != 0);
            }
        }

        #[test]
        fn headers_round_trip(port in 1u16.., name in proptest::option::of("[a-z][a-z0-9-]{0,20}[a-z0-9](\\.[a-z][a-z0-9]{0,10}){0,4}")) {
            let h = TransportHeader { port, name };
            let bytes = h.encode();
            prop_assert_eq!(TransportHeader::decode(&bytes[PREFACE.len() + 4..]), Ok(h));
        }
    }
}
