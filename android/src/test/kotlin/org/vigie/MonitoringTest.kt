package org.vigie

import org.vigie.core.*
import java.io.File
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertFalse
import kotlin.test.assertNotNull
import kotlin.test.assertNull
import kotlin.test.assertTrue
import org.junit.Test

/**
 * The monitoring cycle through the bindings, on real store files: the role-aware case workflow,
 * the review of visits, alerts, duplicates, indicators, exports and reference data.
 */
class MonitoringTest {
    private val monitor = Role.COMMUNITY_MONITOR
    private val supervisor = Role.SUPERVISOR

    private fun freshStore() = openStore(Env.storePath("monitoring.db"), key(30), newUserId(), null)

    private fun VigieStore.child(
        code: String,
        name: String,
        age: Int = 11,
        sex: Sex = Sex.FEMALE,
        hazards: List<String> = listOf("heavy_loads"),
        on: String = "2026-03-02",
        worstForms: List<WorstForm> = emptyList(),
    ) = createChildCase(newChildCase(code, name, sex, community, on, userId()).apply {
        estimatedAge = age
        hoursPerWeek = 20
        this.hazards = hazards
        this.worstForms = worstForms
    })

    private fun referral() = newReferral(ServiceKind.EDUCATION, "École primaire de Kouamé", "2026-03-03")

    @Test
    fun aForbiddenTransitionIsNotAllowedAndNamesTheRule() {
        freshStore().use { store ->
            var case = store.child("CI-W-0001", "Aya Kouassi")
            assertEquals("a case cannot go from identified to closed", assertFailsWith<VigieException.NotAllowed> {
                store.asRole(supervisor).transitionCase(case.id, CaseStatus.CLOSED)
            }.reason)
            // An inspector opens and refers cases; follow-ups are others' work.
            assertTrue(assertFailsWith<VigieException.NotAllowed> {
                store.asRole(Role.INSPECTOR).addFollowUp(case.id, newFollowUp("2026-03-04", FollowUpSituation.AT_RISK, null))
            }.reason.startsWith("an inspector opens and refers child cases"))
            case = store.asRole(monitor).referCase(case.id, referral())
            assertEquals(CaseStatus.REFERRED, case.status)
            case = store.asRole(monitor).transitionCase(case.id, CaseStatus.RECEIVING_SERVICES)
            val refused = assertFailsWith<VigieException.NotAllowed> {
                store.asRole(monitor).transitionCase(case.id, CaseStatus.WITHDRAWN)
            }
            assertEquals("only a supervisor may make a case withdrawn (a community monitor may not)", refused.reason)
            assertFalse(refused.message.orEmpty().contains("Aya"))
            assertFailsWith<VigieException.NotAllowed> {
                checkCaseTransition(CaseStatus.RECEIVING_SERVICES, CaseStatus.WITHDRAWN, monitor)
            }
            checkCaseTransition(CaseStatus.RECEIVING_SERVICES, CaseStatus.WITHDRAWN, supervisor)
            assertEquals(CaseStatus.RECEIVING_SERVICES, store.getChildCase(case.id).status)

            case = store.asRole(supervisor).transitionCase(case.id, CaseStatus.WITHDRAWN)
            assertNotNull(case.remediatedOn)
            assertNotNull(case.followUpDue)
        }
    }

    @Test
    fun aClassificationSaysWhyInTheUsersLanguage() {
        freshStore().use { store ->
            val reason = store.child("CI-W-0004", "Adjoua Konan").classification!!.reason
            assertEquals("un danger de la liste des travaux dangereux a été observé", classificationReasonIn(reason, "fr"))
            assertEquals(reason, classificationReasonIn(reason, "en"))
        }
    }

