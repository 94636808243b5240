//! Cluster rendering: everything each cluster runs, from the one topology.
//!
//! [`render`] turns a valid topology into one [`ClusterRender`] per cluster:
//!
//! - `cilium/`: Helm values, the `cilium-config` and `hubble-config`
//!   ConfigMaps (datapath, routing, IPAM, chaining, WireGuard, Hubble) and
//!   the ClusterMesh connection configuration;
//! - `namespaces/` and `services/`: the application namespaces and the
//!   Services in front of each workload (exported to the mesh);
//! - `policies/`: zero trust, per namespace: default deny, DNS, the Linkerd
//!   control plane, and one allow per declared dependency (L7 where the
//!   topology declares HTTP rules), plus the entry points of the
//!   load-balanced hostnames;
//! - `linkerd/`: a multicluster Link to every other linked cluster, and a
//!   Server, MeshTLSAuthentication and AuthorizationPolicy per exported port;
//! - `resilience/`: the ADR's PodDisruptionBudget for the network components;
//! - `ingress/`: Nginx Ingress objects for the hostnames the cluster serves,
//!   and on GKE the ADR's global Ingress with its managed certificate;
//! - `monitoring/`: the cluster's side of the monitoring stack (see
//!   [`monitoring`]), whose central side is rendered once, for the
//!   monitoring network, into [`Rendering::monitoring`];
//! - `preview/`: one sample pod per workload (and the system pods the
//!   policies name), so that `mcnet policy matrix` can show what the
//!   policies allow. Not for applying.
//!
//! Built-in objects pass through their k8s-openapi types; custom resources
//! can be checked against the upstream CRD schemas with [`schema`].
//! [`write_dir`] writes the whole tree atomically.

mod cilium;
mod ingress;
mod linkerd;
pub mod monitoring;
pub mod schema;
mod zero_trust;

use crate::diag::Code;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::Serialize;
use serde_json::Value;

use crate::diag::Diagnostic;
use crate::topology::{self, Cluster, Topology};
use crate::{Error, Result};

pub use cilium::common_supernet;

/// Rendering options.
#[derive(Clone, Debug)]
pub struct Options {
    /// Linkerd and Kubernetes trust domain (`cluster.local`).
    pub trust_domain: String,
    /// Cilium's `clustermesh.maxConnectedClusters`: 255 or 511, the same in every cluster.
    pub max_connected_clusters: u32,
    /// Base domain for the Hubble UI host (`hubble.<domain>`); default: the
    /// domain of the first load-balanced hostname.
    pub domain: Option<String>,
    /// Base URL of the monitoring network's metrics store as the clusters
    /// reach it; default `http://NAME.NETWORK.DOMAIN:PORT` from the
    /// topology's monitoring component.
    pub monitoring_url: Option<String>,
    /// Alertmanager for vmalert; without one, alerts are only recorded (as
    /// `ALERTS` series in the store).
    pub alertmanager_url: Option<String>,
    /// Elasticsearch-compatible bulk endpoint for flow logs; default a
    /// VictoriaLogs rendered beside the Vector aggregator.
    pub log_store_url: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            trust_domain: "cluster.local".into(),
            max_connected_clusters: 255,
            domain: None,
            monitoring_url: None,
            alertmanager_url: None,
            log_store_url: None,
        }
    }
}

/// What a rendered document is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DocKind {
    /// A Kubernetes built-in object (checked through its k8s-openapi type).
    BuiltIn,
    /// A custom resource (Cilium, Linkerd, GKE).
    Custom,
    /// Helm values, not an object.
    HelmValues,
    /// A preview for the policy engine, not for applying.
    Preview,
    /// A configuration file written as is (one string document): alert
    /// rules, a dashboard, a scrape or Vector configuration.
    Raw,
}

/// One rendered file: a list of YAML documents.
#[derive(Clone, Debug, Serialize)]
pub struct RenderedFile {
    /// Path relative to the cluster's directory.
    pub path: String,
    /// What the documents are.
    pub kind: DocKind,
    /// The documents.
    pub documents: Vec<Value>,
}

/// Everything one cluster runs.
#[derive(Clone, Debug, Serialize)]
pub struct ClusterRender {
    /// Cluster name.
    pub cluster: String,
    /// ClusterMesh id and name, when the cluster is in the mesh.
    pub cluster_mesh: Option<(u32, String)>,
    /// `clustermesh.maxConnectedClusters`.
    pub max_connected_clusters: u32,
    /// Files, in a stable order.
    pub files: Vec<RenderedFile>,
}

