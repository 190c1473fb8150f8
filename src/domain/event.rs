//! Validation of incoming events: the one place that decides what a valid event is,
//! shared by the single and batch endpoints (and anything else that ingests).

use serde::Serialize;
use serde_json::Value;

use super::caps::Cap;
use super::rules::Rules;
use super::time::parse_json_time;

pub const MAX_USER_ID_CHARS: usize = 128;
pub const MAX_EVENT_ID_CHARS: usize = 128;
pub const MAX_PROPERTIES_BYTES: usize = 8 * 1024;
/// Longest key an event object may have, at the top level (unknown fields are ignored,
/// but not unbounded ones) and at any depth inside `properties`.
pub const MAX_KEY_CHARS: usize = 256;
/// Events may be stamped at most this far ahead of the server clock (clock skew allowance).
pub const MAX_FUTURE_MS: i64 = 60 * 60 * 1000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A validated event with its points decided, ready to be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// Server-assigned id (UUIDv7, hex): unique and roughly time-ordered.
    pub id: String,
    pub user_id: String,
    pub event_type: String,
    pub ts_ms: i64,
    pub event_id: Option<String>,
    /// The `properties` object as compact JSON text.
    pub properties: Option<String>,
    /// Points awarded: what the rules give (`base_points`), less anything over a cap.
    pub points: i64,
    /// Points the event type is worth under the rules that judged it.
    pub base_points: i64,
    /// The rules version that judged it; `None` before it was registered in the store.
    pub rules_version: Option<i64>,
    /// The type's cap under those rules: the store reduces `points` to respect it.
    pub cap: Option<Cap>,
    pub received_ms: i64,
}

impl NewEvent {
    /// What makes two events the same event for one user: the client's `event_id` when
    /// given, otherwise the type and the instant. Stores keep this unique per user.
    pub fn dedup_key(&self) -> String {
        match &self.event_id {
            Some(eid) => format!("id:{eid}"),
            None => format!("t:{}:{}", self.event_type, self.ts_ms),
        }
    }
}

pub fn new_event_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

/// Checks one event object. `prefix` is prepended to field names (for batch items).
pub fn validate_event(
    value: &Value,
    rules: &Rules,
    now_ms: i64,
    prefix: &str,
) -> Result<NewEvent, Vec<FieldError>> {
    let field = |name: &str| format!("{prefix}{name}");
    let Some(obj) = value.as_object() else {
        let name = if prefix.is_empty() {
            "body".to_string()
        } else {
            prefix.trim_end_matches('.').to_string()
        };
        return Err(vec![FieldError::new(name, "must be a JSON object")]);
    };
    let mut errors = Vec::new();

    if obj.keys().any(|k| k.chars().count() > MAX_KEY_CHARS) {
        let name = if prefix.is_empty() {
            "body".to_string()
        } else {
            prefix.trim_end_matches('.').to_string()
        };
        errors.push(FieldError::new(
            name,
            format!("must not have keys longer than {MAX_KEY_CHARS} characters"),
        ));
    }

    let user_id = match obj.get("user_id") {
        None | Some(Value::Null) => {
            errors.push(FieldError::new(field("user_id"), "is required"));
            None
        }
        Some(v) => match check_id_string(v, MAX_USER_ID_CHARS) {
            Ok(s) => Some(s),
            Err(m) => {
                errors.push(FieldError::new(field("user_id"), m));
                None
            }
        },
    };

    let event_type = match obj.get("event_type") {
        None | Some(Value::Null) => {
            errors.push(FieldError::new(field("event_type"), "is required"));
            None
        }
        Some(Value::String(s)) => match rules.get(s) {
            Some(t) => Some(t),
            None => {
                errors.push(FieldError::new(
                    field("event_type"),
                    format!(
                        "unknown event type; configured types are: {}",
                        rules.names().join(", ")
                    ),
                ));
                None
            }
        },
        Some(_) => {
            errors.push(FieldError::new(field("event_type"), "must be a string"));
            None
        }
    };

    let ts_ms = match obj.get("timestamp") {
        None | Some(Value::Null) => {
            errors.push(FieldError::new(field("timestamp"), "is required"));
            None
        }
        Some(v) => match parse_json_time(v) {
            Ok(ms) if ms > now_ms + MAX_FUTURE_MS => {
                errors.push(FieldError::new(
                    field("timestamp"),
                    "must not be more than one hour in the future",
                ));
                None
            }
            Ok(ms) => Some(ms),
            Err(m) => {
                errors.push(FieldError::new(field("timestamp"), m));
                None
            }
        },
    };

    let event_id = match obj.get("event_id") {
        None | Some(Value::Null) => None,
        Some(v) => match check_id_string(v, MAX_EVENT_ID_CHARS) {
            Ok(s) => Some(s),
            Err(m) => {
                errors.push(FieldError::new(field("event_id"), m));
                None
            }
        },
    };

    let properties = match obj.get("properties") {
        None | Some(Value::Null) => None,
        Some(v @ Value::Object(_)) => {
            let text = v.to_string();
            if longest_key(v) > MAX_KEY_CHARS {
                errors.push(FieldError::new(
                    field("properties"),
                    format!("must not have keys longer than {MAX_KEY_CHARS} characters"),
                ));
                None
            } else if text.len() > MAX_PROPERTIES_BYTES {
                errors.push(FieldError::new(
                    field("properties"),
                    format!("must be at most {MAX_PROPERTIES_BYTES} bytes of JSON"),
                ));
                None
            } else {
                Some(text)
            }
        }
        Some(_) => {
            errors.push(FieldError::new(
                field("properties"),
                "must be a JSON object",
            ));
            None
        }
    };

    match (user_id, event_type, ts_ms) {
        (Some(user_id), Some(t), Some(ts_ms)) if errors.is_empty() => Ok(NewEvent {
            id: new_event_id(),
            user_id,
            event_type: t.name.clone(),
            ts_ms,
            event_id,
            properties,
            points: t.points,
            base_points: t.points,
            rules_version: rules.version(),
            cap: t.cap,
            received_ms: now_ms,
        }),
        _ => Err(errors),
    }
}

