//! Ingest: single events, batches, and the compatible per-user points query.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::extract::{Json, Params};
use super::progression::{AchievementRef, LevelRef};
use super::AppState;
use crate::domain::engine::Gained;
use crate::domain::event::{validate_event, EventInput, FieldError, NewEvent};
use crate::store::{RecordOutcome, TimeRange, TopUsersQuery};

pub const MAX_BATCH: usize = 1000;

#[derive(Serialize, ToSchema)]
pub struct EventCreated {
    #[schema(example = "User events recorded Successfully")]
    message: &'static str,
    id: String,
    points: i64,
    /// Achievements this event unlocked (empty when none).
    unlocked: Vec<AchievementRef>,
    /// The user's level after this event; `null` without levels.
    level: Option<LevelRef>,
}

fn unlocked_refs(gained: &Gained) -> Vec<AchievementRef> {
    gained
        .unlocked
        .iter()
        .map(|(id, name)| AchievementRef {
            id: id.clone(),
            name: name.clone(),
        })
        .collect()
}

fn count(outcome: &'static str, n: usize) {
    if n > 0 {
        metrics::counter!("events_total", "outcome" => outcome).increment(n as u64);
    }
}

#[utoipa::path(post, path = "/v1/users/events", tag = "events",
    summary = "Record one event",
    extensions(("x-required-role" = json!("ingest"))),
    request_body = EventInput,
    responses(
        (status = 201, body = EventCreated),
        (status = 400, body = ErrorBody, description = "Invalid fields, each named"),
        (status = 409, body = ErrorBody, description = "Duplicate; `id` is the stored event"),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 503, body = ErrorBody),
    ))]
pub async fn record_event(
    State(state): State<AppState>,
    Json(body): Json<Value>,
) -> Result<(StatusCode, axum::Json<EventCreated>), ApiError> {
    let rules = state.rules.current();
    let event = validate_event(&body, &rules, state.clock.now_ms(), "").map_err(|errors| {
        count("rejected", 1);
        ApiError::fields(errors)
    })?;
    let outcome = state.store.ledger.record(vec![event]).await?.outcomes.pop();
    match outcome {
        Some(RecordOutcome::Created { id, points, gained }) => {
            count("created", 1);
            Ok((
                StatusCode::CREATED,
                axum::Json(EventCreated {
                    message: "User events recorded Successfully",
                    id,
                    points,
                    unlocked: unlocked_refs(&gained),
                    level: gained.level.as_ref().map(LevelRef::from),
                }),
            ))
        }
        Some(RecordOutcome::Duplicate { id }) => {
            count("duplicate", 1);
            Err(ApiError::Duplicate { id })
        }
        None => Err(ApiError::Store(crate::store::StoreError::Internal(
            anyhow::anyhow!("store returned no outcome"),
        ))),
    }
}

#[derive(Deserialize, ToSchema)]
// The batch as the document describes it. The handler reads the list by hand
// ([`batch_items`]) and each event with `validate_event`, so that one bad event is
// rejected by itself, named by its index, while the others are recorded; the test
// `the_documented_batch_is_what_is_recorded_whole` checks that this type accepts a
// batch exactly when the handler takes it and records every event (the checks that need
// the rules in force and the clock aside).
pub struct BatchInput {
    /// 1 to 1000 events.
    #[schema(value_type = Vec<EventInput>, min_items = 1, max_items = 1000)]
    pub events: BatchEvents,
    // Other fields are ignored. (Flattened, serde reads the body as an object only: a
    // derived struct also takes an array, in order.)
    #[serde(flatten)]
    #[schema(ignore)]
    pub other: BTreeMap<String, IgnoredAny>,
}

/// 1 to [`MAX_BATCH`] events.
#[derive(Deserialize)]
#[serde(try_from = "Vec<EventInput>")]
pub struct BatchEvents(pub Vec<EventInput>);

impl TryFrom<Vec<EventInput>> for BatchEvents {
    type Error = String;

    fn try_from(events: Vec<EventInput>) -> Result<Self, String> {
        if (1..=MAX_BATCH).contains(&events.len()) {
            Ok(BatchEvents(events))
        } else {
            Err(format!("must hold 1 to {MAX_BATCH} events"))
        }
    }
}

/// The batch's `events`, before each is validated.
fn batch_items(body: &Value) -> Result<&[Value], ApiError> {
    match body.get("events") {
        Some(Value::Array(items)) if (1..=MAX_BATCH).contains(&items.len()) => Ok(items),
        Some(Value::Array(_)) => Err(ApiError::field(
            "events",
            format!("must hold 1 to {MAX_BATCH} events"),
        )),
        None | Some(Value::Null) => Err(ApiError::field("events", "is required")),
        Some(_) => Err(ApiError::field("events", "must be an array")),
    }
}

