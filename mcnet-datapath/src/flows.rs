//! Flow events: typed records from the kernel's ring buffer, drained
//! synchronously or streamed with tokio.

use std::net::{IpAddr, Ipv6Addr};

use aya::maps::{MapData, RingBuf};
use mcnet_ebpf_common::*;
use serde::Serialize;

/// A flow event, Hubble-like: an L3/L4 event from the kernel, or an L7
/// event from the proxy (one per HTTP request).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FlowRecord {
    /// Monotonic time (`CLOCK_MONOTONIC`, the kernel's clock), ns.
    pub time_ns: u64,
    /// `L3_L4` (from the kernel) or `L7` (from the proxy), as Hubble names them.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// `allow` or `deny` (the policy engine's words).
    pub verdict: &'static str,
    /// `FORWARDED` or `DROPPED` (Hubble's words).
    pub hubble_verdict: &'static str,
    /// Why (`allowed-policy`, `drop-no-rule`, `drop-deny-rule`, ...).
    pub reason: &'static str,
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Source port.
    pub sport: u16,
    /// Destination port (0 for ICMP).
    pub dport: u16,
    /// The ICMP or ICMPv6 message type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icmp_type: Option<u8>,
    /// `TCP`, `UDP`, `SCTP`, `ICMP`, `ICMPv6` or the number.
    pub protocol: String,
    /// `ingress` or `egress`, from the pod's point of view.
    pub direction: &'static str,
    /// Source identity.
    pub src_identity: u32,
    /// Destination identity.
    pub dst_identity: u32,
    /// Whether the packet is a reply.
    pub is_reply: bool,
    /// Whether the port carries L7 rules the kernel could not enforce.
    pub l7: bool,
    /// The host-side interface.
    pub ifindex: u32,
    /// The HTTP request and its response (L7 events).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpFlow>,
    /// The policy that decided (L7 events).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// The rule that decided, as `mcnet policy eval` names it (L7 events).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
}

/// The HTTP part of an L7 flow event (Hubble's `l7.http`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HttpFlow {
    /// Method.
    pub method: String,
    /// Path and query, as requested.
    pub url: String,
    /// The `Host` header, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The status code answered (403 when denied).
    pub code: u16,
    /// `HTTP/1.1`.
    pub protocol: &'static str,
    /// Time from the request's head to the response's head, ns.
    pub latency_ns: u64,
}

/// Now on `CLOCK_MONOTONIC`, in ns: the clock of kernel flow events.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64).saturating_mul(1_000_000_000) + ts.tv_nsec as u64
}

fn addr(bytes: [u8; 16], family: u8) -> IpAddr {
    let v6 = Ipv6Addr::from(bytes);
    match (family, v6.to_ipv4_mapped()) {
        (4, Some(v4)) => IpAddr::V4(v4),
        _ => IpAddr::V6(v6),
    }
}

/// The name of an IP protocol number.
pub fn proto_name(p: u8) -> String {
    match p {
        PROTO_TCP => "TCP".into(),
        PROTO_UDP => "UDP".into(),
        PROTO_SCTP => "SCTP".into(),
        PROTO_ICMP => "ICMP".into(),
        PROTO_ICMPV6 => "ICMPv6".into(),
        n => n.to_string(),
    }
}

impl From<&FlowEvent> for FlowRecord {
    fn from(e: &FlowEvent) -> Self {
        let forwarded = e.verdict == VERDICT_FORWARDED;
        // The kernel reports an ICMP message's policy key: its type.
        let icmp =
            (e.proto == PROTO_ICMP || e.proto == PROTO_ICMPV6) && e.dport & ICMP_TYPE_KEY != 0;
        FlowRecord {
            time_ns: e.ts_ns,
            kind: "L3_L4",
            verdict: if forwarded { "allow" } else { "deny" },
            hubble_verdict: if forwarded { "FORWARDED" } else { "DROPPED" },
            reason: crate::reason_name(e.reason as u32),
            src: addr(e.src, e.family),
            dst: addr(e.dst, e.family),
            sport: e.sport,
            dport: if icmp { 0 } else { e.dport },
            icmp_type: icmp.then_some((e.dport & 0xff) as u8),
            protocol: proto_name(e.proto),
            direction: if e.direction == DIR_EGRESS {
                "egress"
            } else {
                "ingress"
            },
            src_identity: e.src_identity,
            dst_identity: e.dst_identity,
            is_reply: e.is_reply != 0,
            l7: e.l7 != 0,
            ifindex: e.ifindex,
            http: None,
            policy: None,
            rule: None,
        }
    }
}

fn decode(bytes: &[u8]) -> Option<FlowRecord> {
    if bytes.len() < std::mem::size_of::<FlowEvent>() {
        return None;
    }
    // SAFETY: FlowEvent is repr(C), valid for any bit pattern, and the slice is long enough.
    let e: FlowEvent = unsafe { std::ptr::read_unaligned(bytes.as_ptr() as *const FlowEvent) };
    Some(FlowRecord::from(&e))
}

/// Reads everything the ring buffer holds now.
pub fn drain(ring: &mut RingBuf<MapData>) -> Vec<FlowRecord> {
    let mut out = Vec::new();
    while let Some(item) = ring.next() {
        if let Some(r) = decode(&item) {
            out.push(r);
        }
    }
    out
}

/// An async stream of flow records (tokio).
pub struct FlowStream {
    fd: tokio::io::unix::AsyncFd<RingBuf<MapData>>,
    pending: std::collections::VecDeque<FlowRecord>,
}

impl FlowStream {
    /// Wraps the ring buffer taken with [`crate::Datapath::take_flows`].
    pub fn new(ring: RingBuf<MapData>) -> std::io::Result<FlowStream> {
        // SAFETY: the ring buffer owns its descriptor and lives inside the
        // AsyncFd, so the descriptor stays open while it is registered.
        let fd = unsafe { tokio::io::unix::AsyncFd::register(ring) }
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(FlowStream {
            fd,
            pending: Default::default(),
        })
    }

    /// The next record, waiting for the kernel when none is ready.
    pub async fn next(&mut self) -> std::io::Result<FlowRecord> {
        loop {
            if let Some(r) = self.pending.pop_front() {
                return Ok(r);
            }
            let mut guard = self.fd.readable_mut().await?;
            let batch = drain(guard.get_inner_mut());
            guard.clear_ready();
            self.pending.extend(batch);
        }
    }
}
