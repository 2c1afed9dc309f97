//! The one place where decisions become Mosquitto return codes.

use std::ffi::c_int;

use crate::ffi::bindings::{
    mosq_err_t_MOSQ_ERR_ACL_DENIED, mosq_err_t_MOSQ_ERR_AUTH, mosq_err_t_MOSQ_ERR_INVAL,
    mosq_err_t_MOSQ_ERR_PLUGIN_DEFER, mosq_err_t_MOSQ_ERR_SUCCESS, mosq_err_t_MOSQ_ERR_UNKNOWN,
};
use crate::ffi::bindings_2_1::mosq_err_t_MOSQ_ERR_AUTH_DELAYED;
use crate::instance::{AclDecision, AuthDecision};

/// Success.
pub(crate) const SUCCESS: c_int = mosq_err_t_MOSQ_ERR_SUCCESS as c_int;
/// "Not mine": let the next mechanism decide.
pub(crate) const DEFER: c_int = mosq_err_t_MOSQ_ERR_PLUGIN_DEFER as c_int;
/// Bad configuration: Mosquitto refuses to start.
pub(crate) const INVALID_CONFIG: c_int = mosq_err_t_MOSQ_ERR_INVAL as c_int;
/// The plugin could not start for a reason other than its configuration.
pub(crate) const UNKNOWN: c_int = mosq_err_t_MOSQ_ERR_UNKNOWN as c_int;

/// `MOSQ_ERR_AUTH_DELAYED` of Mosquitto 2.1 (not in 2.0's headers): "answer follows".
pub(crate) const AUTH_DELAYED: c_int = mosq_err_t_MOSQ_ERR_AUTH_DELAYED as c_int;

/// Login: accept, defer, or refuse (CONNACK 0x05 on 3.1.1, 0x87 on 5). Never a code that
/// would close the socket without a CONNACK.
pub(crate) fn login(decision: AuthDecision) -> c_int {
    match decision {
        AuthDecision::Accept => SUCCESS,
        AuthDecision::Defer => DEFER,
        AuthDecision::Deny => mosq_err_t_MOSQ_ERR_AUTH as c_int,
        AuthDecision::Delayed => AUTH_DELAYED,
    }
}

/// What a login callback answers when it panicked or met an internal error: refuse.
pub(crate) const LOGIN_FAILED: c_int = mosq_err_t_MOSQ_ERR_AUTH as c_int;

/// ACL: allow, deny, or defer. Only these three: anything else makes Mosquitto disconnect the
/// client.
pub(crate) fn acl(decision: AclDecision) -> c_int {
    match decision {
        AclDecision::Allow => SUCCESS,
        AclDecision::Deny => ACL_FAILED,
        AclDecision::Defer => DEFER,
    }
}

/// Answer to RELOAD. Mosquitto 2.0 stops its reload chain (other plugins, its own password
/// file) at any answer but DEFER; 2.1 treats any answer but SUCCESS as fatal and exits.
pub(crate) fn reload(broker_is_2_1: bool) -> c_int {
    if broker_is_2_1 { SUCCESS } else { DEFER }
}

/// What an ACL callback answers when it panicked or met an internal error: deny.
pub(crate) const ACL_FAILED: c_int = mosq_err_t_MOSQ_ERR_ACL_DENIED as c_int;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_map_to_mosquitto_codes() {
        assert_eq!(login(AuthDecision::Accept), 0);
        assert_eq!(login(AuthDecision::Defer), 17);
        assert_eq!(login(AuthDecision::Deny), 11);
        assert_eq!(login(AuthDecision::Delayed), -5);
        assert_eq!(acl(AclDecision::Allow), 0);
        assert_eq!(acl(AclDecision::Deny), 12);
        assert_eq!(acl(AclDecision::Defer), 17);
        assert_eq!((reload(false), reload(true)), (17, 0));
        assert_eq!((LOGIN_FAILED, ACL_FAILED, INVALID_CONFIG, UNKNOWN), (11, 12, 3, 13));
    }
}
