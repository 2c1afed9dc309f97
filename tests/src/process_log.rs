//! A child process's output (stderr and stdout), appended line by line by one thread per
//! stream, that tests can read and wait on. Shared by the Mosquitto and fallback-broker
//! harnesses.

use std::io::{BufRead, BufReader, Read};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What has been captured so far.
#[derive(Debug, Default)]
pub(crate) struct LogState {
    pub(crate) text: String,
    /// Output streams not yet at EOF.
    pub(crate) open: usize,
}

/// The captured output.
#[derive(Debug, Default)]
pub(crate) struct ProcessLog {
    state: Mutex<LogState>,
    changed: Condvar,
}

impl ProcessLog {
    /// Starts a thread appending `stream` to the log, echoing each line to stderr behind
    /// `echo` when given.
    pub(crate) fn capture(
        self: &Arc<Self>,
        stream: impl Read + Send + 'static,
        echo: Option<String>,
    ) -> JoinHandle<()> {
        lock(&self.state).open += 1;
        let log = Arc::clone(self);
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stream);
            let mut line = Vec::new();
            while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
                let mut text = String::from_utf8_lossy(&line).into_owned();
                if !text.ends_with('\n') {
                    text.push('\n');
                }
                if let Some(prefix) = &echo {
                    eprint!("{prefix}{text}");
                }
                lock(&log.state).text.push_str(&text);
                log.changed.notify_all();
                line.clear();
            }
            lock(&log.state).open -= 1;
            log.changed.notify_all();
        })
    }

    /// Everything captured so far.
    pub(crate) fn text(&self) -> String {
        lock(&self.state).text.clone()
    }

    /// A position in the log (its length so far).
    pub(crate) fn mark(&self) -> usize {
        lock(&self.state).text.len()
    }

    /// What was captured after `mark`.
    pub(crate) fn since(&self, mark: usize) -> String {
        lock(&self.state).text.get(mark..).unwrap_or_default().to_owned()
    }

    /// Waits until `done` holds for the state, up to `timeout`; whether it does.
    pub(crate) fn wait_until(&self, timeout: Duration, done: impl Fn(&LogState) -> bool) -> bool {
        let guard = lock(&self.state);
        let (guard, _) = self
            .changed
            .wait_timeout_while(guard, timeout, |state| !done(state))
            .unwrap_or_else(PoisonError::into_inner);
        done(&guard)
    }
}
