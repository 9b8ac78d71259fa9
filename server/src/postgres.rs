//! PostgreSQL as the hub's storage, for hubs that outgrow one machine: any number of hub
//! processes serve devices from one database and keep nothing another process needs.
//!
//! Two rules keep them consistent:
//! - a record is read `FOR UPDATE` before it is merged, so two processes merging changes to
//!   the same record take turns and the second merges into the first's result (no lost update);
//!   a record created by two processes at once fails one of them on the primary key, and that
//!   request's transaction runs again and merges;
//! - the change order (`seq`) is stamped at the end of a transaction under one advisory lock
//!   held until commit, so changes become visible in the order of their numbers. A device's
//!   cursor can then never pass a number that a slower transaction commits later.

pub(crate) mod seal;

use crate::auth::{self, AuthError, DeviceInfo, Token};
use crate::backend::Backend;
use crate::hub_key::{KeyError, KeyOptions};
use automerge::{ActorId, ChangeHash};
use postgres::error::SqlState;
use postgres::types::ToSql;
use postgres::{GenericClient, NoTls, Row, Statement};
use r2d2::{Pool, PooledConnection};
use seal::{Sealed, Sealer};
use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use uuid::Uuid;
use vigie_core::codec::{self, sealed};
use vigie_core::doc;
use vigie_core::identity::HubKey;
use vigie_core::storage::{Appended, HeldAttachment, ReferenceCache, ReferenceSource};
use vigie_core::sync::{
    Certifier, ChangedRecord, Departure, DeviceRegistry, ErasedHistory, HubError, HubLimits,
    HubStorage, HubTransaction, LogEntry, Principal, QuarantineView, Quarantined, RecordWrite,
    RegisteredDevice, Scope, StoredRecord,
};
use vigie_core::{
    Area, Error, RecordKind, ReferenceContent, ReferenceData, ReferenceFile, Result, Store, User,
};

/// Opens the pool's connections, each with the statements it will have prepared.
pub(crate) struct Manager(postgres::Config);

impl r2d2::ManageConnection for Manager {
    type Connection = PgConnection;
    type Error = postgres::Error;

    fn connect(&self) -> std::result::Result<PgConnection, postgres::Error> {
        Ok(PgConnection {
            client: self.0.connect(NoTls)?,
            statements: Statements::default(),
        })
    }

    /// A connection opened while the database took no write (a standby, or set read-only)
    /// stays so for its life: it is not handed out (the pool opens another, writable once the
    /// database is), or the hub would answer 503 long after the database took writes again.
    fn is_valid(&self, connection: &mut PgConnection) -> std::result::Result<(), postgres::Error> {
        connection
            .client
            .simple_query(
                "DO $$ BEGIN IF current_setting('transaction_read_only') = 'on' THEN \
                 RAISE EXCEPTION USING ERRCODE = '25006'; END IF; END $$",
            )
            .map(drop)
    }

    fn has_broken(&self, connection: &mut PgConnection) -> bool {
        connection.client.is_closed()
    }
}

/// A connection of the pool and the statements prepared on it.
pub(crate) struct PgConnection {
    client: postgres::Client,
    statements: Statements,
}

impl PgConnection {
    /// A transaction whose statements are prepared once on this connection.
    fn begin(&mut self) -> Result<CachedTransaction<'_>> {
        Ok(CachedTransaction {
            tx: self.client.transaction().map_err(storage_error)?,
            statements: &mut self.statements,
        })
    }

    /// A read-only transaction that sees one state of the database throughout.
    fn begin_snapshot(&mut self) -> Result<CachedTransaction<'_>> {
        let tx = self
            .client
            .build_transaction()
            .isolation_level(postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .map_err(storage_error)?;
        Ok(CachedTransaction {
            tx,
            statements: &mut self.statements,
        })
    }
}

impl std::ops::Deref for PgConnection {
    type Target = postgres::Client;

    fn deref(&self) -> &postgres::Client {
        &self.client
    }
}

impl std::ops::DerefMut for PgConnection {
    fn deref_mut(&mut self) -> &mut postgres::Client {
        &mut self.client
    }
}

/// The statements a connection has prepared, by their text. A statement sent as text is
/// parsed, analysed and planned by PostgreSQL at each execution, and costs the hub a round trip
/// to prepare it first: most of the database's work in a sync before statements were kept.
/// PostgreSQL keeps a prepared statement for its session, whatever becomes of the transaction
/// it was prepared in.
#[derive(Default)]
pub(crate) struct Statements(HashMap<String, Statement>);

impl Statements {
    /// More than the hub's statements (about eighty), so that the few built from a table's
    /// name cannot grow it without bound.
    const CAPACITY: usize = 256;

    fn prepare(
        &mut self,
        client: &mut impl GenericClient,
        sql: &str,
    ) -> std::result::Result<Statement, postgres::Error> {
        if let Some(statement) = self.0.get(sql) {
            return Ok(statement.clone());
        }
        let statement = client.prepare(sql)?;
        if self.0.len() >= Self::CAPACITY {
            self.0.clear();
        }
        self.0.insert(sql.to_string(), statement.clone());
        Ok(statement)
    }
}

type Params<'p> = [&'p (dyn ToSql + Sync)];

/// Runs statements as the connection under it prepared them: a pool's connection and a
/// transaction on one run every statement so, as one rule for the whole hub.
pub(crate) trait CachedClient {
    type Client: GenericClient;

    fn parts(&mut self) -> (&mut Self::Client, &mut Statements);

    /// `run` on `sql` as prepared. A statement PostgreSQL refused is prepared again next time:
    /// one that another hub process's migration made stale must not fail for good.
    fn with_prepared<T>(
        &mut self,
        sql: &str,
        run: impl FnOnce(&mut Self::Client, &Statement) -> std::result::Result<T, postgres::Error>,
    ) -> std::result::Result<T, postgres::Error> {
        let (client, statements) = self.parts();
        let statement = statements.prepare(client, sql)?;
        let outcome = run(client, &statement);
        if let Err(e) = &outcome
            && e.code().is_some()
        {
            statements.0.remove(sql);
        }
        outcome
    }

    fn query(
        &mut self,
        sql: &str,
        params: &Params<'_>,
    ) -> std::result::Result<Vec<Row>, postgres::Error> {
        self.with_prepared(sql, |client, statement| client.query(statement, params))
    }

    fn query_one(
        &mut self,
        sql: &str,
        params: &Params<'_>,
    ) -> std::result::Result<Row, postgres::Error> {
        self.with_prepared(sql, |client, statement| client.query_one(statement, params))
    }

    fn query_opt(
        &mut self,
        sql: &str,
        params: &Params<'_>,
    ) -> std::result::Result<Option<Row>, postgres::Error> {
        self.with_prepared(sql, |client, statement| client.query_opt(statement, params))
    }

    fn execute(
        &mut self,
        sql: &str,
        params: &Params<'_>,
    ) -> std::result::Result<u64, postgres::Error> {
        self.with_prepared(sql, |client, statement| client.execute(statement, params))
    }
}

impl CachedClient for PgConnection {
    type Client = postgres::Client;

    fn parts(&mut self) -> (&mut postgres::Client, &mut Statements) {
        (&mut self.client, &mut self.statements)
    }
}

impl<'c> CachedClient for CachedTransaction<'c> {
    type Client = postgres::Transaction<'c>;

    fn parts(&mut self) -> (&mut postgres::Transaction<'c>, &mut Statements) {
        (&mut self.tx, self.statements)
    }
}

/// A transaction on a pool's connection.
struct CachedTransaction<'c> {
    tx: postgres::Transaction<'c>,
    statements: &'c mut Statements,
}

impl CachedTransaction<'_> {
    fn commit(self) -> std::result::Result<(), postgres::Error> {
        self.tx.commit()
    }
}

/// The lock that orders change numbers (any constant shared by every hub process).
const SEQ_LOCK: i64 = 0x7669_6769_6573_6571; // "vigieseq"
/// The lock that lets one process at a time publish reference data (`hold_publications`).
const PUBLISH_LOCK: i64 = 0x7669_6769_6570_7562; // "vigiepub"
/// The lock that lets one process at a time create or migrate the schema.
const SCHEMA_LOCK: i64 = 0x7669_6769_6573_6368; // "vigiesch"
/// The class of the locks taken on one record's id (`one_at_a_time_on`).
const RECORD_LOCK_CLASS: i32 = 0x7669_6765; // "vige"
/// Migrations in order; migration `i` takes the schema from version `i` to `i + 1`. A shipped
/// migration is never edited: a change to the schema is a new file. The version is kept in
/// `vigie_meta` (`schema_version`). A migration that needs the hub to rewrite rows has a
/// hook line (`HOOKS`): the part before it runs, the hub rewrites the rows, then the rest.
const MIGRATIONS: &[&str] = &[
    include_str!("postgres/migrations/001_records.sql"),
    include_str!("postgres/migrations/002_erasure_and_quarantine.sql"),
    include_str!("postgres/migrations/003_last_seen.sql"),
    include_str!("postgres/migrations/004_record_lifecycle.sql"),
    include_str!("postgres/migrations/005_reference_index.sql"),
    include_str!("postgres/migrations/006_console.sql"),
    include_str!("postgres/migrations/007_encryption_at_rest.sql"),
    include_str!("postgres/migrations/008_attachments.sql"),
    include_str!("postgres/migrations/009_identity.sql"),
    include_str!("postgres/migrations/010_known_browsers.sql"),
    include_str!("postgres/migrations/011_token_expiry.sql"),
    include_str!("postgres/migrations/012_record_roots.sql"),
    include_str!("postgres/migrations/013_device_actors.sql"),
    include_str!("postgres/migrations/014_given_up_changes.sql"),
    include_str!("postgres/migrations/015_sealed_sign_in_names.sql"),
    include_str!("postgres/migrations/016_refused_changes.sql"),
    include_str!("postgres/migrations/017_user_index.sql"),
    include_str!("postgres/migrations/018_sealed_file_keys.sql"),
    include_str!("postgres/migrations/019_cases_judged_on_the_merge.sql"),
];
/// The schema that keeps records' roots (012): the records stored before are filled in.
const ROOTS_SINCE: i32 = 12;
/// Where a migration stops for the hub to seal the rows it left plain.
const RESEAL: &str = "-- vigie: reseal";
/// Where migration 015 stops for the hub to seal the console's sign-in names.
const SEAL_SIGN_IN_NAMES: &str = "-- vigie: seal sign-in names";
/// Where migration 018 stops for the hub to seal the attachments' keys.
const SEAL_FILE_KEYS: &str = "-- vigie: seal file keys";

/// A migration's rewrite of rows in Rust: returns how many rows it rewrote.
type Hook = fn(&mut postgres::Transaction<'_>, &Sealer) -> std::result::Result<usize, ConnectError>;

/// Each hook line a migration may hold, what the hub does there, and the tables whose rows it
/// rewrites (vacuumed afterwards, so that their plain versions leave the tables' files).
const HOOKS: &[(&str, Hook, &str)] = &[
    (RESEAL, reseal, "records, area_history, quarantine"),
    (
        SEAL_SIGN_IN_NAMES,
        seal_sign_in_names,
        "console_accounts, console_failures",
    ),
    (SEAL_FILE_KEYS, seal_file_keys, "attachments"),
];

/// How long `/v1/health` waits for a connection before it says the database is out of reach.
const HEALTH_WAIT: Duration = Duration::from_secs(3);

/// The schema version this software writes.
pub const SCHEMA_VERSION: i32 = MIGRATIONS.len() as i32;
/// How often a transaction that collided with another process runs again before giving up.
const ATTEMPTS: usize = 10;

/// A PostgreSQL error as the core reports it: its class, never its text (PostgreSQL quotes
/// the values of a failed statement).
pub(crate) fn storage_error(e: postgres::Error) -> Error {
    let code = e.code().cloned();
    let retryable = matches!(
        code,
        Some(SqlState::T_R_SERIALIZATION_FAILURE)
            | Some(SqlState::T_R_DEADLOCK_DETECTED)
            | Some(SqlState::UNIQUE_VIOLATION)
    );
    let reason = match code {
        Some(SqlState::QUERY_CANCELED) => STATEMENT_CANCELLED.to_string(),
        Some(SqlState::LOCK_NOT_AVAILABLE) => LOCK_WAIT.to_string(),
        Some(SqlState::READ_ONLY_SQL_TRANSACTION) => READ_ONLY.to_string(),
        Some(SqlState::IDLE_IN_TRANSACTION_SESSION_TIMEOUT) => IDLE_ENDED.to_string(),
        Some(code) if ended_by_the_server(&code) => {
            format!("PostgreSQL error {} ({SESSION_ENDED})", code.code())
        }
        Some(SqlState::UNDEFINED_TABLE) => NO_HUB_TABLES.to_string(),
        Some(code) => format!("PostgreSQL error {}", code.code()),
        None if e.is_closed() => CONNECTION_CLOSED.to_string(),
        // The link cut under a statement (a session terminated, a network that drops):
        // the connection failed, the database is out of reach for now.
        None if std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>()) => {
            CONNECTION_FAILED.to_string()
        }
        None => "PostgreSQL connection or protocol error".to_string(),
    };
    Error::HubStorage { reason, retryable }
}

/// The bound every session of the hub's runs under, unless the database URL's `options` set
/// it: a hub process frozen, paused or cut off while it held the change-order lock in a
/// transaction (its server kept the session until its own keepalive gave up, two hours)
/// stopped every write of every process, silently. A statement waiting for a lock gives up
/// (`lock_timeout`), answered 503 and logged (`LOCK_WAIT`); the transaction that holds the
/// change-order lock is ended by the server once left idle (`WRITE_IDLE_TIMEOUT`).
fn with_session_bounds(config: &mut postgres::Config) {
    let given = config.get_options().unwrap_or_default().to_string();
    let named = |name: &str| {
        given.split_whitespace().any(|word| {
            word.trim_start_matches("-c")
                .starts_with(&format!("{name}="))
        })
    };
    let mut options = given.clone();
    if !named("lock_timeout") {
        options.push_str(" -c lock_timeout=20s");
    }
    config.options(options.trim());
    // Named, so that an upgrade knows a hub's sessions from others' (`hub_sessions_beside`).
    if config.get_application_name().is_none() {
        config.application_name(&application_name());
    }
}

/// How long the transaction holding the change-order lock may stay idle before the server ends
/// it (a frozen process): from the lock to the commit the hub only inserts. Set in that
/// transaction alone: reads that go on between their statements (an export's batches) are not
/// bounded so.
const WRITE_IDLE_TIMEOUT: &str = "30s";

/// A transaction the server ended for staying idle past `idle_in_transaction_session_timeout`
/// (SQLSTATE 25P03): its process stopped moving while it held the change-order lock.
const IDLE_ENDED: &str = "PostgreSQL ended a transaction left idle while it held the \
     change-order lock (SQLSTATE 25P03: the process froze or was cut off?)";

