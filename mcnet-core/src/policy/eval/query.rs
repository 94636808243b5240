//! What is asked: a query's endpoints, port and protocol, and the L7
//! request it may carry (HTTP, Kafka, DNS), read from JSON or YAML.

use super::*;

/// One side of a query: a pod by `namespace/name`, or an address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryEndpoint {
    /// `namespace/name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// An address (a pod's, or one outside the cluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
}

/// An HTTP request, for L7 rules.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpRequest {
    /// Method.
    #[serde(default)]
    pub method: String,
    /// Path.
    #[serde(default)]
    pub path: String,
    /// Headers: an object, or a list of `"Name: value"` strings.
    #[serde(default, deserialize_with = "headers")]
    pub headers: BTreeMap<String, String>,
    /// Host (else the `Host` header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

fn headers<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Form {
        Map(BTreeMap<String, String>),
        List(Vec<String>),
    }
    Ok(match Option::<Form>::deserialize(d)? {
        None => BTreeMap::new(),
        Some(Form::Map(m)) => m,
        Some(Form::List(l)) => l
            .into_iter()
            .map(|h| match h.split_once(':') {
                Some((k, v)) => (k.trim().to_string(), v.trim().to_string()),
                None => (h.trim().to_string(), String::new()),
            })
            .collect(),
    })
}

impl HttpRequest {
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(super) fn host(&self) -> Option<&str> {
        self.host.as_deref().or_else(|| self.header("host"))
    }
}

/// One DNS query, for DNS rules.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsRequest {
    /// The name asked for (compared lower-case, fully qualified).
    pub name: String,
}

fn default_proto() -> Proto {
    Proto::Tcp
}

/// A query: may `from` open a connection to `to` on `port`?
///
/// For `protocol: ICMP` or `ICMPv6` the message type stands in for the
/// port: give it as `type` (or as `port`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Query {
    /// Source.
    pub from: QueryEndpoint,
    /// Destination.
    pub to: QueryEndpoint,
    /// Destination port, or the ICMP type.
    pub port: u16,
    /// Protocol (TCP when missing).
    pub protocol: Proto,
    /// One HTTP request, to judge at L7.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpRequest>,
    /// One Kafka request (or role), to judge at L7.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka: Option<KafkaRequest>,
    /// One DNS query, to judge at L7.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<DnsRequest>,
}

impl Query {
    /// A query without an L7 part.
    pub fn l4(from: QueryEndpoint, to: QueryEndpoint, port: u16, protocol: Proto) -> Query {
        Query {
            from,
            to,
            port,
            protocol,
            http: None,
            kafka: None,
            dns: None,
        }
    }

    /// The query's L7 part, if any.
    pub fn l7(&self) -> Option<L7Request<'_>> {
        match (&self.http, &self.kafka, &self.dns) {
            (Some(h), _, _) => Some(L7Request::Http(h)),
            (None, Some(k), _) => Some(L7Request::Kafka(k)),
            (None, None, Some(d)) => Some(L7Request::Dns(d)),
            (None, None, None) => None,
        }
    }
}

impl<'de> Deserialize<'de> for Query {
    /// Reads a query, checking that the port (or ICMP type) fits the
    /// protocol and that at most one L7 part is given.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        #[derive(Deserialize)]
        struct Wire {
            from: QueryEndpoint,
            to: QueryEndpoint,
            #[serde(default)]
            port: Option<u32>,
            #[serde(default, rename = "type", alias = "icmpType", alias = "icmp_type")]
            icmp_type: Option<u32>,
            #[serde(default = "default_proto")]
            protocol: Proto,
            #[serde(default)]
            http: Option<HttpRequest>,
            #[serde(default)]
            kafka: Option<KafkaRequest>,
            #[serde(default)]
            dns: Option<DnsRequest>,
        }
        let w = Wire::deserialize(d)?;
        if w.protocol == Proto::Any {
            return Err(D::Error::custom(
                "protocol ANY is for rules; a query names TCP, UDP, SCTP, ICMP or ICMPv6",
            ));
        }
        let port = if w.protocol.is_icmp() {
            let t = match (w.icmp_type, w.port) {
                (Some(t), _) | (None, Some(t)) => t,
                (None, None) => {
                    return Err(D::Error::custom(format!(
                        "an {} query needs `type` (the message type)",
                        w.protocol
                    )))
                }
            };
            u8::try_from(t)
                .map_err(|_| D::Error::custom(format!("type {t}: an ICMP type is 0–255")))?
                as u16
        } else {
            if w.icmp_type.is_some() {
                return Err(D::Error::custom(format!(
                    "`type` is for ICMP queries, not {}",
                    w.protocol
                )));
            }
            let p = w
                .port
                .ok_or_else(|| D::Error::custom("a query needs `port`"))?;
            u16::try_from(p).map_err(|_| D::Error::custom(format!("port {p} is above 65535")))?
        };
        let l7 = [w.http.is_some(), w.kafka.is_some(), w.dns.is_some()]
            .iter()
            .filter(|x| **x)
            .count();
        if l7 > 1 {
            return Err(D::Error::custom(
                "a query carries at most one of http, kafka and dns",
            ));
        }
        if l7 > 0 && w.protocol.is_icmp() {
            return Err(D::Error::custom("an ICMP query has no L7 part"));
        }
        Ok(Query {
            from: w.from,
            to: w.to,
            port,
            protocol: w.protocol,
            http: w.http,
            kafka: w.kafka,
            dns: w.dns,
        })
    }
}

/// The L7 part of a query.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum L7Request<'a> {
    /// An HTTP request.
    Http(&'a HttpRequest),
    /// A Kafka request.
    Kafka(&'a KafkaRequest),
    /// A DNS query.
    Dns(&'a DnsRequest),
}

impl L7Request<'_> {
    /// The parser that judges it.
    pub fn parser(&self) -> L7Parser {
        match self {
            L7Request::Http(_) => L7Parser::Http,
            L7Request::Kafka(_) => L7Parser::Kafka,
            L7Request::Dns(_) => L7Parser::Dns,
        }
    }

    pub(super) fn describe(&self) -> String {
        match self {
            L7Request::Http(h) => format!("HTTP {} {}", h.method, h.path),
            L7Request::Kafka(k) => format!("Kafka {}", k.describe()),
            L7Request::Dns(d) => format!("DNS {}", d.name),
        }
    }
}

/// The first rule of `rules` that matches the request, as written; `None`
/// when none does (a request of another protocol matches none).
pub fn l7_match(
    rules: &L7Rules,
    req: L7Request<'_>,
) -> Result<Option<String>, kafka::KafkaRequestError> {
    Ok(match (rules, req) {
        (L7Rules::Http(v), L7Request::Http(h)) => v
            .iter()
            .find(|m| http_matches(m, h))
            .map(|m| m.text.clone()),
        (L7Rules::Kafka(v), L7Request::Kafka(k)) => {
            // A role is allowed when every API key of it is.
            let keys = k.api_keys()?;
            let mut texts = Vec::new();
            for key in keys {
                match v.iter().find(|m| kafka::matches(m, key, k)) {
                    Some(m) => {
                        if !texts.contains(&m.text) {
                            texts.push(m.text.clone())
                        }
                    }
                    None => return Ok(None),
                }
            }
            Some(texts.join(" + "))
        }
        (L7Rules::Dns(v), L7Request::Dns(d)) => {
            let name = crate::policy::dns::to_fqdn(&d.name);
            v.iter()
                .find(|m| m.regex.is_match(&name))
                .map(|m| m.text.clone())
        }
        _ => None,
    })
}
