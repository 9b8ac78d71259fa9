//! The administration a hub operator needs (issue 12): users listed and deactivated (their
//! devices then hold nothing and store nothing), devices
//! listed with when they were last seen and whether they are revoked, a device's token
//! re-issued, each with clear errors. Against the real `vigie` binary, on the backend
//! `VIGIE_TEST_BACKEND` names.

use crate::common;

use common::surface::{admin, admin_error, admin_lines, line_of};
use common::*;
use tempfile::TempDir;
use uuid::Uuid;
use vigie_core::*;

#[test]
fn users_and_devices_are_listed_deactivated_and_reissued() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let mut supervisor = Device::enrol(
        dir.path(),
        &data,
        "supervisor",
        Role::Supervisor,
        &[REGION],
        1,
    );
    let mut monitor = Device::enrol(
        dir.path(),
        &data,
        "monitor",
        Role::CommunityMonitor,
        &[C01, C02],
        2,
    );
    let mut inspector = Device::enrol(
        dir.path(),
        &data,
        "inspector",
        Role::Inspector,
        &[DISTRICT],
        3,
    );
    let hub = Hub::start(&data);

    // Users: one JSON line each.
    let users = admin_lines(&data, &["user", "list"]);
    assert_eq!(users.len(), 3, "{users:?}");
    let line = line_of(&users, "id", monitor.user());
    assert_eq!(line["name"], "monitor");
    assert_eq!(line["role"], "community-monitor");
    assert_eq!(line["areas"], serde_json::json!([C01, C02]));
    assert_eq!(line["active"], true);
    assert_eq!(
        line_of(&users, "id", supervisor.user())["role"],
        "supervisor"
    );

    // A name corrected (misspelt, changed by marriage): the same user, by id; a name that
    // breaks the rule of names, or the same name again, is refused.
    let monitor_id = monitor.user().to_string();
    let rename = |name: &str| {
        admin(
            &data,
            &["user", "rename", "--user", &monitor_id, "--name", name],
        )
    };
    let out = rename("Aïcha Koné-Traoré");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let users = admin_lines(&data, &["user", "list"]);
    assert_eq!(
        line_of(&users, "id", monitor.user())["name"],
        "Aïcha Koné-Traoré"
    );
    for name in ["", "Aïcha\nKoné", "Aïcha Koné-Traoré"] {
        assert!(!rename(name).status.success(), "{name:?}");
    }
    // Another user's name: done, and said, as for a user added under it.
    let out = rename("Inspector");
    assert!(out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("another user has this name"), "{said}");
    let unknown = uuid::Uuid::now_v7().to_string();
    let out = admin(
        &data,
        &["user", "rename", "--user", &unknown, "--name", "Awa"],
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such user"));

    // Devices: enrolled, never seen, not revoked.
    let devices = admin_lines(&data, &["device", "list"]);
    assert_eq!(devices.len(), 3);
    for d in [&supervisor, &monitor, &inspector] {
        let line = line_of(&devices, "device", d.token.device);
        assert_eq!(line["user"], d.user().to_string());
        let enrolled = line["enrolled"].as_str().expect("an enrolment time");
        chrono::DateTime::parse_from_rfc3339(enrolled).expect("RFC 3339");
        assert!(line["last_seen"].is_null(), "{line}");
        assert!(line["revoked"].is_null(), "{line}");
    }

    // An administrator works in the console: no device is enrolled for them.
    let administrator = add_user(&data, "Administratrice", Role::Administrator, &[]);
    let refused = admin(
        &data,
        &["device", "enrol", "--user", &administrator.to_string()],
    );
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("administrator"), "{said}");
    assert_eq!(admin_lines(&data, &["device", "list"]).len(), 3);

    // A sync is seen; a revocation shows.
    let user = monitor.user();
    monitor
        .store
        .create(&child(area(C01), "Enfant 1", user))
        .unwrap();
    monitor.sync(&hub.url).unwrap();
    supervisor.sync(&hub.url).unwrap();
    assert!(revoke(&data, inspector.token.device));
    let devices = admin_lines(&data, &["device", "list"]);
    let seen = line_of(&devices, "device", monitor.token.device)["last_seen"]
        .as_str()
        .expect("seen")
        .to_string();
    let seen_at = chrono::DateTime::parse_from_rfc3339(&seen).unwrap();
    assert!((chrono::Utc::now() - seen_at.to_utc()).num_seconds().abs() < 120);
    assert!(line_of(&devices, "device", inspector.token.device)["revoked"].is_string());
    assert!(line_of(&devices, "device", inspector.token.device)["last_seen"].is_null());
    let err = inspector.sync(&hub.url).unwrap_err();
    assert!(matches!(err, Error::WipeRequested), "{err}");

    // Re-issuing: the old token is refused at once, the new one syncs the same store.
    let out = admin(
        &data,
        &[
            "device",
            "reissue",
            "--device",
            &monitor.token.device.to_string(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let new_token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_ne!(new_token, monitor.token_text);
    let err = monitor.sync(&hub.url).unwrap_err().to_string();
    assert!(err.contains("401"), "{err}");
    let store_path = monitor.store.path().to_path_buf();
    let held = monitor.store.count(RecordKind::ChildCase).unwrap();
    drop(monitor);
    let mut monitor = Device::open(
        dir.path(),
        "monitor",
        &new_token,
        Role::CommunityMonitor,
        &[C01, C02],
        2,
    );
    assert_eq!(monitor.store.path(), store_path);
    assert_eq!(monitor.store.count(RecordKind::ChildCase).unwrap(), held);
    let second = monitor
        .store
        .create(&child(area(C02), "Enfant 2", user))
        .unwrap();
    let summary = monitor.sync(&hub.url).unwrap();
    assert_eq!((summary.accepted, summary.pending), (1, 0), "{summary:?}");
    supervisor.sync(&hub.url).unwrap();
    assert!(supervisor.has(second.id));

    // Deactivating the monitor's user: the next sync is still answered (it is no wipe: the
    // phone is not lost), with an empty scope, so what the phone held leaves it.
    assert!(monitor.store.count(RecordKind::ChildCase).unwrap() > 0);
    let out = admin(&data, &["user", "deactivate", "--user", &user.to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = monitor.sync(&hub.url).unwrap();
    assert_eq!(summary.left_scope.len(), 2, "{summary:?}");
    assert_eq!(monitor.store.count(RecordKind::ChildCase).unwrap(), 0);
    // And nothing it sends is stored any more: a record it makes is kept for a supervisor's
    // review, and leaves the phone.
    monitor
        .store
        .create(&child(area(C01), "Enfant 3", user))
        .unwrap();
    let summary = monitor.sync(&hub.url).unwrap();
    assert_eq!(
        (summary.accepted, summary.quarantined.len()),
        (0, 1),
        "{summary:?}"
    );
    assert_eq!(monitor.store.count(RecordKind::ChildCase).unwrap(), 0);
    let users = admin_lines(&data, &["user", "list"]);
    assert_eq!(line_of(&users, "id", user)["active"], false);
    assert_eq!(line_of(&users, "id", supervisor.user())["active"], true);
    supervisor.sync(&hub.url).unwrap();

    // Clear errors.
    let unknown = Uuid::new_v4().to_string();
    let user_text = user.to_string();
    for (args, expected) in [
        (
            vec!["user", "deactivate", "--user", &user_text],
            "already inactive",
        ),
        (
            vec!["user", "deactivate", "--user", &unknown],
            "no such user",
        ),
        (
            vec!["device", "reissue", "--device", &unknown],
            "no such enrolled device",
        ),
        (vec!["device", "enrol", "--user", &unknown], "no such user"),
        (vec!["device", "enrol", "--user", &user_text], "inactive"),
        (
            vec!["user", "deactivate", "--user", "not-an-id"],
            "invalid value",
        ),
    ] {
        let err = admin_error(&data, &args);
        assert!(err.contains(expected), "{args:?}: {err}");
        assert!(
            err.contains(&unknown) || !args.contains(&unknown.as_str()),
            "{err}"
        );
    }
    let inspector_device = inspector.token.device.to_string();
    let err = admin_error(&data, &["device", "reissue", "--device", &inspector_device]);
    assert!(err.contains("revoked"), "{err}");
    assert!(hub.log_errors().is_empty(), "{:#?}", hub.log_errors());
}

#[test]
fn administration_of_an_encrypted_hub_needs_its_key() {
    if postgres_server().is_some() {
        // The key protects the embedded store only.
        return;
    }
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let key = "ab".repeat(32);
    let wrong = "cd".repeat(32);
    let data_arg = data.to_str().unwrap();
    let id = vigie(&[
        "user",
        "add",
        "--data",
        data_arg,
        "--name",
        "Chef",
        "--role",
        "administrator",
        "--key-hex",
        &key,
    ]);
    let listed = vigie(&["user", "list", "--data", data_arg, "--key-hex", &key]);
    assert!(listed.contains(&id), "{listed}");
    for args in [
        vec!["user", "list", "--data", data_arg, "--key-hex", &wrong],
        vec!["user", "list", "--data", data_arg],
        vec![
            "user",
            "deactivate",
            "--data",
            data_arg,
            "--key-hex",
            &wrong,
            "--user",
            &id,
        ],
    ] {
        let out = vigie_output(&args);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("key"), "{args:?}: {err}");
    }
    let out = vigie_output(&["user", "list", "--data", data_arg, "--key-hex", "12"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("64 hex digits"));
}

#[test]
fn erasing_an_id_the_hub_does_not_hold_is_not_reported_as_done() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let supervisor = add_user(&data, "Superviseure", Role::Supervisor, &[REGION]);
    let mistyped = Uuid::now_v7().to_string();
    let error = admin_error(
        &data,
        &[
            "erase",
            "--record",
            &mistyped,
            "--by",
            &supervisor.to_string(),
            "--reason",
            "entered_in_error",
        ],
    );
    assert!(error.contains("nothing was erased"), "{error}");
    assert!(!error.contains(&mistyped), "{error}");
}

#[test]
fn the_sync_client_keeps_an_encrypted_store_and_wipes_it_when_revoked() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let user = add_user(&data, "Superviseure", Role::Supervisor, &[REGION]);
    let token = enrol(&data, user);
    let hub = Hub::start(&data);
    let store = dir.path().join("phone.db");
    let key_file = dir.path().join("phone.db.key");
    let sync = |extra: &[&str]| {
        let mut args = vec![
            "sync",
            "--hub",
            hub.url.as_str(),
            "--store",
            store.to_str().unwrap(),
            "--token",
            token.as_str(),
        ];
        args.extend(extra);
        vigie_output(&args)
    };
    let first = sync(&[]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    // Encrypted, its key in an owner-only file beside it; the next sync finds it.
    let head = std::fs::read(&store).unwrap();
    assert_ne!(&head[..16], b"SQLite format 3\0");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    assert!(sync(&[]).status.success());
    // Without its key file, the store is not opened as a new one.
    let aside = dir.path().join("aside.key");
    std::fs::rename(&key_file, &aside).unwrap();
    let lost = sync(&[]);
    assert!(!lost.status.success());
    assert!(String::from_utf8_lossy(&lost.stderr).contains("key file"));
    std::fs::rename(&aside, &key_file).unwrap();

    // A server in the hub's place (a network in clear, a Wi-Fi's sign-in page, a proxy)
    // answering what it likes: nothing goes, and its text is not the hub's words.
    let in_the_place = |status: &str, content_type: &str, body: String| {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let fake = format!("http://{}", listener.local_addr().unwrap());
        let status = status.to_string();
        let content_type = content_type.to_string();
        let answering = std::thread::spawn(move || {
            use std::io::{Read, Write};
            let (mut connection, _) = listener.accept().unwrap();
            let mut request = vec![0u8; 65536];
            let _ = connection.read(&mut request);
            let _ = write!(
                connection,
                "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        });
        let out = vigie_output(&[
            "sync",
            "--hub",
            &fake,
            "--store",
            store.to_str().unwrap(),
            "--token",
            token.as_str(),
        ]);
        answering.join().unwrap();
        assert!(!out.status.success());
        assert!(store.exists() && key_file.exists());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let forged = in_the_place(
        "403 Forbidden",
        "application/json",
        r#"{"error": "device revoked", "wipe": true, "order": "00"}"#.into(),
    );
    assert!(forged.contains("did not sign"), "{forged}");
    let portal = in_the_place(
        "200 OK",
        "text/html; charset=utf-8",
        "<html><body>Forfait épuisé : rechargez</body></html>".into(),
    );
    assert!(
        portal.contains("answered 200 in the hub's place"),
        "{portal}"
    );
    assert!(!portal.contains("Forfait"), "{portal}");
    let sign_in = in_the_place("401 Unauthorized", "text/html", "<html>login</html>".into());
    assert!(
        sign_in.contains("answered 401 in the hub's place"),
        "{sign_in}"
    );
    let long = in_the_place(
        "502 Bad Gateway",
        "application/json",
        format!(
            r#"{{"error": "amont\nindisponible {}"}}"#,
            "x".repeat(100_000)
        ),
    );
    assert!(long.contains("502: amont indisponible xxx"), "{long}");
    assert!(long.len() < 2_000, "{}", long.len());

    // Revoked: the store and its key go, and the command says so.
    let device = vigie_server::auth::Token::parse(&token).unwrap().device;
    assert!(revoke(&data, device));
    let revoked = sync(&[]);
    assert!(!revoked.status.success());
    let said = String::from_utf8_lossy(&revoked.stderr);
    assert!(said.contains("revoked") && said.contains("wiped"), "{said}");
    assert!(!store.exists() && !key_file.exists());
}

#[test]
fn a_listing_piped_into_a_reader_that_stops_ends_quietly() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    add_user(&data, "Superviseure", Role::Supervisor, &[REGION]);
    let mut child = std::process::Command::new(BIN)
        .args(["user", "list", "--data", data.to_str().unwrap()])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The reader is gone before a line is written (`vigie user list | head -0`).
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_ne!(out.status.code(), Some(101));
}

/// `vigie user list` as lines, by user id.
fn user_line(data: &std::path::Path, user: Uuid) -> serde_json::Value {
    line_of(&admin_lines(data, &["user", "list"]), "id", user).clone()
}

#[test]
fn the_command_line_checks_a_user_record_as_the_console_does() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    common::reference::publish(&data, &[common::reference::SAMPLE_AREAS]);
    let add = |name: &str, role: &str, areas: &[&str]| {
        let mut args = vec!["user", "add", "--name", name, "--role", role];
        for area in areas {
            args.extend(["--area", area]);
        }
        admin(&data, &args)
    };
    let refused = |out: std::process::Output, what: &str| {
        assert!(!out.status.success(), "{what} accepted");
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let said = refused(
        add("Chef", "administrator", &[REGION]),
        "an administrator's area",
    );
    assert!(said.contains("administrator has no area"), "{said}");
    let long = "A".repeat(32_768);
    for name in [long.as_str(), "Awa\nKoné", "Awa\u{1b}[2J", "   "] {
        let said = refused(add(name, "inspector", &[REGION]), "a bad name");
        assert!(said.contains("a name is 1 to 120 characters"), "{said}");
        assert!(!said.contains("Awa"), "{said}");
    }
    for code in ["ci-r1", "XX-R9"] {
        let said = refused(add("Awa", "inspector", &[code]), "an unknown area");
        assert!(
            said.contains(code) && said.contains("no published area tree"),
            "{said}"
        );
    }
    let said = refused(add("Awa", "inspector", &[]), "a field user without area");
    assert!(said.contains("at least one area"), "{said}");
    assert!(
        admin_lines(&data, &["user", "list"]).is_empty(),
        "nothing was added"
    );

    let user = add_user(&data, "Awa", Role::Inspector, &[REGION]);
    let id = user.to_string();
    assert!(
        admin_error(&data, &["user", "areas", "--user", &id, "--area", "ci-r1"])
            .contains("no published area tree")
    );
    assert_eq!(user_line(&data, user)["areas"], serde_json::json!([REGION]));
}

#[test]
fn a_user_loses_every_area_changes_role_and_comes_back_on_the_command_line() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let user = add_user(&data, "Awa", Role::Supervisor, &[REGION]);
    let id = user.to_string();
    // Neither --area nor --none: refused, as both together.
    assert!(
        !admin(&data, &["user", "areas", "--user", &id])
            .status
            .success()
    );
    assert!(
        !admin(
            &data,
            &["user", "areas", "--user", &id, "--none", "--area", REGION]
        )
        .status
        .success()
    );
    // An administrator has no area: the role waits until they are taken away.
    let said = admin_error(
        &data,
        &["user", "role", "--user", &id, "--role", "administrator"],
    );
    assert!(said.contains("administrator has no area"), "{said}");
    // What stays as it was is said: their cases stay theirs until handed over.
    let out = admin(&data, &["user", "areas", "--user", &id, "--none"]);
    assert!(out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("vigie user hand-over --from"), "{said}");
    assert_eq!(user_line(&data, user)["areas"], serde_json::json!([]));
    admin_lines(
        &data,
        &["user", "role", "--user", &id, "--role", "inspector"],
    );
    assert_eq!(user_line(&data, user)["role"], "inspector");
    let said = admin_error(
        &data,
        &["user", "role", "--user", &id, "--role", "inspector"],
    );
    assert!(said.contains("already"), "{said}");

    admin_lines(&data, &["user", "deactivate", "--user", &id]);
    assert_eq!(user_line(&data, user)["active"], false);
    admin_lines(&data, &["user", "reactivate", "--user", &id]);
    assert_eq!(user_line(&data, user)["active"], true);
    let said = admin_error(&data, &["user", "reactivate", "--user", &id]);
    assert!(said.contains("active already"), "{said}");
    let unknown = Uuid::now_v7().to_string();
    assert!(
        admin_error(&data, &["user", "reactivate", "--user", &unknown]).contains("no such user")
    );
}

#[test]
fn an_area_tree_published_under_another_key_is_refused() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let file = dir.path().join("xx.json");
    let tree = std::fs::read_to_string(common::reference::SAMPLE_AREAS).unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&tree).unwrap();
    json["key"] = "XX".into();
    std::fs::write(&file, json.to_string()).unwrap();
    let said = admin_error(&data, &["reference", "publish", file.to_str().unwrap()]);
    assert!(said.contains("key") && said.contains("root"), "{said}");
}

#[test]
fn reference_files_publish_all_or_none_and_the_list_counts_areas_on_trees_only() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let profile = dir.path().join("profile.json");
    let profile_json = serde_json::json!({"key": "CI", "country_profile": {
        "name": {"fr": "Côte d'Ivoire"}, "minimum_age": 14, "light_work_min_age": 12,
        "light_work_max_hours": 14, "hazardous_work_age": 18, "long_hours": 43,
        "night_work_is_hazardous": true,
        "hazardous_work": [{"code": "heights", "labels": {"fr": "Travail en hauteur"}}]}});
    std::fs::write(&profile, profile_json.to_string()).unwrap();
    let misspelled = dir.path().join("misspelled.json");
    let mut bad = profile_json.clone();
    bad["country_profile"]["minimum_agee"] = 15.into();
    std::fs::write(&misspelled, bad.to_string()).unwrap();
    let said = admin_error(
        &data,
        &[
            "reference",
            "publish",
            common::reference::SAMPLE_AREAS,
            profile.to_str().unwrap(),
            misspelled.to_str().unwrap(),
        ],
    );
    assert!(said.contains("country_profile.minimum_agee"), "{said}");
    assert!(
        !data.join("hub.db").exists() || {
            let listed = admin_lines(&data, &["reference", "list"]);
            listed.iter().all(|l| l["key"] != "CI")
        }
    );

    common::reference::publish(
        &data,
        &[common::reference::SAMPLE_AREAS, profile.to_str().unwrap()],
    );
    let listed = admin_lines(&data, &["reference", "list"]);
    let line = |ty: &str| {
        listed
            .iter()
            .find(|l| l["type"] == ty && l["key"] == "CI")
            .unwrap_or_else(|| panic!("{ty}: {listed:?}"))
            .clone()
    };
    assert!(line("administrative_areas")["areas"].is_object());
    assert!(line("country_profile").get("areas").is_none());

    // A second country's profile keyed by its name, not its tree's root code: published, and
    // the officer warned that it applies to no record (its children would be classified by
    // the default ages, its hazards refused as unknown); keyed by the code, no warning.
    let mut ghana = profile_json.clone();
    ghana["key"] = "ghana".into();
    let misnamed = dir.path().join("ghana.json");
    std::fs::write(&misnamed, ghana.to_string()).unwrap();
    let publish = |file: &std::path::Path| {
        let database = common::database_args(&data);
        let mut args = vec!["reference", "publish", "--data", data.to_str().unwrap()];
        args.extend(database.iter().map(String::as_str));
        args.push(file.to_str().unwrap());
        vigie_output(&args)
    };
    let out = publish(&misnamed);
    assert!(out.status.success());
    let told = common::stderr(&out);
    assert!(
        told.contains("country_profile ghana applies to no record") && told.contains("CI here"),
        "{told}"
    );
    let out = publish(&profile);
    assert!(!common::stderr(&out).contains("applies to no record"));
}

/// An address no hub can listen on: a `serve` whose options pass stops there, not serving.
const NOWHERE: &str = "999.0.0.0:1";

#[test]
fn urls_and_attachment_limits_are_checked_before_use() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let user = add_user(&data, "Chef", Role::Supervisor, &[REGION]).to_string();
    for url in [
        "notaurl",
        "ftp://hub.example",
        "http://",
        "https://user@hub.example",
        // Under a path: the console's links would leave it.
        "https://hub.example/vigie",
        // Links that lead nowhere.
        "https://hub.example/#f",
        "https://hub.example:99999",
        "https://hub.example;a",
    ] {
        let said = admin_error(
            &data,
            &["console", "invite", "--user", &user, "--public-url", url],
        );
        assert!(said.contains("--public-url"), "{url}: {said}");
        let said = admin_error(&data, &["serve", "--listen", NOWHERE, "--public-url", url]);
        assert!(said.contains("--public-url"), "{url}: {said}");
    }
    for template in [
        "notaurl",
        "https://tiles.example/tile.png",
        "ftp://tiles.example/{z}/{x}/{y}.png",
        "https:///{z}/{x}/{y}.png",
        "https://*/{z}/{x}/{y}.png",
        "https://*.tiles.example/{z}/{x}/{y}.png",
        "https://tiles.example:99999/{z}/{x}/{y}.png",
        "https://tiles.example/{z}/{x}/{y}.png?style={foo}",
    ] {
        let said = admin_error(
            &data,
            &["serve", "--listen", NOWHERE, "--tile-url", template],
        );
        assert!(said.contains("--tile-url"), "{template}: {said}");
    }
    let said = admin_error(
        &data,
        &[
            "serve",
            "--listen",
            NOWHERE,
            "--tile-url",
            "https://tiles.example/{z}/{x}/{y}.png",
        ],
    );
    assert!(!said.contains("--tile-url"), "{said}");
    // Without --public-url, the output says what the link is built from.
    let out = admin(&data, &["console", "invite", "--user", &user]);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("http://127.0.0.1:8470/console/welcome/")
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("--public-url"));
    let out = admin(
        &data,
        &[
            "console",
            "invite",
            "--user",
            &user,
            "--public-url",
            "https://vigie.example.org/",
        ],
    );
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .starts_with("https://vigie.example.org/console/welcome/")
    );

    let said = admin_error(
        &data,
        &["serve", "--listen", NOWHERE, "--max-attachment-bytes", "0"],
    );
    assert!(said.contains("--max-attachment-bytes"), "{said}");
    let said = admin_error(
        &data,
        &[
            "serve",
            "--listen",
            NOWHERE,
            "--max-attachment-bytes",
            "2000",
            "--max-record-attachment-bytes",
            "1000",
        ],
    );
    assert!(said.contains("--max-record-attachment-bytes"), "{said}");
}