/// A statement that waited for a lock past `lock_timeout` (SQLSTATE 55P03): another process
/// holds it (frozen, or cut off from the database). Answered as a database out of reach.
const LOCK_WAIT: &str = "PostgreSQL gave up waiting for a lock (SQLSTATE 55P03, past \
     lock_timeout): another hub process holds it, frozen or cut off from the database?";

/// A database that takes no write (SQLSTATE 25006): a standby (a failover that left the URL on
/// the old primary), or `default_transaction_read_only` set. Answered as a database out of
/// reach, until it takes writes again.
const READ_ONLY: &str = "PostgreSQL takes no write (SQLSTATE 25006: a standby, or \
     default_transaction_read_only set)";

/// A session the server ended, or would not open: shut down, restarting, or terminated by
/// its administrator (SQLSTATE 57P01 to 57P03). Nothing was refused: the hub connects again.
fn ended_by_the_server(code: &SqlState) -> bool {
    code.code().starts_with("57P0")
}

const SESSION_ENDED: &str =
    "the server is shutting down or starting, or its administrator ended the session";

/// The reasons of a database that cannot be reached (down, restarting, the link to it cut).
const NO_CONNECTION: &str = "no PostgreSQL connection available";
const CONNECTION_CLOSED: &str = "the PostgreSQL connection is closed";
const CONNECTION_FAILED: &str = "the PostgreSQL connection failed under a statement";
/// A database that holds none of the hub's tables (SQLSTATE 42P01): dropped and made again
/// empty under the hub, a `pg_restore --clean` running, or a URL that names another database.
/// Nothing can be served from it: answered as a database out of reach (and not healthy), the
/// log saying why, until the hub's tables are back.
const NO_HUB_TABLES: &str = "the database holds none of the hub's tables (SQLSTATE 42P01: \
     dropped, being restored, or another database?)";
/// A statement the database cancelled (SQLSTATE 57014): past the database's
/// `statement_timeout`, or cancelled by its administrator. The request is answered as for a
/// database out of reach (503, try again later), the log naming the cause.
const STATEMENT_CANCELLED: &str = "PostgreSQL cancelled a statement (SQLSTATE 57014: past the \
     database's statement_timeout, or cancelled by its administrator)";

fn pool_error(_: r2d2::Error) -> Error {
    Error::HubStorage {
        reason: NO_CONNECTION.into(),
        retryable: false,
    }
}

/// Whether the database could not be reached: the hub answers 503 with a time to come back
/// (`http`), not a fault of its own; the log says why (`PoolErrors`). Also a session the server
/// ended under a request (shut down, restarted, sessions terminated: SQLSTATE 57P01 to 57P03)
/// or a connection that failed (class 08).
pub(crate) fn is_unreachable(e: &Error) -> bool {
    let Error::HubStorage { reason, .. } = e else {
        return false;
    };
    reason == NO_CONNECTION
        || reason == CONNECTION_CLOSED
        || reason == CONNECTION_FAILED
        || reason == NO_HUB_TABLES
        || reason == STATEMENT_CANCELLED
        || reason == LOCK_WAIT
        || reason == READ_ONLY
        || reason == IDLE_ENDED
        || reason
            .strip_prefix("PostgreSQL error ")
            .is_some_and(|code| code.starts_with("57P0") || code.starts_with("08"))
}

/// The SQLSTATE of a full disk: the hub answers 503 (`http`), as for its embedded store.
const DISK_FULL: SqlState = SqlState::DISK_FULL;

/// Whether a storage error is PostgreSQL's disk being full (`storage_error`'s reason for it).
pub(crate) fn is_disk_full(e: &Error) -> bool {
    matches!(e, Error::HubStorage { reason, .. }
        if *reason == format!("PostgreSQL error {}", DISK_FULL.code()))
}

/// The database a URL names, as errors name it: `PostgreSQL database <name>` (the name only,
/// never the URL, which may hold a password).
fn database_name(config: &postgres::Config) -> String {
    match config.get_dbname().or(config.get_user()) {
        Some(name) => format!("PostgreSQL database {name}"),
        None => "the PostgreSQL database of --database".into(),
    }
}

/// The servers a URL names, as `host:port`.
fn servers(config: &postgres::Config) -> String {
    let ports = config.get_ports();
    let port = |i: usize| match ports {
        [] => 5432,
        [one] => *one,
        many => many.get(i).copied().unwrap_or(5432),
    };
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| match host {
            postgres::config::Host::Tcp(name) => format!("{name}:{}", port(i)),
            #[cfg(unix)]
            postgres::config::Host::Unix(dir) => format!("{} (port {})", dir.display(), port(i)),
        })
        .collect();
    match hosts.is_empty() {
        true => "the server".into(),
        false => hosts.join(", "),
    }
}

/// Why a connection to the server of `config` failed, in words an operator acts on: no such
/// database, authentication failed, the server out of reach (and where). Never the password,
/// nor the server's own message, which may quote the user.
fn connect_failure(config: &postgres::Config, e: &postgres::Error) -> String {
    match e.code() {
        Some(&SqlState::INVALID_CATALOG_NAME) => {
            format!(
                "there is no {} on {}: create it first (`createdb`), the hub makes its tables",
                database_name(config),
                servers(config)
            )
        }
        Some(&SqlState::INVALID_PASSWORD)
        | Some(&SqlState::INVALID_AUTHORIZATION_SPECIFICATION) => {
            format!(
                "authentication failed on {}: check the user and password of --database \
                 (VIGIE_DATABASE)",
                servers(config)
            )
        }
        Some(&SqlState::TOO_MANY_CONNECTIONS) => {
            format!("{} has too many connections", servers(config))
        }
        Some(code) if ended_by_the_server(code) => format!(
            "{}: {SESSION_ENDED} (PostgreSQL error {})",
            servers(config),
            code.code()
        ),
        Some(code) => format!(
            "{} refused the connection (PostgreSQL error {})",
            servers(config),
            code.code()
        ),
        None => match std::error::Error::source(e) {
            Some(cause) => format!("cannot reach {} ({cause})", servers(config)),
            None => format!("cannot reach {} ({e})", servers(config)),
        },
    }
}

/// The pool's connection failures after the first, logged with their reason once each (r2d2's
/// own handler logged "db error" at every retry).
#[derive(Debug)]
struct PoolErrors(postgres::Config);

impl r2d2::HandleError<postgres::Error> for PoolErrors {
    fn handle_error(&self, error: postgres::Error) {
        // The pool tries again and again while the server is down: said once a period.
        static SAID: crate::logging::LogBudget = crate::logging::LogBudget::lasting();
        if let Some(unsaid) = SAID.take() {
            tracing::warn!(
                reason = %connect_failure(&self.0, &error),
                failed_so_since = unsaid,
                "a PostgreSQL connection failed"
            );
        }
    }
}

fn auth_error(e: Error) -> AuthError {
    if is_disk_full(&e) {
        return AuthError::DiskFull;
    }
    if is_unreachable(&e) {
        // Why, for the log (a reason names a class of failure, never a value).
        let reason = match &e {
            Error::HubStorage { reason, .. } => reason.clone(),
            other => other.to_string(),
        };
        return AuthError::Unreachable(reason);
    }
    AuthError::Storage(e.to_string())
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("not a PostgreSQL URL (postgres://user@host:port/database)")]
    BadUrl,
    /// Why the first connection failed (`connect_failure`): never the password.
    #[error("cannot connect to PostgreSQL: {0}")]
    Connect(String),
    /// A command that works on an existing hub, given a database that holds none (a mistyped
    /// or new database): answering from a new empty hub would say that everyone is gone.
    #[error(
        "no hub in {0}: check --database (a new hub is made by `vigie serve`, `vigie reference \
         publish` or `vigie user add` of an administrator)"
    )]
    NoHub(String),
    #[error(
        "the database's Vigie schema version {found} is newer than this software ({supported})"
    )]
    SchemaTooNew { found: i32, supported: i32 },
    /// Tables a later schema made, beside an earlier schema version: a `pg_restore --clean` of
    /// an older dump over a newer database drops and makes again only the tables the dump
    /// holds, and leaves those it does not.
    #[error(
        "the database holds tables of a newer Vigie schema beside schema version {found}: it \
         was restored with `pg_restore --clean` over a newer database, which leaves the tables \
         the backup does not hold; restore the backup into a new, empty database instead"
    )]
    LeftoverTables { found: i32 },
    /// An upgrade asked while sessions of a hub (or of a program that names none, as an
    /// earlier `vigie` did) are connected: an earlier version serving on would write as its
    /// schema did into the upgraded tables, and fail on what it does not know.
    #[error(
        "the database is at Vigie schema version {found}, and {sessions} other session(s) that \
         may be an earlier hub's are connected to it (named as an earlier `vigie`, or naming no \
         program, as an earlier `vigie serve` did, and as a script may): stop every earlier \
         `vigie serve` on this database, and any such script, then start the new version, \
         which upgrades it (`SELECT pid, application_name, client_addr FROM pg_stat_activity \
         WHERE datname = current_database()` lists the sessions)"
    )]
    UpgradeWhileServed { found: i32, sessions: i64 },
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Storage(#[from] Error),
}

/// A hub's records and devices in PostgreSQL.
pub struct Postgres {
    pool: Pool<Manager>,
    actor: ActorId,
    reference: ReferenceCache,
    sealer: Sealer,
    /// The hub's signing key, shared by every process on this database.
    key: HubKey,
    /// Each device's certificate as last opened, with the sealed bytes it came from: every sync
    /// session reads the whole directory, and opening each certificate again was most of that.
    opened_certificates: Mutex<HashMap<Uuid, OpenedCertificate>>,
    /// What each device may still push of changes, on this process.
    allowances: Arc<vigie_core::sync::DeviceAllowances>,
}

struct OpenedCertificate {
    sealed: Vec<u8>,
    opened: Vec<u8>,
}

/// The key every hub process on this database signs with: the first to start creates it.
/// Sealed under the hub's key like records: a dump of the database cannot certify devices.
fn hub_key(
    client: &mut postgres::Client,
    sealer: &Sealer,
) -> std::result::Result<HubKey, ConnectError> {
    let fresh = HubKey::generate();
    let sealed = sealer.seal(Sealed::HubIdentity, Uuid::nil(), &fresh.to_bytes()[..]);
    client
        .execute(
            "INSERT INTO hub_identity (id, signing_seed) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
            &[&sealed],
        )
        .map_err(storage_error)?;
    let stored: Vec<u8> = client
        .query_one("SELECT signing_seed FROM hub_identity WHERE id = 1", &[])
        .map_err(storage_error)?
        .get(0);
    let seed = sealer.open(Sealed::HubIdentity, Uuid::nil(), &stored)?;
    Ok(HubKey::from_bytes(&seed).map_err(Error::from)?)
}

impl Postgres {
    /// The hub's key and this registry, as device identity uses them.
    fn certifier(&self) -> Certifier<'_> {
        Certifier {
            key: &self.key,
            registry: self,
        }
    }

    /// A new token for `device`, its keys unbound (`Backend::reissue`).
    fn reissue_token(&self, device: Uuid) -> std::result::Result<Token, AuthError> {
        let mut client = self.client().map_err(auth_error)?;
        let row = client
            .query_opt(
                "SELECT user_id, revoked_ms FROM devices WHERE device = $1",
                &[&device],
            )
            .map_err(|e| auth_error(storage_error(e)))?;
        let Some(row) = row else {
            return Err(AuthError::Unknown);
        };
        if row.get::<_, Option<i64>>(1).is_some() {
            return Err(AuthError::Revoked);
        }
        let token = auth::reissued_token(device, row.get(0));
        let updated = client
            .execute(
                // Unbinds the device's keys, as the embedded registry does.
                "UPDATE devices SET secret_hash = $2, certificate = NULL, unused_until_ms = $3
                 WHERE device = $1 AND revoked_ms IS NULL",
                &[
                    &device,
                    &token.secret_hash().to_vec(),
                    &auth::unused_until(chrono::Utc::now().timestamp_millis()),
                ],
            )
            .map_err(|e| auth_error(storage_error(e)))?;
        if updated == 0 {
            // Revoked meanwhile.
            return Err(AuthError::Revoked);
        }
        Ok(token)
    }
}

impl DeviceRegistry for Postgres {
    fn devices(&self) -> Result<Vec<RegisteredDevice>> {
        let rows = self
            .client()?
            .query(
                "SELECT device, certificate, revoked_ms IS NOT NULL FROM devices
                 WHERE certificate IS NOT NULL OR revoked_ms IS NOT NULL",
                &[],
            )
            .map_err(storage_error)?;
        let mut opened = self
            .opened_certificates
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Kept for the devices listed now, so that it holds no more than the directory.
        let mut kept = HashMap::with_capacity(rows.len());
        let mut devices = Vec::with_capacity(rows.len());
        for row in &rows {
            let device: Uuid = row.get(0);
            let certificate = match row.get::<_, Option<Vec<u8>>>(1) {
                None => None,
                Some(sealed) => {
                    let known = opened.remove(&device).filter(|c| c.sealed == sealed);
                    let certificate = match known {
                        Some(known) => known,
                        None => OpenedCertificate {
                            opened: self.sealer.open(Sealed::Certificate, device, &sealed)?,
                            sealed,
                        },
                    };
                    let bytes = certificate.opened.clone();
                    kept.insert(device, certificate);
                    Some(bytes)
                }
            };
            devices.push(RegisteredDevice {
                device,
                certificate,
                revoked: row.get(2),
            });
        }
        *opened = kept;
        Ok(devices)
    }

    fn keep_certificate(
        &self,
        device: Uuid,
        certificate: &[u8],
        replacing: Option<&[u8]>,
    ) -> Result<bool> {
        // The row holds the certificate sealed: the one replaced is the sealed bytes `devices`
        // opened it from.
        let replacing = match replacing {
            None => None,
            Some(opened) => {
                let known = self
                    .opened_certificates
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .get(&device)
                    .filter(|c| c.opened == opened)
                    .map(|c| c.sealed.clone());
                match known {
                    Some(sealed) => Some(sealed),
                    // Not the one read last here: another process replaced it since.
                    None => return Ok(false),
                }
            }
        };
        // Sealed: a certificate names its user and areas.
        let sealed = self.sealer.seal(Sealed::Certificate, device, certificate);
        let kept = self
            .client()?
            .execute(
                "UPDATE devices SET certificate = $2
                 WHERE device = $1 AND certificate IS NOT DISTINCT FROM $3",
                &[&device, &sealed, &replacing],
            )
            .map_err(storage_error)?;
        Ok(kept == 1)
    }
}

/// The reference data in force, loaded from the reference documents and kept until they change
/// (any hub process may publish: the count and newest change of the documents tell).
fn reference_in(
    cache: &ReferenceCache,
    sealer: &Sealer,
    tx: &mut CachedTransaction<'_>,
) -> Result<Arc<ReferenceData>> {
    let row = tx
        .query_one(
            "SELECT count(*), coalesce(max(last_seq), 0) FROM records WHERE kind = 5",
            &[],
        )
        .map_err(storage_error)?;
    cache.get(
        (row.get(0), row.get(1)),
        &mut PublishedDocuments { sealer, tx },
    )
}

