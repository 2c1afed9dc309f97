//! Mosquitto 2.x plugin interface (version 5): `mosquitto_plugin_version/init/cleanup` and the
//! event callbacks.

use std::ffi::{c_int, c_void};
use std::ptr::NonNull;

use oauth_core::Access;

use crate::codes;
use crate::ffi::{
    self, BrokerApi, GenericCallback, bindings, bindings_2_1, mosquitto_evt_acl_check,
    mosquitto_evt_basic_auth, mosquitto_evt_disconnect, mosquitto_evt_extended_auth, mosquitto_opt,
    mosquitto_plugin_id_t,
};
use crate::host::Broker;
use crate::instance::{Instance, Login};
use crate::{guard, start_instance};

/// What `userdata` points to for a v5 instance.
pub(crate) struct V5Plugin {
    identifier: *mut mosquitto_plugin_id_t,
    api: BrokerApi,
    instance: Instance<Broker>,
    /// `MOSQ_EVT_CLIENT_OFFLINE` is registered (Mosquitto 2.1).
    client_offline: bool,
}

/// Mosquitto 2.1's `MOSQ_EVT_CLIENT_OFFLINE`: a durable session's client went away (2.1 sends
/// DISCONNECT only for sessions that end). [`on_disconnect`] serves both.
const CLIENT_OFFLINE: (u32, GenericCallback) =
    (bindings_2_1::mosquitto_plugin_event_MOSQ_EVT_CLIENT_OFFLINE, on_disconnect);

// Why: `on_disconnect` reads CLIENT_OFFLINE's `mosquitto_evt_client_offline` through the 2.0
// `mosquitto_evt_disconnect` it is declared with, so `client` must lie where it looks (ffi.rs
// proves the same of 2.1's own `mosquitto_evt_disconnect`).
ffi::same_fields!(mosquitto_evt_disconnect, bindings_2_1::mosquitto_evt_client_offline: client);

/// Events we register for, with their callbacks.
const EVENTS: [(u32, GenericCallback); 6] = [
    (bindings::mosquitto_plugin_event_MOSQ_EVT_BASIC_AUTH, on_basic_auth),
    (bindings::mosquitto_plugin_event_MOSQ_EVT_EXT_AUTH_START, on_extended_auth_start),
    (bindings::mosquitto_plugin_event_MOSQ_EVT_ACL_CHECK, on_acl_check),
    (bindings::mosquitto_plugin_event_MOSQ_EVT_DISCONNECT, on_disconnect),
    (bindings::mosquitto_plugin_event_MOSQ_EVT_TICK, on_tick),
    (bindings::mosquitto_plugin_event_MOSQ_EVT_RELOAD, on_reload),
];

/// Version negotiation: 5 when the broker offers it. `MOSQUITTO_OAUTH_PLUGIN_API=4` in the
/// broker's environment selects the legacy interface instead (for testing the v4 path on 2.x).
///
/// # Safety
/// `supported_versions` points to `supported_version_count` ints (Mosquitto's contract).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mosquitto_plugin_version(
    supported_version_count: c_int,
    supported_versions: *const c_int,
) -> c_int {
    guard(-1, || {
        let count = usize::try_from(supported_version_count).unwrap_or(0);
        let offered: &[c_int] = if supported_versions.is_null() || count == 0 {
            &[]
        } else {
            // SAFETY: the broker passes an array of `supported_version_count` ints.
            unsafe { std::slice::from_raw_parts(supported_versions, count) }
        };
        let wanted = match std::env::var("MOSQUITTO_OAUTH_PLUGIN_API").as_deref() {
            Ok("4") => 4,
            _ => 5,
        };
        if offered.contains(&wanted) {
            wanted
        } else if offered.contains(&4) {
            4
        } else {
            -1
        }
    })
}

