//! The log's part (`telemetry::init`): its format and filter.

use super::{ConfigError, Settings, invalid};

/// How the process logs.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// One JSON object per line, instead of text.
    pub json: bool,
    /// A tracing `EnvFilter` directive. Not validated here: `telemetry::init` falls back to
    /// `info` when it does not parse.
    pub filter: String,
}

pub(super) fn resolve(s: &Settings) -> Result<LogConfig, ConfigError> {
    let json = match s.log_format.as_deref().unwrap_or("text") {
        "text" => false,
        "json" => true,
        other => {
            return Err(invalid(
                "SESSION_LOG_FORMAT",
                format!("`{other}`: expected text or json"),
            ));
        }
    };
    Ok(LogConfig {
        json,
        filter: s.log.clone().unwrap_or_else(|| "info".to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_at_info_unless_told() {
        let log = resolve(&Settings::default()).unwrap();
        assert!(!log.json);
        assert_eq!(log.filter, "info");
        let bad = Settings {
            log_format: Some("JSON".into()),
            ..Settings::default()
        };
        assert!(resolve(&bad).is_err(), "formats are case-sensitive");
    }
}
