//! `ferrolb`: the single binary. Each subcommand is one role of the load balancer; the roles
//! themselves live in their own crates and this file only parses the command line and dispatches.

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

mod status;

/// MetalLB-compatible load balancer for bare-metal Kubernetes.
#[derive(Debug, Parser)]
#[command(name = "ferrolb", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Allocate LoadBalancer IPs to Services and write their status (leader-elected).
    Controller(ControllerArgs),
    /// Announce Service IPs from this node over L2 (ARP/NDP) or BGP.
    Speaker(SpeakerArgs),
    /// Serve the validating admission webhook for metallb.io resources.
    Webhook(ClusterArgs),
    /// Print the metallb.io CustomResourceDefinitions as YAML.
    Crds,
    /// Check metallb.io resources in YAML files without a cluster.
    Validate {
        /// Multi-document YAML files with any mix of metallb.io kinds.
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
    },
    /// Show which IP each Service got and who announces it.
    Status(ClusterArgs),
    /// Convert a legacy MetalLB ConfigMap or Helm `configInline` into metallb.io resources.
    Migrate {
        /// The legacy ConfigMap or values file; `-` reads standard input.
        file: std::path::PathBuf,
    },
}

#[derive(Debug, Args)]
struct ClusterArgs {
    /// Namespace holding the metallb.io configuration resources.
    #[arg(long, env = "METALLB_NAMESPACE", default_value = "metallb-system")]
    namespace: String,
}

#[derive(Debug, Args)]
struct ControllerArgs {
    #[command(flatten)]
    cluster: ClusterArgs,
    /// Serve only Services with this spec.loadBalancerClass; without it, Services with none.
    #[arg(long, env = "METALLB_LB_CLASS")]
    lb_class: Option<String>,
    /// Address for /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:7472")]
    metrics_address: std::net::SocketAddr,
    /// Name in the leader Lease and on Events (falls back to $METALLB_POD_NAME, $POD_NAME, then
    /// host name and process id).
    #[arg(long)]
    identity: Option<String>,
    /// The coordination.k8s.io Lease the controllers elect their leader on.
    #[arg(long, default_value = "ferrolb-controller")]
    lease_name: String,
    /// Seconds a leader's Lease lasts without renewal: how long a dead leader is waited for.
    #[arg(long, default_value_t = 15)]
    lease_duration: u64,
    /// Writes to the apiserver in flight at once.
    #[arg(long, default_value_t = 32)]
    write_concurrency: usize,
    /// Log filter (tracing-subscriber's EnvFilter syntax: info, debug, ferrolb_controller=debug…).
    #[arg(long, env = "FERROLB_LOG", default_value = "info")]
    log_level: String,
}

#[derive(Debug, Args)]
struct SpeakerArgs {
    #[command(flatten)]
    cluster: ClusterArgs,
    /// This node's name, as in its Node object (falls back to $NODE_NAME, then $METALLB_NODE_NAME).
    #[arg(long)]
    node_name: Option<String>,
    /// Announce only Services with this spec.loadBalancerClass; without it, Services with none.
    #[arg(long, env = "METALLB_LB_CLASS")]
    lb_class: Option<String>,
    /// Address for /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:7472")]
    metrics_address: std::net::SocketAddr,
    /// Address the membership binds and advertises (default: this Node's first InternalIP).
    #[arg(long, env = "METALLB_ML_BIND_ADDR")]
    ml_bindaddr: Option<std::net::IpAddr>,
    /// UDP port of the membership.
    #[arg(long, env = "METALLB_ML_BIND_PORT", default_value_t = 7946)]
    ml_bindport: u16,
    /// File with the membership's shared key (MetalLB mounts the `memberlist` Secret's
    /// `secretkey` there); without it the Secret is read through the API.
    #[arg(long, env = "METALLB_ML_SECRET_KEY_PATH")]
    ml_secret_key_path: Option<std::path::PathBuf>,
    /// Secret in --namespace whose `secretkey` is the membership's shared key.
    #[arg(long, default_value = "memberlist")]
    ml_secret_name: String,
    /// Run without the membership: a node counts as having a live speaker while its Node is
    /// Ready (slow failover, as MetalLB without memberlist).
    #[arg(long)]
    ml_disabled: bool,
    /// Let nodes labelled node.kubernetes.io/exclude-from-external-load-balancers announce.
    #[arg(long)]
    ignore_exclude_lb: bool,
    /// Interfaces never used unless an L2Advertisement names them (a regular expression over
    /// interface names; default: MetalLB's list of container and tunnel interfaces).
    #[arg(long)]
    interface_exclude_regexp: Option<String>,
    /// Re-send gratuitous ARP / unsolicited NA for every owned address this often (seconds;
    /// 0: only on takeover), for switches that age out their tables.
    #[arg(long, default_value_t = 0)]
    l2_refresh_seconds: u64,
    /// Log filter (tracing-subscriber's EnvFilter syntax).
    #[arg(long, env = "FERROLB_LOG", default_value = "info")]
    log_level: String,
}

