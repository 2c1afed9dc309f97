//! The entry point both hosts use: validate a token (cached), log a client in, decide ACLs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use moka::sync::Cache;

use crate::config::{Config, ConfigError, DEFAULT_PROFILE, JwtRevocation, Mode};
use crate::grants::{Access, SessionGrants};
use crate::http::{HttpClient, UpstreamError};
use crate::introspect::{Introspection, Introspector};
use crate::jwt::{JwtVerifier, KeyFingerprint, VerifyError, looks_like_jwt, unverified_issuer};
use crate::metrics::{Counters, Metrics};
use crate::policy::Recheck;
use crate::secret::{AccessToken, TokenDigest};
use crate::token::{Rejection, TokenInfo, TokenSource, check_claims, now_epoch};

/// Longest token accepted; longer passwords are not sent to the authorization server at all.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Why a login or validation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The token was checked and is not acceptable.
    #[error("token rejected: {0}")]
    Rejected(#[from] Rejection),
    /// The token could not be checked (authorization server unreachable, slow or broken).
    #[error("token could not be checked: {0}")]
    Unavailable(#[from] UpstreamError),
}

/// A cached verdict about one token.
type Verdict = Result<TokenInfo, Rejection>;

/// Cache entry lifetimes: valid tokens until `min(ttl, exp - now)`, rejections for the
/// negative TTL, except "unknown key": after a key rotation the same token becomes valid as
/// soon as the next JWKS download is allowed, and retrying it costs no network call before then.
struct VerdictExpiry {
    ttl: Duration,
    negative_ttl: Duration,
}

impl moka::Expiry<TokenDigest, Verdict> for VerdictExpiry {
    fn expire_after_create(
        &self,
        _: &TokenDigest,
        verdict: &Verdict,
        _: Instant,
    ) -> Option<Duration> {
        Some(match verdict {
            Ok(info) => positive_lifetime(self.ttl, info.expires_at, since_epoch()),
            Err(Rejection::UnknownKey) => Duration::ZERO,
            Err(_) => self.negative_ttl,
        })
    }
}

/// How long a valid token may be trusted without asking again; `now` is the time since the
/// epoch (sub-second precision, so an entry never outlives `exp`).
pub fn positive_lifetime(ttl: Duration, expires_at: Option<u64>, now: Duration) -> Duration {
    match expires_at {
        Some(exp) => ttl.min(Duration::from_secs(exp).saturating_sub(now)),
        None => ttl,
    }
}

fn since_epoch() -> Duration {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default()
}

/// Validates tokens and builds sessions. Cheap to share behind an `Arc`; every method may be
/// called from any thread.
pub struct Authenticator {
    config: Arc<Config>,
    /// The issuer profiles, in the order opaque tokens try them (see [`Config::profiles`]).
    profiles: Vec<Profile>,
    http: HttpClient,
    revoked_jwts: RevokedJwts,
    metrics: Arc<Metrics>,
}

/// One authorization server: its configuration, the means to check its tokens, and its own
/// cache of verdicts (one profile's answer never stands for another's).
struct Profile {
    /// `None` for the only profile of a configuration without named ones.
    name: Option<String>,
    /// Its place among the authenticator's profiles, recorded in the verdicts it gives
    /// ([`TokenInfo::profile`]).
    index: u8,
    config: Arc<Config>,
    introspector: Option<Introspector>,
    jwt: Option<JwtVerifier>,
    cache: Cache<TokenDigest, Verdict>,
    counters: Counters,
}

/// Which profiles may validate a token.
enum Route<'a> {
    /// The one whose issuer the JWT names (or the default profile).
    One(&'a Profile),
    /// An opaque token: every profile with an introspection endpoint, in order; the first
    /// that knows the token decides.
    InOrder(Vec<&'a Profile>),
    /// None can: refused without a call.
    Nowhere(Rejection),
}

/// JWTs that introspection found revoked (`oauth_jwt_revocation introspect`), with their
/// `exp`. Their signature stays valid, so once the rejection leaves the verdict cache
/// (negative TTL, or evicted by a flood of other tokens) a login would be verified locally and
/// admitted again until the next revalidation round: this set keeps them refused until `exp`.
/// Outside the bounded cache on purpose, so that no amount of other tokens can push one out;
/// it only grows by tokens revoked while a client held a session with them.
#[derive(Default)]
struct RevokedJwts(Mutex<HashMap<TokenDigest, Option<u64>>>);

impl RevokedJwts {
    fn insert(&self, digest: TokenDigest, expires_at: Option<u64>, now: u64) {
        let mut revoked = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        revoked.retain(|_, exp| exp.is_none_or(|exp| exp > now));
        revoked.insert(digest, expires_at);
    }

    /// Whether `token` is one of them; hashes it only when there are any.
    fn holds(&self, token: &str) -> bool {
        let revoked = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        !revoked.is_empty() && revoked.contains_key(&AccessToken::new(token.as_bytes()).digest())
    }
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut debug = f.debug_struct("Authenticator");
        for profile in &self.profiles {
            debug.field(profile.name.as_deref().unwrap_or(DEFAULT_PROFILE), profile);
        }
        debug.finish()
    }
}

impl std::fmt::Debug for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Profile")
            .field("mode", &self.config.mode)
            .field("introspection", &self.introspector.is_some())
            .field("jwt", &self.jwt)
            .field("cached", &self.cache.entry_count())
            .finish()
    }
}

