//! What the service mirror makes of remote services, and the pre-link checks.

use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::Service;
use mcnet_mesh::identity::{TrustAnchor, TrustBundle, ANCHOR_LIFETIME, ISSUER_LIFETIME};
use mcnet_mesh::multicluster::{self, check_link, ClusterTrust, RemoteCluster};

fn svc(ns: &str, name: &str, labels: &[(&str, &str)]) -> Service {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "namespace": ns,
            "labels": labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<std::collections::BTreeMap<_, _>>()},
        "spec": {"ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}
    }))
    .unwrap()
}

fn cluster(name: &str, ip: &str, services: Vec<Service>) -> RemoteCluster {
    RemoteCluster {
        name: name.into(),
        gateway_ip: ip.into(),
        trust_domain: "cluster.local".into(),
        services,
    }
}

#[test]
fn the_mirror_names_and_points_services_as_linkerd_does() {
    let east = cluster(
        "east",
        "198.18.1.1",
        vec![
            svc(
                "production",
                "api",
                &[("mirror.linkerd.io/exported", "true")],
            ),
            svc(
                "production",
                "search",
                &[("mirror.linkerd.io/exported", "remote-discovery")],
            ),
            svc(
                "production",
                "users",
                &[("mirror.linkerd.io/federated", "member")],
            ),
            svc("production", "private", &[]),
        ],
    );
    let west = cluster(
        "west",
        "198.18.2.1",
        vec![svc(
            "production",
            "users",
            &[("mirror.linkerd.io/federated", "member")],
        )],
    );
    let local = cluster(
        "central",
        "198.18.3.1",
        vec![svc(
            "production",
            "users",
            &[("mirror.linkerd.io/federated", "member")],
        )],
    );
    let m = multicluster::mirror(&local, &[east, west]).unwrap();
    let names: Vec<&str> = m
        .services
        .iter()
        .map(|s| s.metadata.name.as_deref().unwrap())
        .collect();
    assert_eq!(names, ["api-east", "search-east", "users-federated"]);
    // Exported: endpoints are the remote gateway on 4143.
    assert_eq!(m.endpoints.len(), 1);
    let ep = &m.endpoints[0];
    assert_eq!(ep.metadata.name.as_deref(), Some("api-east"));
    let subset = &ep.subsets.as_ref().unwrap()[0];
    assert_eq!(subset.addresses.as_ref().unwrap()[0].ip, "198.18.1.1");
    assert_eq!(subset.ports.as_ref().unwrap()[0].port, 4143);
    let api = &m.services[0];
    let labels = api.metadata.labels.as_ref().unwrap();
    assert_eq!(labels["mirror.linkerd.io/mirrored-service"], "true");
    assert_eq!(labels["mirror.linkerd.io/cluster-name"], "east");
    assert_eq!(
        api.metadata.annotations.as_ref().unwrap()["mirror.linkerd.io/remote-svc-fq-name"],
        "api.production.svc.cluster.local"
    );
    // Remote discovery: no endpoints, resolved in the remote cluster.
    let search = &m.services[1];
    let search_labels = search.metadata.labels.as_ref().unwrap();
    assert_eq!(
        search_labels["multicluster.linkerd.io/remote-discovery"],
        "east"
    );
    assert_eq!(
        search_labels["multicluster.linkerd.io/remote-service"],
        "search"
    );
    assert!(
        !search_labels.contains_key("mirror.linkerd.io/exported"),
        "mirror labels do not travel"
    );
    assert_eq!(
        ep.metadata.annotations.as_ref().unwrap()["mirror.linkerd.io/remote-gateway-identity"],
        "linkerd-gateway.linkerd-multicluster.serviceaccount.identity.linkerd.cluster.local"
    );
    // Federated: every remote member, and the local one.
    let fed = m.services[2].metadata.annotations.as_ref().unwrap();
    assert_eq!(
        fed["multicluster.linkerd.io/remote-discovery"],
        "users@east,users@west"
    );
    assert_eq!(fed["multicluster.linkerd.io/local-discovery"], "users");
}

#[test]
fn pre_link_checks_catch_foreign_roots_dying_issuers_and_skew() {
    let anchor = TrustAnchor::generate("cluster.local", ANCHOR_LIFETIME).unwrap();
    let now = SystemTime::now();
    let member = |name: &str, a: &TrustAnchor, life: Duration, now: SystemTime| ClusterTrust {
        name: name.into(),
        bundle: TrustBundle::new(&a.ca.cert_pem),
        issuer: a.issue_issuer("cluster.local", life).unwrap(),
        now,
    };
    let east = member("east", &anchor, ISSUER_LIFETIME, now);
    let west = member("west", &anchor, ISSUER_LIFETIME, now);
    let status = |checks: &[multicluster::Check], name: &str| -> Vec<&str> {
        checks
            .iter()
            .filter(|c| c.name == name)
            .map(|c| c.status)
            .collect()
    };
    let ok = check_link(&east, &west).unwrap();
    assert!(ok.iter().all(|c| c.status == "ok"), "{ok:?}");

    let foreign = member(
        "foreign",
        &TrustAnchor::generate("cluster.local", ANCHOR_LIFETIME).unwrap(),
        ISSUER_LIFETIME,
        now,
    );
    assert_eq!(
        status(&check_link(&east, &foreign).unwrap(), "trust-root"),
        ["error"]
    );

    // Same anchor in the bundle, but the issuer was signed by another one.
    let mut sneaky = member(
        "sneaky",
        &TrustAnchor::generate("cluster.local", ANCHOR_LIFETIME).unwrap(),
        ISSUER_LIFETIME,
        now,
    );
    sneaky.bundle = TrustBundle::new(&anchor.ca.cert_pem);
    assert_eq!(
        status(&check_link(&east, &sneaky).unwrap(), "trust-root"),
        ["error"]
    );

    let dying = member("dying", &anchor, Duration::from_secs(10 * 86400), now);
    assert_eq!(
        status(&check_link(&east, &dying).unwrap(), "issuer-lifetime"),
        ["ok", "warning"]
    );

    let skewed = member(
        "skewed",
        &anchor,
        ISSUER_LIFETIME,
        now + Duration::from_secs(45),
    );
    assert_eq!(
        status(&check_link(&east, &skewed).unwrap(), "clock-skew"),
        ["error"]
    );
    let close = member(
        "close",
        &anchor,
        ISSUER_LIFETIME,
        now + Duration::from_secs(5),
    );
    assert_eq!(
        status(&check_link(&east, &close).unwrap(), "clock-skew"),
        ["ok"]
    );
}
