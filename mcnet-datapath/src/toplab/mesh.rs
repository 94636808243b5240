//! The lab's Linkerd multicluster, with mcnet's own gateway:
//!
//! - a PKI (trust anchor and issuer) in the lab's state directory;
//! - in each linked cluster, the gateway pod's namespace running `mcnet mesh
//!   gateway` with its own certificate, admitting every meshed identity and
//!   routing by Linkerd's transport header to the backends of the services
//!   the cluster exports;
//! - the node forwarding its gateway port (4143 on the node address, as the
//!   gateway's load balancer does) to the gateway pod;
//! - the client side, as a meshed pod's proxy: the pod's own certificate,
//!   mTLS to the remote gateway, the header naming the service.
//!
//! As `mcnet render` does, a namespace that spans clusters is meshed (its
//! pods get certificates) and exports its services; two clusters sharing
//! such a namespace are linked.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use mcnet_core::topology::Topology;
use mcnet_mesh::gateway::{self, TransportHeader, GATEWAY_PORT};
use mcnet_mesh::identity::{
    IssuerCa, TrustAnchor, TrustBundle, WorkloadId, ANCHOR_LIFETIME, ISSUER_LIFETIME,
    WORKLOAD_LIFETIME,
};
use mcnet_mesh::store::{write_file, write_key, IdentityDir};
use mcnet_mesh::tls::TlsIdentity;

use crate::{Error, Result};

/// The lab mesh's trust domain.
pub const TRUST_DOMAIN: &str = "cluster.local";
/// The gateway's namespace and service account (Linkerd's).
const GATEWAY_ID: (&str, &str) = ("linkerd-multicluster", "linkerd-gateway");

/// A cluster's gateway in the lab.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LabGateway {
    /// The cluster.
    pub cluster: String,
    /// The gateway pod's namespace.
    pub netns: String,
    /// The gateway pod's lab address.
    pub lab: Ipv4Addr,
    /// The node address clients dial (port 4143), forwarded to the pod.
    pub node: Ipv4Addr,
    /// `NAME:PORT` → backend, the services the cluster exports.
    pub routes: Vec<(String, SocketAddrV4)>,
    /// The gateway's log.
    pub log: PathBuf,
}

fn mesh_err(what: &str, e: mcnet_mesh::Error) -> Error {
    Error::Spawn {
        command: what.to_string(),
        source: std::io::Error::other(e.to_string()),
    }
}

/// Whether `namespace` is meshed in `cluster`: it spans that cluster and another.
pub fn meshed(t: &Topology, cluster: &str, namespace: &str) -> bool {
    t.spec.namespaces.iter().any(|n| {
        n.name == namespace && n.clusters.len() > 1 && n.clusters.iter().any(|c| c == cluster)
    })
}

/// Whether `a` has a Link to `b`: they share a namespace.
pub fn linked(t: &Topology, a: &str, b: &str) -> bool {
    a != b
        && t.spec
            .namespaces
            .iter()
            .any(|n| n.clusters.iter().any(|c| c == a) && n.clusters.iter().any(|c| c == b))
}

/// The PKI's files in the lab's state directory.
fn pki_dir(dir: &Path) -> PathBuf {
    dir.join("pki")
}

/// Creates the lab's trust anchor and issuer.
pub(super) fn pki(dir: &Path) -> Result<()> {
    let anchor = TrustAnchor::generate(TRUST_DOMAIN, ANCHOR_LIFETIME)
        .map_err(|e| mesh_err("lab trust anchor", e))?;
    let issuer = anchor
        .issue_issuer(TRUST_DOMAIN, ISSUER_LIFETIME)
        .map_err(|e| mesh_err("lab issuer", e))?;
    let p = pki_dir(dir);
    write_file(&p.join("ca.crt"), anchor.ca.cert_pem.as_bytes(), 0o644)
        .and_then(|_| write_file(&p.join("issuer.crt"), issuer.ca.cert_pem.as_bytes(), 0o644))
        .and_then(|_| write_key(&p.join("issuer.key"), &issuer.ca.key))
        .map_err(|e| mesh_err("write the lab PKI", e))
}

fn issuer(dir: &Path) -> Result<(IssuerCa, TrustBundle)> {
    let p = pki_dir(dir);
    let read = |f: &str| {
        std::fs::read_to_string(p.join(f)).map_err(|source| Error::Spawn {
            command: format!("read {}", p.join(f).display()),
            source,
        })
    };
    let issuer = IssuerCa::from_pem(&read("issuer.crt")?, &read("issuer.key")?, TRUST_DOMAIN)
        .map_err(|e| mesh_err("load the lab issuer", e))?;
    Ok((issuer, TrustBundle::new(&read("ca.crt")?)))
}

