//! The planner: desired state against observed state, as a DAG of actions.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write as _};

use serde::Serialize;

pub use super::action::{Action, Cause, Op};
use super::id::ResourceId;
use super::resource::{Desired, Observed, ResourceState, Scope};

/// A plan: actions in dependency order, plus what is already converged.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// The topology's name.
    pub topology: String,
    /// Providers covered.
    pub providers: Vec<Scope>,
    /// Actions, dependencies first. Empty when nothing is to do.
    pub actions: Vec<Action>,
    /// Resources already as the topology wants them.
    pub unchanged: usize,
    /// What exists, one per logical id (the apply resolves references here).
    #[serde(skip)]
    pub known: BTreeMap<String, Observed>,
}

impl Plan {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    /// How many actions of `op`.
    pub fn count(&self, op: Op) -> usize {
        self.actions.iter().filter(|a| a.op == op).count()
    }
}

fn state_rank(s: &ResourceState) -> u8 {
    match s {
        ResourceState::Ready => 0,
        ResourceState::Pending(_) => 1,
        ResourceState::Failed(_) => 2,
    }
}

/// Compares `desired` with `observed` (every resource the owner has in the
/// planned scopes) and orders the actions into a DAG.
pub fn plan(
    topology: &str,
    scopes: &BTreeSet<Scope>,
    desired: &[Desired],
    observed: &[Observed],
) -> Plan {
    // Group what exists by logical id; one keeper each, the rest are duplicates.
    let mut by_id: BTreeMap<&ResourceId, Vec<&Observed>> = BTreeMap::new();
    for o in observed.iter().filter(|o| scopes.contains(&o.scope)) {
        by_id.entry(&o.id).or_default().push(o);
    }
    for v in by_id.values_mut() {
        v.sort_by(|a, b| {
            state_rank(&a.state)
                .cmp(&state_rank(&b.state))
                .then(a.cloud_id.cmp(&b.cloud_id))
        });
    }
    // Among duplicates (two applies raced), keep the copy whose references
    // point at kept copies, so deleting the others strands nothing.
    let dup_members: BTreeSet<String> = by_id
        .values()
        .filter(|v| v.len() > 1)
        .flat_map(|v| v.iter().map(|o| o.cloud_id.to_string()))
        .collect();
    for _ in 0..8 {
        let kept: BTreeSet<String> = by_id.values().map(|v| v[0].cloud_id.to_string()).collect();
        let bad = |o: &Observed| {
            o.links
                .iter()
                .any(|l| dup_members.contains(l) && !kept.contains(l))
        };
        let mut moved = false;
        for v in by_id.values_mut().filter(|v| v.len() > 1) {
            if bad(v[0]) {
                if let Some(i) = v.iter().position(|o| !bad(o)) {
                    v.swap(0, i);
                    moved = true;
                }
            }
        }
        if !moved {
            break;
        }
    }
    let kept: BTreeSet<String> = by_id.values().map(|v| v[0].cloud_id.to_string()).collect();
    let wanted: BTreeMap<&ResourceId, &Desired> = desired.iter().map(|d| (&d.id, d)).collect();

    let mut actions: Vec<Action> = Vec::new();
    let mut unchanged = 0;
    let mut op_of: BTreeMap<ResourceId, Op> = BTreeMap::new();
    let action = |op: Op,
                  d: Option<&Desired>,
                  o: Option<&Observed>,
                  (cause, reason): (Cause, String),
                  changes| {
        let (resource, kind, provider) = match (d, o) {
            (Some(d), _) => (d.id.clone(), d.kind(), d.scope),
            (None, Some(o)) => (o.id.clone(), o.spec.kind(), o.scope),
            (None, None) => unreachable!("an action has a desired or a current resource"),
        };
        Action {
            index: 0,
            op,
            resource,
            kind,
            provider,
            cloud_id: o.map(|o| o.cloud_id.clone()),
            reason,
            cause,
            changes,
            depends_on: vec![],
            desired: d.cloned(),
            current: o.cloned(),
        }
    };

    for d in desired {
        let keeper = by_id.get(&d.id).and_then(|v| v.first().copied());
        let Some(k) = keeper else {
            actions.push(action(
                Op::Create,
                Some(d),
                None,
                (Cause::Missing, "not found".into()),
                vec![],
            ));
            continue;
        };
        if let ResourceState::Failed(s) = &k.state {
            actions.push(action(
                Op::Replace,
                Some(d),
                Some(k),
                (Cause::Failed, format!("failed ({s})")),
                vec![],
            ));
            continue;
        }
        if let Some(dup) = k
            .links
            .iter()
            .find(|l| dup_members.contains(*l) && !kept.contains(*l))
        {
            let reason = (
                Cause::RefersToDuplicate,
                format!("refers to duplicate {dup}"),
            );
            actions.push(action(Op::Replace, Some(d), Some(k), reason, vec![]));
            continue;
        }
        let changes = d.spec.settled_by(&k.spec).diff(&k.spec);
        if !changes.is_empty() {
            let mutable = d.kind().mutable_fields();
            let fixed: Vec<&str> = changes
                .iter()
                .map(|c| c.field.as_str())
                .filter(|f| !mutable.contains(f))
                .collect();
            if fixed.is_empty() {
                actions.push(action(
                    Op::Update,
                    Some(d),
                    Some(k),
                    (Cause::Changed, "changed".into()),
                    changes,
                ));
            } else {
                let reason = (
                    Cause::Changed,
                    format!("{} forces replacement", fixed.join(", ")),
                );
                actions.push(action(Op::Replace, Some(d), Some(k), reason, changes));
            }
        } else if let ResourceState::Pending(s) = &k.state {
            actions.push(action(
                Op::Update,
                Some(d),
                Some(k),
                (Cause::Pending, format!("pending ({s})")),
                vec![],
            ));
        } else {
            unchanged += 1;
        }
    }

    // Replacing a resource gives it a new cloud id: what refers to it
    // through a field that cannot change is replaced too.
    loop {
        for a in &actions {
            op_of.insert(a.resource.clone(), a.op);
        }
        let replaced: BTreeSet<String> = actions
            .iter()
            .filter(|a| a.op == Op::Replace)
            .map(|a| a.resource.to_string())
            .collect();
        let mut grew = false;
        for d in desired {
            if op_of.contains_key(&d.id) {
                continue;
            }
            let Some(k) = by_id.get(&d.id).and_then(|v| v.first().copied()) else {
                continue;
            };
            let hit: Vec<&String> = d
                .spec
                .refs()
                .into_iter()
                .filter(|r| replaced.contains(*r))
                .collect();
            if hit.is_empty() {
                continue;
            }
            let mut moved = d.spec.clone();
            moved.map_refs(|r| {
                if replaced.contains(r) {
                    format!("{r}#replaced")
                } else {
                    r.to_string()
                }
            });
            let fields: Vec<String> = moved.diff(&d.spec).into_iter().map(|c| c.field).collect();
            let mutable = d.kind().mutable_fields();
            let reason = (Cause::DependencyReplaced, format!("{} is replaced", hit[0]));
            let op = if fields.iter().all(|f| mutable.contains(&f.as_str())) {
                Op::Update
            } else {
                Op::Replace
            };
            actions.push(action(op, Some(d), Some(k), reason, vec![]));
            grew = true;
        }
        if !grew {
            break;
        }
    }

    // What the owner has that the topology does not ask for, and duplicates.
    for (id, v) in &by_id {
        let extra = if wanted.contains_key(id) {
            &v[1..]
        } else {
            &v[..]
        };
        for o in extra {
            let reason = if wanted.contains_key(id) {
                (Cause::Duplicate, format!("duplicate of {}", v[0].cloud_id))
            } else {
                (Cause::Unmanaged, "not in the topology".into())
            };
            actions.push(action(Op::Delete, None, Some(o), reason, vec![]));
        }
    }

    order(&mut actions);
    let mut providers: Vec<Scope> = scopes.iter().copied().collect();
    providers.sort();
    let known = by_id
        .iter()
        .map(|(id, v)| (id.to_string(), v[0].clone()))
        .collect();
    Plan {
        topology: topology.to_string(),
        providers,
        actions,
        unchanged,
        known,
    }
}

