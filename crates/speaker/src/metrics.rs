//! The speaker's metrics, under MetalLB's names where MetalLB has one:
//! `metallb_speaker_announced{ip,node,protocol,service}`, the per-address
//! `metallb_layer2_{requests_received,responses_sent,gratuitous_sent}{ip}`, and
//! `metallb_k8s_client_*`; per BGP session (label `peer`, `address:port` as MetalLB's native
//! speaker writes it) `metallb_bgp_session_up`, `metallb_bgp_updates_total`,
//! `metallb_bgp_announced_prefixes_total`, `metallb_bgp_pending_prefixes_total`, the counters
//! MetalLB's FRR mode adds that ferrolb counts (`metallb_bgp_notifications_sent`,
//! `…_notifications_received`, `…_updates_total_received`) and `metallb_bfd_session_up`. ferrolb's own: membership and
//! responder totals.
//!
//! MetalLB's layer-2 counters have no `_total` suffix; an OpenMetrics counter must have one, so
//! they are exposed untyped (`unknown`) to keep the exact series names dashboards query.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct AnnouncedLabels {
    pub ip: String,
    pub node: String,
    pub protocol: String,
    pub service: String,
}

/// Per-address responder counts, read at scrape time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Layer2Counts {
    pub requests_received: u64,
    pub responses_sent: u64,
    pub gratuitous_sent: u64,
}

/// Membership and responder totals, read at scrape time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub members_live: u64,
    pub membership_rejected: u64,
    pub membership_received: u64,
    pub frames_received: u64,
    pub invalid_frames: u64,
    pub send_errors: u64,
}

/// One BGP session's figures, read at scrape time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BgpSessionCounts {
    /// `address:port` of the peer.
    pub peer: String,
    pub session_up: bool,
    pub updates_sent: u64,
    pub updates_received: u64,
    pub notifications_sent: u64,
    pub notifications_received: u64,
    /// Prefixes the peer has been sent and not withdrawn.
    pub announced_prefixes: u64,
    /// Prefixes the session should advertise (equal to the announced ones once it is up to date).
    pub pending_prefixes: u64,
    /// The BFD session's state, for peers with a BFD profile.
    pub bfd_up: Option<bool>,
}

/// A BGP family that MetalLB's FRR mode exposes untyped: name, help, which count.
type BgpFamily = (&'static str, &'static str, fn(&BgpSessionCounts) -> u64);

/// A layer-2 family: name, help, and which count it shows.
type Layer2Family = (&'static str, &'static str, fn(&Layer2Counts) -> u64);

type Layer2Source = dyn Fn() -> Vec<(IpAddr, Layer2Counts)> + Send + Sync;
type TotalsSource = dyn Fn() -> Totals + Send + Sync;
type BgpSource = dyn Fn() -> Vec<BgpSessionCounts> + Send + Sync;

pub struct Metrics {
    pub announced: Family<AnnouncedLabels, Gauge>,
    pub config_loaded: Gauge,
    pub config_stale: Gauge,
    pub updates: Counter,
    pub owned_addresses: Gauge,
    pub membership_enabled: Gauge,
    current: std::sync::Mutex<BTreeSet<AnnouncedLabels>>,
}

impl Metrics {
    pub fn register(
        registry: &mut Registry,
        layer2: Arc<Layer2Source>,
        totals: Arc<TotalsSource>,
        bgp: Arc<BgpSource>,
    ) -> Self {
        let metrics = Self {
            announced: Family::default(),
            config_loaded: Gauge::default(),
            config_stale: Gauge::default(),
            updates: Counter::default(),
            owned_addresses: Gauge::default(),
            membership_enabled: Gauge::default(),
            current: std::sync::Mutex::default(),
        };
        registry.register(
            "metallb_speaker_announced",
            "Services being announced from this node",
            metrics.announced.clone(),
        );
        registry.register(
            "metallb_k8s_client_config_loaded_bool",
            "1 if the metallb.io configuration was loaded at least once",
            metrics.config_loaded.clone(),
        );
        registry.register(
            "metallb_k8s_client_config_stale_bool",
            "1 if an object of the running configuration is an older valid version of an object whose current version is invalid",
            metrics.config_stale.clone(),
        );
        registry.register(
            "metallb_k8s_client_updates",
            "Kubernetes object updates processed",
            metrics.updates.clone(),
        );
        registry.register(
            "ferrolb_speaker_owned_addresses",
            "Addresses this node answers ARP / NDP for",
            metrics.owned_addresses.clone(),
        );
        registry.register(
            "ferrolb_speaker_membership_enabled",
            "1 if live speakers come from the SWIM membership, 0 if from Kubernetes Node state",
            metrics.membership_enabled.clone(),
        );
        registry.register_collector(Box::new(Scraped {
            layer2,
            totals,
            bgp,
        }));
        metrics
    }

