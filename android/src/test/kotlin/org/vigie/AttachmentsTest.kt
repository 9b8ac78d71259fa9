package org.vigie

import org.vigie.core.*
import java.io.File
import java.security.MessageDigest
import kotlin.random.Random
import kotlin.test.assertContentEquals
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlinx.coroutines.runBlocking
import org.junit.Test

/**
 * Attachments on a real store and a real hub: a monitor captures a scanned form from a file and
 * syncs; the supervisor's tablet, on demand, sees it not downloaded until it asks for it.
 */
class AttachmentsTest {
    private val devices = Devices()

    /** A scanned form's bytes: a PDF's magic number, then noise, `size` bytes in all. */
    private fun scan(size: Int): ByteArray =
        ("%PDF-1.4\n".toByteArray() + Random(size).nextBytes(size)).copyOf(size)

    private fun fileWith(dir: String, name: String, bytes: ByteArray): File =
        File(File(dir).parentFile, name).apply { writeBytes(bytes) }

    @Test
    fun aScannedFormTravelsToTheSupervisorOnDemand() {
        val monitor = parseEnrolmentToken(devices.monitorToken)
        val phonePath = Env.storePath("phone.db")
        openEnrolledStore(phonePath, key(60), devices.monitorToken).use { phone ->
            openEnrolledStore(Env.storePath("tablet.db"), key(61), devices.supervisorToken).use { tablet ->
                runBlocking { phone.syncWithHub(Env.hubUrl, devices.monitorToken) }
                // The hub's own limits (scripts/test-bindings.sh starts it with them).
                assertEquals(3_000_000UL, phone.attachmentLimits().maxFileBytes)

                val case = phone.createChildCase(
                    newChildCase("CI-D1-0200", "Adjoua Konan", Sex.FEMALE, community, "2026-03-02", monitor.userId)
                        .apply { estimatedAge = 12 })
                val document = NewAttachment(AttachmentKind.DOCUMENT, "application/pdf", "Consentement")
                val tooBig = fileWith(phonePath, "big.pdf", scan(3_000_001))
                val over = assertFailsWith<VigieException.OverLimit> {
                    phone.addAttachment(case.id, document, tooBig.path)
                }
                assertEquals(Triple("file_bytes", 3_000_001UL, 3_000_000UL), Triple(over.limitOf, over.size, over.limit))

                val bytes = scan(400_000)
                val file = fileWith(phonePath, "consent.pdf", bytes)
                val form = phone.addAttachment(case.id, document, file.path)
                file.delete() // the store holds its own sealed copy
                val sha = MessageDigest.getInstance("SHA-256").digest(bytes).joinToString("") { "%02x".format(it) }
                assertEquals(sha, form.sha256)
                assertEquals(AttachmentState.PENDING_UPLOAD, phone.attachments(case.id).single().state)

                val sent = phone.syncWith(HubHttpTransport(Env.hubUrl, devices.monitorToken), null)
                assertEquals(1L, sent.attachmentsUploaded)
                assertEquals(AttachmentState.UPLOADED, phone.attachments(case.id).single().state)
                assertEquals(0u, phone.recordSyncState(case.id).attachmentsPendingUpload)

                val onDemand = AttachmentSync(DownloadPolicy.ON_DEMAND, unmetered = true)
                runBlocking { tablet.syncWithHub(Env.hubUrl, devices.supervisorToken, attachments = onDemand) }
                assertEquals(AttachmentState.NOT_DOWNLOADED, tablet.attachments(case.id).single().state)
                val out = File(File(phonePath).parentFile, "viewer.pdf")
                val notHere = assertFailsWith<VigieException.AttachmentNotHere> {
                    tablet.exportAttachment(form.id, out.path)
                }
                assertEquals(AttachmentState.NOT_DOWNLOADED, notHere.state)

                tablet.requestAttachment(form.id)
                val pulled = tablet.syncWith(HubHttpTransport(Env.hubUrl, devices.supervisorToken), null, onDemand)
                assertEquals(1L, pulled.attachmentsDownloaded)
                tablet.exportAttachment(form.id, out.path)
                assertContentEquals(bytes, out.readBytes())
                assertEquals("Consentement", tablet.attachments(case.id).single().attachment.caption)

                phone.removeAttachment(case.id, form.id)
                assertEquals(emptyList(), phone.attachments(case.id))
            }
        }
    }
}
