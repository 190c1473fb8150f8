//! The point rules: which event types exist and what each earns, read from `events.yaml`.
//!
//! Event types live only in this file, never in code, so adding one is a config edit.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::caps::Cap;
use super::period::Period;
use super::progression::Progression;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct EventType {
    pub name: String,
    pub description: String,
    pub points: i64,
    /// A limit per user and period; absent when the type is not capped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cap: Option<Cap>,
}

/// A validated set of event types, looked up by name on every event.
#[derive(Debug, Clone)]
pub struct Rules {
    types: Vec<EventType>,
    index: HashMap<String, usize>,
    /// The file as read, kept with the version in the store.
    text: String,
    /// SHA-256 of `text`, hex: the same file gives the same hash on every instance.
    hash: String,
    /// How the store registered this configuration; `None` until it is.
    registered: Option<RulesVersion>,
    /// Levels, streaks, achievements and boosts (all empty when not configured).
    progression: std::sync::Arc<Progression>,
}

/// One accepted configuration as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct RulesVersion {
    /// 1 for the first configuration the store saw, then one more per change.
    pub version: i64,
    /// SHA-256 of the file's bytes, hex.
    pub hash: String,
    #[serde(serialize_with = "crate::domain::time::serialize_millis")]
    #[schema(value_type = String, format = DateTime)]
    pub activated_at: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    // The cause is in the message and deliberately not a `source`: an error chain
    // printed whole (`{:#}`) would otherwise say it twice.
    #[error("{path}: cannot read the file: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}: invalid YAML: {error}")]
    Yaml {
        path: PathBuf,
        error: serde_yaml::Error,
    },
    #[error("{path}: {entry}: {problem}")]
    Entry {
        path: PathBuf,
        entry: String,
        problem: String,
    },
}

/// Points are bounded so that no sum of a user's ledger can overflow an i64.
pub const MAX_ABS_POINTS: i64 = 1_000_000_000;

#[derive(Deserialize)]
struct FileFormat {
    events: Vec<serde_yaml::Value>,
    #[serde(flatten)]
    progression: super::progression::config::Sections,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(alias = "points")]
    point: i64,
    #[serde(default)]
    cap: Option<RawCap>,
    /// Points of this type expire this many days after the event (wallet).
    #[serde(default)]
    expires_after_days: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCap {
    period: String,
    #[serde(default)]
    max_points: Option<i64>,
    #[serde(default)]
    max_events: Option<i64>,
}

impl RawCap {
    fn validate(self, points: i64) -> Result<Cap, String> {
        let period = Period::parse(&self.period).ok_or_else(|| {
            format!(
                "cap.period must be day, week, month or all, not {:?}",
                self.period
            )
        })?;
        if points <= 0 {
            return Err("cap is only for event types that award positive points".into());
        }
        match (self.max_points, self.max_events) {
            (Some(n), None) | (None, Some(n)) if n >= 1 => Ok(Cap {
                period,
                max_points: self.max_points,
                max_events: self.max_events,
            }),
            (Some(_), None) | (None, Some(_)) => {
                Err("cap.max_points and cap.max_events must be at least 1".into())
            }
            _ => Err("cap needs exactly one of max_points and max_events".into()),
        }
    }
}

