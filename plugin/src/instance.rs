//! One plugin instance's behaviour, free of FFI: what to answer to a login, an ACL check, a
//! DISCONNECT, a TICK and a reload. The C entry points (`v5`, `v4`) only translate to and from
//! these calls, so everything here is tested behind a fake host.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use oauth_core::policy::{self, Answer, LoginAttempt, LoginDecision};
use oauth_core::{
    Access, AccessToken, AuthError, Authenticator, CertificateThumbprint, ConfigError, Metrics,
    TokenDigest, TokenInfo, UpstreamError, report,
};

use crate::clients::ClientTable;
use crate::clock;
use crate::mixed_setup::LocalUsers;
use crate::settings::PluginConfig;
use crate::worker::{PendingLogin, Report, ReportFlag, Worker};

/// Postponed logins whose tokens may wait for a background check at once; beyond, a postponed
/// login's token is not queued (its reconnect tries again).
const MAX_BACKGROUND_CHECKS: usize = 4096;

/// Purging offline entries scans the table; once a second is plenty.
const PURGE_INTERVAL: Duration = Duration::from_secs(1);

/// The HTTP client (and its runtime thread) is let go after this long unused, so that a broker
/// whose tokens are all cached runs on its own thread alone.
const HTTP_IDLE_RELEASE: Duration = Duration::from_secs(10);

/// The state a TICK reads, which under load on Mosquitto 2.0 comes with nearly every message:
/// one small struct, so the common TICK touches its cache line and the report flag.
#[derive(Debug)]
struct TickGate {
    /// The epoch second of the last housekeeping: it runs once per second of the clock (expiry,
    /// revalidation, purge and counters all count in seconds), and whenever a background thread
    /// has reported.
    housekeeping_second: Cell<u64>,
    /// How long logins have waited for the authorization server since the last TICK.
    waited_this_pass: Cell<Duration>,
    /// True once the broker has ticked: only then are main-loop passes known.
    ticks_seen: Cell<bool>,
    /// Raised by the background threads when they report.
    reports: ReportFlag,
}

/// What the broker offers the plugin besides the callbacks.
pub trait Host {
    /// Publishes a retained QoS 0 message from the broker itself (for `$SYS` counters).
    fn publish_retained(&self, topic: &str, payload: &[u8]);
    /// Disconnects the client with this id (without its will). Only called from TICK or a
    /// login callback, never while Mosquitto iterates subscribers.
    fn kick(&self, client_id: &str);
    /// True when a login may be answered later (Mosquitto 2.1's delayed basic auth).
    fn supports_delayed_login(&self) -> bool;
    /// Completes a login answered with [`AuthDecision::Delayed`] (called from TICK).
    fn complete_login(&self, client_id: &str, decision: AuthDecision);
    /// The time every decision about admitted clients is taken at, in seconds since the epoch
    /// (tests set it; the broker's is the kernel's coarse clock, see `clock`).
    fn epoch_seconds(&self) -> u64 {
        clock::epoch_seconds()
    }
}

/// Answer to a login attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthDecision {
    /// Valid token: the client is in.
    Accept,
    /// Not ours to decide (no token login, or an invalid token): other mechanisms may accept.
    Defer,
    /// The token could not be checked, or (enhanced auth) was rejected: refuse.
    Deny,
    /// The token is being validated off the broker thread; the answer follows from TICK.
    Delayed,
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
    /// Mosquitto may act for the client after its connection ends, beyond the will check it
    /// makes at once: a durable session (clean session / clean start false), or any MQTT 5
    /// client, whose Session Expiry and Will Delay Interval the plugin cannot read.
    pub outlives_connection: bool,
    /// Thumbprint of the TLS client certificate presented on this connection, taken only when
    /// [`Instance::needs_certificates`].
    pub certificate: Option<CertificateThumbprint>,
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

