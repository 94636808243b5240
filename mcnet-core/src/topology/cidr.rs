//! CIDR values as they appear in a topology: a prefix, `auto`, or something
//! that failed to parse (kept verbatim so that validation can report it with
//! its path instead of aborting the whole parse).

use std::fmt;
use std::str::FromStr;

use ipnet::{IpNet, Ipv4Net};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A CIDR field of the topology.
///
/// Parsing never fails: a malformed value becomes [`Cidr::Invalid`] and
/// [`validate`](crate::topology::validate()) reports it with the field's path,
/// so that one bad prefix does not hide every other problem in the file.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Cidr {
    /// Allocate from a pool; `mcnet ipam` fills it in.
    Auto,
    /// A canonical prefix (no host bits set).
    Net(IpNet),
    /// The raw text of a value that is not a canonical prefix, with the reason.
    Invalid {
        /// What the file said.
        raw: String,
        /// Why it is not a prefix.
        reason: String,
    },
}

impl Cidr {
    /// The prefix, if the value is a valid, concrete one.
    pub fn net(&self) -> Option<IpNet> {
        match self {
            Cidr::Net(n) => Some(*n),
            _ => None,
        }
    }

    /// Whether the value is `auto`.
    pub fn is_auto(&self) -> bool {
        matches!(self, Cidr::Auto)
    }
}

/// Why a prefix is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PrefixError {
    /// Not a prefix at all.
    #[error("`{0}` is not a CIDR prefix (expected a.b.c.d/len or an IPv6 prefix)")]
    Malformed(String),
    /// An address with host bits, not a network.
    #[error("`{given}` has host bits set; the prefix is {network}")]
    HostBits {
        /// What was given.
        given: String,
        /// The network it lies in.
        network: IpNet,
    },
}

/// Parses a prefix strictly: the address must be the network address.
pub fn parse_prefix(s: &str) -> Result<IpNet, PrefixError> {
    let net: IpNet = s
        .trim()
        .parse()
        .map_err(|_| PrefixError::Malformed(s.to_string()))?;
    if net.network() != net.addr() {
        return Err(PrefixError::HostBits {
            given: s.to_string(),
            network: net.trunc(),
        });
    }
    Ok(net)
}

impl FromStr for Cidr {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim() == "auto" {
            return Ok(Cidr::Auto);
        }
        Ok(match parse_prefix(s) {
            Ok(n) => Cidr::Net(n),
            Err(reason) => Cidr::Invalid {
                raw: s.to_string(),
                reason: reason.to_string(),
            },
        })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cidr::Auto => f.write_str("auto"),
            Cidr::Net(n) => n.fmt(f),
            Cidr::Invalid { raw, .. } => f.write_str(raw),
        }
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.parse::<Cidr>() {
            Ok(c) => Ok(c),
            Err(never) => match never {},
        }
    }
}

/// A prefix in its text form (`10.0.0.0/16`, `fd00::/64`) or `auto`;
/// host bits, ranges and overlaps are checked by validation, which names
/// the field.
#[cfg(feature = "schema")]
impl schemars::JsonSchema for Cidr {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Cidr".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "An IPv4 or IPv6 prefix, such as 10.0.0.0/16, or `auto` to allocate one from the IPAM pools.",
            "pattern": "^(auto|[0-9A-Fa-f:.]+/[0-9]{1,3})$",
        })
    }
}

impl From<IpNet> for Cidr {
    fn from(n: IpNet) -> Self {
        Cidr::Net(n)
    }
}

/// Start and end (inclusive) of a prefix as 128-bit integers, IPv4 mapped
/// into its own space by a family tag so that v4 and v6 never compare equal.
pub(crate) fn span(net: &IpNet) -> (u8, u128, u128) {
    match net {
        IpNet::V4(n) => (
            4,
            u32::from(n.network()) as u128,
            u32::from(n.broadcast()) as u128,
        ),
        IpNet::V6(n) => (6, u128::from(n.network()), u128::from(n.broadcast())),
    }
}

/// The smallest IPv4 prefix covering every given IPv4 prefix (None when there are none).
pub fn common_supernet(nets: &[IpNet]) -> Option<IpNet> {
    let v4: Vec<Ipv4Net> = nets
        .iter()
        .filter_map(|n| match n {
            IpNet::V4(v) => Some(*v),
            IpNet::V6(_) => None,
        })
        .collect();
    let first = v4.first()?;
    let mut len = v4.iter().map(|n| n.prefix_len()).min()?;
    let base = u32::from(first.network());
    while len > 0 {
        let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
        if v4
            .iter()
            .all(|n| u32::from(n.network()) & mask == base & mask)
        {
            break;
        }
        len -= 1;
    }
    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    Ipv4Net::new((base & mask).into(), len).ok().map(IpNet::V4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_auto_net_and_invalid() {
        assert_eq!("auto".parse::<Cidr>().unwrap(), Cidr::Auto);
        assert_eq!(
            "10.0.0.0/16"
                .parse::<Cidr>()
                .unwrap()
                .net()
                .unwrap()
                .to_string(),
            "10.0.0.0/16"
        );
        match "10.0.0.1/16".parse::<Cidr>().unwrap() {
            Cidr::Invalid { reason, .. } => assert!(reason.contains("10.0.0.0/16"), "{reason}"),
            other => panic!("expected invalid, got {other:?}"),
        }
        assert!(matches!(
            "10.0.0.0/33".parse::<Cidr>().unwrap(),
            Cidr::Invalid { .. }
        ));
        assert!(matches!(
            "banana".parse::<Cidr>().unwrap(),
            Cidr::Invalid { .. }
        ));
    }
}
