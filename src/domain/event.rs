//! Validation of incoming events: the one place that decides what a valid event is,
//! shared by the single and batch endpoints (and anything else that ingests).

use std::collections::BTreeMap;

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::caps::Cap;
use super::rules::{self, Rules};
use super::time::parse_json_time;

pub const MAX_USER_ID_CHARS: usize = 128;
pub const MAX_EVENT_ID_CHARS: usize = 128;
pub const MAX_PROPERTIES_BYTES: usize = 8 * 1024;
/// Longest key an event object may have, at the top level (unknown fields are ignored,
/// but not unbounded ones) and at any depth inside `properties`.
pub const MAX_KEY_CHARS: usize = 256;
/// Events may be stamped at most this far ahead of the server clock (clock skew allowance).
pub const MAX_FUTURE_MS: i64 = 60 * 60 * 1000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
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
    /// Points the rules give it: `base_points` times any boost in force at its event
    /// time. The store reduces it to respect a cap.
    pub points: i64,
    /// Points the event type is worth under the rules that judged it.
    pub base_points: i64,
    /// The rules version that judged it; `None` before it was registered in the store.
    pub rules_version: Option<i64>,
    /// The type's cap under those rules: the store reduces `points` to respect it.
    pub cap: Option<Cap>,
    pub received_ms: i64,
    /// Levels, streaks and achievements of the rules that judged it.
    pub progression: ProgressionRef,
}

/// The progression of a rules version, shared by the events it judged; two are equal
/// when they are the same version's.
#[derive(Debug, Clone, Default)]
pub struct ProgressionRef(pub std::sync::Arc<crate::domain::progression::Progression>);

impl PartialEq for ProgressionRef {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for ProgressionRef {}

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

/// An event as clients send it (documentation of the body; validation names each field).
// The body as the OpenAPI document describes it, each field's constraints held by its
// type. The endpoints read events with [`validate_event`] instead, which names every
// bad field at once with its own message (a serde type stops at the first) and
// interleaves the checks that need the rules in force and the clock (the event type is
// configured, the timestamp at most an hour ahead), which no type can hold. The test
// `the_documented_type_accepts_what_the_validator_accepts` holds the two together: the
// validator accepts exactly what this type accepts and those two checks pass.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct EventInput {
    /// 1 to 128 characters.
    #[schema(
        value_type = String,
        example = "13",
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]+$"
    )]
    pub user_id: UserId,
    /// A name configured in `events.yaml`.
    #[schema(value_type = String, example = "PURCHASE", pattern = r"^[A-Z][A-Z0-9_]{0,63}$")]
    pub event_type: EventTypeName,
    #[schema(value_type = TimestampInput)]
    pub timestamp: Timestamp,
    /// The client's idempotency key, 1 to 128 characters.
    #[schema(
        value_type = Option<String>,
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]+$"
    )]
    pub event_id: Option<ClientEventId>,
    /// Any JSON object up to 8 KiB, with keys of at most 256 characters at any depth;
    /// stored and returned with the event.
    #[schema(value_type = Option<Object>)]
    pub properties: Option<Properties>,
    // Other fields are ignored, but their names are bounded too. (Flattened, serde also
    // reads the body as an object only: a derived struct takes an array, in order.)
    #[serde(flatten)]
    #[schema(ignore)]
    pub other: BTreeMap<FieldName, IgnoredAny>,
}

/// A `user_id` (see [`check_id`]).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct UserId(pub String);

impl TryFrom<String> for UserId {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        check_id(&s, MAX_USER_ID_CHARS).map(|()| UserId(s))
    }
}

/// An `event_id`, the client's idempotency key (see [`check_id`]).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct ClientEventId(pub String);

impl TryFrom<String> for ClientEventId {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        check_id(&s, MAX_EVENT_ID_CHARS).map(|()| ClientEventId(s))
    }
}

/// A name an event type can have ([`rules::valid_name`]); whether one has it is for the
/// rules in force.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct EventTypeName(pub String);