/// The token inside MQTT 5 Authentication Data: the raw token, or the RFC 7628 OAUTHBEARER
/// client response `n,[a=user],\x01auth=Bearer <token>\x01[key=value\x01]*\x01`.
pub fn bearer_token(data: &[u8]) -> &[u8] {
    let Some(rest) = data.strip_prefix(b"n,") else { return data };
    let Some(start) = rest.iter().position(|b| *b == 0x01) else { return data };
    for pair in rest[start..].split(|b| *b == 0x01) {
        if let Some(value) = pair.strip_prefix(b"auth=") {
            let scheme_end = value.iter().position(|b| *b == b' ').unwrap_or(value.len());
            if value[..scheme_end].eq_ignore_ascii_case(b"bearer") {
                return value.get(scheme_end + 1..).unwrap_or(&[]);
            }
        }
    }
    &[]
}

/// A configured plugin instance (one per `plugin`/`auth_plugin` line, so one per listener with
/// `per_listener_settings true`). Used from Mosquitto's main thread only; network work for live
/// sessions happens on its [`Worker`].
pub struct Instance<H: Host> {
    host: H,
    auth: Arc<Authenticator>,
    /// Admitted clients, their expiry queue and due disconnections. Never borrowed across a
    /// call into Mosquitto: a kick re-enters [`Self::acl_check`].
    clients: RefCell<ClientTable>,
    /// The broker's password-file users (see [`oauth_core::Config::is_token_login`]).
    local_users: RefCell<LocalUsers>,
    /// The client being kicked because its token expired, while Mosquitto runs the kick.
    expiry_kick_in_progress: Cell<Option<usize>>,
    /// Client id -> generation and client address of its outstanding delayed login.
    delayed_logins: RefCell<HashMap<String, (u64, usize)>>,
    next_generation: Cell<u64>,
    /// Tokens of postponed logins being validated in the background.
    background_checks: RefCell<HashSet<TokenDigest>>,
    /// What every TICK reads, together.
    tick_gate: TickGate,
    worker: Worker,
    revalidation_due: Cell<Instant>,
    revalidation_running: Cell<bool>,
    last_purge: Cell<Instant>,
    last_stats: Cell<Option<Instant>>,
    stats_topic_prefix: String,
    /// `oauth_stats_interval`.
    stats_interval: Duration,
    /// `oauth_login_wait_budget_ms`.
    login_wait_budget: Duration,
    /// `oauth_auth_method`.
    auth_method: String,
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
    /// Builds an instance and starts its background thread. `ordinal` numbers instances in one
    /// broker (1 for the first) so their `$SYS` counters do not overwrite each other.
    pub fn new(host: H, config: PluginConfig, ordinal: usize) -> Result<Self, ConfigError> {
        let PluginConfig { core, stats_interval, login_wait_budget, auth_method, .. } = config;
        let auth = Arc::new(Authenticator::new(core)?);
        let worker = Worker::start(Arc::clone(&auth)).map_err(|e| ConfigError::Invalid {
            key: "oauth_revalidate_interval".into(),
            problem: format!("cannot start the background thread: {e}"),
        })?;
        let stats_topic_prefix = match ordinal {
            0 | 1 => "$SYS/broker/oauth".to_owned(),
            n => format!("$SYS/broker/oauth/{n}"),
        };
        let now = Instant::now();
        Ok(Self {
            clients: RefCell::new(ClientTable::new(auth.config().disconnect_on_expiry)),
            revalidation_due: Cell::new(now + auth.config().revalidate_interval),
            host,
            auth,
            local_users: RefCell::new(LocalUsers::default()),
            expiry_kick_in_progress: Cell::new(None),
            delayed_logins: RefCell::new(HashMap::new()),
            next_generation: Cell::new(0),
            background_checks: RefCell::new(HashSet::new()),
            tick_gate: TickGate {
                housekeeping_second: Cell::new(0),
                waited_this_pass: Cell::new(Duration::ZERO),
                ticks_seen: Cell::new(false),
                reports: worker.report_flag(),
            },
            worker,
            revalidation_running: Cell::new(false),
            last_purge: Cell::new(now),
            last_stats: Cell::new(None),
            stats_topic_prefix,
            stats_interval,
            login_wait_budget,
            auth_method,
        })
    }

