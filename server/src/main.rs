//! `vigie`: run a hub, administer its users and devices, and sync a store with a hub.

use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;
use vigie_core::sync::{HubLimits, Refusal, RefusalDetail, SyncOptions};
use vigie_core::{
    AreaLevel, AttachmentLimits, Encryption, ExportFormat, ExportOptions, ReferenceFile,
    ReferenceType, Role, Store, StoreConfig, User, ValidationError,
};
use vigie_server::Database;
use vigie_server::auth::{AuthError, Token};
use vigie_server::backend::Backend;
use vigie_server::client::HubClient;
use vigie_server::console::{COMMAND_LINE, from_command_line};
use vigie_server::console::{ERASE_REASONS, erase_journaled};
use vigie_server::http::HttpLimits;

#[derive(Parser)]
#[command(name = "vigie", version, about = "Vigie hub and tools")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the hub's data is, for every command that reads or writes it.
#[derive(Args)]
struct HubData {
    #[arg(long, default_value = "vigie-data")]
    data: PathBuf,
    /// PostgreSQL (`postgres://user@host:port/db`) instead of the embedded store in `--data`.
    #[arg(long, env = "VIGIE_DATABASE", hide_env_values = true)]
    database: Option<String>,
    /// 64 hex digits: the hub's key. Without it, the key file is read (made, for a new hub, by
    /// `serve`, `reference publish` and `user add` only).
    #[arg(long, env = "VIGIE_HUB_KEY", hide_env_values = true)]
    key_hex: Option<String>,
    /// The hub's key file [default: `<data>-key/hub.key`, beside the data directory]. A new hub
    /// writes its new key there (owner-only); back it up: without it the hub cannot be read.
    #[arg(long, env = "VIGIE_HUB_KEY_FILE", hide_env_values = true)]
    key_file: Option<PathBuf>,
    /// Keep the embedded hub unencrypted (no key): only for a disk protected otherwise, or a
    /// hub made unencrypted before.
    #[arg(long)]
    unencrypted: bool,
}

impl HubData {
    fn database(&self) -> Result<Database, String> {
        let key = vigie_server::hub_key::KeyOptions {
            key_hex: self.key_hex.clone(),
            key_file: self.key_file.clone(),
            unencrypted: self.unencrypted,
        };
        Database::choose(self.database.as_deref(), &self.data, key).map_err(|e| e.to_string())
    }

    /// The hub's storage, for an administration command on an existing hub.
    fn open(&self) -> Result<Box<dyn Backend>, String> {
        self.database()?.open_existing().map_err(|e| e.to_string())
    }

    /// The hub's storage, made if there is none yet: for the commands that set a hub up.
    fn open_or_create(&self) -> Result<Box<dyn Backend>, String> {
        self.database()?.open().map_err(|e| e.to_string())
    }
}

/// Refuses an erasure or a revocation on a copy of a hub opened with its key (a backup looked
/// into): the journal beside the key is that hub's, which does again at its next start what
/// the journal holds (`irreversible::kept_for_another`).
fn refuse_on_a_copy(hub: &HubData) -> Result<(), String> {
    match vigie_server::irreversible::kept_for_another(&hub.database()?) {
        Some(home) => Err(format!(
            "this key's journal of irreversible actions is kept for the hub {home}, and this is \
             another copy of it (a backup looked into): erase and revoke on that hub, which \
             would do again at its next start what is done here (a hub restored or moved \
             here once that directory is gone is named the journal's by its first `vigie \
             serve` here)"
        )),
        None => Ok(()),
    }
}

/// A count or a duration that 0 would make meaningless: refused with clap's own message
/// rather than quietly raised to 1.
fn at_least_one<T>() -> clap::builder::RangedU64ValueParser<T>
where
    T: TryFrom<u64> + Clone + Send + Sync + 'static,
    <T as TryFrom<u64>>::Error: std::error::Error + Send + Sync + 'static,
{
    clap::builder::RangedU64ValueParser::<T>::new().range(1..)
}

#[derive(Subcommand)]
enum Command {
    /// Serve sync over HTTP, on the embedded SQLite store or on PostgreSQL.
    Serve {
        #[command(flatten)]
        hub: HubData,
        #[arg(long, default_value = "127.0.0.1:8470")]
        listen: String,
        #[command(flatten)]
        http: HttpArgs,
        #[command(flatten)]
        attachments: AttachmentArgs,
        /// The address people open the console at, when it differs from `--listen` (a TLS
        /// proxy: `https://vigie.example.org`); with https, the console's cookies are Secure.
        /// An http:// or https:// URL with a host.
        #[arg(long, env = "VIGIE_PUBLIC_URL", hide_env_values = true,
              value_parser = public_url_arg)]
        public_url: Option<String>,
        /// The map's base layer: a tile URL template (`https://tiles.example/{z}/{x}/{y}.png`).
        /// None by default: the map draws points over the area outlines, and no request
        /// leaves the hub's network.
        #[arg(long, env = "VIGIE_TILE_URL", hide_env_values = true, value_parser = tile_url_arg)]
        tile_url: Option<String>,
        /// The hub is reached only through one reverse proxy (TLS) that adds each client's
        /// address to `X-Forwarded-For`: the console counts failed sign-ins by that address, not
        /// the proxy's, which everyone shares. Never when clients can reach the hub directly:
        /// they could name any address.
        #[arg(long, env = "VIGIE_BEHIND_PROXY")]
        behind_proxy: bool,
        /// TLS on the hub's own listener: its certificate chain, PEM (the hub's certificate
        /// first, then the intermediates), read again when the file changes (a renewal needs
        /// no restart). With --tls-key.
        #[arg(long, env = "VIGIE_TLS_CERT", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The certificate's private key, PEM (PKCS#8, PKCS#1 or SEC1). With --tls-cert.
        #[arg(long, env = "VIGIE_TLS_KEY", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Serve in clear on an address other than the machine's loopback, with neither TLS
        /// nor a TLS proxy in front: records and tokens cross the network readable by anyone
        /// on it. Only for a closed network of your own (a training's demo hub).
        #[arg(long, env = "VIGIE_ALLOW_CLEARTEXT")]
        allow_cleartext: bool,
        /// Changes the hub takes from one device in an hour (at most an hour's worth at once):
        /// its pushes past that wait, its pulls go on. A district's 15,000 records are some
        /// 45,000 changes.
        #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
        max_device_changes_per_hour: u64,
        /// Bytes of changes the hub takes from one device in an hour, likewise (a change may
        /// carry a long note: a thousand of them were 24 MB, which every phone of the area
        /// then downloads). A district's 15,000 records are some 12 MB.
        #[arg(long, default_value_t = 32 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(1024..))]
        max_device_bytes_per_hour: u64,
        /// Bytes of attachments (photos, documents, voice notes) the hub takes from one device
        /// in an hour, likewise: past that the hub takes no chunk, and the device leaves its
        /// uploads for a later session. Some 500 photos as a capture re-encodes them.
        #[arg(long, default_value_t = 128 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(4 * 1024 * 1024..))]
        max_device_attachment_bytes_per_hour: u64,
    },
    /// The supervisors' web console (served by `vigie serve` under /console/).
    Console {
        #[command(subcommand)]
        command: ConsoleCommand,
    },
    /// Manage users (their role and areas decide what their devices receive).
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Enrol, list, revoke and reissue devices.
    Device {
        #[command(subcommand)]
        command: DeviceCommand,
    },
    /// Sync a device store with a hub.
    Sync {
        /// The hub's address: an http:// or https:// URL with a host.
        #[arg(long, value_parser = hub_url_arg)]
        hub: String,
        /// The device store to sync (made, with its key, at the first sync).
        #[arg(long)]
        store: PathBuf,
        /// The enrolment token given by `vigie device enrol`.
        #[arg(long, env = "VIGIE_TOKEN", hide_env_values = true)]
        token: String,
        /// 64 hex digits: the store's key. Without it, the key is in `<store>.key` (made,
        /// owner-only, with a new store): a store holds children's records.
        #[arg(
            long,
            env = "VIGIE_STORE_KEY",
            hide_env_values = true,
            conflicts_with = "unencrypted"
        )]
        key_hex: Option<String>,
        /// An unencrypted store (tools and tests only: its file holds names in clear).
        #[arg(long)]
        unencrypted: bool,
        #[arg(long, default_value_t = 256 * 1024)]
        max_message_bytes: usize,
        /// The certificate authority (PEM) that signed the hub's TLS certificate, when it is
        /// not a public one (a ministry's own, or the hub's self-signed certificate): only it
        /// is trusted for this hub.
        #[arg(long)]
        ca: Option<PathBuf>,
        /// Sync over http:// with a hub other than this machine's own: the records and the
        /// token cross the network readable by anyone on it. Only on a closed network.
        #[arg(long)]
        allow_cleartext: bool,
    },
    /// Erase a child case everywhere: on the hub now, on every device at its next sync, and a
    /// tombstone stops any old copy from coming back. The duplicates merged into it (the same
    /// child registered again) are erased with it. `--by` is the supervisor who decided it;
    /// the erasure is journaled with `--reason` (as the console's journal shows them).
    Erase {
        #[command(flatten)]
        hub: HubData,
        /// The child case to erase (its id).
        #[arg(long)]
        record: Uuid,
        /// The supervisor who asks for the erasure (a user id): their areas must hold the case.
        #[arg(long)]
        by: Uuid,
        #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(ERASE_REASONS))]
        reason: String,
    },
    /// The console's audit journal, one JSON line per entry, newest first: seq, at (the hub's
    /// clock, UTC), user (an id; none for the command line), action, record, detail (codes
    /// only). For an auditor, and for a copy kept outside the hub.
    Audit {
        #[command(flatten)]
        hub: HubData,
        /// Only the entries about this record (a case, a visit, a device, a user).
        #[arg(long)]
        record: Option<Uuid>,
        /// Only the entries of this user's actions.
        #[arg(long)]
        user: Option<Uuid>,
        /// Only the entries from this day on (YYYY-MM-DD, UTC).
        #[arg(long)]
        since: Option<chrono::NaiveDate>,
    },
    /// Copy a running embedded hub (both its files, from one moment, still encrypted; not its
    /// key) into a new directory. A PostgreSQL hub is backed up with pg_dump.
    Backup {
        #[command(flatten)]
        hub: HubData,
        /// A new (or empty) directory.
        #[arg(long)]
        out: PathBuf,
    },
    /// Publish reference data (area trees, country profiles, checklists, sectors, referral
    /// directories); devices receive it at their next sync.
    Reference {
        #[command(subcommand)]
        command: ReferenceCommand,
    },
    /// Review changes kept from users who lost a record's area.
    Quarantine {
        #[command(subcommand)]
        command: QuarantineCommand,
    },
    /// Import a bundle a device sealed to the hub (its records carried in a file, from a
    /// phone that could not reach the hub): each record is judged as that device's own push
    /// (scope, authorship, workflow, erasure), and stored or refused on its own.
    Bundle {
        #[command(subcommand)]
        command: BundleCommand,
    },
    /// Export the hub's records for analysis, one file per record kind, pseudonymised unless
    /// `--personal` (names, dates of birth, coordinates, contacts and free text).
    Export {
        #[command(flatten)]
        hub: HubData,
        /// A new (or empty) directory, outside the data directory and the key's.
        #[arg(long)]
        out: PathBuf,
        #[arg(long, value_enum, default_value = "csv")]
        format: FormatArg,
        /// Include personal data (run by the hub's administrator, acting as a supervisor).
        #[arg(long)]
        personal: bool,
        /// The user the export is made for: it holds what their role and areas receive, as
        /// the console's downloads do (named in the audit journal; with --personal, an active
        /// supervisor). Without it, the whole hub.
        #[arg(long)]
        by: Option<Uuid>,
    },
}

