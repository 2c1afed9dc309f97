//! Counters shared by the core and its host, published by the host (`$SYS/broker/oauth/...`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Monotonic counters; every field is updated with relaxed atomics (exact ordering between
/// counters does not matter, only that none is lost).
#[derive(Debug, Default)]
pub struct Metrics {
    /// Logins accepted with a valid token.
    pub connects_accepted: AtomicU64,
    /// Logins refused (invalid token, or no answer from the authorization server).
    pub connects_denied: AtomicU64,
    /// Logins left to the broker's other mechanisms (not a token login).
    pub connects_deferred: AtomicU64,
    /// Logins refused for now because the broker thread had waited its budget for the
    /// authorization server in this main-loop pass; their tokens are checked in the background
    /// and a reconnect is answered from the cache.
    pub connects_postponed: AtomicU64,
    /// Logins refused because a certificate-bound token came without its certificate (RFC
    /// 8705): a copied token, most likely. Counted in `connects_denied` too.
    pub connects_certificate_mismatch: AtomicU64,
    /// ACL checks allowed.
    pub acl_allowed: AtomicU64,
    /// ACL checks denied.
    pub acl_denied: AtomicU64,
    /// Token validations answered from the cache.
    pub cache_hits: AtomicU64,
    /// Token validations that had to verify the token.
    pub cache_misses: AtomicU64,
    /// Requests sent to the authorization server (introspection and JWKS).
    pub upstream_calls: AtomicU64,
    /// Requests to the authorization server that produced no usable answer.
    pub upstream_errors: AtomicU64,
    /// Sum of upstream request durations, in microseconds.
    pub upstream_latency_us_total: AtomicU64,
    /// Longest upstream request, in microseconds.
    pub upstream_latency_us_max: AtomicU64,
    /// Length of the last finished revalidation round, in whole seconds (rounded up).
    pub revalidation_round_seconds: AtomicU64,
    /// 1 while revalidation cannot keep up: a round at the configured rate cap takes longer
    /// than the interval, so tokens are re-checked less often than the interval says.
    pub revalidation_behind: AtomicU64,
}

/// A point-in-time copy of [`Metrics`], with names for publishing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MetricsSnapshot {
    /// See [`Metrics::connects_accepted`].
    pub connects_accepted: u64,
    /// See [`Metrics::connects_denied`].
    pub connects_denied: u64,
    /// See [`Metrics::connects_deferred`].
    pub connects_deferred: u64,
    /// See [`Metrics::connects_postponed`].
    pub connects_postponed: u64,
    /// See [`Metrics::connects_certificate_mismatch`].
    pub connects_certificate_mismatch: u64,
    /// See [`Metrics::acl_allowed`].
    pub acl_allowed: u64,
    /// See [`Metrics::acl_denied`].
    pub acl_denied: u64,
    /// See [`Metrics::cache_hits`].
    pub cache_hits: u64,
    /// See [`Metrics::cache_misses`].
    pub cache_misses: u64,
    /// See [`Metrics::upstream_calls`].
    pub upstream_calls: u64,
    /// See [`Metrics::upstream_errors`].
    pub upstream_errors: u64,
    /// Mean upstream latency in microseconds (0 before the first call).
    pub upstream_latency_us_avg: u64,
    /// See [`Metrics::upstream_latency_us_max`].
    pub upstream_latency_us_max: u64,
    /// See [`Metrics::revalidation_round_seconds`].
    pub revalidation_round_seconds: u64,
    /// See [`Metrics::revalidation_behind`].
    pub revalidation_behind: u64,
}

