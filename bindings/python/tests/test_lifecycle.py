"""Records leaving the store: the app hears of each (erased, out of the user's scope, quarantined,
wiped), the sync summary counts them, and a revoked device raises DeviceRevoked."""

import vigie
from conftest import Recorder, key

C01 = vigie.Area(country="CI", region="CI-R1", district="CI-R1-D1", community="CI-R1-D1-C01")


class Changes(Recorder):
    def removed(self):
        return {(c.id, c.kind, c.removed) for c in self.changes if c.removed is not None}


def case(store, name):
    c = vigie.new_child_case("CI-L-0001", name, vigie.Sex.FEMALE, C01, "2026-03-02", store.user_id())
    c.estimated_age = 11
    c.hours_per_week = 20
    return store.create_child_case(c)


def enrolled(env, name, role, area):
    """A new user of the hub and a store for a device enrolled for them."""
    user = env.admin("user", "add", "--name", name, "--role", role, "--area", area)
    token = env.admin("device", "enrol", "--user", user)
    me = vigie.parse_enrolment_token(token)
    store = vigie.open_store(env.store_path(f"{name}.db"), key(21), me.user_id, me.device_id)
    return store, token, user


def test_an_erased_case_is_heard_of_and_counted(env):
    monitor, monitor_token, _ = enrolled(env, "Erased Monitor", "community-monitor", C01.community)
    supervisor, supervisor_token, supervisor_user = enrolled(env, "Erased Sup", "supervisor", "CI-R1")
    with monitor, supervisor:
        erased = case(monitor, "Aminata Sangaré")
        monitor.sync_with(vigie.HubTransport(env.hub_url, monitor_token), None)
        supervisor.sync_with(vigie.HubTransport(env.hub_url, supervisor_token), None)
        heard = Changes()
        monitor.add_change_listener(heard)
        env.admin(
            "erase", "--record", erased.id, "--by", supervisor_user, "--reason", "legal_request"
        )

        summary = monitor.sync_with(vigie.HubTransport(env.hub_url, monitor_token), None)
        assert (summary.erased, summary.left_scope, summary.quarantined) == (1, 0, 0)
        assert heard.removed() == {(erased.id, vigie.RecordKind.CHILD_CASE, vigie.Removal.ERASED)}
        assert all(c.source == vigie.ChangeSource.HUB for c in heard.changes if c.removed)
        assert monitor.search_names("Aminata", 10) == []


def test_a_lost_area_is_heard_of_record_by_record(env):
    monitor, token, user = enrolled(env, "Moving Monitor", "community-monitor", C01.community)
    with monitor:
        edited = case(monitor, "Fanta Coulibaly")
        untouched = case(monitor, "Salimata Koné")
        monitor.sync_with(vigie.HubTransport(env.hub_url, token), None)
        edited.notes = "Vue au marché."
        monitor.update_child_case(edited)
        heard = Changes()
        monitor.add_change_listener(heard)
        env.admin("user", "areas", "--user", user, "--area", "CI-R1-D1-C02")

        # Every case and visit of the community leaves (other tests' too): one event each.
        kinds = (vigie.RecordKind.CHILD_CASE, vigie.RecordKind.VISIT, vigie.RecordKind.WORKPLACE)
        held = sum(monitor.count(k) for k in kinds)
        summary = monitor.sync_with(vigie.HubTransport(env.hub_url, token), None)
        assert (summary.quarantined, summary.left_scope, summary.erased) == (1, held - 1, 0)
        assert summary.pending == 0
        removed = heard.removed()
        assert len(removed) == held
        assert (edited.id, vigie.RecordKind.CHILD_CASE, vigie.Removal.QUARANTINED) in removed
        assert (untouched.id, vigie.RecordKind.CHILD_CASE, vigie.Removal.LEFT_SCOPE) in removed
        assert sum(monitor.count(k) for k in kinds) == 0
        assert monitor.search_names("Salimata", 10) == []


def test_a_revoked_device_raises_device_revoked_and_the_wipe_is_heard_of(env, tmp_path):
    me = vigie.parse_enrolment_token(env.revoked_token)
    vault = vigie.open_vault(
        str(tmp_path / "vault"),
        vigie.VaultConfig(kdf_memory_kib=64, kdf_iterations=1, max_failed_pins=3),
    )
    store = vault.create_user(me.user_id, me.device_id, "482913")
    kept = case(store, "Rokia Diarra")
    heard = Changes()
    store.add_change_listener(heard)
    try:
        store.sync_with(vigie.HubTransport(env.hub_url, env.revoked_token), None)
        raise AssertionError("a revoked device synced")
    except vigie.VigieError.DeviceRevoked as e:
        assert "revoked" in str(e)
    # The records left at once, whatever the app does next, and the listeners heard of each.
    assert heard.removed() == {(kept.id, vigie.RecordKind.CHILD_CASE, vigie.Removal.WIPED)}
    try:
        store.count(vigie.RecordKind.CHILD_CASE)
        raise AssertionError("a wiped store answered")
    except vigie.VigieError.ProfileWiped:
        pass
    # The file remembers: unlocked again, it says the device was revoked.
    try:
        vault.unlock_with_pin(me.user_id, "482913")
        raise AssertionError("a revoked profile opened")
    except vigie.VigieError.DeviceRevoked:
        pass
    # What the app does when told: the profile goes.
    vault.wipe_user(me.user_id)
    assert not vault.has_user(me.user_id)


def test_a_refused_case_its_user_gives_up_leaves_the_phone_and_is_heard_of(env):
    import uuid

    monitor, token, _ = enrolled(env, "Giving Up Monitor", "community-monitor", C01.community)
    with monitor:
        # Assigned to someone the hub knows of no such user: refused, and no correction the
        # monitor can make is the one they meant.
        c = vigie.new_child_case("CI-L-0009", "Awa Traoré", vigie.Sex.FEMALE, C01, "2026-03-02", str(uuid.uuid4()))
        c.estimated_age = 12
        stray = monitor.create_child_case(c)
        summary = monitor.sync_with(vigie.HubTransport(env.hub_url, token), None)
        assert [(r.id, r.reason) for r in summary.refused] == [(stray.id, vigie.Refusal.STEP_NOT_ALLOWED())]
        # Said to its user in their language, as a local refusal is (the rule's words were the
        # core's English only).
        refused = summary.refused[0]
        assert refused.text_in("fr").startswith("Refusé : "), refused.text_in("fr")
        assert refused.text_in("en").startswith("Not allowed"), refused.text_in("en")
        assert "Awa" not in refused.text_in("fr") + refused.text_in("en")
        assert monitor.refused_records() == [stray.id]
        try:
            monitor.discard_refused_changes("not-a-uuid")
            raise AssertionError("an id that is no UUID was taken")
        except vigie.VigieError.Validation as e:
            assert e.field == "id"
        heard = Changes()
        monitor.add_change_listener(heard)

        assert monitor.discard_refused_changes(stray.id) == vigie.Discarded.REMOVED
        assert heard.removed() == {(stray.id, vigie.RecordKind.CHILD_CASE, vigie.Removal.DISCARDED)}
        assert monitor.refused_records() == []
        assert monitor.hub_outbox_len() == 0
        try:
            monitor.discard_refused_changes(stray.id)
            raise AssertionError("a record the store lacks was discarded")
        except vigie.VigieError.NotFound:
            pass
        summary = monitor.sync_with(vigie.HubTransport(env.hub_url, token), None)
        assert (summary.refused, summary.pending) == ([], 0)