/// Bounds on connections and requests (defaults in `HttpLimits`).
#[derive(Args)]
struct HttpArgs {
    /// Connections open at once; past it, the one idle the longest is closed.
    #[arg(long, default_value_t = HttpLimits::default().max_connections,
          value_parser = at_least_one::<usize>())]
    max_connections: usize,
    /// Requests of one device served at once; more get 429.
    #[arg(long, default_value_t = HttpLimits::default().max_requests_per_device,
          value_parser = at_least_one::<usize>())]
    max_requests_per_device: usize,
    /// Requests of one user's devices served at once, together; more wait their turn up to
    /// 10 s, then get 429.
    #[arg(long, default_value_t = HttpLimits::default().max_requests_per_user,
          value_parser = at_least_one::<usize>())]
    max_requests_per_user: usize,
    /// Milliseconds a request's headers may take to arrive (and an idle connection is kept).
    #[arg(long, default_value_t = HttpLimits::default().header_timeout.as_millis() as u64,
          value_parser = at_least_one::<u64>())]
    header_timeout_ms: u64,
    /// Milliseconds a body may take to start arriving; then one more second per 256 bytes.
    #[arg(long, default_value_t = HttpLimits::default().body_timeout.as_millis() as u64,
          value_parser = at_least_one::<u64>())]
    body_timeout_ms: u64,
    /// Milliseconds a connection may go without its client taking a byte of an answer.
    #[arg(long, default_value_t = HttpLimits::default().send_timeout.as_millis() as u64,
          value_parser = at_least_one::<u64>())]
    send_timeout_ms: u64,
}

impl HttpArgs {
    fn limits(&self) -> HttpLimits {
        HttpLimits {
            max_connections: self.max_connections,
            max_requests_per_device: self.max_requests_per_device,
            max_requests_per_user: self.max_requests_per_user,
            header_timeout: Duration::from_millis(self.header_timeout_ms),
            body_timeout: Duration::from_millis(self.body_timeout_ms),
            send_timeout: Duration::from_millis(self.send_timeout_ms),
            ..HttpLimits::default()
        }
    }
}

/// The limits on attachments the hub applies and publishes to devices in every sync response.
#[derive(Args)]
struct AttachmentArgs {
    /// Bytes of one attachment (as stored: a photo after its re-encoding); larger is refused
    /// with 413.
    #[arg(long, default_value_t = AttachmentLimits::default().max_file_bytes,
          value_parser = at_least_one::<u64>())]
    max_attachment_bytes: u64,
    /// Bytes of all the attachments of one record: at least `--max-attachment-bytes`.
    #[arg(long, default_value_t = AttachmentLimits::default().max_record_bytes,
          value_parser = at_least_one::<u64>())]
    max_record_attachment_bytes: u64,
    /// Attachments of one record.
    #[arg(long, default_value_t = AttachmentLimits::default().max_per_record)]
    max_attachments_per_record: u32,
    /// A photo's longest side, in pixels, after capture on the phone.
    #[arg(long, default_value_t = AttachmentLimits::default().photo_max_side,
          value_parser = at_least_one::<u32>())]
    photo_max_side: u32,
}

impl AttachmentArgs {
    fn limits(&self) -> Result<AttachmentLimits, String> {
        // A record's attachments together may not hold less than one attachment may: every
        // attachment as large as allowed would be refused for its record.
        if self.max_record_attachment_bytes < self.max_attachment_bytes {
            return Err(format!(
                "--max-record-attachment-bytes ({}) is less than --max-attachment-bytes ({}): a record's attachments together may hold at least one attachment",
                self.max_record_attachment_bytes, self.max_attachment_bytes
            ));
        }
        Ok(AttachmentLimits {
            max_file_bytes: self.max_attachment_bytes,
            max_record_bytes: self.max_record_attachment_bytes,
            max_per_record: self.max_attachments_per_record,
            photo_max_side: self.photo_max_side,
        })
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    Csv,
    Json,
    /// CSV for Excel in French and other comma-decimal locales: `;` between cells, decimal
    /// commas, UTF-8 marked.
    Excel,
}

#[derive(Subcommand)]
enum UserCommand {
    /// One JSON line per user: id, name, role, areas, active (names are staff's, shown only
    /// here, never logged).
    List {
        #[command(flatten)]
        hub: HubData,
    },
    /// Deactivate a user: at its next sync each of their devices pushes what it has (kept for
    /// review), then holds nothing of the hub's any more and has nothing stored.
    Deactivate {
        #[command(flatten)]
        hub: HubData,
        /// The user (an id, from `vigie user list`).
        #[arg(long)]
        user: Uuid,
    },
    /// Replace a user's areas (records of areas they lose leave their devices). Each code
    /// must be named by a published area tree.
    Areas {
        #[command(flatten)]
        hub: HubData,
        /// The user (an id, from `vigie user list`).
        #[arg(long)]
        user: Uuid,
        /// An area code (repeat for several).
        #[arg(
            long = "area",
            required_unless_present = "none",
            conflicts_with = "none"
        )]
        areas: Vec<String>,
        /// Take every area away: their devices keep no record (what they send is kept for
        /// review).
        #[arg(long)]
        none: bool,
    },
    /// Give a user a new role (what they may do, and whether they use the console); their
    /// devices learn it at their next sync. An administrator has no area: take them away
    /// first (`user areas --none`).
    Role {
        #[command(flatten)]
        hub: HubData,
        /// The user (an id, from `vigie user list`).
        #[arg(long)]
        user: Uuid,
        #[arg(long, value_enum)]
        role: RoleArg,
    },
    /// Correct a user's name (misspelt, or changed by marriage): their records, devices and
    /// history stay theirs (they are known by id); their devices learn it at their next sync.
    Rename {
        #[command(flatten)]
        hub: HubData,
        /// The user (an id, from `vigie user list`).
        #[arg(long)]
        user: Uuid,
        /// The name as it should read (1 to 120 characters, on one line).
        #[arg(long)]
        name: String,
    },
    /// Give every child case assigned to a user (`identified_by`: whose due lists and
    /// alerts it fills) to another, who takes over their work (a monitor who left or moved).
    /// A case outside the successor's role and areas stays, and is listed. Prints one JSON
    /// line: from, to, how many cases were handed over, and those kept with why.
    HandOver {
        #[command(flatten)]
        hub: HubData,
        /// The user whose cases are handed over (an id, from `vigie user list`).
        #[arg(long)]
        from: Uuid,
        /// The user who takes them over.
        #[arg(long)]
        to: Uuid,
    },
    /// Make a deactivated user active again, with the role and areas they had: their devices
    /// (unless revoked) receive their areas' records again at their next sync.
    Reactivate {
        #[command(flatten)]
        hub: HubData,
        /// The user (an id, from `vigie user list`).
        #[arg(long)]
        user: Uuid,
    },
    /// Add a user with a role and areas; prints the new user's id (a new hub is set up here).
    /// Each area must be named by a published area tree (`vigie reference publish` first).
    Add {
        #[command(flatten)]
        hub: HubData,
        /// 1 to 120 characters, on one line.
        #[arg(long)]
        name: String,
        #[arg(long, value_enum)]
        role: RoleArg,
        /// An area code (repeat for several); an administrator has none.
        #[arg(long = "area")]
        areas: Vec<String>,
    },
}

#[derive(Subcommand)]
enum ConsoleCommand {
    /// Prints a one-time link where the user chooses their console sign-in name and password
    /// (valid 72 hours, once; a new link replaces the one made before). Supervisors and
    /// administrators only.
    Invite {
        #[command(flatten)]
        hub: HubData,
        /// The user (an id, from `vigie user list`).
        #[arg(long)]
        user: Uuid,
        /// The console's address as people open it (an http:// or https:// URL with a host):
        /// what `serve --public-url` says, else http:// and serve's --listen address. The link
        /// is built from it alone [default: http://127.0.0.1:8470, serve's default --listen],
        /// and is only as right as it.
        #[arg(long, env = "VIGIE_PUBLIC_URL", value_parser = public_url_arg)]
        public_url: Option<String>,
    },
}

