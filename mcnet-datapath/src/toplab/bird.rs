//! BIRD 2 configurations for the lab's BGP speakers: the Megaport Cloud
//! Router, each VXC's cloud edge (the Direct Connect gateway, ExpressRoute
//! or Partner Interconnect side), and each network's router.
//!
//! - A network router announces its own blocks (network CIDRs, and the pod
//!   CIDRs of native-routed clusters in it) and installs what it learns.
//! - An edge passes its networks' routes to the MCR and the MCR's routes to
//!   its networks, never one network's to another (the clouds forbid that
//!   hairpin), and drops its MCR session when it receives more prefixes
//!   than the cloud accepts.
//! - The MCR imports per VXC what the VXC's `bgp.prefixFilters.import`
//!   admits (on the mapped blocks), and exports to it what its `export`
//!   filter admits.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// Fast timers, so a failure is seen in seconds.
const TIMERS: &str = "hold time 3; keepalive time 1; connect retry time 1; connect delay time 1; error wait time 1, 2;";

/// One BGP session.
pub(super) struct Session {
    /// Protocol name (`[a-z0-9_]`).
    pub name: String,
    pub local: Ipv4Addr,
    pub local_as: u32,
    pub neighbor: Ipv4Addr,
    pub neighbor_as: u32,
    /// BIRD's import and export filter expressions (`all`, `none`, `where …`,
    /// `filter { … }`).
    pub import: String,
    pub export: String,
    /// Extra channel options (`receive limit …`).
    pub channel_extra: String,
}

/// A full configuration: static routes to announce, sessions, and the
/// kernel table fed with BGP routes.
pub(super) fn config(router_id: Ipv4Addr, announce: &[Ipv4Net], sessions: &[Session]) -> String {
    let mut c = String::new();
    let _ = writeln!(
        c,
        "# Written by mcnet lab; the topology's addresses are mapped into 198.18.0.0/15."
    );
    let _ = writeln!(c, "router id {router_id};");
    let _ = writeln!(c, "protocol device {{ scan time 2; }}");
    let _ = writeln!(
        c,
        "protocol kernel {{ ipv4 {{ import none; export where source = RTS_BGP; }}; learn off; }}"
    );
    if !announce.is_empty() {
        let _ = writeln!(c, "protocol static own {{ ipv4;");
        for n in announce {
            let _ = writeln!(c, "  route {n} unreachable;");
        }
        let _ = writeln!(c, "}}");
    }
    for s in sessions {
        let _ = writeln!(
            c,
            "protocol bgp {} {{\n  local {} as {};\n  neighbor {} as {};\n  {TIMERS}\n  ipv4 {{ import {}; export {}; {} }};\n}}",
            s.name, s.local, s.local_as, s.neighbor, s.neighbor_as, s.import, s.export, s.channel_extra
        );
    }
    c
}

/// A filter accepting exactly these blocks (`none` when empty).
pub(super) fn only(blocks: &[Ipv4Net]) -> String {
    if blocks.is_empty() {
        return "none".into();
    }
    let set: Vec<String> = blocks.iter().map(|b| b.to_string()).collect();
    format!("where net ~ [ {} ]", set.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_names_every_session_and_filter() {
        let b: Ipv4Net = "198.18.1.0/24".parse().unwrap();
        let c = config(
            "198.19.128.1".parse().unwrap(),
            &[b],
            &[Session {
                name: "v0".into(),
                local: "198.18.9.1".parse().unwrap(),
                local_as: 133937,
                neighbor: "198.18.9.2".parse().unwrap(),
                neighbor_as: 64512,
                import: only(&[b]),
                export: "all".into(),
                channel_extra: "receive limit 100 action disable;".into(),
            }],
        );
        assert!(c.contains("router id 198.19.128.1;"));
        assert!(c.contains("route 198.18.1.0/24 unreachable;"));
        assert!(c.contains("neighbor 198.18.9.2 as 64512;"));
        assert!(c.contains("import where net ~ [ 198.18.1.0/24 ];"));
        assert!(c.contains("receive limit 100 action disable;"));
        assert_eq!(only(&[]), "none");
    }
}
