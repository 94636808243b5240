//! The `Topology` CustomResourceDefinition generated from the Rust types:
//! a structural schema as the API server requires, which accepts every
//! example topology file as an object and refuses malformed ones (checked
//! with an independent JSON Schema validator, the `jsonschema` crate).

use serde_json::{json, Value};

fn crd() -> Value {
    serde_json::to_value(mcnet_cloud::operator::crd()).unwrap()
}

fn schema() -> Value {
    crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

/// The API server's structural-schema rules that a generator can break:
/// no references, a type on every node (except under the logical
/// junctors, where none of type, default or nullable may appear).
fn structural(node: &Value, path: &str, in_junctor: bool, problems: &mut Vec<String>) {
    let Some(o) = node.as_object() else { return };
    for k in ["$ref", "definitions", "$defs", "$schema"] {
        if o.contains_key(k) {
            problems.push(format!("{path}: `{k}`"));
        }
    }
    let preserve = o.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(true))
        || o.get("x-kubernetes-int-or-string") == Some(&json!(true));
    if in_junctor {
        for k in [
            "type",
            "default",
            "nullable",
            "additionalProperties",
            "description",
        ] {
            if o.contains_key(k) {
                problems.push(format!("{path}: `{k}` inside anyOf/oneOf/allOf/not"));
            }
        }
    } else if !o.contains_key("type") && !preserve {
        problems.push(format!("{path}: no type"));
    }
    if let Some(props) = o.get("properties").and_then(Value::as_object) {
        for (k, v) in props {
            structural(v, &format!("{path}.{k}"), in_junctor, problems);
        }
    }
    if let Some(items) = o.get("items") {
        structural(items, &format!("{path}[]"), in_junctor, problems);
    }
    if let Some(ap) = o.get("additionalProperties").filter(|v| v.is_object()) {
        structural(ap, &format!("{path}{{}}"), in_junctor, problems);
    }
    for j in ["anyOf", "oneOf", "allOf"] {
        for (i, v) in o
            .get(j)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            structural(v, &format!("{path}.{j}[{i}]"), true, problems);
        }
    }
}

