//! The node's policy routing for the redirect: marked packets are
//! delivered to the local stack, where the proxy's listener takes them.

use mcnet_ebpf_common::{MARK_TO_PROXY, PROXY_ROUTE_TABLE};

use crate::{Error, Result};

/// Configures the node's policy routing so that packets the kernel marked
/// [`MARK_TO_PROXY`] are delivered locally (to the proxy) rather than
/// forwarded: `ip rule add pref 90 fwmark 0x4d/0xff lookup 100` and `ip
/// route replace local 0.0.0.0/0 dev lo table 100`, in the network
/// namespace at `netns` (the caller's when `None`). Idempotent.
pub fn install_routing(netns: Option<&std::path::Path>) -> Result<()> {
    let mut prefix: Vec<String> = Vec::new();
    if let Some(ns) = netns {
        // `ip -n` takes a name under /run/netns; other paths go through nsenter.
        match (ns.parent(), ns.file_name()) {
            (Some(dir), Some(name)) if dir == std::path::Path::new("/run/netns") => {
                prefix = vec!["-n".into(), name.to_string_lossy().into_owned()];
            }
            _ => {
                return crate::netns::run_in(ns, || install_routing(None)).map_err(|source| {
                    Error::Netns {
                        what: format!("entering {}", ns.display()),
                        source,
                    }
                })?;
            }
        }
    }
    let table = PROXY_ROUTE_TABLE.to_string();
    let mark = format!("{MARK_TO_PROXY:#x}/0xff");
    let ip = |args: &[&str]| -> Result<std::process::Output> {
        let mut all: Vec<&str> = prefix.iter().map(String::as_str).collect();
        all.extend_from_slice(args);
        let out = std::process::Command::new("ip")
            .args(&all)
            .output()
            .map_err(|source| Error::Spawn {
                command: format!("ip {}", all.join(" ")),
                source,
            })?;
        if out.status.success() {
            Ok(out)
        } else {
            Err(Error::Command {
                command: format!("ip {}", all.join(" ")),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            })
        }
    };
    let rules = ip(&["-4", "rule", "show", "pref", "90"])?;
    if !String::from_utf8_lossy(&rules.stdout).contains(&format!("lookup {table}")) {
        ip(&[
            "-4", "rule", "add", "pref", "90", "fwmark", &mark, "lookup", &table,
        ])?;
    }
    ip(&[
        "-4",
        "route",
        "replace",
        "local",
        "0.0.0.0/0",
        "dev",
        "lo",
        "table",
        &table,
    ])?;
    Ok(())
}
