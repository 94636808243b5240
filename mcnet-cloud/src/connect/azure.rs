//! Azure over the ARM REST API (feature `azure`): VNets with their subnets,
//! VNet peering in both directions, ExpressRoute circuits whose service key
//! feeds the Megaport VXC, ExpressRoute virtual network gateways, the
//! connections between circuit and gateway, and private endpoints to
//! Private Link resources.
//!
//! Everything lives in one resource group, created on the first create and
//! never deleted by mcnet. Names are derived from logical ids, so every
//! create is an idempotent PUT.
//!
//! Ownership: ARM tag names may not contain `/`, so the ownership tags are
//! written as `mcnet.io-topology`, `mcnet.io-id` and `mcnet.io-managed-by`.
//! Subnets and peerings have no tags; they belong to their VNet, and a
//! peering's two halves are named `peering-<name>` (on the requester) and
//! `peering-<name>-accept` (on the accepter). A connection keeps the VXC
//! and VLAN it rides on in the tags `mcnet.io-vxc` and `mcnet.io-vlan`,
//! which ARM has no field for.
//!
//! Configuration comes from the environment, as azure-identity reads it:
//! `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`,
//! `AZURE_SUBSCRIPTION_ID` and `AZURE_AUTHORITY_HOST` (default
//! `https://login.microsoftonline.com`); plus `MCNET_AZURE_ARM_URL`
//! (default `https://management.azure.com`), `MCNET_AZURE_RESOURCE_GROUP`
//! and `MCNET_AZURE_PEERING_LOCATION` (the ExpressRoute peering location,
//! by default the one nearest the circuit's region).

mod create;
mod observe;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use mcnet_core::reconcile::{
    ConnectivityProvider, Desired, ErrorKind, Observed, Owner, ProviderError, Refs, ResourceId,
    ResourceKind, ResourceProvider, ResourceState, Scope, Spec, TAG_ID,
};
use reqwest::Method;
use serde_json::{json, Value};

use super::rest::{env, env_required, Rest};

/// The Microsoft.Network API version every call uses.
pub const NETWORK_API: &str = "2023-09-01";
/// The resource-group API version.
pub const RESOURCES_API: &str = "2021-04-01";
/// Microsoft's side of every ExpressRoute BGP session.
pub const MICROSOFT_ASN: u32 = 12076;
/// The bandwidths Megaport offers on an ExpressRoute circuit.
pub const CIRCUIT_MBPS: &[u32] = &[50, 100, 200, 500, 1000, 2000, 5000, 10000];

const KINDS: &[ResourceKind] = &[
    ResourceKind::Network,
    ResourceKind::Subnet,
    ResourceKind::Peering,
    ResourceKind::VpnGateway,
    ResourceKind::InterconnectGateway,
    ResourceKind::InterconnectAttachment,
    ResourceKind::PrivateEndpoint,
];

/// The subnet an ExpressRoute gateway must live in.
const GATEWAY_SUBNET: &str = "GatewaySubnet";
const TAG_VXC: &str = "mcnet.io-vxc";
const TAG_VLAN: &str = "mcnet.io-vlan";

/// Where and how to reach Azure.
#[derive(Clone)]
pub struct AzureConfig {
    /// ARM base URL, without a trailing slash.
    pub arm_url: String,
    /// The Entra ID authority host.
    pub authority_host: String,
    /// Directory (tenant) id.
    pub tenant_id: String,
    /// Service principal (client) id.
    pub client_id: String,
    /// Its secret.
    pub client_secret: String,
    /// Subscription id.
    pub subscription_id: String,
    /// The resource group mcnet manages.
    pub resource_group: String,
    /// ExpressRoute peering location, overriding the per-region default.
    pub peering_location: Option<String>,
}

impl std::fmt::Debug for AzureConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureConfig")
            .field("arm_url", &self.arm_url)
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("subscription_id", &self.subscription_id)
            .field("resource_group", &self.resource_group)
            .finish_non_exhaustive()
    }
}

