//! Cilium: Helm values, `cilium-config`, `hubble-config`, ClusterMesh and the
//! network components' disruption budget.

use serde_json::{json, Value};

use super::{builtin, ClusterRender, Context, DocKind};
use crate::topology::{Cluster, ClusterFlavour, CniChaining, CniMode};
use crate::Result;

/// Hubble metrics the ADR enables.
pub(super) const HUBBLE_METRICS: [&str; 6] = ["dns", "drop", "tcp", "flow", "icmp", "http"];

/// Port of the ClusterMesh API server.
const CLUSTERMESH_PORT: u16 = 2379;

pub use crate::topology::cidr::common_supernet;

struct Settings {
    routing_mode: &'static str,
    native_cidr: Option<String>,
    ipam: &'static str,
    chaining: Option<&'static str>,
}

fn settings(ctx: &Context<'_>, c: &Cluster) -> Settings {
    let pod = c.pod_cidr.net();
    let native_cidr = match c.cni.mode {
        CniMode::Overlay => None,
        // ClusterMesh in native routing: every member's pods are routed, unmasqueraded.
        CniMode::Native if c.cluster_mesh.is_some() => common_supernet(&ctx.mesh_pod_cidrs),
        CniMode::Native => pod,
    }
    .map(|n| n.to_string());
    let (ipam, chaining) = match (c.cni.chaining, c.flavour) {
        (CniChaining::AwsVpcCni, _) => ("delegated-plugin", Some("aws-cni")),
        (CniChaining::AzureCni, _) => ("delegated-plugin", Some("generic-veth")),
        (CniChaining::None, ClusterFlavour::Gke) => ("kubernetes", None),
        (CniChaining::None, _) => ("cluster-pool", None),
    };
    Settings {
        routing_mode: match c.cni.mode {
            CniMode::Native => "native",
            CniMode::Overlay => "tunnel",
        },
        native_cidr,
        ipam,
        chaining,
    }
}

