//! The wallet: a user's spendable balance, spends with idempotency keys, and holds that
//! are captured, voided or released by themselves. Every change is a wallet entry,
//! applied by the engine ([`crate::domain::engine::wallet_op`]) in the store's write.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::extract::{path_user_id, Json, Path};
use super::AppState;
use crate::domain::engine::WalletOp;
use crate::domain::event::{check_id, FieldError};
use crate::domain::time::format_millis;
use crate::domain::wallet::{HoldStatus, Wallet, WalletEntry, WalletError};
use crate::store::{StoredEvent, WalletResult};

const NOT_CONFIGURED: &str =
    "The wallet is not configured: add a wallet section to the rules file (see docs/wallet.md)";
const MAX_ID_CHARS: usize = 128;
const MAX_REASON_CHARS: usize = 256;
const MAX_HOLD_SECS: i64 = 30 * 86_400;

/// A wallet entry as a history row: no points (the wallet is apart from earned points),
/// what it did in `properties`.
pub fn as_history(e: WalletEntry) -> StoredEvent {
    StoredEvent {
        event_type: e.kind.event_type(),
        properties: Some(
            serde_json::json!({"amount": e.amount, "ref": e.ref_id, "reason": e.reason})
                .to_string(),
        ),
        id: e.id,
        event_id: None,
        ts_ms: e.ts_ms,
        points: 0,
        received_ms: e.ts_ms,
        base_points: 0,
        rules_version: None,
    }
}

#[derive(Serialize, ToSchema)]
pub struct Expiring {
    #[schema(format = DateTime)]
    pub at: String,
    pub points: i64,
}

#[derive(Serialize, ToSchema)]
pub struct WalletView {
    pub user_id: String,
    pub earned: i64,
    pub spent: i64,
    pub expired: i64,
    pub held: i64,
    /// `earned − spent − expired`.
    pub balance: i64,
    /// `balance − held`.
    pub available: i64,
    /// The next expiries, with the points left to expire then.
    pub expiring: Vec<Expiring>,
}

/// The wallet as it stands at `now_ms`: what fell due since its last write applied.
fn as_of(mut w: Wallet, state: &AppState, now_ms: i64) -> Wallet {
    let rules = state.rules.current();
    if let Some(r) = &rules.progression().wallet {
        w.advance(r, now_ms, &mut Default::default());
    }
    w
}

fn configured(state: &AppState) -> Result<std::sync::Arc<crate::domain::rules::Rules>, ApiError> {
    let rules = state.rules.current();
    match rules.progression().wallet {
        Some(_) => Ok(rules),
        None => Err(ApiError::NotConfigured(NOT_CONFIGURED)),
    }
}

#[utoipa::path(get, path = "/v1/users/{user_id}/wallet", tag = "wallet",
    summary = "A user's spendable balance",
    extensions(("x-required-role" = json!("read"))),
    params(("user_id" = String, Path, min_length = 1, max_length = 128, pattern = r"^[^\u0000-\u001F\u007F-\u009F]+$")),
    responses((status = 200, body = WalletView), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "No wallet section in the rules"),
        (status = 501, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn wallet(
    State(state): State<AppState>,
    Path(user_id): Path<String>,
) -> Result<axum::Json<WalletView>, ApiError> {
    path_user_id(&user_id)?;
    configured(&state)?;
    let now = state.clock.now_ms();
    let progress = state.store.progress.user_progress(&user_id).await?;
    let w = as_of(progress.wallet, &state, now);
    Ok(axum::Json(WalletView {
        user_id,
        earned: w.earned,
        spent: w.spent,
        expired: w.expired,
        held: w.held(),
        balance: w.balance(),
        available: w.available(),
        expiring: w
            .expiring(now)
            .into_iter()
            .map(|(at, points)| Expiring {
                at: format_millis(at),
                points,
            })
            .collect(),
    }))
}

/// Reads the fields of a wallet body, naming every bad one.
struct Fields<'a> {
    body: &'a Value,
    errors: Vec<FieldError>,
}

