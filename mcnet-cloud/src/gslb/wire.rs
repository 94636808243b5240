//! The DNS side of the responder: one query in, one answer out, sized for
//! the transport it goes back over.
//!
//! Over UDP an answer fits the client's EDNS payload size, never more than
//! [`UDP_PAYLOAD_MAX`] (the DNS flag day 2020 figure, which avoids IP
//! fragmentation), and [`PLAIN_UDP_MAX`] (512) for a client without EDNS.
//! Over TCP it fits the two-byte length prefix ([`TCP_MESSAGE_MAX`]). An
//! answer that does not fit is sent truncated, as authoritative servers do:
//! the TC bit set, the answer section dropped (never a partial RRset), the
//! question and the OPT record kept, so that the client retries over TCP.

use std::net::IpAddr;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsCode, EdnsOption};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{RData, Record, RecordType};

use super::{normalize, Gslb};

/// The largest UDP answer this server sends, whatever the client offers
/// (bytes); also the payload size it advertises in its OPT record.
pub const UDP_PAYLOAD_MAX: u16 = 1232;

/// The largest UDP answer to a client without EDNS (RFC 1035), and the
/// least a client with EDNS is assumed to take (RFC 6891 §6.2.5).
pub const PLAIN_UDP_MAX: u16 = 512;

/// The largest DNS message a TCP length prefix can carry.
pub const TCP_MESSAGE_MAX: usize = u16::MAX as usize;

/// The transport an answer goes back over, which bounds its size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transport {
    Udp,
    Tcp,
}

impl Gslb {
    /// Answers one DNS query (wire format) that came over TCP, or another
    /// stream: the answer fits a TCP length prefix (65,535 bytes; a bigger
    /// one is sent truncated). `None` for a message that is not a query.
    pub fn handle(&self, query: &[u8], source: IpAddr) -> Option<Vec<u8>> {
        self.respond(query, source, Transport::Tcp)
    }

    /// [`Gslb::handle`] for a query that came over UDP: the answer fits the
    /// client's EDNS payload size (at most [`UDP_PAYLOAD_MAX`], at least
    /// [`PLAIN_UDP_MAX`]) or 512 bytes without EDNS; a bigger one is sent
    /// truncated (TC set, no answers), so that the client retries over TCP.
    pub fn handle_udp(&self, query: &[u8], source: IpAddr) -> Option<Vec<u8>> {
        self.respond(query, source, Transport::Udp)
    }

    fn respond(&self, query: &[u8], source: IpAddr, transport: Transport) -> Option<Vec<u8>> {
        let q = Message::from_vec(query).ok()?;
        if q.metadata.message_type != MessageType::Query {
            return None;
        }
        let mut resp = Message::response(q.metadata.id, q.metadata.op_code);
        resp.metadata.recursion_desired = q.metadata.recursion_desired;
        resp.metadata.authoritative = true;
        resp.add_queries(q.queries.clone());
        // EDNS: answer with EDNS when asked, echoing a client subnet with its scope.
        let mut client = Some(source);
        if let Some(edns) = &q.edns {
            let mut out = Edns::new();
            out.set_max_payload(UDP_PAYLOAD_MAX);
            if let Some(EdnsOption::Subnet(s)) = edns.option(EdnsCode::Subnet) {
                client = Some(s.addr());
                let mut echo = ClientSubnet::new(s.addr(), s.source_prefix(), s.source_prefix());
                echo.set_scope_prefix(s.source_prefix());
                out.options_mut().insert(EdnsOption::Subnet(echo));
            }
            resp.set_edns(out);
        }
        let code = match (q.metadata.op_code, q.queries.as_slice()) {
            (OpCode::Query, [one]) => {
                let name = one.name().to_ascii();
                match one.query_type() {
                    t @ (RecordType::A | RecordType::AAAA) => match self.choose(&name, t, client) {
                        Some(addrs) => {
                            let owner = one.name().clone();
                            for a in addrs {
                                let rdata = match a {
                                    IpAddr::V4(v4) => RData::A(A(v4)),
                                    IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
                                };
                                resp.add_answer(Record::from_rdata(owner.clone(), self.ttl, rdata));
                            }
                            ResponseCode::NoError
                        }
                        None => ResponseCode::Refused,
                    },
                    // A name we serve, another type: no data.
                    _ if self.records.contains_key(&normalize(&name)) => ResponseCode::NoError,
                    _ => ResponseCode::Refused,
                }
            }
            (OpCode::Query, _) => ResponseCode::FormErr,
            _ => ResponseCode::NotImp,
        };
        if code == ResponseCode::Refused {
            resp.metadata.authoritative = false;
        }
        resp.metadata.response_code = code;
        let name = q
            .queries
            .first()
            .map(|x| normalize(&x.name().to_ascii()))
            .filter(|n| self.records.contains_key(n))
            .unwrap_or_else(|| "other".into());
        self.metrics
            .queries
            .get_or_create(&vec![
                ("name".into(), name),
                ("rcode".into(), format!("{code:?}").to_ascii_lowercase()),
            ])
            .inc();
        let limit = match transport {
            Transport::Tcp => TCP_MESSAGE_MAX,
            Transport::Udp => usize::from(
                q.edns
                    .as_ref()
                    .map_or(PLAIN_UDP_MAX, |e| e.max_payload())
                    .clamp(PLAIN_UDP_MAX, UDP_PAYLOAD_MAX),
            ),
        };
        self.fit(resp, limit, transport)
    }

