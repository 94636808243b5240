//! `mcnet ui`: one page over the topology, its clusters' policy matrices
//! and the flows an agent records, with the engine's explanation of any
//! flow or cell. Every asset is embedded in the binary (no CDN, nothing
//! fetched from elsewhere); it listens on loopback unless told otherwise,
//! and then only with a token.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query as UrlQuery, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use clap::Args;
use mcnet_core::policy::replay::parse_line;
use mcnet_core::policy::{Compiled, HttpRequest, L7Request, Manifests, QueryEndpoint};
use mcnet_core::reach::{Matrix, Model, Scope};
use mcnet_core::topology::paths::{analyze, Component};
use mcnet_core::topology::Topology;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncSeekExt, BufReader};

use crate::output::read;

const INDEX: &str = include_str!("ui/index.html");
const APP_JS: &str = include_str!("ui/app.js");
const APP_CSS: &str = include_str!("ui/app.css");

/// At most this many live flow streams.
const MAX_STREAMS: usize = 16;
/// A flow line longer than this is skipped.
const MAX_LINE: usize = 64 * 1024;

#[derive(Args)]
pub struct UiArgs {
    /// Topology file.
    pub topology: String,
    /// Manifests (`[CLUSTER=]FILE`, a file or directory), as for `mcnet reach`.
    #[arg(long = "manifests", value_name = "[CLUSTER=]FILE")]
    pub manifests: Vec<String>,
    /// A flows file to follow (`mcnet datapath enforce --flows`, or Hubble's
    /// jsonpb lines).
    #[arg(long, value_name = "FILE")]
    pub flows: Option<PathBuf>,
    /// Where to listen; an address other than loopback needs --token.
    #[arg(long, default_value = "127.0.0.1:8089")]
    pub listen: SocketAddr,
    /// A token every request must carry (`Authorization: Bearer TOKEN`, or
    /// `?token=TOKEN`, which the page passes on); else `MCNET_UI_TOKEN`.
    #[arg(long)]
    pub token: Option<String>,
}

struct Ui {
    topology: Topology,
    svg: String,
    model: Model,
    policy: Compiled,
    flows: Option<PathBuf>,
    token: Option<String>,
    matrix: tokio::sync::OnceCell<Matrix>,
    streams: Arc<tokio::sync::Semaphore>,
    clients: AtomicI64,
}

pub fn run(a: &UiArgs) -> anyhow::Result<ExitCode> {
    let token = a
        .token
        .clone()
        .or_else(|| std::env::var("MCNET_UI_TOKEN").ok())
        .filter(|t| !t.is_empty());
    if !a.listen.ip().is_loopback() && token.is_none() {
        eprintln!(
            "error: --listen {} is reachable from other machines; give --token (or MCNET_UI_TOKEN)",
            a.listen
        );
        return Ok(ExitCode::from(2));
    }
    let Some(t) = crate::topology_cmd::load_valid(&a.topology)? else {
        return Ok(ExitCode::from(1));
    };
    let t = mcnet_core::topology::ipam::allocate(&t)
        .map_err(|p| anyhow::anyhow!("{}: {} IPAM problem(s)", a.topology, p.len()))?;
    let mut texts: Vec<(Scope, String, String)> = Vec::new();
    for m in &a.manifests {
        let (scope, path) = match m.split_once('=') {
            Some((cluster, path)) => (Scope::Cluster(cluster.to_string()), path),
            None => (Scope::All, m.as_str()),
        };
        for f in mcnet_core::policy::manifest_files(&[Path::new(path)])? {
            let name = f.display().to_string();
            let text = read(&name)?;
            texts.push((scope.clone(), name, text));
        }
    }
    if texts.is_empty() {
        texts = mcnet_core::reach::topology_pods(&t);
    }
    let model = Model::new(
        &t,
        texts
            .iter()
            .map(|(s, n, text)| (s.clone(), n.as_str(), text.as_str())),
    )?;
    let policy = Compiled::new(&Manifests::load(
        texts.iter().map(|(_, n, text)| (n.as_str(), text.as_str())),
    )?);
    let ui = Arc::new(Ui {
        svg: mcnet_core::topology::diagram::render_svg(&t).svg,
        topology: t,
        model,
        policy,
        flows: a.flows.clone(),
        token,
        matrix: tokio::sync::OnceCell::new(),
        streams: Arc::new(tokio::sync::Semaphore::new(MAX_STREAMS)),
        clients: AtomicI64::new(0),
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(a.listen).await?;
        eprintln!(
            "mcnet ui: serving http://{} (Ctrl-C to stop)",
            listener.local_addr()?
        );
        let app = router(ui);
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
        Ok::<_, anyhow::Error>(ExitCode::SUCCESS)
    })
}

