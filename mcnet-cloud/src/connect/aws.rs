//! AWS through aws-sdk-ec2 (feature `aws`): VPCs with secondary CIDRs,
//! subnets, route tables with associations and VGW propagation, routes,
//! VPC peering (requested and accepted, also across regions), virtual
//! private gateways, VPC endpoints and transit gateways.
//!
//! Credentials and region come from the standard chain; the endpoint from
//! `AWS_ENDPOINT_URL` or [`AwsProvider::new`]'s argument (moto's server in
//! the tests). Every resource is tagged with the owner's tags at creation
//! (`TagSpecifications`), so a create is visible to the next observe even
//! if the process dies right after it. Routes have no tags: a route is
//! mcnet's when its table is, and it is not `local` or propagated.
//!
//! Transit gateways with their VPC attachments and static routes (in the
//! gateway's default route table) are here too.
//!
//! Direct Connect (aws-sdk-directconnect) is in the `dx` module: the gateway with its
//! VGW associations, and the private VIF on a Megaport hosted connection.
//! Moto has no Direct Connect, so its tests run against a mock of the API.
//!
//! Each resource kind has its module, with the EC2 calls that list,
//! create, update and delete it: `vpc` (VPCs and subnets), `route_table`
//! (route tables and routes), `peering`, `vpn` (virtual private gateways),
//! `transit` (transit gateways, attachments, routes), `endpoint` (VPC
//! endpoints) and `dx`. This file holds the provider, its helpers, the
//! trait and the dispatch to those modules.

mod dx;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::types::{
    Filter, GatewayType, ResourceType, RouteOrigin, Tag, TagSpecification, VpcEndpointType,
    VpcPeeringConnectionStateReasonCode,
};
use aws_sdk_ec2::Client;
use mcnet_core::reconcile::{
    ConnectivityProvider, Desired, ErrorKind, Observed, Owner, ProviderError, Refs, ResourceId,
    ResourceKind, ResourceProvider, ResourceState, Scope, Spec, TAG_TOPOLOGY,
};

const KINDS: &[ResourceKind] = &[
    ResourceKind::Network,
    ResourceKind::Subnet,
    ResourceKind::RouteTable,
    ResourceKind::Route,
    ResourceKind::Peering,
    ResourceKind::VpnGateway,
    ResourceKind::PrivateEndpoint,
    ResourceKind::TransitGateway,
    ResourceKind::TransitGatewayAttachment,
    ResourceKind::TransitGatewayRoute,
    ResourceKind::VpnPeer,
    ResourceKind::VpnConnection,
    // Direct Connect: last, so that `kinds()` can leave them out.
    ResourceKind::InterconnectGateway,
    ResourceKind::InterconnectAttachment,
];

/// The AWS provider.
pub struct AwsProvider {
    config: aws_config::SdkConfig,
    endpoint: Option<String>,
    dx: bool,
    dx_endpoint: Option<String>,
    regions: Vec<String>,
    clients: Mutex<BTreeMap<String, Client>>,
    calls: AtomicU64,
    owner: Mutex<Option<Owner>>,
}

impl std::fmt::Debug for AwsProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsProvider")
            .field("endpoint", &self.endpoint)
            .field("regions", &self.regions)
            .finish_non_exhaustive()
    }
}

fn err<
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
>(
    op: &str,
    what: &str,
    e: SdkError<E, R>,
) -> ProviderError {
    let code = e.code().map(str::to_string);
    let kind = match (&e, code.as_deref()) {
        (SdkError::TimeoutError(_) | SdkError::DispatchFailure(_), _) => ErrorKind::Transient,
        (_, Some(c)) if c.contains("Throttl") || c == "RequestLimitExceeded" => {
            ErrorKind::Throttled
        }
        (_, Some(c)) if c.ends_with(".NotFound") || c.ends_with("NotFound") => ErrorKind::NotFound,
        (_, Some(c)) if c.contains("LimitExceeded") => ErrorKind::Quota,
        (_, Some("AuthFailure" | "UnauthorizedOperation")) => ErrorKind::Auth,
        (_, Some(c))
            if c.starts_with("InvalidParameter")
                || c.ends_with(".Malformed")
                || c.ends_with(".Range") =>
        {
            ErrorKind::Invalid
        }
        (_, Some(_)) => ErrorKind::Conflict,
        (SdkError::ResponseError(_), None) => ErrorKind::Transient,
        _ => ErrorKind::Transient,
    };
    // The SDK's message when it has one; otherwise the source chain says
    // what failed (dispatch, timeout, a response that did not parse).
    let message = match e.message() {
        Some(m) => format!("{what}: {m}"),
        None => what.to_string(),
    };
    let mut pe = ProviderError::new(Scope::Aws, kind, op, message).with_source(e);
    if let Some(c) = code {
        pe = pe.with_code(c);
    }
    pe
}

