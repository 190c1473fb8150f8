//! Typed calls to Redis: one method per script or command, each bounded by a timeout.

use std::future::Future;
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{AsyncCommands, FromRedisValue};

use super::codec::{glob_escape, rows_of, user_points, UserEntry};
use super::scripts::Scripts;
use super::CacheConfig;
use crate::domain::ranking::{rank_run, RankedEntry};
use crate::store::{Standing, UserPoints};

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    /// Redis answered something the cache never writes.
    #[error("unexpected cache content: {0}")]
    Corrupt(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportMode {
    Apply,
    Invalidate,
}

pub struct Probe {
    pub epoch: Option<String>,
    pub build: Option<String>,
    /// Why the probe invalidated the cache, if it did.
    pub invalidated: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finalize {
    Done,
    Wait,
    Dirty,
    Aborted,
}

pub struct Ops {
    conn: ConnectionManager,
    scripts: Scripts,
    prefix: String,
    op_timeout: Duration,
    build_op_timeout: Duration,
    deadline_ms: u64,
    settle_ms: u64,
}

impl Ops {
    pub fn new(conn: ConnectionManager, config: &CacheConfig) -> Ops {
        Ops {
            conn,
            scripts: Scripts::new(),
            prefix: config.key_prefix.clone(),
            op_timeout: config.op_timeout,
            build_op_timeout: config.build_op_timeout,
            deadline_ms: millis(config.write_deadline),
            settle_ms: millis(config.settle),
        }
    }

    async fn bounded<T>(
        limit: Duration,
        f: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, CacheError> {
        match tokio::time::timeout(limit, f).await {
            Ok(r) => Ok(r?),
            Err(_) => Err(CacheError::Timeout(limit)),
        }
    }

    async fn run<T: FromRedisValue>(
        &self,
        script: &redis::Script,
        args: &[&str],
        limit: Duration,
    ) -> Result<T, CacheError> {
        let mut inv = script.prepare_invoke();
        inv.arg(&self.prefix);
        for a in args {
            inv.arg(*a);
        }
        let mut conn = self.conn.clone();
        Self::bounded(limit, inv.invoke_async(&mut conn)).await
    }

    async fn call<T: FromRedisValue>(
        &self,
        script: &redis::Script,
        args: &[&str],
    ) -> Result<T, CacheError> {
        self.run(script, args, self.op_timeout).await
    }

    pub async fn announce(&self, wid: &str, users: &[String]) -> Result<(), CacheError> {
        let deadline = self.deadline_ms.to_string();
        let mut args = vec![wid, deadline.as_str()];
        args.extend(users.iter().map(String::as_str));
        self.call::<i64>(&self.scripts.announce, &args).await?;
        Ok(())
    }

    /// Returns the users marked `dup` that have another write in flight.
    pub async fn report(
        &self,
        wid: &str,
        mode: ReportMode,
        users: &[UserEntry],
    ) -> Result<Vec<String>, CacheError> {
        let json = serde_json::to_string(users)
            .map_err(|e| CacheError::Corrupt(format!("cannot encode a report: {e}")))?;
        let mode = match mode {
            ReportMode::Apply => "apply",
            ReportMode::Invalidate => "invalidate",
        };
        let (deadline, settle) = (self.deadline_ms.to_string(), self.settle_ms.to_string());
        self.call(
            &self.scripts.report,
            &[wid, &deadline, &settle, mode, &json],
        )
        .await
    }

    pub async fn pending(&self, users: &[String]) -> Result<Vec<String>, CacheError> {
        let args: Vec<&str> = users.iter().map(String::as_str).collect();
        self.call(&self.scripts.pending, &args).await
    }

    pub async fn abandon(&self, users: &[String]) -> Result<(), CacheError> {
        let settle = self.settle_ms.to_string();
        let mut args = vec![settle.as_str()];
        args.extend(users.iter().map(String::as_str));
        self.call::<i64>(&self.scripts.abandon, &args).await?;
        Ok(())
    }

    pub async fn invalidate(&self) -> Result<(), CacheError> {
        let settle = self.settle_ms.to_string();
        self.call::<i64>(&self.scripts.invalidate, &[&settle])
            .await?;
        Ok(())
    }

    /// `None` when the cache is not live.
    pub async fn user_points(&self, user_id: &str) -> Result<Option<UserPoints>, CacheError> {
        let Some(flat) = self
            .call::<Option<Vec<String>>>(&self.scripts.read_user, &[user_id])
            .await?
        else {
            return Ok(None);
        };
        user_points(&flat).map(Some)
    }

    pub async fn leaderboard(
        &self,
        period: &str,
        limit: u32,
        offset: u64,
    ) -> Result<Option<Vec<RankedEntry>>, CacheError> {
        // Redis takes signed 64-bit positions; a page past that is empty anyway.
        let start = offset.min(i64::MAX as u64);
        let stop = start
            .saturating_add(u64::from(limit).saturating_sub(1))
            .min(i64::MAX as u64);
        let (start_s, stop_s) = (start.to_string(), stop.to_string());
        let reply: Option<(u64, Vec<String>)> = self
            .call(&self.scripts.read_board, &[period, &start_s, &stop_s])
            .await?;
        let Some((higher, flat)) = reply else {
            return Ok(None);
        };
        Ok(Some(rank_run(offset, higher + 1, rows_of(flat)?)))
    }

    pub async fn standing(
        &self,
        period: &str,
        user_id: &str,
        around: u32,
    ) -> Result<Option<Standing>, CacheError> {
        let around_s = around.to_string();
        let reply: Option<(i64, u64, Vec<String>)> = self
            .call(&self.scripts.read_standing, &[period, user_id, &around_s])
            .await?;
        let Some((start, higher, flat)) = reply else {
            return Ok(None);
        };
        let Ok(start) = u64::try_from(start) else {
            return Ok(Some(Standing {
                rank: None,
                points: 0,
                neighbours: Vec::new(),
            }));
        };
        let neighbours = rank_run(start, higher + 1, rows_of(flat)?);
        let (rank, points) = neighbours
            .iter()
            .find(|e| e.user_id == user_id)
            .map(|e| (e.rank, e.points))
            .ok_or_else(|| CacheError::Corrupt("the user is missing from its own range".into()))?;
        Ok(Some(Standing {
            rank: Some(rank),
            points,
            neighbours,
        }))
    }

    pub async fn is_live(&self) -> Result<bool, CacheError> {
        Ok(self.call::<i64>(&self.scripts.status, &[]).await? == 1)
    }

    /// The id of the Redis process, which changes on every restart; `None` where INFO is
    /// disabled (some hosted Redis), which only loses the restart check.
    pub async fn run_id(&self) -> Result<Option<String>, CacheError> {
        let mut conn = self.conn.clone();
        let info: redis::RedisResult<String> = Self::bounded(
            self.op_timeout,
            redis::cmd("INFO").arg("server").query_async(&mut conn),
        )
        .await?;
        match info {
            Ok(text) => Ok(text
                .lines()
                .find_map(|l| l.strip_prefix("run_id:"))
                .map(|id| id.trim().to_string())),
            Err(e)
                if matches!(
                    e.kind(),
                    redis::ErrorKind::Server(
                        redis::ServerErrorKind::ResponseError | redis::ServerErrorKind::NoPerm
                    )
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn probe(&self, run_id: Option<&str>) -> Result<Probe, CacheError> {
        let settle = self.settle_ms.to_string();
        let (epoch, build, reason): (String, String, String) = self
            .call(&self.scripts.probe, &[run_id.unwrap_or(""), &settle])
            .await?;
        let some = |s: String| (!s.is_empty()).then_some(s);
        Ok(Probe {
            epoch: some(epoch),
            build: some(build),
            invalidated: some(reason),
        })
    }

    pub async fn acquire(
        &self,
        token: &str,
        lease: Duration,
        run_id: Option<&str>,
    ) -> Result<bool, CacheError> {
        let lease = millis(lease).to_string();
        let got: i64 = self
            .run(
                &self.scripts.acquire,
                &[token, &lease, run_id.unwrap_or("")],
                self.build_op_timeout,
            )
            .await?;
        Ok(got == 1)
    }

    /// Each user's version (`None`: a write is in flight), or `None` when the build lost
    /// its lock. With no users it only renews the lease.
    pub async fn check_users(
        &self,
        token: &str,
        lease: Duration,
        users: &[String],
    ) -> Result<Option<Vec<Option<String>>>, CacheError> {
        let lease = millis(lease).to_string();
        let mut args = vec![token, lease.as_str()];
        args.extend(users.iter().map(String::as_str));
        let reply: Option<Vec<String>> = self
            .run(&self.scripts.check_users, &args, self.build_op_timeout)
            .await?;
        Ok(reply.map(|vs| vs.into_iter().map(|v| (v != "-").then_some(v)).collect()))
    }

    /// How many users loaded, `None` when the build lost its lock.
    pub async fn load(&self, token: &str, users: &[UserEntry]) -> Result<Option<u64>, CacheError> {
        let json = serde_json::to_string(users)
            .map_err(|e| CacheError::Corrupt(format!("cannot encode a load: {e}")))?;
        let n: i64 = self
            .run(&self.scripts.load, &[token, &json], self.build_op_timeout)
            .await?;
        Ok(u64::try_from(n).ok())
    }

    pub async fn dirty_users(&self, token: &str, count: u32) -> Result<Vec<String>, CacheError> {
        let key = format!("{}b:{token}:dirty", self.prefix);
        let mut conn = self.conn.clone();
        Self::bounded(
            self.build_op_timeout,
            conn.srandmember_multiple(key, isize::try_from(count).unwrap_or(isize::MAX)),
        )
        .await
    }

    pub async fn finalize(&self, token: &str) -> Result<Finalize, CacheError> {
        let outcome: String = self
            .run(&self.scripts.finalize, &[token], self.build_op_timeout)
            .await?;
        match outcome.as_str() {
            "done" => Ok(Finalize::Done),
            "wait" => Ok(Finalize::Wait),
            "dirty" => Ok(Finalize::Dirty),
            "aborted" => Ok(Finalize::Aborted),
            other => Err(CacheError::Corrupt(format!("finalize answered {other:?}"))),
        }
    }

    pub async fn release(&self, token: &str) -> Result<(), CacheError> {
        self.run::<i64>(&self.scripts.release, &[token], self.build_op_timeout)
            .await?;
        Ok(())
    }

    /// Deletes the keys of generations that can never be live again: a token that is
    /// neither the epoch nor the build now never becomes either (tokens are fresh, and a
    /// build only finishes while it holds the lock).
    pub async fn drop_dead_generations(&self) -> Result<u64, CacheError> {
        let p = &self.prefix;
        let limit = self.build_op_timeout;
        let mut conn = self.conn.clone();
        let gens: Vec<String> = Self::bounded(limit, conn.smembers(format!("{p}gens"))).await?;
        let live: (Option<String>, Option<String>) = Self::bounded(
            limit,
            conn.mget(&[format!("{p}epoch"), format!("{p}build")]),
        )
        .await?;
        let mut removed = 0;
        for token in gens {
            if live.0.as_deref() == Some(&token) || live.1.as_deref() == Some(&token) {
                continue;
            }
            for space in ["g", "b"] {
                let pattern = format!("{}{space}:{token}:*", glob_escape(p));
                removed += self.unlink_matching(&pattern).await?;
            }
            Self::bounded(limit, conn.srem::<_, _, i64>(format!("{p}gens"), &token)).await?;
        }
        Ok(removed)
    }

    async fn unlink_matching(&self, pattern: &str) -> Result<u64, CacheError> {
        let mut conn = self.conn.clone();
        let mut cursor: u64 = 0;
        let mut removed = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = Self::bounded(
                self.build_op_timeout,
                redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query_async(&mut conn),
            )
            .await?;
            if !keys.is_empty() {
                removed +=
                    Self::bounded(self.build_op_timeout, conn.unlink::<_, u64>(&keys)).await?;
            }
            if next == 0 {
                return Ok(removed);
            }
            cursor = next;
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}
