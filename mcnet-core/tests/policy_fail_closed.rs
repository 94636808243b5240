//! What a rule does not say, it does not allow: ICMP rules allow only
//! their types, Kafka and DNS rules are evaluated, and whatever the engine
//! cannot evaluate offline is "not evaluable" (never an allow) and
//! reported with the policy and field.

use mcnet_core::policy::compile::Verdict;
use mcnet_core::policy::{Compiled, Decision, Manifests, Proto, Query, QueryEndpoint};

const PODS: &str = r#"
- {apiVersion: v1, kind: Pod, metadata: {name: a, namespace: x, labels: {app: a}}, status: {podIP: 10.0.0.1}}
- {apiVersion: v1, kind: Pod, metadata: {name: b, namespace: x, labels: {app: b}}, status: {podIP: 10.0.0.2}}
"#;

fn load(policy: &str) -> Manifests {
    Manifests::load([("pods", PODS), ("policy", policy)]).expect("manifests load")
}

fn pod(p: &str) -> QueryEndpoint {
    QueryEndpoint {
        pod: Some(p.into()),
        ip: None,
    }
}

fn verdict(c: &Compiled, port: u16, proto: Proto) -> Decision {
    c.eval(&Query::l4(pod("x/a"), pod("x/b"), port, proto))
        .unwrap()
        .verdict
}

fn problems(text: &str) -> Vec<(String, String)> {
    match Manifests::load([("pods", PODS), ("policy", text)]) {
        Err(mcnet_core::Error::Invalid { problems, .. }) => problems
            .into_iter()
            .map(|p| (p.code.to_string(), format!("{} {}", p.path, p.message)))
            .collect(),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("manifests were accepted"),
    }
}

const ICMP_ONLY: &str = r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: icmp-only, namespace: x}
spec:
  endpointSelector: {matchLabels: {app: b}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: a}}]
    icmps: [{fields: [{type: 8, family: IPv4}]}]
"#;

#[test]
fn an_icmp_only_rule_allows_icmp_echo_and_nothing_else() {
    let c = Compiled::new(&load(ICMP_ONLY));
    assert_eq!(verdict(&c, 8080, Proto::Tcp), Decision::Deny);
    assert_eq!(verdict(&c, 53, Proto::Udp), Decision::Deny);
    assert_eq!(verdict(&c, 8, Proto::Icmp), Decision::Allow);
    assert_eq!(verdict(&c, 13, Proto::Icmp), Decision::Deny);
    assert_eq!(verdict(&c, 128, Proto::Icmpv6), Decision::Deny);
    // The compiled map state holds one ICMP key, type 8 as the port.
    let b = c.identity_of_ip("10.0.0.2".parse().unwrap());
    let state = c.map_state(b);
    let keys: Vec<_> = state.keys().map(|k| (k.proto, k.lo, k.hi)).collect();
    assert_eq!(keys, vec![(Proto::Icmp, 8, 8)], "{state:?}");
    assert_eq!(state.values().next(), Some(&Verdict::Allow));
    // The explanation names the ICMP type.
    let out = c
        .eval(&Query::l4(pod("x/a"), pod("x/b"), 8, Proto::Icmp))
        .unwrap();
    assert!(
        out.explanation.contains("ICMP type 8"),
        "{}",
        out.explanation
    );
}

#[test]
fn icmp_queries_parse_with_a_type() {
    let q: Query = serde_json::from_str(
        r#"{"from": {"pod": "x/a"}, "to": {"pod": "x/b"}, "protocol": "ICMP", "type": 8}"#,
    )
    .unwrap();
    assert_eq!((q.protocol, q.port), (Proto::Icmp, 8));
    for bad in [
        r#"{"from": {"pod": "x/a"}, "to": {"pod": "x/b"}, "protocol": "ICMP"}"#,
        r#"{"from": {"pod": "x/a"}, "to": {"pod": "x/b"}, "protocol": "ICMP", "type": 300}"#,
        r#"{"from": {"pod": "x/a"}, "to": {"pod": "x/b"}, "protocol": "TCP", "type": 8}"#,
        r#"{"from": {"pod": "x/a"}, "to": {"pod": "x/b"}, "port": 70000}"#,
        r#"{"from": {"pod": "x/a"}, "to": {"pod": "x/b"}, "port": 80, "protocol": "ANY"}"#,
    ] {
        assert!(serde_json::from_str::<Query>(bad).is_err(), "{bad}");
    }
}