    @Test
    fun aSupervisorReturnsAVisitWithACommentThenValidatesIt() {
        freshStore().use { store ->
            val w = store.createWorkplace(newWorkplace("Plantation", "cocoa", Formality.INFORMAL, community))
            var visit = store.createVisit(newVisit(VisitKind.LABOUR_INSPECTION, w.id, community, store.userId(),
                "2026-03-02T09:00:00+00:00"))
            assertFailsWith<VigieException.NotAllowed> { store.asRole(supervisor).reviewVisit(visit.id, VisitReview.Validate) }
            visit = store.submitVisit(visit.id)
            assertEquals(VisitStatus.SUBMITTED, visit.status)
            assertEquals("only a supervisor may review a visit (a community monitor may not)",
                assertFailsWith<VigieException.NotAllowed> {
                    store.asRole(monitor).reviewVisit(visit.id, VisitReview.Validate)
                }.reason)
            assertEquals("review_comment", assertFailsWith<VigieException.Validation> {
                store.asRole(supervisor).reviewVisit(visit.id, VisitReview.ReturnToVisitor(""))
            }.field)

            val comment = "Préciser l'âge des deux enfants vus au séchoir."
            visit = store.asRole(supervisor).reviewVisit(visit.id, VisitReview.ReturnToVisitor(comment))
            assertEquals(VisitStatus.RETURNED, visit.status)
            assertEquals(comment, visit.reviewComment)
            assertEquals(store.userId(), visit.reviewedBy)
            visit = store.asRole(supervisor).reviewVisit(store.submitVisit(visit.id).id, VisitReview.Validate)
            assertEquals(VisitStatus.VALIDATED, visit.status)
            // The return's comment was answered: it is in the history, not the validation's.
            assertEquals("", visit.reviewComment)
            assertTrue(store.history(visit.id).any { "review_comment" in it.fields })
        }
    }

    @Test
    fun alertsListTheMostUrgentFirst() {
        freshStore().use { store ->
            val hazardous = store.child("CI-A-0001", "Aya", on = "2026-03-01")
            val worst = store.child("CI-A-0002", "Adjoua", hazards = emptyList(), on = "2026-02-01",
                worstForms = listOf(WorstForm.FORCED_LABOUR))
            store.child("CI-A-0003", "Yao", age = 16, hazards = emptyList()) // not child labour
            val w = store.createWorkplace(newWorkplace("Campement", "cocoa", Formality.INFORMAL, community))
            val visit = store.createVisit(newVisit(VisitKind.LABOUR_INSPECTION, w.id, community, store.userId(),
                "2026-03-05T08:00:00+00:00").apply {
                forcedLabour = mapOf(ForcedLabourIndicator.RETENTION_OF_IDENTITY_DOCUMENTS to "Pièces gardées")
            })

            val alerts = store.alerts(null, Page())
            assertEquals(listOf(
                worst.id to AlertSeverity.WORST_FORM_SUSPECTED,
                hazardous.id to AlertSeverity.HAZARDOUS_CHILD_LABOUR,
                visit.id to AlertSeverity.FORCED_LABOUR_LIKELY, // a strong indicator
            ), alerts.map { it.id to it.severity })
            assertEquals(RecordKind.VISIT, alerts.last().kind)
            assertTrue(store.alerts(AreaFilter.Community("CI-R1-D1-C02"), Page()).isEmpty())

            store.asRole(monitor).referCase(hazardous.id, referral())
            store.asRole(monitor).transitionCase(hazardous.id, CaseStatus.RECEIVING_SERVICES)
            store.asRole(supervisor).transitionCase(hazardous.id, CaseStatus.WITHDRAWN)
            assertEquals(listOf(worst.id, visit.id), store.alerts(null, Page()).map { it.id })
        }
    }

    @Test
    fun everyPageOfAQueryIsWalkedOnceWithDefaults() {
        freshStore().use { store ->
            val ids = (0 until 5).map { store.child("CI-P-000$it", "Enfant $it").id }.toSet()
            assertEquals(ids, store.childCases().map { it.id }.toSet()) // every argument has a default
            val walked = store.childCasePages(pageSize = 2).rows().map { it.id }.toList()
            assertEquals(5, walked.size)
            assertEquals(ids, walked.toSet())
            assertEquals(store.alerts().map { it.id }, store.alertPages(pageSize = 1).rows().map { it.id }.toList())
            assertEquals("page_size",
                assertFailsWith<VigieException.Validation> { store.childCasePages(pageSize = -1) }.field)
        }
    }

    @Test
    fun duplicateChildrenAreFoundAndMergedByASupervisor() {
        freshStore().use { store ->
            val first = store.child("CI-D-0001", "Aya Kouassi", age = 11)
            val second = store.child("CI-D-0002", "KOUASSI Aya", age = 12)
            store.child("CI-D-0003", "Yao Serge", age = 11)

            val candidates = store.duplicateCandidates(first.id)
            assertEquals(listOf(second.id), candidates.map { it.caseId })
            assertTrue(candidates.single().similarity >= 0.88)
            assertEquals("only a supervisor may merge cases", assertFailsWith<VigieException.NotAllowed> {
                store.asRole(monitor).mergeCases(first.id, second.id)
            }.reason)
            val merged = store.asRole(supervisor).mergeCases(first.id, second.id)
            assertEquals(listOf(second.id), merged.kept.mergedFrom)
            assertEquals(first.id, merged.duplicate.mergedInto)
            assertEquals("KOUASSI Aya", store.getChildCase(second.id).name)
            assertTrue(store.duplicateCandidates(first.id).isEmpty())
        }
    }

