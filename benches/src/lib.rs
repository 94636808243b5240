//! Shared workload generators for the benchmarks.

use std::fmt::Write as _;

/// Manifests for a synthetic cluster: `namespaces` namespaces, each with
/// `apps` deployments of `replicas` pods, a default deny, an allow per app
/// (from the previous app of its namespace, on 8080, and from a monitoring
/// namespace by label on 9090) and a Cilium L7 policy per namespace.
/// Policies per namespace: a default deny, `apps - 2` allows (app2 onwards)
/// and one Cilium policy: `apps` in all.
pub fn synthetic_cluster(namespaces: usize, apps: usize, replicas: usize) -> String {
    let mut s = String::new();
    let mut ip: u32 = 0x0a00_0000;
    for n in 0..namespaces {
        let team = if n % 2 == 0 { "blue" } else { "green" };
        let _ = writeln!(s, "---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: ns{n}, labels: {{team: {team}}}}}");
        for a in 0..apps {
            for r in 0..replicas {
                ip += 1;
                let addr = std::net::Ipv4Addr::from(ip);
                let _ = writeln!(
                    s,
                    "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: app{a}-{r}, namespace: ns{n}, labels: {{app: app{a}, tier: t{}}}}}\nspec: {{containers: [{{name: c, ports: [{{name: http, containerPort: 8080}}]}}]}}\nstatus: {{podIP: {addr}}}",
                    a % 3
                );
            }
        }
        let _ = writeln!(
            s,
            "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: default-deny, namespace: ns{n}}}\nspec: {{podSelector: {{}}, policyTypes: [Ingress, Egress]}}"
        );
        for a in 2..apps {
            let _ = writeln!(
                s,
                "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: allow-app{a}, namespace: ns{n}}}\nspec:\n  podSelector: {{matchLabels: {{app: app{a}}}}}\n  ingress:\n  - from: [{{podSelector: {{matchLabels: {{app: app{}}}}}}}]\n    ports: [{{port: http}}]\n  - from: [{{namespaceSelector: {{matchLabels: {{team: blue}}}}, podSelector: {{matchExpressions: [{{key: tier, operator: In, values: [t0]}}]}}}}]\n    ports: [{{port: 9090}}]\n  egress:\n  - to: [{{namespaceSelector: {{}}}}]\n    ports: [{{port: 8080}}, {{port: 9090}}]",
                a - 1
            );
        }
        let _ = writeln!(
            s,
            "---\napiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {{name: l7, namespace: ns{n}}}\nspec:\n  endpointSelector: {{matchLabels: {{app: app0}}}}\n  ingress:\n  - fromEndpoints: [{{matchLabels: {{tier: t1}}}}]\n    toPorts: [{{ports: [{{port: '8080', protocol: TCP}}], rules: {{http: [{{method: GET, path: '/api/.*'}}]}}}}]\n  ingressDeny:\n  - fromEntities: [world]\n  egress:\n  - toCIDRSet: [{{cidr: 192.0.2.0/24, except: [192.0.2.128/25]}}]\n    toPorts: [{{ports: [{{port: '443', protocol: TCP}}]}}]"
        );
    }
    s
}
