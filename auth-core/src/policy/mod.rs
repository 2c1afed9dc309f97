//! The session policy both brokers apply, implemented once: what a token login's outcome means
//! (accept, leave to other mechanisms, refuse), what an admitted client may do and why it may
//! not, and what a revalidation round checks and concludes; and the [`Registry`] of admitted
//! clients with its ownership rules. Each decision counts itself (in [`Metrics`], or for ACL
//! checks in an [`AclTally`] the host folds into them) and writes its log line here, so the
//! Mosquitto plugin and the fallback broker report the same event the same way.
//!
//! Sans-I/O: nothing here blocks, spawns or talks to the broker. `now` (epoch seconds) is
//! passed in, and decisions are returned for the host to carry out (kick, complete a login,
//! revoke) once it holds no borrow of its own state. The one exception is
//! [`run_revalidation_round`], which calls the authorization server through the
//! [`Authenticator`] and is run by each host on a background thread.

mod registry;
mod revalidation;

pub use registry::{Answer, Entry, Registry};
pub use revalidation::{
    Recheck, RoundLimits, RoundPace, RoundSummary, RoundToken, UNANSWERED_CHECKS_ENDING_A_ROUND,
    revalidation_tokens, run_revalidation_round,
};

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use compact_str::CompactString;

use crate::{
    Access, AccessToken, AuthError, Authenticator, BindingFailure, CertificateThumbprint, Metrics,
    Rejection, Session, TokenInfo, report,
};

/// A client admitted with a token, kept by its broker for as long as the broker may act for it
/// (deliveries of queued messages, a delayed will). Shareable between threads: the marks a
/// broker sets later ([`left`](Self::left), [`revoke`](Self::revoke)) are relaxed atomics.
///
/// Fields in the order an ACL check reads them (`repr(C)` keeps it): id, marks, then the
/// session's grants and expiry, so a check touches two cache lines of the record, not four.
#[derive(Debug)]
#[repr(C)]
pub struct TokenClient {
    client_id: CompactString,
    /// Epoch second at which the client's connection ended; 0 while online.
    left_at: AtomicU64,
    /// Set when the token was found no longer valid: everything is denied from then on.
    revoked: AtomicBool,
    session: Session,
    /// What revalidation re-checks while the client is online (the token, never logged, or
    /// only its JWT's signing key).
    recheck: Option<Recheck>,
}

impl TokenClient {
    /// A client admitted just now, whose token's validation opened `session`; revalidation
    /// re-checks it by `recheck` (see [`Authenticator::recheck_for`]).
    pub fn new(client_id: &str, session: Session, recheck: Recheck) -> Self {
        Self {
            client_id: client_id.into(),
            left_at: AtomicU64::new(0),
            revoked: AtomicBool::new(false),
            session,
            recheck: Some(recheck),
        }
    }

    /// The MQTT client id it connected with.
    #[inline]
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Its grants and expiry.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// How revalidation re-checks its token, while the host keeps that (see
    /// [`release_recheck`](Self::release_recheck)).
    pub fn recheck(&self) -> Option<&Recheck> {
        self.recheck.as_ref()
    }

    /// Lets the token (or its key) go: only online clients are revalidated, so a host that
    /// owns the entry exclusively drops it when the client leaves.
    pub fn release_recheck(&mut self) {
        self.recheck = None;
    }

    /// Records that the client's connection ended at `now` (the first call counts): from then
    /// on it is decided as an offline client (see [`Session::allows_offline`]).
    pub fn left(&self, now: u64) {
        let _ = self.left_at.compare_exchange(0, now.max(1), Ordering::Relaxed, Ordering::Relaxed);
    }

    /// True until [`left`](Self::left).
    #[inline]
    pub fn is_online(&self) -> bool {
        self.left_at.load(Ordering::Relaxed) == 0
    }

    /// Marks the token no longer valid (revalidation found it revoked, or a re-authentication
    /// failed): every check is denied from now on, the will and queued deliveries included.
    pub fn revoke(&self) {
        self.revoked.store(true, Ordering::Relaxed);
    }

