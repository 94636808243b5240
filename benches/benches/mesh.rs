//! The cross-cluster gateway's cost on loopback, in one run, against plain
//! TCP straight to the target, against a plaintext relay (the gateway's copy
//! loop without TLS: what the extra hop alone costs) and against nginx doing
//! the same job (an mTLS stream proxy with `ssl_verify_client on`, the peer
//! to beat):
//!
//! - throughput of one connection (bulk bytes through an echo target);
//! - round-trip latency of small requests and responses on one connection
//!   (p50 and p99, and what the proxy adds to plain TCP);
//! - new connections per second, each with a full mTLS handshake and one
//!   round trip.
//!
//! The client always uses mcnet's mTLS connector (rustls), so the two proxies
//! see the same client. Without `--bench` (as `cargo test` runs it) it does
//! a short smoke run. nginx is skipped, with a note, when it is not installed.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mcnet_mesh::gateway::{self, GatewayConfig};
use mcnet_mesh::identity::{
    TrustAnchor, TrustBundle, WorkloadId, ANCHOR_LIFETIME, ISSUER_LIFETIME, WORKLOAD_LIFETIME,
};
use mcnet_mesh::store::{write_file, write_key};
use mcnet_mesh::tls::{Authorization, TlsIdentity};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const GATEWAY_ID: &str =
    "linkerd-gateway.linkerd-multicluster.serviceaccount.identity.linkerd.cluster.local";

#[derive(Clone, Copy, PartialEq)]
enum Path_ {
    Plain,
    Tls,
}

struct Figures {
    mbps: f64,
    p50_us: f64,
    p99_us: f64,
    handshakes: f64,
}

/// Serves every connection to a fresh loopback port with `handle`, each on a
/// task of its own, with Nagle off.
async fn serve<F, Fut>(handle: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else {
                continue;
            };
            let _ = s.set_nodelay(true);
            tokio::spawn(handle(s));
        }
    });
    a
}

async fn echo_server() -> SocketAddr {
    serve(|mut s| async move {
        let (mut r, mut w) = s.split();
        let _ = tokio::io::copy(&mut r, &mut w).await;
    })
    .await
}

/// A plaintext TCP relay to `target`, copying both ways as the gateway does
/// (one task, 256 KiB buffers) but without TLS: what any user-space proxy
/// costs on this machine, the ceiling for the gateway.
async fn plain_relay(target: SocketAddr) -> SocketAddr {
    serve(move |mut s| async move {
        let Ok(mut t) = TcpStream::connect(target).await else {
            return;
        };
        let _ = t.set_nodelay(true);
        let _ =
            tokio::io::copy_bidirectional_with_sizes(&mut s, &mut t, 256 << 10, 256 << 10).await;
    })
    .await
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

async fn open(addr: SocketAddr, how: Path_, client: &TlsIdentity) -> Box<dyn Stream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    // Close with a reset: tens of thousands of connections must not pile up
    // in TIME_WAIT and exhaust the ephemeral ports. (A zero linger never
    // blocks on drop, which is what the deprecation warns about.)
    #[allow(deprecated)]
    tcp.set_linger(Some(Duration::ZERO)).unwrap();
    match how {
        Path_::Plain => Box::new(tcp),
        Path_::Tls => Box::new(client.connect(tcp, GATEWAY_ID).await.unwrap()),
    }
}

