//! `bench/controller`: the controller against the real testbed apiserver, timed from outside.
//! Prints a table:
//! - single Service: create → `status.loadBalancer.ingress` seen by a watch, p50 / p99 / max
//!   over N sequential Services;
//! - burst: B Services created at once → all have an address; wall time, the controller's
//!   peak RSS (VmHWM);
//! - chaos: the same burst with the controller SIGKILLed half-way and restarted: every Service
//!   ends with an address, no address is held by two Services, and no Service's address ever
//!   changes (every value each Service's status ever showed is recorded by a watch).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use ferrolb_e2e::{Scenario, ingress_ips, metric_value};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use kube::api::PostParams;
use kube::runtime::watcher;
use serde_json::json;
use tokio::sync::Mutex;

const POOL: &str = r#"
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: scale}
spec:
  addresses: ["198.19.0.0/16"]
"#;

/// Every address each Service's status showed, in order, and when it first had one.
#[derive(Default)]
struct Seen {
    history: HashMap<String, Vec<Vec<IpAddr>>>,
    first_ip_at: HashMap<String, Instant>,
}

/// Where the benchmark's Services go and the class they carry.
#[derive(Clone)]
struct Target {
    api: kube::Api<Service>,
    namespace: String,
    class: Option<String>,
}

impl Target {
    fn of(scenario: &Scenario) -> Self {
        Self {
            api: scenario.services(),
            namespace: scenario.namespace.clone(),
            class: scenario.class.clone(),
        }
    }
}

fn service(target: &Target, name: &str) -> Result<Service> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": target.namespace},
        "spec": {
            "type": "LoadBalancer",
            "loadBalancerClass": target.class,
            // NodePorts would run out long before addresses do.
            "allocateLoadBalancerNodePorts": false,
            "selector": {"app": name},
            "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}],
        },
    }))?)
}

/// Watches the Service namespace, recording every ingress value per Service.
fn record(scenario: &Scenario, seen: Arc<Mutex<Seen>>) -> tokio::task::JoinHandle<()> {
    let api = scenario.services();
    tokio::spawn(async move {
        let mut events = watcher::watcher(api, watcher::Config::default()).boxed();
        while let Some(event) = events.next().await {
            let objects = match event {
                Ok(watcher::Event::Apply(s) | watcher::Event::InitApply(s)) => vec![s],
                _ => continue,
            };
            let now = Instant::now();
            let mut seen = seen.lock().await;
            for object in objects {
                let name = object.metadata.name.clone().unwrap_or_default();
                let ips = ingress_ips(&object);
                if !ips.is_empty() {
                    seen.first_ip_at.entry(name.clone()).or_insert(now);
                }
                let history = seen.history.entry(name).or_default();
                if history.last() != Some(&ips) {
                    history.push(ips);
                }
            }
        }
    })
}

