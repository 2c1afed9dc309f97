//! Cheap clocks for the per-message path.
//!
//! Every ACL check compares the session's `exp` with the current time. A precise
//! `clock_gettime(CLOCK_REALTIME)` costs a vDSO call with a TSC read per check (on the measured
//! VM, the plugin's largest per-message cost after the filter match); `time()` is a vDSO read
//! of the kernel's last tick (a few milliseconds behind at most), which is precise enough for
//! second-resolution expiry.

/// Seconds since the Unix epoch, as of the kernel's last tick.
pub(crate) fn epoch_seconds() -> u64 {
    // SAFETY: `time` with a NULL argument only returns the time.
    let now = unsafe { libc::time(std::ptr::null_mut()) };
    u64::try_from(now).unwrap_or_else(|_| oauth_core::now_epoch())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coarse_epoch_seconds_agree_with_the_precise_clock() {
        let before = oauth_core::now_epoch();
        let coarse = epoch_seconds();
        let after = oauth_core::now_epoch();
        // The coarse clock lags by at most a scheduler tick, so it may still show the second
        // before `before`.
        assert!(coarse + 1 >= before && coarse <= after, "{before} <= {coarse} <= {after}");
    }
}
