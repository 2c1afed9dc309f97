//! `fallback-broker`: command line.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use std::sync::Arc;

use clap::{Parser, Subcommand};
use fallback_broker::config::{BrokerConfig, DEFAULT_CONFIG};
use fallback_broker::policy::Policy;

/// MQTT 3.1.1/5 broker with OAuth 2.0 token authentication and scope-based topic authorization
/// (the mosquitto-oauth rules, without Mosquitto).
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    /// Configuration file (TOML); see `fallback-broker generate-config`.
    #[arg(long, short, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Prints a commented default configuration.
    GenerateConfig,
    /// Checks a configuration file and exits (0 when valid).
    CheckConfig {
        /// The file to check.
        file: PathBuf,
    },
}

#[allow(clippy::print_stdout)]
fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::GenerateConfig) => {
            print!("{DEFAULT_CONFIG}");
            ExitCode::SUCCESS
        }
        // Also builds the policy: key, secret and users files are read as at startup.
        Some(Command::CheckConfig { file }) => {
            match BrokerConfig::load(&file).map_err(|e| e.to_string()).and_then(|config| {
                Policy::new(&config)?;
                Ok(config)
            }) {
                Ok(config) => {
                    println!("{}: valid ({})", file.display(), config.describe());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("fallback-broker: configuration error: {e}");
                    ExitCode::from(2)
                }
            }
        }
        None => {
            let Some(file) = cli.config else {
                eprintln!("fallback-broker: no configuration: use --config FILE (see --help)");
                return ExitCode::from(2);
            };
            serve(&file)
        }
    }
}

fn serve(file: &std::path::Path) -> ExitCode {
    let config = match BrokerConfig::load(file) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("fallback-broker: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    fallback_broker::logging::init(&config.log);
    // Built (and dropped) outside the async runtime: the core's blocking HTTP client has its own.
    let policy = match Policy::new(&config) {
        Ok(policy) => Arc::new(policy),
        Err(e) => {
            eprintln!("fallback-broker: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("fallback-broker: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(fallback_broker::server::run(config, Arc::clone(&policy)));
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    drop(policy);
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            eprintln!("fallback-broker: {e}");
            ExitCode::FAILURE
        }
    }
}
