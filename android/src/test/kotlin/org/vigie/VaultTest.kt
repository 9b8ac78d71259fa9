package org.vigie

import org.vigie.core.*
import java.io.File
import java.util.concurrent.CopyOnWriteArrayList
import kotlin.test.assertContentEquals
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertFalse
import kotlin.test.assertNotEquals
import kotlin.test.assertTrue
import org.junit.Test

/**
 * Several users on one phone, on real files: each user's profile in the [Vault] (own store, own
 * key), PINs counted down to a wipe, keystore unlock, key rotation, wiping, and open cases
 * handed from one user to another.
 */
class VaultTest {
    private val devices = Devices()

    private val pinA = "482913"
    private val pinB = "730615"

    /** A cheap derivation for tests; an app keeps the defaults (19 MiB, 2 passes). */
    private fun freshVault(maxFailedPins: Int = 3) = openVault(
        File(Env.storePath("vault")).path,
        VaultConfig(kdfMemoryKib = 64, kdfIterations = 1, maxFailedPins = maxFailedPins))

    private fun VigieStore.child(code: String, name: String, age: Int = 11, hazards: List<String> = listOf("heavy_loads")) =
        createChildCase(newChildCase(code, name, Sex.FEMALE, community, "2026-03-02", userId()).apply {
            estimatedAge = age
            hoursPerWeek = 20
            this.hazards = hazards
        })

    @Test
    fun twoUsersOnOnePhoneKeepTheirUnsyncedWorkApart() {
        val vault = freshVault()
        val monitor = parseEnrolmentToken(devices.monitorToken)
        val other = newUserId()

        val aya = vault.createUser(monitor.userId, monitor.deviceId, pinA).use { a ->
            assertEquals(monitor.deviceId, a.deviceId())
            a.child("CI-V-0001", "Aya Kouassi").also { assertEquals(1L, a.hubOutboxLen()) }
        }
        vault.createUser(other, null, pinB).use { b ->
            b.createWorkplace(newWorkplace("Atelier Yao", "textile", Formality.FORMAL, community))
            assertEquals(1L, b.hubOutboxLen())
            assertEquals(0L, b.count(RecordKind.CHILD_CASE))
        }
        assertEquals(listOf(monitor.userId, other).sorted(), vault.users().sorted())
        assertFailsWith<VigieException.Conflict> { vault.createUser(other, null, pinB) }

        // Back to the first user: their unsynced work is there, only theirs, and it syncs.
        vault.unlockWithPin(monitor.userId, pinA).use { a ->
            assertEquals("Aya Kouassi", a.getChildCase(aya.id).name)
            assertEquals(0L, a.count(RecordKind.WORKPLACE))
            val sent = a.syncWith(HubHttpTransport(Env.hubUrl, devices.monitorToken), null)
            assertEquals(1L, sent.accepted, "$sent")
            assertEquals(0L, sent.pending)
        }

        // The second user unlocks with the keystore's key after biometrics.
        vault.addKeystoreUnlock(other, pinB, key(40))
        assertTrue(vault.hasKeystoreUnlock(other))
        vault.unlockWithKeystore(other, key(40)).use { assertEquals(1L, it.hubOutboxLen()) }
        assertFailsWith<VigieException.Authentication> { vault.unlockWithKeystore(other, key(41)) }
        assertEquals("keystore_key",
            assertFailsWith<VigieException.Validation> { vault.unlockWithKeystore(other, ByteArray(8)) }.field)
        vault.changePin(other, pinB, "915372")
        assertFailsWith<VigieException.WrongPin> { vault.unlockWithPin(other, pinB) }
        vault.unlockWithPin(other, "915372").close()
        assertEquals("pin",
            assertFailsWith<VigieException.Validation> { vault.createUser(newUserId(), null, "111111") }.field)
    }

    @Test
    fun pastTheFirstWrongPinsEachAttemptWaitsAndASoonerOneIsNotCounted() {
        val vault = openVault(
            File(Env.storePath("vault")).path,
            VaultConfig(kdfMemoryKib = 64, kdfIterations = 1, maxFailedPins = 3,
                pinDelayAfter = 1, pinDelaySeconds = 1))
        val user = newUserId()
        vault.createUser(user, null, pinA).close()
        assertFailsWith<VigieException.WrongPin> { vault.unlockWithPin(user, "111112") }
        assertEquals(1uL, vault.pinRetryInSeconds(user))
        val locked = assertFailsWith<VigieException.PinLocked> { vault.unlockWithPin(user, pinA) }
        assertEquals(1uL, locked.retryInSeconds)
        assertEquals(2, vault.pinAttemptsLeft(user))
        Thread.sleep(1100)
        vault.unlockWithPin(user, pinA).close()
        assertEquals(3, vault.pinAttemptsLeft(user))
    }

    @Test
    fun wrongPinsCountDownAndTheLastOneWipesTheProfile() {
        val vault = freshVault(maxFailedPins = 3)
        val user = newUserId()
        val neighbour = newUserId()
        vault.createUser(user, null, pinA).close()
        vault.createUser(neighbour, null, pinB).use { it.child("CI-V-0002", "Koffi Brou") }
        val profile = File(vault.usersDir(), user)
        assertTrue(File(profile, "store.db").isFile)

        val first = assertFailsWith<VigieException.WrongPin> { vault.unlockWithPin(user, "111112") }
        assertEquals(2u, first.attemptsLeft)
        assertFalse(first.message.orEmpty().contains("111112"))
        assertEquals(2, vault.pinAttemptsLeft(user))
        vault.unlockWithPin(user, pinA).close() // a right PIN resets the count
        assertEquals(3, vault.pinAttemptsLeft(user))

        val left = listOf("111112", "222223").map {
            assertFailsWith<VigieException.WrongPin> { vault.unlockWithPin(user, it) }.attemptsLeft
        }
        assertEquals(listOf(2u, 1u), left)
        assertFailsWith<VigieException.ProfileWiped> { vault.unlockWithPin(user, "333334") }
        assertFalse(profile.exists())
        assertEquals(listOf(neighbour), vault.users())
        val gone = assertFailsWith<VigieException.NotFound> { vault.unlockWithPin(user, pinA) }
        assertEquals("profile", gone.kind)
        vault.unlockWithPin(neighbour, pinB).use { assertEquals(1L, it.count(RecordKind.CHILD_CASE)) }
    }

