//! L7 rules on a port: HTTP, Kafka and DNS, checked and compiled.

use super::*;

impl Loader {
    /// A port rule's L7 rules: HTTP, Kafka or DNS (one parser per port
    /// rule, as Cilium requires). A generic `l7proto` is not evaluable.
    pub(super) fn l7_rules(
        &mut self,
        object: &str,
        base: &str,
        dir: Direction,
        rules: &raw::L7Rules,
        not_evaluable: &mut Option<String>,
    ) -> Option<Arc<L7Rules>> {
        let http = rules.http.as_ref().filter(|h| !h.is_empty());
        let kafka = rules.kafka.as_ref().filter(|k| !k.is_empty());
        let dns = rules.dns.as_ref().filter(|d| !d.is_empty());
        let generic = rules.l7proto.is_some() || rules.l7.is_some();
        let kinds = [http.is_some(), kafka.is_some(), dns.is_some(), generic]
            .iter()
            .filter(|x| **x)
            .count();
        if kinds > 1 {
            self.err(
                Code::PolicyL7Mixed,
                base.to_string(),
                format!("{object}: a port rule may carry the rules of one L7 protocol only (http, kafka, dns or l7proto)"),
            );
            return None;
        }
        if generic {
            self.not_enforced(
                object,
                &format!("{base}.l7proto"),
                "l7proto",
                "generic L7 parsers run in Cilium's Envoy proxy; the rule never allows",
            );
            not_evaluable.get_or_insert_with(|| "l7proto".to_string());
            return None;
        }
        if let Some(h) = http {
            return self
                .http_rules(object, &format!("{base}.http"), h, not_evaluable)
                .map(|v| Arc::new(L7Rules::Http(v)));
        }
        if let Some(k) = kafka {
            return self
                .kafka_rules(object, &format!("{base}.kafka"), k)
                .map(|v| Arc::new(L7Rules::Kafka(v)));
        }
        if let Some(d) = dns {
            if dir == Direction::Ingress {
                self.err(
                    Code::PolicyL7Dns,
                    format!("{base}.dns"),
                    format!("{object}: DNS rules apply to egress only"),
                );
                return None;
            }
            return self
                .dns_rules(object, &format!("{base}.dns"), d)
                .map(|v| Arc::new(L7Rules::Dns(v)));
        }
        None
    }

    pub(super) fn kafka_rules(
        &mut self,
        object: &str,
        path: &str,
        rules: &[raw::KafkaRule],
    ) -> Option<Vec<KafkaMatch>> {
        let before = self.errors.len();
        let mut out = Vec::new();
        for (i, k) in rules.iter().enumerate() {
            let at = format!("{path}[{i}]");
            let nonempty = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
            let (role, api_key) = (nonempty(&k.role), nonempty(&k.api_key));
            let api_keys = match (&role, &api_key) {
                (Some(_), Some(_)) => {
                    self.err(
                        Code::PolicyKafka,
                        at.clone(),
                        format!("{object}: role and apiKey are mutually exclusive"),
                    );
                    continue;
                }
                (Some(r), None) => match crate::policy::kafka::role_keys(r) {
                    Some(keys) => keys.to_vec(),
                    None => {
                        self.err(
                            Code::PolicyKafka,
                            format!("{at}.role"),
                            format!("{object}: Kafka role `{r}` is not produce or consume"),
                        );
                        continue;
                    }
                },
                (None, Some(a)) => match crate::policy::kafka::api_key(a) {
                    Some(n) => vec![n],
                    None => {
                        self.err(
                            Code::PolicyKafka,
                            format!("{at}.apiKey"),
                            format!("{object}: `{a}` is not a Kafka API key name"),
                        );
                        continue;
                    }
                },
                (None, None) => Vec::new(),
            };
            let api_version = match nonempty(&k.api_version) {
                None => None,
                Some(v) => match v.parse::<u16>() {
                    Ok(n) if n <= i16::MAX as u16 => Some(n),
                    _ => {
                        self.err(
                            Code::PolicyKafka,
                            format!("{at}.apiVersion"),
                            format!("{object}: apiVersion `{v}` is not a number 0–32767"),
                        );
                        continue;
                    }
                },
            };
            let topic = nonempty(&k.topic);
            if let Some(t) = &topic {
                if !crate::policy::kafka::valid_topic(t) {
                    self.err(
                        Code::PolicyKafka,
                        format!("{at}.topic"),
                        format!("{object}: topic `{t}` is not a valid Kafka topic (1–255 of a-z A-Z 0-9 . _ -)"),
                    );
                    continue;
                }
            }
            let client_id = nonempty(&k.client_id);
            let mut text = Vec::new();
            if let Some(r) = &role {
                text.push(format!("role={r}"));
            }
            if let Some(a) = &api_key {
                text.push(format!("apiKey={a}"));
            }
            if let Some(v) = api_version {
                text.push(format!("apiVersion={v}"));
            }
            if let Some(c) = &client_id {
                text.push(format!("clientID={c}"));
            }
            if let Some(t) = &topic {
                text.push(format!("topic={t}"));
            }
            out.push(KafkaMatch {
                api_keys,
                api_version,
                client_id,
                topic,
                text: if text.is_empty() {
                    "any request".into()
                } else {
                    text.join(" ")
                },
            });
        }
        (self.errors.len() == before).then_some(out)
    }