impl<'a> Fields<'a> {
    fn new(body: &'a Value) -> Result<Fields<'a>, ApiError> {
        if !body.is_object() {
            return Err(ApiError::BadRequest(
                "The body must be a JSON object".into(),
            ));
        }
        Ok(Fields {
            body,
            errors: Vec::new(),
        })
    }

    fn amount(&mut self, name: &str, required: bool) -> Option<i64> {
        match self.body.get(name) {
            None | Some(Value::Null) if !required => None,
            None | Some(Value::Null) => {
                self.errors.push(FieldError::new(name, "is required"));
                None
            }
            Some(v) => match v.as_i64() {
                Some(n) if (1..=crate::domain::rules::MAX_ABS_POINTS).contains(&n) => Some(n),
                _ => {
                    self.errors.push(FieldError::new(
                        name,
                        "must be an integer from 1 to 1000000000",
                    ));
                    None
                }
            },
        }
    }

    fn id(&mut self, name: &str) -> Option<String> {
        match self.body.get(name) {
            Some(Value::String(s)) => match check_id(s, MAX_ID_CHARS) {
                Ok(()) => Some(s.clone()),
                Err(m) => {
                    self.errors.push(FieldError::new(name, m));
                    None
                }
            },
            None | Some(Value::Null) => {
                self.errors.push(FieldError::new(name, "is required"));
                None
            }
            Some(_) => {
                self.errors.push(FieldError::new(name, "must be a string"));
                None
            }
        }
    }

    fn reason(&mut self) -> Option<String> {
        match self.body.get("reason") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.chars().count() <= MAX_REASON_CHARS => Some(s.clone()),
            Some(_) => {
                self.errors.push(FieldError::new(
                    "reason",
                    format!("must be a string of at most {MAX_REASON_CHARS} characters"),
                ));
                None
            }
        }
    }

    fn secs(&mut self) -> i64 {
        match self.body.get("expires_in_secs") {
            None | Some(Value::Null) => 900,
            Some(v) => match v.as_i64() {
                Some(n) if (1..=MAX_HOLD_SECS).contains(&n) => n,
                _ => {
                    self.errors.push(FieldError::new(
                        "expires_in_secs",
                        format!("must be an integer from 1 to {MAX_HOLD_SECS}"),
                    ));
                    0
                }
            },
        }
    }

    fn done(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::fields(self.errors))
        }
    }
}

async fn run(
    state: &AppState,
    user_id: &str,
    op: WalletOp,
) -> Result<(WalletEntry, Wallet), (ApiError, Option<Wallet>)> {
    let rules = configured(state).map_err(|e| (e, None))?;
    let now = state.clock.now_ms();
    let WalletResult { result, wallet } = state
        .store
        .progress
        .wallet_op(user_id, op.clone(), rules, now)
        .await
        .map_err(|e| (e.into(), None))?;
    let exists = match op {
        WalletOp::Hold { .. } => "Hold already exists",
        _ => "Spend already exists",
    };
    match result {
        Ok(Some(entry)) => Ok((entry, wallet)),
        Ok(None) => Err((ApiError::NotFound, Some(wallet))),
        Err(WalletError::Exists { id }) => Err((
            ApiError::Exists {
                message: exists,
                id,
            },
            Some(wallet),
        )),
        Err(WalletError::Insufficient { available }) => {
            Err((ApiError::Insufficient { available }, Some(wallet)))
        }
        Err(WalletError::NoHold) => {
            Err((ApiError::NotFoundMessage("Hold not found"), Some(wallet)))
        }
        Err(WalletError::NotOpen(s)) => Err((ApiError::HoldNotOpen(s.as_str()), Some(wallet))),
        Err(WalletError::OverCapture { held }) => Err((
            ApiError::field(
                "amount",
                format!("must not exceed the held amount ({held})"),
            ),
            Some(wallet),
        )),
    }
}

