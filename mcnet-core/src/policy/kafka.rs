//! Kafka L7 rules as Cilium reads them: API keys by name, the `produce` and
//! `consume` roles, topic validation, and how a request matches a rule.

use serde::{Deserialize, Serialize};

use super::model::KafkaMatch;

/// Kafka API keys by the lower-case names Cilium accepts in `apiKey`.
pub const API_KEYS: &[(&str, u16)] = &[
    ("produce", 0),
    ("fetch", 1),
    ("offsets", 2),
    ("metadata", 3),
    ("leaderandisr", 4),
    ("stopreplica", 5),
    ("updatemetadata", 6),
    ("controlledshutdown", 7),
    ("offsetcommit", 8),
    ("offsetfetch", 9),
    ("findcoordinator", 10),
    ("joingroup", 11),
    ("heartbeat", 12),
    ("leavegroup", 13),
    ("syncgroup", 14),
    ("describegroups", 15),
    ("listgroups", 16),
    ("saslhandshake", 17),
    ("apiversions", 18),
    ("createtopics", 19),
    ("deletetopics", 20),
    ("deleterecords", 21),
    ("initproducerid", 22),
    ("offsetforleaderepoch", 23),
    ("addpartitionstotxn", 24),
    ("addoffsetstotxn", 25),
    ("endtxn", 26),
    ("writetxnmarkers", 27),
    ("txnoffsetcommit", 28),
    ("describeacls", 29),
    ("createacls", 30),
    ("deleteacls", 31),
    ("describeconfigs", 32),
    ("alterconfigs", 33),
];

/// The API keys of the `produce` role: produce, metadata, apiversions.
pub const PRODUCE_KEYS: &[u16] = &[0, 3, 18];

/// The API keys of the `consume` role: fetch, offsets, metadata,
/// offsetcommit, offsetfetch, findcoordinator, joingroup, heartbeat,
/// leavegroup, syncgroup, apiversions.
pub const CONSUME_KEYS: &[u16] = &[1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 18];

/// The API keys whose requests name topics; a rule's topic applies to
/// these only (requests of other keys ignore it), as Cilium's Kafka
/// filter reads them.
pub const TOPIC_KEYS: &[u16] = &[
    0, 1, 2, 3, 4, 5, 6, 8, 9, 19, 20, 21, 23, 24, 27, 28, 34, 35, 37,
];

/// The longest topic name Kafka accepts.
pub const MAX_TOPIC_LEN: usize = 255;

/// An API key by name (case-insensitive), or a number.
pub fn api_key(name: &str) -> Option<u16> {
    let lower = name.to_ascii_lowercase();
    API_KEYS.iter().find(|(n, _)| *n == lower).map(|&(_, k)| k)
}

/// The name of an API key.
pub fn api_key_name(key: u16) -> Option<&'static str> {
    API_KEYS.iter().find(|(_, k)| *k == key).map(|&(n, _)| n)
}

/// The API keys of a role (case-insensitive).
pub fn role_keys(role: &str) -> Option<&'static [u16]> {
    match role.to_ascii_lowercase().as_str() {
        "produce" => Some(PRODUCE_KEYS),
        "consume" => Some(CONSUME_KEYS),
        _ => None,
    }
}

/// Whether a topic name is valid: 1–255 characters of `a-z A-Z 0-9 . _ -`.
pub fn valid_topic(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= MAX_TOPIC_LEN
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Why a Kafka request in a query cannot be judged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KafkaRequestError {
    /// Both `role` and `apiKey` were given.
    #[error("a Kafka request gives role or apiKey, not both")]
    RoleAndApiKey,
    /// Neither was given.
    #[error("a Kafka request needs role or apiKey")]
    NoApiKey,
    /// An unknown role.
    #[error("Kafka role `{0}` is not produce or consume")]
    UnknownRole(String),
    /// An unknown API key name.
    #[error("`{0}` is not a Kafka API key name")]
    UnknownApiKey(String),
}

/// One Kafka request, for L7 rules. Give `apiKey` for one request, or
/// `role` to ask whether every request of that role is allowed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KafkaRequest {
    /// `produce` or `consume`: every API key of the role must be allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// The API key, by name (`produce`, `fetch`) or number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<KafkaApiKey>,
    /// The API version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<u16>,
    /// The client id.
    #[serde(default, rename = "clientID", skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The topic the request names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
}