/// `vigie erase`'s arguments for `record`, by the supervisor `by`, on a legal request.
fn erase_args<'a>(record: &'a str, by: &'a str) -> [&'a str; 7] {
    [
        "erase",
        "--record",
        record,
        "--by",
        by,
        "--reason",
        "legal_request",
    ]
}

#[test]
fn an_erased_id_is_said_erased_and_a_bad_sync_leaves_nothing() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let supervisor = add_user(&data, "Superviseure", Role::Supervisor, &[REGION]).to_string();
    let record = Uuid::now_v7().to_string();
    let erase = erase_args(&record, &supervisor);
    assert!(admin_error(&data, &erase).contains("nothing was erased"));
    let said = admin_error(&data, &erase);
    assert!(
        said.contains("erased already") && !said.contains("check the id"),
        "{said}"
    );

    let store = dir.path().join("phone.db");
    let token = enrol(&data, Uuid::parse_str(&supervisor).unwrap());
    // A token or URL that does not parse makes nothing; a first sync that reaches no hub
    // (or that the hub refuses) removes the store and key it made.
    for (hub, token) in [
        ("http://127.0.0.1:9", "garbage"),
        ("notaurl", token.as_str()),
        ("http://127.0.0.1:9", token.as_str()),
    ] {
        let out = vigie_output(&[
            "sync",
            "--hub",
            hub,
            "--store",
            store.to_str().unwrap(),
            "--token",
            token,
        ]);
        assert!(!out.status.success());
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().starts_with("phone"))
            .collect();
        assert!(left.is_empty(), "{hub} {token}: {left:?}");
    }
}