impl TryFrom<String> for EventTypeName {
    type Error = &'static str;

    fn try_from(s: String) -> Result<Self, &'static str> {
        if rules::valid_name(&s) {
            Ok(EventTypeName(s))
        } else {
            Err("must match ^[A-Z][A-Z0-9_]{0,63}$")
        }
    }
}

/// Unix seconds, Unix milliseconds (values >= 100000000000), or an RFC 3339 string;
/// not negative, at most one hour in the future.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum TimestampInput {
    #[schema(example = 14223343)]
    Unix(u64),
    #[schema(example = "2026-11-29T12:00:00Z", format = DateTime)]
    Rfc3339(String),
}

/// A `timestamp` read as [`parse_json_time`] reads it: Unix milliseconds. Whether it is
/// too far ahead is for the clock, after reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "TimestampInput")]
pub struct Timestamp(pub i64);

impl TryFrom<TimestampInput> for Timestamp {
    type Error = String;

    fn try_from(t: TimestampInput) -> Result<Self, String> {
        let v = match t {
            TimestampInput::Unix(n) => Value::from(n),
            TimestampInput::Rfc3339(s) => Value::String(s),
        };
        parse_json_time(&v).map(Timestamp)
    }
}

/// `properties` (see [`check_properties`]), as the compact JSON text stored.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Map<String, Value>")]
pub struct Properties(pub String);

impl TryFrom<Map<String, Value>> for Properties {
    type Error = String;

    fn try_from(m: Map<String, Value>) -> Result<Self, String> {
        check_properties(&Value::Object(m)).map(Properties)
    }
}

/// The name of a field an event object may have: at most [`MAX_KEY_CHARS`] characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct FieldName(pub String);

impl TryFrom<String> for FieldName {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        if s.chars().count() > MAX_KEY_CHARS {
            Err(format!(
                "must not be longer than {MAX_KEY_CHARS} characters"
            ))
        } else {
            Ok(FieldName(s))
        }
    }
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
        Some(v) => match check_properties(v) {
            Ok(text) => Some(text),
            Err(m) => {
                errors.push(FieldError::new(field("properties"), m));
                None
            }
        },
    };

    match (user_id, event_type, ts_ms) {
        (Some(user_id), Some(t), Some(ts_ms)) if errors.is_empty() => Ok(NewEvent {
            id: new_event_id(),
            user_id,
            event_type: t.name.clone(),
            ts_ms,
            event_id,
            properties,
            points: rules.progression().boosted(&t.name, ts_ms, t.points),
            base_points: t.points,
            rules_version: rules.version(),
            cap: t.cap,
            received_ms: now_ms,
            progression: ProgressionRef(rules.progression().clone()),
        }),
        _ => Err(errors),
    }
}