/// The reference documents of a PostgreSQL hub, opened with its key.
struct PublishedDocuments<'s, 't> {
    sealer: &'s Sealer,
    tx: &'s mut CachedTransaction<'t>,
}

impl ReferenceSource for PublishedDocuments<'_, '_> {
    fn listing(&mut self) -> Result<Vec<(Uuid, i64)>> {
        Ok(self
            .tx
            .query("SELECT id, last_seq FROM records WHERE kind = 5", &[])
            .map_err(storage_error)?
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect())
    }

    fn document(&mut self, id: Uuid) -> Result<Option<Vec<u8>>> {
        self.tx
            .query_opt("SELECT doc FROM records WHERE id = $1 AND kind = 5", &[&id])
            .map_err(storage_error)?
            .map(|row| self.sealer.open(Sealed::Document, id, row.get(0)))
            .transpose()
    }
}

impl Postgres {
    /// Connects (a pool of up to `connections`) and creates or migrates the schema. The hub's
    /// key is found as `key` says (its default key file beside `data`); a database that holds
    /// no hub's key yet (new, or from before encryption) takes the key found or made, and one
    /// that does refuses any other key.
    pub fn connect(
        url: &str,
        connections: u32,
        key: &KeyOptions,
        data: &std::path::Path,
    ) -> std::result::Result<Postgres, ConnectError> {
        Postgres::open(url, connections, key, data, true)
    }

    /// `connect` to a hub that must exist already: a database that holds none (no Vigie schema)
    /// is refused (`ConnectError::NoHub`), and neither tables nor a key are made for it.
    pub fn connect_existing(
        url: &str,
        connections: u32,
        key: &KeyOptions,
        data: &std::path::Path,
    ) -> std::result::Result<Postgres, ConnectError> {
        Postgres::open(url, connections, key, data, false)
    }

    fn open(
        url: &str,
        connections: u32,
        key: &KeyOptions,
        data: &std::path::Path,
        create: bool,
    ) -> std::result::Result<Postgres, ConnectError> {
        if key.unencrypted {
            return Err(KeyError::PostgresUnencrypted.into());
        }
        let mut config: postgres::Config = url.parse().map_err(|_| ConnectError::BadUrl)?;
        // A server that does not answer (a firewall dropping packets) is an error in seconds,
        // not after the system's TCP timeout.
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        // Nor, once connected, a link gone silent (a network cut, a host lost: no reset comes):
        // a request waits for what it sent to be acknowledged at most this long, and an idle
        // connection is probed, instead of hanging until the system gives up (some 15 minutes).
        if config.get_tcp_user_timeout().is_none() {
            config.tcp_user_timeout(Duration::from_secs(20));
        }
        config
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30))
            .keepalives_interval(Duration::from_secs(5))
            .keepalives_retries(3);
        with_session_bounds(&mut config);
        let manager = Manager(config.clone());
        // The first connection is made here, once: a database that does not exist, a refused
        // password or a server out of reach is the error at once, with its reason (the pool
        // retried for its whole timeout, logging "db error" at each try).
        let mut first = r2d2::ManageConnection::connect(&manager)
            .map_err(|e| ConnectError::Connect(connect_failure(&config, &e)))?;
        let client = &mut first.client;
        // Held until this first connection closes, taken before anything is read: a process
        // starting beside another on a new database reads what the other made once it is
        // made. (Under a transaction's lock, its catalog did not show the tables the other
        // had just made: it said the database held a newer schema's, or that its key did not
        // open the hub; and it had said "a new hub" and written a key file of its own first.)
        client
            .execute("SELECT pg_advisory_lock($1)", &[&SCHEMA_LOCK])
            .map_err(storage_error)?;
        let exists: bool = client
            .query_one("SELECT to_regclass('vigie_meta') IS NOT NULL", &[])
            .map_err(storage_error)?
            .get(0);
        if !exists && !create {
            return Err(ConnectError::NoHub(database_name(&config)));
        }
        let keyed = stored_key_check(client)?.is_some();
        let key = key
            .resolve_for(&database_name(&config), data, keyed)?
            .ok_or(KeyError::PostgresUnencrypted)?;
        let sealer = Sealer::new(&key);
        migrate(client, &sealer)?;
        let signing = hub_key(client, &sealer)?;
        drop(first);
        // Connections open as requests need them, up to `connections`, and idle ones close
        // after a while: a hub that opened them all at start made PostgreSQL start a backend
        // process for each, and waited for them, before serving anything.
        let pool = Pool::builder()
            .max_size(connections.max(1))
            .min_idle(Some(1))
            .connection_timeout(Duration::from_secs(10))
            .error_handler(Box::new(PoolErrors(config)))
            .build_unchecked(manager);
        // Each process writes (users added by an administrator) under an actor of its own.
        let nonce: [u8; 8] = Uuid::new_v4().as_bytes()[..8].try_into().expect("8 bytes");
        Ok(Postgres {
            pool,
            actor: doc::actor_for(crate::HUB_ADMIN, nonce),
            reference: ReferenceCache::new(ReferenceData::builtin()),
            sealer,
            key: signing,
            opened_certificates: Mutex::new(HashMap::new()),
            allowances: Default::default(),
        })
    }

    fn storage(&self) -> PgStorage<'_> {
        PgStorage {
            pool: &self.pool,
            actor: &self.actor,
            reference: &self.reference,
            sealer: &self.sealer,
            allowances: &self.allowances,
        }
    }

    /// The hub's sealing keys, for what the console keeps in this database.
    pub(crate) fn sealer(&self) -> &Sealer {
        &self.sealer
    }

    pub(crate) fn client(&self) -> Result<PooledConnection<Manager>> {
        self.pool.get().map_err(pool_error)
    }

    /// Copies every record into an embedded store, which exports and checks then read.
    pub fn copy_into(&self, store: &mut Store) -> Result<usize> {
        let mut client = self.client()?;
        let mut tx = client.begin_snapshot()?;
        let mut copied = 0;
        let mut after = Uuid::nil();
        loop {
            let rows = tx
                .query(
                    "SELECT id, doc FROM records WHERE id > $1 ORDER BY id LIMIT 1000",
                    &[&after],
                )
                .map_err(storage_error)?;
            let Some(last) = rows.last() else { break };
            after = last.get(0);
            for row in &rows {
                let id: Uuid = row.get(0);
                let stored = self.sealer.open(Sealed::Document, id, row.get(1))?;
                let bytes = codec::decode(id, stored)?;
                store.merge_document(id, &bytes)?;
                copied += 1;
            }
        }
        // The erased ids too: a visit's list may name an erased case, which counts as no child
        // (the exports ask the store whether an id was erased).
        let erased = tx
            .query(&format!("{ERASED_FOR_COPY} ORDER BY e.seq"), &[])
            .map_err(storage_error)?;
        tx.commit().map_err(storage_error)?;
        forget_erased(store, &self.sealer, &erased)?;
        Ok(copied)
    }
}

impl Postgres {
    /// Brings a copy of the records (the console's view) from change number `cursor` up to the
    /// last committed one: records changed since are merged into it, erased ones forgotten.
    fn catch_up(&self, copy: &mut Store, cursor: &mut i64) -> Result<()> {
        let mut client = self.client()?;
        let mut tx = client.begin_snapshot()?;
        // Every change at or below it is committed (change numbers are stamped at commit under
        // one lock): the next catch-up starts there without missing a slower transaction.
        let high: i64 = tx
            .query_one(
                "SELECT greatest((SELECT coalesce(max(seq), 0) FROM change_log),
                                 (SELECT coalesce(max(seq), 0) FROM erased))",
                &[],
            )
            .map_err(storage_error)?
            .get(0);
        if high <= *cursor {
            return Ok(());
        }
        let mut after = *cursor;
        loop {
            let rows = tx
                .query(
                    "SELECT id, doc, last_seq FROM records WHERE last_seq > $1 AND last_seq <= $2
                     ORDER BY last_seq LIMIT 500",
                    &[&after, &high],
                )
                .map_err(storage_error)?;
            let Some(last) = rows.last() else { break };
            after = last.get(2);
            for row in &rows {
                let id: Uuid = row.get(0);
                match self
                    .sealer
                    .open(Sealed::Document, id, row.get(1))
                    .and_then(|doc| codec::decode(id, doc))
                    .and_then(|bytes| copy.merge_document(id, &bytes))
                {
                    Ok(_) => {}
                    // As a device's pull does: a record that does not read is skipped, by id.
                    Err(e) => {
                        tracing::warn!(record = %id, error = %e, "console copy skipped a record")
                    }
                }
            }
        }
        let erased = tx
            .query(
                &format!("{ERASED_FOR_COPY} WHERE e.seq > $1 AND e.seq <= $2 ORDER BY e.seq"),
                &[&*cursor, &high],
            )
            .map_err(storage_error)?;
        tx.commit().map_err(storage_error)?;
        forget_erased(copy, &self.sealer, &erased)?;
        *cursor = high;
        Ok(())
    }
}

/// The erased ids with when they were erased and where each was filed then, as a copy of the
/// records takes them (`forget_erased`).
const ERASED_FOR_COPY: &str = "SELECT e.record_id, e.at_ms, h.kind, h.area
     FROM erased e LEFT JOIN area_history h ON h.record_id = e.record_id AND h.seq = e.seq";

/// Erases in a copy of the records the ids of `erased` (rows of `ERASED_FOR_COPY`), each with
/// its date and the area it was filed in: a copy's exports list the erasures a supervisor's
/// devices learn of, dated as the hub erased them.
fn forget_erased(copy: &mut Store, sealer: &Sealer, erased: &[postgres::Row]) -> Result<()> {
    if erased.is_empty() {
        return Ok(());
    }
    let mut histories = Vec::with_capacity(erased.len());
    for row in erased {
        let id: Uuid = row.get(0);
        let filed = match row.get::<_, Option<i16>>(2) {
            Some(kind) => RecordKind::from_i64(i64::from(kind))
                .zip(area_of(sealer, row, 3, id)?.or_else(|| Some(Area::default()))),
            None => None,
        };
        let history = ErasedHistory {
            filed,
            at_ms: Some(row.get(1)),
            ..ErasedHistory::default()
        };
        histories.push((id, history));
    }
    copy.in_transaction(&mut |t| {
        for (id, history) in &histories {
            t.erase(*id, history)?;
        }
        Ok(())
    })?;
    copy.purge_freed_content()
}

/// The key check a database's hub wrote (`seal`), if any.
fn stored_key_check(
    client: &mut impl postgres::GenericClient,
) -> std::result::Result<Option<String>, ConnectError> {
    let exists: bool = client
        .query_one("SELECT to_regclass('vigie_meta') IS NOT NULL", &[])
        .map_err(storage_error)?
        .get(0);
    if !exists {
        return Ok(None);
    }
    Ok(client
        .query_opt("SELECT value FROM vigie_meta WHERE key = 'key_check'", &[])
        .map_err(storage_error)?
        .map(|row| row.get(0)))
}

/// The name every session of a hub gives PostgreSQL (`application_name`), with the schema its
/// software writes: what an upgrade looks for among the sessions connected
/// (`hub_sessions_beside`).
fn application_name() -> String {
    format!("vigie schema {SCHEMA_VERSION}")
}

/// How many other sessions that may be a hub of an earlier schema are connected to this
/// database: those a hub named with another schema, and those naming nothing (an earlier
/// `vigie` named none; so does a script that gives no name), but not a process of this
/// version (starting beside this one), nor a program that names itself (`psql`, `pg_dump`).
fn hub_sessions_beside(
    tx: &mut postgres::Transaction<'_>,
) -> std::result::Result<i64, ConnectError> {
    Ok(tx
        .query_one(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()
               AND backend_type = 'client backend'
               AND (coalesce(application_name, '') = ''
                    OR (application_name LIKE 'vigie%' AND application_name <> $1))",
            &[&application_name()],
        )
        .map_err(storage_error)?
        .get(0))
}