impl Profile {
    fn new(
        name: Option<String>,
        index: usize,
        config: Arc<Config>,
        http: &HttpClient,
        all: &Arc<Metrics>,
    ) -> Result<Self, ConfigError> {
        let counters =
            Counters::new(Arc::clone(all), name.as_ref().map(|_| Arc::new(Metrics::default())));
        let introspector =
            config.introspection.clone().map(|settings| Introspector::new(settings, http.clone()));
        let jwt = match (&config.keys, config.mode) {
            (Some(source), Mode::Auto | Mode::Jwt) => Some(JwtVerifier::new(
                source,
                &config.spelling.of("jwks_file"),
                config.algorithms.clone(),
                http.clone(),
                counters.clone(),
            )?),
            _ => None,
        };
        let cache = Cache::builder()
            .max_capacity(config.cache.max_entries)
            .expire_after(VerdictExpiry {
                ttl: config.cache.ttl,
                negative_ttl: config.cache.negative_ttl,
            })
            .build();
        let index = u8::try_from(index).map_err(|_| {
            ConfigError::invalid(&config.spelling.of("issuers"), "at most 255 issuer profiles")
        })?;
        Ok(Self { name, index, config, introspector, jwt, cache, counters })
    }

    /// Whether opaque tokens may be sent to this profile's introspection endpoint.
    fn introspects_opaque_tokens(&self) -> bool {
        self.introspector.is_some() && self.config.mode != Mode::Jwt
    }

    fn introspect(&self, token: &AccessToken) -> Result<Introspection, UpstreamError> {
        let Some(introspector) = &self.introspector else {
            return Ok(Introspection::Inactive);
        };
        let started = Instant::now();
        let answer = introspector.introspect(token);
        self.counters.record_upstream(started.elapsed(), answer.is_err());
        answer
    }

    /// Whether validating `token` here may call the authorization server.
    fn needs_network(&self, token: &str) -> bool {
        let verifier = self.jwt.as_ref().filter(|_| self.config.mode != Mode::Introspect);
        match verifier {
            Some(jwt) if looks_like_jwt(token) => jwt.would_fetch(token),
            _ => true,
        }
    }

    fn introspects_jwts_at_revalidation(&self, info: &TokenInfo) -> bool {
        info.source == TokenSource::Jwt && self.config.jwt_revocation == JwtRevocation::Introspect
    }
}

/// How the answers of several profiles to an opaque token add up: the first that knows the
/// token (anything but "inactive") decides; if none does, a profile that could not answer
/// makes it unchecked (it might have known the token), else it is inactive.
fn first_that_knows<'a, T>(
    profiles: impl IntoIterator<Item = &'a Profile>,
    mut ask: impl FnMut(&'a Profile) -> Result<T, AuthError>,
) -> Result<T, AuthError> {
    let mut unavailable = None;
    for profile in profiles {
        match ask(profile) {
            Err(AuthError::Rejected(Rejection::Inactive)) => {}
            Err(AuthError::Unavailable(problem)) => {
                unavailable.get_or_insert(problem);
            }
            known => return known,
        }
    }
    Err(unavailable.map_or(AuthError::Rejected(Rejection::Inactive), AuthError::Unavailable))
}

