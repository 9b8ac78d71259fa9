//! What the console keeps besides records: sign-in accounts (a hub user's login and Argon2id
//! hash), one-time invitations, sessions, failed sign-ins and the audit log. On the embedded
//! hub they live in the device registry's file (`devices.db`), on PostgreSQL in tables of the
//! same names: several hub processes then share sessions and throttling.
//!
//! Nothing here holds record content: the audit log names actions and record ids only.

use crate::auth::Registry;
use rusqlite::{OptionalExtension, params};
use std::sync::Mutex;
use uuid::Uuid;
use vigie_core::Error;

/// A hub user's console sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub user: Uuid,
    pub login: String,
    /// Argon2id, in the PHC string format (algorithm, cost and salt included).
    pub password_hash: String,
}

/// A signed-in browser (stored under the SHA-256 of its cookie's secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub user: Uuid,
    /// The token every form of the session carries.
    pub csrf: String,
    pub created_ms: i64,
    pub last_ms: i64,
}

/// One console action: who, what, when, which record. Never a value of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub at_ms: i64,
    pub user: Option<Uuid>,
    /// A code (`sign_in`, `visit_validate`, `case_erase`, ...).
    pub action: String,
    pub record: Option<Uuid>,
    /// Codes only (a new status, a role): never free text typed by someone.
    pub detail: String,
}

/// Why an account could not be saved.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("this sign-in name is taken")]
    LoginTaken,
    #[error(transparent)]
    Storage(#[from] Error),
}

pub trait ConsoleStorage: Send + Sync {
    fn account_by_login(&self, login: &str) -> Result<Option<Account>, Error>;
    fn account_of(&self, user: Uuid) -> Result<Option<Account>, Error>;
    /// Creates or replaces the user's account.
    fn set_account(&self, account: &Account) -> Result<(), AccountError>;
    /// Makes the user's invitation: one made before for them opens nothing any more (a link
    /// shown again, since lost or seen by another, would set their password).
    fn add_invite(&self, token_hash: &[u8], user: Uuid, expires_ms: i64) -> Result<(), Error>;
    /// The user an unexpired invitation is for, without using it.
    fn invite(&self, token_hash: &[u8], now_ms: i64) -> Result<Option<Uuid>, Error>;
    /// Uses an invitation: it is gone afterwards, whatever happens next.
    fn take_invite(&self, token_hash: &[u8], now_ms: i64) -> Result<Option<Uuid>, Error>;
    fn add_session(&self, id_hash: &[u8], session: &Session) -> Result<(), Error>;
    fn session(&self, id_hash: &[u8]) -> Result<Option<Session>, Error>;
    fn touch_session(&self, id_hash: &[u8], now_ms: i64) -> Result<(), Error>;
    fn end_session(&self, id_hash: &[u8]) -> Result<(), Error>;
    /// Ends the user's sessions and cancels their invitations: a new password, a deactivation,
    /// a field role. A link made before opens nothing, even once they may sign in again.
    fn end_console_access_of(&self, user: Uuid) -> Result<(), Error>;
    /// Deletes what has run out: sessions idle since before `idle_before` or created before
    /// `created_before`, invitations and known browsers expired at `now_ms`, and counts of
    /// failures whose last one is older than `failures_before` (they count for nothing).
    fn purge(
        &self,
        idle_before: i64,
        created_before: i64,
        now_ms: i64,
        failures_before: i64,
    ) -> Result<(), Error>;
    /// Whether a known browser's cookie is one the hub gave (to any user) and has not expired.
    fn known_browser_token(&self, token_hash: &[u8], now_ms: i64) -> Result<bool, Error>;
    /// Failed sign-ins counted under a key (an account, a client address or a known browser)
    /// and the time of the last one.
    fn failures(&self, key: &str) -> Result<Option<(i64, i64)>, Error>;
    /// In one step, asks `allowed` whether the failures counted under `key` leave room for one
    /// more attempt and, if so, counts the attempt as a failure before its password is checked
    /// (the count starts again when the last is older than `reset_ms`, or as much ahead of now:
    /// counted while the clock ran ahead). Returns whether it was
    /// counted: two attempts sent at once cannot both pass a check meant for one.
    fn claim_attempt(
        &self,
        key: &str,
        now_ms: i64,
        reset_ms: i64,
        allowed: &dyn Fn(Option<(i64, i64)>) -> bool,
    ) -> Result<bool, Error>;
    /// Takes back one attempt counted by `claim_attempt` at `claimed_ms` (its password was
    /// right, or another count refused it): the count goes down by one, and its last failure
    /// goes back to `previous_ms` unless another attempt was counted since, so that a right
    /// password starts no wait for whoever comes next.
    fn forgive_attempt(
        &self,
        key: &str,
        claimed_ms: i64,
        previous_ms: Option<i64>,
    ) -> Result<(), Error>;
    fn clear_failures(&self, key: &str) -> Result<(), Error>;
    /// Remembers that a browser signed in as `user` (under the SHA-256 of its cookie's secret;
    /// a shared office computer is known for each of its users).
    fn add_known_browser(
        &self,
        token_hash: &[u8],
        user: Uuid,
        expires_ms: i64,
    ) -> Result<(), Error>;
    /// Whether a browser's cookie signed in as `user` before and has not expired.
    fn known_browser(&self, token_hash: &[u8], user: Uuid, now_ms: i64) -> Result<bool, Error>;
    fn audit(&self, entry: &AuditEntry) -> Result<(), Error>;
    /// The most recent entries first, before entry number `before` if given.
    fn audit_log(&self, before: Option<i64>, limit: u32) -> Result<Vec<(i64, AuditEntry)>, Error>;
    /// Whether an entry of `action` about `record` is in the log, with `detail` if given (as
    /// written, or followed by a note in brackets: `12 (command line)`). Rarely asked: an
    /// action found done already, whose entry may have been lost with the process that did it.
    fn audited(&self, action: &str, record: Uuid, detail: Option<&str>) -> Result<bool, Error>;
}

