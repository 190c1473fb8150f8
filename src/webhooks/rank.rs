//! `rank.changed`: who entered, left or moved within the top N of a leaderboard because
//! of a write. Store-independent: a store reads the board's first entries before and
//! after it applies a write's counters (in the write's transaction) and queues one
//! delivery per change this module finds.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::domain::period::Period;
use crate::domain::ranking::RankedEntry;

/// Largest `rank.top` a subscription may ask for.
pub const MAX_TOP: u32 = 100;

/// Which board a `rank.changed` subscription watches: the first `top` entries of the
/// `period` leaderboard, as `GET /v1/leaderboard?period=…&limit=top` lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RankWatch {
    /// `all` (the default, as for the leaderboard), `day`, `week` or `month`; the board
    /// watched is the one of that kind containing each event's timestamp.
    #[serde(default = "all")]
    pub period: Period,
    /// How many entries of the board are watched, 1 to 100.
    #[schema(minimum = 1, maximum = 100)]
    pub top: u32,
}

fn all() -> Period {
    Period::All
}

/// One user whose rank within the watched top N differs after a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RankChange {
    pub user_id: String,
    /// Rank after the write; `None` when the user is no longer in the top N.
    pub rank: Option<u64>,
    /// Rank before the write; `None` when the user was not in the top N.
    pub previous_rank: Option<u64>,
    /// Points on the board after the write; `None` for a user who left the top N (the
    /// after board does not show them: the store knows them from its counters).
    pub points: Option<i64>,
}

/// The changes between two readings of one board, each in leaderboard order (points
/// descending, then user id, ranked 1, 2, 2, 4) and holding at least its first `top`
/// entries when the board has that many; entries past `top` are ignored.
///
/// A user counts when their rank within the first `top` entries differs: entered (no
/// previous rank), left (no rank) or moved. Equal ranks are no change, whatever the
/// points did. The changes come in the order of the after board, then those who left
/// in the order of the before board.
pub fn rank_changes(before: &[RankedEntry], after: &[RankedEntry], top: u32) -> Vec<RankChange> {
    let top = top as usize;
    let before = &before[..before.len().min(top)];
    let after = &after[..after.len().min(top)];
    let find = |board: &[RankedEntry], user: &str| -> Option<u64> {
        board.iter().find(|e| e.user_id == user).map(|e| e.rank)
    };
    let mut changes = Vec::new();
    for e in after {
        let previous = find(before, &e.user_id);
        if previous != Some(e.rank) {
            changes.push(RankChange {
                user_id: e.user_id.clone(),
                rank: Some(e.rank),
                previous_rank: previous,
                points: Some(e.points),
            });
        }
    }
    for e in before {
        if find(after, &e.user_id).is_none() {
            changes.push(RankChange {
                user_id: e.user_id.clone(),
                rank: None,
                previous_rank: Some(e.rank),
                points: None,
            });
        }
    }
    changes
}

