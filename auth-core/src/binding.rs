//! Certificate-bound access tokens (RFC 8705 §3): a token whose `cnf` claim (in the JWT, or in
//! the introspection answer) carries `x5t#S256` may only be used on a connection that presented
//! that TLS client certificate, so a copied token is useless without the device's private key.
//!
//! The token's side is parsed once per validation and cached with the token ([`Confirmation`]);
//! the connection's side is the host's ([`CertificateThumbprint::of_der`] of the certificate it
//! was given), compared at every login by [`CertificateBinding::check`].

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::http::JsonObject;
use crate::token::Rejection;

/// The `cnf` member naming a certificate's SHA-256 thumbprint.
pub const X5T_S256: &str = "x5t#S256";

/// SHA-256 of a DER-encoded X.509 certificate: the value of `cnf.x5t#S256`, base64url-decoded.
/// Not a secret (it hashes a public certificate), so it is shown in full.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CertificateThumbprint([u8; 32]);

impl CertificateThumbprint {
    /// The thumbprint of the certificate `der`.
    pub fn of_der(der: &[u8]) -> Self {
        Self(Sha256::digest(der).into())
    }

    /// Parses the base64url form a `cnf` claim carries (padding tolerated).
    pub fn from_base64url(text: &str) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).ok()?;
        bytes.try_into().ok().map(Self)
    }
}

impl fmt::Display for CertificateThumbprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&URL_SAFE_NO_PAD.encode(self.0))
    }
}

impl fmt::Debug for CertificateThumbprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CertificateThumbprint({self})")
    }
}

/// What a token's `cnf` claim binds it to. One pointer wide: most tokens are bearer tokens,
/// and every cached token pays this field.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Confirmation {
    /// No `cnf`: a plain bearer token.
    #[default]
    Bearer,
    /// A `cnf` naming a proof of possession.
    Bound(Box<Binding>),
}

/// The proof of possession a `cnf` claim asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Binding {
    /// `cnf.x5t#S256`: the TLS client certificate with this thumbprint.
    Certificate(CertificateThumbprint),
    /// A `cnf` without `x5t#S256` (a DPoP `jkt`, a raw `jwk`, ...): proof of possession an MQTT
    /// connection cannot give. The member names are kept for the log.
    Other(Box<str>),
}

impl Confirmation {
    /// Reads the `cnf` claim of a token's claims or introspection answer.
    pub(crate) fn from_claims(claims: &JsonObject) -> Result<Self, Rejection> {
        let members = match claims.get("cnf") {
            None | Some(Value::Null) => return Ok(Self::Bearer),
            Some(Value::Object(members)) => members,
            Some(_) => return Err(Rejection::InvalidClaim("cnf".into())),
        };
        match members.get(X5T_S256) {
            Some(Value::String(text)) => CertificateThumbprint::from_base64url(text)
                .map(|thumbprint| Self::Bound(Box::new(Binding::Certificate(thumbprint))))
                .ok_or_else(|| Rejection::InvalidClaim(format!("cnf.{X5T_S256}"))),
            Some(_) => Err(Rejection::InvalidClaim(format!("cnf.{X5T_S256}"))),
            None if members.is_empty() => Ok(Self::Bearer),
            None => {
                let names: Vec<&str> = members.keys().map(String::as_str).collect();
                Ok(Self::Bound(Box::new(Binding::Other(names.join(", ").into()))))
            }
        }
    }
}

/// `oauth_require_certificate_binding`: how certificate-bound tokens are enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CertificateBinding {
    /// `cnf` is ignored: every token is used as a bearer token (for brokers behind a proxy that
    /// terminates TLS, where the client's certificate never reaches the broker).
    Off,
    /// A token that carries `cnf` must be proven: `x5t#S256` must be the thumbprint of the
    /// certificate the client presented on this connection. Unbound tokens are bearer tokens.
    #[default]
    WhenPresent,
    /// Every token must be bound to the certificate the client presented.
    Required,
}

