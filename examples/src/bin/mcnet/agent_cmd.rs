//! `mcnet agent`: the node agent of controller mode.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use clap::Args;
use mcnet_datapath::agent::{self, AgentConfig, AgentStatus, EnforcerSink, RouteResolver};
use mcnet_datapath::enforcer::EnforcerOptions;
use mcnet_datapath::L7Mode;
use tokio::sync::watch;

use crate::datapath_cmd::L7Arg;

#[derive(Args)]
pub struct AgentArgs {
    /// This node's name (default: NODE_NAME, from the downward API).
    #[arg(long)]
    pub node: Option<String>,
    /// Pin maps here (a bpffs directory) so that a restarted agent keeps
    /// established connections.
    #[arg(long, value_name = "DIR", default_value = "/sys/fs/bpf/mcnet")]
    pub pin_dir: PathBuf,
    /// Ports with L7 rules, as `mcnet datapath enforce --l7`.
    #[arg(long, value_enum, default_value = "enforce")]
    pub l7: L7Arg,
    /// Serve `/readyz` (200 once the first full sync is done) and
    /// `/livez` here.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9876")]
    pub health: SocketAddr,
    /// Do not watch Cilium's policy kinds (their CRDs are not installed).
    #[arg(long)]
    pub no_cilium: bool,
}

pub fn run(a: &AgentArgs) -> anyhow::Result<ExitCode> {
    let Some(node) = a.node.clone().or_else(|| std::env::var("NODE_NAME").ok()) else {
        eprintln!("error: --node (or NODE_NAME) is required: the agent binds the pods of its node");
        return Ok(ExitCode::from(2));
    };
    let options = EnforcerOptions::default()
        .pinned(Some(a.pin_dir.clone()))
        .l7(match a.l7 {
            L7Arg::Enforce => L7Mode::Enforce,
            L7Arg::Audit => L7Mode::Audit,
            L7Arg::Deny => L7Mode::Deny,
        });
    let mut config = AgentConfig::new(&node);
    if a.no_cilium {
        config = config.without_cilium();
    }
    // One thread: the datapath's sockets and policy routing belong to the
    // namespace the agent started in.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let client = match mcnet_cloud::operator::kube::Client::try_default().await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: no Kubernetes API to talk to (kubeconfig or in-cluster service account): {e}");
                return Ok(ExitCode::from(2));
            }
        };
        let (tx, rx) = watch::channel(AgentStatus::default());
        let health = tokio::net::TcpListener::bind(a.health).await?;
        tokio::spawn(serve_health(health, rx));
        eprintln!("mcnet agent: node {node}, health on http://{}/readyz", a.health);
        let sink = Box::new(EnforcerSink::new(options));
        tokio::select! {
            () = agent::run(client, config, Arc::new(RouteResolver), sink, tx) => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        Ok(ExitCode::SUCCESS)
    })
}

async fn serve_health(l: tokio::net::TcpListener, status: watch::Receiver<AgentStatus>) {
    let app = Router::new()
        .route("/livez", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || {
                let s = status.borrow().clone();
                async move {
                    if s.ready {
                        (
                            StatusCode::OK,
                            format!("ready: {} pod(s) bound\n", s.bound.len()),
                        )
                    } else {
                        (
                            StatusCode::SERVICE_UNAVAILABLE,
                            "not ready: the first sync is not done\n".to_string(),
                        )
                    }
                }
            }),
        );
    let _ = axum::serve(l, app).await;
}
