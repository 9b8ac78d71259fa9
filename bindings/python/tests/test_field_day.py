"""A monitor's field day on a real store and a real hub, and the supervisor's side of it."""

import threading

import pytest

import vigie
from conftest import Recorder, key, open_enrolled, synced

AREA = vigie.Area(country="CI", region="CI-R1", district="CI-R1-D1", community="CI-R1-D1-C01")


class Progress(vigie.SyncProgressListener):
    def __init__(self):
        self.summaries = []

    def on_progress(self, summary):
        self.summaries.append(summary)


def test_a_field_day_from_the_visit_to_the_hub_and_back(env):
    monitor = vigie.parse_enrolment_token(env.monitor_token)
    with open_enrolled(env.store_path("tablet.db"), 2, env.supervisor_token) as tablet, \
            open_enrolled(env.store_path("phone.db"), 1, env.monitor_token) as phone:
        assert phone.device_id() == monitor.device_id
        recorder = Recorder()
        phone.add_change_listener(recorder)

        # The supervisor registers the workplace and sends it to the hub.
        workplace = vigie.new_workplace("Plantation Kouamé", "cocoa", vigie.Formality.INFORMAL, AREA)
        workplace.location.point = vigie.GeoPoint(latitude=6.82, longitude=-5.28, accuracy_m=8.0)
        workplace = tablet.create_workplace(workplace)
        registered = tablet.sync_with(vigie.HubTransport(env.hub_url, env.supervisor_token), None)
        assert registered.accepted == 1 and registered.refused == []

        # The monitor's phone syncs: the hub tells it its user's role (the workflow acts with it),
        # and a community monitor receives the workplaces of her communities.
        assert phone.user_profile() is None
        phone.sync_with(vigie.HubTransport(env.hub_url, env.monitor_token), None)
        assert phone.user_profile() == vigie.UserProfile(role=vigie.Role.COMMUNITY_MONITOR,
                                                          areas=["CI-R1-D1-C01"])
        assert phone.get_workplace(workplace.id).name == "Plantation Kouamé"

        # The monitor records a visit...
        visit = vigie.new_visit(vigie.VisitKind.COMMUNITY_MONITORING, workplace.id, AREA,
                                monitor.user_id, "2026-03-02T09:00:00+00:00")
        visit.findings = "Deux enfants portaient des charges lourdes."
        visit.forced_labour = {vigie.ForcedLabourIndicator.ISOLATION: "Campement à 8 km"}
        visit.workforce = vigie.Workforce(female=vigie.AgeBands(age_12_14=1, adults=3),
                                          male=vigie.AgeBands(under_12=1, adults=5))
        visit = phone.create_visit(visit)
        assert visit.status == vigie.VisitStatus.DRAFT

        # ... flags a child ...
        child = vigie.new_child_case("CI-D1-0001", "Aya Kouassi", vigie.Sex.FEMALE, AREA,
                                     "2026-03-02", monitor.user_id)
        child.estimated_age = 11
        child.hours_per_week = 25
        child.hazards = ["heavy_loads", "sharp_tools"]
        child.workplace_id = workplace.id
        child.identified_on_visit = visit.id
        child = phone.create_child_case(child)
        assert child.classification.outcome == vigie.ClassificationOutcome.HAZARDOUS_CHILD_LABOUR
        visit.children_identified = [child.id]
        visit.ended_at = "2026-03-02T11:30:00+00:00"
        visit = phone.update_visit(visit)
        visit = phone.submit_visit(visit.id)

        # ... refers her to school and follows up, as the community monitor she is.
        child = phone.refer_case(child.id, vigie.new_referral(
            vigie.ServiceKind.EDUCATION, "École primaire de Kouamé", "2026-03-03"))
        assert child.status == vigie.CaseStatus.REFERRED
        child = phone.add_follow_up(child.id, vigie.new_follow_up(
            "2026-03-20", vigie.FollowUpSituation.IN_SCHOOL, "2026-04-20"))
        child = phone.transition_case(child.id, vigie.CaseStatus.RECEIVING_SERVICES)
        assert [r.provider for r in child.referrals.values()] == ["École primaire de Kouamé"]
        assert [f.next_due for f in child.followups.values()] == ["2026-04-20"]

        listed = phone.child_cases(
            vigie.ChildCaseQuery(area=vigie.AreaFilter.COMMUNITY("CI-R1-D1-C01")), vigie.Page())
        assert child.id in [c.id for c in listed]  # with what the hub sent her community before
        due = phone.follow_ups_due("2026-05-01", assignee_id=monitor.user_id)
        assert any(d.id == child.id and d.due == "2026-04-20" for d in due)
        # The children due alone (a region's visits due would fill the first pages), or the visits.
        cases_due = phone.follow_ups_due("2026-05-01", kind=vigie.RecordKind.CHILD_CASE)
        assert child.id in [d.id for d in cases_due]
        assert all(d.kind == vigie.RecordKind.CHILD_CASE for d in cases_due)
        visits_due = phone.follow_ups_due("2026-05-01", kind=vigie.RecordKind.VISIT)
        assert all(d.kind == vigie.RecordKind.VISIT for d in visits_due)
        assert child.id not in [d.id for d in visits_due]
        paged = [d.id for d in phone.follow_up_due_pages("2026-05-01", kind=vigie.RecordKind.CHILD_CASE)]
        assert paged == [d.id for d in cases_due]
        # A dashboard's figures, without walking the pages.
        assert phone.follow_ups_due_count("2026-05-01", kind=vigie.RecordKind.CHILD_CASE) == len(cases_due)
        assert phone.alert_count() == len(phone.alerts())
        assert child.id in [h.id for h in phone.search_names("kouassi", 10)]
        assert child.id in [h.id for h in phone.search_names("kouassi", kind=vigie.RecordKind.CHILD_CASE)]
        assert child.id not in [h.id for h in phone.search_names("kouassi", kind=vigie.RecordKind.WORKPLACE)]
        assert phone.search_names("kouassi", 10, offset=1000) == []
        history = phone.history(child.id)
        assert len(history) >= 4
        assert all(h.author.device_id == monitor.device_id for h in history)

        # Sync with the hub, in a worker thread as an app would.
        progress = Progress()
        result = {}
        worker = threading.Thread(target=lambda: result.update(summary=phone.sync_with(
            vigie.HubTransport(env.hub_url, env.monitor_token), progress)))
        worker.start()
        worker.join(60)
        sent = result["summary"]
        assert sent.accepted == 2 and sent.refused == [] and sent.pending == 0
        assert progress.summaries and progress.summaries[-1].round_trips == sent.round_trips
        # One answer held all it received: no total to show progress against.
        assert sent.incoming_total is None

        # The supervisor receives the case and validates the visit.
        pulled = tablet.sync_with(vigie.HubTransport(env.hub_url, env.supervisor_token), None)
        assert pulled.received >= 2
        on_tablet = tablet.get_child_case(child.id)
        assert on_tablet.name == "Aya Kouassi"
        assert on_tablet.status == vigie.CaseStatus.RECEIVING_SERVICES
        tablet.review_visit(visit.id, vigie.VisitReview.VALIDATE())
        validated = tablet.sync_with(vigie.HubTransport(env.hub_url, env.supervisor_token), None)
        assert validated.accepted >= 1 and validated.refused == []

        # The monitor receives the validation, and the listener hears of it.
        phone.sync_with(vigie.HubTransport(env.hub_url, env.monitor_token), None)
        assert phone.get_visit(visit.id).status == vigie.VisitStatus.VALIDATED
        sources = {(c.id, c.source) for c in recorder.changes}
        assert (visit.id, vigie.ChangeSource.HUB) in sources
        assert (child.id, vigie.ChangeSource.LOCAL) in sources
        assert phone.integrity_check()


