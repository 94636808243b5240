//! Translation of the policy engine's compiled state into kernel map
//! entries, and the diff that syncs one desired state over another.
//!
//! The kernel looks a packet up with at most four keys, most specific first
//! — (peer, port), (peer, any port), (any peer, port), (any peer, any port)
//! — and the first hit decides. For that to equal the engine's verdict,
//! every stored key carries the merged verdict of all entries that cover
//! it (deny over allow over allow-with-L7), and every (peer, port) that a
//! wildcard entry could override is materialised.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use mcnet_core::policy::compile::{Compiled, DirState, IdentityKind, NumericIdentity, WILDCARD};

/// The wildcard peer as the maps hold it.
const ANY_PEER: u32 = WILDCARD.get();
use mcnet_core::policy::model::{Direction, Proto};
use mcnet_ebpf_common::*;

/// An endpoint to enforce: a pod behind a host-side interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    /// Host-side interface index (in the namespace where the programs attach).
    pub ifindex: u32,
    /// The pod (`namespace/name`).
    pub pod: String,
}

/// Everything the kernel maps should hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DesiredState {
    /// ifindex → endpoint.
    pub endpoints: BTreeMap<u32, EndpointInfo>,
    /// (prefix length over the IPv4-mapped address, address) → identity.
    pub ipcache: BTreeMap<(u32, [u8; 16]), u32>,
    /// Policy entries.
    pub policy: BTreeMap<PolicyKey, PolicyValue>,
}

/// The lookup shape of a policy key (see [`EP_SHAPE_SHIFT`]).
fn shape(k: &PolicyKey) -> u32 {
    match (k.peer, k.port) {
        (0, 0) => 3,
        (0, _) => 2,
        (_, 0) => 1,
        _ => 0,
    }
}

impl DesiredState {
    /// Sets each endpoint's shape bits from the policy entries it has, so
    /// that the kernel skips lookups that cannot hit. Idempotent; [`Datapath::sync`]
    /// calls it, so hand-built states need not.
    ///
    /// [`Datapath::sync`]: crate::Datapath::sync
    pub fn mark_lookup_shapes(&mut self) {
        let mut shapes: BTreeMap<u32, u32> = BTreeMap::new();
        for k in self.policy.keys() {
            *shapes.entry(k.endpoint).or_default() |= ep_shape_bit(k.direction, shape(k));
        }
        for ep in self.endpoints.values_mut() {
            ep.flags = (ep.flags & !EP_SHAPES) | shapes.get(&ep.identity).copied().unwrap_or(0);
        }
    }

    /// Which ipcache maps of each family hold entries, as `(IPv4, IPv6)`
    /// [`MAPS_PREFIXES`] | [`MAPS_EXACT`] bits: the values of
    /// `CONFIG_PREFIXES_V4` and `_V6`. IPv4 prefixes are the IPv4-mapped
    /// ones of /96 and longer. Exact IPv4 addresses set no bit: their slots
    /// say where to look (see [`crate::ipcache4`]).
    pub fn ipcache_maps(&self) -> (u32, u32) {
        let (mut v4, mut v6) = (0, 0);
        for &(len, addr) in self.ipcache.keys() {
            match (len, ipv4_prefix(len, &addr).is_some()) {
                (128, true) => {}
                (128, false) => v6 |= MAPS_EXACT,
                (_, true) => v4 |= MAPS_PREFIXES,
                (_, false) => v6 |= MAPS_PREFIXES,
            }
        }
        (v4, v6)
    }
}

/// The IPv4 prefix (length, network) an ipcache key stands for, if it is
/// one: an IPv4-mapped key of /96 or longer. Every other key is IPv6, and
/// holds no IPv4 address.
pub fn ipv4_prefix(len: u32, addr: &[u8; 16]) -> Option<(u32, std::net::Ipv4Addr)> {
    let v4 = std::net::Ipv6Addr::from(*addr).to_ipv4_mapped()?;
    (len >= 96).then_some((len - 96, v4))
}

