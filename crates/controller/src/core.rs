//! The controller's decisions, as a plain state machine: Services, namespaces and the
//! metallb.io configuration go in; the load-balancer fields each Service should show and the
//! Events to tell its owner come out. No Kubernetes client: the runtime feeds it what the
//! watches see and writes back what it answers.

use std::collections::{BTreeSet, HashMap};

use ferrolb_config::{ConfigError, LastGood, Resources, Stale};
use ferrolb_ipam::{Addresses, Allocator, Change, Invalidated, PoolStats, Refusal, ServiceKey};
use ferrolb_labels::Labels;

use crate::request::service_request;
use crate::snapshot::{Desired, ServiceSnapshot};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

/// An Event for the Service, with MetalLB's reasons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub type_: EventType,
    pub reason: &'static str,
    pub message: String,
}

impl Event {
    fn normal(reason: &'static str, message: String) -> Self {
        Self {
            type_: EventType::Normal,
            reason,
            message,
        }
    }

    fn warning(reason: &'static str, message: String) -> Self {
        Self {
            type_: EventType::Warning,
            reason,
            message,
        }
    }
}

/// The answer for one Service.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Decision {
    /// What the Service should show; `None`: leave it alone (not ours, or unreadable).
    pub desired: Option<Desired>,
    pub events: Vec<Event>,
    /// Addresses were given back: Services waiting for one may get it now.
    pub freed: bool,
}

/// The outcome of a configuration change.
#[derive(Debug, Default)]
pub struct ConfigReport {
    pub errors: Vec<ConfigError>,
    pub warnings: Vec<ConfigError>,
    /// Errors not reported by the previous change, to raise as Events.
    pub new_errors: Vec<ConfigError>,
    /// Objects served at their last good version.
    pub stale: Vec<Stale>,
    /// Services whose addresses the new pools no longer allow; each is moved when reconciled.
    pub invalidated: Vec<Invalidated>,
}

#[derive(Debug, Default)]
pub struct Core {
    lb_class: Option<String>,
    allocator: Allocator,
    last_good: LastGood,
    configured: bool,
    namespace_labels: HashMap<String, Labels>,
    /// Services that want an address and have none, with when they were created.
    pending: HashMap<ServiceKey, String>,
    /// The last Event of each kind given to a Service, so that a Service reconciled again for
    /// an unrelated reason is not told the same thing twice.
    told: HashMap<(ServiceKey, &'static str), String>,
    /// Why a Service's addresses could not be taken back from its status.
    refused: HashMap<ServiceKey, Refusal>,
    reported_errors: BTreeSet<String>,
}

impl Core {
    /// `lb_class`: serve only Services of this `spec.loadBalancerClass`; `None`, Services
    /// without one, as MetalLB.
    pub fn new(lb_class: Option<String>) -> Self {
        Self {
            lb_class,
            ..Self::default()
        }
    }

    pub fn configured(&self) -> bool {
        self.configured
    }

    pub fn allocator(&self) -> &Allocator {
        &self.allocator
    }

    pub fn pool_stats(&self) -> Vec<PoolStats> {
        self.allocator.stats()
    }

    /// Builds the configuration and switches the allocator to its pools. Pools holding
    /// addresses win overlaps, and objects an edit made invalid stay at their last good
    /// version. The caller reconciles every Service afterwards.
    pub fn set_config(&mut self, resources: &Resources) -> ConfigReport {
        let holding: BTreeSet<String> = self
            .allocator
            .stats()
            .into_iter()
            .filter(|pool| pool.services > 0)
            .map(|pool| pool.pool.to_string())
            .collect();
        let served = self.last_good.build(resources, &holding);
        let invalidated = self.allocator.set_pools(served.built.config.pools);
        self.configured = true;
        let messages: BTreeSet<String> = served
            .built
            .errors
            .iter()
            .map(ToString::to_string)
            .collect();
        let new_errors = served
            .built
            .errors
            .iter()
            .filter(|e| !self.reported_errors.contains(&e.to_string()))
            .cloned()
            .collect();
        self.reported_errors = messages;
        ConfigReport {
            errors: served.built.errors,
            warnings: served.built.warnings,
            new_errors,
            stale: served.stale,
            invalidated,
        }
    }

    /// Records a namespace's labels; true if they changed, so that its Services must be
    /// reconciled again (`serviceAllocation.namespaceSelectors`).
    pub fn set_namespace(&mut self, name: &str, labels: Labels) -> bool {
        match self.namespace_labels.get(name) {
            Some(old) if *old == labels => false,
            _ => {
                self.namespace_labels.insert(name.to_owned(), labels);
                true
            }
        }
    }