def test_bytes_out_bytes_in_over_the_apps_own_link(env):
    with open_enrolled(env.store_path("bytes.db"), 3, env.monitor_token) as store:
        child = vigie.new_child_case("CI-D1-0100", "Yao Serge", vigie.Sex.MALE, AREA, "2026-03-06",
                                     store.user_id())
        child.estimated_age = 14
        store.create_child_case(child)
        link = vigie.HubTransport(env.hub_url, env.monitor_token)
        accepted = 0
        for _ in range(50):
            report = store.hub_sync_apply(link.exchange(store.hub_sync_request()))
            accepted += report.accepted
            if not report.more:
                break
        assert accepted == 1
        assert store.hub_outbox_len() == 0


class WaitingLink(vigie.SyncTransport):
    """A link that, at its first exchange, waits (at most 30 s) until the app has written."""

    def __init__(self, inner):
        self.inner = inner
        self.waiting = threading.Event()
        self.written = threading.Event()
        self.saw_the_write = None

    def exchange(self, request):
        if self.saw_the_write is None:
            self.waiting.set()
            self.saw_the_write = self.written.wait(timeout=30)
        return self.inner.exchange(request)

    def exchange_attachment(self, request):
        return self.inner.exchange_attachment(request)


def test_the_app_writes_while_a_sync_waits_on_the_link(env):
    """A sync holds the store only for its steps: a form saved while the link is slow is saved
    at once (before, it waited for the whole session), and reaches the hub."""
    with open_enrolled(env.store_path("busy.db"), 4, env.monitor_token) as store:
        link = WaitingLink(vigie.HubTransport(env.hub_url, env.monitor_token))
        outcome = {}
        session = threading.Thread(target=lambda: outcome.update(summary=store.sync_with(link)))
        session.start()
        assert link.waiting.wait(timeout=30)
        child = vigie.new_child_case("CI-D1-0200", "Aya Koné", vigie.Sex.FEMALE, AREA,
                                     "2026-03-06", store.user_id())
        child.estimated_age = 12
        saved = store.create_child_case(child)
        link.written.set()
        session.join(timeout=60)
        assert link.saw_the_write, "the write waited for the session"
        assert "summary" in outcome
        store.sync_with(vigie.HubTransport(env.hub_url, env.monitor_token))
        assert store.hub_outbox_len() == 0
        assert store.record_sync_state(saved.id).pending_changes is False


