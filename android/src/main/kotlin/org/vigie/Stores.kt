package org.vigie

import org.vigie.core.*
import kotlinx.coroutines.CoroutineDispatcher
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.channels.awaitClose
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.buffer
import kotlinx.coroutines.flow.callbackFlow
import kotlinx.coroutines.withContext
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
    awaitClose { removeChangeListener(token) }
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

/** Like [syncWithHub], through any [SyncTransport] (the blocking form is [VigieStore.syncWith]). */
suspend fun VigieStore.sync(
    transport: SyncTransport,
    dispatcher: CoroutineDispatcher = Dispatchers.IO,
    attachments: AttachmentSync? = null,
    onProgress: ((SyncSummary) -> Unit)? = null,
): SyncSummary = withContext(dispatcher) {
    val progress = onProgress?.let { callback ->
        object : SyncProgressListener {
            override fun onProgress(summary: SyncSummary) = callback(summary)
        }
    }
    syncWith(transport, progress, attachments)
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
