//! Local verification of JWT access tokens (RFC 9068) against a JWKS.
//!
//! Only the signature is checked here; the claim rules (`exp`, `nbf`, `iss`, `aud`, scopes) are
//! shared with introspection in [`crate::token::check_claims`], so both paths agree.

use std::num::NonZeroU64;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::config::{ConfigError, KeySource};
use crate::http::{HttpClient, JsonObject, UpstreamError};
use crate::metrics::Counters;
use crate::token::Rejection;

/// Shortest time between two JWKS downloads: an unknown `kid` cannot make us hammer the server.
pub const REFRESH_MIN_INTERVAL: Duration = Duration::from_secs(5);
/// Largest JWKS or discovery document read.
pub(crate) const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// Names one verification key by its public parameters (not its `kid`, which an issuer may
/// reuse for new key material): lets a revalidation ask whether the key that verified a token
/// is still published without keeping the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyFingerprint(NonZeroU64);

impl KeyFingerprint {
    fn of(jwk: &Jwk) -> Result<Self, serde_json::Error> {
        // The parameters serialize in a fixed field order, so equal keys hash equally.
        let parameters = serde_json::to_vec(&jwk.algorithm)?;
        let hash = Sha256::digest(&parameters);
        let mut first = [0; 8];
        first.copy_from_slice(&hash[..8]);
        Ok(Self(NonZeroU64::new(u64::from_le_bytes(first)).unwrap_or(NonZeroU64::MIN)))
    }
}

/// One usable verification key from the JWKS.
struct VerificationKey {
    kid: Option<String>,
    fingerprint: KeyFingerprint,
    key: DecodingKey,
    /// Algorithms this key may verify, per its type, curve and optional `alg`.
    algorithms: Vec<Algorithm>,
}

/// The current key set.
#[derive(Default)]
pub(crate) struct KeySet {
    keys: Vec<VerificationKey>,
}

impl KeySet {
    /// Builds the usable keys of a JWKS document; keys we cannot or must not use (symmetric,
    /// encryption-only, unknown types) are skipped.
    fn from_document(document: &JsonObject) -> Result<Self, String> {
        let Some(Value::Array(entries)) = document.get("keys") else {
            return Err("JWKS has no \"keys\" array".into());
        };
        let mut keys = Vec::new();
        for entry in entries {
            let Ok(jwk) = serde_json::from_value::<Jwk>(entry.clone()) else {
                log::debug!("skipping a JWKS entry of unsupported form");
                continue;
            };
            if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
                continue;
            }
            let algorithms = compatible_algorithms(&jwk);
            if algorithms.is_empty() {
                continue;
            }
            let usable = DecodingKey::from_jwk(&jwk)
                .map_err(|e| e.to_string())
                .and_then(|key| Ok((key, KeyFingerprint::of(&jwk).map_err(|e| e.to_string())?)));
            match usable {
                Ok((key, fingerprint)) => keys.push(VerificationKey {
                    kid: jwk.common.key_id.clone(),
                    fingerprint,
                    key,
                    algorithms,
                }),
                Err(e) => log::warn!("skipping JWKS key {:?}: {e}", jwk.common.key_id),
            }
        }
        Ok(Self { keys })
    }

    fn candidates<'a>(
        &'a self,
        kid: Option<&'a str>,
        alg: Algorithm,
    ) -> impl Iterator<Item = &'a VerificationKey> + 'a {
        self.keys.iter().filter(move |k| {
            k.algorithms.contains(&alg) && (kid.is_none() || k.kid.as_deref() == kid)
        })
    }

    fn publishes(&self, fingerprint: KeyFingerprint) -> bool {
        self.keys.iter().any(|k| k.fingerprint == fingerprint)
    }

    fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    /// Whether a token with this header needs keys this set does not have.
    fn lacks_key_for(&self, header: &jsonwebtoken::Header) -> bool {
        match header.kid.as_deref() {
            Some(kid) => !self.has_kid(kid),
            None => self.candidates(None, header.alg).next().is_none(),
        }
    }
}

fn compatible_algorithms(jwk: &Jwk) -> Vec<Algorithm> {
    use Algorithm::*;
    let by_type: &[Algorithm] = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => &[RS256, RS384, RS512, PS256, PS384, PS512],
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => &[ES256],
            EllipticCurve::P384 => &[ES384],
            _ => &[],
        },
        AlgorithmParameters::OctetKeyPair(_) => &[EdDSA],
        // Symmetric keys would let anyone holding the JWKS mint tokens: never used.
        _ => &[],
    };
    by_type
        .iter()
        .copied()
        .filter(|alg| jwk.common.key_algorithm.is_none_or(|k| k == KeyAlgorithm::from(*alg)))
        .collect()
}

