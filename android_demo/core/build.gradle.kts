// Pure Kotlin, no Android: manifest parsing, Pillow-exact preprocessing, top-k. `gradle :core:test` runs the
// golden-vector tests against ../demo_golden (the same tests core/run_jvm_tests.sh runs without Gradle).
plugins {
    id("org.jetbrains.kotlin.jvm")
}

kotlin {
    compilerOptions {
        jvmTarget.set(org.jetbrains.kotlin.gradle.dsl.JvmTarget.JVM_1_8)
    }
}

java {
    sourceCompatibility = JavaVersion.VERSION_1_8
    targetCompatibility = JavaVersion.VERSION_1_8
}

dependencies {
    testImplementation("junit:junit:4.13.2")
}

tasks.test {
    systemProperty("vitedge.golden", rootProject.file("../demo_golden").absolutePath)
    testLogging {
        events("passed", "failed")
        showStandardStreams = true
    }
}
