//! The datapath's metrics for the SDK's Prometheus registry: packets and
//! bytes by verdict and reason, and flow events, from the latest counter
//! snapshot (refreshed by whoever runs the datapath).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use mcnet_core::metrics::prometheus_client;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::MetricType;

use crate::Counters;

/// Shared state the collector reads at each scrape.
#[derive(Debug, Default)]
pub struct DatapathMetrics {
    counters: Mutex<Counters>,
    flows: AtomicU64,
}

impl DatapathMetrics {
    /// Replaces the counter snapshot (read from the kernel with [`crate::Datapath::counters`]).
    pub fn update(&self, c: Counters) {
        *self.counters.lock().unwrap_or_else(|p| p.into_inner()) = c;
    }

    /// Counts a flow event.
    pub fn flow(&self) {
        self.flows.fetch_add(1, Ordering::Relaxed);
    }
}

/// The verdict a reason belongs to.
fn verdict(reason: &str) -> &'static str {
    if mcnet_ebpf_common::Reason::from_name(reason).is_some_and(mcnet_ebpf_common::Reason::is_drop)
    {
        "dropped"
    } else {
        "forwarded"
    }
}

/// Registers as a prometheus-client collector.
#[derive(Debug)]
pub struct DatapathCollector(pub Arc<DatapathMetrics>);

impl Collector for DatapathCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let c = self
            .0
            .counters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for (name, help, bytes) in [
            (
                "mcnet_datapath_packets",
                "Packets judged by the eBPF datapath, by verdict and reason",
                false,
            ),
            (
                "mcnet_datapath_bytes",
                "Bytes judged by the eBPF datapath, by verdict and reason",
                true,
            ),
        ] {
            let mut e = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (reason, (p, b)) in &c.by_reason {
                let labels = [("verdict", verdict(reason)), ("reason", *reason)];
                ConstCounter::new(if bytes { *b } else { *p }).encode(e.encode_family(&labels)?)?;
            }
        }
        let e = encoder.encode_descriptor(
            "mcnet_datapath_flow_events",
            "Flow events (new flows and drops) read from the ring buffer",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(self.0.flows.load(Ordering::Relaxed)).encode(e)?;
        Ok(())
    }
}