#[test]
fn icmps_beside_to_ports_and_bad_types_are_refused() {
    let both = ICMP_ONLY.replace(
        "icmps: [{fields: [{type: 8, family: IPv4}]}]",
        "icmps: [{fields: [{type: 8}]}]\n    toPorts: [{ports: [{port: \"80\"}]}]",
    );
    let p = problems(&both);
    assert!(
        p.iter().any(|(code, at)| code == "policy.icmp-ports"
            && at.contains("spec.ingress[0].icmps")
            && at.contains("CiliumNetworkPolicy x/icmp-only")),
        "{p:?}"
    );
    for (bad, field) in [
        ("{type: 256}", "type"),
        ("{type: Bogus}", "type"),
        ("{type: 8, family: IPv5}", "family"),
        ("{family: IPv4}", "type"),
    ] {
        let text = ICMP_ONLY.replace("{type: 8, family: IPv4}", bad);
        let p = problems(&text);
        assert!(
            p.iter().any(|(code, at)| code == "policy.icmp"
                && at.contains(&format!("icmps[0].fields[0].{field}"))),
            "{bad}: {p:?}"
        );
    }
    // ICMP is not a toPorts protocol.
    let proto = ICMP_ONLY.replace(
        "icmps: [{fields: [{type: 8, family: IPv4}]}]",
        "toPorts: [{ports: [{port: \"8\", protocol: ICMP}]}]",
    );
    assert!(problems(&proto).iter().any(|(c, _)| c == "policy.protocol"));
}

const KAFKA: &str = r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: kafka, namespace: x}
spec:
  endpointSelector: {matchLabels: {app: b}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: a}}]
    toPorts:
    - ports: [{port: "9092", protocol: TCP}]
      rules:
        kafka: [{role: produce, topic: orders}]
"#;

