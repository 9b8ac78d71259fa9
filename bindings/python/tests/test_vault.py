"""Several users on one phone, on real files: the vault's profiles, PINs, keystore unlock, key
rotation, wiping, and cases handed from one user to another."""

import os
import time

import pytest

import vigie
from conftest import as_role, key, new_id

AREA = vigie.Area(country="CI", region="CI-R1", district="CI-R1-D1", community="CI-R1-D1-C01")
PIN_A, PIN_B = "482913", "730615"
# A cheap derivation for tests; an app keeps the defaults (19 MiB, 2 passes).
CHEAP = vigie.VaultConfig(kdf_memory_kib=64, kdf_iterations=1, max_failed_pins=3)


def fresh_vault(env, config=CHEAP):
    directory = os.path.dirname(env.store_path("unused"))
    return vigie.open_vault(os.path.join(directory, "vault"), config), directory


def child(store, code, name, age=11, hazards=("heavy_loads",)):
    case = vigie.new_child_case(code, name, vigie.Sex.FEMALE, AREA, "2026-03-02", store.user_id())
    case.estimated_age = age
    case.hours_per_week = 20
    case.hazards = list(hazards)
    return store.create_child_case(case)


class Recorder(vigie.ChangeListener):
    def __init__(self):
        self.changes = []

    def on_change(self, change):
        self.changes.append(change)

    def on_bulk_change(self, source, records):
        pass


def test_two_users_on_one_phone_keep_their_unsynced_work_apart(env):
    vault, _ = fresh_vault(env)
    monitor = vigie.parse_enrolment_token(env.monitor_token)
    other = new_id()

    with vault.create_user(monitor.user_id, monitor.device_id, PIN_A) as a:
        assert a.user_id() == monitor.user_id and a.device_id() == monitor.device_id
        aya = child(a, "CI-V-0001", "Aya Kouassi")
        assert a.hub_outbox_len() == 1
    with vault.create_user(other, None, PIN_B) as b:
        b.create_workplace(vigie.new_workplace("Atelier Yao", "textile", vigie.Formality.FORMAL, AREA))
        assert b.hub_outbox_len() == 1
        assert b.count(vigie.RecordKind.CHILD_CASE) == 0
    assert sorted(vault.users()) == sorted([monitor.user_id, other])
    with pytest.raises(vigie.VigieError.Conflict):
        vault.create_user(other, None, PIN_B)

    # Switching back: the first user's unsynced work is there, and only theirs; it syncs.
    with vault.unlock_with_pin(monitor.user_id, PIN_A) as a:
        assert a.get_child_case(aya.id).name == "Aya Kouassi"
        assert a.count(vigie.RecordKind.WORKPLACE) == 0
        assert a.hub_outbox_len() == 1
        summary = a.sync_with(vigie.HubTransport(env.hub_url, env.monitor_token), None)
        assert summary.accepted == 1 and summary.refused == [] and summary.pending == 0

    # The second user unlocks with the keystore's key after biometrics, or changes their PIN.
    vault.add_keystore_unlock(other, PIN_B, key(40))
    assert vault.has_keystore_unlock(other)
    with vault.unlock_with_keystore(other, key(40)) as b:
        assert b.hub_outbox_len() == 1
    with pytest.raises(vigie.VigieError.Authentication):
        vault.unlock_with_keystore(other, key(41))
    with pytest.raises(vigie.VigieError.Validation) as e:
        vault.unlock_with_keystore(other, b"short")
    assert e.value.field == "keystore_key"
    vault.change_pin(other, PIN_B, "915372")
    with pytest.raises(vigie.VigieError.WrongPin):
        vault.unlock_with_pin(other, PIN_B)
    vault.unlock_with_pin(other, "915372").close_store()
    vault.remove_keystore_unlock(other)
    with pytest.raises(vigie.VigieError.NotAllowed):
        vault.unlock_with_keystore(other, key(40))
    with pytest.raises(vigie.VigieError.Validation) as e:
        vault.create_user(new_id(), None, "123456")
    assert e.value.field == "pin"


