//! The agent's logs: lines on standard error, human or JSON, filtered by
//! the config's `log_level`, which SIGHUP reloads from the config file
//! without a restart. Colours only on a terminal, and not even there when
//! `NO_COLOR` is set (<https://no-color.org>): a file or the journal gets
//! plain text.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::Context;
use fleetmesh_runtime::AgentConfig;
use fleetmesh_runtime::config::LogFormat;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, fmt, reload};

/// The running agent's log filter, and the file it came from.
pub struct LogLevel {
    handle: reload::Handle<EnvFilter, Registry>,
    config: PathBuf,
    level: String,
}

/// Sets up the process's logs as `config` (read from `path`) says.
pub fn init(path: &Path, config: &AgentConfig) -> anyhow::Result<LogLevel> {
    let filter = EnvFilter::try_new(&config.log_level)
        .context("log_level (checked when the config was loaded)")?;
    let (filter, handle) = reload::Layer::new(filter);
    let json = config.log_format == LogFormat::Json;
    let human = (!json).then(|| {
        fmt::layer()
            .with_ansi(colours())
            .with_writer(std::io::stderr)
    });
    let json = json.then(|| {
        fmt::layer()
            .json()
            .with_ansi(false)
            .with_writer(std::io::stderr)
    });
    tracing_subscriber::registry()
        .with(filter)
        .with(human)
        .with(json)
        .try_init()
        .context("cannot set up logging")?;
    Ok(LogLevel {
        handle,
        config: path.to_owned(),
        level: config.log_level.clone(),
    })
}

/// Whether log lines may carry colour codes: only when standard error is
/// a terminal and `NO_COLOR` is unset or empty.
fn colours() -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|value| !value.is_empty());
    !no_color && std::io::stderr().is_terminal()
}

impl LogLevel {
    /// Re-reads the config file and applies its `log_level`, saying so.
    /// Never fails: a file that no longer loads leaves the level as it was,
    /// and the log says why.
    pub fn reload(&mut self) {
        let loaded = AgentConfig::load(&self.config).and_then(|config| {
            let filter = EnvFilter::try_new(&config.log_level)
                .context("log_level (checked when the config was loaded)")?;
            self.handle
                .reload(filter)
                .context("cannot swap the log filter")?;
            Ok(config.log_level)
        });
        match loaded {
            Ok(level) => {
                tracing::info!("SIGHUP: reloaded log level {level}; other settings need a restart");
                self.level = level;
            }
            Err(error) => tracing::warn!(
                error = format!("{error:#}"),
                "SIGHUP: the config did not load; the log level stays {}",
                self.level
            ),
        }
    }
}