/// Says which work brings a role, so that nobody mistakes a missing role for a broken one.
fn not_yet(role: &str, tracked_in: &str) -> ExitCode {
    eprintln!("ferrolb {role}: not implemented yet ({tracked_in})");
    ExitCode::from(2)
}

/// Logs to stderr through `filter`; a bad filter is a usage error.
fn init_logging(role: &str, filter: &str) -> Result<(), ExitCode> {
    let parsed = match tracing_subscriber::EnvFilter::try_new(filter) {
        Ok(parsed) => parsed,
        Err(err) => {
            eprintln!("ferrolb {role}: --log-level {filter:?}: {err}");
            return Err(ExitCode::from(2));
        }
    };
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(parsed)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    Ok(())
}

/// Runs a long-lived role to its end on a multi-threaded runtime.
fn run_role<F>(role: &str, threads: Option<usize>, body: F) -> ExitCode
where
    F: std::future::Future<Output = anyhow::Result<()>>,
{
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = threads {
        builder.worker_threads(threads);
    }
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("ferrolb {role}: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(body) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            ExitCode::FAILURE
        }
    }
}

fn speaker(args: SpeakerArgs) -> ExitCode {
    if let Err(code) = init_logging("speaker", &args.log_level) {
        return code;
    }
    let Some(node_name) = args
        .node_name
        .or_else(|| std::env::var("NODE_NAME").ok())
        .or_else(|| std::env::var("METALLB_NODE_NAME").ok())
        .filter(|name| !name.is_empty())
    else {
        eprintln!(
            "ferrolb speaker: give --node-name (or set NODE_NAME): the speaker must know which Node it runs on"
        );
        return ExitCode::from(2);
    };
    let mut responder = ferrolb_l2::ResponderOptions::default();
    if let Some(pattern) = args.interface_exclude_regexp {
        responder.exclude = vec![pattern];
    }
    responder.refresh = (args.l2_refresh_seconds > 0)
        .then(|| std::time::Duration::from_secs(args.l2_refresh_seconds));
    let options = ferrolb_speaker::Options {
        namespace: args.cluster.namespace,
        node_name,
        lb_class: args.lb_class.filter(|c| !c.is_empty()),
        metrics_address: args.metrics_address,
        membership: ferrolb_speaker::MembershipOptions {
            enabled: !args.ml_disabled,
            bind_address: args.ml_bindaddr,
            port: args.ml_bindport,
            secret_key_path: args.ml_secret_key_path,
            secret_name: args.ml_secret_name,
        },
        ignore_exclude_lb: args.ignore_exclude_lb,
        responder,
    };
    // Two workers: the responder's receive tasks stay responsive while the API side works.
    run_role("speaker", Some(2), async {
        let client = kube::Client::try_default().await?;
        ferrolb_speaker::run(client, options).await
    })
}

fn controller(args: ControllerArgs) -> ExitCode {
    if let Err(code) = init_logging("controller", &args.log_level) {
        return code;
    }
    let identity = args
        .identity
        .or_else(|| std::env::var("METALLB_POD_NAME").ok())
        .or_else(|| std::env::var("POD_NAME").ok())
        .unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .unwrap_or_else(|_| "ferrolb".into());
            format!("{host}-{}", std::process::id())
        });
    let options = ferrolb_controller::Options {
        namespace: args.cluster.namespace,
        lb_class: args.lb_class.filter(|c| !c.is_empty()),
        metrics_address: args.metrics_address,
        identity,
        lease_name: args.lease_name,
        lease_duration: std::time::Duration::from_secs(args.lease_duration),
        write_concurrency: args.write_concurrency,
    };
    run_role("controller", None, async {
        let client = kube::Client::try_default().await?;
        ferrolb_controller::run(client, options).await
    })
}

