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
        cloud_id,
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

    /// Lists one kind in one region.
    async fn list(
        &self,
        kind: ResourceKind,
        region: &str,
        owner: &Owner,
    ) -> Result<Vec<Raw>, ProviderError> {
        if matches!(
            kind,
            ResourceKind::InterconnectGateway | ResourceKind::InterconnectAttachment
        ) {
            return self.dx_list(kind, region, owner).await;
        }
        let c = self.client(region);
        let f = owner_filter(owner);
        let mut out = Vec::new();
        let raw = |id: Option<ResourceId>, cloud_id: &str, spec: Spec, status: &str| {
            id.map(|id| Raw {
                id,
                cloud_id: cloud_id.to_string(),
                spec,
                state: state_of(status),
                region: region.to_string(),
                status: status.to_string(),
            })
        };
        match kind {
            ResourceKind::Network => {
                let r = c
                    .describe_vpcs()
                    .filters(f)
                    .send()
                    .named("DescribeVpcs", region)
                    .await?;
                for v in r.vpcs() {
                    let cidrs = v
                        .cidr_block_association_set()
                        .iter()
                        .filter(|a| {
                            a.cidr_block_state()
                                .and_then(|s| s.state())
                                .is_none_or(|s| {
                                    s.as_str() == "associated" || s.as_str() == "associating"
                                })
                        })
                        .filter_map(|a| a.cidr_block().map(str::to_string))
                        .collect();
                    let spec = Spec::Network {
                        region: region.to_string(),
                        cidrs,
                    };
                    let status = v.state().map_or("available", |s| s.as_str());
                    out.extend(raw(
                        logical(owner, v.tags()),
                        v.vpc_id().unwrap_or_default(),
                        spec,
                        status,
                    ));
                }
            }
            ResourceKind::Subnet => {
                let r = c
                    .describe_subnets()
                    .filters(f)
                    .send()
                    .named("DescribeSubnets", region)
                    .await?;
                for s in r.subnets() {
                    let spec = Spec::Subnet {
                        network: s.vpc_id().unwrap_or_default().into(),
                        cidr: s.cidr_block().unwrap_or_default().into(),
                        zone: s.availability_zone().map(str::to_string),
                    };
                    let status = s.state().map_or("available", |x| x.as_str());
                    out.extend(raw(
                        logical(owner, s.tags()),
                        s.subnet_id().unwrap_or_default(),
                        spec,
                        status,
                    ));
                }
            }
            ResourceKind::RouteTable | ResourceKind::Route => {
                let r = c
                    .describe_route_tables()
                    .filters(f)
                    .send()
                    .named("DescribeRouteTables", region)
                    .await?;
                for t in r.route_tables() {
                    let Some(id) = logical(owner, t.tags()) else {
                        continue;
                    };
                    let rtb = t.route_table_id().unwrap_or_default();
                    if kind == ResourceKind::RouteTable {
                        let spec = Spec::RouteTable {
                            network: t.vpc_id().unwrap_or_default().into(),
                            subnets: t
                                .associations()
                                .iter()
                                .filter_map(|a| a.subnet_id().map(str::to_string))
                                .collect(),
                            propagating_gateways: t
                                .propagating_vgws()
                                .iter()
                                .filter_map(|g| g.gateway_id().map(str::to_string))
                                .collect(),
                        };
                        out.extend(raw(Some(id), rtb, spec, "available"));
                        continue;
                    }
                    let net = id.name().to_string();
                    for rt in t.routes() {
                        if rt.origin() != Some(&RouteOrigin::CreateRoute) {
                            continue; // local and propagated routes are not ours
                        }
                        let Some(dest) = rt.destination_cidr_block() else {
                            continue;
                        };
                        let target = rt
                            .vpc_peering_connection_id()
                            .or(rt.transit_gateway_id())
                            .or(rt.gateway_id())
                            .unwrap_or_default();
                        let spec = Spec::Route {
                            route_table: rtb.into(),
                            destination: dest.into(),
                            target: target.into(),
                        };
                        let status = rt.state().map_or("active", |s| s.as_str());
                        let status = if status == "blackhole" {
                            "failed"
                        } else {
                            "available"
                        };
                        out.extend(raw(
                            Some(ResourceId::route(&net, dest)),
                            &format!("{rtb}|{dest}"),
                            spec,
                            status,
                        ));
                    }
                }
            }
            ResourceKind::Peering => {
                let r = c
                    .describe_vpc_peering_connections()
                    .filters(f)
                    .send()
                    .named("DescribeVpcPeeringConnections", region)
                    .await?;
                for p in r.vpc_peering_connections() {
                    let code = p.status().and_then(|s| s.code());
                    if code == Some(&VpcPeeringConnectionStateReasonCode::Deleted) {
                        continue;
                    }
                    let (req, acc) = (p.requester_vpc_info(), p.accepter_vpc_info());
                    // A cross-region peering shows in both regions; keep the requester's view.
                    if req.and_then(|r| r.region()).is_some_and(|r| r != region) {
                        continue;
                    }
                    let peer_region = acc
                        .and_then(|a| a.region())
                        .filter(|r| *r != region)
                        .map(str::to_string);
                    let spec = Spec::Peering {
                        requester: req.and_then(|r| r.vpc_id()).unwrap_or_default().into(),
                        accepter: acc.and_then(|a| a.vpc_id()).unwrap_or_default().into(),
                        peer_region,
                    };
                    let status = code.map_or("pending-acceptance", |c| c.as_str());
                    out.extend(raw(
                        logical(owner, p.tags()),
                        p.vpc_peering_connection_id().unwrap_or_default(),
                        spec,
                        status,
                    ));
                }
            }
            ResourceKind::VpnGateway => {
                let r = c
                    .describe_vpn_gateways()
                    .filters(f)
                    .send()
                    .named("DescribeVpnGateways", region)
                    .await?;
                for g in r.vpn_gateways() {
                    let state = g.state().map_or("available", |s| s.as_str());
                    if state == "deleted" {
                        continue;
                    }
                    let att = g
                        .vpc_attachments()
                        .iter()
                        .find(|a| a.state().is_some_and(|s| s.as_str() != "detached"));
                    let status = match att.and_then(|a| a.state()) {
                        Some(s) if state == "available" => s.as_str(),
                        _ => state,
                    };
                    let spec = Spec::VpnGateway {
                        network: att.and_then(|a| a.vpc_id()).unwrap_or_default().into(),
                        asn: None,
                    };
                    out.extend(raw(
                        logical(owner, g.tags()),
                        g.vpn_gateway_id().unwrap_or_default(),
                        spec,
                        status,
                    ));
                }
            }
            ResourceKind::TransitGateway | ResourceKind::TransitGatewayRoute => {
                let r = c
                    .describe_transit_gateways()
                    .filters(f)
                    .send()
                    .named("DescribeTransitGateways", region)
                    .await?;
                for g in r.transit_gateways() {
                    let status = g.state().map_or("available", |s| s.as_str());
                    if status == "deleted" || status == "deleting" {
                        continue;
                    }
                    let Some(id) = logical(owner, g.tags()) else {
                        continue;
                    };
                    let tgw = g.transit_gateway_id().unwrap_or_default();
                    let opts = g.options();
                    if kind == ResourceKind::TransitGateway {
                        let spec = Spec::TransitGateway {
                            region: region.to_string(),
                            asn: opts
                                .and_then(|o| o.amazon_side_asn())
                                .and_then(|a| u32::try_from(a).ok())
                                .unwrap_or_default(),
                        };
                        out.extend(raw(Some(id), tgw, spec, status));
                        continue;
                    }
                    // Static routes of its default route table (one read per transit gateway).
                    let Some(rtb) = opts.and_then(|o| o.association_default_route_table_id())
                    else {
                        continue;
                    };
                    let routes = self
                        .client(region)
                        .search_transit_gateway_routes()
                        .transit_gateway_route_table_id(rtb)
                        .filters(Filter::builder().name("type").values("static").build())
                        .send()
                        .named("SearchTransitGatewayRoutes", region)
                        .await?;
                    let name = id.name();
                    for rt in routes.routes() {
                        let Some(dest) = rt.destination_cidr_block() else {
                            continue;
                        };
                        let att = rt
                            .transit_gateway_attachments()
                            .first()
                            .and_then(|a| a.transit_gateway_attachment_id())
                            .unwrap_or_default();
                        let spec = Spec::TransitGatewayRoute {
                            transit_gateway: tgw.into(),
                            destination: dest.into(),
                            attachment: att.into(),
                        };
                        let st = rt.state().map_or("active", |s| s.as_str());
                        let st = if st == "blackhole" {
                            "failed"
                        } else {
                            "available"
                        };
                        out.extend(raw(
                            Some(ResourceId::transit_gateway_route(name, dest)),
                            &format!("{rtb}|{dest}"),
                            spec,
                            st,
                        ));
                    }
                }
            }
            ResourceKind::TransitGatewayAttachment => {
                let r = c
                    .describe_transit_gateway_vpc_attachments()
                    .filters(f)
                    .send()
                    .named("DescribeTransitGatewayVpcAttachments", region)
                    .await?;
                for a in r.transit_gateway_vpc_attachments() {
                    let status = a.state().map_or("available", |s| s.as_str());
                    if status == "deleted" || status == "deleting" {
                        continue;
                    }
                    let spec = Spec::TransitGatewayAttachment {
                        transit_gateway: a.transit_gateway_id().unwrap_or_default().into(),
                        network: a.vpc_id().unwrap_or_default().into(),
                        subnets: a.subnet_ids().to_vec(),
                    };
                    out.extend(raw(
                        logical(owner, a.tags()),
                        a.transit_gateway_attachment_id().unwrap_or_default(),
                        spec,
                        status,
                    ));
                }
            }
            ResourceKind::PrivateEndpoint => {
                let r = c
                    .describe_vpc_endpoints()
                    .filters(f)
                    .send()
                    .named("DescribeVpcEndpoints", region)
                    .await?;
                for v in r.vpc_endpoints() {
                    let state = v
                        .state()
                        .map_or("available", |s| s.as_str())
                        .to_ascii_lowercase();
                    if state == "deleted" {
                        continue;
                    }
                    let spec = Spec::PrivateEndpoint {
                        network: v.vpc_id().unwrap_or_default().into(),
                        service: v.service_name().unwrap_or_default().into(),
                        subresource: None,
                        subnets: v.subnet_ids().to_vec(),
                    };
                    out.extend(raw(
                        logical(owner, v.tags()),
                        v.vpc_endpoint_id().unwrap_or_default(),
                        spec,
                        &state,
                    ));
                }
            }
            _ => {}
        }
        Ok(out)
    }

    fn finish(raw: Raw, idx: &BTreeMap<String, String>) -> Observed {
        let links: Vec<String> = raw.spec.refs().into_iter().cloned().collect();
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
            cloud_id: raw.cloud_id,
            scope: Scope::Aws,
            spec,
            state: raw.state,
            outputs: BTreeMap::from([("region".into(), raw.region), ("status".into(), raw.status)]),
            links,
        }
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
        self.remember(owner);
        if matches!(
            r.spec,
            Spec::InterconnectGateway { .. } | Spec::InterconnectAttachment { .. }
        ) {
            return self.dx_create(owner, r, refs).await;
        }
        let spec = refs.to_cloud(&r.spec)?;
        let rid = &r.id;
        let id = rid.as_str();
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
            other => return Err(self.unsupported(id, other.kind())),
        };
        let c = self.client(&region);
        let cloud_id = match &spec {
            Spec::Network { cidrs, .. } => {
                let first = cidrs.first().cloned().unwrap_or_default();
                let out = c
                    .create_vpc()
                    .cidr_block(first)
                    .tag_specifications(tags(owner, rid, ResourceType::Vpc))
                    .send()
                    .named("CreateVpc", id)
                    .await?;
                let vpc = out
                    .vpc()
                    .and_then(|v| v.vpc_id())
                    .unwrap_or_default()
                    .to_string();
                for extra in cidrs.iter().skip(1) {
                    self.client(&region)
                        .associate_vpc_cidr_block()
                        .vpc_id(&vpc)
                        .cidr_block(extra)
                        .send()
                        .named("AssociateVpcCidrBlock", id)
                        .await?;
                }
                vpc
            }
            Spec::Subnet {
                network,
                cidr,
                zone,
            } => {
                let out = c
                    .create_subnet()
                    .vpc_id(network)
                    .cidr_block(cidr)
                    .set_availability_zone(zone.clone())
                    .tag_specifications(tags(owner, rid, ResourceType::Subnet))
                    .send()
                    .named("CreateSubnet", id)
                    .await?;
                out.subnet()
                    .and_then(|s| s.subnet_id())
                    .unwrap_or_default()
                    .to_string()
            }
            Spec::RouteTable { network, .. } => {
                let out = c
                    .create_route_table()
                    .vpc_id(network)
                    .tag_specifications(tags(owner, rid, ResourceType::RouteTable))
                    .send()
                    .named("CreateRouteTable", id)
                    .await?;
                let rtb = out
                    .route_table()
                    .and_then(|t| t.route_table_id())
                    .unwrap_or_default()
                    .to_string();
                // Associations and propagation are the update's job.
                let empty = Spec::RouteTable {
                    network: String::new(),
                    subnets: vec![],
                    propagating_gateways: vec![],
                };
                let created = fresh(rid, rtb, empty, ResourceState::Ready, &region);
                return self.update(owner, r, &created, refs).await;
            }
            Spec::Route {
                route_table,
                destination,
                target,
            } => {
                let b = next_hop!(
                    c.create_route()
                        .route_table_id(route_table)
                        .destination_cidr_block(destination),
                    target
                );
                match b.send().await {
                    Ok(_) => {}
                    // Already there (a create whose answer was lost): make it ours.
                    Err(e) if e.code() == Some("RouteAlreadyExists") => {
                        let cid = format!("{route_table}|{destination}");
                        let current =
                            fresh(rid, cid, r.spec.clone(), ResourceState::Ready, &region);
                        return self.update(owner, r, &current, refs).await;
                    }
                    // A route to a transit gateway waits for the VPC's
                    // attachment, which may still be pending: retried.
                    Err(e)
                        if target.starts_with("tgw-")
                            && e.code()
                                .is_some_and(|c| c.starts_with("InvalidTransitGatewayID")) =>
                    {
                        let mut pe = err("CreateRoute", id, e);
                        pe.kind = ErrorKind::Transient;
                        pe.message = format!(
                            "{} (waiting for the VPC's attachment to {target})",
                            pe.message
                        );
                        return Err(pe);
                    }
                    Err(e) => return Err(err("CreateRoute", id, e)),
                }
                format!("{route_table}|{destination}")
            }
            Spec::Peering {
                requester,
                accepter,
                peer_region,
            } => {
                let out = c
                    .create_vpc_peering_connection()
                    .vpc_id(requester)
                    .peer_vpc_id(accepter)
                    .set_peer_region(peer_region.clone())
                    .tag_specifications(tags(owner, rid, ResourceType::VpcPeeringConnection))
                    .send()
                    .named("CreateVpcPeeringConnection", id)
                    .await?;
                let made = out.vpc_peering_connection();
                let pcx = made
                    .and_then(|p| p.vpc_peering_connection_id())
                    .unwrap_or_default()
                    .to_string();
                // AWS refuses some peerings by failing them at once
                // (overlapping CIDRs): nothing to accept.
                if let Some(st) = made
                    .and_then(|p| p.status())
                    .filter(|s| s.code() == Some(&VpcPeeringConnectionStateReasonCode::Failed))
                {
                    return Err(ProviderError::new(
                        Scope::Aws,
                        ErrorKind::Invalid,
                        "CreateVpcPeeringConnection",
                        format!(
                            "{id}: AWS failed peering {pcx}: {}",
                            st.message().unwrap_or("no reason given")
                        ),
                    ));
                }
                self.accept(&pcx, peer_region.as_deref().unwrap_or(&region), id)
                    .await?;
                pcx
            }
            Spec::VpnGateway { network, asn } => {
                let mut b = c
                    .create_vpn_gateway()
                    .r#type(GatewayType::Ipsec1)
                    .tag_specifications(tags(owner, rid, ResourceType::VpnGateway));
                if let Some(a) = asn {
                    b = b.amazon_side_asn(i64::from(*a));
                }
                let out = b.send().named("CreateVpnGateway", id).await?;
                let vgw = out
                    .vpn_gateway()
                    .and_then(|g| g.vpn_gateway_id())
                    .unwrap_or_default()
                    .to_string();
                self.client(&region)
                    .attach_vpn_gateway()
                    .vpn_gateway_id(&vgw)
                    .vpc_id(network)
                    .send()
                    .named("AttachVpnGateway", id)
                    .await?;
                vgw
            }
            Spec::TransitGateway { asn, .. } => {
                let opts = aws_sdk_ec2::types::TransitGatewayRequestOptions::builder()
                    .amazon_side_asn(i64::from(*asn))
                    .build();
                let out = c
                    .create_transit_gateway()
                    .description(id)
                    .options(opts)
                    .tag_specifications(tags(owner, rid, ResourceType::TransitGateway))
                    .send()
                    .named("CreateTransitGateway", id)
                    .await?;
                out.transit_gateway()
                    .and_then(|g| g.transit_gateway_id())
                    .unwrap_or_default()
                    .to_string()
            }
            Spec::TransitGatewayAttachment {
                transit_gateway,
                network,
                subnets,
            } => {
                let out = c
                    .create_transit_gateway_vpc_attachment()
                    .transit_gateway_id(transit_gateway)
                    .vpc_id(network)
                    .set_subnet_ids(Some(subnets.clone()))
                    .tag_specifications(tags(owner, rid, ResourceType::TransitGatewayAttachment))
                    .send()
                    .named("CreateTransitGatewayVpcAttachment", id)
                    .await?;
                let att = out
                    .transit_gateway_vpc_attachment()
                    .and_then(|a| a.transit_gateway_attachment_id())
                    .unwrap_or_default()
                    .to_string();
                // Tag again by id: moto drops TagSpecifications on this type
                // (AWS keeps them; there the call changes nothing).
                let mut t = self.client(&region).create_tags().resources(&att);
                for (k, v) in owner.tags(rid) {
                    t = t.tags(Tag::builder().key(k).value(v).build());
                }
                t.send().named("CreateTags", id).await?;
                att
            }
            Spec::TransitGatewayRoute {
                transit_gateway,
                destination,
                attachment,
            } => {
                let rtb = self.tgw_route_table(&region, transit_gateway, id).await?;
                c.create_transit_gateway_route()
                    .transit_gateway_route_table_id(&rtb)
                    .destination_cidr_block(destination)
                    .transit_gateway_attachment_id(attachment)
                    .send()
                    .named("CreateTransitGatewayRoute", id)
                    .await?;
                format!("{rtb}|{destination}")
            }
            Spec::PrivateEndpoint {
                network,
                service,
                subnets,
                ..
            } => {
                let kind = if subnets.is_empty() {
                    VpcEndpointType::Gateway
                } else {
                    VpcEndpointType::Interface
                };
                let out = c
                    .create_vpc_endpoint()
                    .vpc_id(network)
                    .service_name(service)
                    .vpc_endpoint_type(kind)
                    .set_subnet_ids((!subnets.is_empty()).then(|| subnets.clone()))
                    .tag_specifications(tags(owner, rid, ResourceType::VpcEndpoint))
                    .send()
                    .named("CreateVpcEndpoint", id)
                    .await?;
                out.vpc_endpoint()
                    .and_then(|v| v.vpc_endpoint_id())
                    .unwrap_or_default()
                    .to_string()
            }
            other => return Err(self.unsupported(id, other.kind())),
        };
        let pending = ResourceState::Pending("created".into());
        Ok(fresh(rid, cloud_id, r.spec.clone(), pending, &region))
    }

    async fn update(
        &self,
        _owner: &Owner,
        r: &Desired,
        current: &Observed,
        refs: Refs<'_>,
    ) -> Result<Observed, ProviderError> {
        let want = refs.to_cloud(&r.spec)?;
        let rid = &r.id;
        let id = rid.as_str();
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
        let c = self.client(&region);
        match &want {
            Spec::Network { cidrs, .. } => {
                let have = match &current.spec {
                    Spec::Network { cidrs, .. } => cidrs.clone(),
                    _ => vec![],
                };
                for add in cidrs.iter().filter(|x| !have.contains(x)) {
                    c.associate_vpc_cidr_block()
                        .vpc_id(&current.cloud_id)
                        .cidr_block(add)
                        .send()
                        .named("AssociateVpcCidrBlock", id)
                        .await?;
                }
            }
            Spec::RouteTable {
                subnets,
                propagating_gateways,
                ..
            } => {
                // Read the table's real associations: ids, not logical names.
                let t = c
                    .describe_route_tables()
                    .route_table_ids(&current.cloud_id)
                    .send()
                    .named("DescribeRouteTables", id)
                    .await?;
                let t = t.route_tables().first();
                let assoc: Vec<(String, String)> = t
                    .map(|t| {
                        t.associations()
                            .iter()
                            .filter_map(|a| {
                                Some((
                                    a.subnet_id()?.to_string(),
                                    a.route_table_association_id()?.to_string(),
                                ))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let vgws: Vec<String> = t
                    .map(|t| {
                        t.propagating_vgws()
                            .iter()
                            .filter_map(|g| g.gateway_id().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                for s in subnets
                    .iter()
                    .filter(|s| !assoc.iter().any(|(x, _)| x == *s))
                {
                    self.client(&region)
                        .associate_route_table()
                        .route_table_id(&current.cloud_id)
                        .subnet_id(s)
                        .send()
                        .named("AssociateRouteTable", id)
                        .await?;
                }
                for (_, a) in assoc.iter().filter(|(s, _)| !subnets.contains(s)) {
                    self.client(&region)
                        .disassociate_route_table()
                        .association_id(a)
                        .send()
                        .named("DisassociateRouteTable", id)
                        .await?;
                }
                for g in propagating_gateways.iter().filter(|g| !vgws.contains(g)) {
                    self.client(&region)
                        .enable_vgw_route_propagation()
                        .route_table_id(&current.cloud_id)
                        .gateway_id(g)
                        .send()
                        .named("EnableVgwRoutePropagation", id)
                        .await?;
                }
            }
            Spec::Route {
                route_table,
                destination,
                target,
            } => {
                let b = next_hop!(
                    c.replace_route()
                        .route_table_id(route_table)
                        .destination_cidr_block(destination),
                    target
                );
                b.send().named("ReplaceRoute", id).await?;
            }
            Spec::Peering { peer_region, .. } if current.state != ResourceState::Ready => {
                self.accept(
                    &current.cloud_id,
                    peer_region.as_deref().unwrap_or(&region),
                    id,
                )
                .await?;
            }
            Spec::TransitGatewayAttachment { subnets, .. } => {
                let have: Vec<String> = current.links.iter().skip(2).cloned().collect();
                let add: Vec<String> = subnets
                    .iter()
                    .filter(|s| !have.contains(s))
                    .cloned()
                    .collect();
                let remove: Vec<String> = have
                    .iter()
                    .filter(|s| !subnets.contains(s))
                    .cloned()
                    .collect();
                c.modify_transit_gateway_vpc_attachment()
                    .transit_gateway_attachment_id(&current.cloud_id)
                    .set_add_subnet_ids((!add.is_empty()).then_some(add))
                    .set_remove_subnet_ids((!remove.is_empty()).then_some(remove))
                    .send()
                    .named("ModifyTransitGatewayVpcAttachment", id)
                    .await?;
            }
            Spec::TransitGatewayRoute {
                destination,
                attachment,
                ..
            } => {
                let (rtb, _) = current.cloud_id.split_once('|').unwrap_or_default();
                c.replace_transit_gateway_route()
                    .transit_gateway_route_table_id(rtb)
                    .destination_cidr_block(destination)
                    .transit_gateway_attachment_id(attachment)
                    .send()
                    .named("ReplaceTransitGatewayRoute", id)
                    .await?;
            }
            Spec::PrivateEndpoint { subnets, .. } => {
                let have: Vec<String> = current.links.iter().skip(1).cloned().collect();
                let add: Vec<String> = subnets
                    .iter()
                    .filter(|s| !have.contains(s))
                    .cloned()
                    .collect();
                let remove: Vec<String> = have
                    .iter()
                    .filter(|s| !subnets.contains(s))
                    .cloned()
                    .collect();
                c.modify_vpc_endpoint()
                    .vpc_endpoint_id(&current.cloud_id)
                    .set_add_subnet_ids((!add.is_empty()).then_some(add))
                    .set_remove_subnet_ids((!remove.is_empty()).then_some(remove))
                    .send()
                    .named("ModifyVpcEndpoint", id)
                    .await?;
            }
            _ => {}
        }
        Ok(Observed {
            spec: r.spec.clone(),
            state: ResourceState::Pending("updated".into()),
            ..current.clone()
        })
    }

    async fn delete(&self, current: &Observed) -> Result<(), ProviderError> {
        if matches!(
            current.spec.kind(),
            ResourceKind::InterconnectGateway | ResourceKind::InterconnectAttachment
        ) {
            return self.dx_delete(current).await;
        }
        let id = current.id.as_str();
        let region = current.outputs.get("region").cloned().unwrap_or_default();
        let c = self.client(&region);
        let cid = current.cloud_id.as_str();
        match current.spec.kind() {
            ResourceKind::Network => c
                .delete_vpc()
                .vpc_id(cid)
                .send()
                .named("DeleteVpc", id)
                .await
                .map(drop),
            ResourceKind::Subnet => c
                .delete_subnet()
                .subnet_id(cid)
                .send()
                .named("DeleteSubnet", id)
                .await
                .map(drop),
            ResourceKind::RouteTable => {
                let t = c
                    .describe_route_tables()
                    .route_table_ids(cid)
                    .send()
                    .named("DescribeRouteTables", id)
                    .await?;
                for a in t.route_tables().iter().flat_map(|t| t.associations()) {
                    if let Some(aid) = a.route_table_association_id() {
                        self.client(&region)
                            .disassociate_route_table()
                            .association_id(aid)
                            .send()
                            .named("DisassociateRouteTable", id)
                            .await?;
                    }
                }
                self.client(&region)
                    .delete_route_table()
                    .route_table_id(cid)
                    .send()
                    .named("DeleteRouteTable", id)
                    .await
                    .map(drop)
            }
            ResourceKind::Route => {
                let (rtb, dest) = cid.split_once('|').unwrap_or((cid, ""));
                c.delete_route()
                    .route_table_id(rtb)
                    .destination_cidr_block(dest)
                    .send()
                    .named("DeleteRoute", id)
                    .await
                    .map(drop)
            }
            ResourceKind::Peering => c
                .delete_vpc_peering_connection()
                .vpc_peering_connection_id(cid)
                .send()
                .named("DeleteVpcPeeringConnection", id)
                .await
                .map(drop),
            ResourceKind::VpnGateway => {
                if let Some(vpc) = current.links.first().filter(|v| !v.is_empty()) {
                    if let Err(e) = c
                        .detach_vpn_gateway()
                        .vpn_gateway_id(cid)
                        .vpc_id(vpc)
                        .send()
                        .await
                    {
                        let e = err("DetachVpnGateway", id, e);
                        if e.kind != ErrorKind::NotFound
                            && e.code.as_deref() != Some("InvalidVpnGatewayAttachment.NotFound")
                        {
                            return Err(e);
                        }
                    }
                }
                self.client(&region)
                    .delete_vpn_gateway()
                    .vpn_gateway_id(cid)
                    .send()
                    .named("DeleteVpnGateway", id)
                    .await
                    .map(drop)
            }
            ResourceKind::TransitGateway => c
                .delete_transit_gateway()
                .transit_gateway_id(cid)
                .send()
                .named("DeleteTransitGateway", id)
                .await
                .map(drop),
            ResourceKind::TransitGatewayAttachment => c
                .delete_transit_gateway_vpc_attachment()
                .transit_gateway_attachment_id(cid)
                .send()
                .named("DeleteTransitGatewayVpcAttachment", id)
                .await
                .map(drop),
            ResourceKind::TransitGatewayRoute => {
                let (rtb, dest) = cid.split_once('|').unwrap_or((cid, ""));
                c.delete_transit_gateway_route()
                    .transit_gateway_route_table_id(rtb)
                    .destination_cidr_block(dest)
                    .send()
                    .named("DeleteTransitGatewayRoute", id)
                    .await
                    .map(drop)
            }
            ResourceKind::PrivateEndpoint => c
                .delete_vpc_endpoints()
                .vpc_endpoint_ids(cid)
                .send()
                .named("DeleteVpcEndpoints", id)
                .await
                .map(drop),
            other => Err(self.unsupported(id, other)),
        }
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
            state: r.state,
            outputs: BTreeMap::from([("region".into(), r.region), ("status".into(), r.status)]),
            links: r.spec.refs().into_iter().cloned().collect(),
            ..current.clone()
        }))
    }

    fn api_calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }
}

impl AwsProvider {
    /// A transit gateway's default route table.
    async fn tgw_route_table(
        &self,
        region: &str,
        tgw: &str,
        id: &str,
    ) -> Result<String, ProviderError> {
        let r = self
            .client(region)
            .describe_transit_gateways()
            .transit_gateway_ids(tgw)
            .send()
            .named("DescribeTransitGateways", id)
            .await?;
        r.transit_gateways()
            .first()
            .and_then(|g| g.options())
            .and_then(|o| o.association_default_route_table_id())
            .map(str::to_string)
            .ok_or_else(|| {
                ProviderError::new(
                    Scope::Aws,
                    ErrorKind::Transient,
                    "DescribeTransitGateways",
                    format!("{id}: transit gateway {tgw} has no default route table yet"),
                )
            })
    }

    fn remember(&self, owner: &Owner) {
        *self.owner.lock().unwrap_or_else(|p| p.into_inner()) = Some(owner.clone());
    }

    async fn accept(
        &self,
        pcx: &str,
        accepter_region: &str,
        id: &str,
    ) -> Result<(), ProviderError> {
        self.client(accepter_region)
            .accept_vpc_peering_connection()
            .vpc_peering_connection_id(pcx)
            .send()
            .named("AcceptVpcPeeringConnection", id)
            .await
            .map(drop)
    }
}

impl ConnectivityProvider for AwsProvider {}
