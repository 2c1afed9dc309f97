//! Structured logs on stderr (text or JSON lines) through `tracing`; the `log` records of the
//! core and the engine are bridged in.
//!
//! No secret is ever logged: the broker's own lines never contain passwords, tokens or client
//! secrets, and the engine and HTTP crates, whose debug output can contain whole CONNECT
//! packets or request bodies, are capped at `info` whatever `[log] level` says.

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Crates whose debug/trace output may include credentials; never more verbose than `info`.
const CAPPED: &[&str] = &[
    "rmqtt",
    "rmqtt_net",
    "rmqtt_codec",
    "rmqtt_retainer",
    "reqwest",
    "hyper",
    "hyper_util",
    "h2",
    "rustls",
    "tungstenite",
    "tokio_tungstenite",
];

/// The filter for `level`.
pub fn filter(level: &str) -> EnvFilter {
    let mut directives = level.to_owned();
    let capped = match level {
        "debug" | "trace" => "info",
        other => other,
    };
    for name in CAPPED {
        directives.push_str(&format!(",{name}={capped}"));
    }
    EnvFilter::new(directives)
}

/// Installs the global subscriber (once; later calls are ignored).
pub fn init(config: &LogConfig) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(&config.level))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(true);
    let _ = match config.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_and_http_crates_are_capped_at_info() {
        let text = filter("trace").to_string();
        assert!(text.starts_with("trace,") || text.contains("trace"), "{text}");
        assert!(text.contains("rmqtt=info") && text.contains("reqwest=info"), "{text}");
        let text = filter("warn").to_string();
        assert!(text.contains("rmqtt=warn"), "{text}");
    }
}
