//! Conformance: cases re-expressed as data from the Kubernetes netpol e2e
//! suite, cyclonus, Cilium's pkg/policy tests and the cilium-cli
//! connectivity tests (see each case's `source`). Every query's verdict must
//! match.

use std::path::{Path, PathBuf};

use mcnet_core::policy::{Compiled, Decision, Manifests, Query};
use serde::Deserialize;

#[derive(Deserialize)]
struct Case {
    name: String,
    #[allow(dead_code)]
    source: String,
    #[serde(default)]
    inventory: Option<String>,
    manifests: serde_yaml::Value,
    queries: Vec<CaseQuery>,
}

#[derive(Deserialize)]
struct CaseQuery {
    #[serde(flatten)]
    query: Query,
    expect: Decision,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance")
}

fn run_suite(dir: &str) -> (usize, usize, Vec<String>) {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no cases in {dir}");
    let (mut cases, mut queries) = (0, 0);
    let mut failures = Vec::new();
    for f in files {
        let case: Case = serde_yaml::from_str(&std::fs::read_to_string(&f).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let inventory = case
            .inventory
            .as_ref()
            .map(|i| {
                std::fs::read_to_string(root().join("inventories").join(format!("{i}.yaml")))
                    .unwrap()
            })
            .unwrap_or_default();
        let manifests = serde_yaml::to_string(&case.manifests).unwrap();
        let m = match Manifests::load([
            ("inventory", inventory.as_str()),
            (case.name.as_str(), manifests.as_str()),
        ]) {
            Ok(m) => m,
            Err(e) => {
                failures.push(format!("{}: manifests rejected: {e}", case.name));
                continue;
            }
        };
        let c = Compiled::new(&m);
        cases += 1;
        for (i, q) in case.queries.iter().enumerate() {
            queries += 1;
            match c.eval(&q.query) {
                Ok(out) if out.verdict == q.expect => {}
                Ok(out) => failures.push(format!(
                    "{} query {i}: expected {}, got {}: {}",
                    case.name, q.expect, out.verdict, out.explanation
                )),
                Err(e) => failures.push(format!("{} query {i}: {e}", case.name)),
            }
        }
    }
    (cases, queries, failures)
}

fn check(dir: &str) {
    let (cases, queries, failures) = run_suite(dir);
    eprintln!(
        "{dir}: {cases} cases, {queries} queries, {} failures",
        failures.len()
    );
    if !failures.is_empty() {
        for f in failures.iter().take(40) {
            eprintln!("  {f}");
        }
        panic!(
            "{} of {queries} {dir} conformance queries failed",
            failures.len()
        );
    }
}

#[test]
fn kubernetes_netpol_and_cyclonus() {
    check("k8s");
}

#[test]
fn cilium() {
    check("cilium");
}
