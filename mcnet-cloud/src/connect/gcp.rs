//! Google Cloud over the Compute Engine REST API (feature `gcp`): custom-mode
//! VPC networks and their subnets, VPC peering from both sides, Cloud
//! Routers, PARTNER interconnect attachments whose pairing key feeds the
//! Megaport VXC, and Private Service Connect endpoints to published
//! services (an internal address in a subnet, and a forwarding rule of the
//! same name from it to the service attachment).
//!
//! Every insert returns an operation, which the provider waits out with the
//! API's own `wait` call before it reads the resource back.
//!
//! Ownership: networks and subnets have no labels, so every resource's
//! `description` reads `mcnet:<topology>:<logical id>`. A network's
//! description also keeps its region and address space
//! (`;region=us-east4;cidrs=10.2.0.0/16`), which a GCP network does not have
//! of its own: its subnets carry the addresses. A peering's two halves are
//! named `peering-<name>` (on the requester) and `peering-<name>-accept`.
//!
//! Configuration comes from the environment: `GOOGLE_CLOUD_PROJECT`,
//! `GOOGLE_OAUTH_ACCESS_TOKEN` (an OAuth2 access token, for example from
//! `gcloud auth print-access-token`), and `MCNET_GCP_COMPUTE_URL` (default
//! `https://compute.googleapis.com/compute/v1`).

mod create;
mod observe;

use std::collections::BTreeMap;

use async_trait::async_trait;
use mcnet_core::reconcile::{
    ConnectivityProvider, Desired, ErrorKind, Observed, Owner, ProviderError, Refs, ResourceId,
    ResourceKind, ResourceProvider, ResourceState, Scope, Spec,
};
use mcnet_core::topology::service_attachment_region;
use reqwest::Method;
use serde_json::{json, Value};

use super::rest::{env, env_required, Rest};

/// The ASN a Cloud Router must have for Partner Interconnect.
pub const PARTNER_ROUTER_ASN: u32 = 16550;

const KINDS: &[ResourceKind] = &[
    ResourceKind::Network,
    ResourceKind::Subnet,
    ResourceKind::Peering,
    ResourceKind::InterconnectGateway,
    ResourceKind::InterconnectAttachment,
    ResourceKind::PrivateEndpoint,
];

/// Where and how to reach Compute Engine.
#[derive(Clone)]
pub struct GcpConfig {
    /// Compute API base URL (`.../compute/v1`), without a trailing slash.
    pub compute_url: String,
    /// Project id.
    pub project: String,
    /// OAuth2 access token.
    pub access_token: String,
}

impl std::fmt::Debug for GcpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcpConfig")
            .field("compute_url", &self.compute_url)
            .field("project", &self.project)
            .field("access_token", &"<redacted>")
            .finish()
    }
}

impl GcpConfig {
    /// Reads the environment (see the module docs).
    pub fn from_env() -> Result<GcpConfig, ProviderError> {
        let var = env;
        let need = |k: &str, hint: &str| env_required(Scope::Gcp, k, hint);
        Ok(GcpConfig {
            compute_url: var("MCNET_GCP_COMPUTE_URL")
                .unwrap_or_else(|| "https://compute.googleapis.com/compute/v1".into())
                .trim_end_matches('/')
                .to_string(),
            project: need("GOOGLE_CLOUD_PROJECT", "")?,
            access_token: need(
                "GOOGLE_OAUTH_ACCESS_TOKEN",
                " (for example: export GOOGLE_OAUTH_ACCESS_TOKEN=$(gcloud auth print-access-token))",
            )?,
        })
    }
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

/// The last path segment of a resource URL (a name or a region).
fn last(url: &str) -> &str {
    url.rsplit('/').next().unwrap_or(url)
}

/// The resource's path from `projects/` on, which is its cloud id.
fn path_of(url: &str) -> &str {
    url.find("projects/").map_or(url, |i| &url[i..])
}

/// The description that marks a resource as `owner`'s `id`.
fn description(owner: &Owner, id: &ResourceId) -> String {
    owner.mark(id)
}

/// The logical id in a description written for `owner`, and the rest.
fn owned<'a>(owner: &Owner, description: &'a str) -> Option<(ResourceId, &'a str)> {
    owner.marked(description)
}

