//! VPC peering: requested and accepted, also across regions.

use super::*;

impl AwsProvider {
    /// Lists the owner's VPC peerings (the requester's view) in `region`.
    pub(super) async fn list_peerings(&self, l: &Listing<'_>) -> Result<Vec<Raw>, ProviderError> {
        let (c, f, region, owner) = (l.c, &l.f, l.region, l.owner);
        let (raw, mut out) = (raw_in(region), Vec::new());
        let r = c
            .describe_vpc_peering_connections()
            .filters(f.clone())
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
        Ok(out)
    }

    /// Creates a VPC peering and accepts it.
    pub(super) async fn create_peering(
        &self,
        op: &Op<'_>,
        spec: &Spec,
    ) -> Result<Observed, ProviderError> {
        let Spec::Peering {
            requester,
            accepter,
            peer_region,
        } = spec
        else {
            return Err(self.unsupported(op.id, spec.kind()));
        };
        let Op { c, .. } = *op;
        let Op {
            owner,
            rid,
            id,
            region,
            ..
        } = *op;
        let cloud_id = {
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
            self.accept(&pcx, peer_region.as_deref().unwrap_or(region), id)
                .await?;
            pcx
        };
        Ok(just_created(op, cloud_id))
    }

    /// Updates a peering that is not active yet: accepts it.
    pub(super) async fn update_peering(
        &self,
        op: &Op<'_>,
        current: &Observed,
        want: &Spec,
    ) -> Result<(), ProviderError> {
        let Spec::Peering { peer_region, .. } = want else {
            return Ok(());
        };
        let Op { id, region, .. } = *op;
        self.accept(
            &current.cloud_id,
            peer_region.as_deref().unwrap_or(region),
            id,
        )
        .await?;
        Ok(())
    }

    /// Deletes a VPC peering.
    pub(super) async fn delete_peering(
        &self,
        c: &Client,
        current: &Observed,
    ) -> Result<(), ProviderError> {
        let id = current.id.as_str();
        let cid = current.cloud_id.as_str();
        c.delete_vpc_peering_connection()
            .vpc_peering_connection_id(cid)
            .send()
            .named("DeleteVpcPeeringConnection", id)
            .await
            .map(drop)
    }

    /// Accepts a peering, in the accepter's region.
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
