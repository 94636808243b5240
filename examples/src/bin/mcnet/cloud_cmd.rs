//! `mcnet plan|apply|destroy|drift`: reconcile a topology with the clouds.

use std::collections::BTreeSet;
use std::io::{IsTerminal, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::bail;
use mcnet_cloud::connect::SimCloud;
use mcnet_cloud::lock::{StateLock, Wait};
use mcnet_core::reconcile::{self, ApplyEvent, ApplyOptions, Owner, Phase, Plan, Providers, Scope};
use serde_json::json;

use crate::output::{print_json, Format};

/// Which backend to reconcile against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ProviderArg {
    /// The embedded simulated cloud, for every part of the topology.
    Sim,
    /// The AWS part, on AWS (or `AWS_ENDPOINT_URL`).
    Aws,
    /// The Megaport part (MCR, VXCs).
    Megaport,
    /// The Azure part.
    Azure,
    /// The GCP part.
    Gcp,
    /// Every part, on the real providers.
    All,
}

#[derive(clap::Args)]
pub struct Common {
    /// Topology file.
    pub file: String,
    /// Which provider(s) to act on.
    #[arg(long, value_enum, default_value_t = ProviderArg::Sim)]
    pub provider: ProviderArg,
    /// State directory: the lock, and the sim's state.
    #[arg(long, value_name = "DIR")]
    pub state: String,
    /// EC2 endpoint (otherwise `AWS_ENDPOINT_URL`, otherwise AWS).
    #[arg(long, value_name = "URL")]
    pub aws_endpoint: Option<String>,
    /// Output format.
    #[arg(long, short = 'O', value_enum, default_value_t = Format::Text)]
    pub output: Format,
    /// When done, write the cloud-API metrics (calls, errors, latency,
    /// requests) to FILE in the Prometheus text format, atomically: for
    /// node_exporter's textfile collector.
    #[arg(long, value_name = "FILE")]
    pub metrics_file: Option<String>,
}

#[derive(clap::Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub common: Common,
    /// Apply without asking.
    #[arg(long)]
    pub auto_approve: bool,
    /// Steps in flight at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// How long to wait for the state lock another apply or destroy holds
    /// (`30s`, `2m`, `0` for not at all); by default, until it is released.
    #[arg(long, value_name = "DURATION", value_parser = mcnet_cloud::lock::parse_wait)]
    pub lock_timeout: Option<std::time::Duration>,
}

/// Takes the state lock for a writing command, telling the user who holds
/// it while waiting.
fn lock_state(dir: &Path, command: &str, wait: Wait) -> anyhow::Result<StateLock> {
    let lock = StateLock::acquire(dir, command, wait, |holder| {
        let until = match wait {
            Wait::Forever => "until it is released (--lock-timeout to give up)".to_string(),
            Wait::For(d) => format!("for at most {d:?}"),
        };
        eprintln!(
            "the state lock {} is held by {holder}; waiting {until} ...",
            dir.join(mcnet_cloud::lock::LOCK_FILE).display()
        );
    })?;
    Ok(lock)
}

struct Setup {
    /// Held by writers (`apply`, `destroy`); readers take none.
    _lock: Option<StateLock>,
    owner: Owner,
    scopes: BTreeSet<Scope>,
    providers: Providers,
    topology: mcnet_core::topology::Topology,
    metrics: reconcile::CloudMetrics,
    metrics_file: Option<PathBuf>,
}

impl Drop for Setup {
    /// Writes the metrics file however the command ends.
    fn drop(&mut self) {
        let Some(path) = &self.metrics_file else {
            return;
        };
        let mut registry = mcnet_core::metrics::Registry::default();
        self.metrics.register(&mut registry);
        let text = mcnet_core::metrics::encode(&registry);
        let tmp = path.with_extension("prom.tmp");
        let written = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, path));
        if let Err(e) = written {
            eprintln!("cannot write metrics to `{}`: {e}", path.display());
        }
    }
}