/// `ferrolb status`: reads pools, ConfigurationStates, LoadBalancer Services, their
/// ServiceL2Status and ServiceBGPStatus objects and AllocationFailed Events, and the BGPPeers'
/// session entries, and prints them (see `status`).
fn show_status(namespace: &str) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("ferrolb status: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(fetch_status(namespace)) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("ferrolb status: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn fetch_status(namespace: &str) -> anyhow::Result<String> {
    use anyhow::Context as _;
    use ferrolb_api::v1beta1::{
        ConfigurationState, IPAddressPool, ServiceBGPStatus, ServiceL2Status,
    };
    use k8s_openapi::api::core::v1::Service;
    use k8s_openapi::api::events::v1::Event;
    use kube::Api;
    use kube::api::ListParams;

    let client = kube::Client::try_default()
        .await
        .context("connecting to the cluster (KUBECONFIG or in-cluster)")?;
    let list = ListParams::default();
    let pools: Api<IPAddressPool> = Api::namespaced(client.clone(), namespace);
    let mut pool_rows: Vec<status::PoolRow> = pools
        .list(&list)
        .await
        .context("listing IPAddressPools")?
        .items
        .into_iter()
        .map(|pool| {
            let counters = pool.status.unwrap_or_default();
            status::PoolRow {
                name: pool.metadata.name.unwrap_or_default(),
                assigned_ipv4: counters.assigned_ipv4,
                available_ipv4: counters.available_ipv4,
                assigned_ipv6: counters.assigned_ipv6,
                available_ipv6: counters.available_ipv6,
            }
        })
        .collect();
    pool_rows.sort_by(|a, b| a.name.cmp(&b.name));
    let states: Api<ConfigurationState> = Api::namespaced(client.clone(), namespace);
    let state_rows: Vec<status::StateRow> = states
        .list(&list)
        .await
        .context("listing ConfigurationStates")?
        .items
        .into_iter()
        .map(|state| {
            let status = state.status.unwrap_or_default();
            status::StateRow {
                component: state.metadata.name.unwrap_or_default(),
                result: status
                    .result
                    .map(|r| format!("{r:?}"))
                    .unwrap_or_else(|| "Unknown".into()),
                errors: status.error_summary.unwrap_or_default(),
            }
        })
        .collect();
    let announcements: Api<ServiceL2Status> = Api::namespaced(client.clone(), namespace);
    let l2 = announcements
        .list(&list)
        .await
        .context("listing ServiceL2Statuses")?
        .items;
    let bgp_announcements: Api<ServiceBGPStatus> = Api::namespaced(client.clone(), namespace);
    let bgp = bgp_announcements
        .list(&list)
        .await
        .context("listing ServiceBGPStatuses")?
        .items;
    let services: Api<Service> = Api::all(client.clone());
    let mut service_rows = Vec::new();
    for service in services
        .list(&list)
        .await
        .context("listing Services")?
        .items
    {
        let spec = service.spec.clone().unwrap_or_default();
        if spec.type_.as_deref() != Some("LoadBalancer") {
            continue;
        }
        let service_namespace = service.metadata.namespace.clone().unwrap_or_default();
        let name = service.metadata.name.clone().unwrap_or_default();
        let addresses: Vec<String> = ferrolb_api::service::ingress_ips(&service)
            .iter()
            .map(ToString::to_string)
            .collect();
        let about_this = |namespace: &Option<String>, service: &Option<String>| {
            namespace.as_deref() == Some(service_namespace.as_str())
                && service.as_deref() == Some(name.as_str())
        };
        let announced_by_bgp = bgp
            .iter()
            .filter_map(|s| s.status.as_ref())
            .filter(|s| about_this(&s.service_namespace, &s.service_name))
            .map(|s| {
                format!(
                    "{} (BGP: {})",
                    s.node.clone().unwrap_or_default(),
                    s.peers.join(",")
                )
            });
        let announced_by = l2
            .iter()
            .filter_map(|s| s.status.as_ref())
            .filter(|s| about_this(&s.service_namespace, &s.service_name))
            .map(|s| {
                let interfaces: Vec<String> =
                    s.interfaces.iter().filter_map(|i| i.name.clone()).collect();
                format!(
                    "{} ({})",
                    s.node.clone().unwrap_or_default(),
                    if interfaces.is_empty() {
                        "all interfaces".to_string()
                    } else {
                        interfaces.join(",")
                    }
                )
            })
            .chain(announced_by_bgp)
            .collect();
        let waiting_because = if addresses.is_empty() {
            let events: Api<Event> = Api::namespaced(client.clone(), &service_namespace);
            let selector = format!("regarding.name={name},reason=AllocationFailed");
            let mut found = events
                .list(&ListParams::default().fields(&selector))
                .await
                .map(|l| l.items)
                .unwrap_or_default();
            found.sort_by_key(|e| e.metadata.creation_timestamp.as_ref().map(|t| t.0));
            found.pop().and_then(|e| e.note).map(|note| {
                // "Failed to allocate IP for "ns/name": why" → why
                note.split_once("\": ")
                    .map_or(note.clone(), |(_, why)| why.to_string())
            })
        } else {
            None
        };
        service_rows.push(status::ServiceRow {
            namespace: service_namespace,
            name,
            class: spec.load_balancer_class,
            addresses,
            pool: service
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("metallb.io/ip-allocated-from-pool").cloned()),
            announced_by,
            waiting_because,
        });
    }
    service_rows.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    let peers: Api<ferrolb_api::v1beta2::BGPPeer> = Api::namespaced(client.clone(), namespace);
    let mut session_rows = Vec::new();
    for peer in peers.list(&list).await.context("listing BGPPeers")?.items {
        let name = peer.metadata.name.clone().unwrap_or_default();
        let address = peer
            .spec
            .peer_address
            .clone()
            .or_else(|| peer.spec.interface.clone())
            .unwrap_or_default();
        let entries = peer.status.map(|s| s.nodes).unwrap_or_default();
        if entries.is_empty() {
            session_rows.push(status::SessionRow {
                peer: name.clone(),
                address: address.clone(),
                entry: None,
            });
        }
        for entry in entries {
            session_rows.push(status::SessionRow {
                peer: name.clone(),
                address: address.clone(),
                entry: Some(status::SessionEntry {
                    node: entry.node,
                    session: entry.session,
                    bfd: entry.bfd,
                    since: entry.last_transition_time.map(|t| t.0.to_string()),
                    message: entry.message,
                }),
            });
        }
    }
    session_rows.sort_by(|a, b| {
        let node = |row: &status::SessionRow| row.entry.as_ref().map(|e| e.node.clone());
        (&a.peer, node(a)).cmp(&(&b.peer, node(b)))
    });
    Ok(status::render(
        namespace,
        &pool_rows,
        &state_rows,
        &service_rows,
        &session_rows,
    ))
}