impl AzureConfig {
    /// Reads the environment (see the module docs). `resource_group` is
    /// used when `MCNET_AZURE_RESOURCE_GROUP` is unset.
    pub fn from_env(resource_group: &str) -> Result<AzureConfig, ProviderError> {
        let var = env;
        let need = |k: &str| env_required(Scope::Azure, k, "");
        let trim = |s: String| s.trim_end_matches('/').to_string();
        Ok(AzureConfig {
            arm_url: trim(
                var("MCNET_AZURE_ARM_URL").unwrap_or_else(|| "https://management.azure.com".into()),
            ),
            authority_host: trim(
                var("AZURE_AUTHORITY_HOST")
                    .unwrap_or_else(|| "https://login.microsoftonline.com".into()),
            ),
            tenant_id: need("AZURE_TENANT_ID")?,
            client_id: need("AZURE_CLIENT_ID")?,
            client_secret: need("AZURE_CLIENT_SECRET")?,
            subscription_id: need("AZURE_SUBSCRIPTION_ID")?,
            resource_group: var("MCNET_AZURE_RESOURCE_GROUP")
                .unwrap_or_else(|| resource_group.to_string()),
            peering_location: var("MCNET_AZURE_PEERING_LOCATION"),
        })
    }
}

/// The Megaport ExpressRoute peering location nearest an Azure region.
pub fn default_peering_location(region: &str) -> Option<&'static str> {
    Some(match region {
        "eastus" | "eastus2" => "Washington DC",
        "centralus" | "northcentralus" => "Chicago",
        "southcentralus" => "Dallas",
        "westus" => "Silicon Valley",
        "westus2" => "Seattle",
        "westeurope" => "Amsterdam",
        "northeurope" => "Dublin",
        "uksouth" => "London",
        "germanywestcentral" => "Frankfurt",
        "australiaeast" => "Sydney",
        "australiasoutheast" => "Melbourne",
        "southeastasia" => "Singapore",
        "japaneast" => "Tokyo",
        _ => return None,
    })
}

/// The ARM resource name for a logical id: `vpn-gateway/azure-vnet` →
/// `vpn-gateway-azure-vnet`. Subnets keep their own name.
fn arm_name(id: &str) -> String {
    id.replace('/', "-")
}

fn tags(owner: &Owner, id: &ResourceId) -> BTreeMap<String, String> {
    owner
        .tags(id)
        .into_iter()
        .map(|(k, v)| (k.replace('/', "-"), v))
        .collect()
}