impl ClusterRender {
    fn add(&mut self, path: impl Into<String>, kind: DocKind, documents: Vec<Value>) {
        if !documents.is_empty() {
            self.files.push(RenderedFile {
                path: path.into(),
                kind,
                documents,
            });
        }
    }

    /// Every document, with its file.
    pub fn documents(&self) -> impl Iterator<Item = (&RenderedFile, &Value)> {
        self.files
            .iter()
            .flat_map(|f| f.documents.iter().map(move |d| (f, d)))
    }

    /// The files under `dir/` (e.g. `policies/`).
    pub fn files_under<'a>(&'a self, dir: &'a str) -> impl Iterator<Item = &'a RenderedFile> {
        self.files.iter().filter(move |f| f.path.starts_with(dir))
    }
}

/// The rendering of a whole topology.
#[derive(Clone, Debug, Serialize)]
pub struct Rendering {
    /// Topology name.
    pub topology: String,
    /// One entry per cluster, in topology order.
    pub clusters: Vec<ClusterRender>,
    /// The monitoring network's stack (its `cluster` is the network's
    /// name, and its directory beside the clusters').
    pub monitoring: Option<ClusterRender>,
    /// Things rendered with a caveat (e.g. a dependency on a workload that
    /// does not run in the same cluster).
    pub warnings: Vec<Diagnostic>,
}

/// Renders every cluster of a topology. The topology must be valid; `auto`
/// CIDRs are allocated first.
pub fn render(t: &Topology, opts: &Options) -> Result<Rendering> {
    let report = topology::validate(t);
    if !report.valid {
        return Err(Error::Invalid {
            what: format!("topology `{}`", t.metadata.name),
            problems: report.errors,
        });
    }
    if ![255, 511].contains(&opts.max_connected_clusters) {
        return Err(Error::Invalid {
            what: "render options".into(),
            problems: vec![Diagnostic::new(
                Code::RenderMaxConnectedClusters,
                "maxConnectedClusters",
                format!(
                    "maxConnectedClusters is {}; Cilium supports 255 or 511",
                    opts.max_connected_clusters
                ),
            )],
        });
    }
    let t = topology::ipam::allocate(t).map_err(|problems| Error::Invalid {
        what: format!("topology `{}`", t.metadata.name),
        problems,
    })?;
    let ctx = Context::new(&t, opts);
    let mut warnings = Vec::new();
    let mut clusters = Vec::new();
    for c in &t.spec.clusters {
        let mut out = ClusterRender {
            cluster: c.name.clone(),
            cluster_mesh: c.cluster_mesh.as_ref().map(|m| (m.id, m.name.clone())),
            max_connected_clusters: opts.max_connected_clusters,
            files: Vec::new(),
        };
        cilium::render(&ctx, c, &mut out)?;
        zero_trust::render(&ctx, c, &mut out, &mut warnings)?;
        linkerd::render(&ctx, c, &mut out)?;
        ingress::render(&ctx, c, &mut out)?;
        monitoring::render_cluster(&ctx, c, &mut out)?;
        clusters.push(out);
    }
    let monitoring = monitoring::render_network(&ctx)?;
    if let Some(m) = &monitoring {
        if t.spec.clusters.iter().any(|c| c.name == m.cluster) {
            return Err(Error::Invalid {
                what: format!("topology `{}`", t.metadata.name),
                problems: vec![Diagnostic::new(
                    Code::RenderMonitoringDir,
                    "spec.monitoring.network",
                    format!(
                        "the monitoring network `{}` is rendered into a directory of that name, which cluster `{}` already has; rename one",
                        m.cluster, m.cluster
                    ),
                )],
            });
        }
    }
    Ok(Rendering {
        topology: t.metadata.name.clone(),
        clusters,
        monitoring,
        warnings,
    })
}

/// What every part of the rendering needs.
struct Context<'a> {
    t: &'a Topology,
    opts: &'a Options,
    /// Pod CIDRs of the ClusterMesh members.
    mesh_pod_cidrs: Vec<IpNet>,
    domain: String,
}

