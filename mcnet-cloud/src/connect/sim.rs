//! The embedded simulated cloud: the default backend for every scope.
//!
//! State lives in `<state dir>/sim/<scope>.json`, one file per scope,
//! replaced atomically (write beside, fsync, rename) under an exclusive
//! lock on `<scope>.lock`, so that concurrent applies, even from separate
//! processes, serialise their calls and never corrupt it. Files are plain
//! JSON a person may edit, which is how a "manual change in the console"
//! is simulated.
//!
//! The sim behaves like the clouds where the planner has to cope:
//! asynchronous states (a VPC peering waits in `pending-acceptance` until
//! accepted; a VXC goes `DEPLOYABLE` → `CONFIGURED` → `LIVE`; an
//! ExpressRoute circuit stays `NotProvisioned` until its VXC is live),
//! quotas (VPCs per region, peerings per VPC, Megaport speeds), dependency
//! violations on delete, and faults from `<state dir>/sim/config.yaml`:
//!
//! ```yaml
//! seed: 7
//! stepMs: 200          # length of each asynchronous state
//! faults:
//!   throttle: 0.3      # share of changing calls refused as throttled
//!   timeout: 0.1       # share of changes whose response is lost after they took effect
//!   fail:              # calls that fail for good
//!     - {resource: subnet/aws-vpc/private-b, operation: create}
//! quotas: {vpcsPerRegion: 5, peeringsPerVpc: 50}
//! ```
//!
//! It never opens a socket: the addresses in a topology are only data here.

mod admit;
mod config;
mod lifecycle;

pub use config::{FailRule, Faults, Quotas, SimConfig};

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use mcnet_core::reconcile::{
    ConnectivityProvider, Desired, ErrorKind, InterconnectProvider, Observed, Owner, ProviderError,
    Quote, Refs, ResourceId, ResourceKind, ResourceProvider, ResourceState, Scope, Spec,
};
use serde::{Deserialize, Serialize};

/// Megaport's MCR port speeds (Mbps).
pub const MCR_SPEEDS: [u32; 7] = [1000, 2500, 5000, 10000, 25000, 50000, 100000];

/// One simulated resource, as the cloud stores it: references are cloud ids.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimResource {
    /// Tags (labels).
    pub tags: BTreeMap<String, String>,
    /// Shape, with cloud-id references.
    pub spec: Spec,
    /// Creation time, ms since the epoch.
    pub created_ms: u64,
    /// For a peering: when it was accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_ms: Option<u64>,
    /// For an updated VXC: when the update began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_ms: Option<u64>,
    /// Values other resources need (service and pairing keys).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub outputs: BTreeMap<String, String>,
}

/// One scope's state file.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimState {
    /// Next id to hand out.
    pub next_id: u64,
    /// Resources by cloud id.
    pub resources: BTreeMap<String, SimResource>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The simulated clouds behind one state directory, shared by the
/// per-scope providers.
#[derive(Debug)]
pub struct SimCloud {
    dir: PathBuf,
    config: SimConfig,
    rng: Mutex<u64>,
}