/// Starts an instance: parses options, sets up validation, registers callbacks.
///
/// # Safety
/// Called by Mosquitto with its identifier, a userdata slot and its option array.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mosquitto_plugin_init(
    identifier: *mut mosquitto_plugin_id_t,
    userdata: *mut *mut c_void,
    options: *mut mosquitto_opt,
    option_count: c_int,
) -> c_int {
    guard(codes::UNKNOWN, || {
        if userdata.is_null() {
            return codes::UNKNOWN;
        }
        // SAFETY: the broker passes its option array of `option_count` entries.
        let options = unsafe { ffi::options(options, option_count) };
        let (api, instance) = match start_instance(&options, false) {
            Ok(started) => started,
            Err(code) => return code,
        };
        let Some(register) = api.callback_register else {
            log::error!(
                "this broker has no mosquitto_callback_register; use auth_plugin on Mosquitto 1.6"
            );
            return codes::UNKNOWN;
        };
        let plugin =
            Box::into_raw(Box::new(V5Plugin { identifier, api, instance, client_offline: false }));
        for (index, (event, callback)) in EVENTS.iter().enumerate() {
            // SAFETY: `register` is `mosquitto_callback_register`; the identifier is the one the
            // broker gave us, the callback has the generic signature, and `plugin` stays valid
            // until cleanup unregisters every callback before freeing it.
            let code = unsafe {
                register(
                    identifier,
                    *event as c_int,
                    Some(*callback),
                    std::ptr::null(),
                    plugin.cast(),
                )
            };
            if code != codes::SUCCESS {
                log::error!("cannot register callback for event {event}: error {code}");
                // SAFETY: `plugin` came from Box::into_raw above and is not yet shared with the
                // broker beyond the callbacks unregistered here.
                unsafe { unregister(&*plugin, &EVENTS[..index]) };
                // SAFETY: as above; nothing refers to it any more.
                drop(unsafe { Box::from_raw(plugin) });
                return code;
            }
        }
        if api.complete_basic_auth.is_some() {
            let (event, callback) = CLIENT_OFFLINE;
            // SAFETY: as for the registrations above; this event exists on 2.1 only.
            let code = unsafe {
                register(
                    identifier,
                    event as c_int,
                    Some(callback),
                    std::ptr::null(),
                    plugin.cast(),
                )
            };
            // SAFETY: `plugin` is ours until init returns.
            unsafe { (*plugin).client_offline = code == codes::SUCCESS };
        }
        // SAFETY: `userdata` is the broker's slot for this instance's pointer.
        unsafe { *userdata = plugin.cast() };
        codes::SUCCESS
    })
}

/// Stops an instance: unregisters callbacks and frees its state.
///
/// # Safety
/// `userdata` is what `mosquitto_plugin_init` stored (or NULL).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mosquitto_plugin_cleanup(
    userdata: *mut c_void,
    _options: *mut mosquitto_opt,
    _option_count: c_int,
) -> c_int {
    guard(codes::SUCCESS, || {
        let Some(plugin) = NonNull::new(userdata.cast::<V5Plugin>()) else {
            return codes::SUCCESS;
        };
        // SAFETY: `plugin` is the Box pointer from init; the broker calls cleanup once.
        let plugin = unsafe { Box::from_raw(plugin.as_ptr()) };
        // SAFETY: the callbacks were registered with this identifier in init.
        unsafe { unregister(&plugin, &EVENTS) };
        if plugin.client_offline {
            // SAFETY: as above.
            unsafe { unregister(&plugin, &[CLIENT_OFFLINE]) };
        }
        log::info!("plugin stopped");
        codes::SUCCESS
    })
}

/// # Safety
/// `plugin.identifier` is the identifier the callbacks were registered with.
unsafe fn unregister(plugin: &V5Plugin, events: &[(u32, GenericCallback)]) {
    let Some(unregister) = plugin.api.callback_unregister else { return };
    for (event, callback) in events {
        // SAFETY: same identifier, event and function as registered.
        unsafe {
            unregister(plugin.identifier, *event as c_int, Some(*callback), std::ptr::null())
        };
    }
}

/// # Safety
/// `userdata` is the `V5Plugin` registered with the callback, alive until cleanup.
unsafe fn plugin<'a>(userdata: *mut c_void) -> Option<&'a V5Plugin> {
    // SAFETY: per this function's contract.
    NonNull::new(userdata.cast::<V5Plugin>()).map(|p| unsafe { p.as_ref() })
}

