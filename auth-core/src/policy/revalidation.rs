//! Revalidation rounds: which tokens a round re-checks, how fast it may ask the authorization
//! server, and what an answer means. A round of N tokens is spread over the interval (one call
//! every interval ÷ N) and never goes faster than `oauth_revalidate_max_rps`, with at most
//! `oauth_revalidate_concurrency` calls in flight; tokens checked locally (JWTs against keys
//! already loaded) are not paced, since they cost the server nothing.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::TokenClient;
use crate::{
    AccessToken, AuthError, Authenticator, KeyFingerprint, Rejection, TokenDigest, UpstreamError,
};

/// How revalidation re-checks an admitted client's token (see [`Authenticator::recheck_for`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recheck {
    /// Validated again: asked of the authorization server, or a JWT re-verified (its keys
    /// fetched, or its revocation introspected).
    Token(AccessToken),
    /// A JWT verified locally: still valid while profile `profile` publishes the key `key`
    /// that verified it.
    SigningKey {
        /// The issuer profile that verified it ([`crate::TokenInfo::profile`]).
        profile: u8,
        /// The key that verified it.
        key: KeyFingerprint,
    },
}

/// One distinct token a round re-checks: whose clients a rejection disconnects, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoundToken {
    /// The token's digest ([`crate::Session::token_digest`] of its clients).
    pub digest: TokenDigest,
    /// How it is re-checked.
    pub recheck: Recheck,
}

/// The tokens one revalidation round re-checks at `now` (epoch seconds): one per distinct token
/// among the online, unrevoked clients (offline ones are decided by their expiry; many clients
/// may share a token), leaving out tokens that expire within `interval`: their expiry ends
/// their sessions before a next round could, so a check would only load the server.
pub fn revalidation_tokens<'a>(
    clients: impl IntoIterator<Item = &'a TokenClient>,
    now: u64,
    interval: Duration,
) -> Vec<RoundToken> {
    let horizon = now.saturating_add(interval.as_secs());
    let mut seen = std::collections::HashSet::new();
    clients
        .into_iter()
        .filter(|client| client.is_online() && !client.is_revoked())
        .filter(|client| client.session.expires_at().is_none_or(|exp| exp > horizon))
        .filter_map(|client| Some((client.session.token_digest(), client.recheck.as_ref()?)))
        .filter(|(digest, _)| seen.insert(*digest))
        .map(|(digest, recheck)| RoundToken { digest, recheck: recheck.clone() })
        .collect()
}

impl From<AccessToken> for RoundToken {
    /// A token re-checked whole.
    fn from(token: AccessToken) -> Self {
        Self { digest: token.digest(), recheck: Recheck::Token(token) }
    }
}

impl RoundToken {
    /// True when re-checking it calls the authorization server (what a round paces).
    fn calls_server(&self, auth: &Authenticator) -> bool {
        match &self.recheck {
            Recheck::Token(token) => auth.revalidation_calls_server(token),
            Recheck::SigningKey { .. } => false,
        }
    }

    fn check(&self, auth: &Authenticator) -> Result<(), AuthError> {
        match &self.recheck {
            Recheck::Token(token) => auth.revalidate(token).map(drop),
            Recheck::SigningKey { profile, key } => {
                auth.recheck_signing_key(self.digest, *profile, *key)
            }
        }
    }
}

/// The limits a round runs under (from the core configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoundLimits {
    /// `oauth_revalidate_interval`: the round's calls are spread over it.
    pub interval: Duration,
    /// `oauth_revalidate_max_rps`: never more calls per second than this.
    pub max_rps: u32,
    /// `oauth_revalidate_concurrency`: calls in flight at once.
    pub concurrency: usize,
}

impl RoundLimits {
    /// The limits `auth` is configured with.
    pub fn of(auth: &Authenticator) -> Self {
        let config = auth.config();
        Self {
            interval: config.revalidate_interval,
            max_rps: config.revalidate_max_rps,
            concurrency: config.revalidate_concurrency,
        }
    }
}

/// How a round of `calls` server calls is paced: consecutive calls start at least `spacing`
/// apart (so no window of a second holds more than `max_rps` starts), which spreads the round
/// over the interval when the cap allows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoundPace {
    /// Least time between the starts of two calls.
    pub spacing: Duration,
    /// Calls the round makes.
    pub calls: usize,
}

impl RoundPace {
    /// The pace of `calls` calls under `limits`.
    pub fn plan(calls: usize, limits: RoundLimits) -> Self {
        let spread = u32::try_from(calls)
            .map_or(Duration::ZERO, |n| limits.interval.checked_div(n).unwrap_or(Duration::ZERO));
        let capped = Duration::from_secs(1) / limits.max_rps.max(1);
        Self { spacing: spread.max(capped), calls }
    }

