//! A topology, its providers and the planner, for tests that apply one
//! against local servers: plan, apply, re-plan and destroy in one call each.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mcnet_core::reconcile::{
    apply, desired, plan, ApplyOptions, ApplyReport, CloudId, Desired, Observed, Owner, Plan,
    Providers, Retry, Scope,
};
use mcnet_core::topology::Topology;

/// One of `examples/topologies/`.
pub fn example(name: &str) -> Topology {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/topologies")
        .join(name);
    Topology::from_str_strict(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// A directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let p = std::env::temp_dir().join(format!("mcnet-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Short retries and polls: local servers answer at once.
pub fn fast_opts() -> ApplyOptions {
    ApplyOptions {
        retry: Retry {
            attempts: 4,
            base: Duration::from_millis(5),
            cap: Duration::from_millis(20),
        },
        poll: Duration::from_millis(10),
        wait_timeout: Duration::from_secs(30),
        ..ApplyOptions::default()
    }
}

pub struct Rig {
    pub topology: Topology,
    pub owner: Owner,
    pub scopes: BTreeSet<Scope>,
    pub providers: Providers,
    /// Applied to the desired state before each plan (a named server gap).
    pub adjust: fn(&mut Vec<Desired>),
}

impl Rig {
    /// `topology` on `providers`, for every scope they cover.
    pub fn new(topology: Topology, providers: Providers) -> Rig {
        Rig {
            owner: Owner {
                topology: topology.metadata.name.clone(),
            },
            scopes: providers.0.keys().copied().collect(),
            topology,
            providers,
            adjust: |_| {},
        }
    }

    pub async fn observe(&self) -> Vec<Observed> {
        self.providers.observe(&self.owner).await.unwrap()
    }

    pub async fn plan(&self) -> Plan {
        let mut want = desired(&self.topology, &self.scopes).unwrap();
        (self.adjust)(&mut want);
        plan(
            &self.owner.topology,
            &self.scopes,
            &want,
            &self.observe().await,
        )
    }

    pub async fn apply(&self, p: &Plan) -> ApplyReport {
        apply(
            p,
            &self.owner,
            &self.providers,
            &fast_opts(),
            Arc::new(|_: &_| {}),
        )
        .await
    }

    /// Plans and applies.
    pub async fn converge(&self) -> ApplyReport {
        self.apply(&self.plan().await).await
    }

    /// Plans the removal of everything the owner has, and applies it.
    pub async fn destroy(&self) -> ApplyReport {
        let have = self.observe().await;
        self.apply(&plan(&self.owner.topology, &self.scopes, &[], &have))
            .await
    }

    /// The observed resource with logical id `id`.
    pub async fn find(&self, id: &str) -> Observed {
        self.observe()
            .await
            .into_iter()
            .find(|o| o.id == id)
            .unwrap_or_else(|| panic!("{id} not observed"))
    }
}

/// Ownership is an exact match: `t` applied under the name `theirs` (a
/// name validation refuses, such as `prod:x`, goes in through the library)
/// on `providers`, then topology `prod` on the same providers observes
/// none of it and its destroy deletes nothing; `theirs` still has every
/// resource and re-plans empty.
pub async fn destroy_of_prod_spares(t: &Topology, theirs: &str, providers: Providers) {
    let mut other = t.clone();
    other.metadata.name = theirs.into();
    let rig = Rig::new(other, providers.clone());
    let r = rig.converge().await;
    assert!(r.ok(), "{theirs}: {r:?}");
    let before: BTreeSet<CloudId> = rig
        .observe()
        .await
        .into_iter()
        .map(|o| o.cloud_id)
        .collect();
    assert!(!before.is_empty(), "{theirs} created nothing");

    let mut mine = t.clone();
    mine.metadata.name = "prod".into();
    let prod = Rig::new(mine, providers);
    let seen = prod.observe().await;
    assert!(
        seen.is_empty(),
        "prod sees {theirs}'s resources as its own: {:?}",
        seen.iter()
            .map(|o| (&o.id, &o.cloud_id))
            .collect::<Vec<_>>()
    );
    let r = prod.destroy().await;
    assert!(r.ok(), "{r:?}");

    let after: BTreeSet<CloudId> = rig
        .observe()
        .await
        .into_iter()
        .map(|o| o.cloud_id)
        .collect();
    assert_eq!(
        after, before,
        "destroying prod touched {theirs}'s resources"
    );
    let again = rig.plan().await;
    assert!(again.is_empty(), "{theirs} after prod's destroy: {again}");
}
