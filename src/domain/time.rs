//! Event-time parsing and formatting shared by the API, the stores and the CLI.
//!
//! Times are kept as Unix milliseconds everywhere inside the service, so the
//! same instant sent as seconds, milliseconds or RFC 3339 is one value.

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde_json::Value;

/// Integers at or above this are milliseconds, below it seconds (compatible rule).
pub const MILLIS_THRESHOLD: i64 = 100_000_000_000;
/// The latest instant chrono can represent comfortably; larger values are rejected.
const MAX_MILLIS: i64 = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z

/// Parses a JSON timestamp: an integer (seconds or milliseconds) or an RFC 3339 string.
pub fn parse_json_time(value: &Value) -> Result<i64, String> {
    match value {
        Value::Number(n) => match n.as_i64() {
            Some(i) => from_integer(i),
            None if n.is_u64() => Err("must not be later than year 9999".into()),
            None => Err("must be an integer (seconds or milliseconds), not a fraction".into()),
        },
        Value::String(s) => parse_rfc3339(s),
        _ => Err("must be an integer Unix time or an RFC 3339 string".into()),
    }
}

/// Parses a time given in a query string: digits are an integer time, anything else RFC 3339.
pub fn parse_query_time(s: &str) -> Result<i64, String> {
    let trimmed = s.trim();
    if !trimmed.is_empty() && trimmed.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
        return match trimmed.parse::<i64>() {
            Ok(i) => from_integer(i),
            Err(_) => Err("is out of range".into()),
        };
    }
    parse_rfc3339(trimmed)
}

fn from_integer(i: i64) -> Result<i64, String> {
    if i < 0 {
        return Err("must not be negative".into());
    }
    let ms = if i >= MILLIS_THRESHOLD { i } else { i * 1000 };
    if ms > MAX_MILLIS {
        return Err("must not be later than year 9999".into());
    }
    Ok(ms)
}

fn parse_rfc3339(s: &str) -> Result<i64, String> {
    let dt = DateTime::parse_from_rfc3339(s)
        .map_err(|_| "must be an integer Unix time or an RFC 3339 string".to_string())?;
    // Sub-millisecond digits are dropped: milliseconds are the finest unit stored.
    let ms = dt.timestamp_millis();
    if ms < 0 {
        return Err("must not be negative".into());
    }
    if ms > MAX_MILLIS {
        return Err("must not be later than year 9999".into());
    }
    Ok(ms)
}

/// Formats Unix milliseconds as an RFC 3339 UTC string with millisecond precision.
/// `serialize_with` for millisecond fields that the API shows as RFC 3339.
pub fn serialize_millis<S: serde::Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_millis(*ms))
}

pub fn format_millis(ms: i64) -> String {
    to_datetime(ms).to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub fn to_datetime(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn seconds_millis_and_rfc3339_are_the_same_instant() {
        let a = parse_json_time(&json!(1_700_000_000)).unwrap();
        let b = parse_json_time(&json!(1_700_000_000_000i64)).unwrap();
        let c = parse_json_time(&json!("2023-11-14T22:13:20Z")).unwrap();
        let d = parse_json_time(&json!("2023-11-14T23:13:20+01:00")).unwrap();
        assert_eq!(a, b);
        assert_eq!(b, c);
        assert_eq!(c, d);
    }

    #[test]
    fn threshold_switches_to_millis() {
        assert_eq!(
            parse_json_time(&json!(99_999_999_999i64)).unwrap(),
            99_999_999_999_000
        );
        assert_eq!(
            parse_json_time(&json!(100_000_000_000i64)).unwrap(),
            100_000_000_000
        );
    }

    #[test]
    fn rejects_negative_fractional_and_garbage() {
        assert!(parse_json_time(&json!(-1)).is_err());
        assert!(parse_json_time(&json!(1.5)).is_err());
        assert!(parse_json_time(&json!(u64::MAX)).is_err());
        assert!(parse_json_time(&json!("yesterday")).is_err());
        assert!(parse_json_time(&json!({"$gt": 1})).is_err());
        assert!(parse_query_time("1969-12-31T00:00:00Z").is_err());
    }

    #[test]
    fn formats_utc_millis() {
        assert_eq!(format_millis(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    }
}