#[derive(Subcommand)]
enum ReferenceCommand {
    /// Publish each FILE as the next version of its document: JSON holding the key and one
    /// content named by its type, e.g. `{"key": "CI", "administrative_areas": {"code": "CI",
    /// "labels": {"fr": "..."}, "children": [...]}}` (reference/areas-CI.json is a sample area
    /// tree). Prints one JSON line per file: type, key, version. A file that does not parse or
    /// validate stops the command before anything is published.
    Publish {
        #[command(flatten)]
        hub: HubData,
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// File every record held under a community code again where the area tree in force puts
    /// that community (after it moved to another district or region), or under `--to` (after
    /// it took another code, or merged into another): devices whose areas no longer cover
    /// those records let them go at their next sync, and those whose areas do receive them.
    /// Prints one JSON line: the community, where its records are filed now, how many moved.
    Refile {
        #[command(flatten)]
        hub: HubData,
        /// The community code the records are filed under.
        #[arg(long)]
        community: String,
        /// The community of the tree in force to file them under (default: `--community`).
        #[arg(long)]
        to: Option<String>,
    },
    /// One JSON line per reference document the hub holds: type, key, versions (built in or
    /// published), in_force (the version devices receive), and for an area tree the number of
    /// areas of each level.
    List {
        #[command(flatten)]
        hub: HubData,
    },
}

#[derive(Subcommand)]
enum BundleCommand {
    /// Import one bundle file (`Recipient::Hub`). Exits with an error when the bundle does not
    /// open (not sealed to this hub, altered, from a revoked device or one reissued since) or
    /// when a record of it was refused (each is listed, with why); a record the hub holds
    /// already counts as held.
    Import {
        #[command(flatten)]
        hub: HubData,
        /// The bundle file.
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum QuarantineCommand {
    /// One JSON line per entry: entry, record, kind, device, device_revoked (a lost phone's
    /// work), user (who sent it), received (RFC 3339, as the other listings) and received_ms,
    /// bytes, state (applies, already_in, breaks_a_rule, record_gone, does_not_apply), fields (the
    /// record's fields the changes would change), area_before, area_after, filed_at (where
    /// accepting files it, when its community moved or was renamed since), community_gone and
    /// refiled_to (its community no tree holds any more, and where `vigie reference refile`
    /// sent its records), authors (user and device each change names), attachments_added and
    /// attachments_removed (id, kind, media_type and size of each: never a caption),
    /// status_after (a visit's status once accepted) and case_code (a child case's code, to find
    /// it on the console). No other value of the record: no name, no text typed.
    List {
        #[command(flatten)]
        hub: HubData,
    },
    /// Merge an entry's changes into its record. They must pass the rules a push passes (kind,
    /// validation, scope): with `--by`, the record must be in that supervisor's areas before and
    /// after; without, the changes may not move the record to another community.
    Accept {
        #[command(flatten)]
        hub: HubData,
        /// The quarantine entry (its number, from `vigie quarantine list`).
        #[arg(long)]
        entry: i64,
        /// The supervisor who reviewed the entry.
        #[arg(long)]
        by: Option<Uuid>,
    },
    /// Drop an entry: its changes are never taken, from its author's device nor from any
    /// other that relays them. With `--by`, that supervisor's areas must hold the record
    /// (before or after the changes), and the audit log names them.
    Reject {
        #[command(flatten)]
        hub: HubData,
        /// The quarantine entry (its number, from `vigie quarantine list`).
        #[arg(long)]
        entry: i64,
        /// The supervisor who reviewed the entry.
        #[arg(long)]
        by: Option<Uuid>,
    },
}

#[derive(Subcommand)]
enum DeviceCommand {
    /// Enrol a device for a user; prints its token once.
    Enrol {
        #[command(flatten)]
        hub: HubData,
        /// The user (an id, from `vigie user list`).
        #[arg(long)]
        user: Uuid,
        /// Also draw the token as a QR code in the terminal, for the phone's app to scan.
        #[arg(long)]
        qr: bool,
    },
    /// Revoke a device: its next contact is refused (403) and told to wipe its data.
    Revoke {
        #[command(flatten)]
        hub: HubData,
        /// The device (an id, from `vigie device list`).
        #[arg(long)]
        device: Uuid,
    },
    /// One JSON line per device: device, user, enrolled, last_seen, revoked,
    /// token_unused_until (a token not used by then is refused; RFC 3339 or null).
    List {
        #[command(flatten)]
        hub: HubData,
    },
    /// Give a device a new token (printed once): the old one stops working at once, and the
    /// device keeps its store (or, its profile wiped, starts a new one: the keys it presents
    /// next are certified anew). A bundle the device sealed to the hub before is refused from
    /// then on: import it first (`vigie bundle import`).
    Reissue {
        #[command(flatten)]
        hub: HubData,
        /// The device (an id, from `vigie device list`).
        #[arg(long)]
        device: Uuid,
        /// Also draw the token as a QR code in the terminal, for the phone's app to scan.
        #[arg(long)]
        qr: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum RoleArg {
    Inspector,
    CommunityMonitor,
    Supervisor,
    /// Users, devices and reference data in the console; no field record.
    Administrator,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::Inspector => Role::Inspector,
            RoleArg::CommunityMonitor => Role::CommunityMonitor,
            RoleArg::Supervisor => Role::Supervisor,
            RoleArg::Administrator => Role::Administrator,
        }
    }
}

/// A role as the command line names it (`--role`).
fn role_name(role: Role) -> String {
    let arg = match role {
        Role::Inspector => RoleArg::Inspector,
        Role::CommunityMonitor => RoleArg::CommunityMonitor,
        Role::Supervisor => RoleArg::Supervisor,
        Role::Administrator => RoleArg::Administrator,
    };
    arg.to_possible_value()
        .map(|v| v.get_name().to_string())
        .unwrap_or_default()
}

fn encryption(key_hex: Option<&str>) -> Result<Encryption, String> {
    let Some(hex) = key_hex else {
        return Ok(Encryption::Unencrypted);
    };
    if hex.len() != 64 {
        return Err("a key is 64 hex digits".into());
    }
    let mut key = [0u8; 32];
    for (i, b) in key.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
            .map_err(|_| "a key is 64 hex digits".to_string())?;
    }
    Ok(Encryption::Key(key))
}

/// The actions done whose entry the audit log could not take (a disk full between the action
/// and its entry): the command then ends with an error, after saying what it did.
static UNJOURNALED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// `console::journal`, remembering an entry not written (`UNJOURNALED`).
fn journal(
    backend: &dyn Backend,
    who: Option<Uuid>,
    action: &str,
    record: Option<Uuid>,
    detail: &str,
) {
    if !vigie_server::console::journal(backend, who, action, record, detail) {
        missed_entry(action);
    }
}

fn missed_entry(action: &str) {
    let mut missed = UNJOURNALED.lock().unwrap_or_else(|e| e.into_inner());
    missed.push(action.to_string());
}

/// Says when a secret was given on the command line, which every account of the machine reads
/// (`ps`, `/proc/<pid>/cmdline`): a database URL with its password, or the hub's key. The
/// environment (`VIGIE_DATABASE`, `VIGIE_HUB_KEY`) is the process's own. The secret itself is
/// never written.
fn warn_of_secrets_in_arguments(args: impl Iterator<Item = std::ffi::OsString>) {
    for said in secrets_in_arguments(args) {
        eprintln!("vigie: warning: {said}");
    }
}

fn secrets_in_arguments(args: impl Iterator<Item = std::ffi::OsString>) -> Vec<&'static str> {
    let args: Vec<String> = args.map(|a| a.to_string_lossy().into_owned()).collect();
    let mut said = Vec::new();
    let value_of = |name: &str| -> Vec<&str> {
        let mut values = Vec::new();
        for (i, arg) in args.iter().enumerate() {
            if arg == name {
                values.extend(args.get(i + 1).map(String::as_str));
            } else if let Some(value) = arg.strip_prefix(name).and_then(|v| v.strip_prefix('=')) {
                values.push(value);
            }
        }
        values
    };
    // `scheme://user:password@host`: a colon in what comes before the last `@`.
    let with_password = |url: &&str| {
        url.split_once("://")
            .and_then(|(_, rest)| rest.rsplit_once('@'))
            .is_some_and(|(user, _)| user.contains(':'))
    };
    if value_of("--database").iter().any(with_password) {
        said.push(
            "the database password given in --database can be read by every account of this \
             machine (ps): give the URL in VIGIE_DATABASE instead",
        );
    }
    if !value_of("--key-hex").is_empty() {
        said.push(
            "the hub's key given in --key-hex can be read by every account of this machine \
             (ps): give it in VIGIE_HUB_KEY, or keep it in a key file",
        );
    }
    said
}

fn main() -> ExitCode {
    // RUST_LOG chooses, under ceilings that keep libraries' byte dumps out (`logging`).
    vigie_server::logging::init("info");
    warn_of_secrets_in_arguments(std::env::args_os().skip(1));
    let cli = Cli::parse();
    // A file-size limit (`ulimit -f`, systemd's `LimitFSIZE`) reached by a write is then that
    // write's error (the hub refuses the request that met it and serves on; a backup or an
    // export removes what it began), instead of a signal that ends the process mid-write.
    #[cfg(unix)]
    // SAFETY: at the start of main, before any thread: sets one signal's action.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    if matches!(cli.command, Command::Serve { .. }) {
        vigie_server::bound_allocator_arenas();
    } else {
        // A listing piped into `head` ends when the reader stops, as other tools' do, instead
        // of a panic on the closed pipe. Not for `serve`, whose sockets report a closed peer
        // as an error to handle (a signal would end the hub).
        #[cfg(unix)]
        // SAFETY: at the start of main, before any thread: restores the default action.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let done = run(cli);
    let missed = std::mem::take(&mut *UNJOURNALED.lock().unwrap_or_else(|e| e.into_inner()));
    if !missed.is_empty() {
        eprintln!(
            "vigie: done ({}), but the audit log could not take its entry (see above, or the \
             hub's log: a full disk?); note it by hand",
            missed.join(", ")
        );
        if done.is_ok() {
            return ExitCode::FAILURE;
        }
    }
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("vigie: {message}");
            ExitCode::FAILURE
        }
    }
}

/// A device's token as the command line shows it: its text, and with `qr` a QR code drawn in
/// the terminal (dark modules as blocks) that the phone's app scans from the screen, as from
/// the console's devices page: nothing to type or pass around.
/// `vigie audit`: the journal, newest first, a page at a time (a hub's journal keeps every
/// page opened: it is never held whole).
fn audit_journal(
    hub: &HubData,
    record: Option<Uuid>,
    user: Option<Uuid>,
    since: Option<chrono::NaiveDate>,
) -> Result<(), String> {
    let backend = hub.open()?;
    let since_ms = since.map(|day| {
        day.and_time(chrono::NaiveTime::MIN)
            .and_utc()
            .timestamp_millis()
    });
    let mut before = None;
    let mut out = std::io::stdout().lock();
    loop {
        let page = backend
            .console()
            .audit_log(before, 1000)
            .map_err(|e| e.to_string())?;
        let Some((last, _)) = page.last() else {
            return Ok(());
        };
        before = Some(*last);
        for (seq, entry) in page {
            if since_ms.is_some_and(|since| entry.at_ms < since) {
                return Ok(());
            }
            if record.is_some_and(|r| entry.record != Some(r))
                || user.is_some_and(|u| entry.user != Some(u))
            {
                continue;
            }
            let at = chrono::DateTime::from_timestamp_millis(entry.at_ms)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
            let line = serde_json::json!({
                "seq": seq,
                "at": at,
                "user": entry.user,
                "action": entry.action,
                "record": entry.record,
                "detail": entry.detail,
            });
            use std::io::Write;
            writeln!(out, "{line}").map_err(|e| e.to_string())?;
        }
    }
}

