//! The real providers, by scope.

use std::sync::Arc;

use mcnet_core::reconcile::{ResourceProvider, Scope};
use mcnet_core::topology::{ProviderKind, Topology, VxcTargetKind};

use crate::cloud_cmd::Common;

/// The real provider for `scope`, for the parts of `t` it covers.
pub async fn real(
    scope: Scope,
    c: &Common,
    t: &Topology,
) -> anyhow::Result<Arc<dyn ResourceProvider>> {
    match scope {
        Scope::Aws => {
            let mut regions: Vec<String> = t
                .spec
                .providers
                .iter()
                .filter(|p| p.kind == ProviderKind::Aws)
                .flat_map(|p| p.regions.iter().cloned())
                .collect();
            regions.sort();
            regions.dedup();
            // Direct Connect only where the topology has a VXC onto it.
            let dx = t
                .spec
                .interconnect
                .vxcs
                .iter()
                .any(|v| v.target.kind == VxcTargetKind::AwsDirectConnect);
            let p = mcnet_cloud::connect::aws::AwsProvider::new(regions, c.aws_endpoint.clone())
                .await
                .with_direct_connect(dx);
            Ok(Arc::new(p))
        }
        Scope::Megaport => {
            use mcnet_cloud::connect::megaport::{MegaportConfig, MegaportProvider};
            Ok(Arc::new(MegaportProvider::new(MegaportConfig::from_env(
                None,
            )?)?))
        }
        Scope::Azure => {
            use mcnet_cloud::connect::azure::{AzureConfig, AzureProvider};
            let group = format!("mcnet-{}", t.metadata.name);
            Ok(Arc::new(AzureProvider::new(AzureConfig::from_env(
                &group,
            )?)?))
        }
        Scope::Gcp => {
            use mcnet_cloud::connect::gcp::{GcpConfig, GcpProvider};
            Ok(Arc::new(GcpProvider::new(GcpConfig::from_env()?)?))
        }
    }
}