/// An address as the kernel keys it: IPv6, or IPv4 mapped into `::ffff:0:0/96`.
pub fn mapped(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

fn rank(action: u8) -> u8 {
    match action {
        ACTION_DENY => 3,
        ACTION_ALLOW => 2,
        _ => 1,
    }
}

fn merge(a: Option<PolicyValue>, b: Option<PolicyValue>) -> Option<PolicyValue> {
    match (a, b) {
        (Some(x), Some(y)) => Some(if rank(y.action) > rank(x.action) {
            y
        } else {
            x
        }),
        (x, None) => x,
        (None, y) => y,
    }
}

const CONCRETE: [u8; 3] = [PROTO_TCP, PROTO_UDP, PROTO_SCTP];

fn protos(p: Proto, all_ports: bool) -> Vec<u8> {
    match p {
        Proto::Tcp => vec![PROTO_TCP],
        Proto::Udp => vec![PROTO_UDP],
        Proto::Sctp => vec![PROTO_SCTP],
        Proto::Icmp => vec![PROTO_ICMP],
        Proto::Icmpv6 => vec![PROTO_ICMPV6],
        // ICMP has no ports: only a rule for every port covers it.
        Proto::Any if all_ports => vec![PROTO_TCP, PROTO_UDP, PROTO_SCTP, PROTO_ICMP, PROTO_ICMPV6],
        Proto::Any => CONCRETE.to_vec(),
    }
}

/// The merged policy entries of one endpoint identity in one direction.
pub fn direction_entries(
    endpoint: NumericIdentity,
    d: Direction,
    ds: &DirState,
    cookie_base: u32,
) -> BTreeMap<PolicyKey, PolicyValue> {
    let endpoint = endpoint.get();
    let isolated = !ds.isolated_by.is_empty();
    let direction = match d {
        Direction::Ingress => DIR_INGRESS,
        Direction::Egress => DIR_EGRESS,
    };
    // Raw entries by proto → (peer, port) → value.
    let mut raw: BTreeMap<u8, BTreeMap<(u32, u16), PolicyValue>> = BTreeMap::new();
    for (&(peer, proto), entries) in &ds.entries {
        let peer = peer.get();
        for e in entries {
            if !isolated && !e.deny {
                // A direction nothing isolates allows everything but denies.
                continue;
            }
            if e.not_evaluable.is_some() && !e.deny {
                // What the engine cannot evaluate never allows: the packet
                // falls through to the other entries, or to default deny.
                continue;
            }
            let action = if e.deny {
                ACTION_DENY
            } else if e.l7.is_some() {
                ACTION_ALLOW_L7
            } else {
                ACTION_ALLOW
            };
            let value = PolicyValue {
                action,
                _pad: [0; 3],
                cookie: cookie_base + (e.origin.policy as u32) * 1024 + e.origin.index as u32 + 1,
            };
            let all_ports = e.lo <= 1 && e.hi == 65535;
            let ports: Vec<u16> = if all_ports {
                vec![0]
            } else if proto.is_icmp() {
                // ICMP types are keyed apart from port 0 ("any port").
                (e.lo..=e.hi.min(255)).map(|t| icmp_key(t as u8)).collect()
            } else {
                (e.lo..=e.hi).collect()
            };
            for p in protos(proto, all_ports) {
                let slot = raw.entry(p).or_default();
                for &port in &ports {
                    let cur = slot.get(&(peer, port)).copied();
                    if let Some(v) = merge(cur, Some(value)) {
                        slot.insert((peer, port), v);
                    }
                }
            }
        }
    }
    let mut out = BTreeMap::new();
    for (proto, m) in raw {
        let wild_ports: BTreeSet<u16> = m
            .keys()
            .filter(|(p, port)| *p == ANY_PEER && *port != 0)
            .map(|(_, port)| *port)
            .collect();
        let peers: BTreeSet<u32> = m
            .keys()
            .map(|(p, _)| *p)
            .filter(|p| *p != ANY_PEER)
            .collect();
        let get = |peer: u32, port: u16| m.get(&(peer, port)).copied();
        let key = |peer: u32, port: u16| PolicyKey {
            endpoint,
            peer,
            port,
            proto,
            direction,
        };
        // Wildcard peer.
        if let Some(v) = get(ANY_PEER, 0) {
            out.insert(key(ANY_PEER, 0), v);
        }
        for &port in &wild_ports {
            if let Some(v) = merge(get(ANY_PEER, port), get(ANY_PEER, 0)) {
                out.insert(key(ANY_PEER, port), v);
            }
        }
        // Specific peers: every port either side names. A peer without an
        // any-port entry of its own gets none: its lookups fall through to
        // the wildcard entries, which already carry the right verdicts.
        for &peer in &peers {
            if let Some(own_all) = get(peer, 0) {
                if let Some(v) = merge(Some(own_all), get(ANY_PEER, 0)) {
                    out.insert(key(peer, 0), v);
                }
            }
            let own: BTreeSet<u16> = m
                .keys()
                .filter(|(p, port)| *p == peer && *port != 0)
                .map(|(_, port)| *port)
                .collect();
            let has_all = get(peer, 0).is_some();
            let mut ports = own;
            if has_all {
                ports.extend(wild_ports.iter().copied());
            }
            for port in ports {
                let v = merge(
                    merge(get(peer, port), get(peer, 0)),
                    merge(get(ANY_PEER, port), get(ANY_PEER, 0)),
                );
                if let Some(v) = v {
                    out.insert(key(peer, port), v);
                }
            }
        }
    }
    out
}

impl DesiredState {
    /// Builds the desired maps for `bindings` from a compilation.
    pub fn from_compiled(c: &Compiled, bindings: &[Binding]) -> crate::Result<DesiredState> {
        let mut s = DesiredState::default();
        for (i, pod) in c.inventory.pods.iter().enumerate() {
            for ip in &pod.ips {
                s.ipcache
                    .insert((128, mapped(*ip)), c.pod_identity[i].get());
            }
        }
        for x in &c.identities {
            if let IdentityKind::Cidr { prefix } = &x.kind {
                let len = if prefix.addr().is_ipv4() {
                    96 + prefix.prefix_len() as u32
                } else {
                    prefix.prefix_len() as u32
                };
                // A pod's own address wins over a policy prefix covering it exactly.
                s.ipcache
                    .entry((len, mapped(prefix.network())))
                    .or_insert(x.id.get());
            }
        }
        let mut identities = BTreeSet::new();
        for b in bindings {
            let idx = c
                .inventory
                .pod(&b.pod)
                .ok_or_else(|| crate::Error::UnknownPod { pod: b.pod.clone() })?;
            if c.inventory.pods[idx].cluster != c.local_cluster {
                return Err(crate::Error::RemotePod {
                    pod: b.pod.clone(),
                    cluster: c.inventory.pods[idx].cluster.clone(),
                });
            }
            let id = c.pod_identity[idx];
            let mut flags = 0;
            if c.is_isolated(id, Direction::Ingress) {
                flags |= EP_INGRESS_ISOLATED;
            }
            if c.is_isolated(id, Direction::Egress) {
                flags |= EP_EGRESS_ISOLATED;
            }
            s.endpoints.insert(
                b.ifindex,
                EndpointInfo {
                    identity: id.get(),
                    flags,
                },
            );
            identities.insert(id);
        }
        for id in identities {
            if let Some(state) = c.states.get(&id) {
                for d in [Direction::Ingress, Direction::Egress] {
                    s.policy.extend(direction_entries(id, d, state.dir(d), 0));
                }
            }
        }
        // When some endpoint's ingress has L7 rules, a connection to it is
        // handed to the proxy on the client's side, where the kernel can
        // assign sockets: every endpoint then checks its peer's ingress on
        // new TCP connections, and none passes untracked.
        let l7_ingress = s
            .policy
            .iter()
            .any(|(k, v)| k.direction == DIR_INGRESS && v.action == ACTION_ALLOW_L7);
        // An endpoint nothing restricts passes untracked.
        let restricted: BTreeSet<u32> = s.policy.keys().map(|k| k.endpoint).collect();
        for ep in s.endpoints.values_mut() {
            if l7_ingress {
                ep.flags |= EP_L7_REDIRECT;
            } else if ep.flags & (EP_INGRESS_ISOLATED | EP_EGRESS_ISOLATED) == 0
                && !restricted.contains(&ep.identity)
            {
                ep.flags |= EP_OPEN;
            }
        }
        s.mark_lookup_shapes();
        Ok(s)
    }
}

/// The steps that turn one state into another, ordered so that no packet
/// sees a state that is neither: new and changed policy entries and ipcache
/// entries first, then endpoints (whose isolation flags may now rely on
/// them), then removals.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Delta {
    /// ipcache upserts.
    pub ipcache_upsert: Vec<((u32, [u8; 16]), u32)>,
    /// Policy upserts.
    pub policy_upsert: Vec<(PolicyKey, PolicyValue)>,
    /// Endpoint upserts.
    pub endpoint_upsert: Vec<(u32, EndpointInfo)>,
    /// Endpoint removals.
    pub endpoint_remove: Vec<u32>,
    /// Policy removals.
    pub policy_remove: Vec<PolicyKey>,
    /// ipcache removals.
    pub ipcache_remove: Vec<(u32, [u8; 16])>,
}