fn migrate(
    client: &mut postgres::Client,
    sealer: &Sealer,
) -> std::result::Result<(), ConnectError> {
    let mut tx = client.transaction().map_err(storage_error)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
        .map_err(storage_error)?;
    // Checked under the lock: two processes starting on a new database with different keys
    // cannot both write.
    match stored_key_check(&mut tx)? {
        Some(check) if check != sealer.key_check() => {
            return Err(KeyError::WrongForDatabase.into());
        }
        _ => {}
    }
    let exists: bool = tx
        .query_one("SELECT to_regclass('vigie_meta') IS NOT NULL", &[])
        .map_err(storage_error)?
        .get(0);
    let version: i32 = if exists {
        let row = tx
            .query_opt(
                "SELECT value FROM vigie_meta WHERE key = 'schema_version'",
                &[],
            )
            .map_err(storage_error)?;
        row.and_then(|r| r.get::<_, String>(0).parse().ok())
            .unwrap_or(0)
    } else {
        0
    };
    if version > SCHEMA_VERSION {
        return Err(ConnectError::SchemaTooNew {
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    if version > 0 && version < SCHEMA_VERSION {
        let sessions = hub_sessions_beside(&mut tx)?;
        if sessions > 0 {
            return Err(ConnectError::UpgradeWhileServed {
                found: version,
                sessions,
            });
        }
    }
    let mut rewritten = Vec::new();
    // A table a migration makes that is there already is one a newer schema made.
    let step = |e: postgres::Error| match e.code() {
        Some(&SqlState::DUPLICATE_TABLE) => ConnectError::LeftoverTables { found: version },
        _ => storage_error(e).into(),
    };
    for migration in &MIGRATIONS[version.max(0) as usize..] {
        let hook = HOOKS
            .iter()
            .find_map(|(line, hook, tables)| Some((migration.split_once(line)?, hook, tables)));
        match hook {
            Some(((before, after), hook, tables)) => {
                tx.batch_execute(before).map_err(step)?;
                if hook(&mut tx, sealer)? > 0 {
                    rewritten.push(*tables);
                }
                tx.batch_execute(after).map_err(step)?;
            }
            None => tx.batch_execute(migration).map_err(step)?,
        }
    }
    if version < ROOTS_SINCE {
        fill_roots(&mut tx, sealer)?;
    }
    tx.execute(
        "INSERT INTO vigie_meta (key, value) VALUES ('key_check', $1) ON CONFLICT (key) DO NOTHING",
        &[&sealer.key_check()],
    )
    .map_err(storage_error)?;
    tx.execute(
        "INSERT INTO vigie_meta (key, value) VALUES ('schema_version', $1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        &[&SCHEMA_VERSION.to_string()],
    )
    .map_err(storage_error)?;
    tx.commit().map_err(storage_error)?;
    for tables in rewritten {
        // Rewritten rows leave their plain versions in the tables' files until a vacuum
        // reclaims them: reclaim them now (not possible inside a transaction).
        client
            .batch_execute(&format!("VACUUM FULL {tables}"))
            .map_err(storage_error)?;
    }
    Ok(())
}

/// The key a sign-in throttle's count is kept under (`console_failures.key`): a keyed hash of
/// what it counts, which names a person or their address.
pub(crate) fn throttle_key(sealer: &Sealer, key: &str) -> String {
    sealer
        .lookup_hash("throttle", key)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Seals every console account's sign-in name and hashes the throttle's keys (migration 015).
fn seal_sign_in_names(
    tx: &mut postgres::Transaction<'_>,
    sealer: &Sealer,
) -> std::result::Result<usize, ConnectError> {
    let mut count = in_pages(
        tx,
        "SELECT user_id, login FROM console_accounts WHERE user_id > $1 ORDER BY user_id LIMIT 500",
        Uuid::nil(),
        &mut |tx, row| {
            let user: Uuid = row.get(0);
            let login: String = row.get(1);
            tx.execute(
                "UPDATE console_accounts SET login_h = $2, login_sealed = $3 WHERE user_id = $1",
                &[
                    &user,
                    &sealer.lookup_hash("sign-in name", &login),
                    &sealer.seal(Sealed::SignInName, user, login.as_bytes()),
                ],
            )
            .map(drop)
        },
    )?;
    let keys: Vec<String> = tx
        .query("SELECT key FROM console_failures", &[])
        .map_err(storage_error)?
        .iter()
        .map(|row| row.get(0))
        .collect();
    count += keys.len();
    for key in keys {
        tx.execute(
            "UPDATE console_failures SET key = $2 WHERE key = $1",
            &[&key, &throttle_key(sealer, &key)],
        )
        .map_err(storage_error)?;
    }
    Ok(count)
}

/// Seals each attachment's key, which schema 17 kept in clear beside the segments it opens
/// (migration 018): a dump held every photo and document the phones sent, readable without the
/// hub's key.
fn seal_file_keys(
    tx: &mut postgres::Transaction<'_>,
    sealer: &Sealer,
) -> std::result::Result<usize, ConnectError> {
    in_pages(
        tx,
        "SELECT id, file_key FROM attachments WHERE id > $1 ORDER BY id LIMIT 500",
        Uuid::nil(),
        &mut |tx, row| {
            let id: Uuid = row.get(0);
            let key: Vec<u8> = row.get(1);
            tx.execute(
                "UPDATE attachments SET file_key = $2 WHERE id = $1",
                &[&id, &sealer.seal(Sealed::FileKey, id, &key)],
            )
            .map(drop)
        },
    )
}

/// Fills in the root of every record stored before the hub kept them (migration 012).
fn fill_roots(
    tx: &mut postgres::Transaction<'_>,
    sealer: &Sealer,
) -> std::result::Result<usize, ConnectError> {
    in_pages(
        tx,
        "SELECT id, doc FROM records WHERE id > $1 ORDER BY id LIMIT 500",
        Uuid::nil(),
        &mut |tx, row| {
            let id: Uuid = row.get(0);
            let Some(root) = sealer
                .open(Sealed::Document, id, row.get(1))
                .and_then(|plain| codec::decode(id, plain))
                .and_then(|stored| codec::load(id, &stored))
                .ok()
                .and_then(|document| codec::single_root(&document))
            else {
                return Ok(());
            };
            let root = root.0.to_vec();
            tx.execute("UPDATE records SET root = $2 WHERE id = $1", &[&id, &root])
                .map(drop)
        },
    )
}

/// Seals every row a database from before encryption holds in clear (migration 007): records'
/// documents and areas, the area history, quarantined changes. Returns how many rows.
fn reseal(
    tx: &mut postgres::Transaction<'_>,
    sealer: &Sealer,
) -> std::result::Result<usize, ConnectError> {
    let mut count = 0;
    let plain_area = |row: &Row, first: usize| {
        let part = |i: usize| row.get::<_, Option<String>>(first + i);
        part(0).map(|country| {
            Area::new(
                &country,
                &part(1).unwrap_or_default(),
                &part(2).unwrap_or_default(),
                &part(3).unwrap_or_default(),
            )
        })
    };
    count += in_pages(
        tx,
        "SELECT id, doc, country, region, district, community FROM records
         WHERE id > $1 ORDER BY id LIMIT 500",
        Uuid::nil(),
        &mut |tx, row| {
            let id: Uuid = row.get(0);
            let doc = sealer.seal(Sealed::Document, id, row.get(1));
            let area = plain_area(row, 2);
            let sealed_area = area.as_ref().map(|a| sealer.seal_area(id, a));
            let [c, r, d, m] = area
                .as_ref()
                .map(|a| sealer.area_hashes(a).map(Some))
                .unwrap_or_default();
            tx.execute(
                "UPDATE records SET doc = $2, area = $3, country_h = $4, region_h = $5,
                     district_h = $6, community_h = $7
                 WHERE id = $1",
                &[&id, &doc, &sealed_area, &c, &r, &d, &m],
            )
            .map(drop)
        },
    )?;
    let rows = tx
        .query(
            "SELECT ctid::TEXT, record_id, country, region, district, community FROM area_history",
            &[],
        )
        .map_err(storage_error)?;
    count += rows.len();
    for row in &rows {
        let id: Uuid = row.get(1);
        let area = plain_area(row, 2).unwrap_or_default();
        tx.execute(
            "UPDATE area_history SET area = $2 WHERE ctid = $1::TEXT::TID",
            &[&row.get::<_, String>(0), &sealer.seal_area(id, &area)],
        )
        .map_err(storage_error)?;
    }
    count += in_pages(
        tx,
        "SELECT id, record_id, changes FROM quarantine WHERE id > $1 ORDER BY id LIMIT 500",
        0i64,
        &mut |tx, row| {
            let entry: i64 = row.get(0);
            let sealed = sealer.seal(Sealed::Quarantined, row.get(1), row.get(2));
            tx.execute(
                "UPDATE quarantine SET changes = $2 WHERE id = $1",
                &[&entry, &sealed],
            )
            .map(drop)
        },
    )?;
    Ok(count)
}

/// Runs `each` on every row `query` selects, a page at a time so that memory stays bounded
/// whatever the table holds: `query` takes the key after which a page starts (its first
/// column, in order) and limits the page. Returns how many rows.
fn in_pages<K>(
    tx: &mut postgres::Transaction<'_>,
    query: &str,
    first: K,
    each: &mut dyn FnMut(
        &mut postgres::Transaction<'_>,
        &Row,
    ) -> std::result::Result<(), postgres::Error>,
) -> std::result::Result<usize, ConnectError>
where
    K: postgres::types::ToSql + for<'r> postgres::types::FromSql<'r> + Sync,
{
    let mut after = first;
    let mut count = 0;
    loop {
        let rows = tx.query(query, &[&after]).map_err(storage_error)?;
        let Some(last) = rows.last() else {
            return Ok(count);
        };
        count += rows.len();
        for row in &rows {
            each(tx, row).map_err(storage_error)?;
        }
        after = last.get(0);
    }
}

/// A write waiting for its change number: stamped when the transaction ends.
struct Pending {
    id: Uuid,
    kind: RecordKind,
    fresh: bool,
    doc: Vec<u8>,
    heads: Vec<u8>,
    changes: Vec<u8>,
    device: Uuid,
    area: Option<Area>,
    /// `area` sealed, and the keyed hashes of its levels.
    sealed_area: Option<Vec<u8>>,
    area_hashes: [Option<Vec<u8>>; 4],
    /// The number of the device's push that brought the changes.
    push: Option<i64>,
    /// Where a new record's history starts (`fresh` only).
    root: Option<Vec<u8>>,
}

struct PgTransaction<'a> {
    tx: CachedTransaction<'a>,
    /// The process's actor, under which the hub writes its own changes.
    actor: &'a ActorId,
    reference: &'a ReferenceCache,
    sealer: &'a Sealer,
    pending: Vec<Pending>,
    /// The device whose pushes this transaction stores, and their number.
    pushing: Option<(Uuid, i64)>,
    /// Records saved in this transaction, as a later read in it must see them.
    written: HashMap<Uuid, StoredRecord>,
}

/// The area sealed in column `column` of a row about record `id` (`None` if NULL).
fn area_of(sealer: &Sealer, row: &Row, column: usize, id: Uuid) -> Result<Option<Area>> {
    row.get::<_, Option<&[u8]>>(column)
        .map(|sealed| sealer.open_area(id, sealed))
        .transpose()
}

/// An attachment's row, locked when `for_update`.
struct AttachmentRow {
    record: Uuid,
    key: sealed::FileKey,
    prefix: [u8; 16],
    sha256: Vec<u8>,
    size: u64,
    complete: bool,
}

impl PgTransaction<'_> {
    fn attachment_row(&mut self, id: Uuid, for_update: bool) -> Result<Option<AttachmentRow>> {
        let sql = if for_update {
            "SELECT record_id, file_key, prefix, sha256, size, complete FROM attachments
             WHERE id = $1 FOR UPDATE"
        } else {
            "SELECT record_id, file_key, prefix, sha256, size, complete FROM attachments
             WHERE id = $1"
        };
        let Some(row) = self.tx.query_opt(sql, &[&id]).map_err(storage_error)? else {
            return Ok(None);
        };
        let damaged = || Error::HubStorage {
            reason: "damaged attachment row".into(),
            retryable: false,
        };
        let key = zeroize::Zeroizing::new(self.sealer.open(Sealed::FileKey, id, row.get(1))?);
        let mut file_key = sealed::FileKey::default();
        file_key.copy_from_slice(key.get(..32).ok_or_else(damaged)?);
        Ok(Some(AttachmentRow {
            record: row.get(0),
            key: file_key,
            prefix: row.get::<_, Vec<u8>>(2).try_into().map_err(|_| damaged())?,
            sha256: row.get(3),
            size: u64::try_from(row.get::<_, i64>(4)).map_err(|_| damaged())?,
            complete: row.get(5),
        }))
    }

    fn segments_held(&mut self, id: Uuid) -> Result<u64> {
        let n: i64 = self
            .tx
            .query_one(
                "SELECT count(*) FROM attachment_segments WHERE attachment_id = $1",
                &[&id],
            )
            .map_err(storage_error)?
            .get(0);
        Ok(n as u64)
    }

    /// Hashes an attachment's plaintext, reading its segments a few at a time.
    fn attachment_hash(&mut self, id: Uuid, row: &AttachmentRow) -> Result<Option<[u8; 32]>> {
        use sha2::Digest;
        let last = segments_of(row.size) - 1;
        let mut hash = sha2::Sha256::new();
        let mut index = 0u64;
        while index <= last {
            let rows = self
                .tx
                .query(
                    "SELECT idx, sealed FROM attachment_segments
                     WHERE attachment_id = $1 AND idx >= $2 ORDER BY idx LIMIT 16",
                    &[&id, &(index as i32)],
                )
                .map_err(storage_error)?;
            if rows.is_empty() {
                return Ok(None);
            }
            for r in rows {
                if r.get::<_, i32>(0) as u64 != index {
                    return Ok(None);
                }
                let Ok(plain) = sealed::open_segment(
                    &row.key,
                    &row.prefix,
                    id,
                    index,
                    index == last,
                    r.get::<_, &[u8]>(1),
                ) else {
                    return Ok(None);
                };
                hash.update(&plain[..]);
                index += 1;
            }
        }
        Ok(Some(hash.finalize().into()))
    }
}

/// The segments an attachment of `size` bytes is sealed in (one, empty, for no bytes).
fn segments_of(size: u64) -> u64 {
    size.div_ceil(sealed::SEGMENT as u64).max(1)
}

impl PgTransaction<'_> {
    /// Gives each attachment a record's changes add to its manifest a row, its bytes to come,
    /// as the embedded store does: an attachment id is then one record's from the push that
    /// names it (`sync::hub::admit` refuses another record naming it), not from its upload's
    /// first chunk.
    fn name_attachments(&mut self, write: &RecordWrite<'_>) -> Result<()> {
        if !vigie_core::domain::attachment::takes_attachments(write.kind) {
            return Ok(());
        }
        let held = match write.before.is_empty() {
            true => Vec::new(),
            false => doc::attachments_at(write.document, write.before),
        };
        let now = match doc::attachment_keys(write.document) {
            0 => Vec::new(),
            _ => doc::attachments(write.document),
        };
        for entry in &now {
            if !held.iter().any(|h| h.id == entry.id) {
                self.name_attachment(write.id, entry)?;
            }
        }
        // An entry the changes remove takes its row with it (its key, its sealed bytes), as on
        // the embedded store: a consent form withdrawn is gone, and its id is free. Not while
        // changes under review may name it again.
        let removed: Vec<Uuid> = held
            .iter()
            .filter(|h| !now.iter().any(|n| n.id == h.id))
            .map(|h| h.id)
            .collect();
        if !removed.is_empty() {
            self.tx
                .execute(
                    "DELETE FROM attachments WHERE record_id = $1 AND id = ANY($2)
                       AND NOT EXISTS (SELECT 1 FROM quarantine WHERE record_id = $1)",
                    &[&write.id, &removed],
                )
                .map_err(storage_error)?;
        }
        Ok(())
    }

    /// A row for one attachment of `record`, its bytes to come, unless a row holds its id.
    fn name_attachment(&mut self, record: Uuid, entry: &vigie_core::Attachment) -> Result<()> {
        let Some(sha) = entry.sha256_digest() else {
            return Ok(());
        };
        let size = i64::try_from(entry.size).map_err(|_| Error::HubStorage {
            reason: "attachment size out of range".into(),
            retryable: false,
        })?;
        self.tx
            .execute(
                "INSERT INTO attachments (id, record_id, file_key, prefix, sha256, size)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
                &[
                    &entry.id,
                    &record,
                    &self
                        .sealer
                        .seal(Sealed::FileKey, entry.id, &sealed::new_key()[..]),
                    &sealed::new_prefix().to_vec(),
                    &sha.to_vec(),
                    &size,
                ],
            )
            .map_err(storage_error)?;
        Ok(())
    }
}

/// The records a scope receives whose last change is in `($1, $2]` (`changed`,
/// `count_changed`): of its kinds (`$3`) filed under one of its areas, each area code matching
/// at its level in its country only (`AreaGrant::covers`: the keyed hashes `$5`–`$8`), and
/// reference data (`$4`) for every principal.
const CHANGED_IN_SCOPE: &str = "last_seq > $1 AND last_seq <= $2
    AND (kind = $4 OR (kind = ANY($3)
         AND (country_h = ANY($5) OR region_h = ANY($6)
              OR district_h = ANY($7) OR community_h = ANY($8))))";

impl PgTransaction<'_> {
    /// The keyed hashes of a scope's area codes, by level (country, region, district,
    /// community).
    fn area_hashes(&self, scope: &Scope) -> [Vec<Vec<u8>>; 4] {
        let mut by_level: [Vec<Vec<u8>>; 4] = Default::default();
        for grant in scope.areas.grants() {
            let level = grant.level as usize;
            by_level[level].push(
                self.sealer
                    .area_hash(level as u8, &grant.country, &grant.code),
            );
        }
        by_level
    }

    /// `select` (its `{}` the condition `CHANGED_IN_SCOPE`, parameters `$1`–`$8`) run for
    /// the records `scope` receives whose last change is in `(after, upto]`, with `more`
    /// parameters from `$9`.
    fn changed_in_scope(
        &mut self,
        select: &str,
        (scope, after, upto): (&Scope, i64, i64),
        more: &Params<'_>,
    ) -> Result<Vec<Row>> {
        let kinds: Vec<i16> = scope.kinds().iter().map(|k| *k as i16).collect();
        let [countries, regions, districts, communities] = &self.area_hashes(scope);
        let reference = RecordKind::Reference as i16;
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![
            &after,
            &upto,
            &kinds,
            &reference,
            countries,
            regions,
            districts,
            communities,
        ];
        params.extend_from_slice(more);
        self.tx
            .query(&select.replace("{}", CHANGED_IN_SCOPE), &params)
            .map_err(storage_error)
    }

    /// Whether `table` (of change hashes, in its `hash` column) holds any of `hashes`.
    fn any_hash_in(&mut self, table: &'static str, hashes: &[ChangeHash]) -> Result<bool> {
        if hashes.is_empty() {
            return Ok(false);
        }
        let hashes: Vec<Vec<u8>> = hashes.iter().map(|h| h.0.to_vec()).collect();
        Ok(self
            .tx
            .query_one(
                &format!("SELECT EXISTS (SELECT 1 FROM {table} WHERE hash = ANY($1))"),
                &[&hashes],
            )
            .map_err(storage_error)?
            .get(0))
    }
}