impl Rules {
    pub fn load(path: &Path) -> Result<Rules, RulesError> {
        let text = std::fs::read_to_string(path).map_err(|error| RulesError::Read {
            path: path.to_owned(),
            error,
        })?;
        Rules::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Rules, RulesError> {
        let file: FileFormat = serde_yaml::from_str(text).map_err(|error| RulesError::Yaml {
            path: path.to_owned(),
            error,
        })?;
        let entry_err = |entry: String, problem: String| RulesError::Entry {
            path: path.to_owned(),
            entry,
            problem,
        };
        if file.events.is_empty() {
            return Err(entry_err("events".into(), "defines no event type".into()));
        }
        let mut types = Vec::with_capacity(file.events.len());
        let mut expiries = std::collections::BTreeMap::new();
        let mut index = HashMap::new();
        for (i, value) in file.events.into_iter().enumerate() {
            let label = match value.get("name").and_then(|n| n.as_str()) {
                Some(name) => format!("events[{i}] ({name})"),
                None => format!("events[{i}]"),
            };
            let raw: RawEntry = serde_yaml::from_value(value)
                .map_err(|e| entry_err(label.clone(), e.to_string()))?;
            if !valid_name(&raw.name) {
                return Err(entry_err(
                    label,
                    "name must match ^[A-Z][A-Z0-9_]{0,63}$".into(),
                ));
            }
            if raw.point.abs() > MAX_ABS_POINTS {
                return Err(entry_err(
                    label,
                    format!("point must be between -{MAX_ABS_POINTS} and {MAX_ABS_POINTS}"),
                ));
            }
            if index.insert(raw.name.clone(), types.len()).is_some() {
                return Err(entry_err(label, "duplicate name".into()));
            }
            super::progression::config::check_days("expires_after_days", raw.expires_after_days)
                .map_err(|p| entry_err(label.clone(), p))?;
            if let Some(days) = raw.expires_after_days {
                expiries.insert(raw.name.clone(), days);
            }
            let cap = match raw.cap {
                Some(c) => Some(c.validate(raw.point).map_err(|p| entry_err(label, p))?),
                None => None,
            };
            types.push(EventType {
                name: raw.name,
                description: raw.description.unwrap_or_default(),
                points: raw.point,
                cap,
            });
        }
        let known = |name: &str| index.contains_key(name);
        let progression = super::progression::config::parse(file.progression, &known, expiries)
            .map_err(|(entry, problem)| entry_err(entry, problem))?;
        Ok(Rules {
            progression: std::sync::Arc::new(progression),
            types,
            index,
            hash: content_hash(text),
            text: text.to_owned(),
            registered: None,
        })
    }

    /// The same rules, as the store registered them.
    pub fn registered_as(mut self, version: RulesVersion) -> Rules {
        self.registered = Some(version);
        self
    }

    /// The version number, once registered.
    pub fn version(&self) -> Option<i64> {
        self.registered.as_ref().map(|v| v.version)
    }

    pub fn registered(&self) -> Option<&RulesVersion> {
        self.registered.as_ref()
    }

    pub fn hash(&self) -> &str {
        &self.hash
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn progression(&self) -> &std::sync::Arc<Progression> {
        &self.progression
    }

    pub fn get(&self, name: &str) -> Option<&EventType> {
        self.index.get(name).map(|&i| &self.types[i])
    }

    pub fn types(&self) -> &[EventType] {
        &self.types
    }

    /// The configured names, for error messages that tell the client what is allowed.
    pub fn names(&self) -> Vec<&str> {
        self.types.iter().map(|t| t.name.as_str()).collect()
    }
}

pub fn content_hash(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An event type's name: `^[A-Z][A-Z0-9_]{0,63}$`.
pub fn valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 64
        && bytes[0].is_ascii_uppercase()
        && bytes[1..]
            .iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'_')
}

/// The rules in force, swapped whole so a request never sees half a configuration.
pub struct SharedRules(std::sync::RwLock<std::sync::Arc<Rules>>);

impl SharedRules {
    pub fn new(rules: Rules) -> SharedRules {
        SharedRules(std::sync::RwLock::new(std::sync::Arc::new(rules)))
    }

    pub fn current(&self) -> std::sync::Arc<Rules> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn replace(&self, rules: Rules) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = std::sync::Arc::new(rules);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Rules, RulesError> {
        Rules::parse(Path::new("events.yaml"), text)
    }

    #[test]
    fn accepts_point_and_points_and_negatives() {
        let r = parse(
            "events:\n  - {name: LOGIN, description: Log in, point: 1}\n  - {name: SPAM, points: -5}\n",
        )
        .unwrap();
        assert_eq!(r.get("LOGIN").unwrap().points, 1);
        assert_eq!(r.get("SPAM").unwrap().points, -5);
        assert_eq!(r.names(), vec!["LOGIN", "SPAM"]);
    }

    #[test]
    fn caps_are_parsed_and_checked() {
        let r = parse("events:\n  - {name: LOGIN, point: 1, cap: {period: day, max_events: 1}}\n")
            .unwrap();
        let cap = r.get("LOGIN").unwrap().cap.unwrap();
        assert_eq!(
            (cap.period, cap.max_events, cap.max_points),
            (Period::Day, Some(1), None)
        );
        for (bad, expected) in [
            ("{period: year, max_events: 1}", "cap.period"),
            ("{period: day}", "exactly one"),
            ("{period: day, max_events: 1, max_points: 2}", "exactly one"),
            ("{period: day, max_points: 0}", "at least 1"),
            ("{period: day, max_point: 3}", "unknown field"),
        ] {
            let err = parse(&format!(
                "events:\n  - {{name: LOGIN, point: 1, cap: {bad}}}\n"
            ))
            .unwrap_err()
            .to_string();
            assert!(
                err.contains("events[0] (LOGIN)") && err.contains(expected),
                "{bad}: {err}"
            );
        }
        let neg =
            parse("events:\n  - {name: SPAM, point: -5, cap: {period: day, max_events: 1}}\n")
                .unwrap_err()
                .to_string();
        assert!(neg.contains("positive points"), "{neg}");
    }

    #[test]
    fn errors_name_the_file_and_entry() {
        let dup = parse("events:\n  - {name: A, point: 1}\n  - {name: A, point: 2}\n")
            .unwrap_err()
            .to_string();
        assert_eq!(dup, "events.yaml: events[1] (A): duplicate name");
        let bad = parse("events:\n  - {name: lower, point: 1}\n")
            .unwrap_err()
            .to_string();
        assert!(bad.contains("events[0] (lower)"), "{bad}");
        let notint = parse("events:\n  - {name: A, point: 1.5}\n")
            .unwrap_err()
            .to_string();
        assert!(notint.contains("events[0] (A)"), "{notint}");
        assert!(parse("events: [")
            .unwrap_err()
            .to_string()
            .contains("invalid YAML"));
    }
}
