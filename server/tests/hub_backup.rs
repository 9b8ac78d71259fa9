//! `vigie backup` of a running embedded hub, and a restore from it: the copy holds what the
//! hub's WAL held, stays encrypted without the key, and devices that sent records after it
//! send them again to the restored hub.

use crate::common;

use common::*;
use std::path::Path;
use tempfile::TempDir;
use uuid::Uuid;
use vigie_core::sync::{AttachmentSyncOptions, Recipient};
use vigie_core::*;

const BEFORE: &str = "Awa Sauvegardée-Kouassi";
const AFTER: &str = "Aya Après-Sauvegarde";
/// The plaintext of the consent forms attached, never in a file of the hub or the backup.
const FORM: &[u8] = b"%PDF-1.4 consent form of a child, before and after the backup";

fn consent_form() -> NewAttachment {
    NewAttachment {
        kind: AttachmentKind::Document,
        media_type: "application/pdf".into(),
        caption: "Consentement".into(),
    }
}

/// Uploads what `device` captured and the hub lacks; the ids uploaded.
fn upload(device: &mut Device, url: &str) -> Vec<Uuid> {
    let client = device.client(url);
    client
        .sync_attachments(&mut device.store, &AttachmentSyncOptions::default(), |_| {})
        .unwrap()
        .uploaded
}

/// Whether a file under `dir` holds `needle`.
fn holds(dir: &Path, needle: &str) -> bool {
    std::fs::read_dir(dir).unwrap().any(|entry| {
        let path = entry.unwrap().path();
        if path.is_dir() {
            return holds(&path, needle);
        }
        let bytes = std::fs::read(path).unwrap();
        bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
    })
}

