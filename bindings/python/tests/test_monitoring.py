"""The monitoring cycle through the bindings, on real store files: the role-aware case workflow,
the review of visits, alerts, duplicates, indicators, exports and reference data."""

import csv
import json
import os

import pytest

import vigie
from conftest import as_role, key, new_id

AREA = vigie.Area(country="CI", region="CI-R1", district="CI-R1-D1", community="CI-R1-D1-C01")
MONITOR, SUPERVISOR, INSPECTOR = vigie.Role.COMMUNITY_MONITOR, vigie.Role.SUPERVISOR, vigie.Role.INSPECTOR


def fresh(env, seed=30):
    return vigie.open_store(env.store_path("monitoring.db"), key(seed), new_id(), None)


def child(store, code, name, age=11, sex=vigie.Sex.FEMALE, hazards=("heavy_loads",), on="2026-03-02",
          worst_forms=()):
    case = vigie.new_child_case(code, name, sex, AREA, on, store.user_id())
    case.estimated_age = age
    case.hours_per_week = 20
    case.hazards = list(hazards)
    case.worst_forms = list(worst_forms)
    return store.create_child_case(case)


def referral():
    return vigie.new_referral(vigie.ServiceKind.EDUCATION, "École primaire de Kouamé", "2026-03-03")


def test_a_forbidden_transition_is_not_allowed_and_names_the_rule(env):
    with fresh(env) as store:
        case = child(store, "CI-W-0001", "Aya Kouassi")
        with pytest.raises(vigie.VigieError.NotAllowed) as e:
            as_role(store, SUPERVISOR).transition_case(case.id, vigie.CaseStatus.CLOSED)
        assert e.value.reason == "a case cannot go from identified to closed"
        with pytest.raises(vigie.VigieError.NotAllowed) as e:
            as_role(store, MONITOR).transition_case(case.id, vigie.CaseStatus.REFERRED)
        assert "refer_case" in e.value.reason
        with pytest.raises(vigie.VigieError.NotAllowed) as e:
            as_role(store, INSPECTOR).add_follow_up(case.id, vigie.new_follow_up(
                "2026-03-04", vigie.FollowUpSituation.AT_RISK, None))
        assert e.value.reason.startswith("an inspector opens and refers child cases")
        assert "Aya" not in str(e.value)

        case = as_role(store, MONITOR).refer_case(case.id, referral())
        assert case.status == vigie.CaseStatus.REFERRED
        assert [r.provider for r in case.referrals.values()] == ["École primaire de Kouamé"]
        case = as_role(store, MONITOR).transition_case(case.id, vigie.CaseStatus.RECEIVING_SERVICES)
        with pytest.raises(vigie.VigieError.NotAllowed) as e:
            as_role(store, MONITOR).transition_case(case.id, vigie.CaseStatus.WITHDRAWN)
        assert e.value.reason == "only a supervisor may make a case withdrawn (a community monitor may not)"
        # Said to a French user in French, the status by its label and the role in words.
        assert e.value.text_in("fr") == ("Refusé : seul un superviseur peut faire passer un cas à "
                                         "« Retiré » (un agent communautaire ne le peut pas)")
        with pytest.raises(vigie.VigieError.NotAllowed):
            vigie.check_case_transition(vigie.CaseStatus.RECEIVING_SERVICES, vigie.CaseStatus.WITHDRAWN, MONITOR)
        vigie.check_case_transition(vigie.CaseStatus.RECEIVING_SERVICES, vigie.CaseStatus.WITHDRAWN, SUPERVISOR)
        assert store.get_child_case(case.id).status == vigie.CaseStatus.RECEIVING_SERVICES

        # The supervisor verifies the withdrawal: the follow-up schedule starts.
        case = as_role(store, SUPERVISOR).transition_case(case.id, vigie.CaseStatus.WITHDRAWN)
        assert case.remediated_on is not None and case.follow_up_due is not None
        case = as_role(store, MONITOR).add_follow_up(case.id, vigie.new_follow_up("2026-06-01", vigie.FollowUpSituation.IN_SCHOOL,
                                                                None))
        assert list(case.followups.values())[0].next_due is not None  # from the rule set's schedule
        with pytest.raises(vigie.VigieError.NotAllowed):
            as_role(store, INSPECTOR).add_follow_up(case.id, vigie.new_follow_up("2026-06-02", vigie.FollowUpSituation.IN_SCHOOL,
                                                             None))


