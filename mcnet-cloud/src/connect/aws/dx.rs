//! Direct Connect (aws-sdk-directconnect): the Direct Connect gateway with
//! its virtual private gateway associations, and the private virtual
//! interface: created on the hosted connection a Megaport VXC brings, or,
//! for a hosted VIF, the one Megaport created, accepted onto the gateway.
//!
//! Direct Connect gateways are global; mcnet reads and writes them, and the
//! virtual interfaces, through the provider's first region. A
//! VIF keeps the VXC it rides on and the VXC's VLAN in the tags
//! `mcnet.io/vxc` and `mcnet.io/vlan`, which the API has no field for.

use std::sync::atomic::Ordering;

use aws_sdk_directconnect::types::{AddressFamily, NewPrivateVirtualInterface, Tag};
use aws_sdk_directconnect::Client;
use mcnet_core::reconcile::{
    Desired, ErrorKind, Observed, Owner, ProviderError, Refs, ResourceId, ResourceKind,
    ResourceState, Scope, Spec,
};

use super::{fresh, AwsProvider, Named, Raw};

const TAG_VXC: &str = "mcnet.io/vxc";
const TAG_VLAN: &str = "mcnet.io/vlan";

fn dx_tags(owner: &Owner, id: &ResourceId, extra: &[(&str, String)]) -> Vec<Tag> {
    owner
        .tags(id)
        .into_iter()
        .chain(extra.iter().map(|(k, v)| (k.to_string(), v.clone())))
        .filter_map(|(k, v)| Tag::builder().key(k).value(v).build().ok())
        .collect()
}

fn owned(owner: &Owner, tags: &[Tag]) -> Option<ResourceId> {
    owner.owns(
        tags.iter()
            .map(|t| (t.key(), t.value().unwrap_or_default())),
    )
}

fn tag<'a>(tags: &'a [Tag], key: &str) -> Option<&'a str> {
    tags.iter().find(|t| t.key() == key).and_then(Tag::value)
}

/// Direct Connect reports every client-side failure as
/// `DirectConnectClientException`: the message says which.
fn classify(mut e: ProviderError) -> ProviderError {
    let m = e.message.to_ascii_lowercase();
    e.kind = match e.code.as_deref() {
        Some("DirectConnectServerException") => ErrorKind::Transient,
        Some("DuplicateTagKeysException" | "TooManyTagsException") => ErrorKind::Invalid,
        _ if m.contains("throttl") || m.contains("rate exceeded") => ErrorKind::Throttled,
        _ if m.contains("does not exist") || m.contains("not found") => ErrorKind::NotFound,
        _ if m.contains("limit") => ErrorKind::Quota,
        // A gateway with associations still going away, or a VIF still
        // being deleted: retried.
        _ if m.contains("associat") || m.contains("deleting") => ErrorKind::Transient,
        _ => e.kind,
    };
    e
}

/// What a VXC made in the account (its hosted connection or VIF) is not
/// there: the VXC names another account, or the partner has not made it yet.
fn unseen(id: &str, op: &str, what: &str, cloud_id: &str, vxc: &str) -> ProviderError {
    ProviderError::new(
        Scope::Aws,
        ErrorKind::Unresolved,
        op,
        format!(
            "{id}: {what} {cloud_id} from {vxc} is not visible to this AWS account \
             (the VXC's AWS account must be this one)"
        ),
    )
}

/// A describe-by-id's answer, with "does not exist" turned into `unseen`.
fn visible<T>(
    r: Result<T, ProviderError>,
    unseen: impl Fn() -> ProviderError,
) -> Result<T, ProviderError> {
    match r.map_err(classify) {
        Err(e) if e.kind == ErrorKind::NotFound => Err(unseen()),
        other => other,
    }
}

fn vif_state(s: &str) -> Option<ResourceState> {
    match s {
        // `down` is a VIF whose BGP session is not up yet: it exists, and
        // the VXC's side brings the session up.
        "available" | "down" => Some(ResourceState::Ready),
        "rejected" => Some(ResourceState::Failed(s.into())),
        "deleted" | "deleting" => None,
        other => Some(ResourceState::Pending(other.into())),
    }
}

/// The gateway's name: `<topology>-<logical id with / as ->`.
fn gateway_name(owner: &Owner, id: &str) -> String {
    format!("{}-{}", owner.topology, id.replace('/', "-"))
}