def test_past_the_first_wrong_pins_each_attempt_waits_and_a_sooner_one_is_not_counted(env):
    config = vigie.VaultConfig(kdf_memory_kib=64, kdf_iterations=1, max_failed_pins=3,
                               pin_delay_after=1, pin_delay_seconds=1)
    vault, directory = fresh_vault(env, config)
    user = new_id()
    vault.create_user(user, None, PIN_A).close_store()
    with pytest.raises(vigie.VigieError.WrongPin):
        vault.unlock_with_pin(user, "111112")
    assert vault.pin_retry_in_seconds(user) == 1
    with pytest.raises(vigie.VigieError.PinLocked) as e:
        vault.unlock_with_pin(user, PIN_A)
    assert e.value.retry_in_seconds == 1
    assert PIN_A not in str(e.value)
    assert vault.pin_attempts_left(user) == 2
    time.sleep(1.1)
    assert vault.pin_retry_in_seconds(user) == 0
    vault.unlock_with_pin(user, PIN_A).close_store()
    assert vault.pin_attempts_left(user) == 3
    with pytest.raises(vigie.VigieError.Validation) as e:
        vigie.open_vault(os.path.join(directory, "other"), vigie.VaultConfig(pin_delay_seconds=-1))
    assert e.value.field == "pin_delay_seconds"


def test_wrong_pins_count_down_and_the_last_one_wipes_the_profile(env):
    vault, _ = fresh_vault(env)
    user, neighbour = new_id(), new_id()
    vault.create_user(user, None, PIN_A).close_store()
    with vault.create_user(neighbour, None, PIN_B) as n:
        child(n, "CI-V-0002", "Koffi Brou")
    profile = os.path.join(vault.users_dir(), user)
    assert os.path.isfile(os.path.join(profile, "store.db"))

    with pytest.raises(vigie.VigieError.WrongPin) as e:
        vault.unlock_with_pin(user, "111112")
    assert e.value.attempts_left == 2
    assert "111112" not in str(e.value)
    assert vault.pin_attempts_left(user) == 2
    vault.unlock_with_pin(user, PIN_A).close_store()  # a right PIN resets the count
    assert vault.pin_attempts_left(user) == 3

    left = []
    for wrong in ("111112", "222223"):
        with pytest.raises(vigie.VigieError.WrongPin) as e:
            vault.unlock_with_pin(user, wrong)
        left.append(e.value.attempts_left)
    assert left == [2, 1]
    with pytest.raises(vigie.VigieError.ProfileWiped):
        vault.unlock_with_pin(user, "333334")
    assert not os.path.exists(profile)
    assert vault.users() == [neighbour]
    with pytest.raises(vigie.VigieError.NotFound) as e:
        vault.unlock_with_pin(user, PIN_A)
    assert (e.value.kind, e.value.id) == ("profile", user)
    with vault.unlock_with_pin(neighbour, PIN_B) as n:  # the other profile is untouched
        assert n.count(vigie.RecordKind.CHILD_CASE) == 1


def test_rotating_the_key_keeps_every_record_and_wiping_closes_open_stores(env):
    vault, _ = fresh_vault(env)
    user, other = new_id(), new_id()
    store = vault.create_user(user, None, PIN_A)
    vault.add_keystore_unlock(user, PIN_A, key(42))
    ids = [child(store, f"CI-V-01{i:02}", f"Enfant {i}").id for i in range(5)]
    key_file = os.path.join(vault.users_dir(), user, "key.json")
    with open(key_file) as f:
        before = f.read()

    # Unlocked again while open (a background sync, another screen): the PIN is checked, a
    # wrong one counted, and the same store given, so that every part of the app hears the
    # others' writes and no two syncs of one file run side by side (nor a rotation under one).
    heard = Recorder()
    store.add_change_listener(heard)
    with pytest.raises(vigie.VigieError.WrongPin):
        vault.unlock_with_pin(user, "999991")
    assert vault.pin_attempts_left(user) == 2
    worker = vault.unlock_with_pin(user, PIN_A)
    assert vault.pin_attempts_left(user) == 3
    by_worker = child(worker, "CI-V-0150", "Par le travailleur").id
    assert [c.id for c in heard.changes] == [by_worker]
    assert vault.unlock_with_keystore(user, key(42)).get_child_case(by_worker).case_code == "CI-V-0150"
    vault.rotate_key_with_pin(store, PIN_A)
    assert worker.get_child_case(by_worker).case_code == "CI-V-0150"
    with open(key_file) as f:
        assert f.read() != before  # a new data key, wrapped
    assert [store.get_child_case(i).case_code for i in ids] == [f"CI-V-01{i:02}" for i in range(5)]
    child(store, "CI-V-0200", "Après rotation")
    with pytest.raises(vigie.VigieError.WrongPin):
        vault.rotate_key_with_pin(store, "999990")
    vault.rotate_key_with_keystore(store, key(42))
    store.close_store()
    with vault.unlock_with_pin(user, PIN_A) as store:
        assert store.count(vigie.RecordKind.CHILD_CASE) == 7
        assert store.integrity_check()
    with vault.unlock_with_keystore(user, key(42)) as store:
        assert store.count(vigie.RecordKind.CHILD_CASE) == 7

    # Another vault's store cannot be rotated here.
    elsewhere, _ = fresh_vault(env)
    with elsewhere.create_user(other, None, PIN_B) as foreign:
        with pytest.raises(vigie.VigieError.NotAllowed):
            vault.rotate_key_with_pin(foreign, PIN_B)

    # Wiping closes the user's open store first; calling it afterwards says why.
    store = vault.unlock_with_pin(user, PIN_A)
    vault.wipe_user(user)
    with pytest.raises(vigie.VigieError.ProfileWiped):
        store.count(vigie.RecordKind.CHILD_CASE)
    assert not os.path.exists(os.path.join(vault.users_dir(), user))
    vault.create_user(user, None, PIN_A).close_store()
    kept = vault.create_user(other, None, PIN_B)
    vault.wipe_all()
    assert vault.users() == []
    assert os.listdir(vault.users_dir()) == []
    with pytest.raises(vigie.VigieError.ProfileWiped):
        kept.hub_outbox_len()


