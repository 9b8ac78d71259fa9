package org.vigie

import org.vigie.core.*
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertFalse
import kotlin.test.assertTrue
import org.junit.Test

/** Every exception type the bindings raise, each from a real cause. */
class ErrorsTest {
    private val devices = Devices()

    private fun freshStore(key: ByteArray = key(3), user: String = newUserId()) =
        openStore(Env.storePath("errors.db"), key, user, null)

    @Test
    fun validationNamesTheFieldAndNeverTheValue() {
        freshStore().use { store ->
            val child = newChildCase("CI-0002", "Koffi Brou", Sex.MALE, community, "2026-03-02", store.userId())
            val noAge = assertFailsWith<VigieException.Validation> { store.createChildCase(child) }
            assertEquals("date_of_birth", noAge.field)
            assertFalse(noAge.message.orEmpty().contains("Koffi"))

            child.estimatedAge = 12
            child.identifiedOn = "02/03/2026"
            assertEquals("identified_on",
                assertFailsWith<VigieException.Validation> { store.createChildCase(child) }.field)

            val mine = newWorkplace("Carrière", "mining", Formality.INFORMAL, community)
            mine.location.point = GeoPoint(95.0, 0.0, null)
            assertEquals("location.point.latitude",
                assertFailsWith<VigieException.Validation> { store.createWorkplace(mine) }.field)

            child.identifiedOn = "2026-03-02"
            child.hoursPerWeek = -1
            assertEquals("hours_per_week",
                assertFailsWith<VigieException.Validation> { store.createChildCase(child) }.field)
            assertEquals("key", assertFailsWith<VigieException.Validation> {
                openStore(Env.storePath("short-key.db"), ByteArray(16), newUserId(), null)
            }.field)
        }
    }

    @Test
    fun notFoundSaysWhichKindWasAskedFor() {
        freshStore().use { store ->
            val id = newUserId()
            val e = assertFailsWith<VigieException.NotFound> { store.getVisit(id) }
            assertEquals("visit", e.kind)
            assertEquals(id, e.id)
            assertEquals("record", assertFailsWith<VigieException.NotFound> { store.history(id) }.kind)
            // A record of another kind is not found as the kind asked for.
            val w = store.createWorkplace(newWorkplace("Atelier", "textile", Formality.FORMAL, community))
            assertEquals("child_case",
                assertFailsWith<VigieException.NotFound> { store.getChildCase(w.id) }.kind)
        }
    }

    @Test
    fun conflictWhenTheStoreHoldsSomethingElse() {
        freshStore().use { store ->
            val w = store.createWorkplace(newWorkplace("Atelier", "textile", Formality.FORMAL, community))
            assertEquals(w.id, assertFailsWith<VigieException.Conflict> { store.createWorkplace(w) }.id)
            assertFailsWith<VigieException.Conflict> {
                store.resolveConflict(w.id, listOf("name"), FieldValue.Text("Atelier Yao"))
            }
        }
    }

    @Test
    fun notAllowedForForbiddenMovesAndForeignStores() {
        val path = Env.storePath("workflow.db")
        val user = newUserId()
        openStore(path, key(4), user, null).use { store ->
            val child = store.createChildCase(
                newChildCase("CI-0003", "Awa", Sex.FEMALE, community, "2026-03-02", user).apply { estimatedAge = 9 })
            val e = assertFailsWith<VigieException.NotAllowed> {
                store.asRole(Role.SUPERVISOR).transitionCase(child.id, CaseStatus.CLOSED)
            }
            assertEquals("a case cannot go from identified to closed", e.reason)
            assertFalse(caseStatusCanBecome(CaseStatus.IDENTIFIED, CaseStatus.CLOSED))
            assertTrue(caseStatusCanBecome(CaseStatus.IDENTIFIED, CaseStatus.REFERRED))
            assertEquals(CaseStatus.IDENTIFIED, store.getChildCase(child.id).status)
        }
        // The file belongs to the device it was created for.
        assertFailsWith<VigieException.NotAllowed> { openStore(path, key(4), user, newUserId()) }

        // A progress listener reading its store is served: the session holds the store only
        // for its steps.
        openEnrolledStore(Env.storePath("reentrant.db"), key(4), devices.monitorToken).use { store ->
            store.createVisit(newVisit(VisitKind.FOLLOW_UP, newUserId(), community, store.userId(),
                "2026-03-05T08:00:00+00:00"))
            var read: Result<Long>? = null
            store.syncWith(HubHttpTransport(Env.hubUrl, devices.monitorToken), object : SyncProgressListener {
                override fun onProgress(summary: SyncSummary) {
                    read = runCatching { store.count(RecordKind.VISIT) }
                }
            })
            assertEquals(1L, read?.getOrNull(), "$read")
            assertEquals(1L, store.count(RecordKind.VISIT), "usable again after the session")
        }
    }