/// Builds the providers. A writer (`lock`: its command and wait) holds the
/// state lock from here on; a reader (`plan`, `drift`) takes no lock and
/// reads the last committed state, since state files are replaced
/// atomically.
async fn setup(c: &Common, lock: Option<(&str, Wait)>) -> anyhow::Result<Option<Setup>> {
    let Some(t) = crate::topology_cmd::load_valid(&c.file)? else {
        return Ok(None);
    };
    let state = PathBuf::from(&c.state);
    let lock = match lock {
        Some((command, wait)) => Some(lock_state(&state, command, wait)?),
        None => None,
    };
    let scopes: BTreeSet<Scope> = match c.provider {
        ProviderArg::Sim | ProviderArg::All => Scope::ALL.into_iter().collect(),
        ProviderArg::Aws => [Scope::Aws].into(),
        ProviderArg::Megaport => [Scope::Megaport].into(),
        ProviderArg::Azure => [Scope::Azure].into(),
        ProviderArg::Gcp => [Scope::Gcp].into(),
    };
    let metrics = reconcile::CloudMetrics::new();
    let mut providers = Providers::default();
    if c.provider == ProviderArg::Sim {
        let sim = SimCloud::open(&state)?;
        for s in &scopes {
            providers = providers.with(metrics.wrap(sim.provider(*s)));
        }
    } else {
        for s in &scopes {
            let p = crate::cloud_providers::real(*s, c, &t).await?;
            providers = providers.with(metrics.wrap(p));
        }
    }
    Ok(Some(Setup {
        _lock: lock,
        owner: Owner {
            topology: t.metadata.name.clone(),
        },
        scopes,
        providers,
        topology: t,
        metrics,
        metrics_file: c.metrics_file.as_ref().map(PathBuf::from),
    }))
}

async fn make_plan(s: &Setup, destroy: bool) -> anyhow::Result<Plan> {
    let want = if destroy {
        vec![]
    } else {
        reconcile::desired(&s.topology, &s.scopes)?
    };
    let have = s.providers.observe(&s.owner).await?;
    Ok(reconcile::plan(&s.owner.topology, &s.scopes, &want, &have))
}