impl Delta {
    /// What changes from `old` to `new`.
    pub fn between(old: &DesiredState, new: &DesiredState) -> Delta {
        fn split<K: Ord + Copy, V: PartialEq + Copy>(
            old: &BTreeMap<K, V>,
            new: &BTreeMap<K, V>,
        ) -> (Vec<(K, V)>, Vec<K>) {
            let up = new
                .iter()
                .filter(|(k, v)| old.get(k) != Some(v))
                .map(|(k, v)| (*k, *v))
                .collect();
            let rm = old
                .keys()
                .filter(|k| !new.contains_key(k))
                .copied()
                .collect();
            (up, rm)
        }
        let (ipcache_upsert, ipcache_remove) = split(&old.ipcache, &new.ipcache);
        let (policy_upsert, policy_remove) = split(&old.policy, &new.policy);
        let (endpoint_upsert, endpoint_remove) = split(&old.endpoints, &new.endpoints);
        Delta {
            ipcache_upsert,
            policy_upsert,
            endpoint_upsert,
            endpoint_remove,
            policy_remove,
            ipcache_remove,
        }
    }

    /// Whether nothing changes.
    pub fn is_empty(&self) -> bool {
        self.ipcache_upsert.is_empty()
            && self.policy_upsert.is_empty()
            && self.endpoint_upsert.is_empty()
            && self.endpoint_remove.is_empty()
            && self.policy_remove.is_empty()
            && self.ipcache_remove.is_empty()
    }
}

