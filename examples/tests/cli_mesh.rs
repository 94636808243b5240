//! The `mcnet mesh` contracts, checked with OpenSSL, an independent TLS
//! implementation: our chain verifies, our gateway speaks mTLS to
//! `openssl s_client` and forwards to the target, and it refuses what it must.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

mod common;
use common::{listening, mcnet, promtool_accepts, start_server, TempDir};

const GATEWAY_ID: &str =
    "linkerd-gateway.linkerd-multicluster.serviceaccount.identity.linkerd.cluster.local";
const FRONTEND_ID: &str = "frontend.production.serviceaccount.identity.linkerd.cluster.local";

fn ok(args: &[&str]) {
    let (code, out, err) = mcnet(args);
    assert_eq!(code, 0, "mcnet {args:?}: {out} {err}");
}

fn openssl(args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// `mcnet mesh cert issue` from CA directory `ca` into `out`, both inside `d`.
fn issue(d: &TempDir, ca: &str, ns: &str, sa: &str, out: &str) {
    ok(&[
        "mesh",
        "cert",
        "issue",
        "--ca",
        &d.path(ca),
        "--namespace",
        ns,
        "--service-account",
        sa,
        "--out",
        &d.path(out),
    ]);
}

fn mode(p: &str) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn echo() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut s = s;
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 || s.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    a
}

/// `openssl s_client` with a client certificate: sends `msg`, returns what
/// came back within a few seconds.
fn s_client(gw: &str, cert_dir: &Path, verify_name: &str, msg: &str) -> (String, String) {
    let mut c = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            gw,
            "-quiet",
            "-verify_return_error",
            "-cert",
            &cert_dir.join("tls.crt").to_string_lossy(),
            // s_client sends only the leaf of -cert; the issuer goes with -cert_chain.
            "-cert_chain",
            &cert_dir.join("tls.crt").to_string_lossy(),
            "-key",
            &cert_dir.join("tls.key").to_string_lossy(),
            "-CAfile",
            &cert_dir.join("ca.crt").to_string_lossy(),
            "-servername",
            verify_name,
            "-verify_hostname",
            verify_name,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.as_mut().unwrap().write_all(msg.as_bytes()).unwrap();
    let mut stdout = c.stdout.take().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = seen.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 1024];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    // Until the echo comes back, s_client gives up (a refused handshake or
    // connection ends it), or 10 s pass on a loaded machine.
    let want = msg.trim().as_bytes().to_vec();
    let t0 = std::time::Instant::now();
    while t0.elapsed() < Duration::from_secs(10) {
        let echoed = seen.lock().unwrap().windows(want.len()).any(|w| w == want);
        if echoed || c.try_wait().ok().flatten().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = c.kill();
    let _ = c.wait();
    let _ = reader.join();
    let mut err = String::new();
    let _ = c.stderr.take().unwrap().read_to_string(&mut err);
    let out = String::from_utf8_lossy(&seen.lock().unwrap()).into_owned();
    (out, err)
}