def test_a_classification_says_why_in_the_users_language(env):
    with fresh(env, seed=32) as store:
        case = child(store, "CI-W-0004", "Adjoua Konan")
        assert case.classification.outcome == vigie.ClassificationOutcome.HAZARDOUS_CHILD_LABOUR
        reason = case.classification.reason
        assert vigie.classification_reason_in(reason, "fr") == \
            "un danger de la liste des travaux dangereux a été observé"
        assert vigie.classification_reason_in(reason, "fr-CI") == \
            vigie.classification_reason_in(reason, "fr")
        assert vigie.classification_reason_in(reason, "en") == reason


def test_a_verification_takes_the_day_the_phone_gives(env):
    with fresh(env, seed=31) as store:
        case = child(store, "CI-W-0003", "Akissi Yao")
        case = as_role(store, MONITOR).refer_case(case.id, referral())
        case = as_role(store, MONITOR).transition_case(case.id, vigie.CaseStatus.RECEIVING_SERVICES)
        supervisor = as_role(store, SUPERVISOR)
        with pytest.raises(vigie.VigieError.Validation) as e:
            supervisor.transition_case_on(case.id, vigie.CaseStatus.WITHDRAWN, "2026-02-30")
        assert e.value.field == "on"
        case = supervisor.transition_case_on(case.id, vigie.CaseStatus.WITHDRAWN, "2026-03-10")
        assert case.status == vigie.CaseStatus.WITHDRAWN
        assert case.remediated_on == "2026-03-10"
        assert case.follow_up_due == "2026-06-10"


def test_a_supervisor_returns_a_visit_with_a_comment_then_validates_it(env):
    with fresh(env) as store:
        w = store.create_workplace(vigie.new_workplace("Plantation", "cocoa", vigie.Formality.INFORMAL, AREA))
        visit = store.create_visit(vigie.new_visit(vigie.VisitKind.LABOUR_INSPECTION, w.id, AREA, store.user_id(),
                                                   "2026-03-02T09:00:00+00:00"))
        with pytest.raises(vigie.VigieError.NotAllowed) as e:
            as_role(store, SUPERVISOR).review_visit(visit.id, vigie.VisitReview.VALIDATE())
        assert e.value.reason == "only a submitted visit can be validated, and a submitted or validated one returned (this one is draft)"
        visit = store.submit_visit(visit.id)
        assert visit.status == vigie.VisitStatus.SUBMITTED
        with pytest.raises(vigie.VigieError.NotAllowed):
            store.submit_visit(visit.id)
        with pytest.raises(vigie.VigieError.NotAllowed) as e:
            as_role(store, INSPECTOR).review_visit(visit.id, vigie.VisitReview.VALIDATE())
        assert e.value.reason == "only a supervisor may review a visit (an inspector may not)"
        with pytest.raises(vigie.VigieError.Validation) as e:
            as_role(store, SUPERVISOR).review_visit(visit.id, vigie.VisitReview.RETURN_TO_VISITOR(comment="  "))
        assert e.value.field == "review_comment"

        comment = "Préciser l'âge des deux enfants vus au séchoir."
        visit = as_role(store, SUPERVISOR).review_visit(visit.id, vigie.VisitReview.RETURN_TO_VISITOR(comment=comment))
        assert visit.status == vigie.VisitStatus.RETURNED
        assert visit.review_comment == comment
        assert visit.reviewed_by == store.user_id()
        visit = store.submit_visit(visit.id)
        visit = as_role(store, SUPERVISOR).review_visit(visit.id, vigie.VisitReview.VALIDATE())
        assert visit.status == vigie.VisitStatus.VALIDATED
        # The return's comment was answered: it is in the history, not the validation's.
        assert store.get_visit(visit.id).review_comment == ""
        assert any("review_comment" in h.fields for h in store.history(visit.id))