    /// Whether [`revoke`](Self::revoke) was called.
    #[inline]
    pub fn is_revoked(&self) -> bool {
        self.revoked.load(Ordering::Relaxed)
    }

    /// Whether a login re-check of this client presenting `token` (Mosquitto 2.1 re-runs every
    /// connected client's login on SIGHUP) keeps its session as it is, without asking the
    /// authorization server: the client is online, unrevoked, unexpired and presents the token
    /// it was admitted with. Revocation is the revalidation rounds' job; asking here would turn
    /// a reload into a storm of calls on the broker's thread.
    pub fn is_kept_by_recheck(&self, token: &AccessToken, now: u64) -> bool {
        self.is_online()
            && !self.is_revoked()
            && !self.session.is_expired(now)
            && token.digest() == self.session.token_digest()
    }

    /// The bare decision at `now`, neither counted nor logged.
    #[inline]
    pub fn allows(&self, access: Access, topic: impl AsRef<[u8]>, now: u64) -> bool {
        if self.is_revoked() {
            return false;
        }
        match self.left_at.load(Ordering::Relaxed) {
            0 => self.session.allows(access, topic, now),
            left_at => self.session.allows_offline(access, topic, left_at, now),
        }
    }

    /// Why a check at `now` that [`allows`](Self::allows) refused was refused.
    fn denial(&self, now: u64) -> Denial {
        if self.is_revoked() {
            Denial::Revoked
        } else if self.session.is_expired(now) {
            Denial::Expired
        } else {
            Denial::NoGrant
        }
    }

    /// Decides one ACL check at `now`: counts it and logs a denial. A denial for an online
    /// client whose token has expired asks for its disconnection (hosts with
    /// `oauth_disconnect_on_expiry` carry it out, if no timer of theirs did it already).
    #[inline(always)]
    pub fn check(
        &self,
        access: Access,
        topic: impl AsRef<[u8]>,
        now: u64,
        counter: &mut impl AclCounter,
    ) -> AclVerdict {
        let topic = topic.as_ref();
        if self.allows(access, topic, now) {
            counter.count(true);
            return AclVerdict::Allow;
        }
        counter.count(false);
        self.denied(access, topic, now)
    }

    /// The denial half of [`check`](Self::check), kept out of line: it formats a log line,
    /// and the allowed path runs twice per message.
    #[cold]
    #[inline(never)]
    fn denied(&self, access: Access, topic: &[u8], now: u64) -> AclVerdict {
        let denial = self.denial(now);
        log_acl_denial(&self.client_id, access, topic, denial);
        AclVerdict::Deny { expired_online: denial == Denial::Expired && self.is_online() }
    }
}

/// Where ACL decisions are counted: straight into the shared [`Metrics`] (`&Metrics`), or into
/// an [`AclTally`] that a host touching it from one thread folds into them now and then (an
/// atomic increment per check is a measurable share of a broker's cost per message).
pub trait AclCounter {
    /// Counts one decision.
    fn count(&mut self, allowed: bool);
}

impl AclCounter for &Metrics {
    #[inline]
    fn count(&mut self, allowed: bool) {
        Metrics::bump(if allowed { &self.acl_allowed } else { &self.acl_denied });
    }
}

/// ACL decisions counted without atomics, for [`fold_into`](Self::fold_into) the shared
/// counters before they are read.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AclTally {
    allowed: u64,
    denied: u64,
}

impl AclCounter for AclTally {
    #[inline]
    fn count(&mut self, allowed: bool) {
        if allowed {
            self.allowed += 1;
        } else {
            self.denied += 1;
        }
    }
}

impl AclTally {
    /// Adds the decisions counted so far to `metrics` and starts again from zero.
    pub fn fold_into(&mut self, metrics: &Metrics) {
        let Self { allowed, denied } = std::mem::take(self);
        if allowed > 0 {
            metrics.acl_allowed.fetch_add(allowed, Ordering::Relaxed);
        }
        if denied > 0 {
            metrics.acl_denied.fetch_add(denied, Ordering::Relaxed);
        }
    }
}