impl HubTransaction for PgTransaction<'_> {
    fn hub_actor(&self) -> Option<ActorId> {
        Some(self.actor.clone())
    }

    fn reserve_attachment(&mut self, record: Uuid, entry: &vigie_core::Attachment) -> Result<()> {
        self.name_attachment(record, entry)
    }

    fn incarnation(&mut self) -> Result<Option<[u8; 16]>> {
        Ok(self
            .tx
            .query_opt(
                "SELECT value FROM vigie_meta WHERE key = $1",
                &[&INCARNATION_KEY],
            )
            .map_err(storage_error)?
            .and_then(|row| crate::backend::incarnation_of(row.get(0))))
    }

    fn setting(&mut self, key: &str) -> Result<Option<String>> {
        Ok(self
            .tx
            .query_opt("SELECT value FROM vigie_meta WHERE key = $1", &[&key])
            .map_err(storage_error)?
            .map(|row| row.get(0)))
    }

    fn set_setting(&mut self, key: &str, value: &str) -> Result<()> {
        self.tx
            .execute(
                "INSERT INTO vigie_meta (key, value) VALUES ($1, $2) \
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                &[&key, &value],
            )
            .map_err(storage_error)?;
        Ok(())
    }

    fn attachment_held(&mut self, id: Uuid) -> Result<Option<HeldAttachment>> {
        let Some(row) = self.attachment_row(id, false)? else {
            return Ok(None);
        };
        let held = if row.complete {
            row.size
        } else {
            (self.segments_held(id)? * sealed::SEGMENT as u64).min(row.size)
        };
        Ok(Some(HeldAttachment {
            record: row.record,
            size: row.size,
            held,
            complete: row.complete,
        }))
    }

    fn attachment_append(
        &mut self,
        id: Uuid,
        record: Uuid,
        size: u64,
        sha256: &[u8; 32],
        offset: u64,
        bytes: &[u8],
    ) -> Result<Appended> {
        let too_large = || Error::HubStorage {
            reason: "attachment size out of range".into(),
            retryable: false,
        };
        self.tx
            .execute(
                "INSERT INTO attachments (id, record_id, file_key, prefix, sha256, size)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
                &[
                    &id,
                    &record,
                    &self
                        .sealer
                        .seal(Sealed::FileKey, id, &sealed::new_key()[..]),
                    &sealed::new_prefix().to_vec(),
                    &sha256.to_vec(),
                    &i64::try_from(size).map_err(|_| too_large())?,
                ],
            )
            .map_err(storage_error)?;
        // Locked: two hub processes receiving the same upload append one after the other.
        let row = self
            .attachment_row(id, true)?
            .ok_or(Error::NotFound { kind: None, id })?;
        if row.record != record || row.size != size || row.sha256 != sha256 {
            return Err(Error::DamagedDocument {
                id: record,
                reason: "an attachment's row disagrees with its manifest entry".into(),
            });
        }
        if row.complete {
            return Ok(Appended::Complete);
        }
        let held = self.segments_held(id)?;
        let segment = sealed::SEGMENT as u64;
        if offset != held * segment || offset + bytes.len() as u64 > size {
            return Ok(Appended::Held((held * segment).min(size)));
        }
        let last = segments_of(size) - 1;
        let mut index = held;
        for piece in bytes.chunks(sealed::SEGMENT) {
            let full = piece.len() == sealed::SEGMENT;
            let end = index * segment + piece.len() as u64;
            if !full && end != size {
                // A short piece that does not end the attachment: the chunk is misaligned.
                break;
            }
            let sealed =
                sealed::seal_segment(&row.key, &row.prefix, id, index, index == last, piece)?;
            self.tx
                .execute(
                    "INSERT INTO attachment_segments (attachment_id, idx, sealed) VALUES ($1, $2, $3)",
                    &[&id, &(index as i32), &sealed],
                )
                .map_err(storage_error)?;
            index += 1;
        }
        if size == 0 && index == 0 {
            let sealed = sealed::seal_segment(&row.key, &row.prefix, id, 0, true, &[])?;
            self.tx
                .execute(
                    "INSERT INTO attachment_segments (attachment_id, idx, sealed) VALUES ($1, 0, $2)",
                    &[&id, &sealed],
                )
                .map_err(storage_error)?;
            index = 1;
        }
        if index <= last {
            return Ok(Appended::Held((index * segment).min(size)));
        }
        if self.attachment_hash(id, &row)?.as_ref().map(|h| &h[..]) == Some(sha256) {
            self.tx
                .execute(
                    "UPDATE attachments SET complete = TRUE WHERE id = $1",
                    &[&id],
                )
                .map_err(storage_error)?;
            // The change order moves with it (a place no change takes): a copy of the database
            // taken before the upload ended is found behind it once restored
            // (`irreversible::watch_change_order`), and the phone sends the photo again.
            self.tx
                .execute("SELECT nextval('change_seq')", &[])
                .map_err(storage_error)?;
            Ok(Appended::Complete)
        } else {
            self.tx
                .execute(
                    "DELETE FROM attachment_segments WHERE attachment_id = $1",
                    &[&id],
                )
                .map_err(storage_error)?;
            Ok(Appended::Mismatch)
        }
    }

    fn attachment_read(&mut self, id: Uuid, offset: u64, max: usize) -> Result<Option<Vec<u8>>> {
        let row = self
            .attachment_row(id, false)?
            .ok_or(Error::NotFound { kind: None, id })?;
        let segment = sealed::SEGMENT as u64;
        let first = offset / segment;
        let count = (max as u64).div_ceil(segment).max(1);
        let last = segments_of(row.size) - 1;
        let rows = self
            .tx
            .query(
                "SELECT idx, sealed FROM attachment_segments
                 WHERE attachment_id = $1 AND idx >= $2 AND idx < $3 ORDER BY idx",
                &[&id, &(first as i32), &((first + count) as i32)],
            )
            .map_err(storage_error)?;
        let mut out = Vec::with_capacity(max.min(row.size as usize));
        for (n, r) in rows.iter().enumerate() {
            let index = r.get::<_, i32>(0) as u64;
            if index != first + n as u64 {
                break;
            }
            // A damaged segment refuses this download only (read-only here: nothing is
            // removed; the log names the attachment).
            let Ok(plain) = sealed::open_segment(
                &row.key,
                &row.prefix,
                id,
                index,
                index == last,
                r.get::<_, &[u8]>(1),
            ) else {
                return Ok(None);
            };
            out.extend_from_slice(&plain);
        }
        out.truncate(max);
        // A segment missing is damage too, not a shorter chunk.
        let expected = row.size.saturating_sub(offset).min(max as u64);
        Ok((out.len() as u64 == expected).then_some(out))
    }

    fn drop_attachments_except(&mut self, record: Uuid, keep: &[Uuid]) -> Result<()> {
        // Their segments go with them (ON DELETE CASCADE).
        self.tx
            .execute(
                "DELETE FROM attachments WHERE record_id = $1 AND NOT (id = ANY($2))",
                &[&record, &keep],
            )
            .map_err(storage_error)?;
        Ok(())
    }

    fn record(&mut self, id: Uuid, for_update: bool) -> Result<Option<StoredRecord>> {
        if let Some(stored) = self.written.get(&id) {
            return Ok(Some(stored.clone()));
        }
        let sql = if for_update {
            "SELECT kind, doc, area FROM records WHERE id = $1 FOR UPDATE"
        } else {
            "SELECT kind, doc, area FROM records WHERE id = $1"
        };
        let Some(row) = self.tx.query_opt(sql, &[&id]).map_err(storage_error)? else {
            return Ok(None);
        };
        let kind = RecordKind::from_i64(i64::from(row.get::<_, i16>(0))).ok_or_else(|| {
            Error::DamagedDocument {
                id,
                reason: "unknown record kind in the store".into(),
            }
        })?;
        Ok(Some(StoredRecord {
            key: 0,
            kind,
            area: area_of(self.sealer, &row, 2, id)?,
            document: codec::decode(id, self.sealer.open(Sealed::Document, id, row.get(1))?)?,
        }))
    }

    fn save(&mut self, write: RecordWrite<'_>) -> Result<()> {
        self.name_attachments(&write)?;
        let heads = write.document.get_heads();
        let changes = codec::new_change_hashes(write.document, write.before);
        let fresh = write.key.is_none() && !self.written.contains_key(&write.id);
        let codec::Encoded { stored: doc, plain } = codec::encode(write.id, write.document)?;
        self.written.insert(
            write.id,
            StoredRecord {
                key: 0,
                kind: write.kind,
                area: write.area.cloned(),
                document: plain,
            },
        );
        self.pending.push(Pending {
            id: write.id,
            kind: write.kind,
            fresh,
            doc: self.sealer.seal(Sealed::Document, write.id, &doc),
            heads: codec::heads_bytes(&heads),
            changes,
            device: write.author.device,
            area: write.area.cloned(),
            sealed_area: write.area.map(|a| self.sealer.seal_area(write.id, a)),
            area_hashes: write
                .area
                .map(|a| self.sealer.area_hashes(a).map(Some))
                .unwrap_or_default(),
            push: self
                .pushing
                .filter(|(device, _)| *device == write.author.device)
                .map(|(_, push)| push),
            root: fresh
                .then(|| codec::single_root(write.document).map(|h| h.0.to_vec()))
                .flatten(),
        });
        Ok(())
    }

    fn hold_publications(&mut self) -> Result<()> {
        self.tx
            .execute("SELECT pg_advisory_xact_lock($1)", &[&PUBLISH_LOCK])
            .map_err(storage_error)?;
        Ok(())
    }

    fn high_water(&mut self) -> Result<i64> {
        Ok(self
            .tx
            .query_one(
                "SELECT greatest((SELECT coalesce(max(seq), 0) FROM change_log),
                                 (SELECT coalesce(max(seq), 0) FROM erased))",
                &[],
            )
            .map_err(storage_error)?
            .get(0))
    }

    fn reference(&mut self) -> Result<Arc<ReferenceData>> {
        let committed = reference_in(self.reference, self.sealer, &mut self.tx)?;
        // Reference documents this transaction wrote are in force in it (a publication's
        // second file is checked against its first), though they reach the table and the
        // marker only at the commit.
        let mut ids: Vec<Uuid> = self
            .written
            .iter()
            .filter(|(_, record)| record.kind == RecordKind::Reference)
            .map(|(id, _)| *id)
            .collect();
        if ids.is_empty() {
            return Ok(committed);
        }
        ids.sort_unstable();
        let mut data = committed.as_ref().clone();
        let written = &self.written;
        let mut stored = PublishedDocuments {
            sealer: self.sealer,
            tx: &mut self.tx,
        };
        doc::add_published(&mut data, &ids, &mut |id| match written.get(&id) {
            Some(record) => Ok(Some(record.document.clone())),
            None => stored.document(id),
        })?;
        Ok(Arc::new(data))
    }

    fn changed(
        &mut self,
        scope: &Scope,
        after: i64,
        upto: i64,
        limit: usize,
    ) -> Result<Vec<ChangedRecord>> {
        let rows = self.changed_in_scope(
            "SELECT id, doc, last_seq, heads, first_seq, creator FROM records
             WHERE {} ORDER BY last_seq LIMIT $9",
            (scope, after, upto),
            &[&(limit as i64)],
        )?;
        rows.iter()
            .map(|row| {
                let id: Uuid = row.get(0);
                Ok(ChangedRecord {
                    id,
                    stored: self.sealer.open(Sealed::Document, id, row.get(1))?,
                    seq: row.get(2),
                    heads: row.get(3),
                    first_seq: row.get(4),
                    creator: row.get(5),
                })
            })
            .collect()
    }

    fn count_changed(&mut self, scope: &Scope, after: i64, upto: i64) -> Result<u64> {
        let rows = self.changed_in_scope(
            "SELECT count(*) FROM records WHERE {}",
            (scope, after, upto),
            &[],
        )?;
        let count: i64 = rows.first().map_or(0, |row| row.get(0));
        Ok(u64::try_from(count).unwrap_or(0))
    }

    fn change_log(&mut self, id: Uuid) -> Result<Vec<LogEntry>> {
        let rows = self
            .tx
            .query(
                "SELECT seq, changes, device_id, push, at_ms FROM change_log WHERE record_id = $1
                 ORDER BY seq",
                &[&id],
            )
            .map_err(storage_error)?;
        Ok(rows
            .iter()
            .map(|row| LogEntry {
                seq: row.get(0),
                changes: row.get(1),
                device: row.get(2),
                push: row.get(3),
                at_ms: row.get(4),
            })
            .collect())
    }

    fn erasures(&mut self) -> Result<Vec<(Uuid, i64)>> {
        Ok(self
            .tx
            .query("SELECT record_id, at_ms FROM erased ORDER BY at_ms", &[])
            .map_err(storage_error)?
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect())
    }

    fn one_at_a_time_on(&mut self, id: Uuid) -> Result<()> {
        // A lock of the pair (class, key): apart from the single-key locks above.
        // Two ids may share a key: one waits for the other, no more.
        let (high, low) = id.as_u64_pair();
        let key = (high ^ low ^ ((high ^ low) >> 32)) as i32;
        self.tx
            .execute(
                "SELECT pg_advisory_xact_lock($1, $2)",
                &[&RECORD_LOCK_CLASS, &key],
            )
            .map_err(storage_error)?;
        Ok(())
    }

    fn is_erased(&mut self, id: Uuid) -> Result<bool> {
        Ok(self
            .tx
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM erased WHERE record_id = $1)",
                &[&id],
            )
            .map_err(storage_error)?
            .get(0))
    }

    fn erase(&mut self, id: Uuid, history: &ErasedHistory) -> Result<bool> {
        if self.is_erased(id)? {
            return Ok(false);
        }
        self.written.remove(&id);
        self.pending.retain(|p| p.id != id);
        let found = self
            .tx
            .execute("DELETE FROM records WHERE id = $1", &[&id])
            .map_err(storage_error)?
            > 0;
        // The attachments' keys go with their rows, and their segments with them.
        for table in ["change_log", "quarantine", "attachments"] {
            self.tx
                .execute(&format!("DELETE FROM {table} WHERE record_id = $1"), &[&id])
                .map_err(storage_error)?;
        }
        // The tombstone takes its place in the change order like a change.
        self.lock_change_order()?;
        let seq: i64 = self
            .tx
            .query_one(
                "INSERT INTO erased (record_id, seq, at_ms) VALUES ($1, nextval('change_seq'), $2)
                 RETURNING seq",
                // An erasure done again after a restore keeps the day it was decided.
                &[
                    &id,
                    &history
                        .at_ms
                        .unwrap_or_else(|| chrono::Utc::now().timestamp_millis()),
                ],
            )
            .map_err(storage_error)?
            .get(0);
        let hashes: Vec<Vec<u8>> = history.hashes.iter().map(|h| h.0.to_vec()).collect();
        let roots: Vec<bool> = history
            .hashes
            .iter()
            .map(|h| history.roots.contains(h))
            .collect();
        self.tx
            .execute(
                "INSERT INTO erased_changes (hash, record_id, root)
                 SELECT hash, $1, root FROM unnest($2::BYTEA[], $3::BOOLEAN[]) AS t (hash, root)
                 ON CONFLICT (hash) DO NOTHING",
                &[&id, &hashes, &roots],
            )
            .map_err(storage_error)?;
        if let Some((kind, area)) = &history.filed {
            let sealed = self.sealer.seal_area(id, area);
            insert_area_history(&mut self.tx, seq, id, *kind, &sealed)?;
        }
        Ok(found)
    }

    fn device_actor(&mut self, device: Uuid) -> Result<Option<Vec<u8>>> {
        Ok(self
            .tx
            .query_opt(
                "SELECT actor FROM device_actors WHERE device = $1",
                &[&device],
            )
            .map_err(storage_error)?
            .map(|row| row.get(0)))
    }

    fn set_device_actor(&mut self, device: Uuid, actor: &[u8]) -> Result<()> {
        self.tx
            .execute(
                "INSERT INTO device_actors (device, actor) VALUES ($1, $2)
                 ON CONFLICT (device) DO UPDATE SET actor = excluded.actor",
                &[&device, &actor],
            )
            .map_err(storage_error)?;
        Ok(())
    }

    fn give_up_changes(&mut self, hashes: &[ChangeHash]) -> Result<()> {
        if hashes.is_empty() {
            return Ok(());
        }
        let hashes: Vec<Vec<u8>> = hashes.iter().map(|h| h.0.to_vec()).collect();
        self.tx
            .execute(
                "INSERT INTO given_up_changes (hash) SELECT unnest($1::bytea[])
                 ON CONFLICT DO NOTHING",
                &[&hashes],
            )
            .map_err(storage_error)?;
        Ok(())
    }

    fn any_given_up_change(&mut self, hashes: &[ChangeHash]) -> Result<bool> {
        self.any_hash_in("given_up_changes", hashes)
    }

    fn remember_refused_changes(
        &mut self,
        device: Uuid,
        hashes: &[ChangeHash],
        at_ms: i64,
    ) -> Result<()> {
        if hashes.is_empty() {
            return Ok(());
        }
        let hashes: Vec<Vec<u8>> = hashes.iter().map(|h| h.0.to_vec()).collect();
        self.tx
            .execute(
                "INSERT INTO refused_changes (hash, device, at_ms)
                 SELECT unnest($1::bytea[]), $2, $3
                 ON CONFLICT (hash) DO UPDATE SET at_ms = excluded.at_ms",
                &[&hashes, &device, &at_ms],
            )
            .map_err(storage_error)?;
        self.tx
            .execute(
                "DELETE FROM refused_changes WHERE device = $1 AND hash NOT IN (
                     SELECT hash FROM refused_changes WHERE device = $1
                     ORDER BY at_ms DESC LIMIT $2)",
                &[&device, &vigie_core::storage::MAX_REFUSED_CHANGES_KEPT],
            )
            .map_err(storage_error)?;
        Ok(())
    }

    fn any_refused_change(&mut self, hashes: &[ChangeHash]) -> Result<bool> {
        self.any_hash_in("refused_changes", hashes)
    }

    fn records_with_root(&mut self, root: ChangeHash) -> Result<Vec<Uuid>> {
        // Saved in this transaction, not yet in the table, and those in it.
        let mut ids: Vec<Uuid> = self
            .pending
            .iter()
            .filter(|p| p.root.as_deref() == Some(root.0.as_slice()))
            .map(|p| p.id)
            .collect();
        ids.extend(
            self.tx
                .query(
                    "SELECT id FROM records WHERE root = $1",
                    &[&root.0.as_slice()],
                )
                .map_err(storage_error)?
                .iter()
                .map(|row| row.get::<_, Uuid>(0)),
        );
        Ok(ids)
    }

    fn any_erased_change(&mut self, hashes: &[ChangeHash]) -> Result<bool> {
        self.any_hash_in("erased_changes", hashes)
    }

    fn erased_roots(&mut self, id: Uuid) -> Result<Vec<ChangeHash>> {
        let rows = self
            .tx
            .query(
                "SELECT hash FROM erased_changes WHERE record_id = $1 AND root ORDER BY hash",
                &[&id],
            )
            .map_err(storage_error)?;
        Ok(rows
            .iter()
            .filter_map(|r| <[u8; 32]>::try_from(r.get::<_, Vec<u8>>(0)).ok())
            .map(ChangeHash)
            .collect())
    }

    fn departures(&mut self, after: i64, upto: i64, limit: usize) -> Result<Vec<Departure>> {
        let rows = self
            .tx
            .query(
                "SELECT h.seq, h.record_id, h.kind, h.area, r.kind, r.area
                 FROM area_history h LEFT JOIN records r ON r.id = h.record_id
                 WHERE h.seq > $1 AND h.seq <= $2 ORDER BY h.seq LIMIT $3",
                &[&after, &upto, &(limit as i64)],
            )
            .map_err(storage_error)?;
        rows.iter()
            .map(|row| {
                let id: Uuid = row.get(1);
                let kind = |k: i16| {
                    RecordKind::from_i64(i64::from(k)).ok_or_else(|| Error::DamagedDocument {
                        id,
                        reason: "unknown record kind in the area history".into(),
                    })
                };
                let now = match row.get::<_, Option<i16>>(4) {
                    Some(k) => Some((kind(k)?, area_of(self.sealer, row, 5, id)?)),
                    None => None,
                };
                Ok(Departure {
                    seq: row.get(0),
                    id,
                    kind: kind(row.get(2))?,
                    area: area_of(self.sealer, row, 3, id)?.unwrap_or_default(),
                    now,
                })
            })
            .collect()
    }

    fn pushes(&mut self, device: Uuid) -> Result<i64> {
        Ok(self
            .tx
            .query_opt("SELECT count FROM hub_pushes WHERE device = $1", &[&device])
            .map_err(storage_error)?
            .map_or(0, |r| r.get(0)))
    }

    fn number_pushes(&mut self, device: Uuid) -> Result<i64> {
        let number: i64 = self
            .tx
            .query_one(
                "INSERT INTO hub_pushes (device, count) VALUES ($1, 1)
                 ON CONFLICT (device) DO UPDATE SET count = hub_pushes.count + 1
                 RETURNING count",
                &[&device],
            )
            .map_err(storage_error)?
            .get(0);
        self.pushing = Some((device, number));
        Ok(number)
    }

    fn continue_pushes(&mut self, device: Uuid, number: i64) {
        self.pushing = Some((device, number));
    }

    fn quarantine(&mut self, entry: &Quarantined) -> Result<()> {
        self.tx
            .execute(
                "INSERT INTO quarantine (record_id, device_id, user_id, changes, received_ms)
                 VALUES ($1, $2, $3, $4, $5)",
                &[
                    &entry.record,
                    &entry.device,
                    &entry.user,
                    &self
                        .sealer
                        .seal(Sealed::Quarantined, entry.record, &entry.changes),
                    &entry.received_ms,
                ],
            )
            .map_err(storage_error)?;
        Ok(())
    }

    fn quarantined_from(&mut self, device: Uuid) -> Result<usize> {
        let row = self
            .tx
            .query_one(
                "SELECT count(*) FROM quarantine WHERE device_id = $1",
                &[&device],
            )
            .map_err(storage_error)?;
        Ok(usize::try_from(row.get::<_, i64>(0)).unwrap_or(usize::MAX))
    }

    fn quarantined(&mut self) -> Result<Vec<Quarantined>> {
        let rows = self
            .tx
            .query(
                "SELECT id, record_id, device_id, user_id, changes, received_ms FROM quarantine
                 ORDER BY id",
                &[],
            )
            .map_err(storage_error)?;
        rows.iter()
            .map(|row| quarantined_of(self.sealer, row))
            .collect()
    }

    fn quarantined_for(&mut self, record: Uuid) -> Result<Vec<Quarantined>> {
        let rows = self
            .tx
            .query(
                "SELECT id, record_id, device_id, user_id, changes, received_ms FROM quarantine
                 WHERE record_id = $1 ORDER BY id",
                &[&record],
            )
            .map_err(storage_error)?;
        rows.iter()
            .map(|row| quarantined_of(self.sealer, row))
            .collect()
    }

    fn take_quarantined(&mut self, entry: i64) -> Result<Option<Quarantined>> {
        let row = self
            .tx
            .query_opt(
                "DELETE FROM quarantine WHERE id = $1
                 RETURNING id, record_id, device_id, user_id, changes, received_ms",
                &[&entry],
            )
            .map_err(storage_error)?;
        row.as_ref()
            .map(|row| quarantined_of(self.sealer, row))
            .transpose()
    }
}