/// Names an EC2 call's failure: `.send().named("CreateVpc", id).await`.
trait Named<T>: Sized {
    fn named<'a>(
        self,
        op: &'a str,
        what: &'a str,
    ) -> impl std::future::Future<Output = Result<T, ProviderError>> + Send + 'a
    where
        Self: 'a;
}

impl<T, E, R, F> Named<T> for F
where
    F: std::future::Future<Output = Result<T, SdkError<E, R>>> + Send,
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
    T: Send + 'static,
{
    async fn named<'a>(self, op: &'a str, what: &'a str) -> Result<T, ProviderError>
    where
        Self: 'a,
    {
        self.await.map_err(|e| err(op, what, e))
    }
}

/// Sets a CreateRoute or ReplaceRoute builder's next hop by the target id's kind.
macro_rules! next_hop {
    ($builder:expr, $target:expr) => {{
        let (b, t) = ($builder, $target);
        if t.starts_with("pcx-") {
            b.vpc_peering_connection_id(t)
        } else if t.starts_with("tgw-") {
            b.transit_gateway_id(t)
        } else {
            b.gateway_id(t)
        }
    }};
}

// After the macro, which they use.
mod endpoint;
mod peering;
mod route_table;
mod transit;
mod vpc;
mod vpn;

/// What a create or an update works from: the owner, the desired resource
/// (its logical spec and id), the references resolved so far and the
/// region the resource lives in.
#[derive(Clone, Copy)]
struct Op<'a> {
    c: &'a Client,
    owner: &'a Owner,
    r: &'a Desired,
    refs: Refs<'a>,
    rid: &'a ResourceId,
    id: &'a str,
    region: &'a str,
}

/// What a list call works from: the region's client, the owner and the
/// filter on its topology tag.
struct Listing<'a> {
    c: &'a Client,
    f: Filter,
    region: &'a str,
    owner: &'a Owner,
}

/// A resource just created: pending until the next observe describes it.
fn just_created(op: &Op<'_>, cloud_id: String) -> Observed {
    let pending = ResourceState::Pending("created".into());
    fresh(op.rid, cloud_id, op.r.spec.clone(), pending, op.region)
}

/// Builds a listed resource of `region`, if its tags give it a logical id.
fn raw_in(region: &str) -> impl Fn(Option<ResourceId>, &str, Spec, &str) -> Option<Raw> + '_ {
    move |id, cloud_id, spec, status| {
        id.map(|id| Raw {
            id,
            cloud_id: cloud_id.to_string(),
            spec,
            state: state_of(status),
            region: region.to_string(),
            status: status.to_string(),
            extra: BTreeMap::new(),
        })
    }
}

/// A resource just created or adopted, before the next observe describes it.
fn fresh(
    id: &ResourceId,
    cloud_id: String,
    spec: Spec,
    state: ResourceState,
    region: &str,
) -> Observed {
    Observed {
        id: id.clone(),
        cloud_id: cloud_id.into(),
        scope: Scope::Aws,
        spec,
        state,
        outputs: BTreeMap::from([("region".into(), region.to_string())]),
        links: vec![],
    }
}

fn tags(owner: &Owner, id: &ResourceId, rt: ResourceType) -> TagSpecification {
    let mut b = TagSpecification::builder().resource_type(rt);
    for (k, v) in owner.tags(id) {
        b = b.tags(Tag::builder().key(k).value(v).build());
    }
    b.build()
}

fn owner_filter(owner: &Owner) -> Filter {
    Filter::builder()
        .name(format!("tag:{TAG_TOPOLOGY}"))
        .values(&owner.topology)
        .build()
}

/// The logical id in `t`, if the tags mark the resource as `owner`'s. The
/// list calls filter by the topology tag already; this holds even where a
/// filter is not honoured (moto ignores it for transit gateway attachments).
fn logical(owner: &Owner, t: &[Tag]) -> Option<ResourceId> {
    owner.owns(t.iter().filter_map(|t| Some((t.key()?, t.value()?))))
}