fn print_token(text: &str, qr: bool) {
    println!("{text}");
    if qr {
        match qrcode::QrCode::new(text.as_bytes()) {
            Ok(code) => println!(
                "{}",
                code.render::<qrcode::render::unicode::Dense1x2>()
                    .dark_color(qrcode::render::unicode::Dense1x2::Light)
                    .light_color(qrcode::render::unicode::Dense1x2::Dark)
                    .quiet_zone(true)
                    .build()
            ),
            Err(e) => eprintln!("the token does not fit a QR code: {e}"),
        }
    }
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Serve {
            hub,
            listen,
            http,
            public_url,
            tile_url,
            behind_proxy,
            tls_cert,
            tls_key,
            allow_cleartext,
            attachments,
            max_device_changes_per_hour,
            max_device_bytes_per_hour,
            max_device_attachment_bytes_per_hour,
        } => {
            // Checked before the hub's data is touched.
            let attachments = attachments.limits()?;
            let tls = match (tls_cert, tls_key) {
                (Some(certificate), Some(key)) => Some(
                    vigie_server::tls::server_config(&vigie_server::tls::TlsFiles {
                        certificate,
                        key,
                    })
                    .map_err(|e| format!("--tls-cert, --tls-key: {e}"))?,
                ),
                _ => None,
            };
            let transport = Transport {
                tls,
                cleartext_allowed: allow_cleartext || behind_proxy,
            };
            serve(
                &hub.database()?,
                &listen,
                transport,
                http.limits(),
                HubLimits {
                    attachments,
                    device_changes_per_hour: max_device_changes_per_hour,
                    device_bytes_per_hour: max_device_bytes_per_hour,
                    device_attachment_bytes_per_hour: max_device_attachment_bytes_per_hour,
                    ..HubLimits::default()
                },
                vigie_server::console::Settings {
                    public_url,
                    tile_url,
                    behind_proxy,
                },
            )
        }
        Command::Console {
            command:
                ConsoleCommand::Invite {
                    hub,
                    user,
                    public_url,
                },
        } => {
            let backend = hub.open()?;
            match backend.user(user).map_err(|e| e.to_string())? {
                Some(found) if !found.active => return Err(format!("user {user} is inactive")),
                Some(found) if vigie_server::console::access_of(found.role).is_none() => {
                    return Err(format!(
                        "user {user} has the role {}: the console is for supervisors and administrators",
                        role_name(found.role)
                    ));
                }
                Some(_) => {}
                None => return Err(format!("no such user: {user}")),
            }
            let token = vigie_server::console::session::invite(backend.console(), user)
                .map_err(|e| e.to_string())?;
            journal(&*backend, None, "user_invite", Some(user), COMMAND_LINE);
            let base = public_url.unwrap_or_else(|| {
                // What the link is built from, where a script does not read it as the link.
                eprintln!(
                    "vigie: the link starts with {DEFAULT_CONSOLE_URL} (serve's default --listen): \
                     give --public-url (or VIGIE_PUBLIC_URL) when people open the console \
                     elsewhere"
                );
                DEFAULT_CONSOLE_URL.to_string()
            });
            println!("{}", vigie_server::console::invite_link(&base, &token));
            Ok(())
        }
        Command::User {
            command:
                UserCommand::Add {
                    hub,
                    name,
                    role,
                    areas,
                },
        } => {
            let role: Role = role.into();
            let area_codes: Vec<&str> = areas.iter().map(String::as_str).collect();
            let new = User::new(&name, role, &area_codes);
            // A user with areas needs the area tree a new hub lacks: refused before anything is
            // made, as a mistyped --data would otherwise leave a new hub and key behind.
            let backend = if area_codes.is_empty() {
                hub.open_or_create()?
            } else {
                hub.database()?.open_existing().map_err(|e| match e {
                    vigie_server::HubOpenError::NoHub(_)
                    | vigie_server::HubOpenError::Postgres(
                        vigie_server::postgres::ConnectError::NoHub(_),
                    ) => format!(
                        "{e}; no published area tree holds {} there: a hub's users are given \
                         areas once its country's area tree is published (`vigie reference \
                         publish`)",
                        area_codes.join(", ")
                    ),
                    e => e.to_string(),
                })?
            };
            let reference = backend.reference().map_err(|e| e.to_string())?;
            new.check_new(&reference).map_err(user_refused)?;
            let user = backend.add_user(&new).map_err(|e| e.to_string())?;
            journal(
                &*backend,
                None,
                "user_add",
                Some(user.id),
                &from_command_line(&role_code(role)),
            );
            println!("{}", user.id);
            note_namesakes(&*backend, &user)
        }
        Command::User {
            command:
                UserCommand::Areas {
                    hub,
                    user,
                    areas,
                    none: _,
                },
        } => {
            // `--none` is the only way to no area: clap refuses neither `--area` nor `--none`.
            let backend = hub.open()?;
            let Some(mut record) = backend.user(user).map_err(|e| e.to_string())? else {
                return Err(format!("no such user: {user}"));
            };
            record.areas = areas.iter().cloned().collect();
            let reference = backend.reference().map_err(|e| e.to_string())?;
            record.check(&reference).map_err(user_refused)?;
            match backend.set_user_areas(user, &areas) {
                Err(vigie_core::Error::NotFound { .. }) => {
                    return Err(format!("no such user: {user}"));
                }
                other => other.map_err(|e| e.to_string())?,
            };
            // Not the areas given: the journal's lines are kept in clear on PostgreSQL, and
            // a community's code can point at a child (the records seal their areas).
            journal(&*backend, None, "user_areas", Some(user), COMMAND_LINE);
            let given = if areas.is_empty() {
                "none".to_string()
            } else {
                areas.join(", ")
            };
            // A deactivated user's devices receive nothing whatever the areas: said so, not
            // that they will hold the new scope.
            if record.active {
                done(&format!(
                    "user {user}: areas {given}; their devices hold their new scope at their \
                     next sync; {HANDED}"
                ));
            } else {
                done(&format!(
                    "user {user}: areas {given}; the user is deactivated: their devices receive \
                     nothing until `vigie user reactivate`, then hold this scope"
                ));
            }
            Ok(())
        }
        Command::User {
            command: UserCommand::HandOver { hub, from, to },
        } => {
            let backend = hub.open()?;
            // Journaled before the first batch too: a run stopped midway leaves the cases of
            // the batches it committed handed over, which its entry says were begun (the run
            // again counts only those left).
            journal(
                &*backend,
                None,
                "cases_hand_over_begun",
                Some(to),
                &from_command_line(&from.to_string()),
            );
            let handed = vigie_server::backend::hand_over_cases(&*backend, from, to).map_err(
                |e| match e {
                    vigie_core::Error::NotFound { .. } => format!("no such user: {to}"),
                    e => e.to_string(),
                },
            )?;
            if handed.handed == 0 && handed.kept.is_empty() {
                eprintln!("vigie: warning: no case is assigned to {from}");
            }
            journal(
                &*backend,
                None,
                "cases_hand_over",
                Some(to),
                &from_command_line(&format!("{from}: {}", handed.handed)),
            );
            let kept: Vec<serde_json::Value> = handed
                .kept
                .iter()
                .map(|(id, rule)| serde_json::json!({"id": id, "rule": rule}))
                .collect();
            println!(
                "{}",
                serde_json::json!({
                    "from": from,
                    "to": to,
                    "handed_over": handed.handed,
                    "kept": kept,
                })
            );
            Ok(())
        }
        Command::User {
            command: UserCommand::Role { hub, user, role },
        } => {
            let role: Role = role.into();
            let backend = hub.open()?;
            let (before, _) = change_user_checked(&*backend, user, &|record| record.role = role)?;
            if before.role == role {
                return Err(format!(
                    "user {user} has the role {} already",
                    role_name(role)
                ));
            }
            if vigie_server::console::access_of(role).is_none() {
                // The console is for supervisors and administrators: a session opened before
                // ends now.
                backend
                    .console()
                    .end_console_access_of(user)
                    .map_err(|e| e.to_string())?;
            }
            journal(
                &*backend,
                None,
                "user_role",
                Some(user),
                &from_command_line(&role_code(role)),
            );
            done(&format!("user {user}: role {}", role_name(role)));
            Ok(())
        }
        Command::User {
            command: UserCommand::Rename { hub, user, name },
        } => {
            let backend = hub.open()?;
            let (before, after) =
                change_user_checked(&*backend, user, &|record| record.name = name.clone())?;
            if before.name == name {
                return Err(format!("user {user} has this name already"));
            }
            // The name is no journal's: the entry says a rename was made, by whom.
            journal(&*backend, None, "user_rename", Some(user), COMMAND_LINE);
            done(&format!("user {user}: renamed"));
            note_namesakes(&*backend, &after)
        }
        Command::User {
            command: UserCommand::Reactivate { hub, user },
        } => {
            let backend = hub.open()?;
            let reference = backend.reference().map_err(|e| e.to_string())?;
            let Some(mut record) = backend.user(user).map_err(|e| e.to_string())? else {
                return Err(format!("no such user: {user}"));
            };
            if record.active {
                return Err(format!("user {user} is active already"));
            }
            record.active = true;
            record.check(&reference).map_err(user_refused)?;
            let changed = backend.change_user(user, &|record| {
                record.active = true;
                Ok(record.check(&reference).map_err(ValidationError::from)?)
            });
            match changed {
                Ok((before, _)) if before.active => Err(format!("user {user} is active already")),
                Ok(_) => {
                    journal(&*backend, None, "user_reactivate", Some(user), COMMAND_LINE);
                    done(&format!(
                        "user {user}: active again, with their role and areas"
                    ));
                    Ok(())
                }
                Err(vigie_core::Error::NotFound { .. }) => Err(format!("no such user: {user}")),
                Err(e) => Err(e.to_string()),
            }
        }
        Command::User {
            command: UserCommand::List { hub },
        } => {
            for user in hub.open()?.users().map_err(|e| e.to_string())? {
                println!(
                    "{}",
                    serde_json::json!({
                        "id": user.id,
                        "name": user.name,
                        "role": role_name(user.role),
                        "areas": user.areas,
                        "active": user.active,
                    })
                );
            }
            Ok(())
        }
        Command::User {
            command: UserCommand::Deactivate { hub, user },
        } => {
            let backend = hub.open()?;
            match backend.deactivate_user(user) {
                Ok(true) => {
                    // As the console's deactivation: no console session of theirs goes on.
                    backend
                        .console()
                        .end_console_access_of(user)
                        .map_err(|e| e.to_string())?;
                    journal(&*backend, None, "user_deactivate", Some(user), COMMAND_LINE);
                    done(&format!(
                        "user {user}: deactivated; their devices keep nothing from their next \
                         sync, and sync until revoked (what they send goes to review): \
                         `vigie device revoke` each one no one is to use any more; {HANDED}"
                    ));
                    Ok(())
                }
                Ok(false) => Err(format!("user {user} is already inactive")),
                Err(vigie_core::Error::NotFound { .. }) => Err(format!("no such user: {user}")),
                Err(e) => Err(e.to_string()),
            }
        }
        Command::Device {
            command: DeviceCommand::Enrol { hub, user, qr },
        } => {
            let backend = hub.open()?;
            match backend.user(user).map_err(|e| e.to_string())? {
                Some(found)
                    if found.active && vigie_core::rights::works_on_a_device(found.role) => {}
                Some(found) if found.active => {
                    return Err(format!(
                        "user {user} is an administrator, who works in the console: devices are \
                         enrolled for users who work on records (monitors, inspectors, \
                         supervisors)"
                    ));
                }
                Some(_) => return Err(format!("user {user} is inactive")),
                None => return Err(format!("no such user: {user}")),
            }
            let token = backend.enrol(user).map_err(|e| e.to_string())?;
            journal(
                &*backend,
                None,
                "device_enrol",
                Some(token.device),
                COMMAND_LINE,
            );
            print_token(&token.to_text(), qr);
            Ok(())
        }
        Command::Device {
            command: DeviceCommand::List { hub },
        } => {
            let time = |ms: Option<i64>| {
                ms.and_then(chrono::DateTime::from_timestamp_millis)
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            };
            for d in hub.open()?.devices().map_err(|e| e.to_string())? {
                println!(
                    "{}",
                    serde_json::json!({
                        "device": d.device,
                        "user": d.user,
                        "enrolled": time(Some(d.enrolled_ms)),
                        "last_seen": time(d.last_seen_ms),
                        "revoked": time(d.revoked_ms),
                        "token_unused_until": time(d.unused_until_ms),
                    })
                );
            }
            Ok(())
        }
        Command::Device {
            command: DeviceCommand::Reissue { hub, device, qr },
        } => {
            let backend = hub.open()?;
            match backend.reissue(device) {
                Ok(token) => {
                    journal(
                        &*backend,
                        None,
                        "device_reissue",
                        Some(device),
                        COMMAND_LINE,
                    );
                    print_token(&token.to_text(), qr);
                    // Its old keys are no longer its own: what they sealed is refused.
                    eprintln!(
                        "note: a bundle this device sealed to the hub before now is refused; \
                         what colleagues' phones carried of its work is kept for review when \
                         they sync"
                    );
                    Ok(())
                }
                Err(AuthError::Unknown) => Err(format!("no such enrolled device: {device}")),
                Err(AuthError::Revoked) => Err(format!(
                    "device {device} is revoked: enrol a new device instead"
                )),
                Err(e) => Err(e.to_string()),
            }
        }
        Command::Device {
            command: DeviceCommand::Revoke { hub, device },
        } => {
            refuse_on_a_copy(&hub)?;
            let backend = hub.open()?;
            let revoked = backend.revoke(device).map_err(|e| match e {
                AuthError::Storage(_) => format!("{e}{MAY_BE_DONE}"),
                e => e.to_string(),
            })?;
            if !revoked {
                return Err(if backend.is_revoked(device).map_err(|e| e.to_string())? {
                    // The command that revoked it may have stopped before its entry.
                    vigie_server::console::journal_found_done(
                        &*backend,
                        None,
                        ("device_revoke", ""),
                        vigie_server::console::Held::AnyOf(&[]),
                        device,
                        true,
                    );
                    format!(
                        "device {device} was revoked already (the journal of irreversible \
                         actions holds it)"
                    )
                } else {
                    format!("no such enrolled device: {device}")
                });
            }
            journal(&*backend, None, "device_revoke", Some(device), COMMAND_LINE);
            done(&format!(
                "device {device}: revoked; its next contact is refused and told to wipe its data"
            ));
            Ok(())
        }
        Command::Erase {
            hub,
            record,
            by,
            reason,
        } => {
            refuse_on_a_copy(&hub)?;
            let backend = hub.open()?;
            let erased = match erase_journaled(&*backend, by, record, &reason, true) {
                Err(vigie_core::Error::NotAllowed { rule })
                    if rule == vigie_server::backend::ERASED_ALREADY =>
                {
                    return Err(
                        "this record was erased already: nothing more to erase (its tombstone \
                         stays, and the journal of irreversible actions holds it)"
                            .into(),
                    );
                }
                Err(e @ vigie_core::Error::HubStorage { .. }) => {
                    return Err(format!("{e}{MAY_BE_DONE}"));
                }
                other => other.map_err(|e| e.to_string())?,
            };
            if !erased.journaled {
                missed_entry("case_erase");
            }
            let reviews = match erased.reviews {
                0 => String::new(),
                n => format!(
                    "{n} {} kept for review (changes of users who had lost its area) went with it",
                    if n == 1 { "entry" } else { "entries" }
                ),
            };
            if erased.cases.is_empty() && erased.reviews > 0 {
                println!("erased case {record}: the hub held it only for review; {reviews}");
                return Ok(());
            }
            let Some((case, duplicates)) = erased.cases.split_first() else {
                // The tombstone placed is journaled all the same: an id no device may bring in.
                // Said apart from an erasure: nothing was erased here.
                journal(
                    &*backend,
                    Some(by),
                    "erase_unheld",
                    Some(record),
                    &vigie_server::console::erasure_detail(&reason, true),
                );
                // Not a success a script may take for one: the id may be mistyped, and the
                // case meant still on the hub.
                return Err(
                    "no record with this id on the hub: nothing was erased here, and a \
                            tombstone now stops it from coming (back) from any device (a phone \
                            holding it lets it go when it next syncs); check the id if a case \
                            the hub holds was meant"
                        .into(),
                );
            };
            println!("erased case {case}");
            for duplicate in duplicates {
                println!("erased case {duplicate} (a duplicate merged into it, or a copy of it)");
            }
            if !reviews.is_empty() {
                println!("{reviews}");
            }
            Ok(())
        }
        Command::Bundle {
            command: BundleCommand::Import { hub, file },
        } => {
            let bytes = std::fs::read(&file)
                .map_err(|e| format!("cannot read the bundle {}: {e}", file.display()))?;
            // A bundle may carry a whole scope: as many records as it holds, in batches.
            let limits = HubLimits {
                max_push_records: usize::MAX,
                ..HubLimits::default()
            };
            let backend = hub.open()?;
            let report = backend
                .import_bundle(&bytes, &limits)
                .map_err(|e| match e {
                    // The core says it as a device would; here the hub imports.
                    vigie_core::sync::HubError::Store(vigie_core::Error::Identity(
                        vigie_core::IdentityError::NotARecipient,
                    )) => "bundle refused: it is not sealed to this hub (the phone sealed it to \
                         other devices or areas only: export it again with the hub among its \
                         recipients; or the file was damaged on its way: copy it again)"
                        .to_string(),
                    e => format!("bundle refused: {e}"),
                })?;
            println!(
                "bundle from device {}: {} records, {} taken, {} kept for review, {} already held, {} erased on the hub, {} waiting for other devices' changes, {} refused",
                report.from_device,
                report.records,
                report.accepted,
                report.quarantined,
                report.held,
                report.erased,
                report.awaiting_authors.len(),
                report.refused.len()
            );
            // What a device carried in by hand is journaled as its syncs' work is logged: by
            // whose device, and what became of it (counts and ids only).
            journal(
                &*backend,
                None,
                "bundle_import",
                None,
                &from_command_line(&format!(
                    "device {}: {} records, {} taken, {} kept for review, {} refused",
                    report.from_device,
                    report.records,
                    report.accepted,
                    report.quarantined,
                    report.refused.len()
                )),
            );
            for (record, devices) in &report.awaiting_authors {
                let devices: Vec<String> = devices.iter().map(Uuid::to_string).collect();
                println!(
                    "waiting {record}: holds changes made on device(s) {} that the hub has not \
                     received from them{}",
                    match devices.is_empty() {
                        true => "other than the exporter".to_string(),
                        false => devices.join(", "),
                    },
                    match report.partly_taken.contains(record) {
                        true => " (the exporter's changes made before them were taken)",
                        false => "",
                    }
                );
            }
            for record in &report.carried_for_review {
                println!(
                    "kept for review {record}: the work of a revoked device (a lost phone's) \
                     it carried, waiting for a supervisor (vigie quarantine list)"
                );
            }
            for (record, reason) in &report.refused {
                match RefusalDetail::of(&report.refusal_details, *record) {
                    Some(detail) => println!(
                        "refused {record}: {reason} ({}: {})",
                        detail.field, detail.rule
                    ),
                    None => println!("refused {record}: {reason}"),
                }
            }
            // Either way the import is not complete: a script must see it.
            let revoked = report
                .refused
                .iter()
                .any(|(_, reason)| *reason == Refusal::AuthorRevoked);
            let rebuilt = match revoked {
                true => {
                    " (those holding a revoked or reset device's changes that a review \
                     rejected, or that were refused from their author, will never be taken: \
                     the phones holding them keep them refused)"
                }
                false => "",
            };
            match (report.refused.len(), report.awaiting_authors.len()) {
                (0, 0) => Ok(()),
                (0, waiting) => Err(format!(
                    "{waiting} records of the bundle wait for changes other devices made: \
                     import those devices' bundles (or let them sync), then this file again; \
                     a lost or reset phone's part waits for its review (`vigie quarantine \
                     list`); of those records, only what the exporter changed before it \
                     received those devices' changes was taken, the rest of the bundle was"
                )),
                (refused, 0) => Err(format!(
                    "{refused} records of the bundle were refused{rebuilt}"
                )),
                (refused, waiting) => Err(format!(
                    "{refused} records of the bundle were refused{rebuilt}, and {waiting} wait \
                     for changes other devices made (import their bundles, then this file again)"
                )),
            }
        }
        Command::Backup { hub, out } => backup(&hub, &out),
        Command::Audit {
            hub,
            record,
            user,
            since,
        } => audit_journal(&hub, record, user, since),
        Command::Quarantine { command } => quarantine(command),
        Command::Reference { command } => reference(command),
        Command::Sync {
            hub,
            store,
            token,
            key_hex,
            unencrypted,
            max_message_bytes,
            ca,
            allow_cleartext,
        } => {
            // The token first: a mistyped one makes no store, and no key file, to leave behind.
            let token = Token::parse(&token).map_err(|e| e.to_string())?;
            if !allow_cleartext && let Some(why) = vigie_server::client::in_clear(&hub) {
                return Err(format!(
                    "--hub: {why}: give the hub's https:// address, or --allow-cleartext on a \
                     closed network"
                ));
            }
            let client = match &ca {
                Some(ca) => HubClient::new(&hub, &token)
                    .trusting(
                        &std::fs::read(ca)
                            .map_err(|e| format!("--ca: cannot read {}: {e}", ca.display()))?,
                    )
                    .map_err(|e| format!("--ca: {}: {e}", ca.display()))?,
                None => HubClient::new(&hub, &token),
            };
            // A mistyped path is said, not made: no directory is created for a store.
            let parent = store
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            if !parent.is_dir() {
                return Err(format!(
                    "the directory of --store, {}, does not exist: make it first, or give \
                     another path",
                    parent.display()
                ));
            }
            if store.is_dir() {
                return Err(format!(
                    "--store names a directory, {}: give the store's file (phone.db)",
                    store.display()
                ));
            }
            let new_store = std::fs::metadata(&store).is_err();
            let key_file = vigie_server::hub_key::store_key_file(&store);
            let new_key = !key_file.exists();
            let encryption = match (key_hex, unencrypted) {
                (Some(hex), _) => encryption(Some(&hex))?,
                (None, true) => Encryption::Unencrypted,
                (None, false) => Encryption::Key(
                    vigie_server::hub_key::device_store_key(&store)
                        .map_err(|e| e.to_string())?
                        .0,
                ),
            };
            let result = sync(
                &client,
                store.clone(),
                &token,
                encryption,
                max_message_bytes,
            );
            // A first sync the hub refused or never answered (a token of another hub, one
            // revoked or reissued, a hub down) leaves no store behind, nor the key made for it:
            // the next try, with the right token, starts afresh rather than meet a store of
            // another device.
            match result {
                Err(SyncFailed {
                    message: e,
                    hub_holds_nothing: true,
                }) if new_store && std::fs::metadata(&store).is_ok() => {
                    for suffix in ["", "-wal", "-shm", "-journal"] {
                        let mut file = store.clone().into_os_string();
                        file.push(suffix);
                        let _ = std::fs::remove_file(file);
                    }
                    let mut attachments = store.clone().into_os_string();
                    attachments.push(".attachments");
                    let _ = std::fs::remove_dir_all(attachments);
                    let key_removed = new_key && std::fs::remove_file(&key_file).is_ok();
                    Err(format!(
                        "{e} (the new store{} removed)",
                        if key_removed {
                            " and its key were"
                        } else {
                            " was"
                        }
                    ))
                }
                // Still there (a revoked device's store was wiped): kept for the next run.
                Err(SyncFailed { message, .. })
                    if new_store && std::fs::metadata(&store).is_ok() =>
                {
                    Err(format!(
                        "{message} (the new store and its key are kept: run the same command \
                         again to go on)"
                    ))
                }
                other => other.map_err(|f| f.message),
            }
        }
        Command::Export {
            hub,
            out,
            format,
            personal,
            by,
        } => {
            match hub.database()? {
                Database::Embedded { data, key } | Database::Postgres { data, key, .. } => {
                    apart_from_the_hub(&data, &key, &out, "exports")?
                }
            }
            // Opened as the hub first: a hub restored from a backup does again the erasures
            // its journal holds before anything of it is read out.
            let backend = hub.open()?;
            // Checked before anything is read: the journal names someone who may have it, and
            // the export holds what they receive, as the console's downloads do.
            let mut made_for = None;
            if let Some(by) = by {
                let user = backend.user(by).map_err(|e| e.to_string())?;
                match user {
                    Some(u) if u.active && (!personal || u.role == Role::Supervisor) => {
                        made_for = Some(u);
                    }
                    Some(_) if personal => {
                        return Err(
                            "--by names no active supervisor: personal data is exported for a \
                             supervisor"
                                .into(),
                        );
                    }
                    _ => return Err("--by names no active user of this hub".into()),
                }
            }
            // Exports read the embedded store's indexes: PostgreSQL's records are copied into
            // a temporary one first (encrypted with a key that lives only in this process).
            let (store, _scratch) = match hub.database()? {
                Database::Postgres {
                    url,
                    data,
                    key: hub_key,
                    ..
                } => {
                    let scratch = tempfile::tempdir().map_err(|e| e.to_string())?;
                    let mut key = [0u8; 32];
                    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
                    let mut store = vigie_server::open_store(scratch.path(), Encryption::Key(key))
                        .map_err(|e| e.to_string())?;
                    vigie_server::postgres::Postgres::connect_existing(&url, 1, &hub_key, &data)
                        .map_err(|e| e.to_string())?
                        .copy_into(&mut store)
                        .map_err(|e| e.to_string())?;
                    (store, Some(scratch))
                }
                Database::Embedded { data, key } => {
                    vigie_server::existing_hub(&data).map_err(|e| e.to_string())?;
                    let encryption =
                        vigie_server::hub_encryption(&data, &key).map_err(|e| e.to_string())?;
                    (
                        vigie_server::open_store(&data, encryption).map_err(|e| e.to_string())?,
                        None,
                    )
                }
            };
            let format = match format {
                FormatArg::Csv => ExportFormat::Csv,
                FormatArg::Json => ExportFormat::Json,
                FormatArg::Excel => ExportFormat::ExcelCsv,
            };
            let options = ExportOptions {
                include_personal_data: personal,
            };
            let paths = match &made_for {
                Some(user) => store
                    .scoped(&vigie_server::acting_as(user))
                    .export_to_dir(&out, format, options, user.role),
                None => store.export_to_dir(&out, format, options),
            }
            .map_err(|e| format!("{}: {e}", out.display()))?;
            // An export leaves the hub's protection: the journal shows it, as the console's.
            let ext = format.code();
            journal(
                &*backend,
                by,
                "export",
                None,
                &from_command_line(&format!(
                    "{} {ext}{}",
                    match made_for {
                        Some(_) => "scope of --by",
                        None => "all",
                    },
                    if personal { " personal" } else { "" }
                )),
            );
            for path in paths {
                println!("{}", path.display());
            }
            Ok(())
        }
    }
}