/// An API key in a query: a name or a number.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum KafkaApiKey {
    /// A number.
    Number(u16),
    /// A name.
    Name(String),
}

impl KafkaRequest {
    /// The API keys the request stands for: its own, or its role's.
    pub fn api_keys(&self) -> Result<Vec<u16>, KafkaRequestError> {
        match (&self.role, &self.api_key) {
            (Some(_), Some(_)) => Err(KafkaRequestError::RoleAndApiKey),
            (Some(r), None) => role_keys(r)
                .map(<[u16]>::to_vec)
                .ok_or_else(|| KafkaRequestError::UnknownRole(r.clone())),
            (None, Some(KafkaApiKey::Number(n))) => Ok(vec![*n]),
            (None, Some(KafkaApiKey::Name(n))) => api_key(n)
                .map(|k| vec![k])
                .ok_or_else(|| KafkaRequestError::UnknownApiKey(n.clone())),
            (None, None) => Err(KafkaRequestError::NoApiKey),
        }
    }

    /// A short description for explanations.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        match (&self.role, &self.api_key) {
            (Some(r), _) => parts.push(format!("role {r}")),
            (None, Some(KafkaApiKey::Name(n))) => parts.push(n.clone()),
            (None, Some(KafkaApiKey::Number(n))) => {
                parts.push(api_key_name(*n).map_or_else(|| format!("apiKey {n}"), str::to_string))
            }
            (None, None) => {}
        }
        if let Some(t) = &self.topic {
            parts.push(format!("topic {t}"));
        }
        if let Some(c) = &self.client_id {
            parts.push(format!("client {c}"));
        }
        parts.join(" ")
    }
}

/// Whether a rule matches one request of API key `key`: every field the
/// rule gives must equal the request's. A rule's topic applies to keys
/// that carry topics ([`TOPIC_KEYS`]): such a request must name that topic
/// (one that names none is refused); other keys ignore it.
pub fn matches(rule: &KafkaMatch, key: u16, req: &KafkaRequest) -> bool {
    let topic_ok = match &rule.topic {
        None => true,
        Some(t) if TOPIC_KEYS.contains(&key) => req.topic.as_ref() == Some(t),
        Some(_) => true,
    };
    (rule.api_keys.is_empty() || rule.api_keys.contains(&key))
        && rule.api_version.is_none_or(|v| req.api_version == Some(v))
        && rule
            .client_id
            .as_ref()
            .is_none_or(|c| req.client_id.as_ref() == Some(c))
        && topic_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(keys: &[u16], topic: Option<&str>) -> KafkaMatch {
        KafkaMatch {
            api_keys: keys.to_vec(),
            api_version: None,
            client_id: None,
            topic: topic.map(str::to_string),
            text: String::new(),
        }
    }

    #[test]
    fn roles_expand_to_their_keys() {
        assert_eq!(role_keys("Produce"), Some(PRODUCE_KEYS));
        assert!(role_keys("consume").unwrap().contains(&1));
        assert_eq!(role_keys("admin"), None);
        assert_eq!(api_key("Fetch"), Some(1));
        assert_eq!(api_key("nope"), None);
    }

    #[test]
    fn topics_are_checked() {
        assert!(valid_topic("orders.v1_x-y"));
        assert!(!valid_topic(""));
        assert!(!valid_topic("a/b"));
        assert!(!valid_topic(&"a".repeat(256)));
    }

    #[test]
    fn every_given_field_must_match() {
        let req = KafkaRequest {
            topic: Some("orders".into()),
            client_id: Some("svc".into()),
            ..KafkaRequest::default()
        };
        assert!(matches(&rule(&[0], Some("orders")), 0, &req));
        assert!(!matches(&rule(&[0], Some("payments")), 0, &req));
        assert!(!matches(&rule(&[1], Some("orders")), 0, &req));
        assert!(matches(&rule(&[], None), 7, &req));
        let no_topic = KafkaRequest::default();
        assert!(!matches(&rule(&[0], Some("orders")), 0, &no_topic));
        // apiversions (18) names no topic: a topic rule does not restrict it.
        assert!(matches(&rule(&[18], Some("orders")), 18, &no_topic));
    }
}