    pub fn forget_namespace(&mut self, name: &str) {
        self.namespace_labels.remove(name);
    }

    /// After a start or a takeover, before anything is allocated: every Service of ours
    /// takes back the addresses its status shows, oldest Service first, so that nothing
    /// moves and nobody is given an address another Service still holds.
    pub fn restore(&mut self, services: &[ServiceSnapshot]) {
        let mut ordered: Vec<&ServiceSnapshot> = services.iter().collect();
        ordered.sort_by(|a, b| (&a.created, &a.key).cmp(&(&b.created, &b.key)));
        for service in ordered {
            if self.serves(service) {
                self.take_back(service);
            }
        }
    }

    pub fn pending_count(&self) -> usize {
        self.pending.len()
    }

    /// Services waiting for an address, oldest first.
    pub fn pending(&self) -> Vec<ServiceKey> {
        let mut pending: Vec<(&String, &ServiceKey)> = self
            .pending
            .iter()
            .map(|(k, created)| (created, k))
            .collect();
        pending.sort();
        pending.into_iter().map(|(_, key)| key.clone()).collect()
    }

    /// The Service is gone: its addresses are free.
    pub fn delete(&mut self, key: &ServiceKey) -> bool {
        self.pending.remove(key);
        self.refused.remove(key);
        self.told.retain(|(k, _), _| k != key);
        self.allocator.unassign(key).is_some()
    }

    pub fn reconcile(&mut self, service: &ServiceSnapshot) -> Decision {
        let key = &service.key;
        if !self.serves(service) {
            self.pending.remove(key);
            self.refused.remove(key);
            let freed = self.allocator.unassign(key).is_some();
            // MetalLB clears what a load balancer left on a Service that is not one any more.
            // A Service of another class is that implementation's to write.
            let clear = !service.load_balancer
                && (freed || (self.lb_class.is_none() && service.has_load_balancer_state()));
            return Decision {
                desired: clear.then(Desired::cleared),
                events: Vec::new(),
                freed,
            };
        }
        let mut decision = Decision::default();
        let lb = match &service.request {
            Ok(lb) => lb,
            Err(error) => {
                // Keep what it holds: a typo in an annotation must not cost the address.
                self.tell(
                    &mut decision,
                    key,
                    Event::warning("LoadBalancerFailed", format!("invalid Service: {error}")),
                );
                return decision;
            }
        };
        self.forget_told(key, "LoadBalancerFailed");
        for annotation in &lb.legacy_annotations {
            self.tell(
                &mut decision,
                key,
                Event::warning(
                    "deprecatedAnnotation",
                    format!(
                        "Service uses deprecated annotation {}; use {}",
                        annotation.legacy_key(),
                        annotation.key()
                    ),
                ),
            );
        }
        if lb.legacy_annotations.is_empty() {
            self.forget_told(key, "deprecatedAnnotation");
        }
        let labels = self
            .namespace_labels
            .get(&key.namespace)
            .cloned()
            .unwrap_or_default();
        let request = match service_request(lb, &labels) {
            Ok(request) => request,
            Err(error) => {
                decision.freed = self.allocator.unassign(key).is_some();
                self.pending.insert(key.clone(), service.created.clone());
                self.tell(
                    &mut decision,
                    key,
                    Event::warning(
                        "AllocationFailed",
                        format!("Failed to allocate IP for \"{key}\": {error}"),
                    ),
                );
                decision.desired = Some(Desired::cleared());
                return decision;
            }
        };
        if self.allocator.assignment(key).is_none() && !service.status_ips.is_empty() {
            self.take_back(service);
        }
        if let Some(refusal) = self.refused.remove(key) {
            self.clear_assignment(&mut decision, key, &refusal);
        }
        match self.allocator.assign(&request) {
            Ok(assigned) => {
                self.pending.remove(key);
                self.forget_told(key, "AllocationFailed");
                match &assigned.change {
                    Change::Unchanged => {}
                    Change::Allocated => self.allocated(&mut decision, key, assigned.addresses),
                    Change::Extended { added } => {
                        self.tell(
                            &mut decision,
                            key,
                            Event::normal(
                                "IPAllocated",
                                format!("Assigned additional IP {}", quoted(&[*added])),
                            ),
                        );
                    }
                    Change::Narrowed { released } => {
                        decision.freed = true;
                        self.tell(
                            &mut decision,
                            key,
                            Event::normal(
                                "ClearAssignment",
                                format!(
                                    "released {released}: the Service no longer asks for its family"
                                ),
                            ),
                        );
                    }
                    Change::Replaced(dropped) => {
                        decision.freed = true;
                        self.clear_assignment(&mut decision, key, &dropped.reason);
                        self.allocated(&mut decision, key, assigned.addresses);
                    }
                }
                decision.desired = Some(Desired {
                    ips: assigned.addresses.iter().collect(),
                    pool: Some(assigned.pool.to_string()),
                });
            }
            Err(error) => {
                if let Some(dropped) = &error.dropped {
                    decision.freed = true;
                    self.clear_assignment(&mut decision, key, &dropped.reason);
                }
                self.pending.insert(key.clone(), service.created.clone());
                self.tell(
                    &mut decision,
                    key,
                    Event::warning(
                        "AllocationFailed",
                        format!("Failed to allocate IP for \"{key}\": {}", error.failure),
                    ),
                );
                decision.desired = Some(Desired::cleared());
            }
        }
        decision
    }

