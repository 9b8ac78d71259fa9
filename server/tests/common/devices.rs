//! Devices: enrolled stores on real files, and their syncs with the hub.

use super::*;

/// An enrolled device: its token and its own store on a real, encrypted file.
pub struct Device {
    pub name: String,
    pub token: Token,
    pub token_text: String,
    pub store: Store,
    /// What the hub should let this device see and change.
    pub principal: Principal,
}

impl Device {
    /// Adds a user, enrols a device for them and opens the device's store in `dir`.
    pub fn enrol(
        dir: &Path,
        data: &Path,
        name: &str,
        role: Role,
        areas: &[&str],
        key: u8,
    ) -> Device {
        let user = add_user(data, name, role, areas);
        let token_text = enrol(data, user);
        let device = Device::open(dir, name, &token_text, role, areas, key);
        assert_eq!(device.token.user, user);
        device
    }

    /// Opens (creating it) the store in `dir` of the device whose enrolment token is
    /// `token_text`, given to a user of this role and these areas.
    pub fn open(
        dir: &Path,
        name: &str,
        token_text: &str,
        role: Role,
        areas: &[&str],
        key: u8,
    ) -> Device {
        Device::open_with(
            dir,
            name,
            token_text,
            role,
            areas,
            Encryption::Key([key; 32]),
        )
    }

    /// `open`, with the store protected as given (unencrypted, for tests that search the
    /// store's bytes).
    pub fn open_with(
        dir: &Path,
        name: &str,
        token_text: &str,
        role: Role,
        areas: &[&str],
        encryption: Encryption,
    ) -> Device {
        let token = Token::parse(token_text).expect("the token parses");
        let user = token.user;
        let config = StoreConfig::new(dir.join(format!("{name}.db")), encryption, token.user)
            .device(token.device);
        let store = Store::open(config).expect("open the device store");
        assert_eq!(store.device_id(), token.device);
        Device {
            name: name.to_string(),
            principal: Principal {
                device: token.device,
                user,
                role,
                areas: areas.iter().map(|a| a.to_string()).collect(),
            },
            token,
            token_text: token_text.to_string(),
            store,
        }
    }

    pub fn user(&self) -> Uuid {
        self.token.user
    }

    pub fn client(&self, url: &str) -> HubClient {
        HubClient::new(url, &self.token)
    }

    pub fn sync(&mut self, url: &str) -> vigie_core::Result<SyncSummary> {
        self.sync_with(url, &SyncOptions::default())
    }

    pub fn sync_with(
        &mut self,
        url: &str,
        options: &SyncOptions,
    ) -> vigie_core::Result<SyncSummary> {
        HubClient::new(url, &self.token).sync(&mut self.store, options, |_| {})
    }

    /// Whether the hub lets this device receive and change a record of this kind and area.
    pub fn may_see(&self, kind: RecordKind, area: &Area) -> bool {
        self.principal.kinds().contains(&kind)
            && self.principal.covers(area, reference::sample_reference())
    }

    pub fn has(&self, id: Uuid) -> bool {
        self.store.kind_of(id).is_ok()
    }
}

/// Runs `write` as a device whose app does not check its user's areas (an older version)
/// would: the store takes it as if its user worked in the whole country, then keeps its
/// profile as it was. What the hub makes of a record filed where its user does not work is
/// what such tests look at. A store that never synced checks nothing already.
pub fn without_area_check<T>(store: &mut Store, write: impl FnOnce(&mut Store) -> T) -> T {
    let Some(profile) = store.user_profile().unwrap() else {
        return write(store);
    };
    let everywhere = vigie_core::rights::UserProfile {
        role: profile.role,
        areas: vec![COUNTRY.into()],
    };
    store.debug_assume_profile(&everywhere).unwrap();
    let written = write(store);
    store.debug_assume_profile(&profile).unwrap();
    written
}