class EagerLink(vigie.SyncTransport):
    """A link that notes whether it was used while another session's link still waited."""

    def __init__(self, inner, other_waiting):
        self.inner = inner
        self.other_waiting = other_waiting
        self.used_meanwhile = False

    def exchange(self, request):
        self.used_meanwhile |= self.other_waiting()
        return self.inner.exchange(request)

    def exchange_attachment(self, request):
        return self.inner.exchange_attachment(request)


def test_a_second_sync_of_a_store_waits_for_the_first(env):
    """One session at a time: two side by side sent and fetched the same records and bytes."""
    with open_enrolled(env.store_path("twice.db"), 5, env.monitor_token) as store:
        first = WaitingLink(vigie.HubTransport(env.hub_url, env.monitor_token))
        second = EagerLink(vigie.HubTransport(env.hub_url, env.monitor_token),
                           lambda: not first.written.is_set())
        one = threading.Thread(target=lambda: store.sync_with(first))
        one.start()
        assert first.waiting.wait(timeout=30)
        two = threading.Thread(target=lambda: store.sync_with(second))
        two.start()
        two.join(timeout=2)
        first.written.set()
        one.join(timeout=60)
        two.join(timeout=60)
        assert not second.used_meanwhile
        assert store.hub_outbox_len() == 0