    /// How long the round takes at this pace, at the least.
    pub fn length(&self) -> Duration {
        self.spacing.saturating_mul(u32::try_from(self.calls).unwrap_or(u32::MAX))
    }

    /// True when the cap makes the round longer than the interval: tokens are then re-checked
    /// less often than the interval promises.
    pub fn is_behind(&self, limits: RoundLimits) -> bool {
        !limits.interval.is_zero() && self.length() > limits.interval
    }
}

/// What a revalidation round found, besides the tokens it reported invalid.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RoundSummary {
    /// Tokens the authorization server answered for (or that were checked locally).
    pub checked: usize,
    /// Tokens found no longer valid.
    pub invalid: usize,
    /// Tokens left for the next round: unanswered, or not reached because the round ended
    /// early (the server seemed down, or the host stopped it).
    pub skipped: usize,
}

/// Unanswered checks in a row after which a revalidation round ends.
pub const UNANSWERED_CHECKS_ENDING_A_ROUND: usize = 3;

/// Re-checks `tokens` (blocking: run it off the broker's thread), reporting each token found
/// no longer valid to `invalid` as soon as it is known, so its clients are disconnected without
/// waiting for the round's end. Calls to the authorization server are paced by
/// [`RoundPace::plan`] under `limits`; the length of a round that went through and whether
/// revalidation keeps up are recorded in the authenticator's metrics
/// (`revalidation/round_seconds`, `revalidation/behind`), and falling behind or catching up is
/// logged once.
///
/// The round first refreshes the JWKS, so a key the issuer withdrew revokes its tokens. A token
/// the server cannot answer for is skipped (its clients keep their sessions until the next
/// round): one token the server fails on, whoever holds it, must not stop the others from
/// being checked. After [`UNANSWERED_CHECKS_ENDING_A_ROUND`] unanswered checks in a row the
/// server is taken to be down or overloaded and the round ends, rather than costing a timeout
/// per remaining token; the rest are checked next round. `keep_going` is asked before each
/// token and while waiting for a call's turn (a host shutting down stops the round).
pub fn run_revalidation_round(
    auth: &Authenticator,
    tokens: &[RoundToken],
    limits: RoundLimits,
    keep_going: impl Fn() -> bool + Sync,
    invalid: impl Fn(TokenDigest, Rejection) + Sync,
) -> RoundSummary {
    let started = Instant::now();
    if let Err(problem) = auth.refresh_keys() {
        log::warn!("JWKS refresh before revalidation failed: {problem}");
    }
    let (remote, local): (Vec<&RoundToken>, Vec<&RoundToken>) =
        tokens.iter().partition(|token| token.calls_server(auth));
    let round = Round {
        auth,
        keep_going: &keep_going,
        invalid: &invalid,
        checked: AtomicUsize::new(0),
        invalid_count: AtomicUsize::new(0),
        unanswered_in_a_row: AtomicUsize::new(0),
        ended_by: Mutex::new(None),
    };
    for token in local {
        if !keep_going() {
            break;
        }
        round.check(token);
    }
    let pace = RoundPace::plan(remote.len(), limits);
    if pace.is_behind(limits) {
        report_behind(auth, true, pace.length(), remote.len(), limits);
    }
    round.paced(&remote, pace, limits.concurrency);
    let checked = round.checked.into_inner();
    let summary = RoundSummary {
        checked,
        invalid: round.invalid_count.into_inner(),
        skipped: tokens.len() - checked,
    };
    let ended_by = round.ended_by.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner());
    match ended_by {
        Some(problem) => {
            log_unanswered_round(&problem, summary.skipped);
            return summary;
        }
        // Stopped by its host: a shorter round says nothing about keeping up.
        None if !keep_going() => return summary,
        None if summary.skipped > 0 => log::warn!(
            "revalidation: {} token(s) could not be checked this round; their clients are kept and re-checked next round",
            summary.skipped
        ),
        None => {}
    }
    let length = started.elapsed();
    let seconds = length.as_secs() + u64::from(length.subsec_nanos() > 0);
    auth.metrics().revalidation_round_seconds.store(seconds, Ordering::Relaxed);
    let behind = pace.is_behind(limits) || (!limits.interval.is_zero() && length > limits.interval);
    report_behind(auth, behind, length, remote.len(), limits);
    summary
}

