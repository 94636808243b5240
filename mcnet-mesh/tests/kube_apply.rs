//! `multicluster::apply` against kube's mock-service pattern. A MOCK: no
//! Kubernetes API server can run here, so a tower-test service stands in
//! for it and records what kube sends. It checks the requests (server-side
//! apply, the right paths and field manager), not a cluster's behaviour.

use http::{Request, Response};
use kube::client::Body;
use mcnet_mesh::multicluster::{self, LinkTarget};

#[tokio::test]
async fn apply_sends_one_server_side_apply_per_object() {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let mut link = serde_json::to_value(multicluster::link(&LinkTarget {
        cluster: "gke-prod".into(),
        gateway_address: "linkerd-gateway.gke-prod.example".into(),
        trust_domain: "cluster.local".into(),
    }))
    .unwrap();
    link["apiVersion"] = "multicluster.linkerd.io/v1alpha3".into();
    link["kind"] = "Link".into();
    let docs = vec![
        link,
        serde_json::to_value(multicluster::gateway_service("cluster.local").unwrap()).unwrap(),
        serde_json::to_value(multicluster::remote_access().unwrap().role).unwrap(),
    ];
    let mock = tokio::spawn(async move {
        let mut seen = Vec::new();
        for _ in 0..3 {
            let (req, send) = handle.next_request().await.expect("a request");
            let method = req.method().to_string();
            let uri = req.uri().to_string();
            let ctype = req
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default();
            let body = req.into_body().collect_bytes().await.unwrap();
            let obj: serde_json::Value = serde_json::from_slice(&body).unwrap();
            // An API server answers an apply with the object.
            send.send_response(Response::builder().body(Body::from(body.to_vec())).unwrap());
            seen.push((method, uri, ctype, obj));
        }
        seen
    });
    let applied = multicluster::apply(client, &docs).await.unwrap();
    let seen = mock.await.unwrap();
    assert_eq!(
        applied,
        vec![
            (
                "Link".to_string(),
                "linkerd-multicluster/gke-prod".to_string()
            ),
            (
                "Service".to_string(),
                "linkerd-multicluster/linkerd-gateway".to_string()
            ),
            (
                "ClusterRole".to_string(),
                "linkerd-service-mirror-remote-access-default".to_string()
            ),
        ]
    );
    for (method, _, ctype, _) in &seen {
        assert_eq!(method, "PATCH");
        assert_eq!(ctype, "application/apply-patch+yaml");
    }
    let paths: Vec<&str> = seen
        .iter()
        .map(|s| s.1.split('?').next().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "/apis/multicluster.linkerd.io/v1alpha3/namespaces/linkerd-multicluster/links/gke-prod",
            "/api/v1/namespaces/linkerd-multicluster/services/linkerd-gateway",
            "/apis/rbac.authorization.k8s.io/v1/clusterroles/linkerd-service-mirror-remote-access-default",
        ]
    );
    for (_, uri, _, _) in &seen {
        assert!(
            uri.contains("fieldManager=mcnet") && uri.contains("force=true"),
            "{uri}"
        );
    }
    assert_eq!(
        seen[0].3["spec"]["gatewayIdentity"],
        "linkerd-gateway.linkerd-multicluster.serviceaccount.identity.linkerd.cluster.local"
    );

    // An object of a kind mcnet does not apply is refused before any request.
    let (service, _handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let e = multicluster::apply(
        client,
        &[serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}})],
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("Pod `x`"), "{e}");
}