/// The length in characters of the longest object key anywhere inside `v`.
fn longest_key(v: &Value) -> usize {
    match v {
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| k.chars().count().max(longest_key(v)))
            .max()
            .unwrap_or(0),
        Value::Array(items) => items.iter().map(longest_key).max().unwrap_or(0),
        _ => 0,
    }
}

/// Identifiers are non-empty strings of bounded length with no control characters
/// (NUL bytes and newlines in ids only ever cause trouble downstream).
pub fn check_id_string(v: &Value, max_chars: usize) -> Result<String, String> {
    let Value::String(s) = v else {
        return Err("must be a string".into());
    };
    check_id(s, max_chars).map(|()| s.clone())
}

pub fn check_id(s: &str, max_chars: usize) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.chars().count() > max_chars {
        return Err(format!("must be at most {max_chars} characters"));
    }
    if s.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::Path;

    fn rules() -> Rules {
        Rules::parse(
            Path::new("t.yaml"),
            "events:\n  - {name: PURCHASE, point: 10}\n  - {name: LOGIN, point: 1}\n",
        )
        .unwrap()
    }

    const NOW: i64 = 1_800_000_000_000;

    #[test]
    fn valid_event_gets_points_and_id() {
        let e = validate_event(
            &json!({"user_id": "13", "event_type": "PURCHASE", "timestamp": 14223343}),
            &rules(),
            NOW,
            "",
        )
        .unwrap();
        assert_eq!(e.points, 10);
        assert_eq!(e.ts_ms, 14_223_343_000);
        assert_eq!(e.id.len(), 32);
        assert_eq!(e.dedup_key(), "t:PURCHASE:14223343000");
    }

    #[test]
    fn every_bad_field_is_named() {
        let errs = validate_event(
            &json!({"user_id": {"$gt": ""}, "event_type": "NOPE", "timestamp": NOW + 2 * MAX_FUTURE_MS, "properties": [1]}),
            &rules(),
            NOW,
            "events[2].",
        )
        .unwrap_err();
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "events[2].user_id",
                "events[2].event_type",
                "events[2].timestamp",
                "events[2].properties"
            ]
        );
        assert!(errs[1].message.contains("PURCHASE, LOGIN"));
    }

    #[test]
    fn ids_are_bounded_and_clean() {
        assert!(check_id(&"x".repeat(128), 128).is_ok());
        assert!(check_id(&"x".repeat(129), 128).is_err());
        assert!(check_id("a\0b", 128).is_err());
        assert!(check_id("", 128).is_err());
    }

    #[test]
    fn keys_are_bounded_at_the_top_and_inside_properties() {
        let ok = |extra: Value| {
            let mut v = json!({"user_id": "u", "event_type": "LOGIN", "timestamp": 1});
            v.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            validate_event(&v, &rules(), NOW, "events[0].")
        };
        let at_limit = "k".repeat(MAX_KEY_CHARS);
        let over = "é".repeat(MAX_KEY_CHARS + 1);
        assert!(ok(json!({ at_limit.clone(): 1 })).is_ok());
        assert!(ok(json!({"properties": { at_limit.clone(): {"a": [{ at_limit: 1 }]} }})).is_ok());
        let fields = |extra: Value| -> Vec<String> {
            ok(extra)
                .unwrap_err()
                .into_iter()
                .map(|e| e.field)
                .collect()
        };
        assert_eq!(fields(json!({ over.clone(): 1 })), ["events[0]"]);
        assert_eq!(
            fields(json!({"properties": { over.clone(): 1 }})),
            ["events[0].properties"]
        );
        assert_eq!(
            fields(json!({"properties": {"a": [{"b": { over: 1 }}]}})),
            ["events[0].properties"]
        );
    }

    /// Any JSON at all, biased towards the shapes of an event.
    fn any_json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(|f| serde_json::Number::from_f64(f)
                .map(Value::Number)
                .unwrap_or(Value::Null)),
            ".{0,200}".prop_map(Value::from),
            "[A-Z_]{1,12}".prop_map(Value::from),
            "[0-9T:\\-\\.Z+]{0,30}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::from),
                proptest::collection::btree_map(
                    prop_oneof![
                        Just("user_id".to_string()),
                        Just("event_type".to_string()),
                        Just("timestamp".to_string()),
                        Just("event_id".to_string()),
                        Just("properties".to_string()),
                        ".{0,10}",
                        // Around the key length limit.
                        ".{255,258}"
                    ],
                    inner,
                    0..8
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// The validator never panics, and whatever it accepts meets every documented rule;
        /// whatever it rejects is reported with at least one named field.
        #[test]
        fn validator_accepts_only_what_the_rules_allow(v in any_json()) {
            match validate_event(&v, &rules(), NOW, "") {
                Ok(e) => {
                    proptest::prop_assert!(check_id(&e.user_id, MAX_USER_ID_CHARS).is_ok());
                    proptest::prop_assert!(rules().get(&e.event_type).is_some());
                    proptest::prop_assert!(e.ts_ms >= 0 && e.ts_ms <= NOW + MAX_FUTURE_MS);
                    proptest::prop_assert!(e.properties.as_ref().is_none_or(|p| p.len() <= MAX_PROPERTIES_BYTES));
                    proptest::prop_assert!(v.as_object().is_some_and(|o| o.keys().all(|k| k.chars().count() <= MAX_KEY_CHARS)));
                    proptest::prop_assert!(v.get("properties").map_or(0, longest_key) <= MAX_KEY_CHARS);
                    proptest::prop_assert_eq!(e.points, rules().get(&e.event_type).map(|t| t.points).unwrap_or(0));
                }
                Err(errors) => {
                    proptest::prop_assert!(!errors.is_empty());
                    proptest::prop_assert!(errors.iter().all(|f| !f.field.is_empty() && !f.message.is_empty()));
                }
            }
        }

        /// Well-formed events with random content are accepted exactly when each field is valid.
        #[test]
        fn well_formed_events_round_trip(user in ".{0,140}", ts in -10i64..4_000_000_000_000, eid in proptest::option::of(".{0,140}")) {
            let mut v = json!({"user_id": user, "event_type": "LOGIN", "timestamp": ts});
            if let Some(e) = &eid {
                v["event_id"] = json!(e);
            }
            let ok = check_id(&user, MAX_USER_ID_CHARS).is_ok()
                && eid.as_deref().is_none_or(|e| check_id(e, MAX_EVENT_ID_CHARS).is_ok())
                && ts >= 0
                && (if ts >= 100_000_000_000 { ts } else { ts * 1000 }) <= NOW + MAX_FUTURE_MS;
            proptest::prop_assert_eq!(validate_event(&v, &rules(), NOW, "").is_ok(), ok);
        }
    }
}
