//! Attaching the classifiers to interfaces (TCX, or clsact where TCX is
//! missing), inside network namespaces too, and detaching them.

use super::*;

/// A program attached to a hook: owned by this process, or pinned in the
/// bpffs so that it outlives the process (and a restarted agent takes over).
pub(crate) enum AttachedLink {
    Owned(&'static str, SchedClassifierLinkId),
    Pinned(aya::programs::links::PinnedLink),
}

pub(crate) struct Attachment {
    netns: Option<PathBuf>,
    iface: String,
    links: Vec<AttachedLink>,
}

impl Datapath {
    /// The interfaces attached to, in order.
    pub fn attached(&self) -> Vec<String> {
        self.attachments.iter().map(|a| a.iface.clone()).collect()
    }

    pub(crate) fn attach_here(&mut self, iface: &str) -> Result<Vec<AttachedLink>> {
        use aya::programs::links::{FdLink, PinnedLink};
        // The clsact qdisc matters only where TCX is missing; it may exist already.
        let _ = tc::qdisc_add_clsact(iface);
        let mut links = Vec::new();
        for (name, hook, tag) in [
            (FROM_POD, TcAttachType::Ingress, "ingress"),
            (TO_POD, TcAttachType::Egress, "egress"),
        ] {
            let pin = self
                .pin_dir
                .as_ref()
                .map(|d| d.join("links").join(format!("{iface}-{tag}")));
            // A link a previous agent pinned keeps enforcing until ours is in place.
            let previous: Option<FdLink> = pin
                .as_ref()
                .filter(|p| p.exists())
                .and_then(|p| PinnedLink::from_pin(p).ok())
                .and_then(|l| l.unpin().ok());
            let prog = classifier(&mut self.ebpf, name)?;
            let id = prog
                .attach(iface, hook)
                .map_err(perr(name, format!("attach to {iface}")))?;
            match pin {
                None => links.push(AttachedLink::Owned(name, id)),
                Some(path) => {
                    let link = prog.take_link(id).map_err(perr(name, "take link"))?;
                    let fd = FdLink::try_from(link).map_err(|e| Error::Netns {
                        what: format!("{iface}: the kernel attached without a TCX link, which cannot be pinned"),
                        source: std::io::Error::other(e.to_string()),
                    })?;
                    if let Some(parent) = path.parent() {
                        let _ = std::fs::create_dir_all(parent);
                    }
                    let pinned = fd.pin(&path).map_err(|e| Error::Netns {
                        what: format!("pinning {}", path.display()),
                        source: std::io::Error::other(e.to_string()),
                    })?;
                    links.push(AttachedLink::Pinned(pinned));
                }
            }
            // Now the previous link may go (dropping it detaches its program).
            drop(previous);
        }
        Ok(links)
    }

    /// Attaches both programs to `iface` in the current network namespace.
    pub fn attach(&mut self, iface: &str) -> Result<()> {
        let links = self.attach_here(iface)?;
        self.attachments.push(Attachment {
            netns: None,
            iface: iface.into(),
            links,
        });
        Ok(())
    }

    /// Attaches both programs to `iface` inside the network namespace at `netns`.
    pub fn attach_in(&mut self, netns: &Path, iface: &str) -> Result<()> {
        let links =
            netns::run_in(netns, || self.attach_here(iface)).map_err(|source| Error::Netns {
                what: format!("entering {}", netns.display()),
                source,
            })??;
        self.attachments.push(Attachment {
            netns: Some(netns.to_path_buf()),
            iface: iface.into(),
            links,
        });
        Ok(())
    }

    pub(crate) fn detach_links(&mut self, links: Vec<AttachedLink>) -> Result<()> {
        for link in links {
            match link {
                AttachedLink::Owned(name, id) => {
                    classifier(&mut self.ebpf, name)?
                        .detach(id)
                        .map_err(perr(name, "detach"))?;
                }
                // Unpinning hands the link back; dropping it detaches.
                AttachedLink::Pinned(p) => drop(p.unpin().map_err(|source| Error::Netns {
                    what: "unpinning a link".into(),
                    source,
                })?),
            }
        }
        Ok(())
    }

    /// Detaches from `iface` (wherever it was attached).
    pub fn detach(&mut self, iface: &str) -> Result<()> {
        let mut keep = Vec::new();
        let mut result = Ok(());
        for a in std::mem::take(&mut self.attachments) {
            if a.iface != iface {
                keep.push(a);
                continue;
            }
            let r = match &a.netns {
                None => self.detach_links(a.links),
                Some(ns) => {
                    let ns = ns.clone();
                    netns::run_in(&ns, || self.detach_links(a.links))
                        .map_err(|source| Error::Netns {
                            what: format!("entering {}", ns.display()),
                            source,
                        })
                        .and_then(|r| r)
                }
            };
            if result.is_ok() {
                result = r;
            }
        }
        self.attachments = keep;
        result
    }

    /// Detaches from every interface.
    pub fn detach_all(&mut self) -> Result<()> {
        let ifaces: Vec<String> = self.attachments.iter().map(|a| a.iface.clone()).collect();
        let mut result = Ok(());
        for i in ifaces {
            let r = self.detach(&i);
            if result.is_ok() {
                result = r;
            }
        }
        result
    }
}
