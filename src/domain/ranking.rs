//! Competition ranking ("1, 2, 2, 4"): equal points share a rank, ties listed by user id.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RankedEntry {
    pub rank: u64,
    pub user_id: String,
    pub points: i64,
}

/// Ranks a run of consecutive leaderboard rows.
///
/// `rows` are in leaderboard order (points descending, then user id ascending);
/// `first_position` is the 0-based position of the first row in the whole board and
/// `first_rank` its rank (1 + the number of users with strictly more points). Every
/// later rank then follows from positions alone, so a store counts only once per page.
pub fn rank_run(
    first_position: u64,
    first_rank: u64,
    rows: Vec<(String, i64)>,
) -> Vec<RankedEntry> {
    let mut out: Vec<RankedEntry> = Vec::with_capacity(rows.len());
    for (i, (user_id, points)) in rows.into_iter().enumerate() {
        let rank = match out.last() {
            None => first_rank,
            Some(prev) if prev.points == points => prev.rank,
            Some(_) => first_position + i as u64 + 1,
        };
        out.push(RankedEntry {
            rank,
            user_id,
            points,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(v: &[(&str, i64)]) -> Vec<(String, i64)> {
        v.iter().map(|(u, p)| (u.to_string(), *p)).collect()
    }

    #[test]
    fn ties_share_rank_and_skip() {
        let r = rank_run(0, 1, rows(&[("a", 9), ("b", 5), ("c", 5), ("d", 1)]));
        let ranks: Vec<u64> = r.iter().map(|e| e.rank).collect();
        assert_eq!(ranks, vec![1, 2, 2, 4]);
    }

    #[test]
    fn a_page_starting_inside_a_tie_keeps_the_tie_rank() {
        // Board: a 9, b 5, c 5, d 5, e 1. A page from offset 2 starts at c.
        let r = rank_run(2, 2, rows(&[("c", 5), ("d", 5), ("e", 1)]));
        let ranks: Vec<u64> = r.iter().map(|e| e.rank).collect();
        assert_eq!(ranks, vec![2, 2, 5]);
    }
}