#[test]
fn the_crd_names_the_resource_and_its_status_subresource() {
    let c = crd();
    assert_eq!(c["apiVersion"], "apiextensions.k8s.io/v1");
    assert_eq!(c["metadata"]["name"], "topologies.mcnet.io");
    assert_eq!(c["spec"]["group"], "mcnet.io");
    assert_eq!(c["spec"]["scope"], "Cluster");
    assert_eq!(c["spec"]["names"]["kind"], "Topology");
    assert_eq!(c["spec"]["names"]["plural"], "topologies");
    let v = &c["spec"]["versions"][0];
    assert_eq!(
        (
            v["name"].as_str(),
            v["served"].as_bool(),
            v["storage"].as_bool()
        ),
        (Some("v1alpha1"), Some(true), Some(true))
    );
    assert_eq!(v["subresources"]["status"], json!({}));
    let columns: Vec<&str> = v["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(columns, ["Ready", "Reason", "Resources", "Age"]);
    let status = &v["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"];
    for field in [
        "conditions",
        "lastPlan",
        "drift",
        "resources",
        "observedGeneration",
    ] {
        assert!(
            status.get(field).is_some(),
            "status.{field} missing: {status}"
        );
    }
}

#[test]
fn the_schema_is_structural() {
    let mut problems = Vec::new();
    structural(&schema(), "", false, &mut problems);
    assert_eq!(problems, Vec::<String>::new());
}

fn validator() -> jsonschema::Validator {
    jsonschema::validator_for(&schema()).expect("the schema compiles")
}

fn example(name: &str) -> Value {
    let path = format!(
        "{}/../examples/topologies/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn every_example_topology_is_a_valid_object() {
    let v = validator();
    let dir = format!("{}/../examples/topologies", env!("CARGO_MANIFEST_DIR"));
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        if !name.ends_with(".yaml") {
            continue;
        }
        let obj = example(&name);
        let errors: Vec<String> = v
            .iter_errors(&obj)
            .map(|e| format!("{}: {e}", e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{name}: {errors:?}");
        // And kube reads it as the typed object.
        let t: mcnet_cloud::operator::Topology = serde_json::from_value(obj).unwrap();
        assert_eq!(
            t.model().spec,
            mcnet_core::topology::Topology::from_str_strict(
                &std::fs::read_to_string(format!(
                    "{}/../examples/topologies/{name}",
                    env!("CARGO_MANIFEST_DIR")
                ))
                .unwrap()
            )
            .unwrap()
            .spec
        );
        n += 1;
    }
    assert!(n >= 3, "{n} examples");
}

#[test]
fn malformed_objects_are_refused_at_the_field() {
    let v = validator();
    let cases = [
        ("/spec/clusters/0/flavour", json!("openshift")),
        ("/spec/networks/0/cidrs", json!("10.0.0.0/16")),
        ("/spec/networks/0/cidrs/0", json!("ten-dot-zero")),
        ("/spec/interconnect/vxcs/0/rateLimitMbps", json!("fast")),
    ];
    for (pointer, value) in cases {
        let mut obj = example("adr-003.yaml");
        *obj.pointer_mut(pointer)
            .unwrap_or_else(|| panic!("{pointer}")) = value.clone();
        let errors: Vec<String> = v
            .iter_errors(&obj)
            .map(|e| e.instance_path().to_string())
            .collect();
        assert!(
            errors.iter().any(|p| p.starts_with(pointer)),
            "{pointer} = {value}: {errors:?}"
        );
    }
}

#[test]
fn the_operator_manifests_are_typed_objects_with_the_least_rbac() {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::rbac::v1::{ClusterRole, Role};
    let files = mcnet_cloud::operator::manifests(
        &mcnet_cloud::operator::OperatorManifestOptions::default(),
    );
    let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "operator/crd.yaml",
            "operator/namespace.yaml",
            "operator/rbac.yaml",
            "operator/deployment.yaml"
        ]
    );
    let docs: Vec<&Value> = files
        .iter()
        .filter(|f| !f.custom)
        .flat_map(|f| &f.documents)
        .collect();
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "CustomResourceDefinition",
            "Namespace",
            "NetworkPolicy",
            "NetworkPolicy",
            "NetworkPolicy",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
            "Deployment"
        ]
    );
    assert_eq!(*docs[0], crd());
    // Its namespace denies by default; the operator may call DNS and
    // HTTPS outside the cluster's own ranges.
    assert_eq!(docs[2]["metadata"]["name"], "default-deny-all");
    assert_eq!(docs[4]["metadata"]["name"], "mcnet-operator-egress");
    assert_eq!(
        docs[4]["metadata"]["labels"]["mcnet.io/lint-allow"],
        "world-open"
    );

    let cr: ClusterRole = serde_json::from_value(docs[6].clone()).unwrap();
    let rules: Vec<(String, Vec<String>)> = cr
        .rules
        .unwrap()
        .into_iter()
        .map(|r| (r.resources.unwrap().join(","), r.verbs))
        .collect();
    assert_eq!(
        rules,
        [
            (
                "topologies".to_string(),
                vec![
                    "get".to_string(),
                    "list".into(),
                    "watch".into(),
                    "patch".into(),
                    "update".into()
                ]
            ),
            (
                "topologies/status".to_string(),
                vec!["get".to_string(), "patch".into(), "update".into()]
            ),
            (
                "topologies/finalizers".to_string(),
                vec!["update".to_string()]
            ),
            (
                "events".to_string(),
                vec!["create".to_string(), "patch".into()]
            ),
        ]
    );
    let role: Role = serde_json::from_value(docs[8].clone()).unwrap();
    assert_eq!(role.metadata.namespace.as_deref(), Some("mcnet-system"));
    let lease_rules = role.rules.unwrap();
    assert!(lease_rules
        .iter()
        .all(|r| r.api_groups.as_deref() == Some(&["coordination.k8s.io".to_string()][..])));
    assert_eq!(
        lease_rules[0].resource_names.as_deref(),
        Some(&["mcnet-operator".to_string()][..])
    );

    let d: Deployment = serde_json::from_value(docs[10].clone()).unwrap();
    let spec = d.spec.unwrap();
    assert_eq!(spec.replicas, Some(2));
    let pod = spec.template.spec.unwrap();
    assert_eq!(pod.service_account_name.as_deref(), Some("mcnet-operator"));
    let c = &pod.containers[0];
    assert_eq!(c.args.as_ref().unwrap()[0], "operator");
    let env: Vec<&str> = c
        .env
        .as_ref()
        .unwrap()
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(env, ["POD_NAME", "POD_NAMESPACE"]);
    let sc = c.security_context.as_ref().unwrap();
    assert_eq!(
        sc.capabilities.as_ref().unwrap().drop.as_deref(),
        Some(&["ALL".to_string()][..])
    );
    assert!(sc.capabilities.as_ref().unwrap().add.is_none());
    assert_eq!(
        (sc.read_only_root_filesystem, sc.allow_privilege_escalation),
        (Some(true), Some(false))
    );
}

#[test]
fn the_agent_daemonset_has_host_networking_and_only_the_datapath_capabilities() {
    use k8s_openapi::api::apps::v1::DaemonSet;
    use k8s_openapi::api::rbac::v1::ClusterRole;
    let files = mcnet_cloud::operator::agent_manifests(
        &mcnet_cloud::operator::OperatorManifestOptions::default(),
    );
    let docs: Vec<&Value> = files
        .iter()
        .filter(|f| !f.custom)
        .flat_map(|f| &f.documents)
        .collect();
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "DaemonSet"
        ]
    );
    assert_eq!(docs[3]["metadata"]["namespace"], "kube-system");
    let role: ClusterRole = serde_json::from_value(docs[1].clone()).unwrap();
    for r in role.rules.unwrap() {
        assert_eq!(r.verbs, ["get", "list", "watch"], "the agent only reads");
    }
    let ds: DaemonSet = serde_json::from_value(docs[3].clone()).unwrap();
    let pod = ds.spec.unwrap().template.spec.unwrap();
    assert_eq!(pod.host_network, Some(true));
    let c = &pod.containers[0];
    let sc = c.security_context.as_ref().unwrap();
    assert_eq!(sc.privileged, Some(false));
    let caps = sc.capabilities.as_ref().unwrap();
    assert_eq!(
        caps.add.as_deref().unwrap(),
        ["BPF", "PERFMON", "NET_ADMIN", "SYS_RESOURCE"]
    );
    assert_eq!(caps.drop.as_deref().unwrap(), ["ALL"]);
    assert_eq!(
        c.readiness_probe
            .as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap()
            .path
            .as_deref(),
        Some("/readyz")
    );
    assert_eq!(
        c.env.as_ref().unwrap()[0]
            .value_from
            .as_ref()
            .unwrap()
            .field_ref
            .as_ref()
            .unwrap()
            .field_path,
        "spec.nodeName"
    );
}
