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

/// Milliseconds of the coarse monotonic clock (from an arbitrary start), for cheap
/// rate-limiting on the per-message path.
pub(crate) fn monotonic_millis() -> u64 {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `now` is a valid, writable timespec; the call only writes into it.
    let status = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut now) };
    match (u64::try_from(now.tv_sec), u64::try_from(now.tv_nsec)) {
        (Ok(seconds), Ok(nanos)) if status == 0 => seconds * 1000 + nanos / 1_000_000,
        // Never seen on Linux; housekeeping then runs at every TICK.
        _ => u64::MAX,
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

    #[test]
    fn coarse_monotonic_millis_move_forward_with_time() {
        let start = monotonic_millis();
        std::thread::sleep(std::time::Duration::from_millis(30));
        let later = monotonic_millis();
        // At most a scheduler tick (4 ms at 250 Hz) behind the precise clock.
        assert!(later >= start + 20 && later < start + 5_000, "{start} -> {later}");
    }
}
