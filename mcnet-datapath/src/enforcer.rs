//! The loop a node agent runs, as a library: load the programs (reusing
//! pinned maps), start the L7 proxy and put its listener in place (in
//! [`L7Mode::Enforce`], the default), set the L7 mode, sync a compilation
//! for the bound interfaces and attach to them, stream flow events (the
//! kernel's and the proxy's) and refresh counters until told to stop,
//! re-sync when the policy changes, and detach cleanly. `mcnet datapath
//! enforce` is this plus flags and printing.
//!
//! The enforcer runs in the network namespace of the interfaces it binds
//! (the node's); the proxy and its policy routing live there too.
//!
//! ```no_run
//! # async fn f(c: mcnet_core::policy::Compiled) -> mcnet_datapath::Result<()> {
//! use mcnet_datapath::enforcer::{Bind, Enforcer, EnforcerOptions};
//!
//! let binds = [Bind { iface: "veth-fe".into(), pod: "production/frontend".into() }];
//! let mut e = Enforcer::start(c.into(), &binds, &EnforcerOptions::default())?;
//! let stop = tokio::time::sleep(std::time::Duration::from_secs(60));
//! e.run(stop, |flow| {
//!     println!("{} {} → {}", flow.verdict, flow.src, flow.dst);
//!     Ok(())
//! })
//! .await?;
//! let counters = e.stop()?;
//! # Ok(()) }
//! ```

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mcnet_core::policy::Compiled;

use crate::flows::{FlowRecord, FlowStream};
use crate::metrics::DatapathMetrics;
use crate::proxy::{L7Proxy, ProxyConfig, SharedPolicy};
use crate::state::{Binding, DesiredState};
use crate::{netns, Counters, Datapath, Error, L7Mode, LoadOptions, Result};

/// An interface to enforce on, and the pod behind it (`namespace/name`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bind {
    /// The host-side interface, in the current network namespace.
    pub iface: String,
    /// The pod, `namespace/name`.
    pub pod: String,
}

/// How the enforcer runs.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct EnforcerOptions {
    /// Pin the maps here (a bpffs directory), so that a restarted agent
    /// keeps established connections.
    pub pin_dir: Option<PathBuf>,
    /// Ports with L7 rules: enforced by the proxy (the default), audited
    /// or dropped.
    pub l7: L7Mode,
    /// The proxy's settings (in [`L7Mode::Enforce`]); its `netns` is
    /// ignored: the proxy runs where the enforcer starts.
    pub proxy: ProxyConfig,
    /// Counters copied here every `refresh` while running (for /metrics).
    pub metrics: Option<Arc<DatapathMetrics>>,
    /// How often counters are refreshed (default 500 ms).
    pub refresh: Option<Duration>,
}

impl EnforcerOptions {
    /// With a pin directory.
    pub fn pinned(mut self, dir: Option<PathBuf>) -> Self {
        self.pin_dir = dir;
        self
    }

    /// With an L7 mode.
    pub fn l7(mut self, mode: L7Mode) -> Self {
        self.l7 = mode;
        self
    }

    /// With these proxy settings.
    pub fn proxy(mut self, config: ProxyConfig) -> Self {
        self.proxy = config;
        self
    }

    /// Refreshing these metrics while running.
    pub fn metrics(mut self, metrics: Arc<DatapathMetrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }
}

/// A running enforcement: programs loaded, maps synced, interfaces attached.
pub struct Enforcer {
    dp: Datapath,
    bindings: Vec<Binding>,
    options: EnforcerOptions,
    /// The flow ring until `run` wraps it (that needs the tokio reactor).
    ring: Option<aya::maps::RingBuf<aya::maps::MapData>>,
    stream: Option<FlowStream>,
    synced: usize,
    policy: SharedPolicy,
    proxy: Option<L7Proxy>,
    l7_events: Option<tokio::sync::mpsc::Receiver<FlowRecord>>,
}

impl std::fmt::Debug for Enforcer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enforcer")
            .field("bindings", &self.bindings)
            .finish_non_exhaustive()
    }
}

impl Enforcer {
    /// Resolves the interfaces, loads the programs, starts the L7 proxy
    /// (in [`L7Mode::Enforce`]), syncs `compiled` for the bound pods and
    /// attaches. Nothing is attached if any step fails. The proxy's
    /// listener is in place before the first connection can be redirected,
    /// also when a restarted agent takes over pinned maps.
    pub fn start(
        compiled: Arc<Compiled>,
        binds: &[Bind],
        options: &EnforcerOptions,
    ) -> Result<Enforcer> {
        let mut bindings = Vec::with_capacity(binds.len());
        for b in binds {
            let ifindex = netns::ifindex(&b.iface).map_err(|source| Error::Netns {
                what: format!("interface `{}` (pod {})", b.iface, b.pod),
                source,
            })?;
            bindings.push(Binding {
                ifindex,
                pod: b.pod.clone(),
            });
        }
        let desired = DesiredState::from_compiled(&compiled, &bindings)?;
        let mut dp = Datapath::load_with(&LoadOptions {
            pin_dir: options.pin_dir.clone(),
        })?;
        let policy = SharedPolicy::new(compiled);
        let mut proxy = None;
        let mut l7_events = None;
        if options.l7 == L7Mode::Enforce {
            crate::proxy::install_routing(None)?;
            let origins = Arc::new(dp.take_proxy_origins()?);
            let mut config = options.proxy.clone();
            config.netns = None;
            let mut p = L7Proxy::start(config, policy.clone(), origins)?;
            dp.set_proxy_listener(p.listener())?;
            l7_events = p.take_events();
            proxy = Some(p);
        }
        dp.set_l7_mode(options.l7)?;
        let synced = dp.sync(&desired)?;
        for b in binds {
            if let Err(e) = dp.attach(&b.iface) {
                let _ = dp.detach_all();
                return Err(e);
            }
        }
        let ring = dp.take_flows()?;
        Ok(Enforcer {
            dp,
            bindings,
            options: options.clone(),
            ring: Some(ring),
            stream: None,
            synced,
            policy,
            proxy,
            l7_events,
        })
    }