fn insert_area_history(
    tx: &mut CachedTransaction<'_>,
    seq: i64,
    id: Uuid,
    kind: RecordKind,
    sealed_area: &[u8],
) -> Result<()> {
    tx.execute(
        "INSERT INTO area_history (seq, record_id, kind, area) VALUES ($1, $2, $3, $4)",
        &[&seq, &id, &(kind as i16), &sealed_area],
    )
    .map_err(storage_error)?;
    Ok(())
}

fn quarantined_of(sealer: &Sealer, row: &Row) -> Result<Quarantined> {
    let record: Uuid = row.get(1);
    Ok(Quarantined {
        entry: row.get(0),
        record,
        device: row.get(2),
        user: row.get(3),
        changes: sealer.open(Sealed::Quarantined, record, row.get(4))?,
        received_ms: row.get(5),
    })
}

impl PgTransaction<'_> {
    fn lock_change_order(&mut self) -> Result<()> {
        self.tx
            .execute(
                "SELECT set_config('idle_in_transaction_session_timeout', $1, true)",
                &[&WRITE_IDLE_TIMEOUT],
            )
            .map_err(storage_error)?;
        self.tx
            .execute("SELECT pg_advisory_xact_lock($1)", &[&SEQ_LOCK])
            .map_err(storage_error)?;
        Ok(())
    }

    /// Stamps the pending writes with change numbers and commits.
    fn commit(mut self) -> Result<()> {
        if !self.pending.is_empty() {
            self.lock_change_order()?;
            let now = chrono::Utc::now().timestamp_millis();
            for p in std::mem::take(&mut self.pending) {
                let seq: i64 = self
                    .tx
                    .query_one(
                        "INSERT INTO change_log (seq, record_id, changes, device_id, at_ms, push)
                         VALUES (nextval('change_seq'), $1, $2, $3, $4, $5) RETURNING seq",
                        &[&p.id, &p.changes, &p.device, &now, &p.push],
                    )
                    .map_err(storage_error)?
                    .get(0);
                let [country, region, district, community] = &p.area_hashes;
                let kind = p.kind as i16;
                if p.fresh {
                    self.tx
                        .execute(
                            "INSERT INTO records (id, kind, doc, heads, last_seq, first_seq,
                                 creator, area, country_h, region_h, district_h, community_h,
                                 root)
                             VALUES ($1, $2, $3, $4, $5, $5, $6, $7, $8, $9, $10, $11, $12)",
                            &[
                                &p.id,
                                &kind,
                                &p.doc,
                                &p.heads,
                                &seq,
                                &p.device,
                                &p.sealed_area,
                                country,
                                region,
                                district,
                                community,
                                &p.root,
                            ],
                        )
                        .map_err(storage_error)?;
                } else {
                    if p.area.is_some() {
                        // Where the record was filed until now, if this write moves it (the
                        // hashes are equal exactly when the codes are).
                        self.tx
                            .execute(
                                "INSERT INTO area_history (seq, record_id, kind, area)
                                 SELECT $1, id, kind, area FROM records
                                 WHERE id = $2 AND area IS NOT NULL
                                   AND (country_h, region_h, district_h, community_h)
                                       IS DISTINCT FROM ($3, $4, $5, $6)",
                                &[&seq, &p.id, country, region, district, community],
                            )
                            .map_err(storage_error)?;
                    }
                    self.tx
                        .execute(
                            "UPDATE records SET doc = $2, heads = $3, last_seq = $4, area = $5,
                                 country_h = $6, region_h = $7, district_h = $8, community_h = $9
                             WHERE id = $1",
                            &[
                                &p.id,
                                &p.doc,
                                &p.heads,
                                &seq,
                                &p.sealed_area,
                                country,
                                region,
                                district,
                                community,
                            ],
                        )
                        .map_err(storage_error)?;
                }
            }
        }
        self.tx.commit().map_err(storage_error)
    }
}

/// One use of the pool as the engine's storage.
struct PgStorage<'p> {
    pool: &'p Pool<Manager>,
    /// This process's actor, under which the hub writes its own changes.
    actor: &'p ActorId,
    reference: &'p ReferenceCache,
    sealer: &'p Sealer,
    allowances: &'p Arc<vigie_core::sync::DeviceAllowances>,
}

impl PgStorage<'_> {
    /// Runs `work` in a transaction, again after a collision with another process.
    /// `snapshot`: a read-only transaction on one snapshot (repeatable read).
    fn run<T>(
        &mut self,
        snapshot: bool,
        work: &mut dyn FnMut(&mut dyn HubTransaction) -> Result<T>,
    ) -> Result<T> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let outcome = (|| {
                let mut client = self.pool.get().map_err(pool_error)?;
                let tx = if snapshot {
                    client.begin_snapshot()?
                } else {
                    client.begin()?
                };
                let mut pg = PgTransaction {
                    tx,
                    actor: self.actor,
                    reference: self.reference,
                    sealer: self.sealer,
                    pending: Vec::new(),
                    pushing: None,
                    written: HashMap::new(),
                };
                let value = work(&mut pg)?;
                pg.commit()?;
                Ok(value)
            })();
            match outcome {
                Err(Error::HubStorage {
                    retryable: true, ..
                }) if attempt < ATTEMPTS => {
                    // Another process holds what this one needs: let it finish first.
                    std::thread::sleep(Duration::from_millis(2 * attempt as u64));
                }
                other => return other,
            }
        }
    }
}

