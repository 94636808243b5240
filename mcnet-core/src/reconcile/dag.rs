//! The execution DAG of a plan: each action split into steps (a replace is
//! a delete, then a create), the order between them, and a topological
//! order. The planner checks plans with it; `apply` runs it.

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;

use super::action::{Action, Op};

/// Which half of an action a step performs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Create (or the second half of a replace).
    Create,
    /// Update in place.
    Update,
    /// Delete (or the first half of a replace).
    Delete,
}

/// One node of the execution DAG.
#[derive(Clone, Debug)]
pub(crate) struct Step {
    pub action: usize,
    pub phase: Phase,
    pub after: Vec<usize>,
}

/// Splits actions into steps (a replace is a delete, then a create) and
/// links them: creates and updates after the creates they refer to, deletes
/// after whatever still refers to what they delete.
pub(crate) fn steps(actions: &[Action]) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut create_of: BTreeMap<&str, usize> = BTreeMap::new();
    let mut deletes_of: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let mut own: Vec<(usize, Option<usize>)> = Vec::new(); // (first step, second step)
    for (i, a) in actions.iter().enumerate() {
        let (first, second) = match a.op {
            Op::Create => (Phase::Create, None),
            Op::Update => (Phase::Update, None),
            Op::Delete => (Phase::Delete, None),
            Op::Replace => (Phase::Delete, Some(Phase::Create)),
        };
        let s0 = steps.len();
        steps.push(Step {
            action: i,
            phase: first,
            after: vec![],
        });
        let s1 = second.map(|p| {
            steps.push(Step {
                action: i,
                phase: p,
                after: vec![s0],
            });
            s0 + 1
        });
        own.push((s0, s1));
        match (first, s1) {
            (Phase::Create, _) => {
                create_of.insert(a.resource.as_str(), s0);
            }
            (Phase::Delete, Some(s1)) => {
                create_of.insert(a.resource.as_str(), s1);
                deletes_of.entry(a.resource.as_str()).or_default().push(s0);
            }
            (Phase::Delete, None) => deletes_of.entry(a.resource.as_str()).or_default().push(s0),
            _ => {}
        }
    }
    for (i, a) in actions.iter().enumerate() {
        let (s0, s1) = own[i];
        let build = s1.unwrap_or(s0);
        if let Some(d) = &a.desired {
            if steps[build].phase != Phase::Delete {
                for r in d.spec.refs() {
                    if let Some(&c) = create_of.get(r.as_str()) {
                        if c != build {
                            steps[build].after.push(c);
                        }
                    }
                }
            }
        }
        if let Some(cur) = &a.current {
            let wanted: Vec<&String> = a
                .desired
                .as_ref()
                .map(|d| d.spec.refs())
                .unwrap_or_default();
            for r in cur.spec.refs() {
                // Deleting this releases r; an update releases r only if the
                // new shape no longer refers to it.
                if steps[s0].phase == Phase::Update && wanted.contains(&r) {
                    continue;
                }
                for &d in deletes_of.get(r.as_str()).into_iter().flatten() {
                    if d != s0 {
                        steps[d].after.push(s0);
                    }
                }
            }
        }
    }
    for s in &mut steps {
        s.after.sort_unstable();
        s.after.dedup();
    }
    steps
}

/// Kahn's order of the steps; a cycle leaves its steps out.
pub(crate) fn topo_order(steps: &[Step]) -> Vec<usize> {
    let mut indeg: Vec<usize> = steps.iter().map(|s| s.after.len()).collect();
    let mut succ: Vec<Vec<usize>> = vec![vec![]; steps.len()];
    for (i, s) in steps.iter().enumerate() {
        for &p in &s.after {
            succ[p].push(i);
        }
    }
    let mut q: VecDeque<usize> = (0..steps.len()).filter(|&i| indeg[i] == 0).collect();
    let mut out = Vec::with_capacity(steps.len());
    while let Some(i) = q.pop_front() {
        out.push(i);
        for &n in &succ[i] {
            indeg[n] -= 1;
            if indeg[n] == 0 {
                q.push_back(n);
            }
        }
    }
    out
}