/// The shared state of one round's checks.
struct Round<'a, K, I> {
    auth: &'a Authenticator,
    keep_going: &'a K,
    invalid: &'a I,
    checked: AtomicUsize,
    invalid_count: AtomicUsize,
    unanswered_in_a_row: AtomicUsize,
    /// Set when the round ended early, with the last problem.
    ended_by: Mutex<Option<UpstreamError>>,
}

impl<K: Fn() -> bool + Sync, I: Fn(TokenDigest, Rejection) + Sync> Round<'_, K, I> {
    fn is_over(&self) -> bool {
        !(self.keep_going)()
            || self.ended_by.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).is_some()
    }

    /// Checks `remote` with `concurrency` threads, each call starting at its turn: at least
    /// `pace.spacing` after the previous call started (a call that waited for a free thread does
    /// not let the next ones catch up in a burst).
    fn paced(&self, remote: &[&RoundToken], pace: RoundPace, concurrency: usize) {
        let next_index = AtomicUsize::new(0);
        let next_start = Mutex::new(Instant::now());
        let work = || {
            loop {
                let index = next_index.fetch_add(1, Ordering::Relaxed);
                let Some(token) = remote.get(index) else { return };
                let turn = {
                    let mut next = next_start.lock().unwrap_or_else(|p| p.into_inner());
                    let turn = (*next).max(Instant::now());
                    *next = turn + pace.spacing;
                    turn
                };
                if !self.wait_until(turn) {
                    return;
                }
                self.check(token);
            }
        };
        let threads = concurrency.clamp(1, remote.len().max(1));
        if threads == 1 {
            work();
            return;
        }
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(work);
            }
        });
    }

    /// Sleeps until `turn`, waking every 100 ms to see whether the round is over; false if it
    /// is.
    fn wait_until(&self, turn: Instant) -> bool {
        loop {
            if self.is_over() {
                return false;
            }
            let left = turn.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            std::thread::sleep(left.min(Duration::from_millis(100)));
        }
    }

    fn check(&self, token: &RoundToken) {
        match token.check(self.auth) {
            Ok(()) => {
                self.checked.fetch_add(1, Ordering::Relaxed);
                self.unanswered_in_a_row.store(0, Ordering::Relaxed);
            }
            Err(AuthError::Rejected(reason)) => {
                self.checked.fetch_add(1, Ordering::Relaxed);
                self.invalid_count.fetch_add(1, Ordering::Relaxed);
                self.unanswered_in_a_row.store(0, Ordering::Relaxed);
                (self.invalid)(token.digest, reason);
            }
            Err(AuthError::Unavailable(problem)) => {
                let in_a_row = self.unanswered_in_a_row.fetch_add(1, Ordering::Relaxed) + 1;
                if in_a_row >= UNANSWERED_CHECKS_ENDING_A_ROUND {
                    let mut ended_by =
                        self.ended_by.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                    ended_by.get_or_insert(problem);
                }
            }
        }
    }
}

/// Records whether revalidation keeps up, and logs the change once.
fn report_behind(
    auth: &Authenticator,
    behind: bool,
    length: Duration,
    calls: usize,
    limits: RoundLimits,
) {
    let was = auth.metrics().revalidation_behind.swap(u64::from(behind), Ordering::Relaxed) == 1;
    if behind && !was {
        log::warn!(
            "revalidation falls behind: {calls} token(s) to re-check with the authorization server take {:.0} s at up to {} call(s)/s and {} in flight, longer than the {} s interval; revoked tokens may keep their sessions that long (raise oauth_revalidate_max_rps or oauth_revalidate_interval)",
            length.as_secs_f64(),
            limits.max_rps,
            limits.concurrency,
            limits.interval.as_secs()
        );
    } else if was && !behind {
        log::info!(
            "revalidation keeps up again: {calls} token(s) re-checked in {:.0} s, within the {} s interval",
            length.as_secs_f64(),
            limits.interval.as_secs()
        );
    }
}