#[derive(Serialize, ToSchema)]
pub struct BatchResponse {
    created: usize,
    duplicates: usize,
    rejected: usize,
    results: Vec<BatchItem>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BatchStatus {
    Created,
    Duplicate,
    Rejected,
}

#[derive(Serialize, ToSchema)]
pub struct BatchItem {
    index: usize,
    status: BatchStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    points: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<Vec<FieldError>>,
    /// Created results: the achievements the event unlocked.
    #[serde(skip_serializing_if = "Option::is_none")]
    unlocked: Option<Vec<AchievementRef>>,
    /// Created results: the user's level after the event (`null` without levels).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<LevelRef>)]
    level: Option<Option<LevelRef>>,
}

#[utoipa::path(post, path = "/v1/events/batch", tag = "events",
    summary = "Record up to 1000 events at once",
    extensions(("x-required-role" = json!("ingest"))),
    request_body = BatchInput,
    responses(
        (status = 200, body = BatchResponse, description = "Per-event results in request order"),
        (status = 400, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 503, body = ErrorBody),
    ))]
pub async fn record_batch(
    State(state): State<AppState>,
    Json(body): Json<Value>,
) -> Result<axum::Json<BatchResponse>, ApiError> {
    let items = batch_items(&body)?;
    let rules = state.rules.current();
    let now = state.clock.now_ms();
    let mut results: Vec<Option<BatchItem>> = Vec::with_capacity(items.len());
    let mut valid: Vec<NewEvent> = Vec::with_capacity(items.len());
    let mut valid_index = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        match validate_event(item, &rules, now, &format!("events[{index}].")) {
            Ok(e) => {
                valid.push(e);
                valid_index.push(index);
                results.push(None);
            }
            Err(errors) => results.push(Some(BatchItem {
                index,
                status: BatchStatus::Rejected,
                id: None,
                points: None,
                message: Some(ApiError::fields(errors.clone()).to_message()),
                errors: Some(errors),
                unlocked: None,
                level: None,
            })),
        }
    }
    let outcomes = state.store.ledger.record(valid).await?.outcomes;
    for (index, outcome) in valid_index.into_iter().zip(outcomes) {
        results[index] = Some(match outcome {
            RecordOutcome::Created { id, points, gained } => BatchItem {
                index,
                status: BatchStatus::Created,
                id: Some(id),
                points: Some(points),
                message: None,
                errors: None,
                unlocked: Some(unlocked_refs(&gained)),
                level: Some(gained.level.as_ref().map(LevelRef::from)),
            },
            RecordOutcome::Duplicate { id } => BatchItem {
                index,
                status: BatchStatus::Duplicate,
                id: Some(id),
                points: Some(0),
                message: Some("User event already exists".into()),
                errors: None,
                unlocked: None,
                level: None,
            },
        });
    }
    let results: Vec<BatchItem> = results.into_iter().flatten().collect();
    let tally = |s: fn(&BatchStatus) -> bool| results.iter().filter(|r| s(&r.status)).count();
    let response = BatchResponse {
        created: tally(|s| matches!(s, BatchStatus::Created)),
        duplicates: tally(|s| matches!(s, BatchStatus::Duplicate)),
        rejected: tally(|s| matches!(s, BatchStatus::Rejected)),
        results,
    };
    count("created", response.created);
    count("duplicate", response.duplicates);
    count("rejected", response.rejected);
    Ok(axum::Json(response))
}

#[derive(Serialize, ToSchema)]
pub struct UserPointsList {
    #[schema(example = "User events queried Successfully")]
    message: &'static str,
    data: Vec<UserPointsItem>,
}

#[derive(Serialize, ToSchema)]
pub struct UserPointsItem {
    #[serde(rename = "userId")]
    user_id: String,
    points: i64,
}

/// Compatible query: one user's points (optionally of one type), or users by points.
#[utoipa::path(get, path = "/v1/users/events", tag = "compatible",
    summary = "One user's points, or users by points",
    extensions(("x-required-role" = json!("read"))),
    params(
        ("user_id" = Option<String>, Query, min_length = 1, max_length = 128, pattern = r"^[^\u0000-\u001F\u007F-\u009F]+$", description = "One user; without it, users by points, highest first"),
        ("event_type" = Option<String>, Query, description = "Count only this type's points"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Without user_id: at most this many users (default 100, max 1000)"),
        ("offset" = Option<u64>, Query, minimum = 0, maximum = 1000000000),
    ),
    responses((status = 200, body = UserPointsList), (status = 400, body = ErrorBody)))]
