//! The log lines both hosts (the Mosquitto plugin and the fallback broker) write for the same
//! events, worded once. None of them carries a token or a secret.

use crate::config::{Config, DEFAULT_PROFILE, KeySource};
use crate::{Rejection, Session, TokenSource, UpstreamError};

/// A token login accepted: how the token was checked, its grants, its remaining life.
pub fn token_accepted(client_id: &str, session: &Session, now: u64) -> String {
    let grants = session.grants();
    let source = match session.source() {
        TokenSource::Introspection => "introspection",
        TokenSource::Jwt => "local JWT check",
    };
    let expiry = session
        .expires_at()
        .map(|exp| format!(", expires in {} s", exp.saturating_sub(now)))
        .unwrap_or_default();
    format!(
        "client {client_id:?} accepted: token verified by {source}, {} write and {} read grant(s){expiry}",
        grants.write_filters().len(),
        grants.read_filters().len(),
    )
}

/// A token rejected: the login goes on to the host's other mechanisms.
pub fn token_unacceptable(client_id: &str, reason: &Rejection) -> String {
    format!(
        "client {client_id:?} presented an unacceptable token ({reason}); leaving the login to other mechanisms"
    )
}

/// A token that could not be checked: the login is refused (fail closed).
pub fn token_unchecked(client_id: &str, problem: &UpstreamError) -> String {
    format!("client {client_id:?} refused: {problem}")
}

/// How tokens are checked, for a host's start-up line: mode, introspection endpoint, key source,
/// token username.
pub fn validation_setup(config: &Config) -> Vec<String> {
    let mut parts = Vec::new();
    for (name, profile) in config.profiles() {
        let mut setup = vec![format!("mode {:?}", profile.mode).to_lowercase()];
        if let Some(introspection) = &profile.introspection {
            setup.push(format!("introspection {}", introspection.url));
        }
        match &profile.keys {
            Some(KeySource::Url(url)) => setup.push(format!("jwks {url}")),
            Some(KeySource::File(path)) => setup.push(format!("jwks file {}", path.display())),
            Some(KeySource::Discovery(issuer)) => {
                setup.push(format!("jwks via discovery at {issuer}"));
            }
            None => {}
        }
        match (name, config.issuers.is_empty()) {
            (_, true) => parts.extend(setup),
            (name, false) => parts.push(format!(
                "issuer profile {} ({}{})",
                name.unwrap_or(DEFAULT_PROFILE),
                profile.issuer.as_deref().map(|iss| format!("iss {iss}, ")).unwrap_or_default(),
                setup.join(", ")
            )),
        }
    }
    parts.push(format!("certificate-bound tokens {}", config.certificate_binding.name()));
    if let Some(marker) = &config.token_username {
        parts.push(format!("token logins use username {marker:?}"));
    }
    parts
}