fn log_unanswered_round(problem: &UpstreamError, skipped: usize) {
    log::warn!(
        "revalidation: {problem}, {UNANSWERED_CHECKS_ENDING_A_ROUND} times in a row; the round ends here, {skipped} token(s) are re-checked next round and their clients kept"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::tests::authenticator;
    use crate::{Grants, Session, TokenSource};

    const EXP: u64 = 1_000;

    fn client(token: &str) -> TokenClient {
        let token = AccessToken::new(token.as_bytes());
        let grants = Grants::from_scopes(["read:q/#"], "").resolve("dev", None);
        let session = Session::new(grants, Some(EXP), token.digest(), TokenSource::Jwt);
        TokenClient::new("dev", session, Recheck::Token(token))
    }

    fn digests(tokens: &[RoundToken]) -> Vec<TokenDigest> {
        tokens.iter().map(|token| token.digest).collect()
    }

    fn digest_of(tokens: &[&str]) -> Vec<TokenDigest> {
        tokens.iter().map(|t| AccessToken::new(t.as_bytes()).digest()).collect()
    }

    #[test]
    fn a_round_checks_each_token_of_the_online_unrevoked_clients_once() {
        let mut gone = client("b");
        gone.left(10);
        let revoked = client("c");
        revoked.revoke();
        let mut released = client("e");
        released.release_recheck();
        gone.release_recheck();
        let clients = [client("a"), client("a"), gone, revoked, client("d"), released];
        let tokens = revalidation_tokens(&clients, 0, Duration::from_secs(60));
        assert_eq!(digests(&tokens), digest_of(&["a", "d"]));
    }

    #[test]
    fn a_token_shared_by_many_clients_costs_one_check() {
        let clients: Vec<_> = (0..101).map(|_| client("shared")).collect();
        let tokens = revalidation_tokens(&clients, 0, Duration::from_secs(60));
        assert_eq!(digests(&tokens), digest_of(&["shared"]));
    }

    #[test]
    fn a_token_expiring_within_the_interval_is_left_to_its_expiry() {
        let clients = [client("a")];
        let interval = Duration::from_secs(60);
        // (now, checked): exp 1000 is within the interval from 940 on.
        for (now, checked) in [(0, true), (939, true), (940, false), (999, false)] {
            let tokens = revalidation_tokens(&clients, now, interval);
            assert_eq!(!tokens.is_empty(), checked, "at {now}");
        }
    }

    #[test]
    fn a_round_is_spread_over_the_interval_and_never_faster_than_the_cap() {
        let limits = |interval_secs, max_rps| RoundLimits {
            interval: Duration::from_secs(interval_secs),
            max_rps,
            concurrency: 4,
        };
        // (calls, interval, cap, spacing in µs, behind)
        let cases = [
            (60, 60, 100, 1_000_000, false),
            (6_000, 60, 100, 10_000, false),
            (12_000, 60, 100, 10_000, true),
            (50_000, 60, 1_000, 1_200, false),
            (100_000, 60, 1_000, 1_000, true),
            (1, 60, 100, 60_000_000, false),
            (0, 60, 100, 10_000, false),
            (10, 0, 100, 10_000, false),
        ];
        for (calls, interval, cap, spacing_us, behind) in cases {
            let limits = limits(interval, cap);
            let pace = RoundPace::plan(calls, limits);
            assert_eq!(pace.spacing, Duration::from_micros(spacing_us), "{calls} in {interval} s");
            assert_eq!(pace.is_behind(limits), behind, "{calls} in {interval} s at {cap}/s");
        }
    }

    fn whole(token: &[u8]) -> RoundToken {
        AccessToken::new(token).into()
    }

    const AT_ONCE: RoundLimits =
        RoundLimits { interval: Duration::ZERO, max_rps: 100_000, concurrency: 1 };

    #[test]
    fn a_revalidation_round_skips_unanswered_tokens_and_ends_when_the_server_seems_down() {
        // Port 9 on loopback refuses: every introspection is unanswered.
        let auth = authenticator();
        let tokens = ["o-1", "o-2", "o-3", "o-4", "o-5"].map(|t| whole(t.as_bytes()));
        let reported = Mutex::new(Vec::new());
        let report = |digest, _| reported.lock().expect("not poisoned").push(digest);
        let summary = run_revalidation_round(&auth, &tokens, AT_ONCE, || true, report);
        assert_eq!(summary, RoundSummary { checked: 0, invalid: 0, skipped: 5 });
        assert!(reported.lock().expect("").is_empty(), "nobody is disconnected for no answer");
        assert_eq!(auth.metrics().snapshot().upstream_calls, 3, "three calls, not five");
        // One unanswered token among answered ones costs only itself: a token that cannot be
        // real is rejected without a call, which counts as an answer.
        let bad = whole(b"has space");
        let mixed = [tokens[0].clone(), bad.clone(), tokens[1].clone(), tokens[2].clone()];
        let summary = run_revalidation_round(&auth, &mixed, AT_ONCE, || true, report);
        assert_eq!(summary, RoundSummary { checked: 1, invalid: 1, skipped: 3 });
        assert_eq!(*reported.lock().expect(""), vec![bad.digest]);
        // A host shutting down stops the round before the next token.
        let summary = run_revalidation_round(&auth, &tokens, AT_ONCE, || false, |_, _| {});
        assert_eq!(summary, RoundSummary { checked: 0, invalid: 0, skipped: 5 });
    }
}