/// Sorts actions so dependencies come first and fills in `depends_on`:
/// creates follow the resources they refer to, deletes follow the
/// resources that refer to them.
fn order(actions: &mut Vec<Action>) {
    let steps = super::dag::steps(actions);
    // A topological order of the steps gives an order of the actions.
    let n = actions.len();
    let mut seen = vec![false; n];
    let mut order = Vec::with_capacity(n);
    for s in super::dag::topo_order(&steps) {
        let a = steps[s].action;
        if !seen[a] {
            seen[a] = true;
            order.push(a);
        }
    }
    for (a, s) in seen.iter().enumerate() {
        if !s {
            order.push(a);
        }
    }
    let mut pos = vec![0; n];
    for (i, &a) in order.iter().enumerate() {
        pos[a] = i;
    }
    let mut deps: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n];
    for s in &steps {
        for &p in &s.after {
            let (a, b) = (s.action, steps[p].action);
            if a != b {
                deps[a].insert(pos[b]);
            }
        }
    }
    let mut old: Vec<Option<Action>> = std::mem::take(actions).into_iter().map(Some).collect();
    for (i, &a) in order.iter().enumerate() {
        let mut act = old[a].take().expect("each action once");
        act.index = i;
        act.depends_on = deps[a].iter().copied().collect();
        actions.push(act);
    }
}

