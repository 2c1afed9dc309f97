//! Routes the `log` facade (ours and the core's) to Mosquitto's log or to the destination set
//! with `oauth_log_dest` / `openam_log_dest`.
//!
//! `log` has one logger per process, while each plugin instance may name its own destination:
//! the most recently initialised instance's destination wins (documented in the README).

use std::ffi::{CString, c_int};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::{Mutex, OnceLock, RwLock};

use oauth_core::ConfigError;

use crate::ffi::BrokerApi;
use crate::ffi::bindings::{MOSQ_LOG_DEBUG, MOSQ_LOG_ERR, MOSQ_LOG_INFO, MOSQ_LOG_WARNING};
use crate::settings::LogDest;

enum Sink {
    Broker(BrokerApi),
    Stdout,
    File(Mutex<File>),
    Nowhere,
}

static SINK: RwLock<Option<Sink>> = RwLock::new(None);
static INSTALLED: OnceLock<()> = OnceLock::new();

struct Bridge;

impl log::Log for Bridge {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        // Our own crates log at every level; dependencies (HTTP stack) only warnings.
        let ours = metadata.target().starts_with("oauth_core")
            || metadata.target().starts_with("mosquitto_oauth");
        ours || metadata.level() <= log::Level::Warn
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let sink = SINK.read().unwrap_or_else(|p| p.into_inner());
        let message = format!("oauth: {}", record.args());
        match sink.as_ref() {
            Some(Sink::Broker(api)) => broker_log(api, record.level(), &message),
            Some(Sink::Stdout) => {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{} {message}", record.level());
                let _ = out.flush();
            }
            Some(Sink::File(file)) => {
                let mut file = file.lock().unwrap_or_else(|p| p.into_inner());
                let _ = writeln!(file, "{} {} {message}", oauth_core::now_epoch(), record.level());
            }
            Some(Sink::Nowhere) | None => {}
        }
    }

    fn flush(&self) {}
}

/// Writes one line to Mosquitto's log with a fixed `"%s"` format, so `%` in the message is text.
pub(crate) fn broker_log(api: &BrokerApi, level: log::Level, message: &str) {
    let level = match level {
        log::Level::Error => MOSQ_LOG_ERR,
        log::Level::Warn => MOSQ_LOG_WARNING,
        log::Level::Info => MOSQ_LOG_INFO,
        log::Level::Debug | log::Level::Trace => MOSQ_LOG_DEBUG,
    };
    let text = CString::new(message.replace('\0', "\\0")).unwrap_or_default();
    // SAFETY: `log_printf` is the broker's `mosquitto_log_printf`; the format is the literal
    // "%s" and its one argument a NUL-terminated string that lives across the call.
    unsafe { (api.log_printf)(level as c_int, c"%s".as_ptr(), text.as_ptr()) };
}

/// Installs the bridge (once per process) and points it at `dest`.
pub(crate) fn configure(api: BrokerApi, dest: &LogDest) -> Result<(), ConfigError> {
    let sink = match dest {
        LogDest::Host => Sink::Broker(api),
        LogDest::Stdout => Sink::Stdout,
        LogDest::None => Sink::Nowhere,
        LogDest::File(path) => {
            let file = OpenOptions::new().create(true).append(true).open(path).map_err(|e| {
                ConfigError::Invalid {
                    key: "oauth_log_dest".into(),
                    problem: format!("cannot open {}: {e}", path.display()),
                }
            })?;
            Sink::File(Mutex::new(file))
        }
    };
    *SINK.write().unwrap_or_else(|p| p.into_inner()) = Some(sink);
    INSTALLED.get_or_init(|| {
        if log::set_logger(&Bridge).is_ok() {
            log::set_max_level(log::LevelFilter::Debug);
        }
    });
    Ok(())
}