/// The answer to one ACL check of a [`TokenClient`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AclVerdict {
    /// Its grants allow it.
    Allow,
    /// Refused.
    Deny {
        /// The client is online and its token has expired: it is due to be disconnected.
        expired_online: bool,
    },
}

/// Why an ACL check was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    /// The token was found no longer valid.
    Revoked,
    /// The token's `exp` has passed.
    Expired,
    /// No grant covers the topic.
    NoGrant,
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Denial::Revoked => "token revoked",
            Denial::Expired => "token expired",
            Denial::NoGrant => "no matching grant",
        })
    }
}

/// Logs a refused ACL check: deliveries at debug level (a subscriber with a wide filter would
/// flood the log), publishes and subscriptions at info.
///
/// `topic` is the broker's (bytes, see [`crate::topic::matches`]); a byte that is not UTF-8
/// shows as U+FFFD.
pub fn log_acl_denial(client_id: &str, access: Access, topic: impl AsRef<[u8]>, denial: Denial) {
    let topic = String::from_utf8_lossy(topic.as_ref());
    match access {
        Access::Read => log::debug!("denied delivery of {topic:?} to {client_id:?}: {denial}"),
        _ => log::info!("denied {access:?} on {topic:?} for {client_id:?}: {denial}"),
    }
}

/// A login as the policy sees it.
#[derive(Debug, Clone, Copy)]
pub struct LoginAttempt<'a> {
    /// MQTT client id.
    pub client_id: &'a str,
    /// The username the client will have, before any `oauth_username_claim`.
    pub username: Option<&'a str>,
    /// The will topic, for hosts that decide the will at CONNECT themselves (Mosquitto checks
    /// it with an ACL check of its own, so the plugin passes `None`).
    pub will_topic: Option<&'a str>,
    /// The client object was admitted with a token earlier and the broker may still act for it
    /// (a 2.1 re-check on SIGHUP, an MQTT 5 re-authentication): it is never handed to another
    /// mechanism, so any failure refuses it and revokes what it was granted.
    pub admitted: bool,
    /// The client chose this plugin's authentication method (MQTT 5 enhanced authentication):
    /// a rejected token is refused, not left to other mechanisms.
    pub exclusive: bool,
    /// The thumbprint of the TLS client certificate the connection presented, for
    /// certificate-bound tokens (RFC 8705); `None` without one, or when the host cannot see it.
    pub certificate: Option<&'a CertificateThumbprint>,
}

/// What to answer to a login.
#[derive(Debug)]
pub enum LoginDecision {
    /// Admit the client with these grants.
    Accept(TokenClient),
    /// Not ours to decide: the broker's other mechanisms may accept the client.
    Defer,
    /// Refuse the client.
    Deny,
    /// Refuse the client and revoke the entry it was admitted with (its will included).
    DenyAndRevoke,
}

/// Decides a login that is not a token login (or carries no token): other mechanisms decide,
/// unless the client object was admitted with a token (see [`LoginAttempt::admitted`]).
pub fn decide_not_ours(attempt: &LoginAttempt<'_>, why: &str, metrics: &Metrics) -> LoginDecision {
    if attempt.admitted {
        return refuse_admitted(attempt.client_id, why, metrics);
    }
    Metrics::bump(&metrics.connects_deferred);
    log::debug!("client {:?}: {why}, leaving the login to other mechanisms", attempt.client_id);
    LoginDecision::Defer
}

