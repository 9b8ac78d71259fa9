package org.vigie

import org.vigie.core.*
import java.io.ByteArrayOutputStream
import java.io.IOException
import java.io.InputStream
import java.net.HttpURLConnection
import java.net.URL

/**
 * A [SyncTransport] over HTTP with the platform's [HttpURLConnection]: `POST <hub>/v1/sync`
 * (records) and `POST <hub>/v1/attachments` (attachments' chunks) with the device's enrolment
 * token. Use it with [VigieStore.syncWith] or [syncWithHub], or bring your own (OkHttp, Ktor,
 * Bluetooth) by implementing [SyncTransport].
 *
 * [exchange] and [exchangeAttachment] block: they are called on the thread running the sync
 * session; [abort], from another thread, cancels the sync: it cuts the one under way and
 * refuses every later one of this transport. [hubUrl] is an http:// or
 * https:// address (else [IllegalArgumentException]). [readTimeoutMillis] bounds each read,
 * [exchangeTimeoutMillis] one whole exchange (a body trickled a byte at a time is cut there).
 * An answer the hub never gives (a web page, a body larger than any hub's) is
 * [TransportException.Unreachable]: something on the way (a Wi-Fi that asks to sign in, a
 * proxy) answered in its place. The reasons are the words Python's and Swift's transports say,
 * which the core's catalogues translate (`VigieException.textIn("fr")`); never the platform's
 * own message.
 */
