package org.vigie

import org.vigie.core.*
import java.io.File
import java.util.UUID
import kotlin.test.assertEquals
import kotlin.test.assertTrue
import org.junit.Test
import org.vigie.readme.recordAFieldDay

/** README's Kotlin quick start, compiled from README.md by scripts/test-bindings.sh, run as is. */
class ReadmeQuickStartTest {
    private val devices = Devices()

    @Test
    fun theReadmeQuickStartRunsAsWritten() {
        val filesDir = File(Env.storePath("unused")).parentFile
        val workplaceId = UUID.randomUUID().toString()
        val summary = recordAFieldDay(filesDir, key(20), devices.quickstartToken, Env.hubUrl, workplaceId)
        assertEquals(2L, summary.accepted, "$summary")
        assertTrue(summary.refused.isEmpty())
    }
}