impl Authenticator {
    /// Sets up HTTP, keys and caches. Fails (naming the option) when a file cannot be used.
    pub fn new(config: Config) -> Result<Self, ConfigError> {
        let metrics = Arc::new(Metrics::default());
        let http = HttpClient::new(&config)?;
        let config = Arc::new(config);
        let named = !config.issuers.is_empty();
        let mut profiles = Vec::new();
        if config.validates_tokens() {
            let name = named.then(|| DEFAULT_PROFILE.to_owned());
            profiles.push(Profile::new(name, 0, Arc::clone(&config), &http, &metrics)?);
        }
        for issuer in &config.issuers {
            let profile_config = Arc::new(issuer.config.clone());
            let (name, index) = (Some(issuer.name.clone()), profiles.len());
            profiles.push(Profile::new(name, index, profile_config, &http, &metrics)?);
        }
        let auth = Self { config, profiles, http, revoked_jwts: RevokedJwts::default(), metrics };
        // Now rather than at the first login, so that a client that cannot be set up stops the
        // start; and only when used, so that a broker without network work starts no thread.
        if auth.uses_network() {
            auth.http.set_up()?;
        }
        Ok(auth)
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The counters.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Every counter as `(topic suffix, value)` for `$SYS/broker/oauth/<suffix>`: the
    /// broker-wide ones, and with issuer profiles each profile's cache and authorization
    /// server counters under `issuers/<name>/` (see
    /// [`MetricsSnapshot::per_issuer`](crate::MetricsSnapshot::per_issuer)).
    pub fn sys_counters(&self) -> Vec<(String, u64)> {
        let mut counters: Vec<(String, u64)> = self
            .metrics
            .snapshot()
            .named()
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value))
            .collect();
        for profile in &self.profiles {
            let (Some(name), Some(own)) = (&profile.name, profile.counters.own()) else {
                continue;
            };
            for (suffix, value) in own.snapshot().per_issuer() {
                counters.push((format!("issuers/{name}/{suffix}"), value));
            }
        }
        counters
    }

    /// Whether any profile takes usernames from a claim (`oauth_username_claim`).
    pub fn claims_usernames(&self) -> bool {
        self.profiles.iter().any(|profile| profile.config.username_claim.is_some())
    }

    /// The profiles that may validate `token`: a JWT goes to the profile of its `iss` (the
    /// default profile when none names it), an opaque token to every profile that introspects.
    fn route(&self, token: &str) -> Route<'_> {
        if let [only] = self.profiles.as_slice() {
            return Route::One(only);
        }
        if looks_like_jwt(token) {
            let issuer = unverified_issuer(token);
            let named = self.profiles.iter().find(|profile| {
                profile.name.as_deref() != Some(DEFAULT_PROFILE)
                    && issuer.is_some()
                    && profile.config.issuer == issuer
            });
            let default =
                || self.profiles.iter().find(|p| p.name.as_deref() == Some(DEFAULT_PROFILE));
            return match named.or_else(default) {
                Some(profile) => Route::One(profile),
                None => Route::Nowhere(Rejection::WrongIssuer),
            };
        }
        let introspecting: Vec<&Profile> =
            self.profiles.iter().filter(|p| p.introspects_opaque_tokens()).collect();
        if introspecting.is_empty() {
            Route::Nowhere(Rejection::Malformed(
                "not a JWT, and no introspection endpoint is configured",
            ))
        } else {
            Route::InOrder(introspecting)
        }
    }

    /// Validates a token, answering from the cache when possible. Concurrent validations of one
    /// token make a single upstream call.
    pub fn validate(&self, token: &AccessToken) -> Result<TokenInfo, AuthError> {
        let text = precheck(token)?;
        match self.route(text) {
            Route::One(profile) => self.validate_at(profile, token, text),
            Route::InOrder(profiles) => {
                first_that_knows(profiles, |profile| self.validate_at(profile, token, text))
            }
            Route::Nowhere(rejection) => Err(AuthError::Rejected(rejection)),
        }
    }

    fn validate_at(
        &self,
        profile: &Profile,
        token: &AccessToken,
        text: &str,
    ) -> Result<TokenInfo, AuthError> {
        let mut verified_here = false;
        let verdict = profile.cache.try_get_with(token.digest(), || {
            verified_here = true;
            self.verify(profile, text)
        });
        profile.counters.bump(|m| if verified_here { &m.cache_misses } else { &m.cache_hits });
        match verdict {
            Ok(Ok(info)) => Ok(info),
            Ok(Err(rejection)) => Err(AuthError::Rejected(rejection)),
            Err(upstream) => Err(AuthError::Unavailable((*upstream).clone())),
        }
    }

    /// [`validate`](Self::validate), with every call to the authorization server given up
    /// after `limit` when that is shorter than `oauth_http_timeout_ms` (the error is then
    /// [`UpstreamError::Timeout`] of `limit`): for a host thread that shares one waiting budget
    /// among several logins.
    pub fn validate_waiting_at_most(
        &self,
        token: &AccessToken,
        limit: Duration,
    ) -> Result<TokenInfo, AuthError> {
        crate::http::with_wait_limit(limit, || self.validate(token))
    }

    /// Validates a token without consulting the cache, and refreshes its cache entry with the
    /// answer (used to re-check live sessions for revocation). With `oauth_jwt_revocation
    /// introspect`, a JWT that is still valid locally is also introspected: the authorization
    /// server may have revoked it. An opaque token that a profile holds valid is re-checked
    /// there alone.
    pub fn revalidate(&self, token: &AccessToken) -> Result<TokenInfo, AuthError> {
        let text = precheck(token)?;
        match self.route(text) {
            Route::One(profile) => self.revalidate_at(profile, token, text),
            Route::InOrder(profiles) => {
                let digest = token.digest();
                let holder = profiles.iter().find(|profile| {
                    profile.cache.get(&digest).is_some_and(|verdict| verdict.is_ok())
                });
                match holder {
                    Some(profile) => self.revalidate_at(profile, token, text),
                    None => first_that_knows(profiles, |profile| {
                        self.revalidate_at(profile, token, text)
                    }),
                }
            }
            Route::Nowhere(rejection) => Err(AuthError::Rejected(rejection)),
        }
    }

    fn revalidate_at(
        &self,
        profile: &Profile,
        token: &AccessToken,
        text: &str,
    ) -> Result<TokenInfo, AuthError> {
        let verdict = match self.verify(profile, text)? {
            Ok(info) if profile.introspects_jwts_at_revalidation(&info) => {
                if matches!(profile.introspect(token)?, Introspection::Active(_)) {
                    Ok(info)
                } else {
                    self.revoked_jwts.insert(token.digest(), info.expires_at, now_epoch());
                    Err(Rejection::Inactive)
                }
            }
            verdict => verdict,
        };
        profile.cache.insert(token.digest(), verdict.clone());
        verdict.map_err(AuthError::Rejected)
    }

    /// What revalidation keeps to re-check the token `info` was validated from. A JWT verified
    /// locally whose revocation is not introspected can only stop being valid by expiring (the
    /// expiry kick acts) or by its signing key leaving the JWKS: only the key's fingerprint is
    /// kept, not the token (several hundred bytes per connected client). Every other token is
    /// kept to be validated again.
    pub fn recheck_for(&self, info: &TokenInfo, token: AccessToken) -> Recheck {
        let introspected = self
            .profiles
            .get(usize::from(info.profile))
            .is_none_or(|profile| profile.introspects_jwts_at_revalidation(info));
        match info.signing_key {
            Some(key) if !introspected => Recheck::SigningKey { profile: info.profile, key },
            _ => Recheck::Token(token),
        }
    }

    /// Re-checks the token with `digest` that `profile` verified with the key `key`: valid
    /// while the profile's key set (as the round's JWKS refresh left it) still publishes that
    /// key. A withdrawn key is refused as [`Rejection::UnknownKey`], as re-verifying the token
    /// would be, and the token's cached verdict is dropped, so a login with it is verified
    /// again (and refused while the key stays withdrawn).
    pub fn recheck_signing_key(
        &self,
        digest: TokenDigest,
        profile: u8,
        key: KeyFingerprint,
    ) -> Result<(), AuthError> {
        let Some(profile) = self.profiles.get(usize::from(profile)) else {
            return Err(AuthError::Rejected(Rejection::UnknownKey));
        };
        if profile.jwt.as_ref().is_some_and(|jwt| jwt.still_publishes(key)) {
            return Ok(());
        }
        profile.cache.invalidate(&digest);
        Err(AuthError::Rejected(Rejection::UnknownKey))
    }

    /// True when re-checking `token` at revalidation calls the authorization server (what a
    /// round paces): introspected tokens, JWTs whose keys must be fetched, and with
    /// `oauth_jwt_revocation introspect` every JWT.
    pub fn revalidation_calls_server(&self, token: &AccessToken) -> bool {
        let Some(text) = token.expose_str() else { return true };
        match self.route(text) {
            Route::One(profile) => {
                profile.needs_network(text)
                    || (profile.config.jwt_revocation == JwtRevocation::Introspect
                        && looks_like_jwt(text))
            }
            Route::InOrder(_) => true,
            Route::Nowhere(_) => false,
        }
    }

    /// Drops a token's cached verdicts.
    pub fn forget(&self, token: &AccessToken) {
        let digest = token.digest();
        for profile in &self.profiles {
            profile.cache.invalidate(&digest);
        }
    }

    /// Downloads the JWKS of every profile again (rate-limited like refetches on an unknown
    /// `kid`); a no-op without remote keys. Called from background threads so that the broker
    /// thread rarely has to fetch keys itself. One profile's failure does not stop the others';
    /// the first is returned.
    pub fn refresh_keys(&self) -> Result<(), UpstreamError> {
        let mut first_failure = None;
        for jwt in self.profiles.iter().filter_map(|profile| profile.jwt.as_ref()) {
            if let Err(problem) = jwt.refresh() {
                first_failure.get_or_insert(problem);
            }
        }
        first_failure.map_or(Ok(()), Err)
    }

    /// True when validating a token may call the authorization server (introspection, or keys
    /// downloaded from a URL); false when everything is checked against a local key file, so
    /// the host needs no background thread at all.
    pub fn uses_network(&self) -> bool {
        self.profiles.iter().any(|p| p.introspector.is_some()) || self.downloads_keys()
    }

    /// True when JWT verification keys come from a URL (directly or through discovery).
    pub fn downloads_keys(&self) -> bool {
        self.profiles.iter().any(|p| p.jwt.as_ref().is_some_and(JwtVerifier::is_remote))
    }

    /// Lets the HTTP client go (its runtime thread and pooled connections) when the
    /// authorization server has not been called for `quiet`; the next call sets it up again.
    /// For hosts that want no idle threads; true when it was let go.
    pub fn release_idle_http(&self, quiet: Duration) -> bool {
        self.http.release_if_idle(quiet)
    }

    /// Drops every cached verdict (operator-requested flush, e.g. on SIGHUP).
    pub fn forget_all(&self) {
        for profile in &self.profiles {
            profile.cache.invalidate_all();
        }
    }

    /// Number of cached verdicts (approximate; for diagnostics).
    pub fn cached_entries(&self) -> u64 {
        self.profiles
            .iter()
            .map(|profile| {
                profile.cache.run_pending_tasks();
                profile.cache.entry_count()
            })
            .sum()
    }

    /// Logs a client in: validates the token, applies the client-id binding, resolves
    /// placeholders against the client's id and (claimed or given) username.
    pub fn login(
        &self,
        token: &AccessToken,
        client_id: &str,
        username: Option<&str>,
    ) -> Result<Session, AuthError> {
        let info = self.validate(token)?;
        self.session_for(&info, token, client_id, username, now_epoch())
    }

    /// True when validating this token may call the authorization server: it would be
    /// introspected, or it is a JWT whose key is not loaded yet (a JWKS download is due).
    /// False when it is verified locally with the keys at hand.
    pub fn needs_network(&self, token: &AccessToken) -> bool {
        let Some(text) = token.expose_str() else { return true };
        match self.route(text) {
            Route::One(profile) => profile.needs_network(text),
            Route::InOrder(_) => true,
            Route::Nowhere(_) => false,
        }
    }

    /// The cached verdict for a token, without verifying anything (`None` on a miss): lets a
    /// host answer at once when it can and hand misses to a background thread.
    pub fn cached(&self, token: &AccessToken) -> Option<Result<TokenInfo, AuthError>> {
        let digest = token.digest();
        let cached_at = |profile: &Profile| -> Option<Result<TokenInfo, AuthError>> {
            let verdict = profile.cache.get(&digest)?;
            profile.counters.bump(|m| &m.cache_hits);
            Some(verdict.map_err(AuthError::Rejected))
        };
        match self.route(token.expose_str()?) {
            Route::One(profile) => cached_at(profile),
            Route::InOrder(profiles) => {
                for profile in profiles {
                    match cached_at(profile)? {
                        Err(AuthError::Rejected(Rejection::Inactive)) => {}
                        known => return Some(known),
                    }
                }
                Some(Err(AuthError::Rejected(Rejection::Inactive)))
            }
            Route::Nowhere(_) => None,
        }
    }

    /// The second half of [`login`](Self::login), for a token already validated: client-id
    /// binding, placeholders, expiry.
    pub fn session_for(
        &self,
        info: &TokenInfo,
        token: &AccessToken,
        client_id: &str,
        username: Option<&str>,
        now: u64,
    ) -> Result<Session, AuthError> {
        let config = self
            .profiles
            .get(usize::from(info.profile))
            .map_or(&*self.config, |profile| &*profile.config);
        if let (Some(claim), Some(bound)) = (&config.client_id_claim, &info.bound_client_id)
            && **bound != *client_id
        {
            return Err(Rejection::ClientIdMismatch(claim.clone()).into());
        }
        let username = info.username.as_deref().or(username);
        let session = Session {
            grants: info.grants.resolve(client_id, username),
            expires_at: info.expires_at,
            username: info.username.clone(),
            token: token.digest(),
            source: info.source,
        };
        if session.is_expired(now) {
            return Err(Rejection::Expired.into());
        }
        Ok(session)
    }

    /// One uncached verification by `profile`, by the route its mode selects.
    fn verify(&self, profile: &Profile, token: &str) -> Result<Verdict, UpstreamError> {
        let is_jwt = looks_like_jwt(token);
        let now = now_epoch();
        let config = &profile.config;
        let verdict = match (config.mode, &profile.jwt, &profile.introspector) {
            (Mode::Jwt, _, _) if !is_jwt => Err(Rejection::Malformed("not a JWT (oauth_mode jwt)")),
            (Mode::Jwt | Mode::Auto, Some(jwt), _) if is_jwt => match jwt.verify(token) {
                Ok(_) if self.revoked_jwts.holds(token) => Err(Rejection::Inactive),
                Ok((claims, key)) => check_claims(&claims, config, TokenSource::Jwt, now)
                    .map(|info| TokenInfo { signing_key: Some(key), ..info }),
                Err(VerifyError::Rejected(rejection)) => Err(rejection),
                Err(VerifyError::Upstream(e)) => return Err(e),
            },
            (Mode::Introspect | Mode::Auto, _, Some(_)) => {
                match profile.introspect(&AccessToken::new(token.as_bytes()))? {
                    Introspection::Active(claims) => {
                        check_claims(&claims, config, TokenSource::Introspection, now)
                    }
                    Introspection::Inactive => Err(Rejection::Inactive),
                }
            }
            _ => {
                Err(Rejection::Malformed("not a JWT, and no introspection endpoint is configured"))
            }
        };
        Ok(verdict.map(|info| TokenInfo { profile: profile.index, ..info }))
    }
}

