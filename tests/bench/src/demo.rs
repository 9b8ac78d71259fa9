//! `vigie-bench demo`: fills a running hub with a clearly labelled demo district, the reference
//! workload (shared/WORKLOAD.md) at a small scale, sent by simulated phones through real sync.
//!
//! The hub's administration is done as `vigie user add` and `vigie device enrol` do it (on the
//! hub's storage, beside the running hub): the workload's field users are added with their
//! ids, each gets an enrolled device, and each device writes its records in its own encrypted
//! store and syncs them over HTTP (`POST /v1/sync`) like a phone. A supervisor of the region
//! and an administrator get console sign-ins, printed at the end (and kept in
//! `<data>/demo-sign-in.txt` for the next start).
//!
//! Who writes what, so that every push passes the hub's rules: visits come from their
//! visitor's phone (those reviewed are reviewed from the supervisor's once they reached it),
//! cases a monitor identified (not yet verified) from that monitor's phone; workplaces and
//! cases further in the cycle from a supervisor's phone.
//!
//! `vigie-bench demo --hub http://127.0.0.1:8470 --data vigie-data [--database URL]
//! [--scale 0.1] [--seed N] [--phones DIR]`

use crate::BoxResult;
use crate::workload::{AnyRecord, REGION, Workload};
use std::collections::HashMap;
use std::path::PathBuf;
use uuid::Uuid;
use vigie_core::sync::SyncOptions;
use vigie_core::{CaseStatus, Encryption, Role, Store, StoreConfig, User, VisitStatus};
use vigie_server::Database;
use vigie_server::auth::Token;
use vigie_server::client::HubClient;
use vigie_server::console::storage::Account;

pub struct DemoArgs {
    pub hub: String,
    pub data: PathBuf,
    pub database: Option<String>,
    pub scale: f64,
    pub seed: u64,
    pub phones: Option<PathBuf>,
    pub key_hex: Option<String>,
}

/// The demo's console sign-ins.
pub const SUPERVISOR_LOGIN: &str = "demo.superviseur";
pub const ADMIN_LOGIN: &str = "demo.admin";

/// A phone of the demo: its token and store.
struct Phone {
    token: Token,
    store: Store,
}

fn password() -> String {
    // Words a newcomer can type, with enough randomness for a demo on loopback.
    let n = Uuid::new_v4().as_u128();
    format!("vigie-demo-{:06}", n % 1_000_000)
}