async fn create_all(target: Target, names: &[String]) -> Result<HashMap<String, Instant>> {
    let api = target.api.clone();
    let created = futures::stream::iter(names.iter().cloned())
        .map(|name| {
            let api = api.clone();
            let object = service(&target, &name);
            async move {
                let object = object?;
                let at = Instant::now();
                api.create(&PostParams::default(), &object)
                    .await
                    .with_context(|| format!("creating {name}"))?;
                Ok::<_, anyhow::Error>((name, at))
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await;
    created.into_iter().collect()
}

async fn wait_all(seen: &Arc<Mutex<Seen>>, names: &[String], timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let missing = {
            let seen = seen.lock().await;
            names
                .iter()
                .filter(|n| !seen.first_ip_at.contains_key(*n))
                .count()
        };
        if missing == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "{missing} of {} Services still have no address after {timeout:?}",
                names.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// No Service's status ever showed two different address sets, no address is shown by two
/// Services, and every Service has one.
async fn check_stable(
    scenario: &Scenario,
    seen: &Arc<Mutex<Seen>>,
    names: &[String],
) -> Result<()> {
    let services = scenario.services().list(&Default::default()).await?.items;
    let mut owners: BTreeMap<IpAddr, String> = BTreeMap::new();
    for object in &services {
        let name = object.metadata.name.clone().unwrap_or_default();
        for ip in ingress_ips(object) {
            if let Some(other) = owners.insert(ip, name.clone()) {
                bail!("{ip} is shown by both {other} and {name}");
            }
        }
    }
    let seen = seen.lock().await;
    for name in names {
        let history = seen.history.get(name).cloned().unwrap_or_default();
        let distinct: Vec<&Vec<IpAddr>> = history.iter().filter(|ips| !ips.is_empty()).collect();
        ensure!(!distinct.is_empty(), "{name} never got an address");
        ensure!(
            distinct.windows(2).all(|w| w[0] == w[1])
                && history
                    .iter()
                    .skip_while(|i| i.is_empty())
                    .all(|i| !i.is_empty()),
            "{name}'s address changed or was lost: {history:?}"
        );
    }
    Ok(())
}

/// Which controller a suite runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Impl {
    Ferrolb,
    Metallb,
}

impl Impl {
    fn name(self) -> &'static str {
        match self {
            Impl::Ferrolb => "ferrolb",
            Impl::Metallb => "metallb",
        }
    }
}

static NEXT_PORT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(17600);

/// Starts the suite's controller for the scenario (MetalLB: its own controller binary, from
/// `bench/build-metallb`, with the webhook off and no leader election, which it lacks).
fn start_controller(which: Impl, scenario: &mut Scenario) -> Result<()> {
    match which {
        Impl::Ferrolb => {
            scenario.start_controller()?;
        }
        Impl::Metallb => {
            let binary = std::env::var_os("METALLB_CONTROLLER")
                .map(std::path::PathBuf::from)
                .context("METALLB_CONTROLLER (the path bench/build-metallb prints) is not set")?;
            let port = NEXT_PORT
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                .to_string();
            let class = scenario.class.clone().unwrap_or_default();
            let process = scenario.testbed.start_process(
                &format!("metallb-{}", scenario.namespace),
                &binary,
                &[
                    "--namespace",
                    &scenario.config_namespace,
                    "--lb-class",
                    &class,
                    "--webhook-mode",
                    "disabled",
                    "--port",
                    &port,
                    "--log-level",
                    "warn",
                ],
            )?;
            scenario.controllers.push(process);
        }
    }
    Ok(())
}

/// Deletes the suite's Services so that the next suite runs in a cluster of the same size.
async fn clean(scenario: &Scenario) -> Result<()> {
    scenario
        .testbed
        .clear_namespace(&scenario.kube, &scenario.namespace)
        .await
}

async fn suite(which: Impl, single_runs: usize, burst: usize) -> Result<Vec<(String, String)>> {
    let tag = which.name();
    let mut rows: Vec<(String, String)> = Vec::new();

    // Single Services, one after the other.
    {
        let mut scenario = Scenario::new(&format!("bench-single-{tag}")).await?;
        scenario.apply(POOL).await?;
        start_controller(which, &mut scenario)?;
        let seen = Arc::new(Mutex::new(Seen::default()));
        let watch = record(&scenario, seen.clone());
        // A first Service so that the controller is leading and synced before timing.
        let warm = vec!["warm".to_string()];
        create_all(Target::of(&scenario), &warm).await?;
        wait_all(&seen, &warm, Duration::from_secs(30)).await?;
        let mut latencies = Vec::new();
        for i in 0..single_runs {
            let names = vec![format!("single-{i}")];
            let created = create_all(Target::of(&scenario), &names).await?;
            wait_all(&seen, &names, Duration::from_secs(10)).await?;
            let seen = seen.lock().await;
            latencies.push(seen.first_ip_at[&names[0]] - created[&names[0]]);
        }
        watch.abort();
        clean(&scenario).await?;
        latencies.sort();
        rows.push((
            format!("single Service create → ingress ({single_runs} runs)"),
            format!(
                "p50 {}, p99 {}, max {}",
                ms(percentile(&latencies, 0.5)),
                ms(percentile(&latencies, 0.99)),
                ms(latencies.last().copied().unwrap_or_default())
            ),
        ));
    }

    // A burst.
    {
        let mut scenario = Scenario::new(&format!("bench-burst-{tag}")).await?;
        scenario.apply(POOL).await?;
        start_controller(which, &mut scenario)?;
        let seen = Arc::new(Mutex::new(Seen::default()));
        let watch = record(&scenario, seen.clone());
        let warm = vec!["warm".to_string()];
        create_all(Target::of(&scenario), &warm).await?;
        wait_all(&seen, &warm, Duration::from_secs(30)).await?;
        let names: Vec<String> = (0..burst).map(|i| format!("burst-{i}")).collect();
        let start = Instant::now();
        let created = create_all(Target::of(&scenario), &names).await?;
        let created_in = start.elapsed();
        wait_all(&seen, &names, Duration::from_secs(300)).await?;
        let wall = start.elapsed();
        let last_addressed = {
            let seen = seen.lock().await;
            names
                .iter()
                .filter_map(|n| seen.first_ip_at.get(n))
                .max()
                .map(|t| *t - start)
                .unwrap_or_default()
        };
        check_stable(&scenario, &seen, &names).await?;
        watch.abort();
        clean(&scenario).await?;
        let pid = scenario.controllers[0].pid().unwrap_or_default();
        let rss = peak_rss_kib(pid).unwrap_or_default();
        let writes = match which {
            Impl::Ferrolb => metric_value(
                &scenario.metrics(0).await?,
                "ferrolb_controller_service_status_writes_total",
            )
            .unwrap_or(f64::NAN),
            Impl::Metallb => f64::NAN,
        };
        let last_created = created
            .values()
            .max()
            .map(|t| *t - start)
            .unwrap_or_default();
        rows.push((
            format!("burst: {burst} Services created at once → all have an address"),
            format!(
                "{} wall; the apiserver took {} to accept the creates (last sent at {}); last address {} after the last create returned",
                ms(wall),
                ms(created_in),
                ms(last_created),
                ms(last_addressed.saturating_sub(created_in))
            ),
        ));
        rows.push((
            "status writes per Service in the burst (warm-up included)".into(),
            if writes.is_nan() {
                "not counted".into()
            } else {
                format!(
                    "{:.3} ({writes} writes for {} Services)",
                    writes / (burst + 1) as f64,
                    burst + 1
                )
            },
        ));
        rows.push((
            "controller peak RSS (VmHWM) after the burst".into(),
            format!("{:.1} MiB", rss as f64 / 1024.0),
        ));
    }

    // Cold start: the Services exist (all pending) before the controller starts.
    {
        let mut scenario = Scenario::new(&format!("bench-cold-{tag}")).await?;
        scenario.apply(POOL).await?;
        let seen = Arc::new(Mutex::new(Seen::default()));
        let watch = record(&scenario, seen.clone());
        let names: Vec<String> = (0..burst).map(|i| format!("cold-{i}")).collect();
        create_all(Target::of(&scenario), &names).await?;
        let start = Instant::now();
        start_controller(which, &mut scenario)?;
        wait_all(&seen, &names, Duration::from_secs(300)).await?;
        let wall = start.elapsed();
        check_stable(&scenario, &seen, &names).await?;
        watch.abort();
        clean(&scenario).await?;
        let pid = scenario.controllers[0].pid().unwrap_or_default();
        let rss = peak_rss_kib(pid).unwrap_or_default();
        rows.push((
            format!(
                "cold start: {burst} pending Services, controller started → all have an address"
            ),
            format!(
                "{} (process start, Lease, sync, {burst} status writes); peak RSS {:.1} MiB",
                ms(wall),
                rss as f64 / 1024.0
            ),
        ));
    }

    // Chaos: SIGKILL half-way through a burst.
    {
        let mut scenario = Scenario::new(&format!("bench-chaos-{tag}")).await?;
        scenario.apply(POOL).await?;
        start_controller(which, &mut scenario)?;
        let seen = Arc::new(Mutex::new(Seen::default()));
        let watch = record(&scenario, seen.clone());
        let warm = vec!["warm".to_string()];
        create_all(Target::of(&scenario), &warm).await?;
        wait_all(&seen, &warm, Duration::from_secs(30)).await?;
        let names: Vec<String> = (0..burst).map(|i| format!("chaos-{i}")).collect();
        let start = Instant::now();
        let create = create_all(Target::of(&scenario), &names);
        tokio::pin!(create);
        // Kill once about half of them have an address, while creation may still be going on.
        let mut killed_at = None;
        let mut with_address_at_kill = 0;
        let created = loop {
            tokio::select! {
                created = &mut create => break created?,
                () = tokio::time::sleep(Duration::from_millis(2)) => {
                    let addressed = seen.lock().await.first_ip_at.len();
                    if killed_at.is_none() && addressed > burst / 2 {
                        scenario.controllers[0].kill()?;
                        killed_at = Some(start.elapsed());
                        with_address_at_kill = addressed;
                        start_controller(which, &mut scenario)?;
                    }
                }
            }
        };
        if killed_at.is_none() {
            // Creation finished first: kill now, with the controller still working through them.
            with_address_at_kill = seen.lock().await.first_ip_at.len();
            scenario.controllers[0].kill()?;
            killed_at = Some(start.elapsed());
            start_controller(which, &mut scenario)?;
        }
        wait_all(&seen, &names, Duration::from_secs(300)).await?;
        let wall = start.elapsed();
        check_stable(&scenario, &seen, &names).await?;
        watch.abort();
        clean(&scenario).await?;
        rows.push((
            format!("chaos: {burst}-Service burst, controller SIGKILLed and restarted"),
            format!(
                "all {} have an address after {} (killed at {} with {} addressed; {}); none shared, none changed",
                created.len(),
                ms(wall),
                ms(killed_at.unwrap_or_default()),
                with_address_at_kill.saturating_sub(1),
                if which == Impl::Ferrolb { "2 s Lease wait included" } else { "no Lease" }
            ),
        ));
    }

    Ok(rows)
}

#[tokio::main]
async fn main() -> Result<()> {
    let single_runs: usize = std::env::var("BENCH_SINGLE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let burst: usize = std::env::var("BENCH_BURST")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let impls: Vec<Impl> = match std::env::var("BENCH_IMPL").as_deref() {
        Ok("metallb") => vec![Impl::Metallb],
        Ok("both") => vec![Impl::Ferrolb, Impl::Metallb],
        _ => vec![Impl::Ferrolb],
    };
    let mut columns = Vec::new();
    for which in &impls {
        columns.push(suite(*which, single_runs, burst).await?);
    }
    let mut table = String::new();
    let width = columns[0].iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    table.push_str(&format!("| {:width$} |", "measure"));
    for which in &impls {
        table.push_str(&format!(" {} |", which.name()));
    }
    table.push_str(&format!("\n|{}|", "-".repeat(width + 2)));
    for _ in &impls {
        table.push_str("---|");
    }
    table.push('\n');
    for (row, (key, _)) in columns[0].iter().enumerate() {
        table.push_str(&format!("| {key:width$} |"));
        for column in &columns {
            let value = column.get(row).map(|(_, v)| v.as_str()).unwrap_or("");
            table.push_str(&format!(" {value} |"));
        }
        table.push('\n');
    }
    print!("{table}");
    Ok(())
}
