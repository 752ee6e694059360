//! The controller's Prometheus metrics, under MetalLB's names so that existing dashboards and
//! alerts keep working.

use std::sync::atomic::AtomicU64;

use ferrolb_ipam::PoolStats;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabel {
    pub pool: String,
}

#[derive(Debug)]
pub struct Metrics {
    pub addresses_in_use: Family<PoolLabel, Gauge<f64, AtomicU64>>,
    pub addresses_total: Family<PoolLabel, Gauge<f64, AtomicU64>>,
    pub config_loaded: Gauge,
    pub config_stale: Gauge,
    pub updates: Counter,
    pub update_errors: Counter,
    pub leader: Gauge,
    pub pending_services: Gauge,
    pub service_writes: Counter,
}

impl Metrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            addresses_in_use: Family::default(),
            addresses_total: Family::default(),
            config_loaded: Gauge::default(),
            config_stale: Gauge::default(),
            updates: Counter::default(),
            update_errors: Counter::default(),
            leader: Gauge::default(),
            pending_services: Gauge::default(),
            service_writes: Counter::default(),
        };
        registry.register(
            "metallb_allocator_addresses_in_use_total",
            "Number of IP addresses in use, per pool",
            metrics.addresses_in_use.clone(),
        );
        registry.register(
            "metallb_allocator_addresses_total",
            "Number of usable IP addresses, per pool",
            metrics.addresses_total.clone(),
        );
        registry.register(
            "metallb_k8s_client_config_loaded_bool",
            "1 if the configuration was loaded at least once",
            metrics.config_loaded.clone(),
        );
        registry.register(
            "metallb_k8s_client_config_stale_bool",
            "1 if an object of the running configuration is served at an older version because its latest one is invalid",
            metrics.config_stale.clone(),
        );
        // The `_total` suffix is added by the encoder for counters.
        registry.register(
            "metallb_k8s_client_updates",
            "Number of Kubernetes object updates processed",
            metrics.updates.clone(),
        );
        registry.register(
            "metallb_k8s_client_update_errors",
            "Number of Kubernetes writes that failed",
            metrics.update_errors.clone(),
        );
        registry.register(
            "ferrolb_controller_leader_bool",
            "1 while this controller holds the leader Lease",
            metrics.leader.clone(),
        );
        registry.register(
            "ferrolb_controller_pending_services",
            "LoadBalancer Services waiting for an address",
            metrics.pending_services.clone(),
        );
        registry.register(
            "ferrolb_controller_service_status_writes",
            "Service status patches the apiserver accepted",
            metrics.service_writes.clone(),
        );
        metrics
    }

    pub fn set_pools(&self, stats: &[PoolStats]) {
        self.addresses_in_use.clear();
        self.addresses_total.clear();
        for pool in stats {
            let label = PoolLabel {
                pool: pool.pool.to_string(),
            };
            let in_use = pool.ipv4.in_use + pool.ipv6.in_use;
            let total = pool.ipv4.total.saturating_add(pool.ipv6.total);
            self.addresses_in_use
                .get_or_create(&label)
                .set(in_use as f64);
            self.addresses_total.get_or_create(&label).set(total as f64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrolb_ipam::{
        Allocator, FamilyPolicy, IpFamily, Pool, Pools, ServiceKey, ServiceRequest,
    };

    #[test]
    fn pool_gauges_carry_metallb_names_and_values() {
        let pools = Pools::new(vec![Pool::new(
            "blue",
            vec!["198.51.100.200-198.51.100.203".parse().expect("range")],
        )])
        .expect("pools");
        let mut allocator = Allocator::new(pools);
        allocator
            .assign(&ServiceRequest::new(
                ServiceKey::new("a", "b"),
                FamilyPolicy::SingleStack(IpFamily::V4),
            ))
            .expect("an address");
        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry);
        metrics.set_pools(&allocator.stats());
        metrics.updates.inc();
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        assert!(
            text.contains("metallb_allocator_addresses_in_use_total{pool=\"blue\"} 1.0"),
            "{text}"
        );
        assert!(
            text.contains("metallb_allocator_addresses_total{pool=\"blue\"} 4.0"),
            "{text}"
        );
        assert!(
            text.contains("metallb_k8s_client_updates_total 1"),
            "{text}"
        );
    }
}