/// A resource as AWS reports it: references are AWS ids.
struct Raw {
    id: ResourceId,
    cloud_id: String,
    spec: Spec,
    state: ResourceState,
    region: String,
    status: String,
    /// Outputs beside region and status (a VPN connection's `outsideIp`).
    extra: BTreeMap<String, String>,
}

impl Raw {
    fn outputs(&self) -> BTreeMap<String, String> {
        let mut o = self.extra.clone();
        o.insert("region".into(), self.region.clone());
        o.insert("status".into(), self.status.clone());
        o
    }
}

fn state_of(s: &str) -> ResourceState {
    match s {
        "available" | "active" | "attached" => ResourceState::Ready,
        "failed" | "rejected" | "expired" => ResourceState::Failed(s.into()),
        other => ResourceState::Pending(other.into()),
    }
}

impl AwsProvider {
    /// A provider for `regions` (the topology's AWS regions), with the
    /// standard credential chain and `endpoint` (else `AWS_ENDPOINT_URL`).
    pub async fn new(regions: Vec<String>, endpoint: Option<String>) -> AwsProvider {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(e) = &endpoint {
            loader = loader.endpoint_url(e);
        }
        AwsProvider {
            config: loader.load().await,
            endpoint,
            dx: false,
            dx_endpoint: None,
            regions,
            clients: Mutex::new(BTreeMap::new()),
            calls: AtomicU64::new(0),
            owner: Mutex::new(None),
        }
    }

    /// Manages Direct Connect gateways and VIFs too. Off by default: an
    /// account that uses no Direct Connect is not asked about it (and moto
    /// has none). Turn it on for a topology with a Direct Connect VXC, and
    /// keep it on to destroy one.
    pub fn with_direct_connect(mut self, on: bool) -> AwsProvider {
        self.dx = on;
        self
    }

    /// Manages Direct Connect, sending its calls to `url` (the standard
    /// `AWS_ENDPOINT_URL_DIRECT_CONNECT` does the same from the environment).
    pub fn with_direct_connect_endpoint(mut self, url: impl Into<String>) -> AwsProvider {
        self.dx_endpoint = Some(url.into());
        self.with_direct_connect(true)
    }

    /// Uses `client` for `region` instead of one built from the standard
    /// chain (a client with its own configuration, or an SDK-level mock).
    pub fn with_ec2_client(self, region: &str, client: Client) -> AwsProvider {
        self.clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(region.to_string(), client);
        self
    }

    fn client(&self, region: &str) -> Client {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let mut m = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        m.entry(region.to_string())
            .or_insert_with(|| {
                let conf = aws_sdk_ec2::config::Builder::from(&self.config)
                    .region(aws_sdk_ec2::config::Region::new(region.to_string()))
                    .build();
                Client::from_conf(conf)
            })
            .clone()
    }

    fn region_of(refs: &Refs<'_>, id: &str) -> Result<String, ProviderError> {
        refs.output(id, "region").map(str::to_string)
    }

    fn unsupported(&self, r: &str, kind: ResourceKind) -> ProviderError {
        ProviderError::new(
            Scope::Aws,
            ErrorKind::Invalid,
            "select",
            format!("{r}: {kind} is not supported by the AWS provider yet (the sim covers it)"),
        )
    }
}

#[async_trait]
impl ResourceProvider for AwsProvider {
    fn scope(&self) -> Scope {
        Scope::Aws
    }

    fn kinds(&self) -> &'static [ResourceKind] {
        if self.dx {
            KINDS
        } else {
            &KINDS[..KINDS.len() - 2]
        }
    }

    async fn observe(&self, owner: &Owner) -> Result<Vec<Observed>, ProviderError> {
        self.remember(owner);
        let mut raws = Vec::new();
        for region in &self.regions {
            for kind in self.kinds() {
                raws.extend(self.list(*kind, region, owner).await?);
            }
        }
        let idx: BTreeMap<String, String> = raws
            .iter()
            .map(|r| (r.cloud_id.clone(), r.id.to_string()))
            .collect();
        Ok(raws.into_iter().map(|r| Self::finish(r, &idx)).collect())
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
        self.update_resource(owner, r, current, refs).await
    }

    async fn delete(&self, current: &Observed) -> Result<(), ProviderError> {
        self.delete_resource(current).await
    }

    async fn refresh(&self, current: &Observed) -> Result<Option<Observed>, ProviderError> {
        let region = current.outputs.get("region").cloned().unwrap_or_default();
        // One list call for the kind, filtered to the owner's resources.
        let topo = self
            .owner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| {
                ProviderError::new(
                    Scope::Aws,
                    ErrorKind::Invalid,
                    "refresh",
                    "refresh before observe or create",
                )
            })?;
        let found = self
            .list(current.spec.kind(), &region, &topo)
            .await?
            .into_iter()
            .find(|r| r.cloud_id == current.cloud_id);
        Ok(found.map(|r| Observed {
            outputs: r.outputs(),
            state: r.state,
            links: r.spec.refs().into_iter().cloned().collect(),
            ..current.clone()
        }))
    }

    fn api_calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }
}

