package dev.vitedge.core

import java.nio.ByteBuffer
import java.nio.ByteOrder

/** One image of a self-check: its encoded file and its reference tensor (shape, sha256, sample grid). */
class SelfCheckImage(
    val name: String,
    val file: String,
    val what: String,
    val encodedAs: String,
    val shape: List<Int>,
    val sha256: String,
    val rows: IntArray,
    val cols: IntArray,
    val offset: Int
) {
    val sampleCount: Int get() = 3 * rows.size * cols.size
}

/**
 * An artifact's self-check (`selfcheck/`, schema `vitedge.selfcheck/1`), as `vitedge convert` writes it
 * (`vitedge.runtime.selfcheck_files` documents the format): encoded images, per image the reference
 * tensor's sha256 and its values on a grid (`samples.f32`), and the torch fp32 reference outputs.
 */
class SelfCheckData(
    val preprocess: PreprocessSpec,
    val images: List<SelfCheckImage>,
    val samples: FloatArray,
    val logits: List<FloatArray>,
    val embedding: List<FloatArray>?,
    val reference: String,
    val tensorTolerance: Double,
    val modelTolerance: Map<String, Double?>,
    private val folder: String,
    private val read: (String) -> ByteArray
) {
    /** The encoded bytes of [image], as the artifact holds them. */
    fun imageBytes(image: SelfCheckImage): ByteArray = read("$folder/${image.file}")

    /** The reference values of [image] at its grid: channel, then row, then column. */
    fun samplesOf(image: SelfCheckImage): FloatArray = samples.copyOfRange(image.offset, image.offset + image.sampleCount)

    companion object {
        const val SCHEMA = "vitedge.selfcheck/1"
        private const val REGENERATE = "re-create the artifact with vitedge convert to write a fresh self-check"

        /**
         * The manifest's self-check, read through [read] (a path relative to the artifact folder ->
         * its bytes), or null when the artifact has none (made before vitedge wrote self-checks).
         * Checksums are [ArtifactFiles.verify]'s job; files the index names must be ones the manifest lists.
         */
        fun read(manifest: Manifest, read: (String) -> ByteArray): SelfCheckData? {
            val listed = manifest.selfcheck ?: return null
            val folder = listed.index.substringBeforeLast('/', "")
            val paths = listed.files.map { it.path }.toSet()
            fun file(name: String): String {
                val path = if (folder.isEmpty()) name else "$folder/$name"
                if (path !in paths) throw ManifestException("${listed.index}: '$name' is not one of the self-check files the manifest lists; $REGENERATE")
                return name
            }
            try {
                val index = JsonObject.parse(read(listed.index).toString(Charsets.UTF_8), listed.index)
                if (index.map["schema"] != SCHEMA) throw ManifestException("${listed.index}: not a $SCHEMA index; $REGENERATE")
                fun floats(entry: JsonObject): FloatArray = floatsOf(read("$folder/${file(entry.string("file"))}"))
                val images = index.objects("images").map { image(it, ::file) }
                val logits = rows(floats(index.obj("logits")), index.obj("logits").ints("shape"))
                val embedding = index.objOrNull("embedding")?.let { rows(floats(it), it.ints("shape")) }
                val tolerance = index.obj("tolerance")
                val model = tolerance.obj("model")
                val data = SelfCheckData(
                    preprocess = PreprocessSpec.fromJson(index.obj("preprocess")),
                    images = images,
                    samples = floats(index.obj("samples")),
                    logits = logits,
                    embedding = embedding,
                    reference = index.string("reference"),
                    tensorTolerance = tolerance.obj("preprocessing").double("max_abs_diff"),
                    modelTolerance = model.keys.associateWith { if (model.isNull(it)) null else model.double(it) },
                    folder = folder,
                    read = read
                )
                data.check(listed.index)
                return data
            } catch (error: JsonException) {
                throw ManifestException("${listed.index}: malformed self-check (${error.message}); $REGENERATE")
            }
        }

        private fun image(json: JsonObject, file: (String) -> String): SelfCheckImage {
            val tensor = json.obj("tensor")
            return SelfCheckImage(
                name = json.string("name"),
                file = file(json.string("file")),
                what = if (json.has("what")) json.string("what") else "",
                encodedAs = json.string("encoded_as"),
                shape = tensor.ints("shape").map { it ?: throw JsonException("${tensor.where}: shape has a null") },
                sha256 = tensor.string("sha256"),
                rows = tensor.ints("rows").map { it ?: 0 }.toIntArray(),
                cols = tensor.ints("cols").map { it ?: 0 }.toIntArray(),
                offset = tensor.int("offset")
            )
        }

        /** Little-endian float32 bytes as floats. */
        fun floatsOf(bytes: ByteArray): FloatArray {
            val buffer = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer()
            return FloatArray(buffer.remaining()).also { buffer.get(it) }
        }

        private fun rows(values: FloatArray, shape: List<Int?>): List<FloatArray> {
            val count = shape.getOrNull(0) ?: throw JsonException("shape $shape has no rows")
            val width = shape.getOrNull(1) ?: throw JsonException("shape $shape has no columns")
            if (values.size != count * width) throw JsonException("${values.size} floats for shape $shape")
            return (0 until count).map { values.copyOfRange(it * width, (it + 1) * width) }
        }
    }

    private fun check(where: String) {
        val problems = ArrayList<String>()
        if (images.isEmpty()) problems.add("no images")
        if (logits.size != images.size) problems.add("${logits.size} logits rows for ${images.size} images")
        if (embedding != null && embedding.size != images.size) problems.add("${embedding.size} embedding rows for ${images.size} images")
        for (image in images) {
            if (image.shape.size != 3 || image.offset < 0 || image.offset + image.sampleCount > samples.size) {
                problems.add("${image.name}: tensor shape ${image.shape} or samples out of range")
            }
        }
        if (problems.isNotEmpty()) throw ManifestException("$where: inconsistent self-check (${problems.joinToString("; ")}); $REGENERATE")
    }
}