    /// Sets the broker's password-file users, whose logins are never token logins without
    /// `oauth_token_username`.
    #[must_use]
    pub fn with_local_users(self, users: LocalUsers) -> Self {
        *self.local_users.borrow_mut() = users;
        self
    }

    fn is_token_login(&self, username: Option<&str>) -> bool {
        self.auth.config().is_token_login(username, |name| self.local_users.borrow().contains(name))
    }

    /// Whether logins need the client's certificate ([`Login::certificate`]): only when
    /// certificate-bound tokens are enforced.
    pub fn needs_certificates(&self) -> bool {
        self.auth.config().certificate_binding.needs_certificates()
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
        report::validation_setup(self.auth.config()).join(", ")
    }

    /// Decides a username/password login.
    pub fn login(&self, login: &Login<'_>) -> LoginOutcome {
        self.run_pending_kicks();
        // A login for a client object already admitted (Mosquitto 2.1 re-runs logins on
        // SIGHUP) is answered by this plugin whatever it carries: never handed on.
        let admitted = self.clients.borrow().live(login.address, login.client_id).is_some();
        if admitted && self.is_recheck_of_live_session(login) {
            return LoginOutcome::only(AuthDecision::Accept);
        }
        if !admitted {
            self.forget_client_object(login.address);
        }
        if !self.is_token_login(login.username) {
            return self.not_ours(login, admitted, "it is not a token login");
        }
        let (Some(client_id), Some(password)) =
            (login.client_id, login.password.filter(|p| !p.is_empty()))
        else {
            return self.not_ours(login, admitted, "it carries no token");
        };
        let token = AccessToken::new(password);
        // Any login of this id makes an older delayed login of the same id stale: Mosquitto 2.1
        // completes by client id, so a late answer must not reach a newer connection.
        self.delayed_logins.borrow_mut().remove(client_id);
        // With delayed auth (2.1), a token whose validation may call the authorization server
        // (introspection, or a JWKS download for a key not loaded yet) and is not cached is
        // validated off the broker thread. The username claim needs the live client object,
        // so it keeps the synchronous path.
        let outcome = if self.host.supports_delayed_login()
            && !self.auth.claims_usernames()
            && self.auth.needs_network(&token)
        {
            match self.auth.cached(&token) {
                Some(outcome) => outcome,
                None => {
                    let pending = self.pending_login(login, client_id, &token, true);
                    let generation = pending.generation;
                    if self.worker.validate_login(pending) {
                        self.delayed_logins
                            .borrow_mut()
                            .insert(client_id.to_owned(), (generation, login.address));
                        return LoginOutcome::only(AuthDecision::Delayed);
                    }
                    self.auth.validate(&token)
                }
            }
        } else {
            match self.validate_in_line(login, client_id, &token) {
                Some(outcome) => outcome,
                None => return LoginOutcome::only(AuthDecision::Deny),
            }
        };
        self.conclude(login, client_id, token, outcome)
    }

    /// Forgets what was kept for the client object at `address`: a new one is logging in there,
    /// so Mosquitto freed the old one. A delayed login of the old object is voided with it, so
    /// that its late answer cannot reach the new one.
    fn forget_client_object(&self, address: usize) {
        self.clients.borrow_mut().forget_key(address);
        self.void_delayed_logins_at(address);
    }

    fn void_delayed_logins_at(&self, address: usize) {
        let mut delayed = self.delayed_logins.borrow_mut();
        if !delayed.is_empty() {
            delayed.retain(|_, (_, waiting_at)| *waiting_at != address);
        }
    }