#[test]
fn publishing_a_tree_without_a_user_s_area_says_so() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    common::reference::publish(&data, &[common::reference::SAMPLE_AREAS]);
    let out = admin(
        &data,
        &[
            "user",
            "add",
            "--name",
            "Awa Koné",
            "--role",
            "community-monitor",
            "--area",
            "CI-R1-D1-C01",
        ],
    );
    assert!(out.status.success());
    let user = String::from_utf8(out.stdout).unwrap().trim().to_string();
    // The community is renamed in the next version of the tree.
    let renamed = dir.path().join("areas-v2.json");
    let text = std::fs::read_to_string(common::reference::SAMPLE_AREAS)
        .unwrap()
        .replace("\"CI-R1-D1-C01\"", "\"CI-R1-D1-C01N\"");
    std::fs::write(&renamed, text).unwrap();
    let out = admin(&data, &["reference", "publish", renamed.to_str().unwrap()]);
    assert!(out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains(&user) && said.contains("area CI-R1-D1-C01,") && said.contains("user areas"),
        "{said}"
    );
    // Given the new code, nothing more is said.
    let out = admin(
        &data,
        &["user", "areas", "--user", &user, "--area", "CI-R1-D1-C01N"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = admin(&data, &["reference", "publish", renamed.to_str().unwrap()]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains(&user));
}

/// The sample area tree, its text changed by `edit` first, with community C01 moved from
/// district D1 to D2 (and the community `removed` of D1 taken out): written in `dir`, its path
/// returned.
fn tree_with_c01_in_d2(
    dir: &std::path::Path,
    edit: &dyn Fn(String) -> String,
    removed: Option<&str>,
) -> std::path::PathBuf {
    let tree = edit(std::fs::read_to_string(common::reference::SAMPLE_AREAS).unwrap());
    let mut tree: serde_json::Value = serde_json::from_str(&tree).unwrap();
    let districts = tree["administrative_areas"]["children"][0]["children"]
        .as_array_mut()
        .unwrap();
    let in_d1 = districts[0]["children"].as_array_mut().unwrap();
    let c01 = in_d1.remove(in_d1.iter().position(|c| c["code"] == C01).unwrap());
    in_d1.retain(|c| Some(c["code"].as_str().unwrap_or_default()) != removed);
    districts[1]["children"].as_array_mut().unwrap().push(c01);
    let path = dir.join("areas-v2.json");
    std::fs::write(&path, tree.to_string()).unwrap();
    path
}

/// A community moved to another district, and one removed, while records are filed under
/// them: publishing the tree says how many records stay where they were filed, by community.
#[test]
fn publishing_a_tree_names_the_communities_records_stay_filed_under() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let hub = Hub::start(&data);
    let c02 = "CI-R1-D1-C02";
    let mut phone = Device::enrol(
        dir.path(),
        &data,
        "moniteur",
        Role::CommunityMonitor,
        &[C01, c02],
        1,
    );
    phone
        .store
        .create(&child(area(C01), "Awa", phone.user()))
        .unwrap();
    let place = phone
        .store
        .create(&workplace(area(c02), "Plantation"))
        .unwrap();
    phone
        .store
        .create(&visit(area(c02), place.id, phone.user(), 3))
        .unwrap();
    let summary = phone.sync(&hub.url).unwrap();
    assert!(summary.refused.is_empty(), "{:?}", summary.refused);

    // Supervisors of both districts, enrolled before the new tree (the helper publishes the
    // sample tree when a user's area needs it).
    let mut d1 = Device::enrol(
        dir.path(),
        &data,
        "sup-d1",
        Role::Supervisor,
        &["CI-R1-D1"],
        2,
    );
    let mut d2 = Device::enrol(
        dir.path(),
        &data,
        "sup-d2",
        Role::Supervisor,
        &["CI-R1-D2"],
        3,
    );
    d1.sync(&hub.url).unwrap();
    d2.sync(&hub.url).unwrap();
    assert_eq!(d1.store.count(RecordKind::ChildCase).unwrap(), 1);
    assert_eq!(d2.store.count(RecordKind::ChildCase).unwrap(), 0);
    // Version 2: C01 goes to district D2, C02 is removed.
    let path = tree_with_c01_in_d2(dir.path(), &|tree| tree, Some(c02));
    let out = admin(&data, &["reference", "publish", path.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stderr);
    let line = |community: &str| {
        said.lines()
            .find(|l| l.contains(&format!("› {community},")))
            .unwrap_or_else(|| panic!("{community}: {said}"))
            .to_string()
    };
    let moved = line(C01);
    assert!(
        moved.contains("1 child case") && moved.contains("holds under CI-R1-D2"),
        "{moved}"
    );
    // The command that files them where the tree puts them, named.
    assert!(
        moved.contains(&format!("vigie reference refile --community {C01}`")),
        "{moved}"
    );
    let removed = line(c02);
    assert!(
        removed.contains("1 workplace")
            && removed.contains("1 visit")
            && removed.contains("no area tree in force holds")
            && removed.contains("--to <its new code>"),
        "{removed}"
    );
    // No name, only codes and counts.
    assert!(
        !said.contains("Awa") && !said.contains("Plantation"),
        "{said}"
    );

    // Filed again where the tree now puts them: district D2's supervisor receives the case,
    // D1's lets it go; the removed community's records go under C03.
    let refile = |args: &[&str]| {
        let mut all = vec!["reference", "refile"];
        all.extend(args);
        let out = admin(&data, &all);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let moved = refile(&["--community", C01]);
    assert_eq!(moved["refiled"], 1, "{moved}");
    assert_eq!(moved["filed_under"], "CI › CI-R1 › CI-R1-D2 › CI-R1-D1-C01");
    let again = refile(&["--community", C01]);
    assert_eq!(again["refiled"], 0, "{again}");
    let merged = refile(&["--community", c02, "--to", "CI-R1-D1-C03"]);
    assert_eq!(merged["refiled"], 2, "{merged}");
    // A community of another country's tree: a record keeps its country.
    let node = |code: &str, children: serde_json::Value| serde_json::json!({"code": code, "labels": {"fr": code}, "children": children});
    let bf = serde_json::json!({"key": "BF", "administrative_areas": node("BF", serde_json::json!([
        node("BF-R1", serde_json::json!([node("BF-R1-D1", serde_json::json!([
            node("BF-R1-D1-C01", serde_json::json!([]))
        ]))]))
    ]))});
    let bf_path = dir.path().join("areas-bf.json");
    std::fs::write(&bf_path, bf.to_string()).unwrap();
    admin(&data, &["reference", "publish", bf_path.to_str().unwrap()]);
    let abroad = admin(
        &data,
        &[
            "reference",
            "refile",
            "--community",
            C01,
            "--to",
            "BF-R1-D1-C01",
        ],
    );
    assert!(!abroad.status.success());
    assert!(
        String::from_utf8_lossy(&abroad.stderr).contains("a community of BF"),
        "{abroad:?}"
    );
    let unknown = admin(&data, &["reference", "refile", "--community", c02]);
    assert!(!unknown.status.success());
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("not a community"),
        "{unknown:?}"
    );
    d1.sync(&hub.url).unwrap();
    d2.sync(&hub.url).unwrap();
    assert_eq!(d1.store.count(RecordKind::ChildCase).unwrap(), 0);
    assert_eq!(d1.store.count(RecordKind::Visit).unwrap(), 1);
    assert_eq!(d2.store.count(RecordKind::ChildCase).unwrap(), 1);
    // The monitor, whose code names the community wherever it is, keeps the case.
    phone.sync(&hub.url).unwrap();
    assert_eq!(phone.store.count(RecordKind::ChildCase).unwrap(), 1);
    let out = admin(&data, &["reference", "publish", path.to_str().unwrap()]);
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("records ("),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Community C07 of district D2.
const C07: &str = "CI-R1-D2-C07";

/// An inspector's phone in each of districts D1 and D2, and a supervisor of each (their ids).
struct Districts {
    d1: Device,
    d2: Device,
    old_place: Uuid,
    new_place: Uuid,
}

fn two_districts(dir: &std::path::Path, data: &std::path::Path) -> Districts {
    let inspector =
        |name, district, key| Device::enrol(dir, data, name, Role::Inspector, &[district], key);
    Districts {
        d1: inspector("insp-d1", "CI-R1-D1", 1),
        d2: inspector("insp-d2", "CI-R1-D2", 2),
        old_place: add_user(data, "Sup D1", Role::Supervisor, &["CI-R1-D1"]),
        new_place: add_user(data, "Sup D2", Role::Supervisor, &["CI-R1-D2"]),
    }
}

/// Work recorded offline under a community that a new tree then moves to another district or
/// renames, pushed after `vigie reference refile` filed that community's records: it was taken
/// where the old tree put it (the old district's inspector received the case, the new one's
/// never did). It goes to review, and, accepted, is filed where that community's records went.
#[test]
fn work_pushed_after_its_community_was_refiled_is_filed_where_the_community_went() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let hub = Hub::start(&data);
    let Districts {
        mut d1,
        mut d2,
        old_place,
        new_place,
    } = two_districts(dir.path(), &data);
    d1.sync(&hub.url).unwrap();
    d2.sync(&hub.url).unwrap();
    // Offline: D1's inspector records a case in C01, D2's one in C07.
    let in_c01 = d1
        .store
        .create(&child(area(C01), "Awa", d1.user()))
        .unwrap();
    let in_c07 = d2
        .store
        .create(&child(area(C07), "Fatou", d2.user()))
        .unwrap();
    // Meanwhile C01 goes to district D2, C07 is renamed C07N; each community's records (none
    // yet on the hub) are filed again.
    let path = tree_with_c01_in_d2(
        dir.path(),
        &|tree| tree.replace(&format!("\"{C07}\""), &format!("\"{C07}N\"")),
        None,
    );
    assert!(
        admin(&data, &["reference", "publish", path.to_str().unwrap()])
            .status
            .success()
    );
    let c07n = format!("{C07}N");
    for refile in [
        vec!["--community", C01],
        vec!["--community", C07, "--to", &c07n],
    ] {
        let mut args = vec!["reference", "refile"];
        args.extend(refile);
        assert!(admin(&data, &args).status.success());
    }
    // Each inspector's push goes to review, not under the old place.
    assert_eq!(d1.sync(&hub.url).unwrap().quarantined, vec![in_c01.id]);
    assert_eq!(d2.sync(&hub.url).unwrap().quarantined, vec![in_c07.id]);
    let (_, entries) = lifecycle::quarantine_list(&data);
    assert_eq!(entries.len(), 2, "{entries:?}");
    for entry in &entries {
        assert_eq!(entry["state"], "applies", "{entry}");
        let number = entry["entry"].as_i64().unwrap();
        // Reviewed by the supervisors of where accepting files it, not of the old place.
        assert_eq!(entry["filed_at"]["district"], "CI-R1-D2", "{entry}");
        if entry["record"] == in_c01.id.to_string() {
            let out = lifecycle::quarantine_accept(&data, number, Some(old_place));
            assert!(!out.status.success());
        }
        let out = lifecycle::quarantine_accept(&data, number, Some(new_place));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Filed where the tree in force puts the community, and where its records went.
    d1.sync(&hub.url).unwrap();
    d2.sync(&hub.url).unwrap();
    assert!(!d1.has(in_c01.id));
    let moved: ChildCase = d2.store.get(in_c01.id).unwrap();
    assert_eq!(moved.area, Area::new("CI", "CI-R1", "CI-R1-D2", C01));
    let renamed: ChildCase = d2.store.get(in_c07.id).unwrap();
    assert_eq!(renamed.area.community, c07n);
}

/// An edit that files a case the hub holds under a community a new tree then moved goes to
/// review too (it was taken under the old district, seen by no one of the new one), reviewed by
/// the new place's supervisors; and work under a community renamed twice is filed under its
/// last name (it stayed under the first, a code no tree holds).
#[test]
fn an_edit_into_a_moved_community_and_work_under_a_twice_renamed_one_are_filed_where_they_went() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let hub = Hub::start(&data);
    let Districts {
        mut d1,
        mut d2,
        old_place,
        new_place,
    } = two_districts(dir.path(), &data);
    // The phone holds the tree: what it records is pinned to it.
    d1.sync(&hub.url).unwrap();
    let held = d1
        .store
        .create(&child(area("CI-R1-D1-C02"), "Awa", d1.user()))
        .unwrap();
    d1.sync(&hub.url).unwrap();
    d2.sync(&hub.url).unwrap();
    // Offline: the case is filed again under C01, and a case is recorded in C07.
    let mut moved: ChildCase = d1.store.get(held.id).unwrap();
    moved.area = area(C01);
    d1.store.update(&moved).unwrap();
    let in_c07 = d2
        .store
        .create(&child(area(C07), "Fatou", d2.user()))
        .unwrap();
    // C01 goes to D2; C07 is renamed C07N, then C07M, its records filed again each time.
    let refile = |args: &[&str]| {
        let mut all = vec!["reference", "refile"];
        all.extend(args);
        assert!(admin(&data, &all).status.success());
    };
    let publish = |to: &str| {
        let path = tree_with_c01_in_d2(
            dir.path(),
            &|tree| tree.replace(&format!("\"{C07}\""), &format!("\"{to}\"")),
            None,
        );
        assert!(
            admin(&data, &["reference", "publish", path.to_str().unwrap()])
                .status
                .success()
        );
    };
    let (c07n, c07m) = (format!("{C07}N"), format!("{C07}M"));
    publish(&c07n);
    refile(&["--community", C01]);
    refile(&["--community", C07, "--to", &c07n]);
    publish(&c07m);
    refile(&["--community", &c07n, "--to", &c07m]);
    let summary = d1.sync(&hub.url).unwrap();
    assert_eq!(summary.quarantined, vec![held.id], "{summary:?}");
    assert_eq!(d2.sync(&hub.url).unwrap().quarantined, vec![in_c07.id]);
    let (_, entries) = lifecycle::quarantine_list(&data);
    assert_eq!(entries.len(), 2, "{entries:?}");
    for entry in &entries {
        let number = entry["entry"].as_i64().unwrap();
        if entry["record"] == held.id.to_string() {
            assert_eq!(entry["filed_at"]["district"], "CI-R1-D2", "{entry}");
            let out = lifecycle::quarantine_accept(&data, number, Some(old_place));
            assert!(!out.status.success());
        } else {
            assert_eq!(entry["filed_at"]["community"], c07m.as_str(), "{entry}");
        }
        let out = lifecycle::quarantine_accept(&data, number, Some(new_place));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    d2.sync(&hub.url).unwrap();
    let filed: ChildCase = d2.store.get(held.id).unwrap();
    assert_eq!(filed.area, Area::new("CI", "CI-R1", "CI-R1-D2", C01));
    let renamed: ChildCase = d2.store.get(in_c07.id).unwrap();
    assert_eq!(renamed.area.community, c07m);
}

#[test]
fn a_first_sync_whose_answer_is_lost_keeps_its_store_and_goes_on_at_the_next_try() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let user = add_user(&data, "Moniteur", Role::CommunityMonitor, &[C01]);
    let token = enrol(&data, user);
    let hub = Hub::start(&data);
    let store = dir.path().join("phone.db");
    let sync = |url: &str| {
        vigie_output(&[
            "sync",
            "--hub",
            url,
            "--store",
            store.to_str().unwrap(),
            "--token",
            token.as_str(),
        ])
    };
    // The hub answers (and certifies the store's keys), the answer is lost on the way.
    let proxy = CutProxy::cutting(&hub.addr(), Cut::Down(1));
    let cut = sync(&proxy.url);
    assert!(!cut.status.success());
    let said = String::from_utf8_lossy(&cut.stderr);
    assert!(said.contains("kept"), "{said}");
    assert!(store.exists());
    let again = sync(&hub.url);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    // A hub that cannot be reached leaves nothing behind.
    let elsewhere = dir.path().join("elsewhere.db");
    let down = vigie_output(&[
        "sync",
        "--hub",
        "http://127.0.0.1:9",
        "--store",
        elsewhere.to_str().unwrap(),
        "--token",
        token.as_str(),
    ]);
    assert!(!down.status.success());
    assert!(!elsewhere.exists());
    // A hub under a path (behind a proxy that takes the prefix off) is an address to try.
    let under = vigie_output(&[
        "sync",
        "--hub",
        "http://127.0.0.1:9/vigie",
        "--store",
        elsewhere.to_str().unwrap(),
        "--token",
        token.as_str(),
    ]);
    assert!(!under.status.success());
    assert!(!stderr(&under).contains("--hub"), "{}", stderr(&under));
    // A store path in a directory that does not exist (mistyped) is said, and nothing made.
    let mistyped = dir.path().join("no").join("such").join("phone.db");
    let refused = vigie_output(&[
        "sync",
        "--hub",
        &hub.url,
        "--store",
        mistyped.to_str().unwrap(),
        "--token",
        token.as_str(),
    ]);
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("does not exist"), "{said}");
    assert!(!dir.path().join("no").exists());
    let refused = vigie_output(&[
        "sync",
        "--hub",
        &hub.url,
        "--store",
        dir.path().to_str().unwrap(),
        "--token",
        token.as_str(),
    ]);
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("--store names a directory"), "{said}");
    // A revoked device's new store is wiped, and the command says so, not that it was kept.
    let device = vigie_server::auth::Token::parse(&token).unwrap().device;
    assert!(revoke(&data, device));
    let wiped = dir.path().join("wiped.db");
    let revoked = vigie_output(&[
        "sync",
        "--hub",
        &hub.url,
        "--store",
        wiped.to_str().unwrap(),
        "--token",
        token.as_str(),
    ]);
    assert!(!revoked.status.success());
    let said = String::from_utf8_lossy(&revoked.stderr);
    assert!(said.contains("wiped") && !said.contains("kept"), "{said}");
    assert!(!wiped.exists());
}