/// Cheap checks that need no upstream call: anything failing them is not a real token.
fn precheck(token: &AccessToken) -> Result<&str, Rejection> {
    if token.is_empty() {
        return Err(Rejection::Malformed("empty"));
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(Rejection::Malformed("longer than 16384 bytes"));
    }
    match token.expose_str() {
        Some(text) if text.bytes().all(|b| b.is_ascii_graphic()) => Ok(text),
        _ => Err(Rejection::Malformed("contains bytes outside printable ASCII")),
    }
}

/// What a logged-in client may do, and until when.
///
/// `repr(C)`: what every ACL check reads (grants, expiry) comes first, next to the marks of
/// the [`TokenClient`](crate::policy::TokenClient) that holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[repr(C)]
pub struct Session {
    grants: SessionGrants,
    expires_at: Option<u64>,
    username: Option<Box<str>>,
    token: TokenDigest,
    source: TokenSource,
}

impl Session {
    /// A session as a validation would open it (for the core's own tests).
    #[cfg(test)]
    pub(crate) fn new(
        grants: SessionGrants,
        expires_at: Option<u64>,
        token: TokenDigest,
        source: TokenSource,
    ) -> Self {
        Self { grants, expires_at, username: None, token, source }
    }

    /// Decides one ACL check at time `now` (epoch seconds): nothing is allowed once the token
    /// has expired.
    #[inline]
    pub fn allows(&self, access: Access, topic: impl AsRef<[u8]>, now: u64) -> bool {
        !self.is_expired(now) && self.grants.allows(access, topic)
    }

