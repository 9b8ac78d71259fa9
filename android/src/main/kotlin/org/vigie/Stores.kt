package org.vigie

import org.vigie.core.*
import kotlinx.coroutines.CancellationException
import kotlinx.coroutines.CoroutineDispatcher
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.async
import kotlinx.coroutines.coroutineScope
import kotlinx.coroutines.channels.awaitClose
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.buffer
import kotlinx.coroutines.flow.callbackFlow
import kotlinx.coroutines.channels.Channel

/**
 * Kotlin conveniences over the generated bindings. The generated [VigieStore] is already
 * [AutoCloseable]: `openStore(...).use { store -> ... }` closes the file at the end.
 *
 * Every [VigieStore] call blocks on SQLite: call it from `Dispatchers.IO`, a worker, or with the
 * `suspend` helpers below.
 */

/** What a change listener is told, as one type for a [Flow]. */
sealed interface StoreChange {
    /** One record written here, or merged from the hub. */
    data class Record(val change: RecordChange) : StoreChange

    /** Records merged in bulk from a bundle or a peer session (the core does not say which). */
    data class Bulk(val source: ChangeSource, val records: Long) : StoreChange
}

/**
 * The store's changes as a cold [Flow]: collecting registers a change listener, cancelling
 * removes it. Changes made before collection starts are not replayed.
 */
fun VigieStore.changes(): Flow<StoreChange> = callbackFlow {
    val token = addChangeListener(object : ChangeListener {
        override fun onChange(change: RecordChange) {
            trySend(StoreChange.Record(change))
        }

        override fun onBulkChange(source: ChangeSource, records: Long) {
            trySend(StoreChange.Bulk(source, records))
        }
    })
    awaitClose {
        // A store closed first (the user signed out, then the screen went away) has no
        // listener left to remove: its `close()` released them with the object.
        try {
            removeChangeListener(token)
        } catch (closed: IllegalStateException) {
        }
    }
}.buffer(Channel.UNLIMITED)

/**
 * Runs a whole sync session with the hub on [dispatcher] (default [Dispatchers.IO]) through
 * [HubHttpTransport]: records, then attachments' bytes as [attachments] says (null: every one,
 * on any link; pass `AttachmentSync(DownloadPolicy.WIFI_ONLY, unmetered)` to spare a metered
 * link). [onProgress] is told after each exchange, on that dispatcher's thread, between the
 * session's steps. The session holds the store only for each step, never while the link is
 * waited on: the app's other calls (a form saved meanwhile) wait for one step at most.
 */
suspend fun VigieStore.syncWithHub(
    hubUrl: String,
    token: String,
    dispatcher: CoroutineDispatcher = Dispatchers.IO,
    attachments: AttachmentSync? = null,
    onProgress: ((SyncSummary) -> Unit)? = null,
): SyncSummary = sync(HubHttpTransport(hubUrl, token), dispatcher, attachments, onProgress)

/**
 * Like [syncWithHub], through any [SyncTransport] (the blocking form is [VigieStore.syncWith]).
 *
 * Cancelling the calling coroutine (`withTimeout`, a WorkManager stop) ends the session at once:
 * the exchange under way is cut ([HubHttpTransport] closes its connection; the thread of an
 * app's own transport is interrupted), no other is sent, and the call throws
 * [CancellationException] once the session's current step is done (a step takes a moment;
 * nothing is lost: the next session resumes where this one stopped).
 */
suspend fun VigieStore.sync(
    transport: SyncTransport,
    dispatcher: CoroutineDispatcher = Dispatchers.IO,
    attachments: AttachmentSync? = null,
    onProgress: ((SyncSummary) -> Unit)? = null,
): SyncSummary = coroutineScope {
    val progress = onProgress?.let { callback ->
        object : SyncProgressListener {
            override fun onProgress(summary: SyncSummary) = callback(summary)
        }
    }
    val cancellable = CancellableTransport(transport)
    val session = async(dispatcher) {
        try {
            syncWith(cancellable, progress, attachments)
        } catch (e: VigieException) {
            // Ended by the cancellation: the caller hears of the cancellation, not of the link.
            if (cancellable.cancelled) throw CancellationException("sync cancelled") else throw e
        }
    }
    try {
        session.await()
    } catch (e: CancellationException) {
        // The session runs on in the core until its next exchange: make that one fail now.
        cancellable.cancel()
        throw e
    }
}

/**
 * A transport that refuses every exchange once [cancel] is called, and cuts the one under way:
 * [HubHttpTransport.abort], or an interrupt of the thread an app's own transport waits on.
 */
private class CancellableTransport(private val inner: SyncTransport) : SyncTransport {
    @Volatile
    var cancelled = false
        private set

    @Volatile
    private var exchanging: Thread? = null

    fun cancel() {
        cancelled = true
        if (inner is HubHttpTransport) inner.abort() else exchanging?.interrupt()
    }

    private fun <T> unlessCancelled(exchange: () -> T): T {
        if (cancelled) throw TransportException.Unreachable(CANCELLED)
        exchanging = Thread.currentThread()
        try {
            return exchange()
        } catch (e: InterruptedException) {
            throw TransportException.Unreachable(CANCELLED)
        } finally {
            exchanging = null
            // The interrupt was this session's own: the thread goes back to its pool clean.
            if (cancelled) Thread.interrupted()
        }
    }

    override fun exchange(request: ByteArray): ByteArray = unlessCancelled { inner.exchange(request) }

    private companion object {
        /** The words every transport says, which the catalogues translate. */
        const val CANCELLED = "the sync was cancelled on this device"
    }

    override fun exchangeAttachment(request: ByteArray): ByteArray =
        unlessCancelled { inner.exchangeAttachment(request) }
}

/**
 * Opens the store of an enrolled device: its ids come from the enrolment token. Blocks (opening
 * and migrating the file).
 */
fun openEnrolledStore(path: String, key: ByteArray, token: String): VigieStore {
    val enrolment = parseEnrolmentToken(token)
    return openStore(path, key, enrolment.userId, enrolment.deviceId)
}

/**
 * Every row of a walk over a query's pages (`store.childCasePages(query)`, ...), read one page at
 * a time as the sequence is consumed. Each page read blocks on SQLite.
 */
fun VisitPages.rows(): Sequence<VisitSummary> = pageRows(::next)

fun ChildCasePages.rows(): Sequence<ChildCaseSummary> = pageRows(::next)

fun WorkplacePages.rows(): Sequence<WorkplaceSummary> = pageRows(::next)

fun AlertPages.rows(): Sequence<Alert> = pageRows(::next)

fun DuePages.rows(): Sequence<DueItem> = pageRows(::next)

private fun <T> pageRows(next: () -> List<T>): Sequence<T> = sequence {
    while (true) {
        val page = next()
        if (page.isEmpty()) break
        yieldAll(page)
    }
}
