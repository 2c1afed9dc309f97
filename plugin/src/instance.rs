//! One plugin instance's behaviour, free of FFI: what to answer to a login, an ACL check, a
//! DISCONNECT, a TICK and a reload. The C entry points (`v5`, `v4`) only translate to and from
//! these calls, so everything here is tested behind a fake host.

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::time::{Duration, Instant};

use oauth_core::{
    Access, AccessToken, AuthError, Authenticator, Config, ConfigError, Metrics, TokenSource,
    now_epoch,
};

use crate::clients::{ClientEntry, ClientTable};

/// Purging offline entries scans the table; once a second is plenty.
const PURGE_INTERVAL: Duration = Duration::from_secs(1);

/// What the broker offers the plugin besides the callbacks.
pub trait Host {
    /// Publishes a retained QoS 0 message from the broker itself (for `$SYS` counters).
    fn publish_retained(&self, topic: &str, payload: &[u8]);
}

/// Answer to a login attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthDecision {
    /// Valid token: the client is in.
    Accept,
    /// Not ours to decide (no token login, or an invalid token): other mechanisms may accept.
    Defer,
    /// The token could not be checked: refuse, fail closed.
    Deny,
}

/// Answer to an ACL check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AclDecision {
    /// The client's grants allow it.
    Allow,
    /// The client is ours and its grants (or their expiry) forbid it.
    Deny,
    /// Not a client we authenticated.
    Defer,
}

/// A client as the broker describes it at login.
#[derive(Debug, Clone, Copy)]
pub struct Login<'a> {
    /// Address of the broker's client object.
    pub address: usize,
    /// MQTT client id.
    pub client_id: Option<&'a str>,
    /// MQTT username.
    pub username: Option<&'a str>,
    /// MQTT password (the token); binary, up to the first NUL.
    pub password: Option<&'a [u8]>,
    /// The session survives disconnects (clean session / clean start false).
    pub durable: bool,
}

/// Result of a login: the decision, and a username for the broker to adopt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginOutcome {
    /// What to answer.
    pub decision: AuthDecision,
    /// From `oauth_username_claim`, to be set with `mosquitto_set_username`.
    pub username: Option<String>,
}

impl LoginOutcome {
    fn only(decision: AuthDecision) -> Self {
        Self { decision, username: None }
    }
}

/// A configured plugin instance (one per `plugin`/`auth_plugin` line, so one per listener with
/// `per_listener_settings true`). Used from Mosquitto's main thread only.
pub struct Instance<H: Host> {
    host: H,
    auth: Arc<Authenticator>,
    clients: RefCell<ClientTable>,
    last_purge: Cell<Instant>,
    last_stats: Cell<Option<Instant>>,
    stats_topic_prefix: String,
}

impl<H: Host> std::fmt::Debug for Instance<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("auth", &self.auth)
            .field("clients", &self.clients.borrow().len())
            .finish()
    }
}

impl<H: Host> Instance<H> {
    /// Builds an instance from the broker's options. `ordinal` numbers instances in one broker
    /// (1 for the first) so their `$SYS` counters do not overwrite each other.
    pub fn new(host: H, config: Config, ordinal: usize) -> Result<Self, ConfigError> {
        let auth = Arc::new(Authenticator::new(config)?);
        let stats_topic_prefix = match ordinal {
            0 | 1 => "$SYS/broker/oauth".to_owned(),
            n => format!("$SYS/broker/oauth/{n}"),
        };
        Ok(Self {
            host,
            auth,
            clients: RefCell::new(ClientTable::default()),
            last_purge: Cell::new(Instant::now()),
            last_stats: Cell::new(None),
            stats_topic_prefix,
        })
    }

    /// The authenticator (configuration, cache, counters).
    pub fn authenticator(&self) -> &Arc<Authenticator> {
        &self.auth
    }

    fn metrics(&self) -> &Metrics {
        self.auth.metrics()
    }

    /// A one-line description of the configuration for the startup log (no secrets).
    pub fn describe(&self) -> String {
        let config = self.auth.config();
        let mut parts = vec![format!("mode {:?}", config.mode).to_lowercase()];
        if let Some(introspection) = &config.introspection {
            parts.push(format!("introspection {}", introspection.url));
        }
        match &config.keys {
            Some(oauth_core::config::KeySource::Url(url)) => parts.push(format!("jwks {url}")),
            Some(oauth_core::config::KeySource::File(path)) => {
                parts.push(format!("jwks file {}", path.display()))
            }
            Some(oauth_core::config::KeySource::Discovery(issuer)) => {
                parts.push(format!("jwks via discovery at {issuer}"))
            }
            None => {}
        }
        if let Some(marker) = &config.token_username {
            parts.push(format!("token logins use username {marker:?}"));
        }
        parts.join(", ")
    }