pub async fn query_points(
    State(state): State<AppState>,
    params: Params,
) -> Result<axum::Json<UserPointsList>, ApiError> {
    let user_id = params.user_id("user_id")?;
    let event_type = params.get("event_type").map(str::to_owned);
    if let Some(t) = &event_type {
        let rules = state.rules.current();
        if rules.get(t).is_none() {
            return Err(ApiError::field(
                "event_type",
                format!(
                    "unknown event type; configured types are: {}",
                    rules.names().join(", ")
                ),
            ));
        }
    }
    let limit = params.number("limit", 100, 1, 1000)? as u32;
    // The bound the OpenAPI document states, as on the leaderboard.
    let offset = params.number("offset", 0, 0, 1_000_000_000)?;
    let data = match user_id {
        Some(user_id) => {
            let totals = state
                .store
                .ledger
                .user_points(&user_id, TimeRange::default())
                .await?;
            let points = match &event_type {
                None if totals.events > 0 => Some(totals.points),
                None => None,
                Some(t) => totals
                    .by_type
                    .iter()
                    .find(|b| &b.event_type == t)
                    .map(|b| b.points),
            };
            points
                .map(|points| vec![UserPointsItem { user_id, points }])
                .unwrap_or_default()
        }
        None => state
            .store
            .ledger
            .top_users(TopUsersQuery {
                event_type,
                limit,
                offset,
            })
            .await?
            .into_iter()
            .map(|u| UserPointsItem {
                user_id: u.user_id,
                points: u.points,
            })
            .collect(),
    };
    Ok(axum::Json(UserPointsList {
        message: "User events queried Successfully",
        data,
    }))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::domain::event::tests::{event_like, in_force, rules, NOW};

    fn valid_event() -> Value {
        json!({"user_id": "13", "event_type": "LOGIN", "timestamp": 14223343})
    }

    fn batch_like() -> impl Strategy<Value = Value> {
        let events = prop_oneof![
            8 => proptest::collection::vec(
                prop_oneof![3 => Just(valid_event()), 2 => event_like()], 0..4
            ).prop_map(Value::from),
            1 => proptest::sample::select(vec![MAX_BATCH, MAX_BATCH + 1])
                .prop_map(|n| Value::from(vec![valid_event(); n])),
            1 => proptest::sample::select(vec![json!(null), json!({}), json!("[]"), json!(1)]),
        ];
        let object = (
            proptest::option::weighted(0.95, events),
            proptest::collection::btree_map(".{0,8}", Just(json!(1)), 0..2),
        )
            .prop_map(|(events, others)| {
                let mut m: serde_json::Map<String, Value> = others.into_iter().collect();
                m.extend(events.map(|e| ("events".to_string(), e)));
                Value::Object(m)
            });
        prop_oneof![
            8 => object,
            1 => Just(json!([[{"user_id": "13", "event_type": "LOGIN", "timestamp": 1}]])),
            1 => Just(json!(null)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        /// The batch as the document describes it (`BatchInput`, with the checks that
        /// need the rules and the clock on each event) and as the handler reads it: the
        /// type accepts exactly the batches the handler takes and records whole.
        #[test]
        fn the_documented_batch_is_what_is_recorded_whole(v in batch_like()) {
            let rules = rules();
            let by_hand = batch_items(&v).is_ok_and(|items| {
                items.iter().all(|e| validate_event(e, &rules, NOW, "").is_ok())
            });
            let typed = serde_json::from_value::<BatchInput>(v.clone())
                .is_ok_and(|batch| batch.events.0.iter().all(|e| in_force(e, &rules, NOW)));
            prop_assert_eq!(by_hand, typed, "{}", v);
        }
    }

    #[test]
    fn the_list_is_named_when_it_is_wrong() {
        let message = |v: Value| match batch_items(&v) {
            Err(ApiError::Validation { message, .. }) => message,
            other => panic!("{v}: {:?}", other.map(<[Value]>::len)),
        };
        assert_eq!(message(json!({})), "events is required");
        assert_eq!(message(json!([])), "events is required");
        assert_eq!(message(json!({"events": {}})), "events must be an array");
        assert_eq!(
            message(json!({"events": []})),
            "events must hold 1 to 1000 events"
        );
    }
}
