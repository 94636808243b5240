//! Random inventories and Kubernetes/Cilium policies for property tests
//! (shared by the policy engine's and the datapath's tests through `#[path]`).

#![allow(dead_code)]

use proptest::prelude::*;
use serde_json::{json, Value};

pub const NS: [&str; 3] = ["a", "b", "c"];
pub const TEAM: [&str; 2] = ["x", "y"];
pub const EXTERNAL: [&str; 4] = ["192.0.2.5", "192.0.2.200", "203.0.113.9", "10.9.9.9"];

fn selector() -> impl Strategy<Value = Value> {
    let label = prop_oneof![
        Just(("app", "web")),
        Just(("app", "api")),
        Just(("app", "db")),
        Just(("tier", "front")),
        Just(("tier", "back")),
    ];
    let expr = (label.clone(), 0u8..4).prop_map(|((k, v), op)| match op {
        0 => json!({"key": k, "operator": "In", "values": [v]}),
        1 => json!({"key": k, "operator": "NotIn", "values": [v]}),
        2 => json!({"key": k, "operator": "Exists"}),
        _ => json!({"key": k, "operator": "DoesNotExist"}),
    });
    (
        proptest::option::of(label),
        proptest::collection::vec(expr, 0..2),
    )
        .prop_map(|(l, e)| {
            let mut s = serde_json::Map::new();
            if let Some((k, v)) = l {
                s.insert("matchLabels".into(), json!({k: v}));
            }
            if !e.is_empty() {
                s.insert("matchExpressions".into(), Value::Array(e));
            }
            Value::Object(s)
        })
}

fn ns_selector() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!({})),
        Just(json!({"matchLabels": {"team": "x"}})),
        Just(json!({"matchLabels": {"kubernetes.io/metadata.name": "b"}})),
        Just(json!({"matchExpressions": [{"key": "team", "operator": "NotIn", "values": ["y"]}]})),
    ]
}

fn cidr() -> impl Strategy<Value = (String, Vec<String>)> {
    prop_oneof![
        Just(("10.0.0.0/8".to_string(), vec![])),
        Just(("10.0.1.0/24".to_string(), vec!["10.0.1.2/32".to_string()])),
        Just(("10.0.1.2/32".to_string(), vec![])),
        Just(("0.0.0.0/0".to_string(), vec!["10.0.0.0/8".to_string()])),
        Just(("192.0.2.0/24".to_string(), vec![])),
        Just(("192.0.2.0/24".to_string(), vec!["192.0.2.0/28".to_string()])),
    ]
}

fn k8s_port() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!({"port": 80})),
        Just(json!({"port": 53, "protocol": "UDP"})),
        Just(json!({"port": "http"})),
        Just(json!({"port": "dns", "protocol": "UDP"})),
        Just(json!({"port": 8000, "endPort": 8100})),
        Just(json!({"protocol": "UDP"})),
        Just(json!({})),
    ]
}

fn k8s_peer() -> impl Strategy<Value = Value> {
    prop_oneof![
        selector().prop_map(|s| json!({"podSelector": s})),
        ns_selector().prop_map(|s| json!({"namespaceSelector": s})),
        (selector(), ns_selector())
            .prop_map(|(p, n)| json!({"podSelector": p, "namespaceSelector": n})),
        cidr().prop_map(|(c, e)| if e.is_empty() {
            json!({"ipBlock": {"cidr": c}})
        } else {
            json!({"ipBlock": {"cidr": c, "except": e}})
        }),
    ]
}

fn opt_list(
    inner: impl Strategy<Value = Value>,
    max: usize,
) -> impl Strategy<Value = Option<Value>> {
    proptest::option::of(proptest::collection::vec(inner, 0..max).prop_map(Value::Array))
}

