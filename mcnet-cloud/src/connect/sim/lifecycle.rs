//! How simulated resources move through their clouds' asynchronous
//! states over time: peerings awaiting acceptance, VXCs deploying, circuits
//! waiting for their partner's VXC.

use super::*;

impl SimProvider {
    pub(super) fn status(&self, r: &SimResource, now: u64) -> (ResourceState, String) {
        self.status_in(self.scope, r, now)
    }

    /// The state of `r`, stored in `scope`'s file, at time `now`.
    pub(super) fn status_in(
        &self,
        scope: Scope,
        r: &SimResource,
        now: u64,
    ) -> (ResourceState, String) {
        let step = self.cloud.config.step_ms;
        let age = now.saturating_sub(r.created_ms);
        let stage = |names: &[&str]| -> (ResourceState, String) {
            let i = (age / step.max(1)) as usize;
            let s = names[i.min(names.len() - 1)].to_string();
            if i + 1 >= names.len() {
                (ResourceState::Ready, s)
            } else {
                (ResourceState::Pending(s.clone()), s)
            }
        };
        match (&r.spec, scope) {
            (Spec::Peering { .. }, Scope::Aws) => match r.accepted_ms {
                None => {
                    let s = "pending-acceptance".to_string();
                    (ResourceState::Pending(s.clone()), s)
                }
                Some(t) if now.saturating_sub(t) < step => {
                    let s = "provisioning".to_string();
                    (ResourceState::Pending(s.clone()), s)
                }
                Some(_) => (ResourceState::Ready, "active".into()),
            },
            (Spec::Peering { .. }, Scope::Azure) => stage(&["Initiated", "Connected"]),
            (Spec::Peering { .. }, Scope::Gcp) => stage(&["INACTIVE", "ACTIVE"]),
            (Spec::Router { .. } | Spec::Vxc { .. }, _) => {
                if let Some(t) = r.updated_ms.filter(|t| now.saturating_sub(*t) < step) {
                    let _ = t;
                    let s = "CONFIGURED".to_string();
                    return (ResourceState::Pending(s.clone()), s);
                }
                stage(&["DEPLOYABLE", "CONFIGURED", "LIVE"])
            }
            (Spec::InterconnectGateway { .. }, Scope::Azure) => {
                // The circuit is usable once its VXC is live.
                let provisioned = self.partner_live(&r.outputs);
                let s = if provisioned {
                    "Provisioned"
                } else {
                    "NotProvisioned"
                };
                (ResourceState::Ready, s.into())
            }
            (Spec::InterconnectAttachment { .. }, Scope::Gcp) => {
                let s = if self.partner_live(&r.outputs) {
                    "ACTIVE"
                } else {
                    "PENDING_PARTNER"
                };
                (ResourceState::Ready, s.into())
            }
            (
                Spec::TransitGateway { .. }
                | Spec::TransitGatewayAttachment { .. }
                | Spec::VpnGateway { .. }
                | Spec::InterconnectGateway { .. }
                | Spec::InterconnectAttachment { .. }
                | Spec::PrivateEndpoint { .. },
                _,
            ) => stage(&["pending", "available"]),
            _ => (ResourceState::Ready, "available".into()),
        }
    }

    /// Whether a live VXC carries the key in `outputs`.
    pub(super) fn partner_live(&self, outputs: &BTreeMap<String, String>) -> bool {
        let Some(key) = outputs
            .get("serviceKey")
            .or_else(|| outputs.get("pairingKey"))
        else {
            return false;
        };
        let Ok(mp) = self.cloud.read(Scope::Megaport) else {
            return false;
        };
        let now = now_ms();
        mp.resources.values().any(|v| {
            v.outputs.get("partnerKey") == Some(key)
                && self.status_in(Scope::Megaport, v, now).0 == ResourceState::Ready
        })
    }
}
