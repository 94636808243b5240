//! Parsing: Ethernet, IPv4/IPv6 and the L4 header, read a word at a time
//! from linear packet data (or through bpf_skb_load_bytes when it is not).

use super::*;

pub(super) const ETH_HLEN: usize = 14;
pub(super) const ETH_P_IP: u16 = 0x0800;
pub(super) const ETH_P_IPV6: u16 = 0x86DD;

/// A parsed packet of one address family. Addresses are their wire
/// bytes read as native words, so that copies, comparisons and map keys
/// move whole words, never single bytes.
#[derive(Clone, Copy)]
pub(super) struct Packet<A> {
    pub(super) src: A,
    pub(super) dst: A,
    pub(super) sport: u16,
    pub(super) dport: u16,
    /// The port policy is looked up by: `dport`, or for ICMP the type
    /// ([`icmp_key`]); conntrack keys ICMP echoes by their identifier.
    pub(super) key_port: u16,
    pub(super) proto: u8,
}

pub(super) enum Parsed {
    V4(Packet<u32>),
    V6(Packet<[u32; 4]>),
    NotIp,
    Ndp,
}

/// Word 2 of an IPv4-mapped address: the bytes `00 00 ff ff`.
pub(super) const MAPPED: u32 = u32::from_ne_bytes([0, 0, 0xff, 0xff]);

/// One 32-bit load from packet memory at `addr`, whatever its alignment.
///
/// Rust can only read an unaligned `u32` byte by byte on BPF (four loads,
/// three shifts, three ors); the kernel accepts unaligned packet loads
/// on the JITs that run this program, so one instruction does it.
///
/// # Safety
/// `addr..addr + 4` must lie inside the packet's linear data, checked
/// against `data_end` so that the verifier knows it too.
#[inline(always)]
pub(super) unsafe fn load32(addr: usize) -> u32 {
    let v: u32;
    // SAFETY: the caller guarantees the four bytes are readable.
    unsafe {
        core::arch::asm!(
            "{v} = *(u32 *)({a} + 0)",
            v = lateout(reg) v,
            a = in(reg) addr,
            options(nostack, readonly, preserves_flags)
        );
    }
    v
}

/// `N` words at `offset`, loaded a word at a time from linear data, or
/// through bpf_skb_load_bytes when the headers are not linear.
#[inline(always)]
pub(super) fn words<const N: usize>(ctx: &TcContext, offset: usize) -> Result<[u32; N], ()> {
    let start = ctx.data();
    if start + offset + 4 * N <= ctx.data_end() {
        let mut w = [0u32; N];
        let mut i = 0;
        while i < N {
            // SAFETY: inside the bounds checked above.
            w[i] = unsafe { load32(start + offset + 4 * i) };
            i += 1;
        }
        Ok(w)
    } else {
        ctx.load::<[u32; N]>(offset).map_err(|_| ())
    }
}

/// A byte at `offset` (linear data or bpf_skb_load_bytes).
#[inline(always)]
pub(super) fn byte_at(ctx: &TcContext, offset: usize) -> Result<u8, ()> {
    let start = ctx.data();
    if start + offset < ctx.data_end() {
        // SAFETY: bounds-checked above.
        Ok(unsafe { *((start + offset) as *const u8) })
    } else {
        ctx.load::<u8>(offset).map_err(|_| ())
    }
}

/// Byte `i` (in memory order) of a word read from the packet.
#[inline(always)]
pub(super) fn byte(w: u32, i: u32) -> u8 {
    w.to_ne_bytes()[i as usize]
}

/// The conntrack ports and the policy port of the L4 header at `l4`:
/// TCP, UDP and SCTP by their ports; ICMP and ICMPv6 by type for
/// policy, and echoes by identifier for conntrack (the request's
/// identifier as its destination port, the reply's as its source port,
/// so that a reply finds its request), as Cilium tracks them.
#[inline(always)]
pub(super) fn ports(ctx: &TcContext, l4: usize, proto: u8) -> Result<(u16, u16, u16), ()> {
    match proto {
        PROTO_TCP | PROTO_UDP | PROTO_SCTP => {
            let [w] = words::<1>(ctx, l4)?;
            let dport = u16::from_be((w >> 16) as u16);
            Ok((u16::from_be(w as u16), dport, dport))
        }
        PROTO_ICMP | PROTO_ICMPV6 => {
            // Type, code, checksum | identifier, sequence.
            let [w0, w1] = words::<2>(ctx, l4)?;
            let t = byte(w0, 0);
            let id = u16::from_be(w1 as u16);
            let (sport, dport) = match (proto, t) {
                (PROTO_ICMP, ICMP_ECHO_REQUEST) | (PROTO_ICMPV6, ICMPV6_ECHO_REQUEST) => (0, id),
                (PROTO_ICMP, ICMP_ECHO_REPLY) | (PROTO_ICMPV6, ICMPV6_ECHO_REPLY) => (id, 0),
                _ => (0, 0),
            };
            Ok((sport, dport, icmp_key(t)))
        }
        _ => Ok((0, 0, 0)),
    }
}

#[inline(always)]
pub(super) fn parse(ctx: &TcContext) -> Result<Parsed, ()> {
    let ethertype = u16::from_be_bytes([byte_at(ctx, 12)?, byte_at(ctx, 13)?]);
    match ethertype {
        ETH_P_IP => {
            // Five words: version/ihl, tos, total length | id, flags and
            // fragment offset | ttl, protocol, checksum | source | destination.
            let hdr: [u32; 5] = words(ctx, ETH_HLEN)?;
            let ihl = ((byte(hdr[0], 0) & 0x0f) as usize) * 4;
            if ihl < 20 {
                return Err(());
            }
            let proto = byte(hdr[2], 1);
            // Fragments after the first carry no ports.
            let fragment = u16::from_be((hdr[1] >> 16) as u16) & 0x1fff != 0;
            let (sport, dport, key_port) = if fragment {
                (0, 0, 0)
            } else {
                ports(ctx, ETH_HLEN + ihl, proto)?
            };
            Ok(Parsed::V4(Packet {
                src: hdr[3],
                dst: hdr[4],
                sport,
                dport,
                key_port,
                proto,
            }))
        }
        ETH_P_IPV6 => {
            let proto = byte_at(ctx, ETH_HLEN + 6)?;
            let src: [u32; 4] = words(ctx, ETH_HLEN + 8)?;
            let dst: [u32; 4] = words(ctx, ETH_HLEN + 24)?;
            let l4 = ETH_HLEN + 40;
            // Link-local multicast (MLD, router and neighbour solicitation).
            if byte(dst[0], 0) == 0xff && byte(dst[0], 1) & 0x0f == 0x02 {
                return Ok(Parsed::Ndp);
            }
            if proto == PROTO_ICMPV6 && (133..=137).contains(&byte_at(ctx, l4)?) {
                return Ok(Parsed::Ndp);
            }
            let (sport, dport, key_port) = ports(ctx, l4, proto)?;
            Ok(Parsed::V6(Packet {
                src,
                dst,
                sport,
                dport,
                key_port,
                proto,
            }))
        }
        _ => Ok(Parsed::NotIp),
    }
}