/// A `key=value;...` field of a network's description.
fn field<'a>(extra: &'a str, key: &str) -> Option<&'a str> {
    extra
        .split(';')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

/// A GCP resource name for a logical id: lower case, RFC 1035, at most 63.
fn gcp_name(id: &str) -> Result<String, ProviderError> {
    let n = id.replace('/', "-").to_ascii_lowercase();
    let ok = n.len() <= 63
        && n.starts_with(|c: char| c.is_ascii_lowercase())
        && n.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !n.ends_with('-');
    if ok {
        Ok(n)
    } else {
        Err(ProviderError::new(
            Scope::Gcp,
            ErrorKind::Invalid,
            "name",
            format!(
                "{id}: `{n}` is not a valid GCP resource name (lower-case letters, digits and \
                 dashes, starting with a letter, at most 63 characters): rename it in the topology"
            ),
        ))
    }
}

fn gcp_error(body: &Value) -> (Option<String>, String) {
    let e = &body["error"];
    let code = e["errors"][0]["reason"]
        .as_str()
        .or_else(|| e["status"].as_str())
        .map(str::to_string);
    let msg = e["message"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| match body {
            Value::String(t) => t.clone(),
            _ => "no message".into(),
        });
    (code, msg)
}

/// A Private Service Connect endpoint's state from its connection's.
fn psc_state(status: &str) -> ResourceState {
    match status {
        // PENDING waits on the producer, who accepts or rejects consumers:
        // nothing more is ours to do.
        "ACCEPTED" | "PENDING" => ResourceState::Ready,
        "REJECTED" | "CLOSED" | "NEEDS_ATTENTION" => ResourceState::Failed(status.into()),
        other => ResourceState::Pending(other.into()),
    }
}

/// A forwarding rule's address resource: the same name, in the same region.
fn address_of(rule: &str) -> String {
    rule.replace("/forwardingRules/", "/addresses/")
}

fn attachment_state(state: &str) -> ResourceState {
    match state {
        // The attachment is usable from PENDING_PARTNER on: the VXC needs
        // its pairing key before it can go further.
        "ACTIVE" | "PENDING_PARTNER" | "PENDING_CUSTOMER" | "PARTNER_REQUEST_RECEIVED" => {
            ResourceState::Ready
        }
        "DEFUNCT" | "UNPROVISIONED" => ResourceState::Failed(state.into()),
        other => ResourceState::Pending(other.into()),
    }
}

/// The GCP provider.
pub struct GcpProvider {
    cfg: GcpConfig,
    rest: Rest,
}

impl std::fmt::Debug for GcpProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcpProvider")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

/// Cloud id (path from `projects/`) → logical id.
type Index = BTreeMap<String, String>;

impl GcpProvider {
    /// A provider for `cfg`.
    pub fn new(cfg: GcpConfig) -> Result<GcpProvider, ProviderError> {
        Ok(GcpProvider {
            cfg,
            rest: Rest::new(Scope::Gcp)?,
        })
    }