fn area_json(area: &Option<vigie_core::Area>) -> serde_json::Value {
    match area {
        Some(a) => serde_json::json!({
            "country": a.country,
            "region": a.region,
            "district": a.district,
            "community": a.community,
        }),
        None => serde_json::Value::Null,
    }
}

/// The attachments a quarantine entry adds or removes, for its reviewer: never a caption.
fn attachments_json(attachments: &[vigie_core::sync::QuarantinedAttachment]) -> serde_json::Value {
    attachments
        .iter()
        .map(|a| {
            serde_json::json!({
                "id": a.id,
                "kind": a.kind.to_string(),
                "media_type": a.media_type,
                "size": a.size,
            })
        })
        .collect()
}

/// Where `vigie serve` listens by default: the console's address when no other is given.
const DEFAULT_CONSOLE_URL: &str = "http://127.0.0.1:8470";

/// A role as the journal and the console's forms name it.
fn role_code(role: Role) -> String {
    serde_json::to_value(role)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Two staff of one name are common: said, so that the administrator tells them apart by id
/// (the console names them with their role and areas). Names are compared as people read them
/// (`fold_name`): one pasted with a zero-width space, or typed with decomposed accents, is the
/// same name.
fn note_namesakes(backend: &dyn vigie_server::backend::Backend, user: &User) -> Result<(), String> {
    let folded = vigie_core::fold_name(&user.name);
    let namesakes: Vec<String> = backend
        .users()
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|u| u.id != user.id && vigie_core::fold_name(&u.name) == folded)
        .map(|u| u.id.to_string())
        .collect();
    if !namesakes.is_empty() {
        eprintln!(
            "note: another user has this name ({}): give devices by id",
            namesakes.join(", ")
        );
    }
    Ok(())
}