    @Test
    fun indicatorsSuppressSmallCellsInSharedReports() {
        freshStore().use { store ->
            repeat(6) { store.child("CI-I-F$it", "Fille $it") }
            repeat(2) { store.child("CI-I-M$it", "Garçon $it", sex = Sex.MALE, hazards = emptyList()) }

            val exact = store.indicators(IndicatorFilter())
            assertEquals(8L, exact.children.identified)
            assertEquals(6L, exact.children.inHazardousWork)
            assertEquals(2L, exact.bySex.getValue("male").identified)
            assertEquals(0L, store.indicators(IndicatorFilter(fromDate = "2026-04-01")).children.identified)
            // As a shared report shows them.
            assertEquals("8", sharedCount(exact.children.identified))
            assertEquals("x", sharedCount(exact.bySex.getValue("male").identified))
            assertEquals("x", sharedCount(exact.children.referred))
            val shared = store.indicatorsJson(IndicatorFilter(area = AreaFilter.District("CI-R1-D1")), true)
            assertTrue(shared.contains("\"identified\":8"), shared)
            // The boys withheld, and the girls too: else the boys are the total less the girls.
            assertTrue(shared.contains("\"male\":{\"identified\":\"x\""), shared)
            assertTrue(shared.contains("\"female\":{\"identified\":\"x\""), shared)
            assertFalse(store.indicatorsJson(IndicatorFilter(), false).contains("\"x\""))
        }
    }

    @Test
    fun exportsArePseudonymisedUnlessASupervisorAsks() {
        freshStore().use { store ->
            val cases = listOf(store.child("CI-E-0001", "Aya Kouassi"), store.child("CI-E-0002", "Awa, dite \"Petite\""))
            store.asRole(monitor).referCase(cases[0].id, referral())
            val out = File(File(Env.storePath("export")).parentFile, "export")

            val paths = store.asRole(monitor).exportToDir(out.path, ExportFormat.CSV, ExportOptions())
            assertEquals(listOf("child_cases.csv", "erasures.csv", "follow_ups.csv", "referrals.csv", "visits.csv", "workplaces.csv"),
                paths.map { File(it).name }.sorted())
            val rows = readCsv(File(out, "child_cases.csv"))
            assertEquals(listOf("CI-E-0001", "CI-E-0002"), rows.map { it.getValue("case_code") }.sorted())
            assertFalse("name" in rows.first())
            assertEquals(setOf("hazardous_child_labour"), rows.map { it.getValue("classification") }.toSet())
            assertEquals(listOf(cases[0].id), readCsv(File(out, "referrals.csv")).map { it.getValue("case_id") })
            assertTrue(paths.none { File(it).readText().contains("Aya") })

            assertFailsWith<VigieException.NotAllowed> {
                store.asRole(monitor).exportToDir(out.path, ExportFormat.CSV, ExportOptions(includePersonalData = true))
            }
            // Beside the pseudonymised export, never inside it (which may be shared whole).
            val personal = File(out.parentFile, "export-personal")
            store.asRole(supervisor).exportToDir(personal.path, ExportFormat.CSV, ExportOptions(includePersonalData = true))
            assertEquals(listOf("Awa, dite \"Petite\"", "Aya Kouassi"),
                readCsv(File(personal, "child_cases.csv")).map { it.getValue("name") }.sorted())
        }
    }

