//! Global server load balancing over DNS: an authoritative responder (UDP
//! and TCP) that answers A and AAAA for its names from the endpoints' health,
//! with failover, weighted, latency and geo (EDNS Client Subnet) policies.
//!
//! Health checks go only to the HTTP or TCP targets the configuration
//! names. An endpoint turns unhealthy after `unhealthy` consecutive failed
//! checks and healthy again after `healthy` consecutive good ones, which
//! damps flapping; with the defaults (2 and 2) an outage leaves the answers
//! within two intervals. When every endpoint of a name is down, the policy
//! runs over all of them (fail open): a client would rather try than get
//! nothing.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsCode, EdnsOption};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use ipnet::IpNet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

/// Errors of the GSLB.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is wrong: names the field.
    #[error("gslb config: {0}")]
    Config(String),
    /// A socket could not be opened.
    #[error("{0}")]
    Io(String),
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The configuration (YAML).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// TTL of every answer, seconds (default 5).
    #[serde(default = "default_ttl")]
    pub ttl: u32,
    /// The names served.
    pub records: Vec<RecordConfig>,
}

fn default_ttl() -> u32 {
    5
}

/// One name and its endpoints.
#[derive(Clone, Debug, Deserialize)]
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
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
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
#[derive(Clone, Debug, Deserialize)]
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
    #[serde(default)]
    pub geo: Vec<IpNet>,
    /// Active health check; without one the endpoint is always healthy.
    #[serde(default)]
    pub health: Option<HealthConfig>,
}

fn default_weight() -> u32 {
    1
}

/// An active health check: `http` (a GET that must answer 2xx or 3xx) or `tcp` (a connect).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    /// `http://HOST:PORT/PATH`.
    #[serde(default)]
    pub http: Option<String>,
    /// `HOST:PORT`.
    #[serde(default)]
    pub tcp: Option<String>,
    /// Interval between checks, ms (default 1000).
    #[serde(default = "default_interval")]
    pub interval_ms: u64,
    /// Time a check may take, ms (default: the interval, at most 2000).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Consecutive good checks to turn healthy (default 2).
    #[serde(default = "default_threshold")]
    pub healthy: u32,
    /// Consecutive failed checks to turn unhealthy (default 2).
    #[serde(default = "default_threshold")]
    pub unhealthy: u32,
}

fn default_interval() -> u64 {
    1000
}
fn default_threshold() -> u32 {
    2
}

enum Probe {
    Http {
        addr: String,
        host: String,
        path: String,
    },
    Tcp(String),
}

impl HealthConfig {
    fn probe(&self, at: &str) -> Result<Probe> {
        match (&self.http, &self.tcp) {
            (Some(url), None) => {
                let rest = url.strip_prefix("http://").ok_or_else(|| {
                    Error::Config(format!("{at}.health.http: `{url}` must start with http://"))
                })?;
                let (hostport, path) = match rest.find('/') {
                    Some(i) => (&rest[..i], &rest[i..]),
                    None => (rest, "/"),
                };
                if !hostport.contains(':') {
                    return Err(Error::Config(format!(
                        "{at}.health.http: `{url}` needs a port"
                    )));
                }
                Ok(Probe::Http {
                    addr: hostport.into(),
                    host: hostport.into(),
                    path: path.into(),
                })
            }
            (None, Some(t)) => Ok(Probe::Tcp(t.clone())),
            _ => Err(Error::Config(format!(
                "{at}.health: give exactly one of `http` and `tcp`"
            ))),
        }
    }
}

impl Config {
    /// Parses and checks a YAML configuration; errors name the field.
    pub fn from_yaml(text: &str) -> Result<Config> {
        let de = serde_yaml::Deserializer::from_str(text);
        let c: Config = serde_path_to_error::deserialize(de)
            .map_err(|e| Error::Config(format!("{}: {}", e.path(), e.inner())))?;
        c.check()?;
        Ok(c)
    }

