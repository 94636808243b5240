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
//! The EC2 operations are split by what they do: `observe` lists a kind's
//! resources in a region, `create` creates one, `change` updates or
//! deletes one; this file holds the provider, its helpers and the trait.

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

// After the macro, which they use.
mod change;
mod create;
mod observe;

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