/// The `data` of a `rank.changed` delivery. `period` is the board's storage key
/// (`all`, `day:2026-11-30`, `week:2026-W48`, `month:2026-11`), `points` the user's
/// points on it after the write.
pub fn data(change: &RankChange, period: &str, points: i64, top: u32) -> Value {
    json!({
        "user_id": change.user_id,
        "period": period,
        "rank": change.rank,
        "previous_rank": change.previous_rank,
        "points": points,
        "top": top,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ranking::rank_run;

    fn board(rows: &[(&str, i64)]) -> Vec<RankedEntry> {
        let mut rows: Vec<(String, i64)> = rows.iter().map(|(u, p)| (u.to_string(), *p)).collect();
        rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        rank_run(0, 1, rows)
    }

    fn summary(changes: &[RankChange]) -> Vec<(&str, Option<u64>, Option<u64>)> {
        changes
            .iter()
            .map(|c| (c.user_id.as_str(), c.previous_rank, c.rank))
            .collect()
    }

    #[test]
    fn entering_an_empty_board() {
        let c = rank_changes(&[], &board(&[("a", 10)]), 3);
        assert_eq!(
            c,
            [RankChange {
                user_id: "a".into(),
                rank: Some(1),
                previous_rank: None,
                points: Some(10),
            }]
        );
    }

    #[test]
    fn overtaking_moves_both() {
        let before = board(&[("a", 20), ("b", 10), ("c", 5)]);
        let after = board(&[("a", 20), ("b", 10), ("c", 25)]);
        assert_eq!(
            summary(&rank_changes(&before, &after, 3)),
            [
                ("c", Some(3), Some(1)),
                ("a", Some(1), Some(2)),
                ("b", Some(2), Some(3))
            ]
        );
    }

    #[test]
    fn entering_pushes_the_last_one_out() {
        let before = board(&[("a", 20), ("b", 10), ("c", 5), ("d", 1)]);
        let after = board(&[("a", 20), ("b", 10), ("c", 5), ("d", 15)]);
        let c = rank_changes(&before, &after, 3);
        assert_eq!(
            summary(&c),
            [
                ("d", None, Some(2)),
                ("b", Some(2), Some(3)),
                ("c", Some(3), None)
            ]
        );
        assert_eq!(
            c[2].points, None,
            "the store fills in the points of who left"
        );
    }

    #[test]
    fn points_that_change_no_rank_send_nothing() {
        let before = board(&[("a", 20), ("b", 10), ("c", 5), ("d", 1)]);
        // a gains, d gains but stays fourth, e arrives below the top.
        let after = board(&[("a", 30), ("b", 10), ("c", 5), ("d", 4), ("e", 2)]);
        assert_eq!(rank_changes(&before, &after, 3), []);
    }

    #[test]
    fn ties_share_a_rank_and_moving_inside_a_tie_is_no_change() {
        // b and c tie at 10 (rank 2, 2); b gains nothing, a drops into the tie.
        let before = board(&[("a", 20), ("b", 10), ("c", 10)]);
        let after = board(&[("a", 10), ("b", 10), ("c", 10)]);
        assert_eq!(
            summary(&rank_changes(&before, &after, 3)),
            [("b", Some(2), Some(1)), ("c", Some(2), Some(1))]
        );
        // Breaking a tie: c goes ahead and keeps rank 2, b falls to 3.
        let before = board(&[("a", 20), ("b", 10), ("c", 10)]);
        let after = board(&[("a", 20), ("b", 10), ("c", 11)]);
        assert_eq!(
            summary(&rank_changes(&before, &after, 3)),
            [("b", Some(2), Some(3))]
        );
    }

    #[test]
    fn the_boundary_is_cut_by_user_id_like_the_leaderboard() {
        // Top 2 of a 10, c 5, b 5 is a, b (ties by user id): c is not in it.
        let before = board(&[("a", 10), ("c", 5)]);
        let after = board(&[("a", 10), ("b", 5), ("c", 5)]);
        assert_eq!(
            summary(&rank_changes(&before, &after, 2)),
            [("b", None, Some(2)), ("c", Some(2), None)]
        );
    }

    #[test]
    fn longer_boards_are_cut_to_top() {
        // A store reads the largest top of its subscriptions once and each compares its own.
        let before = board(&[("a", 20), ("b", 10), ("c", 5)]);
        let after = board(&[("a", 20), ("b", 10), ("c", 15)]);
        assert_eq!(rank_changes(&before, &after, 1), []);
        assert_eq!(
            summary(&rank_changes(&before, &after, 2)),
            [("c", None, Some(2)), ("b", Some(2), None)]
        );
    }

    #[test]
    fn data_names_the_period_and_the_top() {
        let c = RankChange {
            user_id: "13".into(),
            rank: None,
            previous_rank: Some(3),
            points: None,
        };
        assert_eq!(
            data(&c, "week:2026-W48", 42, 3),
            json!({"user_id": "13", "period": "week:2026-W48", "rank": null,
                   "previous_rank": 3, "points": 42, "top": 3})
        );
    }

    #[test]
    fn a_watch_reads_from_yaml_and_json_with_all_as_the_default_period() {
        let w: RankWatch = serde_json::from_str(r#"{"top": 3}"#).unwrap();
        assert_eq!(
            w,
            RankWatch {
                period: Period::All,
                top: 3
            }
        );
        let w: RankWatch = serde_yaml::from_str("{period: week, top: 10}").unwrap();
        assert_eq!(
            w,
            RankWatch {
                period: Period::Week,
                top: 10
            }
        );
        assert_eq!(
            serde_json::to_value(w).unwrap(),
            json!({"period": "week", "top": 10})
        );
        assert!(serde_yaml::from_str::<RankWatch>("{period: year, top: 10}").is_err());
        assert!(serde_yaml::from_str::<RankWatch>("{period: week}").is_err());
        assert!(serde_yaml::from_str::<RankWatch>("{top: 3, n: 4}").is_err());
    }
}