impl AwsProvider {
    /// Lists one kind in one region.
    async fn list(
        &self,
        kind: ResourceKind,
        region: &str,
        owner: &Owner,
    ) -> Result<Vec<Raw>, ProviderError> {
        use ResourceKind as K;
        if matches!(kind, K::InterconnectGateway | K::InterconnectAttachment) {
            return self.dx_list(kind, region, owner).await;
        }
        let l = &Listing {
            c: &self.client(region),
            f: owner_filter(owner),
            region,
            owner,
        };
        match kind {
            K::Network => self.list_networks(l).await,
            K::Subnet => self.list_subnets(l).await,
            K::RouteTable | K::Route => self.list_route_tables(l, kind).await,
            K::Peering => self.list_peerings(l).await,
            K::VpnGateway => self.list_vpn_gateways(l).await,
            K::VpnPeer => self.list_customer_gateways(l).await,
            K::VpnConnection => self.list_vpn_connections(l).await,
            K::TransitGateway | K::TransitGatewayRoute => self.list_transit_gateways(l, kind).await,
            K::TransitGatewayAttachment => self.list_transit_gateway_attachments(l).await,
            K::PrivateEndpoint => self.list_endpoints(l).await,
            _ => Ok(Vec::new()),
        }
    }

    fn finish(raw: Raw, idx: &BTreeMap<String, String>) -> Observed {
        let links: Vec<String> = raw.spec.refs().into_iter().cloned().collect();
        let outputs = raw.outputs();
        let mut spec = raw.spec;
        // AWS ids never contain `/`; a reference that does is a logical id
        // already (a VIF's VXC, kept in a tag).
        spec.map_refs(|c| match idx.get(c) {
            Some(id) => id.clone(),
            None if c.contains('/') => c.to_string(),
            None => format!("unmanaged:{c}"),
        });
        if let Spec::InterconnectGateway { associations, .. } = &mut spec {
            associations.sort();
        }
        Observed {
            id: raw.id,
            cloud_id: raw.cloud_id.into(),
            scope: Scope::Aws,
            spec,
            state: raw.state,
            outputs,
            links,
        }
    }

    /// Creates a resource, tagged with its owner and logical id at creation.
    async fn create_resource(
        &self,
        owner: &Owner,
        r: &Desired,
        refs: Refs<'_>,
    ) -> Result<Observed, ProviderError> {
        self.remember(owner);
        if matches!(
            r.spec,
            Spec::InterconnectGateway { .. } | Spec::InterconnectAttachment { .. }
        ) {
            return self.dx_create(owner, r, refs).await;
        }
        let spec = refs.to_cloud(&r.spec)?;
        let id = r.id.as_str();
        let region = match &r.spec {
            Spec::Network { region, .. } => region.clone(),
            Spec::Subnet { network, .. }
            | Spec::RouteTable { network, .. }
            | Spec::VpnGateway { network, .. }
            | Spec::PrivateEndpoint { network, .. }
            | Spec::TransitGatewayAttachment { network, .. } => Self::region_of(&refs, network)?,
            Spec::TransitGateway { region, .. } => region.clone(),
            Spec::TransitGatewayRoute {
                transit_gateway, ..
            } => Self::region_of(&refs, transit_gateway)?,
            Spec::Route { route_table, .. } => Self::region_of(&refs, route_table)?,
            Spec::Peering { requester, .. } => Self::region_of(&refs, requester)?,
            Spec::VpnPeer { network, .. } => Self::region_of(&refs, network)?,
            Spec::VpnConnection { gateway, .. } => Self::region_of(&refs, gateway)?,
            other => return Err(self.unsupported(id, other.kind())),
        };
        let op = &Op {
            c: &self.client(&region),
            owner,
            r,
            refs,
            rid: &r.id,
            id,
            region: &region,
        };
        let s = &spec;
        match s {
            Spec::Network { .. } => self.create_network(op, s).await,
            Spec::Subnet { .. } => self.create_subnet(op, s).await,
            Spec::RouteTable { .. } => self.create_route_table(op, s).await,
            Spec::Route { .. } => self.create_route(op, s).await,
            Spec::Peering { .. } => self.create_peering(op, s).await,
            Spec::VpnGateway { .. } => self.create_vpn_gateway(op, s).await,
            Spec::TransitGateway { .. } => self.create_transit_gateway(op, s).await,
            Spec::TransitGatewayAttachment { .. } => {
                self.create_transit_gateway_attachment(op, s).await
            }
            Spec::TransitGatewayRoute { .. } => self.create_transit_gateway_route(op, s).await,
            Spec::PrivateEndpoint { .. } => self.create_endpoint(op, s).await,
            Spec::VpnPeer { .. } => self.create_customer_gateway(op).await,
            Spec::VpnConnection { .. } => self.create_vpn_connection(op, s).await,
            other => Err(self.unsupported(id, other.kind())),
        }
    }