pub fn run(args: DemoArgs) -> BoxResult<()> {
    let database = Database::choose(
        args.database.as_deref(),
        &args.data,
        // The hub's key found as `vigie` finds it: the key given, else the key file beside the
        // data directory.
        vigie_server::hub_key::KeyOptions {
            key_hex: args.key_hex.clone(),
            ..Default::default()
        },
    )?;
    let backend = database.open()?;
    // A hub serves a country's records once its area tree is published (as `vigie reference
    // publish reference/areas-CI.json` does).
    if backend.reference()?.area_tree("CI").is_none() {
        let file = vigie_core::reference::ReferenceFile::parse(include_str!(
            "../../../reference/areas-CI.json"
        ))
        .map_err(|e| e.to_string())?;
        backend.publish_references(std::slice::from_ref(&file))?;
    }
    let phones_dir = match &args.phones {
        Some(dir) => dir.clone(),
        None => args.data.join("demo-phones"),
    };
    std::fs::create_dir_all(&phones_dir)?;
    let mut roles: HashMap<Uuid, Role> = HashMap::new();
    let mut phones: HashMap<Uuid, Phone> = HashMap::new();
    let mut supervisor: Option<Uuid> = None;
    let open_phone =
        |user: &User, backend: &dyn vigie_server::backend::Backend| -> BoxResult<Phone> {
            let token = backend.enrol(user.id)?;
            let mut key = [0u8; 32];
            key[..16].copy_from_slice(token.device.as_bytes());
            let store = Store::open(
                StoreConfig::new(
                    phones_dir.join(format!("{}.db", token.device)),
                    Encryption::Key(key),
                    token.user,
                )
                .device(token.device),
            )?;
            Ok(Phone { token, store })
        };
    let mut count = 0usize;
    let mut reviews = Vec::new();
    for record in Workload::new(args.seed, args.scale) {
        match record {
            AnyRecord::User(mut user) => {
                // Labelled: every name says it is the demo's.
                user.name = format!("{} (démo)", user.name);
                let user = backend.add_user(&user)?;
                roles.insert(user.id, user.role);
                if user.role == Role::Supervisor && supervisor.is_none() {
                    supervisor = Some(user.id);
                }
                let phone = open_phone(&user, backend.as_ref())?;
                phones.insert(user.id, phone);
            }
            AnyRecord::Workplace(w) => {
                let author = supervisor.ok_or("the workload has no supervisor")?;
                phones
                    .get_mut(&author)
                    .ok_or("no phone")?
                    .store
                    .create(&w)?;
                count += 1;
            }
            AnyRecord::Visit(v) => {
                // A visit is recorded by its visitor; one reviewed already is submitted from
                // the visitor's phone, and reviewed by the supervisor once it reached them.
                let mut submitted = v.clone();
                if !matches!(v.status, VisitStatus::Draft | VisitStatus::Submitted) {
                    submitted.status = VisitStatus::Submitted;
                    submitted.reviewed_by = None;
                    submitted.review_comment = String::new();
                    reviews.push(v);
                }
                phones
                    .get_mut(&submitted.visitor_id)
                    .ok_or("a visit of a visitor without a phone")?
                    .store
                    .create(&submitted)?;
                count += 1;
            }
            AnyRecord::ChildCase(c) => {
                let monitor = roles.get(&c.identified_by) == Some(&Role::CommunityMonitor)
                    && matches!(c.status, CaseStatus::Identified | CaseStatus::Referred)
                    && c.remediated_on.is_none();
                let author = if monitor {
                    c.identified_by
                } else {
                    supervisor.ok_or("no supervisor")?
                };
                phones
                    .get_mut(&author)
                    .ok_or("no phone")?
                    .store
                    .create(&c)?;
                count += 1;
            }
        }
    }
    eprintln!(
        "demo: {count} records written on {} phones; syncing",
        phones.len()
    );
    let mut sent = 0;
    for phone in phones.values_mut() {
        let client = HubClient::new(&args.hub, &phone.token);
        let summary = client.sync(&mut phone.store, &SyncOptions::default(), |_| {})?;
        say_refused("records of one phone", &summary);
        sent += summary.accepted;
    }
    let supervisor = supervisor.ok_or("the workload has no supervisor")?;
    // The reviews, from the supervisor's phone once the visits reached it.
    let phone = phones.get_mut(&supervisor).ok_or("no phone")?;
    let client = HubClient::new(&args.hub, &phone.token);
    client.sync(&mut phone.store, &SyncOptions::default(), |_| {})?;
    for reviewed in &reviews {
        let mut visit: vigie_core::Visit = phone.store.get(reviewed.id)?;
        visit.status = reviewed.status;
        visit.review_comment = reviewed.review_comment.clone();
        visit.reviewed_by = Some(supervisor);
        phone.store.update(&visit)?;
    }
    let summary = client.sync(&mut phone.store, &SyncOptions::default(), |_| {})?;
    say_refused("reviews", &summary);
    sent += summary.accepted;
    eprintln!(
        "demo: {sent} records accepted by the hub through /v1/sync, {} visits reviewed",
        reviews.len()
    );
    let sign_in = console_account(backend.as_ref(), supervisor, SUPERVISOR_LOGIN)?;
    let admin = backend.add_user(&User::new(
        "Administrateur (démo)",
        Role::Administrator,
        &[],
    ))?;
    let admin_sign_in = console_account(backend.as_ref(), admin.id, ADMIN_LOGIN)?;
    let text = format!(
        "Console: {}/console/\nDemo supervisor (region {REGION}): {SUPERVISOR_LOGIN} / {sign_in}\n\
         Demo administrator (users, devices, reference data): {ADMIN_LOGIN} / {admin_sign_in}\n",
        args.hub.trim_end_matches('/'),
    );
    std::fs::write(args.data.join("demo-sign-in.txt"), &text)?;
    print!("{text}");
    Ok(())
}

/// Gives a user a console sign-in with a fresh password; returns the password.
fn console_account(
    backend: &dyn vigie_server::backend::Backend,
    user: Uuid,
    login: &str,
) -> BoxResult<String> {
    let secret = password();
    backend
        .console()
        .set_account(&Account {
            user,
            login: login.to_string(),
            password_hash: vigie_server::console::session::hash_password(&secret)?,
        })
        .map_err(|e| e.to_string())?;
    Ok(secret)
}