/// Evaluates a packet against a desired state exactly as the kernel does
/// (without conntrack): the userspace model of the datapath, for tests.
pub fn model_verdict(
    s: &DesiredState,
    ifindex: u32,
    direction: u8,
    peer_addr: IpAddr,
    proto: u8,
    dport: u16,
) -> Option<bool> {
    let ep = s.endpoints.get(&ifindex)?;
    // An IPv4-mapped address travels as IPv4.
    let peer_addr = peer_addr.to_canonical();
    let addr = mapped(peer_addr);
    // Each family has its trie.
    let peer = s
        .ipcache
        .iter()
        .filter(|((len, net), _)| ipv4_prefix(*len, net).is_some() == peer_addr.is_ipv4())
        .filter(|((len, net), _)| prefix_contains(*len, net, &addr))
        .max_by_key(|((len, _), _)| *len)
        .map(|(_, id)| *id)
        .unwrap_or(if peer_addr.is_ipv4() {
            IDENTITY_WORLD_IPV4
        } else {
            IDENTITY_WORLD_IPV6
        });
    // For ICMP, `dport` is the message type.
    let port = if [PROTO_TCP, PROTO_UDP, PROTO_SCTP].contains(&proto) {
        dport
    } else if [PROTO_ICMP, PROTO_ICMPV6].contains(&proto) {
        icmp_key(dport as u8)
    } else {
        0
    };
    let keys = [(peer, port), (peer, 0), (0, port), (0, 0)];
    let hit = keys
        .iter()
        .enumerate()
        .filter(|&(shape, _)| ep.flags & ep_shape_bit(direction, shape as u32) != 0)
        .find_map(|(_, &(peer, port))| {
            s.policy.get(&PolicyKey {
                endpoint: ep.identity,
                peer,
                port,
                proto,
                direction,
            })
        });
    let isolated = if direction == DIR_EGRESS {
        ep.flags & EP_EGRESS_ISOLATED != 0
    } else {
        ep.flags & EP_INGRESS_ISOLATED != 0
    };
    Some(match hit {
        Some(v) => v.action != ACTION_DENY,
        None => !isolated,
    })
}