impl CertificateBinding {
    /// The option's values, as written in the configuration.
    pub const NAMES: &'static str = "off, when-present or required";

    /// Parses an option value.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "off" => Some(Self::Off),
            "when-present" => Some(Self::WhenPresent),
            "required" => Some(Self::Required),
            _ => None,
        }
    }

    /// The option value naming this mode.
    pub fn name(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::WhenPresent => "when-present",
            Self::Required => "required",
        }
    }

    /// Whether logins need the client's certificate thumbprint at all (hosts skip the work of
    /// getting it otherwise).
    pub fn needs_certificates(self) -> bool {
        self != Self::Off
    }

    /// Decides whether a token with `confirmation` may be used on a connection that presented
    /// the certificate `presented` (`None`: no certificate, or one the host cannot see).
    pub fn check(
        self,
        confirmation: &Confirmation,
        presented: Option<&CertificateThumbprint>,
    ) -> Result<(), BindingFailure> {
        let binding = match (self, confirmation) {
            (Self::Off, _) | (Self::WhenPresent, Confirmation::Bearer) => return Ok(()),
            (Self::Required, Confirmation::Bearer) => return Err(BindingFailure::Unbound),
            (_, Confirmation::Bound(binding)) => &**binding,
        };
        match (binding, presented) {
            (Binding::Other(members), _) => {
                Err(BindingFailure::UnprovableConfirmation(members.clone()))
            }
            (Binding::Certificate(_), None) => Err(BindingFailure::NoCertificate),
            (Binding::Certificate(bound), Some(presented)) if bound == presented => Ok(()),
            (Binding::Certificate(bound), Some(presented)) => {
                Err(BindingFailure::OtherCertificate { bound: *bound, presented: *presented })
            }
        }
    }
}