/// A workload's identity, issued by the lab's issuer.
pub(super) fn identity(dir: &Path, namespace: &str, service_account: &str) -> Result<TlsIdentity> {
    let (issuer, bundle) = issuer(dir)?;
    let id = WorkloadId::new(namespace, service_account, TRUST_DOMAIN)
        .map_err(|e| mesh_err(&format!("identity of {namespace}/{service_account}"), e))?;
    let cert = issuer
        .issue(&id, WORKLOAD_LIFETIME)
        .map_err(|e| mesh_err(&format!("certificate of {namespace}/{service_account}"), e))?;
    TlsIdentity::new(cert, bundle).map_err(|e| mesh_err("TLS identity", e))
}

/// The gateway's Linkerd name.
fn gateway_name() -> Result<String> {
    WorkloadId::new(GATEWAY_ID.0, GATEWAY_ID.1, TRUST_DOMAIN)
        .map(|id| id.linkerd_name())
        .map_err(|e| mesh_err("gateway identity", e))
}

/// Writes gateway `gw`'s identity directory and runs `mcnet mesh gateway`
/// in its pod's namespace; returns once it listens.
pub(super) fn start(dir: &Path, gw: &LabGateway, bin: &Path) -> Result<()> {
    let (issuer, bundle) = issuer(dir)?;
    let id = WorkloadId::new(GATEWAY_ID.0, GATEWAY_ID.1, TRUST_DOMAIN)
        .map_err(|e| mesh_err("gateway identity", e))?;
    let cert = issuer
        .issue(&id, WORKLOAD_LIFETIME)
        .map_err(|e| mesh_err("gateway certificate", e))?;
    let idir = dir.join(format!("gateway-{}", gw.netns));
    write_file(
        &idir.join(IdentityDir::CERT),
        cert.chain_pem.as_bytes(),
        0o644,
    )
    .and_then(|_| write_key(&idir.join(IdentityDir::KEY), &cert.key))
    .and_then(|_| {
        write_file(
            &idir.join(IdentityDir::BUNDLE),
            bundle.pem().as_bytes(),
            0o644,
        )
    })
    .map_err(|e| mesh_err("write the gateway identity", e))?;
    let mut args = vec![
        "mesh".into(),
        "gateway".into(),
        "--listen".into(),
        SocketAddrV4::new(gw.lab, GATEWAY_PORT).to_string(),
        "--identity".into(),
        idir.display().to_string(),
        "--probe".into(),
        SocketAddrV4::new(gw.lab, gateway::PROBE_PORT).to_string(),
    ];
    for (key, to) in &gw.routes {
        args.push("--route".into());
        args.push(format!("{key}={to}"));
    }
    super::spawn_in(
        &gw.netns,
        bin,
        &args,
        &gw.log,
        "listening on",
        Duration::from_secs(20),
    )
}

/// From pod namespace `ns`, a call through `gw` to `name:port`, as the
/// pod's proxy makes it: with `client` (a meshed pod), mTLS and the
/// transport header; without (a pod with no proxy), the same bytes in the
/// clear. True when an echo comes back from the backend.
pub(super) fn via_gateway(
    ns: &str,
    client: Option<&TlsIdentity>,
    gw: &LabGateway,
    name: &str,
    port: u16,
    timeout: Duration,
) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(gateway_name) = gateway_name() else {
        return false;
    };
    let header = TransportHeader {
        port,
        name: Some(name.to_string()),
    };
    let to = SocketAddr::from((gw.node, GATEWAY_PORT));
    crate::netns::run_in(&crate::netns::named(ns), || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return false;
        };
        rt.block_on(async {
            let work = async {
                match client {
                    Some(id) => {
                        let mut s = gateway::dial(id, to, &gateway_name, &header, timeout)
                            .await
                            .ok()?;
                        s.write_all(b"ping").await.ok()?;
                        let mut buf = [0u8; 4];
                        s.read_exact(&mut buf).await.ok()?;
                        Some(&buf == b"ping")
                    }
                    None => {
                        let mut s = tokio::net::TcpStream::connect(to).await.ok()?;
                        s.write_all(&header.encode()).await.ok()?;
                        s.write_all(b"ping").await.ok()?;
                        let mut buf = [0u8; 4];
                        s.read_exact(&mut buf).await.ok()?;
                        Some(&buf == b"ping")
                    }
                }
            };
            tokio::time::timeout(timeout * 2, work)
                .await
                .ok()
                .flatten()
                .unwrap_or(false)
        })
    })
    .unwrap_or(false)
}
