"""README's Python snippets, extracted from README.md by scripts/test-bindings.sh, run as is."""

import importlib.util
import os

import vigie
from conftest import key


def load_readme_quickstart(variable="VIGIE_README_QUICKSTART"):
    spec = importlib.util.spec_from_file_location("readme_snippet", os.environ[variable])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_readme_quick_start_runs_as_written(env):
    # A monitor's phone sends a case of hazardous work to the hub...
    me = vigie.parse_enrolment_token(env.quickstart_token)
    area = vigie.Area(country="CI", region="CI-R1", district="CI-R1-D1", community="CI-R1-D1-C01")
    with vigie.open_store(env.store_path("phone.db"), key(10), me.user_id, me.device_id) as phone:
        # The first sync tells the phone its user's role: its workflow steps act with it.
        phone.sync_with(vigie.HubTransport(env.hub_url, env.quickstart_token), None)
        child = vigie.new_child_case("CI-D1-0777", "Kouadio", vigie.Sex.MALE, area, "2026-03-02", me.user_id)
        child.estimated_age = 13
        child.hours_per_week = 30
        child.hazards = ["pesticides"]
        child = phone.create_child_case(child)
        phone.add_follow_up(child.id, vigie.new_follow_up("2026-03-10", vigie.FollowUpSituation.AT_RISK,
                                                          "2026-03-31"))
        assert phone.sync_with(vigie.HubTransport(env.hub_url, env.quickstart_token), None).accepted == 1

    # ... and the supervisor's analysis, as README shows it, finds it.
    readme = load_readme_quickstart()
    summary, hazardous, overdue = readme.hazardous_cases_report(
        env.store_path("supervisor.db"), key(11), env.supervisor_token, env.hub_url)
    assert summary.received >= 1
    assert ("CI-D1-0777", "CI-R1-D1-C01", "IDENTIFIED") in hazardous
    assert child.id in [d.id for d in overdue]


def test_the_readme_offline_snippets_run_as_written(env):
    """The sync as bytes, a bundle and a peer session, as README's second snippet carries them."""
    readme = load_readme_quickstart("VIGIE_README_OFFLINE")
    area = vigie.Area(country="CI", region="CI-R1", district="CI-R1-D1", community="CI-R1-D1-C01")
    phone_me = vigie.parse_enrolment_token(env.monitor_token)
    tablet_me = vigie.parse_enrolment_token(env.quickstart_token)
    with vigie.open_store(env.store_path("phone.db"), key(12), phone_me.user_id, phone_me.device_id) as phone, \
            vigie.open_store(env.store_path("tablet.db"), key(13), tablet_me.user_id,
                             tablet_me.device_id) as tablet:
        # Certified by the hub, each knowing the other's certificate.
        readme.sync_as_bytes(phone, env.hub_url, env.monitor_token)
        report = readme.sync_as_bytes(tablet, env.hub_url, env.quickstart_token)
        assert not report.more
        readme.sync_as_bytes(phone, env.hub_url, env.monitor_token)

        child = vigie.new_child_case("CI-D1-0888", "Aya", vigie.Sex.FEMALE, area, "2026-03-02", phone_me.user_id)
        child.estimated_age = 12
        child = phone.create_child_case(child)
        imported, mark = readme.hand_over_by_file(phone, tablet, tablet.device_id())
        assert tablet.get_child_case(child.id).name == "Aya"
        assert mark > 0 and imported.refused == 0

        place = tablet.create_workplace(vigie.new_workplace("Plantation", "cocoa", vigie.Formality.INFORMAL, area))
        assert readme.peer_session(tablet, phone)
        assert phone.get_workplace(place.id).name == "Plantation"

        # And the hub takes both, the case first from the phone that made it.
        sent = readme.sync_as_bytes(phone, env.hub_url, env.monitor_token)
        assert sent.accepted == 1 and not sent.refused
        # The tablet's workplace, relayed: the hub waits for the tablet to send it.
        assert sent.awaiting_author == 1
        sent = readme.sync_as_bytes(tablet, env.hub_url, env.quickstart_token)
        assert sent.accepted >= 1 and not sent.refused