    /// The L7 proxy, when the mode is [`L7Mode::Enforce`].
    pub fn proxy(&self) -> Option<&L7Proxy> {
        self.proxy.as_ref()
    }

    /// Map updates the first sync made.
    pub fn initial_updates(&self) -> usize {
        self.synced
    }

    /// The bindings, with their interface indexes.
    pub fn bindings(&self) -> &[Binding] {
        &self.bindings
    }

    /// Moves the same bindings to a new compilation (a policy change):
    /// established connections stay, new ones follow the new policy, and
    /// the proxy judges every connection's next request by it. Returns the
    /// map updates made.
    pub fn update(&mut self, compiled: Arc<Compiled>) -> Result<usize> {
        let desired = DesiredState::from_compiled(&compiled, &self.bindings)?;
        let n = self.dp.sync(&desired)?;
        self.policy.replace(compiled);
        Ok(n)
    }

    /// Moves to a new compilation *and* a new set of pods (a node agent's
    /// pods come and go): syncs the maps for `binds`, attaches to the
    /// interfaces that are new and detaches from those no longer bound (an
    /// interface that vanished with its pod is forgotten quietly). Returns
    /// the map updates made. On an error the previous bindings stay.
    pub fn rebind(&mut self, compiled: Arc<Compiled>, binds: &[Bind]) -> Result<usize> {
        let mut bindings = Vec::with_capacity(binds.len());
        for b in binds {
            let ifindex = netns::ifindex(&b.iface).map_err(|source| Error::Netns {
                what: format!("interface `{}` (pod {})", b.iface, b.pod),
                source,
            })?;
            bindings.push(Binding {
                ifindex,
                pod: b.pod.clone(),
            });
        }
        let desired = DesiredState::from_compiled(&compiled, &bindings)?;
        let n = self.dp.sync(&desired)?;
        self.policy.replace(compiled);
        let attached = self.dp.attached();
        for b in binds {
            if !attached.contains(&b.iface) {
                self.dp.attach(&b.iface)?;
            }
        }
        for iface in attached {
            if !binds.iter().any(|b| b.iface == iface) {
                if let Err(e) = self.dp.detach(&iface) {
                    tracing::debug!(%iface, error = %e, "detach (the pod's interface is likely gone)");
                }
            }
        }
        self.bindings = bindings;
        Ok(n)
    }

    /// Counters so far.
    pub fn counters(&self) -> Result<Counters> {
        self.dp.counters()
    }

    /// The datapath, for what this type does not wrap.
    pub fn datapath(&mut self) -> &mut Datapath {
        &mut self.dp
    }

    /// Streams flow events to `on_flow` and refreshes the metrics until
    /// `shutdown` completes or `on_flow` fails. Runs inside a tokio runtime
    /// with I/O and time enabled.
    pub async fn run<F>(&mut self, shutdown: impl Future<Output = ()>, mut on_flow: F) -> Result<()>
    where
        F: FnMut(FlowRecord) -> Result<()>,
    {
        if let Some(ring) = self.ring.take() {
            let stream = FlowStream::new(ring).map_err(|source| Error::Io {
                what: "watching flow events".into(),
                source,
            })?;
            self.stream = Some(stream);
        }
        let Some(stream) = self.stream.as_mut() else {
            return Ok(());
        };
        let mut refresh =
            tokio::time::interval(self.options.refresh.unwrap_or(Duration::from_millis(500)));
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => return Ok(()),
                _ = refresh.tick(), if self.options.metrics.is_some() => {
                    if let Some(m) = &self.options.metrics {
                        m.update(self.dp.counters()?);
                    }
                }
                Some(rec) = recv(&mut self.l7_events) => {
                    if let Some(m) = &self.options.metrics {
                        m.flow();
                    }
                    on_flow(rec)?;
                }
                rec = stream.next() => {
                    let rec = rec.map_err(|source| Error::Io {
                        what: "reading flow events".into(),
                        source,
                    })?;
                    if let Some(m) = &self.options.metrics {
                        m.flow();
                    }
                    on_flow(rec)?;
                }
            }
        }
    }

    /// Detaches from every interface and returns the final counters. The
    /// detach is attempted even if reading the counters fails.
    pub fn stop(mut self) -> Result<Counters> {
        let detached = self.dp.detach_all();
        if let Some(p) = self.proxy.take() {
            p.stop();
        }
        let counters = self.dp.counters();
        detached?;
        counters
    }
}

/// The next L7 event, or never when there is no proxy (or it is gone).
async fn recv(rx: &mut Option<tokio::sync::mpsc::Receiver<FlowRecord>>) -> Option<FlowRecord> {
    match rx {
        Some(r) => match r.recv().await {
            Some(rec) => Some(rec),
            None => {
                *rx = None;
                std::future::pending().await
            }
        },
        None => std::future::pending().await,
    }
}
