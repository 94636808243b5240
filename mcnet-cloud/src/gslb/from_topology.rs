//! The GSLB configuration of a topology's `loadBalancing` section, instead
//! of one written by hand: one record per hostname, one endpoint per target
//! cluster at that cluster's ingress address, with the same health check on
//! each.

use mcnet_core::topology::{Cluster, RoutingPolicy, Topology};

use super::*;

/// The health check every endpoint gets, at its own address.
#[derive(Clone, Debug)]
pub struct HealthTemplate {
    /// `http` (a GET of `path`, 2xx or 3xx) or, with `path` `None`, `tcp`.
    pub path: Option<String>,
    /// The port checked on the endpoint's address.
    pub port: u16,
    /// Interval between checks, ms.
    pub interval_ms: u64,
    /// Time a check may take, ms.
    pub timeout_ms: u64,
    /// Consecutive good checks to turn healthy.
    pub healthy: u32,
    /// Consecutive failed checks to turn unhealthy.
    pub unhealthy: u32,
}

impl Default for HealthTemplate {
    /// The topology's default ingress health check
    /// ([`mcnet_core::topology::HealthCheck`]): `GET /healthz` on port 80
    /// every 5 s, within 2 s, two checks either way.
    fn default() -> HealthTemplate {
        HealthTemplate::from(&mcnet_core::topology::HealthCheck::default())
    }
}

impl From<&mcnet_core::topology::HealthCheck> for HealthTemplate {
    /// The topology's `loadBalancing.healthCheck`, as the GSLB runs it (the
    /// cloud load balancers `render` writes run the same one).
    fn from(h: &mcnet_core::topology::HealthCheck) -> HealthTemplate {
        HealthTemplate {
            path: (!h.tcp).then(|| h.path.clone()),
            port: h.port,
            interval_ms: u64::from(h.interval_seconds) * 1000,
            timeout_ms: u64::from(h.timeout_seconds) * 1000,
            healthy: h.healthy_threshold,
            unhealthy: h.unhealthy_threshold,
        }
    }
}

impl HealthTemplate {
    fn at(&self, addr: IpAddr) -> HealthConfig {
        let hostport = SocketAddr::new(addr, self.port).to_string();
        let (http, tcp) = match &self.path {
            Some(p) => (Some(format!("http://{hostport}{p}")), None),
            None => (None, Some(hostport)),
        };
        HealthConfig {
            http,
            tcp,
            interval_ms: self.interval_ms,
            timeout_ms: Some(self.timeout_ms),
            healthy: self.healthy,
            unhealthy: self.unhealthy,
        }
    }
}

/// The GSLB configuration for `t`'s global hostnames. `ingress` gives a
/// cluster's ingress address (its load balancer), or `None` when it has
/// none; `health` is applied at each. The result is checked as
/// [`Config::from_yaml`] checks a file; a target whose cluster is unknown or
/// has no ingress address is an error naming the field.
pub fn from_topology(
    t: &Topology,
    ingress: impl Fn(&Cluster) -> Option<IpAddr>,
    health: &HealthTemplate,
) -> Result<Config> {
    let mut records = Vec::new();
    for (i, h) in t.spec.load_balancing.hostnames.iter().enumerate() {
        let mut endpoints = Vec::new();
        for (j, target) in h.targets.iter().enumerate() {
            let at = format!(
                "loadBalancing.hostnames[{i}] ({}).targets[{j}].cluster",
                h.name
            );
            let cluster = t.cluster(&target.cluster).ok_or_else(|| {
                Error::Config(format!("{at}: no cluster named `{}`", target.cluster))
            })?;
            let address = ingress(cluster).ok_or_else(|| {
                Error::Config(format!(
                    "{at}: cluster `{}` has no ingress address",
                    cluster.name
                ))
            })?;
            endpoints.push(EndpointConfig {
                name: cluster.name.clone(),
                address,
                priority: target.priority,
                weight: target.weight,
                geo: Vec::new(),
                health: Some(health.at(address)),
            });
        }
        records.push(RecordConfig {
            name: h.name.clone(),
            policy: match h.policy {
                RoutingPolicy::Failover => Policy::Failover,
                RoutingPolicy::Weighted => Policy::Weighted,
                RoutingPolicy::Latency => Policy::Latency,
                RoutingPolicy::Geo => Policy::Geo,
            },
            endpoints,
        });
    }
    let c = Config {
        ttl: config::default_ttl(),
        records,
    };
    c.check()?;
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcnet_core::topology::parse;

    const ADR: &str = include_str!("../../../examples/topologies/adr-003.yaml");

    fn adr() -> Topology {
        parse(ADR).topology.expect("adr-003 parses")
    }

    fn ip(i: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, i])
    }

    #[test]
    fn each_hostname_becomes_a_record_with_its_targets_at_their_ingress() {
        let t = adr();
        let order = ["eks-prod", "aks-prod", "gke-prod"];
        let at = |c: &Cluster| {
            order
                .iter()
                .position(|n| *n == c.name)
                .map(|i| ip(i as u8 + 1))
        };
        let c = from_topology(&t, at, &HealthTemplate::default()).unwrap();
        assert_eq!(c.records.len(), 2);
        let api = &c.records[0];
        assert_eq!(api.name, "api.multicloud-k8s.com");
        assert_eq!(api.policy, Policy::Failover);
        let got: Vec<(&str, IpAddr, u32)> = api
            .endpoints
            .iter()
            .map(|e| (e.name.as_str(), e.address, e.priority))
            .collect();
        assert_eq!(
            got,
            [
                ("gke-prod", ip(3), 0),
                ("eks-prod", ip(1), 1),
                ("aks-prod", ip(2), 2)
            ]
        );
        assert_eq!(
            api.endpoints[0].health.as_ref().unwrap().http.as_deref(),
            Some("http://192.0.2.3:80/healthz")
        );
        assert_eq!(c.records[1].policy, Policy::Weighted);
        // What it prints reads back as the same configuration.
        let yaml = serde_yaml::to_string(&c).unwrap();
        let back = Config::from_yaml(&yaml).unwrap();
        assert_eq!(back.records[1].endpoints.len(), 3);
        assert_eq!(back.records[0].endpoints[2].address, ip(2));
    }

    #[test]
    fn a_target_without_an_ingress_address_is_named() {
        let t = adr();
        let e = from_topology(
            &t,
            |c| (c.name != "aks-prod").then(|| ip(9)),
            &HealthTemplate::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("loadBalancing.hostnames[0] (api.multicloud-k8s.com).targets[2].cluster")
                && e.contains("`aks-prod` has no ingress address"),
            "{e}"
        );
    }

    #[test]
    fn a_tcp_template_checks_a_connect() {
        let t = adr();
        let tcp = HealthTemplate {
            path: None,
            port: 443,
            ..HealthTemplate::default()
        };
        let c = from_topology(&t, |_| Some(ip(7)), &tcp).unwrap();
        let h = c.records[0].endpoints[0].health.as_ref().unwrap();
        assert_eq!(
            (h.http.as_deref(), h.tcp.as_deref()),
            (None, Some("192.0.2.7:443"))
        );
    }
}