impl SimCloud {
    /// Opens (creating) `<state>/sim` and reads its `config.yaml`, if any.
    pub fn open(state: &Path) -> Result<Arc<SimCloud>, ProviderError> {
        let dir = state.join("sim");
        fs::create_dir_all(&dir).map_err(|e| io_err(Scope::Aws, "open", &dir, e))?;
        let cfg_path = dir.join("config.yaml");
        let config = match fs::read_to_string(&cfg_path) {
            Ok(text) => {
                let de = serde_yaml::Deserializer::from_str(&text);
                serde_path_to_error::deserialize(de).map_err(|e| {
                    ProviderError::new(
                        Scope::Aws,
                        ErrorKind::Invalid,
                        "open",
                        format!(
                            "{}: field `{}`: {}",
                            cfg_path.display(),
                            e.path(),
                            e.inner()
                        ),
                    )
                })?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => SimConfig::default(),
            Err(e) => return Err(io_err(Scope::Aws, "open", &cfg_path, e)),
        };
        Ok(SimCloud::with_config(state, config))
    }

    /// A sim with `config` instead of the file's.
    pub fn with_config(state: &Path, config: SimConfig) -> Arc<SimCloud> {
        let seed = config.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        Arc::new(SimCloud {
            dir: state.join("sim"),
            config,
            rng: Mutex::new(seed),
        })
    }

    /// A provider for one scope.
    pub fn provider(self: &Arc<Self>, scope: Scope) -> Arc<SimProvider> {
        Arc::new(SimProvider {
            scope,
            cloud: Arc::clone(self),
            calls: AtomicU64::new(0),
        })
    }

    /// The path of a scope's state file.
    pub fn state_path(&self, scope: Scope) -> PathBuf {
        self.dir.join(format!("{scope}.json"))
    }

    fn roll(&self) -> f64 {
        let mut s = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        *s ^= *s >> 12;
        *s ^= *s << 25;
        *s ^= *s >> 27;
        (s.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Reads a scope's state. Writes are atomic renames, so readers need no lock.
    pub fn read(&self, scope: Scope) -> Result<SimState, ProviderError> {
        let path = self.state_path(scope);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                ProviderError::new(
                    scope,
                    ErrorKind::Invalid,
                    "read state",
                    format!("{} is not a valid sim state: {e}", path.display()),
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(SimState::default()),
            Err(e) => Err(io_err(scope, "read state", &path, e)),
        }
    }

    /// Runs `f` on a scope's state under its exclusive lock and writes the
    /// result atomically if `f` succeeds.
    fn modify<T>(
        &self,
        scope: Scope,
        f: impl FnOnce(&mut SimState) -> Result<T, ProviderError>,
    ) -> Result<T, ProviderError> {
        let lock_path = self.dir.join(format!("{scope}.lock"));
        fs::create_dir_all(&self.dir).map_err(|e| io_err(scope, "open state", &self.dir, e))?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| io_err(scope, "lock state", &lock_path, e))?;
        lock.lock()
            .map_err(|e| io_err(scope, "lock state", &lock_path, e))?;
        let mut st = self.read(scope)?;
        let out = f(&mut st)?;
        let path = self.state_path(scope);
        let tmp = self.dir.join(format!(".{scope}.json.tmp"));
        let write = || -> std::io::Result<()> {
            let mut file = File::create(&tmp)?;
            file.write_all(&serde_json::to_vec_pretty(&st).map_err(std::io::Error::other)?)?;
            file.sync_all()?;
            fs::rename(&tmp, &path)
        };
        write().map_err(|e| io_err(scope, "write state", &path, e))?;
        drop(lock); // closing the file releases the lock
        Ok(out)
    }
}

fn io_err(scope: Scope, op: &str, path: &Path, e: std::io::Error) -> ProviderError {
    ProviderError::new(scope, ErrorKind::Transient, op, path.display().to_string()).with_source(e)
}

/// The sim's provider for one scope.
#[derive(Debug)]
pub struct SimProvider {
    scope: Scope,
    cloud: Arc<SimCloud>,
    calls: AtomicU64,
}

const CLOUD_KINDS: &[ResourceKind] = &[
    ResourceKind::Network,
    ResourceKind::Subnet,
    ResourceKind::RouteTable,
    ResourceKind::Route,
    ResourceKind::Peering,
    ResourceKind::TransitGateway,
    ResourceKind::TransitGatewayAttachment,
    ResourceKind::TransitGatewayRoute,
    ResourceKind::VpnGateway,
    ResourceKind::InterconnectGateway,
    ResourceKind::InterconnectAttachment,
    ResourceKind::PrivateEndpoint,
    ResourceKind::VpnPeer,
    ResourceKind::VpnConnection,
];
const AZURE_GCP_KINDS: &[ResourceKind] = &[
    ResourceKind::Network,
    ResourceKind::Subnet,
    ResourceKind::Peering,
    ResourceKind::VpnGateway,
    ResourceKind::InterconnectGateway,
    ResourceKind::InterconnectAttachment,
    ResourceKind::PrivateEndpoint,
    ResourceKind::VpnPeer,
    ResourceKind::VpnConnection,
];
const MEGAPORT_KINDS: &[ResourceKind] = &[ResourceKind::Router, ResourceKind::Vxc];

fn id_prefix(scope: Scope, kind: ResourceKind) -> &'static str {
    use ResourceKind as K;
    match (scope, kind) {
        (Scope::Megaport, _) => "",
        (Scope::Aws, K::Network) => "vpc-",
        (Scope::Aws, K::Subnet) => "subnet-",
        (Scope::Aws, K::RouteTable) => "rtb-",
        (Scope::Aws, K::Route) => "r-",
        (Scope::Aws, K::Peering) => "pcx-",
        (Scope::Aws, K::TransitGateway) => "tgw-",
        (Scope::Aws, K::TransitGatewayAttachment) => "tgw-attach-",
        (Scope::Aws, K::TransitGatewayRoute) => "tgw-rtb-route-",
        (Scope::Aws, K::VpnGateway) => "vgw-",
        (Scope::Aws, K::InterconnectGateway) => "dxgw-",
        (Scope::Aws, K::InterconnectAttachment) => "dxvif-",
        (Scope::Aws, K::PrivateEndpoint) => "vpce-",
        (Scope::Aws, K::VpnPeer) => "cgw-",
        (Scope::Aws, K::VpnConnection) => "vpn-",
        (Scope::Azure, _) => "/subscriptions/sim/resourceGroups/mcnet/providers/",
        (Scope::Gcp, _) => "projects/sim/",
        _ => "sim-",
    }
}

fn new_id(scope: Scope, kind: ResourceKind, st: &mut SimState) -> String {
    st.next_id += 1;
    let n = st.next_id;
    match scope {
        Scope::Megaport => format!(
            "{:08x}-5a1e-4c0d-9e00-{:012x}",
            n * 2_654_435_761 % 0xffff_ffff,
            n
        ),
        Scope::Azure => format!("{}{}/{kind}-{n}", id_prefix(scope, kind), azure_type(kind)),
        Scope::Gcp => format!("{}{kind}s/{kind}-{n}", id_prefix(scope, kind)),
        Scope::Aws => format!(
            "{}{:017x}",
            id_prefix(scope, kind),
            n * 0x9e37_79b9 % (1 << 60)
        ),
    }
}

/// An address in 203.0.113.0/24 (TEST-NET-3) for a resource id.
fn test_net_address(id: &str) -> String {
    format!("203.0.113.{}", 1 + fnv(id) % 254)
}

fn azure_type(kind: ResourceKind) -> &'static str {
    match kind {
        ResourceKind::Network => "Microsoft.Network/virtualNetworks",
        ResourceKind::Subnet => "Microsoft.Network/virtualNetworks/subnets",
        ResourceKind::Peering => "Microsoft.Network/virtualNetworks/virtualNetworkPeerings",
        ResourceKind::VpnGateway => "Microsoft.Network/virtualNetworkGateways",
        ResourceKind::InterconnectGateway => "Microsoft.Network/expressRouteCircuits",
        ResourceKind::InterconnectAttachment => "Microsoft.Network/connections",
        ResourceKind::PrivateEndpoint => "Microsoft.Network/privateEndpoints",
        ResourceKind::VpnPeer => "Microsoft.Network/localNetworkGateways",
        ResourceKind::VpnConnection => "Microsoft.Network/connections",
        _ => "Microsoft.Network/other",
    }
}