/// `ferrolb validate`: one line per problem on stdout; exit 1 when anything cannot be served.
fn validate(files: &[std::path::PathBuf]) -> ExitCode {
    let mut resources = ferrolb_config::Resources::default();
    let mut problems: Vec<String> = Vec::new();
    for file in files {
        let name = file.display().to_string();
        let text = if name == "-" {
            std::io::read_to_string(std::io::stdin())
        } else {
            std::fs::read_to_string(file)
        };
        match text {
            Ok(text) => problems.extend(
                resources
                    .add_yaml(&name, &text)
                    .iter()
                    .map(ToString::to_string),
            ),
            Err(err) => problems.push(format!("{name}: cannot read: {err}")),
        }
    }
    let built = ferrolb_config::build(&resources, &Default::default());
    problems.extend(built.errors.iter().map(ToString::to_string));
    for warning in &built.warnings {
        println!("warning: {warning}");
    }
    for problem in &problems {
        println!("error: {problem}");
    }
    if resources.is_empty() && problems.is_empty() {
        println!("error: no metallb.io objects in {} file(s)", files.len());
        return ExitCode::FAILURE;
    }
    if !problems.is_empty() {
        return ExitCode::FAILURE;
    }
    println!(
        "valid: {} metallb.io objects ({} pools, {} L2 and {} BGP advertisements, {} peers, {} BFD profiles)",
        resources.len(),
        built.config.pools.len(),
        built.config.l2_advertisements.len(),
        built.config.bgp_advertisements.len(),
        built.config.peers.len(),
        built.config.bfd_profiles.len()
    );
    ExitCode::SUCCESS
}

/// `ferrolb migrate`: the resources as YAML on stdout, or one line per problem and exit 1.
fn migrate(file: &std::path::Path) -> ExitCode {
    let name = file.display().to_string();
    let text = if name == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(file)
    };
    let result = text
        .map_err(|err| vec![format!("{name}: cannot read: {err}")])
        .and_then(|text| {
            ferrolb_config::legacy::read(&text).map_err(|err| vec![format!("{name}: {err}")])
        })
        .and_then(|input| {
            ferrolb_config::migrate::migrate(&input)
                .map_err(|errors| errors.iter().map(ToString::to_string).collect())
        });
    match result {
        Ok(yaml) => {
            print!("{yaml}");
            ExitCode::SUCCESS
        }
        Err(problems) => {
            for problem in problems {
                eprintln!("error: {problem}");
            }
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Controller(args) => controller(args),
        Command::Speaker(args) => speaker(args),
        Command::Webhook(_) => not_yet("webhook", "no issue filed yet"),
        Command::Crds => {
            print!("{}", ferrolb_api::crds_yaml());
            ExitCode::SUCCESS
        }
        Command::Validate { files } => validate(&files),
        Command::Status(args) => show_status(&args.namespace),
        Command::Migrate { file } => migrate(&file),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn help_lists_every_role() {
        let help = Cli::command().render_long_help().to_string();
        for role in [
            "controller",
            "speaker",
            "webhook",
            "crds",
            "validate",
            "status",
            "migrate",
        ] {
            assert!(
                help.contains(role),
                "--help does not list `{role}`:\n{help}"
            );
        }
    }

    #[test]
    fn namespace_defaults_to_metallb_system() {
        let cli = Cli::try_parse_from(["ferrolb", "controller"]).expect("parses");
        match cli.command {
            Command::Controller(args) => assert_eq!(args.cluster.namespace, "metallb-system"),
            other => panic!("parsed as {other:?}"),
        }
    }
}