class HubHttpTransport(
    hubUrl: String,
    token: String,
    private val connectTimeoutMillis: Int = 15_000,
    private val readTimeoutMillis: Int = 120_000,
    private val exchangeTimeoutMillis: Long = 600_000,
) : SyncTransport {
    init {
        require(Regex("^https?://[^/\\s]+", RegexOption.IGNORE_CASE).containsMatchIn(hubUrl.trim())) {
            "the hub's address must start with http:// or https:// and name a host"
        }
    }

    private val syncUrl = URL(hubUrl.trim().trimEnd('/') + "/v1/sync")
    private val attachmentsUrl = URL(hubUrl.trim().trimEnd('/') + "/v1/attachments")
    private val authorization = "Bearer " + token.trim()

    @Volatile
    private var current: HttpURLConnection? = null

    @Volatile
    private var aborted = false

    /**
     * Cancels the sync (a Cancel button, a worker stopped), from any thread: the exchange under
     * way is cut, and every later one of this transport. The session ends with a `Transport`
     * error saying it was cancelled; what was applied stays, and the next sync (with a new
     * transport) goes on from there.
     */
    fun abort() {
        aborted = true
        current?.disconnect()
    }

    override fun exchange(request: ByteArray): ByteArray = post(syncUrl, request)

    override fun exchangeAttachment(request: ByteArray): ByteArray = post(attachmentsUrl, request)

    private fun post(url: URL, request: ByteArray): ByteArray {
        if (aborted) throw cancelled()
        val connection = try {
            url.openConnection() as HttpURLConnection
        } catch (e: IOException) {
            throw TransportException.Unreachable(networkFailure(e))
        }
        current = connection
        // An abort between the check above and `current` set would cut nothing.
        if (aborted) throw cancelled()
        // The exchange's deadline, its status line and headers included (a server sending them
        // a byte at a time would hold the sync for ever): past it, the connection is cut.
        val expired = java.util.concurrent.atomic.AtomicBoolean(false)
        val watchdog = java.util.Timer(true)
        watchdog.schedule(
            object : java.util.TimerTask() {
                override fun run() {
                    expired.set(true)
                    connection.disconnect()
                }
            },
            exchangeTimeoutMillis,
        )
        try {
            connection.requestMethod = "POST"
            // A redirect is not followed: the token goes to the hub's own address only (not to
            // another host, nor to http after https).
            connection.instanceFollowRedirects = false
            connection.doOutput = true
            connection.connectTimeout = connectTimeoutMillis
            connection.readTimeout = readTimeoutMillis
            connection.setFixedLengthStreamingMode(request.size)
            connection.setRequestProperty("Authorization", authorization)
            connection.setRequestProperty("Content-Type", "application/octet-stream")
            val started = System.nanoTime()
            connection.outputStream.use { it.write(request) }
            val status = connection.responseCode
            val type = connection.contentType.orEmpty().substringBefore(';').trim()
            if (status in 200..299) {
                val body = connection.inputStream.use { readBounded(it, MAX_ANSWER_BYTES, started) }
                if (type.isNotEmpty() && type != "application/octet-stream") {
                    throw notTheHub(status)
                }
                return body
            }
            if (status == 413 && type == "application/octet-stream") {
                // An attachment over the hub's limits: the body is the refusal, with its
                // figures, for the session to record.
                return connection.errorStream?.use { readBounded(it, MAX_ERROR_BYTES, started) } ?: ByteArray(0)
            }
            // The hub's refusals are JSON: a 401 or a 403 in another form is a portal's or a
            // proxy's, which must not read as a token to reissue or a right withheld.
            if (status in setOf(401, 403, 407, 511) && type.isNotEmpty() && type != "application/json") {
                throw notTheHub(status)
            }
            if (status in 300..399) {
                // Where it pointed, its scheme and host only (a portal's path may carry anything).
                val target = connection.getHeaderField("Location")?.let { location ->
                    runCatching { URL(url, location) }.getOrNull()?.let { ": ${it.protocol}://${it.authority}" }
                }.orEmpty()
                throw TransportException.Http(status, REDIRECTED + target)
            }
            val body = connection.errorStream?.use { readBounded(it, MAX_ERROR_BYTES, started) }
                ?.toString(Charsets.UTF_8).orEmpty()
            if (status == 403 && wipeRequested(body)) {
                // The hub revoked this device: the app must wipe the profile, not retry.
                // With the order the hub signed, which the store checks before it wipes.
                throw TransportException.DeviceRevoked(hubMessage(body), wipeOrder(body))
            }
            // The JDK keeps no body of a 401 sent in streaming mode: the status line says it.
            val reason = hubMessage(body).ifEmpty { connection.responseMessage.orEmpty() }
            throw TransportException.Http(status, reason)
        } catch (e: IOException) {
            if (aborted) throw cancelled()
            if (expired.get()) throw tooSlow()
            // An interrupted thread stays interrupted: its executor or worker is told.
            if (e is java.io.InterruptedIOException && e !is java.net.SocketTimeoutException) {
                Thread.currentThread().interrupt()
            }
            throw TransportException.Unreachable(networkFailure(e))
        } finally {
            watchdog.cancel()
            current = null
            connection.disconnect()
        }
    }

    /**
     * The body of an answer, read up to [limit] bytes and until [exchangeTimeoutMillis] after
     * [started]: a larger or endless body, or one trickled a byte at a time, is not the hub's.
     */
    private fun readBounded(stream: InputStream, limit: Int, started: Long): ByteArray {
        val out = ByteArrayOutputStream()
        val buffer = ByteArray(64 * 1024)
        while (true) {
            if (System.nanoTime() - started > exchangeTimeoutMillis * 1_000_000L) throw tooSlow()
            val n = stream.read(buffer)
            if (n < 0) return out.toByteArray()
            if (out.size() + n > limit) {
                throw TransportException.Unreachable(
                    "an answer larger than any hub's ($limit bytes) was not read: something on the way answered in the hub's place",
                )
            }
            out.write(buffer, 0, n)
        }
    }

    /**
     * Why the hub could not be reached, in words the catalogues translate (the JDK's own
     * message, `java.net.ConnectException: Connection refused`, would reach French users as it
     * is); else the failure's type.
     */
    private fun networkFailure(e: IOException): String = when (e) {
        is java.net.UnknownHostException -> "the hub's address was not found: no network, or a wrong address"
        is java.net.NoRouteToHostException -> NO_ROUTE
        // Linux says a network unreachable in a ConnectException's message, not its type.
        is java.net.ConnectException ->
            if (e.message.orEmpty().contains("unreachable", ignoreCase = true)) {
                NO_ROUTE
            } else {
                "the hub's address refused the connection: is the hub running, at this address?"
            }
        is java.net.SocketTimeoutException -> "no answer from the hub in time: the link is too slow, or down"
        is javax.net.ssl.SSLException ->
            "the hub's certificate was not accepted (a portal on the way, or a wrong address?)"
        // A reset, a broken pipe, an end of stream before the status line or the body's end.
        is java.net.SocketException, is java.io.EOFException -> "the hub's answer was cut on the way"
        else -> "the network failed: ${e.javaClass.simpleName}"
    }

    private fun cancelled() = TransportException.Unreachable("the sync was cancelled on this device")

    private fun tooSlow() = TransportException.Unreachable(
        "the hub's answer did not come whole in time: the link is too slow, or something on the way holds it back",
    )

    private fun notTheHub(status: Int) = TransportException.Unreachable(
        "the network answered $status in the hub's place, not with its message: a Wi-Fi or a proxy that asks to " +
            "sign in first? Nothing was lost",
    )

    private companion object {
        /** Why a redirect was not followed; where it pointed follows. The catalogues' words. */
        const val REDIRECTED = "the hub's address answered with a redirect, not followed (the device's token goes " +
            "to the hub's own address only; set the hub's URL to the address it serves)"

        const val NO_ROUTE = "no route to the hub: the device has no network"

        /** A sync answer is as large as its request asks (a few MiB at most), a chunk 256 KiB. */
        const val MAX_ANSWER_BYTES = 64 * 1024 * 1024

        /** An error's body is a line of JSON. */
        const val MAX_ERROR_BYTES = 64 * 1024
    }

    /** A revoked device is answered 403 with `{"error": "...", "wipe": true}`. */
    private fun wipeRequested(body: String): Boolean =
        Regex("\"wipe\"\\s*:\\s*true").containsMatchIn(body)

    /** The hub's signed order to wipe, `"order": "<hex>"` of its revoked answer; empty if none. */
    private fun wipeOrder(body: String): String =
        Regex("\"order\"\\s*:\\s*\"([0-9a-fA-F]*)\"").find(body)?.groupValues?.get(1) ?: ""

    /** The hub's errors are JSON `{"error": "..."}`; the text names the problem, never content. */
    private fun hubMessage(body: String): String =
        Regex("\"error\"\\s*:\\s*\"((?:[^\"\\\\]|\\\\.)*)\"").find(body)?.groupValues?.get(1) ?: ""
}
