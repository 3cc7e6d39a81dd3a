package dev.vitedge.core

/** A manifest that cannot be used: unknown schema, missing or malformed fields. The message says what to do. */
class ManifestException(message: String) : IllegalArgumentException(message)

/** The model's input tensor. [shape] has null for a dynamic batch; [scale]/[zeroPoint] describe a quantized input. */
class InputSpec(
    val name: String,
    val layout: Layout,
    val dtype: String,
    val shape: List<Int?>,
    val dynamicBatch: Boolean,
    val scale: Double?,
    val zeroPoint: Int?
)

/** How an output is quantized: real = scale * (q - zeroPoint). */
class Quantization(val dtype: String, val scale: Double, val zeroPoint: Int)

/** The model's outputs: the logits, and the pooled embedding when present. */
class OutputsSpec(
    val logits: String,
    val embedding: String?,
    val embeddingSize: Int?,
    val numClasses: Int?,
    val logitsQuantization: Quantization?
)

/** A file of the artifact, relative to its folder. */
class FileEntry(val path: String, val sha256: String, val bytes: Long)

/** The self-check the conversion wrote (`selfcheck/`): its index and every file with its checksum (see [SelfCheck]). */
class SelfCheckFiles(val index: String, val files: List<FileEntry>)

/**
 * An artifact's `manifest.json` (schema `vitedge.artifact/1`), the part the demos need. The Python
 * runtime (`vitedge.runtime.manifest`) is the reference: the same schema check, the same required
 * fields, the same preprocess validation, the same `LABEL_<i>` for a missing label.
 */
class Manifest(
    val schema: String,
    val format: String,
    val precision: String,
    val files: List<FileEntry>,
    val input: InputSpec,
    val outputs: OutputsSpec,
    val preprocess: PreprocessSpec,
    val labels: Map<Int, String>,
    val sourceModel: String,
    val weights: String,
    val entry: String?,
    val selfcheck: SelfCheckFiles? = null
) {
    /** What the app opens: [entry] (a Core ML .mlpackage folder) or the first file. */
    val modelFile: String get() = entry ?: files[0].path

    /** The model's files, then the self-check's: everything [ArtifactFiles.verify] checks and an import copies. */
    val allFiles: List<FileEntry> get() = files + (selfcheck?.files ?: emptyList())

    /** Random-init artifacts are for latency work; their predictions mean nothing. */
    val isRandomInit: Boolean get() = weights == "random-init"

    /** The label of class [index], `LABEL_<index>` when the manifest has none (as the runtime says). */
    fun label(index: Int): String = labels[index] ?: "LABEL_$index"

    companion object {
        const val SCHEMA_FAMILY = "vitedge.artifact"
        const val SCHEMA_VERSION = 1
        const val SCHEMA = "$SCHEMA_FAMILY/$SCHEMA_VERSION"
        val FORMATS = listOf("onnx", "tflite", "coreml", "openvino", "executorch")
        private const val RECREATE = "re-create the artifact with vitedge convert"

        /** Parse and validate the text of a manifest.json; [where] names it in errors. */
        fun parse(text: String, where: String = "manifest.json"): Manifest {
            val root = try {
                JsonObject.parse(text, where)
            } catch (error: JsonException) {
                throw ManifestException("${error.message}; $RECREATE")
            }
            checkSchema(root.map["schema"], where)
            val required = listOf("format", "precision", "files", "input", "outputs", "preprocess", "labels", "source", "conversion")
            val missing = required.filter { !root.has(it) }
            if (missing.isNotEmpty()) throw ManifestException("$where: missing fields ${missing.joinToString(", ")}; $RECREATE")
            val format = root.map["format"]
            if (format !is String || format !in FORMATS) {
                throw ManifestException(
                    "$where: unknown format '$format'; this demo knows ${FORMATS.joinToString(", ")}; update the demo if the artifact is newer"
                )
            }
            try {
                val labels = LinkedHashMap<Int, String>()
                val labelsObj = root.obj("labels")
                for ((key, value) in labelsObj.map) {
                    val index = key.toIntOrNull() ?: throw ManifestException("$where: label key '$key' is not a class index")
                    labels[index] = value as? String ?: throw ManifestException("$where: label $key is not a string")
                }
                val source = root.obj("source")
                return Manifest(
                    schema = root.string("schema"),
                    format = format,
                    precision = root.string("precision"),
                    files = root.objects("files").map { fileEntry(it) },
                    input = parseInput(root.obj("input")),
                    outputs = parseOutputs(root.obj("outputs")),
                    preprocess = PreprocessSpec.fromJson(root.obj("preprocess")),
                    labels = labels,
                    sourceModel = source.string("model"),
                    weights = source.string("weights"),
                    entry = root.stringOrNull("entry"),
                    selfcheck = if (root.has("selfcheck")) root.objOrNull("selfcheck")?.let { parseSelfCheck(it) } else null
                ).also {
                    if (it.files.isEmpty() && it.entry == null) throw ManifestException("$where: no model file listed; $RECREATE")
                }
            } catch (error: JsonException) {
                throw ManifestException("$where: malformed (${error.message}); $RECREATE")
            }
        }

        /** Accept this schema version and older ones of the family; refuse anything else clearly. */
        fun checkSchema(schema: Any?, where: String) {
            if (schema !is String || !schema.contains("/")) {
                throw ManifestException("$where: no 'schema' field naming a vitedge artifact; expected '$SCHEMA'")
            }
            val family = schema.substringBefore("/")
            val version = schema.substringAfter("/")
            if (family != SCHEMA_FAMILY || version.isEmpty() || !version.all { it in '0'..'9' }) {
                throw ManifestException("$where: unknown manifest schema '$schema'; expected '$SCHEMA'")
            }
            if (version.length > 9 || version.toInt() > SCHEMA_VERSION) {
                throw ManifestException("$where: manifest schema '$schema' is newer than this demo understands ('$SCHEMA'); update the demo")
            }
        }

        private fun fileEntry(json: JsonObject) = FileEntry(json.string("path"), json.string("sha256"), json.double("bytes").toLong())

        private fun parseSelfCheck(json: JsonObject): SelfCheckFiles {
            val files = json.objects("files").map { fileEntry(it) }
            val index = json.string("index")
            if (files.none { it.path == index }) throw JsonException("${json.where}: index '$index' is not one of its files")
            return SelfCheckFiles(index, files)
        }

        private fun parseInput(json: JsonObject): InputSpec = InputSpec(
            name = json.string("name"),
            layout = Layout.parse(json.string("layout")),
            dtype = json.string("dtype"),
            shape = json.ints("shape"),
            dynamicBatch = json.boolean("dynamic_batch"),
            scale = if (json.has("scale")) json.doubleOrNull("scale") else null,
            zeroPoint = if (json.has("zero_point")) json.intOrNull("zero_point") else null
        )

        private fun parseOutputs(json: JsonObject): OutputsSpec {
            val quantization = if (json.has("quantization")) json.objOrNull("quantization") else null
            val logits = quantization?.let { if (it.has("logits")) it.objOrNull("logits") else null }
            return OutputsSpec(
                logits = json.string("logits"),
                embedding = if (json.has("embedding")) json.stringOrNull("embedding") else null,
                embeddingSize = if (json.has("embedding_size")) json.intOrNull("embedding_size") else null,
                numClasses = if (json.has("num_classes")) json.intOrNull("num_classes") else null,
                logitsQuantization = logits?.let { Quantization(it.string("dtype"), it.double("scale"), it.int("zero_point")) }
            )
        }
    }
}