def test_bundles_and_conflicts_between_two_devices(env):
    # Both devices synced once: the hub certified them, and each holds the other's certificate
    # (the tablet syncs again once the phone is enrolled).
    with open_enrolled(env.store_path("phone.db"), 4, env.monitor_token) as phone, \
            open_enrolled(env.store_path("tablet.db"), 5, env.supervisor_token) as tablet:
        synced(tablet, env, env.supervisor_token)
        synced(phone, env, env.monitor_token)
        synced(tablet, env, env.supervisor_token)
        monitor = phone.user_id()
        recorder = Recorder()
        tablet.add_change_listener(recorder)
        w = phone.create_workplace(vigie.new_workplace("Carrière", "mining", vigie.Formality.INFORMAL, AREA))
        v = vigie.new_visit(vigie.VisitKind.COMMUNITY_MONITORING, w.id, AREA, monitor, "2026-03-02T09:00:00Z")
        v.status = vigie.VisitStatus.SUBMITTED
        v = phone.create_visit(v)
        to_tablet = [vigie.Recipient.DEVICE(tablet.device_id())]
        first = phone.export_bundle(0, [vigie.AreaFilter.DISTRICT("CI-R1-D1")], to_tablet)
        report = tablet.import_bundle(first.bytes)
        # The bundle holds the phone's records of the district (what the hub gave it too): two
        # are new to the tablet.
        assert report.changed == 2 and report.from_device == phone.device_id()
        assert recorder.bulk == [(vigie.ChangeSource.BUNDLE, 2)]

        # Offline, both write the workplace's owner as each heard it; the supervisor, who read the
        # submitted visit in the bundle, also returns it with a comment.
        on_phone = phone.get_workplace(w.id)
        on_phone.owner_name = "Kouamé Yao"
        phone.update_workplace(on_phone)
        on_tablet = tablet.get_workplace(w.id)
        on_tablet.owner_name = "Koffi Brou"
        tablet.update_workplace(on_tablet)
        tablet.review_visit(v.id, vigie.VisitReview.RETURN_TO_VISITOR("Préciser l'âge des enfants."))
        tablet.import_bundle(phone.export_bundle(first.mark, [], to_tablet).bytes)
        [conflict] = tablet.conflicts(w.id)
        assert conflict.field == "owner_name"
        assert sorted((c.value for c in conflict.values), key=lambda v: v.value) == [
            vigie.FieldValue.TEXT("Koffi Brou"), vigie.FieldValue.TEXT("Kouamé Yao")]
        tablet.resolve_conflict(w.id, conflict.path, vigie.FieldValue.TEXT("Koffi Brou"))
        assert tablet.conflicts(w.id) == []
        # The supervisor sends back only what the phone's community holds, to the phone.
        back = tablet.export_bundle(0, [vigie.AreaFilter.COMMUNITY(AREA.community)],
                                    [vigie.Recipient.DEVICE(phone.device_id())])
        phone.import_bundle(back.bytes)
        assert phone.get_visit(v.id).status == vigie.VisitStatus.RETURNED
        assert phone.get_workplace(w.id).owner_name == "Koffi Brou"
        assert phone.conflicts(w.id) == []

        # What identity promises: a device that never synced has no certificate to export or
        # import with, and a synced device the bundle was not sealed to cannot open it.
        with vigie.open_store(env.store_path("new.db"), key(6), monitor, None) as unenrolled:
            with pytest.raises(vigie.VigieError.Authentication):
                unenrolled.export_bundle(0, [], [vigie.Recipient.HUB()])
            with pytest.raises(vigie.VigieError.Authentication):
                unenrolled.import_bundle(back.bytes)
        with pytest.raises(vigie.VigieError.Authentication) as refused:
            tablet.import_bundle(back.bytes)
        assert "not sealed to this device" in str(refused.value)
        # Recipients who may read none of the records (an area the phone holds nothing of):
        # nobody's identity is wrong, the records may not go there.
        with pytest.raises(vigie.VigieError.NotAllowed) as refused:
            phone.export_bundle(0, [], [vigie.Recipient.HUB(), vigie.Recipient.AREA("CI-R2")])
        assert "nothing to seal" in str(refused.value)
        # Recipients named wrong: a validation error naming the field, never the text given.
        for wrong in [vigie.Recipient.DEVICE("not-a-uuid"), vigie.Recipient.DEVICE(""),
                      vigie.Recipient.AREA(""), vigie.Recipient.AREA("CI\nR1")]:
            with pytest.raises(vigie.VigieError.Validation) as refused:
                phone.export_bundle(0, [], [wrong])
            assert refused.value.field == "recipients" and "\n" not in str(refused.value)
        # A conflict settled at a path the record does not have: the path is not repeated.
        with pytest.raises(vigie.VigieError.Conflict) as gone:
            tablet.resolve_conflict(v.id, ["Aya Kouassi"], vigie.FieldValue.TEXT("x"))
        assert "Aya" not in str(gone.value) and "the field given" in str(gone.value)
        assert "pas de conflit sur ce champ" in gone.value.text_in("fr"), gone.value.text_in("fr")

        # Altered on its way (the seal's last byte): damaged input, nothing stored.
        altered = bytearray(first.bytes)
        altered[-1] ^= 1
        with pytest.raises(vigie.VigieError.DamagedInput):
            tablet.import_bundle(bytes(altered))
