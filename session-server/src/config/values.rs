//! Values parsed from the text of a flag, a variable or a file, and the small checks every part's
//! resolution shares. Kept apart from any one part so that each reads a setting the same way.

use std::{str::FromStr, time::Duration};

use serde::Deserialize;

use super::{ConfigError, invalid};

/// A duration in (possibly fractional) seconds: `1800`, `0.5`.
///
/// Fractions exist so tests can run expiry with sub-second timeouts instead of long sleeps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Seconds(pub Duration);

impl FromStr for Seconds {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let value: f64 = s
            .trim()
            .parse()
            .map_err(|_| format!("`{s}` is not a number of seconds"))?;
        Self::from_f64(value)
    }
}

impl Seconds {
    fn from_f64(value: f64) -> Result<Self, String> {
        let error = || format!("{value} must be a positive number of seconds (at most 10 years)");
        if !value.is_finite() || value <= 0.0 || value > 10.0 * 365.0 * 86_400.0 {
            return Err(error());
        }
        // Below a nanosecond a positive value would still become a zero duration.
        let duration = Duration::from_secs_f64(value);
        if duration.is_zero() {
            return Err(error());
        }
        Ok(Seconds(duration))
    }
}

/// In a file, a number of seconds may be an integer, a float or a string, as on the command line.
impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Float(f64),
            Text(String),
        }
        let parsed = match Raw::deserialize(d)? {
            Raw::Int(v) => Seconds::from_f64(v as f64),
            Raw::Float(v) => Seconds::from_f64(v),
            Raw::Text(v) => v.parse(),
        };
        parsed.map_err(serde::de::Error::custom)
    }
}

/// `value` or `default`, as a duration.
pub(super) fn seconds_or(value: Option<Seconds>, default: Duration) -> Duration {
    value.map_or(default, |v| v.0)
}

/// The entries of a comma-separated list, trimmed; empty entries (`a,,b`, a trailing comma) are
/// dropped, so an unset and an empty setting are the same empty list.
pub(super) fn comma_list(value: Option<&str>) -> Vec<String> {
    value
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Whether `name` is 1 to `max` characters, each an ASCII letter, an ASCII digit or one of
/// `extra`: the shape of the names that end up in keys and headers (key prefix, cookie name).
pub(super) fn is_plain_name(name: &str, max: usize, extra: &str) -> bool {
    !name.is_empty()
        && name.len() <= max
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || extra.contains(c))
}

/// `value` or `default`, refused (naming `setting`) unless greater than zero: for counts and
/// sizes where 0 would mean "nothing ever passes" rather than "no limit".
pub(super) fn positive<T: PartialOrd + Default + Copy>(
    setting: &'static str,
    value: Option<T>,
    default: T,
) -> Result<T, ConfigError> {
    let v = value.unwrap_or(default);
    if v <= T::default() {
        return Err(invalid(setting, "must be greater than 0"));
    }
    Ok(v)
}

/// The default of the settings documented as "number of CPUs".
pub(super) fn cpus() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_positive_and_may_be_fractional() {
        assert_eq!("5".parse(), Ok(Seconds(Duration::from_secs(5))));
        assert_eq!(" 0.5 ".parse(), Ok(Seconds(Duration::from_millis(500))));
        assert!("-1".parse::<Seconds>().is_err());
        assert!("0".parse::<Seconds>().is_err());
        assert!("NaN".parse::<Seconds>().is_err());
        assert!("1e-10".parse::<Seconds>().is_err());
        assert!("1e10".parse::<Seconds>().is_err());
    }

    #[test]
    fn lists_drop_empty_entries() {
        assert_eq!(comma_list(Some(" a, ,b,")), ["a", "b"]);
        assert!(comma_list(Some("")).is_empty());
        assert!(comma_list(None).is_empty());
    }

    #[test]
    fn zero_is_not_positive() {
        assert_eq!(positive("X", None, 3).unwrap(), 3);
        assert_eq!(positive("X", Some(1), 3).unwrap(), 1);
        let err = positive("X", Some(0), 3).unwrap_err().to_string();
        assert_eq!(err, "invalid value for X: must be greater than 0");
    }
}
