package org.vigie

import org.vigie.core.*
import java.util.concurrent.CopyOnWriteArrayList
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertTrue
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.TimeoutCancellationException
import kotlinx.coroutines.async
import kotlinx.coroutines.delay
import kotlinx.coroutines.flow.filterIsInstance
import kotlinx.coroutines.flow.take
import kotlinx.coroutines.flow.toList
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import org.junit.Test

/** The other ways records travel: bytes over the app's own link, files, peers; and listeners. */
class SyncSessionsTest {
    private val devices = Devices()

    @Test
    fun bytesOutBytesInOverTheAppsOwnLink() {
        openEnrolledStore(Env.storePath("bytes.db"), key(10), devices.monitorToken).use { store ->
            val child = store.createChildCase(
                newChildCase("CI-D1-0100", "Yao Serge", Sex.MALE, community, "2026-03-06", store.userId())
                    .apply { estimatedAge = 14; hoursPerWeek = 10 })
            // Any carrier will do: only bytes cross it.
            val link = HubHttpTransport(Env.hubUrl, devices.monitorToken)
            var accepted = 0L
            var rounds = 0
            do {
                val report = store.hubSyncApply(link.exchange(store.hubSyncRequest()))
                accepted += report.accepted
                assertTrue(report.refused.isEmpty() && report.failed.isEmpty(), "$report")
                rounds++
            } while (report.more && rounds < 50)
            assertEquals(1L, accepted)
            assertEquals(0L, store.hubOutboxLen())
            assertEquals(ClassificationOutcome.NOT_CHILD_LABOUR, store.getChildCase(child.id).classification?.outcome)
        }
    }

    @Test
    fun bundlesCarryRecordsAndConcurrentEditsBecomeConflicts() {
        val monitorToken = devices.monitorToken
        val supervisorToken = devices.supervisorToken
        openEnrolledStore(Env.storePath("phone.db"), key(11), monitorToken).use { phone ->
            openEnrolledStore(Env.storePath("tablet.db"), key(12), supervisorToken).use { tablet ->
                // Both synced once: certified by the hub, each holding the other's certificate
                // (the tablet syncs again once the phone is enrolled).
                tablet.synced(supervisorToken)
                phone.synced(monitorToken)
                tablet.synced(supervisorToken)
                val monitor = phone.userId()
                val supervisor = tablet.userId()
                val bulk = CopyOnWriteArrayList<Pair<ChangeSource, Long>>()
                tablet.addChangeListener(object : ChangeListener {
                    override fun onChange(change: RecordChange) {}
                    override fun onBulkChange(source: ChangeSource, records: Long) {
                        bulk.add(source to records)
                    }
                })
                val w = phone.createWorkplace(newWorkplace("Carrière de Dabou", "mining", Formality.INFORMAL, community))
                val v = phone.createVisit(newVisit(VisitKind.COMMUNITY_MONITORING, w.id, community, monitor,
                    "2026-03-02T09:00:00+00:00").apply {
                    findings = "Deux enfants cassaient des pierres."
                    status = VisitStatus.SUBMITTED
                })
                val toTablet = listOf(Recipient.Device(tablet.deviceId()))
                val first = phone.exportBundle(0, listOf(AreaFilter.District("CI-R1-D1")), toTablet)
                val imported = tablet.importBundle(first.bytes)
                // The phone's records of the district (what the hub gave it too): two are new.
                assertEquals(2L, imported.changed)
                assertEquals(phone.deviceId(), imported.fromDevice)
                assertEquals(listOf(ChangeSource.BUNDLE to 2L), bulk.toList())

                // Offline, both write the workplace's owner as each heard it; the supervisor, who
                // read the submitted visit in the bundle, also returns it with a comment.
                phone.updateWorkplace(phone.getWorkplace(w.id).apply { ownerName = "Kouamé Yao" })
                tablet.updateWorkplace(tablet.getWorkplace(w.id).apply { ownerName = "Koffi Brou" })
                tablet.reviewVisit(v.id, VisitReview.ReturnToVisitor("Préciser l'âge des enfants."))
                tablet.importBundle(phone.exportBundle(first.mark, emptyList(), toTablet).bytes)
                val conflict = tablet.conflicts(w.id).single()
                assertEquals("owner_name", conflict.field)
                assertEquals(setOf(FieldValue.Text("Kouamé Yao"), FieldValue.Text("Koffi Brou")), conflict.values.map { it.value }.toSet())
                assertEquals(setOf(monitor, supervisor), conflict.values.mapNotNull { it.author?.userId }.toSet())

                tablet.resolveConflict(w.id, conflict.path, FieldValue.Text("Koffi Brou"))
                assertTrue(tablet.conflicts(w.id).isEmpty())
                // The supervisor sends back only the phone's community, to the phone.
                val back = tablet.exportBundle(0, listOf(AreaFilter.Community(community.community)),
                    listOf(Recipient.Device(phone.deviceId())))
                phone.importBundle(back.bytes)
                val merged = phone.getVisit(v.id)
                assertEquals(VisitStatus.RETURNED, merged.status)
                assertEquals("Préciser l'âge des enfants.", merged.reviewComment)
                assertEquals("Koffi Brou", phone.getWorkplace(w.id).ownerName)
                assertTrue(phone.conflicts(w.id).isEmpty())
                assertTrue(phone.history(v.id).any { it.author?.userId == supervisor })

                // What identity promises: a device that never synced has no certificate to export
                // or import with, and a synced device the bundle was not sealed to cannot open it.
                openStore(Env.storePath("new.db"), key(17), monitor, null).use { unenrolled ->
                    assertFailsWith<VigieException.Authentication> { unenrolled.exportBundle(0, emptyList(), listOf(Recipient.Hub)) }
                    assertFailsWith<VigieException.Authentication> { unenrolled.importBundle(back.bytes) }
                }
                val refused = assertFailsWith<VigieException.Authentication> { tablet.importBundle(back.bytes) }
                assertTrue(refused.reason.contains("not sealed to this device"), refused.reason)
            }
        }
    }

