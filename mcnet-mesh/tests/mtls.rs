//! Real mTLS over loopback, between separate tasks: the gateway admits valid
//! identities, rejects each kind of bad client with its own reason, and
//! keeps serving across certificate renewals and a trust-anchor rollover.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mcnet_mesh::gateway::{self, GatewayConfig, GatewayHandle};
use mcnet_mesh::identity::{
    IssuerCa, TrustAnchor, TrustBundle, WorkloadId, ANCHOR_LIFETIME, ISSUER_LIFETIME,
    WORKLOAD_LIFETIME,
};
use mcnet_mesh::rotation::{self, Member, Renewal, SharedIssuer};
use mcnet_mesh::tls::{Authorization, HandshakeFailure, TlsIdentity};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const TD: &str = "cluster.local";
const GATEWAY_ID: &str =
    "linkerd-gateway.linkerd-multicluster.serviceaccount.identity.linkerd.cluster.local";

fn id(ns: &str, sa: &str) -> WorkloadId {
    WorkloadId::new(ns, sa, TD).unwrap()
}

struct Pki {
    anchor: TrustAnchor,
    issuer: IssuerCa,
}

impl Pki {
    fn new() -> Pki {
        let anchor = TrustAnchor::generate(TD, ANCHOR_LIFETIME).unwrap();
        let issuer = anchor.issue_issuer(TD, ISSUER_LIFETIME).unwrap();
        Pki { anchor, issuer }
    }

    fn bundle(&self) -> TrustBundle {
        TrustBundle::new(&self.anchor.ca.cert_pem)
    }

    fn identity(&self, w: &WorkloadId, lifetime: Duration) -> TlsIdentity {
        TlsIdentity::new(self.issuer.issue(w, lifetime).unwrap(), self.bundle()).unwrap()
    }
}

/// An echo server: every byte back.
async fn echo() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

async fn start_gateway(identity: TlsIdentity, allow: &[&str], audit: bool) -> GatewayHandle {
    let target = echo().await;
    gateway::start(
        identity,
        GatewayConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            target,
            routes: Default::default(),
            probe: Some("127.0.0.1:0".parse().unwrap()),
            authz: Authorization {
                audit,
                ..Authorization::allow_only(allow.iter().map(|s| s.to_string()).collect())
            },
            handshake_timeout: Duration::from_secs(5),
        },
    )
    .await
    .unwrap()
}

/// One request through the gateway: Ok(echoed) or the failure as the client saw it.
async fn request(client: &TlsIdentity, gw: SocketAddr, msg: &[u8]) -> Result<Vec<u8>, String> {
    let tcp = TcpStream::connect(gw).await.map_err(|e| e.to_string())?;
    let mut tls = client
        .connect(tcp, GATEWAY_ID)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tls.write_all(msg)
        .await
        .map_err(|e| format!("write: {e}"))?;
    tls.flush().await.map_err(|e| format!("flush: {e}"))?;
    let mut buf = vec![0u8; msg.len()];
    match tls.read_exact(&mut buf).await {
        Ok(_) => Ok(buf),
        Err(e) => Err(format!("read: {} ({e})", HandshakeFailure::classify(&e))),
    }
}

