//! RFC 7662 token introspection.

use serde_json::Value;

use crate::config::{ClientAuth, IntrospectionSettings};
use crate::http::{HttpClient, JsonObject, UpstreamError, form_encode};
use crate::secret::AccessToken;

/// Largest introspection answer read; real ones are well under 4 KiB.
pub(crate) const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// What the introspection endpoint said about a token.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Introspection {
    /// `active: true`, with the token's claims.
    Active(JsonObject),
    /// `active: false` (or anything but `true`).
    Inactive,
}

/// Calls the configured introspection endpoint.
#[derive(Debug, Clone)]
pub(crate) struct Introspector {
    settings: IntrospectionSettings,
    http: HttpClient,
}

impl Introspector {
    pub(crate) fn new(settings: IntrospectionSettings, http: HttpClient) -> Self {
        Self { settings, http }
    }

    /// POSTs the token to the endpoint and interprets the answer.
    pub(crate) fn introspect(&self, token: &AccessToken) -> Result<Introspection, UpstreamError> {
        let settings = &self.settings;
        let mut body =
            format!("token={}&token_type_hint=access_token", form_encode(token.expose_bytes()));
        let basic = match settings.client_auth {
            ClientAuth::Basic => {
                Some((settings.client_id.as_str(), settings.client_secret.expose()))
            }
            ClientAuth::Post => {
                body.push_str("&client_id=");
                body.push_str(&form_encode(settings.client_id.as_bytes()));
                body.push_str("&client_secret=");
                body.push_str(&form_encode(settings.client_secret.expose().as_bytes()));
                None
            }
        };
        let answer = self.http.post_form(&settings.url, body, basic, MAX_RESPONSE_BYTES)?;
        match answer.get("active") {
            Some(Value::Bool(true)) => Ok(Introspection::Active(answer)),
            Some(Value::Bool(false)) => Ok(Introspection::Inactive),
            Some(_) => Err(UpstreamError::Malformed("\"active\" is not a boolean".into())),
            None => Err(UpstreamError::Malformed("no \"active\" field".into())),
        }
    }
}
