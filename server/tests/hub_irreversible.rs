//! Erasures and device revocations survive a restore from a backup: the hub journals them
//! beside its key, apart from the data, and does them again when it opens on an older copy.

use crate::common;

use common::lifecycle::plain_device;
use common::*;
use std::path::{Path, PathBuf};
use tempfile::TempDir;
use uuid::Uuid;
use vigie_core::sync::HubStorage;
use vigie_core::*;

const NAME: &str = "Awa Effacée-Kouassi";

/// Whether a table of the export in `dir` holds `needle`, but its list of erasures (which names
/// an erased case by its id alone, for copies made from earlier exports to drop it).
fn holds(dir: &Path, needle: &str) -> bool {
    std::fs::read_dir(dir).unwrap().any(|entry| {
        let path = entry.unwrap().path();
        let erasures = path
            .file_stem()
            .is_some_and(|stem| stem.to_string_lossy() == "erasures");
        let bytes = std::fs::read(&path).unwrap();
        !erasures && bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
    })
}

/// Whether the export in `dir` lists the case `id` among its erasures.
fn lists_erased(dir: &Path, id: Uuid) -> bool {
    std::fs::read_dir(dir).unwrap().any(|entry| {
        let path = entry.unwrap().path();
        path.file_stem()
            .is_some_and(|stem| stem.to_string_lossy() == "erasures")
            && std::fs::read_to_string(&path)
                .unwrap()
                .contains(&id.to_string())
    })
}

/// The journal of the hub in `data` (its key is found by default, beside it).
fn journal_of(data: &Path) -> PathBuf {
    vigie_server::hub_key::default_key_file(data)
        .with_file_name(vigie_server::irreversible::JOURNAL_FILE)
}

/// A hub with a monitor's case on it and a supervisor who received it, backed up; then the
/// case erased, the monitor's phone revoked, a phone enrolled since the backup revoked too, and
/// the hub stopped.
struct Scene {
    dir: TempDir,
    data: PathBuf,
    hub: Hub,
    monitor: Device,
    supervisor: Device,
    /// Enrolled after the backup, synced, then lost and revoked.
    late: Device,
    case: Uuid,
    backup: PathBuf,
}

fn erased_and_revoked_after_a_backup() -> Scene {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let hub = Hub::start(&data);
    let mut monitor = plain_device(dir.path(), &data, "monitor", Role::CommunityMonitor, &[C01]);
    let mut supervisor = plain_device(dir.path(), &data, "sup", Role::Supervisor, &[DISTRICT]);
    let case = monitor
        .store
        .create(&child(area(C01), NAME, monitor.user()))
        .unwrap()
        .id;
    monitor.sync(&hub.url).unwrap();
    supervisor.sync(&hub.url).unwrap();
    assert!(supervisor.has(case));

    let backup_dir = dir.path().join("backup");
    backup(&data, &backup_dir);
    let data_arg = data.to_str().unwrap();

    let (by, record) = (supervisor.user().to_string(), case.to_string());
    vigie(&[
        "erase",
        "--data",
        data_arg,
        "--record",
        &record,
        "--by",
        &by,
        "--reason",
        "consent_withdrawn",
    ]);
    assert!(revoke(&data, monitor.token.device));
    let mut late = plain_device(dir.path(), &data, "late", Role::CommunityMonitor, &[C01]);
    late.store
        .create(&child(area(C01), "Mariam Koné", late.user()))
        .unwrap();
    assert_eq!(late.sync(&hub.url).unwrap().accepted, 1);
    assert!(revoke(&data, late.token.device));
    let mut scene = Scene {
        dir,
        data,
        hub,
        monitor,
        supervisor,
        late,
        case,
        backup: backup_dir,
    };
    scene.hub.stop();
    let journal = std::fs::read_to_string(journal_of(&scene.data)).unwrap();
    assert!(!journal.contains(NAME), "ids only");
    scene
}

impl Scene {
    /// Puts the backup's files in place of the hub's, as README says to restore.
    fn restore(&self) {
        restore_backup(&self.data, &self.backup);
    }
}