fn short(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => format!("{s:?}"),
        serde_json::Value::Null => "(none)".into(),
        other => other.to_string(),
    }
}

impl fmt::Display for Plan {
    /// The plan for people, in the manner of `terraform plan`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scopes: Vec<&str> = self.providers.iter().map(|s| s.as_str()).collect();
        if self.actions.is_empty() {
            return writeln!(
                f,
                "No changes. Topology `{}` matches {} ({} resources).",
                self.topology,
                scopes.join(", "),
                self.unchanged
            );
        }
        writeln!(
            f,
            "mcnet will perform these actions on topology `{}` ({}):\n",
            self.topology,
            scopes.join(", ")
        )?;
        for a in &self.actions {
            let mut line = format!(
                "  {:>3} {:<8} {}",
                a.op.symbol(),
                format!("{:?}", a.op).to_lowercase(),
                a.resource
            );
            let _ = write!(line, "  [{}", a.provider);
            if let Some(c) = &a.cloud_id {
                let _ = write!(line, " {c}");
            }
            let _ = write!(line, "]  ({})", a.reason);
            writeln!(f, "{line}")?;
            if a.op == Op::Create {
                if let Some(Ok(serde_json::Value::Object(m))) =
                    a.desired.as_ref().map(|d| serde_json::to_value(&d.spec))
                {
                    for (k, v) in m.iter().filter(|(k, _)| *k != "kind") {
                        writeln!(f, "          {k}: {}", short(v))?;
                    }
                }
            }
            for c in &a.changes {
                writeln!(
                    f,
                    "          {}: {} → {}",
                    c.field,
                    short(&c.from),
                    short(&c.to)
                )?;
            }
        }
        writeln!(
            f,
            "\nPlan: {} to create, {} to update, {} to replace, {} to delete; {} unchanged.",
            self.count(Op::Create),
            self.count(Op::Update),
            self.count(Op::Replace),
            self.count(Op::Delete),
            self.unchanged
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::resource::{Spec, VxcBgp};

    fn net(cidr: &str) -> Desired {
        Desired {
            id: "network/a".parse().unwrap(),
            scope: Scope::Aws,
            spec: Spec::Network {
                region: "us-east-1".into(),
                cidrs: vec![cidr.into()],
            },
        }
    }

    fn subnet(cidr: &str) -> Desired {
        Desired {
            id: "subnet/a/x".parse().unwrap(),
            scope: Scope::Aws,
            spec: Spec::Subnet {
                network: "network/a".into(),
                cidr: cidr.into(),
                zone: None,
            },
        }
    }

    fn table() -> Desired {
        Desired {
            id: "route-table/a".parse().unwrap(),
            scope: Scope::Aws,
            spec: Spec::RouteTable {
                network: "network/a".into(),
                subnets: vec!["subnet/a/x".into()],
                propagating_gateways: vec![],
            },
        }
    }

    fn exists(d: &Desired, cloud_id: &str) -> Observed {
        Observed {
            id: d.id.clone(),
            cloud_id: cloud_id.into(),
            scope: d.scope,
            spec: d.spec.clone(),
            state: ResourceState::Ready,
            outputs: Default::default(),
            links: vec![],
        }
    }

    fn aws() -> BTreeSet<Scope> {
        BTreeSet::from([Scope::Aws])
    }

    fn ops(p: &Plan) -> Vec<(Op, &str)> {
        p.actions
            .iter()
            .map(|a| (a.op, a.resource.as_str()))
            .collect()
    }

    #[test]
    fn a_zone_the_cloud_chose_is_no_difference_but_a_changed_zone_is() {
        let want = [net("10.0.0.0/16"), subnet("10.0.0.0/24")];
        let mut have: Vec<Observed> = want.iter().map(|d| exists(d, "x")).collect();
        let Spec::Subnet { zone, .. } = &mut have[1].spec else {
            unreachable!()
        };
        *zone = Some("us-east-1a".into());
        assert!(plan("t", &aws(), &want, &have).is_empty());

        let mut pinned = want.clone();
        if let Spec::Subnet { zone, .. } = &mut pinned[1].spec {
            *zone = Some("us-east-1b".into());
        }
        let p = plan("t", &aws(), &pinned, &have);
        assert_eq!(ops(&p), [(Op::Replace, "subnet/a/x")]);
    }

    #[test]
    fn creates_follow_what_they_refer_to_and_a_converged_state_plans_nothing() {
        let want = [table(), subnet("10.0.0.0/24"), net("10.0.0.0/16")];
        let p = plan("t", &aws(), &want, &[]);
        assert_eq!(
            ops(&p),
            [
                (Op::Create, "network/a"),
                (Op::Create, "subnet/a/x"),
                (Op::Create, "route-table/a")
            ]
        );
        assert_eq!(p.actions[1].depends_on, [0]);
        assert_eq!(p.actions[2].depends_on, [0, 1]);

        let have: Vec<Observed> = want
            .iter()
            .enumerate()
            .map(|(i, d)| exists(d, &format!("c{i}")))
            .collect();
        let p = plan("t", &aws(), &want, &have);
        assert!(p.is_empty(), "{p}");
        assert_eq!(p.unchanged, 3);
    }

    #[test]
    fn an_immutable_change_replaces_and_cascades_a_mutable_reference_updates() {
        let have = [
            exists(&net("10.0.0.0/16"), "vpc-1"),
            exists(&subnet("10.0.0.0/24"), "subnet-1"),
            exists(&table(), "rtb-1"),
        ];
        // The subnet's CIDR cannot change in place: replace it; the route
        // table's association list can, so it is updated after the new subnet exists.
        let want = [net("10.0.0.0/16"), subnet("10.0.1.0/24"), table()];
        let p = plan("t", &aws(), &want, &have);
        assert_eq!(
            ops(&p),
            [(Op::Replace, "subnet/a/x"), (Op::Update, "route-table/a")]
        );
        assert_eq!(p.actions[0].reason, "cidr forces replacement");
        assert_eq!(p.actions[0].changes[0].from, "10.0.0.0/24");
        assert_eq!(p.actions[0].changes[0].to, "10.0.1.0/24");
        assert_eq!(p.actions[1].depends_on, [0]);

        // A new VPC CIDR can be added in place; nothing else moves.
        let want = [net("10.0.0.0/15"), subnet("10.0.0.0/24"), table()];
        let p = plan("t", &aws(), &want, &have);
        assert_eq!(ops(&p), [(Op::Update, "network/a")]);
    }

    #[test]
    fn deletes_go_dependents_first_and_duplicates_are_deleted() {
        let have = [
            exists(&net("10.0.0.0/16"), "vpc-1"),
            exists(&subnet("10.0.0.0/24"), "subnet-1"),
            exists(&subnet("10.0.0.0/24"), "subnet-2"),
        ];
        let p = plan("t", &aws(), &[], &have);
        assert_eq!(p.count(Op::Delete), 3);
        let vpc = p
            .actions
            .iter()
            .find(|a| a.resource == "network/a")
            .unwrap();
        assert_eq!(vpc.depends_on.len(), 2, "{p}");
        assert_eq!(vpc.index, 2);

        let want = [net("10.0.0.0/16"), subnet("10.0.0.0/24")];
        let p = plan("t", &aws(), &want, &have);
        assert_eq!(ops(&p), [(Op::Delete, "subnet/a/x")]);
        assert_eq!(p.actions[0].cloud_id.as_deref(), Some("subnet-2"));
        assert_eq!(p.actions[0].reason, "duplicate of subnet-1");
    }

    #[test]
    fn a_vxc_rate_or_vlan_change_is_an_update_and_a_pending_peering_is_finished() {
        let vxc = |rate, vlan| Desired {
            id: "vxc/v".parse().unwrap(),
            scope: Scope::Megaport,
            spec: Spec::Vxc {
                name: "v".into(),
                router: "router/r".into(),
                target: "aws-direct-connect".into(),
                partner: None,
                rate_limit_mbps: rate,
                vlan: Some(vlan),
                bgp: VxcBgp::default(),
            },
        };
        let mp = BTreeSet::from([Scope::Megaport]);
        let p = plan(
            "t",
            &mp,
            &[vxc(2000, 200)],
            &[exists(&vxc(1000, 100), "uid")],
        );
        assert_eq!(ops(&p), [(Op::Update, "vxc/v")]);
        let fields: Vec<&str> = p.actions[0]
            .changes
            .iter()
            .map(|c| c.field.as_str())
            .collect();
        assert_eq!(fields, ["rateLimitMbps", "vlan"]);

        let peering = Desired {
            id: "peering/p".parse().unwrap(),
            scope: Scope::Aws,
            spec: Spec::Peering {
                requester: "network/a".into(),
                accepter: "network/b".into(),
                peer_region: None,
            },
        };
        let mut o = exists(&peering, "pcx-1");
        o.state = ResourceState::Pending("pending-acceptance".into());
        let p = plan("t", &aws(), std::slice::from_ref(&peering), &[o.clone()]);
        assert_eq!(ops(&p), [(Op::Update, "peering/p")]);
        assert_eq!(p.actions[0].reason, "pending (pending-acceptance)");
        o.state = ResourceState::Failed("failed".into());
        let p = plan("t", &aws(), &[peering], &[o]);
        assert_eq!(ops(&p), [(Op::Replace, "peering/p")]);
    }

    #[test]
    fn replacing_a_network_replaces_its_subnets_in_the_right_order() {
        let have = [
            exists(&net("10.0.0.0/16"), "vpc-1"),
            exists(&subnet("10.0.0.0/24"), "subnet-1"),
        ];
        let mut moved = net("10.0.0.0/16");
        if let Spec::Network { region, .. } = &mut moved.spec {
            *region = "us-west-2".into();
        }
        let p = plan("t", &aws(), &[moved, subnet("10.0.0.0/24")], &have);
        assert_eq!(
            ops(&p),
            [(Op::Replace, "subnet/a/x"), (Op::Replace, "network/a")]
        );
        assert_eq!(p.actions[1].reason, "region forces replacement");
        assert_eq!(p.actions[0].reason, "network/a is replaced");
        // Steps: the subnet goes before the network goes; the network comes
        // back before the subnet does.
        let steps = super::super::dag::steps(&p.actions);
        let order = super::super::dag::topo_order(&steps);
        let seq: Vec<(usize, super::super::dag::Phase)> = order
            .iter()
            .map(|&s| (steps[s].action, steps[s].phase))
            .collect();
        use super::super::dag::Phase::{Create, Delete};
        assert_eq!(seq, [(0, Delete), (1, Delete), (1, Create), (0, Create)]);
    }
}