/// The page and its assets are the binary's own and hold no data, so a
/// browser loads them without the token (it cannot add one to a script
/// tag); every `/api` call and `/metrics` needs it.
fn router(ui: Arc<Ui>) -> Router {
    let data = Router::new()
        .route("/api/topology", get(topology))
        .route("/api/matrix", get(matrix))
        .route("/api/component", get(component))
        .route("/api/flows", get(flows))
        .route("/metrics", get(metrics))
        .layer(middleware::from_fn_with_state(ui.clone(), authorize))
        .with_state(ui);
    Router::new()
        .route(
            "/",
            get(|| async { page(INDEX, "text/html; charset=utf-8") }),
        )
        .route(
            "/app.js",
            get(|| async { page(APP_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/app.css",
            get(|| async { page(APP_CSS, "text/css; charset=utf-8") }),
        )
        .merge(data)
}

fn page(body: &'static str, kind: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            // Nothing but this origin: no CDN, no inline fetches elsewhere.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'",
            ),
        ],
        body,
    )
        .into_response()
}

/// Equal in constant time (for equal lengths).
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn authorize(State(ui): State<Arc<Ui>>, req: Request, next: Next) -> Response {
    if let Some(token) = &ui.token {
        let bearer = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let in_query = req
            .uri()
            .query()
            .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("token=")));
        let ok = [bearer, in_query]
            .into_iter()
            .flatten()
            .any(|given| same(given.as_bytes(), token.as_bytes()));
        if !ok {
            return (StatusCode::UNAUTHORIZED, "a token is required\n").into_response();
        }
    }
    next.run(req).await
}

async fn topology(State(ui): State<Arc<Ui>>) -> Json<Value> {
    let t = &ui.topology;
    let clusters: Vec<Value> = t
        .spec
        .clusters
        .iter()
        .map(|c| {
            let pods: Vec<Value> = ui
                .model
                .cluster_pods(&c.name)
                .into_iter()
                .filter(|(_, local)| *local)
                .map(|(p, _)| {
                    json!({"namespace": p.namespace, "name": p.name, "labels": p.labels,
                        "ips": p.ips})
                })
                .collect();
            json!({"name": c.name, "network": c.network, "flavour": c.flavour, "pods": pods})
        })
        .collect();
    Json(json!({
        "name": t.metadata.name,
        "clusters": clusters,
        "networks": t.spec.networks.iter().map(|n| json!({"name": n.name, "provider": n.provider})).collect::<Vec<_>>(),
        "components": components(t),
        "svg": ui.svg,
        "flows": ui.flows.is_some(),
    }))
}

/// Every component that can fail, as `kind/name` (the names the diagram
/// draws and `mcnet paths --fail` takes).
fn components(t: &Topology) -> Vec<String> {
    let s = &t.spec;
    let named = |kind: &str, names: Vec<&String>| {
        names
            .into_iter()
            .map(|n| format!("{kind}/{n}"))
            .collect::<Vec<_>>()
    };
    [
        named(
            "mcr",
            s.interconnect.routers.iter().map(|r| &r.name).collect(),
        ),
        named("vxc", s.interconnect.vxcs.iter().map(|v| &v.name).collect()),
        named("peering", s.peerings.iter().map(|p| &p.name).collect()),
        named("tgw", s.transit_gateways.iter().map(|g| &g.name).collect()),
        named("vpn", s.vpn_backups.iter().map(|v| &v.name).collect()),
    ]
    .concat()
}