    /// Decides one ACL check at `now` for a client that went offline at `left_at`. Such a
    /// client publishes nothing but its will, fixed at CONNECT, so its WRITE checks are decided
    /// as of the moment it left: a (delayed) will is published after the token expired only if
    /// the token was still valid when the client went away, and an expiry disconnect, which
    /// happens at `exp`, leaves no will. Deliveries of queued messages need a valid token now.
    #[inline]
    pub fn allows_offline(
        &self,
        access: Access,
        topic: impl AsRef<[u8]>,
        left_at: u64,
        now: u64,
    ) -> bool {
        let at = if access == Access::Write { left_at.min(now) } else { now };
        self.allows(access, topic, at)
    }

    /// True once `exp` has passed.
    #[inline]
    pub fn is_expired(&self, now: u64) -> bool {
        self.expires_at.is_some_and(|exp| now >= exp)
    }

    /// `exp` of the token, epoch seconds.
    pub fn expires_at(&self) -> Option<u64> {
        self.expires_at
    }

    /// The username taken from `oauth_username_claim`, when configured.
    pub fn username(&self) -> Option<&str> {
        self.username.as_deref()
    }

    /// Digest of the token this session was opened with.
    pub fn token_digest(&self) -> TokenDigest {
        self.token
    }

    /// How the token was verified.
    pub fn source(&self) -> TokenSource {
        self.source
    }

