//! The real [`Host`]: the running Mosquitto.

use std::ffi::{CString, c_int, c_void};

use crate::codes;
use crate::ffi::BrokerApi;
use crate::instance::{AuthDecision, Host};

/// Mosquitto itself, through the resolved function table.
#[derive(Clone, Copy)]
pub(crate) struct Broker {
    pub(crate) api: BrokerApi,
    /// Logins needing the authorization server are answered later (Mosquitto 2.1).
    pub(crate) delayed_logins: bool,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Broker")
    }
}

impl Host for Broker {
    fn supports_delayed_login(&self) -> bool {
        self.delayed_logins
    }

    fn complete_login(&self, client_id: &str, decision: AuthDecision) {
        let (Some(complete), Ok(client_id)) =
            (self.api.complete_basic_auth, CString::new(client_id))
        else {
            return;
        };
        // SAFETY: `complete` is 2.1's `mosquitto_complete_basic_auth`, called on the main thread
        // (TICK); it is a no-op for a client that has gone away. The id is NUL-terminated.
        unsafe { complete(client_id.as_ptr(), codes::login(decision)) };
    }

    fn kick(&self, client_id: &str) {
        let (Some(kick), Ok(client_id)) =
            (self.api.kick_client_by_clientid, CString::new(client_id))
        else {
            return;
        };
        // SAFETY: `kick` is `mosquitto_kick_client_by_clientid`, called on the main thread from
        // TICK or a login callback (see `Host::kick`); the id is NUL-terminated.
        unsafe { kick(client_id.as_ptr(), false) };
    }

    fn publish_retained(&self, topic: &str, payload: &[u8]) {
        let (Some(publish), Ok(topic), Ok(length)) =
            (self.api.broker_publish_copy, CString::new(topic), c_int::try_from(payload.len()))
        else {
            return;
        };
        // SAFETY: `publish` is `mosquitto_broker_publish_copy`, which copies the payload; the
        // topic is NUL-terminated, the payload pointer/length describe a live slice, and NULL
        // client id / properties are documented as "from the broker" / "none".
        unsafe {
            publish(
                std::ptr::null(),
                topic.as_ptr(),
                length,
                payload.as_ptr().cast::<c_void>(),
                0,
                true,
                std::ptr::null_mut(),
            );
        }
    }
}
