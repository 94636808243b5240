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

/// Reads from `s` until the other side closes (at most 10 s): what came,
/// and how long after `t0` it closed.
fn closes_after(s: &mut TcpStream, t0: std::time::Instant) -> (Vec<u8>, Duration) {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("still open after {:?}: {e}", t0.elapsed()),
        }
    }
    (got, t0.elapsed())
}

/// `--handshake-timeout` and `--probe-read-timeout`: a connection to the
/// mTLS listener that sends nothing, and one to the probe that sends
/// nothing or half a request, are closed after their timeout (the probe's
/// without an answer), and the first is counted as a `timeout` handshake
/// failure. Bad values exit 2 naming the flag.
#[test]
fn the_gateway_closes_idle_connections_after_its_timeouts() {
    let d = TempDir::new("gw-idle");
    ok(&["mesh", "ca", "init", "--dir", &d.path("ca")]);
    issue(&d, "ca", "linkerd-multicluster", "linkerd-gateway", "gw");
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
                "--probe",
                &format!("127.0.0.1:{probe}"),
                "--handshake-timeout",
                "500ms",
                "--probe-read-timeout",
                "500ms",
            ]);
            cmd
        },
        |[port, probe]| listening(port) && listening(probe),
    );
    let t0 = std::time::Instant::now();
    let mut tls_idle = TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
    let mut probe_idle = TcpStream::connect(format!("127.0.0.1:{probe}")).unwrap();
    let mut probe_half = TcpStream::connect(format!("127.0.0.1:{probe}")).unwrap();
    probe_half
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    for (what, s) in [
        ("mTLS listener", &mut tls_idle),
        ("idle probe connection", &mut probe_idle),
        ("half a probe request", &mut probe_half),
    ] {
        let (got, after) = closes_after(s, t0);
        assert!(
            after >= Duration::from_millis(450) && after < Duration::from_secs(5),
            "{what}: closed after {after:?}"
        );
        assert!(got.is_empty(), "{what}: {}", String::from_utf8_lossy(&got));
    }

    let mut s = TcpStream::connect(format!("127.0.0.1:{probe}")).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (metrics, _) = closes_after(&mut s, std::time::Instant::now());
    let metrics = String::from_utf8(metrics).unwrap();
    assert!(
        metrics.contains("mcnet_gateway_handshake_failures_total{reason=\"timeout\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("mcnet_gateway_refused_connections_total 0"),
        "{metrics}"
    );
    promtool_accepts(metrics.split_once("\r\n\r\n").map_or("", |x| x.1));

    for (flag, value) in [
        ("--handshake-timeout", "0s"),
        ("--probe-read-timeout", "2h"),
        ("--max-handshakes", "0"),
    ] {
        let (code, _, err) = mcnet(&[
            "mesh",
            "gateway",
            "--listen",
            "127.0.0.1:0",
            "--target",
            "127.0.0.1:9",
            "--identity",
            &d.path("gw"),
            flag,
            value,
        ]);
        assert_eq!(code, 2, "{flag} {value}: {err}");
        assert!(err.contains(flag), "{flag} {value}: {err}");
    }
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

/// `mcnet mesh cert issue` with `--lifetime lifetime`: (exit code, stderr).
fn issue_for(d: &TempDir, lifetime: &str) -> (i32, String) {
    let (code, _, err) = mcnet(&[
        "mesh",
        "cert",
        "issue",
        "--ca",
        &d.path("ca"),
        "--namespace",
        "production",
        "--service-account",
        "frontend",
        "--out",
        &d.path("out"),
        "--lifetime",
        lifetime,
    ]);
    (code, err)
}

#[test]
fn lifetimes_out_of_range_are_refused_naming_the_flag_and_the_maximum() {
    let d = TempDir::new("lifetime");
    ok(&["mesh", "ca", "init", "--dir", &d.path("ca")]);
    for too_long in [
        "18446744073709551615s",       // panicked: SystemTime overflow
        "213503982334602d",            // wrapped around to a 17-hour certificate
        "36501d",                      // just past the maximum
        "99999999999999999999999999d", // not even a u64
        "1537314974269h",
    ] {
        let (code, err) = issue_for(&d, too_long);
        assert_eq!(code, 2, "--lifetime {too_long}: {err}");
        assert!(err.contains("--lifetime"), "{too_long}: {err}");
        assert!(err.contains("36500d"), "{too_long}: {err}");
        assert!(!err.contains("panicked"), "{too_long}: {err}");
        assert!(!Path::new(&d.path("out/tls.crt")).exists(), "{too_long}");
    }
    for too_long in ["18446744073709551615s", "36501d"] {
        for (cmd, flag) in [
            (vec!["ca", "init", "--dir"], "--issuer-lifetime"),
            (
                vec!["ca", "issuer", "--ca", &d.path("ca"), "--out"],
                "--issuer-lifetime",
            ),
        ] {
            let out = d.path("other");
            let mut args = vec!["mesh"];
            args.extend(cmd.iter().copied());
            args.extend([out.as_str(), flag, too_long]);
            let (code, _, err) = mcnet(&args);
            assert_eq!(code, 2, "{args:?}: {err}");
            assert!(err.contains(flag) && err.contains("36500d"), "{err}");
        }
    }
    // The maximum itself works, and is what the certificate says.
    let (code, err) = issue_for(&d, "36500d");
    assert_eq!(code, 0, "{err}");
    let (_, text) = openssl(&["x509", "-in", &d.path("out/tls.crt"), "-noout", "-enddate"]);
    let year: i32 = text
        .split_whitespace()
        .find_map(|w| w.parse().ok().filter(|y| *y > 2000))
        .unwrap_or_else(|| panic!("no year in {text}"));
    let now: i32 = {
        let (_, date) = openssl(&["x509", "-in", &d.path("ca/ca.crt"), "-noout", "-startdate"]);
        date.split_whitespace()
            .find_map(|w| w.parse().ok().filter(|y| *y > 2000))
            .unwrap()
    };
    assert!((99..=100).contains(&(year - now)), "{text}");
}

#[test]
fn directories_the_cli_creates_are_0700() {
    let d = TempDir::new("dirmode");
    ok(&["mesh", "ca", "init", "--dir", &d.path("new/ca")]);
    assert_eq!(mode(&d.path("new")), 0o700);
    assert_eq!(mode(&d.path("new/ca")), 0o700);
    assert_eq!(mode(&d.path("new/ca/ca.key")), 0o600);
    assert_eq!(mode(&d.path("new/ca/issuer.key")), 0o600);
    issue(&d, "new/ca", "production", "frontend", "certs/fe");
    assert_eq!(mode(&d.path("certs")), 0o700);
    assert_eq!(mode(&d.path("certs/fe")), 0o700);
    assert_eq!(mode(&d.path("certs/fe/tls.key")), 0o600);
    ok(&[
        "mesh",
        "ca",
        "issuer",
        "--ca",
        &d.path("new/ca"),
        "--out",
        &d.path("west/ca"),
    ]);
    assert_eq!(mode(&d.path("west/ca")), 0o700);
    assert_eq!(mode(&d.path("west/ca/issuer.key")), 0o600);
}

/// The gateway's stderr so far (`start_server` logs it to a file named
/// after this process, the server and its first port).
fn gateway_log(what: &str, port: u16) -> String {
    (0..3)
        .rev()
        .map(|attempt| {
            std::env::temp_dir().join(format!(
                "mcnet-cli-{}-{what}-{port}-{attempt}.stderr",
                std::process::id()
            ))
        })
        .find(|p| p.exists())
        .map(|p| std::fs::read_to_string(p).unwrap_or_default())
        .unwrap_or_default()
}

/// Waits (at most 10 s) until the gateway's log says `what` `n` times.
fn wait_log(server: &str, port: u16, what: &str, n: usize) -> String {
    let t0 = std::time::Instant::now();
    loop {
        let log = gateway_log(server, port);
        if log.matches(what).count() >= n {
            return log;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "no `{what}` in {log}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_gateway_reload_swaps_bundle_certificate_and_key_together_or_not_at_all() {
    let d = TempDir::new("reload");
    ok(&["mesh", "ca", "init", "--dir", &d.path("ca")]);
    issue(&d, "ca", "linkerd-multicluster", "linkerd-gateway", "gw");
    issue(&d, "ca", "production", "frontend", "fe");
    ok(&["mesh", "ca", "init", "--dir", &d.path("next-ca")]);
    issue(
        &d,
        "next-ca",
        "linkerd-multicluster",
        "linkerd-gateway",
        "next-gw",
    );
    issue(&d, "next-ca", "production", "frontend", "next-fe");

    let target = echo();
    const SERVER: &str = "mesh gateway reload";
    let (_gw, [port]) = start_server(
        SERVER,
        |[port]| {
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
            ]);
            cmd
        },
        |[port]| listening(port),
    );
    let listen = format!("127.0.0.1:{port}");
    let (out, err) = s_client(&listen, &d.0.join("fe"), GATEWAY_ID, "before\n");
    assert!(out.contains("before"), "{out} {err}");

    // A new trust bundle with a key that does not match tls.crt: refused
    // as a whole. The old bundle stays in force (the old client still gets
    // in), not just the old certificate.
    std::fs::copy(d.path("next-ca/ca.crt"), d.path("gw/ca.crt")).unwrap();
    std::fs::copy(d.path("next-gw/tls.key"), d.path("gw/tls.key")).unwrap();
    let log = wait_log(
        SERVER,
        port,
        "identity reload failed (keeping the old one)",
        1,
    );
    assert!(!log.contains("identity reloaded"), "{log}");
    std::thread::sleep(Duration::from_millis(1200)); // later polls change nothing
    let (out, err) = s_client(&listen, &d.0.join("fe"), GATEWAY_ID, "still trusted\n");
    assert!(
        out.contains("still trusted"),
        "{out} {err}\n{}",
        gateway_log(SERVER, port)
    );
    let (out, _) = s_client(&listen, &d.0.join("next-fe"), GATEWAY_ID, "too early\n");
    assert!(!out.contains("too early"), "{out}");

    // The matching certificate arrives: all three take effect together.
    std::fs::copy(d.path("next-gw/tls.crt"), d.path("gw/tls.crt")).unwrap();
    let log = wait_log(SERVER, port, "identity reloaded from", 1);
    assert!(log.contains(&d.path("gw")), "{log}");
    let (out, err) = s_client(&listen, &d.0.join("next-fe"), GATEWAY_ID, "after\n");
    assert!(out.contains("after"), "{out} {err}");
    let (out, _) = s_client(&listen, &d.0.join("fe"), GATEWAY_ID, "old anchor\n");
    assert!(!out.contains("old anchor"), "{out}");
}
