//! The GSLB's configuration (YAML): records, their endpoints and health
//! checks, checked whole before anything is served.

use super::*;

/// The configuration (YAML).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// TTL of every answer, seconds (default 5).
    #[serde(default = "default_ttl")]
    pub ttl: u32,
    /// The names served.
    pub records: Vec<RecordConfig>,
}

pub(super) fn default_ttl() -> u32 {
    5
}

/// One name and its endpoints.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RecordConfig {
    /// Fully qualified name (a trailing dot is optional).
    pub name: String,
    /// `failover`, `weighted`, `latency` or `geo`.
    #[serde(default)]
    pub policy: Policy,
    /// The endpoints.
    pub endpoints: Vec<EndpointConfig>,
}

/// Routing policies.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// The healthy endpoints of the lowest priority.
    #[default]
    Failover,
    /// One healthy endpoint, drawn in proportion to the weights.
    Weighted,
    /// The healthy endpoint with the lowest health-check round trip.
    Latency,
    /// The healthy endpoints whose `geo` subnets hold the client (EDNS Client
    /// Subnet, else the query's source); others fall back to failover.
    Geo,
}

/// An endpoint.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointConfig {
    /// Name (for metrics and logs).
    pub name: String,
    /// The address answered for it (IPv4 for A, IPv6 for AAAA).
    pub address: IpAddr,
    /// Failover order: lowest healthy wins (default 0).
    #[serde(default)]
    pub priority: u32,
    /// Weighted share (default 1).
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Client subnets this endpoint serves (geo).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub geo: Vec<IpNet>,
    /// Active health check; without one the endpoint is always healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthConfig>,
}

pub(super) fn default_weight() -> u32 {
    1
}

/// An active health check: `http` (a GET that must answer 2xx or 3xx) or `tcp` (a connect).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    /// `http://HOST:PORT/PATH`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<String>,
    /// `HOST:PORT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<String>,
    /// Interval between checks, ms (default 1000).
    #[serde(default = "default_interval")]
    pub interval_ms: u64,
    /// Time a check may take, ms (default: the interval, at most 2000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Consecutive good checks to turn healthy (default 2).
    #[serde(default = "default_threshold")]
    pub healthy: u32,
    /// Consecutive failed checks to turn unhealthy (default 2).
    #[serde(default = "default_threshold")]
    pub unhealthy: u32,
}

pub(super) fn default_interval() -> u64 {
    1000
}
pub(super) fn default_threshold() -> u32 {
    2
}

pub(super) enum Probe {
    Http {
        addr: String,
        host: String,
        path: String,
    },
    Tcp(String),
}

/// Checks a `HOST:PORT` target: an IP address (IPv6 in brackets) or a DNS
/// name, and a port from 1 to 65535. `None` when it is fine, else why not.
pub(super) fn bad_target(hostport: &str) -> Option<String> {
    if hostport.parse::<SocketAddr>().is_ok() {
        return match hostport.rsplit_once(':') {
            Some((_, "0")) => Some("port 0 is not a port".into()),
            _ => None,
        };
    }
    let Some((host, port)) = hostport.rsplit_once(':') else {
        return Some("needs HOST:PORT".into());
    };
    if port.parse::<u16>().map_or(true, |p| p == 0) {
        return Some(format!("port `{port}` is not from 1 to 65535"));
    }
    let name_ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    if !name_ok {
        return Some(format!(
            "host `{host}` is neither an IP address nor a DNS name"
        ));
    }
    None
}