#[test]
fn a_running_hub_is_backed_up_whole_and_a_restore_gets_back_what_devices_sent_since() {
    if postgres_server().is_some() {
        return; // The embedded hub only: PostgreSQL is backed up with pg_dump.
    }
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let mut hub = Hub::start(&data);
    let mut monitor = Device::enrol(
        dir.path(),
        &hub.data,
        "monitor",
        Role::CommunityMonitor,
        &[C01],
        1,
    );
    let by = monitor.user();
    let before = monitor
        .store
        .create(&child(area(C01), BEFORE, by))
        .unwrap()
        .id;
    let before_form = monitor
        .store
        .add_attachment(before, &consent_form(), FORM)
        .unwrap()
        .id;
    assert_eq!(monitor.sync(&hub.url).unwrap().accepted, 1);
    assert_eq!(upload(&mut monitor, &hub.url), [before_form]);
    // A supervisor's tablet, enrolled before the backup, to read the forms after the restore.
    let mut supervisor = Device::enrol(
        dir.path(),
        &hub.data,
        "supervisor",
        Role::Supervisor,
        &[REGION],
        3,
    );
    supervisor.sync(&hub.url).unwrap();
    // A phone whose case reaches the hub before the backup, and its photo only after it.
    let mut late = Device::enrol(
        dir.path(),
        &hub.data,
        "late",
        Role::CommunityMonitor,
        &[C01],
        4,
    );
    late.sync(&hub.url).unwrap();
    let by = late.user();
    let late_case = late.store.create(&child(area(C01), BEFORE, by)).unwrap().id;
    let late_form = late
        .store
        .add_attachment(late_case, &consent_form(), FORM)
        .unwrap()
        .id;
    assert_eq!(late.sync(&hub.url).unwrap().accepted, 1);

    // A phone enrolled before the backup that syncs only after it.
    let unused = add_user(&data, "Moniteur tardif", Role::CommunityMonitor, &[C01]);
    let unused_token = enrol(&data, unused);

    // While the hub runs: its last writes are in its WAL, not yet in hub.db.
    let out = dir.path().join("backup");
    let data_arg = data.to_str().unwrap();
    let printed = backup(&data, &out);
    assert!(printed.contains("undoes"), "{printed}");
    assert!(printed.contains("not in the backup"), "{printed}");
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["RESTORE.txt", "devices.db", "hub.db", "hub.db.attachments"],
        "no key"
    );
    assert!(printed.contains("1 attachment files"), "{printed}");
    let forms = out.join("hub.db.attachments");
    assert_eq!(std::fs::read_dir(&forms).unwrap().count(), 1);
    assert!(!holds(&out, BEFORE), "encrypted");
    // Restored, a token unused at the backup is not refused for its age: it may have been
    // used since, and its device must be able to send again what the restore lost.
    {
        let encryption = vigie_server::hub_encryption(&data, &hub.key_options()).unwrap();
        let copy =
            vigie_core::store::open_keyed_connection(&out.join("devices.db"), &encryption).unwrap();
        let device = vigie_server::auth::Token::parse(&unused_token)
            .unwrap()
            .device;
        let until: Option<i64> = copy
            .query_row(
                "SELECT unused_until_ms FROM devices WHERE device = ?1",
                [device.as_bytes()],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(until, None);
    }
    assert!(!holds(&forms, std::str::from_utf8(FORM).unwrap()), "sealed");
    // A backup never writes over another.
    let again = backup_output(&data, &out);
    assert!(!again.status.success());
    // Never beside the key, nor inside the data.
    let key_dir = vigie_server::hub_key::default_key_file(&data);
    for (inside, why) in [
        (key_dir.with_file_name("backup"), "key"),
        (data.join("backup"), "data directory"),
        // Through a directory that does not exist: `missing/..` is where `missing` would be.
        (
            dir.path()
                .join("missing")
                .join("..")
                .join(data.file_name().unwrap())
                .join("inside"),
            "data directory",
        ),
    ] {
        let refused = backup_output(&data, &inside);
        assert!(!refused.status.success());
        let said = String::from_utf8_lossy(&refused.stderr);
        assert!(said.contains(why), "{said}");
        assert!(!inside.exists());
    }
    // A place that cannot be written is named, whatever stops it.
    let blocked = dir.path().join("not-a-directory");
    std::fs::write(&blocked, b"a file").unwrap();
    let inside = blocked.join("backup");
    let refused = backup_output(&data, &inside);
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains(inside.to_str().unwrap()), "{said}");

    // After the backup: another case reaches the hub.
    let after = monitor
        .store
        .create(&child(area(C01), AFTER, monitor.user()))
        .unwrap()
        .id;
    let after_form = monitor
        .store
        .add_attachment(after, &consent_form(), FORM)
        .unwrap()
        .id;
    assert_eq!(monitor.sync(&hub.url).unwrap().accepted, 1);
    assert_eq!(upload(&mut monitor, &hub.url), [after_form]);
    assert_eq!(upload(&mut late, &hub.url), [late_form]);
    // A day's work after it, synced as it went, some of it edited after its sync: more records
    // than a session pushes beyond its outbox.
    let mut day = Vec::new();
    for i in 0..24 {
        let by = monitor.user();
        day.push(
            monitor
                .store
                .create(&child(area(C01), AFTER, by))
                .unwrap()
                .id,
        );
        if i % 6 == 5 {
            monitor.sync(&hub.url).unwrap();
        }
    }
    for id in day.iter().step_by(5) {
        let mut case: ChildCase = monitor.store.get(*id).unwrap();
        case.hours_per_week += 6;
        monitor.store.update(&case).unwrap();
    }
    assert_eq!(monitor.sync(&hub.url).unwrap().pending, 0);
    // A phone enrolled after the backup, with a case it seals to the hub in a bundle.
    let mut newcomer = Device::enrol(
        dir.path(),
        &hub.data,
        "newcomer",
        Role::CommunityMonitor,
        &[C01],
        2,
    );
    newcomer.sync(&hub.url).unwrap();
    let by = newcomer.user();
    newcomer.store.create(&child(area(C01), AFTER, by)).unwrap();
    let (bundle, _) = newcomer
        .store
        .export_bundle(0, &[], &[Recipient::Hub])
        .unwrap();
    let bundle_file = dir.path().join("newcomer.vigie");
    std::fs::write(&bundle_file, bundle).unwrap();
    hub.stop();

    // Restored, as RESTORE.txt says, on another machine: the backup's two files and its
    // attachments replace the hub's.
    std::fs::remove_dir_all(data.join("hub.db.attachments")).unwrap();
    std::fs::create_dir(data.join("hub.db.attachments")).unwrap();
    for file in std::fs::read_dir(&forms).unwrap() {
        let file = file.unwrap();
        std::fs::copy(
            file.path(),
            data.join("hub.db.attachments").join(file.file_name()),
        )
        .unwrap();
    }
    restore_backup(&data, &out);
    hub.restart();
    // Everything the hub lost comes back in one session, none of it reported refused.
    let summary = monitor.sync(&hub.url).unwrap();
    assert!(summary.refused.is_empty(), "{summary:?}");
    assert_eq!(summary.pending, 0);
    assert!(monitor.store.refused_records().unwrap().is_empty());
    // The form sent after the backup is sent again with its case: the hub asked for
    // everything the phone holds (the one in the backup it says it holds already).
    let mut again = upload(&mut monitor, &hub.url);
    again.sort();
    let mut both = vec![before_form, after_form];
    both.sort();
    assert_eq!(again, both);
    // The late phone sent nothing since the backup but the photo: the restored hub tells it it
    // was restored, and it offers the photo again.
    late.sync(&hub.url).unwrap();
    let mut again = upload(&mut late, &hub.url);
    again.sort();
    assert_eq!(again, [late_form]);
    supervisor.sync(&hub.url).unwrap();
    let fetched = supervisor
        .client(&hub.url)
        .sync_attachments(
            &mut supervisor.store,
            &AttachmentSyncOptions {
                policy: DownloadPolicy::Eager,
                ..Default::default()
            },
            |_| {},
        )
        .unwrap();
    assert!(fetched.failed.is_empty(), "{fetched:?}");
    for form in [before_form, after_form, late_form] {
        assert_eq!(supervisor.store.read_attachment(form).unwrap(), FORM);
    }
    hub.stop();
    let log = hub.log_tail(200);
    assert!(
        log.contains("a device is ahead of this hub")
            && log.contains("this hub was restored from a backup"),
        "the restored hub says what it found: {log}"
    );
    // The restored hub never enrolled the newcomer: its bundle is refused as such.
    let refused = vigie_output(&[
        "bundle",
        "import",
        "--data",
        data_arg,
        bundle_file.to_str().unwrap(),
    ]);
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("is not enrolled on this hub"), "{said}");
    let store = hub.open_store();
    assert_eq!(store.get::<ChildCase>(before).unwrap().name, BEFORE);
    assert_eq!(
        store.get::<ChildCase>(after).unwrap().name,
        AFTER,
        "sent again by the device"
    );
    for id in &day {
        assert_eq!(
            store.get::<ChildCase>(*id).unwrap(),
            monitor.store.get::<ChildCase>(*id).unwrap()
        );
    }
    drop(store);

    // A photo file the hub lost (a directory where its file was) is not copied: the hub
    // restored from this backup finds it missing and asks the phones for it again.
    let photo = std::fs::read_dir(data.join("hub.db.attachments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .next()
        .expect("a photo file");
    std::fs::remove_file(&photo).unwrap();
    std::fs::create_dir(&photo).unwrap();
    let partial = dir.path().join("partial-backup");
    let made = backup_output(&data, &partial);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    assert!(
        !partial
            .join("hub.db.attachments")
            .join(photo.file_name().unwrap())
            .exists()
    );
}

/// A phone lost after last night's backup, and revoked, had sent new cases that a colleague's
/// phone received. The hub is restored: those cases will never come from their maker, and
/// the colleague's phone cannot send its changes. They are not taken for the hub's (the
/// colleague's copy reported rebuilt and left the outbox, the hub never having them): they
/// stay refused (`AuthorRevoked`), offered to no peer, listed for the app until let go, and a
/// supervisor records them again.
/// Two backups into one new directory at once (a script run twice): one makes it, the other
/// says the directory is not empty. Both failed, the copy's error said of the hub's store that
/// it was cut and should be removed, or both said they made it, writing the same files.
#[test]
fn two_backups_into_one_directory_at_once_make_one() {
    if postgres_server().is_some() {
        return; // The embedded hub's files only.
    }
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let _monitor = Device::enrol(dir.path(), &data, "m1", Role::CommunityMonitor, &[C01], 1);
    for round in 0..4 {
        let out = dir.path().join(format!("backup-{round}"));
        let runs: Vec<_> = (0..2)
            .map(|_| {
                let (data, out) = (data.clone(), out.clone());
                std::thread::spawn(move || backup_output(&data, &out))
            })
            .collect();
        let outputs: Vec<_> = runs.into_iter().map(|run| run.join().unwrap()).collect();
        let said: Vec<String> = outputs.iter().map(common::stderr).collect();
        assert_eq!(
            outputs.iter().filter(|o| o.status.success()).count(),
            1,
            "{said:?}"
        );
        assert!(
            said.iter().any(|s| s.contains("must be new or empty")),
            "{said:?}"
        );
        let mut names: Vec<String> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["RESTORE.txt", "devices.db", "hub.db", "hub.db.attachments"]
        );
    }
}