/// The console's tables in the embedded hub's registry file (`auth::REGISTRY_MIGRATIONS`).
pub(crate) const EMBEDDED_SCHEMA: &str = "
    CREATE TABLE console_accounts (
        user_id       BLOB PRIMARY KEY,
        login         TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE console_invites (
        token_hash BLOB PRIMARY KEY,
        user_id    BLOB NOT NULL,
        expires_ms INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE console_sessions (
        id_hash    BLOB PRIMARY KEY,
        user_id    BLOB NOT NULL,
        csrf       TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        last_ms    INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX console_sessions_by_user ON console_sessions (user_id);
    CREATE TABLE console_failures (
        key      TEXT PRIMARY KEY,
        failures INTEGER NOT NULL,
        last_ms  INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE console_audit (
        seq     INTEGER PRIMARY KEY AUTOINCREMENT,
        at_ms   INTEGER NOT NULL,
        user_id BLOB,
        action  TEXT NOT NULL,
        record  BLOB,
        detail  TEXT NOT NULL
    );
";

/// Browsers that signed in before (`auth::REGISTRY_MIGRATIONS`, after `EMBEDDED_SCHEMA`).
pub(crate) const EMBEDDED_KNOWN_BROWSERS: &str = "
    CREATE TABLE console_known_browsers (
        token_hash BLOB NOT NULL,
        user_id    BLOB NOT NULL,
        expires_ms INTEGER NOT NULL,
        PRIMARY KEY (token_hash, user_id)
    ) WITHOUT ROWID;
";

fn lock(registry: &Mutex<Registry>) -> std::sync::MutexGuard<'_, Registry> {
    registry.lock().unwrap_or_else(|p| p.into_inner())
}

/// The failures counted under `key` and the time of the last one (`ConsoleStorage::failures`).
fn failures_of(conn: &rusqlite::Connection, key: &str) -> Result<Option<(i64, i64)>, Error> {
    Ok(conn
        .query_row(
            "SELECT failures, last_ms FROM console_failures WHERE key = ?1",
            [key],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?)
}

fn uuid_of(bytes: Vec<u8>) -> rusqlite::Result<Uuid> {
    Uuid::from_slice(&bytes).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Blob, Box::new(e))
    })
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
            || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
}

/// The account whose `column` holds `value` (the embedded registry).
fn embedded_account(
    registry: &Mutex<Registry>,
    column: &str,
    value: &dyn rusqlite::ToSql,
) -> Result<Option<Account>, Error> {
    let registry = lock(registry);
    let row = registry
        .conn()
        .query_row(
            &format!(
                "SELECT user_id, login, password_hash FROM console_accounts WHERE {column} = ?1"
            ),
            [value],
            |r| {
                Ok(Account {
                    user: uuid_of(r.get(0)?)?,
                    login: r.get(1)?,
                    password_hash: r.get(2)?,
                })
            },
        )
        .optional()?;
    Ok(row)
}

impl ConsoleStorage for Mutex<Registry> {
    fn account_by_login(&self, login: &str) -> Result<Option<Account>, Error> {
        embedded_account(self, "login", &login)
    }

    fn account_of(&self, user: Uuid) -> Result<Option<Account>, Error> {
        embedded_account(self, "user_id", &user.as_bytes().as_slice())
    }

    fn set_account(&self, account: &Account) -> Result<(), AccountError> {
        let registry = lock(self);
        registry
            .conn()
            .execute(
                "INSERT INTO console_accounts (user_id, login, password_hash) VALUES (?1, ?2, ?3)
                 ON CONFLICT (user_id) DO UPDATE SET login = excluded.login,
                     password_hash = excluded.password_hash",
                params![
                    account.user.as_bytes(),
                    account.login,
                    account.password_hash
                ],
            )
            .map_err(|e| {
                if is_unique_violation(&e) {
                    AccountError::LoginTaken
                } else {
                    AccountError::Storage(e.into())
                }
            })?;
        Ok(())
    }

    fn add_invite(&self, token_hash: &[u8], user: Uuid, expires_ms: i64) -> Result<(), Error> {
        let registry = lock(self);
        let tx = registry.conn().unchecked_transaction()?;
        tx.execute(
            "DELETE FROM console_invites WHERE user_id = ?1",
            [user.as_bytes()],
        )?;
        tx.execute(
            "INSERT INTO console_invites (token_hash, user_id, expires_ms) VALUES (?1, ?2, ?3)",
            params![token_hash, user.as_bytes(), expires_ms],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn invite(&self, token_hash: &[u8], now_ms: i64) -> Result<Option<Uuid>, Error> {
        let registry = lock(self);
        let row = registry
            .conn()
            .query_row(
                "SELECT user_id FROM console_invites WHERE token_hash = ?1 AND expires_ms > ?2",
                params![token_hash, now_ms],
                |r| uuid_of(r.get(0)?),
            )
            .optional()?;
        Ok(row)
    }

    fn take_invite(&self, token_hash: &[u8], now_ms: i64) -> Result<Option<Uuid>, Error> {
        let registry = lock(self);
        let row = registry
            .conn()
            .query_row(
                "DELETE FROM console_invites WHERE token_hash = ?1 RETURNING user_id, expires_ms",
                params![token_hash],
                |r| Ok((uuid_of(r.get(0)?)?, r.get::<_, i64>(1)?)),
            )
            .optional()?;
        Ok(row.filter(|(_, expires)| *expires > now_ms).map(|(u, _)| u))
    }

    fn add_session(&self, id_hash: &[u8], session: &Session) -> Result<(), Error> {
        lock(self).conn().execute(
            "INSERT INTO console_sessions (id_hash, user_id, csrf, created_ms, last_ms)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                id_hash,
                session.user.as_bytes(),
                session.csrf,
                session.created_ms,
                session.last_ms
            ],
        )?;
        Ok(())
    }

    fn session(&self, id_hash: &[u8]) -> Result<Option<Session>, Error> {
        let registry = lock(self);
        let row = registry
            .conn()
            .prepare_cached(
                "SELECT user_id, csrf, created_ms, last_ms FROM console_sessions WHERE id_hash = ?1",
            )?
            .query_row([id_hash], |r| {
                Ok(Session {
                    user: uuid_of(r.get(0)?)?,
                    csrf: r.get(1)?,
                    created_ms: r.get(2)?,
                    last_ms: r.get(3)?,
                })
            })
            .optional()?;
        Ok(row)
    }

    fn touch_session(&self, id_hash: &[u8], now_ms: i64) -> Result<(), Error> {
        lock(self).conn().execute(
            "UPDATE console_sessions SET last_ms = ?2 WHERE id_hash = ?1",
            params![id_hash, now_ms],
        )?;
        Ok(())
    }

    fn end_session(&self, id_hash: &[u8]) -> Result<(), Error> {
        lock(self)
            .conn()
            .execute("DELETE FROM console_sessions WHERE id_hash = ?1", [id_hash])?;
        Ok(())
    }

    fn end_console_access_of(&self, user: Uuid) -> Result<(), Error> {
        let registry = lock(self);
        let tx = registry.conn().unchecked_transaction()?;
        tx.execute(
            "DELETE FROM console_sessions WHERE user_id = ?1",
            [user.as_bytes()],
        )?;
        tx.execute(
            "DELETE FROM console_invites WHERE user_id = ?1",
            [user.as_bytes()],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn purge(
        &self,
        idle_before: i64,
        created_before: i64,
        now_ms: i64,
        failures_before: i64,
    ) -> Result<(), Error> {
        let registry = lock(self);
        registry.conn().execute(
            "DELETE FROM console_failures WHERE last_ms < ?1",
            [failures_before],
        )?;
        registry.conn().execute(
            "DELETE FROM console_sessions WHERE last_ms < ?1 OR created_ms < ?2",
            params![idle_before, created_before],
        )?;
        registry.conn().execute(
            "DELETE FROM console_invites WHERE expires_ms <= ?1",
            [now_ms],
        )?;
        registry.conn().execute(
            "DELETE FROM console_known_browsers WHERE expires_ms <= ?1",
            [now_ms],
        )?;
        Ok(())
    }

    fn failures(&self, key: &str) -> Result<Option<(i64, i64)>, Error> {
        failures_of(lock(self).conn(), key)
    }

    fn claim_attempt(
        &self,
        key: &str,
        now_ms: i64,
        reset_ms: i64,
        allowed: &dyn Fn(Option<(i64, i64)>) -> bool,
    ) -> Result<bool, Error> {
        // The registry's lock makes the check and the count one step for this process, the
        // only one that opens the embedded hub's files.
        let registry = lock(self);
        if !allowed(failures_of(registry.conn(), key)?) {
            return Ok(false);
        }
        registry.conn().execute(
            "INSERT INTO console_failures (key, failures, last_ms) VALUES (?1, 1, ?2)
             ON CONFLICT (key) DO UPDATE SET
                 failures = CASE WHEN console_failures.last_ms < ?2 - ?3
                                   OR console_failures.last_ms > ?2 + ?3 THEN 1
                                 ELSE console_failures.failures + 1 END,
                 last_ms = ?2",
            params![key, now_ms, reset_ms],
        )?;
        Ok(true)
    }

    fn forgive_attempt(
        &self,
        key: &str,
        claimed_ms: i64,
        previous_ms: Option<i64>,
    ) -> Result<(), Error> {
        lock(self).conn().execute(
            "UPDATE console_failures SET failures = max(failures - 1, 0),
                 last_ms = CASE WHEN last_ms = ?2 THEN coalesce(?3, last_ms) ELSE last_ms END
             WHERE key = ?1",
            params![key, claimed_ms, previous_ms],
        )?;
        Ok(())
    }

    fn add_known_browser(
        &self,
        token_hash: &[u8],
        user: Uuid,
        expires_ms: i64,
    ) -> Result<(), Error> {
        lock(self).conn().execute(
            "INSERT INTO console_known_browsers (token_hash, user_id, expires_ms)
             VALUES (?1, ?2, ?3)
             ON CONFLICT (token_hash, user_id) DO UPDATE SET expires_ms = excluded.expires_ms",
            params![token_hash, user.as_bytes(), expires_ms],
        )?;
        Ok(())
    }

    fn known_browser_token(&self, token_hash: &[u8], now_ms: i64) -> Result<bool, Error> {
        let known = lock(self)
            .conn()
            .query_row(
                "SELECT 1 FROM console_known_browsers WHERE token_hash = ?1 AND expires_ms > ?2
                 LIMIT 1",
                params![token_hash, now_ms],
                |_| Ok(()),
            )
            .optional()?;
        Ok(known.is_some())
    }

    fn known_browser(&self, token_hash: &[u8], user: Uuid, now_ms: i64) -> Result<bool, Error> {
        let known = lock(self)
            .conn()
            .query_row(
                "SELECT 1 FROM console_known_browsers
                 WHERE token_hash = ?1 AND user_id = ?2 AND expires_ms > ?3",
                params![token_hash, user.as_bytes(), now_ms],
                |_| Ok(()),
            )
            .optional()?;
        Ok(known.is_some())
    }

    fn clear_failures(&self, key: &str) -> Result<(), Error> {
        lock(self)
            .conn()
            .execute("DELETE FROM console_failures WHERE key = ?1", [key])?;
        Ok(())
    }

    fn audit(&self, entry: &AuditEntry) -> Result<(), Error> {
        lock(self).conn().execute(
            "INSERT INTO console_audit (at_ms, user_id, action, record, detail)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                entry.at_ms,
                entry.user.map(|u| u.as_bytes().to_vec()),
                entry.action,
                entry.record.map(|r| r.as_bytes().to_vec()),
                entry.detail
            ],
        )?;
        Ok(())
    }

    fn audit_log(&self, before: Option<i64>, limit: u32) -> Result<Vec<(i64, AuditEntry)>, Error> {
        let registry = lock(self);
        let mut stmt = registry.conn().prepare(
            "SELECT seq, at_ms, user_id, action, record, detail FROM console_audit
             WHERE seq < ?1 ORDER BY seq DESC LIMIT ?2",
        )?;
        let rows = stmt
            .query_map(params![before.unwrap_or(i64::MAX), limit], |r| {
                let user: Option<Vec<u8>> = r.get(2)?;
                let record: Option<Vec<u8>> = r.get(4)?;
                Ok((
                    r.get(0)?,
                    AuditEntry {
                        at_ms: r.get(1)?,
                        user: user.map(uuid_of).transpose()?,
                        action: r.get(3)?,
                        record: record.map(uuid_of).transpose()?,
                        detail: r.get(5)?,
                    },
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn audited(&self, action: &str, record: Uuid, detail: Option<&str>) -> Result<bool, Error> {
        Ok(lock(self).conn().query_row(
            "SELECT EXISTS (SELECT 1 FROM console_audit WHERE record = ?1 AND action = ?2
                 AND (?3 IS NULL OR detail = ?3 OR substr(detail, 1, length(?3) + 2) = ?3 || ' ('))",
            params![record.as_bytes().to_vec(), action, detail],
            |r| r.get(0),
        )?)
    }
}

mod postgres_storage {
    use super::*;
    use crate::postgres::seal::Sealed;
    use crate::postgres::{CachedClient, Postgres, storage_error, throttle_key};

    /// What `console_accounts.login_h` holds for a sign-in name: the name is never in clear.
    const SIGN_IN_NAME: &str = "sign-in name";

    /// An account from its row (`user_id, login_sealed, password_hash`).
    fn account(hub: &Postgres, row: &postgres::Row) -> Result<Account, Error> {
        let user: Uuid = row.get(0);
        let login = hub.sealer().open(Sealed::SignInName, user, row.get(1))?;
        Ok(Account {
            user,
            login: String::from_utf8(login).map_err(|_| Error::DamagedDocument {
                id: user,
                reason: "its sign-in name is not UTF-8".into(),
            })?,
            password_hash: row.get(2),
        })
    }

    impl ConsoleStorage for Postgres {
        fn account_by_login(&self, login: &str) -> Result<Option<Account>, Error> {
            let row = self
                .client()?
                .query_opt(
                    "SELECT user_id, login_sealed, password_hash FROM console_accounts
                     WHERE login_h = $1",
                    &[&self.sealer().lookup_hash(SIGN_IN_NAME, login)],
                )
                .map_err(storage_error)?;
            row.map(|row| account(self, &row)).transpose()
        }

        fn account_of(&self, user: Uuid) -> Result<Option<Account>, Error> {
            let row = self
                .client()?
                .query_opt(
                    "SELECT user_id, login_sealed, password_hash FROM console_accounts
                     WHERE user_id = $1",
                    &[&user],
                )
                .map_err(storage_error)?;
            row.map(|row| account(self, &row)).transpose()
        }

        fn set_account(&self, account: &Account) -> Result<(), AccountError> {
            let sealer = self.sealer();
            self.client()?
                .execute(
                    "INSERT INTO console_accounts (user_id, login_h, login_sealed, password_hash)
                     VALUES ($1, $2, $3, $4)
                     ON CONFLICT (user_id) DO UPDATE SET login_h = excluded.login_h,
                         login_sealed = excluded.login_sealed,
                         password_hash = excluded.password_hash",
                    &[
                        &account.user,
                        &sealer.lookup_hash(SIGN_IN_NAME, &account.login),
                        &sealer.seal(Sealed::SignInName, account.user, account.login.as_bytes()),
                        &account.password_hash,
                    ],
                )
                .map_err(|e| {
                    if e.code() == Some(&postgres::error::SqlState::UNIQUE_VIOLATION) {
                        AccountError::LoginTaken
                    } else {
                        AccountError::Storage(storage_error(e))
                    }
                })?;
            Ok(())
        }

        fn add_invite(&self, token_hash: &[u8], user: Uuid, expires_ms: i64) -> Result<(), Error> {
            self.client()?
                .execute(
                    "WITH earlier AS (DELETE FROM console_invites WHERE user_id = $2)
                     INSERT INTO console_invites (token_hash, user_id, expires_ms)
                     VALUES ($1, $2, $3)",
                    &[&token_hash, &user, &expires_ms],
                )
                .map_err(storage_error)?;
            Ok(())
        }

        fn invite(&self, token_hash: &[u8], now_ms: i64) -> Result<Option<Uuid>, Error> {
            let row = self
                .client()?
                .query_opt(
                    "SELECT user_id FROM console_invites WHERE token_hash = $1 AND expires_ms > $2",
                    &[&token_hash, &now_ms],
                )
                .map_err(storage_error)?;
            Ok(row.map(|r| r.get(0)))
        }

        fn take_invite(&self, token_hash: &[u8], now_ms: i64) -> Result<Option<Uuid>, Error> {
            let row = self
                .client()?
                .query_opt(
                    "DELETE FROM console_invites WHERE token_hash = $1
                     RETURNING user_id, expires_ms",
                    &[&token_hash],
                )
                .map_err(storage_error)?;
            Ok(row
                .filter(|r| r.get::<_, i64>(1) > now_ms)
                .map(|r| r.get(0)))
        }

        fn add_session(&self, id_hash: &[u8], session: &Session) -> Result<(), Error> {
            self.client()?
                .execute(
                    "INSERT INTO console_sessions (id_hash, user_id, csrf, created_ms, last_ms)
                     VALUES ($1, $2, $3, $4, $5)",
                    &[
                        &id_hash,
                        &session.user,
                        &session.csrf,
                        &session.created_ms,
                        &session.last_ms,
                    ],
                )
                .map_err(storage_error)?;
            Ok(())
        }

        fn session(&self, id_hash: &[u8]) -> Result<Option<Session>, Error> {
            let row = self
                .client()?
                .query_opt(
                    "SELECT user_id, csrf, created_ms, last_ms FROM console_sessions
                     WHERE id_hash = $1",
                    &[&id_hash],
                )
                .map_err(storage_error)?;
            Ok(row.map(|r| Session {
                user: r.get(0),
                csrf: r.get(1),
                created_ms: r.get(2),
                last_ms: r.get(3),
            }))
        }

        fn touch_session(&self, id_hash: &[u8], now_ms: i64) -> Result<(), Error> {
            self.client()?
                .execute(
                    "UPDATE console_sessions SET last_ms = $2 WHERE id_hash = $1",
                    &[&id_hash, &now_ms],
                )
                .map_err(storage_error)?;
            Ok(())
        }

        fn end_session(&self, id_hash: &[u8]) -> Result<(), Error> {
            self.client()?
                .execute(
                    "DELETE FROM console_sessions WHERE id_hash = $1",
                    &[&id_hash],
                )
                .map_err(storage_error)?;
            Ok(())
        }

        fn end_console_access_of(&self, user: Uuid) -> Result<(), Error> {
            self.client()?
                .execute(
                    "WITH invites AS (DELETE FROM console_invites WHERE user_id = $1)
                     DELETE FROM console_sessions WHERE user_id = $1",
                    &[&user],
                )
                .map_err(storage_error)?;
            Ok(())
        }

        fn purge(
            &self,
            idle_before: i64,
            created_before: i64,
            now_ms: i64,
            failures_before: i64,
        ) -> Result<(), Error> {
            let mut client = self.client()?;
            client
                .execute(
                    "DELETE FROM console_failures WHERE last_ms < $1",
                    &[&failures_before],
                )
                .map_err(storage_error)?;
            client
                .execute(
                    "DELETE FROM console_sessions WHERE last_ms < $1 OR created_ms < $2",
                    &[&idle_before, &created_before],
                )
                .map_err(storage_error)?;
            client
                .execute(
                    "DELETE FROM console_invites WHERE expires_ms <= $1",
                    &[&now_ms],
                )
                .map_err(storage_error)?;
            client
                .execute(
                    "DELETE FROM console_known_browsers WHERE expires_ms <= $1",
                    &[&now_ms],
                )
                .map_err(storage_error)?;
            Ok(())
        }

        fn failures(&self, key: &str) -> Result<Option<(i64, i64)>, Error> {
            let key = throttle_key(self.sealer(), key);
            let row = self
                .client()?
                .query_opt(
                    "SELECT failures, last_ms FROM console_failures WHERE key = $1",
                    &[&key],
                )
                .map_err(storage_error)?;
            Ok(row.map(|r| (r.get(0), r.get(1))))
        }

        fn claim_attempt(
            &self,
            key: &str,
            now_ms: i64,
            reset_ms: i64,
            allowed: &dyn Fn(Option<(i64, i64)>) -> bool,
        ) -> Result<bool, Error> {
            // The row is locked from the check to the count, whichever hub process asks.
            let key = throttle_key(self.sealer(), key);
            let mut client = self.client()?;
            let mut tx = client.transaction().map_err(storage_error)?;
            tx.execute(
                "INSERT INTO console_failures (key, failures, last_ms) VALUES ($1, 0, 0)
                 ON CONFLICT (key) DO NOTHING",
                &[&key],
            )
            .map_err(storage_error)?;
            let row = tx
                .query_one(
                    "SELECT failures, last_ms FROM console_failures WHERE key = $1 FOR UPDATE",
                    &[&key],
                )
                .map_err(storage_error)?;
            let (failures, last_ms): (i64, i64) = (row.get(0), row.get(1));
            let seen = (failures > 0).then_some((failures, last_ms));
            if !allowed(seen) {
                return Ok(false);
            }
            tx.execute(
                "UPDATE console_failures SET
                     failures = CASE WHEN last_ms < $2::BIGINT - $3::BIGINT
                                       OR last_ms > $2::BIGINT + $3::BIGINT THEN 1
                                     ELSE failures + 1 END,
                     last_ms = $2
                 WHERE key = $1",
                &[&key, &now_ms, &reset_ms],
            )
            .map_err(storage_error)?;
            tx.commit().map_err(storage_error)?;
            Ok(true)
        }

        fn forgive_attempt(
            &self,
            key: &str,
            claimed_ms: i64,
            previous_ms: Option<i64>,
        ) -> Result<(), Error> {
            let key = throttle_key(self.sealer(), key);
            self.client()?
                .execute(
                    "UPDATE console_failures SET failures = GREATEST(failures - 1, 0),
                         last_ms = CASE WHEN last_ms = $2 THEN coalesce($3, last_ms)
                                        ELSE last_ms END
                     WHERE key = $1",
                    &[&key, &claimed_ms, &previous_ms],
                )
                .map_err(storage_error)?;
            Ok(())
        }

        fn add_known_browser(
            &self,
            token_hash: &[u8],
            user: Uuid,
            expires_ms: i64,
        ) -> Result<(), Error> {
            self.client()?
                .execute(
                    "INSERT INTO console_known_browsers (token_hash, user_id, expires_ms)
                     VALUES ($1, $2, $3)
                     ON CONFLICT (token_hash, user_id)
                     DO UPDATE SET expires_ms = excluded.expires_ms",
                    &[&token_hash, &user, &expires_ms],
                )
                .map_err(storage_error)?;
            Ok(())
        }

        fn known_browser_token(&self, token_hash: &[u8], now_ms: i64) -> Result<bool, Error> {
            let row = self
                .client()?
                .query_opt(
                    "SELECT 1 FROM console_known_browsers
                     WHERE token_hash = $1 AND expires_ms > $2 LIMIT 1",
                    &[&token_hash, &now_ms],
                )
                .map_err(storage_error)?;
            Ok(row.is_some())
        }

        fn known_browser(&self, token_hash: &[u8], user: Uuid, now_ms: i64) -> Result<bool, Error> {
            let row = self
                .client()?
                .query_opt(
                    "SELECT 1 FROM console_known_browsers
                     WHERE token_hash = $1 AND user_id = $2 AND expires_ms > $3",
                    &[&token_hash, &user, &now_ms],
                )
                .map_err(storage_error)?;
            Ok(row.is_some())
        }

        fn clear_failures(&self, key: &str) -> Result<(), Error> {
            let key = throttle_key(self.sealer(), key);
            self.client()?
                .execute("DELETE FROM console_failures WHERE key = $1", &[&key])
                .map_err(storage_error)?;
            Ok(())
        }

        fn audit(&self, entry: &AuditEntry) -> Result<(), Error> {
            self.client()?
                .execute(
                    "INSERT INTO console_audit (at_ms, user_id, action, record, detail)
                     VALUES ($1, $2, $3, $4, $5)",
                    &[
                        &entry.at_ms,
                        &entry.user,
                        &entry.action,
                        &entry.record,
                        &entry.detail,
                    ],
                )
                .map_err(storage_error)?;
            Ok(())
        }

        fn audit_log(
            &self,
            before: Option<i64>,
            limit: u32,
        ) -> Result<Vec<(i64, AuditEntry)>, Error> {
            let rows = self
                .client()?
                .query(
                    "SELECT seq, at_ms, user_id, action, record, detail FROM console_audit
                     WHERE seq < $1 ORDER BY seq DESC LIMIT $2",
                    &[&before.unwrap_or(i64::MAX), &i64::from(limit)],
                )
                .map_err(storage_error)?;
            Ok(rows
                .iter()
                .map(|r| {
                    (
                        r.get(0),
                        AuditEntry {
                            at_ms: r.get(1),
                            user: r.get(2),
                            action: r.get(3),
                            record: r.get(4),
                            detail: r.get(5),
                        },
                    )
                })
                .collect())
        }

        fn audited(&self, action: &str, record: Uuid, detail: Option<&str>) -> Result<bool, Error> {
            Ok(self
                .client()?
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM console_audit WHERE record = $1 AND action = $2
                         AND ($3::TEXT IS NULL OR detail = $3
                              OR left(detail, length($3) + 2) = $3 || ' ('))",
                    &[&record, &action, &detail],
                )
                .map_err(storage_error)?
                .get(0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Failures counted while the hub's clock ran three days ahead, read once it was set right:
    /// the count starts over at the next attempt, as an hour-old one does.
    #[test]
    fn a_count_made_while_the_clock_ran_ahead_starts_over() {
        let dir = tempfile::tempdir().unwrap();
        let registry = crate::auth::Registry::open(
            &dir.path().join("devices.db"),
            &vigie_core::Encryption::Unencrypted,
        )
        .unwrap();
        let storage = Mutex::new(registry);
        let (now, hour) = (1_800_000_000_000, 60 * 60 * 1000);
        let ahead = now + 72 * hour;
        for _ in 0..12 {
            assert!(storage.claim_attempt("k", ahead, hour, &|_| true).unwrap());
        }
        assert_eq!(storage.failures("k").unwrap(), Some((12, ahead)));
        assert!(storage.claim_attempt("k", now, hour, &|_| true).unwrap());
        assert_eq!(storage.failures("k").unwrap(), Some((1, now)));
        // Within the hour either way, the count goes on.
        assert!(
            storage
                .claim_attempt("k", now - hour / 2, hour, &|_| true)
                .unwrap()
        );
        assert_eq!(storage.failures("k").unwrap(), Some((2, now - hour / 2)));
    }
}