    /// A login this plugin does not accept: the policy leaves it to Mosquitto's other
    /// mechanisms, unless the client object was admitted with a token (then it is refused and
    /// its entry revoked: another mechanism would decide by a username nobody verified).
    fn not_ours(&self, login: &Login<'_>, admitted: bool, why: &str) -> LoginOutcome {
        let attempt = LoginAttempt {
            client_id: login.client_id.unwrap_or_default(),
            username: login.username,
            will_topic: None,
            admitted,
            exclusive: false,
            certificate: login.certificate.as_ref(),
        };
        let decision = policy::decide_not_ours(&attempt, why, self.metrics());
        self.carry_out(login.address, &attempt, login.outlives_connection, decision)
    }

    /// Carries out the policy's login decision on the client table.
    fn carry_out(
        &self,
        address: usize,
        attempt: &LoginAttempt<'_>,
        outlives_connection: bool,
        decision: LoginDecision,
    ) -> LoginOutcome {
        match decision {
            LoginDecision::Accept(client) => {
                let username = client.session().username().map(str::to_owned);
                let now = self.host.epoch_seconds();
                self.clients.borrow_mut().admit(address, client, outlives_connection, now);
                LoginOutcome { decision: AuthDecision::Accept, username }
            }
            LoginDecision::Defer => LoginOutcome::only(AuthDecision::Defer),
            LoginDecision::Deny => LoginOutcome::only(AuthDecision::Deny),
            LoginDecision::DenyAndRevoke => {
                self.clients.borrow_mut().revoke(address, attempt.client_id);
                LoginOutcome::only(AuthDecision::Deny)
            }
        }
    }

    /// Validates a login's token on the broker thread, within the pass's waiting budget: once
    /// TICKs mark Mosquitto's main-loop passes, the waits for the authorization server of one
    /// pass add up to at most `oauth_login_wait_budget_ms`, or a burst of cold logins would
    /// freeze every connected client for the sum of their round trips. A login that does not
    /// fit is refused now (`None`) and its token validated in the background, so that the
    /// client's reconnect is answered from the cache.
    fn validate_in_line(
        &self,
        login: &Login<'_>,
        client_id: &str,
        token: &AccessToken,
    ) -> Option<Result<TokenInfo, AuthError>> {
        if !self.tick_gate.ticks_seen.get() || !self.auth.needs_network(token) {
            return Some(self.auth.validate(token));
        }
        if let Some(outcome) = self.auth.cached(token) {
            return Some(outcome);
        }
        let config = self.auth.config();
        let waited = self.tick_gate.waited_this_pass.get();
        let left = self.login_wait_budget.saturating_sub(waited);
        // A token already being checked in the background would make this thread wait for
        // that check, outside the budget.
        let digest = token.digest();
        let checked_elsewhere = self.background_checks.borrow().contains(&digest);
        if !left.is_zero() && !checked_elsewhere {
            let started = Instant::now();
            let outcome = self.auth.validate_waiting_at_most(token, left);
            self.tick_gate.waited_this_pass.set(waited + started.elapsed());
            let cut_short = left < config.http_timeout
                && matches!(outcome, Err(AuthError::Unavailable(UpstreamError::Timeout(_))));
            if !cut_short {
                return Some(outcome);
            }
        }
        Metrics::bump(&self.metrics().connects_postponed);
        if checked_elsewhere {
            log::info!(
                "client {client_id:?} refused for now: its token is still being checked in the background"
            );
            return None;
        }
        let queued = self.background_checks.borrow().len() < MAX_BACKGROUND_CHECKS
            && self.worker.validate_login(self.pending_login(login, client_id, token, false));
        if queued {
            self.background_checks.borrow_mut().insert(digest);
        }
        log::info!(
            "client {client_id:?} refused for now: the broker already waited {} ms for the authorization server in this pass (oauth_login_wait_budget_ms {}); {}",
            self.tick_gate.waited_this_pass.get().as_millis(),
            self.login_wait_budget.as_millis(),
            if queued {
                "its token is checked in the background, so a reconnect is answered from the cache"
            } else {
                "too many background checks waiting, the token is not queued"
            }
        );
        None
    }