#[derive(Deserialize, ToSchema)]
#[allow(dead_code)] // the document's description of the body `spend` reads by hand
pub struct SpendInput {
    #[schema(minimum = 1, maximum = 1000000000)]
    amount: i64,
    /// The client's idempotency key: the same id again is a 409, nothing spent.
    #[schema(min_length = 1, max_length = 128)]
    spend_id: String,
    #[schema(max_length = 256)]
    reason: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct SpendCreated {
    pub id: String,
    pub spend_id: String,
    pub amount: i64,
    pub available: i64,
}

#[utoipa::path(post, path = "/v1/users/{user_id}/spend", tag = "wallet",
    summary = "Spend points, once per spend_id",
    extensions(("x-required-role" = json!("spend"))),
    params(("user_id" = String, Path, min_length = 1, max_length = 128, pattern = r"^[^\u0000-\u001F\u007F-\u009F]+$")),
    request_body = SpendInput,
    responses((status = 201, body = SpendCreated), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "No wallet section in the rules"),
        (status = 409, body = ErrorBody, description = "The spend_id was used: `id` is the stored spend"),
        (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "More than `available`, which the body gives"),
        (status = 501, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn spend(
    State(state): State<AppState>,
    Path(user_id): Path<String>,
    Json(body): Json<Value>,
) -> Result<(StatusCode, axum::Json<SpendCreated>), ApiError> {
    path_user_id(&user_id)?;
    let mut f = Fields::new(&body)?;
    let (amount, spend_id, reason) = (f.amount("amount", true), f.id("spend_id"), f.reason());
    f.done()?;
    // `done` refused the body unless both fields read.
    let (Some(amount), Some(spend_id)) = (amount, spend_id) else {
        return Err(ApiError::BadRequest(
            "amount and spend_id are required".into(),
        ));
    };
    let op = WalletOp::Spend {
        amount,
        spend_id: spend_id.clone(),
        reason,
    };
    let (entry, wallet) = run(&state, &user_id, op).await.map_err(|(e, _)| e)?;
    Ok((
        StatusCode::CREATED,
        axum::Json(SpendCreated {
            id: entry.id,
            spend_id,
            amount,
            available: wallet.available(),
        }),
    ))
}

#[derive(Deserialize, ToSchema)]
#[allow(dead_code)] // the document's description of the body `hold` reads by hand
pub struct HoldInput {
    #[schema(minimum = 1, maximum = 1000000000)]
    amount: i64,
    #[schema(min_length = 1, max_length = 128)]
    hold_id: String,
    /// Default 900; at most 30 days.
    #[schema(minimum = 1, maximum = 2592000)]
    expires_in_secs: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct HoldCreated {
    pub hold_id: String,
    pub amount: i64,
    #[schema(format = DateTime)]
    pub expires_at: String,
    pub available: i64,
}

#[utoipa::path(post, path = "/v1/users/{user_id}/holds", tag = "wallet",
    summary = "Reserve points until captured, voided or expired",
    extensions(("x-required-role" = json!("spend"))),
    params(("user_id" = String, Path, min_length = 1, max_length = 128, pattern = r"^[^\u0000-\u001F\u007F-\u009F]+$")),
    request_body = HoldInput,
    responses((status = 201, body = HoldCreated), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 501, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn hold(
    State(state): State<AppState>,
    Path(user_id): Path<String>,
    Json(body): Json<Value>,
) -> Result<(StatusCode, axum::Json<HoldCreated>), ApiError> {
    path_user_id(&user_id)?;
    let mut f = Fields::new(&body)?;
    let (amount, hold_id, secs) = (f.amount("amount", true), f.id("hold_id"), f.secs());
    f.done()?;
    // `done` refused the body unless both fields read.
    let (Some(amount), Some(hold_id)) = (amount, hold_id) else {
        return Err(ApiError::BadRequest(
            "amount and hold_id are required".into(),
        ));
    };
    let expires_ms = state.clock.now_ms() + secs * 1000;
    let op = WalletOp::Hold {
        amount,
        hold_id: hold_id.clone(),
        expires_ms,
    };
    let (_, wallet) = run(&state, &user_id, op).await.map_err(|(e, _)| e)?;
    Ok((
        StatusCode::CREATED,
        axum::Json(HoldCreated {
            hold_id,
            amount,
            expires_at: format_millis(expires_ms),
            available: wallet.available(),
        }),
    ))
}

#[derive(Deserialize, ToSchema)]
#[allow(dead_code)] // the document's description of the body `capture` reads by hand
pub struct CaptureInput {
    /// At most the held amount; default all of it.
    #[schema(minimum = 1, maximum = 1000000000)]
    amount: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct HoldClosed {
    pub hold_id: String,
    /// Spent (a capture's spend, under the hold id); 0 for a void.
    pub captured: i64,
    /// Available again.
    pub released: i64,
    pub status: &'static str,
    pub available: i64,
}

#[utoipa::path(post, path = "/v1/users/{user_id}/holds/{hold_id}/capture", tag = "wallet",
    summary = "Spend a hold (all or part); the rest is released",
    extensions(("x-required-role" = json!("spend"))),
    params(("user_id" = String, Path, min_length = 1, max_length = 128, pattern = r"^[^\u0000-\u001F\u007F-\u009F]+$"),
        ("hold_id" = String, Path, min_length = 1, max_length = 128, pattern = r"^[^\u0000-\u001F\u007F-\u009F]+$")),
    request_body(content = Option<CaptureInput>, description = "Optional"),
    responses((status = 200, body = HoldClosed), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "The hold is no longer open: `status` says what it is"),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 501, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn capture(
    State(state): State<AppState>,
    Path((user_id, hold_id)): Path<(String, String)>,
    body: Option<Json<Value>>,
) -> Result<axum::Json<HoldClosed>, ApiError> {
    path_user_id(&user_id)?;
    check_id(&hold_id, MAX_ID_CHARS).map_err(|m| ApiError::field("hold_id", m))?;
    let body = body.map(|Json(b)| b).unwrap_or(Value::Null);
    let amount = if body.is_null() {
        None
    } else {
        let mut f = Fields::new(&body)?;
        let a = f.amount("amount", false);
        f.done()?;
        a
    };
    let op = WalletOp::Capture {
        hold_id: hold_id.clone(),
        amount,
    };
    let (entry, wallet) = run(&state, &user_id, op).await.map_err(|(e, _)| e)?;
    let held = wallet
        .holds
        .get(&hold_id)
        .map_or(entry.amount, |h| h.amount);
    Ok(axum::Json(HoldClosed {
        hold_id,
        captured: entry.amount,
        released: held - entry.amount,
        status: HoldStatus::Captured.as_str(),
        available: wallet.available(),
    }))
}

#[utoipa::path(post, path = "/v1/users/{user_id}/holds/{hold_id}/void", tag = "wallet",
    summary = "Release a hold whole",
    extensions(("x-required-role" = json!("spend"))),
    params(("user_id" = String, Path, min_length = 1, max_length = 128, pattern = r"^[^\u0000-\u001F\u007F-\u009F]+$"),
        ("hold_id" = String, Path, min_length = 1, max_length = 128, pattern = r"^[^\u0000-\u001F\u007F-\u009F]+$")),
    responses((status = 200, body = HoldClosed), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 501, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn void(
    State(state): State<AppState>,
    Path((user_id, hold_id)): Path<(String, String)>,
) -> Result<axum::Json<HoldClosed>, ApiError> {
    path_user_id(&user_id)?;
    check_id(&hold_id, MAX_ID_CHARS).map_err(|m| ApiError::field("hold_id", m))?;
    let op = WalletOp::Void {
        hold_id: hold_id.clone(),
    };
    let (entry, wallet) = run(&state, &user_id, op).await.map_err(|(e, _)| e)?;
    Ok(axum::Json(HoldClosed {
        hold_id,
        captured: 0,
        released: entry.amount,
        status: HoldStatus::Voided.as_str(),
        available: wallet.available(),
    }))
}

#[derive(Serialize, ToSchema)]
pub struct OpenHold {
    pub hold_id: String,
    pub amount: i64,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub expires_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct HoldList {
    pub user_id: String,
    pub data: Vec<OpenHold>,
}

#[utoipa::path(get, path = "/v1/users/{user_id}/holds", tag = "wallet",
    summary = "A user's open holds",
    extensions(("x-required-role" = json!("read"))),
    params(("user_id" = String, Path, min_length = 1, max_length = 128, pattern = r"^[^\u0000-\u001F\u007F-\u009F]+$")),
    responses((status = 200, body = HoldList), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 501, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn holds(
    State(state): State<AppState>,
    Path(user_id): Path<String>,
) -> Result<axum::Json<HoldList>, ApiError> {
    path_user_id(&user_id)?;
    configured(&state)?;
    let now = state.clock.now_ms();
    let progress = state.store.progress.user_progress(&user_id).await?;
    let w = as_of(progress.wallet, &state, now);
    let data = w
        .holds
        .iter()
        .filter(|(_, h)| h.status == HoldStatus::Open)
        .map(|(id, h)| OpenHold {
            hold_id: id.clone(),
            amount: h.amount,
            created_at: format_millis(h.created_ms),
            expires_at: format_millis(h.expires_ms),
        })
        .collect();
    Ok(axum::Json(HoldList { user_id, data }))
}