    /// `resp` in wire format within `limit` bytes: whole when it fits, else
    /// truncated (TC set) by dropping, in turn, the answers, the EDNS
    /// options and the question; `None` only if the header alone cannot be
    /// encoded.
    fn fit(&self, mut resp: Message, limit: usize, transport: Transport) -> Option<Vec<u8>> {
        // An encoding error is treated like an oversized answer: the
        // stripped message still goes out. hickory's encoder stops at
        // 65,535 bytes and sets TC itself, leaving a partial RRset: that
        // does not fit either.
        let whole = |o: &Vec<u8>| o.len() <= limit && o.get(2).is_some_and(|b| b & 0x02 == 0);
        if let Some(out) = resp.to_vec().ok().filter(whole) {
            return Some(out);
        }
        self.metrics
            .truncated
            .get_or_create(&vec![(
                "transport".into(),
                match transport {
                    Transport::Udp => "udp",
                    Transport::Tcp => "tcp",
                }
                .into(),
            )])
            .inc();
        resp.metadata.truncation = true;
        resp.answers.clear();
        resp.authorities.clear();
        resp.additionals.clear();
        if let Some(out) = resp.to_vec().ok().filter(|o| o.len() <= limit) {
            return Some(out);
        }
        if let Some(edns) = resp.edns.as_mut() {
            *edns.options_mut() = Default::default();
        }
        if let Some(out) = resp.to_vec().ok().filter(|o| o.len() <= limit) {
            return Some(out);
        }
        // Many questions (only a malformed query has them): echo none.
        resp.queries.clear();
        resp.to_vec().ok().filter(|o| o.len() <= limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gslb::Config;
    use hickory_proto::op::Query;
    use hickory_proto::rr::Name;

    fn many(n: usize) -> std::sync::Arc<Gslb> {
        let mut y = String::from("records:\n  - name: big.example.test\n    endpoints:\n");
        for i in 0..n {
            y.push_str(&format!(
                "      - {{name: e{i}, address: 198.18.{}.{}}}\n",
                i / 250,
                i % 250 + 1
            ));
        }
        Gslb::new(&Config::from_yaml(&y).unwrap())
    }

    fn query(edns: Option<u16>) -> Vec<u8> {
        let mut m = Message::query();
        m.metadata.id = 7;
        m.add_query(Query::query(
            Name::from_ascii("big.example.test.").unwrap(),
            RecordType::A,
        ));
        if let Some(size) = edns {
            let mut e = Edns::new();
            e.set_max_payload(size);
            m.set_edns(e);
        }
        m.to_vec().unwrap()
    }

    fn src() -> IpAddr {
        IpAddr::from([127, 0, 0, 1])
    }

    #[test]
    fn udp_answers_fit_the_clients_payload_size_and_ours() {
        let g = many(100); // about 1,650 bytes of answers
        for (edns, limit) in [
            (None, 512),
            (Some(512), 512),
            (Some(100), 512), // below 512 counts as 512
            (Some(1232), 1232),
            (Some(4096), 1232), // never more than ours
        ] {
            let out = g.handle_udp(&query(edns), src()).unwrap();
            assert!(out.len() <= limit, "edns {edns:?}: {} > {limit}", out.len());
            let m = Message::from_vec(&out).unwrap();
            assert!(m.metadata.truncation, "edns {edns:?}: TC not set");
            assert!(m.answers.is_empty(), "edns {edns:?}: a partial answer");
            assert_eq!(m.queries.len(), 1);
            assert_eq!(m.edns.is_some(), edns.is_some(), "the OPT record is kept");
        }
        let full = Message::from_vec(&g.handle(&query(Some(512)), src()).unwrap()).unwrap();
        assert_eq!(full.answers.len(), 100, "over TCP, the whole answer");
        assert!(!full.metadata.truncation);
    }

    #[test]
    fn an_answer_that_fits_is_not_truncated() {
        let g = many(60); // about 1,000 bytes
        let m = Message::from_vec(&g.handle_udp(&query(Some(1232)), src()).unwrap()).unwrap();
        assert_eq!(m.answers.len(), 60);
        assert!(!m.metadata.truncation);
        let m = Message::from_vec(&g.handle_udp(&query(Some(512)), src()).unwrap()).unwrap();
        assert!(m.metadata.truncation);
    }

    #[test]
    fn tcp_answers_never_outgrow_the_length_prefix() {
        let g = many(5000); // about 80,000 bytes
        let out = g.handle(&query(None), src()).unwrap();
        assert!(out.len() <= TCP_MESSAGE_MAX, "{} bytes", out.len());
        let m = Message::from_vec(&out).unwrap();
        assert!(m.metadata.truncation);
        assert!(
            m.answers.is_empty(),
            "{} bytes, {} answers",
            out.len(),
            m.answers.len()
        );
    }
}