/// Where keys come from at run time.
enum Fetch {
    /// A file read once at start.
    Fixed,
    /// A URL, or a URL found through discovery.
    Remote { source: KeySource, http: HttpClient, counters: Counters },
}

/// Verifies JWT signatures against the configured key set.
pub(crate) struct JwtVerifier {
    algorithms: Vec<Algorithm>,
    keys: RwLock<Arc<KeySet>>,
    fetch: Fetch,
    /// When the last download was attempted; serialises downloads and rate-limits them.
    last_fetch: Mutex<Option<Instant>>,
    /// Why the last download failed (`None` once one succeeds): a login refused for want of
    /// keys inside the rate-limit window is told the real cause, not "no usable key".
    last_failure: Mutex<Option<UpstreamError>>,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let count = self.keys.read().map(|k| k.keys.len()).unwrap_or(0);
        f.debug_struct("JwtVerifier")
            .field("algorithms", &self.algorithms)
            .field("keys", &count)
            .finish()
    }
}

impl JwtVerifier {
    /// A verifier for the configured source. A JWKS file is read now (errors name the option
    /// `jwks_file_option`, as the host spells it); remote keys are fetched on first use.
    pub(crate) fn new(
        source: &KeySource,
        jwks_file_option: &str,
        algorithms: Vec<Algorithm>,
        http: HttpClient,
        counters: Counters,
    ) -> Result<Self, ConfigError> {
        let (keys, fetch) = match source {
            KeySource::File(path) => (load_file(path, jwks_file_option)?, Fetch::Fixed),
            remote => (KeySet::default(), Fetch::Remote { source: remote.clone(), http, counters }),
        };
        Ok(Self {
            algorithms,
            keys: RwLock::new(Arc::new(keys)),
            fetch,
            last_fetch: Mutex::new(None),
            last_failure: Mutex::new(None),
        })
    }

    /// True when keys are downloaded (a URL or discovery), false for a file.
    pub(crate) fn is_remote(&self) -> bool {
        matches!(self.fetch, Fetch::Remote { .. })
    }

    fn current(&self) -> Arc<KeySet> {
        match self.keys.read() {
            Ok(keys) => Arc::clone(&keys),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Downloads the key set unless one was downloaded less than [`REFRESH_MIN_INTERVAL`] ago.
    /// Returns the key set to use afterwards.
    pub(crate) fn refresh(&self) -> Result<Arc<KeySet>, UpstreamError> {
        let Fetch::Remote { source, http, counters } = &self.fetch else {
            return Ok(self.current());
        };
        let mut last = self.last_fetch.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|at| at.elapsed() < REFRESH_MIN_INTERVAL) {
            return Ok(self.current());
        }
        let started = Instant::now();
        *last = Some(started);
        let fetched = fetch_jwks(http, source);
        counters.record_upstream(started.elapsed(), fetched.is_err());
        let loaded = fetched.and_then(|(url, document)| {
            let keys = KeySet::from_document(&document).map_err(UpstreamError::Malformed)?;
            Ok((url, keys))
        });
        *self.last_failure.lock().unwrap_or_else(|p| p.into_inner()) =
            loaded.as_ref().err().cloned();
        let (url, keys) = loaded?;
        let keys = Arc::new(keys);
        log::info!("loaded {} verification key(s) from {url}", keys.keys.len());
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = Arc::clone(&keys);
        Ok(keys)
    }

    /// Whether verifying `token` now would download the key set: its key is missing and a
    /// download is due. Lets a host move such logins off a thread that must not wait.
    pub(crate) fn would_fetch(&self, token: &str) -> bool {
        let Fetch::Remote { .. } = &self.fetch else {
            return false;
        };
        let Ok(header) = parse_header(token) else {
            return false;
        };
        let rate_limited = self
            .last_fetch
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|at| at.elapsed() < REFRESH_MIN_INTERVAL);
        !rate_limited && self.current().lacks_key_for(&header)
    }

    /// Whether the current key set (as the last download left it) still holds the key
    /// `fingerprint` names.
    pub(crate) fn still_publishes(&self, fingerprint: KeyFingerprint) -> bool {
        self.current().publishes(fingerprint)
    }