/// A monitor leaves: every open case of theirs goes to the colleague who takes over their
/// communities, whose due lists and alerts it fills from the next sync; a case outside the
/// successor's areas stays, and is said.
#[test]
fn a_leavers_open_cases_are_handed_over_to_their_successor() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let hub = Hub::start(&data);
    let c02 = "CI-R1-D1-C02";
    let mut leaver = Device::enrol(
        dir.path(),
        &data,
        "partante",
        Role::CommunityMonitor,
        &[C01, c02],
        1,
    );
    let mut successor = Device::enrol(
        dir.path(),
        &data,
        "remplacante",
        Role::CommunityMonitor,
        &[C01],
        2,
    );
    let mut cases = vec![];
    for (community, name) in [(C01, "Awa Koné"), (C01, "Ama Yao"), (c02, "Adjoa Traoré")] {
        let case = leaver
            .store
            .create(&child(area(community), name, leaver.user()))
            .unwrap();
        cases.push(case.id);
    }
    let summary = leaver.sync(&hub.url).unwrap();
    assert!(summary.refused.is_empty(), "{:?}", summary.refused);

    let (from, to) = (leaver.user().to_string(), successor.user().to_string());
    let out = admin_lines(&data, &["user", "hand-over", "--from", &from, "--to", &to]);
    assert_eq!(out[0]["handed_over"], 2, "{out:?}");
    let kept = out[0]["kept"].as_array().unwrap();
    assert_eq!(kept.len(), 1, "{out:?}");
    assert_eq!(kept[0]["id"], cases[2].to_string());
    successor.sync(&hub.url).unwrap();
    for id in &cases[..2] {
        let case: ChildCase = successor.store.get(*id).unwrap();
        assert_eq!(case.identified_by, successor.user());
    }
    // Journaled as begun, then as done: a run stopped midway leaves its begun entry.
    let actions: Vec<String> = admin_lines(&data, &["audit"])
        .iter()
        .map(|l| l["action"].as_str().unwrap_or_default().to_string())
        .collect();
    let at = |action: &str| actions.iter().position(|a| a == action);
    assert!(
        at("cases_hand_over").unwrap() < at("cases_hand_over_begun").unwrap(),
        "newest first: {actions:?}"
    );
    // Nothing left to hand over: the command says so, and changes nothing.
    let again = admin_lines(&data, &["user", "hand-over", "--from", &from, "--to", &to]);
    assert_eq!(again[0]["handed_over"], 0);
    assert!(
        admin_error(
            &data,
            &["user", "hand-over", "--from", &from, "--to", &from]
        )
        .contains("another user")
    );
    let nobody = Uuid::now_v7().to_string();
    assert!(
        admin_error(
            &data,
            &["user", "hand-over", "--from", &from, "--to", &nobody]
        )
        .contains("no such user")
    );
    // An administrator follows no case: refused at once, not every case kept one by one.
    let admin = add_user(&data, "Administratrice", Role::Administrator, &[]).to_string();
    assert!(
        admin_error(
            &data,
            &["user", "hand-over", "--from", &from, "--to", &admin]
        )
        .contains("not to an administrator")
    );
    admin_lines(&data, &["user", "deactivate", "--user", &to]);
    assert!(
        admin_error(&data, &["user", "hand-over", "--from", &from, "--to", &to])
            .contains("active user")
    );
}

