//! The `mcnet policy ...` contracts, run as a user would.

use serde_json::Value;

mod common;
use common::{mcnet, temp};

const PROD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/policies/adr-003-production.yaml"
);
const QUERIES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/policies/adr-003-queries.json");

#[test]
fn eval_contract_answers_in_order_with_explanations() {
    let (code, out, err) = mcnet(&[
        "policy",
        "eval",
        "--manifests",
        PROD,
        "--queries",
        QUERIES,
        "--output",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: Vec<Value> = serde_json::from_str(&out).unwrap();
    let verdicts: Vec<&str> = v.iter().map(|o| o["verdict"].as_str().unwrap()).collect();
    assert_eq!(
        verdicts,
        ["allow", "allow", "deny", "deny", "deny", "deny", "deny"]
    );
    for o in &v {
        assert!(!o["explanation"].as_str().unwrap().is_empty());
    }
    // The deny by L7 names the policy and the rule.
    let e = v[2]["explanation"].as_str().unwrap();
    assert!(
        e.contains("CiliumNetworkPolicy production/api-access-policy ingress rule 0"),
        "{e}"
    );
    // The isolated deny names the isolating policy and the side.
    let e = v[3]["explanation"].as_str().unwrap();
    assert!(
        e.contains("egress of production/batch") && e.contains("default-deny-all"),
        "{e}"
    );
}

#[test]
fn eval_reads_lists_and_streams_and_split_files() {
    let text = std::fs::read_to_string(PROD).unwrap();
    let docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    let list = serde_yaml::to_string(
        &serde_json::json!({"apiVersion": "v1", "kind": "List", "items": docs}),
    )
    .unwrap();
    let a = temp("list.yaml", &list);
    let json = temp(
        "list.json",
        &serde_json::to_string(&serde_yaml::from_str::<Value>(&list).unwrap()).unwrap(),
    );
    for f in [&a, &json] {
        let (code, out, err) = mcnet(&[
            "policy",
            "eval",
            "--manifests",
            f,
            "--queries",
            QUERIES,
            "--output",
            "json",
        ]);
        assert_eq!(code, 0, "{err}");
        let v: Vec<Value> = serde_json::from_str(&out).unwrap();
        assert_eq!(v[1]["verdict"], "allow");
        assert_eq!(v[2]["verdict"], "deny");
    }
    // Inventory and policies in separate files.
    let (inv, pol): (Vec<&str>, Vec<&str>) = text
        .split("\n---\n")
        .partition(|d| d.contains("kind: Pod") || d.contains("kind: Namespace"));
    let i = temp("inv.yaml", &inv.join("\n---\n"));
    let p = temp("pol.yaml", &pol.join("\n---\n"));
    let (code, out, _) = mcnet(&[
        "policy",
        "eval",
        "--manifests",
        &i,
        "--manifests",
        &p,
        "--queries",
        QUERIES,
        "--output",
        "json",
    ]);
    assert_eq!(code, 0);
    let v: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["verdict"], "allow");
}

fn invalid(policy: &str) -> (i32, String) {
    let f = temp("bad.yaml", policy);
    let q = temp("q.json", "[]");
    let (code, _, err) = mcnet(&[
        "policy",
        "eval",
        "--manifests",
        &f,
        "--queries",
        &q,
        "--output",
        "json",
    ]);
    (code, err)
}

#[test]
fn invalid_policies_name_the_policy_and_the_field() {
    let np = |spec: &str| {
        format!("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: bad, namespace: prod}}\nspec: {spec}\n")
    };
    let cnp = |spec: &str| {
        format!("apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {{name: bad, namespace: prod}}\nspec: {spec}\n")
    };
    let cases = [
        (np("{podSelector: {}, ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/33}}]}]}"), "spec.ingress[0].from[0].ipBlock.cidr", "10.0.0.0/33"),
        (np("{podSelector: {}, ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/16, except: [10.1.0.0/24]}}]}]}"), "spec.ingress[0].from[0].ipBlock.except[0]", "10.1.0.0/24"),
        (np("{podSelector: {}, ingress: [{ports: [{port: 90, endPort: 80}]}]}"), "spec.ingress[0].ports[0].endPort", "below port 90"),
        (np("{podSelector: {}, egress: [{ports: [{port: http, endPort: 80}]}]}"), "spec.egress[0].ports[0].endPort", "named port `http`"),
        (cnp("{endpointSelector: {}, ingress: [{toPorts: [{ports: [{port: '80', protocol: TCP}], rules: {http: [{path: '/api/(v1'}]}}]}]}"), "spec.ingress[0].toPorts[0].rules.http[0].path", "not a valid regex"),
        (cnp("{endpointSelector: {}, ingress: [{fromEntities: [wrld]}]}"), "spec.ingress[0].fromEntities[0]", "unknown entity `wrld`"),
        (cnp("{endpointSelector: {}, egress: [{toCIDRSet: [{cidr: 10.0.0.0/8, except: [192.168.0.0/16]}]}]}"), "spec.egress[0].toCIDRSet[0].except[0]", "192.168.0.0/16"),
    ];
    for (doc, path, needle) in cases {
        let (code, err) = invalid(&doc);
        assert_eq!(code, 1, "{doc}\n{err}");
        assert!(err.contains("prod/bad"), "policy not named: {err}");
        assert!(err.contains(path), "field {path} not named: {err}");
        assert!(err.contains(needle), "{needle} missing: {err}");
    }
}

#[test]
fn matrix_diff_lint_and_generate() {
    let (code, out, _) = mcnet(&["policy", "matrix", "--manifests", PROD, "--port", "8080"]);
    assert_eq!(code, 0);
    assert!(out.contains("1 of 9 pod pairs allowed"), "{out}");

    // Removing default deny opens connections; the diff lists them.
    let text = std::fs::read_to_string(PROD).unwrap();
    let without_default_deny: Vec<&str> = text
        .split("\n---\n")
        .filter(|d| !d.contains("name: default-deny-all"))
        .collect();
    let open = temp("open.yaml", &without_default_deny.join("\n---\n"));
    let (code, out, _) = mcnet(&[
        "policy", "diff", PROD, &open, "--port", "8080", "--output", "json",
    ]);
    assert_eq!(code, 0);
    let d: Value = serde_json::from_str(&out).unwrap();
    let opened = d["opened"].as_array().unwrap();
    assert!(
        opened
            .iter()
            .any(|c| c["from"] == "production/batch" && c["to"] == "production/frontend"),
        "{d}"
    );
    assert!(d["closed"].as_array().unwrap().is_empty());

    // The ADR namespace has default deny; a namespace without it is flagged.
    let (code, out, _) = mcnet(&["policy", "lint", "--manifests", PROD, "--output", "json"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert!(
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["code"] != "lint.no-default-deny"),
        "{v}"
    );
    let _ = code;
    let (code, out, _) = mcnet(&["policy", "lint", "--manifests", &open, "--output", "json"]);
    assert_eq!(code, 1);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert!(v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["code"] == "lint.no-default-deny"
            && f["message"].as_str().unwrap().contains("egress")));

    // Generated intent policies, with default deny, give the ADR's verdicts.
    let (code, gen, _) = mcnet(&[
        "policy",
        "generate",
        "intent",
        "frontend may GET /api/v1/.* and POST /api/v1/users on api-server:8080",
        "-n",
        "production",
    ]);
    assert_eq!(code, 0);
    let (code, deny, _) = mcnet(&["policy", "generate", "default-deny", "-n", "production"]);
    assert_eq!(code, 0);
    let inv: Vec<&str> = text
        .split("\n---\n")
        .filter(|d| d.contains("kind: Pod") || d.contains("kind: Namespace"))
        .collect();
    let all = temp(
        "gen.yaml",
        &format!("{}\n{gen}\n{deny}", inv.join("\n---\n")),
    );
    let (code, out, err) = mcnet(&[
        "policy",
        "eval",
        "--manifests",
        &all,
        "--queries",
        QUERIES,
        "--output",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: Vec<Value> = serde_json::from_str(&out).unwrap();
    let verdicts: Vec<&str> = v.iter().map(|o| o["verdict"].as_str().unwrap()).collect();
    assert_eq!(
        verdicts,
        ["allow", "allow", "deny", "deny", "deny", "deny", "deny"]
    );
}

const ICMP_CASE: &str = r#"
- {apiVersion: v1, kind: Pod, metadata: {name: a, namespace: x, labels: {app: a}}, status: {podIP: 10.0.0.1}}
- {apiVersion: v1, kind: Pod, metadata: {name: b, namespace: x, labels: {app: b}}, status: {podIP: 10.0.0.2}}
- apiVersion: cilium.io/v2
  kind: CiliumNetworkPolicy
  metadata: {name: icmp-only, namespace: x}
  spec:
    endpointSelector: {matchLabels: {app: b}}
    ingress:
    - fromEndpoints: [{matchLabels: {app: a}}]
      icmps: [{fields: [{type: 8, family: IPv4}]}]
"#;

#[test]
fn eval_answers_the_icmp_case_deny_for_tcp_allow_for_echo() {
    let m = temp("icmp.yaml", ICMP_CASE);
    let q = temp(
        "icmp-queries.json",
        r#"[{"from": {"pod": "x/a"}, "to": {"pod": "x/b"}, "port": 8080, "protocol": "TCP"},
            {"from": {"pod": "x/a"}, "to": {"pod": "x/b"}, "protocol": "ICMP", "type": 8},
            {"from": {"pod": "x/a"}, "to": {"pod": "x/b"}, "protocol": "ICMP", "type": 13}]"#,
    );
    let (code, out, err) = mcnet(&[
        "policy",
        "eval",
        "--manifests",
        &m,
        "--queries",
        &q,
        "--output",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: Vec<Value> = serde_json::from_str(&out).unwrap();
    let verdicts: Vec<&str> = v.iter().map(|o| o["verdict"].as_str().unwrap()).collect();
    assert_eq!(verdicts, ["deny", "allow", "deny"]);
    // One query from flags, x/a → x/b.
    let eval_ab = |extra: &[&str]| {
        let mut args = vec![
            "policy",
            "eval",
            "--manifests",
            &m,
            "--from",
            "x/a",
            "--to",
            "x/b",
        ];
        args.extend_from_slice(extra);
        mcnet(&args)
    };
    let (code, out, err) = eval_ab(&["--protocol", "ICMP", "--type", "8"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("ALLOW x/a → x/b ICMP type 8"), "{out}");
    // `--port` may carry the type, as `port` may in a queries file.
    let (code, out, err) = eval_ab(&["--protocol", "ICMP", "--port", "13"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("DENY  x/a → x/b ICMP type 13"), "{out}");
    let (code, out, _) = eval_ab(&["--port", "8080"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("DENY "), "{out}");
    // The matrix follows: ICMP echo is a column of its own, TCP is closed.
    let (code, out, err) = mcnet(&["policy", "matrix", "--manifests", &m, "--output", "json"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ICMP"), "{out}");
}

#[test]
fn unenforced_fields_are_lint_errors_and_eval_warnings() {
    let m = temp(
        "fqdn.yaml",
        r#"
- {apiVersion: v1, kind: Pod, metadata: {name: a, namespace: x, labels: {app: a}}, status: {podIP: 10.0.0.1}}
- apiVersion: cilium.io/v2
  kind: CiliumNetworkPolicy
  metadata: {name: fqdn, namespace: x}
  spec:
    endpointSelector: {matchLabels: {app: a}}
    egress:
    - toFQDNs: [{matchName: api.example.com}]
      toPorts: [{ports: [{port: "443", protocol: TCP}]}]
"#,
    );
    let (code, out, _) = mcnet(&["policy", "lint", "--manifests", &m, "--output", "json"]);
    assert_eq!(code, 1);
    let v: Value = serde_json::from_str(&out).unwrap();
    let errors = v["errors"].as_array().unwrap();
    assert!(
        errors.iter().any(|e| e["code"] == "policy.not-enforced"
            && e["path"] == "spec.egress[0].toFQDNs"
            && e["message"]
                .as_str()
                .unwrap()
                .contains("CiliumNetworkPolicy x/fqdn")),
        "{out}"
    );
    let (code, out, err) = mcnet(&[
        "policy",
        "eval",
        "--manifests",
        &m,
        "--from",
        "x/a",
        "--to",
        "198.51.100.7",
        "--port",
        "443",
        "--output",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("warning: [policy.not-enforced] spec.egress[0].toFQDNs"),
        "{err}"
    );
    let v: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["verdict"], "not-evaluable", "{out}");
}

const HUBBLE_FLOWS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/flows/hubble-adr-003.jsonl");

/// The ADR's policy without its `POST /api/v1/users` rule.
fn without_post() -> String {
    let adr = std::fs::read_to_string(PROD).unwrap();
    let cut = adr.replace(
        "        - method: \"POST\"\n          path: \"/api/v1/users\"\n",
        "",
    );
    assert_ne!(cut, adr);
    cut
}

#[test]
fn replay_reports_the_recorded_flows_a_candidate_would_drop() {
    let candidate = temp("replay-candidate.yaml", &without_post());
    let run = |extra: &[&str]| {
        let mut args = vec![
            "policy",
            "replay",
            "--flows",
            HUBBLE_FLOWS,
            "--manifests",
            &candidate,
            "-O",
            "json",
        ];
        args.extend_from_slice(extra);
        let (code, stdout, stderr) = mcnet(&args);
        let v: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));
        (code, v)
    };
    for baseline in [&[][..], &["--baseline", PROD][..]] {
        let (code, v) = run(baseline);
        assert_eq!(code, 1, "a previously allowed flow is dropped: {v}");
        let c = &v["counts"];
        assert_eq!(c["lines"], 8, "{v}");
        assert_eq!(c["replies"], 1);
        assert_eq!(c["not_flows"], 2, "the node status and the non-IP flow");
        assert_eq!(c["flows"], 5);
        assert_eq!(c["newly_denied"], 2);
        assert_eq!(c["newly_allowed"], 0);
        assert_eq!(
            c["unchanged"], 3,
            "the L4 connection, the GET, batch's drop"
        );
        let changes = v["changes"].as_array().unwrap();
        assert_eq!(changes.len(), 1, "{v}");
        let ch = &changes[0];
        assert_eq!(ch["change"], "newly-denied");
        assert_eq!(ch["from"], "production/frontend");
        assert_eq!(ch["to"], "production/api-server");
        assert_eq!(ch["port"], 8080);
        assert_eq!(ch["http"], serde_json::json!(["POST", "/api/v1/users"]));
        assert_eq!(ch["count"], 2);
        assert_eq!(ch["first_seen"], "2026-12-06T09:00:02Z");
        assert_eq!(ch["last_seen"], "2026-12-06T09:00:06Z");
        assert!(
            ch["rule"].as_str().unwrap().contains("api-access-policy"),
            "{ch}"
        );
        assert!(!ch["explanation"].as_str().unwrap().is_empty());
        if baseline.is_empty() {
            assert!(ch["was"].is_null());
        } else {
            assert!(ch["was"].as_str().unwrap().contains("POST"), "{ch}");
        }
    }
    // The counts as metrics, valid for promtool.
    let prom = temp("replay.prom", "");
    let (code, _, _) = mcnet(&[
        "policy",
        "replay",
        "--flows",
        HUBBLE_FLOWS,
        "--manifests",
        &candidate,
        "--metrics-file",
        &prom,
    ]);
    assert_eq!(code, 1);
    let text = std::fs::read_to_string(&prom).unwrap();
    assert!(
        text.contains("mcnet_replay_flows{outcome=\"newly-denied\"} 2"),
        "{text}"
    );
    common::promtool_accepts(&text);
    // The policy in force as the candidate: nothing changes, exit 0.
    let (code, stdout, stderr) = mcnet(&[
        "policy",
        "replay",
        "--flows",
        HUBBLE_FLOWS,
        "--manifests",
        PROD,
        "-O",
        "json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert!(v["changes"].as_array().unwrap().is_empty(), "{v}");
    // A line that is not a flow is counted and named, never fatal.
    let mut text = std::fs::read_to_string(HUBBLE_FLOWS).unwrap();
    text.push_str("this is not JSON\n");
    let broken = temp("replay-broken.jsonl", &text);
    let (code, stdout, _) = mcnet(&[
        "policy",
        "replay",
        "--flows",
        &broken,
        "--manifests",
        PROD,
        "-O",
        "json",
    ]);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["counts"]["malformed"], 1);
    assert!(
        v["malformed"][0].as_str().unwrap().starts_with("line 9:"),
        "{v}"
    );
}
