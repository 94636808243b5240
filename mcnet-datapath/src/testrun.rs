//! BPF_PROG_TEST_RUN: run a loaded program on a packet without a network,
//! for the differential tests and the per-packet benchmark.

use std::io;
use std::os::fd::RawFd;

#[repr(C)]
#[derive(Default)]
struct TestRunAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    _pad: u32,
}

const BPF_PROG_TEST_RUN: libc::c_long = 10;

/// The result of a test run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TestRun {
    /// The program's return value (a TC action: 0 OK, 2 SHOT).
    pub retval: u32,
    /// Average nanoseconds per run, as the kernel measured it.
    pub duration_ns: u32,
}

/// The `__sk_buff` fields the kernel lets a test set: we set `ifindex`.
#[repr(C)]
struct SkBuffCtx {
    words: [u32; 48],
}

/// Runs `prog_fd` on `packet` `repeat` times, as if received on `ifindex`
/// (0: loopback).
pub fn run(prog_fd: RawFd, packet: &[u8], repeat: u32, ifindex: u32) -> io::Result<TestRun> {
    let mut out = vec![0u8; packet.len() + 256];
    let mut ctx = SkBuffCtx { words: [0; 48] };
    // struct __sk_buff: ifindex is the 11th u32 (len, pkt_type, mark, queue_mapping,
    // protocol, vlan_present, vlan_tci, vlan_proto, priority, ingress_ifindex, ifindex).
    ctx.words[10] = ifindex;
    let with_ctx = ifindex != 0;
    let mut attr = TestRunAttr {
        prog_fd: prog_fd as u32,
        data_size_in: packet.len() as u32,
        data_size_out: out.len() as u32,
        data_in: packet.as_ptr() as u64,
        data_out: out.as_mut_ptr() as u64,
        repeat,
        ..Default::default()
    };
    if with_ctx {
        attr.ctx_size_in = std::mem::size_of::<SkBuffCtx>() as u32;
        attr.ctx_in = &ctx as *const SkBuffCtx as u64;
    }
    // SAFETY: attr points to valid buffers that outlive the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_TEST_RUN,
            &mut attr as *mut TestRunAttr,
            std::mem::size_of::<TestRunAttr>() as u32,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(TestRun {
        retval: attr.retval,
        duration_ns: attr.duration,
    })
}

/// A transport header: TCP (a SYN), UDP or SCTP with its ports, or an
/// ICMP/ICMPv6 header whose type is `dport` and (for echoes) whose
/// identifier is `sport`.
fn l4_header(proto: u8, sport: u16, dport: u16) -> Vec<u8> {
    let mut l4 = vec![
        0u8;
        match proto {
            6 => 20,
            132 => 12,
            _ => 8,
        }
    ];
    match proto {
        1 | 58 => {
            l4[0] = dport as u8;
            l4[4..6].copy_from_slice(&sport.to_be_bytes());
        }
        _ => {
            l4[0..2].copy_from_slice(&sport.to_be_bytes());
            l4[2..4].copy_from_slice(&dport.to_be_bytes());
            if proto == 6 {
                l4[12] = 0x50;
                l4[13] = 0x02; // SYN
            }
        }
    }
    l4
}

/// Builds an Ethernet + IPv4 + TCP/UDP/SCTP packet, or ICMP (`dport`
/// being the type and `sport` the echo identifier).
pub fn ipv4_packet(src: [u8; 4], dst: [u8; 4], proto: u8, sport: u16, dport: u16) -> Vec<u8> {
    let l4 = l4_header(proto, sport, dport);
    let total = (20 + l4.len()) as u16;
    let mut p = Vec::with_capacity(64);
    p.extend_from_slice(&[0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00]);
    p.extend_from_slice(&[0x45, 0]);
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&[0, 1, 0x40, 0, 64, proto, 0, 0]);
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(&l4);
    p
}

/// Builds an Ethernet + IPv6 + TCP/UDP/SCTP packet, or ICMPv6 (`dport`
/// being the type and `sport` the echo identifier).
pub fn ipv6_packet(src: [u8; 16], dst: [u8; 16], proto: u8, sport: u16, dport: u16) -> Vec<u8> {
    let l4 = l4_header(proto, sport, dport);
    let mut p = Vec::with_capacity(80);
    p.extend_from_slice(&[0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x86, 0xdd]);
    p.extend_from_slice(&[0x60, 0, 0, 0]);
    p.extend_from_slice(&(l4.len() as u16).to_be_bytes());
    p.extend_from_slice(&[proto, 64]);
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(&l4);
    p
}
