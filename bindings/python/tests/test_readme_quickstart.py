"""README's Python quick start, extracted from README.md by scripts/test-bindings.sh, run as is."""

import importlib.util
import os

import vigie
from conftest import key


def load_readme_quickstart():
    spec = importlib.util.spec_from_file_location("readme_quickstart", os.environ["VIGIE_README_QUICKSTART"])
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
