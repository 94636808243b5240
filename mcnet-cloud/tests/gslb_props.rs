//! Property tests of the GSLB's DNS parser and responder (`Gslb::handle`,
//! `Gslb::handle_udp`): random bytes and mutated valid queries never panic,
//! and every answer is a well-formed response to the query, within the size
//! its transport allows (bounded: a few thousand cases, seconds).

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use hickory_proto::op::{Edns, Message, MessageType, Query};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
use hickory_proto::rr::{Name, RecordType};
use mcnet_cloud::gslb::{Config, Gslb, PLAIN_UDP_MAX, TCP_MESSAGE_MAX, UDP_PAYLOAD_MAX};
use proptest::prelude::*;

/// Names small and large: one with 120 endpoints (its answer outgrows UDP).
fn gslb() -> Arc<Gslb> {
    static G: OnceLock<Arc<Gslb>> = OnceLock::new();
    Arc::clone(G.get_or_init(|| {
        let mut y = String::from(
            "records:\n  - name: api.example.test\n    policy: geo\n    endpoints:\n\
             \x20     - {name: eu, address: 198.18.0.10, geo: [203.0.113.0/24]}\n\
             \x20     - {name: v6, address: \"2001:db8::1\", geo: [2001:db8::/32]}\n\
             \x20 - name: big.example.test\n    endpoints:\n",
        );
        for i in 0..120 {
            y.push_str(&format!(
                "      - {{name: e{i}, address: 198.18.1.{}}}\n",
                i + 1
            ));
            y.push_str(&format!(
                "      - {{name: f{i}, address: \"2001:db8::{:x}\"}}\n",
                i + 1
            ));
        }
        Gslb::new(&Config::from_yaml(&y).unwrap())
    }))
}

fn a_query() -> impl Strategy<Value = Vec<u8>> {
    let name = prop_oneof![
        Just("api.example.test.".to_string()),
        Just("big.example.test.".to_string()),
        Just("BIG.Example.TEST.".to_string()),
        "[a-z0-9-]{1,63}(\\.[a-z0-9-]{1,63}){0,3}\\.",
    ];
    let qtype = prop::sample::select(vec![
        RecordType::A,
        RecordType::AAAA,
        RecordType::TXT,
        RecordType::ANY,
        RecordType::SOA,
    ]);
    (
        prop::collection::vec((name, qtype), 0..4),
        any::<u16>(),
        prop::option::of((any::<u16>(), prop::option::of((any::<[u8; 4]>(), 0u8..=32)))),
    )
        .prop_map(|(questions, id, edns)| {
            let mut m = Message::query();
            m.metadata.id = id;
            for (n, t) in questions {
                if let Ok(n) = Name::from_ascii(&n) {
                    m.add_query(Query::query(n, t));
                }
            }
            if let Some((size, subnet)) = edns {
                let mut e = Edns::new();
                e.set_max_payload(size);
                if let Some((addr, prefix)) = subnet {
                    let cs = ClientSubnet::new(IpAddr::from(addr), prefix, 0);
                    e.options_mut().insert(EdnsOption::Subnet(cs));
                }
                m.set_edns(e);
            }
            m.to_vec().unwrap_or_default()
        })
}

/// A valid query with some bytes changed, some cut off or some appended.
fn a_mutated_query() -> impl Strategy<Value = Vec<u8>> {
    (
        a_query(),
        prop::collection::vec((any::<usize>(), any::<u8>()), 0..6),
        0usize..16,
        prop::collection::vec(any::<u8>(), 0..8),
    )
        .prop_map(|(mut q, edits, cut, tail)| {
            for (at, b) in edits {
                if !q.is_empty() {
                    let i = at % q.len();
                    q[i] = b;
                }
            }
            q.truncate(q.len().saturating_sub(cut));
            q.extend(tail);
            q
        })
}

fn any_input() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..700),
        a_query(),
        a_mutated_query(),
    ]
}

/// Checks one answer to `query`, allowed `limit` bytes.
fn check(query: &[u8], out: &[u8], limit: usize) -> Result<(), TestCaseError> {
    prop_assert!(out.len() <= limit, "{} bytes > {limit}", out.len());
    let q = Message::from_vec(query).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let m = Message::from_vec(out)
        .map_err(|e| TestCaseError::fail(format!("the answer does not parse: {e}")))?;
    prop_assert_eq!(m.metadata.message_type, MessageType::Response);
    prop_assert_eq!(m.metadata.id, q.metadata.id);
    prop_assert_eq!(m.edns.is_some(), q.edns.is_some(), "EDNS in, EDNS out");
    if m.metadata.truncation {
        prop_assert!(
            m.answers.is_empty(),
            "a truncated answer holds a partial RRset"
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

    #[test]
    fn udp_answers_are_well_formed_and_fit(input in any_input()) {
        let g = gslb();
        if let Some(out) = g.handle_udp(&input, IpAddr::from([127, 0, 0, 1])) {
            let q = Message::from_vec(&input).unwrap();
            let limit = q.edns.as_ref().map_or(PLAIN_UDP_MAX, |e| e.max_payload())
                .clamp(PLAIN_UDP_MAX, UDP_PAYLOAD_MAX);
            check(&input, &out, usize::from(limit))?;
        }
    }

    #[test]
    fn tcp_answers_are_well_formed_and_fit(input in any_input()) {
        let g = gslb();
        if let Some(out) = g.handle(&input, IpAddr::from([127, 0, 0, 1])) {
            check(&input, &out, TCP_MESSAGE_MAX)?;
        }
    }
}

/// A query for a name with more answers than fit: truncated over UDP (with
/// the client's payload size or without EDNS), whole over TCP.
#[test]
fn the_big_name_is_truncated_over_udp_and_whole_over_tcp() {
    let g = gslb();
    for edns in [None, Some(512), Some(1232), Some(65535)] {
        let mut m = Message::query();
        m.add_query(Query::query(
            Name::from_ascii("big.example.test.").unwrap(),
            RecordType::AAAA,
        ));
        if let Some(size) = edns {
            let mut e = Edns::new();
            e.set_max_payload(size);
            m.set_edns(e);
        }
        let q = m.to_vec().unwrap();
        let udp =
            Message::from_vec(&g.handle_udp(&q, IpAddr::from([127, 0, 0, 1])).unwrap()).unwrap();
        assert!(udp.metadata.truncation, "{edns:?}");
        let tcp = Message::from_vec(&g.handle(&q, IpAddr::from([127, 0, 0, 1])).unwrap()).unwrap();
        assert_eq!(tcp.answers.len(), 120, "{edns:?}");
    }
}