impl<'a> Context<'a> {
    fn new(t: &'a Topology, opts: &'a Options) -> Context<'a> {
        let mesh_pod_cidrs = t
            .spec
            .clusters
            .iter()
            .filter(|c| c.cluster_mesh.is_some())
            .filter_map(|c| c.pod_cidr.net())
            .collect();
        let domain = opts.domain.clone().unwrap_or_else(|| {
            t.spec
                .load_balancing
                .hostnames
                .first()
                .and_then(|h| h.name.split_once('.').map(|(_, d)| d.to_string()))
                .unwrap_or_else(|| format!("{}.example", t.metadata.name))
        });
        Context {
            t,
            opts,
            mesh_pod_cidrs,
            domain,
        }
    }

    /// The application namespaces deployed to `cluster`.
    fn namespaces_in<'b>(
        &'b self,
        cluster: &'b Cluster,
    ) -> impl Iterator<Item = &'a topology::Namespace> + 'b {
        self.t
            .spec
            .namespaces
            .iter()
            .filter(move |n| n.clusters.iter().any(|c| c == &cluster.name))
    }

    /// The clusters linked with `cluster` for multicluster service
    /// discovery: those sharing an application namespace with it.
    fn linked_clusters(&self, cluster: &Cluster) -> Vec<&'a Cluster> {
        self.t
            .spec
            .clusters
            .iter()
            .filter(|o| o.name != cluster.name)
            .filter(|o| {
                self.t
                    .spec
                    .namespaces
                    .iter()
                    .any(|n| n.clusters.contains(&cluster.name) && n.clusters.contains(&o.name))
            })
            .collect()
    }

    /// Linkerd identity of a service account.
    fn identity(&self, namespace: &str, service_account: &str) -> String {
        format!(
            "{service_account}.{namespace}.serviceaccount.identity.linkerd.{}",
            self.opts.trust_domain
        )
    }
}

/// Passes a built-in object through its k8s-openapi type, so that what is
/// written is what the type accepts; an object the type would change is a
/// rendering bug, reported with its kind and name.
pub fn builtin(v: Value) -> Result<Value> {
    use k8s_openapi::api;
    fn through<T: serde::de::DeserializeOwned + Serialize>(v: &Value) -> Result<Value, String> {
        let typed: T = serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
        serde_json::to_value(&typed).map_err(|e| e.to_string())
    }
    let api_version = v["apiVersion"].as_str().unwrap_or_default();
    let kind = v["kind"].as_str().unwrap_or_default();
    let out = match (api_version, kind) {
        ("v1", "ConfigMap") => through::<api::core::v1::ConfigMap>(&v),
        ("v1", "Namespace") => through::<api::core::v1::Namespace>(&v),
        ("v1", "Service") => through::<api::core::v1::Service>(&v),
        ("v1", "Pod") => through::<api::core::v1::Pod>(&v),
        ("v1", "ServiceAccount") => through::<api::core::v1::ServiceAccount>(&v),
        ("apps/v1", "Deployment") => through::<api::apps::v1::Deployment>(&v),
        ("apps/v1", "DaemonSet") => through::<api::apps::v1::DaemonSet>(&v),
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => {
            through::<api::rbac::v1::ClusterRole>(&v)
        }
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
            through::<api::rbac::v1::ClusterRoleBinding>(&v)
        }
        ("networking.k8s.io/v1", "NetworkPolicy") => {
            through::<api::networking::v1::NetworkPolicy>(&v)
        }
        ("networking.k8s.io/v1", "Ingress") => through::<api::networking::v1::Ingress>(&v),
        ("policy/v1", "PodDisruptionBudget") => through::<api::policy::v1::PodDisruptionBudget>(&v),
        _ => Err(format!(
            "`{api_version}/{kind}` is not a built-in kind mcnet renders"
        )),
    };
    let name = v["metadata"]["name"].as_str().unwrap_or("?");
    let bad = |why: String| Error::Invalid {
        what: format!("rendered {kind} `{name}`"),
        problems: vec![Diagnostic::new(Code::RenderBuiltin, kind.to_string(), why)],
    };
    let out = out.map_err(bad)?;
    if out != v {
        return Err(bad(format!(
            "its k8s-openapi type does not round-trip it: wrote {v}, the type gives {out}"
        )));
    }
    Ok(out)
}

