//! IPAM: fills every `auto` CIDR from a pool, deterministically (document
//! order, lowest free aligned block first) and never overlapping anything
//! the topology already uses.

use crate::diag::Code;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use super::cidr::{span, Cidr};
use super::model::Topology;
use crate::diag::Diagnostic;

/// Default prefix length of an `auto` pod CIDR.
pub const DEFAULT_POD_PREFIX: u8 = 16;
/// Default prefix length of an `auto` service CIDR.
pub const DEFAULT_SERVICE_PREFIX: u8 = 20;

/// Disjoint, sorted address intervals of one family.
#[derive(Debug, Default, Clone)]
struct Used {
    v4: Vec<(u128, u128)>,
    v6: Vec<(u128, u128)>,
}

impl Used {
    fn list(&mut self, family: u8) -> &mut Vec<(u128, u128)> {
        if family == 4 {
            &mut self.v4
        } else {
            &mut self.v6
        }
    }

    fn insert(&mut self, net: &IpNet) {
        let (f, s, e) = span(net);
        let list = self.list(f);
        let at = list.partition_point(|&(a, _)| a < s);
        list.insert(at, (s, e));
        // Merge neighbours that now overlap or touch.
        let mut merged: Vec<(u128, u128)> = Vec::with_capacity(list.len());
        for &(a, b) in list.iter() {
            match merged.last_mut() {
                Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        *list = merged;
    }

    /// The end of a used interval overlapping [s, e], if any.
    fn overlap(&mut self, family: u8, s: u128, e: u128) -> Option<u128> {
        let list = self.list(family);
        let i = list.partition_point(|&(a, _)| a <= e);
        if i == 0 {
            return None;
        }
        let (_, b) = list[i - 1];
        (b >= s).then_some(b)
    }
}

fn make_net(family: u8, start: u128, len: u8) -> IpNet {
    let addr = if family == 4 {
        IpAddr::V4(Ipv4Addr::from(start as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(start))
    };
    IpNet::new(addr, len).expect("length checked against the family")
}

/// Finds the lowest aligned block of length `len` inside `pool` that is free.
fn first_free(pool: &IpNet, len: u8, used: &mut Used) -> Option<IpNet> {
    let (family, ps, pe) = span(pool);
    let bits: u8 = if family == 4 { 32 } else { 128 };
    if len < pool.prefix_len() || len > bits {
        return None;
    }
    let size: u128 = if bits - len == 128 {
        u128::MAX
    } else {
        1u128 << (bits - len)
    };
    let mut c = ps;
    loop {
        let end = c.checked_add(size - 1)?;
        if end > pe {
            return None;
        }
        match used.overlap(family, c, end) {
            None => return Some(make_net(family, c, len)),
            Some(b) => {
                let next = b.checked_add(1)?;
                // Align up to the block size.
                c = next.checked_add(size - 1)? / size * size;
            }
        }
    }
}

/// Returns a copy of the topology with every `auto` CIDR filled in, or every
/// allocation that failed.
pub fn allocate(t: &Topology) -> Result<Topology, Vec<Diagnostic>> {
    let mut out = t.clone();
    let mut problems = Vec::new();

    // Subnets come from their own network's prefixes.
    for (ni, net) in out.spec.networks.iter_mut().enumerate() {
        let pools: Vec<IpNet> = net.cidrs.iter().filter_map(Cidr::net).collect();
        let mut used = Used::default();
        for s in &net.subnets {
            if let Some(n) = s.cidr.net() {
                used.insert(&n);
            }
        }
        for (si, sub) in net.subnets.iter_mut().enumerate() {
            if !sub.cidr.is_auto() {
                continue;
            }
            let path = format!("spec.networks[{ni}].subnets[{si}].cidr");
            if pools.is_empty() {
                problems.push(Diagnostic::new(
                    Code::IpamNoPool,
                    path,
                    format!(
                        "subnet `{}` of network `{}` is auto but the network has no valid CIDR to allocate from",
                        sub.name, net.name
                    ),
                ));
                continue;
            }
            let mut got = None;
            for pool in &pools {
                let len = sub
                    .prefix_length
                    .unwrap_or((pool.prefix_len() + 8).min(pool.max_prefix_len()));
                if let Some(n) = first_free(pool, len, &mut used) {
                    got = Some(n);
                    break;
                }
            }
            match got {
                Some(n) => {
                    used.insert(&n);
                    sub.cidr = Cidr::Net(n);
                }
                None => problems.push(Diagnostic::new(
                    Code::IpamExhausted,
                    path,
                    format!(
                        "no free /{} left in network `{}` ({}) for subnet `{}`",
                        sub.prefix_length
                            .map(|l| l.to_string())
                            .unwrap_or_else(|| "default".into()),
                        net.name,
                        pools
                            .iter()
                            .map(|p| p.to_string())
                            .collect::<Vec<_>>()
                            .join(", "),
                        sub.name
                    ),
                )),
            }
        }
    }

    // Pod and service CIDRs avoid everything routable in the topology.
    let mut used = Used::default();
    for net in &out.spec.networks {
        for c in net.cidrs.iter().filter_map(Cidr::net) {
            used.insert(&c);
        }
    }
    for c in &out.spec.clusters {
        for n in [c.pod_cidr.net(), c.service_cidr.net()]
            .into_iter()
            .flatten()
        {
            used.insert(&n);
        }
    }
    let pools = out.spec.ipam.clone().unwrap_or_default();
    for (ci, cluster) in out.spec.clusters.iter_mut().enumerate() {
        for (field, pool, default_len) in [
            ("podCidr", pools.pods.as_ref(), DEFAULT_POD_PREFIX),
            (
                "serviceCidr",
                pools.services.as_ref(),
                DEFAULT_SERVICE_PREFIX,
            ),
        ] {
            let (slot, len) = if field == "podCidr" {
                (
                    &mut cluster.pod_cidr,
                    cluster.pod_prefix_length.unwrap_or(default_len),
                )
            } else {
                (
                    &mut cluster.service_cidr,
                    cluster.service_prefix_length.unwrap_or(default_len),
                )
            };
            if !slot.is_auto() {
                continue;
            }
            let path = format!("spec.clusters[{ci}].{field}");
            let pool_field = if field == "podCidr" {
                "pods"
            } else {
                "services"
            };
            let Some(pool) = pool.and_then(Cidr::net) else {
                problems.push(Diagnostic::new(
                    Code::IpamNoPool,
                    path,
                    format!(
                        "cluster `{}` has {field}: auto but spec.ipam.{pool_field} is not a valid pool",
                        cluster.name
                    ),
                ));
                continue;
            };
            match first_free(&pool, len, &mut used) {
                Some(n) => {
                    used.insert(&n);
                    *slot = Cidr::Net(n);
                }
                None => problems.push(Diagnostic::new(
                    Code::IpamExhausted,
                    path,
                    format!(
                        "pool spec.ipam.{pool_field} ({pool}) has no free /{len} left for cluster `{}`",
                        cluster.name
                    ),
                )),
            }
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_free_skips_used_and_aligns() {
        let pool: IpNet = "10.64.0.0/10".parse().unwrap();
        let mut used = Used::default();
        used.insert(&"10.64.0.0/16".parse().unwrap());
        used.insert(&"10.65.128.0/17".parse().unwrap());
        let a = first_free(&pool, 16, &mut used).unwrap();
        assert_eq!(a.to_string(), "10.66.0.0/16");
        used.insert(&a);
        assert_eq!(
            first_free(&pool, 17, &mut used).unwrap().to_string(),
            "10.65.0.0/17"
        );
    }

    #[test]
    fn exhaustion_is_none() {
        let pool: IpNet = "10.0.0.0/30".parse().unwrap();
        let mut used = Used::default();
        assert_eq!(
            first_free(&pool, 31, &mut used).unwrap().to_string(),
            "10.0.0.0/31"
        );
        used.insert(&"10.0.0.0/31".parse().unwrap());
        used.insert(&"10.0.0.2/31".parse().unwrap());
        assert!(first_free(&pool, 31, &mut used).is_none());
        assert!(first_free(&pool, 29, &mut used).is_none());
    }
}