#[test]
fn ca_and_certificates_verify_with_openssl() {
    let d = TempDir::new("ca");
    ok(&["mesh", "ca", "init", "--dir", &d.path("ca")]);
    for f in ["ca.crt", "issuer.crt", "issuer.key"] {
        assert!(Path::new(&d.path(&format!("ca/{f}"))).exists(), "{f}");
    }
    assert_eq!(mode(&d.path("ca/issuer.key")), 0o600);
    let (v, out) = openssl(&[
        "verify",
        "-CAfile",
        &d.path("ca/ca.crt"),
        &d.path("ca/issuer.crt"),
    ]);
    assert!(v, "{out}");

    issue(&d, "ca", "production", "frontend", "fe");
    assert_eq!(mode(&d.path("fe/tls.key")), 0o600);
    // tls.crt is the leaf followed by the issuer; openssl builds the chain to ca.crt.
    let (v, out) = openssl(&[
        "verify",
        "-CAfile",
        &d.path("fe/ca.crt"),
        "-untrusted",
        &d.path("fe/tls.crt"),
        &d.path("fe/tls.crt"),
    ]);
    assert!(v, "{out}");
    assert_eq!(
        std::fs::read_to_string(d.path("fe/tls.crt"))
            .unwrap()
            .matches("BEGIN CERTIFICATE")
            .count(),
        2
    );
    let (_, text) = openssl(&["x509", "-in", &d.path("fe/tls.crt"), "-noout", "-text"]);
    assert!(text.contains(&format!("DNS:{FRONTEND_ID}")), "{text}");
    assert!(
        text.contains("URI:spiffe://cluster.local/ns/production/sa/frontend"),
        "{text}"
    );
    assert!(text.contains("prime256v1"), "ECDSA P-256: {text}");
    assert!(
        text.contains("TLS Web Server Authentication")
            && text.contains("TLS Web Client Authentication")
    );
    // A chain from another anchor does not verify.
    ok(&["mesh", "ca", "init", "--dir", &d.path("other")]);
    let (v, _) = openssl(&[
        "verify",
        "-CAfile",
        &d.path("other/ca.crt"),
        "-untrusted",
        &d.path("fe/tls.crt"),
        &d.path("fe/tls.crt"),
    ]);
    assert!(!v);
    // Bad input names the field.
    let (code, _, err) = mcnet(&[
        "mesh",
        "cert",
        "issue",
        "--ca",
        &d.path("ca"),
        "--namespace",
        "Prod",
        "--service-account",
        "x",
        "--out",
        &d.path("bad"),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("namespace `Prod`"), "{err}");
}

#[test]
fn the_gateway_speaks_mtls_to_openssl_and_refuses_others() {
    let d = TempDir::new("gw");
    ok(&["mesh", "ca", "init", "--dir", &d.path("ca")]);
    let ours = |ns: &str, sa: &str, out: &str| issue(&d, "ca", ns, sa, out);
    ours("linkerd-multicluster", "linkerd-gateway", "gw");
    ours("production", "frontend", "fe");
    ours("production", "attacker", "bad");
    ok(&["mesh", "ca", "init", "--dir", &d.path("rogue-ca")]);
    issue(&d, "rogue-ca", "production", "frontend", "rogue");
    // The rogue client trusts our anchor (so that only the gateway's check fails).
    std::fs::copy(d.path("ca/ca.crt"), d.path("rogue/ca.crt")).unwrap();

    let target = echo();
    let (_gw, [port, probe]) = start_server(
        "mesh gateway",
        |[port, probe]| {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_mcnet"));
            cmd.args([
                "mesh",
                "gateway",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--target",
                &target.to_string(),
                "--identity",
                &d.path("gw"),
                "--allow",
                FRONTEND_ID,
                "--probe",
                &format!("127.0.0.1:{probe}"),
            ]);
            cmd
        },
        |[port, probe]| listening(port) && listening(probe),
    );
    let listen = format!("127.0.0.1:{port}");

    let (out, err) = s_client(
        &listen,
        &d.0.join("fe"),
        GATEWAY_ID,
        "hello through the gateway\n",
    );
    assert!(
        out.contains("hello through the gateway"),
        "stdout {out:?} stderr {err}"
    );
    assert!(!err.contains("verify error"), "{err}");

    // openssl refuses the gateway under another name.
    let (out, err) = s_client(&listen, &d.0.join("fe"), FRONTEND_ID, "x\n");
    assert!(!out.contains('x'), "{out}");
    assert!(err.contains("verify") || err.contains("hostname"), "{err}");

    // The gateway refuses an identity it does not allow, and a foreign anchor.
    let (out, _) = s_client(&listen, &d.0.join("bad"), GATEWAY_ID, "sneaky\n");
    assert!(!out.contains("sneaky"), "{out}");
    let (out, _) = s_client(&listen, &d.0.join("rogue"), GATEWAY_ID, "rogue\n");
    assert!(!out.contains("rogue"), "{out}");

    let mut s = TcpStream::connect(format!("127.0.0.1:{probe}")).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut metrics = String::new();
    s.read_to_string(&mut metrics).unwrap();
    assert!(
        metrics.contains("mcnet_gateway_authz_denials_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("mcnet_gateway_handshake_failures_total{reason=\"untrusted\"} 1"),
        "{metrics}"
    );
    promtool_accepts(metrics.split_once("\r\n\r\n").map_or("", |x| x.1));
}

#[test]
fn check_tells_a_shared_root_from_a_foreign_one() {
    let d = TempDir::new("check");
    ok(&["mesh", "ca", "init", "--dir", &d.path("east")]);
    ok(&[
        "mesh",
        "ca",
        "issuer",
        "--ca",
        &d.path("east"),
        "--out",
        &d.path("west"),
    ]);
    ok(&["mesh", "ca", "init", "--dir", &d.path("foreign")]);
    let (code, out, err) = mcnet(&[
        "mesh",
        "check",
        &d.path("east"),
        &d.path("west"),
        "-O",
        "json",
    ]);
    assert_eq!(code, 0, "{out} {err}");
    assert!(out.contains("\"ok\": true"), "{out}");
    let (code, out, _) = mcnet(&["mesh", "check", &d.path("east"), &d.path("foreign")]);
    assert_eq!(code, 1);
    assert!(out.contains("[error] trust-root"), "{out}");
}

#[test]
fn apply_prints_the_multicluster_manifests_without_a_kubeconfig() {
    let topo = concat!(env!("CARGO_MANIFEST_DIR"), "/topologies/adr-003.yaml");
    let out = Command::new(env!("CARGO_BIN_EXE_mcnet"))
        .args(["mesh", "apply", topo, "--cluster", "eks-prod"])
        .env_remove("KUBECONFIG")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let docs: Vec<serde_json::Value> = text
        .split("\n---\n")
        .filter_map(|d| serde_yaml::from_str(d.trim_start_matches("---\n")).ok())
        .filter(|v: &serde_json::Value| v.is_object())
        .collect();
    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "Link").count(),
        2,
        "{kinds:?}"
    );
    for k in [
        "Service",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Secret",
    ] {
        assert!(kinds.contains(&k), "{k} missing: {kinds:?}");
    }
    let link = docs.iter().find(|d| d["kind"] == "Link").unwrap();
    assert_eq!(link["apiVersion"], "multicluster.linkerd.io/v1alpha3");
    assert_eq!(link["spec"]["gatewayPort"], "4143");
}