    fn pending_login(
        &self,
        login: &Login<'_>,
        client_id: &str,
        token: &AccessToken,
        answer_awaited: bool,
    ) -> PendingLogin {
        let generation = self.next_generation.get() + 1;
        self.next_generation.set(generation);
        PendingLogin {
            generation,
            address: login.address,
            client_id: client_id.to_owned(),
            username: login.username.map(str::to_owned),
            token: token.clone(),
            outlives_connection: login.outlives_connection,
            certificate: login.certificate,
            answer_awaited,
        }
    }

    /// Turns a validation outcome into the login answer (and the session, when accepted).
    fn conclude(
        &self,
        login: &Login<'_>,
        client_id: &str,
        token: AccessToken,
        outcome: Result<TokenInfo, AuthError>,
    ) -> LoginOutcome {
        let attempt = LoginAttempt {
            client_id,
            username: login.username,
            will_topic: None,
            admitted: self.clients.borrow().live(login.address, Some(client_id)).is_some(),
            exclusive: false,
            certificate: login.certificate.as_ref(),
        };
        let now = self.host.epoch_seconds();
        let decision = policy::decide_token_login(&self.auth, &attempt, token, outcome, now);
        self.carry_out(login.address, &attempt, login.outlives_connection, decision)
    }

    /// Mosquitto 2.1 re-runs the login check of every connected client on SIGHUP. A client
    /// still connected with the same token keeps its session (revocation is the background
    /// revalidation's job): answering from memory keeps a reload from turning into a storm of
    /// introspection calls on the broker thread.
    fn is_recheck_of_live_session(&self, login: &Login<'_>) -> bool {
        let clients = self.clients.borrow();
        let Some(entry) = clients.live(login.address, login.client_id) else { return false };
        login.password.is_some_and(|password| {
            entry
                .client()
                .is_kept_by_recheck(&AccessToken::new(password), self.host.epoch_seconds())
        })
    }

    /// MQTT 5 enhanced authentication (CONNECT with an Authentication Method, or AUTH 0x19
    /// re-authentication): the data carries the token. A re-authentication replaces the
    /// session's grants and expiry; a failed one is refused, which disconnects the client, and
    /// revokes its session (its will is dropped).
    ///
    /// Like a password login, an enhanced-auth login leaves the client with a username this
    /// plugin chose: the `oauth_username_claim` value, else the `oauth_token_username` marker
    /// (a CONNECT presenting another username is refused), else the username presented.
    pub fn extended_auth(
        &self,
        login: &Login<'_>,
        method: Option<&str>,
        data: &[u8],
    ) -> LoginOutcome {
        self.run_pending_kicks();
        let reauth = self.clients.borrow().live(login.address, login.client_id).is_some();
        if !reauth {
            self.forget_client_object(login.address);
        }
        let config = self.auth.config();
        if method != Some(self.auth_method.as_str()) {
            return self.not_ours(login, reauth, "it changed its authentication method");
        }
        let Some(client_id) = login.client_id else {
            return LoginOutcome::only(AuthDecision::Deny);
        };
        let marker = config.token_username.as_deref();
        if !reauth && !self.is_token_login(login.username.or(marker)) {
            Metrics::bump(&self.metrics().connects_denied);
            let presented = login.username.unwrap_or_default();
            match marker {
                Some(marker) => log::info!(
                    "client {client_id:?} enhanced authentication refused: token logins use the username {marker:?} (oauth_token_username), not {presented:?}"
                ),
                None => log::info!(
                    "client {client_id:?} enhanced authentication refused: {presented:?} is a password_file user, not a token login"
                ),
            }
            return LoginOutcome::only(AuthDecision::Deny);
        }
        let username = if reauth { login.username } else { login.username.or(marker) };
        let token = AccessToken::new(bearer_token(data));
        // A new connection may be postponed like a password login; a refused
        // re-authentication would disconnect a connected client, so that one waits in line.
        let outcome = if reauth {
            self.auth.validate(&token)
        } else {
            match self.validate_in_line(login, client_id, &token) {
                Some(outcome) => outcome,
                None => return LoginOutcome::only(AuthDecision::Deny),
            }
        };
        let attempt = LoginAttempt {
            client_id,
            username,
            will_topic: None,
            admitted: reauth,
            exclusive: true,
            certificate: login.certificate.as_ref(),
        };
        let now = self.host.epoch_seconds();
        let decision = policy::decide_token_login(&self.auth, &attempt, token, outcome, now);
        if reauth && matches!(decision, LoginDecision::Accept(_)) {
            log::info!("client {client_id:?} re-authenticated with a new token");
        }
        let mut outcome =
            self.carry_out(login.address, &attempt, login.outlives_connection, decision);
        if outcome.decision == AuthDecision::Accept
            && outcome.username.is_none()
            && login.username.is_none()
        {
            outcome.username = marker.map(str::to_owned);
        }
        outcome
    }

