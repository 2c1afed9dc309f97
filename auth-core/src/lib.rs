//! The auth core of mosquitto-oauth: OAuth 2.0 access-token validation (RFC 7662 introspection
//! and local RFC 9068 JWT verification), scope-to-topic ACL semantics that mirror Mosquitto's,
//! and a TTL cache. It has no unsafe code and knows nothing about any broker: the Mosquitto
//! plugin and the fallback broker are thin hosts around [`Authenticator`].
//!
//! A host builds a [`Config`] from its `(key, value)` options, creates an [`Authenticator`],
//! calls [`Authenticator::login`] when a client connects with a token, keeps the returned
//! [`Session`] for that client, and asks [`Session::allows`] on every publish, subscribe and
//! delivery.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod authenticator;
pub mod binding;
pub mod config;
pub mod grants;
mod http;
mod introspect;
mod jwt;
pub mod metrics;
pub mod policy;
pub mod report;
pub mod secret;
pub mod token;
pub mod topic;

pub use authenticator::{AuthError, Authenticator, MAX_TOKEN_BYTES, Session, positive_lifetime};
pub use binding::{
    Binding, BindingFailure, CertificateBinding, CertificateThumbprint, Confirmation,
};
pub use config::{Config, ConfigError};
pub use grants::{Access, Grants, SessionGrants};
pub use http::UpstreamError;
pub use jwt::{KeyFingerprint, REFRESH_MIN_INTERVAL};
pub use metrics::{Metrics, MetricsSnapshot};
pub use secret::{AccessToken, Secret, TokenDigest};
pub use token::{Rejection, TokenInfo, TokenSource, now_epoch};