fn network_policy(i: usize) -> impl Strategy<Value = Value> {
    let rule = |peer_key: &'static str| {
        (opt_list(k8s_peer(), 3), opt_list(k8s_port(), 3)).prop_map(move |(peers, ports)| {
            let mut r = serde_json::Map::new();
            if let Some(p) = peers {
                r.insert(peer_key.into(), p);
            }
            if let Some(p) = ports {
                r.insert("ports".into(), p);
            }
            Value::Object(r)
        })
    };
    (
        selector(),
        0u8..3,
        proptest::option::of(proptest::sample::subsequence(
            vec!["Ingress", "Egress"],
            0..=2,
        )),
        opt_list(rule("from"), 3),
        opt_list(rule("to"), 3),
    )
        .prop_map(move |(sel, ns, types, ingress, egress)| {
            let mut spec = serde_json::Map::new();
            spec.insert("podSelector".into(), sel);
            if let Some(t) = types {
                spec.insert("policyTypes".into(), json!(t));
            }
            if let Some(x) = ingress {
                spec.insert("ingress".into(), x);
            }
            if let Some(x) = egress {
                spec.insert("egress".into(), x);
            }
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                   "metadata": {"name": format!("np{i}"), "namespace": NS[ns as usize]},
                   "spec": Value::Object(spec)})
        })
}

fn cilium_selector() -> impl Strategy<Value = Value> {
    (selector(), 0u8..4).prop_map(|(s, twist)| {
        let mut s = s;
        match twist {
            1 => {
                s["matchLabels"]["k8s:io.kubernetes.pod.namespace"] = json!("b");
            }
            2 => {
                let mut m = serde_json::Map::new();
                for (k, v) in s
                    .get("matchLabels")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default()
                {
                    m.insert(format!("k8s:{k}"), v);
                }
                s["matchLabels"] = Value::Object(m);
            }
            3 => {
                s["matchLabels"]["io.cilium.k8s.namespace.labels.team"] = json!("x");
            }
            _ => {}
        }
        s
    })
}

fn cilium_ports(allow_l7: bool) -> impl Strategy<Value = Value> {
    let port = prop_oneof![
        Just(json!({"port": "80", "protocol": "TCP"})),
        Just(json!({"port": "53", "protocol": "UDP"})),
        Just(json!({"port": "http"})),
        Just(json!({"port": "8000", "endPort": 8100, "protocol": "TCP"})),
        Just(json!({"port": "0", "protocol": "ANY"})),
        Just(json!({"port": "80"})),
    ];
    (proptest::collection::vec(port, 1..3), any::<bool>()).prop_map(move |(ports, l7)| {
        let tcp_only = ports.iter().all(|p| p.get("protocol").and_then(Value::as_str) == Some("TCP"));
        if allow_l7 && l7 && tcp_only {
            json!({"ports": ports, "rules": {"http": [{"method": "GET", "path": "/a.*"}, {"method": "POST", "path": "/b"}]}})
        } else {
            json!({"ports": ports})
        }
    })
}

fn cilium_rule(ingress: bool, deny: bool) -> impl Strategy<Value = Value> {
    let (ep, ent, cidr_k, set_k, req_k) = if ingress {
        (
            "fromEndpoints",
            "fromEntities",
            "fromCIDR",
            "fromCIDRSet",
            "fromRequires",
        )
    } else {
        (
            "toEndpoints",
            "toEntities",
            "toCIDR",
            "toCIDRSet",
            "toRequires",
        )
    };
    (
        opt_list(cilium_selector(), 3),
        opt_list(
            prop_oneof![
                Just(json!("world")),
                Just(json!("cluster")),
                Just(json!("all")),
                Just(json!("world-ipv4"))
            ],
            2,
        ),
        proptest::option::of(cidr()),
        any::<bool>(),
        opt_list(cilium_selector(), 2),
        opt_list(cilium_ports(!deny), 3),
    )
        .prop_map(move |(eps, ents, c, as_set, reqs, ports)| {
            let mut r = serde_json::Map::new();
            if let Some(x) = eps {
                r.insert(ep.into(), x);
            }
            if let Some(x) = ents {
                r.insert(ent.into(), x);
            }
            if let Some((c, e)) = c {
                if as_set {
                    r.insert(set_k.into(), json!([{"cidr": c, "except": e}]));
                } else {
                    r.insert(cidr_k.into(), json!([c]));
                }
            }
            if !deny {
                if let Some(x) = reqs {
                    r.insert(req_k.into(), x);
                }
            }
            if let Some(x) = ports {
                r.insert("toPorts".into(), x);
            }
            Value::Object(r)
        })
}

