//! `mcnet`: the command-line face of the mcnet SDK.
//!
//! Exit codes: 0 success, 1 the input is invalid (or a check failed),
//! 2 usage or I/O errors.

mod agent_cmd;
mod cloud_cmd;
mod cloud_providers;
mod cost_cmd;
mod datapath_cmd;
mod gslb_cmd;
mod lab_cmd;
mod mesh_cmd;
mod metrics_http;
mod operator_cmd;
mod output;
mod policy_cmd;
mod probe_cmd;
mod reach_cmd;
mod render_cmd;
mod replay_cmd;
mod topology_cmd;
mod ui_cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use output::Format;

#[derive(Parser)]
#[command(
    name = "mcnet",
    version,
    about = "Multi-cloud Kubernetes networking: topology, policy, datapath"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a topology; exit 0 when valid (warnings allowed), 1 when invalid.
    Validate {
        /// Topology file (YAML or JSON).
        file: String,
        /// Output format.
        #[arg(long, short = 'O', value_enum, default_value_t = Format::Text)]
        output: Format,
    },
    /// Which networks and clusters reach which, and what a failure loses.
    Paths {
        /// Topology file.
        file: String,
        /// Fail a component: `name` or `mcr/name`, `vxc/name`, `peering/name`. Repeatable.
        #[arg(long = "fail", value_name = "COMPONENT")]
        fail: Vec<String>,
        /// Output format.
        #[arg(long, short = 'O', value_enum, default_value_t = Format::Text)]
        output: Format,
    },
    /// Print the topology with every `auto` CIDR allocated.
    Ipam {
        /// Topology file.
        file: String,
        /// Output format (text prints YAML).
        #[arg(long, short = 'O', value_enum, default_value_t = Format::Text)]
        output: Format,
    },
    /// Can one workload reach another? Walks every layer (egress policy,
    /// cluster CIDRs, cloud routes and the MCR's BGP, ClusterMesh, the
    /// mesh, ingress policy with L7) and names the first that refuses.
    /// Exit 0 when allowed, 1 when denied.
    Reach(reach_cmd::ReachArgs),
    /// The whole topology in network namespaces with real BGP, checked
    /// against `mcnet reach` (root): up, verify [--fail X], down.
    #[command(subcommand)]
    Lab(lab_cmd::LabCommand),
    /// Draw the topology as an SVG picture.
    Diagram {
        /// Topology file.
        file: String,
        /// Where to write the SVG.
        #[arg(short = 'o', long = "out", value_name = "FILE")]
        out: String,
    },
    /// The policy engine: eval, matrix, diff, lint, generate.
    #[command(subcommand)]
    Policy(policy_cmd::PolicyCommand),
    /// The eBPF datapath: enforce policy in the kernel, lab, flows (root).
    #[command(subcommand)]
    Datapath(datapath_cmd::DatapathCommand),
    /// Render every cluster's manifests (Cilium, ClusterMesh, zero trust,
    /// Linkerd, resilience, ingress, monitoring) and the monitoring
    /// network's stack into a directory, each custom resource checked
    /// against its upstream CRD schema.
    Render(render_cmd::RenderArgs),
    /// A web view of the topology, each cluster's reachability matrix and
    /// the recorded flows, with the engine's explanation of each (loopback
    /// only unless given a token).
    Ui(ui_cmd::UiArgs),
    /// Print the `Topology` CustomResourceDefinition (mcnet.io/v1alpha1).
    Crd(operator_cmd::CrdArgs),
    /// Run the operator: reconcile every `Topology` object of the cluster,
    /// one replica at a time (a coordination.k8s.io Lease).
    Operator(operator_cmd::OperatorArgs),
    /// Run the node agent: watch pods and policies, sync this node's
    /// datapath (root; a DaemonSet in controller mode).
    Agent(agent_cmd::AgentArgs),
    /// The service mesh: CA, workload certificates, the cross-cluster gateway, Linkerd multicluster.
    #[command(subcommand)]
    Mesh(mesh_cmd::MeshCommand),
    /// Monthly network cost of a topology and a traffic matrix, with what-ifs.
    Cost(cost_cmd::CostArgs),
    /// SLO probe between two endpoints (connections, latency, throughput,
    /// loss) against the ADR's success metrics; `--serve` runs the far end.
    Probe(probe_cmd::ProbeArgs),
    /// Global load balancing over DNS, answering from health checks.
    #[command(subcommand)]
    Gslb(gslb_cmd::GslbCommand),
    /// Node tuning: the ADR's kernel network profile.
    #[command(subcommand)]
    Node(render_cmd::NodeCommand),
    /// Show what `apply` would change: the topology against what exists.
    Plan(cloud_cmd::Common),
    /// Create, update and delete resources until the clouds match the topology.
    Apply(cloud_cmd::ApplyArgs),
    /// Delete every resource the topology owns.
    Destroy(cloud_cmd::ApplyArgs),
    /// Report what differs from the topology (exit 1 when something does).
    Drift(cloud_cmd::Common),
    /// Run the demo on the embedded default: validate, paths, diagram, render, policy and the eBPF datapath on adr-003.
    Demo {
        /// Topology to use.
        #[arg(long, default_value = "examples/topologies/adr-003.yaml")]
        topology: String,
        /// Directory for the pictures.
        #[arg(long, default_value = "target/mcnet-demo")]
        out_dir: String,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let result = match cli.command {
        Command::Validate { file, output } => topology_cmd::validate(&file, output),
        Command::Paths { file, fail, output } => topology_cmd::paths(&file, &fail, output),
        Command::Ipam { file, output } => topology_cmd::ipam(&file, output),
        Command::Reach(a) => reach_cmd::run(&a),
        Command::Lab(cmd) => lab_cmd::run(cmd),
        Command::Diagram { file, out } => topology_cmd::diagram(&file, &out),
        Command::Policy(cmd) => policy_cmd::run(cmd),
        Command::Datapath(cmd) => datapath_cmd::run(cmd),
        Command::Render(a) => render_cmd::render(&a),
        Command::Ui(a) => ui_cmd::run(&a),
        Command::Crd(a) => operator_cmd::crd(&a),
        Command::Operator(a) => operator_cmd::run(&a),
        Command::Agent(a) => agent_cmd::run(&a),
        Command::Node(cmd) => render_cmd::node(cmd),
        Command::Mesh(cmd) => mesh_cmd::run(cmd),
        Command::Gslb(cmd) => gslb_cmd::run(cmd),
        Command::Cost(a) => cost_cmd::run(&a),
        Command::Probe(a) => probe_cmd::run(&a),
        Command::Plan(c) => cloud_cmd::plan(&c),
        Command::Apply(a) => cloud_cmd::apply(&a, false),
        Command::Destroy(a) => cloud_cmd::apply(&a, true),
        Command::Drift(c) => cloud_cmd::drift(&c),
        Command::Demo { topology, out_dir } => topology_cmd::demo(&topology, &out_dir),
    };
    match result {
        Ok(code) => code,
        // A closed pipe (`mcnet ... | head`) is not an error.
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
                    || c.downcast_ref::<serde_json::Error>()
                        .is_some_and(|j| j.io_error_kind() == Some(std::io::ErrorKind::BrokenPipe))
            }) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