/// `vigie-bench phone --hub URL --store PATH --token TOKEN [--record ID [--set FIELD=TEXT]]`: a
/// phone for the browser tests. Syncs its store (created on first use, encrypted with a key
/// derived from the token's device) with the hub through `/v1/sync`; with `--set`, then writes
/// TEXT in that text field of the record (a case's `name`, a visit's `findings`...) as its user
/// would, and syncs again. Prints one JSON line: the last sync's figures and, with `--record`,
/// that record as the phone holds it (null if it does not).
pub fn phone(
    hub: &str,
    store: &std::path::Path,
    token: &str,
    record: Option<Uuid>,
    new_visit: Option<Uuid>,
    set: Option<(String, String)>,
) -> BoxResult<()> {
    let token = Token::parse(token)?;
    let mut key = [0u8; 32];
    key[..16].copy_from_slice(token.device.as_bytes());
    let mut store = Store::open(
        StoreConfig::new(store, Encryption::Key(key), token.user).device(token.device),
    )?;
    let client = HubClient::new(hub, &token);
    let mut summary = client.sync(&mut store, &SyncOptions::default(), |_| {})?;
    // A visit of this phone's own, at a workplace it holds: a visit's content is its visitor's
    // to write, while a draft (it is submitted once written).
    let record = match new_visit {
        None => record,
        Some(workplace) => {
            let workplace: vigie_core::Workplace = store.get(workplace)?;
            let started = chrono::Utc::now().fixed_offset() - chrono::Duration::hours(1);
            let visit = vigie_core::Visit::new(
                vigie_core::VisitKind::CommunityMonitoring,
                &workplace,
                token.user,
                started,
            );
            Some(store.create(&visit)?.id)
        }
    };
    if let Some(id) = record.filter(|_| set.is_some() || new_visit.is_some()) {
        if let Some((field, text)) = &set {
            match store.kind_of(id)? {
                vigie_core::RecordKind::Visit => {
                    set_text::<vigie_core::Visit>(&mut store, id, field, text)?
                }
                vigie_core::RecordKind::ChildCase => {
                    set_text::<vigie_core::ChildCase>(&mut store, id, field, text)?
                }
                vigie_core::RecordKind::Workplace => {
                    set_text::<vigie_core::Workplace>(&mut store, id, field, text)?
                }
                other => {
                    return Err(format!("--set: a {other:?} is not the phone's to change").into());
                }
            }
        }
        if new_visit.is_some() {
            store.submit_visit(id)?;
        }
        summary = client.sync(&mut store, &SyncOptions::default(), |_| {})?;
        if !summary.refused.is_empty() {
            return Err(format!("--set: the hub refused it: {}", summary.refused[0].1).into());
        }
    }
    let record_id = record;
    let record = match record {
        None => serde_json::Value::Null,
        Some(id) => match store.kind_of(id) {
            Ok(vigie_core::RecordKind::Visit) => {
                serde_json::to_value(store.get::<vigie_core::Visit>(id)?)?
            }
            Ok(vigie_core::RecordKind::ChildCase) => {
                serde_json::to_value(store.get::<vigie_core::ChildCase>(id)?)?
            }
            Ok(vigie_core::RecordKind::Workplace) => {
                serde_json::to_value(store.get::<vigie_core::Workplace>(id)?)?
            }
            _ => serde_json::Value::Null,
        },
    };
    println!(
        "{}",
        serde_json::json!({
            "accepted": summary.accepted,
            "received": summary.received,
            "refused": summary.refused.len(),
            "records": store.records_held()?.len(),
            "id": record_id,
            "record": record,
        })
    );
    store.close()?;
    Ok(())
}

/// Writes `text` in the text field `field` of record `id` (through its serde form, which leaves
/// out the id and version: they are put back).
fn set_text<R>(store: &mut Store, id: Uuid, field: &str, text: &str) -> BoxResult<()>
where
    R: vigie_core::Record + serde::Serialize + serde::de::DeserializeOwned,
{
    let record: R = store.get(id)?;
    let mut value = serde_json::to_value(&record)?;
    let slot = value
        .get_mut(field)
        .filter(|v| v.is_string())
        .ok_or_else(|| format!("--set: {field} is not a text field of the record"))?;
    *slot = text.into();
    let mut changed: R = serde_json::from_value(value)?;
    changed.set_id(record.id());
    changed.set_version(record.version().clone());
    store.update(&changed)?;
    Ok(())
}

/// What the hub refused of a demo phone's sync, said on stderr (the demo goes on).
fn say_refused(what: &str, summary: &vigie_core::sync::SyncSummary) {
    if let Some((_, first)) = summary.refused.first() {
        eprintln!(
            "demo: the hub refused {} {what} (first: {first})",
            summary.refused.len()
        );
    }
}