/// Decides a token login from its validation `outcome`: client-id binding and expiry (through
/// [`Authenticator::session_for`]), the will, then accept, defer (a rejected token: another
/// mechanism may know the credentials) or deny (the token could not be checked: fail closed).
pub fn decide_token_login(
    auth: &Authenticator,
    attempt: &LoginAttempt<'_>,
    token: AccessToken,
    outcome: Result<TokenInfo, AuthError>,
    now: u64,
) -> LoginDecision {
    let metrics = auth.metrics();
    let client_id = attempt.client_id;
    let checked = outcome.and_then(|info| {
        let session = auth.session_for(&info, &token, client_id, attempt.username, now)?;
        let binding =
            auth.config().certificate_binding.check(&info.confirmation, attempt.certificate);
        Ok((session, binding, info))
    });
    let error = match checked {
        Ok((_, Err(failure), _)) => return refuse_wrong_holder(attempt, &failure, metrics),
        Ok((session, Ok(()), info)) => {
            let client = TokenClient::new(client_id, session, auth.recheck_for(&info, token));
            if let Some(topic) = attempt.will_topic
                && client.check(Access::Write, topic, now, &mut &**metrics) != AclVerdict::Allow
            {
                Metrics::bump(&metrics.connects_denied);
                log::info!("client {client_id:?} refused: its will topic is not writable");
                return LoginDecision::Deny;
            }
            Metrics::bump(&metrics.connects_accepted);
            log::info!("{}", report::token_accepted(client_id, client.session(), now));
            return LoginDecision::Accept(client);
        }
        Err(error) => error,
    };
    if attempt.admitted {
        return refuse_admitted(client_id, &error.to_string(), metrics);
    }
    Metrics::bump(&metrics.connects_denied);
    match error {
        AuthError::Rejected(reason) if !attempt.exclusive => {
            log::info!("{}", report::token_unacceptable(client_id, &reason));
            LoginDecision::Defer
        }
        AuthError::Rejected(reason) => {
            log::info!("client {client_id:?} enhanced authentication refused: {reason}");
            LoginDecision::Deny
        }
        AuthError::Unavailable(problem) => {
            log::warn!("{}", report::token_unchecked(client_id, &problem));
            LoginDecision::Deny
        }
    }
}

/// Refuses a valid token presented without the certificate it is bound to: never left to
/// other mechanisms, whoever the client claims to be.
fn refuse_wrong_holder(
    attempt: &LoginAttempt<'_>,
    failure: &BindingFailure,
    metrics: &Metrics,
) -> LoginDecision {
    if attempt.admitted {
        return refuse_admitted(attempt.client_id, &failure.to_string(), metrics);
    }
    Metrics::bump(&metrics.connects_denied);
    Metrics::bump(&metrics.connects_certificate_mismatch);
    log::info!("client {:?} refused: {failure}", attempt.client_id);
    LoginDecision::Deny
}

fn refuse_admitted(client_id: &str, why: &str, metrics: &Metrics) -> LoginDecision {
    Metrics::bump(&metrics.connects_denied);
    log::info!("client {client_id:?} re-authentication refused: {why}; its session is revoked");
    LoginDecision::DenyAndRevoke
}

/// The disconnection of the clients of a token found no longer valid, for the log.
pub fn log_token_invalid(client_id: &str, reason: &Rejection) {
    log::info!("disconnecting client {client_id:?}: token no longer valid ({reason})");
}