    @Test
    fun authenticationForWrongKeysTokensAndCredentials() {
        val path = Env.storePath("keyed.db")
        val user = newUserId()
        openStore(path, key(5), user, null).close()
        assertFailsWith<VigieException.Authentication> { openStore(path, key(6), user, null) }
        assertFailsWith<VigieException.Authentication> { openUnencryptedStore(path, user) } // an encrypted file, no key
        assertFailsWith<VigieException.Authentication> { parseEnrolmentToken("vgd1.not-a-token") }

        // Well-formed, but the hub does not know this secret: HTTP 401.
        val real = devices.monitorToken
        val forged = real.substringBeforeLast('.') + "." + "0".repeat(64)
        openEnrolledStore(Env.storePath("forged.db"), key(7), forged).use { store ->
            store.createVisit(newVisit(VisitKind.FOLLOW_UP, newUserId(), community, store.userId(),
                "2026-03-04T08:00:00Z"))
            assertFailsWith<VigieException.Authentication> {
                store.syncWith(HubHttpTransport(Env.hubUrl, forged), null)
            }
            assertEquals(1L, store.hubOutboxLen(), "nothing is lost")
        }
    }

    /** A revoked device is told so in its own type (the app wipes the profile), not NotAllowed. */
    @Test
    fun deviceRevokedForARevokedDevice() {
        openEnrolledStore(Env.storePath("revoked.db"), key(8), devices.revokedToken).use { store ->
            val e = assertFailsWith<VigieException.DeviceRevoked> {
                store.syncWith(HubHttpTransport(Env.hubUrl, devices.revokedToken), null)
            }
            assertTrue(e.reason.contains("wipe"), e.reason)
        }
    }

    @Test
    fun storageOnceClosed() {
        val store = freshStore()
        store.closeStore()
        assertFailsWith<VigieException.Storage> { store.count(RecordKind.VISIT) }
        store.close()
    }

    @Test
    fun damagedInputIsRefusedWhole() {
        freshStore().use { store ->
            assertFailsWith<VigieException.DamagedInput> { store.importBundle("not a bundle".toByteArray()) }
            assertFailsWith<VigieException.DamagedInput> { store.hubSyncApply(ByteArray(64) { 7 }) }
        }
        // A sealed bundle altered on its way: two enrolled devices, the second a recipient.
        val otherToken = Env.enrol(Env.monitorUser)
        openEnrolledStore(Env.storePath("from.db"), key(3), devices.monitorToken).synced(devices.monitorToken).use { from ->
            openEnrolledStore(Env.storePath("to.db"), key(4), otherToken).synced(otherToken).use { to ->
                from.synced(devices.monitorToken) // now it holds the other device's certificate
                val bundle = from.exportBundle(0, emptyList(), listOf(Recipient.Device(to.deviceId()))).bytes
                bundle[bundle.size - 1] = (bundle[bundle.size - 1] + 1).toByte()
                assertFailsWith<VigieException.DamagedInput> { to.importBundle(bundle) }
            }
        }
    }

    @Test
    fun transportFailuresStopTheSessionAndKeepTheOutbox() {
        openEnrolledStore(Env.storePath("offline.db"), key(9), devices.monitorToken).use { store ->
            store.createVisit(newVisit(VisitKind.FOLLOW_UP, newUserId(), community, store.userId(),
                "2026-03-04T08:00:00+00:00"))
            // Nothing listens on port 1: the transport says so in the words every transport
            // says, which read in French too (not the JDK's "Connection refused").
            val refused = assertFailsWith<VigieException.Transport> {
                store.syncWith(HubHttpTransport("http://127.0.0.1:1", devices.monitorToken), null)
            }
            assertTrue(refused.reason.contains("the hub's address refused the connection"), refused.reason)
            assertFalse(refused.reason.contains("ConnectException"), refused.reason)
            assertTrue(refused.textIn("fr").contains("a refusé la connexion"), refused.textIn("fr"))
            // Cancelled, the transport refuses its next exchanges with the words for it.
            val aborted = HubHttpTransport(Env.hubUrl, devices.monitorToken).also { it.abort() }
            val cancelled = assertFailsWith<VigieException.Transport> { store.syncWith(aborted, null) }
            assertTrue(cancelled.reason.contains("the sync was cancelled on this device"), cancelled.reason)
            // Any exception from the app's transport counts as unreachable; its type is kept,
            // never its message (which may quote a child's name).
            val e = assertFailsWith<VigieException.Transport> {
                store.syncWith(object : SyncTransport {
                    override fun exchange(request: ByteArray): ByteArray = throw IllegalStateException("radio off near Aya")
                    override fun exchangeAttachment(request: ByteArray): ByteArray = throw IllegalStateException("radio off near Aya")
                }, null)
            }
            assertTrue(e.reason.contains("IllegalStateException"), e.reason)
            assertFalse(e.reason.contains("Aya"), e.reason)
            assertEquals(1L, store.hubOutboxLen())
        }
    }