    fn serves(&self, service: &ServiceSnapshot) -> bool {
        service.load_balancer && service.class == self.lb_class
    }

    /// Takes back the addresses the Service's status shows, or remembers why not.
    fn take_back(&mut self, service: &ServiceSnapshot) {
        if service.status_ips.is_empty() {
            return;
        }
        let Ok(lb) = &service.request else { return };
        let labels = self
            .namespace_labels
            .get(&service.key.namespace)
            .cloned()
            .unwrap_or_default();
        let Ok(request) = service_request(lb, &labels) else {
            return;
        };
        let result = Addresses::from_ips(&service.status_ips)
            .map_err(|_| Refusal::WrongFamilies {
                addresses: Addresses::NONE,
                policy: request.families,
            })
            .and_then(|addresses| self.allocator.restore(&request, addresses));
        match result {
            Ok(_) => {
                self.refused.remove(&service.key);
            }
            Err(refusal) => {
                self.refused.insert(service.key.clone(), refusal);
            }
        }
    }

    fn allocated(&mut self, decision: &mut Decision, key: &ServiceKey, addresses: Addresses) {
        let ips: Vec<_> = addresses.iter().collect();
        self.forget_told(key, "ClearAssignment");
        // Each allocation is news, even of the same address as before.
        self.forget_told(key, "IPAllocated");
        self.tell(
            decision,
            key,
            Event::normal("IPAllocated", format!("Assigned IP {}", quoted(&ips))),
        );
    }

    fn clear_assignment(&mut self, decision: &mut Decision, key: &ServiceKey, reason: &Refusal) {
        self.tell(
            decision,
            key,
            Event::normal(
                "ClearAssignment",
                format!(
                    "current IP for \"{key}\" not allowed by config, will attempt for new IP assignment: {reason}"
                ),
            ),
        );
    }

    fn tell(&mut self, decision: &mut Decision, key: &ServiceKey, event: Event) {
        let slot = (key.clone(), event.reason);
        if self.told.get(&slot) == Some(&event.message) {
            return;
        }
        self.told.insert(slot, event.message.clone());
        decision.events.push(event);
    }

