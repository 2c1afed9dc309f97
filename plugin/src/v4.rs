//! Legacy plugin interface (version 4) for Mosquitto 1.6, also accepted by 2.x. Same behaviour
//! as v5, minus what v4 lacks: no DISCONNECT (entries age out by expiry and address reuse), no
//! TICK (no `$SYS` counters), and the broker runs its password file before this plugin.

use std::ffi::{c_char, c_int, c_void};
use std::ptr::NonNull;

use crate::codes;
use crate::ffi::{self, BrokerApi, mosquitto, mosquitto_acl_msg, mosquitto_opt};
use crate::host::Broker;
use crate::instance::{Instance, Login};
use crate::v5::access;
use crate::{guard, start_instance};

/// What `user_data` points to for a v4 instance.
pub(crate) struct V4Plugin {
    api: BrokerApi,
    instance: Instance<Broker>,
}

/// # Safety
/// `user_data` is the `V4Plugin` stored by `mosquitto_auth_plugin_init`, alive until cleanup.
unsafe fn plugin<'a>(user_data: *mut c_void) -> Option<&'a V4Plugin> {
    // SAFETY: per this function's contract.
    NonNull::new(user_data.cast::<V4Plugin>()).map(|p| unsafe { p.as_ref() })
}

/// Legacy interface version: the literal 4 (not a header macro that changed between releases).
#[unsafe(no_mangle)]
pub extern "C" fn mosquitto_auth_plugin_version() -> c_int {
    4
}

/// Starts a legacy instance.
///
/// # Safety
/// Called by Mosquitto with a user_data slot and its option array.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mosquitto_auth_plugin_init(
    user_data: *mut *mut c_void,
    opts: *mut mosquitto_opt,
    opt_count: c_int,
) -> c_int {
    guard(codes::UNKNOWN, || {
        if user_data.is_null() {
            return codes::UNKNOWN;
        }
        // SAFETY: the broker passes its option array of `opt_count` entries.
        let options = unsafe { ffi::options(opts, opt_count) };
        match start_instance(&options, true) {
            Ok((api, instance)) => {
                let plugin = Box::new(V4Plugin { api, instance });
                // SAFETY: `user_data` is the broker's slot for this instance's pointer.
                unsafe { *user_data = Box::into_raw(plugin).cast() };
                codes::SUCCESS
            }
            Err(code) => code,
        }
    })
}

/// Frees a legacy instance.
///
/// # Safety
/// `user_data` is what `mosquitto_auth_plugin_init` stored (or NULL).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mosquitto_auth_plugin_cleanup(
    user_data: *mut c_void,
    _opts: *mut mosquitto_opt,
    _opt_count: c_int,
) -> c_int {
    guard(codes::SUCCESS, || {
        if let Some(plugin) = NonNull::new(user_data.cast::<V4Plugin>()) {
            // SAFETY: the Box pointer from init; the broker calls cleanup once.
            drop(unsafe { Box::from_raw(plugin.as_ptr()) });
            log::info!("plugin stopped");
        }
        codes::SUCCESS
    })
}

/// Start and reload (SIGHUP, `reload == true`): a reload flushes the token cache.
///
/// # Safety
/// `user_data` is what `mosquitto_auth_plugin_init` stored.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mosquitto_auth_security_init(
    user_data: *mut c_void,
    _opts: *mut mosquitto_opt,
    _opt_count: c_int,
    reload: bool,
) -> c_int {
    guard(codes::SUCCESS, || {
        // SAFETY: per this function's contract.
        if let (true, Some(plugin)) = (reload, unsafe { plugin(user_data) }) {
            plugin.instance.reload();
        }
        codes::SUCCESS
    })
}

/// Nothing to release between reloads.
///
/// # Safety
/// Called by Mosquitto; no pointer is dereferenced.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mosquitto_auth_security_cleanup(
    _user_data: *mut c_void,
    _opts: *mut mosquitto_opt,
    _opt_count: c_int,
    _reload: bool,
) -> c_int {
    codes::SUCCESS
}

/// ACL check (read, write, subscribe).
///
/// # Safety
/// Called by Mosquitto with the instance, a live client and the message.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mosquitto_auth_acl_check(
    user_data: *mut c_void,
    access_flag: c_int,
    client: *mut mosquitto,
    msg: *const mosquitto_acl_msg,
) -> c_int {
    guard(codes::ACL_FAILED, || {
        // SAFETY: per this function's contract.
        let (Some(plugin), Some(msg)) =
            (unsafe { plugin(user_data) }, NonNull::new(msg.cast_mut()))
        else {
            return codes::ACL_FAILED;
        };
        // SAFETY: msg is valid for the call; its topic is NULL or NUL-terminated.
        let topic = unsafe { ffi::borrow_bytes(msg.as_ref().topic) };
        let (Some(access), Some(topic)) = (access(access_flag), topic) else {
            return codes::ACL_FAILED;
        };
        // SAFETY: the client being checked is alive during the call.
        let id = unsafe { plugin.api.client_id_of(client) };
        codes::acl(plugin.instance.acl_check(client as usize, id, access, topic))
    })
}

/// Username/password check: the password is the token.
///
/// # Safety
/// Called by Mosquitto with the instance, a live client and NULL-or-NUL-terminated strings.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mosquitto_auth_unpwd_check(
    user_data: *mut c_void,
    client: *mut mosquitto,
    username: *const c_char,
    password: *const c_char,
) -> c_int {
    guard(codes::LOGIN_FAILED, || {
        // SAFETY: per this function's contract.
        let Some(plugin) = (unsafe { plugin(user_data) }) else {
            return codes::LOGIN_FAILED;
        };
        plugin.instance.housekeeping();
        let api = &plugin.api;
        let login = Login {
            address: client as usize,
            // SAFETY: `client_id` is `mosquitto_client_id` on the live client.
            client_id: if client.is_null() {
                None
            } else {
                unsafe { ffi::borrow_str((api.client_id)(client)) }
            },
            // SAFETY: NULL or NUL-terminated strings owned by the broker.
            // SAFETY: NULL or a NUL-terminated string owned by the broker.
            username: unsafe { ffi::borrow_str(username) },
            // SAFETY: as above.
            // SAFETY: NULL or a NUL-terminated string owned by the broker.
            password: unsafe { ffi::borrow_bytes(password) },
            // SAFETY: the client is alive for the duration of the login check.
            outlives_connection: unsafe { api.outlives_connection(client) },
            // SAFETY: as above.
            certificate: unsafe {
                api.client_certificate_thumbprint(client, plugin.instance.needs_certificates())
            },
        };
        let outcome = plugin.instance.login(&login);
        if let (Some(username), Some(set_username)) = (&outcome.username, api.set_username)
            && let Ok(username) = std::ffi::CString::new(username.as_str())
        {
            // SAFETY: `mosquitto_set_username` during the login check; the broker copies it.
            unsafe { set_username(client, username.as_ptr()) };
        }
        codes::login(outcome.decision)
    })
}

/// TLS-PSK is not ours: defer to the broker's `psk_file` or other plugins.
///
/// # Safety
/// Called by Mosquitto; no pointer is dereferenced.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mosquitto_auth_psk_key_get(
    _user_data: *mut c_void,
    _client: *mut mosquitto,
    _hint: *const c_char,
    _identity: *const c_char,
    _key: *mut c_char,
    _max_key_len: c_int,
) -> c_int {
    codes::DEFER
}