pub(super) fn render(ctx: &Context<'_>, c: &Cluster, out: &mut ClusterRender) -> Result<()> {
    let s = settings(ctx, c);
    let (mesh_id, mesh_name) = c
        .cluster_mesh
        .as_ref()
        .map(|m| (m.id, m.name.clone()))
        .unwrap_or((0, c.name.clone()));
    let hubble_host = format!("hubble.{}", ctx.domain);
    let pod_cidr = c.pod_cidr.net().map(|n| n.to_string()).unwrap_or_default();
    let chained = s.chaining.is_some();

    // Helm values.
    let mut values = json!({
        "cluster": {"name": mesh_name, "id": mesh_id},
        "routingMode": s.routing_mode,
        "kubeProxyReplacement": true,
        "bpf": {"masquerade": !chained, "hostLegacyRouting": false},
        "ipMasqAgent": {"enabled": false},
        "enableIPv4Masquerade": !chained,
        "bandwidthManager": {"enabled": true, "bbr": true},
        "localRedirectPolicy": true,
        "nodePort": {"enabled": true},
        "hostPort": {"enabled": true},
        "externalIPs": {"enabled": true},
        "encryption": {"enabled": true, "type": "wireguard", "nodeEncryption": true},
        "hubble": {
            "enabled": true,
            "listenAddress": ":4244",
            "metrics": {"enabled": HUBBLE_METRICS},
            "relay": {"enabled": true},
            "ui": {"enabled": true, "ingress": {"enabled": true, "hosts": [hubble_host]}}
        },
        "ipam": {"mode": s.ipam},
        // The ADR's resilience settings for the agent DaemonSet.
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2}},
        "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{
            "labelSelector": {"matchExpressions": [{"key": "k8s-app", "operator": "In", "values": ["cilium"]}]},
            "topologyKey": "kubernetes.io/hostname"
        }]}},
        "operator": {"replicas": 2, "podDisruptionBudget": {"enabled": true, "minAvailable": 1}},
    });
    if let Some(cidr) = &s.native_cidr {
        values["ipv4NativeRoutingCIDR"] = json!(cidr);
    }
    if s.routing_mode == "tunnel" {
        values["tunnelProtocol"] = json!("vxlan");
    }
    if s.ipam == "cluster-pool" {
        values["ipam"]["operator"] = json!({
            "clusterPoolIPv4PodCIDRList": [pod_cidr],
            "clusterPoolIPv4MaskSize": 24
        });
    }
    if let Some(mode) = s.chaining {
        values["cni"] = json!({"chainingMode": mode, "exclusive": false});
    }
    match c.flavour {
        ClusterFlavour::Aks if !chained => values["aksbyocni"] = json!({"enabled": true}),
        ClusterFlavour::Gke => values["gke"] = json!({"enabled": true}),
        _ => {}
    }
    // ClusterMesh: this cluster's identity, the API server, and a connection
    // to every other member.
    if c.cluster_mesh.is_some() {
        let peers: Vec<Value> = ctx
            .t
            .spec
            .clusters
            .iter()
            .filter(|o| o.name != c.name)
            .filter_map(|o| o.cluster_mesh.as_ref())
            .map(|m| {
                json!({
                    "name": m.name,
                    "address": format!("{}.mesh.cilium.io", m.name),
                    "port": CLUSTERMESH_PORT
                })
            })
            .collect();
        values["clustermesh"] = json!({
            "useAPIServer": true,
            "maxConnectedClusters": ctx.opts.max_connected_clusters,
            "apiserver": {"service": {"type": "LoadBalancer"}, "tls": {"auto": {"enabled": true, "method": "cronJob"}}},
            "config": {"enabled": true, "domain": "mesh.cilium.io", "clusters": peers}
        });
    }
    out.add("cilium/values.yaml", DocKind::HelmValues, vec![values]);

    // The agent's ConfigMap, as the ADR writes it, plus what the topology decides.
    let mut data = serde_json::Map::new();
    let mut set = |k: &str, v: String| {
        data.insert(k.to_string(), Value::String(v));
    };
    set("datapath-mode", "veth".into());
    set("enable-bpf-masquerade", (!chained).to_string());
    set("enable-ipv4-masquerade", (!chained).to_string());
    set("enable-ip-masq-agent", "false".into());
    set("enable-bandwidth-manager", "true".into());
    set("enable-bbr", "true".into());
    set("enable-local-redirect-policy", "true".into());
    set("enable-host-legacy-routing", "false".into());
    set("enable-host-port", "true".into());
    set("enable-external-ips", "true".into());
    set("enable-node-port", "true".into());
    set("kube-proxy-replacement", "true".into());
    set("routing-mode", s.routing_mode.into());
    if let Some(cidr) = &s.native_cidr {
        set("ipv4-native-routing-cidr", cidr.clone());
    }
    if s.routing_mode == "tunnel" {
        set("tunnel-protocol", "vxlan".into());
    }
    set("ipam", s.ipam.into());
    if s.ipam == "cluster-pool" {
        set("cluster-pool-ipv4-cidr", pod_cidr.clone());
        set("cluster-pool-ipv4-mask-size", "24".into());
    }
    if let Some(mode) = s.chaining {
        set("cni-chaining-mode", mode.into());
        set("cni-exclusive", "false".into());
    }
    set(
        "cluster-name",
        c.cluster_mesh
            .as_ref()
            .map_or(c.name.clone(), |m| m.name.clone()),
    );
    set("cluster-id", mesh_id.to_string());
    set(
        "max-connected-clusters",
        ctx.opts.max_connected_clusters.to_string(),
    );
    set("enable-wireguard", "true".into());
    set("encrypt-node", "true".into());
    set("enable-hubble", "true".into());
    set("hubble-listen-address", ":4244".into());
    set("hubble-metrics", HUBBLE_METRICS.join(" "));
    set("hubble-metrics-server", ":9965".into());
    let config = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cilium-config", "namespace": "kube-system"},
        "data": data
    });

    // Hubble, as the ADR's hubble-config.
    let hubble_yaml = serde_yaml::to_string(&json!({
        "server": {"address": "0.0.0.0:4244"},
        "metrics": HUBBLE_METRICS,
        "relay": {"enabled": true},
        "ui": {"enabled": true, "ingress": {"enabled": true, "hosts": [format!("hubble.{}", ctx.domain)]}}
    }))
    .map_err(|e| crate::Error::Serialize {
        what: "hubble-config".into(),
        source: Box::new(e),
    })?;
    let hubble = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "hubble-config", "namespace": "kube-system"},
        "data": {"config.yaml": hubble_yaml}
    });
    out.add(
        "cilium/configmaps.yaml",
        DocKind::BuiltIn,
        vec![builtin(config)?, builtin(hubble)?],
    );

    // Resilience: the ADR's budget for the agents (the anti-affinity and
    // rolling update are in the values above).
    let pdb = json!({
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "cilium-pdb", "namespace": "kube-system"},
        "spec": {"minAvailable": 2, "selector": {"matchLabels": {"k8s-app": "cilium"}}}
    });
    out.add(
        "resilience/cilium-pdb.yaml",
        DocKind::BuiltIn,
        vec![builtin(pdb)?],
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipnet::IpNet;

    #[test]
    fn supernet_covers_every_prefix() {
        let nets: Vec<IpNet> = ["10.10.0.0/16", "10.11.0.0/16", "10.12.0.0/16"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(common_supernet(&nets).unwrap().to_string(), "10.8.0.0/13");
        let one: Vec<IpNet> = vec!["10.10.0.0/16".parse().unwrap()];
        assert_eq!(common_supernet(&one).unwrap().to_string(), "10.10.0.0/16");
        let far: Vec<IpNet> = vec![
            "10.0.0.0/16".parse().unwrap(),
            "192.168.0.0/16".parse().unwrap(),
        ];
        assert_eq!(common_supernet(&far).unwrap().to_string(), "0.0.0.0/0");
        assert!(common_supernet(&[]).is_none());
    }
}
