//! One Prometheus registry across the SDK: every crate registers its
//! metrics (or a collector) in a [`Registry`] of the re-exported
//! prometheus-client, and the long-running commands serve [`encode`]'s text.

pub use prometheus_client;
pub use prometheus_client::registry::Registry;

/// The registry's metrics in the Prometheus text format (0.0.4).
pub fn encode(registry: &Registry) -> String {
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, registry) {
        Ok(()) => openmetrics_to_prometheus(&text),
        Err(_) => String::new(),
    }
}

/// Turns an OpenMetrics text exposition (what prometheus-client encodes)
/// into the Prometheus text format (0.0.4) that scrapers and `promtool check
/// metrics` expect: counter families are named with their `_total` suffix,
/// and the `# EOF` and `# UNIT` lines go.
pub fn openmetrics_to_prometheus(text: &str) -> String {
    let mut counters = std::collections::HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            if let Some(name) = rest.strip_suffix(" counter") {
                counters.insert(name.to_string());
            }
        }
    }
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let rewritten = ["# HELP ", "# TYPE "].iter().find_map(|p| {
            let rest = line.strip_prefix(p)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{p}{name}_total {tail}"))
        });
        out.push_str(rewritten.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_get_their_total_suffix() {
        let om = "# HELP q Queries.\n# TYPE q counter\nq_total{a=\"b\"} 3\n# HELP g Up.\n# TYPE g gauge\ng 1\n# EOF\n";
        assert_eq!(
            openmetrics_to_prometheus(om),
            "# HELP q_total Queries.\n# TYPE q_total counter\nq_total{a=\"b\"} 3\n# HELP g Up.\n# TYPE g gauge\ng 1\n"
        );
    }
}