/// Loads the topology, builds the providers, takes the state lock (writers
/// only) and plans: what every command does first. `None` when the topology is invalid.
fn start(
    c: &Common,
    destroy: bool,
    lock: Option<(&str, Wait)>,
) -> anyhow::Result<Option<(tokio::runtime::Runtime, Setup, Plan)>> {
    let rt = runtime()?;
    let Some(s) = rt.block_on(setup(c, lock))? else {
        return Ok(None);
    };
    let p = rt.block_on(make_plan(&s, destroy))?;
    Ok(Some((rt, s, p)))
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

pub fn plan(c: &Common) -> anyhow::Result<ExitCode> {
    let Some((_rt, s, p)) = start(c, false, None)? else {
        return Ok(ExitCode::from(1));
    };
    match c.output {
        Format::Json => {
            let mut v = serde_json::to_value(&p)?;
            v["apiCalls"] = s.providers.api_calls().into();
            print_json(&v)?
        }
        Format::Text => write!(std::io::stdout().lock(), "{p}")?,
    }
    Ok(ExitCode::SUCCESS)
}

pub fn drift(c: &Common) -> anyhow::Result<ExitCode> {
    let Some((_rt, _held, p)) = start(c, false, None)? else {
        return Ok(ExitCode::from(1));
    };
    let items = reconcile::drift(&p);
    match c.output {
        Format::Json => print_json(&json!({
            "topology": p.topology,
            "providers": p.providers,
            "drifted": !items.is_empty(),
            "drift": items,
        }))?,
        Format::Text if items.is_empty() => {
            println!(
                "No drift: {} resources match topology `{}`.",
                p.unchanged, p.topology
            )
        }
        Format::Text => {
            println!(
                "Drift in topology `{}`: {} resources differ.\n",
                p.topology,
                items.len()
            );
            for d in &items {
                let cid = d.cloud_id.as_deref().unwrap_or("-");
                let repair = serde_json::to_value(d.repair)?;
                println!(
                    "  {:<10} {}  [{} {cid}]  (apply will {})",
                    d.status,
                    d.resource,
                    d.provider,
                    repair.as_str().unwrap_or("change it")
                );
                for ch in &d.changes {
                    println!("      {}: {} (topology: {})", ch.field, ch.from, ch.to);
                }
            }
            println!("\nRun `mcnet apply` to repair.");
        }
    }
    Ok(if items.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

pub fn apply(a: &ApplyArgs, destroy: bool) -> anyhow::Result<ExitCode> {
    let c = &a.common;
    let command = if destroy { "destroy" } else { "apply" };
    let wait = a.lock_timeout.map_or(Wait::Forever, Wait::For);
    let Some((rt, s, p)) = start(c, destroy, Some((command, wait)))? else {
        return Ok(ExitCode::from(1));
    };
    if p.is_empty() {
        match c.output {
            Format::Json => print_json(&json!({"plan": p, "report": null}))?,
            Format::Text => write!(std::io::stdout().lock(), "{p}")?,
        }
        return Ok(ExitCode::SUCCESS);
    }
    if c.output == Format::Text {
        write!(std::io::stdout().lock(), "{p}")?;
    }
    if !a.auto_approve {
        if !std::io::stdin().is_terminal() {
            bail!("refusing to change anything without --auto-approve (stdin is not a terminal)");
        }
        eprint!("\nDo you want to perform these actions? Only 'yes' will be accepted: ");
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if answer.trim() != "yes" {
            eprintln!("Cancelled; nothing changed.");
            return Ok(ExitCode::from(1));
        }
    }
    let progress = Arc::new(Progress::new(&p));
    let events = {
        let pr = Arc::clone(&progress);
        Arc::new(move |e: &ApplyEvent| pr.on(e))
    };
    let opts = ApplyOptions {
        concurrency: a.concurrency.max(1),
        ..ApplyOptions::default()
    };
    let report = rt.block_on(reconcile::apply(&p, &s.owner, &s.providers, &opts, events));
    progress.finish();
    match c.output {
        Format::Json => {
            print_json(&json!({"plan": p, "report": report, "apiCalls": s.providers.api_calls()}))?
        }
        Format::Text => {
            let verb = if destroy { "Destroy" } else { "Apply" };
            if report.ok() {
                println!(
                    "\n{verb} complete: {} step(s) in {:.1} s, {} retried call(s), {} API calls.",
                    report.completed,
                    report.seconds,
                    report.retries,
                    s.providers.api_calls()
                );
            } else {
                println!(
                    "\n{verb} incomplete: {} of {} steps done.",
                    report.completed, report.steps
                );
                for f in &report.failed {
                    println!("  failed:  {}: {}", f.resource, f.error);
                }
                for r in &report.skipped {
                    println!("  skipped: {r} (a dependency failed)");
                }
                println!("Everything created is tagged; fix the cause and run the same command again to resume.");
            }
        }
    }
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// A progress bar on a terminal; a line per step otherwise.
struct Progress {
    tty: bool,
    total: usize,
    state: Mutex<(usize, String)>,
}

impl Progress {
    fn new(p: &Plan) -> Progress {
        let total = p
            .actions
            .iter()
            .map(|a| if a.op == reconcile::Op::Replace { 2 } else { 1 })
            .sum();
        Progress {
            tty: std::io::stderr().is_terminal(),
            total,
            state: Mutex::new((0, String::new())),
        }
    }

    fn on(&self, e: &ApplyEvent) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let line = match e {
            ApplyEvent::Started {
                resource, phase, ..
            } => {
                st.1 = format!("{} {resource}", verb(*phase));
                None
            }
            ApplyEvent::Waiting { resource, status } => {
                st.1 = format!("waiting for {resource} ({status})");
                None
            }
            ApplyEvent::Finished {
                resource, phase, ..
            } => {
                st.0 += 1;
                Some(format!("{} {resource}", done(*phase)))
            }
            ApplyEvent::Retrying {
                resource,
                attempt,
                error,
            } => Some(format!("retry {attempt} of {resource}: {error}")),
            ApplyEvent::Failed { resource, error } => Some(format!("FAILED {resource}: {error}")),
            ApplyEvent::Skipped { resource } => Some(format!("skipped {resource}")),
            // Events added after this binary was written: not shown.
            _ => None,
        };
        let mut err = std::io::stderr().lock();
        if self.tty {
            let width = 30;
            let filled = st.0 * width / self.total.max(1);
            let _ = write!(
                err,
                "\r\x1b[2K[{}{}] {}/{}  {}",
                "=".repeat(filled),
                " ".repeat(width - filled),
                st.0,
                self.total,
                st.1
            );
        } else if let Some(l) = line {
            let _ = writeln!(err, "[{}/{}] {l}", st.0, self.total);
        }
    }

    fn finish(&self) {
        if self.tty {
            let _ = writeln!(std::io::stderr());
        }
    }
}

fn verb(p: Phase) -> &'static str {
    match p {
        Phase::Create => "creating",
        Phase::Update => "updating",
        Phase::Delete => "deleting",
    }
}

fn done(p: Phase) -> &'static str {
    match p {
        Phase::Create => "created",
        Phase::Update => "updated",
        Phase::Delete => "deleted",
    }
}

/// The demo's cloud step: apply on the sim, re-plan, change something by
/// hand, see the drift, repair it.
pub fn demo(topology_file: &str, state: &str) -> anyhow::Result<()> {
    let _ = std::fs::remove_dir_all(state);
    let common = || Common {
        file: topology_file.to_string(),
        provider: ProviderArg::Sim,
        state: state.to_string(),
        aws_endpoint: None,
        output: Format::Text,
        metrics_file: None,
    };
    let args = ApplyArgs {
        common: common(),
        auto_approve: true,
        concurrency: 4,
        lock_timeout: None,
    };
    println!("$ mcnet apply {topology_file} --provider sim --state {state} --auto-approve");
    if apply(&args, false)? != ExitCode::SUCCESS {
        bail!("the apply on the sim did not complete");
    }
    println!("\n$ mcnet plan {topology_file} --provider sim --state {state}");
    plan(&common())?;

    // Someone halves a VXC's rate limit in the portal.
    let path =
        SimCloud::with_config(Path::new(state), Default::default()).state_path(Scope::Megaport);
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path)?)?;
    let mut changed = None;
    if let Some(res) = v["resources"].as_object_mut() {
        if let Some(r) = res.values_mut().find(|r| r["spec"]["kind"] == "vxc") {
            let rate = r["spec"]["rateLimitMbps"].as_u64().unwrap_or(1000);
            r["spec"]["rateLimitMbps"] = (rate / 2).into();
            changed = r["spec"]["name"].as_str().map(str::to_string);
        }
    }
    crate::output::write_atomic(&path.to_string_lossy(), &serde_json::to_vec_pretty(&v)?)?;
    println!(
        "\n(a manual change: the rate limit of VXC `{}` halved in the Megaport portal)",
        changed.unwrap_or_default()
    );
    println!("$ mcnet drift {topology_file} --provider sim --state {state}");
    drift(&common())?;
    println!("\n$ mcnet apply {topology_file} --provider sim --state {state} --auto-approve");
    if apply(&args, false)? != ExitCode::SUCCESS {
        bail!("the repair on the sim did not complete");
    }
    println!("\n$ mcnet drift {topology_file} --provider sim --state {state}");
    drift(&common())?;
    Ok(())
}
