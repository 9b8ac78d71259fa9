//! `vigie`: run a hub, administer its users and devices, and sync a store with a hub.

use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use uuid::Uuid;
use vigie_core::sync::{HubLimits, SyncOptions};
use vigie_core::{
    AreaLevel, Encryption, ExportFormat, ExportOptions, ReferenceFile, ReferenceType, Role, Store,
    StoreConfig, User,
};
use vigie_server::Database;
use vigie_server::auth::Token;
use vigie_server::backend::Backend;
use vigie_server::client::HubClient;

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
    /// 64 hex digits: the key of the hub's embedded store (else the disk's own protection).
    #[arg(long, env = "VIGIE_HUB_KEY", hide_env_values = true)]
    key_hex: Option<String>,
}

impl HubData {
    fn database(&self) -> Result<Database, String> {
        Database::choose(
            self.database.as_deref(),
            &self.data,
            encryption(self.key_hex.as_deref())?,
        )
        .map_err(|e| e.to_string())
    }

    /// The hub's storage, for an administration command.
    fn open(&self) -> Result<Box<dyn Backend>, String> {
        self.database()?.open().map_err(|e| e.to_string())
    }
}

#[derive(Subcommand)]
enum Command {
    /// Serve sync over HTTP, on the embedded SQLite store or on PostgreSQL.
    Serve {
        #[command(flatten)]
        hub: HubData,
        #[arg(long, default_value = "127.0.0.1:8470")]
        listen: String,
    },
    /// Manage users (their role and areas decide what their devices receive).
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Enrol and revoke devices.
    Device {
        #[command(subcommand)]
        command: DeviceCommand,
    },
    /// Sync a device store with a hub.
    Sync {
        #[arg(long)]
        hub: String,
        #[arg(long)]
        store: PathBuf,
        /// The enrolment token given by `vigie device enrol`.
        #[arg(long, env = "VIGIE_TOKEN", hide_env_values = true)]
        token: String,
        /// 64 hex digits: the store's key; without it the store is unencrypted (tools and tests).
        #[arg(long, env = "VIGIE_STORE_KEY", hide_env_values = true)]
        key_hex: Option<String>,
        #[arg(long, default_value_t = 256 * 1024)]
        max_message_bytes: usize,
    },
    /// Erase a child case everywhere: on the hub now, on every device at its next sync, and a
    /// tombstone stops any old copy from coming back. `--by` is the supervisor who decided it.
    Erase {
        #[command(flatten)]
        hub: HubData,
        #[arg(long)]
        record: Uuid,
        #[arg(long)]
        by: Uuid,
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
    /// Export the hub's records for analysis, one file per record kind, pseudonymised unless
    /// `--personal` (names, dates of birth, coordinates, contacts and free text).
    Export {
        #[command(flatten)]
        hub: HubData,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, value_enum, default_value = "csv")]
        format: FormatArg,
        /// Include personal data (run by the hub's administrator, acting as a supervisor).
        #[arg(long)]
        personal: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    Csv,
    Json,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Replace a user's areas (records of areas they lose leave their devices).
    Areas {
        #[command(flatten)]
        hub: HubData,
        #[arg(long)]
        user: Uuid,
        #[arg(long = "area", required = true)]
        areas: Vec<String>,
    },
    Add {
        #[command(flatten)]
        hub: HubData,
        #[arg(long)]
        name: String,
        #[arg(long, value_enum)]
        role: RoleArg,
        /// An area code (repeat for several).
        #[arg(long = "area", required = true)]
        areas: Vec<String>,
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
    /// One JSON line per reference document the hub holds: type, key, versions (built in or
    /// published), and for an area tree the number of areas of each level.
    List {
        #[command(flatten)]
        hub: HubData,
    },
}

#[derive(Subcommand)]
enum QuarantineCommand {
    /// One JSON line per entry: entry, record, device, user, received_ms, bytes.
    List {
        #[command(flatten)]
        hub: HubData,
    },
    /// Merge an entry's changes into its record.
    Accept {
        #[command(flatten)]
        hub: HubData,
        #[arg(long)]
        entry: i64,
    },
    /// Drop an entry.
    Reject {
        #[command(flatten)]
        hub: HubData,
        #[arg(long)]
        entry: i64,
    },
}

#[derive(Subcommand)]
enum DeviceCommand {
    /// Enrol a device for a user; prints its token once.
    Enrol {
        #[command(flatten)]
        hub: HubData,
        #[arg(long)]
        user: Uuid,
    },
    Revoke {
        #[command(flatten)]
        hub: HubData,
        #[arg(long)]
        device: Uuid,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum RoleArg {
    Inspector,
    CommunityMonitor,
    Supervisor,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::Inspector => Role::Inspector,
            RoleArg::CommunityMonitor => Role::CommunityMonitor,
            RoleArg::Supervisor => Role::Supervisor,
        }
    }
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

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            // automerge logs hostile input at ERROR level: a flood an attacker controls. The hub
            // reports refusals itself.
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,automerge=off".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("vigie: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Serve { hub, listen } => serve(&hub.database()?, &listen),
        Command::User {
            command:
                UserCommand::Add {
                    hub,
                    name,
                    role,
                    areas,
                },
        } => {
            let area_codes: Vec<&str> = areas.iter().map(String::as_str).collect();
            let backend = hub.open()?;
            let user = backend
                .add_user(&User::new(&name, role.into(), &area_codes))
                .map_err(|e| e.to_string())?;
            warn_unplaced_areas(&*backend, &areas)?;
            println!("{}", user.id);
            Ok(())
        }
        Command::User {
            command: UserCommand::Areas { hub, user, areas },
        } => {
            let backend = hub.open()?;
            backend
                .set_user_areas(user, &areas)
                .map_err(|e| e.to_string())?;
            warn_unplaced_areas(&*backend, &areas)
        }
        Command::Device {
            command: DeviceCommand::Enrol { hub, user },
        } => {
            let token = hub.open()?.enrol(user).map_err(|e| e.to_string())?;
            println!("{}", token.to_text());
            Ok(())
        }
        Command::Device {
            command: DeviceCommand::Revoke { hub, device },
        } => {
            if !hub.open()?.revoke(device).map_err(|e| e.to_string())? {
                return Err("no such enrolled device, or already revoked".into());
            }
            Ok(())
        }
        Command::Erase { hub, record, by } => {
            if !hub.open()?.erase(by, record).map_err(|e| e.to_string())? {
                eprintln!("vigie: no such record (a tombstone stands for it all the same)");
            }
            Ok(())
        }
        Command::Quarantine { command } => quarantine(command),
        Command::Reference { command } => reference(command),
        Command::Sync {
            hub,
            store,
            token,
            key_hex,
            max_message_bytes,
        } => sync(
            &hub,
            store,
            &token,
            encryption(key_hex.as_deref())?,
            max_message_bytes,
        ),
        Command::Export {
            hub,
            out,
            format,
            personal,
        } => {
            // Exports read the embedded store's indexes: PostgreSQL's records are copied into
            // a temporary one first (encrypted with a key that lives only in this process).
            let (store, _scratch) = match hub.database()? {
                Database::Postgres { url, .. } => {
                    let scratch = tempfile::tempdir().map_err(|e| e.to_string())?;
                    let mut key = [0u8; 32];
                    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
                    let mut store = vigie_server::open_store(scratch.path(), Encryption::Key(key))
                        .map_err(|e| e.to_string())?;
                    vigie_server::postgres::Postgres::connect(&url, 1)
                        .map_err(|e| e.to_string())?
                        .copy_into(&mut store)
                        .map_err(|e| e.to_string())?;
                    (store, Some(scratch))
                }
                Database::Embedded { data, encryption } => (
                    vigie_server::open_store(&data, encryption).map_err(|e| e.to_string())?,
                    None,
                ),
            };
            let format = match format {
                FormatArg::Csv => ExportFormat::Csv,
                FormatArg::Json => ExportFormat::Json,
            };
            let options = ExportOptions {
                include_personal_data: personal,
            };
            let paths = store
                .export_to_dir(&out, format, options)
                .map_err(|e| e.to_string())?;
            for path in paths {
                println!("{}", path.display());
            }
            Ok(())
        }
    }
}