#[test]
fn a_restore_from_a_backup_does_not_bring_back_an_erased_case_or_a_revoked_phone() {
    if postgres_server().is_some() {
        return; // The embedded hub only: PostgreSQL is backed up with pg_dump.
    }
    let Scene {
        dir,
        data,
        mut hub,
        mut monitor,
        mut supervisor,
        mut late,
        case,
        ..
    } = {
        let scene = erased_and_revoked_after_a_backup();
        scene.restore();
        scene
    };

    // The first thing the restored hub does is serve: it erases and revokes again first.
    hub.restart();
    let log = hub.log_tail(200);
    assert!(
        log.contains("erased again") && log.contains(&case.to_string()),
        "{log}"
    );
    assert!(
        log.contains("revoked again") && log.contains(&monitor.token.device.to_string()),
        "{log}"
    );
    assert!(!log.contains(NAME));

    // The stolen phone is refused and told to wipe, and so is the one lost after the backup,
    // which the restored registry never knew.
    let err = monitor.sync(&hub.url).unwrap_err();
    assert!(matches!(err, Error::WipeRequested), "{err}");
    let err = late.sync(&hub.url).unwrap_err();
    assert!(matches!(err, Error::WipeRequested), "{err}");
    // The supervisor's copy goes; nobody receives the case again.
    let summary = supervisor.sync(&hub.url).unwrap();
    assert!(summary.erased.contains(&case), "{summary:?}");
    assert!(!supervisor.has(case));
    let mut newcomer = plain_device(dir.path(), &data, "new", Role::Supervisor, &[DISTRICT]);
    newcomer.sync(&hub.url).unwrap();
    assert!(!newcomer.has(case));
    hub.stop();

    // Not in an export either, and not in the hub's store.
    let out = dir.path().join("export");
    vigie(&[
        "export",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--personal",
    ]);
    assert!(!holds(&out, NAME));
    assert!(!holds(&out, &case.to_string()));
    assert!(lists_erased(&out, case));
    assert!(hub.open_store().get::<ChildCase>(case).is_err());
    assert!(hub.log_errors().is_empty(), "{:?}", hub.log_errors());
    // Done again once: the phone the restored registry never knew is listed revoked, and no
    // later command revokes it again (each journaled it anew, filling the audit log).
    let listed = vigie_output(&["device", "list", "--data", data.to_str().unwrap()]);
    assert!(listed.status.success());
    assert!(
        !stderr(&listed).contains("revoked again"),
        "{}",
        stderr(&listed)
    );
    let late_line = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .find(|l| l.contains(&late.token.device.to_string()))
        .map(str::to_string)
        .expect("the lost phone is listed");
    let late_line: serde_json::Value = serde_json::from_str(&late_line).unwrap();
    assert!(!late_line["revoked"].is_null(), "{late_line}");
    // And from then on, whatever ran before: the lost phone is still told to wipe (a store of
    // its token made anew, as a thief's copy of the app would be).
    hub.restart();
    let mut copy = Device::open(
        dir.path(),
        "late-copy",
        &late.token_text,
        Role::CommunityMonitor,
        &[C01],
        9,
    );
    let err = copy.sync(&hub.url).unwrap_err();
    assert!(matches!(err, Error::WipeRequested), "{err}");
    hub.stop();
}

#[test]
fn a_journal_line_that_is_not_the_hubs_is_ignored_with_a_warning() {
    if postgres_server().is_some() {
        return;
    }
    let scene = erased_and_revoked_after_a_backup();
    let journal = journal_of(&scene.data);
    // One character of the erasure's line changed (the revocation's stays whole).
    let text = std::fs::read_to_string(&journal).unwrap();
    let line = text.lines().find(|l| l.starts_with("erase ")).unwrap();
    let flipped = line.replacen("erase ", "erasf ", 1);
    std::fs::write(&journal, text.replace(line, &flipped)).unwrap();
    scene.restore();

    let Scene {
        mut hub,
        mut monitor,
        mut supervisor,
        case,
        ..
    } = scene;
    hub.restart();
    let log = hub.log_tail(200);
    assert!(
        log.contains("is not this hub's") && log.contains("ignored"),
        "{log}"
    );
    assert!(!log.contains("erased again"), "{log}");
    // The hub serves; the whole line still counts.
    let err = monitor.sync(&hub.url).unwrap_err();
    assert!(matches!(err, Error::WipeRequested), "{err}");
    supervisor.sync(&hub.url).unwrap();
    assert!(supervisor.has(case), "the ignored erasure is not done");
    hub.stop();
}