    fn check(&self) -> Result<()> {
        if self.records.is_empty() {
            return Err(Error::Config("records: at least one name".into()));
        }
        let mut seen = BTreeMap::new();
        for (i, r) in self.records.iter().enumerate() {
            let at = format!("records[{i}]");
            let n = normalize(&r.name);
            if Name::from_ascii(&n).is_err() || n.is_empty() {
                return Err(Error::Config(format!(
                    "{at}.name: `{}` is not a DNS name",
                    r.name
                )));
            }
            if seen.insert(n, i).is_some() {
                return Err(Error::Config(format!(
                    "{at}.name: `{}` appears twice",
                    r.name
                )));
            }
            if r.endpoints.is_empty() {
                return Err(Error::Config(format!("{at}.endpoints: at least one")));
            }
            if r.policy == Policy::Weighted && r.endpoints.iter().all(|e| e.weight == 0) {
                return Err(Error::Config(format!("{at}.endpoints: every weight is 0")));
            }
            for (j, e) in r.endpoints.iter().enumerate() {
                if let Some(h) = &e.health {
                    let at = format!("{at}.endpoints[{j}]");
                    h.probe(&at)?;
                    if h.interval_ms == 0 || h.healthy == 0 || h.unhealthy == 0 {
                        return Err(Error::Config(format!(
                            "{at}.health: interval_ms, healthy and unhealthy must be positive"
                        )));
                    }
                }
            }
        }
        Ok(())
    }
}

fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// The live state of one endpoint.
#[derive(Debug)]
pub struct EndpointState {
    /// Its configuration.
    pub config: EndpointConfig,
    healthy: AtomicBool,
    rtt_us: AtomicU64,
    streak: Mutex<(u32, u32)>,
    transitions: AtomicU32,
}

impl EndpointState {
    /// Whether it is healthy now.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Records a check's result; returns true on a transition.
    fn record(&self, ok: bool, rtt: Duration, h: &HealthConfig) -> bool {
        if ok {
            self.rtt_us.store(rtt.as_micros() as u64, Ordering::Relaxed);
        }
        let mut s = self.streak.lock().unwrap_or_else(|p| p.into_inner());
        if ok {
            s.0 += 1;
            s.1 = 0;
        } else {
            s.1 += 1;
            s.0 = 0;
        }
        let was = self.is_healthy();
        let now = if was {
            s.1 < h.unhealthy
        } else {
            s.0 >= h.healthy
        };
        if now != was {
            self.healthy.store(now, Ordering::Relaxed);
            self.transitions.fetch_add(1, Ordering::Relaxed);
        }
        now != was
    }
}

struct RecordState {
    name: String,
    policy: Policy,
    endpoints: Vec<Arc<EndpointState>>,
}

type Labels = Vec<(String, String)>;

/// GSLB metrics, registered in a prometheus-client [`Registry`].
#[derive(Default)]
struct Metrics {
    queries: Family<Labels, Counter>,
    answers: Family<Labels, Counter>,
    checks: Family<Labels, Counter>,
    healthy: Family<Labels, Gauge>,
}

/// The load balancer: configuration, health state and metrics.
pub struct Gslb {
    ttl: u32,
    records: BTreeMap<String, RecordState>,
    metrics: Metrics,
    rng: AtomicU64,
}

