//! Wall-clock seconds for the per-message path.
//!
//! Every ACL check compares the session's `exp` with the current time. A precise
//! `clock_gettime(CLOCK_REALTIME)` costs a vDSO call with a TSC read per check (on the measured
//! VM, the plugin's largest per-message cost after the filter match); the coarse clock is a
//! plain read of the kernel's last tick (a few milliseconds behind at most), which is precise
//! enough for second-resolution expiry.

/// Seconds since the Unix epoch from the coarse real-time clock.
pub(crate) fn epoch_seconds() -> u64 {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `now` is a valid, writable timespec; the call only writes into it.
    let status = unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut now) };
    match u64::try_from(now.tv_sec) {
        Ok(seconds) if status == 0 => seconds,
        _ => oauth_core::now_epoch(),
    }
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