/// The sample area tree with one more community in Soubré's district, written to `dir`.
fn tree_with_community(dir: &Path, community: &str) -> std::path::PathBuf {
    let text = std::fs::read_to_string(common::reference::SAMPLE_AREAS).unwrap();
    let mut tree: serde_json::Value = serde_json::from_str(&text).unwrap();
    let district = tree["administrative_areas"]["children"][0]["children"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|d| d["code"] == DISTRICT)
        .unwrap();
    district["children"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "code": community,
            "labels": { "fr": "Communauté ajoutée", "en": "Added community" },
        }));
    let file = dir.join(format!("{community}.json"));
    std::fs::write(&file, tree.to_string()).unwrap();
    file
}

/// After a restore, reference data published again (as README says: do again what was done
/// after the backup) takes the number of a version the restore lost: a phone that received the
/// lost one takes the new one in its place (it refused it at every sync, "reusing sequence
/// numbers", and kept the lost area tree for good).
#[test]
fn reference_data_published_again_after_a_restore_reaches_the_phones_that_had_the_lost_one() {
    if postgres_server().is_some() {
        return; // The embedded hub's files only.
    }
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let mut supervisor = Device::enrol(dir.path(), &data, "sup", Role::Supervisor, &[DISTRICT], 1);
    let mut hub = Hub::start(&data);
    supervisor.sync(&hub.url).unwrap();
    let out = dir.path().join("backup");
    backup(&data, &out);
    let lost = tree_with_community(dir.path(), "CI-R1-D1-C21");
    common::reference::publish(&data, &[lost.to_str().unwrap()]);
    let summary = supervisor.sync(&hub.url).unwrap();
    assert!(summary.failed.is_empty(), "{summary:?}");
    hub.stop();
    restore_backup(&data, &out);
    hub.restart();
    let again = tree_with_community(dir.path(), "CI-R1-D1-C22");
    common::reference::publish(&data, &[again.to_str().unwrap()]);
    for _ in 0..2 {
        let summary = supervisor.sync(&hub.url).unwrap();
        assert!(summary.failed.is_empty(), "{summary:?}");
    }
    let user = supervisor.user();
    let made = supervisor
        .store
        .create(&child(area("CI-R1-D1-C22"), AFTER, user));
    assert!(made.is_ok(), "{made:?}");
    assert!(matches!(
        supervisor
            .store
            .create(&child(area("CI-R1-D1-C21"), AFTER, user)),
        Err(Error::Validation(_))
    ));
    assert!(supervisor.sync(&hub.url).unwrap().refused.is_empty());
    hub.stop();
}

