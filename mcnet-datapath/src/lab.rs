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
fn run(program: &str, args: &[&str]) -> Result<std::process::Output> {
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
