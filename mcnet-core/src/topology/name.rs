//! The rules names in a topology follow.
//!
//! A name becomes a file name (`mcnet render`), a segment of a logical
//! resource id (`subnet/<network>/<subnet>`), a cloud resource name and the
//! value of an ownership tag, so it is checked before it is any of these.
//! Every object name is a DNS-1123 label; a load-balanced hostname is a
//! DNS-1123 subdomain (see `docs/topology-schema.md`).

/// The longest DNS-1123 label.
pub const MAX_LABEL: usize = 63;
/// The longest DNS-1123 subdomain.
pub const MAX_SUBDOMAIN: usize = 253;

/// The rule of [`label_problem`], for messages.
pub const LABEL_RULE: &str =
    "a name is 1–63 characters of a-z, 0-9 and '-', starting and ending with a letter or digit";

/// Why `s` is not a DNS-1123 label (`None` when it is one): 1–63
/// characters of `a-z`, `0-9` and `-`, starting and ending alphanumeric.
pub fn label_problem(s: &str) -> Option<String> {
    if s.is_empty() {
        return Some("it is empty".into());
    }
    if s.len() > MAX_LABEL {
        return Some(format!(
            "it is {} characters long, more than {MAX_LABEL}",
            s.len()
        ));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Some(format!("it contains {c:?}"));
    }
    if s.starts_with('-') || s.ends_with('-') {
        return Some("it starts or ends with '-'".into());
    }
    None
}

/// Whether `s` is a DNS-1123 label.
pub fn is_label(s: &str) -> bool {
    label_problem(s).is_none()
}

/// Why `s` is not a DNS-1123 subdomain (`None` when it is one): at most
/// 253 characters, labels joined by `.`.
pub fn subdomain_problem(s: &str) -> Option<String> {
    if s.is_empty() {
        return Some("it is empty".into());
    }
    if s.len() > MAX_SUBDOMAIN {
        return Some(format!(
            "it is {} characters long, more than {MAX_SUBDOMAIN}",
            s.len()
        ));
    }
    s.split('.')
        .find_map(|l| label_problem(l).map(|why| format!("label `{l}`: {why}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_dns_1123() {
        for ok in ["a", "0", "aws-vpc-east", "x1", &"a".repeat(63)] {
            assert!(is_label(ok), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "A",
            "a_b",
            "a.b",
            "a/b",
            "..",
            "../../escape",
            "/tmp/x",
            "prod:x",
            "a b",
            "é",
            &"a".repeat(64),
        ] {
            assert!(!is_label(bad), "{bad:?}");
        }
        assert!(subdomain_problem("api.multicloud-k8s.com").is_none());
        assert!(subdomain_problem("api..com").is_some());
        assert!(subdomain_problem("../x").is_some());
    }
}