/// What [`write_dir`] wrote.
#[derive(Clone, Debug, Default, Serialize)]
pub struct WriteSummary {
    /// Output directory.
    pub dir: PathBuf,
    /// Per cluster: files and documents by top-level folder.
    pub clusters: BTreeMap<String, BTreeMap<String, (usize, usize)>>,
    /// Files written in all.
    pub files: usize,
    /// Documents written in all.
    pub documents: usize,
}

/// Marks a directory as mcnet's output, so that re-rendering may replace it.
const MARKER: &str = ".mcnet-render";

fn io_err(what: &Path, e: std::io::Error) -> Error {
    Error::Invalid {
        what: format!("output `{}`", what.display()),
        problems: vec![Diagnostic::new(Code::RenderIo, "", e.to_string())],
    }
}

/// Why `segment` may not be one component of a path under the output
/// directory; `None` when it may.
fn segment_problem(segment: &str) -> Option<&'static str> {
    if segment.is_empty() {
        Some("it is empty")
    } else if segment == "." || segment == ".." {
        Some("it is `.` or `..`")
    } else if segment.contains(['/', '\\']) {
        Some("it contains a path separator")
    } else if segment.contains('\0') || segment.chars().any(char::is_control) {
        Some("it contains a control character")
    } else if !matches!(
        Path::new(segment).components().collect::<Vec<_>>()[..],
        [std::path::Component::Normal(_)]
    ) {
        Some("it is not a plain file name")
    } else {
        None
    }
}

/// The one way a rendered file's path is made: `root/<cluster>/<file
/// path>`, every segment a plain name. An absolute path, `..`, `.`, an
/// empty segment or a separator inside the cluster's name is refused with
/// the object and field it came from, so nothing is ever written outside
/// `root`, whatever the topology or the [`Rendering`] holds.
fn safe_join(root: &Path, index: usize, cluster: &str, file: &str) -> Result<PathBuf> {
    let refuse = |field: String, value: &str, why: &str| Error::Invalid {
        what: format!("rendering of cluster `{}`", cluster.escape_debug()),
        problems: vec![Diagnostic::new(
            Code::RenderPath,
            field,
            format!(
                "`{}` cannot be a path under the output directory: {why}",
                value.escape_debug()
            ),
        )],
    };
    if let Some(why) = segment_problem(cluster) {
        return Err(refuse(format!("spec.clusters[{index}].name"), cluster, why));
    }
    let mut path = root.join(cluster);
    for seg in file.split('/') {
        if let Some(why) = segment_problem(seg) {
            return Err(refuse(
                format!("spec.clusters[{index}] file `{}`", file.escape_debug()),
                file,
                why,
            ));
        }
        path.push(seg);
    }
    Ok(path)
}

/// A fresh directory beside `dir` with a name no other process can
/// predict, created here (never one that already exists).
fn fresh_dir(parent: &Path, base: &str, tag: &str) -> Result<PathBuf> {
    use std::hash::{BuildHasher, Hasher};
    let mut last = None;
    for attempt in 0u32..16 {
        // `RandomState` is seeded from the operating system's randomness.
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        h.write_u32(attempt);
        if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            h.write_u128(t.as_nanos());
        }
        let path = parent.join(format!(".{base}.{tag}-{:016x}", h.finish()));
        match fs::create_dir(&path) {
            Ok(()) => return Ok(path),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(io_err(&path, e)),
        }
    }
    Err(io_err(
        parent,
        last.unwrap_or_else(|| std::io::Error::other("no fresh directory name")),
    ))
}