    @Test
    fun twoDevicesReconcileByPeerMessages() {
        val aToken = devices.monitorToken
        val bToken = devices.quickstartToken // another device of the same monitor
        openEnrolledStore(Env.storePath("a.db"), key(13), aToken).use { a ->
            openEnrolledStore(Env.storePath("b.db"), key(14), bToken).use { b ->
                // Both synced once (the handshake checks their certificates): they hold the same
                // records from the hub, then each writes one offline.
                a.synced(aToken)
                b.synced(bToken)
                val cases = a.count(RecordKind.CHILD_CASE)
                val workplaces = b.count(RecordKind.WORKPLACE)
                a.createWorkplace(newWorkplace("Briqueterie", "brick_kiln", Formality.INFORMAL, community))
                b.createChildCase(newChildCase("CI-0200", "Adjoua", Sex.FEMALE, community, "2026-03-02",
                    b.userId()).apply { estimatedAge = 10 })
                // As over Bluetooth: a's messages to b, b's replies to a, until a has nothing more.
                val start = a.peerStart(emptyList())
                val answerer = b.peerAccept(emptyList())
                var toB: ByteArray? = start.message
                var rounds = 0
                while (toB != null && rounds < 20) {
                    val toA = b.peerStep(answerer, toB) ?: break
                    toB = a.peerStep(start.session, toA)
                    rounds++
                }
                assertTrue(start.session.isFinished())
                assertEquals(cases + 1, a.count(RecordKind.CHILD_CASE))
                assertEquals(workplaces + 1, b.count(RecordKind.WORKPLACE))
                assertEquals(1L, start.session.received())
                assertEquals(1L, start.session.sent())
            }
        }
    }

    @Test
    fun aDeviceThatNeverSyncedHasNoPeerSessions() {
        openStore(Env.storePath("stranger.db"), key(19), newUserId(), null).use { stranger ->
            // No certificate to show in the handshake: sync with the hub first.
            val e = assertFailsWith<VigieException.Authentication> { stranger.peerStart(emptyList()) }
            assertTrue(e.reason.contains("sync with the hub first"), e.reason)
            assertFailsWith<VigieException.Authentication> { stranger.peerAccept(emptyList()) }
        }
    }

    @Test
    fun changesAsAFlow() {
        runBlocking {
            openStore(Env.storePath("flow.db"), key(15), newUserId(), null).use { store ->
                val received = async(Dispatchers.Default) {
                    withTimeout(10_000) {
                        store.changes().filterIsInstance<StoreChange.Record>().take(2).toList()
                    }
                }
                // Writes made before the collector is registered are not replayed: write until
                // two have been seen.
                val created = mutableListOf<String>()
                while (!received.isCompleted) {
                    created += store.createWorkplace(
                        newWorkplace("Atelier ${created.size}", "textile", Formality.FORMAL, community)).id
                    delay(20)
                }
                val changes = received.await().map { it.change }
                assertTrue(changes.all {
                    it.source == ChangeSource.LOCAL && it.kind == RecordKind.WORKPLACE && it.id in created
                }, "$changes")
            }
        }
    }

    /** A stopped worker's sync ends at once, not after the link's timeouts; nothing is lost. */
    @Test
    fun cancellingASuspendingSyncEndsItPromptly() {
        openEnrolledStore(Env.storePath("cancel.db"), key(18), devices.monitorToken).use { store ->
            store.createVisit(newVisit(VisitKind.FOLLOW_UP, newUserId(), community, store.userId(),
                "2026-03-07T08:00:00+00:00"))
            val hub = HubHttpTransport(Env.hubUrl, devices.monitorToken)
            // A link that takes five seconds to carry each message.
            val slow = object : SyncTransport {
                override fun exchange(request: ByteArray): ByteArray {
                    Thread.sleep(5_000)
                    return hub.exchange(request)
                }

                override fun exchangeAttachment(request: ByteArray): ByteArray =
                    hub.exchangeAttachment(request)
            }
            val started = System.nanoTime()
            assertFailsWith<TimeoutCancellationException> {
                runBlocking { withTimeout(300) { store.sync(slow) } }
            }
            val tookMs = (System.nanoTime() - started) / 1_000_000
            assertTrue(tookMs < 3_000, "cancelled after $tookMs ms")
            assertTrue(!Thread.currentThread().isInterrupted)
            // The visit was not lost: the next session sends it.
            val summary = runBlocking { store.syncWithHub(Env.hubUrl, devices.monitorToken) }
            assertEquals(1L, summary.accepted)
        }
    }

    @Test
    fun aHubAddressWithoutItsSchemeIsRefusedAsAnArgument() {
        assertFailsWith<IllegalArgumentException> { HubHttpTransport("127.0.0.1:8470", "token") }
    }

    @Test
    fun suspendingSyncRunsOffTheCallersThread() {
        openEnrolledStore(Env.storePath("suspend.db"), key(16), devices.monitorToken).use { store ->
            store.createVisit(newVisit(VisitKind.FOLLOW_UP, newUserId(), community, store.userId(),
                "2026-03-07T08:00:00+00:00"))
            val caller = Thread.currentThread()
            val threads = CopyOnWriteArrayList<Thread>()
            val summary = runBlocking {
                store.syncWithHub(Env.hubUrl, devices.monitorToken) { threads.add(Thread.currentThread()) }
            }
            assertEquals(1L, summary.accepted)
            assertTrue(threads.isNotEmpty() && threads.none { it == caller })
        }
    }
}
