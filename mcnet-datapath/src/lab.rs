//! A network-namespace lab: each "pod" is a namespace with a veth pair into
//! a "node" namespace that routes between them. Addresses come from
//! 198.18.0.0/15; no namespace has a route out, so no packet leaves the
//! lab. Dropping the lab (also on panic) deletes every namespace it made,
//! and with them their interfaces.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::netns;
use crate::{Error, Result};

/// The gateway address every pod routes through (owned by the node namespace).
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);

/// A pod of the lab.
#[derive(Clone, Debug)]
pub struct LabPod {
    /// `namespace/name` in the manifests.
    pub key: String,
    /// Its network namespace.
    pub netns: String,
    /// Its address.
    pub ip: Ipv4Addr,
    /// The host-side interface in the node namespace.
    pub host_iface: String,
}

/// A lab; dropping it tears it down.
#[derive(Debug)]
pub struct Lab {
    /// The node namespace.
    pub node: String,
    /// The pods.
    pub pods: Vec<LabPod>,
    created: Vec<String>,
}

/// Runs a command, failing with what it printed.
pub(crate) fn run(program: &str, args: &[&str]) -> Result<std::process::Output> {
    let command = || format!("{program} {}", args.join(" "));
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|source| Error::Spawn {
            command: command(),
            source,
        })?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(Error::Command {
            command: command(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

fn ip(args: &[&str]) -> Result<()> {
    run("ip", args).map(|_| ())
}

impl Lab {
    /// Builds a lab with a node namespace and one namespace per pod, each
    /// pod with its address (which must lie in 198.18.0.0/15, and must not
    /// be the gateway). `prefix` keeps concurrent labs apart (at most 6
    /// characters).
    pub fn new(prefix: &str, pods: &[(&str, Ipv4Addr)]) -> Result<Lab> {
        let valid = !prefix.is_empty()
            && prefix.len() <= 6
            && prefix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !valid {
            return Err(Error::InvalidLab {
                field: "prefix".into(),
                value: prefix.into(),
                reason: "must be 1–6 lower-case letters or digits",
            });
        }
        for (key, addr) in pods {
            let o = addr.octets();
            if o[0] != 198 || (o[1] & 0xfe) != 18 || *addr == GATEWAY {
                return Err(Error::InvalidLab {
                    field: format!("pod {key} address"),
                    value: addr.to_string(),
                    reason: "must lie in 198.18.0.0/15 and not be the gateway",
                });
            }
        }
        let node = format!("{prefix}-node");
        let mut lab = Lab {
            node: node.clone(),
            pods: Vec::new(),
            created: Vec::new(),
        };
        ip(&["netns", "add", &node])?;
        lab.created.push(node.clone());
        ip(&["-n", &node, "link", "set", "lo", "up"])?;
        let sysctl = |k: &str, v: &str| -> Result<()> {
            ip(&["netns", "exec", &node, "sysctl", "-qw", &format!("{k}={v}")])
        };
        sysctl("net.ipv4.ip_forward", "1")?;
        for (i, (key, addr)) in pods.iter().enumerate() {
            let netns = format!("{prefix}-p{i}");
            let host = format!("{prefix}h{i}");
            ip(&["netns", "add", &netns])?;
            lab.created.push(netns.clone());
            ip(&[
                "-n", &node, "link", "add", &host, "type", "veth", "peer", "name", "eth0", "netns",
                &netns,
            ])?;
            ip(&[
                "-n",
                &node,
                "addr",
                "add",
                &format!("{GATEWAY}/32"),
                "dev",
                &host,
            ])?;
            ip(&["-n", &node, "link", "set", &host, "up"])?;
            ip(&[
                "-n",
                &node,
                "route",
                "add",
                &format!("{addr}/32"),
                "dev",
                &host,
            ])?;
            ip(&["-n", &netns, "link", "set", "lo", "up"])?;
            ip(&[
                "-n",
                &netns,
                "addr",
                "add",
                &format!("{addr}/32"),
                "dev",
                "eth0",
            ])?;
            ip(&["-n", &netns, "link", "set", "eth0", "up"])?;
            ip(&[
                "-n",
                &netns,
                "route",
                "add",
                &format!("{GATEWAY}/32"),
                "dev",
                "eth0",
            ])?;
            ip(&[
                "-n",
                &netns,
                "route",
                "add",
                "198.18.0.0/15",
                "via",
                &GATEWAY.to_string(),
                "dev",
                "eth0",
            ])?;
            lab.pods.push(LabPod {
                key: key.to_string(),
                netns,
                ip: *addr,
                host_iface: host,
            });
        }
        Ok(lab)
    }

    /// Builds a lab of every pod of an inventory that has an IPv4 address.
    pub fn for_inventory(
        prefix: &str,
        inventory: &mcnet_core::policy::model::Inventory,
    ) -> Result<Lab> {
        let pods: Vec<(String, Ipv4Addr)> = inventory
            .pods
            .iter()
            .filter_map(|p| match p.ips.first() {
                Some(std::net::IpAddr::V4(a)) => Some((p.key(), *a)),
                _ => None,
            })
            .collect();
        let refs: Vec<(&str, Ipv4Addr)> = pods.iter().map(|(k, a)| (k.as_str(), *a)).collect();
        Lab::new(prefix, &refs)
    }

    /// Keeps the namespaces after the lab is dropped (`mcnet datapath lab up`);
    /// [`Lab::destroy`] removes them later.
    pub fn persist(mut self) -> Vec<String> {
        std::mem::take(&mut self.created)
    }

    /// Deletes every namespace whose name starts with `prefix-`.
    pub fn destroy(prefix: &str) -> Result<Vec<String>> {
        let out = run("ip", &["netns", "list"])?;
        let mut gone = Vec::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let name = line.split_whitespace().next().unwrap_or("");
            if name.starts_with(&format!("{prefix}-")) {
                ip(&["netns", "del", name])?;
                gone.push(name.to_string());
            }
        }
        Ok(gone)
    }

    /// A pod by `namespace/name`.
    pub fn pod(&self, key: &str) -> Option<&LabPod> {
        self.pods.iter().find(|p| p.key == key)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in self.created.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

// ---- traffic helpers for tests, benchmarks and demos ----

/// Serves TCP and UDP echo on `port` inside pod namespace `ns`, until `stop`.
///
/// # Panics
/// When the namespace or the port cannot be used (a test setup error).
pub fn serve(ns: &str, port: u16, stop: Arc<AtomicBool>) {
    let path = netns::named(ns);
    let (tcp, udp) = netns::run_in(&path, || {
        let t = TcpListener::bind(("0.0.0.0", port)).unwrap();
        let u = UdpSocket::bind(("0.0.0.0", port)).unwrap();
        (t, u)
    })
    .unwrap();
    let s1 = stop.clone();
    std::thread::spawn(move || {
        tcp.set_nonblocking(true).unwrap();
        while !s1.load(Ordering::Relaxed) {
            match tcp.accept() {
                Ok((mut c, _)) => {
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 64];
                        c.set_read_timeout(Some(Duration::from_secs(10))).ok();
                        while let Ok(n) = c.read(&mut buf) {
                            if n == 0 || c.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                    });
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    std::thread::spawn(move || {
        udp.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let mut buf = [0u8; 64];
        while !stop.load(Ordering::Relaxed) {
            if let Ok((n, from)) = udp.recv_from(&mut buf) {
                let _ = udp.send_to(&buf[..n], from);
            }
        }
    });
}

/// Whether a TCP echo round trip from pod namespace `ns` to `dst:port` succeeds.
pub fn tcp_ok(ns: &str, dst: Ipv4Addr, port: u16) -> bool {
    netns::run_in(&netns::named(ns), || {
        let Ok(mut s) =
            TcpStream::connect_timeout(&SocketAddr::from((dst, port)), Duration::from_millis(400))
        else {
            return false;
        };
        s.set_read_timeout(Some(Duration::from_millis(400))).ok();
        let mut buf = [0u8; 4];
        s.write_all(b"ping").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"ping"
    })
    .unwrap_or(false)
}

/// Whether a UDP echo round trip from pod namespace `ns` to `dst:port` succeeds.
pub fn udp_ok(ns: &str, dst: Ipv4Addr, port: u16) -> bool {
    netns::run_in(&netns::named(ns), || {
        let s = UdpSocket::bind("0.0.0.0:0").unwrap();
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut buf = [0u8; 4];
        for _ in 0..2 {
            if s.send_to(b"ping", (dst, port)).is_ok() && s.recv_from(&mut buf).is_ok() {
                return true;
            }
        }
        false
    })
    .unwrap_or(false)
}

/// A small HTTP/1.1 server in a pod namespace that answers every request
/// `200 OK` with `METHOD PATH` (and ` BODY` when the request had one) and
/// logs `METHOD PATH` of what it served: the pod's own record of what
/// reached it. Stops when dropped.
pub struct HttpServer {
    log: Arc<std::sync::Mutex<Vec<String>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for HttpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpServer").finish_non_exhaustive()
    }
}

impl HttpServer {
    /// Serves on `0.0.0.0:port` inside namespace `ns` (a name under /run/netns).
    pub fn start(ns: &str, port: u16) -> Result<HttpServer> {
        use hyper::service::service_fn;
        use hyper_util::rt::TokioIo;

        let path = netns::named(ns);
        let listener = netns::run_in(&path, || std::net::TcpListener::bind(("0.0.0.0", port)))
            .and_then(|r| r)
            .map_err(|source| Error::Netns {
                what: format!("serving HTTP on port {port} in {ns}"),
                source,
            })?;
        listener.set_nonblocking(true).map_err(|source| Error::Io {
            what: "HTTP server listener".into(),
            source,
        })?;
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let served = log.clone();
        let thread = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                let accept = async {
                    while let Ok((stream, _)) = listener.accept().await {
                        let served = served.clone();
                        tokio::spawn(async move {
                            let service =
                                service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                                    let line = format!(
                                        "{} {}",
                                        req.method(),
                                        req.uri().path_and_query().map_or("/", |p| p.as_str())
                                    );
                                    if let Ok(mut l) = served.lock() {
                                        l.push(line.clone());
                                    }
                                    async move {
                                        use http_body_util::BodyExt;
                                        let body = req
                                            .into_body()
                                            .collect()
                                            .await
                                            .map(|b| b.to_bytes())
                                            .unwrap_or_default();
                                        let text = if body.is_empty() {
                                            line + "\n"
                                        } else {
                                            format!("{line} {}\n", String::from_utf8_lossy(&body))
                                        };
                                        Ok::<_, std::convert::Infallible>(hyper::Response::new(
                                            http_body_util::Full::new(bytes::Bytes::from(text)),
                                        ))
                                    }
                                });
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        });
                    }
                };
                tokio::select! {
                    _ = rx => {}
                    _ = accept => {}
                }
            });
        });
        Ok(HttpServer {
            log,
            stop: Some(tx),
            thread: Some(thread),
        })
    }

    /// `METHOD PATH` of every request served so far, in order.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One HTTP request for [`http_requests`].
#[derive(Clone, Copy, Debug)]
pub struct Call<'a> {
    /// Method.
    pub method: &'a str,
    /// Path and query.
    pub path: &'a str,
    /// Extra headers (`Host` is always sent).
    pub headers: &'a [(&'a str, &'a str)],
}