    @Test
    fun referenceLabelsInFrenchAndEnglish() {
        freshStore().use { store ->
            val fr = store.reference("fr")
            val en = store.reference("en")
            assertEquals("Cacao", fr.sectors(null).single { it.code == "cocoa" }.label)
            assertEquals("Cocoa", en.sectors("CI").single { it.code == "cocoa" }.label)
            assertEquals("Cacao", store.reference("fr-CI").sectors(null).single { it.code == "cocoa" }.label)
            assertEquals("Cacao", fr.inLanguage("sw").sectors(null).single { it.code == "cocoa" }.label)

            val indicators = fr.forcedLabourIndicators()
            assertEquals(11, indicators.size)
            assertEquals(ForcedLabourIndicator.ABUSE_OF_VULNERABILITY, indicators.first().indicator)
            assertEquals("Abus de vulnérabilité", indicators.first().label)
            assertEquals("Abuse of vulnerability", en.forcedLabourIndicators().first().label)
            val inspection = assertNotNull(en.checklist("labour-inspection", null))
            assertEquals("Labour inspection", inspection.name)
            assertEquals(20, inspection.items.size)
            assertNull(en.checklist("labour-inspection", 7))

            val profile = assertNotNull(fr.countryProfile("CI"))
            assertEquals("ilo-default" to 1, profile.key to profile.version)
            assertEquals(15, profile.minimumAge)
            assertEquals("Profil par défaut (conventions de l'OIT)", profile.name)
            assertTrue(profile.hazardousWork.any { it.code == "heavy_loads" })
            assertEquals("Éducation", fr.referralServices("CI").single { it.service == ServiceKind.EDUCATION }.label)

            val case = store.child("CI-R-0001", "Aya")
            assertEquals(ReferenceVersions(countryProfile = "ilo-default@1", referralServices = "default@1"),
                case.capturedWith)
            assertEquals(15, fr.countryProfileAt(case.capturedWith.countryProfile!!)?.minimumAge)
        }
    }

    @Test
    fun areaTreesAndProvidersAsTheHubPublishesThem() {
        val areas = """{"administrative_areas": {"code": "CI", "labels": {"fr": "Côte d'Ivoire", "en": "Ivory Coast"},
            "children": [{"code": "CI-R1", "labels": {"fr": "Région des Lacs", "en": "Lakes Region"}, "children": [
              {"code": "CI-R1-D1", "labels": {"fr": "District de Yamoussoukro"}, "children": [
                {"code": "CI-R1-D1-C01", "labels": {"fr": "Kouamékro"}},
                {"code": "CI-R1-D1-C02", "labels": {"fr": "N'Zuékro"}}]}]}]}}"""
        val services = """{"referral_services": {"services": [
              {"code": "education", "labels": {"fr": "Éducation", "en": "Education"}}],
            "providers": [
              {"code": "ep-kouamekro", "name": "École primaire de Kouamékro", "service": "education",
               "area": "CI-R1-D1-C01", "contact": "Direction, BP 12"},
              {"code": "ep-nzuekro", "name": "École de N'Zuékro", "service": "education", "area": "CI-R1-D1-C02"}]}}"""
        val catalog = builtinReference("en").withContent("CI", 1, areas).withContent("CI", 1, services)
        assertEquals("Lakes Region", catalog.area("CI", "CI-R1")?.label)
        assertEquals(listOf("Kouamékro", "N'Zuékro"), catalog.areaChildren("CI", "CI-R1-D1").map { it.label })
        assertEquals(listOf(AreaLevel.COUNTRY, AreaLevel.REGION, AreaLevel.DISTRICT, AreaLevel.COMMUNITY),
            catalog.areaPath("CI", "CI-R1-D1-C02").map { it.level })
        assertEquals("Région des Lacs", catalog.inLanguage("fr").areaPath("CI", "CI-R1-D1-C02")[1].label)
        assertEquals(community, catalog.areaOfCommunity("CI", "CI-R1-D1-C01"))
        assertEquals("CI@1", catalog.activeVersions("CI").administrativeAreas)
        assertEquals(listOf("École primaire de Kouamékro"),
            catalog.providersFor(ServiceKind.EDUCATION, community).map { it.name })
        assertEquals("content_json", assertFailsWith<VigieException.Validation> {
            catalog.withContent("CI", 2, "Kouamékro")
        }.field)
    }

    /** RFC 4180, as the export writes it: a header row, quoted fields with doubled quotes, CRLF. */
    private fun readCsv(file: File): List<Map<String, String>> {
        val records = mutableListOf<List<String>>()
        var fields = mutableListOf<String>()
        val field = StringBuilder()
        var quoted = false
        val text = file.readText()
        var i = 0
        while (i < text.length) {
            val c = text[i]
            when {
                quoted && c == '"' && text.getOrNull(i + 1) == '"' -> { field.append('"'); i++ }
                c == '"' -> quoted = !quoted
                !quoted && c == ',' -> { fields.add(field.toString()); field.clear() }
                !quoted && c == '\r' -> {}
                !quoted && c == '\n' -> {
                    fields.add(field.toString()); field.clear()
                    records.add(fields); fields = mutableListOf()
                }
                else -> field.append(c)
            }
            i++
        }
        val header = records.first()
        return records.drop(1).map { header.zip(it).toMap() }
    }
}
