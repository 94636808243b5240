//! Logical resource ids: a kind and the names that identify the resource
//! within its topology (`subnet` + [`aws-vpc`, `private-a`]), built and
//! compared as typed values.
//!
//! The text form (the `mcnet.io/id` tag, a reference in a [`Spec`]) is
//! `kind/segment/...`. A segment is written as is when it is made of
//! ASCII letters, digits and `-` (every valid topology name is, and so is
//! Azure's `GatewaySubnet`) and percent-encoded byte by byte otherwise,
//! so `/` never appears inside a segment and two different ids never
//! share a text form, even when they were built from names that never
//! went through validation. The last segment of a
//! `route` or `transit-gateway-route` is a destination prefix, written as
//! is (`route/aws-vpc/10.1.0.0/16`). Parsing accepts only the canonical
//! form: `id.to_string().parse() == Ok(id)` and nothing else parses.
//!
//! [`Spec`]: super::Spec

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::resource::ResourceKind;

/// A logical resource id.
#[derive(Clone)]
pub struct ResourceId {
    kind: ResourceKind,
    path: Vec<String>,
    /// The canonical text form, kept so that it can be lent out.
    text: String,
}

/// Why a text is not a logical resource id.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a logical resource id: {reason}")]
pub struct ParseIdError {
    /// The text.
    pub text: String,
    /// Why.
    pub reason: String,
}

/// A cloud's own id for a resource (`vpc-0a1b…`, a Megaport product UID,
/// an Azure resource id, a GCP self link), as its provider reported it.
///
/// It is opaque to everything but the provider that made it: the planner
/// compares and stores it, never parses it. Serialised as its text.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CloudId(String);

impl CloudId {
    /// The id as its provider wrote it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CloudId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::ops::Deref for CloudId {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for CloudId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<String> for CloudId {
    fn from(s: String) -> CloudId {
        CloudId(s)
    }
}

impl From<&str> for CloudId {
    fn from(s: &str) -> CloudId {
        CloudId(s.to_string())
    }
}

impl From<CloudId> for String {
    fn from(id: CloudId) -> String {
        id.0
    }
}

impl From<&CloudId> for String {
    fn from(id: &CloudId) -> String {
        id.0.clone()
    }
}

impl PartialEq<CloudId> for String {
    fn eq(&self, other: &CloudId) -> bool {
        *self == other.0
    }
}

impl PartialEq<str> for CloudId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for CloudId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<String> for CloudId {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}

/// How many segments a kind's id has, and whether the last is a prefix.
fn shape(kind: ResourceKind) -> (std::ops::RangeInclusive<usize>, bool) {
    use ResourceKind as K;
    match kind {
        K::Subnet | K::TransitGatewayAttachment | K::VpnPeer | K::VpnConnection => (2..=2, false),
        // A network's gateway, and its separate IPsec gateway (`ipsec`).
        K::VpnGateway => (1..=2, false),
        K::Route | K::TransitGatewayRoute => (2..=2, true),
        // AWS and GCP: one per VXC; Azure: one per VXC and network.
        K::InterconnectAttachment => (1..=2, false),
        _ => (1..=1, false),
    }
}

fn plain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-'
}

fn prefix_char(b: u8) -> bool {
    b.is_ascii_digit() || matches!(b, b'a'..=b'f' | b'.' | b':' | b'/')
}