    fn forget_told(&mut self, key: &ServiceKey, reason: &'static str) {
        self.told.remove(&(key.clone(), reason));
    }
}

/// `["198.51.100.1" "2001:db8::1"]`, the way MetalLB's events print addresses.
fn quoted(ips: &[std::net::IpAddr]) -> String {
    let inner: Vec<String> = ips.iter().map(|ip| format!("\"{ip}\"")).collect();
    format!("[{}]", inner.join(" "))
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use k8s_openapi::api::core::v1::Service;
    use serde_json::json;

    use super::*;

    fn pools(yaml_ranges: &[(&str, &str)]) -> Resources {
        let mut resources = Resources::default();
        for (name, range) in yaml_ranges {
            let text = format!(
                "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {{name: {name}}}\nspec:\n  addresses: [\"{range}\"]\n"
            );
            assert!(resources.add_yaml("test", &text).is_empty());
        }
        resources
    }

    fn service(
        name: &str,
        created: &str,
        status: &[&str],
        extra: serde_json::Value,
    ) -> ServiceSnapshot {
        let ingress: Vec<_> = status.iter().map(|ip| json!({"ip": ip})).collect();
        let mut object = json!({
            "metadata": {"name": name, "namespace": "ns", "creationTimestamp": created, "uid": name},
            "spec": {"type": "LoadBalancer", "clusterIPs": ["198.18.0.10"], "ipFamilies": ["IPv4"],
                     "ports": [{"port": 80, "protocol": "TCP"}]},
            "status": {"loadBalancer": {"ingress": ingress}},
        });
        merge(&mut object, extra);
        let service: Service = serde_json::from_value(object).expect("a Service");
        ServiceSnapshot::from_service(&service)
    }

    fn merge(into: &mut serde_json::Value, from: serde_json::Value) {
        match (into, from) {
            (serde_json::Value::Object(into), serde_json::Value::Object(from)) => {
                for (key, value) in from {
                    merge(into.entry(key).or_insert(serde_json::Value::Null), value);
                }
            }
            (into, from) => *into = from,
        }
    }

    fn ips(decision: &Decision) -> Vec<IpAddr> {
        decision.desired.clone().map(|d| d.ips).unwrap_or_default()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("literal")
    }

    fn reasons(decision: &Decision) -> Vec<&'static str> {
        decision.events.iter().map(|e| e.reason).collect()
    }

    #[test]
    fn restore_comes_before_allocation_so_nothing_moves() {
        let mut core = Core::new(None);
        core.set_config(&pools(&[("lan", "198.51.100.200-198.51.100.201")]));
        // `new` was created later and shows no address; `old` shows the pool's first one.
        let new = service("new", "2026-01-02T00:00:00Z", &[], json!({}));
        let old = service(
            "old",
            "2026-01-01T00:00:00Z",
            &["198.51.100.200"],
            json!({}),
        );
        core.restore(&[new.clone(), old.clone()]);
        let decision = core.reconcile(&new);
        assert_eq!(ips(&decision), vec![ip("198.51.100.201")]);
        let decision = core.reconcile(&old);
        assert_eq!(ips(&decision), vec![ip("198.51.100.200")]);
        assert!(decision.events.is_empty(), "nothing changed: {decision:?}");
    }

    #[test]
    fn a_status_claimed_twice_goes_to_the_older_service() {
        let mut core = Core::new(None);
        core.set_config(&pools(&[("lan", "198.51.100.200-198.51.100.201")]));
        let old = service(
            "old",
            "2026-01-01T00:00:00Z",
            &["198.51.100.200"],
            json!({}),
        );
        let copy = service(
            "copy",
            "2026-01-02T00:00:00Z",
            &["198.51.100.200"],
            json!({}),
        );
        core.restore(&[copy.clone(), old.clone()]);
        assert_eq!(ips(&core.reconcile(&old)), vec![ip("198.51.100.200")]);
        let decision = core.reconcile(&copy);
        assert_eq!(ips(&decision), vec![ip("198.51.100.201")]);
        assert_eq!(reasons(&decision), vec!["ClearAssignment", "IPAllocated"]);
        assert!(
            decision.events[0].message.contains("old"),
            "the refusal names the holder: {:?}",
            decision.events[0]
        );
    }

    #[test]
    fn exhaustion_then_a_deletion_frees_an_address_for_the_waiting_service() {
        let mut core = Core::new(None);
        core.set_config(&pools(&[("lan", "198.51.100.200/32")]));
        let first = service("first", "2026-01-01T00:00:00Z", &[], json!({}));
        let second = service("second", "2026-01-02T00:00:00Z", &[], json!({}));
        assert_eq!(ips(&core.reconcile(&first)), vec![ip("198.51.100.200")]);
        let failed = core.reconcile(&second);
        assert_eq!(reasons(&failed), vec!["AllocationFailed"]);
        assert_eq!(failed.desired, Some(Desired::cleared()));
        assert_eq!(core.pending(), vec![second.key.clone()]);
        // Reconciled again for an unrelated reason: not told twice.
        assert!(core.reconcile(&second).events.is_empty());
        assert!(core.delete(&first.key));
        let retried = core.reconcile(&second);
        assert_eq!(ips(&retried), vec![ip("198.51.100.200")]);
        assert!(core.pending().is_empty());
    }