impl<'a> Call<'a> {
    /// A request without extra headers.
    pub const fn new(method: &'a str, path: &'a str) -> Call<'a> {
        Call {
            method,
            path,
            headers: &[],
        }
    }
}

/// Sends `requests` from pod namespace `ns` to `dst:port` on one
/// keep-alive HTTP/1.1 connection, and returns each status with its body.
/// Stops at the first request that gets no response (the connection
/// refused or reset); an error when none could be sent.
pub fn http_requests(
    ns: &str,
    dst: Ipv4Addr,
    port: u16,
    requests: &[Call<'_>],
) -> std::io::Result<Vec<(u16, String)>> {
    use http_body_util::BodyExt;
    use hyper_util::rt::TokioIo;

    let path = netns::named(ns);
    netns::run_in(&path, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async {
            let stream = tokio::time::timeout(
                Duration::from_secs(2),
                tokio::net::TcpStream::connect((dst, port)),
            )
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(std::io::Error::other)?;
            tokio::spawn(conn);
            let mut out = Vec::new();
            for call in requests {
                let (method, p) = (call.method, call.path);
                let mut req = hyper::Request::builder()
                    .method(method)
                    .uri(p)
                    .header(hyper::header::HOST, format!("{dst}:{port}"));
                for (k, v) in call.headers {
                    req = req.header(*k, *v);
                }
                let req = req
                    .body(http_body_util::Empty::<bytes::Bytes>::new())
                    .map_err(std::io::Error::other)?;
                let sent = tokio::time::timeout(Duration::from_secs(5), async {
                    sender.ready().await?;
                    let resp = sender.send_request(req).await?;
                    let status = resp.status().as_u16();
                    let body = resp.into_body().collect().await?.to_bytes();
                    Ok::<_, hyper::Error>((status, String::from_utf8_lossy(&body).into_owned()))
                })
                .await;
                match sent {
                    Ok(Ok(r)) => out.push(r),
                    _ if out.is_empty() => {
                        return Err(std::io::Error::other(format!("{method} {p}: no response")))
                    }
                    _ => break,
                }
            }
            Ok(out)
        })
    })?
}