/// An action done whose audit entry the audit log refused (a disk filling between the two)
/// ends its command with an error naming the action, after saying what was done: an
/// erasure too, whose reason only that entry keeps.
#[test]
fn a_command_whose_audit_entry_is_refused_says_so_and_fails() {
    // The embedded registry's own file is made to refuse the entries below.
    if common::postgres_server().is_some() {
        return;
    }
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("hub");
    let mut hub = Hub::start(&data);
    let mut monitor = Device::enrol(
        dir.path(),
        &data,
        "monitor",
        Role::CommunityMonitor,
        &[C01],
        1,
    );
    let supervisor = add_user(&data, "Superviseure", Role::Supervisor, &[REGION]).to_string();
    let case = monitor
        .store
        .create(&child(area(C01), "Awa Koné", monitor.user()))
        .unwrap();
    monitor.sync(&hub.url).unwrap();
    hub.stop();
    let key = std::fs::read_to_string(dir.path().join("hub-key/hub.key")).unwrap();
    let hex = key.split_whitespace().nth(1).unwrap();
    let registry = rusqlite::Connection::open(data.join("devices.db")).unwrap();
    registry
        .execute_batch(&format!(
            "PRAGMA key = \"x'{hex}'\";
             CREATE TRIGGER full_disk BEFORE INSERT ON console_audit
             BEGIN SELECT RAISE(FAIL, 'database or disk is full'); END;"
        ))
        .unwrap();
    drop(registry);
    let out = admin(
        &data,
        &["user", "areas", "--user", &supervisor, "--area", REGION],
    );
    assert!(!out.status.success());
    let said = common::stderr(&out);
    assert!(
        said.contains("user_areas") && said.contains("audit log"),
        "{said}"
    );
    let record = case.id.to_string();
    let out = admin(&data, &erase_args(&record, &supervisor));
    let said = common::stderr(&out);
    assert!(!out.status.success(), "{said}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("erased case"),
        "{said}"
    );
    assert!(
        said.contains("case_erase") && said.contains("audit log"),
        "{said}"
    );
    let device = monitor.store.device_id().to_string();
    let out = admin(&data, &["device", "revoke", "--device", &device]);
    assert!(!out.status.success());

    // Room made again: the same commands, run again, find the actions done and journal them,
    // as found and in the name of who asks now, once.
    let registry = rusqlite::Connection::open(data.join("devices.db")).unwrap();
    registry
        .execute_batch(&format!(
            "PRAGMA key = \"x'{hex}'\"; DROP TRIGGER full_disk;"
        ))
        .unwrap();
    drop(registry);
    // Not in the name of someone who may not erase (a monitor named by mistake).
    let monitor_user = monitor.user().to_string();
    let said = admin_error(&data, &erase_args(&record, &monitor_user));
    assert!(said.contains("erased already"), "{said}");
    for _ in 0..2 {
        let said = admin_error(&data, &erase_args(&record, &supervisor));
        assert!(said.contains("erased already"), "{said}");
        let said = admin_error(&data, &["device", "revoke", "--device", &device]);
        assert!(said.contains("revoked already"), "{said}");
    }
    let entries = |action: &str, id: &str| -> Vec<serde_json::Value> {
        admin_lines(&data, &["audit", "--record", id])
            .into_iter()
            .filter(|l| l["action"] == action)
            .collect()
    };
    let erased = entries("case_erase", &record);
    assert_eq!(erased.len(), 1, "{erased:?}");
    assert_eq!(
        erased[0]["detail"],
        "legal_request (found_done_unjournaled) (command line)"
    );
    assert_eq!(erased[0]["user"], supervisor.as_str());
    let revoked = entries("device_revoke", &device);
    assert_eq!(revoked.len(), 1, "{revoked:?}");
    assert_eq!(
        revoked[0]["detail"],
        "found_done_unjournaled (command line)"
    );
}