/// A user's area code matches records at the level the area tree of its country gives it: a
/// code found in no published tree gives no access (until a tree naming it is published).
fn warn_unplaced_areas(backend: &dyn Backend, areas: &[String]) -> Result<(), String> {
    let reference = backend.reference().map_err(|e| e.to_string())?;
    for code in areas {
        if reference.grants_of(code).is_empty() {
            eprintln!(
                "vigie: warning: area {code} is in no published area tree: it gives no access \
                 until a tree naming it is published (vigie reference publish)"
            );
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
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                let file =
                    ReferenceFile::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
                parsed.push(file);
            }
            let backend = hub.open()?;
            for file in &parsed {
                let version = backend.publish_reference(file).map_err(|e| e.to_string())?;
                println!(
                    "{}",
                    serde_json::json!({
                        "type": file.content.reference_type().as_str(),
                        "key": file.key,
                        "version": version,
                    })
                );
            }
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
                    let mut line = serde_json::json!({
                        "type": ty.as_str(),
                        "key": key,
                        "versions": versions,
                    });
                    if let Some(tree) = reference.area_tree(key) {
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
    let (hub, entry, accept) = match command {
        QuarantineCommand::List { hub } => {
            for q in hub.open()?.quarantined().map_err(|e| e.to_string())? {
                println!(
                    "{}",
                    serde_json::json!({
                        "entry": q.entry,
                        "record": q.record,
                        "device": q.device,
                        "user": q.user,
                        "received_ms": q.received_ms,
                        "bytes": q.changes.len(),
                    })
                );
            }
            return Ok(());
        }
        QuarantineCommand::Accept { hub, entry } => (hub, entry, true),
        QuarantineCommand::Reject { hub, entry } => (hub, entry, false),
    };
    if !hub
        .open()?
        .review_quarantined(entry, accept)
        .map_err(|e| e.to_string())?
    {
        return Err("no such quarantine entry".into());
    }
    Ok(())
}

fn serve(database: &Database, listen: &str) -> Result<(), String> {
    let hub = Arc::new(
        vigie_server::open_hub(database, HubLimits::default()).map_err(|e| e.to_string())?,
    );
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let router = vigie_server::http::router(hub.clone());
    let served = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        let address = listener.local_addr().map_err(|e| e.to_string())?;
        // Tests and scripts read this line to find the port.
        println!("vigie hub listening on http://{address}");
        let _ = std::io::stdout().flush();
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .map_err(|e| e.to_string())
    });
    // The storage is closed outside the runtime: PostgreSQL's client may not block inside it.
    drop(runtime);
    drop(hub);
    served
}