    /// Verifies the signature and returns the claims with the key that verified them.
    /// Rejections are answers about the token; [`VerifyError::Upstream`] means the keys could
    /// not be obtained.
    pub(crate) fn verify(&self, token: &str) -> Result<(JsonObject, KeyFingerprint), VerifyError> {
        let header = parse_header(token)?;
        let alg = header.alg;
        if !self.algorithms.contains(&alg) {
            return Err(Rejection::DisallowedAlgorithm(format!("{alg:?}")).into());
        }
        if let Some(typ) = &header.typ
            && !is_access_token_type(typ)
        {
            return Err(Rejection::WrongType(typ.clone()).into());
        }
        let kid = header.kid.as_deref();
        let mut keys = self.current();
        if keys.lacks_key_for(&header) {
            keys = match self.refresh() {
                Ok(keys) => keys,
                Err(e) if keys.keys.is_empty() => return Err(VerifyError::Upstream(e)),
                Err(e) => {
                    log::warn!("JWKS refresh failed, keeping the previous keys: {e}");
                    keys
                }
            };
            if keys.keys.is_empty() {
                // Inside the rate-limit window nothing was downloaded now: say why the last
                // download failed (e.g. the JWKS URL was down at start), if it did.
                let last_failure = self.last_failure.lock().unwrap_or_else(|p| p.into_inner());
                let why = match &*last_failure {
                    Some(failure) => format!("the last JWKS download failed: {failure}"),
                    None => "the JWKS holds no usable key".into(),
                };
                return Err(VerifyError::Upstream(UpstreamError::KeysUnavailable(why)));
            }
        }

        let mut validation = Validation::new(alg);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();

        let mut outcome = Err(Rejection::UnknownKey.into());
        for candidate in keys.candidates(kid, alg) {
            match jsonwebtoken::decode::<JsonObject>(token, &candidate.key, &validation) {
                Ok(data) => return Ok((data.claims, candidate.fingerprint)),
                Err(e) => outcome = Err(map_jwt_error(&e).into()),
            }
        }
        outcome
    }
}

/// Failure of [`JwtVerifier::verify`].
#[derive(Debug)]
pub(crate) enum VerifyError {
    /// The token is not acceptable.
    Rejected(Rejection),
    /// No keys to check it with.
    Upstream(UpstreamError),
}

impl From<Rejection> for VerifyError {
    fn from(rejection: Rejection) -> Self {
        Self::Rejected(rejection)
    }
}

fn is_access_token_type(typ: &str) -> bool {
    ["at+jwt", "application/at+jwt", "jwt"].iter().any(|t| typ.eq_ignore_ascii_case(t))
}

/// Reads the header ourselves first so that `alg: none` and unknown algorithms get a precise
/// rejection instead of a generic parse error.
fn parse_header(token: &str) -> Result<jsonwebtoken::Header, Rejection> {
    let encoded = token.split('.').next().unwrap_or("");
    let bytes = URL_SAFE_NO_PAD
        .decode(encoded)
        .map_err(|_| Rejection::Malformed("JWT header is not base64url"))?;
    let raw: JsonObject = serde_json::from_slice(&bytes)
        .map_err(|_| Rejection::Malformed("JWT header is not JSON"))?;
    match raw.get("alg").and_then(Value::as_str) {
        None => return Err(Rejection::Malformed("JWT header has no alg")),
        Some(alg) if alg.parse::<Algorithm>().is_err() => {
            return Err(Rejection::DisallowedAlgorithm(alg.to_owned()));
        }
        Some(_) => {}
    }
    jsonwebtoken::decode_header(token).map_err(|_| Rejection::Malformed("JWT header is invalid"))
}

fn map_jwt_error(error: &jsonwebtoken::errors::Error) -> Rejection {
    use jsonwebtoken::errors::ErrorKind;
    match error.kind() {
        ErrorKind::InvalidSignature => Rejection::BadSignature,
        ErrorKind::InvalidAlgorithm
        | ErrorKind::InvalidAlgorithmName
        | ErrorKind::UnsupportedAlgorithm => Rejection::DisallowedAlgorithm("for this key".into()),
        ErrorKind::Base64(_)
        | ErrorKind::Json(_)
        | ErrorKind::Utf8(_)
        | ErrorKind::InvalidToken => Rejection::Malformed("JWT is not well formed"),
        _ => Rejection::BadSignature,
    }
}

/// The `iss` claim of a JWT, read without verifying anything: only to pick the issuer whose
/// keys then verify the token. `None` when there is none or the payload cannot be read.
pub(crate) fn unverified_issuer(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let claims: JsonObject = serde_json::from_slice(&bytes).ok()?;
    claims.get("iss")?.as_str().map(|iss| iss.trim_end_matches('/').to_owned())
}