#[derive(Deserialize)]
struct ComponentQuery {
    name: String,
}

/// One cloud link or router: which cluster pairs route over it now, and
/// what failing it would disconnect or move (as `mcnet paths --fail`).
async fn component(State(ui): State<Arc<Ui>>, UrlQuery(q): UrlQuery<ComponentQuery>) -> Response {
    let t = &ui.topology;
    let c = match Component::resolve(t, &q.name) {
        Ok(c) => c,
        Err(e) => return (StatusCode::NOT_FOUND, format!("{e}\n")).into_response(),
    };
    let healthy = analyze(t, &[]);
    let carries: Vec<[&str; 2]> = healthy
        .clusters
        .iter()
        .filter(|r| r.active.as_ref().is_some_and(|a| a.path.hops.contains(&c)))
        .map(|r| [r.from.as_str(), r.to.as_str()])
        .collect();
    let failed = analyze(t, std::slice::from_ref(&c));
    let moved: Vec<Value> = failed
        .clusters
        .iter()
        .filter_map(|r| {
            let (from, to) = (r.moved_from.as_ref()?, r.active.as_ref()?);
            Some(json!({"from": r.from, "to": r.to, "was": from.path.via, "now": to.path.via}))
        })
        .collect();
    let spof = healthy.single_points_of_failure.contains(&c);
    Json(json!({
        "component": c,
        "carries": carries,
        "if_failed": {"disconnected": failed.disconnected, "degraded": failed.degraded, "moved": moved},
        "single_point_of_failure": spof,
    }))
    .into_response()
}

#[derive(Deserialize)]
struct MatrixQuery {
    cluster: String,
}

/// The reachability matrix of one cluster's pods (as sources), every layer
/// proved, with the explanation of each denied cell.
async fn matrix(State(ui): State<Arc<Ui>>, UrlQuery(q): UrlQuery<MatrixQuery>) -> Response {
    if ui.topology.cluster(&q.cluster).is_none() {
        return (
            StatusCode::NOT_FOUND,
            format!("no cluster named `{}`\n", q.cluster),
        )
            .into_response();
    }
    let ui2 = ui.clone();
    let m = ui
        .matrix
        .get_or_init(|| async move {
            tokio::task::spawn_blocking(move || ui2.model.matrix(&[]))
                .await
                .unwrap_or_else(|_| ui_matrix_empty())
        })
        .await;
    let prefix = format!("{}/", q.cluster);
    let cells: Vec<&mcnet_core::reach::Cell> = m
        .cells
        .iter()
        .filter(|c| c.from.starts_with(&prefix))
        .collect();
    Json(json!({"cluster": q.cluster, "cells": cells})).into_response()
}

fn ui_matrix_empty() -> Matrix {
    Matrix {
        failed: vec![],
        allowed: 0,
        denied_by_layer: Default::default(),
        cells: vec![],
    }
}

/// The flows file as server-sent events: what it holds, then each line
/// appended, each with the engine's verdict and explanation.
async fn flows(State(ui): State<Arc<Ui>>) -> Response {
    let Some(path) = ui.flows.clone() else {
        return (
            StatusCode::NOT_FOUND,
            "mcnet ui was started without --flows\n",
        )
            .into_response();
    };
    let Ok(permit) = ui.streams.clone().try_acquire_owned() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "too many flow streams\n").into_response();
    };
    ui.clients.fetch_add(1, Ordering::Relaxed);
    let (tx, rx) = tokio::sync::mpsc::channel::<Event>(256);
    let ui2 = ui.clone();
    tokio::spawn(async move {
        let _permit = permit;
        follow(&ui2, &path, tx).await;
        ui2.clients.fetch_sub(1, Ordering::Relaxed);
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|e| (Ok::<_, std::convert::Infallible>(e), rx))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(10)))
        .into_response()
}

