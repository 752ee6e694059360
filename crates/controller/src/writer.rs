//! Writes to the apiserver, off the decision loop: many at once, one at a time per object,
//! only the newest wanted state of an object (a write superseded while queued is never sent),
//! every Event about one object in the order it was decided, retried with backoff on
//! throttling, apiserver restarts and network errors.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ferrolb_api::configuration_state::Reporter;
use ferrolb_api::service::Annotation;
use ferrolb_api::v1beta1::{ConfigurationState, IPAddressPool};
use ferrolb_ipam::ServiceKey;
use k8s_openapi::api::core::v1::{ObjectReference, Service};
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event as KubeEvent, EventType as KubeEventType, Recorder};
use kube::{Api, Client};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use ferrolb_k8s::dispatch::Dispatch;

use crate::core::{Event, EventType};
use crate::metrics::Metrics;
use crate::snapshot::Desired;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Slot {
    Service(ServiceKey),
    Pool(String),
    State,
    /// Events about one object (by uid, else by kind and name), published one after another.
    Events(String),
}

#[derive(Debug)]
pub enum Job {
    Service {
        key: ServiceKey,
        uid: Option<String>,
        desired: Desired,
    },
    PoolStatus {
        name: String,
        status: serde_json::Value,
    },
    ConfigurationState {
        errors: Vec<String>,
    },
    Event {
        reference: ObjectReference,
        event: Event,
    },
}

/// What came of a Service write, for the decision loop.
#[derive(Debug)]
pub enum Outcome {
    /// The apiserver's answer: the Service as it is now.
    Written(Box<Service>),
    /// Given up (after retries, or refused); the loop decides again.
    Failed(ServiceKey),
    /// The Service is gone or was replaced by a new one of the same name.
    Gone(ServiceKey),
}

/// Dropping the last handle stops the writer and aborts the writes in flight.
#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::UnboundedSender<Job>,
    _task: Arc<AbortOnDrop>,
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub struct Context {
    pub client: Client,
    pub namespace: String,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
}

impl Writer {
    pub fn start(context: Context, concurrency: usize) -> (Self, mpsc::UnboundedReceiver<Outcome>) {
        let (jobs, receiver) = mpsc::unbounded_channel();
        let (outcomes, outcome_receiver) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(
            Arc::new(context),
            receiver,
            outcomes,
            concurrency.max(1),
        ));
        (
            Self {
                jobs,
                _task: Arc::new(AbortOnDrop(task)),
            },
            outcome_receiver,
        )
    }

    pub fn send(&self, job: Job) {
        // The receiver lives as long as the process; a send can only fail during shutdown.
        let _ = self.jobs.send(job);
    }
}

async fn run(
    context: Arc<Context>,
    mut jobs: mpsc::UnboundedReceiver<Job>,
    outcomes: mpsc::UnboundedSender<Outcome>,
    concurrency: usize,
) {
    let mut dispatch: Dispatch<Slot, Job> = Dispatch::default();
    let mut tasks: JoinSet<Option<Outcome>> = JoinSet::new();
    // By task id, so that a slot is freed even if its task panicked.
    let mut slots: HashMap<tokio::task::Id, Slot> = HashMap::new();
    let mut open = true;
    loop {
        tokio::select! {
            job = jobs.recv(), if open => match job {
                Some(job) => {
                    let (slot, replaces) = match &job {
                        Job::Service { key, .. } => (Slot::Service(key.clone()), true),
                        Job::PoolStatus { name, .. } => (Slot::Pool(name.clone()), true),
                        Job::ConfigurationState { .. } => (Slot::State, true),
                        Job::Event { reference, .. } => (Slot::Events(event_key(reference)), false),
                    };
                    dispatch.push(slot, job, replaces);
                }
                None => open = false,
            },
            Some(done) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                let (id, outcome) = match done {
                    Ok((id, outcome)) => (id, outcome),
                    Err(error) => {
                        tracing::error!(%error, "a write task failed");
                        (error.id(), None)
                    }
                };
                let slot = slots.remove(&id);
                if let Some(slot) = &slot {
                    dispatch.done(slot);
                }
                let outcome = match (outcome, slot) {
                    (Some(outcome), _) => Some(outcome),
                    // The task died without an answer: the loop must decide again.
                    (None, Some(Slot::Service(key))) => Some(Outcome::Failed(key)),
                    (None, _) => None,
                };
                if let Some(outcome) = outcome {
                    let _ = outcomes.send(outcome);
                }
            },
            else => break,
        }
        while tasks.len() < concurrency {
            let Some((slot, job)) = dispatch.start_next() else {
                break;
            };
            let context = context.clone();
            let handle = tasks.spawn(async move { perform(&context, job).await });
            slots.insert(handle.id(), slot);
        }
    }
}

