package dev.vitedge.core

import java.io.File
import java.nio.ByteBuffer
import java.nio.ByteOrder

/**
 * The golden vectors the Python runtime writes (`python -m tests.golden_vectors demo_golden`):
 * the repository's `demo_golden/`, found from the `vitedge.golden` system property or by walking up
 * from the working directory.
 */
object Golden {
    val dir: File by lazy {
        val property = System.getProperty("vitedge.golden")
        if (property != null) return@lazy File(property)
        var folder: File? = File(System.getProperty("user.dir")).absoluteFile
        while (folder != null) {
            val candidate = File(folder, "demo_golden")
            if (File(candidate, "index.json").isFile) return@lazy candidate
            folder = folder.parentFile
        }
        throw IllegalStateException("demo_golden/index.json not found above ${System.getProperty("user.dir")}; set -Dvitedge.golden=DIR")
    }

    val index: JsonObject by lazy { read(File(dir, "index.json")) }

    val tensorTolerance: Double get() = index.obj("tolerance").double("tensor_abs")

    val scoreTolerance: Double get() = index.obj("tolerance").double("score_abs")

    fun imageCases(): List<String> = index.list("images").map { it as String }

    fun topkCases(): List<String> = index.list("topk").map { it as String }

    /** Artifact-shaped folders with a self-check, written by the same writer as `vitedge convert`'s. */
    fun selfcheckCases(): List<String> = index.list("selfcheck").map { it as String }

    fun read(file: File): JsonObject = JsonObject.parse(file.readText(Charsets.UTF_8), file.path)

    fun floats(file: File): FloatArray {
        val buffer = ByteBuffer.wrap(file.readBytes()).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer()
        val out = FloatArray(buffer.remaining())
        buffer.get(out)
        return out
    }

    fun image(folder: File, entry: JsonObject): RgbImage =
        RgbImage(entry.int("width"), entry.int("height"), File(folder, entry.string("file")).readBytes())
}