#[test]
fn after_a_restore_a_revoked_phone_s_new_cases_stay_flagged_on_its_colleagues_phones() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let mut colleague = Device::enrol(dir.path(), &data, "col", Role::CommunityMonitor, &[C01], 1);
    let mut hub = Hub::start(&data);
    colleague.sync(&hub.url).unwrap();
    let out = dir.path().join("backup");
    backup(&data, &out);
    let lost_token = enrol(&data, colleague.user());
    let mut lost = Device::open(
        dir.path(),
        "lost",
        &lost_token,
        Role::CommunityMonitor,
        &[C01],
        2,
    );
    let made = lost
        .store
        .create(&child(area(C01), AFTER, lost.user()))
        .unwrap()
        .id;
    lost.sync(&hub.url).unwrap();
    colleague.sync(&hub.url).unwrap();
    assert!(colleague.has(made));
    assert!(revoke(&data, lost.token.device));
    hub.stop();
    restore_backup(&data, &out);
    hub.restart();

    let mut refused = Vec::new();
    for _ in 0..3 {
        let summary = colleague.sync(&hub.url).unwrap();
        assert!(!summary.rebuilt.contains(&made), "{summary:?}");
        refused.extend(summary.refused);
    }
    assert!(
        refused.contains(&(made, vigie_core::sync::Refusal::AuthorRevoked)),
        "{refused:?}"
    );
    assert_eq!(colleague.store.refused_records().unwrap(), vec![made]);
    assert!(colleague.store.hub_pending(made).unwrap());
    colleague.store.discard_refused_changes(made).unwrap();
    assert!(!colleague.has(made));
    hub.stop();
}

