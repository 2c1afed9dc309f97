//! The real [`Host`]: the running Mosquitto.

use std::ffi::{CString, c_int, c_void};

use crate::ffi::BrokerApi;
use crate::instance::Host;

/// Mosquitto itself, through the resolved function table.
#[derive(Clone, Copy)]
pub(crate) struct Broker {
    pub(crate) api: BrokerApi,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Broker")
    }
}

impl Host for Broker {
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