    /// Decides a username/password login.
    pub fn login(&self, login: &Login<'_>) -> LoginOutcome {
        self.clients.borrow_mut().reset(login.address);
        let config = self.auth.config();
        if !config.is_token_login(login.username) {
            Metrics::bump(&self.metrics().connects_deferred);
            return LoginOutcome::only(AuthDecision::Defer);
        }
        let Some(client_id) = login.client_id else {
            Metrics::bump(&self.metrics().connects_deferred);
            return LoginOutcome::only(AuthDecision::Defer);
        };
        let Some(password) = login.password.filter(|p| !p.is_empty()) else {
            Metrics::bump(&self.metrics().connects_deferred);
            log::debug!("client {client_id:?}: no password, leaving the login to other mechanisms");
            return LoginOutcome::only(AuthDecision::Defer);
        };
        let token = AccessToken::new(password);
        match self.auth.login(&token, client_id, login.username) {
            Ok(session) => {
                Metrics::bump(&self.metrics().connects_accepted);
                let grants = session.grants();
                log::info!(
                    "client {client_id:?} accepted: token verified by {}, {} write and {} read grant(s){}",
                    match session.source() {
                        TokenSource::Introspection => "introspection",
                        TokenSource::Jwt => "local JWT check",
                    },
                    grants.write_filters().len(),
                    grants.read_filters().len(),
                    session
                        .expires_at()
                        .map(|exp| format!(", expires in {} s", exp.saturating_sub(now_epoch())))
                        .unwrap_or_default()
                );
                let username = session.username().map(str::to_owned);
                let entry = ClientEntry::new(client_id, session, login.durable);
                self.clients.borrow_mut().insert(login.address, entry, Instant::now());
                LoginOutcome { decision: AuthDecision::Accept, username }
            }
            Err(AuthError::Rejected(reason)) => {
                Metrics::bump(&self.metrics().connects_denied);
                log::info!(
                    "client {client_id:?} presented an unacceptable token ({reason}); leaving the login to other mechanisms"
                );
                LoginOutcome::only(AuthDecision::Defer)
            }
            Err(AuthError::Unavailable(problem)) => {
                Metrics::bump(&self.metrics().connects_denied);
                log::warn!("client {client_id:?} refused: {problem}");
                LoginOutcome::only(AuthDecision::Deny)
            }
        }
    }

    /// Decides an ACL check for the client at `address`.
    #[inline]
    pub fn acl_check(
        &self,
        address: usize,
        client_id: Option<&str>,
        access: Access,
        topic: &str,
    ) -> AclDecision {
        let clients = self.clients.borrow();
        let Some(entry) = clients.get(address, client_id) else {
            return AclDecision::Defer;
        };
        if entry.session().allows(access, topic, now_epoch()) {
            Metrics::bump(&self.metrics().acl_allowed);
            return AclDecision::Allow;
        }
        Metrics::bump(&self.metrics().acl_denied);
        let why = if entry.session().is_expired(now_epoch()) {
            "token expired"
        } else {
            "no matching grant"
        };
        match access {
            Access::Read => {
                log::debug!("denied delivery of {topic:?} to {:?}: {why}", entry.client_id())
            }
            _ => log::info!("denied {access:?} on {topic:?} for {:?}: {why}", entry.client_id()),
        }
        AclDecision::Deny
    }

    /// Records a DISCONNECT.
    pub fn disconnected(&self, address: usize, client_id: Option<&str>) {
        self.clients.borrow_mut().disconnected(address, client_id, Instant::now());
    }

    /// Periodic work on the main thread: purge stale entries, publish counters.
    pub fn tick(&self, now: Instant) {
        if now.duration_since(self.last_purge.get()) >= PURGE_INTERVAL {
            self.last_purge.set(now);
            self.clients.borrow_mut().purge(now, now_epoch());
        }
        let interval = self.auth.config().stats_interval;
        if !interval.is_zero()
            && self.last_stats.get().is_none_or(|last| now.duration_since(last) >= interval)
        {
            self.last_stats.set(Some(now));
            self.publish_stats();
        }
    }

    /// Housekeeping for hosts without TICK (legacy interface): purge at most once a second.
    pub fn housekeeping(&self) {
        let now = Instant::now();
        if now.duration_since(self.last_purge.get()) >= PURGE_INTERVAL {
            self.last_purge.set(now);
            self.clients.borrow_mut().purge(now, now_epoch());
        }
    }

    /// SIGHUP: Mosquitto does not re-read plugin options, but a reload is the operator's way to
    /// say "forget cached verdicts" (e.g. after revoking tokens). Sessions stay as they are.
    pub fn reload(&self) {
        self.auth.forget_all();
        log::info!(
            "reload: token cache flushed; {} client session(s) kept",
            self.clients.borrow().len()
        );
    }

    fn publish_stats(&self) {
        let snapshot = self.metrics().snapshot();
        for (name, value) in snapshot.named() {
            let topic = format!("{}/{name}", self.stats_topic_prefix);
            self.host.publish_retained(&topic, value.to_string().as_bytes());
        }
        let topic = format!("{}/clients", self.stats_topic_prefix);
        self.host.publish_retained(&topic, self.clients.borrow().len().to_string().as_bytes());
    }

    /// Number of client entries held (for tests and diagnostics).
    pub fn client_count(&self) -> usize {
        self.clients.borrow().len()
    }
}
