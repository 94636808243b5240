//! `/metrics` for the long-running commands: the library's bounded HTTP/1.x
//! responder ([`mcnet_cloud::gslb::serve_metrics`]) with its default limits
//! (32 connections, a 5 s read timeout, an 8 KiB request head).

use std::sync::Arc;

use mcnet_cloud::gslb::{serve_metrics, MetricsOptions};
use mcnet_core::metrics::Registry;

/// Serves `registry` at `/metrics` (Prometheus text format) on `l`, forever.
pub async fn serve(l: tokio::net::TcpListener, registry: Arc<Registry>) {
    serve_metrics(l, registry, MetricsOptions::default()).await
}