impl std::fmt::Debug for Gslb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gslb")
            .field("names", &self.records.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Gslb {
    /// A load balancer for `config`; every endpoint starts healthy.
    pub fn new(config: &Config) -> Arc<Gslb> {
        let records = config
            .records
            .iter()
            .map(|r| {
                let name = normalize(&r.name);
                (
                    name.clone(),
                    RecordState {
                        name,
                        policy: r.policy,
                        endpoints: r
                            .endpoints
                            .iter()
                            .map(|e| {
                                Arc::new(EndpointState {
                                    config: e.clone(),
                                    healthy: AtomicBool::new(true),
                                    rtt_us: AtomicU64::new(u64::MAX),
                                    streak: Mutex::new((0, 0)),
                                    transitions: AtomicU32::new(0),
                                })
                            })
                            .collect(),
                    },
                )
            })
            .collect();
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1;
        let g = Arc::new(Gslb {
            ttl: config.ttl,
            records,
            metrics: Metrics::default(),
            rng: AtomicU64::new(seed),
        });
        for r in g.records.values() {
            for e in &r.endpoints {
                g.metrics
                    .healthy
                    .get_or_create(&labels(&r.name, &e.config.name))
                    .set(1);
            }
        }
        g
    }

    /// Registers the GSLB's metrics (prefix `mcnet_gslb_`).
    pub fn register(self: &Arc<Self>, registry: &mut Registry) {
        let sub = registry.sub_registry_with_prefix("mcnet_gslb");
        sub.register(
            "queries",
            "DNS queries, by name and response code",
            self.metrics.queries.clone(),
        );
        sub.register(
            "answers",
            "Endpoints answered, by name and endpoint",
            self.metrics.answers.clone(),
        );
        sub.register(
            "health_checks",
            "Health checks, by endpoint and result",
            self.metrics.checks.clone(),
        );
        sub.register(
            "endpoint_healthy",
            "Whether an endpoint is healthy (1) or not (0)",
            self.metrics.healthy.clone(),
        );
    }

    /// The state of the endpoints of `name`.
    pub fn endpoints(&self, name: &str) -> Vec<Arc<EndpointState>> {
        self.records
            .get(&normalize(name))
            .map(|r| r.endpoints.clone())
            .unwrap_or_default()
    }

    fn random(&self) -> u64 {
        // xorshift64*, shared across threads; good enough to split traffic.
        let mut x = self.rng.load(Ordering::Relaxed);
        loop {
            let mut y = x;
            y ^= y >> 12;
            y ^= y << 25;
            y ^= y >> 27;
            match self
                .rng
                .compare_exchange_weak(x, y, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return y.wrapping_mul(0x2545_f491_4f6c_dd1d),
                Err(now) => x = now,
            }
        }
    }

    /// The addresses to answer for `name` and `qtype` (A or AAAA) to `client`.
    pub fn choose(
        &self,
        name: &str,
        qtype: RecordType,
        client: Option<IpAddr>,
    ) -> Option<Vec<IpAddr>> {
        let r = self.records.get(&normalize(name))?;
        let family = |e: &&Arc<EndpointState>| match qtype {
            RecordType::A => e.config.address.is_ipv4(),
            RecordType::AAAA => e.config.address.is_ipv6(),
            _ => false,
        };
        let all: Vec<&Arc<EndpointState>> = r.endpoints.iter().filter(family).collect();
        let mut up: Vec<&Arc<EndpointState>> =
            all.iter().copied().filter(|e| e.is_healthy()).collect();
        if up.is_empty() {
            up = all.clone(); // fail open
        }
        let lowest_priority = |set: &[&Arc<EndpointState>]| -> Vec<Arc<EndpointState>> {
            let p = set.iter().map(|e| e.config.priority).min();
            set.iter()
                .filter(|e| Some(e.config.priority) == p)
                .map(|e| Arc::clone(e))
                .collect()
        };
        let chosen: Vec<Arc<EndpointState>> = match r.policy {
            Policy::Failover => lowest_priority(&up),
            Policy::Weighted => {
                let total: u64 = up.iter().map(|e| u64::from(e.config.weight)).sum();
                if total == 0 {
                    lowest_priority(&up)
                } else {
                    let mut pick = self.random() % total;
                    up.iter()
                        .find(|e| {
                            let w = u64::from(e.config.weight);
                            if pick < w {
                                true
                            } else {
                                pick -= w;
                                false
                            }
                        })
                        .map(|e| vec![Arc::clone(e)])
                        .unwrap_or_default()
                }
            }
            Policy::Latency => up
                .iter()
                .min_by_key(|e| (e.rtt_us.load(Ordering::Relaxed), e.config.priority))
                .map(|e| vec![Arc::clone(e)])
                .unwrap_or_default(),
            Policy::Geo => {
                let best = client.and_then(|ip| {
                    up.iter()
                        .filter_map(|e| {
                            e.config
                                .geo
                                .iter()
                                .filter(|n| n.contains(&ip))
                                .map(|n| n.prefix_len())
                                .max()
                                .map(|len| (len, e))
                        })
                        .max_by_key(|(len, _)| *len)
                        .map(|(len, _)| len)
                });
                match (best, client) {
                    (Some(len), Some(ip)) => up
                        .iter()
                        .filter(|e| {
                            e.config
                                .geo
                                .iter()
                                .any(|n| n.prefix_len() == len && n.contains(&ip))
                        })
                        .map(|e| Arc::clone(e))
                        .collect(),
                    _ => lowest_priority(&up),
                }
            }
        };
        for e in &chosen {
            self.metrics
                .answers
                .get_or_create(&labels(&r.name, &e.config.name))
                .inc();
        }
        Some(chosen.iter().map(|e| e.config.address).collect())
    }

    /// Answers one DNS query (wire format); `None` for a message that is not one.
    pub fn handle(&self, query: &[u8], source: IpAddr) -> Option<Vec<u8>> {
        self.respond(query, source, false)
    }

    /// [`Gslb::handle`] for a query that came over UDP: an answer too big
    /// for plain (non-EDNS) UDP is sent truncated, so that the client retries over TCP.
    pub fn handle_udp(&self, query: &[u8], source: IpAddr) -> Option<Vec<u8>> {
        self.respond(query, source, true)
    }

    fn respond(&self, query: &[u8], source: IpAddr, udp: bool) -> Option<Vec<u8>> {
        let q = Message::from_vec(query).ok()?;
        if q.metadata.message_type != MessageType::Query {
            return None;
        }
        let mut resp = Message::response(q.metadata.id, q.metadata.op_code);
        resp.metadata.recursion_desired = q.metadata.recursion_desired;
        resp.metadata.authoritative = true;
        resp.add_queries(q.queries.clone());
        // EDNS: answer with EDNS when asked, echoing a client subnet with its scope.
        let mut client = Some(source);
        if let Some(edns) = &q.edns {
            let mut out = Edns::new();
            out.set_max_payload(1232);
            if let Some(EdnsOption::Subnet(s)) = edns.option(EdnsCode::Subnet) {
                client = Some(s.addr());
                let mut echo = ClientSubnet::new(s.addr(), s.source_prefix(), s.source_prefix());
                echo.set_scope_prefix(s.source_prefix());
                out.options_mut().insert(EdnsOption::Subnet(echo));
            }
            resp.set_edns(out);
        }
        let code = match (q.metadata.op_code, q.queries.as_slice()) {
            (OpCode::Query, [one]) => {
                let name = one.name().to_ascii();
                match one.query_type() {
                    t @ (RecordType::A | RecordType::AAAA) => match self.choose(&name, t, client) {
                        Some(addrs) => {
                            let owner = one.name().clone();
                            for a in addrs {
                                let rdata = match a {
                                    IpAddr::V4(v4) => RData::A(A(v4)),
                                    IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
                                };
                                resp.add_answer(Record::from_rdata(owner.clone(), self.ttl, rdata));
                            }
                            ResponseCode::NoError
                        }
                        None => ResponseCode::Refused,
                    },
                    // A name we serve, another type: no data.
                    _ if self.records.contains_key(&normalize(&name)) => ResponseCode::NoError,
                    _ => ResponseCode::Refused,
                }
            }
            (OpCode::Query, _) => ResponseCode::FormErr,
            _ => ResponseCode::NotImp,
        };
        if code == ResponseCode::Refused {
            resp.metadata.authoritative = false;
        }
        resp.metadata.response_code = code;
        let name = q
            .queries
            .first()
            .map(|x| normalize(&x.name().to_ascii()))
            .filter(|n| self.records.contains_key(n))
            .unwrap_or_else(|| "other".into());
        self.metrics
            .queries
            .get_or_create(&vec![
                ("name".into(), name),
                ("rcode".into(), format!("{code:?}").to_ascii_lowercase()),
            ])
            .inc();
        let out = resp.to_vec().ok()?;
        if udp && q.edns.is_none() && out.len() > 512 {
            resp.answers.clear();
            resp.metadata.truncation = true;
            return resp.to_vec().ok();
        }
        Some(out)
    }
}

fn labels(name: &str, endpoint: &str) -> Labels {
    vec![
        ("name".into(), name.into()),
        ("endpoint".into(), endpoint.into()),
    ]
}

async fn check_once(p: &Probe, timeout: Duration) -> bool {
    let attempt = async {
        match p {
            Probe::Tcp(addr) => TcpStream::connect(addr.as_str()).await.is_ok(),
            Probe::Http { addr, host, path } => {
                let Ok(mut s) = TcpStream::connect(addr.as_str()).await else {
                    return false;
                };
                let req = format!(
                    "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: mcnet-gslb\r\nConnection: close\r\n\r\n"
                );
                if s.write_all(req.as_bytes()).await.is_err() {
                    return false;
                }
                let mut head = [0u8; 12];
                if s.read_exact(&mut head).await.is_err() {
                    return false;
                }
                // "HTTP/1.1 200"
                matches!(head.get(9), Some(b'2') | Some(b'3'))
            }
        }
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .unwrap_or(false)
}

/// Starts one health-check task per checked endpoint.
pub fn spawn_health_checks(g: &Arc<Gslb>) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    for r in g.records.values() {
        for e in &r.endpoints {
            let Some(h) = e.config.health.clone() else {
                continue;
            };
            let Ok(probe) = h.probe("") else { continue };
            let (g, e, name) = (Arc::clone(g), Arc::clone(e), r.name.clone());
            tasks.push(tokio::spawn(async move {
                let interval = Duration::from_millis(h.interval_ms);
                let timeout =
                    Duration::from_millis(h.timeout_ms.unwrap_or(h.interval_ms.min(2000)));
                let mut tick = tokio::time::interval(interval);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let t0 = Instant::now();
                    let ok = check_once(&probe, timeout).await;
                    g.metrics
                        .checks
                        .get_or_create(&vec![
                            ("endpoint".into(), e.config.name.clone()),
                            ("result".into(), if ok { "ok" } else { "fail" }.into()),
                        ])
                        .inc();
                    if e.record(ok, t0.elapsed(), &h) {
                        let up = e.is_healthy();
                        g.metrics
                            .healthy
                            .get_or_create(&labels(&name, &e.config.name))
                            .set(i64::from(up));
                        tracing::info!(
                            name,
                            endpoint = e.config.name,
                            healthy = up,
                            "endpoint health changed"
                        );
                    }
                }
            }));
        }
    }
    tasks
}

