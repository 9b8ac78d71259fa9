package org.vigie

import org.vigie.core.*
import java.io.File
import java.util.UUID

/** What scripts/test-bindings.sh passes: a real hub on 127.0.0.1 and its users. */
object Env {
    private fun env(name: String): String =
        System.getenv(name) ?: error("$name is not set: run scripts/test-bindings.sh")

    val hubUrl get() = env("VIGIE_HUB_URL")
    /** A community monitor of CI-R1-D1-C01. */
    val monitorUser get() = env("VIGIE_MONITOR_USER")
    /** A supervisor of region CI-R1. */
    val supervisorUser get() = env("VIGIE_SUPERVISOR_USER")

    /** Runs `vigie <args> --data <the hub's data>` while the hub runs; returns its output. */
    fun admin(vararg args: String): String {
        val process = ProcessBuilder(listOf(env("VIGIE_BIN")) + args + listOf("--data", env("VIGIE_HUB_DATA")))
            .redirectError(ProcessBuilder.Redirect.INHERIT)
            .start()
        val out = process.inputStream.bufferedReader().readText().trim()
        check(process.waitFor() == 0) { "vigie ${args.joinToString(" ")} failed" }
        return out
    }

    /** A new device of `user`: its enrolment token. */
    fun enrol(user: String): String = admin("device", "enrol", "--user", user)

    /** A fresh path for a store file. */
    fun storePath(name: String): String {
        val dir = File(env("VIGIE_TEST_DIR"), UUID.randomUUID().toString())
        dir.mkdirs()
        return File(dir, name).path
    }
}

/**
 * Devices of the hub's users, enrolled for one test (JUnit makes a test class instance per
 * test, each with its own `Devices`): the hub binds a device's keys at its first sync, so every
 * store that syncs needs a device of its own. Each is enrolled on first use.
 */
class Devices {
    /** A device of the community monitor. */
    val monitorToken by lazy { Env.enrol(Env.monitorUser) }
    /** Another device of the same monitor, for the README's quick start. */
    val quickstartToken by lazy { Env.enrol(Env.monitorUser) }
    /** A device of the supervisor. */
    val supervisorToken by lazy { Env.enrol(Env.supervisorUser) }
    /** A device of the monitor that the hub has revoked. */
    val revokedToken by lazy {
        Env.enrol(Env.monitorUser).also { Env.admin("device", "revoke", "--device", parseEnrolmentToken(it).deviceId) }
    }
}

/** The store once synced with the hub: enrolled (its certificate, the other devices'), as bundles and peers need. */
fun VigieStore.synced(token: String): VigieStore {
    syncWith(HubHttpTransport(Env.hubUrl, token), null)
    return this
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