fn frontend() -> &'static str {
    "frontend.production.serviceaccount.identity.linkerd.cluster.local"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_identities_connect_and_bad_ones_are_told_apart() {
    let pki = Pki::new();
    let gw_id = pki.identity(
        &id("linkerd-multicluster", "linkerd-gateway"),
        WORKLOAD_LIFETIME,
    );
    let gw = start_gateway(
        gw_id,
        &[frontend(), "spiffe://cluster.local/ns/production/sa/api"],
        false,
    )
    .await;

    // Allowed by Linkerd name, and by SPIFFE id.
    let fe = pki.identity(&id("production", "frontend"), WORKLOAD_LIFETIME);
    assert_eq!(request(&fe, gw.addr, b"hello").await.unwrap(), b"hello");
    let api = pki.identity(&id("production", "api"), WORKLOAD_LIFETIME);
    assert_eq!(
        request(&api, gw.addr, b"by spiffe").await.unwrap(),
        b"by spiffe"
    );

    // A valid certificate with an identity the policy does not allow.
    let other = pki.identity(&id("production", "attacker"), WORKLOAD_LIFETIME);
    assert!(request(&other, gw.addr, b"x").await.is_err());

    // An expired certificate.
    let now = SystemTime::now();
    let expired = TlsIdentity::new(
        pki.issuer
            .issue_valid(
                &id("production", "frontend"),
                now - Duration::from_secs(7200),
                now - Duration::from_secs(3600),
            )
            .unwrap(),
        pki.bundle(),
    )
    .unwrap();
    assert!(request(&expired, gw.addr, b"x").await.is_err());

    // A certificate from another trust anchor.
    let rogue = Pki::new();
    let mut both = rogue.bundle();
    both.add(&pki.anchor.ca.cert_pem); // it trusts the gateway, the gateway does not trust it
    let untrusted = TlsIdentity::new(
        rogue
            .issuer
            .issue(&id("production", "frontend"), WORKLOAD_LIFETIME)
            .unwrap(),
        both,
    )
    .unwrap();
    assert!(request(&untrusted, gw.addr, b"x").await.is_err());

    // A plaintext client.
    let mut plain = TcpStream::connect(gw.addr).await.unwrap();
    plain
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut buf)).await;
    assert!(!buf.starts_with(b"HTTP"), "no plaintext answer");

    // The client refuses a server that is not the gateway it asked for.
    let tcp = TcpStream::connect(gw.addr).await.unwrap();
    let wrong = fe
        .connect(
            tcp,
            "api.production.serviceaccount.identity.linkerd.cluster.local",
        )
        .await
        .unwrap_err();
    assert_eq!(wrong, HandshakeFailure::WrongIdentity);

    // The gateway told them apart: each rejection under its own reason.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let m = &gw.metrics;
    assert_eq!(m.authz_denials.load(Ordering::Relaxed), 1);
    assert_eq!(m.handshake_failures(HandshakeFailure::Expired), 1);
    assert_eq!(m.handshake_failures(HandshakeFailure::Untrusted), 1);
    assert_eq!(m.handshake_failures(HandshakeFailure::Plaintext), 1);
    assert!(m.bytes_in.load(Ordering::Relaxed) >= 14);

    // Probe and metrics.
    let probe = gw.probe_addr.unwrap();
    let http = |path: &'static str| async move {
        let mut s = TcpStream::connect(probe).await.unwrap();
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    };
    assert!(http("/ready").await.starts_with("HTTP/1.1 200"));
    let metrics = http("/metrics").await;
    assert!(
        metrics.contains("mcnet_gateway_handshake_failures_total{reason=\"untrusted\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("mcnet_gateway_authz_denials_total 1"),
        "{metrics}"
    );
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_mode_lets_a_violation_through_and_counts_it() {
    let pki = Pki::new();
    let gw = start_gateway(
        pki.identity(
            &id("linkerd-multicluster", "linkerd-gateway"),
            WORKLOAD_LIFETIME,
        ),
        &["nobody.production.serviceaccount.identity.linkerd.cluster.local"],
        true,
    )
    .await;
    let fe = pki.identity(&id("production", "frontend"), WORKLOAD_LIFETIME);
    assert_eq!(request(&fe, gw.addr, b"audit").await.unwrap(), b"audit");
    assert_eq!(gw.metrics.authz_audited.load(Ordering::Relaxed), 1);
    assert_eq!(gw.metrics.authz_denials.load(Ordering::Relaxed), 0);
    gw.shutdown().await;
}

/// Runs requests back to back (new connection each) plus one long-lived
/// connection, until stopped; returns (ok, failed) and the failures.
fn traffic(
    client: TlsIdentity,
    gw: SocketAddr,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<(u64, u64, Vec<String>)> {
    tokio::spawn(async move {
        let (ok, failed) = (AtomicU64::new(0), AtomicU64::new(0));
        let mut errors = Vec::new();
        // The long-lived one.
        let tcp = TcpStream::connect(gw).await.unwrap();
        let mut long = client.connect(tcp, GATEWAY_ID).await.unwrap();
        let mut i = 0u64;
        while !stop.load(Ordering::Relaxed) {
            i += 1;
            let msg = format!("req-{i}");
            match request(&client, gw, msg.as_bytes()).await {
                Ok(b) if b == msg.as_bytes() => ok.fetch_add(1, Ordering::Relaxed),
                Ok(_) => {
                    errors.push("wrong echo".into());
                    failed.fetch_add(1, Ordering::Relaxed)
                }
                Err(e) => {
                    errors.push(e);
                    failed.fetch_add(1, Ordering::Relaxed)
                }
            };
            let mut buf = [0u8; 4];
            if long.write_all(b"ping").await.is_err()
                || long.flush().await.is_err()
                || long.read_exact(&mut buf).await.is_err()
            {
                errors.push("long-lived connection broke".into());
                failed.fetch_add(1, Ordering::Relaxed);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        (ok.into_inner(), failed.into_inner(), errors)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_survives_renewals_and_an_anchor_rollover() {
    let mut pki = Pki::new();
    // Short lifetimes without the 20 s skew allowance, so that renewals (at
    // 70% of the lifetime) happen during the test.
    pki.issuer.clock_skew = Duration::ZERO;
    let issuer = SharedIssuer::new(pki.issuer.clone());
    let life = Duration::from_secs(3);
    let gw_identity = pki.identity(&id("linkerd-multicluster", "linkerd-gateway"), life);
    let fe = pki.identity(&id("production", "frontend"), life);
    let _r1 = Renewal::spawn(gw_identity.clone(), issuer.clone(), life);
    let _r2 = Renewal::spawn(fe.clone(), issuer.clone(), life);
    let gw = start_gateway(gw_identity.clone(), &[frontend()], false).await;

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let t = traffic(fe.clone(), gw.addr, stop.clone());
    let first_cert = fe.cert().chain_pem;
    tokio::time::sleep(Duration::from_secs(5)).await; // at least two renewals each
    assert_ne!(
        fe.cert().chain_pem,
        first_cert,
        "the client certificate was renewed"
    );

    // Roll over to a new trust anchor while traffic flows.
    let new_anchor = TrustAnchor::generate(TD, ANCHOR_LIFETIME).unwrap();
    let members = [
        Member {
            identity: gw_identity.clone(),
            issuer: issuer.clone(),
        },
        Member {
            identity: fe.clone(),
            issuer: issuer.clone(),
        },
    ];
    rotation::rollover(
        &members,
        &new_anchor,
        ISSUER_LIFETIME,
        life,
        Duration::from_millis(500),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let (ok, failed, errors) = t.await.unwrap();
    assert_eq!(failed, 0, "failed requests: {errors:?}");
    assert!(ok > 50, "only {ok} requests");
    // Only the new anchor is trusted now, and the old PKI is refused.
    assert_eq!(
        fe.bundle().anchors(),
        std::slice::from_ref(&new_anchor.ca.cert_pem)
    );
    let old = pki.identity(&id("production", "frontend"), WORKLOAD_LIFETIME);
    assert!(request(&old, gw.addr, b"x").await.is_err());
    gw.shutdown().await;
}

/// A server that answers every connection with its own tag, then echoes.
async fn tagged(tag: &'static [u8]) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let _ = s.write_all(tag).await;
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_transport_header_picks_the_target_and_unknown_destinations_are_closed() {
    let pki = Pki::new();
    let gw_id = pki.identity(
        &id("linkerd-multicluster", "linkerd-gateway"),
        WORKLOAD_LIFETIME,
    );
    let client = pki.identity(&id("shop", "checkout"), WORKLOAD_LIFETIME);
    let (orders, users) = (tagged(b"orders").await, tagged(b"users!").await);
    let routes = [
        ("orders.shop.svc.cluster.local:8080".to_string(), orders),
        ("users.shop.svc.cluster.local:9000".to_string(), users),
    ];
    let gw = gateway::start(
        gw_id,
        GatewayConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            target: "127.0.0.1:9".parse().unwrap(),
            routes: routes.into_iter().collect(),
            probe: None,
            authz: Authorization {
                default: mcnet_mesh::tls::DefaultPolicy::AllAuthenticated,
                ..Authorization::default()
            },
            handshake_timeout: Duration::from_secs(2),
        },
    )
    .await
    .unwrap();
    let to = |name: &str, port| gateway::TransportHeader {
        port,
        name: Some(name.to_string()),
    };
    let t = Duration::from_secs(5);
    for (dst, tag) in [
        (to("orders.shop.svc.cluster.local", 8080), b"orders"),
        (to("users.shop.svc.cluster.local", 9000), b"users!"),
    ] {
        let mut s = gateway::dial(&client, gw.addr, GATEWAY_ID, &dst, t)
            .await
            .unwrap();
        s.write_all(b"ping").await.unwrap();
        let mut got = [0u8; 10];
        s.read_exact(&mut got).await.unwrap();
        assert_eq!(&got[..6], tag, "{dst:?}");
        assert_eq!(&got[6..], b"ping");
    }
    // A name it does not export, and a right name on the wrong port.
    for dst in [
        to("payments.shop.svc.cluster.local", 8080),
        to("orders.shop.svc.cluster.local", 9000),
    ] {
        let mut s = gateway::dial(&client, gw.addr, GATEWAY_ID, &dst, t)
            .await
            .unwrap();
        let mut buf = [0u8; 1];
        let n = tokio::time::timeout(t, s.read(&mut buf)).await.unwrap();
        assert!(matches!(n, Ok(0) | Err(_)), "{dst:?} got an answer");
    }
    // No header at all: plain bytes after the handshake.
    let tcp = TcpStream::connect(gw.addr).await.unwrap();
    let mut s = client.connect(tcp, GATEWAY_ID).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: orders\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1];
    let n = tokio::time::timeout(t, s.read(&mut buf)).await.unwrap();
    assert!(matches!(n, Ok(0) | Err(_)));
    assert_eq!(gw.metrics.unroutable.load(Ordering::Relaxed), 3);
    assert!(gw
        .metrics
        .render()
        .contains("mcnet_gateway_unroutable_total 3"));
    gw.shutdown().await;
}
