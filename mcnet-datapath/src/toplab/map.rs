//! The lab's address map: every prefix of a topology gets its own /24 in
//! 198.18.0.0/15, so no lab packet ever carries a topology address.

use std::net::Ipv4Addr;

use ipnet::{IpNet, Ipv4Net};
use serde::{Deserialize, Serialize};

use mcnet_core::topology::{Cidr, Topology};

use crate::{Error, Result};

/// Where the mapped blocks start.
const BASE: u32 = u32::from_be_bytes([198, 18, 0, 0]);
/// Blocks available before the infrastructure range (198.19.128.0/17).
const MAX_BLOCKS: usize = 384;
/// Infrastructure links (veth /30s) come from here.
pub(super) const INFRA: u32 = u32::from_be_bytes([198, 19, 128, 0]);

/// One topology prefix and its lab block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    /// What the prefix is (`network aws-vpc`, `pods of eks-prod`, `vxc vxc-aws-dx BGP`).
    pub what: String,
    /// The topology's prefix.
    pub topology: Ipv4Net,
    /// The /24 in 198.18.0.0/15 that stands for it.
    pub lab: Ipv4Net,
}

/// The whole map, printed by `mcnet lab up` and reversible both ways.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressMap {
    /// Every mapped prefix, in topology order.
    pub blocks: Vec<Block>,
}

impl AddressMap {
    /// Maps every network CIDR, cluster pod CIDR and VXC BGP subnet.
    pub fn new(t: &Topology) -> Result<AddressMap> {
        let mut wanted: Vec<(String, IpNet)> = Vec::new();
        for n in &t.spec.networks {
            for c in n.cidrs.iter().filter_map(|c| c.net()) {
                wanted.push((format!("network {}", n.name), c));
            }
        }
        for c in &t.spec.clusters {
            if let Some(p) = c.pod_cidr.net() {
                wanted.push((format!("pods of {}", c.name), p));
            }
        }
        for v in &t.spec.interconnect.vxcs {
            for p in &v.bgp.peers {
                if let Some(n) = interface_address(&p.local_address) {
                    wanted.push((format!("vxc {} BGP", v.name), n.trunc()));
                }
            }
        }
        let mut m = AddressMap::default();
        for (what, net) in wanted {
            let IpNet::V4(topology) = net else {
                return Err(invalid(
                    &what,
                    &net.to_string(),
                    "the lab maps IPv4 prefixes only",
                ));
            };
            if m.blocks.iter().any(|b| b.topology == topology) {
                continue;
            }
            if m.blocks.len() == MAX_BLOCKS {
                return Err(invalid(
                    &what,
                    &net.to_string(),
                    "more prefixes than the lab's 384 blocks",
                ));
            }
            let base = BASE + 256 * m.blocks.len() as u32;
            let lab =
                Ipv4Net::new(Ipv4Addr::from(base), 24).map_err(|_| invalid(&what, "", "block"))?;
            m.blocks.push(Block {
                what,
                topology,
                lab,
            });
        }
        Ok(m)
    }

    /// The lab address of a topology address: the same offset in its
    /// prefix's block (the first 256 addresses of each prefix are mapped).
    pub fn to_lab(&self, a: Ipv4Addr) -> Option<Ipv4Addr> {
        let b = self
            .blocks
            .iter()
            .filter(|b| b.topology.contains(&a))
            .max_by_key(|b| b.topology.prefix_len())?;
        let offset = u32::from(a) - u32::from(b.topology.network());
        (offset < 256).then(|| Ipv4Addr::from(u32::from(b.lab.network()) + offset))
    }

    /// The topology address a lab address stands for.
    pub fn to_topology(&self, a: Ipv4Addr) -> Option<Ipv4Addr> {
        let b = self.blocks.iter().find(|b| b.lab.contains(&a))?;
        let offset = u32::from(a) - u32::from(b.lab.network());
        Some(Ipv4Addr::from(u32::from(b.topology.network()) + offset))
            .filter(|x| b.topology.contains(x))
    }