/// `vigie device enrol --qr` draws the token as a QR code in the terminal (a phone scans it
/// from the screen, nothing typed or passed around): read back module by module, it is the
/// token's code, light text on a dark terminal.
#[test]
fn a_token_is_drawn_as_a_qr_code_on_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("hub");
    let user = add_user(&data, "Awa Koné", Role::CommunityMonitor, &[C01]);
    let out = admin(
        &data,
        &["device", "enrol", "--user", &user.to_string(), "--qr"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8(out.stdout).unwrap();
    let mut lines = printed.lines();
    let token = lines.next().expect("the token's text");
    assert!(token.starts_with("vgd1."), "{token}");
    // Each character holds two modules, top and bottom; a dark module is the terminal's
    // background (a space), a light one its text (a block).
    let mut rows: Vec<Vec<bool>> = Vec::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let (mut top, mut bottom) = (Vec::new(), Vec::new());
        for c in line.chars() {
            let (t, b) = match c {
                ' ' => (true, true),
                '▄' => (true, false),
                '▀' => (false, true),
                '█' => (false, false),
                other => panic!("{other:?} in {line:?}"),
            };
            top.push(t);
            bottom.push(b);
        }
        rows.push(top);
        rows.push(bottom);
    }
    let code = qrcode::QrCode::new(token.as_bytes()).unwrap();
    let width = code.width();
    let quiet = (rows[0].len() - width) / 2;
    let drawn: Vec<bool> = rows[quiet..quiet + width]
        .iter()
        .flat_map(|row| row[quiet..quiet + width].to_vec())
        .collect();
    let expected: Vec<bool> = code
        .to_colors()
        .into_iter()
        .map(|c| c == qrcode::Color::Dark)
        .collect();
    assert_eq!(drawn, expected);
}