    /// Decides an ACL check for the client at `address` with this client id.
    pub fn acl_check(
        &self,
        address: usize,
        client_id: Option<&str>,
        access: Access,
        topic: impl AsRef<[u8]>,
    ) -> AclDecision {
        self.acl_check_by(address, |id| Some(id) == client_id, access, topic)
    }

    /// Decides an ACL check for the client at `address`, whose id `is_client` recognises
    /// (the broker's entry point compares the C string in place, without measuring or
    /// validating it first: this runs twice per message).
    #[inline]
    pub fn acl_check_by(
        &self,
        address: usize,
        is_client: impl Fn(&str) -> bool,
        access: Access,
        topic: impl AsRef<[u8]>,
    ) -> AclDecision {
        let topic = topic.as_ref();
        if access == Access::Subscribe && self.expiry_kick_in_progress.get() == Some(address) {
            return self.subscription_kept_across_expiry_kick(address, is_client, topic);
        }
        let now = self.host.epoch_seconds();
        match self.clients.borrow_mut().acl(address, is_client, access, topic, now) {
            Answer::Allow => AclDecision::Allow,
            Answer::Deny => AclDecision::Deny,
            Answer::NotOurs => AclDecision::Defer,
        }
    }

    /// Kicking a durable session makes Mosquitto re-check its subscriptions and drop the denied
    /// ones, so a device renewing its token would find its session without subscriptions. The
    /// kick ends the connection, not the session: subscriptions stay as granted, and every
    /// message is still read-checked against the token of the session's next connection (an
    /// expired one reads nothing meanwhile).
    #[cold]
    fn subscription_kept_across_expiry_kick(
        &self,
        address: usize,
        is_client: impl Fn(&str) -> bool,
        topic: &[u8],
    ) -> AclDecision {
        let clients = self.clients.borrow();
        match clients.get_by(address, is_client).map(|entry| entry.client()) {
            Some(client)
                if !client.is_revoked()
                    && client.session().grants().allows(Access::Subscribe, topic) =>
            {
                AclDecision::Allow
            }
            Some(_) => AclDecision::Deny,
            None => AclDecision::Defer,
        }
    }

    /// Records a DISCONNECT. A login still delayed for this client object is voided: its answer
    /// must not reach another client that gets the same address.
    pub fn disconnected(&self, address: usize, client_id: Option<&str>) {
        self.clients.borrow_mut().disconnected(address, client_id, self.host.epoch_seconds());
        self.void_delayed_logins_at(address);
    }