fn cilium_policy(i: usize) -> impl Strategy<Value = Value> {
    (
        cilium_selector(),
        any::<bool>(),
        0u8..3,
        opt_list(cilium_rule(true, false), 3),
        opt_list(cilium_rule(false, false), 3),
        opt_list(cilium_rule(true, true), 2),
        opt_list(cilium_rule(false, true), 2),
        proptest::option::of((
            proptest::option::of(any::<bool>()),
            proptest::option::of(any::<bool>()),
        )),
    )
        .prop_map(move |(sel, clusterwide, ns, ing, eg, ingd, egd, dd)| {
            let mut spec = serde_json::Map::new();
            spec.insert("endpointSelector".into(), sel);
            for (k, v) in [
                ("ingress", ing),
                ("egress", eg),
                ("ingressDeny", ingd),
                ("egressDeny", egd),
            ] {
                if let Some(v) = v {
                    spec.insert(k.into(), v);
                }
            }
            if let Some((a, b)) = dd {
                let mut d = serde_json::Map::new();
                if let Some(a) = a {
                    d.insert("ingress".into(), json!(a));
                }
                if let Some(b) = b {
                    d.insert("egress".into(), json!(b));
                }
                spec.insert("enableDefaultDeny".into(), Value::Object(d));
            }
            if clusterwide {
                json!({"apiVersion": "cilium.io/v2", "kind": "CiliumClusterwideNetworkPolicy",
                       "metadata": {"name": format!("ccnp{i}")}, "spec": Value::Object(spec)})
            } else {
                json!({"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
                       "metadata": {"name": format!("cnp{i}"), "namespace": NS[ns as usize]},
                       "spec": Value::Object(spec)})
            }
        })
}

fn pod(i: usize) -> impl Strategy<Value = Value> {
    (
        0u8..3,
        prop_oneof![Just("web"), Just("api"), Just("db")],
        proptest::option::of(prop_oneof![Just("front"), Just("back")]),
        prop_oneof![Just(80), Just(8080)],
        any::<bool>(),
        0u8..8,
    )
        .prop_map(move |(ns, app, tier, http, dns, remote)| {
            let mut labels = serde_json::Map::new();
            labels.insert("app".into(), json!(app));
            if let Some(t) = tier {
                labels.insert("tier".into(), json!(t));
            }
            if remote == 0 {
                labels.insert("io.cilium.k8s.policy.cluster".into(), json!("c2"));
            }
            let mut ports = vec![json!({"name": "http", "containerPort": http, "protocol": "TCP"})];
            if dns {
                ports.push(json!({"name": "dns", "containerPort": 53, "protocol": "UDP"}));
            }
            json!({"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": format!("p{i}"), "namespace": NS[ns as usize], "labels": labels},
                   "spec": {"containers": [{"name": "c", "ports": ports}]},
                   "status": {"podIP": format!("10.0.{}.{}", i % 3, i + 1)}})
        })
}

fn world() -> impl Strategy<Value = Vec<Value>> {
    (0u8..2, 0u8..2).prop_map(|(a, b)| {
        vec![
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a", "labels": {"team": TEAM[a as usize]}}}),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "b", "labels": {"team": TEAM[b as usize]}}}),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "c", "labels": {"team": "x"}}}),
        ]
    })
}

/// A whole scenario: namespaces, pods and policies as Kubernetes objects.
pub fn scenario() -> impl Strategy<Value = Vec<Value>> {
    (
        world(),
        (1usize..7).prop_flat_map(|n| (0..n).map(pod).collect::<Vec<_>>()),
        (0usize..4).prop_flat_map(|n| (0..n).map(network_policy).collect::<Vec<_>>()),
        (0usize..4).prop_flat_map(|n| (0..n).map(cilium_policy).collect::<Vec<_>>()),
    )
        .prop_map(|(mut w, pods, nps, cnps)| {
            w.extend(pods);
            w.extend(nps);
            w.extend(cnps);
            w
        })
}