async fn measure(addr: SocketAddr, how: Path_, client: &TlsIdentity, full: bool) -> Figures {
    // Throughput: one connection, a writer and a reader at once.
    let total: usize = if full { 64 << 20 } else { 4 << 20 };
    let s = open(addr, how, client).await;
    let (mut r, mut w) = tokio::io::split(s);
    let t0 = Instant::now();
    let writer = tokio::spawn(async move {
        let chunk = vec![7u8; 64 * 1024];
        let mut sent = 0;
        while sent < total {
            w.write_all(&chunk).await.unwrap();
            sent += chunk.len();
        }
        w.flush().await.unwrap();
        w
    });
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0;
    while got < total {
        let n = r.read(&mut buf).await.unwrap();
        assert!(n > 0, "the proxy closed early");
        got += n;
    }
    let secs = t0.elapsed().as_secs_f64();
    drop(writer.await.unwrap());
    let mbps = total as f64 / secs / 1e6;

    // Latency: small request, small response, one connection.
    let rounds = if full { 5_000 } else { 300 };
    let mut s = open(addr, how, client).await;
    let msg = [1u8; 64];
    let mut back = [0u8; 64];
    let mut lat = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        s.write_all(&msg).await.unwrap();
        s.flush().await.unwrap();
        s.read_exact(&mut back).await.unwrap();
        lat.push(t.elapsed().as_secs_f64() * 1e6);
    }
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];

    // New connections per second, each with one round trip.
    let window = Duration::from_secs_f64(if full { 1.0 } else { 0.3 });
    let t0 = Instant::now();
    let mut n = 0u64;
    while t0.elapsed() < window {
        let mut s = open(addr, how, client).await;
        s.write_all(b"x").await.unwrap();
        s.flush().await.unwrap();
        let mut one = [0u8; 1];
        s.read_exact(&mut one).await.unwrap();
        n += 1;
    }
    Figures {
        mbps,
        p50_us: pct(0.50),
        p99_us: pct(0.99),
        handshakes: n as f64 / t0.elapsed().as_secs_f64(),
    }
}