    @Test
    fun aRedirectIsNotFollowedAndTheTokenGoesNowhereElse() {
        // A "hub" on 127.0.0.1 that redirects to another server (a captive portal, a proxy
        // misconfigured): the token never reaches the other one, and the error says why.
        val reached = java.util.concurrent.atomic.AtomicInteger()
        val other = com.sun.net.httpserver.HttpServer.create(java.net.InetSocketAddress("127.0.0.1", 0), 0)
        other.createContext("/") { exchange ->
            reached.incrementAndGet()
            exchange.sendResponseHeaders(200, -1)
            exchange.close()
        }
        val hub = com.sun.net.httpserver.HttpServer.create(java.net.InetSocketAddress("127.0.0.1", 0), 0)
        hub.createContext("/") { exchange ->
            exchange.requestBody.readBytes()
            exchange.responseHeaders.add("Location", "http://127.0.0.1:${other.address.port}/login")
            exchange.sendResponseHeaders(307, -1)
            exchange.close()
        }
        other.start()
        hub.start()
        try {
            openEnrolledStore(Env.storePath("redirected.db"), key(10), devices.monitorToken).use { store ->
                val e = assertFailsWith<VigieException.Transport> {
                    store.syncWith(HubHttpTransport("http://127.0.0.1:${hub.address.port}", devices.monitorToken), null)
                }
                assertTrue(e.reason.contains("redirect, not followed"), e.reason)
                assertTrue(e.reason.endsWith(": http://127.0.0.1:${other.address.port}"), e.reason)
                assertFalse(e.reason.contains("/login"), e.reason)
                assertTrue(e.textIn("fr").contains("redirection, non suivie"), e.textIn("fr"))
                assertEquals(0, reached.get())
            }
        } finally {
            hub.stop(0)
            other.stop(0)
        }
    }

    @Test
    fun aPageAnsweredInTheHubsPlaceIsSaidSoAndAnEndlessBodyIsNotReadForEver() {
        // A Wi-Fi that asks to sign in answers 403 with a web page: not a right withheld; a
        // server in the hub's place sends a body larger than any hub's: not read to its end.
        val server = com.sun.net.httpserver.HttpServer.create(java.net.InetSocketAddress("127.0.0.1", 0), 0)
        val kind = java.util.concurrent.atomic.AtomicReference("page")
        server.createContext("/") { exchange ->
            exchange.requestBody.readBytes()
            try {
                if (kind.get() == "page") {
                    val page = "<html><body>Forfait épuisé</body></html>".toByteArray()
                    exchange.responseHeaders.add("Content-Type", "text/html; charset=utf-8")
                    exchange.sendResponseHeaders(403, page.size.toLong())
                    exchange.responseBody.write(page)
                } else {
                    exchange.responseHeaders.add("Content-Type", "application/octet-stream")
                    exchange.sendResponseHeaders(200, 0)
                    val chunk = ByteArray(1024 * 1024)
                    repeat(200) { exchange.responseBody.write(chunk) }
                }
            } catch (e: java.io.IOException) {
                // The phone stopped reading.
            }
            exchange.close()
        }
        server.start()
        try {
            openEnrolledStore(Env.storePath("portal.db"), key(11), devices.monitorToken).use { store ->
                val url = "http://127.0.0.1:${server.address.port}"
                val page = assertFailsWith<VigieException.Transport> {
                    store.syncWith(HubHttpTransport(url, devices.monitorToken), null)
                }
                assertTrue(page.reason.contains("answered 403 in the hub's place"), page.reason)
                kind.set("endless")
                val endless = assertFailsWith<VigieException.Transport> {
                    store.syncWith(HubHttpTransport(url, devices.monitorToken), null)
                }
                assertTrue(endless.reason.contains("larger than any hub's"), endless.reason)
            }
        } finally {
            server.stop(0)
        }
    }

    @Test
    fun aRustPanicBecomesAnExceptionAndTheStoreStaysUsable() {
        val e = assertFailsWith<InternalException> { debugPanic("boom from the test") }
        assertTrue(e.message.orEmpty().contains("boom from the test"), e.message)
        freshStore().use { store ->
            store.createWorkplace(newWorkplace("Atelier", "textile", Formality.FORMAL, community))
            assertFailsWith<InternalException> { store.debugPanicHoldingStore("boom inside the store") }
            assertEquals(1L, store.count(RecordKind.WORKPLACE))
            assertTrue(store.integrityCheck())
        }
    }
}
