// Vigie's Android library module. Before building it, run scripts/build-android.sh: it puts
// libvigie.so for each ABI in src/main/jniLibs and the generated Kotlin in generated/kotlin
// (both untracked; outside build/, so that `gradle clean` keeps them).
//
// Standalone: `gradle assembleRelease` in this directory (settings.gradle.kts declares the plugin
// versions). In an app: include this directory as a module; the app's plugin versions apply.
plugins {
    id("com.android.library")
    id("org.jetbrains.kotlin.android")
}

android {
    namespace = "org.vigie"
    compileSdk = 35

    defaultConfig {
        minSdk = 24
        consumerProguardFiles("consumer-rules.pro")
        testInstrumentationRunner = "androidx.test.runner.AndroidJUnitRunner"
    }

    sourceSets {
        getByName("main") {
            kotlin.srcDir("generated/kotlin")
            jniLibs.srcDir("src/main/jniLibs")
        }
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }

    buildTypes {
        release {
            isMinifyEnabled = false
        }
    }

    testOptions {
        unitTests.all { test ->
            // The JVM unit tests (src/test) load the host build of libvigie (scripts/test-bindings.sh
            // runs the same tests with kotlinc; see README). They need a hub: VIGIE_HUB_URL etc.
            val targetDir = System.getenv("CARGO_TARGET_DIR")
                ?: "${System.getProperty("user.home")}/.cache/vigie/target"
            test.systemProperty(
                "jna.library.path",
                (project.findProperty("vigie.hostLibDir") as String?) ?: "$targetDir/debug",
            )
        }
    }
}

kotlin {
    jvmToolchain(17)
}

dependencies {
    // uniffi's Kotlin calls the library through JNA; the aar carries JNA's own native parts
    // (5.17 or later: earlier ones crash on Android 15+ phones of 16 KB memory pages).
    implementation("net.java.dev.jna:jna:5.17.0@aar")
    // The generated code for Android uses @RequiresApi.
    implementation("androidx.annotation:annotation:1.9.1")
    // StoreChange flows and the suspending sync helpers.
    api("org.jetbrains.kotlinx:kotlinx-coroutines-core:1.9.0")

    // JVM unit tests against the host library: plain JNA (a jar, with its desktop natives).
    testImplementation("net.java.dev.jna:jna:5.17.0")
    testImplementation("junit:junit:4.13.2")
    testImplementation("org.jetbrains.kotlin:kotlin-test-junit")
}