def test_alerts_list_the_most_urgent_first(env):
    with fresh(env) as store:
        hazardous = child(store, "CI-A-0001", "Aya", on="2026-03-01")
        worst = child(store, "CI-A-0002", "Adjoua", hazards=(), on="2026-02-01",
                      worst_forms=[vigie.WorstForm.FORCED_LABOUR])
        child(store, "CI-A-0003", "Yao", age=16, hazards=())  # not child labour: no alert
        w = store.create_workplace(vigie.new_workplace("Campement", "cocoa", vigie.Formality.INFORMAL, AREA))
        visit = vigie.new_visit(vigie.VisitKind.LABOUR_INSPECTION, w.id, AREA, store.user_id(),
                                "2026-03-05T08:00:00+00:00")
        visit.forced_labour = {vigie.ForcedLabourIndicator.RETENTION_OF_IDENTITY_DOCUMENTS: "Pièces gardées"}
        visit = store.create_visit(visit)

        alerts = store.alerts(None, vigie.Page())
        assert [(a.id, a.severity) for a in alerts] == [
            (worst.id, vigie.AlertSeverity.WORST_FORM_SUSPECTED),
            (hazardous.id, vigie.AlertSeverity.HAZARDOUS_CHILD_LABOUR),
            (visit.id, vigie.AlertSeverity.FORCED_LABOUR_LIKELY),  # a strong indicator
        ]
        assert [a.kind for a in alerts] == [vigie.RecordKind.CHILD_CASE, vigie.RecordKind.CHILD_CASE,
                                            vigie.RecordKind.VISIT]
        assert alerts[1].at == "2026-03-01T00:00:00.000Z" and alerts[2].community == "CI-R1-D1-C01"
        assert store.alerts(vigie.AreaFilter.COMMUNITY("CI-R1-D1-C02"), vigie.Page()) == []

        # A child verified withdrawn is no longer urgent.
        as_role(store, MONITOR).refer_case(hazardous.id, referral())
        as_role(store, MONITOR).transition_case(hazardous.id, vigie.CaseStatus.RECEIVING_SERVICES)
        as_role(store, SUPERVISOR).transition_case(hazardous.id, vigie.CaseStatus.WITHDRAWN)
        assert [a.id for a in store.alerts(None, vigie.Page())] == [worst.id, visit.id]


def test_every_page_of_a_query_is_walked_once_with_defaults(env):
    with fresh(env, seed=38) as store:
        ids = {child(store, f"CI-P-{n:04}", f"Enfant {n}").id for n in range(5)}
        one_page = store.child_cases()  # every argument has a default
        assert {c.id for c in one_page} == ids
        walked = [c.id for c in store.child_case_pages(page_size=2)]
        assert sorted(walked) == sorted(ids) and len(walked) == 5
        assert [a.id for a in store.alert_pages(page_size=1)] == [a.id for a in store.alerts()]
        with pytest.raises(vigie.VigieError.Validation) as e:
            store.child_case_pages(page_size=-1)
        assert e.value.field == "page_size"
        # A size of 0 would walk nothing: the list would look empty.
        with pytest.raises(vigie.VigieError.Validation) as e:
            store.alert_pages(page_size=0)
        assert (e.value.field, e.value.rule) == ("page_size", "must be at least 1")


def test_a_walk_while_the_store_changes_returns_every_row_once(env):
    # A report walking the district's cases while a sync writes: rows moved past the walk's
    # place (identified earlier than thought) and new ones before it shift the pages, yet no
    # case that stayed is skipped, and none comes twice.
    with fresh(env, seed=40) as store:
        days = [f"2025-{m:02}-{d:02}" for m in range(1, 13) for d in (3, 13, 23)][:36]
        days += [f"2024-{m:02}-{d:02}" for m in range(1, 13) for d in range(5, 29, 3)]
        made = [child(store, f"CI-W-{n:04}", f"Enfant {n}", on=days[n]) for n in range(120)]
        walk = store.child_case_pages(page_size=50)
        walked = [c.id for c in walk.next()]
        assert len(walked) == 50
        for row in walked[10:15]:
            moved = store.get_child_case(row)
            moved.identified_on = "2023-01-02"
            store.update_child_case(moved)
        for n in range(2):
            child(store, f"CI-W-N{n}", f"Nouvel enfant {n}", on=f"2026-0{n + 4}-01")
        walked += [c.id for c in walk]
        assert len(walked) == len(set(walked)), "a case came twice"
        assert {c.id for c in made} <= set(walked), "a case that stayed was skipped"