impl HealthConfig {
    pub(super) fn probe(&self, at: &str) -> Result<Probe> {
        match (&self.http, &self.tcp) {
            (Some(url), None) => {
                let rest = url.strip_prefix("http://").ok_or_else(|| {
                    Error::Config(format!("{at}.health.http: `{url}` must start with http://"))
                })?;
                let (hostport, path) = match rest.find('/') {
                    Some(i) => (&rest[..i], &rest[i..]),
                    None => (rest, "/"),
                };
                if let Some(why) = bad_target(hostport) {
                    return Err(Error::Config(format!("{at}.health.http: `{url}`: {why}")));
                }
                if path
                    .bytes()
                    .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
                {
                    return Err(Error::Config(format!(
                        "{at}.health.http: `{url}`: the path holds whitespace or control characters"
                    )));
                }
                Ok(Probe::Http {
                    addr: hostport.into(),
                    host: hostport.into(),
                    path: path.into(),
                })
            }
            (None, Some(t)) => match bad_target(t) {
                Some(why) => Err(Error::Config(format!("{at}.health.tcp: `{t}`: {why}"))),
                None => Ok(Probe::Tcp(t.clone())),
            },
            _ => Err(Error::Config(format!(
                "{at}.health: give exactly one of `http` and `tcp`"
            ))),
        }
    }

    /// The time one check may take.
    pub(super) fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.unwrap_or(self.interval_ms.min(2000)))
    }
}

impl Config {
    /// Parses and checks a YAML configuration; errors name the field.
    pub fn from_yaml(text: &str) -> Result<Config> {
        mcnet_core::input::check("GSLB config", text).map_err(Error::Input)?;
        let de = serde_yaml::Deserializer::from_str(text);
        let c: Config = serde_path_to_error::deserialize(de)
            .map_err(|e| Error::Config(format!("{}: {}", e.path(), e.inner())))?;
        c.check()?;
        Ok(c)
    }

    /// Checks the configuration, reporting every problem at once (one per
    /// line), each naming the record or endpoint and the field.
    pub fn check(&self) -> Result<()> {
        let mut problems = Vec::new();
        if self.records.is_empty() {
            problems.push("records: at least one name".to_string());
        }
        let mut seen = BTreeMap::new();
        for (i, r) in self.records.iter().enumerate() {
            let at = format!("records[{i}]");
            let n = normalize(&r.name);
            if Name::from_ascii(&n).is_err() || n.is_empty() {
                problems.push(format!("{at}.name: `{}` is not a DNS name", r.name));
            } else if seen.insert(n, i).is_some() {
                problems.push(format!("{at}.name: `{}` appears twice", r.name));
            }
            if r.endpoints.is_empty() {
                problems.push(format!("{at}.endpoints: at least one"));
            }
            if r.policy == Policy::Weighted
                && !r.endpoints.is_empty()
                && r.endpoints.iter().all(|e| e.weight == 0)
            {
                problems.push(format!("{at}.endpoints: every weight is 0"));
            }
            for (j, e) in r.endpoints.iter().enumerate() {
                let Some(h) = &e.health else { continue };
                let at = format!("{at}.endpoints[{j}]");
                let whose = format!(" (record `{}`, endpoint `{}`)", r.name, e.name);
                let before = problems.len();
                if let Err(Error::Config(why)) = h.probe(&at) {
                    problems.push(why);
                }
                for (field, value) in [
                    ("interval_ms", h.interval_ms),
                    ("healthy", u64::from(h.healthy)),
                    ("unhealthy", u64::from(h.unhealthy)),
                    ("timeout_ms", h.timeout_ms.unwrap_or(1)),
                ] {
                    if value == 0 {
                        problems.push(format!("{at}.health.{field}: must be positive"));
                    }
                }
                if h.timeout_ms.is_some_and(|t| t > MAX_CHECK_TIMEOUT_MS) {
                    problems.push(format!(
                        "{at}.health.timeout_ms: at most {MAX_CHECK_TIMEOUT_MS}"
                    ));
                }
                for p in &mut problems[before..] {
                    p.push_str(&whose);
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::Config(problems.join("\n")))
        }
    }
}

/// The longest a health check may be given (`timeout_ms`): one minute.
pub(super) const MAX_CHECK_TIMEOUT_MS: u64 = 60_000;

pub(super) fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}