    /// Updates a resource in place.
    async fn update_resource(
        &self,
        owner: &Owner,
        r: &Desired,
        current: &Observed,
        refs: Refs<'_>,
    ) -> Result<Observed, ProviderError> {
        let want = refs.to_cloud(&r.spec)?;
        let id = r.id.as_str();
        if matches!(
            want,
            Spec::InterconnectGateway { .. } | Spec::InterconnectAttachment { .. }
        ) {
            self.dx_update(current, &want, id).await?;
            return Ok(Observed {
                spec: r.spec.clone(),
                state: ResourceState::Pending("updated".into()),
                ..current.clone()
            });
        }
        let region = current
            .outputs
            .get("region")
            .cloned()
            .ok_or_else(|| self.unsupported(id, r.kind()))?;
        let op = &Op {
            c: &self.client(&region),
            owner,
            r,
            refs,
            rid: &r.id,
            id,
            region: &region,
        };
        let w = &want;
        match w {
            Spec::Network { .. } => self.update_network(op, current, w).await?,
            Spec::RouteTable { .. } => self.update_route_table(op, current, w).await?,
            Spec::Route { .. } => self.update_route(op, w).await?,
            Spec::Peering { .. } if current.state != ResourceState::Ready => {
                self.update_peering(op, current, w).await?
            }
            Spec::TransitGatewayAttachment { .. } => {
                self.update_transit_gateway_attachment(op, current, w)
                    .await?
            }
            Spec::TransitGatewayRoute { .. } => {
                self.update_transit_gateway_route(op, current, w).await?
            }
            Spec::PrivateEndpoint { .. } => self.update_endpoint(op, current, w).await?,
            _ => {}
        }
        Ok(Observed {
            spec: r.spec.clone(),
            state: ResourceState::Pending("updated".into()),
            ..current.clone()
        })
    }

    /// Deletes a resource.
    async fn delete_resource(&self, current: &Observed) -> Result<(), ProviderError> {
        use ResourceKind as K;
        let kind = current.spec.kind();
        if matches!(kind, K::InterconnectGateway | K::InterconnectAttachment) {
            return self.dx_delete(current).await;
        }
        let region = current.outputs.get("region").cloned().unwrap_or_default();
        let c = &self.client(&region);
        match kind {
            K::Network => self.delete_network(c, current).await,
            K::Subnet => self.delete_subnet(c, current).await,
            K::RouteTable => self.delete_route_table(c, current).await,
            K::Route => self.delete_route(c, current).await,
            K::Peering => self.delete_peering(c, current).await,
            K::VpnGateway => self.delete_vpn_gateway(c, current).await,
            K::TransitGateway => self.delete_transit_gateway(c, current).await,
            K::TransitGatewayAttachment => self.delete_transit_gateway_attachment(c, current).await,
            K::TransitGatewayRoute => self.delete_transit_gateway_route(c, current).await,
            K::PrivateEndpoint => self.delete_endpoint(c, current).await,
            K::VpnPeer => self.delete_customer_gateway(c, current).await,
            K::VpnConnection => self.delete_vpn_connection(c, current).await,
            other => Err(self.unsupported(current.id.as_str(), other)),
        }
    }

    fn remember(&self, owner: &Owner) {
        *self.owner.lock().unwrap_or_else(|p| p.into_inner()) = Some(owner.clone());
    }
}

impl ConnectivityProvider for AwsProvider {}