impl AwsProvider {
    /// The Direct Connect client, in the home region.
    fn dx(&self) -> (Client, String) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let region = self.regions.first().cloned().unwrap_or_default();
        let mut b = aws_sdk_directconnect::config::Builder::from(&self.config)
            .region(aws_sdk_directconnect::config::Region::new(region.clone()));
        if let Some(e) = &self.dx_endpoint {
            b = b.endpoint_url(e);
        }
        (Client::from_conf(b.build()), region)
    }

    /// Lists the owner's gateways (with their associations) or VIFs; other
    /// regions than the home region have none.
    pub(super) async fn dx_list(
        &self,
        kind: ResourceKind,
        region: &str,
        owner: &Owner,
    ) -> Result<Vec<Raw>, ProviderError> {
        if self.regions.first().map(String::as_str) != Some(region) {
            return Ok(vec![]);
        }
        let mut out = Vec::new();
        match kind {
            ResourceKind::InterconnectGateway => {
                let mut next = None;
                let mut gateways = Vec::new();
                loop {
                    let (c, _) = self.dx();
                    let r = c
                        .describe_direct_connect_gateways()
                        .set_next_token(next)
                        .send()
                        .named("DescribeDirectConnectGateways", region)
                        .await
                        .map_err(classify)?;
                    gateways.extend(r.direct_connect_gateways().iter().cloned());
                    next = r.next_token().map(str::to_string);
                    if next.is_none() {
                        break;
                    }
                }
                for g in gateways {
                    let Some(id) = owned(owner, g.tags()) else {
                        continue;
                    };
                    let state = g.direct_connect_gateway_state().map_or("", |s| s.as_str());
                    if matches!(state, "deleted" | "deleting") {
                        continue;
                    }
                    let gid = g.direct_connect_gateway_id().unwrap_or_default();
                    // One call per gateway: the API lists associations of
                    // one gateway at a time.
                    let (c, _) = self.dx();
                    let a = c
                        .describe_direct_connect_gateway_associations()
                        .direct_connect_gateway_id(gid)
                        .send()
                        .named("DescribeDirectConnectGatewayAssociations", id.as_str())
                        .await
                        .map_err(classify)?;
                    let mut vgws = Vec::new();
                    let mut status = state.to_string();
                    for x in a.direct_connect_gateway_associations() {
                        let st = x.association_state().map_or("", |s| s.as_str());
                        if matches!(st, "disassociated" | "disassociating") {
                            continue;
                        }
                        if st != "associated" && status == "available" {
                            status = st.to_string();
                        }
                        let vgw = x
                            .associated_gateway()
                            .and_then(|g| g.id())
                            .or(x.virtual_gateway_id())
                            .unwrap_or_default();
                        vgws.push(vgw.to_string());
                    }
                    out.push(Raw {
                        id,
                        cloud_id: gid.to_string(),
                        spec: Spec::InterconnectGateway {
                            region: "global".into(),
                            asn: g
                                .amazon_side_asn()
                                .and_then(|a| u32::try_from(a).ok())
                                .unwrap_or_default(),
                            bandwidth_mbps: None,
                            network: None,
                            associations: vgws,
                        },
                        state: match status.as_str() {
                            "available" => ResourceState::Ready,
                            other => ResourceState::Pending(other.into()),
                        },
                        region: region.to_string(),
                        status,
                        extra: std::collections::BTreeMap::new(),
                    });
                }
            }
            ResourceKind::InterconnectAttachment => {
                let (c, _) = self.dx();
                let r = c
                    .describe_virtual_interfaces()
                    .send()
                    .named("DescribeVirtualInterfaces", region)
                    .await
                    .map_err(classify)?;
                for v in r.virtual_interfaces() {
                    let Some(id) = owned(owner, v.tags()) else {
                        continue;
                    };
                    let status = v.virtual_interface_state().map_or("", |s| s.as_str());
                    let Some(state) = vif_state(status) else {
                        continue;
                    };
                    out.push(Raw {
                        id,
                        cloud_id: v.virtual_interface_id().unwrap_or_default().into(),
                        spec: Spec::InterconnectAttachment {
                            gateway: v.direct_connect_gateway_id().unwrap_or_default().into(),
                            vxc: tag(v.tags(), TAG_VXC).map(str::to_string),
                            network_gateway: None,
                            vlan: tag(v.tags(), TAG_VLAN).and_then(|x| x.parse().ok()),
                        },
                        state,
                        region: region.to_string(),
                        status: status.to_string(),
                        extra: std::collections::BTreeMap::new(),
                    });
                }
            }
            _ => {}
        }
        Ok(out)
    }

    /// Creates a Direct Connect gateway and its associations, or a private
    /// VIF on the VXC's hosted connection. `spec` has cloud ids.
    pub(super) async fn dx_create(
        &self,
        owner: &Owner,
        r: &Desired,
        refs: Refs<'_>,
    ) -> Result<Observed, ProviderError> {
        let rid = &r.id;
        let id = rid.as_str();
        if !self.dx {
            return Err(ProviderError::new(
                Scope::Aws,
                ErrorKind::Invalid,
                "select",
                format!("{id}: Direct Connect is off in this AWS provider (with_direct_connect)"),
            ));
        }
        let (c, region) = self.dx();
        match &r.spec {
            Spec::InterconnectGateway {
                asn, associations, ..
            } => {
                let out = c
                    .create_direct_connect_gateway()
                    .direct_connect_gateway_name(gateway_name(owner, id))
                    .amazon_side_asn(i64::from(*asn))
                    .set_tags(Some(dx_tags(owner, rid, &[])))
                    .send()
                    .named("CreateDirectConnectGateway", id)
                    .await
                    .map_err(classify)?;
                let gid = out
                    .direct_connect_gateway()
                    .and_then(|g| g.direct_connect_gateway_id())
                    .unwrap_or_default()
                    .to_string();
                for a in associations {
                    self.associate(&gid, refs.cloud_id(a)?, id).await?;
                }
                let pending = ResourceState::Pending("associating".into());
                Ok(fresh(rid, gid, r.spec.clone(), pending, &region))
            }
            Spec::InterconnectAttachment {
                gateway, vxc, vlan, ..
            } => {
                let vxc = vxc.as_deref().ok_or_else(|| {
                    ProviderError::new(
                        Scope::Aws,
                        ErrorKind::Invalid,
                        "CreatePrivateVirtualInterface",
                        format!(
                            "{id}: a Direct Connect attachment rides on a VXC, and none is named"
                        ),
                    )
                })?;
                let gw = refs.cloud_id(gateway)?;
                let mut extra = vec![(TAG_VXC, vxc.to_string())];
                if let Some(v) = vlan {
                    extra.push((TAG_VLAN, v.to_string()));
                }
                if matches!(&refs.get(vxc)?.spec, Spec::Vxc { target, .. } if target == "aws-hosted-vif")
                {
                    let vid = self.accept_vif(owner, rid, vxc, gw, &refs, &extra).await?;
                    let pending = ResourceState::Pending("confirming".into());
                    return Ok(fresh(rid, vid, r.spec.clone(), pending, &region));
                }
                let conn = refs.output(vxc, "connectionId")?;
                let vif = self.vif_for(conn, vxc, &refs, id).await?;
                let new = vif
                    .direct_connect_gateway_id(gw)
                    .virtual_interface_name(gateway_name(owner, id))
                    .set_tags(Some(dx_tags(owner, rid, &extra)))
                    .build()
                    .map_err(|e| {
                        ProviderError::new(
                            Scope::Aws,
                            ErrorKind::Invalid,
                            "CreatePrivateVirtualInterface",
                            format!("{id}: {e}"),
                        )
                    })?;
                let out = c
                    .create_private_virtual_interface()
                    .connection_id(conn)
                    .new_private_virtual_interface(new)
                    .send()
                    .named("CreatePrivateVirtualInterface", id)
                    .await
                    .map_err(classify)?;
                let status = out
                    .virtual_interface_state()
                    .map_or("pending", |s| s.as_str());
                let state = vif_state(status).unwrap_or(ResourceState::Pending(status.into()));
                let vid = out.virtual_interface_id().unwrap_or_default().to_string();
                Ok(fresh(rid, vid, r.spec.clone(), state, &region))
            }
            other => Err(self.unsupported(id, other.kind())),
        }
    }

    /// The VIF's addressing from the VXC: the hosted connection's VLAN
    /// (confirming the connection first), the MCR's ASN, and the BGP
    /// addresses of the VXC's first session.
    async fn vif_for(
        &self,
        conn: &str,
        vxc: &str,
        refs: &Refs<'_>,
        id: &str,
    ) -> Result<
        aws_sdk_directconnect::types::builders::NewPrivateVirtualInterfaceBuilder,
        ProviderError,
    > {
        let (c, _) = self.dx();
        let found = c
            .describe_connections()
            .connection_id(conn)
            .send()
            .named("DescribeConnections", id)
            .await;
        let gone = || unseen(id, "DescribeConnections", "hosted connection", conn, vxc);
        let found = visible(found, gone)?;
        let hc = found.connections().first().ok_or_else(gone)?;
        match hc.connection_state().map_or("", |s| s.as_str()) {
            "ordering" => {
                let (c, _) = self.dx();
                c.confirm_connection()
                    .connection_id(conn)
                    .send()
                    .named("ConfirmConnection", id)
                    .await
                    .map_err(classify)?;
            }
            st @ ("rejected" | "deleted" | "deleting") => {
                return Err(ProviderError::new(
                    Scope::Aws,
                    ErrorKind::Conflict,
                    "DescribeConnections",
                    format!("{id}: hosted connection {conn} from {vxc} is {st}"),
                ))
            }
            _ => {}
        }
        let mut b = NewPrivateVirtualInterface::builder()
            .vlan(hc.vlan())
            .address_family(AddressFamily::IPv4);
        if let Spec::Vxc { router, bgp, .. } = &refs.get(vxc)?.spec {
            if let Ok(Spec::Router { asn, .. }) = refs.get(router).map(|o| &o.spec) {
                b = match i32::try_from(*asn) {
                    Ok(a) => b.asn(a),
                    Err(_) => b.asn(0).asn_long(i64::from(*asn)),
                };
            }
            if let Some((local, peer, _)) = bgp.peers.first() {
                let len = local.split_once('/').map_or("30", |(_, l)| l);
                b = b
                    .customer_address(local)
                    .amazon_address(format!("{peer}/{len}"));
            }
        }
        Ok(b)
    }

    /// Accepts the hosted VIF a VXC created (its `vifId` output) onto the
    /// gateway, and tags it as the owner's. Returns the VIF's id.
    async fn accept_vif(
        &self,
        owner: &Owner,
        rid: &ResourceId,
        vxc: &str,
        gw: &str,
        refs: &Refs<'_>,
        extra: &[(&str, String)],
    ) -> Result<String, ProviderError> {
        let id = rid.as_str();
        let vid = refs.output(vxc, "vifId")?;
        let (c, region) = self.dx();
        let found = c
            .describe_virtual_interfaces()
            .virtual_interface_id(vid)
            .send()
            .named("DescribeVirtualInterfaces", id)
            .await;
        let gone = || unseen(id, "DescribeVirtualInterfaces", "hosted VIF", vid, vxc);
        let found = visible(found, gone)?;
        let v = found.virtual_interfaces().first().ok_or_else(gone)?;
        if v.virtual_interface_state().map(|s| s.as_str()) == Some("confirming") {
            let (c, _) = self.dx();
            c.confirm_private_virtual_interface()
                .virtual_interface_id(vid)
                .direct_connect_gateway_id(gw)
                .send()
                .named("ConfirmPrivateVirtualInterface", id)
                .await
                .map_err(classify)?;
        }
        let account = v.owner_account().unwrap_or_default();
        let (c, _) = self.dx();
        c.tag_resource()
            .resource_arn(format!(
                "arn:aws:directconnect:{region}:{account}:dxvif/{vid}"
            ))
            .set_tags(Some(dx_tags(owner, rid, extra)))
            .send()
            .named("TagResource", id)
            .await
            .map_err(classify)?;
        Ok(vid.to_string())
    }

    async fn associate(&self, gid: &str, vgw: &str, id: &str) -> Result<(), ProviderError> {
        let (c, _) = self.dx();
        c.create_direct_connect_gateway_association()
            .direct_connect_gateway_id(gid)
            .gateway_id(vgw)
            .send()
            .named("CreateDirectConnectGatewayAssociation", id)
            .await
            .map_err(classify)
            .map(drop)
    }

    /// The gateway's live associations: (association id, gateway id).
    async fn associations(
        &self,
        gid: &str,
        id: &str,
    ) -> Result<Vec<(String, String)>, ProviderError> {
        let (c, _) = self.dx();
        let a = c
            .describe_direct_connect_gateway_associations()
            .direct_connect_gateway_id(gid)
            .send()
            .named("DescribeDirectConnectGatewayAssociations", id)
            .await
            .map_err(classify)?;
        Ok(a.direct_connect_gateway_associations()
            .iter()
            .filter(|x| {
                !matches!(
                    x.association_state().map_or("", |s| s.as_str()),
                    "disassociated" | "disassociating"
                )
            })
            .map(|x| {
                (
                    x.association_id().unwrap_or_default().to_string(),
                    x.associated_gateway()
                        .and_then(|g| g.id())
                        .or(x.virtual_gateway_id())
                        .unwrap_or_default()
                        .to_string(),
                )
            })
            .collect())
    }

    /// Brings a gateway's associations to `want` (cloud ids of VGWs).
    pub(super) async fn dx_update(
        &self,
        current: &Observed,
        want: &Spec,
        id: &str,
    ) -> Result<(), ProviderError> {
        let Spec::InterconnectGateway { associations, .. } = want else {
            return Ok(());
        };
        let have = self.associations(&current.cloud_id, id).await?;
        for vgw in associations
            .iter()
            .filter(|v| !have.iter().any(|(_, g)| g == *v))
        {
            self.associate(&current.cloud_id, vgw, id).await?;
        }
        for (aid, _) in have.iter().filter(|(_, g)| !associations.contains(g)) {
            self.disassociate(aid, id).await?;
        }
        Ok(())
    }

    async fn disassociate(&self, aid: &str, id: &str) -> Result<(), ProviderError> {
        let (c, _) = self.dx();
        c.delete_direct_connect_gateway_association()
            .association_id(aid)
            .send()
            .named("DeleteDirectConnectGatewayAssociation", id)
            .await
            .map_err(classify)
            .map(drop)
    }

    /// Deletes a VIF, or a gateway after its associations.
    pub(super) async fn dx_delete(&self, current: &Observed) -> Result<(), ProviderError> {
        let id = current.id.as_str();
        let cid = current.cloud_id.as_str();
        let gone = |r: Result<(), ProviderError>| match r {
            Err(e) if e.kind == ErrorKind::NotFound => Ok(()),
            other => other,
        };
        match current.spec.kind() {
            ResourceKind::InterconnectAttachment => {
                let (c, _) = self.dx();
                gone(
                    c.delete_virtual_interface()
                        .virtual_interface_id(cid)
                        .send()
                        .named("DeleteVirtualInterface", id)
                        .await
                        .map_err(classify)
                        .map(drop),
                )
            }
            _ => {
                let have = match self.associations(cid, id).await {
                    Ok(a) => a,
                    Err(e) if e.kind == ErrorKind::NotFound => return Ok(()),
                    Err(e) => return Err(e),
                };
                for (aid, _) in have {
                    self.disassociate(&aid, id).await?;
                }
                let (c, _) = self.dx();
                gone(
                    c.delete_direct_connect_gateway()
                        .direct_connect_gateway_id(cid)
                        .send()
                        .named("DeleteDirectConnectGateway", id)
                        .await
                        .map_err(classify)
                        .map(drop),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_exceptions_are_told_apart_by_their_message() {
        let e = |m: &str| {
            classify(
                ProviderError::new(Scope::Aws, ErrorKind::Conflict, "op", m)
                    .with_code("DirectConnectClientException"),
            )
            .kind
        };
        assert_eq!(e("Connection dxcon-1 does not exist"), ErrorKind::NotFound);
        assert_eq!(e("Rate exceeded"), ErrorKind::Throttled);
        assert_eq!(
            e("Direct Connect gateway has associations"),
            ErrorKind::Transient
        );
        assert_eq!(e("Bad ASN"), ErrorKind::Conflict);
    }

    #[test]
    fn a_down_vif_exists_and_a_deleted_one_does_not() {
        assert_eq!(vif_state("down"), Some(ResourceState::Ready));
        assert_eq!(vif_state("deleted"), None);
        assert_eq!(
            vif_state("confirming"),
            Some(ResourceState::Pending("confirming".into()))
        );
    }
}
