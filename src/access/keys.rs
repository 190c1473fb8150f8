//! API keys and their roles: `KEY:ROLE[+ROLE...]` entries from `API_KEYS` and
//! `API_KEYS_FILE`, and what logs may show of a key.

use crate::config::ConfigError;

/// What an API key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Ingest,
    Read,
    Admin,
    /// Spends and holds of the wallet.
    Spend,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Ingest => "ingest",
            Role::Read => "read",
            Role::Admin => "admin",
            Role::Spend => "spend",
        }
    }

    fn parse(s: &str) -> Option<Role> {
        match s {
            "ingest" => Some(Role::Ingest),
            "read" => Some(Role::Read),
            "admin" => Some(Role::Admin),
            "spend" => Some(Role::Spend),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Roles {
    ingest: bool,
    read: bool,
    admin: bool,
    spend: bool,
}

impl Roles {
    pub fn has(self, role: Role) -> bool {
        match role {
            Role::Ingest => self.ingest,
            Role::Read => self.read,
            Role::Admin => self.admin,
            // An operator may spend for a user too (refunds, support).
            Role::Spend => self.spend || self.admin,
        }
    }

    fn add(&mut self, role: Role) {
        match role {
            Role::Ingest => self.ingest = true,
            Role::Read => self.read = true,
            Role::Admin => self.admin = true,
            Role::Spend => self.spend = true,
        }
    }
}

/// A configured key and the roles it holds.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub key: String,
    pub roles: Roles,
}

// Keys are secrets: Debug shows only their start.
impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKey")
            .field("key", &key_prefix(&self.key))
            .field("roles", &self.roles)
            .finish()
    }
}

/// The first characters of a key, enough to tell keys apart in logs, never enough to use:
/// four of a key of 16 characters or more, a quarter of a shorter one, none under 8.
pub fn key_prefix(key: &str) -> String {
    let n = key.chars().count();
    let shown = if n < 8 { 0 } else { (n / 4).min(4) };
    let shown: String = key.chars().take(shown).collect();
    format!("{shown}…")
}

/// The fewest characters an API key may have with `APP_ENV=production`: 16 random
/// characters are beyond guessing, while shorter keys are too often words, names or the
/// placeholders of an example (outside production they are accepted, with a warning).
pub const MIN_PRODUCTION_KEY_CHARS: usize = 16;

/// How one parse of API keys is judged and reported.
pub(super) struct KeySource<'a> {
    /// `API_KEYS` or `API_KEYS_FILE`, named in every error.
    pub var: &'a str,
    /// What separates entries: `,` in the variable, `\n` in the file.
    pub split: char,
    /// How an entry's position is told: `entry` (in the variable) or `line` (the file).
    pub unit: &'a str,
    /// Refuse keys under [`MIN_PRODUCTION_KEY_CHARS`] (production).
    pub refuse_short: bool,
}

/// Parses `KEY:ROLE[+ROLE...]` entries separated by commas (API_KEYS) or lines (the file).
/// Returns the keys and where each key too short for production was accepted.
pub(super) fn parse_keys(
    source: &KeySource,
    text: &str,
) -> Result<(Vec<ApiKey>, Vec<String>), ConfigError> {
    let var = source.var;
    let mut keys = Vec::new();
    let mut short = Vec::new();
    for (index, entry) in text.split(source.split).map(str::trim).enumerate() {
        if entry.is_empty() || entry.starts_with('#') {
            continue;
        }
        // Never echo a whole entry: it holds a secret.
        let shown = key_prefix(entry);
        let bad =
            |problem: &str| ConfigError::new(var, format!("entry starting {shown:?}: {problem}"));
        let (key, roles_text) = entry
            .rsplit_once(':')
            .ok_or_else(|| bad("expected KEY:ROLE[+ROLE...]"))?;
        if key.is_empty() || key.chars().any(char::is_whitespace) {
            return Err(bad("the key must be non-empty without spaces"));
        }
        let mut roles = Roles::default();
        for r in roles_text.split('+') {
            roles.add(
                Role::parse(r.trim())
                    .ok_or_else(|| bad("roles are ingest, read, spend and admin"))?,
            );
        }
        let chars = key.chars().count();
        if chars < MIN_PRODUCTION_KEY_CHARS {
            // Told by position and length only: not even the start of a key that is
            // refused, since a short key's first characters are much of it.
            let place = format!("{} {}", source.unit, index + 1);
            if source.refuse_short {
                return Err(ConfigError::new(
                    var,
                    format!(
                        "{place}: the key has {chars} characters; with APP_ENV=production every key needs at least {MIN_PRODUCTION_KEY_CHARS} (a random one: openssl rand -hex 24)"
                    ),
                ));
            }
            short.push(format!("{var} {place}"));
        }
        keys.push(ApiKey {
            key: key.to_string(),
            roles,
        });
    }
    Ok((keys, short))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logged_prefixes_never_reveal_much_of_a_key() {
        assert_eq!(key_prefix("k_ingest_secret_1234"), "k_in…");
        assert_eq!(key_prefix("0123456789abcdef"), "0123…");
        assert_eq!(key_prefix("0123456789ab"), "012…");
        assert_eq!(key_prefix("01234567"), "01…");
        for short in ["", "a", "abcd", "abcdefg", "ééééééé"] {
            assert_eq!(key_prefix(short), "…", "{short:?}");
        }
        // Multi-byte characters count as characters, never split.
        assert_eq!(key_prefix("éééééééééééééééééééé"), "éééé…");
    }

    #[test]
    fn entries_hold_a_key_and_one_or_more_roles() {
        let source = KeySource {
            var: "API_KEYS",
            split: ',',
            unit: "entry",
            refuse_short: false,
        };
        let (keys, short) =
            parse_keys(&source, "k_ingest_1:ingest, ,k_ops:admin + read+ingest").unwrap();
        assert_eq!(keys.len(), 2);
        assert!(keys[0].roles.has(Role::Ingest) && !keys[0].roles.has(Role::Read));
        assert!([Role::Ingest, Role::Read, Role::Admin]
            .iter()
            .all(|r| keys[1].roles.has(*r)));
        assert_eq!(short, ["API_KEYS entry 1", "API_KEYS entry 3"]);
        for bad in [
            "no_roles_here",
            ":read",
            "a key:read",
            "k_1:owner",
            "k_1:read+",
        ] {
            let e = parse_keys(&source, bad).unwrap_err();
            assert_eq!(e.var, "API_KEYS", "{bad}");
        }
    }
}