def test_a_walk_returns_every_row_its_handling_takes_out_of_the_query(env):
    # A monitor works through the cases still to refer, referring each as it comes: every one
    # leaves the query once read, pages of 10 or of 1, and none is skipped.
    with fresh(env, seed=41) as store:
        identified = vigie.ChildCaseQuery(status=vigie.CaseStatus.IDENTIFIED)
        for size, count in ((10, 30), (1, 8)):
            made = {child(store, f"CI-H{size}-{n:04}", f"Enfant {n}",
                          on=f"2025-{1 + n // 28:02}-{1 + n % 28:02}").id for n in range(count)}
            walked = []
            for case in store.child_case_pages(identified, page_size=size):
                walked.append(case.id)
                as_role(store, MONITOR).refer_case(case.id, referral())
            assert sorted(walked) == sorted(made), size
        # The last page's rows all leave between two pages: the next page is still there.
        made = [child(store, f"CI-L-{n:04}", f"Enfant {n}", on=f"2024-03-{1 + n:02}").id
                for n in range(6)]
        walk = store.child_case_pages(identified, page_size=3)
        first = [c.id for c in walk.next()]
        for row in first:
            as_role(store, MONITOR).refer_case(row, referral())
        rest = [c.id for c in walk]
        assert sorted(first + rest) == sorted(made)


def test_pages_larger_than_a_query_returns_still_walk_every_row(env):
    # A query returns at most 500 rows; a walk asked for pages of 1,000 reads them all.
    with fresh(env, seed=39) as store:
        ids = {child(store, f"CI-Q-{n:04}", f"Enfant {n}").id for n in range(503)}
        walked = [c.id for c in store.child_case_pages(page_size=1000)]
        assert len(walked) == 503 and set(walked) == ids


def test_duplicate_children_are_found_and_merged_by_a_supervisor(env):
    with fresh(env) as store:
        first = child(store, "CI-D-0001", "Aya Kouassi", age=11)
        second = child(store, "CI-D-0002", "KOUASSI Aya", age=12)
        other = child(store, "CI-D-0003", "Yao Serge", age=11)
        second = as_role(store, MONITOR).add_follow_up(second.id, vigie.new_follow_up("2026-03-10", vigie.FollowUpSituation.AT_RISK,
                                                                     "2026-04-10"))

        candidates = store.duplicate_candidates(first.id)
        assert [c.case_id for c in candidates] == [second.id]
        assert 0.88 <= candidates[0].similarity <= 1.0
        assert other.id not in [c.case_id for c in store.duplicate_candidates(second.id)]

        with pytest.raises(vigie.VigieError.NotAllowed) as e:
            as_role(store, MONITOR).merge_cases(first.id, second.id)
        assert e.value.reason == "only a supervisor may merge cases"
        merged = as_role(store, SUPERVISOR).merge_cases(first.id, second.id)
        assert merged.kept.merged_from == [second.id]
        assert merged.duplicate.merged_into == first.id
        assert [f.next_due for f in merged.kept.followups.values()] == ["2026-04-10"]
        assert store.get_child_case(second.id).name == "KOUASSI Aya"  # both kept
        assert store.duplicate_candidates(first.id) == []
        with pytest.raises(vigie.VigieError.NotAllowed):
            as_role(store, MONITOR).transition_case(second.id, vigie.CaseStatus.REFERRED)