def test_a_listener_that_opens_the_next_profile_when_one_is_wiped_does_not_hang(env):
    """A shared tablet's app opens the next user's profile when it hears the current one
    wiped: the listener is told once the wipe let go of the vault, not while it held it."""
    import threading

    vault, _ = fresh_vault(env)
    first, second = new_id(), new_id()
    store = vault.create_user(first, None, PIN_A)
    child(store, "CI-V-0301", "Awa Koné")
    vault.create_user(second, None, PIN_B).close_store()
    opened = []

    class NextUser(vigie.ChangeListener):
        def on_change(self, change):
            if change.removed == vigie.Removal.WIPED and not opened:
                opened.append(vault.unlock_with_pin(second, PIN_B))

        def on_bulk_change(self, source, records):
            pass

    store.add_change_listener(NextUser())
    wiping = threading.Thread(target=vault.wipe_user, args=(first,), daemon=True)
    wiping.start()
    wiping.join(timeout=20)
    assert not wiping.is_alive(), "the wipe hung on its own listener"
    assert len(opened) == 1 and opened[0].user_id() == second
    assert vault.users() == [second]
    opened[0].close_store()


def test_two_unlocks_at_once_share_one_store(env):
    # A screen and a background worker unlock the profile at the same moment: one store, whose
    # writes each hears, not two side by side.
    import threading

    vault, _ = fresh_vault(env)
    user = new_id()
    vault.create_user(user, None, PIN_A).close_store()
    for attempt in range(5):
        got = []
        barrier = threading.Barrier(2)

        def unlock():
            barrier.wait()
            got.append(vault.unlock_with_pin(user, PIN_A))

        threads = [threading.Thread(target=unlock) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        a, b = got
        heard = Recorder()
        a.add_change_listener(heard)
        made = child(b, f"CI-R-{attempt:04}", f"Enfant {attempt}").id
        assert [c.id for c in heard.changes] == [made], attempt
        a.close_store()
    assert vault.pin_attempts_left(user) == 3


def test_a_wipe_racing_an_unlock_leaves_no_store_open(env):
    # The hub's order to wipe a profile lands while a screen unlocks it: either the unlock came
    # first and the wipe closes its store, or it finds no profile; never a store left open on
    # deleted files.
    import threading

    vault, _ = fresh_vault(env)
    for attempt in range(6):
        user = new_id()
        with vault.create_user(user, None, PIN_A) as store:
            child(store, f"CI-X-{attempt:04}", f"Enfant {attempt}")
        got = {}
        barrier = threading.Barrier(2)

        def unlock():
            barrier.wait()
            try:
                got["store"] = vault.unlock_with_pin(user, PIN_A)
            except vigie.VigieError as e:
                got["error"] = e

        def wipe():
            barrier.wait()
            vault.wipe_user(user)

        threads = [threading.Thread(target=unlock), threading.Thread(target=wipe)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if "store" in got:
            with pytest.raises(vigie.VigieError.ProfileWiped):
                got["store"].count(vigie.RecordKind.CHILD_CASE)
        else:
            assert isinstance(got["error"], vigie.VigieError.NotFound), got["error"]
        assert user not in vault.users()


def test_open_cases_are_handed_over_to_another_user_of_the_phone(env):
    vault, _ = fresh_vault(env)
    giver, receiver, third = new_id(), new_id(), new_id()
    monitor = vigie.Role.COMMUNITY_MONITOR
    with vault.create_user(giver, None, PIN_A) as a:
        aya = child(a, "CI-H-0001", "Aya Kouassi")
        yao = child(a, "CI-H-0002", "Yao Serge", age=9, hazards=())
        hand_over = a.hand_over([aya.id, yao.id], receiver)
        assert (hand_over.from_user_id(), hand_over.to_user_id()) == (giver, receiver)
        assert hand_over.case_ids() == [aya.id, yao.id]
        assert a.get_child_case(aya.id).identified_by == receiver
        with pytest.raises(vigie.VigieError.NotAllowed):
            a.hand_over([aya.id], giver)

        # A closed case stays with its user.
        done = child(a, "CI-H-0003", "Adjoua")
        done = as_role(a, monitor).refer_case(done.id, vigie.new_referral(vigie.ServiceKind.EDUCATION, "École", "2026-03-03"))
        as_role(a, monitor).transition_case(done.id, vigie.CaseStatus.RECEIVING_SERVICES)
        done = as_role(a, vigie.Role.SUPERVISOR).transition_case(done.id, vigie.CaseStatus.WITHDRAWN)
        # Verified in March, seen in school in June: closed.
        done.remediated_on = "2026-03-10"
        done = as_role(a, vigie.Role.SUPERVISOR).update_child_case(done)
        as_role(a, monitor).add_follow_up(done.id, vigie.new_follow_up("2026-06-10", vigie.FollowUpSituation.IN_SCHOOL, None))
        as_role(a, vigie.Role.SUPERVISOR).transition_case(done.id, vigie.CaseStatus.CLOSED)
        with pytest.raises(vigie.VigieError.NotAllowed) as e:
            a.hand_over([done.id], receiver)
        assert "closed" in e.value.reason

    with vault.create_user(third, None, "605814") as c:
        with pytest.raises(vigie.VigieError.NotAllowed):
            c.receive_hand_over(hand_over)
        assert c.count(vigie.RecordKind.CHILD_CASE) == 0

    with vault.create_user(receiver, None, PIN_B) as b:
        recorder = Recorder()
        b.add_change_listener(recorder)
        assert b.receive_hand_over(hand_over) == [aya.id, yao.id]
        assert {(c.id, c.source) for c in recorder.changes} == {
            (aya.id, vigie.ChangeSource.HAND_OVER), (yao.id, vigie.ChangeSource.HAND_OVER)}
        received = b.get_child_case(aya.id)
        assert received.name == "Aya Kouassi" and received.identified_by == receiver
        # The receiver works on it offline at once, and it is in their outbox.
        as_role(b, monitor).add_follow_up(aya.id, vigie.new_follow_up("2026-03-20", vigie.FollowUpSituation.AT_RISK, "2026-04-01"))
        due = b.follow_ups_due("2026-05-01", assignee_id=receiver)
        assert aya.id in [d.id for d in due]
        assert b.hub_outbox_len() == 2


def test_a_profile_whose_device_the_hub_revoked_leaves_the_tablet_at_another_profiles_sync(env):
    # A tablet two people share: the monitor leaves, the administrator revokes her profile's
    # device, and her colleague's next sync takes her profile (her area's children) off it.
    vault, _ = fresh_vault(env)
    leaver = vigie.parse_enrolment_token(env.monitor_token)
    stayer = vigie.parse_enrolment_token(env.supervisor_token)
    with vault.create_user(leaver.user_id, leaver.device_id, PIN_A) as a:
        child(a, "CI-V-0101", "Aya Kouassi")
        assert a.sync_with(vigie.HubTransport(env.hub_url, env.monitor_token), None).accepted == 1
    b = vault.create_user(stayer.user_id, stayer.device_id, PIN_B)
    b.sync_with(vigie.HubTransport(env.hub_url, env.supervisor_token), None)
    assert sorted(vault.users()) == sorted([leaver.user_id, stayer.user_id])

    env.admin("device", "revoke", "--device", leaver.device_id)
    b.sync_with(vigie.HubTransport(env.hub_url, env.supervisor_token), None)
    assert vault.users() == [stayer.user_id]
    with pytest.raises(vigie.VigieError.NotFound):
        vault.unlock_with_pin(leaver.user_id, PIN_A)
    # The colleague's own work is untouched.
    assert b.count(vigie.RecordKind.CHILD_CASE) >= 1
    b.close_store()


def test_a_pin_refused_reads_in_french(env):
    vault, _ = fresh_vault(env)
    with pytest.raises(vigie.VigieError.Validation) as e:
        vault.create_user(new_id(), None, "1234")
    assert e.value.text_in("fr") == "Code PIN : doit avoir au moins 6 caractères", e.value.text_in("fr")
    user = new_id()
    vault.create_user(user, None, PIN_A).close_store()
    with pytest.raises(vigie.VigieError.Conflict) as e:
        vault.create_user(user, None, PIN_A)
    assert e.value.text_in("fr").startswith("Conflit : "), e.value.text_in("fr")