#[test]
fn kafka_rules_restrict_requests_instead_of_allowing_the_port() {
    let c = Compiled::new(&load(KAFKA));
    let ask = |kafka: &str| {
        let q: Query = serde_json::from_str(&format!(
            r#"{{"from": {{"pod": "x/a"}}, "to": {{"pod": "x/b"}}, "port": 9092, "kafka": {kafka}}}"#
        ))
        .unwrap();
        c.eval(&q).unwrap()
    };
    let ok = ask(r#"{"apiKey": "produce", "topic": "orders"}"#);
    assert_eq!(ok.verdict, Decision::Allow);
    assert!(
        ok.explanation.contains("kafka: role=produce topic=orders"),
        "{}",
        ok.explanation
    );
    let no = ask(r#"{"apiKey": "fetch", "topic": "orders"}"#);
    assert_eq!(no.verdict, Decision::Deny);
    assert!(
        no.explanation.contains("matched none of the Kafka rules"),
        "{}",
        no.explanation
    );
    assert_eq!(
        ask(r#"{"role": "produce", "topic": "payments"}"#).verdict,
        Decision::Deny
    );
    // Without an L7 part, the port is answered as an L7-restricted port.
    let l4 = c
        .eval(&Query::l4(pod("x/a"), pod("x/b"), 9092, Proto::Tcp))
        .unwrap();
    assert_eq!(l4.verdict, Decision::Allow);
    assert!(l4.ingress.l7_enforced);
    // The map state says L7, never a plain allow.
    let b = c.identity_of_ip("10.0.0.2".parse().unwrap());
    assert!(c.map_state(b).values().all(|v| *v == Verdict::AllowL7));
    // Bad Kafka rules name the field.
    for (bad, field) in [
        ("{role: admin}", "role"),
        ("{apiKey: nope}", "apiKey"),
        ("{topic: \"a/b\"}", "topic"),
        ("{apiVersion: x}", "apiVersion"),
    ] {
        let text = KAFKA.replace("{role: produce, topic: orders}", bad);
        let p = problems(&text);
        assert!(
            p.iter()
                .any(|(c, at)| c == "policy.kafka" && at.contains(&format!("kafka[0].{field}"))),
            "{bad}: {p:?}"
        );
    }
    let both = KAFKA.replace(
        "{role: produce, topic: orders}",
        "{role: produce, apiKey: fetch}",
    );
    assert!(problems(&both).iter().any(|(c, _)| c == "policy.kafka"));
}

const DNS: &str = r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: dns, namespace: x}
spec:
  endpointSelector: {matchLabels: {app: a}}
  egress:
  - toEndpoints: [{matchLabels: {app: b}}]
    toPorts:
    - ports: [{port: "53", protocol: UDP}]
      rules:
        dns: [{matchPattern: "*.example.com"}]
"#;

#[test]
fn dns_rules_allow_only_the_names_they_match() {
    let c = Compiled::new(&load(DNS));
    let ask = |name: &str| {
        let q: Query = serde_json::from_str(&format!(
            r#"{{"from": {{"pod": "x/a"}}, "to": {{"pod": "x/b"}}, "port": 53, "protocol": "UDP", "dns": {{"name": "{name}"}}}}"#
        ))
        .unwrap();
        c.eval(&q).unwrap().verdict
    };
    assert_eq!(ask("api.example.com"), Decision::Allow);
    assert_eq!(ask("API.EXAMPLE.COM."), Decision::Allow);
    assert_eq!(ask("a.b.example.com"), Decision::Deny);
    assert_eq!(ask("example.org"), Decision::Deny);
    // DNS rules are egress only, as in Cilium.
    let ingress = DNS
        .replace("egress:", "ingress:")
        .replace("toEndpoints", "fromEndpoints");
    assert!(problems(&ingress).iter().any(|(c, _)| c == "policy.l7-dns"));
    // One L7 protocol per port rule.
    let mixed = DNS.replace(
        "dns: [{matchPattern: \"*.example.com\"}]",
        "dns: [{matchPattern: \"*.example.com\"}]\n        http: [{method: GET}]",
    );
    assert!(problems(&mixed).iter().any(|(c, _)| c == "policy.l7-mixed"));
}

#[test]
fn to_fqdns_is_not_evaluable_and_reported() {
    let m = load(
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: fqdn, namespace: x}
spec:
  endpointSelector: {matchLabels: {app: a}}
  egress:
  - toFQDNs: [{matchName: api.example.com}]
    toPorts: [{ports: [{port: "443", protocol: TCP}]}]
"#,
    );
    assert!(
        m.not_enforced
            .iter()
            .any(|d| d.code == "policy.not-enforced"
                && d.path == "spec.egress[0].toFQDNs"
                && d.message.contains("CiliumNetworkPolicy x/fqdn")),
        "{:?}",
        m.not_enforced
    );
    let c = Compiled::new(&m);
    let world = QueryEndpoint {
        pod: None,
        ip: Some("198.51.100.7".into()),
    };
    let out = c
        .eval(&Query::l4(pod("x/a"), world.clone(), 443, Proto::Tcp))
        .unwrap();
    assert_eq!(out.verdict, Decision::NotEvaluable, "{}", out.explanation);
    assert!(
        out.explanation.contains("not evaluable") && out.explanation.contains("toFQDNs"),
        "{}",
        out.explanation
    );
    // The fast path and the map state agree: never an allow.
    let a = c.identity_of_ip("10.0.0.1".parse().unwrap());
    let w = c.identity_of_ip("198.51.100.7".parse().unwrap());
    assert_ne!(c.verdict(a, w, 443, Proto::Tcp), Decision::Allow);
    assert!(c.map_state(a).is_empty(), "{:?}", c.map_state(a));
    // Other ports of the world stay plainly denied.
    let other = c
        .eval(&Query::l4(pod("x/a"), world, 80, Proto::Tcp))
        .unwrap();
    assert_eq!(other.verdict, Decision::Deny);
}

#[test]
fn every_field_read_but_not_enforced_is_named() {
    let m = load(
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: many, namespace: x}
spec:
  endpointSelector: {matchLabels: {app: b}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: a}}]
    authentication: {mode: required}
  - fromNodes: [{matchLabels: {role: worker}}]
  - fromCIDRSet: [{cidrGroupRef: office}]
  - fromEndpoints: [{matchLabels: {app: a}}]
    toPorts:
    - ports: [{port: "443", protocol: TCP}]
      serverNames: [api.example.com]
    - ports: [{port: "80", protocol: TCP}]
      rules:
        http: [{headerMatches: [{name: X-Token, secret: {name: token, namespace: x}}]}]
  egress:
  - toServices: [{k8sService: {serviceName: db, namespace: x}}]
  - toGroups: [{aws: {securityGroupsIds: [sg-1]}}]
  - toPorts:
    - ports: [{port: "9000", protocol: TCP}]
      rules: {l7proto: envoy.filters.network.foo}
