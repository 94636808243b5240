//! The simulated cloud's configuration: fault injection and quotas, read
//! from `<state dir>/sim/config.yaml`.

use serde::{Deserialize, Serialize};

/// Faults to inject.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Faults {
    /// Share of changing calls (0..1) refused as throttled before doing anything.
    #[serde(default)]
    pub throttle: f64,
    /// Share of changes (0..1) that take effect but whose response is lost.
    #[serde(default)]
    pub timeout: f64,
    /// Calls that fail for good.
    #[serde(default)]
    pub fail: Vec<FailRule>,
}

/// A call that fails for good.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FailRule {
    /// Logical id, or a prefix ending in `*`.
    pub resource: String,
    /// `create`, `update` or `delete`.
    pub operation: String,
}

/// Quotas the sim enforces.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Quotas {
    /// AWS VPCs per region (AWS's default is 5).
    #[serde(default = "five")]
    pub vpcs_per_region: usize,
    /// AWS active and pending peerings per VPC (AWS's default is 50).
    #[serde(default = "fifty")]
    pub peerings_per_vpc: usize,
}

fn five() -> usize {
    5
}
fn fifty() -> usize {
    50
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            vpcs_per_region: five(),
            peerings_per_vpc: fifty(),
        }
    }
}

/// The sim's configuration (`<state dir>/sim/config.yaml`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SimConfig {
    /// Seed for fault injection.
    #[serde(default)]
    pub seed: u64,
    /// Length of each asynchronous state, ms.
    #[serde(default = "step_ms")]
    pub step_ms: u64,
    /// Faults.
    #[serde(default)]
    pub faults: Faults,
    /// Quotas.
    #[serde(default)]
    pub quotas: Quotas,
}

fn step_ms() -> u64 {
    200
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 0,
            step_ms: step_ms(),
            faults: Faults::default(),
            quotas: Quotas::default(),
        }
    }
}
