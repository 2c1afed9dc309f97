//! `libmosquitto_oauth.so`: a Mosquitto plugin that accepts OAuth 2.0 access tokens as MQTT
//! passwords and enforces their `mqtt:write:`/`mqtt:read:` scopes as topic rights.
//!
//! All logic lives in the auth core (`oauth_core`) and in [`instance`]; the `v5` and `v4`
//! modules only translate Mosquitto's C interfaces. All `unsafe` code of the project is here.

pub mod clients;
mod clock;
mod codes;
mod ffi;
mod host;
pub mod instance;
mod logging;
pub mod mixed_setup;
pub mod settings;
pub mod v4;
pub mod v5;
pub mod worker;

use std::ffi::c_int;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::ffi::BrokerApi;
use crate::host::Broker;
use crate::instance::Instance;
use crate::settings::PluginConfig;

/// Instances started in this broker process, to label their `$SYS` counters.
static INSTANCES_STARTED: AtomicUsize = AtomicUsize::new(0);

/// Runs a callback body, turning a panic into `on_panic` so that nothing unwinds into C
/// (which would abort the broker).
#[inline(always)]
pub(crate) fn guard(on_panic: c_int, body: impl FnOnce() -> c_int) -> c_int {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|_| {
        log::error!("internal error (panic) in a callback; answering {on_panic} (fail closed)");
        on_panic
    })
}

/// Resolves the broker's functions, parses the options and starts an instance; on failure,
/// logs why and returns the code for the broker.
pub(crate) fn start_instance(
    options: &[(&str, &str)],
    legacy: bool,
) -> Result<(BrokerApi, Instance<Broker>), c_int> {
    let Some(api) = BrokerApi::resolve() else {
        return Err(codes::UNKNOWN);
    };
    let refuse = |error: oauth_core::ConfigError| {
        logging::broker_log(
            &api,
            log::Level::Error,
            &format!("oauth: configuration error: {error}"),
        );
        codes::INVALID_CONFIG
    };
    let config = PluginConfig::from_pairs(options.iter().copied()).map_err(refuse)?;
    logging::configure(api, &config.log_dest).map_err(refuse)?;
    let broker_settings = mixed_setup::broker_config_path()
        .and_then(|path| std::fs::read_to_string(path).ok())
        .map(|text| mixed_setup::BrokerSettings::parse(&text))
        .unwrap_or_default();
    let leak_warning = broker_settings.leak_warning(config.core.token_username.as_deref());
    // Mosquitto 2.1 refuses a delayed login outright when we do not accept it, without asking
    // its password_file: keep such set-ups synchronous so password users still get in.
    let delayed_logins = api.complete_basic_auth.is_some()
        && !legacy
        && leak_warning.is_none()
        && !(broker_settings.password_file && config.core.token_username.is_none());
    let ordinal = INSTANCES_STARTED.fetch_add(1, Ordering::Relaxed) + 1;
    let host = Broker { api, delayed_logins };
    let local_users = mixed_setup::LocalUsers::load(broker_settings.password_files.clone());
    let instance =
        Instance::new(host, config, ordinal).map_err(refuse)?.with_local_users(local_users);
    log::info!(
        "plugin ready: {}{}",
        instance.describe(),
        if delayed_logins { ", delayed logins" } else { "" }
    );
    for warning in leak_warning
        .map(str::to_owned)
        .into_iter()
        .chain(instance.authenticator().config().unbound_identity_warning())
        .chain(broker_settings.identity_listener_warnings())
        .chain((instance.needs_certificates() && api.client_certificate.is_none()).then(|| {
            "this broker cannot hand plugins the client certificate (no TLS, or \
                 mosquitto_client_certificate, i2d_X509 or X509_free missing): certificate-bound \
                 tokens will be refused (oauth_require_certificate_binding)"
                .to_owned()
        }))
    {
        log::warn!("{warning}");
    }
    Ok((api, instance))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_callback_answers_the_fail_closed_code() {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let answer = guard(codes::ACL_FAILED, || panic!("boom"));
        std::panic::set_hook(previous);
        assert_eq!(answer, codes::ACL_FAILED);
        assert_eq!(guard(codes::ACL_FAILED, || codes::SUCCESS), codes::SUCCESS);
    }

    #[test]
    fn committed_header_matches_the_generated_one() {
        let generated = include_str!(concat!(env!("OUT_DIR"), "/mosquitto_oauth.h"));
        let committed = include_str!("../../include/mosquitto_oauth.h");
        assert!(
            generated == committed,
            "include/mosquitto_oauth.h is stale: run MOSQUITTO_OAUTH_UPDATE_HEADER=1 cargo build -p mosquitto-oauth-plugin"
        );
    }

    #[test]
    fn version_negotiation_picks_5_when_offered() {
        let offered = [5, 4, 3, 2];
        // SAFETY: pointer and count describe `offered`.
        let chosen = unsafe { v5::mosquitto_plugin_version(4, offered.as_ptr()) };
        assert_eq!(chosen, 5);
        let legacy_only = [4, 3, 2];
        // SAFETY: as above.
        assert_eq!(unsafe { v5::mosquitto_plugin_version(3, legacy_only.as_ptr()) }, 4);
        // SAFETY: as above.
        assert_eq!(unsafe { v5::mosquitto_plugin_version(1, [3].as_ptr()) }, -1);
        // SAFETY: NULL with count 0 is handled.
        assert_eq!(unsafe { v5::mosquitto_plugin_version(0, std::ptr::null()) }, -1);
        assert_eq!(v4::mosquitto_auth_plugin_version(), 4);
    }

    #[test]
    fn access_flags_map_to_access_kinds() {
        use oauth_core::Access;
        assert_eq!(v5::access(1), Some(Access::Read));
        assert_eq!(v5::access(2), Some(Access::Write));
        assert_eq!(v5::access(4), Some(Access::Subscribe));
        assert_eq!(v5::access(8), Some(Access::Unsubscribe));
        assert_eq!(v5::access(3), None);
        assert_eq!(v5::access(-1), None);
    }
}
