//! How the MongoDB store connects: the connection string of `MONGO_URL` (the database
//! from its path) and the write and read concerns every operation uses.

use crate::config::{invalid, ConfigError, Vars};

#[derive(Debug, Clone)]
pub struct MongoConfig {
    /// A standard connection string; the database is taken from its path.
    pub url: String,
    /// From the URL path, default `eventTracker`.
    pub database: String,
    /// `MONGO_WRITE_CONCERN`: `majority` (default) or a number of nodes.
    pub write_concern: WriteConcern,
    /// `MONGO_READ_CONCERN`: `local`, `majority` (default), `linearizable` or `available`.
    pub read_concern: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteConcern {
    Majority,
    Nodes(u32),
}

impl MongoConfig {
    /// `None` when `MONGO_URL` is unset (the SQLite store is used). The concerns are
    /// parsed and refused when wrong even then, so a mistake in them is found before
    /// the day `MONGO_URL` is set.
    pub fn from_vars(vars: &Vars) -> Result<Option<MongoConfig>, ConfigError> {
        let write_concern = match vars.get("MONGO_WRITE_CONCERN") {
            None | Some("majority") => WriteConcern::Majority,
            // `w: 0` would be unacknowledged (and MongoDB rejects it with `j: true`): a
            // client must never get 201 for a write MongoDB did not confirm.
            Some(v) => match v.parse::<u32>() {
                Ok(n) if n >= 1 => WriteConcern::Nodes(n),
                _ => {
                    return Err(invalid(
                        "MONGO_WRITE_CONCERN",
                        v,
                        "majority or a number of nodes (1 or more)",
                    ))
                }
            },
        };
        let read_concern = match vars.get("MONGO_READ_CONCERN") {
            None => "majority".to_string(),
            Some(v @ ("local" | "majority" | "linearizable" | "available")) => v.to_string(),
            Some(v) => {
                return Err(invalid(
                    "MONGO_READ_CONCERN",
                    v,
                    "local, majority, linearizable or available",
                ))
            }
        };
        let Some(url) = vars.get("MONGO_URL") else {
            return Ok(None);
        };
        if !(url.starts_with("mongodb://") || url.starts_with("mongodb+srv://")) {
            return Err(invalid(
                "MONGO_URL",
                url,
                "a mongodb:// or mongodb+srv:// connection string",
            ));
        }
        // What the driver parses when the store opens, without its DNS lookups
        // (`mongodb+srv://` names are resolved only then).
        mongodb::options::ConnectionString::parse(url).map_err(|e| {
            ConfigError::new(
                "MONGO_URL",
                format!("invalid connection string: {}", e.kind),
            )
        })?;
        Ok(Some(MongoConfig {
            url: url.to_string(),
            database: database_from_url(url).unwrap_or_else(|| "eventTracker".to_string()),
            write_concern,
            read_concern,
        }))
    }
}

/// The database named in the path of a connection string (`mongodb://h:27017/name?opts`).
fn database_from_url(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let path = rest.split_once('/')?.1;
    let name = path.split(['?', '#']).next()?;
    (!name.is_empty()).then(|| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_vars;

    fn config(pairs: &[(&str, &str)]) -> Result<Option<MongoConfig>, ConfigError> {
        MongoConfig::from_vars(&Vars::new(&test_vars(pairs)))
    }

    #[test]
    fn mongo_database_comes_from_the_url_path() {
        let m = config(&[("MONGO_URL", "mongodb://db:27017/points?replicaSet=rs0")])
            .unwrap()
            .unwrap();
        assert_eq!(m.database, "points");
        assert_eq!(m.write_concern, WriteConcern::Majority);
        let m = config(&[("MONGO_URL", "mongodb://db:27017")]).unwrap();
        assert_eq!(m.unwrap().database, "eventTracker");
        let e = config(&[
            ("MONGO_URL", "mongodb://x/"),
            ("MONGO_WRITE_CONCERN", "all"),
        ])
        .unwrap_err();
        assert_eq!(e.var, "MONGO_WRITE_CONCERN");
        assert_eq!(
            config(&[("MONGO_URL", "http://x")]).unwrap_err().var,
            "MONGO_URL"
        );
        assert!(config(&[]).unwrap().is_none(), "SQLite without MONGO_URL");
        for bad in [
            "mongodb://",
            "mongodb://db:notaport/x",
            "mongodb://db/x?w=majority&journal=perhaps",
        ] {
            let e = config(&[("MONGO_URL", bad)]).unwrap_err();
            assert_eq!(e.var, "MONGO_URL", "{bad}");
            assert!(e.problem.starts_with("invalid connection string: "), "{e}");
        }
        let srv = config(&[("MONGO_URL", "mongodb+srv://cluster.example.com/points")]).unwrap();
        assert_eq!(srv.unwrap().database, "points", "no DNS lookup at parse");
    }

    fn mongo(extra: &[(&str, &str)]) -> Result<MongoConfig, ConfigError> {
        let mut pairs = vec![("MONGO_URL", "mongodb://db:27017/points")];
        pairs.extend_from_slice(extra);
        config(&pairs).map(|c| c.expect("MONGO_URL set"))
    }

    #[test]
    fn mongo_write_concern_is_majority_or_a_positive_node_count() {
        assert_eq!(mongo(&[]).unwrap().write_concern, WriteConcern::Majority);
        assert_eq!(
            mongo(&[("MONGO_WRITE_CONCERN", "majority")])
                .unwrap()
                .write_concern,
            WriteConcern::Majority
        );
        for (v, n) in [("1", 1), ("2", 2), ("5", 5)] {
            assert_eq!(
                mongo(&[("MONGO_WRITE_CONCERN", v)]).unwrap().write_concern,
                WriteConcern::Nodes(n),
                "{v}"
            );
        }
        // Empty counts as unset, like every variable.
        assert_eq!(
            mongo(&[("MONGO_WRITE_CONCERN", "")]).unwrap().write_concern,
            WriteConcern::Majority
        );
        for bad in ["0", "-1", "all", "MAJORITY", "1.5", "2 nodes"] {
            let e = mongo(&[("MONGO_WRITE_CONCERN", bad)]).unwrap_err();
            assert_eq!(e.var, "MONGO_WRITE_CONCERN", "{bad:?}");
            assert!(e.to_string().starts_with("MONGO_WRITE_CONCERN: "), "{e}");
        }
    }

    #[test]
    fn mongo_concerns_are_refused_even_without_mongo_url() {
        for (var, bad) in [
            ("MONGO_WRITE_CONCERN", "all"),
            ("MONGO_READ_CONCERN", "snapshot"),
        ] {
            let e = config(&[(var, bad)]).unwrap_err();
            assert_eq!(e.var, var);
        }
        let good = [
            ("MONGO_WRITE_CONCERN", "2"),
            ("MONGO_READ_CONCERN", "local"),
        ];
        assert!(config(&good).unwrap().is_none());
    }

    #[test]
    fn mongo_read_concern_accepts_the_four_levels_and_names_itself_otherwise() {
        assert_eq!(mongo(&[]).unwrap().read_concern, "majority");
        for level in ["local", "majority", "linearizable", "available"] {
            assert_eq!(
                mongo(&[("MONGO_READ_CONCERN", level)])
                    .unwrap()
                    .read_concern,
                level
            );
        }
        for bad in ["snapshot", "Majority", "strong", "local,majority"] {
            let e = mongo(&[("MONGO_READ_CONCERN", bad)]).unwrap_err();
            assert_eq!(e.var, "MONGO_READ_CONCERN", "{bad:?}");
            assert!(e.to_string().starts_with("MONGO_READ_CONCERN: "), "{e}");
        }
    }
}