/// Changes `user`'s record as `change` does, judged by the rules of users (`User::check`, said
/// as the command line says it) before, and again in the change's transaction, should the
/// record change meanwhile: the record before and after.
fn change_user_checked(
    backend: &dyn vigie_server::backend::Backend,
    user: Uuid,
    change: &dyn Fn(&mut User),
) -> Result<(User, User), String> {
    let reference = backend.reference().map_err(|e| e.to_string())?;
    let Some(mut record) = backend.user(user).map_err(|e| e.to_string())? else {
        return Err(format!("no such user: {user}"));
    };
    change(&mut record);
    record.check(&reference).map_err(user_refused)?;
    let changed = backend.change_user(user, &|record| {
        change(record);
        Ok(record.check(&reference).map_err(ValidationError::from)?)
    });
    match changed {
        Ok(records) => Ok(records),
        Err(vigie_core::Error::NotFound { .. }) => Err(format!("no such user: {user}")),
        Err(e) => Err(e.to_string()),
    }
}

/// A user record the rules of users refuse (`User::check`), said as the command line says it.
fn user_refused(problem: vigie_core::UserProblem) -> String {
    match problem {
        vigie_core::UserProblem::UnknownArea(_) => format!(
            "{problem}: check the code, or publish the tree naming it first (vigie reference \
             publish)"
        ),
        vigie_core::UserProblem::AdministratorWithAreas => {
            format!(
                "{problem}: take the user's areas away first (vigie user areas --none), or give \
                 no --area to `user add`"
            )
        }
        problem => problem.to_string(),
    }
}

/// `vigie sync --hub`: the hub's address, an http:// or https:// URL with a host, a port that
/// can be, and neither query nor fragment (a device's requests go to `<hub>/v1/…`; a hub behind
/// a proxy that takes a prefix off is reached under it).
fn hub_url_arg(text: &str) -> Result<String, String> {
    match http_url_with_host(text) {
        Some(uri) if uri.query().is_none() => Ok(text.to_string()),
        _ => Err(
            "not an http:// or https:// URL with a host (e.g. https://vigie.example.org)".into(),
        ),
    }
}

/// Said of an erasure or a revocation the database failed to answer: it may have taken it
/// before the link failed, and only a second try journals what is done (`Journaled`).
const MAY_BE_DONE: &str = " (the database may have done it before the link failed: run the \
                           command again, which journals it either way)";

/// `--public-url`: the address links start with, as `hub_url_arg` checks it (a link built from
/// anything else leads nowhere), and no path: the console's pages, forms, redirections and
/// cookies name `/console/` at the root of the host, so behind a proxy that takes a prefix off
/// only the invitation would carry it (and over plain HTTP no form would be accepted).
fn public_url_arg(text: &str) -> Result<String, String> {
    match http_url_with_host(text) {
        Some(uri) if uri.query().is_none() && matches!(uri.path(), "" | "/") => {
            Ok(text.to_string())
        }
        Some(uri) if uri.query().is_none() => Err(format!(
            "the console is served at the root of its host (/console/), not under {}: give \
             the address without a path (a host of its own, e.g. https://vigie.example.org, \
             whose proxy passes paths as they are)",
            uri.path()
        )),
        _ => Err(
            "not an http:// or https:// URL with a host (e.g. https://vigie.example.org)".into(),
        ),
    }
}

/// `text` as an http:// or https:// URL naming a host, with no user in it, a port that can
/// be, and no fragment (a link or a request built on it would lead nowhere).
fn http_url_with_host(text: &str) -> Option<axum::http::Uri> {
    if text.contains(['#', ';']) {
        return None;
    }
    let uri: axum::http::Uri = text.parse().ok()?;
    let host_ok = uri.authority().is_some_and(|a| {
        let port_ok = a.as_str()[a.host().len()..]
            .strip_prefix(':')
            .is_none_or(|port| port.parse::<u16>().is_ok_and(|p| p > 0));
        !a.host().is_empty() && !a.as_str().contains('@') && port_ok
    });
    (matches!(uri.scheme_str(), Some("http" | "https")) && host_ok).then_some(uri)
}

/// `--tile-url`: an http:// or https:// URL with one host (no wildcard: the console's CSP
/// allows images from it), naming `{z}`, `{x}` and `{y}` and no other placeholder (a
/// mistyped template would leave the map without its layer, unsaid).
fn tile_url_arg(text: &str) -> Result<String, String> {
    let refused = || {
        "not a tile URL template: http:// or https://, a host, and {z}, {x} and {y} (e.g. \
         https://tiles.example/{z}/{x}/{y}.png)"
            .to_string()
    };
    if !["{z}", "{x}", "{y}"].iter().all(|p| text.contains(p)) {
        return Err(refused());
    }
    let filled = text
        .replace("{z}", "0")
        .replace("{x}", "0")
        .replace("{y}", "0");
    if filled.contains(['{', '}', '*']) {
        return Err(refused());
    }
    // One host, named, on a port that can be: the console's CSP lets images come from it alone.
    http_url_with_host(&filled).ok_or_else(refused)?;
    Ok(text.to_string())
}

/// After an area tree is published: what it left behind (`area_warnings`), on stderr. A user
/// holding an area code no tree in force holds is told of by id and code (the code covers
/// nothing until the user is given the area's new code); the records filed under a community
/// the tree holds elsewhere or no more are counted by community, so that an operator learns it
/// as they publish, not from a district's figures months later.
fn warn_of_areas_left(backend: &dyn Backend) -> Result<(), String> {
    use vigie_server::area_warnings::{AreaWarning, after_area_publish};
    for warning in after_area_publish(backend).map_err(|e| e.to_string())? {
        match warning {
            AreaWarning::UserAreaGone { user, code } => eprintln!(
                "vigie: warning: user {user} has area {code}, which no area tree in force holds: \
                 it covers nothing now (give the area's new code with vigie user areas)"
            ),
            AreaWarning::RecordsLeft {
                district,
                community,
                now,
                counts,
            } => {
                let counts: Vec<String> = counts
                    .iter()
                    .map(|(kind, n)| format!("{n} {}", kind.as_str().replace('_', " ")))
                    .collect();
                let (place, seen, refile) = match now {
                    Some(now) => (
                        format!("which the tree in force holds under {now}"),
                        format!(
                            "seen by the community's users and {district}'s, not yet by \
                             {now}'s"
                        ),
                        format!("vigie reference refile --community {community}"),
                    ),
                    None => (
                        "which no area tree in force holds".to_string(),
                        "seen only by users of a wider area the tree still holds (its \
                         district's, if the tree keeps it, or its region's: the community's \
                         own code covers nothing now)"
                            .to_string(),
                        format!(
                            "vigie reference refile --community {community} --to <its new code>"
                        ),
                    ),
                };
                eprintln!(
                    "vigie: warning: records ({}) are filed under {district} › {community}, \
                     {place}: they stay counted there, and {seen}, until a user whose areas \
                     cover both places files each again, or `{refile}` files them all where the \
                     tree in force puts them",
                    counts.join(", "),
                );
            }
        }
    }
    Ok(())
}