impl SimProvider {
    fn call(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }

    fn err(&self, kind: ErrorKind, op: &str, code: &str, msg: String) -> ProviderError {
        ProviderError::new(self.scope, kind, op, msg).with_code(code)
    }

    /// One API call: counted; a change may be throttled or failed by a rule.
    fn gate(&self, op: &str, logical: &str) -> Result<(), ProviderError> {
        self.call();
        let f = &self.cloud.config.faults;
        let changes = ["create", "update", "delete", "validate"]
            .iter()
            .any(|c| op.starts_with(c));
        if !changes {
            return Ok(());
        }
        if f.throttle > 0.0 && self.cloud.roll() < f.throttle {
            let code = match self.scope {
                Scope::Aws => "RequestLimitExceeded",
                Scope::Azure => "TooManyRequests",
                Scope::Gcp => "rateLimitExceeded",
                Scope::Megaport => "429",
            };
            return Err(self.err(
                ErrorKind::Throttled,
                op,
                code,
                "request rate exceeded".into(),
            ));
        }
        for r in &f.fail {
            let hit = match r.resource.strip_suffix('*') {
                Some(prefix) => logical.starts_with(prefix),
                None => logical == r.resource,
            };
            if hit && op.starts_with(&r.operation) {
                return Err(self.err(
                    ErrorKind::Conflict,
                    op,
                    "InjectedFailure",
                    format!("{logical}: injected failure of {op}"),
                ));
            }
        }
        Ok(())
    }

