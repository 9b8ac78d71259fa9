package org.vigie

import org.vigie.core.*
import java.io.File
import java.util.concurrent.CopyOnWriteArrayList
import kotlin.test.assertEquals
import kotlin.test.assertFalse
import kotlin.test.assertFailsWith
import kotlin.test.assertTrue
import org.junit.Test

/**
 * Records leaving the store: the app hears of each one (erased, out of the user's scope,
 * quarantined, wiped), the sync summary counts them, and a revoked device raises
 * [VigieException.DeviceRevoked] from [HubHttpTransport].
 */
class LifecycleTest {
    private val devices = Devices()

    /** A new user of the hub, a device enrolled for them, and its store. */
    private fun enrolled(name: String, role: String, area: String): Triple<VigieStore, String, String> {
        val user = Env.admin("user", "add", "--name", name, "--role", role, "--area", area)
        val token = Env.admin("device", "enrol", "--user", user)
        return Triple(openEnrolledStore(Env.storePath("$name.db"), key(23), token), token, user)
    }

    private fun VigieStore.case(name: String) =
        createChildCase(newChildCase("CI-L-0001", name, Sex.FEMALE, community, "2026-03-02", userId()).apply {
            estimatedAge = 11
            hoursPerWeek = 20
        })

    private class Heard : ChangeListener {
        val changes = CopyOnWriteArrayList<RecordChange>()
        override fun onChange(change: RecordChange) { changes.add(change) }
        override fun onBulkChange(source: ChangeSource, records: Long) {}
        fun removed() = changes.filter { it.removed != null }.map { Triple(it.id, it.kind, it.removed) }.toSet()
    }

    @Test
    fun anErasedCaseIsHeardOfAndCounted() {
        val (monitor, monitorToken, _) = enrolled("kt-erased-monitor", "community-monitor", community.community)
        val (supervisor, supervisorToken, supervisorUser) = enrolled("kt-erased-sup", "supervisor", "CI-R1")
        monitor.use {
            supervisor.use {
                val erased = monitor.case("Aminata Sangaré")
                monitor.syncWith(HubHttpTransport(Env.hubUrl, monitorToken), null)
                supervisor.syncWith(HubHttpTransport(Env.hubUrl, supervisorToken), null)
                val heard = Heard()
                monitor.addChangeListener(heard)
                Env.admin("erase", "--record", erased.id, "--by", supervisorUser, "--reason", "legal_request")

                val summary = monitor.syncWith(HubHttpTransport(Env.hubUrl, monitorToken), null)
                assertEquals(Triple(1L, 0L, 0L), Triple(summary.erased, summary.leftScope, summary.quarantined))
                assertEquals(setOf(Triple(erased.id, RecordKind.CHILD_CASE, Removal.ERASED)), heard.removed())
                assertTrue(heard.changes.filter { it.removed != null }.all { it.source == ChangeSource.HUB })
                assertTrue(monitor.searchNames("Aminata", 10).isEmpty())
            }
        }
    }

    @Test
    fun aRefusedCaseItsUserGivesUpLeavesThePhoneAndIsHeardOf() {
        val (monitor, token, _) = enrolled("kt-giving-up-monitor", "community-monitor", community.community)
        monitor.use {
            // Assigned to someone the hub knows of no such user: refused.
            val stray = monitor.createChildCase(
                newChildCase("CI-L-0009", "Awa Traoré", Sex.FEMALE, community, "2026-03-02", java.util.UUID.randomUUID().toString())
                    .apply { estimatedAge = 12 },
            )
            val summary = monitor.syncWith(HubHttpTransport(Env.hubUrl, token), null)
            assertEquals(listOf(stray.id to Refusal.StepNotAllowed), summary.refused.map { it.id to it.reason })
            assertEquals(listOf(stray.id), monitor.refusedRecords())
            val heard = Heard()
            monitor.addChangeListener(heard)

            assertEquals(Discarded.REMOVED, monitor.discardRefusedChanges(stray.id))
            assertEquals(setOf(Triple(stray.id, RecordKind.CHILD_CASE, Removal.DISCARDED)), heard.removed())
            assertTrue(monitor.refusedRecords().isEmpty())
            assertEquals(0L, monitor.hubOutboxLen())
            assertFailsWith<VigieException.NotFound> { monitor.discardRefusedChanges(stray.id) }
            val after = monitor.syncWith(HubHttpTransport(Env.hubUrl, token), null)
            assertTrue(after.refused.isEmpty(), "$after")
            assertEquals(0L, after.pending)
        }
    }

    @Test
    fun aLostAreaIsHeardOfRecordByRecord() {
        val (monitor, token, user) = enrolled("kt-moving-monitor", "community-monitor", community.community)
        monitor.use {
            val edited = monitor.case("Fanta Coulibaly")
            val untouched = monitor.case("Salimata Koné")
            monitor.syncWith(HubHttpTransport(Env.hubUrl, token), null)
            edited.notes = "Vue au marché."
            monitor.updateChildCase(edited)
            val heard = Heard()
            monitor.addChangeListener(heard)
            Env.admin("user", "areas", "--user", user, "--area", "CI-R1-D1-C02")

            // Every case, visit and workplace of the community leaves (other tests' too): one
            // event each.
            fun held() = monitor.count(RecordKind.CHILD_CASE) + monitor.count(RecordKind.VISIT) +
                monitor.count(RecordKind.WORKPLACE)
            val held = held()
            val summary = monitor.syncWith(HubHttpTransport(Env.hubUrl, token), null)
            assertEquals(Triple(1L, held - 1, 0L), Triple(summary.quarantined, summary.leftScope, summary.erased))
            assertEquals(0L, summary.pending)
            val removed = heard.removed()
            assertEquals(held, removed.size.toLong())
            assertTrue(Triple(edited.id, RecordKind.CHILD_CASE, Removal.QUARANTINED) in removed, "$removed")
            assertTrue(Triple(untouched.id, RecordKind.CHILD_CASE, Removal.LEFT_SCOPE) in removed, "$removed")
            assertEquals(0L, held())
        }
    }

    @Test
    fun aRevokedDeviceRaisesDeviceRevokedAndTheWipeIsHeardOf() {
        val me = parseEnrolmentToken(devices.revokedToken)
        val vault = openVault(
            File(Env.storePath("vault")).path,
            VaultConfig(kdfMemoryKib = 64, kdfIterations = 1, maxFailedPins = 3))
        val store = vault.createUser(me.userId, me.deviceId, "482913")
        val kept = store.case("Rokia Diarra")
        val heard = Heard()
        store.addChangeListener(heard)
        val e = assertFailsWith<VigieException.DeviceRevoked> {
            store.syncWith(HubHttpTransport(Env.hubUrl, devices.revokedToken), null)
        }
        assertTrue(e.reason.contains("wipe"), e.reason)
        // The records left at once, whatever the app does next, and the listeners heard of each.
        assertEquals(setOf(Triple(kept.id, RecordKind.CHILD_CASE, Removal.WIPED)), heard.removed())
        assertFailsWith<VigieException.ProfileWiped> { store.count(RecordKind.CHILD_CASE) }
        // The file remembers: unlocked again, it says the device was revoked.
        assertFailsWith<VigieException.DeviceRevoked> { vault.unlockWithPin(me.userId, "482913") }
        // What the app does when told: the profile goes.
        vault.wipeUser(me.userId)
        assertFalse(vault.hasUser(me.userId))
    }
}
