package org.vigie

import org.vigie.core.*
import java.util.concurrent.CopyOnWriteArrayList
import kotlin.test.assertEquals
import kotlin.test.assertNotNull
import kotlin.test.assertNull
import kotlin.test.assertTrue
import org.junit.Test

/**
 * A monitor's field day on a real store and a real hub: the supervisor registers a workplace;
 * the monitor records a visit, flags a child, refers her and follows up, then syncs; the
 * supervisor receives it all and validates the visit; the monitor receives the validation.
 */
class FieldDayTest {
    private val devices = Devices()

    @Test
    fun aFieldDayFromTheVisitToTheHubAndBack() {
        val monitor = parseEnrolmentToken(devices.monitorToken)
        openEnrolledStore(Env.storePath("tablet.db"), key(2), devices.supervisorToken).use { tablet ->
            openEnrolledStore(Env.storePath("phone.db"), key(1), devices.monitorToken).use { phone ->
                assertEquals(monitor.deviceId, phone.deviceId())
                assertEquals(monitor.userId, phone.userId())
                val events = CopyOnWriteArrayList<RecordChange>()
                phone.addChangeListener(object : ChangeListener {
                    override fun onChange(change: RecordChange) {
                        events.add(change)
                    }

                    override fun onBulkChange(source: ChangeSource, records: Long) {}
                })

                // The supervisor registers the workplace and sends it to the hub.
                val workplace = tablet.createWorkplace(
                    newWorkplace("Plantation Kouamé", "cocoa", Formality.INFORMAL, community).apply {
                        location.point = GeoPoint(6.82, -5.28, 8.0)
                        ownerName = "Kouamé Yao"
                    })
                val registered = tablet.syncWith(HubHttpTransport(Env.hubUrl, devices.supervisorToken), null)
                assertEquals(1L, registered.accepted)
                assertTrue(registered.refused.isEmpty(), "${registered.refused}")

                // The monitor's phone syncs: the hub tells it its user's role (the workflow acts
                // with it), and a community monitor receives the workplaces of her communities.
                assertNull(phone.userProfile())
                phone.syncWith(HubHttpTransport(Env.hubUrl, devices.monitorToken), null)
                assertEquals(UserProfile(Role.COMMUNITY_MONITOR, listOf("CI-R1-D1-C01")), phone.userProfile())
                assertEquals("Plantation Kouamé", phone.getWorkplace(workplace.id).name)

                // The monitor records a visit...
                var visit = phone.createVisit(
                    newVisit(VisitKind.COMMUNITY_MONITORING, workplace.id, workplace.location.area,
                        monitor.userId, "2026-03-02T09:00:00+00:00").apply {
                        gps = GeoPoint(6.8201, -5.2799, 5.0)
                        findings = "Deux enfants portaient des charges lourdes."
                        forcedLabour = mapOf(ForcedLabourIndicator.ISOLATION to "Campement à 8 km")
                        workforce = Workforce(female = AgeBands(age1214 = 1, adults = 3),
                            male = AgeBands(under12 = 1, adults = 5))
                        checklist = ChecklistAnswers("labour-inspection", 1, mapOf("LI02" to Answer.NO))
                    })
                assertEquals(VisitStatus.DRAFT, visit.status)
                assertTrue(visit.version.isNotEmpty())

                // ... flags a child ...
                var case = phone.createChildCase(
                    newChildCase("CI-D1-0001", "Aya Kouassi", Sex.FEMALE, community, "2026-03-02",
                        monitor.userId).apply {
                        estimatedAge = 11
                        ageBasis = AgeBasis.DECLARED_BY_CHILD
                        school = SchoolStatus.DROPPED_OUT
                        activity = "Récolte et transport des fèves"
                        hoursPerWeek = 25
                        hazards = listOf("heavy_loads", "sharp_tools")
                        workplaceId = workplace.id
                        identifiedOnVisit = visit.id
                    })
                val classification = assertNotNull(case.classification)
                assertEquals(ClassificationOutcome.HAZARDOUS_CHILD_LABOUR, classification.outcome)
                assertEquals(11, classification.age)
                visit.childrenIdentified = listOf(case.id)
                visit.endedAt = "2026-03-02T11:30:00+00:00"
                visit = phone.updateVisit(visit)
                visit = phone.submitVisit(visit.id)
                assertEquals(VisitStatus.SUBMITTED, visit.status)
                assertEquals(listOf(case.id), visit.childrenIdentified)

                // ... refers her to school and follows up, as the community monitor she is.
                case = phone.referCase(case.id,
                    newReferral(ServiceKind.EDUCATION, "École primaire de Kouamé", "2026-03-03"))
                assertEquals(CaseStatus.REFERRED, case.status)
                case = phone.addFollowUp(case.id,
                    newFollowUp("2026-03-20", FollowUpSituation.IN_SCHOOL, "2026-04-20"))
                case = phone.transitionCase(case.id, CaseStatus.RECEIVING_SERVICES)
                assertEquals("École primaire de Kouamé", case.referrals.values.single().provider)
                assertEquals("2026-04-20", case.followups.values.single().nextDue)

                // What the monitor's lists show (with what the hub sent her community before).
                val listed = phone.childCases(
                    ChildCaseQuery(area = AreaFilter.Community("CI-R1-D1-C01"),
                        classification = ClassificationOutcome.HAZARDOUS_CHILD_LABOUR), Page())
                assertEquals(CaseStatus.RECEIVING_SERVICES, listed.single { it.id == case.id }.status)
                val due = phone.followUpsDue("2026-05-01", assigneeId = monitor.userId)
                assertTrue(due.any { it.id == case.id && it.due == "2026-04-20" }, "$due")
                assertTrue(case.id in phone.searchNames("aya kouassi", 10).map { it.id })
                assertTrue(visit.id in phone.visits(VisitQuery(visitorId = monitor.userId), Page()).map { it.id })
                val history = phone.history(case.id)
                assertTrue(history.size >= 4, "$history")
                assertTrue(history.all { it.author?.deviceId == monitor.deviceId })
                assertTrue(history.any { entry -> entry.fields.any { it.startsWith("referrals") } })

                // Sync with the hub through the app's HTTP.
                val progress = CopyOnWriteArrayList<SyncSummary>()
                val sent = phone.syncWith(HubHttpTransport(Env.hubUrl, devices.monitorToken),
                    object : SyncProgressListener {
                        override fun onProgress(summary: SyncSummary) {
                            progress.add(summary)
                        }
                    })
                assertEquals(2L, sent.accepted, "$sent")
                assertTrue(sent.refused.isEmpty(), "${sent.refused}")
                assertEquals(0L, sent.pending)
                assertEquals(0L, phone.hubOutboxLen())
                assertTrue(progress.isNotEmpty())
                assertEquals(sent.roundTrips, progress.last().roundTrips)

                // The supervisor receives the case and validates the visit.
                val pulled = tablet.syncWith(HubHttpTransport(Env.hubUrl, devices.supervisorToken), null)
                assertTrue(pulled.received >= 2, "$pulled")
                val onTablet = tablet.getChildCase(case.id)
                assertEquals("Aya Kouassi", onTablet.name)
                assertEquals(CaseStatus.RECEIVING_SERVICES, onTablet.status)
                assertEquals(1, onTablet.followups.size)
                tablet.reviewVisit(visit.id, VisitReview.Validate)
                val validated = tablet.syncWith(HubHttpTransport(Env.hubUrl, devices.supervisorToken), null)
                assertTrue(validated.accepted >= 1 && validated.refused.isEmpty(), "$validated")

                // The monitor's phone receives the validation, and its listener hears of it.
                val back = phone.syncWith(HubHttpTransport(Env.hubUrl, devices.monitorToken), null)
                assertTrue(back.received >= 1, "$back")
                assertEquals(VisitStatus.VALIDATED, phone.getVisit(visit.id).status)
                assertTrue(events.any { it.id == visit.id && it.source == ChangeSource.HUB }, "$events")
                assertTrue(events.any { it.id == case.id && it.kind == RecordKind.CHILD_CASE &&
                    it.source == ChangeSource.LOCAL })
                assertTrue(phone.integrityCheck())
            }
        }
    }
}