    /// The lab blocks that stand for topology prefixes inside `filter`
    /// (a prefix filter or a route), so that a filter on the topology's
    /// prefixes acts the same on the lab's.
    pub fn blocks_within(&self, filter: &IpNet) -> Vec<Ipv4Net> {
        self.blocks
            .iter()
            .filter(|b| filter.contains(&IpNet::V4(b.topology)))
            .map(|b| b.lab)
            .collect()
    }

    /// The block of exactly this topology prefix.
    pub fn block(&self, p: &IpNet) -> Option<Ipv4Net> {
        self.blocks
            .iter()
            .find(|b| IpNet::V4(b.topology) == *p)
            .map(|b| b.lab)
    }
}

/// An interface address with its prefix length (`169.254.100.1/30`),
/// which the topology keeps as written since it carries host bits.
pub fn interface_address(c: &Cidr) -> Option<IpNet> {
    match c {
        Cidr::Net(n) => Some(*n),
        Cidr::Invalid { raw, .. } => raw.parse().ok(),
        _ => None,
    }
}

fn invalid(field: &str, value: &str, reason: &'static str) -> Error {
    Error::InvalidLab {
        field: field.to_string(),
        value: value.to_string(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcnet_core::topology::{ipam, parse};

    #[test]
    fn the_map_is_reversible_and_stays_in_the_benchmark_range() {
        let text = include_str!("../../../examples/topologies/adr-003.yaml");
        let t = ipam::allocate(&parse(text).topology.unwrap()).unwrap();
        let m = AddressMap::new(&t).unwrap();
        let lab_range: Ipv4Net = "198.18.0.0/15".parse().unwrap();
        for b in &m.blocks {
            assert!(lab_range.contains(&b.lab), "{b:?}");
            assert!(u32::from(b.lab.broadcast()) < INFRA, "{b:?}");
        }
        for a in ["10.10.0.10", "10.0.0.10", "169.254.100.1", "10.100.0.20"] {
            let a: Ipv4Addr = a.parse().unwrap();
            let l = m.to_lab(a).unwrap();
            assert!(lab_range.contains(&l));
            assert_eq!(m.to_topology(l), Some(a));
        }
        // Beyond the first 256 addresses of a prefix there is no lab address.
        assert_eq!(m.to_lab("10.10.1.0".parse().unwrap()), None);
        // A filter keeps the blocks of the prefixes it holds.
        let f: IpNet = "10.0.0.0/8".parse().unwrap();
        assert_eq!(
            m.blocks_within(&f).len(),
            m.blocks
                .iter()
                .filter(|b| b.topology.addr().octets()[0] == 10)
                .count()
        );
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use mcnet_core::topology::{ipam, parse};
    use proptest::prelude::*;

    proptest! {
        /// Every lab address maps back to the topology address it came
        /// from, and never leaves 198.18.0.0/15.
        #[test]
        fn mapping_round_trips(block in any::<usize>(), offset in 0u32..300, other in any::<u32>()) {
            let text = include_str!("../../../examples/topologies/adr-003-redundant.yaml");
            let t = ipam::allocate(&parse(text).topology.unwrap()).unwrap();
            let m = AddressMap::new(&t).unwrap();
            let range: Ipv4Net = "198.18.0.0/15".parse().unwrap();
            // An address in a mapped prefix: mapped when among its first 256.
            let b = &m.blocks[block % m.blocks.len()];
            let a = Ipv4Addr::from(u32::from(b.topology.network()) + offset);
            match m.to_lab(a) {
                Some(l) => {
                    prop_assert!(offset < 256);
                    prop_assert!(range.contains(&l));
                    prop_assert_eq!(m.to_topology(l), Some(a));
                }
                None => prop_assert!(offset >= 256 || !b.topology.contains(&a)),
            }
            // Any address at all: a mapping, when there is one, goes back.
            let x = Ipv4Addr::from(other);
            if let Some(l) = m.to_lab(x) {
                prop_assert_eq!(m.to_topology(l), Some(x));
            }
        }
    }
}
