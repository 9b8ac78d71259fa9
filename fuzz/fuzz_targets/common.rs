// Stores shared by every input of a run: fuzzing must find crashes and corruption, not pay for
// opening SQLite each time.
use std::sync::{Mutex, OnceLock};
use vigie_core::sync::Principal;
use vigie_core::*;

pub struct Fixture {
    pub _dir: tempfile::TempDir,
    pub hub: Store,
    pub device: Store,
    pub principal: Principal,
}

pub fn fixture() -> &'static Mutex<Fixture> {
    static FIXTURE: OnceLock<Mutex<Fixture>> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temporary directory");
        let hub = Store::open(
            StoreConfig::new(dir.path().join("hub.db"), Encryption::Unencrypted, uuid::Uuid::now_v7())
                .role(StoreRole::Hub),
        )
        .expect("hub store");
        let user = uuid::Uuid::now_v7();
        let device =
            Store::open(StoreConfig::new(dir.path().join("device.db"), Encryption::Unencrypted, user))
                .expect("device store");
        let principal = Principal {
            device: device.device_id(),
            user,
            role: Role::Supervisor,
            areas: ["CI-R1".to_string()].into(),
        };
        Mutex::new(Fixture { _dir: dir, hub, device, principal })
    })
}