/// The common start of an event callback: inside [`guard`], the plugin from `userdata` and the
/// event from `event_data`, handed to `body`; `fallback` when either is NULL or on a panic.
///
/// # Safety
/// `userdata` is the `V5Plugin` registered with the callback, alive until cleanup; `event_data`
/// is NULL or points to the `E` Mosquitto passes for the registered event, valid for the call.
#[inline(always)]
unsafe fn with_event<E>(
    userdata: *mut c_void,
    event_data: *mut c_void,
    fallback: c_int,
    body: impl FnOnce(&V5Plugin, &E) -> c_int,
) -> c_int {
    guard(fallback, || {
        // SAFETY: per this function's contract.
        let (Some(plugin), Some(event)) =
            (unsafe { plugin(userdata) }, NonNull::new(event_data.cast::<E>()))
        else {
            return fallback;
        };
        // SAFETY: per this function's contract.
        body(plugin, unsafe { event.as_ref() })
    })
}

unsafe extern "C" fn on_basic_auth(
    _event: c_int,
    event_data: *mut c_void,
    userdata: *mut c_void,
) -> c_int {
    let body = |plugin: &V5Plugin, event: &mosquitto_evt_basic_auth| {
        let api = &plugin.api;
        let login = Login {
            address: event.client as usize,
            // SAFETY: the client is alive for the duration of the login check.
            client_id: unsafe { api.client_id_of(event.client) },
            // SAFETY: NULL or a NUL-terminated string owned by the broker.
            username: unsafe { ffi::borrow_str(event.username) },
            // SAFETY: NULL or a NUL-terminated string owned by the broker.
            password: unsafe { ffi::borrow_bytes(event.password) },
            // SAFETY: as for client_id.
            outlives_connection: unsafe { api.outlives_connection(event.client) },
            // SAFETY: as above.
            certificate: unsafe {
                api.client_certificate_thumbprint(
                    event.client,
                    plugin.instance.needs_certificates(),
                )
            },
        };
        let outcome = plugin.instance.login(&login);
        if let Some(username) = &outcome.username {
            // SAFETY: still inside this client's BASIC_AUTH.
            unsafe { api.set_username_of(event.client, username) };
        }
        codes::login(outcome.decision)
    };
    // SAFETY: registered for BASIC_AUTH with a V5Plugin as userdata.
    unsafe { with_event(userdata, event_data, codes::LOGIN_FAILED, body) }
}

/// MQTT 5 enhanced authentication, first CONNECT and re-authentication (AUTH 0x19) alike:
/// Mosquitto 2.x has no re-authentication flag, so the instance recognises a re-authentication
/// by an existing session on the same client.
unsafe extern "C" fn on_extended_auth_start(
    _event: c_int,
    event_data: *mut c_void,
    userdata: *mut c_void,
) -> c_int {
    let body = |plugin: &V5Plugin, event: &mosquitto_evt_extended_auth| {
        let api = &plugin.api;
        let data: &[u8] = if event.data_in.is_null() || event.data_in_len == 0 {
            &[]
        } else {
            // SAFETY: data_in points to data_in_len bytes owned by the broker for the call.
            unsafe {
                std::slice::from_raw_parts(
                    event.data_in.cast::<u8>(),
                    usize::from(event.data_in_len),
                )
            }
        };
        let login = Login {
            address: event.client as usize,
            // SAFETY: the client is alive for the duration of the callback.
            client_id: unsafe { api.client_id_of(event.client) },
            // SAFETY: as above; `client_username` is `mosquitto_client_username`.
            username: unsafe { ffi::borrow_str((api.client_username)(event.client)) },
            password: None,
            // SAFETY: as above.
            outlives_connection: unsafe { api.outlives_connection(event.client) },
            // SAFETY: as above.
            certificate: unsafe {
                api.client_certificate_thumbprint(
                    event.client,
                    plugin.instance.needs_certificates(),
                )
            },
        };
        // SAFETY: NULL or a NUL-terminated string owned by the broker.
        let method = unsafe { ffi::borrow_str(event.auth_method) };
        let outcome = plugin.instance.extended_auth(&login, method, data);
        if let Some(username) = &outcome.username {
            // SAFETY: still inside this client's authentication.
            unsafe { api.set_username_of(event.client, username) };
        }
        codes::login(outcome.decision)
    };
    // SAFETY: registered for EXT_AUTH_START with a V5Plugin as userdata.
    unsafe { with_event(userdata, event_data, codes::LOGIN_FAILED, body) }
}