fn prefix_contains(len: u32, net: &[u8; 16], addr: &[u8; 16]) -> bool {
    let full = (len / 8) as usize;
    if net[..full] != addr[..full] {
        return false;
    }
    let rem = len % 8;
    rem == 0 || (net[full] ^ addr[full]) & (0xffu8 << (8 - rem)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcnet_core::policy::{Compiled, Manifests};

    /// A wildcard deny on one port, a wildcard allow-all and peer-specific
    /// entries on another port: the peer must not get an any-port allow
    /// that would shadow the wildcard deny (found by the random kernel test).
    #[test]
    fn peer_entries_do_not_shadow_a_wildcard_port_deny() {
        let m = Manifests::parse_str(
            r#"
- {apiVersion: v1, kind: Pod, metadata: {name: p0, namespace: a, labels: {app: web}}, spec: {containers: [{name: c, ports: [{name: http, containerPort: 80}]}]}, status: {podIP: 10.0.0.1}}
- {apiVersion: v1, kind: Pod, metadata: {name: p1, namespace: a, labels: {app: db}}, spec: {containers: [{name: c, ports: [{name: http, containerPort: 8080}]}]}, status: {podIP: 10.0.1.2}}
- {apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, metadata: {name: all, namespace: a}, spec: {podSelector: {}, egress: [{}]}}
- apiVersion: cilium.io/v2
  kind: CiliumNetworkPolicy
  metadata: {name: deny, namespace: a}
  spec:
    endpointSelector: {}
    egressDeny: [{toPorts: [{ports: [{port: "80", protocol: TCP}, {port: http}]}]}]
"#,
        )
        .unwrap();
        let c = Compiled::new(&m);
        let s = DesiredState::from_compiled(
            &c,
            &[Binding {
                ifindex: 7,
                pod: "a/p0".into(),
            }],
        )
        .unwrap();
        let to = |ip: &str, port| {
            model_verdict(&s, 7, DIR_EGRESS, ip.parse().unwrap(), PROTO_TCP, port).unwrap()
        };
        assert!(!to("10.0.1.2", 80), "TCP 80 is denied to every peer");
        assert!(!to("10.0.1.2", 8080), "p1's named port http is denied");
        assert!(to("10.0.1.2", 443));
        assert!(!to("192.0.2.1", 80));
        assert!(to("192.0.2.1", 8080), "a world peer has no named port");
    }
}
