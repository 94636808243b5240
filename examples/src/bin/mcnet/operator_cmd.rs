//! `mcnet crd` and `mcnet operator`: controller mode.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use mcnet_cloud::connect::sim::SimCloud;
use mcnet_cloud::operator::{self, LeaseConfig, ProviderSource};
use mcnet_core::reconcile::{Providers, Scope};

#[derive(Args)]
pub struct CrdArgs {
    /// Print JSON instead of YAML.
    #[arg(long)]
    pub json: bool,
}

/// Prints the `Topology` CustomResourceDefinition.
pub fn crd(a: &CrdArgs) -> anyhow::Result<ExitCode> {
    let crd = operator::crd();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&crd)?);
    } else {
        print!("{}", serde_yaml::to_string(&crd)?);
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct OperatorArgs {
    /// State directory of the embedded simulated cloud, the operator's
    /// provider (the real clouds' providers need their credentials in the
    /// pod; see docs/operations.md).
    #[arg(long, default_value = "/var/lib/mcnet")]
    pub state: PathBuf,
    /// Namespace of the leader-election Lease (default: POD_NAMESPACE, else
    /// mcnet-system).
    #[arg(long)]
    pub namespace: Option<String>,
    /// Name of the Lease.
    #[arg(long, default_value = "mcnet-operator")]
    pub lease: String,
    /// This replica's identity in the Lease (default: POD_NAME, else the
    /// host name).
    #[arg(long)]
    pub identity: Option<String>,
    /// Serve Prometheus metrics at ADDR/metrics.
    #[arg(long)]
    pub metrics: Option<SocketAddr>,
}

/// Runs the operator against the cluster of the kubeconfig (or the pod's
/// service account).
pub fn run(a: &OperatorArgs) -> anyhow::Result<ExitCode> {
    let identity = a
        .identity
        .clone()
        .or_else(|| std::env::var("POD_NAME").ok())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| format!("mcnet-operator-{}", std::process::id()));
    let namespace = a
        .namespace
        .clone()
        .or_else(|| std::env::var("POD_NAMESPACE").ok())
        .unwrap_or_else(|| "mcnet-system".into());
    let sim = SimCloud::open(&a.state)?;
    let providers: ProviderSource = Arc::new(move |_| {
        let mut p = Providers::default();
        for s in Scope::ALL {
            p = p.with(sim.provider(s));
        }
        Ok(p)
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let client = match operator::kube::Client::try_default().await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: no Kubernetes API to talk to (kubeconfig or in-cluster service account): {e}");
                return Ok(ExitCode::from(2));
            }
        };
        let mut registry = mcnet_core::metrics::Registry::default();
        let lease = LeaseConfig::new(&namespace, &a.lease, &identity);
        let operator = operator::start(client, providers, lease, &mut registry);
        if let Some(addr) = a.metrics {
            let l = tokio::net::TcpListener::bind(addr).await?;
            tokio::spawn(crate::metrics_http::serve(l, Arc::new(registry)));
        }
        eprintln!("mcnet operator: {identity}, Lease {namespace}/{}", a.lease);
        operator.await;
        Ok(ExitCode::SUCCESS)
    })
}