fn reference(command: ReferenceCommand) -> Result<(), String> {
    match command {
        ReferenceCommand::Publish { hub, files } => {
            // Every file is read and checked before anything is published.
            let mut parsed = Vec::with_capacity(files.len());
            for path in &files {
                let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
                    std::io::ErrorKind::InvalidData => format!(
                        "{}: not UTF-8 text: save it as UTF-8 (Notepad: Save as, Encoding UTF-8)",
                        path.display()
                    ),
                    _ => format!("{}: {e}", path.display()),
                })?;
                let file =
                    ReferenceFile::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
                parsed.push(file);
            }
            let backend = hub.open_or_create()?;
            // In one transaction: a file the hub refuses publishes none of them.
            let versions = backend
                .publish_references(&parsed)
                .map_err(|e| e.to_string())?;
            for (file, version) in parsed.iter().zip(versions) {
                journal(
                    &*backend,
                    None,
                    "reference_publish",
                    None,
                    &from_command_line(&format!(
                        "{} {}@{version}",
                        file.content.reference_type(),
                        file.key
                    )),
                );
                println!(
                    "{}",
                    serde_json::json!({
                        "type": file.content.reference_type().as_str(),
                        "key": file.key,
                        "version": version,
                    })
                );
            }
            let reference = backend.reference().map_err(|e| e.to_string())?;
            for file in &parsed {
                let ty = file.content.reference_type();
                if !reference.key_applies(ty, &file.key) {
                    eprintln!(
                        "vigie: warning: {ty} {} applies to no record: a country's profile, \
                         sector list or referral directory is keyed by the code at the root of \
                         its area tree ({} here), or {} for every country without its own",
                        file.key,
                        reference.countries().join(", "),
                        reference.default_key(ty),
                    );
                }
            }
            if parsed
                .iter()
                .any(|f| f.content.reference_type() == ReferenceType::AdministrativeAreas)
            {
                warn_of_areas_left(&*backend)?;
            }
            Ok(())
        }
        ReferenceCommand::Refile { hub, community, to } => {
            let backend = hub.open()?;
            let reference = backend.reference().map_err(|e| e.to_string())?;
            let target = to.as_deref().unwrap_or(&community);
            let area = reference
                .keys(ReferenceType::AdministrativeAreas)
                .into_iter()
                .find_map(|country| reference.area_tree(country)?.area_of(target))
                .ok_or_else(|| {
                    format!("{target} is not a community of an area tree in force (vigie reference list)")
                })?;
            let filed_under = area.codes().join(" › ");
            // Journaled before the first batch too (`cases_hand_over_begun`).
            journal(
                &*backend,
                None,
                "records_refile_begun",
                None,
                &from_command_line(&format!("{community} → {filed_under}")),
            );
            let refiled = vigie_server::backend::refile_community(&*backend, &community, &area)
                .map_err(|e| e.to_string())?;
            if refiled.held == 0 {
                eprintln!(
                    "vigie: warning: no record is filed under {community} (codes are matched \
                     exactly, capitals included)"
                );
            }
            journal(
                &*backend,
                None,
                "records_refile",
                None,
                &from_command_line(&format!("{community} → {filed_under}: {}", refiled.refiled)),
            );
            let kept: Vec<serde_json::Value> = refiled
                .kept
                .iter()
                .map(|(id, e)| serde_json::json!({"id": id, "field": e.field, "rule": e.rule}))
                .collect();
            println!(
                "{}",
                serde_json::json!({
                    "community": community,
                    "filed_under": filed_under,
                    "refiled": refiled.refiled,
                    "kept": kept,
                })
            );
            Ok(())
        }
        ReferenceCommand::List { hub } => {
            let reference = hub.open()?.reference().map_err(|e| e.to_string())?;
            for ty in [
                ReferenceType::CountryProfile,
                ReferenceType::Checklist,
                ReferenceType::Sectors,
                ReferenceType::ReferralServices,
                ReferenceType::AdministrativeAreas,
            ] {
                for key in reference.keys(ty) {
                    let versions: Vec<serde_json::Value> = reference
                        .versions(ty, key)
                        .into_iter()
                        .map(|v| {
                            serde_json::json!({
                                "version": v,
                                "published": reference.is_published(ty, key, v),
                            })
                        })
                        .collect();
                    // New records are captured with the latest version; records captured
                    // before keep theirs.
                    let mut line = serde_json::json!({
                        "type": ty.as_str(),
                        "key": key,
                        "in_force": reference.latest_version(ty, key),
                        "versions": versions,
                    });
                    if ty == ReferenceType::AdministrativeAreas
                        && let Some(tree) = reference.area_tree(key)
                    {
                        line["areas"] = area_counts(tree);
                    }
                    println!("{line}");
                }
            }
            Ok(())
        }
    }
}

/// The number of areas of each level of a tree.
fn area_counts(tree: &vigie_core::reference::AreaNode) -> serde_json::Value {
    let mut counts = serde_json::Map::new();
    let mut level: Vec<&vigie_core::reference::AreaNode> = vec![tree];
    for name in AreaLevel::ALL {
        if level.is_empty() {
            break;
        }
        counts.insert(name.as_str().into(), level.len().into());
        level = level.iter().flat_map(|n| n.children.iter()).collect();
    }
    serde_json::Value::Object(counts)
}

fn quarantine(command: QuarantineCommand) -> Result<(), String> {
    let (hub, entry, accept, by) = match command {
        QuarantineCommand::List { hub } => {
            let backend = hub.open()?;
            let revoked =
                vigie_server::backend::revoked_devices(&*backend).map_err(|e| e.to_string())?;
            for q in backend.quarantined().map_err(|e| e.to_string())? {
                let authors: Vec<serde_json::Value> = q
                    .authors
                    .iter()
                    .map(|a| serde_json::json!({ "user": a.user, "device": a.device }))
                    .collect();
                println!(
                    "{}",
                    serde_json::json!({
                        "entry": q.entry,
                        "record": q.record,
                        "kind": q.kind.map(|k| k.to_string()),
                        "device": q.device,
                        "device_revoked": revoked.contains(&q.device),
                        "user": q.user,
                        "received": chrono::DateTime::from_timestamp_millis(q.received_ms)
                            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                        "received_ms": q.received_ms,
                        "bytes": q.bytes,
                        "state": q.state.code(),
                        "fields": q.fields,
                        "area_before": area_json(&q.area_before),
                        "area_after": area_json(&q.area_after),
                        "filed_at": area_json(&q.filed_at),
                        "authors": authors,
                        "attachments_added": attachments_json(&q.attachments_added),
                        "attachments_removed": attachments_json(&q.attachments_removed),
                        "status_after": q.status_after,
                        "case_code": q.case_code,
                        "community_gone": q.community_gone,
                        "refiled_to": q.refiled_to,
                    })
                );
            }
            return Ok(());
        }
        QuarantineCommand::Accept { hub, entry, by } => (hub, entry, true, by),
        QuarantineCommand::Reject { hub, entry, by } => (hub, entry, false, by),
    };
    let backend = hub.open()?;
    // The record the entry holds changes of, for the journal: entry numbers are given again
    // after a restore, record ids never.
    let waiting = backend
        .quarantined()
        .map_err(|e| e.to_string())?
        .into_iter()
        .find(|q| q.entry == entry);
    let record = waiting.as_ref().map(|q| q.record);
    if !backend
        .review_quarantined(entry, accept, by)
        .map_err(|e| e.to_string())?
    {
        // A review remembered (`settled_quarantine`): said, and journaled if the command that
        // made it stopped before its entry.
        let settled = vigie_server::backend::settled_quarantine(&*backend, entry)
            .map_err(|e| e.to_string())?;
        return Err(match settled {
            Some(vigie_server::backend::Settled {
                accepted,
                record,
                by: decider,
            }) => {
                let action = if accepted { "accepted" } else { "rejected" };
                // In the name of who decided, whoever asks again.
                vigie_server::console::journal_found_done(
                    &*backend,
                    decider,
                    (&format!("quarantine_{action}"), &entry.to_string()),
                    vigie_server::console::Held::SameDetail,
                    record,
                    true,
                );
                format!(
                    "quarantine entry {entry} was {action} already (record {record}): nothing \
                     more to do"
                )
            }
            None => format!(
                "quarantine entry {entry} is not waiting: settled already (accepted or \
                 rejected), or no such entry; `vigie quarantine list` shows those waiting"
            ),
        });
    }
    // As the console journals a review: the entry's number, with the supervisor named if any.
    let action = if accept { "accepted" } else { "rejected" };
    journal(
        &*backend,
        by,
        &format!("quarantine_{action}"),
        record,
        &from_command_line(&entry.to_string()),
    );
    done(&format!("quarantine entry {entry}: {action}"));
    // Where `vigie reference refile --to` filed that community's records, the review filed it
    // too; else the operator is told to.
    if let Some(q) = waiting
        .as_ref()
        .filter(|q| accept && q.community_gone && q.refiled_to.is_none())
        && let Some(area) = &q.area_after
    {
        eprintln!(
            "vigie: warning: the record is filed under {}, a community no area tree in force \
             holds (merged or renamed since it was recorded): no one who works where it is now \
             sees it until it is filed there: vigie reference refile --community {} --to <its \
             new code>",
            area.community, area.community
        );
    }
    if let Some(q) = waiting
        .as_ref()
        .filter(|q| accept && q.kind == Some(vigie_core::RecordKind::Visit))
        && q.status_after == Some("draft")
    {
        eprintln!(
            "vigie: warning: the visit is a draft: only its visitor submits it, once they \
             cover its area again (vigie user areas); until then it is counted among the \
             visits made and is in no review queue"
        );
    }
    // Changes of a user deactivated and handed over since: the case they bring is theirs
    // still, which the hand-over made before could not take.
    if accept
        && let Some(record) = record
        && let Some(user) = assigned_to_inactive(&*backend, record)
    {
        eprintln!(
            "vigie: warning: the case is assigned to user {user}, who is deactivated: no one \
             follows it up until it is handed over: vigie user hand-over --from {user} --to \
             <user>"
        );
    }
    Ok(())
}

/// The deactivated user a child case the hub holds is assigned to (`identified_by`), if so.
fn assigned_to_inactive(backend: &dyn Backend, record: Uuid) -> Option<Uuid> {
    let mut view = backend.open_view().ok()?;
    backend.refresh_view(&mut view).ok()?;
    let case: vigie_core::ChildCase = view.store.get(record).ok()?;
    let user = backend.user(case.identified_by).ok()??;
    (!user.active).then_some(user.id)
}

/// How `vigie serve` carries records over the network: its own TLS, or in clear where that
/// is allowed (behind a TLS proxy, or said so).
struct Transport {
    tls: Option<Arc<rustls::ServerConfig>>,
    cleartext_allowed: bool,
}

fn serve(
    database: &Database,
    listen: &str,
    transport: Transport,
    http: HttpLimits,
    limits: HubLimits,
    console: vigie_server::console::Settings,
) -> Result<(), String> {
    // The address first: one the hub cannot listen on makes no new hub, nor its key.
    let listener = std::net::TcpListener::bind(listen)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    // Children's records and devices' tokens cross whatever network the address faces: in
    // clear only on the machine's own loopback (a TLS proxy in front), or when told.
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    if transport.tls.is_none() && !transport.cleartext_allowed && !address.ip().is_loopback() {
        return Err(format!(
            "--listen {listen} would carry children's records and devices' tokens in clear on \
             the network: give --tls-cert and --tls-key, or listen on 127.0.0.1 behind a TLS \
             proxy (--behind-proxy when the proxy is on another machine), or --allow-cleartext \
             on a closed network of your own"
        ));
    }
    if transport.tls.is_none() && !address.ip().is_loopback() {
        tracing::warn!(
            address = %address,
            "serving in clear on an address other than loopback: records cross the network \
             unencrypted up to the TLS proxy"
        );
    }
    // One process serves an embedded hub: held until `serve` returns (PostgreSQL takes any
    // number of processes).
    let made_data = match database {
        Database::Embedded { data, .. } => !data.exists(),
        Database::Postgres { .. } => false,
    };
    let serving = match database {
        Database::Embedded { data, .. } => {
            Some(vigie_server::lock_for_serving(data).map_err(|e| e.to_string())?)
        }
        Database::Postgres { .. } => None,
    };
    let hub = match vigie_server::open_hub(database, limits) {
        Ok(hub) => {
            let hub = hub.with_http(http).with_console(console);
            Arc::new(match transport.tls {
                Some(tls) => hub.with_tls(tls),
                None => hub,
            })
        }
        Err(e) => {
            // A hub refused before anything was made leaves no directory of its own behind.
            if let (true, Database::Embedded { data, .. }) = (made_data, database) {
                drop(serving);
                let _ = std::fs::remove_file(data.join(vigie_server::SERVE_LOCK));
                let _ = std::fs::remove_dir(data);
            }
            return Err(e.to_string());
        }
    };
    let _serving = serving;
    // The console's view is opened (on PostgreSQL: the process's copy caught up) before its
    // first visitor needs it; sync does not wait for it.
    std::thread::Builder::new()
        .name("vigie-console-view".into())
        .spawn({
            let hub = hub.clone();
            move || {
                let started = std::time::Instant::now();
                match hub.console.views.warm(hub.backend.as_ref()) {
                    Ok(_) => tracing::info!(
                        ms = started.elapsed().as_millis() as u64,
                        "console view ready"
                    ),
                    Err(e) => tracing::error!(error = %e, "console view not ready"),
                }
            }
        })
        .map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let served = runtime.block_on({
        let hub = hub.clone();
        async move {
            let listener = tokio::net::TcpListener::from_std(listener)
                .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
            let address = listener.local_addr().map_err(|e| e.to_string())?;
            // Tests and scripts read this line to find the port.
            let scheme = match hub.tls {
                Some(_) => "https",
                None => "http",
            };
            println!("vigie hub listening on {scheme}://{address}");
            let _ = std::io::stdout().flush();
            vigie_server::http::serve(listener, hub, stop_asked())
                .await
                .map_err(|e| e.to_string())
        }
    });
    // The storage is closed outside the runtime: PostgreSQL's client may not block inside it.
    drop(runtime);
    // The console's view goes now (on PostgreSQL, its temporary copy is removed), whoever else
    // holds the hub: the thread that prepares the view may still be at it.
    hub.console.views.close();
    drop(hub);
    // A clean stop is told apart from a crash in the log.
    if served.is_ok() {
        tracing::info!("hub stopped: requests under way answered, storage closed");
    }
    served
}