/// An operator puts the new `vigie` in place and runs one of its commands before restarting
/// the service: the files an earlier version's `vigie serve` still serves are not upgraded under
/// it (that server would go on writing them as its version did, which no later start writes
/// again: the district's overview failed for good). A backup is still taken, of the files as
/// they are, even of a registry from before tokens had an end; once the server is stopped, the
/// command upgrades them, and a token the earlier version issued and no device used is good
/// for 14 days from then.
#[test]
fn an_earlier_versions_files_are_not_upgraded_under_its_running_serve() {
    if postgres_server().is_some() {
        return; // The embedded hub's files only.
    }
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let mut hub = Hub::start(&data);
    let user = add_user(&data, "Moniteur du tiroir", Role::CommunityMonitor, &[C01]);
    let token = enrol(&data, user);
    let device = vigie_server::auth::Token::parse(&token).unwrap().device;
    let encryption = vigie_server::hub_encryption(&data, &hub.key_options()).unwrap();
    hub.stop();
    let open = |name: &str| {
        vigie_core::store::open_keyed_connection(&data.join(name), &encryption).unwrap()
    };
    let version = |name: &str| -> i64 {
        open(name)
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap()
    };
    // The files as the earlier version left them: the store one schema behind (its last step,
    // 36, undone: the case a merged duplicate names, a visit's alert with and without cases),
    // the registry from before tokens had an end.
    open("hub.db")
        .execute_batch(&format!(
            "ALTER TABLE child_index DROP COLUMN merged_into;
             ALTER TABLE alert_index DROP COLUMN without_cases;
             ALTER TABLE alert_index DROP COLUMN with_cases;
             PRAGMA user_version = {}",
            vigie_core::store::SCHEMA_VERSION - 1
        ))
        .unwrap();
    let registry_before = vigie_server::auth::REGISTRY_SCHEMA_VERSION - 2;
    open("devices.db")
        .execute_batch(&format!(
            "ALTER TABLE devices DROP COLUMN unused_until_ms; PRAGMA user_version = {registry_before};"
        ))
        .unwrap();
    let data_arg = data.to_str().unwrap();
    {
        // Its server still runs.
        let _serving = vigie_server::lock_for_serving(&data).unwrap();
        let refused = vigie_output(&["user", "list", "--data", data_arg]);
        assert!(!refused.status.success());
        let said = stderr(&refused);
        assert!(
            said.contains("a vigie serve of an earlier version runs") && said.contains("stop it"),
            "{said}"
        );
        assert_eq!(version("hub.db"), vigie_core::store::SCHEMA_VERSION - 1);
        assert_eq!(version("devices.db"), registry_before);
        // The backup is whole; the audit log, in the files the server serves, cannot take its
        // entry without upgrading them: said, and the command fails for the operator to note it.
        let out = dir.path().join("backup");
        let taken = backup_output(&data, &out);
        let said = stderr(&taken);
        assert!(!taken.status.success());
        assert!(
            said.contains("done (hub_backup)")
                && said.contains("a vigie serve of an earlier version runs"),
            "{said}"
        );
        assert_eq!(
            vigie_core::store::open_keyed_connection(&out.join("devices.db"), &encryption)
                .unwrap()
                .query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
                .unwrap(),
            registry_before
        );
    }
    // Stopped: the command upgrades the files.
    assert!(vigie(&["user", "list", "--data", data_arg]).contains("Moniteur du tiroir"));
    assert_eq!(version("hub.db"), vigie_core::store::SCHEMA_VERSION);
    assert_eq!(
        version("devices.db"),
        vigie_server::auth::REGISTRY_SCHEMA_VERSION
    );
    let until: i64 = open("devices.db")
        .query_row(
            "SELECT unused_until_ms FROM devices WHERE device = ?1",
            [device.as_bytes()],
            |r| r.get(0),
        )
        .unwrap();
    let from_now = until - chrono::Utc::now().timestamp_millis();
    assert!(
        (13 * 86_400_000..=14 * 86_400_000).contains(&from_now),
        "{from_now}"
    );
}
