//! The progression sections of `events.yaml`: `levels`, `streaks`, `achievements` and
//! `boosts`, each optional. Parsed with the event types (whose names they refer to) and
//! refused whole, naming the file and the entry, like an event type.

use std::collections::HashSet;

use serde::Deserialize;

use super::calendar::LocalPeriod;
use super::{Achievement, Boost, Condition, Freezes, Level, Progression, Streak};

/// The problem with one entry: its label (`levels[1] (Silver)`) and what is wrong.
pub type EntryError = (String, String);

#[derive(Deserialize, Default)]
pub struct Sections {
    #[serde(default)]
    pub levels: Vec<serde_yaml::Value>,
    #[serde(default)]
    pub streaks: Vec<serde_yaml::Value>,
    #[serde(default)]
    pub achievements: Vec<serde_yaml::Value>,
    #[serde(default)]
    pub boosts: Vec<serde_yaml::Value>,
    #[serde(default)]
    pub wallet: Option<serde_yaml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWallet {
    #[serde(default)]
    expires_after_days: Option<i64>,
    #[serde(default)]
    notify_before_days: Option<i64>,
}

/// Days of an expiry setting: 1 to 100 years' worth.
pub fn check_days(field: &str, days: Option<i64>) -> Result<(), String> {
    match days {
        Some(d) if !(1..=36_500).contains(&d) => Err(format!("{field} must be 1 to 36500")),
        _ => Ok(()),
    }
}

/// The `wallet` section, with each event type's own `expires_after_days`.
pub fn wallet(
    value: Option<serde_yaml::Value>,
    by_type: std::collections::BTreeMap<String, i64>,
) -> Result<Option<crate::domain::wallet::WalletRules>, EntryError> {
    let Some(value) = value else {
        return match by_type.keys().next() {
            Some(t) => Err((
                format!("events ({t})"),
                "expires_after_days needs a wallet section".into(),
            )),
            None => Ok(None),
        };
    };
    let raw: RawWallet = match value {
        serde_yaml::Value::Null => RawWallet {
            expires_after_days: None,
            notify_before_days: None,
        },
        v => serde_yaml::from_value(v).map_err(|e| ("wallet".to_owned(), e.to_string()))?,
    };
    check_days("expires_after_days", raw.expires_after_days)
        .map_err(|p| ("wallet".to_owned(), p))?;
    check_days("notify_before_days", raw.notify_before_days)
        .map_err(|p| ("wallet".to_owned(), p))?;
    Ok(Some(crate::domain::wallet::WalletRules {
        expires_after_days: raw.expires_after_days,
        notify_before_days: raw.notify_before_days,
        by_type,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLevel {
    level: i64,
    name: String,
    points: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStreak {
    id: String,
    #[serde(default)]
    name: Option<String>,
    event_types: Vec<String>,
    period: String,
    #[serde(default)]
    freezes: Option<RawFreezes>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFreezes {
    max: i64,
    earn_every: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAchievement {
    id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    when: RawWhen,
    #[serde(default)]
    repeatable: bool,
    #[serde(default)]
    points: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWhen {
    #[serde(default)]
    event_type: Option<String>,
    #[serde(default)]
    count: Option<i64>,
    #[serde(default)]
    period: Option<String>,
    #[serde(default)]
    points: Option<i64>,
    #[serde(default)]
    streak: Option<String>,
    #[serde(default)]
    length: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBoost {
    id: String,
    multiplier: f64,
    #[serde(default)]
    event_types: Option<Vec<String>>,
    from: String,
    to: String,
}

/// Ids of streaks and achievements: what a URL, a webhook and the ledger carry.
fn valid_id(id: &str) -> bool {
    let b = id.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
}

const ID_RULE: &str = "id must match ^[a-z][a-z0-9_]{0,63}$";

fn label(section: &str, i: usize, value: &serde_yaml::Value, key: &str) -> String {
    match value.get(key).and_then(|n| n.as_str()) {
        Some(name) => format!("{section}[{i}] ({name})"),
        None => format!("{section}[{i}]"),
    }
}

fn entries<T: serde::de::DeserializeOwned>(
    section: &str,
    values: Vec<serde_yaml::Value>,
    key: &str,
) -> Result<Vec<(String, T)>, EntryError> {
    values
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let l = label(section, i, &v, key);
            serde_yaml::from_value(v)
                .map(|raw| (l.clone(), raw))
                .map_err(|e| (l, e.to_string()))
        })
        .collect()
}

fn check_types(types: &[String], known: &dyn Fn(&str) -> bool, what: &str) -> Result<(), String> {
    match types.iter().find(|t| !known(t)) {
        Some(t) => Err(format!(
            "{what} names {t:?}, which is not an event type of this file"
        )),
        None => Ok(()),
    }
}

/// Parses and checks the sections; `known` says whether an event type is configured.
pub fn parse(
    sections: Sections,
    known: &dyn Fn(&str) -> bool,
    expiries: std::collections::BTreeMap<String, i64>,
) -> Result<Progression, EntryError> {
    let wallet = wallet(sections.wallet, expiries)?;
    let mut levels: Vec<Level> = Vec::new();
    for (l, raw) in entries::<RawLevel>("levels", sections.levels, "name")? {
        if let Some(prev) = levels.last() {
            if raw.points <= prev.points || raw.level <= prev.level {
                return Err((
                    l,
                    "levels and their points must increase from one entry to the next".into(),
                ));
            }
        }
        if raw.name.trim().is_empty() {
            return Err((l, "name must not be empty".into()));
        }
        levels.push(Level {
            level: raw.level,
            name: raw.name,
            points: raw.points,
        });
    }

    let mut ids = HashSet::new();
    let mut streaks = Vec::new();
    for (l, raw) in entries::<RawStreak>("streaks", sections.streaks, "id")? {
        if !valid_id(&raw.id) {
            return Err((l, ID_RULE.into()));
        }
        if !ids.insert(raw.id.clone()) {
            return Err((l, "duplicate id".into()));
        }
        if raw.event_types.is_empty() {
            return Err((l, "event_types must name at least one event type".into()));
        }
        check_types(&raw.event_types, known, "event_types").map_err(|p| (l.clone(), p))?;
        let period = match raw.period.as_str() {
            "day" => LocalPeriod::Day,
            "week" => LocalPeriod::Week,
            other => return Err((l, format!("period must be day or week, not {other:?}"))),
        };
        let freezes = match raw.freezes {
            Some(f) if f.max >= 1 && f.earn_every >= 1 => Some(Freezes {
                max: f.max,
                earn_every: f.earn_every,
            }),
            Some(_) => {
                return Err((
                    l,
                    "freezes.max and freezes.earn_every must be at least 1".into(),
                ))
            }
            None => None,
        };
        streaks.push(Streak {
            name: raw.name.unwrap_or_else(|| raw.id.clone()),
            id: raw.id,
            event_types: raw.event_types,
            period,
            freezes,
        });
    }

    let mut achievements = Vec::new();
    let mut achievement_ids = HashSet::new();
    for (l, raw) in entries::<RawAchievement>("achievements", sections.achievements, "id")? {
        if !valid_id(&raw.id) {
            return Err((l, ID_RULE.into()));
        }
        if !achievement_ids.insert(raw.id.clone()) {
            return Err((l, "duplicate id".into()));
        }
        let w = raw.when;
        let period = match w.period.as_deref() {
            None => None,
            Some(p) => Some(LocalPeriod::parse(p).ok_or_else(|| {
                (
                    l.clone(),
                    format!("when.period must be day, week or month, not {p:?}"),
                )
            })?),
        };
        let when = match (w.event_type, w.count, w.points, w.streak, w.length) {
            (Some(t), Some(count), None, None, None) => {
                if !known(&t) {
                    return Err((
                        l,
                        format!(
                            "when.event_type names {t:?}, which is not an event type of this file"
                        ),
                    ));
                }
                if count < 1 {
                    return Err((l, "when.count must be at least 1".into()));
                }
                Condition::Events {
                    event_type: t,
                    count,
                    period,
                }
            }
            (None, None, Some(points), None, None) if period.is_none() => {
                if points < 1 {
                    return Err((l, "when.points must be at least 1".into()));
                }
                Condition::Points { points }
            }
            (None, None, None, Some(streak), Some(length)) if period.is_none() => {
                if !streaks.iter().any(|s: &Streak| s.id == streak) {
                    return Err((
                        l,
                        format!("when.streak names {streak:?}, which is not a streak of this file"),
                    ));
                }
                if length < 1 {
                    return Err((l, "when.length must be at least 1".into()));
                }
                Condition::Streak { streak, length }
            }
            _ => return Err((
                l,
                "when must be one of {event_type, count[, period]}, {points} and {streak, length}"
                    .into(),
            )),
        };
        if raw.repeatable && period.is_none() {
            return Err((
                l,
                "repeatable needs when.period: it is earned again in every period".into(),
            ));
        }
        if !(0..=crate::domain::rules::MAX_ABS_POINTS).contains(&raw.points) {
            return Err((l, "points must be between 0 and 1000000000".into()));
        }
        achievements.push(Achievement {
            name: raw.name.unwrap_or_else(|| raw.id.clone()),
            description: raw.description.unwrap_or_default(),
            id: raw.id,
            when,
            repeatable: raw.repeatable,
            points: raw.points,
        });
    }

    let mut boosts = Vec::new();
    let mut boost_ids = HashSet::new();
    for (l, raw) in entries::<RawBoost>("boosts", sections.boosts, "id")? {
        if !valid_id(&raw.id) {
            return Err((l, ID_RULE.into()));
        }
        if !boost_ids.insert(raw.id.clone()) {
            return Err((l, "duplicate id".into()));
        }
        if !(raw.multiplier.is_finite() && raw.multiplier > 0.0 && raw.multiplier <= 1000.0) {
            return Err((
                l,
                "multiplier must be greater than 0 and at most 1000".into(),
            ));
        }
        if let Some(types) = &raw.event_types {
            check_types(types, known, "event_types").map_err(|p| (l.clone(), p))?;
        }
        let time = |field: &str, s: &str| {
            chrono::DateTime::parse_from_rfc3339(s)
                .map(|t| t.timestamp_millis())
                .map_err(|_| {
                    (
                        l.clone(),
                        format!("{field} must be an RFC 3339 date-time, not {s:?}"),
                    )
                })
        };
        let (from_ms, to_ms) = (time("from", &raw.from)?, time("to", &raw.to)?);
        if from_ms >= to_ms {
            return Err((l, "from must be before to".into()));
        }
        boosts.push(Boost {
            id: raw.id,
            multiplier: raw.multiplier,
            event_types: raw.event_types,
            from_ms,
            to_ms,
        });
    }

    Ok(Progression {
        levels,
        streaks,
        achievements,
        boosts,
        wallet,
    })
}