/// Follows `path` (as `tail -f` does, from its start), sending each flow
/// until the client goes away.
async fn follow(ui: &Ui, path: &Path, tx: tokio::sync::mpsc::Sender<Event>) {
    let mut offset = 0u64;
    loop {
        if tx.is_closed() {
            return;
        }
        if let Ok(mut f) = tokio::fs::File::open(path).await {
            let len = f.metadata().await.map(|m| m.len()).unwrap_or(0);
            if len < offset {
                // Truncated or replaced: start over.
                offset = 0;
            }
            if f.seek(std::io::SeekFrom::Start(offset)).await.is_ok() {
                let mut r = BufReader::new(f);
                let mut line = String::new();
                loop {
                    line.clear();
                    match r.read_line(&mut line).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) if !line.ends_with('\n') => {
                            // A line still being written: read it again later.
                            let _ = n;
                            break;
                        }
                        Ok(n) => {
                            offset += n as u64;
                            if line.len() > MAX_LINE {
                                continue;
                            }
                            if let Some(v) = judge(ui, &line) {
                                if tx
                                    .send(Event::default().event("flow").data(v.to_string()))
                                    .await
                                    .is_err()
                                {
                                    return;
                                }
                            }
                        }
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A flow line as the page shows it, with the engine's explanation.
fn judge(ui: &Ui, line: &str) -> Option<Value> {
    let f = parse_line(line).ok()??;
    if f.is_reply || f.proxy_leg {
        return None;
    }
    let c = &ui.policy;
    let end = |e: &mcnet_core::policy::replay::FlowEnd| {
        let q = QueryEndpoint {
            pod: e.pod.clone().filter(|_| e.ip.is_none()),
            ip: e.ip.map(|a| a.to_string()),
        };
        c.resolve_endpoint(&q, "flow").ok()
    };
    let (src, dst) = (end(&f.src)?, end(&f.dst)?);
    let req = f.http.as_ref().map(|(m, p)| HttpRequest {
        method: m.clone(),
        path: p.clone(),
        ..Default::default()
    });
    let o = c.eval_resolved(src, dst, f.port, f.proto, req.as_ref().map(L7Request::Http));
    let name = |side: &mcnet_core::policy::eval::Side, e: &mcnet_core::policy::replay::FlowEnd| {
        side.pod
            .clone()
            .or_else(|| e.pod.clone())
            .or_else(|| e.ip.map(|a| a.to_string()))
            .unwrap_or_default()
    };
    let (from, to) = (name(&o.egress, &f.src), name(&o.ingress, &f.dst));
    let namespace = |p: &str| {
        p.split_once('/')
            .map(|(n, _)| n.to_string())
            .unwrap_or_default()
    };
    Some(json!({
        "time": f.time,
        "from": from,
        "to": to,
        "namespaces": [namespace(&from), namespace(&to)],
        "identities": [o.from_identity.get(), o.to_identity.get()],
        "port": f.port,
        "protocol": f.proto,
        "http": f.http,
        "recorded": f.allowed.map(|a| if a { "allow" } else { "deny" }),
        "verdict": if o.verdict.is_allow() { "allow" } else { "deny" },
        "explanation": o.explanation,
    }))
}

async fn metrics(State(ui): State<Arc<Ui>>) -> Response {
    let body = format!(
        "# HELP mcnet_ui_clients Browsers following the flow stream now.\n\
         # TYPE mcnet_ui_clients gauge\n\
         mcnet_ui_clients {}\n",
        ui.clients.load(Ordering::Relaxed)
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}