/// Mosquitto's access flags to ours; `None` for flags we do not know (denied).
pub(crate) fn access(flag: c_int) -> Option<Access> {
    match u32::try_from(flag).ok()? {
        bindings::MOSQ_ACL_READ => Some(Access::Read),
        bindings::MOSQ_ACL_WRITE => Some(Access::Write),
        bindings::MOSQ_ACL_SUBSCRIBE => Some(Access::Subscribe),
        bindings::MOSQ_ACL_UNSUBSCRIBE => Some(Access::Unsubscribe),
        _ => None,
    }
}

unsafe extern "C" fn on_acl_check(
    _event: c_int,
    event_data: *mut c_void,
    userdata: *mut c_void,
) -> c_int {
    let body = |plugin: &V5Plugin, event: &mosquitto_evt_acl_check| {
        // SAFETY: the topic is NULL or a NUL-terminated string valid for the call. It is
        // matched as bytes, as Mosquitto matches it (Mosquitto refuses a topic that is not
        // UTF-8 before any check; validating it again cost a tenth of the plugin's time).
        let (Some(access), Some(topic)) =
            (access(event.access), unsafe { ffi::borrow_bytes(event.topic) })
        else {
            return codes::ACL_FAILED;
        };
        // SAFETY: event.client is the client being checked (possibly a stack-built fake for
        // retained-source checks: only its id is read, within the call).
        let is_client = |id: &str| unsafe { plugin.api.client_id_is(event.client, id) };
        codes::acl(plugin.instance.acl_check_by(event.client as usize, is_client, access, topic))
    };
    // SAFETY: registered for ACL_CHECK with a V5Plugin as userdata.
    unsafe { with_event(userdata, event_data, codes::ACL_FAILED, body) }
}

unsafe extern "C" fn on_disconnect(
    _event: c_int,
    event_data: *mut c_void,
    userdata: *mut c_void,
) -> c_int {
    let body = |plugin: &V5Plugin, event: &mosquitto_evt_disconnect| {
        // SAFETY: the disconnecting client is still allocated during the callback.
        let id = unsafe { plugin.api.client_id_of(event.client) };
        plugin.instance.disconnected(event.client as usize, id);
        codes::SUCCESS
    };
    // SAFETY: registered for DISCONNECT with a V5Plugin as userdata.
    unsafe { with_event(userdata, event_data, codes::SUCCESS, body) }
}

unsafe extern "C" fn on_tick(
    _event: c_int,
    event_data: *mut c_void,
    userdata: *mut c_void,
) -> c_int {
    guard(codes::SUCCESS, || {
        // SAFETY: registered with a V5Plugin as userdata.
        let Some(plugin) = (unsafe { plugin(userdata) }) else { return codes::SUCCESS };
        plugin.instance.on_tick();
        if plugin.api.complete_basic_auth.is_some()
            && let Some(mut event) =
                NonNull::new(event_data.cast::<bindings_2_1::mosquitto_evt_tick>())
        {
            // SAFETY: for TICK, event_data is the broker's mosquitto_evt_tick, valid and ours to
            // write for the call; `complete_basic_auth` is present, so the broker is 2.1 and the
            // struct is 2.1's. Ask to be called again within 100 ms so that expiry kicks and
            // delayed logins are not left waiting on an idle broker.
            unsafe { event.as_mut().next_ms = TICK_INTERVAL_MS };
        }
        codes::SUCCESS
    })
}

/// How often we ask Mosquitto 2.1 for a TICK (2.0 ticks about every 100 ms by itself).
const TICK_INTERVAL_MS: std::ffi::c_long = 100;

unsafe extern "C" fn on_reload(
    _event: c_int,
    _event_data: *mut c_void,
    userdata: *mut c_void,
) -> c_int {
    // SAFETY: registered with a V5Plugin as userdata.
    let Some(plugin) = (unsafe { plugin(userdata) }) else { return codes::DEFER };
    let answer = codes::reload(plugin.api.complete_basic_auth.is_some());
    guard(answer, || {
        plugin.instance.reload();
        answer
    })
}