"#,
    );
    let paths: Vec<&str> = m.not_enforced.iter().map(|d| d.path.as_str()).collect();
    for want in [
        "spec.ingress[0].authentication",
        "spec.ingress[1].fromNodes",
        "spec.ingress[2].fromCIDRSet[0].cidrGroupRef",
        "spec.ingress[3].toPorts[0].serverNames",
        "spec.ingress[3].toPorts[1].rules.http[0].headerMatches[0].secret",
        "spec.egress[0].toServices",
        "spec.egress[1].toGroups",
        "spec.egress[2].toPorts[0].rules.l7proto",
    ] {
        assert!(paths.contains(&want), "{want} missing from {paths:?}");
    }
    assert!(m.not_enforced.iter().all(
        |d| d.code == "policy.not-enforced" && d.message.contains("CiliumNetworkPolicy x/many")
    ));
    // And none of them allows: a → b is not evaluable on 80 and 443.
    let c = Compiled::new(&m);
    for port in [80, 443, 8080] {
        assert_eq!(
            verdict(&c, port, Proto::Tcp),
            Decision::NotEvaluable,
            "port {port}"
        );
    }
}

#[test]
fn unknown_policy_fields_are_refused_not_ignored() {
    let p = problems(&ICMP_ONLY.replace("icmps:", "icmpz:"));
    assert!(
        p.iter().any(|(code, at)| code == "policy.unknown-field"
            && at.contains("spec.ingress.0.icmpz")
            && at.contains("CiliumNetworkPolicy x/icmp-only")),
        "{p:?}"
    );
    let np = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: np, namespace: x}
spec:
  podSelector: {}
  ingress: [{fromm: [{podSelector: {}}]}]
"#;
    assert!(problems(np)
        .iter()
        .any(|(c, _)| c == "policy.unknown-field"));
}

#[test]
fn peer_fields_of_the_other_direction_are_refused() {
    let ingress_to = ICMP_ONLY.replace(
        "- fromEndpoints: [{matchLabels: {app: a}}]\n    icmps: [{fields: [{type: 8, family: IPv4}]}]",
        "- toEndpoints: [{matchLabels: {app: a}}]",
    );
    let p = problems(&ingress_to);
    assert!(
        p.iter()
            .any(|(code, at)| code == "policy.direction"
                && at.contains("spec.ingress[0].toEndpoints")),
        "{p:?}"
    );
    let egress_from = ICMP_ONLY.replace("ingress:", "egress:").replace(
        "icmps: [{fields: [{type: 8, family: IPv4}]}]",
        "toPorts: [{ports: [{port: \"80\"}]}]",
    );
    let p = problems(&egress_from);
    assert!(
        p.iter()
            .any(|(code, at)| code == "policy.direction"
                && at.contains("spec.egress[0].fromEndpoints")),
        "{p:?}"
    );
}