    /// Sets `metallb_speaker_announced` to exactly `now` (1 each), removing series that went.
    pub fn set_announced(&self, now: BTreeSet<AnnouncedLabels>) {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        for gone in current.difference(&now) {
            self.announced.remove(gone);
        }
        for labels in now.difference(&current) {
            self.announced.get_or_create(labels).set(1);
        }
        *current = now;
    }
}

struct Scraped {
    layer2: Arc<Layer2Source>,
    totals: Arc<TotalsSource>,
    bgp: Arc<BgpSource>,
}

impl fmt::Debug for Scraped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Scraped")
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IpLabel {
    ip: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerLabel {
    peer: String,
}

fn gauge_value(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl Scraped {
    fn encode_bgp(&self, encoder: &mut DescriptorEncoder) -> Result<(), fmt::Error> {
        let sessions = (self.bgp)();
        let label = |s: &BgpSessionCounts| PeerLabel {
            peer: s.peer.clone(),
        };
        let gauges: [BgpFamily; 3] = [
            (
                "metallb_bgp_session_up",
                "BGP session state (1 is up, 0 is down)",
                |s| u64::from(s.session_up),
            ),
            (
                "metallb_bgp_announced_prefixes_total",
                "Number of prefixes currently being advertised on the BGP session",
                |s| s.announced_prefixes,
            ),
            (
                "metallb_bgp_pending_prefixes_total",
                "Number of prefixes that should be advertised on the BGP session",
                |s| s.pending_prefixes,
            ),
        ];
        for (name, help, read) in gauges {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for session in &sessions {
                family
                    .encode_family(&label(session))?
                    .encode_gauge(&gauge_value(read(session)))?;
            }
        }
        let mut updates = encoder.encode_descriptor(
            "metallb_bgp_updates",
            "Number of BGP UPDATE messages sent",
            None,
            MetricType::Counter,
        )?;
        for session in &sessions {
            updates
                .encode_family(&label(session))?
                .encode_counter::<prometheus_client::encoding::NoLabelSet, _, u64>(
                    &session.updates_sent,
                    None,
                )?;
        }
        let untyped: [BgpFamily; 3] = [
            (
                "metallb_bgp_notifications_sent",
                "Number of BGP NOTIFICATION messages sent",
                |s| s.notifications_sent,
            ),
            (
                "metallb_bgp_notifications_received",
                "Number of BGP NOTIFICATION messages received",
                |s| s.notifications_received,
            ),
            (
                "metallb_bgp_updates_total_received",
                "Number of BGP UPDATE messages received",
                |s| s.updates_received,
            ),
        ];
        for (name, help, read) in untyped {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Unknown)?;
            for session in &sessions {
                family
                    .encode_family(&label(session))?
                    .encode_gauge(&gauge_value(read(session)))?;
            }
        }
        let mut bfd = encoder.encode_descriptor(
            "metallb_bfd_session_up",
            "BFD session state (1 is up, 0 is down)",
            None,
            MetricType::Gauge,
        )?;
        for session in &sessions {
            if let Some(up) = session.bfd_up {
                bfd.encode_family(&label(session))?
                    .encode_gauge(&i64::from(up))?;
            }
        }
        Ok(())
    }
}

impl prometheus_client::collector::Collector for Scraped {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let counts = (self.layer2)();
        let families: [Layer2Family; 3] = [
            (
                "metallb_layer2_requests_received",
                "ARP requests and Neighbor Solicitations received for an owned address",
                |c| c.requests_received,
            ),
            (
                "metallb_layer2_responses_sent",
                "ARP replies and Neighbor Advertisements sent for an owned address",
                |c| c.responses_sent,
            ),
            (
                "metallb_layer2_gratuitous_sent",
                "Gratuitous ARP and unsolicited Neighbor Advertisements sent for an address",
                |c| c.gratuitous_sent,
            ),
        ];
        for (name, help, read) in families {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Unknown)?;
            for (ip, count) in &counts {
                let labels = IpLabel { ip: ip.to_string() };
                let value = i64::try_from(read(count)).unwrap_or(i64::MAX);
                family.encode_family(&labels)?.encode_gauge(&value)?;
            }
        }
        let totals = (self.totals)();
        let gauges: [(&str, &str, u64); 1] = [(
            "ferrolb_speaker_members_live",
            "Speakers the membership layer sees alive, this one included",
            totals.members_live,
        )];
        for (name, help, value) in gauges {
            let gauge = Gauge::<i64>::default();
            gauge.set(i64::try_from(value).unwrap_or(i64::MAX));
            gauge.encode(encoder.encode_descriptor(name, help, None, MetricType::Gauge)?)?;
        }
        let counters: [(&str, &str, u64); 5] = [
            (
                "ferrolb_speaker_membership_rejected",
                "Membership datagrams dropped for a missing or wrong authentication tag",
                totals.membership_rejected,
            ),
            (
                "ferrolb_speaker_membership_received",
                "Authenticated membership datagrams received",
                totals.membership_received,
            ),
            (
                "ferrolb_layer2_frames_received",
                "ARP and Neighbor Solicitation frames the responder read",
                totals.frames_received,
            ),
            (
                "ferrolb_layer2_invalid_frames",
                "Frames the responder could not parse",
                totals.invalid_frames,
            ),
            (
                "ferrolb_layer2_send_errors",
                "Frames the responder failed to send",
                totals.send_errors,
            ),
        ];
        for (name, help, value) in counters {
            let counter = Counter::<u64>::default();
            counter.inc_by(value);
            counter.encode(encoder.encode_descriptor(name, help, None, MetricType::Counter)?)?;
        }
        self.encode_bgp(&mut encoder)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_uses_metallb_names_and_follows_announcements() {
        let mut registry = Registry::default();
        let ip: IpAddr = "198.51.100.200".parse().expect("ip");
        let metrics = Metrics::register(
            &mut registry,
            Arc::new(move || {
                vec![(
                    ip,
                    Layer2Counts {
                        requests_received: 7,
                        responses_sent: 6,
                        gratuitous_sent: 10,
                    },
                )]
            }),
            Arc::new(|| Totals {
                members_live: 3,
                membership_rejected: 2,
                ..Totals::default()
            }),
            Arc::new(|| {
                vec![BgpSessionCounts {
                    peer: "198.51.100.3:179".into(),
                    session_up: true,
                    updates_sent: 4,
                    updates_received: 2,
                    notifications_sent: 1,
                    announced_prefixes: 12,
                    pending_prefixes: 12,
                    bfd_up: Some(true),
                    ..BgpSessionCounts::default()
                }]
            }),
        );
        let labels = |service: &str| AnnouncedLabels {
            ip: "198.51.100.200".into(),
            node: "node-1".into(),
            protocol: "layer2".into(),
            service: service.into(),
        };
        metrics.set_announced(BTreeSet::from([labels("shop/a"), labels("shop/b")]));
        metrics.set_announced(BTreeSet::from([labels("shop/b")]));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encodes");
        for line in [
            "metallb_speaker_announced{ip=\"198.51.100.200\",node=\"node-1\",protocol=\"layer2\",service=\"shop/b\"} 1",
            "metallb_layer2_requests_received{ip=\"198.51.100.200\"} 7",
            "metallb_layer2_responses_sent{ip=\"198.51.100.200\"} 6",
            "metallb_layer2_gratuitous_sent{ip=\"198.51.100.200\"} 10",
            "ferrolb_speaker_members_live 3",
            "ferrolb_speaker_membership_rejected_total 2",
            "metallb_k8s_client_updates_total 0",
            "metallb_bgp_session_up{peer=\"198.51.100.3:179\"} 1",
            "metallb_bgp_updates_total{peer=\"198.51.100.3:179\"} 4",
            "metallb_bgp_announced_prefixes_total{peer=\"198.51.100.3:179\"} 12",
            "metallb_bgp_pending_prefixes_total{peer=\"198.51.100.3:179\"} 12",
            "metallb_bgp_notifications_sent{peer=\"198.51.100.3:179\"} 1",
            "metallb_bgp_updates_total_received{peer=\"198.51.100.3:179\"} 2",
            "metallb_bfd_session_up{peer=\"198.51.100.3:179\"} 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from:\n{text}"
            );
        }
        assert!(
            !text.contains("shop/a"),
            "a withdrawn announcement stays:\n{text}"
        );
    }
}
