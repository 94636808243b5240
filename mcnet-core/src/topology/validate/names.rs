//! Names: DNS-1123 labels, unique among their kind.

use super::*;

impl Validator {
    pub(super) fn names(&mut self, t: &Topology) {
        if t.metadata.name.trim().is_empty() {
            self.err(Code::NameEmpty, "metadata.name", "the topology has no name");
        } else {
            self.label("metadata.name", "the topology", &t.metadata.name);
        }
        let s = &t.spec;
        self.unique(
            "spec.providers",
            "provider",
            s.providers.iter().map(|p| p.name.as_str()),
        );
        self.unique(
            "spec.networks",
            "network",
            s.networks.iter().map(|p| p.name.as_str()),
        );
        self.unique(
            "spec.clusters",
            "cluster",
            s.clusters.iter().map(|p| p.name.as_str()),
        );
        self.unique(
            "spec.interconnect.routers",
            "MCR",
            s.interconnect.routers.iter().map(|p| p.name.as_str()),
        );
        self.unique(
            "spec.interconnect.vxcs",
            "VXC",
            s.interconnect.vxcs.iter().map(|p| p.name.as_str()),
        );
        self.unique(
            "spec.peerings",
            "peering",
            s.peerings.iter().map(|p| p.name.as_str()),
        );
        self.unique(
            "spec.transitGateways",
            "transit gateway",
            s.transit_gateways.iter().map(|p| p.name.as_str()),
        );
        self.unique(
            "spec.vpnBackups",
            "VPN backup",
            s.vpn_backups.iter().map(|p| p.name.as_str()),
        );
        self.unique(
            "spec.privateEndpoints",
            "private endpoint",
            s.private_endpoints.iter().map(|p| p.name.as_str()),
        );
        self.unique(
            "spec.namespaces",
            "namespace",
            s.namespaces.iter().map(|p| p.name.as_str()),
        );
        for (i, n) in s.networks.iter().enumerate() {
            self.unique(
                &format!("spec.networks[{i}].subnets"),
                &format!("subnet of network `{}`:", n.name),
                n.subnets.iter().map(|s| s.name.as_str()),
            );
        }
        for (i, n) in s.namespaces.iter().enumerate() {
            self.unique(
                &format!("spec.namespaces[{i}].workloads"),
                &format!("workload of namespace `{}`:", n.name),
                n.workloads.iter().map(|s| s.name.as_str()),
            );
            for (j, w) in n.workloads.iter().enumerate() {
                let at = format!("spec.namespaces[{i}].workloads[{j}]");
                if let Some(svc) = &w.service {
                    self.label(&format!("{at}.service"), "a Service", svc);
                }
                for (k, p) in w.ports.iter().enumerate() {
                    self.label(&format!("{at}.ports[{k}].name"), "a port", &p.name);
                }
            }
        }
        if let Some(m) = &s.monitoring {
            self.unique(
                "spec.monitoring.components",
                "monitoring component",
                m.components.iter().map(|c| c.name.as_str()),
            );
        }
        for (i, h) in s.load_balancing.hostnames.iter().enumerate() {
            if let Some(why) = name::subdomain_problem(&h.name) {
                self.err(
                    Code::NameInvalid,
                    format!("spec.loadBalancing.hostnames[{i}].name"),
                    format!(
                        "hostname `{}` is not a DNS name: {why}; a hostname is labels of a-z, 0-9 and '-' joined by '.', at most 253 characters",
                        h.name.escape_debug()
                    ),
                );
            }
        }
    }

    /// `name.invalid` unless `name` is a DNS-1123 label.
    pub(super) fn label(&mut self, path: &str, what: &str, name: &str) {
        if let Some(why) = name::label_problem(name) {
            self.err(
                Code::NameInvalid,
                path,
                format!(
                    "{what} is named `{}`, which is not a DNS-1123 label: {why}; {}",
                    name.escape_debug(),
                    name::LABEL_RULE
                ),
            );
        }
    }

    pub(super) fn unique<'a>(
        &mut self,
        base: &str,
        what: &str,
        names: impl Iterator<Item = &'a str>,
    ) {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, name) in names.enumerate() {
            if name.trim().is_empty() {
                self.err(
                    Code::NameEmpty,
                    format!("{base}[{i}].name"),
                    format!("a {what} has an empty name"),
                );
                continue;
            }
            // Azure requires its gateway subnet to be named `GatewaySubnet`.
            let azure_gateway_subnet = base.ends_with(".subnets") && name == GATEWAY_SUBNET;
            if !azure_gateway_subnet {
                self.label(
                    &format!("{base}[{i}].name"),
                    &format!("a {}", what.trim_end_matches(':')),
                    name,
                );
            }
            if let Some(first) = seen.insert(name, i) {
                self.err(
                    Code::NameDuplicate,
                    format!("{base}[{i}].name"),
                    format!("{what} `{name}` is declared twice (first at {base}[{first}])"),
                );
            }
        }
    }
}