impl HubStorage for PgStorage<'_> {
    fn in_transaction<T>(
        &mut self,
        work: &mut dyn FnMut(&mut dyn HubTransaction) -> Result<T>,
    ) -> Result<T> {
        self.run(false, work)
    }

    fn in_read_transaction<T>(
        &mut self,
        work: &mut dyn FnMut(&mut dyn HubTransaction) -> Result<T>,
    ) -> Result<T> {
        self.run(true, work)
    }

    fn allowances(&self) -> Option<Arc<vigie_core::sync::DeviceAllowances>> {
        Some(self.allowances.clone())
    }
}

/// The start of the name of a console view's temporary directory, followed by the owning
/// process's id.
const VIEW_PREFIX: &str = "vigie-console-";

/// Removes the console views of processes that no longer run (killed before they could remove
/// theirs: the copy is sealed under a key that died with them, but takes room). A directory
/// whose process cannot be told dead is left.
fn remove_dead_views() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(VIEW_PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        let proc = std::path::Path::new("/proc");
        // A process that ended but was not reaped yet (a zombie) runs no more.
        let runs = std::fs::read_to_string(proc.join(pid.to_string()).join("status"))
            .is_ok_and(|status| !status.contains("\nState:\tZ"));
        if pid == std::process::id() || !proc.is_dir() || runs {
            continue;
        }
        match std::fs::remove_dir_all(entry.path()) {
            Ok(()) => tracing::info!(pid, "removed the console copy of a hub process that ended"),
            Err(e) => tracing::debug!(pid, error = %e, "a dead hub's console copy was not removed"),
        }
    }
}

/// The `vigie_meta` key of the hub's incarnation (`HubTransaction::incarnation`), in hex.
const INCARNATION_KEY: &str = "incarnation";

fn new_incarnation() -> String {
    let mut bytes = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    crate::hub_key::hex(&bytes)
}

impl Backend for Postgres {
    fn change_order_mark(&self) -> Result<Option<crate::backend::ChangeOrderMark>> {
        let mut client = self.client()?;
        // The first process to ask gives the hub its incarnation.
        client
            .execute(
                "INSERT INTO vigie_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                &[&INCARNATION_KEY, &new_incarnation()],
            )
            .map_err(storage_error)?;
        let value: String = client
            .query_one(
                "SELECT value FROM vigie_meta WHERE key = $1",
                &[&INCARNATION_KEY],
            )
            .map_err(storage_error)?
            .get(0);
        let incarnation =
            crate::backend::incarnation_of(&value).ok_or_else(|| Error::HubStorage {
                reason: "the hub's incarnation is not 16 bytes of hex".into(),
                retryable: false,
            })?;
        let row = client
            .query_one(
                "SELECT last_value, is_called, current_database()::text FROM change_seq",
                &[],
            )
            .map_err(storage_error)?;
        let (last, called): (i64, bool) = (row.get(0), row.get(1));
        Ok(Some(crate::backend::ChangeOrderMark {
            database: row.get(2),
            incarnation,
            sequence: if called { last } else { 0 },
        }))
    }

    fn reachable(&self) -> Result<()> {
        // A load balancer's health check gives up after a few seconds: the answer comes
        // sooner than a request's wait for a connection (`connection_timeout`).
        // A database that takes no write (a standby after a failover, or one set read-only)
        // gives no connection either (`Manager::is_valid`): not healthy, so that a load
        // balancer sends devices elsewhere.
        self.pool
            .get_timeout(HEALTH_WAIT)
            .map_err(pool_error)?
            // The hub's own table, not `SELECT 1`: a database emptied under the hub answers,
            // and serves nothing.
            .simple_query("SELECT 1 FROM vigie_meta LIMIT 1")
            .map_err(storage_error)?;
        Ok(())
    }

    fn take_new_incarnation(&self, from: [u8; 16]) -> Result<bool> {
        let taken = self
            .client()?
            .execute(
                "UPDATE vigie_meta SET value = $1 WHERE key = $2 AND value = $3",
                &[
                    &new_incarnation(),
                    &INCARNATION_KEY,
                    &crate::hub_key::hex(&from),
                ],
            )
            .map_err(storage_error)?;
        Ok(taken == 1)
    }

    fn concurrency(&self) -> usize {
        self.pool.max_size() as usize
    }

    fn console(&self) -> &dyn crate::console::storage::ConsoleStorage {
        self
    }

    fn console_form_key(&self) -> [u8; 32] {
        crate::console::session::form_key(&self.key.to_bytes()[..])
    }

    fn open_view(&self) -> Result<crate::console::view::View> {
        // A copy of the records in an encrypted store of this process (`console::view`), in a
        // directory named after the process: a process killed leaves its copy, removed by the
        // next one that opens a view.
        remove_dead_views();
        let scratch = tempfile::Builder::new()
            .prefix(&format!("{VIEW_PREFIX}{}-", std::process::id()))
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir()?;
        let mut key = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
        let config = vigie_core::StoreConfig::new(
            scratch.path().join("console.db"),
            vigie_core::Encryption::Key(key),
            crate::HUB_ADMIN,
        )
        .role(vigie_core::StoreRole::Hub);
        Ok(crate::console::view::View {
            store: Store::open(config.clone())?,
            cursor: 0,
            scratch: Some(scratch),
            reopen: config,
        })
    }

    fn refresh_view(&self, view: &mut crate::console::view::View) -> Result<()> {
        self.catch_up(&mut view.store, &mut view.cursor)
    }

    fn write(&self, work: &mut dyn FnMut(&mut dyn HubTransaction) -> Result<()>) -> Result<()> {
        self.storage().in_transaction(work)
    }

    fn actor(&self) -> ActorId {
        self.actor.clone()
    }

    fn wipe_order(&self, device: Uuid) -> String {
        self.key.wipe_order(device)
    }
    fn authenticate(&self, token: &Token) -> std::result::Result<Uuid, AuthError> {
        let mut client = self.client().map_err(auth_error)?;
        let row = client
            .query_opt(
                "SELECT user_id, secret_hash, revoked_ms, last_seen_ms, unused_until_ms
                 FROM devices WHERE device = $1",
                &[&token.device],
            )
            .map_err(|e| auth_error(storage_error(e)))?;
        let Some(row) = row else {
            return Err(AuthError::Unknown);
        };
        let user: Uuid = row.get(0);
        let hash: Vec<u8> = row.get(1);
        let revoked: Option<i64> = row.get(2);
        let now = chrono::Utc::now().timestamp_millis();
        let until = row
            .get::<_, Option<i64>>(4)
            .filter(|_| row.get::<_, Option<i64>>(3).is_none());
        let user = auth::check_token(token, user.as_bytes(), &hash, revoked.is_some(), until, now)?;
        if auth::seen_is_stale(row.get(3), now) {
            client
                .execute(
                    "UPDATE devices SET last_seen_ms = $2 WHERE device = $1",
                    &[&token.device, &now],
                )
                .map_err(|e| auth_error(storage_error(e)))?;
        }
        Ok(user)
    }

    fn devices(&self) -> std::result::Result<Vec<DeviceInfo>, AuthError> {
        let mut client = self.client().map_err(auth_error)?;
        let rows = client
            .query(
                "SELECT device, user_id, enrolled_ms, last_seen_ms, revoked_ms,
                        CASE WHEN last_seen_ms IS NULL THEN unused_until_ms END
                 FROM devices ORDER BY enrolled_ms, device",
                &[],
            )
            .map_err(|e| auth_error(storage_error(e)))?;
        Ok(rows
            .iter()
            .map(|row| DeviceInfo {
                device: row.get(0),
                user: row.get(1),
                enrolled_ms: row.get(2),
                last_seen_ms: row.get(3),
                revoked_ms: row.get(4),
                unused_until_ms: row.get(5),
            })
            .collect())
    }

    fn reissue(&self, device: Uuid) -> std::result::Result<Token, AuthError> {
        crate::backend::reissue_superseding(&self.certifier(), device, || {
            self.reissue_token(device)
        })
    }

    fn enrol_device(
        &self,
        user: Uuid,
        device: Uuid,
    ) -> std::result::Result<Option<Token>, AuthError> {
        let token = auth::reissued_token(device, user);
        let now = chrono::Utc::now().timestamp_millis();
        let mut client = self.client().map_err(auth_error)?;
        let added = client
            .execute(
                "INSERT INTO devices (device, user_id, secret_hash, enrolled_ms, unused_until_ms)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (device) DO NOTHING",
                &[
                    &token.device,
                    &user,
                    &token.secret_hash().to_vec(),
                    &now,
                    &auth::unused_until(now),
                ],
            )
            .map_err(|e| auth_error(storage_error(e)))?;
        Ok((added == 1).then_some(token))
    }

    fn revoked_unknown(&self, device: Uuid) -> std::result::Result<(), AuthError> {
        let mut client = self.client().map_err(auth_error)?;
        let now = chrono::Utc::now().timestamp_millis();
        client
            .execute(
                "INSERT INTO devices (device, user_id, secret_hash, enrolled_ms, revoked_ms)
                 VALUES ($1, $2, ''::bytea, $3, $3) ON CONFLICT (device) DO NOTHING",
                &[&device, &Uuid::nil(), &now],
            )
            .map_err(|e| auth_error(storage_error(e)))?;
        Ok(())
    }

    fn revoke(&self, device: Uuid) -> std::result::Result<bool, AuthError> {
        let mut client = self.client().map_err(auth_error)?;
        let n = client
            .execute(
                "UPDATE devices SET revoked_ms = $2 WHERE device = $1 AND revoked_ms IS NULL",
                &[&device, &chrono::Utc::now().timestamp_millis()],
            )
            .map_err(|e| auth_error(storage_error(e)))?;
        Ok(n == 1)
    }

    fn user(&self, id: Uuid) -> Result<Option<User>> {
        self.storage()
            .in_transaction(&mut |tx| vigie_core::sync::read_record::<User>(tx, id))
    }

    fn add_user(&self, user: &User) -> Result<User> {
        let author = crate::ADMIN_AUTHOR;
        self.storage().in_transaction(&mut |tx| {
            let reference = tx.reference()?;
            vigie_core::sync::create_record(tx, &self.actor, author, &reference, user)
        })
    }

    fn sync(
        &self,
        who: &Principal,
        request: &[u8],
        limits: &HubLimits,
    ) -> std::result::Result<Vec<u8>, HubError> {
        let certifier = self.certifier();
        vigie_core::sync::handle_certified_sync(
            &mut self.storage(),
            who,
            request,
            limits,
            Some(&certifier),
        )
    }

    fn attachment(
        &self,
        who: &Principal,
        request: &[u8],
        limits: &HubLimits,
    ) -> std::result::Result<Vec<u8>, HubError> {
        vigie_core::sync::handle_attachment(&mut self.storage(), who, request, limits)
    }

    fn import_bundle(
        &self,
        bytes: &[u8],
        limits: &HubLimits,
    ) -> std::result::Result<vigie_core::sync::HubBundleReport, HubError> {
        let certifier = vigie_core::sync::Certifier {
            key: &self.key,
            registry: self,
        };
        vigie_core::sync::import_hub_bundle(
            &mut self.storage(),
            &certifier,
            &|certificate| crate::backend::bundle_exporter(self, self, certificate),
            bytes,
            limits,
        )
    }

    fn erase(&self, by: Uuid, record: Uuid) -> Result<vigie_core::sync::ErasedRecords> {
        // PostgreSQL keeps deleted rows (sealed under the hub's key) until their space is
        // reused, and its WAL until recycled: README says what completes an erasure there.
        crate::backend::erase_in(&mut self.storage(), by, record)
    }

    fn quarantined(&self) -> Result<Vec<QuarantineView>> {
        crate::backend::quarantined_in(&mut self.storage())
    }

    fn received_times(&self, id: Uuid) -> Result<HashMap<ChangeHash, i64>> {
        crate::backend::received_in(&mut self.storage(), id)
    }

    fn erasures(&self) -> Result<Vec<(Uuid, i64)>> {
        self.storage().in_transaction(&mut |tx| tx.erasures())
    }

    fn review_quarantined(&self, entry: i64, accept: bool, by: Option<Uuid>) -> Result<bool> {
        let reference = self.reference()?;
        let actor = self.actor.clone();
        let revoked = crate::backend::revoked_devices(self)?;
        crate::backend::review_in(
            &mut self.storage(),
            &actor,
            &reference,
            (entry, accept, by),
            &revoked,
        )
    }

    fn users(&self) -> Result<Vec<User>> {
        let mut client = self.client()?;
        let rows = client
            .query(
                "SELECT id, doc FROM records WHERE kind = $1 ORDER BY id",
                &[&(RecordKind::User as i16)],
            )
            .map_err(storage_error)?;
        rows.into_iter()
            .map(|row| {
                let id: Uuid = row.get(0);
                doc::read_stored::<User>(id, self.sealer.open(Sealed::Document, id, row.get(1))?)
            })
            .collect()
    }

    fn deactivate_user(&self, user: Uuid) -> Result<bool> {
        let reference = self.reference()?;
        let (before, after) =
            crate::backend::deactivate_in(&mut self.storage(), &self.actor, &reference, user)?;
        crate::backend::recertify(&self.certifier(), &after)?;
        Ok(before.active)
    }

    fn change_user(
        &self,
        user: Uuid,
        change: &dyn Fn(&mut User) -> Result<()>,
    ) -> Result<(User, User)> {
        let reference = self.reference()?;
        let (before, after) = crate::backend::change_user_in(
            &mut self.storage(),
            &self.actor,
            &reference,
            user,
            change,
        )?;
        crate::backend::recertify(&self.certifier(), &after)?;
        Ok((before, after))
    }

    fn set_user_areas(&self, user: Uuid, areas: &[String]) -> Result<User> {
        let reference = self.reference()?;
        let after = crate::backend::set_areas_in(
            &mut self.storage(),
            &self.actor,
            &reference,
            user,
            areas,
        )?;
        crate::backend::recertify(&self.certifier(), &after)?;
        Ok(after)
    }

    fn reference(&self) -> Result<Arc<ReferenceData>> {
        self.storage().in_transaction(&mut |tx| tx.reference())
    }