impl MetricsSnapshot {
    /// `(topic suffix, value)` pairs, e.g. `("cache/hits", 12)`, for `$SYS/broker/oauth/<suffix>`.
    pub fn named(&self) -> [(&'static str, u64); 15] {
        [
            ("connects/accepted", self.connects_accepted),
            ("connects/denied", self.connects_denied),
            ("connects/deferred", self.connects_deferred),
            ("connects/postponed", self.connects_postponed),
            ("connects/certificate_mismatch", self.connects_certificate_mismatch),
            ("acl/allowed", self.acl_allowed),
            ("acl/denied", self.acl_denied),
            ("cache/hits", self.cache_hits),
            ("cache/misses", self.cache_misses),
            ("upstream/calls", self.upstream_calls),
            ("upstream/errors", self.upstream_errors),
            ("upstream/latency_us/avg", self.upstream_latency_us_avg),
            ("upstream/latency_us/max", self.upstream_latency_us_max),
            ("revalidation/round_seconds", self.revalidation_round_seconds),
            ("revalidation/behind", self.revalidation_behind),
        ]
    }
}

/// Where one issuer profile's cache lookups and calls to its authorization server are
/// counted: the broker-wide counters, and with several profiles the profile's own as well.
#[derive(Debug, Clone)]
pub(crate) struct Counters {
    all: Arc<Metrics>,
    own: Option<Arc<Metrics>>,
}

impl Counters {
    pub(crate) fn new(all: Arc<Metrics>, own: Option<Arc<Metrics>>) -> Self {
        Self { all, own }
    }

    /// The profile's own counters, when it has them.
    pub(crate) fn own(&self) -> Option<&Arc<Metrics>> {
        self.own.as_ref()
    }

    /// Adds one to the counter `field` picks.
    pub(crate) fn bump(&self, field: impl Fn(&Metrics) -> &AtomicU64) {
        Metrics::bump(field(&self.all));
        if let Some(own) = &self.own {
            Metrics::bump(field(own));
        }
    }

    /// Records one upstream request and whether it failed.
    pub(crate) fn record_upstream(&self, elapsed: Duration, failed: bool) {
        self.all.record_upstream(elapsed, failed);
        if let Some(own) = &self.own {
            own.record_upstream(elapsed, failed);
        }
    }
}

impl MetricsSnapshot {
    /// The counters an issuer profile has of its own (its cache and its authorization server),
    /// `(topic suffix, value)`, for `$SYS/broker/oauth/issuers/<name>/<suffix>`.
    pub fn per_issuer(&self) -> impl Iterator<Item = (&'static str, u64)> {
        self.named()
            .into_iter()
            .filter(|(name, _)| name.starts_with("cache/") || name.starts_with("upstream/"))
    }
}

impl Metrics {
    /// Adds one to a counter.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Records one upstream request and whether it failed.
    pub fn record_upstream(&self, elapsed: Duration, failed: bool) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        Self::bump(&self.upstream_calls);
        if failed {
            Self::bump(&self.upstream_errors);
        }
        self.upstream_latency_us_total.fetch_add(micros, Ordering::Relaxed);
        self.upstream_latency_us_max.fetch_max(micros, Ordering::Relaxed);
    }

    /// Copies the counters.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let calls = load(&self.upstream_calls);
        MetricsSnapshot {
            connects_accepted: load(&self.connects_accepted),
            connects_denied: load(&self.connects_denied),
            connects_deferred: load(&self.connects_deferred),
            connects_postponed: load(&self.connects_postponed),
            connects_certificate_mismatch: load(&self.connects_certificate_mismatch),
            acl_allowed: load(&self.acl_allowed),
            acl_denied: load(&self.acl_denied),
            cache_hits: load(&self.cache_hits),
            cache_misses: load(&self.cache_misses),
            upstream_calls: calls,
            upstream_errors: load(&self.upstream_errors),
            upstream_latency_us_avg: load(&self.upstream_latency_us_total)
                .checked_div(calls)
                .unwrap_or(0),
            upstream_latency_us_max: load(&self.upstream_latency_us_max),
            revalidation_round_seconds: load(&self.revalidation_round_seconds),
            revalidation_behind: load(&self.revalidation_behind),
        }
    }
}