/// A hub's first commands run at once on a new data directory (a set-up script publishing the
/// area tree while it adds the administrator): each waits for the other to make the hub's
/// files, then does its work. They found each other's files half made: one said the hub was
/// cut and should be restored or removed, or missing a file, and `serve` stopped.
#[test]
fn first_commands_at_once_on_a_new_data_directory_each_do_their_work() {
    if common::postgres_server().is_some() {
        return; // The embedded hub's files.
    }
    for round in 0..4 {
        let dir = TempDir::new().unwrap();
        let data = dir.path().join(format!("hub{round}"));
        let runs: Vec<_> = (0..3)
            .map(|n| {
                let data = data.clone();
                std::thread::spawn(move || {
                    let data = data.to_str().unwrap().to_string();
                    match n {
                        0 => vigie_output(&[
                            "reference",
                            "publish",
                            "--data",
                            &data,
                            common::reference::SAMPLE_AREAS,
                        ]),
                        _ => vigie_output(&[
                            "user",
                            "add",
                            "--data",
                            &data,
                            "--name",
                            &format!("Administratrice {n}"),
                            "--role",
                            "administrator",
                        ]),
                    }
                })
            })
            .collect();
        for run in runs {
            let out = run.join().unwrap();
            assert!(out.status.success(), "{}", stderr(&out));
        }
        let users = admin_lines(&data, &["user", "list"]);
        assert_eq!(users.len(), 2, "{users:?}");
    }
}