/// Ctrl-C, or the SIGTERM a service manager (systemd, Docker, `kill`) sends: the hub stops
/// serving and closes its storage, which removes what it kept in temporary files (the
/// PostgreSQL hub's console view).
async fn stop_asked() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("stop asked: answering the requests under way, then closing the storage");
}

/// A device the hub revoked (a lost or seized phone): its records leave the store, then the
/// store's files and its key file go. Returns what to tell.
fn wipe_revoked(mut store: Store) -> String {
    let path = store.path().to_path_buf();
    let forgotten = store.forget_all_for_revocation();
    let destroyed = store.destroy();
    let key_file = vigie_server::hub_key::store_key_file(&path);
    let key_gone = match std::fs::remove_file(&key_file) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    };
    match (forgotten, destroyed, key_gone) {
        (Ok(_), Ok(()), Ok(())) => "this device was revoked by the hub: its store was wiped".into(),
        _ => format!(
            "this device was revoked by the hub, and its store could not be wiped whole: delete \
             {} and {}",
            path.display(),
            key_file.display()
        ),
    }
}

/// Why `vigie sync` failed, and whether the hub holds nothing of what it sent.
struct SyncFailed {
    message: String,
    /// The hub was never reached, or refused: a new store may go (the next try, with the
    /// right token, starts afresh). Otherwise the hub may have certified its keys.
    hub_holds_nothing: bool,
}

impl From<String> for SyncFailed {
    fn from(message: String) -> SyncFailed {
        SyncFailed {
            message,
            hub_holds_nothing: false,
        }
    }
}

fn sync(
    client: &HubClient,
    path: PathBuf,
    token: &Token,
    encryption: Encryption,
    max_message_bytes: usize,
) -> Result<(), SyncFailed> {
    let config = StoreConfig::new(path, encryption, token.user).device(token.device);
    let mut store = Store::open(config).map_err(|e| SyncFailed {
        message: e.to_string(),
        hub_holds_nothing: true,
    })?;
    let options = SyncOptions {
        max_message_bytes,
        ..SyncOptions::default()
    };
    let bar = ProgressBar::new_spinner();
    bar.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("valid template"));
    let summary = client.sync(&mut store, &options, |s| {
        let received = match s.incoming_total {
            Some(total) => format!("{} of {total}", s.received.min(total)),
            None => s.received.to_string(),
        };
        bar.set_message(format!(
            "{} round trips, {} sent, {received} received, {} KiB up, {} KiB down",
            s.round_trips,
            s.accepted,
            s.bytes_sent / 1024,
            s.bytes_received / 1024
        ));
        bar.tick();
    });
    bar.finish_and_clear();
    let summary = match summary {
        Ok(summary) => summary,
        Err(vigie_core::Error::WipeRequested) => return Err(wipe_revoked(store).into()),
        Err(e) => {
            return Err(SyncFailed {
                message: e.to_string(),
                hub_holds_nothing: vigie_server::client::hub_holds_nothing_of(&e),
            });
        }
    };
    let refused: Vec<serde_json::Value> = summary
        .refused
        .iter()
        .map(|(id, why)| {
            let mut line = serde_json::json!({ "record": id, "reason": why.to_string() });
            if let Some(detail) = RefusalDetail::of(&summary.refusal_details, *id) {
                line["field"] = detail.field.clone().into();
                line["rule"] = detail.rule.clone().into();
            }
            line
        })
        .collect();
    let failed: Vec<serde_json::Value> = summary
        .failed
        .iter()
        .map(|(id, why)| serde_json::json!({ "record": id, "reason": why }))
        .collect();
    println!(
        "{}",
        serde_json::json!({
            "round_trips": summary.round_trips,
            "bytes_sent": summary.bytes_sent,
            "bytes_received": summary.bytes_received,
            "accepted": summary.accepted,
            "received": summary.received,
            "pending": summary.pending,
            "push_retry_in_seconds": summary.push_retry_in_seconds,
            "refused": refused,
            "failed": failed,
            "clock_skewed": summary.clock_skewed,
            "clock_offset_seconds": summary.clock_offset_seconds,
            "erased": summary.erased.len(),
            "quarantined": summary.quarantined.len(),
            "left_scope": summary.left_scope.len(),
        })
    );
    store.close().map_err(|e| SyncFailed::from(e.to_string()))
}

/// What a user's change of areas or deactivation leaves as it was, said then: a moved
/// monitor's open cases stayed on her due list, where no one of her old community saw them.
const HANDED: &str = "the cases assigned to them (their follow-ups due, their alerts) stay \
    theirs until `vigie user hand-over --from <their id> --to <a successor's id>`";

/// Says on stderr what an administration command did (stdout stays for what scripts read).
fn done(what: &str) {
    eprintln!("vigie: {what}");
}

/// Refuses `out` in the hub's data directory or its key's (`what` is put there: backups,
/// exports). Beside the key, it is readable by whoever takes both (a backup) or lies in the clear
/// where the key is kept (an export); inside the data, it goes with every copy of the data
/// and with the disk it should survive.
fn apart_from_the_hub(
    data: &std::path::Path,
    key: &vigie_server::hub_key::KeyOptions,
    out: &std::path::Path,
    what: &str,
) -> Result<(), String> {
    let key_dir = (!key.unencrypted && key.key_hex.is_none()).then(|| {
        key.key_file
            .clone()
            .unwrap_or_else(|| vigie_server::hub_key::default_key_file(data))
            .parent()
            .map(std::path::Path::to_path_buf)
            .unwrap_or_default()
    });
    // By path, and by which directory each existing one above `out` is (a bind mount, or a
    // second name the paths do not show, of the data or the key's directory).
    let out_real = vigie_server::hub_key::resolved(out);
    let within = |outer: &std::path::Path| {
        out_real.starts_with(vigie_server::hub_key::resolved(outer))
            || same_directory_above(&out_real, outer)
    };
    if key_dir.as_deref().is_some_and(within) {
        return Err(format!(
            "{} is in the directory of the hub's key: keep {what} apart from the key (whoever \
             copies the one would take the other)",
            out.display()
        ));
    }
    if within(data) {
        return Err(format!(
            "{} is inside the hub's data directory: put {what} on another disk or machine",
            out.display()
        ));
    }
    Ok(())
}

/// Whether `outer` is, as the file system knows it (device and inode), one of the existing
/// directories `path` is in, or `path` itself.
fn same_directory_above(path: &std::path::Path, outer: &std::path::Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let Ok(target) = std::fs::metadata(outer) else {
            return false;
        };
        path.ancestors().any(|dir| {
            std::fs::metadata(dir).is_ok_and(|m| m.dev() == target.dev() && m.ino() == target.ino())
        })
    }
    #[cfg(not(unix))]
    {
        let _ = (path, outer);
        false
    }
}

/// `vigie backup`: the embedded hub's two files, copied from one moment while it runs.
fn backup(hub: &HubData, out: &std::path::Path) -> Result<(), String> {
    let (data, key) = match hub.database()? {
        Database::Postgres { .. } => {
            return Err(
                "a PostgreSQL hub is backed up with pg_dump (README, \"Backups and \
                        restore\"); keep the hub's key apart from the dump"
                    .into(),
            );
        }
        Database::Embedded { data, key } => (data, key),
    };
    vigie_server::existing_hub(&data).map_err(|e| e.to_string())?;
    apart_from_the_hub(&data, &key, out, "backups")?;
    let encryption = vigie_server::hub_encryption(&data, &key).map_err(|e| e.to_string())?;
    // A copy of every child's data leaves the hub's directory: the journal says so, before
    // the copy is marked whole. The backup is whole whether or not it can (a full disk): it is
    // reported either way.
    let database = hub.database()?;
    let mut journaled = || match database.open_existing() {
        Ok(backend) => journal(&*backend, None, "hub_backup", None, COMMAND_LINE),
        // The journal is in the files an earlier version's server still serves, which this
        // one does not upgrade under it: the backup is whole, and the reason is said.
        Err(e @ vigie_server::HubOpenError::UpgradeBesideServe(_)) => {
            eprintln!("vigie: {e}");
            missed_entry("hub_backup");
        }
        Err(_) => missed_entry("hub_backup"),
    };
    let report = vigie_server::backup::backup(&data, &encryption, out, &mut journaled)
        .map_err(|e| e.to_string())?;
    let at = chrono::DateTime::from_timestamp_millis(report.at_ms)
        .map(|t| t.to_rfc3339())
        .unwrap_or_default();
    println!("backup of the hub as it was at {at}:");
    for (file, bytes) in &report.files {
        println!("  {} ({bytes} bytes)", file.display());
    }
    let (count, bytes) = report.attachments;
    println!(
        "  {} ({count} attachment files, {bytes} bytes)",
        vigie_core::store::attachments_dir(&out.join("hub.db")).display()
    );
    if matches!(encryption, Encryption::Key(_)) {
        println!(
            "encrypted with the hub's key, which is not in the backup: keep the key file \
             apart from it (without the key the backup cannot be read)"
        );
    }
    let journal = match vigie_server::irreversible::journal_path(&data, &key) {
        Ok(file) => format!("from its journal {}, beside its key file", file.display()),
        Err(why) => format!("only if a journal is kept, and none is: {why}"),
    };
    println!(
        "restoring it undoes what was done on the hub after {at} (users, quarantine \
         decisions, reissued tokens...), except erasures and device revocations: the restored \
         hub does them again {journal}; devices send again the records they sent since. See \
         {} and README, \"Backups and restore\".",
        out.join("RESTORE.txt").display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::secrets_in_arguments;

    fn said(args: &[&str]) -> usize {
        let said = secrets_in_arguments(args.iter().map(std::ffi::OsString::from));
        // Each warning reads as one sentence, with no run of spaces from a line's wrap.
        assert!(said.iter().all(|s| !s.contains("  ")), "{said:?}");
        said.len()
    }

    /// A password in `--database` and a key in `--key-hex` are said; a URL without a password
    /// (peer authentication, a password in `VIGIE_DATABASE`) is not.
    #[test]
    fn secrets_on_the_command_line_are_said() {
        assert_eq!(
            said(&["serve", "--database", "postgres://vigie:pw@db:5432/r"]),
            1
        );
        assert_eq!(said(&["serve", "--database=postgres://vigie:pw@db/r"]), 1);
        assert_eq!(
            said(&["serve", "--database", "postgres://vigie@db:5432/r"]),
            0
        );
        assert_eq!(said(&["serve", "--data", "vigie-data"]), 0);
        assert_eq!(said(&["serve", "--key-hex", &"ab".repeat(32)]), 1);
    }
}