    @Test
    fun rotatingTheKeyKeepsEveryRecordAndWipingClosesOpenStores() {
        val vault = freshVault()
        val user = newUserId()
        var store = vault.createUser(user, null, pinA)
        vault.addKeystoreUnlock(user, pinA, key(42))
        val ids = (0 until 5).map { store.child("CI-V-01$it", "Enfant $it").id }
        val keyFile = File(File(vault.usersDir(), user), "key.json")
        val before = keyFile.readText()

        vault.rotateKeyWithPin(store, pinA)
        assertNotEquals(before, keyFile.readText())
        assertEquals((0 until 5).map { "CI-V-01$it" }, ids.map { store.getChildCase(it).caseCode })
        store.child("CI-V-0200", "Après rotation")
        assertFailsWith<VigieException.WrongPin> { vault.rotateKeyWithPin(store, "999990") }
        vault.rotateKeyWithKeystore(store, key(42))
        store.close()
        vault.unlockWithPin(user, pinA).use {
            assertEquals(6L, it.count(RecordKind.CHILD_CASE))
            assertTrue(it.integrityCheck())
        }
        vault.unlockWithKeystore(user, key(42)).use { assertEquals(6L, it.count(RecordKind.CHILD_CASE)) }

        // Wiping closes the user's open store first; calling it afterwards says why.
        store = vault.unlockWithPin(user, pinA)
        vault.wipeUser(user)
        assertFailsWith<VigieException.ProfileWiped> { store.count(RecordKind.CHILD_CASE) }
        store.close()
        assertFalse(File(vault.usersDir(), user).exists())
        val kept = vault.createUser(newUserId(), null, pinB)
        vault.createUser(user, null, pinA).close()
        vault.wipeAll()
        assertEquals(emptyList(), vault.users())
        assertContentEquals(emptyArray(), File(vault.usersDir()).list())
        assertFailsWith<VigieException.ProfileWiped> { kept.hubOutboxLen() }
        kept.close()
    }

    @Test
    fun openCasesAreHandedOverToAnotherUserOfThePhone() {
        val vault = freshVault()
        val giver = newUserId()
        val receiver = newUserId()
        val me = Role.COMMUNITY_MONITOR
        lateinit var aya: ChildCase
        val handOver = vault.createUser(giver, null, pinA).use { a ->
            aya = a.child("CI-H-0001", "Aya Kouassi")
            val yao = a.child("CI-H-0002", "Yao Serge", age = 9, hazards = emptyList())
            val handOver = a.handOver(listOf(aya.id, yao.id), receiver)
            assertEquals(giver, handOver.fromUserId())
            assertEquals(receiver, handOver.toUserId())
            assertEquals(listOf(aya.id, yao.id), handOver.caseIds())
            assertEquals(receiver, a.getChildCase(aya.id).identifiedBy)

            // A closed case stays with its user.
            var done = a.child("CI-H-0003", "Adjoua")
            done = a.asRole(me).referCase(done.id, newReferral(ServiceKind.EDUCATION, "École", "2026-03-03"))
            a.asRole(me).transitionCase(done.id, CaseStatus.RECEIVING_SERVICES)
            done = a.asRole(Role.SUPERVISOR).transitionCase(done.id, CaseStatus.WITHDRAWN)
            // Verified in March, seen in school in June: closed.
            done = a.asRole(Role.SUPERVISOR).updateChildCase(done.copy(remediatedOn = "2026-03-10"))
            a.asRole(me).addFollowUp(done.id, newFollowUp("2026-06-10", FollowUpSituation.IN_SCHOOL, null))
            a.asRole(Role.SUPERVISOR).transitionCase(done.id, CaseStatus.CLOSED)
            val refused = assertFailsWith<VigieException.NotAllowed> { a.handOver(listOf(done.id), receiver) }
            assertTrue(refused.reason.contains("closed"), refused.reason)
            handOver
        }
        vault.createUser(newUserId(), null, "605814").use { c ->
            assertFailsWith<VigieException.NotAllowed> { c.receiveHandOver(handOver) }
        }

        vault.createUser(receiver, null, pinB).use { b ->
            val heard = CopyOnWriteArrayList<RecordChange>()
            b.addChangeListener(object : ChangeListener {
                override fun onChange(change: RecordChange) {
                    heard.add(change)
                }

                override fun onBulkChange(source: ChangeSource, records: Long) {}
            })
            assertEquals(handOver.caseIds(), b.receiveHandOver(handOver))
            assertTrue(heard.all { it.source == ChangeSource.HAND_OVER } && heard.size == 2, "$heard")
            val received = b.getChildCase(aya.id)
            assertEquals("Aya Kouassi", received.name)
            assertEquals(receiver, received.identifiedBy)
            // The receiver works on it offline at once; it is in their outbox.
            b.asRole(me).addFollowUp(aya.id, newFollowUp("2026-03-20", FollowUpSituation.AT_RISK, "2026-04-01"))
            assertTrue(b.followUpsDue("2026-05-01", assigneeId = receiver).any { it.id == aya.id })
            assertEquals(2L, b.hubOutboxLen())
        }
        handOver.close()
        vault.close()
    }
}
