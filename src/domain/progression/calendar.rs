//! The user's local calendar: streak and achievement periods are days, weeks (from
//! Monday) and months of the user's time zone, numbered so that consecutive periods
//! have consecutive numbers.

use chrono::{Datelike, NaiveDate, TimeZone};
use chrono_tz::Tz;

/// A period of the user's local calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LocalPeriod {
    Day,
    Week,
    Month,
}

impl LocalPeriod {
    pub fn as_str(self) -> &'static str {
        match self {
            LocalPeriod::Day => "day",
            LocalPeriod::Week => "week",
            LocalPeriod::Month => "month",
        }
    }

    pub fn parse(s: &str) -> Option<LocalPeriod> {
        match s {
            "day" => Some(LocalPeriod::Day),
            "week" => Some(LocalPeriod::Week),
            "month" => Some(LocalPeriod::Month),
            _ => None,
        }
    }
}

/// A time zone by IANA name (`Europe/Paris`); `None` for anything else.
pub fn parse_zone(name: &str) -> Option<Tz> {
    name.parse::<Tz>().ok()
}

/// The zone of a user whose stored name is `name` (UTC when unset or unknown, so a
/// name a later tz database dropped does not stop the user's events).
pub fn zone_or_utc(name: Option<&str>) -> Tz {
    name.and_then(parse_zone).unwrap_or(Tz::UTC)
}

const EPOCH: NaiveDate = match NaiveDate::from_ymd_opt(1970, 1, 1) {
    Some(d) => d,
    None => panic!("1970-01-01 is a date"),
};

fn local_date(tz: Tz, ts_ms: i64) -> NaiveDate {
    match tz.timestamp_millis_opt(ts_ms) {
        chrono::LocalResult::Single(t) => t.date_naive(),
        _ => crate::domain::time::to_datetime(ts_ms).date_naive(),
    }
}

/// The number of the period containing `ts_ms` in `tz`.
pub fn index(period: LocalPeriod, tz: Tz, ts_ms: i64) -> i64 {
    let date = local_date(tz, ts_ms);
    let day = (date - EPOCH).num_days();
    match period {
        LocalPeriod::Day => day,
        // 1970-01-01 was a Thursday: day -3 is the Monday of week 0.
        LocalPeriod::Week => (day + 3).div_euclid(7),
        LocalPeriod::Month => i64::from(date.year()) * 12 + i64::from(date.month0()),
    }
}

fn first_date(period: LocalPeriod, index: i64) -> NaiveDate {
    match period {
        LocalPeriod::Day => EPOCH + chrono::Duration::days(index),
        LocalPeriod::Week => EPOCH + chrono::Duration::days(index * 7 - 3),
        LocalPeriod::Month => {
            let year = index.div_euclid(12) as i32;
            let month = index.rem_euclid(12) as u32 + 1;
            NaiveDate::from_ymd_opt(year, month, 1).unwrap_or(EPOCH)
        }
    }
}

/// The instant period `index` starts in `tz`: its first local midnight, or the first
/// instant after it where a DST change skips midnight.
pub fn start_ms(period: LocalPeriod, tz: Tz, index: i64) -> i64 {
    let midnight = first_date(period, index).and_time(chrono::NaiveTime::MIN);
    for hour in 0..4 {
        let local = midnight + chrono::Duration::hours(hour);
        if let Some(t) = tz.from_local_datetime(&local).earliest() {
            return t.timestamp_millis();
        }
    }
    midnight.and_utc().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn days_follow_the_local_midnight() {
        let la = parse_zone("America/Los_Angeles").unwrap();
        // 07:59Z is 23:59 the day before in Los Angeles (PST, UTC-8); 08:00Z is midnight.
        let before = index(LocalPeriod::Day, la, ms("2026-12-02T07:59:00Z"));
        let after = index(LocalPeriod::Day, la, ms("2026-12-02T08:00:00Z"));
        assert_eq!(after, before + 1);
        assert_eq!(
            start_ms(LocalPeriod::Day, la, after),
            ms("2026-12-02T08:00:00Z")
        );
        let utc = index(LocalPeriod::Day, Tz::UTC, ms("2026-12-02T07:59:00Z"));
        assert_eq!(utc, before + 1);
    }

    #[test]
    fn weeks_start_on_monday_and_months_on_the_first() {
        // 2026-11-30 is a Monday.
        let sun = index(LocalPeriod::Week, Tz::UTC, ms("2026-11-29T23:59:59Z"));
        let mon = index(LocalPeriod::Week, Tz::UTC, ms("2026-11-30T00:00:00Z"));
        assert_eq!(mon, sun + 1);
        assert_eq!(
            start_ms(LocalPeriod::Week, Tz::UTC, mon),
            ms("2026-11-30T00:00:00Z")
        );
        let dec = index(LocalPeriod::Month, Tz::UTC, ms("2026-12-01T00:00:00Z"));
        assert_eq!(
            start_ms(LocalPeriod::Month, Tz::UTC, dec),
            ms("2026-12-01T00:00:00Z")
        );
        assert_eq!(
            index(LocalPeriod::Month, Tz::UTC, ms("2027-01-01T00:00:00Z")),
            dec + 1
        );
    }

    #[test]
    fn a_dst_change_at_midnight_starts_the_day_when_it_exists() {
        // Santiago moved its clocks from 00:00 to 01:00 on 2026-09-06.
        let scl = parse_zone("America/Santiago").unwrap();
        let day = index(LocalPeriod::Day, scl, ms("2026-09-06T12:00:00Z"));
        let start = start_ms(LocalPeriod::Day, scl, day);
        assert_eq!(index(LocalPeriod::Day, scl, start), day);
        assert_eq!(index(LocalPeriod::Day, scl, start - 1), day - 1);
    }

    #[test]
    fn names_that_are_not_iana_zones_are_refused() {
        assert!(parse_zone("Mars/Olympus").is_none());
        assert!(parse_zone("").is_none());
        assert_eq!(zone_or_utc(Some("nope")), Tz::UTC);
    }
}