    /// After a change took effect: maybe lose the response.
    fn lost_response(&self, op: &str, logical: &str) -> Result<(), ProviderError> {
        let f = &self.cloud.config.faults;
        if f.timeout > 0.0 && self.cloud.roll() < f.timeout {
            return Err(self.err(
                ErrorKind::Transient,
                op,
                "RequestTimeout",
                format!("{logical}: the request timed out (it may have taken effect)"),
            ));
        }
        Ok(())
    }

    /// Every scope's cloud id → logical id, for turning references back.
    fn index(&self) -> Result<BTreeMap<String, String>, ProviderError> {
        let mut idx = BTreeMap::new();
        for s in Scope::ALL {
            for (cid, r) in self.cloud.read(s)?.resources {
                if let Some(id) = r.tags.get(mcnet_core::reconcile::TAG_ID) {
                    idx.insert(cid, id.clone());
                }
            }
        }
        Ok(idx)
    }

    fn observed(
        &self,
        id: ResourceId,
        cid: &str,
        r: &SimResource,
        idx: &BTreeMap<String, String>,
        now: u64,
    ) -> Observed {
        let links = r.spec.refs().into_iter().cloned().collect();
        let mut spec = r.spec.clone();
        spec.map_refs(|c| {
            idx.get(c)
                .cloned()
                .unwrap_or_else(|| format!("unmanaged:{c}"))
        });
        let (state, status) = self.status(r, now);
        let mut outputs = r.outputs.clone();
        outputs.insert("status".into(), status);
        Observed {
            id,
            cloud_id: cid.into(),
            scope: self.scope,
            spec,
            state,
            outputs,
            links,
        }
    }
}

#[async_trait]
impl ResourceProvider for SimProvider {
    fn scope(&self) -> Scope {
        self.scope
    }