/// Serves DNS on UDP and TCP at `addr` until the tasks are dropped; returns
/// the bound address.
pub async fn serve(
    g: Arc<Gslb>,
    addr: SocketAddr,
) -> Result<(SocketAddr, Vec<tokio::task::JoinHandle<()>>)> {
    let udp = UdpSocket::bind(addr)
        .await
        .map_err(|e| Error::Io(format!("cannot bind UDP {addr}: {e}")))?;
    let bound = udp.local_addr().map_err(|e| Error::Io(e.to_string()))?;
    let tcp = TcpListener::bind(bound)
        .await
        .map_err(|e| Error::Io(format!("cannot bind TCP {bound}: {e}")))?;
    let udp = Arc::new(udp);
    let mut tasks = Vec::new();
    // Two UDP workers share the socket.
    for _ in 0..2 {
        let (g, udp) = (Arc::clone(&g), Arc::clone(&udp));
        tasks.push(tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((n, from)) = udp.recv_from(&mut buf).await else {
                    continue;
                };
                if let Some(out) = g.handle_udp(&buf[..n], from.ip()) {
                    let _ = udp.send_to(&out, from).await;
                }
            }
        }));
    }
    tasks.push(tokio::spawn(async move {
        loop {
            let Ok((mut s, from)) = tcp.accept().await else {
                continue;
            };
            let g = Arc::clone(&g);
            tokio::spawn(async move {
                loop {
                    let mut len = [0u8; 2];
                    if s.read_exact(&mut len).await.is_err() {
                        break;
                    }
                    let mut q = vec![0u8; u16::from_be_bytes(len) as usize];
                    if s.read_exact(&mut q).await.is_err() {
                        break;
                    }
                    let Some(out) = g.handle(&q, from.ip()) else {
                        break;
                    };
                    let mut framed = (out.len() as u16).to_be_bytes().to_vec();
                    framed.extend_from_slice(&out);
                    if s.write_all(&framed).await.is_err() {
                        break;
                    }
                }
            });
        }
    }));
    Ok((bound, tasks))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(policy: &str) -> Config {
        Config::from_yaml(&format!(
            r#"
ttl: 5
records:
  - name: api.example.test
    policy: {policy}
    endpoints:
      - {{name: aws, address: 198.18.0.10, priority: 1, weight: 75, geo: [203.0.113.0/24]}}
      - {{name: gcp, address: 198.18.0.20, priority: 2, weight: 25, geo: [198.51.100.0/24]}}
      - {{name: v6, address: "2001:db8::1", priority: 1}}
"#
        ))
        .unwrap()
    }

    #[test]
    fn failover_takes_the_lowest_healthy_priority() {
        let g = Gslb::new(&cfg("failover"));
        let a = |g: &Gslb| g.choose("API.example.test.", RecordType::A, None).unwrap();
        assert_eq!(a(&g), vec!["198.18.0.10".parse::<IpAddr>().unwrap()]);
        g.endpoints("api.example.test")[0]
            .healthy
            .store(false, Ordering::Relaxed);
        assert_eq!(a(&g), vec!["198.18.0.20".parse::<IpAddr>().unwrap()]);
        g.endpoints("api.example.test")[1]
            .healthy
            .store(false, Ordering::Relaxed);
        assert_eq!(
            a(&g),
            vec!["198.18.0.10".parse::<IpAddr>().unwrap()],
            "all down: fail open, the policy applied to every endpoint"
        );
        assert_eq!(
            g.choose("api.example.test", RecordType::AAAA, None)
                .unwrap(),
            vec!["2001:db8::1".parse::<IpAddr>().unwrap()]
        );
        assert!(g.choose("other.test", RecordType::A, None).is_none());
    }

    #[test]
    fn weighted_splits_by_weight() {
        let g = Gslb::new(&cfg("weighted"));
        let n = 20_000;
        let aws = (0..n)
            .filter(|_| {
                g.choose("api.example.test", RecordType::A, None).unwrap()
                    == vec!["198.18.0.10".parse::<IpAddr>().unwrap()]
            })
            .count();
        let share = aws as f64 / n as f64;
        assert!((share - 0.75).abs() < 0.02, "{share}");
    }

    #[test]
    fn geo_uses_the_client_subnet() {
        let g = Gslb::new(&cfg("geo"));
        let from = |ip: &str| {
            g.choose("api.example.test", RecordType::A, Some(ip.parse().unwrap()))
                .unwrap()
        };
        assert_eq!(
            from("198.51.100.7"),
            vec!["198.18.0.20".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(
            from("203.0.113.9"),
            vec!["198.18.0.10".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(
            from("192.0.2.1"),
            vec!["198.18.0.10".parse::<IpAddr>().unwrap()],
            "elsewhere: failover"
        );
    }

    #[test]
    fn thresholds_damp_flapping() {
        let h = HealthConfig {
            http: None,
            tcp: Some("127.0.0.1:1".into()),
            interval_ms: 100,
            timeout_ms: None,
            healthy: 2,
            unhealthy: 2,
        };
        let g = Gslb::new(&cfg("failover"));
        let e = &g.endpoints("api.example.test")[0];
        let d = Duration::from_millis(1);
        assert!(!e.record(false, d, &h));
        assert!(e.is_healthy(), "one failure is not enough");
        assert!(e.record(false, d, &h));
        assert!(!e.is_healthy());
        assert!(!e.record(true, d, &h));
        assert!(!e.record(false, d, &h), "ok then fail: still down");
        assert!(!e.record(true, d, &h));
        assert!(e.record(true, d, &h));
        assert!(e.is_healthy());
    }

    #[test]
    fn bad_configs_name_the_field() {
        let e = Config::from_yaml("records: []").unwrap_err().to_string();
        assert!(e.contains("records"), "{e}");
        let e =
            Config::from_yaml("records: [{name: a.test, endpoints: [{name: x, address: nope}]}]")
                .unwrap_err()
                .to_string();
        assert!(e.contains("records[0].endpoints[0].address"), "{e}");
        let e = Config::from_yaml(
            "records: [{name: a.test, endpoints: [{name: x, address: 198.18.0.1, health: {http: 'ftp://x'}}]}]",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("records[0].endpoints[0].health.http"), "{e}");
        let e = Config::from_yaml(
            "records: [{name: a.test, endpoints: [{name: x, address: 198.18.0.1, colour: red}]}]",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("colour"), "{e}");
    }
}