/// Each figure's median over the rounds.
fn median(runs: Vec<Figures>) -> Figures {
    let m = |f: fn(&Figures) -> f64| {
        let mut v: Vec<f64> = runs.iter().map(f).collect();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    Figures {
        mbps: m(|f| f.mbps),
        p50_us: m(|f| f.p50_us),
        p99_us: m(|f| f.p99_us),
        handshakes: m(|f| f.handshakes),
    }
}

struct Nginx(Child, PathBuf);
impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

/// nginx as an mTLS stream proxy to `target` with the gateway's certificate.
fn nginx(dir: &Path, target: SocketAddr) -> Option<(Nginx, SocketAddr)> {
    let bin = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| Path::new(p).exists())?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let module = ["/usr/lib/nginx/modules/ngx_stream_module.so"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .map(|p| format!("load_module {p};\n"))
        .unwrap_or_default();
    let d = dir.display();
    let conf = format!(
        "{module}daemon off;\nworker_processes 2;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
         events {{ worker_connections 4096; }}\n\
         stream {{\n  server {{\n    listen 127.0.0.1:{port} ssl;\n    ssl_protocols TLSv1.3;\n\
         ssl_certificate {d}/tls.crt;\n    ssl_certificate_key {d}/tls.key;\n    ssl_client_certificate {d}/ca.crt;\n\
         ssl_verify_client on;\n    ssl_verify_depth 3;\n    tcp_nodelay on;\n    proxy_pass {target};\n  }}\n}}\n"
    );
    std::fs::write(dir.join("nginx.conf"), conf).ok()?;
    let child = Command::new(bin)
        .args(["-p", &d.to_string(), "-c", &format!("{d}/nginx.conf")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let t0 = Instant::now();
    while std::net::TcpStream::connect(addr).is_err() {
        if t0.elapsed() > Duration::from_secs(10) {
            eprintln!("nginx did not start; see {d}/error.log");
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Some((Nginx(child, dir.to_path_buf()), addr))
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let td = "cluster.local";
    let anchor = TrustAnchor::generate(td, ANCHOR_LIFETIME).unwrap();
    let issuer = anchor.issue_issuer(td, ISSUER_LIFETIME).unwrap();
    let bundle = TrustBundle::new(&anchor.ca.cert_pem);
    let gw_cert = issuer
        .issue(
            &WorkloadId::new("linkerd-multicluster", "linkerd-gateway", td).unwrap(),
            WORKLOAD_LIFETIME,
        )
        .unwrap();
    let fe_cert = issuer
        .issue(
            &WorkloadId::new("production", "frontend", td).unwrap(),
            WORKLOAD_LIFETIME,
        )
        .unwrap();
    let frontend = fe_cert.id.linkerd_name();

    // The target and the proxies run on their own 2-thread runtime; the
    // client on a single thread of its own, the same for every path.
    let servers = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let target = servers.block_on(echo_server());
    let relay = servers.block_on(plain_relay(target));
    let gw = servers
        .block_on(gateway::start(
            TlsIdentity::new(gw_cert.clone(), bundle.clone()).unwrap(),
            GatewayConfig {
                listen: "127.0.0.1:0".parse().unwrap(),
                target,
                routes: Default::default(),
                probe: None,
                authz: Authorization::allow_only(vec![frontend]),
                handshake_timeout: Duration::from_secs(10),
            },
        ))
        .unwrap();
    let dir = std::env::temp_dir().join(format!("mcnet-bench-nginx-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    write_file(&dir.join("tls.crt"), gw_cert.chain_pem.as_bytes(), 0o644).unwrap();
    write_key(&dir.join("tls.key"), &gw_cert.key).unwrap();
    write_file(&dir.join("ca.crt"), anchor.ca.cert_pem.as_bytes(), 0o644).unwrap();
    let ngx = nginx(&dir, target);

    let client = TlsIdentity::new(fe_cert, bundle).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Interleaved rounds, so that drift on a shared machine hits every path
    // alike; each figure is the median over the rounds.
    let rounds = if full { 5 } else { 1 };
    let (mut plain, mut relayed, mut ours, mut theirs) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        plain.push(rt.block_on(measure(target, Path_::Plain, &client, full)));
        relayed.push(rt.block_on(measure(relay, Path_::Plain, &client, full)));
        ours.push(rt.block_on(measure(gw.addr, Path_::Tls, &client, full)));
        if let Some((_, addr)) = &ngx {
            theirs.push(rt.block_on(measure(*addr, Path_::Tls, &client, full)));
        }
    }
    let plain = median(plain);
    let relayed = median(relayed);
    let ours = median(ours);
    let theirs = (!theirs.is_empty()).then(|| median(theirs));

    println!(
        "\nmTLS gateway on loopback (median of {rounds} interleaved round(s) in one run{}):",
        if full { "" } else { ", smoke sizes" }
    );
    println!(
        "  {:<22} {:>12} {:>10} {:>10} {:>16}",
        "path", "MB/s", "p50 µs", "p99 µs", "handshakes/s"
    );
    let row = |name: &str, f: &Figures| {
        println!(
            "  {name:<22} {:>12.0} {:>10.1} {:>10.1} {:>16.0}",
            f.mbps, f.p50_us, f.p99_us, f.handshakes
        )
    };
    row("plain TCP (baseline)", &plain);
    row("plaintext relay", &relayed);
    row("mcnet gateway", &ours);
    if let Some(t) = &theirs {
        row("nginx mTLS stream", t);
    }
    println!(
        "  mcnet: throughput {:.2}x plain (target ≥ 0.70), adds p50 {:+.1} µs and p99 {:+.1} µs (target p99 ≤ +200 µs)",
        ours.mbps / plain.mbps,
        ours.p50_us - plain.p50_us,
        ours.p99_us - plain.p99_us
    );
    println!(
        "  plaintext relay (no TLS, the same copy loop): throughput {:.2}x plain, the ceiling for any user-space proxy here; the gateway reaches {:.2}x of it",
        relayed.mbps / plain.mbps,
        ours.mbps / relayed.mbps
    );
    match &theirs {
        Some(t) => {
            println!(
                "  nginx: throughput {:.2}x plain, adds p50 {:+.1} µs and p99 {:+.1} µs",
                t.mbps / plain.mbps,
                t.p50_us - plain.p50_us,
                t.p99_us - plain.p99_us
            );
            println!(
                "  mcnet / nginx: throughput {:.2}x, handshakes/s {:.2}x, p99 {:.2}x (lower is better)",
                ours.mbps / t.mbps,
                ours.handshakes / t.handshakes,
                ours.p99_us / t.p99_us
            );
        }
        None => println!("  nginx not installed: no comparison (scripts/setup.sh installs nginx-light and its stream module)"),
    }
    drop(ngx);
    servers.block_on(gw.shutdown());
}
