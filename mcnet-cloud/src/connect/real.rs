//! Building the real providers a topology needs, as the `mcnet` CLI does:
//! AWS for the topology's regions (with Direct Connect only when a VXC
//! lands on it), Megaport, Azure in the resource group `mcnet-<topology>`,
//! and GCP, each from its environment (credentials, endpoints). A provider
//! whose cargo feature is off is an error naming the feature.

use std::sync::Arc;

use mcnet_core::reconcile::{ErrorKind, ProviderError, ResourceProvider, Scope};
use mcnet_core::topology::Topology;

/// What the environment does not say about the providers.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct ProviderEnv {
    /// The EC2 endpoint (otherwise `AWS_ENDPOINT_URL`, otherwise AWS).
    pub aws_endpoint: Option<String>,
    /// The Megaport API (otherwise `MEGAPORT_API_URL`, otherwise Megaport's).
    pub megaport_api: Option<String>,
}

impl ProviderEnv {
    /// With an EC2 endpoint (moto's server, say).
    pub fn with_aws_endpoint(mut self, endpoint: Option<String>) -> ProviderEnv {
        self.aws_endpoint = endpoint;
        self
    }
}

/// The Azure resource group mcnet manages a topology's resources in.
pub fn azure_resource_group(t: &Topology) -> String {
    format!("mcnet-{}", t.metadata.name)
}

/// The real provider for `scope`, for the parts of `t` it covers.
///
/// ```no_run
/// # async fn f(t: mcnet_core::topology::Topology) -> Result<(), mcnet_core::reconcile::ProviderError> {
/// use mcnet_cloud::connect::real::{provider_for, ProviderEnv};
/// use mcnet_core::reconcile::Scope;
///
/// let aws = provider_for(Scope::Aws, &t, &ProviderEnv::default()).await?;
/// # Ok(()) }
/// ```
#[allow(unused_variables)]
pub async fn provider_for(
    scope: Scope,
    t: &Topology,
    env: &ProviderEnv,
) -> Result<Arc<dyn ResourceProvider>, ProviderError> {
    let off = |feature: &str| {
        ProviderError::new(
            scope,
            ErrorKind::Invalid,
            "build provider",
            format!(
                "this build of mcnet-cloud has no {scope:?} provider (cargo feature `{feature}`)"
            ),
        )
    };
    match scope {
        #[cfg(feature = "aws")]
        Scope::Aws => {
            use mcnet_core::topology::{ProviderKind, VxcTargetKind};
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
            let p = super::aws::AwsProvider::new(regions, env.aws_endpoint.clone())
                .await
                .with_direct_connect(dx);
            Ok(Arc::new(p))
        }
        #[cfg(not(feature = "aws"))]
        Scope::Aws => Err(off("aws")),
        #[cfg(feature = "megaport")]
        Scope::Megaport => {
            use super::megaport::{MegaportConfig, MegaportProvider};
            let cfg = MegaportConfig::from_env(env.megaport_api.clone())?;
            Ok(Arc::new(MegaportProvider::new(cfg)?))
        }
        #[cfg(not(feature = "megaport"))]
        Scope::Megaport => Err(off("megaport")),
        #[cfg(feature = "azure")]
        Scope::Azure => {
            use super::azure::{AzureConfig, AzureProvider};
            let cfg = AzureConfig::from_env(&azure_resource_group(t))?;
            Ok(Arc::new(AzureProvider::new(cfg)?))
        }
        #[cfg(not(feature = "azure"))]
        Scope::Azure => Err(off("azure")),
        #[cfg(feature = "gcp")]
        Scope::Gcp => {
            use super::gcp::{GcpConfig, GcpProvider};
            Ok(Arc::new(GcpProvider::new(GcpConfig::from_env()?)?))
        }
        #[cfg(not(feature = "gcp"))]
        Scope::Gcp => Err(off("gcp")),
        #[allow(unreachable_patterns)]
        other => Err(ProviderError::new(
            other,
            ErrorKind::Invalid,
            "build provider",
            format!("no real provider for {other:?}"),
        )),
    }
}
