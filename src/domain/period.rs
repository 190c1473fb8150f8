//! Leaderboard periods: calendar UTC periods of event time.

use chrono::{Datelike, Duration, NaiveDate, TimeZone, Utc};

use super::time::to_datetime;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    All,
    Day,
    Week,
    Month,
}

impl Period {
    pub const ALL: [Period; 4] = [Period::All, Period::Day, Period::Week, Period::Month];

    pub fn parse(s: &str) -> Option<Period> {
        match s {
            "all" => Some(Period::All),
            "day" => Some(Period::Day),
            "week" => Some(Period::Week),
            "month" => Some(Period::Month),
            _ => None,
        }
    }

    /// The kind of a storage key: `week` for `week:2026-W48`, `all` for `all`.
    pub fn of_key(key: &str) -> Option<Period> {
        Period::parse(key.split(':').next().unwrap_or(key))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Period::All => "all",
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
        }
    }

    /// The period of this kind that contains the instant `ms`.
    pub fn containing(self, ms: i64) -> PeriodKey {
        let date = to_datetime(ms).date_naive();
        let (key, start) = match self {
            Period::All => return PeriodKey::all(),
            Period::Day => (format!("day:{}", date.format("%Y-%m-%d")), date),
            Period::Week => {
                let iso = date.iso_week();
                let monday = date - Duration::days(date.weekday().num_days_from_monday() as i64);
                (format!("week:{}-W{:02}", iso.year(), iso.week()), monday)
            }
            Period::Month => {
                let first = date.with_day(1).unwrap_or(date);
                (format!("month:{}", date.format("%Y-%m")), first)
            }
        };
        let end = match self {
            Period::Day => start + Duration::days(1),
            Period::Week => start + Duration::days(7),
            _ => next_month(start),
        };
        PeriodKey {
            period: self,
            key,
            start_ms: Some(midnight_ms(start)),
            end_ms: Some(midnight_ms(end)),
        }
    }
}

/// One concrete leaderboard: a period kind and which one of them (e.g. `week:2026-W48`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PeriodKey {
    pub period: Period,
    /// Storage key, stable across stores: `all`, `day:YYYY-MM-DD`, `week:YYYY-Www`, `month:YYYY-MM`.
    pub key: String,
    /// Inclusive start, exclusive end, in Unix milliseconds; `None` for `all`.
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
}

impl PeriodKey {
    pub fn all() -> PeriodKey {
        PeriodKey {
            period: Period::All,
            key: "all".into(),
            start_ms: None,
            end_ms: None,
        }
    }

    /// Every leaderboard an event at `ms` counts towards.
    pub fn keys_for_event(ms: i64) -> [String; 4] {
        Period::ALL.map(|p| p.containing(ms).key)
    }
}

fn next_month(first: NaiveDate) -> NaiveDate {
    let (y, m) = if first.month() == 12 {
        (first.year() + 1, 1)
    } else {
        (first.year(), first.month() + 1)
    };
    NaiveDate::from_ymd_opt(y, m, 1).unwrap_or(first)
}

fn midnight_ms(d: NaiveDate) -> i64 {
    Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default())
        .timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::time::{format_millis, parse_query_time};

    fn at(s: &str) -> i64 {
        parse_query_time(s).unwrap()
    }

    #[test]
    fn iso_week_starts_monday_and_spans_years() {
        // 2027-01-01 is a Friday in ISO week 2026-W53.
        let k = Period::Week.containing(at("2027-01-01T12:00:00Z"));
        assert_eq!(k.key, "week:2026-W53");
        assert_eq!(
            format_millis(k.start_ms.unwrap()),
            "2026-12-28T00:00:00.000Z"
        );
        assert_eq!(format_millis(k.end_ms.unwrap()), "2027-01-04T00:00:00.000Z");
    }

    #[test]
    fn day_and_month_bounds() {
        let d = Period::Day.containing(at("2026-11-29T23:59:59.999Z"));
        assert_eq!(d.key, "day:2026-11-29");
        assert_eq!(format_millis(d.end_ms.unwrap()), "2026-11-30T00:00:00.000Z");
        let m = Period::Month.containing(at("2026-12-31T10:00:00Z"));
        assert_eq!(m.key, "month:2026-12");
        assert_eq!(format_millis(m.end_ms.unwrap()), "2027-01-01T00:00:00.000Z");
        assert_eq!(Period::All.containing(0), PeriodKey::all());
    }

    #[test]
    fn the_kind_of_a_key() {
        let at = at("2026-11-29T10:00:00Z");
        for p in Period::ALL {
            assert_eq!(Period::of_key(&p.containing(at).key), Some(p));
        }
        assert_eq!(Period::of_key("year:2026"), None);
    }
}