/// The logical id in an ARM object's tags, if `owner` owns it.
fn owned(owner: &Owner, v: &Value) -> Option<ResourceId> {
    // Written with `-` for `/`: read them back as the core's tag names.
    let tags: Vec<(String, &str)> = v["tags"]
        .as_object()?
        .iter()
        .map(|(k, v)| {
            (
                k.replace("mcnet.io-", "mcnet.io/"),
                v.as_str().unwrap_or(""),
            )
        })
        .collect();
    owner.owns(tags.iter().map(|(k, v)| (k.as_str(), *v)))
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

/// ARM ids compare case-insensitively.
fn key(id: &str) -> String {
    id.to_ascii_lowercase()
}

fn state_of(provisioning: &str) -> ResourceState {
    match provisioning {
        "Succeeded" => ResourceState::Ready,
        "Failed" | "Canceled" => ResourceState::Failed(provisioning.into()),
        other => ResourceState::Pending(other.into()),
    }
}

/// A peering half's state: `Connected` is ready, `Initiated` waits for the
/// other half, and `Disconnected` (the other half was deleted) can only be
/// replaced.
fn peering_state(p: &Value) -> ResourceState {
    match s(&p["properties"]["peeringState"]) {
        "Connected" => state_of(s(&p["properties"]["provisioningState"])),
        "Disconnected" => ResourceState::Failed("Disconnected".into()),
        other => ResourceState::Pending(other.into()),
    }
}

fn arm_error(body: &Value) -> (Option<String>, String) {
    let e = &body["error"];
    let code = e["code"].as_str().map(str::to_string);
    let msg = e["message"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| match body {
            Value::String(t) => t.clone(),
            _ => "no message".into(),
        });
    (code, msg)
}

/// The Azure provider.
pub struct AzureProvider {
    cfg: AzureConfig,
    rest: Rest,
    group_ready: AtomicBool,
}

impl std::fmt::Debug for AzureProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureProvider")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

/// What one observe learned, by ARM id (lower case) → logical id.
type Index = BTreeMap<String, String>;

impl AzureProvider {
    /// A provider for `cfg`.
    pub fn new(cfg: AzureConfig) -> Result<AzureProvider, ProviderError> {
        Ok(AzureProvider {
            cfg,
            rest: Rest::new(Scope::Azure)?,
            group_ready: AtomicBool::new(false),
        })
    }

    fn group_path(&self) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}",
            self.cfg.subscription_id, self.cfg.resource_group
        )
    }

    /// The ARM id of a top-level Microsoft.Network resource.
    /// PUTs `kind` named after `id` in the group: its location, the
    /// ownership tags and `properties`.
    async fn put_owned(
        &self,
        owner: &Owner,
        id: &ResourceId,
        kind: &str,
        location: &str,
        properties: Value,
    ) -> Result<Value, ProviderError> {
        let cid = self.id_of(kind, &arm_name(id.as_str()));
        let body = json!({"location": location, "tags": tags(owner, id), "properties": properties});
        self.put(&cid, body, id.as_str()).await
    }

    fn id_of(&self, kind: &str, name: &str) -> String {
        format!(
            "{}/providers/Microsoft.Network/{kind}/{name}",
            self.group_path()
        )
    }

    async fn token(&self) -> Result<String, ProviderError> {
        let url = format!(
            "{}/{}/oauth2/v2.0/token",
            self.cfg.authority_host, self.cfg.tenant_id
        );
        let scope = format!("{}/.default", self.cfg.arm_url);
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", self.cfg.client_id.as_str()),
            ("client_secret", self.cfg.client_secret.as_str()),
            ("scope", scope.as_str()),
        ];
        self.rest
            .bearer(|| self.rest.oauth2_form(&url, &form))
            .await
    }

    /// One ARM call on `path` (an ARM id or a collection), or on an absolute
    /// `nextLink`.
    async fn call(
        &self,
        method: Method,
        path: &str,
        api: &str,
        body: Option<Value>,
        what: &str,
    ) -> Result<Value, ProviderError> {
        let token = self.token().await?;
        let op = format!("{method} {}", path.rsplit('/').nth(1).unwrap_or(path));
        let mut req = if path.starts_with("http") {
            self.rest.http.request(method, path)
        } else {
            self.rest
                .http
                .request(method, format!("{}{path}", self.cfg.arm_url))
                .query(&[("api-version", api)])
        };
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.rest.send(req, &token, &op, what, arm_error).await
    }

    /// Every object in a collection of the resource group, following
    /// `nextLink`. A missing resource group is an empty collection.
    async fn list(&self, kind: &str) -> Result<Vec<Value>, ProviderError> {
        let mut out = Vec::new();
        let mut next = format!("{}/providers/Microsoft.Network/{kind}", self.group_path());
        loop {
            let r = match self
                .call(
                    Method::GET,
                    &next,
                    NETWORK_API,
                    None,
                    &format!("list {kind}"),
                )
                .await
            {
                Ok(r) => r,
                Err(e) if e.kind == ErrorKind::NotFound => return Ok(out),
                Err(e) => return Err(e),
            };
            out.extend(r["value"].as_array().cloned().unwrap_or_default());
            match r["nextLink"].as_str() {
                Some(n) if !n.is_empty() => next = n.to_string(),
                _ => return Ok(out),
            }
        }
    }

    async fn get(&self, id: &str, what: &str) -> Result<Option<Value>, ProviderError> {
        match self.call(Method::GET, id, NETWORK_API, None, what).await {
            Ok(r) => Ok(Some(r)),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn put(&self, id: &str, body: Value, what: &str) -> Result<Value, ProviderError> {
        self.call(Method::PUT, id, NETWORK_API, Some(body), what)
            .await
    }

    async fn delete_id(&self, id: &str, what: &str) -> Result<(), ProviderError> {
        match self.call(Method::DELETE, id, NETWORK_API, None, what).await {
            Ok(_) => Ok(()),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(()),
            // A dependent ARM knows about and mcnet's references do not (a
            // gateway in GatewaySubnet) is still going: retried.
            Err(mut e) if e.code.as_deref().is_some_and(|c| c.starts_with("InUse")) => {
                e.kind = ErrorKind::Transient;
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    /// Creates the resource group once per provider (an idempotent PUT).
    async fn ensure_group(&self, owner: &Owner, location: &str) -> Result<(), ProviderError> {
        if self.group_ready.load(Ordering::Acquire) {
            return Ok(());
        }
        // The group is the topology's, not one of its resources: no id tag.
        let mut t = tags(owner, &ResourceId::network("resource-group"));
        t.remove(&TAG_ID.replace('/', "-"));
        self.call(
            Method::PUT,
            &self.group_path(),
            RESOURCES_API,
            Some(json!({"location": location, "tags": t})),
            &format!("resource group {}", self.cfg.resource_group),
        )
        .await?;
        self.group_ready.store(true, Ordering::Release);
        Ok(())
    }

    fn observed(
        id: ResourceId,
        cloud_id: &str,
        spec: Spec,
        state: ResourceState,
        outputs: BTreeMap<String, String>,
        links: Vec<String>,
    ) -> Observed {
        Observed {
            id,
            cloud_id: cloud_id.into(),
            scope: Scope::Azure,
            spec,
            state,
            outputs,
            links,
        }
    }

    /// What a PUT returned, as the resource `r` asked for.
    fn made(r: &Desired, v: &Value, links: Vec<String>) -> Observed {
        Self::observed(
            r.id.clone(),
            s(&v["id"]),
            r.spec.clone(),
            state_of(s(&v["properties"]["provisioningState"])),
            BTreeMap::new(),
            links,
        )
    }

    /// The peering's accepter half, on the accepter's VNet.
    fn accept_half(remote_vnet: &str, id: &str) -> String {
        format!(
            "{remote_vnet}/virtualNetworkPeerings/{}-accept",
            arm_name(id)
        )
    }

    fn peering_body(remote: &str) -> Value {
        json!({"properties": {
            "remoteVirtualNetwork": {"id": remote},
            "allowVirtualNetworkAccess": true,
            "allowForwardedTraffic": true,
            "allowGatewayTransit": false,
            "useRemoteGateways": false,
        }})
    }

    /// Creates whichever halves of a peering are missing. A half left
    /// `Disconnected` (its partner was deleted) cannot be reconnected, so it
    /// is deleted and created again.
    async fn peer(&self, id: &str, a: &str, b: &str) -> Result<Value, ProviderError> {
        let there = Self::accept_half(b, id);
        let here = format!("{a}/virtualNetworkPeerings/{}", arm_name(id));
        for (half, remote) in [(&here, b), (&there, a)] {
            let what = format!("{id} (half {half})");
            match self.get(half, &what).await? {
                Some(p) if s(&p["properties"]["peeringState"]) == "Disconnected" => {
                    self.delete_id(half, &what).await?;
                }
                Some(_) => continue,
                None => {}
            }
            self.put(half, Self::peering_body(remote), &what).await?;
        }
        self.get(&here, id).await?.ok_or_else(|| {
            ProviderError::new(
                Scope::Azure,
                ErrorKind::Transient,
                "GET virtualNetworkPeerings",
                format!("{id}: the peering vanished after it was created"),
            )
        })
    }

    /// Makes one observed resource from a GET of its cloud id, keeping the
    /// spec the planner already knows.
    fn refreshed(current: &Observed, v: &Value) -> Observed {
        let mut o = current.clone();
        let p = &v["properties"];
        o.state = match &current.spec {
            Spec::Peering { .. } => peering_state(v),
            _ => state_of(s(&p["provisioningState"])),
        };
        let status = match &current.spec {
            Spec::Peering { .. } => p["peeringState"].as_str(),
            Spec::InterconnectGateway { .. } => p["serviceProviderProvisioningState"].as_str(),
            Spec::InterconnectAttachment { .. } => p["connectionStatus"].as_str(),
            _ => None,
        };
        if let Some(st) = status {
            o.outputs.insert("status".into(), st.to_string());
        }
        if let Some(k) = p["serviceKey"].as_str() {
            o.outputs.insert("serviceKey".into(), k.to_string());
        }
        o
    }

    fn unsupported(r: &Desired) -> ProviderError {
        ProviderError::new(
            Scope::Azure,
            ErrorKind::Invalid,
            "plan",
            format!(
                "{}: the Azure provider does not manage {} resources",
                r.id,
                r.kind()
            ),
        )
    }
}

#[async_trait]
impl ResourceProvider for AzureProvider {
    fn scope(&self) -> Scope {
        Scope::Azure
    }

    fn kinds(&self) -> &'static [ResourceKind] {
        KINDS
    }

    async fn observe(&self, owner: &Owner) -> Result<Vec<Observed>, ProviderError> {
        // One list per collection: VNets carry their subnets and peerings.
        let vnets = self.list("virtualNetworks").await?;
        let gateways = self.list("virtualNetworkGateways").await?;
        let circuits = self.list("expressRouteCircuits").await?;
        let connections = self.list("connections").await?;
        let endpoints = self.list("privateEndpoints").await?;

        let mut index = Index::new();
        let mut locations = Index::new();
        for v in &vnets {
            locations.insert(key(s(&v["id"])), s(&v["location"]).to_string());
        }
        let mine = |items: &[Value]| -> Vec<(ResourceId, Value)> {
            items
                .iter()
                .filter_map(|v| owned(owner, v).map(|id| (id, v.clone())))
                .collect()
        };
        let (vnets, gateways, circuits, connections, endpoints) = (
            mine(&vnets),
            mine(&gateways),
            mine(&circuits),
            mine(&connections),
            mine(&endpoints),
        );
        for (id, v) in vnets.iter().chain(&gateways).chain(&circuits) {
            index.insert(key(s(&v["id"])), id.to_string());
        }
        for (id, v) in &vnets {
            for sn in v["properties"]["subnets"].as_array().into_iter().flatten() {
                index.insert(
                    key(s(&sn["id"])),
                    ResourceId::subnet(id.name(), s(&sn["name"])).to_string(),
                );
            }
        }
        let mut out = Vec::new();
        for (id, v) in &vnets {
            Self::vnet(id, v, &index, &locations, &mut out);
        }
        for (id, g) in gateways {
            out.push(Self::gateway(id, &g, &index));
        }
        for (id, c) in circuits {
            out.push(Self::circuit(id, &c));
        }
        for (id, c) in connections {
            out.push(Self::connection(id, &c, &index));
        }
        for (id, e) in endpoints {
            out.push(Self::private_endpoint(id, &e, &index));
        }
        Ok(out)
    }

    async fn create(
        &self,
        owner: &Owner,
        r: &Desired,
        refs: Refs<'_>,
    ) -> Result<Observed, ProviderError> {
        self.create_resource(owner, r, refs).await
    }

    async fn update(
        &self,
        owner: &Owner,
        r: &Desired,
        current: &Observed,
        refs: Refs<'_>,
    ) -> Result<Observed, ProviderError> {
        match (&r.spec, &current.spec) {
            // ARM cannot move a private endpoint to another subnet: a new
            // one takes its place (its address changes with it).
            (Spec::PrivateEndpoint { .. }, _) if r.spec != current.spec => {
                self.delete(current).await?;
                self.create(owner, r, refs).await
            }
            (Spec::Network { cidrs, .. }, Spec::Network { .. }) => {
                // A VNet PUT replaces the whole object: send back what it
                // has (subnets, peerings) with the new address space.
                let mut v = self
                    .get(&current.cloud_id, r.id.as_str())
                    .await?
                    .ok_or_else(|| {
                        ProviderError::new(
                            Scope::Azure,
                            ErrorKind::NotFound,
                            "GET virtualNetworks",
                            format!("{}: {} is gone", r.id, current.cloud_id),
                        )
                    })?;
                v["properties"]["addressSpace"]["addressPrefixes"] = json!(cidrs);
                let v = self.put(&current.cloud_id, v, r.id.as_str()).await?;
                let mut o = Self::refreshed(current, &v);
                o.spec = r.spec.clone();
                Ok(o)
            }
            (
                Spec::Peering {
                    requester,
                    accepter,
                    ..
                },
                _,
            ) => {
                // Initiated: one half is missing.
                let (a, b) = (refs.cloud_id(requester)?, refs.cloud_id(accepter)?);
                let v = self.peer(r.id.as_str(), a, b).await?;
                Ok(Self::refreshed(current, &v))
            }
            _ => Ok(self
                .refresh(current)
                .await?
                .unwrap_or_else(|| current.clone())),
        }
    }

    async fn delete(&self, current: &Observed) -> Result<(), ProviderError> {
        if let Spec::Peering { .. } = current.spec {
            if let Some(remote) = current.links.get(1) {
                self.delete_id(
                    &Self::accept_half(remote, current.id.as_str()),
                    current.id.as_str(),
                )
                .await?;
            }
        }
        self.delete_id(&current.cloud_id, current.id.as_str()).await
    }

    async fn refresh(&self, current: &Observed) -> Result<Option<Observed>, ProviderError> {
        Ok(self
            .get(&current.cloud_id, current.id.as_str())
            .await?
            .map(|v| Self::refreshed(current, &v)))
    }

    fn api_calls(&self) -> u64 {
        self.rest.calls()
    }
}

impl ConnectivityProvider for AzureProvider {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_carry_no_slash_and_read_back() {
        let owner = Owner {
            topology: "adr-003".into(),
        };
        let t = tags(&owner, &ResourceId::network("azure-vnet"));
        assert!(t.keys().all(|k| !k.contains('/')), "{t:?}");
        let v = json!({"tags": t});
        assert_eq!(owned(&owner, &v), Some(ResourceId::network("azure-vnet")));
        let other = Owner {
            topology: "other".into(),
        };
        assert_eq!(owned(&other, &v), None);
    }

    #[test]
    fn peering_states_follow_arm() {
        let half = |st: &str| json!({"properties": {"peeringState": st, "provisioningState": "Succeeded"}});
        assert_eq!(peering_state(&half("Connected")), ResourceState::Ready);
        assert_eq!(
            peering_state(&half("Initiated")),
            ResourceState::Pending("Initiated".into())
        );
        assert!(matches!(
            peering_state(&half("Disconnected")),
            ResourceState::Failed(_)
        ));
    }

    #[test]
    fn names_come_from_logical_ids() {
        assert_eq!(arm_name("vpn-gateway/azure-vnet"), "vpn-gateway-azure-vnet");
        assert_eq!(
            AzureProvider::accept_half("/x/virtualNetworks/b", "peering/p"),
            "/x/virtualNetworks/b/virtualNetworkPeerings/peering-p-accept"
        );
        assert_eq!(default_peering_location("eastus"), Some("Washington DC"));
        assert_eq!(default_peering_location("mars-1"), None);
    }
}
