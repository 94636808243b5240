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

use hickory_proto::rr::{Name, RecordType};
use ipnet::IpNet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;

mod config;
mod from_topology;
mod http;
mod server;
mod wire;

use config::{normalize, Probe};
pub use config::{Config, EndpointConfig, HealthConfig, Policy, RecordConfig};
pub use from_topology::{from_topology, HealthTemplate};
pub use http::{serve_metrics, MetricsOptions};
pub use server::{serve, serve_with, ServeOptions};
pub use wire::{PLAIN_UDP_MAX, TCP_MESSAGE_MAX, UDP_PAYLOAD_MAX};

/// Errors of the GSLB.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is wrong: names the field.
    #[error("gslb config: {0}")]
    Config(String),
    /// A socket could not be opened.
    #[error("{context}")]
    Io {
        /// The operation and address (`cannot bind UDP 127.0.0.1:53`).
        context: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The configuration is larger or deeper than the reader accepts.
    #[error("gslb config")]
    Input(#[source] mcnet_core::Error),
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

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
    truncated: Family<Labels, Counter>,
    tcp_connections: Gauge,
    tcp_rejected: Counter,
    tcp_timeouts: Family<Labels, Counter>,
    accept_errors: Counter,
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
        sub.register(
            "truncated",
            "Answers sent truncated (TC) because they did not fit, by transport",
            self.metrics.truncated.clone(),
        );
        sub.register(
            "tcp_connections",
            "Open DNS TCP connections",
            self.metrics.tcp_connections.clone(),
        );
        sub.register(
            "tcp_rejected",
            "DNS TCP connections closed at once because the cap was reached",
            self.metrics.tcp_rejected.clone(),
        );
        sub.register(
            "tcp_timeouts",
            "DNS TCP connections closed by a timeout, by kind (idle, read, write)",
            self.metrics.tcp_timeouts.clone(),
        );
        sub.register(
            "accept_errors",
            "Failed DNS TCP accepts (each followed by a backoff)",
            self.metrics.accept_errors.clone(),
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
            Probe::Http { addr, host, path } => http::http_check(addr, host, path).await,
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
                let timeout = h.timeout();
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

    #[test]
    fn broken_health_checks_are_refused_naming_the_endpoint_and_field() {
        let check = |health: &str| {
            Config::from_yaml(&format!(
                "records: [{{name: a.test, endpoints: [{{name: aws, address: 198.18.0.1, health: {health}}}]}}]"
            ))
            .map(|_| ())
            .map_err(|e| e.to_string())
        };
        for (health, field, what) in [
            (
                "{tcp: nope}",
                "records[0].endpoints[0].health.tcp",
                "HOST:PORT",
            ),
            (
                "{tcp: '127.0.0.1:99999'}",
                "records[0].endpoints[0].health.tcp",
                "99999",
            ),
            (
                "{tcp: '127.0.0.1:0'}",
                "records[0].endpoints[0].health.tcp",
                "port",
            ),
            (
                "{tcp: 'bad host!:80'}",
                "records[0].endpoints[0].health.tcp",
                "bad host!",
            ),
            ("{tcp: ':80'}", "records[0].endpoints[0].health.tcp", "host"),
            (
                "{http: 'http://127.0.0.1:99999/h'}",
                "records[0].endpoints[0].health.http",
                "99999",
            ),
            (
                "{http: 'http://127.0.0.1/h'}",
                "records[0].endpoints[0].health.http",
                "HOST:PORT",
            ),
            (
                "{http: 'http://h.test:80/a b'}",
                "records[0].endpoints[0].health.http",
                "whitespace",
            ),
            (
                "{tcp: '127.0.0.1:80', timeout_ms: 0}",
                "records[0].endpoints[0].health.timeout_ms",
                "positive",
            ),
            (
                "{tcp: '127.0.0.1:80', timeout_ms: 3600000}",
                "records[0].endpoints[0].health.timeout_ms",
                "at most",
            ),
            (
                "{tcp: '127.0.0.1:80', interval_ms: 0}",
                "records[0].endpoints[0].health.interval_ms",
                "positive",
            ),
        ] {
            let e = check(health).expect_err(health);
            assert!(e.contains(field) && e.contains(what), "{health}: {e}");
            assert!(
                e.contains("endpoint `aws`") && e.contains("record `a.test`"),
                "{health}: {e}"
            );
        }
        for health in [
            "{tcp: '127.0.0.1:80'}",
            "{tcp: '[::1]:53'}",
            "{tcp: 'db.internal.example:5432'}",
            "{http: 'http://127.0.0.1:8080'}",
            "{http: 'http://[::1]:8080/healthz?full=1'}",
        ] {
            check(health).unwrap_or_else(|e| panic!("{health}: {e}"));
        }
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let e = Config::from_yaml(
            "records: [{name: a.test, endpoints: [{name: x, address: 198.18.0.1, health: {tcp: nope, timeout_ms: 0}}]}, {name: A.test., endpoints: []}]",
        )
        .unwrap_err()
        .to_string();
        for want in [
            "records[0].endpoints[0].health.tcp",
            "records[0].endpoints[0].health.timeout_ms",
            "records[1].name",
            "records[1].endpoints",
        ] {
            assert!(e.contains(want), "{want} missing from: {e}");
        }
    }
}