/// Writes the rendering under `dir` as `dir/<cluster>/<path>`, atomically:
/// the tree is built in a fresh directory beside `dir` and renamed into
/// place, so that readers see the old tree or the new one, never a mix. An
/// existing `dir` is replaced only if it is empty or an earlier rendering.
/// Every path is checked first, through one safe join that refuses
/// absolute paths, `..`, empty segments and separators inside a name: a
/// rendering with a cluster or file name that is not a plain name writes
/// nothing at all.
pub fn write_dir(r: &Rendering, dir: &Path) -> Result<WriteSummary> {
    for (i, c) in r.clusters.iter().chain(&r.monitoring).enumerate() {
        for f in &c.files {
            safe_join(dir, i, &c.cluster, &f.path)?;
        }
    }
    if dir.exists() {
        let empty = fs::read_dir(dir)
            .map_err(|e| io_err(dir, e))?
            .next()
            .is_none();
        if !empty && !dir.join(MARKER).exists() {
            return Err(Error::Invalid {
                what: format!("output `{}`", dir.display()),
                problems: vec![Diagnostic::new(
                    Code::RenderOutputNotOurs,
                    "",
                    format!(
                        "`{}` holds files mcnet did not render; choose an empty or new directory",
                        dir.display()
                    ),
                )],
            });
        }
    }
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(|e| io_err(parent, e))?;
    let base = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "render".into());
    let staging = fresh_dir(parent, &base, "tmp")?;
    let result = write_tree(r, &staging, dir);
    if result.is_err() {
        let _ = fs::remove_dir_all(&staging);
        return result;
    }
    let old = if dir.exists() {
        let old = fresh_dir(parent, &base, "old").inspect_err(|_| {
            let _ = fs::remove_dir_all(&staging);
        })?;
        // `rename` replaces an empty directory on Unix; the fresh one is empty.
        let _ = fs::remove_dir(&old);
        if let Err(e) = fs::rename(dir, &old) {
            let _ = fs::remove_dir_all(&staging);
            return Err(io_err(dir, e));
        }
        Some(old)
    } else {
        None
    };
    if let Err(e) = fs::rename(&staging, dir) {
        if let Some(old) = &old {
            let _ = fs::rename(old, dir);
        }
        let _ = fs::remove_dir_all(&staging);
        return Err(io_err(dir, e));
    }
    if let Some(old) = old {
        let _ = fs::remove_dir_all(&old);
    }
    result
}