    fn kinds(&self) -> &'static [ResourceKind] {
        match self.scope {
            Scope::Aws => CLOUD_KINDS,
            Scope::Azure | Scope::Gcp => AZURE_GCP_KINDS,
            Scope::Megaport => MEGAPORT_KINDS,
        }
    }

    async fn observe(&self, owner: &Owner) -> Result<Vec<Observed>, ProviderError> {
        let now = now_ms();
        let idx = self.index()?;
        let mut out = Vec::new();
        // One list call per kind, as the clouds' describe/list APIs go; the
        // file is read once for all of them.
        let st = self.cloud.read(self.scope)?;
        for kind in self.kinds() {
            self.gate(&format!("list {kind}"), "")?;
            for (cid, r) in &st.resources {
                if r.spec.kind() != *kind {
                    continue;
                }
                if let Some(id) = owner.owns(r.tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
                    out.push(self.observed(id, cid, r, &idx, now));
                }
            }
        }
        Ok(out)
    }

    async fn create(
        &self,
        owner: &Owner,
        r: &Desired,
        refs: Refs<'_>,
    ) -> Result<Observed, ProviderError> {
        let op = format!("create {}", r.kind());
        self.gate(&op, r.id.as_str())?;
        let spec = refs.to_cloud(&r.spec)?;
        let mut outputs = BTreeMap::new();
        // Keys a VXC needs come from the cloud side; the VXC records the key it carries.
        match (&r.spec, self.scope) {
            (Spec::InterconnectGateway { .. }, Scope::Azure) => {
                outputs.insert(
                    "serviceKey".into(),
                    format!("{:08x}-sim-er-key", fnv(r.id.as_str())),
                );
            }
            (Spec::InterconnectAttachment { .. }, Scope::Gcp) => {
                outputs.insert(
                    "pairingKey".into(),
                    format!("{:08x}-sim/us-east4/1", fnv(r.id.as_str())),
                );
            }
            // A VXC to AWS is a hosted connection in the AWS account.
            (
                Spec::Vxc {
                    target,
                    partner: None,
                    ..
                },
                _,
            ) if target == "aws-direct-connect" => {
                outputs.insert(
                    "connectionId".into(),
                    format!("dxcon-{:08x}", fnv(r.id.as_str())),
                );
            }
            // A hosted VIF is a virtual interface in the AWS account.
            (
                Spec::Vxc {
                    target,
                    partner: None,
                    ..
                },
                _,
            ) if target == "aws-hosted-vif" => {
                outputs.insert("vifId".into(), format!("dxvif-{:08x}", fnv(r.id.as_str())));
            }
            // A VPN's public addresses, from the documentation range
            // (RFC 5737): nothing ever sends to them.
            (Spec::VpnGateway { ipsec: true, .. }, _) => {
                outputs.insert("publicIp".into(), test_net_address(r.id.as_str()));
            }
            (Spec::VpnConnection { .. }, Scope::Aws) => {
                outputs.insert("outsideIp".into(), test_net_address(r.id.as_str()));
            }
            (
                Spec::VpnPeer {
                    address,
                    address_output,
                    ..
                },
                _,
            ) => {
                let ip = refs.output(address, address_output)?;
                outputs.insert("address".into(), ip.to_string());
            }
            (
                Spec::Vxc {
                    partner: Some(p), ..
                },
                _,
            ) => {
                let key = refs
                    .output(p, "serviceKey")
                    .or_else(|_| refs.output(p, "pairingKey"))?;
                outputs.insert("partnerKey".into(), key.to_string());
            }
            _ => {}
        }
        let (cid, res) = self.cloud.modify(self.scope, |st| {
            self.admit(st, &spec, r.id.as_str())?;
            let cid = new_id(self.scope, r.kind(), st);
            let res = SimResource {
                tags: owner.tags(&r.id),
                spec: spec.clone(),
                created_ms: now_ms(),
                accepted_ms: None,
                updated_ms: None,
                outputs,
            };
            st.resources.insert(cid.clone(), res.clone());
            Ok((cid, res))
        })?;
        self.lost_response(&op, r.id.as_str())?;
        let mut o = self.observed(r.id.clone(), &cid, &res, &self.index()?, now_ms());
        // An AWS peering is requested, then accepted: a second call.
        if matches!(r.spec, Spec::Peering { .. }) && self.scope == Scope::Aws {
            o = self.update(owner, r, &o, refs).await?;
        }
        Ok(o)
    }

    async fn update(
        &self,
        _owner: &Owner,
        r: &Desired,
        current: &Observed,
        refs: Refs<'_>,
    ) -> Result<Observed, ProviderError> {
        let op = format!("update {}", r.kind());
        self.gate(&op, r.id.as_str())?;
        let spec = refs.to_cloud(&r.spec)?;
        let res = self.cloud.modify(self.scope, |st| {
            let Some(res) = st.resources.get_mut(current.cloud_id.as_str()) else {
                return Err(self.err(
                    ErrorKind::NotFound,
                    &op,
                    "NotFound",
                    format!("{}: `{}` does not exist", r.id, current.cloud_id),
                ));
            };
            if matches!(res.spec, Spec::Peering { .. }) && res.accepted_ms.is_none() {
                res.accepted_ms = Some(now_ms());
            }
            if res.spec != spec {
                if matches!(spec, Spec::Vxc { .. } | Spec::Router { .. }) {
                    res.updated_ms = Some(now_ms());
                }
                res.spec = spec.clone();
            }
            Ok(res.clone())
        })?;
        self.lost_response(&op, r.id.as_str())?;
        Ok(self.observed(
            r.id.clone(),
            &current.cloud_id,
            &res,
            &self.index()?,
            now_ms(),
        ))
    }

    async fn delete(&self, current: &Observed) -> Result<(), ProviderError> {
        let op = format!("delete {}", current.spec.kind());
        self.gate(&op, current.id.as_str())?;
        self.cloud.modify(self.scope, |st| {
            // As in EC2, a route whose next hop goes away is left as a
            // blackhole rather than blocking the delete; anything else
            // that still refers to the resource does block it.
            let blocks = |r: &SimResource| match &r.spec {
                Spec::Route { target, .. } if *target == current.cloud_id => false,
                Spec::TransitGatewayRoute { attachment, .. } if *attachment == current.cloud_id => {
                    false
                }
                spec => spec.refs().iter().any(|x| **x == current.cloud_id),
            };
            if let Some((dep, _)) = st.resources.iter().find(|(_, r)| blocks(r)) {
                return Err(self.err(
                    ErrorKind::Conflict,
                    &op,
                    "DependencyViolation",
                    format!(
                        "{} ({}) is still used by {dep}",
                        current.id, current.cloud_id
                    ),
                ));
            }
            st.resources.remove(current.cloud_id.as_str());
            Ok(())
        })?;
        self.lost_response(&op, current.id.as_str())
    }

    async fn refresh(&self, current: &Observed) -> Result<Option<Observed>, ProviderError> {
        self.gate(&format!("describe {}", current.spec.kind()), "")?;
        let st = self.cloud.read(self.scope)?;
        let Some(r) = st.resources.get(current.cloud_id.as_str()) else {
            return Ok(None);
        };
        Ok(Some(self.observed(
            current.id.clone(),
            &current.cloud_id,
            r,
            &self.index()?,
            now_ms(),
        )))
    }

    fn api_calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }
}