#[test]
fn a_key_given_without_a_directory_keeps_no_journal_and_says_so() {
    if postgres_server().is_some() {
        return;
    }
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let data_arg = data.to_str().unwrap();
    let key = "ab".repeat(32);
    // The first command on a new hub (it publishes the area tree its users' areas need).
    let out = vigie_output(&[
        "reference",
        "publish",
        "--data",
        data_arg,
        "--key-hex",
        &key,
        crate::common::reference::SAMPLE_AREAS,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("no journal of irreversible actions") && said.contains("restore"),
        "{said}"
    );
    assert!(!journal_of(&data).exists());
}

/// A copy of a backup (restored, or copied to be looked into) exported before anything else
/// opened it: the erasures its journal holds are done again first, and the export holds no
/// erased child.
#[test]
fn an_export_of_a_restored_hub_holds_no_child_its_journal_erased() {
    if postgres_server().is_some() {
        return;
    }
    let scene = erased_and_revoked_after_a_backup();
    scene.restore();
    let out = scene.dir.path().join("export");
    let args = [
        "export",
        "--data",
        scene.data.to_str().unwrap(),
        "--personal",
        "--format",
        "json",
        "--out",
        out.to_str().unwrap(),
    ];
    let said = stderr(&vigie_output(&args));
    assert!(said.contains("erased again"), "{said}");
    assert!(!holds(&out, NAME), "the export holds the erased child");
    assert!(!holds(&out, &scene.case.to_string()));
    assert!(lists_erased(&out, scene.case));
}

/// A backup looked into as README says (a copy, opened with the hub's key file) takes no
/// erasure or revocation: the journal beside the key is the hub's, which did again at its next
/// start what was done on the copy (the case erased, the phone wiped with its unsent work,
/// neither decided on the hub). A command on the hub itself still erases and revokes.
#[test]
fn an_erasure_or_revocation_on_a_copy_looked_into_is_refused_and_reaches_no_hub() {
    if postgres_server().is_some() {
        return; // The embedded hub's copies: PostgreSQL's are databases pg_restore makes.
    }
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let mut hub = Hub::start(&data);
    let mut monitor = plain_device(dir.path(), &data, "monitor", Role::CommunityMonitor, &[C01]);
    let mut supervisor = plain_device(dir.path(), &data, "sup", Role::Supervisor, &[DISTRICT]);
    let case = monitor
        .store
        .create(&child(area(C01), NAME, monitor.user()))
        .unwrap()
        .id;
    monitor.sync(&hub.url).unwrap();
    supervisor.sync(&hub.url).unwrap();
    let look = dir.path().join("look");
    backup(&data, &look);
    let key = vigie_server::hub_key::default_key_file(&data);
    let key_arg = key.to_str().unwrap();
    let (by, record) = (supervisor.user().to_string(), case.to_string());
    let erase = |on: &Path, key: &[&str]| {
        let mut args = vec![
            "--record",
            &record,
            "--by",
            &by,
            "--reason",
            "consent_withdrawn",
        ];
        args.extend(key);
        common::lifecycle::admin(on, &["erase"], &args)
    };
    let with_key = ["--key-file", key_arg];
    let refused = erase(&look, &with_key);
    assert!(!refused.status.success());
    let said = stderr(&refused);
    assert!(said.contains("another copy"), "{said}");
    assert!(said.contains(&std::fs::canonicalize(&data).unwrap().display().to_string()));
    let device = monitor.token.device.to_string();
    let revoked = common::lifecycle::admin(
        &look,
        &["device", "revoke"],
        &["--key-file", key_arg, "--device", &device],
    );
    assert!(!revoked.status.success());
    assert!(stderr(&revoked).contains("another copy"));
    // Reading the copy still works.
    let out = dir.path().join("export");
    let exported = common::lifecycle::admin(
        &look,
        &["export"],
        &["--key-file", key_arg, "--out", out.to_str().unwrap()],
    );
    assert!(exported.status.success(), "{}", stderr(&exported));
    // Served to be looked into through its console, it takes none either (a copy served
    // took the journal over, and the hub's own erasures were refused as a copy's).
    let mut served_copy = Hub::new(&look, None, false);
    served_copy.extra_args = vec!["--key-file".into(), key_arg.into()];
    served_copy.restart();
    served_copy.stop();
    assert!(!erase(&look, &with_key).status.success());

    hub.stop();
    hub.restart();
    monitor.sync(&hub.url).unwrap();
    supervisor.sync(&hub.url).unwrap();
    assert!(supervisor.has(case), "the case stays on the hub");
    let journal = std::fs::read_to_string(journal_of(&data)).unwrap();
    assert!(!journal.contains(&record), "{journal}");
    // On the hub itself, the erasure is made.
    assert!(erase(&data, &[]).status.success());
    supervisor.sync(&hub.url).unwrap();
    assert!(!supervisor.has(case));
}

/// Two hubs whose key files an operator keeps in one directory keep a journal each: neither
/// takes the other's lines for damage, and the second is made with a key of its own.
#[test]
fn hubs_whose_keys_share_a_directory_keep_a_journal_each() {
    if postgres_server().is_some() {
        return;
    }
    let dir = TempDir::new().unwrap();
    let keys = dir.path().join("keys");
    let run = |data: &str, key: &str, args: &[&str]| {
        let data = dir.path().join(data);
        let key = keys.join(key);
        let mut all = args.to_vec();
        all.extend(["--data", data.to_str().unwrap()]);
        all.extend(["--key-file", key.to_str().unwrap()]);
        let out = vigie_output(&all);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr(&out),
        )
    };
    run(
        "a",
        "region-a.key",
        &[
            "reference",
            "publish",
            crate::common::reference::SAMPLE_AREAS,
        ],
    );
    let (user, _) = run(
        "a",
        "region-a.key",
        &[
            "user",
            "add",
            "--name",
            "Moniteur",
            "--role",
            "community-monitor",
            "--area",
            C01,
        ],
    );
    let (token, _) = run(
        "a",
        "region-a.key",
        &["device", "enrol", "--user", user.trim()],
    );
    let device = vigie_server::auth::Token::parse(token.trim())
        .unwrap()
        .device;
    run(
        "a",
        "region-a.key",
        &["device", "revoke", "--device", &device.to_string()],
    );
    let journal_a = keys.join("region-a.key.irreversible.journal");
    assert!(
        std::fs::read_to_string(&journal_a)
            .unwrap()
            .contains(&device.to_string())
    );

    // A new hub, its key beside the first's: made, with its own journal.
    run(
        "b",
        "region-b.key",
        &[
            "reference",
            "publish",
            crate::common::reference::SAMPLE_AREAS,
        ],
    );
    let (_, said) = run("b", "region-b.key", &["user", "list"]);
    assert!(!said.contains("not this hub's"), "{said}");
    assert!(keys.join("region-b.key.irreversible.journal").exists());
    let (_, said) = run("a", "region-a.key", &["user", "list"]);
    assert!(!said.contains("not this hub's"), "{said}");
    assert!(!keys.join(vigie_server::irreversible::JOURNAL_FILE).exists());

    // A hub of an earlier version kept every key's journal as irreversible.journal: upgraded,
    // it takes its own lines from there (another hub's stay).
    let former = keys.join(vigie_server::irreversible::JOURNAL_FILE);
    std::fs::rename(&journal_a, &former).unwrap();
    let (_, said) = run("a", "region-a.key", &["user", "list"]);
    assert!(
        said.contains("now kept under its key file's name"),
        "{said}"
    );
    assert!(
        std::fs::read_to_string(&journal_a)
            .unwrap()
            .contains(&device.to_string())
    );
    assert!(!said.contains("but no journal"), "{said}");
    // Its own journal there already, without those lines (made by a build in between, or
    // the earlier version run again since): they are added to it, once.
    std::fs::write(&journal_a, "# Vigie\n").unwrap();
    run("a", "region-a.key", &["user", "list"]);
    run("a", "region-a.key", &["user", "list"]);
    let own = std::fs::read_to_string(&journal_a).unwrap();
    assert_eq!(own.matches(&device.to_string()).count(), 1, "{own}");
    let (_, said) = run("b", "region-b.key", &["user", "list"]);
    assert!(!said.contains("now kept"), "{said}");
    assert!(
        !std::fs::read_to_string(keys.join("region-b.key.irreversible.journal"))
            .unwrap()
            .contains(&device.to_string())
    );
    // The former file left there, its lines region-a's own journal holds: a new hub whose key
    // takes the default name is made beside them (they are another hub's, not a lost key's),
    // and takes them for no damage of its own journal.
    run(
        "c",
        vigie_server::hub_key::KEY_FILE_NAME,
        &[
            "reference",
            "publish",
            crate::common::reference::SAMPLE_AREAS,
        ],
    );
    let (_, said) = run("c", vigie_server::hub_key::KEY_FILE_NAME, &["user", "list"]);
    assert!(!said.contains("not this hub's"), "{said}");
    // Lines no other key's journal holds are still a lost key's: no hub is made under them.
    std::fs::remove_file(&journal_a).unwrap();
    std::fs::remove_file(keys.join(vigie_server::hub_key::KEY_FILE_NAME)).unwrap();
    let data = dir.path().join("d");
    let key = keys.join(vigie_server::hub_key::KEY_FILE_NAME);
    let out = vigie_output(&[
        "reference",
        "publish",
        crate::common::reference::SAMPLE_AREAS,
        "--data",
        data.to_str().unwrap(),
        "--key-file",
        key.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let said = stderr(&out);
    assert!(said.contains("belongs to a hub that erased"), "{said}");
}

/// Commands of one machine started at once (beside `vigie serve`, say) each keep the
/// database's change-order mark without getting in each other's way.
#[test]
fn commands_started_at_once_each_keep_the_mark_without_a_warning() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    add_user(&data, "Moniteur", Role::CommunityMonitor, &[C01]);
    for _ in 0..3 {
        let commands: Vec<_> = (0..6)
            .map(|_| {
                let mut args = vec!["user".to_string(), "list".into(), "--data".into()];
                args.push(data.to_str().unwrap().into());
                args.extend(database_args(&data));
                std::process::Command::new(BIN)
                    .args(&args)
                    .env("RUST_LOG", "warn")
                    .env_remove("VIGIE_HUB_KEY")
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for command in commands {
            let out = command.wait_with_output().unwrap();
            assert!(out.status.success(), "{}", stderr(&out));
            assert!(!stderr(&out).contains("cannot be kept"), "{}", stderr(&out));
        }
    }
    let marks = std::fs::read_dir(journal_of(&data).parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".new"))
        .count();
    assert_eq!(marks, 0, "no file aside left behind");
}

/// A journal lost (deleted, or the key moved without it; or an erasure whose process was
/// killed between its commit and its journal line) on a hub that has erased or revoked: a new
/// one starts, said at once, with the erasures and revocations the storage holds, dated as it
/// dates them, so that a later restore from a backup still does not bring them back.
#[test]
fn a_lost_journal_on_a_hub_that_erased_is_said_when_it_opens_and_made_again() {
    if postgres_server().is_some() {
        return;
    }
    let mut scene = erased_and_revoked_after_a_backup();
    let journal = journal_of(&scene.data);
    std::fs::remove_file(&journal).unwrap();
    let out = vigie_output(&["user", "list", "--data", scene.data.to_str().unwrap()]);
    assert!(out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("but no journal of irreversible actions")
            && said.contains("journaled now")
            && said.contains(&scene.case.to_string()),
        "{said}"
    );
    assert!(!said.contains(NAME));
    assert!(journal.exists(), "a new journal starts");
    // Said once: the new journal is the hub's from now on.
    let out = vigie_output(&["user", "list", "--data", scene.data.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        !said.contains("but no journal") && !said.contains("journaled now"),
        "{said}"
    );

    // Restored from the backup taken before them: erased and revoked again.
    scene.restore();
    scene.hub.restart();
    let log = scene.hub.log_tail(200);
    assert!(
        log.contains("erased again") && log.contains(&scene.case.to_string()),
        "{log}"
    );
    let err = scene.monitor.sync(&scene.hub.url).unwrap_err();
    assert!(matches!(err, Error::WipeRequested), "{err}");
    let summary = scene.supervisor.sync(&scene.hub.url).unwrap();
    assert!(summary.erased.contains(&scene.case), "{summary:?}");
    scene.hub.stop();
}

/// A backup restored with the hub's key but not its journal (an operator moving to a new
/// machine copied the key file alone): the backup's history shows no erasure, so the hub said
/// nothing but "restored from a backup", while a child erased since was back in its exports and
/// a phone revoked since synced. It now says what is back and what to do, at every opening
/// (the first command run may be an export nobody reads the output of) until the operator
/// removes the note it leaves beside the journal.
#[test]
fn a_backup_restored_without_its_journal_says_what_comes_back() {
    if postgres_server().is_some() {
        return;
    }
    let scene = erased_and_revoked_after_a_backup();
    scene.restore();
    let journal = journal_of(&scene.data);
    std::fs::remove_file(&journal).unwrap();
    let warned = || {
        let out = vigie_output(&["user", "list", "--data", scene.data.to_str().unwrap()]);
        assert!(out.status.success());
        let said = String::from_utf8_lossy(&out.stderr).to_string();
        said.contains(
            "restored from a backup with no journal of irreversible actions beside its key",
        ) && said.contains("erased and the devices revoked after the backup was taken are back")
    };
    assert!(warned());
    assert!(warned(), "said again");
    let note = journal.with_extension("journal.restored-without-it");
    std::fs::remove_file(&note).unwrap();
    assert!(!warned(), "said until the note is removed");
}

/// On every backend, what the command line erases and revokes is in the journal when the
/// command returns: a PostgreSQL hub restored with `pg_restore` redoes it from there as the
/// embedded hub does (its commands on an existing hub once kept no journal).
#[test]
fn the_command_line_journals_erasures_and_revocations_on_every_backend() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let hub = Hub::start(&data);
    let mut monitor = plain_device(dir.path(), &data, "monitor", Role::CommunityMonitor, &[C01]);
    let supervisor = plain_device(dir.path(), &data, "sup", Role::Supervisor, &[DISTRICT]);
    let case = monitor
        .store
        .create(&child(area(C01), NAME, monitor.user()))
        .unwrap()
        .id;
    monitor.sync(&hub.url).unwrap();

    let (by, record) = (supervisor.user().to_string(), case.to_string());
    let mut args = vec![
        "erase".to_string(),
        "--data".into(),
        data.to_str().unwrap().into(),
        "--record".into(),
        record,
        "--by".into(),
        by,
        "--reason".into(),
        "consent_withdrawn".into(),
    ];
    args.extend(database_args(&data));
    vigie(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(revoke(&data, monitor.token.device));
    let journal = std::fs::read_to_string(journal_of(&data)).unwrap();
    assert!(journal.contains(&format!("erase {case} ")), "{journal}");
    assert!(
        journal.contains(&format!("revoke {} ", monitor.token.device)),
        "{journal}"
    );
    assert!(!journal.contains(NAME), "ids only");
    drop(hub);
}

#[test]
fn no_new_hub_is_made_under_the_key_of_one_that_erased_or_revoked() {
    if postgres_server().is_some() {
        return; // The embedded store's data directory only.
    }
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let user = add_user(&data, "Moniteur", Role::CommunityMonitor, &[C01]);
    let token = enrol(&data, user);
    let device = vigie_server::auth::Token::parse(&token).unwrap().device;
    assert!(revoke(&data, device));
    assert!(journal_of(&data).exists());
    // The data directory is gone (an unmounted volume, files deleted by mistake).
    std::fs::rename(&data, dir.path().join("aside")).unwrap();
    let mut serve = std::process::Command::new(BIN)
        .args(["serve", "--data", data.to_str().unwrap()])
        .args(["--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let ended = wait_until(std::time::Duration::from_secs(30), || {
        serve.try_wait().unwrap().is_some()
    });
    if !ended {
        let _ = serve.kill();
    }
    let output = serve.wait_with_output().unwrap();
    assert!(ended, "vigie serve made a new hub under the old key");
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("belongs to a hub that erased"), "{said}");
    assert!(!data.exists(), "nothing made, not even the directory");
    // Other commands say there is no hub, as before.
    let listed = vigie_output(&["user", "list", "--data", data.to_str().unwrap()]);
    assert!(!listed.status.success());
}

/// PostgreSQL's programs (`scripts/postgres.sh bin`).
fn postgres_bin(program: &str) -> PathBuf {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/postgres.sh");
    let out = std::process::Command::new(script)
        .arg("bin")
        .output()
        .unwrap();
    assert!(out.status.success());
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim()).join(program)
}

/// Runs one of PostgreSQL's programs, which must succeed.
fn postgres_program(program: &str, args: &[&str]) {
    let out = std::process::Command::new(postgres_bin(program))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{program}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `pg_restore` of `dump` into the database at `url`, in place of what it holds.
/// `pg_dump` of the database at `url` into `dump`, as README says to back a hub up.
fn pg_dump(url: &str, dump: &Path) {
    let out = dump.to_str().unwrap();
    postgres_program(
        "pg_dump",
        &["-Fc", "--no-owner", "-f", out, "--dbname", url],
    );
}

fn pg_restore(url: &str, dump: &Path) {
    postgres_program(
        "pg_restore",
        &[
            "--clean",
            "--if-exists",
            "--no-owner",
            "--dbname",
            url,
            dump.to_str().unwrap(),
        ],
    );
}

/// `n` new cases of `device`'s user, coded `<tag>-<i>`; their ids.
fn new_cases(device: &mut Device, tag: &str, n: usize) -> Vec<uuid::Uuid> {
    (0..n)
        .map(|i| {
            let mut case = child(area(C01), &format!("{tag} {i}"), device.user());
            case.case_code = format!("{tag}-{i}");
            device.store.create(&case).unwrap().id
        })
        .collect()
}

/// A PostgreSQL hub restored with `pg_restore` keeps no mark of a backup as `vigie backup`
/// does: each machine keeps beside its key how far the database's change order had gone
/// (`change-order.mark`), and finds the database behind it when it starts again. It takes a
/// new incarnation: a phone that only pulled since the copy walks its scope again (the places
/// it was told are given out anew: it missed new cases), and the phone whose cases the copy
/// lacks offers them again. Nothing is lost.
#[test]
fn a_postgres_hub_restored_with_pg_restore_loses_nothing() {
    let Some(_) = postgres_server() else {
        return; // The embedded hub's backups are marked (`hub_backup`).
    };
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let mut hub = Hub::start(&data);
    let mut monitor = plain_device(dir.path(), &data, "monitor", Role::CommunityMonitor, &[C01]);
    let mut other = plain_device(dir.path(), &data, "other", Role::CommunityMonitor, &[C01]);
    let mut supervisor = plain_device(dir.path(), &data, "sup", Role::Supervisor, &[DISTRICT]);
    for d in [&mut monitor, &mut other, &mut supervisor] {
        d.sync(&hub.url).unwrap();
    }
    let url = hub_database(&data).unwrap();
    let dump = dir.path().join("hub.dump");
    pg_dump(&url, &dump);

    // After the copy: the monitor's cases reach the hub and the supervisor.
    let lost = new_cases(&mut monitor, "AFTER", 6);
    monitor.sync(&hub.url).unwrap();
    supervisor.sync(&hub.url).unwrap();
    assert!(lost.iter().all(|id| supervisor.has(*id)));

    // The operator looks into the copy first, restored beside the hub's database and opened
    // with this machine's key: the copy is no restore of the hub's database, which keeps its
    // incarnation (each database has its own mark).
    let incarnation = |url: &str| -> String {
        let mut client = postgres::Client::connect(url, postgres::NoTls).unwrap();
        client
            .query_one(
                "SELECT value FROM vigie_meta WHERE key = 'incarnation'",
                &[],
            )
            .unwrap()
            .get(0)
    };
    let live = incarnation(&url);
    let copy = hub_database(&dir.path().join("copy")).unwrap();
    pg_restore(&copy, &dump);
    let list_on = |database: &str| {
        vigie(&[
            "user",
            "list",
            "--data",
            data.to_str().unwrap(),
            "--database",
            database,
        ])
    };
    // Commands on the hub's own database keep, and compare, what this machine saw of it.
    list_on(&url);
    list_on(&copy);
    list_on(&url);
    monitor.sync(&hub.url).unwrap();
    supervisor.sync(&hub.url).unwrap();
    assert_eq!(
        incarnation(&url),
        live,
        "a copy looked into restored nothing"
    );
    assert!(!hub.log_tail(400).contains("restored from an older copy"));

    // The database is restored from the copy, and the hub started again.
    hub.stop();
    pg_restore(&url, &dump);
    hub.restart();

    // Another monitor's new cases take the places the supervisor was told before.
    let new = new_cases(&mut other, "NEW", 6);
    other.sync(&hub.url).unwrap();
    monitor.sync(&hub.url).unwrap();
    for _ in 0..2 {
        supervisor.sync(&hub.url).unwrap();
    }
    let missing: Vec<_> = lost
        .iter()
        .chain(&new)
        .filter(|id| !supervisor.has(**id))
        .collect();
    assert!(missing.is_empty(), "the supervisor lacks {missing:?}");
    let log = hub.log_tail(400);
    assert!(log.contains("restored from an older copy"), "{log}");
    // The audit log says so, as an embedded hub's does: its lines since the copy are gone.
    let restored = |data: &Path| {
        common::surface::admin_lines(data, &["audit"])
            .into_iter()
            .filter(|l| l["action"] == "hub_restored")
            .count()
    };
    assert_eq!(restored(&data), 1);

    // The same copy restored a second time: the database is back on the incarnation the
    // first restore replaced, which this machine remembers.
    hub.stop();
    pg_restore(&url, &dump);
    hub.restart();
    let again = new_cases(&mut other, "AGAIN", 6);
    for d in [&mut other, &mut monitor] {
        d.sync(&hub.url).unwrap();
        d.sync(&hub.url).unwrap();
    }
    for _ in 0..2 {
        supervisor.sync(&hub.url).unwrap();
    }
    let missing: Vec<_> = lost
        .iter()
        .chain(&new)
        .chain(&again)
        .filter(|id| !supervisor.has(**id))
        .collect();
    assert!(
        missing.is_empty(),
        "after a second restore, the supervisor lacks {missing:?}"
    );
    hub.stop();
    assert!(hub.log_errors().is_empty(), "{:?}", hub.log_errors());
}

/// A phone enrolled after a PostgreSQL hub's copy and revoked since, the database restored
/// with `pg_restore`: every hub process tells it to wipe, not only the one on the machine
/// whose journal holds the revocation (behind a load balancer, the stolen phone kept its 1,942
/// cases as long as it reached the other process).
#[test]
fn every_postgres_process_tells_a_phone_revoked_after_the_copy_to_wipe() {
    let Some(_) = postgres_server() else {
        return; // One embedded process keeps it in memory (`a_restore_from_a_backup_…`).
    };
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let mut hub = Hub::start(&data);
    let url = hub_database(&data).unwrap();
    let dump = dir.path().join("hub.dump");
    pg_dump(&url, &dump);
    let mut late = plain_device(dir.path(), &data, "late", Role::CommunityMonitor, &[C01]);
    late.sync(&hub.url).unwrap();
    assert!(revoke(&data, late.token.device));
    hub.stop();
    pg_restore(&url, &dump);
    hub.restart();
    // Another machine's process: the same database and key file, not this machine's journal.
    let other_keys = dir.path().join("other-machine-key");
    std::fs::create_dir_all(&other_keys).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&other_keys, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::copy(
        dir.path().join("hub-key").join("hub.key"),
        other_keys.join("hub.key"),
    )
    .unwrap();
    let mut other = Hub::new(&dir.path().join("other-machine"), Some(url), false);
    other.restart();
    for url in [&hub.url, &other.url] {
        let err = late.sync(url).unwrap_err();
        assert!(matches!(err, Error::WipeRequested), "{url}: {err}");
    }
    // Said where it was written back.
    let log = hub.log_tail(400);
    assert!(
        log.contains("revoked again") && log.contains(&late.token.device.to_string()),
        "{log}"
    );
    // The other machine journals it too, as done through another: no false alarm of a
    // process killed or a journal lost, one warning per action.
    let log = other.log_tail(400);
    assert!(
        log.contains("done through other machines") && !log.contains("journal was lost"),
        "{log}"
    );
    let other_journal = std::fs::read_to_string(other_keys.join("irreversible.journal"));
    assert!(
        other_journal.is_ok_and(|j| j.contains(&late.token.device.to_string())),
        "the other machine's journal holds the revocation"
    );
}

/// An erasure or a revocation the database took while its answer was lost (the link cut at
/// the commit) is done but was journaled by no one, and a restore would undo it. The
/// operator's second try, told it is done already, journals it.
#[test]
fn an_erasure_or_revocation_done_without_its_journal_line_is_journaled_when_asked_again() {
    if postgres_server().is_some() {
        return; // The embedded store's files, changed behind the hub's back.
    }
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let mut hub = Hub::start(&data);
    let mut monitor = plain_device(dir.path(), &data, "monitor", Role::CommunityMonitor, &[C01]);
    let supervisor = plain_device(dir.path(), &data, "sup", Role::Supervisor, &[DISTRICT]);
    let case = monitor
        .store
        .create(&child(area(C01), NAME, monitor.user()))
        .unwrap()
        .id;
    monitor.sync(&hub.url).unwrap();
    hub.stop();
    // Done in the storage, as a commit whose answer was lost leaves it.
    let by = vigie_core::sync::Principal {
        device: uuid::Uuid::nil(),
        user: supervisor.user(),
        role: Role::Supervisor,
        areas: [DISTRICT.to_string()].into(),
    };
    let mut store = hub.open_store();
    store
        .in_transaction(&mut |tx| vigie_core::sync::erase_record(tx, &by, case))
        .unwrap();
    drop(store);
    let encryption = vigie_server::hub_encryption(&data, &hub.key_options()).unwrap();
    let registry =
        vigie_server::auth::Registry::open(&data.join("devices.db"), &encryption).unwrap();
    assert!(registry.revoke(monitor.token.device).unwrap());
    drop(registry);
    let journal = || std::fs::read_to_string(journal_of(&data)).unwrap_or_default();
    assert!(!journal().contains(&case.to_string()));

    let data_arg = data.to_str().unwrap();
    let again = vigie_output(&[
        "erase",
        "--data",
        data_arg,
        "--record",
        &case.to_string(),
        "--by",
        &supervisor.user().to_string(),
        "--reason",
        "consent_withdrawn",
    ]);
    assert!(
        stderr(&again).contains("erased already"),
        "{}",
        stderr(&again)
    );
    assert!(
        journal().contains(&format!("erase {case} ")),
        "{}",
        journal()
    );
    let device = monitor.token.device.to_string();
    let again = vigie_output(&["device", "revoke", "--data", data_arg, "--device", &device]);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("revoked already"),
        "{}",
        stderr(&again)
    );
    assert!(
        journal().contains(&format!("revoke {device} ")),
        "{}",
        journal()
    );
}

/// Erasures a restored hub does again keep the date they were made (the journal's), and go to
/// the exports of the supervisors whose areas held the case; one of a case the restored copy
/// never held (made after the backup) goes to the whole hub's export only: where it was filed
/// is unknown, and its id and date go to no other district's supervisor. On PostgreSQL, the
/// copy is a `pg_dump` restored with `pg_restore`.
#[test]
fn erasures_done_again_after_a_restore_keep_their_date_and_scope() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let mut hub = Hub::start(&data);
    let mut monitor = plain_device(dir.path(), &data, "monitor", Role::CommunityMonitor, &[C01]);
    let here = plain_device(dir.path(), &data, "sup-d1", Role::Supervisor, &[DISTRICT]);
    let there = plain_device(dir.path(), &data, "sup-d2", Role::Supervisor, &[DISTRICT_2]);
    let mut case = |name: &str| {
        let id = monitor
            .store
            .create(&child(area(C01), name, monitor.user()))
            .unwrap()
            .id;
        monitor.sync(&hub.url).unwrap();
        id
    };
    let before = case("Awa Avant");
    let backup_dir = dir.path().join("backup");
    let database = hub_database(&data);
    match &database {
        Some(url) => pg_dump(url, &dir.path().join("hub.dump")),
        None => drop(backup(&data, &backup_dir)),
    }
    let after = case("Awa Après");
    for id in [before, after] {
        common::lifecycle::erase(&data, id, here.user());
    }
    let hub_args = common::lifecycle::hub_args(&data);
    let erasures = |by: Option<Uuid>| -> String {
        let out = tempfile::tempdir().unwrap();
        let mut args = vec!["export", "--out", out.path().to_str().unwrap()];
        args.extend(hub_args.iter().map(String::as_str));
        let by = by.map(|u| u.to_string());
        if let Some(by) = &by {
            args.extend(["--by", by.as_str()]);
        }
        vigie(&args);
        std::fs::read_to_string(out.path().join("erasures.csv")).unwrap()
    };
    let erased = erasures(None);
    // A second later, the hub is restored from the backup: both erasures are done again.
    std::thread::sleep(std::time::Duration::from_millis(1_100));
    hub.stop();
    match &database {
        Some(url) => pg_restore(url, &dir.path().join("hub.dump")),
        None => restore_backup(&data, &backup_dir),
    }
    let line = |text: &str, id: Uuid| {
        text.lines()
            .find(|l| l.starts_with(&id.to_string()))
            .map(str::to_string)
    };
    let again = erasures(None);
    for id in [before, after] {
        assert!(line(&again, id).is_some(), "{again}");
        assert_eq!(line(&again, id), line(&erased, id), "dated as first erased");
    }
    let here_sees = erasures(Some(here.user()));
    assert!(line(&here_sees, before).is_some(), "{here_sees}");
    assert!(
        line(&here_sees, after).is_none(),
        "filed nowhere known: {here_sees}"
    );
    let there_sees = erasures(Some(there.user()));
    assert_eq!(
        there_sees.lines().count(),
        1,
        "the header alone: {there_sees}"
    );
}