fn write_tree(r: &Rendering, root: &Path, final_dir: &Path) -> Result<WriteSummary> {
    let mut summary = WriteSummary {
        dir: final_dir.to_path_buf(),
        ..WriteSummary::default()
    };
    fs::create_dir_all(root).map_err(|e| io_err(root, e))?;
    fs::write(
        root.join(MARKER),
        format!("rendered by mcnet from topology `{}`\n", r.topology),
    )
    .map_err(|e| io_err(root, e))?;
    for (i, c) in r.clusters.iter().chain(&r.monitoring).enumerate() {
        for f in &c.files {
            let path = safe_join(root, i, &c.cluster, &f.path)?;
            if let Some(p) = path.parent() {
                fs::create_dir_all(p).map_err(|e| io_err(p, e))?;
            }
            let mut text = String::new();
            if f.kind == DocKind::Preview {
                text.push_str(
                    "# Preview for `mcnet policy matrix`: sample pods, not for applying.\n",
                );
            }
            for (i, d) in f.documents.iter().enumerate() {
                if let (DocKind::Raw, Value::String(raw)) = (f.kind, d) {
                    text.push_str(raw);
                    continue;
                }
                if i > 0 {
                    text.push_str("---\n");
                }
                text.push_str(&serde_yaml::to_string(d).map_err(|e| Error::Serialize {
                    what: f.path.clone(),
                    source: Box::new(e),
                })?);
            }
            fs::write(&path, text).map_err(|e| io_err(&path, e))?;
            let folder = f.path.split('/').next().unwrap_or("").to_string();
            let e = summary
                .clusters
                .entry(c.cluster.clone())
                .or_default()
                .entry(folder)
                .or_default();
            e.0 += 1;
            e.1 += f.documents.len();
            summary.files += 1;
            summary.documents += f.documents.len();
        }
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory of its own under the system's temporary directory,
    /// removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(tag: &str) -> Scratch {
            let p = std::env::temp_dir().join(format!(
                "mcnet-render-{tag}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = fs::remove_dir_all(&p);
            fs::create_dir_all(&p).unwrap();
            Scratch(p)
        }

        /// Every path under it, relative, sorted.
        fn listing(&self) -> Vec<String> {
            fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
                for e in fs::read_dir(dir).unwrap() {
                    let p = e.unwrap().path();
                    out.push(p.strip_prefix(root).unwrap().display().to_string());
                    if p.is_dir() {
                        walk(root, &p, out);
                    }
                }
            }
            let mut out = Vec::new();
            walk(&self.0, &self.0, &mut out);
            out.sort();
            out
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn rendering(clusters: &[(&str, &str)]) -> Rendering {
        Rendering {
            topology: "t".into(),
            clusters: clusters
                .iter()
                .map(|(name, file)| ClusterRender {
                    cluster: name.to_string(),
                    cluster_mesh: None,
                    max_connected_clusters: 255,
                    files: vec![RenderedFile {
                        path: file.to_string(),
                        kind: DocKind::BuiltIn,
                        documents: vec![serde_json::json!({"kind": "ConfigMap"})],
                    }],
                })
                .collect(),
            monitoring: None,
            warnings: vec![],
        }
    }

    #[test]
    fn a_rendering_whose_names_leave_the_output_directory_writes_nothing_anywhere() {
        let s = Scratch::new("escape");
        // `<scratch>/a/b/out`: `../../escape` from a cluster directory
        // would be `<scratch>/a/escape`.
        let out = s.0.join("a/b/out");
        fs::create_dir_all(out.parent().unwrap()).unwrap();
        let cases: [(&[(&str, &str)], &str); 9] = [
            (
                &[("ok", "x.yaml"), ("../../escape", "x.yaml")],
                "spec.clusters[1].name",
            ),
            (&[("/tmp/x", "x.yaml")], "spec.clusters[0].name"),
            (&[("..", "x.yaml")], "spec.clusters[0].name"),
            (&[("", "x.yaml")], "spec.clusters[0].name"),
            (&[("a/b", "x.yaml")], "spec.clusters[0].name"),
            (&[("a\\b", "x.yaml")], "spec.clusters[0].name"),
            (
                &[("ok", "../../x.yaml")],
                "spec.clusters[0] file `../../x.yaml`",
            ),
            (
                &[("ok", "/etc/x.yaml")],
                "spec.clusters[0] file `/etc/x.yaml`",
            ),
            (
                &[("ok", "policies//x.yaml")],
                "spec.clusters[0] file `policies//x.yaml`",
            ),
        ];
        for (clusters, field) in cases {
            let e = write_dir(&rendering(clusters), &out).unwrap_err();
            let Error::Invalid { what, problems } = &e else {
                panic!("{e}")
            };
            assert_eq!(problems.len(), 1, "{e}");
            assert_eq!(problems[0].code, Code::RenderPath);
            assert_eq!(problems[0].path, field, "{clusters:?}");
            assert!(what.contains("cluster"), "{what}");
            assert_eq!(s.listing(), ["a", "a/b"], "{clusters:?} wrote something");
        }
        // A sound rendering is written, and only under `out`.
        write_dir(&rendering(&[("ok", "cilium/x.yaml")]), &out).unwrap();
        assert_eq!(
            s.listing(),
            [
                "a",
                "a/b",
                "a/b/out",
                "a/b/out/.mcnet-render",
                "a/b/out/ok",
                "a/b/out/ok/cilium",
                "a/b/out/ok/cilium/x.yaml"
            ]
        );
        // A refused re-render leaves the earlier tree as it was.
        write_dir(&rendering(&[("../../escape", "x.yaml")]), &out).unwrap_err();
        assert_eq!(s.listing().len(), 7);
    }

    #[test]
    fn the_library_refuses_to_render_a_cluster_named_like_a_path() {
        for name in ["../../escape", "/tmp/x"] {
            let t = Topology::from_str_strict(&format!(
                "apiVersion: mcnet.io/v1alpha1\nkind: Topology\nmetadata: {{name: t}}\nspec:\n  providers: [{{name: aws, kind: aws, regions: [us-east-1]}}]\n  networks: [{{name: n, provider: aws, region: us-east-1, cidrs: [10.0.0.0/16]}}]\n  clusters: [{{name: '{name}', flavour: eks, network: n, podCidr: 10.100.0.0/16, serviceCidr: 10.200.0.0/20}}]\n"
            ))
            .unwrap();
            let Err(Error::Invalid { problems, .. }) = render(&t, &Options::default()) else {
                panic!("{name} rendered")
            };
            assert!(
                problems
                    .iter()
                    .any(|d| d.code == Code::NameInvalid && d.path == "spec.clusters[0].name"),
                "{problems:?}"
            );
        }
    }

    #[test]
    fn staging_directories_are_fresh_and_unpredictable() {
        let s = Scratch::new("fresh");
        let a = fresh_dir(&s.0, "out", "tmp").unwrap();
        let b = fresh_dir(&s.0, "out", "tmp").unwrap();
        assert_ne!(a, b);
        assert!(a.is_dir() && b.is_dir());
        let name = a.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with(".out.tmp-"), "{name}");
        assert!(
            !name.ends_with(&format!("-{}", std::process::id())),
            "{name} is the process id"
        );
    }
}
