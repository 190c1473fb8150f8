//! What goes into the scripts and how their answers are read back: user entries as
//! JSON, points as sorted-set scores, user hashes as totals.

use std::collections::BTreeMap;

use serde::Serialize;

use super::commands::CacheError;
use crate::store::{TypeTotal, UserCounters, UserPoints};

/// One user as a script applies it: deltas after a write, absolute values in a load.
#[derive(Debug, Clone, Serialize)]
pub struct UserEntry {
    pub u: String,
    /// The version seen before the store read (loads only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub v: Option<String>,
    /// The user was erased.
    pub d: bool,
    /// `(event type, events, points)`, numbers as text so Lua never rounds them.
    pub t: Vec<(String, String, String)>,
    /// `(period key, score)`.
    pub p: Vec<(String, String)>,
    /// The write found an event of this user already stored.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dup: bool,
}

impl UserEntry {
    /// A user with nothing to apply (a write of duplicates only, or an erasure).
    pub fn bare(u: String) -> UserEntry {
        UserEntry {
            u,
            v: None,
            d: false,
            t: Vec::new(),
            p: Vec::new(),
            dup: false,
        }
    }

    /// A user's counters as absolute values, for a load checked against `version`.
    pub fn absolute(c: UserCounters, version: String) -> UserEntry {
        UserEntry {
            v: Some(version),
            t: c.by_type
                .into_iter()
                .map(|t| (t.event_type, t.events.to_string(), t.points.to_string()))
                .collect(),
            p: c.periods.into_iter().map(|(k, p)| (k, score(p))).collect(),
            ..UserEntry::bare(c.user_id)
        }
    }
}

/// Leaderboard order is points descending, then user id ascending. A sorted set orders
/// by score then member, both ascending, so storing the negated points makes its
/// natural order the leaderboard's, ties included (`ZREVRANGE` would reverse the ties).
pub fn score(points: i64) -> String {
    (-i128::from(points)).to_string()
}

/// Scores are doubles: integers are exact up to 2^53, far beyond real point totals;
/// anything else is treated as damage, never served.
pub fn points_of(score: &str) -> Result<i64, CacheError> {
    const EXACT: f64 = 9_007_199_254_740_992.0;
    match score.parse::<f64>() {
        Ok(s) if s.fract() == 0.0 && s.abs() <= EXACT => Ok(-(s as i64)),
        _ => Err(CacheError::Corrupt(format!("score {score:?}"))),
    }
}

pub fn rows_of(flat: Vec<String>) -> Result<Vec<(String, i64)>, CacheError> {
    flat.chunks(2)
        .map(|pair| match pair {
            [user, s] => Ok((user.clone(), points_of(s)?)),
            _ => Err(CacheError::Corrupt("odd ZRANGE reply".into())),
        })
        .collect()
}

/// A user's totals from the fields of their hash: `n:TYPE` events, `p:TYPE` points.
pub fn user_points(flat: &[String]) -> Result<UserPoints, CacheError> {
    let mut types: BTreeMap<&str, (Option<u64>, Option<i64>)> = BTreeMap::new();
    for pair in flat.chunks(2) {
        let bad = || CacheError::Corrupt(format!("user hash field {pair:?}"));
        let [field, value] = pair else {
            return Err(bad());
        };
        match field.split_once(':') {
            Some(("n", t)) => {
                types.entry(t).or_default().0 = Some(value.parse().map_err(|_| bad())?)
            }
            Some(("p", t)) => {
                types.entry(t).or_default().1 = Some(value.parse().map_err(|_| bad())?)
            }
            _ => return Err(bad()),
        }
    }
    let by_type = types
        .into_iter()
        .map(|(t, counts)| match counts {
            (Some(events), Some(points)) => Ok(TypeTotal {
                event_type: t.to_string(),
                events,
                points,
            }),
            _ => Err(CacheError::Corrupt(format!("half a total for type {t}"))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(UserPoints {
        points: by_type.iter().map(|t| t.points).sum(),
        events: by_type.iter().map(|t| t.events).sum(),
        by_type,
    })
}

/// SCAN patterns are globs: a prefix with `*`, `?`, `[` or `\` must match literally.
pub fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_round_trip_and_reject_what_the_cache_never_writes() {
        for p in [0, 1, -20, 123_456_789] {
            assert_eq!(points_of(&score(p)).unwrap(), p);
        }
        assert_eq!(points_of("-0").unwrap(), 0);
        assert!(points_of("1.5").is_err());
        assert!(points_of("inf").is_err());
        assert!(points_of("1e300").is_err());
    }

    #[test]
    fn user_hashes_read_back_by_type() {
        let flat: Vec<String> = [
            "p:LOGIN",
            "2",
            "n:PURCHASE",
            "1",
            "n:LOGIN",
            "2",
            "p:PURCHASE",
            "10",
        ]
        .map(String::from)
        .to_vec();
        let p = user_points(&flat).unwrap();
        assert_eq!((p.events, p.points), (3, 12));
        assert_eq!(p.by_type[0].event_type, "LOGIN");
        assert!(user_points(&["n:LOGIN".to_string(), "1".to_string()]).is_err());
        assert!(user_points(&["x".to_string(), "1".to_string()]).is_err());
    }

    #[test]
    fn prefixes_are_matched_literally() {
        assert_eq!(glob_escape("et:[a]*?\\"), "et:\\[a\\]\\*\\?\\\\");
    }
}
