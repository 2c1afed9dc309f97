//! Redacted newtypes for values that must never reach a log line.
//!
//! `Debug` and `Display` print `[redacted]`; the raw value is reachable only through an
//! explicitly named accessor, so a stray `{:?}` cannot leak a token or a client secret.

use std::fmt;

use sha2::{Digest, Sha256};

const REDACTED: &str = "[redacted]";

/// An access token as presented by a client (the MQTT password, or the MQTT 5 auth data).
///
/// Tokens are binary-safe: MQTT passwords are binary data and may hold any byte.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(Box<[u8]>);

impl AccessToken {
    /// Wraps the raw bytes of a token.
    pub fn new(bytes: impl Into<Box<[u8]>>) -> Self {
        Self(bytes.into())
    }

    /// The raw token, for sending to the authorization server. Never log this.
    pub fn expose_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The token as text when it is valid UTF-8 (every real OAuth token is ASCII).
    pub fn expose_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    /// Length in bytes, safe to log.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for a zero-length token.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// SHA-256 of the token: the cache key, so the cache never holds a token itself.
    pub fn digest(&self) -> TokenDigest {
        TokenDigest(Sha256::digest(&self.0).into())
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccessToken({REDACTED}, {} bytes)", self.0.len())
    }
}

/// SHA-256 digest of an access token.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenDigest([u8; 32]);

impl fmt::Debug for TokenDigest {
    /// Only a short prefix: enough to correlate log lines, useless for guessing the token.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "TokenDigest({:02x}{:02x}{:02x}{:02x}..)",
            self.0[0], self.0[1], self.0[2], self.0[3]
        )
    }
}

/// A credential of ours (the introspection client secret).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the HTTP request that needs it. Never log this.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_of_token_and_secret_never_shows_the_value() {
        let token = AccessToken::new(b"eyJhbGciOi.secret-token".to_vec());
        let secret = Secret::new("hunter2");
        let printed = format!("{token:?} {secret:?} {secret} {:?}", token.digest());
        assert!(!printed.contains("secret-token"), "{printed}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("[redacted]"));
    }

    #[test]
    fn digest_is_sha256_of_the_raw_bytes() {
        let token = AccessToken::new(b"abc".to_vec());
        let expected: [u8; 32] = Sha256::digest(b"abc").into();
        assert_eq!(token.digest(), TokenDigest(expected));
        assert_ne!(token.digest(), AccessToken::new(b"abd".to_vec()).digest());
    }
}