fn encode(seg: &str, keep: fn(u8) -> bool, out: &mut String) {
    for &b in seg.as_bytes() {
        if keep(b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// Writes `name` as an id segment: as is when it is made of ASCII letters,
/// digits and `-`, percent-encoded otherwise.
pub(crate) fn encode_segment(name: &str, out: &mut String) {
    encode(name, plain, out)
}

/// The name an [`encode_segment`] wrote; `None` for anything it does not write.
pub(crate) fn decode_segment(seg: &str) -> Option<String> {
    decode(seg, plain).ok()
}

/// The inverse of [`encode`], accepting only what it produces.
fn decode(seg: &str, keep: fn(u8) -> bool) -> Result<String, String> {
    let bytes = seg.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = seg
                .get(i + 1..i + 3)
                .filter(|h| {
                    h.bytes()
                        .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
                })
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad escape in segment `{seg}`"))?;
            if keep(hex) {
                return Err(format!("`{seg}` escapes a character it may not escape"));
            }
            out.push(hex);
            i += 3;
        } else if keep(b) {
            out.push(b);
            i += 1;
        } else {
            return Err(format!(
                "segment `{seg}` contains an unescaped {:?}",
                char::from(b)
            ));
        }
    }
    String::from_utf8(out).map_err(|_| format!("segment `{seg}` is not UTF-8"))
}

impl ResourceId {
    /// The id of a `kind` resource named by `path`; `None` when `kind`'s ids
    /// do not have that many segments.
    pub fn new(kind: ResourceKind, path: Vec<String>) -> Option<ResourceId> {
        let (arity, last_is_prefix) = shape(kind);
        if !arity.contains(&path.len()) {
            return None;
        }
        let mut text = kind.as_str().to_string();
        let n = path.len();
        for (i, seg) in path.iter().enumerate() {
            text.push('/');
            let keep = if last_is_prefix && i + 1 == n {
                prefix_char
            } else {
                plain
            };
            encode(seg, keep, &mut text);
        }
        Some(ResourceId { kind, path, text })
    }

    fn of(kind: ResourceKind, path: &[&str]) -> ResourceId {
        let path = path.iter().map(|s| s.to_string()).collect();
        ResourceId::new(kind, path).expect("the constructors give each kind its shape")
    }

    /// `network/<network>`.
    pub fn network(network: &str) -> ResourceId {
        Self::of(ResourceKind::Network, &[network])
    }
    /// `subnet/<network>/<subnet>`.
    pub fn subnet(network: &str, subnet: &str) -> ResourceId {
        Self::of(ResourceKind::Subnet, &[network, subnet])
    }
    /// `route-table/<network>`.
    pub fn route_table(network: &str) -> ResourceId {
        Self::of(ResourceKind::RouteTable, &[network])
    }
    /// `route/<network>/<destination prefix>`.
    pub fn route(network: &str, destination: &str) -> ResourceId {
        Self::of(ResourceKind::Route, &[network, destination])
    }
    /// `peering/<peering>`.
    pub fn peering(peering: &str) -> ResourceId {
        Self::of(ResourceKind::Peering, &[peering])
    }
    /// `transit-gateway/<gateway>`.
    pub fn transit_gateway(gateway: &str) -> ResourceId {
        Self::of(ResourceKind::TransitGateway, &[gateway])
    }
    /// `transit-gateway-attachment/<gateway>/<network>`.
    pub fn transit_gateway_attachment(gateway: &str, network: &str) -> ResourceId {
        Self::of(ResourceKind::TransitGatewayAttachment, &[gateway, network])
    }
    /// `transit-gateway-route/<gateway>/<destination prefix>`.
    pub fn transit_gateway_route(gateway: &str, destination: &str) -> ResourceId {
        Self::of(ResourceKind::TransitGatewayRoute, &[gateway, destination])
    }
    /// `vpn-gateway/<network>`.
    pub fn vpn_gateway(network: &str) -> ResourceId {
        Self::of(ResourceKind::VpnGateway, &[network])
    }
    /// `vpn-gateway/<network>/ipsec`: a network's site-to-site gateway
    /// where the cloud keeps it apart from the interconnect's (Azure, GCP).
    pub fn ipsec_gateway(network: &str) -> ResourceId {
        Self::of(ResourceKind::VpnGateway, &[network, "ipsec"])
    }
    /// `vpn-peer/<backup>/<network>`: the other end, as `network`'s cloud
    /// records it.
    pub fn vpn_peer(backup: &str, network: &str) -> ResourceId {
        Self::of(ResourceKind::VpnPeer, &[backup, network])
    }
    /// `vpn-connection/<backup>/<network>`: `network`'s side of a VPN backup.
    pub fn vpn_connection(backup: &str, network: &str) -> ResourceId {
        Self::of(ResourceKind::VpnConnection, &[backup, network])
    }
    /// `interconnect-gateway/<vxc>`.
    pub fn interconnect_gateway(vxc: &str) -> ResourceId {
        Self::of(ResourceKind::InterconnectGateway, &[vxc])
    }
    /// `interconnect-attachment/<vxc>`, or `.../<vxc>/<network>` for one
    /// per network.
    pub fn interconnect_attachment(vxc: &str, network: Option<&str>) -> ResourceId {
        match network {
            Some(n) => Self::of(ResourceKind::InterconnectAttachment, &[vxc, n]),
            None => Self::of(ResourceKind::InterconnectAttachment, &[vxc]),
        }
    }
    /// `private-endpoint/<endpoint>`.
    pub fn private_endpoint(endpoint: &str) -> ResourceId {
        Self::of(ResourceKind::PrivateEndpoint, &[endpoint])
    }
    /// `router/<mcr>`.
    pub fn router(router: &str) -> ResourceId {
        Self::of(ResourceKind::Router, &[router])
    }
    /// `vxc/<vxc>`.
    pub fn vxc(vxc: &str) -> ResourceId {
        Self::of(ResourceKind::Vxc, &[vxc])
    }

    /// The kind of resource.
    pub fn kind(&self) -> ResourceKind {
        self.kind
    }

    /// The names after the kind.
    pub fn path(&self) -> &[String] {
        &self.path
    }

    /// The first name: the object the resource belongs to (the network of
    /// a subnet, the VXC of an attachment, the MCR of a router).
    pub fn name(&self) -> &str {
        &self.path[0]
    }

    /// The canonical text form.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl FromStr for ResourceId {
    type Err = ParseIdError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let fail = |reason: String| ParseIdError {
            text: text.to_string(),
            reason,
        };
        let (kind, rest) = text
            .split_once('/')
            .ok_or_else(|| fail("it has no `/`".into()))?;
        let kind: ResourceKind = serde_json::from_value(serde_json::Value::from(kind))
            .map_err(|_| fail(format!("`{kind}` is not a resource kind")))?;
        let (arity, last_is_prefix) = shape(kind);
        let parts: Vec<&str> = if last_is_prefix {
            let (head, prefix) = rest
                .split_once('/')
                .ok_or_else(|| fail("it has no destination prefix".into()))?;
            vec![head, prefix]
        } else {
            rest.split('/').collect()
        };
        if !arity.contains(&parts.len()) {
            return Err(fail(format!(
                "a {kind} id has {arity:?} segments, not {}",
                parts.len()
            )));
        }
        let n = parts.len();
        let mut path = Vec::with_capacity(n);
        for (i, p) in parts.into_iter().enumerate() {
            let keep = if last_is_prefix && i + 1 == n {
                prefix_char
            } else {
                plain
            };
            path.push(decode(p, keep).map_err(fail)?);
        }
        Ok(ResourceId {
            kind,
            path,
            text: text.to_string(),
        })
    }
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.text, f)
    }
}

