//! `recompute`: replays every user's ledger under the rules in force (or a registered
//! version) and reports, or with `apply` rewrites, the differences. Each user is one
//! atomic step, so an interrupted run is finished by running it again: users already
//! rewritten replay to themselves and report no difference.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::rules::Rules;
use crate::store::{Store, StoreError};

const USERS_PER_PAGE: u32 = 500;

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct Report {
    /// The rules version replayed.
    pub rules_version: Option<i64>,
    /// Users whose balance, achievements or level differ under the replayed rules.
    pub users_changed: u64,
    /// Sum of the differences over all users.
    pub points_delta: i64,
    /// Users whose wallet balance would be (applied: is) negative.
    pub negative_balances: u64,
    /// Whether the differences were written (false for a dry run).
    pub applied: bool,
    /// One entry per user whose balance, achievements or level differ, in user id
    /// order.
    pub users: Vec<UserDelta>,
}

/// Achievements a replay grants and takes away.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct AchievementDelta {
    pub unlocked: Vec<String>,
    pub revoked: Vec<String>,
}

/// The level numbers held before and after a replay (`null` below every level).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct LevelDelta {
    pub current: Option<i64>,
    pub recomputed: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct UserDelta {
    pub user_id: String,
    pub current: i64,
    pub recomputed: i64,
    pub delta: i64,
    /// Present when the replay unlocks or revokes achievements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub achievements: Option<AchievementDelta>,
    /// Present when the user's level differs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<LevelDelta>,
    /// Present when the wallet's balance would be (or, applied, is) negative: earned
    /// fell below what was already spent, which a recompute never undoes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub negative_balance: Option<WalletDelta>,
}

/// The wallet's balance before and after a replay.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct WalletDelta {
    pub current: i64,
    pub recomputed: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum RecomputeError {
    #[error("rules version {0} is not registered in the store")]
    UnknownVersion(i64),
    #[error("rules version {version} as stored no longer parses: {problem}")]
    BadVersion { version: i64, problem: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The rules a recompute replays: `version` from the store, else the ones in force.
pub async fn rules_for(
    store: &Store,
    in_force: Arc<Rules>,
    version: Option<i64>,
) -> Result<Arc<Rules>, RecomputeError> {
    let Some(version) = version.filter(|v| Some(*v) != in_force.version()) else {
        return Ok(in_force);
    };
    let text = store
        .rules
        .rules_content(version)
        .await?
        .ok_or(RecomputeError::UnknownVersion(version))?;
    let registered = store
        .rules
        .rules_versions()
        .await?
        .into_iter()
        .find(|v| v.version == version)
        .ok_or(RecomputeError::UnknownVersion(version))?;
    let label = format!("rules version {version}");
    let rules = Rules::parse(std::path::Path::new(&label), &text).map_err(|e| {
        RecomputeError::BadVersion {
            version,
            problem: e.to_string(),
        }
    })?;
    Ok(Arc::new(rules.registered_as(registered)))
}

/// Replays every user; `progress` hears the number of users done so far.
pub async fn run(
    store: &Store,
    rules: Arc<Rules>,
    apply: bool,
    mut progress: impl FnMut(u64),
) -> Result<Report, StoreError> {
    let mut report = Report {
        rules_version: rules.version(),
        users_changed: 0,
        points_delta: 0,
        negative_balances: 0,
        applied: apply,
        users: Vec::new(),
    };
    let mut after: Option<String> = None;
    let mut done = 0;
    loop {
        let page = store.export.user_ids(after.clone(), USERS_PER_PAGE).await?;
        let Some(last) = page.last().cloned() else {
            break;
        };
        for user_id in page {
            let r = store
                .ledger
                .recompute_user(&user_id, rules.clone(), apply)
                .await?;
            let achievements =
                (!r.unlocked.is_empty() || !r.revoked.is_empty()).then(|| AchievementDelta {
                    unlocked: r.unlocked.clone(),
                    revoked: r.revoked.clone(),
                });
            let level = (r.level_current != r.level_recomputed).then_some(LevelDelta {
                current: r.level_current,
                recomputed: r.level_recomputed,
            });
            let negative_balance = (r.wallet_recomputed < 0).then_some(WalletDelta {
                current: r.wallet_current,
                recomputed: r.wallet_recomputed,
            });
            report.negative_balances += u64::from(negative_balance.is_some());
            if r.recomputed != r.current
                || achievements.is_some()
                || level.is_some()
                || negative_balance.is_some()
            {
                report.users_changed += 1;
                report.points_delta += r.recomputed - r.current;
                report.users.push(UserDelta {
                    user_id,
                    current: r.current,
                    recomputed: r.recomputed,
                    delta: r.recomputed - r.current,
                    achievements,
                    level,
                    negative_balance,
                });
            }
            done += 1;
        }
        progress(done);
        after = Some(last);
    }
    Ok(report)
}