    /// The resolved grants.
    pub fn grants(&self) -> &SessionGrants {
        &self.grants
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_lifetime_is_the_shorter_of_ttl_and_remaining_token_life() {
        let ttl = Duration::from_secs(300);
        let now = Duration::from_millis(1_000_250);
        assert_eq!(positive_lifetime(ttl, None, now), ttl);
        assert_eq!(positive_lifetime(ttl, Some(1060), now), Duration::from_millis(59_750));
        assert_eq!(positive_lifetime(ttl, Some(5000), now), ttl);
        assert_eq!(positive_lifetime(ttl, Some(900), now), Duration::ZERO);
    }

    #[test]
    fn an_offline_clients_will_is_decided_as_of_when_it_left_its_deliveries_now() {
        let session = Session {
            grants: crate::Grants::from_scopes(["write:wills/#", "read:q/#"], "")
                .resolve("c", None),
            expires_at: Some(1000),
            username: None,
            token: AccessToken::new(&b"t"[..]).digest(),
            source: TokenSource::Jwt,
        };
        // (access, topic, left_at, now, allowed)
        let cases = [
            (Access::Write, "wills/c", 900, 950, true),
            (Access::Write, "wills/c", 900, 5000, true), // left in time, will sent after exp
            (Access::Write, "wills/c", 1000, 1065, false), // left at exp (the expiry kick)
            (Access::Write, "ops/x", 900, 950, false),
            (Access::Read, "q/1", 900, 950, true),
            (Access::Read, "q/1", 900, 1000, false), // queued delivery after exp
        ];
        for (access, topic, left_at, now, allowed) in cases {
            assert_eq!(
                session.allows_offline(access, topic, left_at, now),
                allowed,
                "{access:?} {topic} left {left_at} now {now}"
            );
        }
    }

    #[test]
    fn a_revoked_jwt_is_remembered_until_its_expiry() {
        let revoked = RevokedJwts::default();
        let digest = |text: &str| AccessToken::new(text.as_bytes()).digest();
        assert!(!revoked.holds("a"));
        revoked.insert(digest("a"), Some(1_000), 900);
        revoked.insert(digest("forever"), None, 900);
        assert!(revoked.holds("a") && revoked.holds("forever") && !revoked.holds("b"));
        // Each insertion drops the entries whose token has expired by then.
        revoked.insert(digest("b"), Some(2_000), 1_000);
        assert!(!revoked.holds("a"));
        assert!(revoked.holds("b") && revoked.holds("forever"));
    }

    #[test]
    fn tokens_that_cannot_be_real_are_rejected_without_a_call() {
        let long = vec![b'a'; MAX_TOKEN_BYTES + 1];
        for (bytes, reason) in [
            (&b""[..], "empty"),
            (&long[..], "longer than 16384 bytes"),
            (&b"abc\0def"[..], "contains bytes outside printable ASCII"),
            (&b"has space"[..], "contains bytes outside printable ASCII"),
            (&[0xff, 0xfe][..], "contains bytes outside printable ASCII"),
        ] {
            assert_eq!(precheck(&AccessToken::new(bytes)), Err(Rejection::Malformed(reason)));
        }
        assert_eq!(precheck(&AccessToken::new(&b"abc.def-_~+/="[..])), Ok("abc.def-_~+/="));
    }
}
