//! What the REST providers (Megaport, Azure, GCP) share: an HTTP client, a
//! cached bearer token, one JSON call with its error classified from the
//! HTTP status, and the API-call count.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mcnet_core::reconcile::{ErrorKind, ProviderError, Scope};
use serde_json::Value;

/// An environment variable, `None` when unset or empty.
pub(crate) fn env(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|v| !v.is_empty())
}

/// A required environment variable: an auth error naming it, with `hint`.
pub(crate) fn env_required(scope: Scope, key: &str, hint: &str) -> Result<String, ProviderError> {
    env(key).ok_or_else(|| {
        ProviderError::new(
            scope,
            ErrorKind::Auth,
            "configure",
            format!("{key} is not set{hint}"),
        )
    })
}

/// How a failed HTTP status is retried or reported.
pub(crate) fn status_kind(status: u16) -> ErrorKind {
    match status {
        401 | 403 => ErrorKind::Auth,
        404 => ErrorKind::NotFound,
        409 | 412 => ErrorKind::Conflict,
        429 => ErrorKind::Throttled,
        400 | 422 => ErrorKind::Invalid,
        _ => ErrorKind::Transient,
    }
}

/// A JSON client for one provider.
pub(crate) struct Rest {
    scope: Scope,
    pub(crate) http: reqwest::Client,
    token: tokio::sync::Mutex<Option<(String, Instant)>>,
    calls: AtomicU64,
}

impl Rest {
    pub(crate) fn new(scope: Scope) -> Result<Rest, ProviderError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| {
                ProviderError::new(
                    scope,
                    ErrorKind::Invalid,
                    "configure",
                    format!("HTTP client: {e}"),
                )
            })?;
        Ok(Rest {
            scope,
            http,
            token: tokio::sync::Mutex::new(None),
            calls: AtomicU64::new(0),
        })
    }

    /// Calls made so far, token requests included.
    pub(crate) fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Counts one call made outside [`Rest::send`].
    pub(crate) fn count(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }

    /// The cached bearer token, or a new one from `fetch` (which returns the
    /// token and its lifetime in seconds). A token is reused until a minute
    /// before it expires. (GCP alone uses a static token.)
    #[cfg_attr(not(any(feature = "azure", feature = "megaport")), allow(dead_code))]
    pub(crate) async fn bearer<F, Fut>(&self, fetch: F) -> Result<String, ProviderError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(String, u64), ProviderError>>,
    {
        let mut t = self.token.lock().await;
        if let Some((tok, until)) = t.as_ref() {
            if Instant::now() < *until {
                return Ok(tok.clone());
            }
        }
        self.count();
        let (tok, ttl) = fetch().await?;
        *t = Some((tok.clone(), token_expiry(Instant::now(), ttl)));
        Ok(tok)
    }

    /// An OAuth2 token request with a form body; returns the token and its
    /// lifetime. Only the status is reported on failure, never the form.
    #[cfg_attr(not(feature = "azure"), allow(dead_code))]
    pub(crate) async fn oauth2_form(
        &self,
        url: &str,
        form: &[(&str, &str)],
    ) -> Result<(String, u64), ProviderError> {
        let r = self.http.post(url).form(form).send().await.map_err(|e| {
            ProviderError::new(self.scope, ErrorKind::Transient, "token", "token request")
                .with_source(e)
        })?;
        let status = r.status();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let kind = match status.as_u16() {
                429 => ErrorKind::Throttled,
                s if s >= 500 => ErrorKind::Transient,
                _ => ErrorKind::Auth,
            };
            return Err(ProviderError::new(
                self.scope,
                kind,
                "token",
                format!("the token endpoint {url} refused the credentials ({status})"),
            ));
        }
        let tok = body["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if tok.is_empty() {
            return Err(ProviderError::new(
                self.scope,
                ErrorKind::Auth,
                "token",
                format!("the token endpoint {url} returned no access_token"),
            ));
        }
        // Azure AD v1 endpoints send `expires_in` as a string.
        let ttl = match &body["expires_in"] {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        };
        Ok((tok, ttl.unwrap_or(3600)))
    }

    /// Drops the cached token after the API refused it.
    pub(crate) async fn forget_token(&self) {
        *self.token.lock().await = None;
    }

    /// Sends `req` with `token`, counting the call. A non-2xx status becomes
    /// an error whose kind follows [`status_kind`] and whose message comes
    /// from `message_of` (the cloud's error body → code and message). Returns the body, `Null`
    /// when empty.
    pub(crate) async fn send(
        &self,
        req: reqwest::RequestBuilder,
        token: &str,
        op: &str,
        what: &str,
        message_of: fn(&Value) -> (Option<String>, String),
    ) -> Result<Value, ProviderError> {
        self.count();
        let r = req.bearer_auth(token).send().await.map_err(|e| {
            let kind = if e.is_timeout() || e.is_connect() || e.is_request() {
                ErrorKind::Transient
            } else {
                ErrorKind::Invalid
            };
            ProviderError::new(self.scope, kind, op, what).with_source(e)
        })?;
        let status = r.status().as_u16();
        let text = r.text().await.unwrap_or_default();
        let body: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if (200..300).contains(&status) {
            return Ok(body);
        }
        let kind = status_kind(status);
        if kind == ErrorKind::Auth {
            self.forget_token().await;
        }
        let (code, msg) = message_of(&body);
        let mut e = ProviderError::new(self.scope, kind, op, format!("{what}: {msg} ({status})"));
        e.code = Some(code.unwrap_or_else(|| status.to_string()));
        Err(e)
    }
}

/// When a token of `ttl` seconds, received at `now`, stops being reused:
/// a minute before it expires, and never more than a day ahead (a token
/// endpoint's lifetime is data: a huge one must not overflow `Instant`).
fn token_expiry(now: Instant, ttl: u64) -> Instant {
    const MAX_REUSE: Duration = Duration::from_secs(24 * 3600);
    let reuse = Duration::from_secs(ttl.saturating_sub(60)).min(MAX_REUSE);
    now.checked_add(reuse).unwrap_or(now)
}

#[cfg(test)]
mod token_tests {
    use super::*;

    #[test]
    fn token_lifetimes_are_capped_and_never_overflow() {
        let now = Instant::now();
        assert_eq!(token_expiry(now, 3600), now + Duration::from_secs(3540));
        assert_eq!(token_expiry(now, 30), now, "a short token is not reused");
        assert_eq!(
            token_expiry(now, u64::MAX),
            now + Duration::from_secs(86400)
        );
    }
}