    fn publish_references(&self, files: &[ReferenceFile]) -> Result<Vec<u32>> {
        let author = crate::ADMIN_AUTHOR;
        let files: Vec<(&str, &ReferenceContent)> = files
            .iter()
            .map(|file| (file.key.as_str(), &file.content))
            .collect();
        self.storage().in_transaction(&mut |tx| {
            vigie_core::sync::publish_references(tx, &self.actor, author, &files)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every session of the hub's is bounded; bounds the database URL gives are its own.
    #[test]
    fn sessions_are_bounded_unless_the_url_bounds_them() {
        let mut config: postgres::Config = "postgres://vigie@127.0.0.1/hub".parse().unwrap();
        with_session_bounds(&mut config);
        assert_eq!(config.get_options(), Some("-c lock_timeout=20s"));
        let mut config: postgres::Config =
            "postgres://vigie@127.0.0.1/hub?options=-c%20lock_timeout%3D2s"
                .parse()
                .unwrap();
        with_session_bounds(&mut config);
        assert_eq!(config.get_options(), Some("-c lock_timeout=2s"));
        // Another setting that only contains the name is not it.
        let mut config: postgres::Config =
            "postgres://vigie@127.0.0.1/hub?options=-c%20deadlock_timeout%3D2s"
                .parse()
                .unwrap();
        with_session_bounds(&mut config);
        assert_eq!(
            config.get_options(),
            Some("-c deadlock_timeout=2s -c lock_timeout=20s")
        );
    }

    /// A database of its own on the test scripts' PostgreSQL server (started if needed), and
    /// that server's URL, to drop it.
    fn fresh_database() -> (String, String, String) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/postgres.sh");
        let out = std::process::Command::new(script)
            .arg("url")
            .output()
            .expect("run scripts/postgres.sh");
        assert!(out.status.success(), "scripts/postgres.sh url failed");
        let server = String::from_utf8(out.stdout)
            .expect("utf-8")
            .trim()
            .to_string();
        let name = format!("vigie_statements_{}", Uuid::new_v4().simple());
        let mut client = postgres::Client::connect(&server, NoTls).expect("connect");
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create the database");
        let url = format!("{}/{name}", server.trim_end_matches("/postgres"));
        (server, name, url)
    }

    /// A database of its own as schema `version` left it (empty: the hooks' lines are comments
    /// there), the hub's sealer for the upgrade, and a client on it.
    fn database_at_schema(version: usize) -> (String, String, Sealer, postgres::Client) {
        let (server, name, url) = fresh_database();
        let mut client = postgres::Client::connect(&url, NoTls).expect("connect");
        for migration in &MIGRATIONS[..version] {
            client.batch_execute(migration).expect("an older migration");
        }
        client
            .execute(
                "INSERT INTO vigie_meta (key, value) VALUES ('schema_version', $1)",
                &[&version.to_string()],
            )
            .expect("the schema's version");
        let sealer = Sealer::new(&crate::hub_key::HubKey([3; 32]));
        (server, name, sealer, client)
    }

    fn drop_database(server: &str, name: &str) {
        postgres::Client::connect(server, NoTls)
            .expect("connect")
            .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .expect("drop the database");
    }

    /// A dump of schema 15 restored with `pg_restore --clean` over a database of schema 16
    /// leaves 016's table beside schema version 15: the upgrade says so, and what to do,
    /// rather than fail on the table as "PostgreSQL error 42P07".
    #[test]
    fn tables_a_restore_left_from_a_newer_schema_are_named_as_such() {
        let (server, name, sealer, mut client) = database_at_schema(15);
        client
            .batch_execute("CREATE TABLE refused_changes (hash BYTEA PRIMARY KEY)")
            .expect("a table of 16");
        let e = migrate(&mut client, &sealer).expect_err("tables of a newer schema");
        assert!(
            matches!(e, ConnectError::LeftoverTables { found: 15 }),
            "{e}"
        );
        assert!(e.to_string().contains("new, empty database"), "{e}");
        assert!(!e.to_string().contains("  "), "{e}");
        let version: String = client
            .query_one(
                "SELECT value FROM vigie_meta WHERE key = 'schema_version'",
                &[],
            )
            .expect("the version")
            .get(0);
        assert_eq!(version, "15", "nothing written");
        drop(client);
        drop_database(&server, &name);
    }

    /// Schema 14 kept console sign-in names, and the throttle's keys, in clear: an upgrade seals
    /// the names, hashes the keys, and leaves neither in the tables.
    #[test]
    fn an_upgrade_from_schema_14_seals_the_consoles_sign_in_names() {
        let (server, name, sealer, mut client) = database_at_schema(14);
        let user = Uuid::new_v4();
        client
            .batch_execute(&format!(
                "INSERT INTO console_accounts (user_id, login, password_hash)
                     VALUES ('{user}', 'awa.kone', 'argon2-hash');
                 INSERT INTO console_failures (key, failures, last_ms)
                     VALUES ('account:awa.kone', 3, 1000), ('address:192.0.2.7', 1, 1000);"
            ))
            .expect("schema 14's rows");

        migrate(&mut client, &sealer).expect("the upgrade");

        let row = client
            .query_one(
                "SELECT login_h, login_sealed, password_hash FROM console_accounts",
                &[],
            )
            .expect("the account");
        assert_eq!(
            row.get::<_, Vec<u8>>(0),
            sealer.lookup_hash("sign-in name", "awa.kone")
        );
        let sealed: Vec<u8> = row.get(1);
        assert_eq!(
            sealer.open(Sealed::SignInName, user, &sealed).unwrap(),
            b"awa.kone"
        );
        assert_eq!(row.get::<_, String>(2), "argon2-hash");
        let failures: i64 = client
            .query_one(
                "SELECT failures FROM console_failures WHERE key = $1",
                &[&throttle_key(&sealer, "account:awa.kone")],
            )
            .expect("the account's count, under its hashed key")
            .get(0);
        assert_eq!(failures, 3);
        let tables: String = client
            .query_one(
                "SELECT string_agg(t::TEXT, ' ') FROM (
                     SELECT a::TEXT AS t FROM console_accounts a
                     UNION ALL SELECT f::TEXT FROM console_failures f) rows",
                &[],
            )
            .expect("the tables as text")
            .get(0);
        for clear in ["awa.kone", "192.0.2.7", "account:", "address:"] {
            assert!(
                !tables.contains(clear),
                "{clear} is still in clear: {tables}"
            );
        }
        let columns: i64 = client
            .query_one(
                "SELECT count(*) FROM information_schema.columns
                 WHERE table_name = 'console_accounts' AND column_name = 'login'",
                &[],
            )
            .expect("the columns")
            .get(0);
        assert_eq!(columns, 0, "the plain column is gone");

        drop(client);
        drop_database(&server, &name);
    }

    /// Schema 17 kept each attachment's key in clear beside its segments: an upgrade seals the
    /// keys, the hub still opens what they seal, and a key in clear is refused afterwards.
    #[test]
    fn an_upgrade_from_schema_17_seals_the_attachments_keys() {
        let (server, name, sealer, mut client) = database_at_schema(17);
        let (id, record) = (Uuid::new_v4(), Uuid::new_v4());
        let key = sealed::new_key();
        let prefix = sealed::new_prefix();
        let segment = sealed::seal_segment(&key, &prefix, id, 0, true, b"consent form").unwrap();
        let insert = |client: &mut postgres::Client, id: Uuid, key: &[u8]| {
            client.execute(
                "INSERT INTO attachments (id, record_id, file_key, prefix, sha256, size)
                 VALUES ($1, $2, $3, $4, $5, 12)",
                &[&id, &record, &key, &&prefix[..], &&[0u8; 32][..]],
            )
        };
        insert(&mut client, id, &key[..]).expect("schema 17's row");
        client
            .execute(
                "INSERT INTO attachment_segments (attachment_id, idx, sealed) VALUES ($1, 0, $2)",
                &[&id, &segment],
            )
            .expect("its segment");

        migrate(&mut client, &sealer).expect("the upgrade");

        let stored: Vec<u8> = client
            .query_one("SELECT file_key FROM attachments WHERE id = $1", &[&id])
            .expect("the row")
            .get(0);
        assert!(
            stored.windows(32).all(|w| w != &key[..]),
            "the key is still in clear"
        );
        let opened = sealer.open(Sealed::FileKey, id, &stored).unwrap();
        assert_eq!(opened, &key[..]);
        assert!(
            sealer
                .open(Sealed::FileKey, Uuid::new_v4(), &stored)
                .is_err(),
            "a sealed key opens only for its own attachment"
        );
        let mut key = sealed::FileKey::default();
        key.copy_from_slice(&opened);
        let plain = sealed::open_segment(&key, &prefix, id, 0, true, &segment).unwrap();
        assert_eq!(&plain[..], b"consent form");
        let e = insert(&mut client, Uuid::new_v4(), &[7u8; 32][..]).expect_err("a key in clear");
        assert_eq!(e.code(), Some(&SqlState::CHECK_VIOLATION));

        drop(client);
        drop_database(&server, &name);
    }

    /// An upgrade waits for the earlier version's hubs to stop: a session naming nothing (as an
    /// earlier `vigie` did) or naming a hub is one; `psql` is not.
    #[test]
    fn an_upgrade_is_refused_while_a_hub_of_the_earlier_version_is_connected() {
        let (server, name, sealer, mut client) = database_at_schema(17);
        let url = format!("{}/{name}", server.trim_end_matches("/postgres"));
        // An earlier hub named no program; a later one names its schema.
        let earlier = postgres::Client::connect(&url, NoTls).expect("an earlier hub's session");
        let named_earlier = postgres::Client::connect(
            &format!("{url}?application_name=vigie%20schema%2017"),
            NoTls,
        )
        .expect("a hub of schema 17 that named itself");
        let e = migrate(&mut client, &sealer).expect_err("a hub still serving");
        assert!(
            matches!(
                e,
                ConnectError::UpgradeWhileServed {
                    found: 17,
                    sessions: 2
                }
            ),
            "{e}"
        );
        drop(named_earlier);
        assert!(e.to_string().contains("stop every earlier"), "{e}");
        drop(earlier);
        // A process of this version starting beside this one is no earlier hub; an operator's
        // psql is none either.
        let named = |name: &str| {
            postgres::Client::connect(&format!("{url}?application_name={name}"), NoTls)
                .expect("a named session")
        };
        let beside = named(&application_name().replace(' ', "%20"));
        let psql = named("psql");
        // The server forgets a closed session a moment after its client does.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            match migrate(&mut client, &sealer) {
                Ok(()) => break,
                Err(ConnectError::UpgradeWhileServed { .. })
                    if std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Err(e) => panic!("{e}"),
            }
        }
        drop((client, psql, beside));
        drop_database(&server, &name);
    }

    fn prepared_on_server(connection: &mut PgConnection, sql: &str) -> i64 {
        connection
            .client
            .query_one(
                "SELECT count(*) FROM pg_prepared_statements WHERE statement = $1",
                &[&sql],
            )
            .expect("pg_prepared_statements")
            .get(0)
    }

    #[test]
    fn a_connection_prepares_each_statement_once_and_again_after_postgresql_refused_it() {
        let (server, name, url) = fresh_database();
        let manager = Manager(url.parse().expect("a URL"));
        let mut connection = r2d2::ManageConnection::connect(&manager).expect("connect");
        let mut other = postgres::Client::connect(&url, NoTls).expect("connect");
        other
            .batch_execute("CREATE TABLE t (a VARCHAR(10)); INSERT INTO t VALUES ('x')")
            .expect("a table");
        let select = "SELECT a FROM t";

        // Run three times, on the connection and in transactions (one rolled back):
        // prepared once, and kept by the session whatever became of the transaction.
        assert_eq!(connection.query(select, &[]).expect("query").len(), 1);
        let mut tx = connection.begin().expect("begin");
        assert_eq!(tx.query(select, &[]).expect("query").len(), 1);
        drop(tx);
        let mut tx = connection.begin_snapshot().expect("begin");
        assert_eq!(tx.query(select, &[]).expect("query").len(), 1);
        tx.commit().expect("commit");
        assert_eq!(prepared_on_server(&mut connection, select), 1);
        assert_eq!(connection.statements.0.len(), 1);

        // Another process changes the type of what the statement returns: PostgreSQL refuses
        // the plan it keeps, once; the statement is then prepared again and runs.
        other
            .batch_execute("ALTER TABLE t ALTER COLUMN a TYPE TEXT")
            .expect("alter");
        let refused = connection.query(select, &[]).expect_err("a stale plan");
        assert_eq!(refused.code(), Some(&SqlState::FEATURE_NOT_SUPPORTED));
        assert!(connection.statements.0.is_empty());
        let rows = connection.query(select, &[]).expect("prepared again");
        assert_eq!(rows[0].get::<_, String>(0), "x");
        assert_eq!(connection.statements.0.len(), 1);

        // A connection keeps at most `CAPACITY` statements.
        for n in 0..Statements::CAPACITY + 10 {
            connection
                .query_one(&format!("SELECT {n}::INT"), &[])
                .expect("query");
        }
        assert!(connection.statements.0.len() <= Statements::CAPACITY);

        drop((connection, other));
        drop_database(&server, &name);
    }

    /// A statement past the database's `statement_timeout` is a database out of reach for a
    /// while (503, try again later), named in the log: it was a bare "error 57014", 500.
    #[test]
    fn a_statement_the_database_cancelled_is_answered_as_one_out_of_reach() {
        let (server, name, url) = fresh_database();
        let mut client = postgres::Client::connect(&url, NoTls).expect("connect");
        client
            .batch_execute("SET statement_timeout = '10ms'")
            .expect("set");
        let e = storage_error(
            client
                .batch_execute("SELECT pg_sleep(1)")
                .expect_err("cancelled"),
        );
        assert!(is_unreachable(&e), "{e}");
        assert!(e.to_string().contains("statement_timeout"), "{e}");
        drop(client);
        drop_database(&server, &name);
    }

    /// A session its administrator ended (or a server shutting down) is said so, and is a
    /// database out of reach for a while: the log said the server "refused" a connection.
    #[test]
    fn a_session_the_server_ended_is_said_so() {
        let (server, name, url) = fresh_database();
        let mut admin = postgres::Client::connect(&server, NoTls).expect("connect");
        // Ended from another session while idle: its next statement reads the server's
        // message (a session ending itself may see its socket close before the message).
        let ended = (0..5)
            .find_map(|_| {
                let mut client = postgres::Client::connect(&url, NoTls).expect("connect");
                admin
                    .batch_execute(&format!(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                         WHERE datname = '{name}' AND pid <> pg_backend_pid()"
                    ))
                    .expect("terminate");
                std::thread::sleep(std::time::Duration::from_millis(100));
                let e = client.batch_execute("SELECT 1").expect_err("terminated");
                e.code().is_some().then_some(e)
            })
            .expect("the server's message read");
        let config: postgres::Config = url.parse().expect("url");
        let said = connect_failure(&config, &ended);
        assert!(
            said.contains("its administrator ended the session"),
            "{said}"
        );
        let e = storage_error(ended);
        assert!(is_unreachable(&e), "{e}");
        assert!(e.to_string().contains("57P01"), "{e}");
        admin
            .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .expect("drop the database");
    }
}

#[cfg(test)]
mod views {
    use super::*;

    #[test]
    fn a_dead_process_s_console_copy_is_removed_and_a_live_one_s_kept() {
        let dead = std::env::temp_dir().join(format!("{VIEW_PREFIX}4294967294-test"));
        let live = std::env::temp_dir().join(format!(
            "{VIEW_PREFIX}{}-test-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        for dir in [&dead, &live] {
            std::fs::create_dir_all(dir).unwrap();
            std::fs::write(dir.join("console.db"), b"sealed").unwrap();
        }
        remove_dead_views();
        assert!(!dead.exists());
        assert!(live.join("console.db").exists());
        std::fs::remove_dir_all(&live).unwrap();
    }
}