    /// The broker's TICK: [`Self::tick`] when a background thread has reported or the clock has
    /// moved to another second since the last housekeeping. Any other TICK costs a `time()`
    /// read and an atomic load, which matters because under load on Mosquitto 2.0 it comes with
    /// nearly every message.
    #[inline]
    pub fn on_tick(&self) {
        // A TICK ends a pass of Mosquitto's main loop: the other clients have been served.
        let gate = &self.tick_gate;
        if !gate.ticks_seen.get() {
            self.first_tick();
        }
        if !gate.waited_this_pass.get().is_zero() {
            gate.waited_this_pass.set(Duration::ZERO);
        }
        let second = self.host.epoch_seconds();
        if second == gate.housekeeping_second.get() && !gate.reports.is_raised() {
            return;
        }
        gate.housekeeping_second.set(second);
        self.tick(Instant::now());
    }

    #[cold]
    fn first_tick(&self) {
        self.tick_gate.ticks_seen.set(true);
        if self.auth.uses_network() {
            log::info!(
                "broker ticks: logins waiting for the authorization server on the broker thread share {} ms per main-loop pass (oauth_login_wait_budget_ms)",
                self.login_wait_budget.as_millis()
            );
        }
    }

    /// Periodic work on the main thread: disconnect expired and revoked sessions, start
    /// revalidation rounds, purge stale entries, publish counters.
    pub fn tick(&self, now: Instant) {
        self.clients.borrow_mut().fold_counts(self.metrics());
        self.run_pending_kicks();
        self.collect_reports();
        self.start_revalidation(now);
        if now.duration_since(self.last_purge.get()) >= PURGE_INTERVAL {
            self.purge(now);
        }
        let interval = self.stats_interval;
        if !interval.is_zero()
            && self.last_stats.get().is_none_or(|last| now.duration_since(last) >= interval)
        {
            self.last_stats.set(Some(now));
            self.publish_stats();
        }
    }

    /// Disconnects the clients whose token expired (the expiry queue, and those ACL checks
    /// found expired), with the registry's borrow released: Mosquitto re-checks the client's
    /// subscriptions during the kick.
    fn run_pending_kicks(&self) {
        let due = self.clients.borrow_mut().due_kicks(self.host.epoch_seconds());
        for (address, client_id) in due {
            policy::log_token_expired(&client_id);
            self.expiry_kick_in_progress.set(Some(address));
            self.host.kick(&client_id);
            self.expiry_kick_in_progress.set(None);
        }
    }

    /// Applies what the background thread found: revoked tokens disconnect their clients.
    fn collect_reports(&self) {
        for report in self.worker.take_reports() {
            match report {
                Report::RoundDone => self.revalidation_running.set(false),
                Report::LoginChecked(pending, outcome) if !pending.answer_awaited => {
                    self.background_checks.borrow_mut().remove(&pending.token.digest());
                    match outcome {
                        Ok(_) => log::debug!(
                            "token of postponed login {:?} checked: valid, cached",
                            pending.client_id
                        ),
                        Err(problem) => log::info!(
                            "token of postponed login {:?} checked: {problem}",
                            pending.client_id
                        ),
                    }
                }
                Report::LoginChecked(pending, outcome) => {
                    let PendingLogin {
                        generation,
                        address,
                        client_id,
                        username,
                        token,
                        outlives_connection,
                        certificate,
                        ..
                    } = pending;
                    // Voided by a newer login of the id, or by the client object leaving (its
                    // address may already belong to another client).
                    let current = self.delayed_logins.borrow().get(&client_id)
                        == Some(&(generation, address));
                    if !current {
                        log::debug!("dropping a stale delayed login answer for {client_id:?}");
                        continue;
                    }
                    self.delayed_logins.borrow_mut().remove(&client_id);
                    let login = Login {
                        address,
                        client_id: Some(&client_id),
                        username: username.as_deref(),
                        password: None,
                        outlives_connection,
                        certificate,
                    };
                    let answer = self.conclude(&login, &client_id, token, outcome);
                    self.host.complete_login(&client_id, answer.decision);
                }
                Report::Invalid(digest, reason) => {
                    // Revoked sessions are denied everything from now on, including the
                    // subscription re-check of the kick (a durable session loses them) and
                    // messages queued for it.
                    let victims = self.clients.borrow_mut().revoke_token(&digest);
                    for (_, client_id) in victims {
                        policy::log_token_invalid(&client_id, &reason);
                        self.host.kick(&client_id);
                    }
                }
            }
        }
    }