fn sync(
    hub: &str,
    path: PathBuf,
    token: &str,
    encryption: Encryption,
    max_message_bytes: usize,
) -> Result<(), String> {
    let token = Token::parse(token).map_err(|e| e.to_string())?;
    let config = StoreConfig::new(path, encryption, token.user).device(token.device);
    let mut store = Store::open(config).map_err(|e| e.to_string())?;
    if store.device_id() != token.device {
        return Err("this store belongs to another device".into());
    }
    let client = HubClient::new(hub, &token);
    let options = SyncOptions {
        max_message_bytes,
        ..SyncOptions::default()
    };
    let bar = ProgressBar::new_spinner();
    bar.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("valid template"));
    let summary = client
        .sync(&mut store, &options, |s| {
            bar.set_message(format!(
                "{} round trips, {} sent, {} received, {} KiB up, {} KiB down",
                s.round_trips,
                s.accepted,
                s.received,
                s.bytes_sent / 1024,
                s.bytes_received / 1024
            ));
            bar.tick();
        })
        .map_err(|e| e.to_string())?;
    bar.finish_and_clear();
    let refused: Vec<serde_json::Value> = summary
        .refused
        .iter()
        .map(|(id, why)| serde_json::json!({ "record": id, "reason": why.to_string() }))
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
            "refused": refused,
            "failed": failed,
            "clock_skewed": summary.clock_skewed,
        })
    );
    store.close().map_err(|e| e.to_string())
}