def test_indicators_suppress_small_cells_in_shared_reports(env):
    with fresh(env) as store:
        for i in range(6):
            child(store, f"CI-I-F{i}", f"Fille {i}")
        for i in range(2):
            child(store, f"CI-I-M{i}", f"Garçon {i}", sex=vigie.Sex.MALE, hazards=())
        w = store.create_workplace(vigie.new_workplace("Mine", "mining", vigie.Formality.INFORMAL, AREA))
        visit = vigie.new_visit(vigie.VisitKind.LABOUR_INSPECTION, w.id, AREA, store.user_id(),
                                "2026-03-05T08:00:00+00:00")
        visit.forced_labour = {vigie.ForcedLabourIndicator.DEBT_BONDAGE: "Dette envers le chef"}
        store.create_visit(visit)

        exact = store.indicators(vigie.IndicatorFilter())
        assert exact.children.identified == 8
        assert exact.children.in_hazardous_work == 6
        assert exact.by_sex["male"].identified == 2
        assert exact.by_month["2026-03"].identified == 8
        assert exact.inspections == 1 and exact.forced_labour_indicators == {"debt_bondage": 1}
        assert store.indicators(vigie.IndicatorFilter(from_date="2026-04-01")).children.identified == 0
        march = vigie.IndicatorFilter(from_date="2026-03-01", until_date="2026-04-01")
        assert store.indicators(march).visits == 1
        assert vigie.shared_count(2) == "x" and vigie.shared_count(0) == "x"
        assert vigie.shared_count(5) == "5" and vigie.shared_count(6) == "6"

        shared = json.loads(store.indicators_json(vigie.IndicatorFilter(), True))
        assert shared["children"]["identified"] == 8
        # Only girls are in hazardous work: the total would show the girls' count.
        assert shared["children"]["in_hazardous_work"] == "x"
        assert shared["by_sex"]["male"]["identified"] == "x"
        # Withheld too, or the boys would be the total less the girls.
        assert shared["by_sex"]["female"]["identified"] == "x"
        assert shared["children"]["referred"] == "x"
        assert shared["forced_labour_indicators"]["debt_bondage"] == "x"
        full = json.loads(store.indicators_json(
            vigie.IndicatorFilter(area=vigie.AreaFilter.DISTRICT("CI-R1-D1")), False))
        assert full["by_sex"]["male"]["identified"] == 2
        with pytest.raises(vigie.VigieError.Validation) as e:
            store.indicators(vigie.IndicatorFilter(until_date="1 avril"))
        assert e.value.field == "until_date"