/// The disconnection of a client whose token expired, for the log.
pub fn log_token_expired(client_id: &str) {
    log::info!("disconnecting client {client_id:?}: its token has expired");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::UpstreamError;
    use crate::{Grants, TokenSource};

    const EXP: u64 = 1_000;

    fn client(token: &str) -> TokenClient {
        let token = AccessToken::new(token.as_bytes());
        let grants = Grants::from_scopes(["write:wills/%c", "write:data/#", "read:q/#"], "")
            .resolve("dev", None);
        let session = Session::new(grants, Some(EXP), token.digest(), TokenSource::Jwt);
        TokenClient::new("dev", session, Recheck::Token(token))
    }

    fn deny(expired_online: bool) -> AclVerdict {
        AclVerdict::Deny { expired_online }
    }

    #[test]
    fn what_an_admitted_client_may_do_follows_its_token_its_connection_and_revocation() {
        // (state, access, topic, now, verdict): state "online", "left at 900", "revoked".
        let cases = [
            ("online", Access::Write, "data/1", 999, AclVerdict::Allow),
            ("online", Access::Write, "ops/1", 999, deny(false)),
            ("online", Access::Subscribe, "q/#", 999, AclVerdict::Allow),
            ("online", Access::Write, "data/1", EXP, deny(true)),
            ("online", Access::Read, "q/1", EXP + 1, deny(true)),
            ("left at 900", Access::Write, "wills/dev", 5_000, AclVerdict::Allow),
            ("left at 900", Access::Read, "q/1", 950, AclVerdict::Allow),
            ("left at 900", Access::Read, "q/1", EXP, deny(false)),
            ("left at 1000", Access::Write, "wills/dev", EXP + 65, deny(false)),
            ("revoked", Access::Write, "data/1", 10, deny(false)),
            ("revoked", Access::Read, "q/1", 10, deny(false)),
        ];
        for (state, access, topic, now, verdict) in cases {
            let client = client("t");
            match state {
                "online" => {}
                "revoked" => client.revoke(),
                left => client.left(left.trim_start_matches("left at ").parse().expect("number")),
            }
            let metrics = Metrics::default();
            assert_eq!(
                client.check(access, topic, now, &mut &metrics),
                verdict,
                "{state} {access:?} {topic} at {now}"
            );
            let counted = metrics.snapshot();
            let allowed = verdict == AclVerdict::Allow;
            assert_eq!(
                (counted.acl_allowed, counted.acl_denied),
                (u64::from(allowed), u64::from(!allowed))
            );
        }
    }

    #[test]
    fn a_denial_names_revocation_before_expiry_before_grants() {
        let client = client("t");
        assert_eq!(client.denial(10), Denial::NoGrant);
        assert_eq!(client.denial(EXP), Denial::Expired);
        client.revoke();
        assert_eq!(client.denial(EXP), Denial::Revoked);
        assert_eq!(Denial::Revoked.to_string(), "token revoked");
    }

    #[test]
    fn the_first_departure_is_the_one_that_counts() {
        let client = client("t");
        client.left(900);
        client.left(1_200);
        assert!(!client.is_online());
        assert!(client.allows(Access::Write, "wills/dev", 2_000), "decided as of 900");
    }

    #[test]
    fn a_recheck_keeps_only_an_online_unrevoked_unexpired_client_with_the_same_token() {
        let same = AccessToken::new(&b"t"[..]);
        let other = AccessToken::new(&b"u"[..]);
        assert!(client("t").is_kept_by_recheck(&same, 999));
        assert!(!client("t").is_kept_by_recheck(&other, 999));
        assert!(!client("t").is_kept_by_recheck(&same, EXP));
        let revoked = client("t");
        revoked.revoke();
        assert!(!revoked.is_kept_by_recheck(&same, 999));
        let gone = client("t");
        gone.left(900);
        assert!(!gone.is_kept_by_recheck(&same, 950));
    }

    fn attempt(admitted: bool, exclusive: bool) -> LoginAttempt<'static> {
        LoginAttempt {
            client_id: "dev",
            username: None,
            will_topic: None,
            admitted,
            exclusive,
            certificate: None,
        }
    }

    #[test]
    fn a_login_that_is_not_ours_is_deferred_unless_the_client_was_admitted() {
        let metrics = Metrics::default();
        assert!(matches!(
            decide_not_ours(&attempt(false, false), "no token", &metrics),
            LoginDecision::Defer
        ));
        assert!(matches!(
            decide_not_ours(&attempt(true, false), "no token", &metrics),
            LoginDecision::DenyAndRevoke
        ));
        let counted = metrics.snapshot();
        assert_eq!((counted.connects_deferred, counted.connects_denied), (1, 1));
    }

    /// An authenticator whose introspection endpoint refuses connections (loopback port 9).
    pub(super) fn authenticator() -> Authenticator {
        let config = crate::Config::from_pairs([
            ("oauth_introspection_url", "http://127.0.0.1:9/introspect"),
            ("oauth_client_id", "broker"),
            ("oauth_client_secret", "s"),
        ])
        .expect("valid config");
        Authenticator::new(config).expect("authenticator")
    }

    fn info(expires_at: u64) -> TokenInfo {
        TokenInfo {
            grants: Grants::from_scopes(["write:data/#"], ""),
            expires_at: Some(expires_at),
            bound_client_id: None,
            username: None,
            source: TokenSource::Introspection,
            confirmation: crate::Confirmation::Bearer,
            profile: 0,
            signing_key: None,
        }
    }

    fn decision_name(decision: &LoginDecision) -> &'static str {
        match decision {
            LoginDecision::Accept(_) => "accept",
            LoginDecision::Defer => "defer",
            LoginDecision::Deny => "deny",
            LoginDecision::DenyAndRevoke => "deny and revoke",
        }
    }

    #[test]
    fn a_token_login_is_accepted_deferred_or_refused_by_its_outcome_and_its_client() {
        let rejected = || Err(AuthError::Rejected(Rejection::Inactive));
        let unchecked = || {
            Err(AuthError::Unavailable(UpstreamError::Timeout(std::time::Duration::from_millis(
                500,
            ))))
        };
        let will = |topic| LoginAttempt { will_topic: Some(topic), ..attempt(false, false) };
        // (attempt, outcome, decision, counted (accepted, denied))
        type Case<'a> = (LoginAttempt<'a>, Result<TokenInfo, AuthError>, &'a str, (u64, u64));
        let cases: [Case<'_>; 10] = [
            (attempt(false, false), Ok(info(EXP)), "accept", (1, 0)),
            (attempt(false, false), Ok(info(999)), "defer", (0, 1)), // expired at `now`
            (attempt(false, false), rejected(), "defer", (0, 1)),
            (attempt(false, true), rejected(), "deny", (0, 1)),
            (attempt(false, false), unchecked(), "deny", (0, 1)),
            (attempt(true, false), rejected(), "deny and revoke", (0, 1)),
            (attempt(true, true), unchecked(), "deny and revoke", (0, 1)),
            (attempt(true, true), Ok(info(EXP)), "accept", (1, 0)),
            (will("data/w"), Ok(info(EXP)), "accept", (1, 0)),
            (will("ops/w"), Ok(info(EXP)), "deny", (0, 1)),
        ];
        for (attempt, outcome, expected, counted) in cases {
            let auth = authenticator();
            let decision =
                decide_token_login(&auth, &attempt, AccessToken::new(&b"t"[..]), outcome, 999);
            let name = decision_name(&decision);
            let snapshot = auth.metrics().snapshot();
            assert_eq!(
                (name, (snapshot.connects_accepted, snapshot.connects_denied)),
                (expected, counted),
                "{attempt:?}"
            );
        }
    }

    #[test]
    fn a_bound_token_without_its_certificate_is_refused_never_deferred() {
        let mine = CertificateThumbprint::of_der(b"device-1 certificate");
        let theirs = CertificateThumbprint::of_der(b"device-2 certificate");
        let bound = || {
            Ok(TokenInfo {
                confirmation: crate::Confirmation::Bound(Box::new(crate::Binding::Certificate(
                    mine,
                ))),
                ..info(EXP)
            })
        };
        let with = |certificate, admitted| LoginAttempt { certificate, ..attempt(admitted, false) };
        // (attempt, decision, counted (accepted, denied, certificate mismatch))
        let cases = [
            (with(Some(&mine), false), "accept", (1, 0, 0)),
            (with(Some(&theirs), false), "deny", (0, 1, 1)),
            (with(None, false), "deny", (0, 1, 1)),
            (with(None, true), "deny and revoke", (0, 1, 0)),
        ];
        for (attempt, expected, counted) in cases {
            let auth = authenticator();
            let decision =
                decide_token_login(&auth, &attempt, AccessToken::new(&b"t"[..]), bound(), 999);
            let name = decision_name(&decision);
            let snapshot = auth.metrics().snapshot();
            assert_eq!(
                (
                    name,
                    (
                        snapshot.connects_accepted,
                        snapshot.connects_denied,
                        snapshot.connects_certificate_mismatch
                    )
                ),
                (expected, counted),
                "{attempt:?}"
            );
        }
    }
}
