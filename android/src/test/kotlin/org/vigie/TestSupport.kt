package org.vigie

import org.vigie.core.*
import java.io.File
import java.util.UUID

/** What scripts/test-bindings.sh passes: a real hub on 127.0.0.1 and enrolment tokens. */
object Env {
    private fun env(name: String): String =
        System.getenv(name) ?: error("$name is not set: run scripts/test-bindings.sh")

    val hubUrl get() = env("VIGIE_HUB_URL")
    /** A community monitor of CI-R1-D1-C01. */
    val monitorToken get() = env("VIGIE_MONITOR_TOKEN")
    /** Another device of the same monitor, for the README's quick start. */
    val quickstartToken get() = env("VIGIE_QUICKSTART_TOKEN")
    /** A supervisor of region CI-R1. */
    val supervisorToken get() = env("VIGIE_SUPERVISOR_TOKEN")
    /** A device of the monitor that the hub has revoked. */
    val revokedToken get() = env("VIGIE_REVOKED_TOKEN")

    /** A fresh path for a store file. */
    fun storePath(name: String): String {
        val dir = File(env("VIGIE_TEST_DIR"), UUID.randomUUID().toString())
        dir.mkdirs()
        return File(dir, name).path
    }
}

val community = Area(country = "CI", region = "CI-R1", district = "CI-R1-D1", community = "CI-R1-D1-C01")

/** A 256-bit key, as the Android Keystore would give one. */
fun key(seed: Int) = ByteArray(32) { (seed * 31 + it).toByte() }

fun newUserId(): String = UUID.randomUUID().toString()

/**
 * The store acting as `role` (as the hub tells a device at a sync), through the library's test
 * hook: for the tests of the workflow without a hub.
 */
fun VigieStore.asRole(role: Role, areas: List<String> = listOf("CI-R1")): VigieStore {
    debugAssumeRole(role, areas)
    return this
}