def test_exports_are_pseudonymised_unless_a_supervisor_asks(env):
    with fresh(env) as store:
        w = vigie.new_workplace("Plantation Kouamé", "cocoa", vigie.Formality.INFORMAL, AREA)
        w.owner_name = "Kouamé Yao"
        w = store.create_workplace(w)
        cases = [child(store, "CI-E-0001", "Aya Kouassi"), child(store, "CI-E-0002", "Awa, dite \"Petite\"")]
        as_role(store, MONITOR).refer_case(cases[0].id, referral())
        out = os.path.join(os.path.dirname(env.store_path("unused")), "export")

        paths = as_role(store, MONITOR).export_to_dir(out, vigie.ExportFormat.CSV, vigie.ExportOptions())
        assert sorted(os.path.basename(p) for p in paths) == [
            "child_cases.csv", "erasures.csv", "follow_ups.csv", "referrals.csv", "visits.csv",
            "workplaces.csv"]
        with open(os.path.join(out, "child_cases.csv"), newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        assert sorted(r["case_code"] for r in rows) == ["CI-E-0001", "CI-E-0002"]
        assert "name" not in rows[0] and "guardian" not in rows[0]
        assert {r["classification"] for r in rows} == {"hazardous_child_labour"}
        assert {r["birth_year"] for r in rows} == {"2015"}
        with open(os.path.join(out, "referrals.csv"), newline="", encoding="utf-8") as f:
            assert [r["case_id"] for r in csv.DictReader(f)] == [cases[0].id]
        for p in paths:
            with open(p, encoding="utf-8") as f:
                text = f.read()
            assert "Aya" not in text and "Kouamé Yao" not in text

        with pytest.raises(vigie.VigieError.NotAllowed) as e:
            as_role(store, MONITOR).export_to_dir(out, vigie.ExportFormat.CSV, vigie.ExportOptions(include_personal_data=True))
        assert e.value.reason == "only a supervisor may export personal data"
        # Beside the pseudonymised export, never inside it (which may be shared whole).
        personal = out + "-personal"
        as_role(store, SUPERVISOR).export_to_dir(personal, vigie.ExportFormat.CSV, vigie.ExportOptions(include_personal_data=True))
        with open(os.path.join(personal, "child_cases.csv"), newline="", encoding="utf-8") as f:
            names = sorted(r["name"] for r in csv.DictReader(f))
        assert names == ["Awa, dite \"Petite\"", "Aya Kouassi"]
        json_dir = os.path.join(out, "json")
        as_role(store, SUPERVISOR).export_to_dir(json_dir, vigie.ExportFormat.JSON, vigie.ExportOptions())
        with open(os.path.join(json_dir, "workplaces.json"), encoding="utf-8") as f:
            [row] = json.load(f)
        assert row["id"] == w.id and row["sector"] == "cocoa" and "owner_name" not in row


def test_reference_labels_in_french_and_english(env):
    with fresh(env) as store:
        fr, en = store.reference("fr"), store.reference("en")
        assert (fr.language(), en.language()) == ("fr", "en")
        cocoa = {s.code: s.label for s in fr.sectors(None)}["cocoa"]
        assert cocoa == "Cacao"
        assert {s.code: s.label for s in en.sectors("CI")}["cocoa"] == "Cocoa"
        # A regional variant finds its language; an unknown language falls back to French.
        assert {s.code: s.label for s in store.reference("fr-CI").sectors(None)}["cocoa"] == "Cacao"
        assert {s.code: s.label for s in fr.in_language("sw").sectors(None)}["cocoa"] == "Cacao"

        indicators = en.forced_labour_indicators()
        assert len(indicators) == 11
        assert (indicators[0].indicator, indicators[0].code, indicators[0].label) == (
            vigie.ForcedLabourIndicator.ABUSE_OF_VULNERABILITY, "abuse_of_vulnerability", "Abuse of vulnerability")
        assert fr.forced_labour_indicators()[0].label == "Abus de vulnérabilité"
        inspection = fr.checklist("labour-inspection", None)
        assert (inspection.version, inspection.name, len(inspection.items)) == (1, "Inspection du travail", 20)
        assert en.checklist("labour-inspection", 1).items[0].label == "Staff register kept up to date"
        assert en.checklist("labour-inspection", 7) is None
        assert {c.id for c in en.checklists()} == {"labour-inspection", "child-labour", "forced-labour"}

        profile = fr.country_profile("CI")
        assert (profile.key, profile.version, profile.minimum_age, profile.hazardous_work_age) == (
            "ilo-default", 1, 15, 18)
        assert profile.name == "Profil par défaut (conventions de l'OIT)"
        assert en.country_profile(None).name == "Default profile (ILO conventions)"
        assert "heavy_loads" in [h.code for h in profile.hazardous_work]
        assert len(profile.worst_forms) == 6
        services = {s.service: s.label for s in fr.referral_services("CI")}
        assert services[vigie.ServiceKind.EDUCATION] == "Éducation"
        assert {s.service: s.label for s in en.referral_services(None)}[vigie.ServiceKind.HEALTH] == "Health"

        # A record keeps the versions it was captured with.
        case = child(store, "CI-R-0001", "Aya")
        assert case.captured_with == vigie.ReferenceVersions(country_profile="ilo-default@1",
                                                             referral_services="default@1")
        assert fr.active_versions("CI").country_profile == "ilo-default@1"
        assert fr.country_profile_at(case.captured_with.country_profile).minimum_age == 15
        assert store.get_child_case(case.id).captured_with == case.captured_with
        assert vigie.builtin_reference("en").sectors(None) == en.sectors(None)


AREAS = {"administrative_areas": {
    "code": "CI", "labels": {"fr": "Côte d'Ivoire", "en": "Ivory Coast"}, "children": [
        {"code": "CI-R1", "labels": {"fr": "Région des Lacs", "en": "Lakes Region"}, "children": [
            {"code": "CI-R1-D1", "labels": {"fr": "District de Yamoussoukro"}, "children": [
                {"code": "CI-R1-D1-C01", "labels": {"fr": "Kouamékro"}},
                {"code": "CI-R1-D1-C02", "labels": {"fr": "N'Zuékro"}}]}]}]}}

SERVICES = {"referral_services": {
    "services": [{"code": "education", "labels": {"fr": "Éducation", "en": "Education"}},
                 {"code": "health", "labels": {"fr": "Santé", "en": "Health"}}],
    "providers": [
        {"code": "ep-kouamekro", "name": "École primaire de Kouamékro", "service": "education",
         "area": "CI-R1-D1-C01", "contact": "Direction, BP 12"},
        {"code": "csu-yakro", "name": "Centre de santé urbain", "service": "health", "area": "CI-R1-D1"},
        {"code": "ep-nzuekro", "name": "École de N'Zuékro", "service": "education", "area": "CI-R1-D1-C02"}]}}


def test_area_trees_and_referral_providers_as_the_hub_publishes_them():
    catalog = vigie.builtin_reference("en") \
        .with_content("CI", 1, json.dumps(AREAS)) \
        .with_content("CI", 1, json.dumps(SERVICES))
    assert catalog.area("CI", "CI-R1").label == "Lakes Region"
    assert catalog.area("CI", "XX") is None
    assert [(a.code, a.label, a.level, a.has_children) for a in catalog.area_children("CI", "CI-R1-D1")] == [
        ("CI-R1-D1-C01", "Kouamékro", vigie.AreaLevel.COMMUNITY, False),
        ("CI-R1-D1-C02", "N'Zuékro", vigie.AreaLevel.COMMUNITY, False)]
    assert [a.code for a in catalog.area_children("CI", "CI")] == ["CI-R1"]
    path = catalog.in_language("fr").area_path("CI", "CI-R1-D1-C02")
    assert [(a.label, a.level) for a in path] == [
        ("Côte d'Ivoire", vigie.AreaLevel.COUNTRY), ("Région des Lacs", vigie.AreaLevel.REGION),
        ("District de Yamoussoukro", vigie.AreaLevel.DISTRICT), ("N'Zuékro", vigie.AreaLevel.COMMUNITY)]
    assert catalog.area_of_community("CI", "CI-R1-D1-C01") == AREA
    assert catalog.active_versions("CI").administrative_areas == "CI@1"
    assert catalog.active_versions("CI").referral_services == "CI@1"
    assert catalog.active_versions("BF").referral_services == "default@1"

    assert [p.code for p in catalog.providers("CI")] == ["ep-kouamekro", "csu-yakro", "ep-nzuekro"]
    here = catalog.providers_for(vigie.ServiceKind.EDUCATION, AREA)
    assert [(p.name, p.contact) for p in here] == [("École primaire de Kouamékro", "Direction, BP 12")]
    assert [p.code for p in catalog.providers_for(vigie.ServiceKind.HEALTH, AREA)] == ["csu-yakro"]
    assert [s.service for s in catalog.referral_services("CI")] == [vigie.ServiceKind.EDUCATION,
                                                                    vigie.ServiceKind.HEALTH]

    with pytest.raises(vigie.VigieError.Validation) as e:
        catalog.with_content("CI", 2, '{"administrative_areas": {"code": "CI", "labels": {}}}')
    assert e.value.field == "content.CI.labels"
    with pytest.raises(vigie.VigieError.Validation) as e:
        catalog.with_content("CI", 2, "Kouamékro")
    assert e.value.field == "content_json" and "Kouamé" not in str(e.value)
    with pytest.raises(vigie.VigieError.Validation):
        catalog.with_content("CI", 0, json.dumps(AREAS))
