//! Shared by the datapath tests: the conformance cases as manifests and queries.

use std::path::Path;

use mcnet_core::policy::{Manifests, Proto, Query};
use mcnet_ebpf_common::{PROTO_SCTP, PROTO_TCP, PROTO_UDP};
use serde::Deserialize;

#[derive(Deserialize)]
struct Case {
    name: String,
    #[serde(default)]
    inventory: Option<String>,
    manifests: serde_yaml::Value,
    queries: Vec<Query>,
}

/// The IP protocol number.
pub fn proto_number(p: Proto) -> u8 {
    match p {
        Proto::Tcp => PROTO_TCP,
        Proto::Udp => PROTO_UDP,
        Proto::Sctp => PROTO_SCTP,
        Proto::Any => 0,
    }
}

/// Every conformance case: name, manifests, queries.
pub fn cases() -> Vec<(String, Manifests, Vec<Query>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../mcnet-core/tests/conformance");
    let mut out = Vec::new();
    for dir in ["k8s", "cilium"] {
        let mut files: Vec<_> = std::fs::read_dir(root.join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for f in files {
            let case: Case = serde_yaml::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
            let inv = case
                .inventory
                .map(|i| {
                    std::fs::read_to_string(root.join("inventories").join(format!("{i}.yaml")))
                        .unwrap()
                })
                .unwrap_or_default();
            let man = serde_yaml::to_string(&case.manifests).unwrap();
            let m = Manifests::load([("inv", inv.as_str()), ("m", man.as_str())]).unwrap();
            out.push((case.name, m, case.queries));
        }
    }
    out
}