impl PartialEq for ResourceId {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.path == other.path
    }
}

impl Eq for ResourceId {}

impl Hash for ResourceId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.kind.hash(state);
        self.path.hash(state);
    }
}

/// Ordered by text form, which is one-to-one with the typed value, so the
/// order agrees with equality (and plans list ids as they always did).
impl Ord for ResourceId {
    fn cmp(&self, other: &Self) -> Ordering {
        self.text.cmp(&other.text)
    }
}

impl PartialOrd for ResourceId {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq<str> for ResourceId {
    fn eq(&self, other: &str) -> bool {
        self.text == other
    }
}

impl PartialEq<&str> for ResourceId {
    fn eq(&self, other: &&str) -> bool {
        self.text == *other
    }
}

impl Serialize for ResourceId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for ResourceId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn different_network_subnet_pairs_never_share_an_id() {
        // Unvalidated names, straight through the library.
        let names = [
            "n", "a", "b", "n/a", "a/b", "n/a/b", "", "%", "%2F", "a%2Fb", "..", "x:y",
        ];
        let mut seen = std::collections::BTreeMap::new();
        for n in names {
            for s in names {
                let id = ResourceId::subnet(n, s);
                assert_eq!(id.path(), [n, s]);
                let back: ResourceId = id.to_string().parse().unwrap();
                assert_eq!(back, id, "{id} round-trips");
                if let Some((n0, s0)) = seen.insert(id.to_string(), (n, s)) {
                    panic!("({n0:?}, {s0:?}) and ({n:?}, {s:?}) share id {id}");
                }
            }
        }
        assert_ne!(
            ResourceId::subnet("n/a", "b"),
            ResourceId::subnet("n", "a/b")
        );
        assert_eq!(
            ResourceId::subnet("n/a", "b").as_str(),
            "subnet/n%2Fa/b",
            "a `/` in a name is escaped"
        );
        // Valid names keep the form state files and tags already hold.
        assert_eq!(
            ResourceId::subnet("aws-vpc", "private-a"),
            "subnet/aws-vpc/private-a"
        );
        assert_eq!(ResourceId::route("a", "10.1.0.0/16"), "route/a/10.1.0.0/16");
        assert_eq!(ResourceId::route("a", "fd00::/8"), "route/a/fd00::/8");
        assert_eq!(
            "route/a/10.1.0.0/16".parse::<ResourceId>().unwrap(),
            ResourceId::route("a", "10.1.0.0/16")
        );
    }

    #[test]
    fn only_the_canonical_form_parses() {
        for bad in [
            "network",
            "network/a/b",
            "subnet/a",
            "subnet/n/a/b",
            "bogus/a",
            "x:network/a",
            "network/a%2fb",
            "network/%61",
            "network/a:b",
            "route/a",
            "interconnect-attachment/v/n/x",
        ] {
            assert!(bad.parse::<ResourceId>().is_err(), "{bad}");
        }
        for good in [
            "network/a",
            "subnet/n%2Fa/b",
            "subnet/azure-vnet/GatewaySubnet",
            "subnet/azure-vnet/GatewaySubnet",
            "interconnect-attachment/v",
            "interconnect-attachment/v/n",
            "transit-gateway-route/hub/10.0.0.0/16",
        ] {
            let id: ResourceId = good.parse().unwrap();
            assert_eq!(id.as_str(), good);
            assert_eq!(ResourceId::new(id.kind(), id.path().to_vec()).unwrap(), id);
        }
    }
}