/// `properties`: a JSON object of at most [`MAX_PROPERTIES_BYTES`] of compact JSON, keys
/// of at most [`MAX_KEY_CHARS`] at any depth; its compact JSON text.
pub fn check_properties(v: &Value) -> Result<String, String> {
    if !v.is_object() {
        return Err("must be a JSON object".into());
    }
    if longest_key(v) > MAX_KEY_CHARS {
        return Err(format!(
            "must not have keys longer than {MAX_KEY_CHARS} characters"
        ));
    }
    let text = v.to_string();
    if text.len() > MAX_PROPERTIES_BYTES {
        return Err(format!(
            "must be at most {MAX_PROPERTIES_BYTES} bytes of JSON"
        ));
    }
    Ok(text)
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
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;
    use std::path::Path;

    pub(crate) fn rules() -> Rules {
        Rules::parse(
            Path::new("t.yaml"),
            "events:\n  - {name: PURCHASE, point: 10}\n  - {name: LOGIN, point: 1}\n",
        )
        .unwrap()
    }

    pub(crate) const NOW: i64 = 1_800_000_000_000;

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

    /// Values of the wrong type for any field.
    fn other_json() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            Just(json!(1.5)),
            Just(json!([])),
            Just(json!(["13"])),
            Just(json!({})),
            Just(json!({"$gt": ""})),
        ]
    }

    /// `n` characters, cycling through `chars`.
    fn text(chars: &str, n: usize) -> Value {
        Value::from(chars.chars().cycle().take(n).collect::<String>())
    }

    fn id() -> impl Strategy<Value = Value> {
        prop_oneof![
            6 => "[a-zA-Z0-9_:.@-]{1,24}".prop_map(Value::from),
            2 => proptest::sample::select(vec![0usize, 1, 127, 128, 129])
                .prop_flat_map(|n| proptest::sample::select(vec![text("x", n), text("é😀", n)])),
            // Control characters (C0, DEL, C1) and their neighbours.
            2 => proptest::sample::select(vec!['\0', '\n', '\u{1f}', ' ', '~', '\u{7f}', '\u{85}', '\u{9f}', '\u{a0}'])
                .prop_map(|c| Value::from(format!("a{c}b"))),
            1 => other_json(),
        ]
    }

    fn event_type() -> impl Strategy<Value = Value> {
        prop_oneof![
            6 => proptest::sample::select(vec!["PURCHASE", "LOGIN"]).prop_map(Value::from),
            // Valid names not configured, and names no type can have.
            2 => proptest::sample::select(vec!["NOPE", "LOGIN_2", "login", "", "1LOGIN", " LOGIN"])
                .prop_map(Value::from),
            1 => other_json(),
        ]
    }

    fn timestamp() -> impl Strategy<Value = Value> {
        let seconds = NOW / 1000;
        prop_oneof![
            3 => (0..seconds + 7200).prop_map(Value::from),
            3 => (100_000_000_000i64..NOW + 2 * MAX_FUTURE_MS).prop_map(Value::from),
            2 => proptest::sample::select(vec![
                json!(-1), json!(0), json!(99_999_999_999i64), json!(100_000_000_000i64),
                json!(NOW + MAX_FUTURE_MS), json!(NOW + MAX_FUTURE_MS + 1),
                json!(253_402_300_799_999i64), json!(253_402_300_800_000i64),
                json!(i64::MAX), json!(u64::MAX), json!(1.0), json!(1e3), json!(-0.0),
            ]),
            2 => proptest::sample::select(vec![
                "2026-11-29T12:00:00Z", "2026-11-29T12:00:00.123456+02:00", "2027-01-15T08:00:00Z",
                "1970-01-01T00:00:00Z", "1969-12-31T23:59:59Z", "9999-12-31T23:59:59Z",
                "2026-11-29", "2026-11-29 12:00:00", "14223343", "yesterday", "",
            ]).prop_map(Value::from),
            1 => other_json(),
        ]
    }

    fn properties() -> impl Strategy<Value = Value> {
        // `{"a":"<n x's>"}` is n + 8 bytes of JSON.
        let sized = |n: usize| json!({"a": "x".repeat(n)});
        prop_oneof![
            4 => proptest::collection::btree_map("[a-z]{1,6}", other_json(), 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            2 => proptest::sample::select(vec![
                sized(MAX_PROPERTIES_BYTES - 8), sized(MAX_PROPERTIES_BYTES - 7),
                json!({ "k".repeat(MAX_KEY_CHARS): 1 }),
                json!({ "é".repeat(MAX_KEY_CHARS + 1): 1 }),
                json!({"a": [{ "k".repeat(MAX_KEY_CHARS + 1): 1 }]}),
                json!({"a": {"b": { "k".repeat(MAX_KEY_CHARS): [1, {"c": null}] }}}),
            ]),
            1 => other_json(),
        ]
    }

    /// Objects close to an event (each field mostly valid, sometimes wrong, absent or
    /// null, with other fields around), and now and then something else entirely.
    pub(crate) fn event_like() -> impl Strategy<Value = Value> {
        let field = |s: BoxedStrategy<Value>, present: f64| proptest::option::weighted(present, s);
        let object = (
            field(id().boxed(), 0.95),
            field(event_type().boxed(), 0.95),
            field(timestamp().boxed(), 0.95),
            field(id().boxed(), 0.5),
            field(properties().boxed(), 0.4),
            proptest::collection::btree_map(
                prop_oneof![
                    ".{0,10}",
                    Just("k".repeat(MAX_KEY_CHARS)),
                    Just("é".repeat(MAX_KEY_CHARS + 1))
                ],
                other_json(),
                0..2,
            ),
        )
            .prop_map(
                |(user_id, event_type, timestamp, event_id, properties, others)| {
                    let mut m: Map<String, Value> = others.into_iter().collect();
                    let fields = [
                        ("user_id", user_id),
                        ("event_type", event_type),
                        ("timestamp", timestamp),
                        ("event_id", event_id),
                        ("properties", properties),
                    ];
                    for (k, v) in fields {
                        if let Some(v) = v {
                            m.insert(k.to_string(), v);
                        }
                    }
                    Value::Object(m)
                },
            );
        prop_oneof![
            12 => object,
            1 => other_json(),
            // A valid event's fields in order, as an array.
            1 => Just(json!(["13", "LOGIN", 14223343])),
        ]
    }

    /// The checks that need the rules in force and the clock, on a read event.
    pub(crate) fn in_force(e: &EventInput, rules: &Rules, now_ms: i64) -> bool {
        rules.get(&e.event_type.0).is_some() && e.timestamp.0 <= now_ms + MAX_FUTURE_MS
    }

    /// What the documented type makes of `v` when those checks pass too: `None` if it
    /// refuses it or they fail.
    fn documented(v: &Value, rules: &Rules, now_ms: i64) -> Option<EventInput> {
        serde_json::from_value::<EventInput>(v.clone())
            .ok()
            .filter(|e| in_force(e, rules, now_ms))
    }

    fn agree(v: &Value) -> Result<(), TestCaseError> {
        let rules = rules();
        match (
            validate_event(v, &rules, NOW, ""),
            documented(v, &rules, NOW),
        ) {
            (Ok(e), Some(t)) => {
                prop_assert_eq!(&e.user_id, &t.user_id.0);
                prop_assert_eq!(&e.event_type, &t.event_type.0);
                prop_assert_eq!(e.ts_ms, t.timestamp.0);
                prop_assert_eq!(e.event_id, t.event_id.map(|i| i.0));
                prop_assert_eq!(e.properties, t.properties.map(|p| p.0));
            }
            (Err(_), None) => {}
            (Ok(_), None) => prop_assert!(false, "only the validator accepts {}", v),
            (Err(errors), Some(_)) => {
                prop_assert!(false, "only the type accepts {}: {:?}", v, errors)
            }
        }
        Ok(())
    }

    proptest::proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        /// The event as the document describes it (`EventInput`, with the checks that
        /// need the rules and the clock) and as the endpoints read it (`validate_event`):
        /// one accepts exactly what the other accepts, as the same event.
        #[test]
        fn the_documented_type_accepts_what_the_validator_accepts(v in event_like()) {
            agree(&v)?;
        }

        #[test]
        fn they_agree_on_any_json_too(v in any_json()) {
            agree(&v)?;
        }
    }

    /// Both sides of the property happen: it is not vacuous.
    #[test]
    fn the_events_tried_are_accepted_and_refused() {
        use proptest::strategy::ValueTree;
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let rules = rules();
        let (mut accepted, mut refused) = (0, 0);
        for _ in 0..3000 {
            let v = event_like().new_tree(&mut runner).unwrap().current();
            if validate_event(&v, &rules, NOW, "").is_ok() {
                accepted += 1;
            } else {
                refused += 1;
            }
        }
        assert!(
            accepted > 300 && refused > 300,
            "{accepted} accepted, {refused} refused"
        );
    }
}