/// True when the token has the shape of a JWS compact serialization with a JSON header.
pub(crate) fn looks_like_jwt(token: &str) -> bool {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    // "eyJ" is base64url of `{"`.
    header.starts_with("eyJ") && !payload.is_empty()
}

/// Downloads the JWKS (after discovery, when configured so), returning its URL and content.
fn fetch_jwks(
    http: &HttpClient,
    source: &KeySource,
) -> Result<(String, JsonObject), UpstreamError> {
    let url = match source {
        KeySource::Url(url) => url.clone(),
        KeySource::Discovery(issuer) => discover_jwks_uri(http, issuer)?,
        KeySource::File(path) => {
            return Err(UpstreamError::KeysUnavailable(format!(
                "{} is not refetched",
                path.display()
            )));
        }
    };
    let document = http.get_json(&url, MAX_DOCUMENT_BYTES)?;
    Ok((url, document))
}

fn discover_jwks_uri(http: &HttpClient, issuer: &str) -> Result<String, UpstreamError> {
    let url = format!("{issuer}/.well-known/openid-configuration");
    let document = http.get_json(&url, MAX_DOCUMENT_BYTES)?;
    match document.get("issuer").and_then(Value::as_str) {
        Some(found) if found.trim_end_matches('/') == issuer => {}
        found => {
            return Err(UpstreamError::Malformed(format!(
                "discovery document names issuer {found:?}, expected {issuer:?}"
            )));
        }
    }
    document
        .get("jwks_uri")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| UpstreamError::Malformed("discovery document has no jwks_uri".into()))
}

fn load_file(path: &Path, key: &str) -> Result<KeySet, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::invalid(key, format!("cannot read {}: {e}", path.display())))?;
    let document: JsonObject = serde_json::from_str(&text).map_err(|e| {
        ConfigError::invalid(key, format!("{} is not a JSON object: {e}", path.display()))
    })?;
    let keys = KeySet::from_document(&document)
        .map_err(|e| ConfigError::invalid(key, format!("{}: {e}", path.display())))?;
    if keys.keys.is_empty() {
        return Err(ConfigError::invalid(
            key,
            format!("{} holds no usable public key", path.display()),
        ));
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_named_by_its_material_not_its_kid() {
        let published: Value =
            serde_json::from_str(include_str!("../tests/keys/jwks-rotated.json")).expect("JSON");
        let entry = |kid: &str| {
            let keys = published["keys"].as_array().expect("keys");
            keys.iter().find(|key| key["kid"] == kid).expect("fixture key").clone()
        };
        let set_of = |entry: Value| {
            let document = JsonObject::from_iter([("keys".to_owned(), Value::Array(vec![entry]))]);
            KeySet::from_document(&document).expect("a key set")
        };
        let fingerprint = |set: &KeySet| set.keys[0].fingerprint;
        let rsa_1 = set_of(entry("rsa-1"));
        let mut relabelled = entry("rsa-2");
        relabelled["kid"] = "rsa-1".into();
        let relabelled = set_of(relabelled);
        assert!(!relabelled.publishes(fingerprint(&rsa_1)), "new material under an old kid");
        assert!(relabelled.publishes(fingerprint(&set_of(entry("rsa-2")))), "kid left out");
        assert!(rsa_1.publishes(fingerprint(&set_of(entry("rsa-1")))), "same on every download");
    }

    #[test]
    fn jwt_shape_detection_needs_three_parts_and_a_json_header() {
        assert!(looks_like_jwt("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"));
        assert!(!looks_like_jwt("opaque-token"));
        assert!(!looks_like_jwt("a.b.c"));
        assert!(!looks_like_jwt("eyJ.x.y.z"));
        assert!(!looks_like_jwt("eyJhbGciOiJSUzI1NiJ9..c2ln"));
    }

    #[test]
    fn access_token_types_are_recognised() {
        for typ in ["at+jwt", "AT+JWT", "application/at+jwt", "JWT"] {
            assert!(is_access_token_type(typ), "{typ}");
        }
        for typ in ["dpop+jwt", "logout+jwt", "secevent+jwt"] {
            assert!(!is_access_token_type(typ), "{typ}");
        }
    }

    #[test]
    fn alg_none_is_rejected_before_any_key_lookup() {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(br#"{"exp":9999999999}"#);
        let token = format!("{header}.{payload}.");
        assert_eq!(parse_header(&token).err(), Some(Rejection::DisallowedAlgorithm("none".into())));
    }
}
