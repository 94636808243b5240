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
            cloud_id: cloud_id.to_string(),
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

    /// A VNet, its subnets and the requester halves of its peerings.
    fn vnet(id: &ResourceId, v: &Value, index: &Index, locations: &Index, out: &mut Vec<Observed>) {
        let p = &v["properties"];
        let net = id.name();
        let cloud_id = s(&v["id"]);
        out.push(Self::observed(
            id.clone(),
            cloud_id,
            Spec::Network {
                region: s(&v["location"]).into(),
                cidrs: p["addressSpace"]["addressPrefixes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|c| s(c).to_string())
                    .collect(),
            },
            state_of(s(&p["provisioningState"])),
            BTreeMap::new(),
            vec![],
        ));
        for sn in p["subnets"].as_array().into_iter().flatten() {
            out.push(Self::observed(
                ResourceId::subnet(net, s(&sn["name"])),
                s(&sn["id"]),
                Spec::Subnet {
                    network: id.to_string(),
                    cidr: s(&sn["properties"]["addressPrefix"]).into(),
                    zone: None,
                },
                state_of(s(&sn["properties"]["provisioningState"])),
                BTreeMap::new(),
                vec![cloud_id.to_string()],
            ));
        }
        for pe in p["virtualNetworkPeerings"].as_array().into_iter().flatten() {
            let name = s(&pe["name"]);
            let Some(logical) = name.strip_prefix("peering-") else {
                continue;
            };
            if logical.ends_with("-accept") {
                continue;
            }
            let remote = s(&pe["properties"]["remoteVirtualNetwork"]["id"]);
            let remote_location = locations.get(&key(remote));
            let here = s(&v["location"]);
            let mut outputs = BTreeMap::new();
            outputs.insert(
                "status".into(),
                s(&pe["properties"]["peeringState"]).to_string(),
            );
            out.push(Self::observed(
                ResourceId::peering(logical),
                s(&pe["id"]),
                Spec::Peering {
                    requester: id.to_string(),
                    accepter: index
                        .get(&key(remote))
                        .cloned()
                        .unwrap_or_else(|| format!("unmanaged:{remote}")),
                    peer_region: remote_location.filter(|l| l.as_str() != here).cloned(),
                },
                peering_state(pe),
                outputs,
                vec![cloud_id.to_string(), remote.to_string()],
            ));
        }
    }

    fn gateway(id: ResourceId, g: &Value, index: &Index) -> Observed {
        let p = &g["properties"];
        let subnet = s(&p["ipConfigurations"][0]["properties"]["subnet"]["id"]);
        let vnet = subnet
            .rsplit_once("/subnets/")
            .map_or(subnet, |(v, _)| v)
            .to_string();
        Self::observed(
            id,
            s(&g["id"]),
            Spec::VpnGateway {
                network: index
                    .get(&key(&vnet))
                    .cloned()
                    .unwrap_or_else(|| format!("unmanaged:{vnet}")),
                asn: None,
            },
            state_of(s(&p["provisioningState"])),
            BTreeMap::new(),
            vec![vnet],
        )
    }

    fn circuit(id: ResourceId, c: &Value) -> Observed {
        let p = &c["properties"];
        let mut outputs = BTreeMap::new();
        if let Some(k) = p["serviceKey"].as_str() {
            outputs.insert("serviceKey".into(), k.to_string());
        }
        outputs.insert(
            "status".into(),
            s(&p["serviceProviderProvisioningState"]).to_string(),
        );
        Self::observed(
            id,
            s(&c["id"]),
            Spec::InterconnectGateway {
                region: s(&c["location"]).into(),
                asn: MICROSOFT_ASN,
                bandwidth_mbps: p["serviceProviderProperties"]["bandwidthInMbps"]
                    .as_u64()
                    .and_then(|b| u32::try_from(b).ok()),
                network: None,
                associations: vec![],
            },
            state_of(s(&p["provisioningState"])),
            outputs,
            vec![],
        )
    }

    fn connection(id: ResourceId, c: &Value, index: &Index) -> Observed {
        let p = &c["properties"];
        let circuit = s(&p["peer"]["id"]);
        let gateway = s(&p["virtualNetworkGateway1"]["id"]);
        let name = |cid: &str| {
            index
                .get(&key(cid))
                .cloned()
                .unwrap_or_else(|| format!("unmanaged:{cid}"))
        };
        let mut outputs = BTreeMap::new();
        outputs.insert("status".into(), s(&p["connectionStatus"]).to_string());
        Self::observed(
            id,
            s(&c["id"]),
            Spec::InterconnectAttachment {
                gateway: name(circuit),
                vxc: c["tags"][TAG_VXC].as_str().map(str::to_string),
                network_gateway: (!gateway.is_empty()).then(|| name(gateway)),
                vlan: c["tags"][TAG_VLAN].as_str().and_then(|v| v.parse().ok()),
            },
            state_of(s(&p["provisioningState"])),
            outputs,
            vec![circuit.to_string(), gateway.to_string()],
        )
    }

    /// A private endpoint: its subnet (and so its VNet), the Private Link
    /// resource and sub-resource it reaches, the state of that connection
    /// (`Approved`, or `Pending` until the resource's owner approves it) and
    /// the address it got.
    fn private_endpoint(id: ResourceId, e: &Value, index: &Index) -> Observed {
        let p = &e["properties"];
        let subnet = s(&p["subnet"]["id"]);
        let vnet = subnet.rsplit_once("/subnets/").map_or(subnet, |(v, _)| v);
        let name = |cid: &str| {
            index
                .get(&key(cid))
                .cloned()
                .unwrap_or_else(|| format!("unmanaged:{cid}"))
        };
        // Auto-approved connections are listed apart from manual ones.
        let conn = [
            &p["privateLinkServiceConnections"],
            &p["manualPrivateLinkServiceConnections"],
        ]
        .into_iter()
        .find_map(|c| c.as_array().and_then(|a| a.first()))
        .map(|c| &c["properties"])
        .unwrap_or(&Value::Null);
        let mut outputs = BTreeMap::new();
        if let Some(st) = conn["privateLinkServiceConnectionState"]["status"].as_str() {
            outputs.insert("status".into(), st.to_string());
        }
        if let Some(ip) = p["customDnsConfigs"][0]["ipAddresses"][0].as_str() {
            outputs.insert("ip".into(), ip.to_string());
        }
        Self::observed(
            id,
            s(&e["id"]),
            Spec::PrivateEndpoint {
                network: name(vnet),
                service: s(&conn["privateLinkServiceId"]).to_string(),
                subresource: conn["groupIds"][0].as_str().map(str::to_string),
                subnets: vec![name(subnet)],
            },
            state_of(s(&p["provisioningState"])),
            outputs,
            vec![subnet.to_string()],
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
        let rid = &r.id;
        let id = rid.as_str();
        let name = arm_name(id);
        let region_of = |net: &str| -> Result<String, ProviderError> {
            match &refs.get(net)?.spec {
                Spec::Network { region, .. } => Ok(region.clone()),
                _ => Ok(String::new()),
            }
        };
        match &r.spec {
            Spec::Network { region, cidrs } => {
                self.ensure_group(owner, region).await?;
                let v = self
                    .put_owned(
                        owner,
                        rid,
                        "virtualNetworks",
                        region,
                        json!({"addressSpace": {"addressPrefixes": cidrs}}),
                    )
                    .await?;
                Ok(Self::made(r, &v, vec![]))
            }
            Spec::Subnet { network, cidr, .. } => {
                let vnet = refs.cloud_id(network)?;
                let sub = rid.path().last().map_or(id, String::as_str);
                let v = self
                    .put(
                        &format!("{vnet}/subnets/{sub}"),
                        json!({"properties": {"addressPrefix": cidr}}),
                        id,
                    )
                    .await?;
                Ok(Self::made(r, &v, vec![vnet.to_string()]))
            }
            Spec::Peering {
                requester,
                accepter,
                ..
            } => {
                let (a, b) = (refs.cloud_id(requester)?, refs.cloud_id(accepter)?);
                let v = self.peer(id, a, b).await?;
                let cur = Self::observed(
                    rid.clone(),
                    s(&v["id"]),
                    r.spec.clone(),
                    ResourceState::Ready,
                    BTreeMap::new(),
                    vec![a.to_string(), b.to_string()],
                );
                Ok(Self::refreshed(&cur, &v))
            }
            Spec::VpnGateway { network, .. } => {
                let vnet = refs.cloud_id(network)?;
                // `vpn-gateway/<network>`: the gateway is named after its VNet.
                let net = rid.name();
                // The gateway needs the VNet's GatewaySubnet, which the
                // planner may still be creating beside it.
                let subnet = refs
                    .get(ResourceId::subnet(net, GATEWAY_SUBNET).as_str())
                    .map_err(|_| {
                        ProviderError::new(
                            Scope::Azure,
                            ErrorKind::Transient,
                            "PUT virtualNetworkGateways",
                            format!(
                                "{id}: an ExpressRoute gateway needs subnet/{net}/{GATEWAY_SUBNET} \
                                 (declare a /27 or larger subnet named {GATEWAY_SUBNET} in {network})"
                            ),
                        )
                    })?;
                let properties = json!({
                    "gatewayType": "ExpressRoute",
                    "sku": {"name": "Standard", "tier": "Standard"},
                    "ipConfigurations": [{
                        "name": "default",
                        "properties": {
                            "privateIPAllocationMethod": "Dynamic",
                            "subnet": {"id": subnet.cloud_id},
                        },
                    }],
                });
                let v = self
                    .put_owned(
                        owner,
                        rid,
                        "virtualNetworkGateways",
                        &region_of(network)?,
                        properties,
                    )
                    .await?;
                Ok(Self::made(r, &v, vec![vnet.to_string()]))
            }
            Spec::InterconnectGateway {
                region,
                asn,
                bandwidth_mbps,
                ..
            } => {
                let invalid = |m: String| {
                    ProviderError::new(
                        Scope::Azure,
                        ErrorKind::Invalid,
                        "PUT expressRouteCircuits",
                        m,
                    )
                };
                if *asn != MICROSOFT_ASN {
                    return Err(invalid(format!(
                        "{id}: asn is {asn}, but Microsoft's side of ExpressRoute is always AS {MICROSOFT_ASN} \
                         (set the VXC's bgp peer peerAsn to {MICROSOFT_ASN})"
                    )));
                }
                let mbps = bandwidth_mbps.unwrap_or(1000);
                if !CIRCUIT_MBPS.contains(&mbps) {
                    return Err(invalid(format!(
                        "{id}: bandwidthMbps {mbps} is not an ExpressRoute circuit size through Megaport \
                         ({CIRCUIT_MBPS:?})"
                    )));
                }
                let location = match &self.cfg.peering_location {
                    Some(l) => l.clone(),
                    None => default_peering_location(region)
                        .ok_or_else(|| {
                            invalid(format!(
                                "{id}: no default ExpressRoute peering location for region `{region}`; \
                                 set MCNET_AZURE_PEERING_LOCATION"
                            ))
                        })?
                        .to_string(),
                };
                self.ensure_group(owner, region).await?;
                let cid = self.id_of("expressRouteCircuits", &name);
                let v = self
                    .put(
                        &cid,
                        json!({
                            "location": region,
                            "tags": tags(owner, rid),
                            "sku": {"name": "Standard_MeteredData", "tier": "Standard", "family": "MeteredData"},
                            "properties": {
                                "serviceProviderProperties": {
                                    "serviceProviderName": "Megaport",
                                    "peeringLocation": location,
                                    "bandwidthInMbps": mbps,
                                },
                                "allowClassicOperations": false,
                            },
                        }),
                        id,
                    )
                    .await?;
                let mut o = Self::circuit(rid.clone(), &v);
                o.spec = r.spec.clone();
                Ok(o)
            }
            Spec::InterconnectAttachment {
                gateway,
                vxc,
                network_gateway,
                vlan,
            } => {
                let circuit = refs.cloud_id(gateway)?;
                let Some(ng) = network_gateway else {
                    return Err(ProviderError::new(
                        Scope::Azure,
                        ErrorKind::Invalid,
                        "PUT connections",
                        format!("{id}: an ExpressRoute connection needs a network gateway"),
                    ));
                };
                let vgw = refs.cloud_id(ng)?;
                // Azure refuses a connection until the provider (Megaport)
                // has provisioned the circuit.
                let c = self.get(circuit, gateway).await?.unwrap_or(Value::Null);
                let st = s(&c["properties"]["serviceProviderProvisioningState"]);
                if st != "Provisioned" {
                    let vxc_live = vxc
                        .as_deref()
                        .and_then(|v| refs.get(v).ok())
                        .is_some_and(|v| v.state == ResourceState::Ready);
                    let (kind, hint) = if vxc_live {
                        (ErrorKind::Transient, "its VXC is live; waiting for Azure")
                    } else {
                        (
                            ErrorKind::Unresolved,
                            "apply the Megaport provider (its VXC carries the service key), then apply again",
                        )
                    };
                    return Err(ProviderError::new(
                        Scope::Azure,
                        kind,
                        "PUT connections",
                        format!(
                            "{id}: circuit {gateway} is `{st}` by its service provider: {hint}"
                        ),
                    )
                    .with_code("CircuitNotProvisioned"));
                }
                let mut t = tags(owner, rid);
                if let Some(v) = vxc {
                    t.insert(TAG_VXC.into(), v.clone());
                }
                if let Some(v) = vlan {
                    t.insert(TAG_VLAN.into(), v.to_string());
                }
                let cid = self.id_of("connections", &name);
                let v = self
                    .put(
                        &cid,
                        json!({
                            "location": s(&c["location"]),
                            "tags": t,
                            "properties": {
                                "connectionType": "ExpressRoute",
                                "virtualNetworkGateway1": {"id": vgw},
                                "peer": {"id": circuit},
                                "routingWeight": 0,
                            },
                        }),
                        id,
                    )
                    .await?;
                let mut o = Self::connection(rid.clone(), &v, &Index::new());
                o.spec = r.spec.clone();
                Ok(o)
            }
            Spec::PrivateEndpoint {
                network,
                service,
                subresource,
                subnets,
            } => {
                let [subnet] = &subnets[..] else {
                    return Err(ProviderError::new(
                        Scope::Azure,
                        ErrorKind::Invalid,
                        "PUT privateEndpoints",
                        format!(
                            "{id}: an Azure private endpoint lives in exactly one subnet, not {}",
                            subnets.len()
                        ),
                    ));
                };
                let subnet = refs.cloud_id(subnet)?;
                let properties = json!({
                    "subnet": {"id": subnet},
                    "privateLinkServiceConnections": [{
                        "name": name,
                        "properties": {
                            "privateLinkServiceId": service,
                            "groupIds": subresource.iter().collect::<Vec<_>>(),
                        },
                    }],
                });
                let v = self
                    .put_owned(
                        owner,
                        rid,
                        "privateEndpoints",
                        &region_of(network)?,
                        properties,
                    )
                    .await?;
                let mut o = Self::private_endpoint(rid.clone(), &v, &Index::new());
                o.spec = r.spec.clone();
                Ok(o)
            }
            _ => Err(Self::unsupported(r)),
        }
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