    fn project_path(&self) -> String {
        format!("projects/{}", self.cfg.project)
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        what: &str,
    ) -> Result<Value, ProviderError> {
        let url = if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}/{}", self.cfg.compute_url, path_of(path))
        };
        let op = format!("{method} {}", path_of(path));
        let mut req = self.rest.http.request(method, url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.rest
            .send(req, &self.cfg.access_token, &op, what, gcp_error)
            .await
    }

    /// Every item of a global list, or of an aggregated list across regions.
    async fn list(&self, path: &str, field: &str) -> Result<Vec<Value>, ProviderError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let p = match &token {
                Some(t) => format!("{path}?pageToken={t}"),
                None => path.to_string(),
            };
            let r = self
                .call(Method::GET, &p, None, &format!("list {field}"))
                .await?;
            match &r["items"] {
                Value::Array(items) => out.extend(items.iter().cloned()),
                Value::Object(scopes) => {
                    for sc in scopes.values() {
                        out.extend(sc[field].as_array().into_iter().flatten().cloned());
                    }
                }
                _ => {}
            }
            match r["nextPageToken"].as_str() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => return Ok(out),
            }
        }
    }

    /// Every item of a collection across regions (`aggregated/<field>`).
    async fn aggregated(&self, field: &str) -> Result<Vec<Value>, ProviderError> {
        let path = format!("{}/aggregated/{field}", self.project_path());
        self.list(&path, field).await
    }

    async fn get(&self, path: &str, what: &str) -> Result<Option<Value>, ProviderError> {
        match self.call(Method::GET, path, None, what).await {
            Ok(r) => Ok(Some(r)),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Waits for an operation to finish; its error becomes ours.
    async fn wait(&self, mut op: Value, what: &str) -> Result<Value, ProviderError> {
        for _ in 0..120 {
            if s(&op["status"]) == "DONE" {
                if let Some(e) = op["error"]["errors"].as_array().and_then(|e| e.first()) {
                    let code = s(&e["code"]);
                    let kind = match code {
                        "RESOURCE_ALREADY_EXISTS" | "ALREADY_EXISTS" => ErrorKind::Conflict,
                        "QUOTA_EXCEEDED" => ErrorKind::Quota,
                        "RESOURCE_NOT_FOUND" => ErrorKind::NotFound,
                        "RATE_LIMIT_EXCEEDED" => ErrorKind::Throttled,
                        _ => ErrorKind::Invalid,
                    };
                    return Err(ProviderError::new(
                        Scope::Gcp,
                        kind,
                        s(&op["operationType"]).to_string(),
                        format!("{what}: {}", s(&e["message"])),
                    )
                    .with_code(code));
                }
                return Ok(op);
            }
            let link = s(&op["selfLink"]).to_string();
            if link.is_empty() {
                return Ok(op);
            }
            op = self
                .call(Method::POST, &format!("{link}/wait"), None, what)
                .await?;
        }
        Err(ProviderError::new(
            Scope::Gcp,
            ErrorKind::Transient,
            "wait",
            format!("{what}: operation {} is not done", s(&op["name"])),
        ))
    }

    /// Inserts (or calls an action) and waits; an insert that finds the
    /// name taken reads on, since names are derived from logical ids.
    async fn insert(&self, path: &str, body: Value, what: &str) -> Result<(), ProviderError> {
        match self.call(Method::POST, path, Some(body), what).await {
            Ok(r) => self.wait(r, what).await.map(drop),
            Err(e) if e.kind == ErrorKind::Conflict => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Reads a resource that should exist now.
    async fn read(&self, path: &str, id: &str) -> Result<Value, ProviderError> {
        self.get(path, id).await?.ok_or_else(|| {
            ProviderError::new(
                Scope::Gcp,
                ErrorKind::Transient,
                format!("GET {path}"),
                format!("{id}: not found right after its operation finished"),
            )
        })
    }

    fn observed(
        id: ResourceId,
        v: &Value,
        spec: Spec,
        state: ResourceState,
        outputs: BTreeMap<String, String>,
        links: Vec<String>,
    ) -> Observed {
        Observed {
            id,
            cloud_id: path_of(s(&v["selfLink"])).into(),
            scope: Scope::Gcp,
            spec,
            state,
            outputs,
            links,
        }
    }

    /// Adds whichever halves of a peering are missing.
    async fn peer(&self, id: &str, a: &str, b: &str) -> Result<(), ProviderError> {
        let name = gcp_name(id)?;
        for (net, remote, half) in [(a, b, name.clone()), (b, a, format!("{name}-accept"))] {
            let what = format!("{id} (half {half} on {net})");
            let n = self.read(net, &what).await?;
            let has = n["peerings"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| s(&p["name"]) == half);
            if has {
                continue;
            }
            let body = json!({"networkPeering": {
                "name": half,
                "network": format!("{}/{remote}", self.cfg.compute_url),
                "exchangeSubnetRoutes": true,
            }});
            self.insert(&format!("{net}/addPeering"), body, &what)
                .await?;
        }
        Ok(())
    }

    /// The current state of a peering from its requester network.
    async fn peering_now(&self, current: &Observed) -> Result<Option<Observed>, ProviderError> {
        let (net, name) = current
            .cloud_id
            .split_once('#')
            .unwrap_or((&current.cloud_id, ""));
        let Some(n) = self.get(net, current.id.as_str()).await? else {
            return Ok(None);
        };
        let half = n["peerings"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| s(&p["name"]) == name);
        Ok(half.map(|p| {
            let mut o = current.clone();
            let st = s(&p["state"]);
            o.outputs.insert("status".into(), st.to_string());
            o.state = match st {
                "ACTIVE" => ResourceState::Ready,
                other => ResourceState::Pending(other.into()),
            };
            o
        }))
    }
}

#[async_trait]
impl ResourceProvider for GcpProvider {
    fn scope(&self) -> Scope {
        Scope::Gcp
    }

    fn kinds(&self) -> &'static [ResourceKind] {
        KINDS
    }

    async fn observe(&self, owner: &Owner) -> Result<Vec<Observed>, ProviderError> {
        let pp = self.project_path();
        let networks = self
            .list(&format!("{pp}/global/networks"), "networks")
            .await?;
        let subnets = self.aggregated("subnetworks").await?;
        let routers = self.aggregated("routers").await?;
        let attachments = self.aggregated("interconnectAttachments").await?;
        let addresses = self.aggregated("addresses").await?;
        let rules = self.aggregated("forwardingRules").await?;

        let mut index = Index::new();
        let mut regions = Index::new();
        let mut mine = Vec::new();
        for n in &networks {
            if let Some((id, extra)) = owned(owner, s(&n["description"])) {
                let cid = path_of(s(&n["selfLink"])).to_string();
                regions.insert(
                    cid.clone(),
                    field(extra, "region").unwrap_or("").to_string(),
                );
                index.insert(cid, id.to_string());
                mine.push((id, extra.to_string(), n));
            }
        }
        let mut out = Vec::new();
        for (id, extra, n) in &mine {
            out.push(Self::network(id.clone(), extra, n));
            Self::peerings(id, n, &index, &regions, &mut out);
        }
        for v in &subnets {
            if let Some((id, _)) = owned(owner, s(&v["description"])) {
                index.insert(path_of(s(&v["selfLink"])).to_string(), id.to_string());
                out.push(Self::subnet(id, v, &index));
            }
        }
        for v in &routers {
            if let Some((id, _)) = owned(owner, s(&v["description"])) {
                index.insert(path_of(s(&v["selfLink"])).to_string(), id.to_string());
                out.push(Self::router(id, v, &index));
            }
        }
        for v in &attachments {
            if let Some((id, _)) = owned(owner, s(&v["description"])) {
                out.push(Self::attachment(id, v, &index));
            }
        }
        // Address path → its subnet's path, for the endpoints' subnets.
        let subnet_of: Index = addresses
            .iter()
            .filter(|a| owned(owner, s(&a["description"])).is_some())
            .map(|a| {
                (
                    path_of(s(&a["selfLink"])).to_string(),
                    path_of(s(&a["subnetwork"])).to_string(),
                )
            })
            .collect();
        for v in &rules {
            if let Some((id, _)) = owned(owner, s(&v["description"])) {
                out.push(Self::endpoint(id, v, &index, &subnet_of));
            }
        }
        Ok(out)
    }

    async fn create(
        &self,
        owner: &Owner,
        r: &Desired,
        refs: Refs<'_>,
    ) -> Result<Observed, ProviderError> {
        self.create_resource(owner, r, refs).await
    }

    async fn update(
        &self,
        owner: &Owner,
        r: &Desired,
        current: &Observed,
        refs: Refs<'_>,
    ) -> Result<Observed, ProviderError> {
        match &r.spec {
            // An endpoint's address cannot move to another subnet: a new
            // endpoint takes its place.
            Spec::PrivateEndpoint { .. } if r.spec != current.spec => {
                self.delete(current).await?;
                self.create(owner, r, refs).await
            }
            Spec::Peering {
                requester,
                accepter,
                ..
            } => {
                // INACTIVE: the accepter's half is missing.
                let (a, b) = (refs.cloud_id(requester)?, refs.cloud_id(accepter)?);
                self.peer(r.id.as_str(), a, b).await?;
                Ok(self
                    .peering_now(current)
                    .await?
                    .unwrap_or_else(|| current.clone()))
            }
            Spec::Network { .. } if r.spec != current.spec => Err(ProviderError::new(
                Scope::Gcp,
                ErrorKind::Invalid,
                "PATCH networks",
                format!(
                    "{}: a GCP network has no address space of its own and its description cannot \
                     change; add the addresses as subnets, or replace the network",
                    r.id
                ),
            )),
            _ => Ok(self
                .refresh(current)
                .await?
                .unwrap_or_else(|| current.clone())),
        }
    }

    async fn delete(&self, current: &Observed) -> Result<(), ProviderError> {
        let id = current.id.as_str();
        if let Spec::Peering { .. } = current.spec {
            let name = gcp_name(id)?;
            let halves = [
                (current.links.first(), name.clone()),
                (current.links.get(1), format!("{name}-accept")),
            ];
            for (net, half) in halves {
                let Some(net) = net else { continue };
                let body = json!({"name": half});
                match self
                    .call(
                        Method::POST,
                        &format!("{net}/removePeering"),
                        Some(body),
                        id,
                    )
                    .await
                {
                    Ok(r) => {
                        self.wait(r, id).await?;
                    }
                    Err(e) if matches!(e.kind, ErrorKind::NotFound | ErrorKind::Invalid) => {}
                    Err(e) => return Err(e),
                }
            }
            return Ok(());
        }
        // An endpoint's forwarding rule goes first, then the address it held.
        let mut paths = vec![current.cloud_id.as_str()];
        if let Spec::PrivateEndpoint { .. } = current.spec {
            paths.extend(current.links.first().map(String::as_str));
        }
        for path in paths {
            match self.call(Method::DELETE, path, None, id).await {
                Ok(r) => self.wait(r, id).await.map(drop)?,
                Err(e) if e.kind == ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    async fn refresh(&self, current: &Observed) -> Result<Option<Observed>, ProviderError> {
        if let Spec::Peering { .. } = current.spec {
            return self.peering_now(current).await;
        }
        let Some(v) = self.get(&current.cloud_id, current.id.as_str()).await? else {
            return Ok(None);
        };
        let mut o = current.clone();
        if let Spec::PrivateEndpoint { .. } = current.spec {
            let st = s(&v["pscConnectionStatus"]);
            o.state = psc_state(st);
            o.outputs.insert("status".into(), st.to_string());
        }
        if let Spec::InterconnectAttachment { .. } = current.spec {
            let st = s(&v["state"]);
            o.state = attachment_state(st);
            o.outputs.insert("status".into(), st.to_string());
            if let Some(k) = v["pairingKey"].as_str() {
                o.outputs.insert("pairingKey".into(), k.to_string());
            }
        }
        Ok(Some(o))
    }

    fn api_calls(&self) -> u64 {
        self.rest.calls()
    }
}

impl ConnectivityProvider for GcpProvider {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_mark_ownership_and_keep_the_address_space() {
        let owner = Owner {
            topology: "adr-003".into(),
        };
        let d = format!(
            "{};region=us-east4;cidrs=10.2.0.0/16,10.3.0.0/16",
            description(&owner, &ResourceId::network("gcp-vpc"))
        );
        let (id, extra) = owned(&owner, &d).expect("owned");
        assert_eq!(id, "network/gcp-vpc");
        assert_eq!(field(extra, "region"), Some("us-east4"));
        assert_eq!(field(extra, "cidrs"), Some("10.2.0.0/16,10.3.0.0/16"));
        let other = Owner {
            topology: "adr".into(),
        };
        assert!(owned(&other, &d).is_none());
    }

    #[test]
    fn names_are_rfc1035_or_refused() {
        assert_eq!(
            gcp_name("subnet/gcp-vpc/gke-nodes").unwrap(),
            "subnet-gcp-vpc-gke-nodes"
        );
        let e = gcp_name("subnet/gcp-vpc/GKE_nodes").unwrap_err();
        assert_eq!(e.kind, ErrorKind::Invalid);
        assert!(e.message.contains("subnet/gcp-vpc/GKE_nodes"), "{e}");
        assert!(gcp_name(&format!("network/{}", "a".repeat(60))).is_err());
    }

    #[test]
    fn partner_attachments_are_usable_once_they_have_a_key() {
        assert_eq!(attachment_state("PENDING_PARTNER"), ResourceState::Ready);
        assert_eq!(attachment_state("ACTIVE"), ResourceState::Ready);
        assert!(matches!(
            attachment_state("DEFUNCT"),
            ResourceState::Failed(_)
        ));
        assert!(matches!(
            attachment_state("CREATING"),
            ResourceState::Pending(_)
        ));
    }
}