    pub(super) fn dns_rules(
        &mut self,
        object: &str,
        path: &str,
        rules: &[raw::DnsRule],
    ) -> Option<Vec<DnsMatch>> {
        let before = self.errors.len();
        let mut out = Vec::new();
        for (i, d) in rules.iter().enumerate() {
            let at = format!("{path}[{i}]");
            let compiled = match (&d.match_name, &d.match_pattern) {
                (Some(n), None) => crate::policy::dns::name_regex(n)
                    .map(|r| (r, format!("matchName={n}")))
                    .map_err(|e| e.to_string()),
                (None, Some(p)) => crate::policy::dns::pattern_regex(p)
                    .map(|r| (r, format!("matchPattern={p}")))
                    .map_err(|e| e.to_string()),
                (Some(_), Some(_)) => Err("give matchName or matchPattern, not both".to_string()),
                (None, None) => Err("a DNS rule needs matchName or matchPattern".to_string()),
            };
            match compiled {
                Ok((regex, text)) => out.push(DnsMatch { regex, text }),
                Err(e) => self.err(Code::PolicyDns, at, format!("{object}: {e}")),
            }
        }
        (self.errors.len() == before).then_some(out)
    }

    pub(super) fn http_rules(
        &mut self,
        object: &str,
        path: &str,
        rules: &[raw::HttpRule],
        not_evaluable: &mut Option<String>,
    ) -> Option<Vec<HttpMatch>> {
        let mut out = Vec::new();
        let before = self.errors.len();
        for (i, h) in rules.iter().enumerate() {
            let at = format!("{path}[{i}]");
            let mut re = |field: &str, v: &Option<String>| -> Option<Regex> {
                let v = v.as_ref()?;
                match Regex::new(&format!("^(?:{v})$")) {
                    Ok(r) => Some(r),
                    Err(e) => {
                        let first = e
                            .to_string()
                            .lines()
                            .last()
                            .unwrap_or("")
                            .trim()
                            .to_string();
                        self.errors.push(Diagnostic::new(
                            Code::PolicyRegex,
                            format!("{at}.{field}"),
                            format!("{object}: `{v}` is not a valid regex ({first})"),
                        ));
                        None
                    }
                }
            };
            let method = re("method", &h.method);
            let path_re = re("path", &h.path);
            let host = re("host", &h.host);
            let mut headers = Vec::new();
            for hd in h.headers.iter().flatten() {
                let hd = hd.trim();
                let (name, value) = match hd.split_once(' ') {
                    Some((n, v)) => (
                        n.trim_end_matches(':').to_string(),
                        Some(v.trim().to_string()),
                    ),
                    None => (hd.trim_end_matches(':').to_string(), None),
                };
                headers.push(HeaderReq {
                    name,
                    value,
                    lenient: false,
                });
            }
            for (j, hm) in h.header_matches.iter().flatten().enumerate() {
                if hm.secret.is_some() {
                    self.not_enforced(
                        object,
                        &format!("{at}.headerMatches[{j}].secret"),
                        "secret",
                        "a header value held in a Kubernetes secret is cluster state; the rule never allows",
                    );
                    not_evaluable.get_or_insert_with(|| "headerMatches.secret".to_string());
                }
                headers.push(HeaderReq {
                    name: hm.name.clone(),
                    value: hm.value.clone(),
                    lenient: hm.mismatch.is_some(),
                });
            }
            let mut text = Vec::new();
            if let Some(m) = &h.method {
                text.push(format!("method={m}"));
            }
            if let Some(p) = &h.path {
                text.push(format!("path={p}"));
            }
            if let Some(x) = &h.host {
                text.push(format!("host={x}"));
            }
            for hd in &headers {
                text.push(match &hd.value {
                    Some(v) => format!("header {}={v}", hd.name),
                    None => format!("header {}", hd.name),
                });
            }
            out.push(HttpMatch {
                method,
                path: path_re,
                host,
                headers,
                text: if text.is_empty() {
                    "any request".into()
                } else {
                    text.join(" ")
                },
            });
        }
        (self.errors.len() == before).then_some(out)
    }
}