fn event_key(reference: &ObjectReference) -> String {
    match &reference.uid {
        Some(uid) => uid.clone(),
        None => format!(
            "{}/{}/{}",
            reference.kind.as_deref().unwrap_or_default(),
            reference.namespace.as_deref().unwrap_or_default(),
            reference.name.as_deref().unwrap_or_default()
        ),
    }
}

async fn perform(context: &Context, job: Job) -> Option<Outcome> {
    match job {
        Job::Service { key, uid, desired } => Some(write_service(context, key, uid, desired).await),
        Job::PoolStatus { name, status } => {
            let api: Api<IPAddressPool> =
                Api::namespaced(context.client.clone(), &context.namespace);
            let patch = json!({ "status": status });
            let (api, patch, name_ref) = (&api, &patch, &name);
            let result = with_retries(
                &format!("IPAddressPool {name} status"),
                context,
                || async move {
                    api.patch_status(name_ref, &PatchParams::default(), &Patch::Merge(patch))
                        .await
                },
            )
            .await;
            if let Err(error) = result
                && !is_status(&error, 404)
            {
                tracing::warn!(pool = %name, %error, "could not write the pool's status");
            }
            None
        }
        Job::ConfigurationState { errors } => {
            write_configuration_state(context, errors).await;
            None
        }
        Job::Event { reference, event } => {
            let event = KubeEvent {
                type_: match event.type_ {
                    EventType::Normal => KubeEventType::Normal,
                    EventType::Warning => KubeEventType::Warning,
                },
                reason: event.reason.to_owned(),
                note: Some(event.message),
                action: event.reason.to_owned(),
                secondary: None,
            };
            if let Err(error) = context.recorder.publish(&event, &reference).await {
                tracing::warn!(object = ?reference.name, %error, "could not publish an Event");
            }
            None
        }
    }
}

async fn write_service(
    context: &Context,
    key: ServiceKey,
    uid: Option<String>,
    desired: Desired,
) -> Outcome {
    let api: Api<Service> = Api::namespaced(context.client.clone(), &key.namespace);
    let ingress = if desired.ips.is_empty() {
        serde_json::Value::Null
    } else {
        desired
            .ips
            .iter()
            .map(|ip| json!({ "ip": ip.to_string() }))
            .collect()
    };
    // One merge patch on the status subresource sets both the addresses and the pool
    // annotation. The uid is a precondition: a Service deleted and created again under the
    // same name is a new Service, to be decided afresh.
    let patch = json!({
        "metadata": {
            "uid": uid,
            "annotations": {
                Annotation::IpAllocatedFromPool.key(): desired.pool,
                Annotation::IpAllocatedFromPool.legacy_key(): null,
            },
        },
        "status": { "loadBalancer": { "ingress": ingress } },
    });
    let (api_ref, patch_ref, name) = (&api, &patch, &key.name);
    let result = with_retries(&format!("Service {key} status"), context, || async move {
        api_ref
            .patch_status(name, &PatchParams::default(), &Patch::Merge(patch_ref))
            .await
    })
    .await;
    match result {
        Ok(service) => {
            context.metrics.service_writes.inc();
            Outcome::Written(Box::new(service))
        }
        Err(error) if is_status(&error, 404) || is_status(&error, 409) => Outcome::Gone(key),
        Err(error) => {
            tracing::warn!(service = %key, %error, "could not write the Service's status");
            Outcome::Failed(key)
        }
    }
}

async fn write_configuration_state(context: &Context, errors: Vec<String>) {
    let api: Api<ConfigurationState> = Api::namespaced(context.client.clone(), &context.namespace);
    let reporter = Reporter::controller();
    let name = reporter.name.as_str();
    let params = PatchParams::apply("ferrolb-controller").force();
    let (object, status) = (reporter.object(), reporter.status(&errors));
    let (api, params, object, status) = (&api, &params, &object, &status);
    let result = async {
        with_retries("ConfigurationState", context, || async move {
            api.patch(name, params, &Patch::Apply(object)).await
        })
        .await?;
        with_retries("ConfigurationState status", context, || async move {
            api.patch_status(name, params, &Patch::Apply(status)).await
        })
        .await
    }
    .await;
    if let Err(error) = result {
        tracing::warn!(%error, "could not write the ConfigurationState");
    }
}

fn is_status(error: &kube::Error, code: u16) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == code)
}

/// Whether trying again may help: throttling, apiserver trouble, no connection.
fn transient(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => status.code == 429 || status.code >= 500,
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::HttpError(_) => true,
        _ => false,
    }
}

async fn with_retries<T, F, Fut>(
    what: &str,
    context: &Context,
    mut call: F,
) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let mut delay = Duration::from_millis(50);
    let mut attempt = 1;
    loop {
        match call().await {
            Ok(value) => return Ok(value),
            Err(error) if transient(&error) && attempt < 10 => {
                context.metrics.update_errors.inc();
                tracing::debug!(what, attempt, %error, "write failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
                attempt += 1;
            }
            Err(error) => {
                context.metrics.update_errors.inc();
                return Err(error);
            }
        }
    }
}
