//! Security identities: the numeric identities Cilium gives to reserved
//! entities, pods and CIDR prefixes, what each stands for, and the hasher
//! the compiled maps key them with.

use std::collections::{BTreeMap, HashMap};

use ipnet::IpNet;
use serde::Serialize;

use super::model::*;
use super::selector::{Key, Labels, Source};

/// A numeric security identity, as Cilium numbers them: reserved ones
/// below 256, pods from 256, CIDR identities from 2²⁴. Serialised as its
/// number.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct NumericIdentity(pub u32);

impl NumericIdentity {
    /// The number, as the datapath's maps hold it.
    pub const fn get(self) -> u32 {
        self.0
    }
}

impl std::fmt::Display for NumericIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl From<NumericIdentity> for u32 {
    fn from(id: NumericIdentity) -> u32 {
        id.0
    }
}

/// The wildcard peer: a map entry that matches every identity.
pub const WILDCARD: NumericIdentity = NumericIdentity(0);
/// Reserved identity: the local host.
pub const HOST: NumericIdentity = NumericIdentity(1);
/// Reserved identity: outside the cluster (an ipcache miss).
pub const WORLD: NumericIdentity = NumericIdentity(2);
/// Reserved identity: pods not managed by Cilium.
pub const UNMANAGED: NumericIdentity = NumericIdentity(3);
/// Reserved identity: health endpoints.
pub const HEALTH: NumericIdentity = NumericIdentity(4);
/// Reserved identity: endpoints being initialised.
pub const INIT: NumericIdentity = NumericIdentity(5);
/// Reserved identity: other nodes.
pub const REMOTE_NODE: NumericIdentity = NumericIdentity(6);
/// Reserved identity: the API server.
pub const KUBE_APISERVER: NumericIdentity = NumericIdentity(7);
/// Reserved identity: Cilium's ingress.
pub const INGRESS: NumericIdentity = NumericIdentity(8);
/// Reserved identity: outside the cluster, IPv4 (dual-stack).
pub const WORLD_IPV4: NumericIdentity = NumericIdentity(9);
/// Reserved identity: outside the cluster, IPv6 (dual-stack).
pub const WORLD_IPV6: NumericIdentity = NumericIdentity(10);
/// The first identity given to pods.
pub const FIRST_USER_IDENTITY: NumericIdentity = NumericIdentity(256);
/// The first identity given to CIDR prefixes (Cilium's local identity scope).
pub const FIRST_CIDR_IDENTITY: NumericIdentity = NumericIdentity(1 << 24);

pub(super) const RESERVED: [(NumericIdentity, &str); 10] = [
    (HOST, "host"),
    (WORLD, "world"),
    (UNMANAGED, "unmanaged"),
    (HEALTH, "health"),
    (INIT, "init"),
    (REMOTE_NODE, "remote-node"),
    (KUBE_APISERVER, "kube-apiserver"),
    (INGRESS, "ingress"),
    (WORLD_IPV4, "world-ipv4"),
    (WORLD_IPV6, "world-ipv6"),
];

/// What an identity stands for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum IdentityKind {
    /// A reserved identity.
    Reserved {
        /// Its name (`host`, `world`, ...).
        name: &'static str,
    },
    /// Pods with one label set.
    Pods {
        /// Cluster.
        cluster: String,
        /// Namespace.
        namespace: String,
    },
    /// Addresses outside the cluster whose longest policy prefix is this one.
    Cidr {
        /// The prefix.
        prefix: IpNet,
    },
}

/// One identity.
#[derive(Clone, Debug, Serialize)]
pub struct Identity {
    /// Its number.
    pub id: NumericIdentity,
    /// What it stands for.
    #[serde(flatten)]
    pub kind: IdentityKind,
    /// Cilium labels (pod labels plus the derived ones), for pods.
    pub labels: BTreeMap<String, String>,
    /// Pod labels as written, for pods.
    #[serde(skip)]
    pub pod_labels: BTreeMap<String, String>,
    /// Namespace labels, for pods.
    #[serde(skip)]
    pub namespace_labels: BTreeMap<String, String>,
    /// Named ports the policies refer to, for pods.
    #[serde(skip)]
    pub named_ports: Vec<NamedPort>,
    /// Longest NetworkPolicy ipBlock prefix covering the pods' primary IP.
    #[serde(skip)]
    pub ip_class: Option<IpNet>,
    /// Indexes of the pods (in the inventory) with this identity.
    #[serde(skip)]
    pub pods: Vec<usize>,
}

impl Identity {
    /// Whether the identity carries `reserved:<name>`. Every identity
    /// outside the cluster carries `reserved:world` and its family's
    /// `reserved:world-ipv4` / `reserved:world-ipv6`.
    pub(super) fn has_reserved(&self, name: &str) -> bool {
        match &self.kind {
            IdentityKind::Reserved { name: n } => {
                *n == name || (name == "world" && (self.id == WORLD_IPV4 || self.id == WORLD_IPV6))
            }
            IdentityKind::Cidr { prefix } => {
                name == "world"
                    || (name == "world-ipv4" && prefix.addr().is_ipv4())
                    || (name == "world-ipv6" && prefix.addr().is_ipv6())
            }
            IdentityKind::Pods { .. } => false,
        }
    }

    /// Whether this identity stands for addresses outside the cluster.
    pub fn is_world(&self) -> bool {
        matches!(self.kind, IdentityKind::Cidr { .. })
            || [WORLD, WORLD_IPV4, WORLD_IPV6].contains(&self.id)
    }

    /// Whether this identity is pods of `cluster`.
    pub fn is_pods_of(&self, cluster: &str) -> bool {
        matches!(&self.kind, IdentityKind::Pods { cluster: c, .. } if c == cluster)
    }

    /// A short human name.
    pub fn describe(&self, inv: &Inventory) -> String {
        match &self.kind {
            IdentityKind::Reserved { name } => format!("reserved:{name}"),
            IdentityKind::Cidr { prefix } => format!("world ({prefix})"),
            IdentityKind::Pods { .. } => {
                let names: Vec<String> = self
                    .pods
                    .iter()
                    .take(3)
                    .map(|&p| inv.pods[p].key())
                    .collect();
                let more = if self.pods.len() > 3 {
                    format!(" +{}", self.pods.len() - 3)
                } else {
                    String::new()
                };
                format!("{}{more}", names.join(","))
            }
        }
    }
}

impl Labels for Identity {
    fn get(&self, key: &Key) -> Option<&str> {
        let reserved = || self.has_reserved(&key.name).then_some("");
        match &key.source {
            Source::K8s => self.labels.get(&key.name).map(String::as_str),
            Source::Any => self
                .labels
                .get(&key.name)
                .map(String::as_str)
                .or_else(reserved),
            Source::Reserved => reserved(),
            Source::Other(_) => None,
        }
    }
}

/// A fast hasher for identity-keyed maps (keys are small integers chosen by
/// us, never by an attacker, so SipHash's DoS resistance buys nothing here).
#[derive(Clone, Copy, Debug, Default)]
pub struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(*b as u64);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(26) ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(n as u64)
    }
    fn write_u8(&mut self, n: u8) {
        self.write_u64(n as u64)
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64)
    }
    fn write_isize(&mut self, n: isize) {
        self.write_u64(n as u64)
    }
}

/// `HashMap` with [`IdHasher`].
pub type IdMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<IdHasher>>;