/// Why a token may not be used on this connection. Never left to other mechanisms: the token
/// itself is fine, it is presented by the wrong holder.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BindingFailure {
    /// The token is bound to a certificate and the connection presented none.
    #[error(
        "the token is bound to a TLS client certificate (cnf x5t#S256) and the connection presented none"
    )]
    NoCertificate,
    /// The token is bound to another certificate than the one presented.
    #[error("the token is bound to the certificate {bound}, the connection presented {presented}")]
    OtherCertificate {
        /// `cnf.x5t#S256`.
        bound: CertificateThumbprint,
        /// The presented certificate's thumbprint.
        presented: CertificateThumbprint,
    },
    /// `required`, and the token is not bound to a certificate.
    #[error("the token is not bound to a certificate (no cnf x5t#S256) and binding is required")]
    Unbound,
    /// The token's `cnf` asks for a proof of possession MQTT cannot carry.
    #[error("the token is bound by cnf {0}, which an MQTT connection cannot prove")]
    UnprovableConfirmation(Box<str>),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate(thumbprint: CertificateThumbprint) -> Confirmation {
        Confirmation::Bound(Box::new(Binding::Certificate(thumbprint)))
    }

    #[test]
    fn a_confirmation_is_one_pointer_wide() {
        assert_eq!(size_of::<Confirmation>(), size_of::<usize>());
    }

    fn claims(value: Value) -> JsonObject {
        match value {
            Value::Object(map) => map,
            _ => unreachable!("test literal is an object"),
        }
    }

    #[test]
    fn the_thumbprint_is_the_base64url_sha256_of_the_der_certificate() {
        // RFC 8705 §3.1's example value is the base64url of a SHA-256; check our round trip and
        // the hash on a known input (SHA-256 of "abc").
        let thumbprint = CertificateThumbprint::of_der(b"abc");
        assert_eq!(thumbprint.to_string(), "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0");
        assert_eq!(
            CertificateThumbprint::from_base64url(&thumbprint.to_string()),
            Some(thumbprint)
        );
        assert_eq!(
            CertificateThumbprint::from_base64url("ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0="),
            Some(thumbprint)
        );
        assert_eq!(CertificateThumbprint::from_base64url("ungWv48Bz-pBQUDeXa4iI7ADYaOW"), None);
        assert_eq!(CertificateThumbprint::from_base64url("not base64!"), None);
    }

    #[test]
    fn the_cnf_claim_names_a_certificate_another_proof_or_nothing() {
        let bound = CertificateThumbprint::of_der(b"device certificate");
        let cases = [
            (serde_json::json!({}), Ok(Confirmation::Bearer)),
            (serde_json::json!({"cnf": null}), Ok(Confirmation::Bearer)),
            (serde_json::json!({"cnf": {}}), Ok(Confirmation::Bearer)),
            (serde_json::json!({"cnf": {"x5t#S256": bound.to_string()}}), Ok(certificate(bound))),
            (
                serde_json::json!({"cnf": {"x5t#S256": bound.to_string(), "jkt": "k"}}),
                Ok(certificate(bound)),
            ),
            (
                serde_json::json!({"cnf": {"jkt": "k"}}),
                Ok(Confirmation::Bound(Box::new(Binding::Other("jkt".into())))),
            ),
            (serde_json::json!({"cnf": "x"}), Err(Rejection::InvalidClaim("cnf".into()))),
            (
                serde_json::json!({"cnf": {"x5t#S256": "short"}}),
                Err(Rejection::InvalidClaim("cnf.x5t#S256".into())),
            ),
            (
                serde_json::json!({"cnf": {"x5t#S256": 5}}),
                Err(Rejection::InvalidClaim("cnf.x5t#S256".into())),
            ),
        ];
        for (value, expected) in cases {
            assert_eq!(Confirmation::from_claims(&claims(value.clone())), expected, "{value}");
        }
    }

    #[test]
    fn a_bound_token_is_used_only_with_its_certificate_and_required_refuses_bearer_tokens() {
        use CertificateBinding::{Off, Required, WhenPresent};
        let mine = CertificateThumbprint::of_der(b"mine");
        let theirs = CertificateThumbprint::of_der(b"theirs");
        let bound = certificate(mine);
        let dpop = Confirmation::Bound(Box::new(Binding::Other("jkt".into())));
        let bearer = Confirmation::Bearer;
        let other = BindingFailure::OtherCertificate { bound: mine, presented: theirs };
        let unprovable = BindingFailure::UnprovableConfirmation("jkt".into());
        // (mode, token, presented certificate, outcome)
        let cases = [
            (Off, &bound, None, Ok(())),
            (Off, &bound, Some(&theirs), Ok(())),
            (Off, &dpop, None, Ok(())),
            (WhenPresent, &bearer, None, Ok(())),
            (WhenPresent, &bearer, Some(&theirs), Ok(())),
            (WhenPresent, &bound, Some(&mine), Ok(())),
            (WhenPresent, &bound, Some(&theirs), Err(other.clone())),
            (WhenPresent, &bound, None, Err(BindingFailure::NoCertificate)),
            (WhenPresent, &dpop, Some(&mine), Err(unprovable.clone())),
            (Required, &bound, Some(&mine), Ok(())),
            (Required, &bound, Some(&theirs), Err(other)),
            (Required, &bound, None, Err(BindingFailure::NoCertificate)),
            (Required, &bearer, Some(&mine), Err(BindingFailure::Unbound)),
            (Required, &dpop, Some(&mine), Err(unprovable)),
        ];
        for (mode, token, presented, outcome) in cases {
            assert_eq!(mode.check(token, presented), outcome, "{mode:?} {token:?} {presented:?}");
        }
    }

    #[test]
    fn the_option_names_its_three_modes() {
        assert_eq!(CertificateBinding::parse("off"), Some(CertificateBinding::Off));
        assert_eq!(
            CertificateBinding::parse("when-present"),
            Some(CertificateBinding::WhenPresent)
        );
        assert_eq!(CertificateBinding::parse("required"), Some(CertificateBinding::Required));
        assert_eq!(CertificateBinding::parse("on"), None);
        assert_eq!(CertificateBinding::default(), CertificateBinding::WhenPresent);
    }
}