    /// Hands the live sessions' tokens to the background thread once per interval.
    fn start_revalidation(&self, now: Instant) {
        let interval = self.auth.config().revalidate_interval;
        // Without an authorization server to ask, a re-check could only find what the expiry
        // kicks already act on.
        if interval.is_zero()
            || !self.auth.uses_network()
            || self.revalidation_running.get()
            || now < self.revalidation_due.get()
        {
            return;
        }
        self.revalidation_due.set(now + interval);
        let tokens = self.clients.borrow().revalidation_tokens(self.host.epoch_seconds(), interval);
        if !tokens.is_empty() {
            self.revalidation_running.set(true);
            self.worker.revalidate(tokens);
        }
    }

    /// Housekeeping for hosts without TICK (legacy interface): purge at most once a second.
    pub fn housekeeping(&self) {
        self.clients.borrow_mut().fold_counts(self.metrics());
        let now = Instant::now();
        if now.duration_since(self.last_purge.get()) >= PURGE_INTERVAL {
            self.purge(now);
        }
    }

    /// Drops client entries nobody can use any more, bounds the expiry queue, and lets an idle
    /// HTTP client go.
    fn purge(&self, now: Instant) {
        self.last_purge.set(now);
        if self.auth.release_idle_http(HTTP_IDLE_RELEASE) {
            log::debug!("HTTP client let go after {HTTP_IDLE_RELEASE:?} unused");
        }
        self.clients.borrow_mut().purge();
    }

    /// Background threads currently running (for diagnostics and tests): none while there is
    /// no work for them.
    pub fn background_threads(&self) -> usize {
        self.worker.running_threads()
    }

    /// Background threads started since the instance was created (for diagnostics and tests).
    pub fn background_threads_started(&self) -> usize {
        self.worker.started_threads()
    }

    /// True when a background thread has reported something TICK has not applied yet (for
    /// diagnostics and tests).
    pub fn reports_waiting(&self) -> bool {
        self.tick_gate.reports.is_raised()
    }

    /// Expiries waiting in the queue of the expiry kicks (for diagnostics and tests).
    pub fn queued_expiries(&self) -> usize {
        self.clients.borrow().queued_expiries()
    }

    /// SIGHUP: Mosquitto does not re-read plugin options, but a reload is the operator's way to
    /// say "forget cached verdicts" (e.g. after revoking tokens). Sessions stay as they are.
    pub fn reload(&self) {
        self.auth.forget_all();
        self.local_users.borrow_mut().reload();
        log::info!(
            "reload: token cache flushed; {} client session(s) kept",
            self.clients.borrow().len()
        );
    }

    fn publish_stats(&self) {
        self.clients.borrow_mut().fold_counts(self.metrics());
        for (name, value) in self.auth.sys_counters() {
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

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn oauthbearer_client_response_yields_the_token() {
        assert_eq!(bearer_token(b"n,,\x01auth=Bearer abc.def\x01\x01"), b"abc.def");
        assert_eq!(
            bearer_token(
                b"n,a=user@example.com,\x01host=broker\x01port=8883\x01auth=bearer tok\x01\x01"
            ),
            b"tok"
        );
        assert_eq!(bearer_token(b"raw-token"), b"raw-token");
        assert_eq!(bearer_token(b"n,,\x01auth=Basic xyz\x01\x01"), b"");
        assert_eq!(bearer_token(b"n,,\x01\x01"), b"");
    }
}