impl ConnectivityProvider for SimProvider {}

#[async_trait]
impl InterconnectProvider for SimProvider {
    async fn validate(&self, r: &Desired, refs: Refs<'_>) -> Result<Quote, ProviderError> {
        self.gate("validate", r.id.as_str())?;
        let spec = refs.to_cloud(&r.spec).unwrap_or_else(|_| r.spec.clone());
        let st = self.cloud.read(self.scope)?;
        self.admit(&st, &spec, r.id.as_str())?;
        let prices = mcnet_core::cost::Prices::embedded();
        let at_or_above =
            |table: &BTreeMap<u32, f64>, mbps: u32| table.range(mbps..).next().map(|(_, p)| *p);
        let monthly = match &r.spec {
            Spec::Router { speed_mbps, .. } => at_or_above(&prices.mcr_monthly, *speed_mbps),
            Spec::Vxc {
                rate_limit_mbps, ..
            } => at_or_above(&prices.vxc_monthly, *rate_limit_mbps),
            _ => None,
        };
        monthly
            .map(|m| Quote {
                monthly_rate: m,
                currency: prices.currency.clone(),
            })
            .ok_or_else(|| {
                self.err(
                    ErrorKind::Invalid,
                    "validate",
                    "400",
                    format!("{}: no price for this product", r.id),
                )
            })
    }
}

fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn fnv(s: &str) -> u32 {
    s.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}