    #[test]
    fn other_classes_are_left_alone_and_not_load_balancers_are_cleared() {
        let mut core = Core::new(Some("mine".into()));
        core.set_config(&pools(&[("lan", "198.51.100.200/30")]));
        let theirs = service("theirs", "2026-01-01T00:00:00Z", &["192.0.2.1"], json!({}));
        assert_eq!(core.reconcile(&theirs), Decision::default());
        let mine = service(
            "mine",
            "2026-01-01T00:00:00Z",
            &[],
            json!({"spec": {"loadBalancerClass": "mine"}}),
        );
        assert_eq!(ips(&core.reconcile(&mine)), vec![ip("198.51.100.200")]);
        // Changed to ClusterIP: the class goes too, and what we wrote is cleared.
        let cluster_ip = service(
            "mine",
            "2026-01-01T00:00:00Z",
            &["198.51.100.200"],
            json!({"spec": {"type": "ClusterIP"}}),
        );
        let decision = core.reconcile(&cluster_ip);
        assert!(decision.freed);
        assert_eq!(decision.desired, Some(Desired::cleared()));
        assert!(core.allocator().assignments().next().is_none());
    }

    #[test]
    fn a_bad_annotation_keeps_the_address_and_says_why() {
        let mut core = Core::new(None);
        core.set_config(&pools(&[("lan", "198.51.100.200/30")]));
        let good = service("web", "2026-01-01T00:00:00Z", &[], json!({}));
        assert_eq!(ips(&core.reconcile(&good)), vec![ip("198.51.100.200")]);
        let bad = service(
            "web",
            "2026-01-01T00:00:00Z",
            &["198.51.100.200"],
            json!({"metadata": {"annotations": {"metallb.io/loadBalancerIPs": "not-an-ip"}}}),
        );
        let decision = core.reconcile(&bad);
        assert_eq!(decision.desired, None, "the Service is left as it is");
        assert_eq!(reasons(&decision), vec!["LoadBalancerFailed"]);
        assert!(core.allocator().assignment(&good.key).is_some());
    }

    #[test]
    fn a_pool_that_shrinks_moves_its_service_with_a_reason() {
        let mut core = Core::new(None);
        core.set_config(&pools(&[("lan", "198.51.100.200-198.51.100.203")]));
        let web = service("web", "2026-01-01T00:00:00Z", &[], json!({}));
        assert_eq!(ips(&core.reconcile(&web)), vec![ip("198.51.100.200")]);
        let report = core.set_config(&pools(&[("lan", "198.51.100.202-198.51.100.203")]));
        assert_eq!(report.invalidated.len(), 1);
        let shown = service(
            "web",
            "2026-01-01T00:00:00Z",
            &["198.51.100.200"],
            json!({}),
        );
        let decision = core.reconcile(&shown);
        assert_eq!(ips(&decision), vec![ip("198.51.100.202")]);
        assert_eq!(reasons(&decision), vec!["ClearAssignment", "IPAllocated"]);
    }

    #[test]
    fn an_invalid_edit_keeps_the_last_good_pool_serving() {
        let mut core = Core::new(None);
        core.set_config(&pools(&[("lan", "198.51.100.200/30")]));
        let web = service("web", "2026-01-01T00:00:00Z", &[], json!({}));
        core.reconcile(&web);
        let report = core.set_config(&pools(&[("lan", "198.51.100.200/99")]));
        assert_eq!(report.errors.len(), 1);
        assert_eq!(report.new_errors.len(), 1);
        assert!(report.invalidated.is_empty());
        let shown = service(
            "web",
            "2026-01-01T00:00:00Z",
            &["198.51.100.200"],
            json!({}),
        );
        let decision = core.reconcile(&shown);
        assert_eq!(ips(&decision), vec![ip("198.51.100.200")]);
        assert!(decision.events.is_empty());
        // The same error again is not new.
        let again = core.set_config(&pools(&[("lan", "198.51.100.200/99")]));
        assert!(again.new_errors.is_empty());
    }

    #[test]
    fn legacy_annotations_are_reported_once() {
        let mut core = Core::new(None);
        core.set_config(&pools(&[("lan", "198.51.100.200/30")]));
        let web = service(
            "web",
            "2026-01-01T00:00:00Z",
            &[],
            json!({"metadata": {"annotations": {"metallb.universe.tf/address-pool": "lan"}}}),
        );
        let first = core.reconcile(&web);
        assert_eq!(reasons(&first), vec!["deprecatedAnnotation", "IPAllocated"]);
        assert!(
            first.events[0]
                .message
                .contains("metallb.universe.tf/address-pool")
        );
        assert!(core.reconcile(&web).events.is_empty());
    }
}
