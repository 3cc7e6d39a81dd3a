package dev.vitedge.core

import java.nio.ByteBuffer
import java.nio.ByteOrder
import java.security.MessageDigest
import java.util.Locale

/** What the model gives for one input: the logits, and the embedding when the runner reads it (null: not compared). */
class ModelOutputs(val logits: FloatArray, val embedding: FloatArray? = null)

/** A stage's outcome; [word] is what `vitedge verify` prints. */
enum class Status(val word: String) { PASSED("OK"), FAILED("FAILED"), NOT_CHECKED("not checked") }

/** One stage's verdict (`preprocessing` or `model`), a line as `vitedge verify` prints it. */
class Verdict(val stage: String, val status: Status, val summary: String) {
    val line: String get() = "$stage parity: ${status.word}: $summary"
}

/** Both verdicts of a self-check, with the preprocessing numbers behind the first. */
class SelfCheckReport(
    val preprocessing: Verdict,
    val model: Verdict,
    val images: Int,
    val bitIdentical: Int,
    val maxAbsDiff: Double
) {
    val ok: Boolean get() = preprocessing.status != Status.FAILED && model.status != Status.FAILED

    fun lines(): List<String> = listOf(preprocessing.line, model.line)
}

/**
 * The artifact's self-check, as `vitedge verify` runs it (`vitedge.runtime.selfcheck`): decode each
 * image with the platform's decoder, preprocess it with this core ([Preprocessor]) and compare the tensor
 * with the conversion's (sha256, then the sampled values: at most [SelfCheckData.tensorTolerance] apart);
 * then run the model on the reference inputs and compare its outputs with torch's by the tolerance the
 * artifact's precision passed at conversion. A preprocessing miss says which image, by how much, and
 * what kind of difference it is, and the model is still judged on the reference inputs when it can be.
 */
object SelfCheck {
    const val NO_SELFCHECK = "this artifact has no self-check (made before vitedge wrote them); re-create it with vitedge convert to add one"

    private class ImageParity(
        val image: SelfCheckImage,
        val tensor: FloatArray?,
        val maxAbsDiff: Double?,
        val bitIdentical: Boolean,
        val passed: Boolean,
        val problem: String? = null
    )

    /**
     * Run the self-check of [manifest]'s artifact; null when it has none ([NO_SELFCHECK] says what to do).
     *
     * @param read a path relative to the artifact folder -> its bytes
     * @param decode encoded PNG/JPEG bytes -> upright RGB pixels, alpha dropped (the platform's decoder)
     * @param preprocessor the preprocessing under test (the app's; default: the manifest's spec)
     * @param model runs one input tensor (the manifest's layout, no batch) through the model; null: not checked
     */
    fun run(
        manifest: Manifest,
        read: (String) -> ByteArray,
        decode: (ByteArray) -> RgbImage,
        preprocessor: Preprocessor = Preprocessor(manifest.preprocess),
        model: ((FloatArray) -> ModelOutputs)? = null
    ): SelfCheckReport? {
        val data = SelfCheckData.read(manifest, read) ?: return null
        val parities = data.images.map { parity(data, it, preprocessor, decode) }
        val inputs = modelInputs(data, parities, preprocessor, decode)
        val diffs = parities.mapNotNull { it.maxAbsDiff }
        // (loops and folds rather than max()/maxBy(): their signatures changed between Kotlin 1.3 and 2.x)
        return SelfCheckReport(
            preprocessing = preprocessingVerdict(data, parities, preprocessor.spec),
            model = modelVerdict(data, inputs, model, isolated = parities.any { !it.passed }),
            images = parities.size,
            bitIdentical = parities.count { it.bitIdentical },
            maxAbsDiff = if (diffs.isEmpty()) Double.NaN else diffs.fold(0.0) { a, b -> Math.max(a, b) }
        )
    }

    /** sha256 of a tensor's little-endian float32 bytes, as the Python runtime computes it. */
    fun tensorSha256(tensor: FloatArray): String {
        val buffer = ByteBuffer.allocate(tensor.size * 4).order(ByteOrder.LITTLE_ENDIAN)
        buffer.asFloatBuffer().put(tensor)
        return MessageDigest.getInstance("SHA-256").digest(buffer.array()).joinToString("") { String.format("%02x", it) }
    }

    /** The values of a tensor (shape [shape] in [layout]) at the grid: channel, then row, then column. */
    fun sample(tensor: FloatArray, shape: List<Int>, layout: Layout, rows: IntArray, cols: IntArray): FloatArray {
        val height = if (layout == Layout.NCHW) shape[1] else shape[0]
        val width = if (layout == Layout.NCHW) shape[2] else shape[1]
        val out = FloatArray(3 * rows.size * cols.size)
        var k = 0
        for (c in 0 until 3) for (r in rows) for (col in cols) {
            out[k++] = if (layout == Layout.NCHW) tensor[(c * height + r) * width + col] else tensor[(r * width + col) * 3 + c]
        }
        return out
    }

    private fun parity(data: SelfCheckData, image: SelfCheckImage, preprocessor: Preprocessor, decode: (ByteArray) -> RgbImage): ImageParity {
        val pixels = try {
            preprocessor.pixels(decode(data.imageBytes(image)))
        } catch (error: Exception) {
            return ImageParity(image, null, null, false, false, "cannot be decoded here (${error.message ?: error})")
        }
        val tensor = FloatArray(pixels.width * pixels.height * 3).also { preprocessor.writeTensor(pixels, it) }
        val shape = if (preprocessor.spec.layout == Layout.NCHW) listOf(3, pixels.height, pixels.width) else listOf(pixels.height, pixels.width, 3)
        if (shape != image.shape) {
            return ImageParity(image, tensor, null, false, false, "tensor shape $shape instead of ${image.shape}: check size, crop_size and layout")
        }
        if (tensorSha256(tensor) == image.sha256) return ImageParity(image, tensor, 0.0, true, true)
        val actual = sample(tensor, shape, preprocessor.spec.layout, image.rows, image.cols)
        val reference = data.samplesOf(image)
        var diff = 0.0
        for (i in actual.indices) diff = Math.max(diff, Math.abs(actual[i].toDouble() - reference[i].toDouble()))
        return ImageParity(image, tensor, diff, false, diff <= data.tensorTolerance)
    }

    private fun preprocessingVerdict(data: SelfCheckData, parities: List<ImageParity>, spec: PreprocessSpec): Verdict {
        val failed = parities.filter { !it.passed }
        val identical = parities.count { it.bitIdentical }
        if (failed.isEmpty()) {
            if (identical == parities.size) return Verdict("preprocessing", Status.PASSED, "${parities.size} images, tensors bit-identical to the conversion's")
            val worst = parities.mapNotNull { it.maxAbsDiff }.fold(0.0) { a, b -> Math.max(a, b) }
            return Verdict("preprocessing", Status.PASSED, "${parities.size} images, max |diff| ${g(worst)} <= ${g(data.tensorTolerance)} ($identical bit-identical)")
        }
        val worst = failed.sortedByDescending { it.maxAbsDiff ?: Double.POSITIVE_INFINITY }.first()
        val amount = worst.maxAbsDiff?.let { "max |diff| ${g(it)} > ${g(data.tensorTolerance)}" } ?: worst.problem
        val about = if (worst.image.what.isNotEmpty()) worst.image.what else worst.image.encodedAs
        return Verdict(
            "preprocessing", Status.FAILED,
            "this app's preprocessing differs from the conversion's on ${failed.size} of ${parities.size} images " +
                "(worst: ${worst.image.file}, $about: $amount); ${explain(data, parities, spec)}"
        )
    }

    private fun explain(data: SelfCheckData, parities: List<ImageParity>, spec: PreprocessSpec): String {
        val changed = specChanges(data.preprocess, spec)
        if (changed.isNotEmpty()) return "the preprocessing in use differs from the one the self-check was made with ($changed): restore it"
        val failed = parities.filter { !it.passed }
        if (failed.all { it.image.encodedAs == "JPEG" } && parities.any { it.image.encodedAs != "JPEG" }) {
            return "only JPEG images differ: this platform's JPEG decoder differs from Pillow's (libjpeg-turbo)"
        }
        val worst = failed.filter { it.maxAbsDiff != null }.sortedByDescending { it.maxAbsDiff!! }.firstOrNull()
            ?: return failed[0].problem ?: "check the preprocessing"
        val actual = sample(worst.tensor!!, worst.image.shape, spec.layout, worst.image.rows, worst.image.cols)
        return kindOfDifference(data.samplesOf(worst.image), actual)
    }

    /** Swapped channels, a per-channel scale/offset (mean/std/rescale) or a spatial change (resize), as advice. */
    fun kindOfDifference(reference: FloatArray, actual: FloatArray): String {
        val plane = reference.size / 3
        var swapped = true
        for (c in 0 until 3) for (i in 0 until plane) {
            if (Math.abs(actual[c * plane + i] - reference[(2 - c) * plane + i]) > 1e-5) swapped = false
        }
        if (swapped) return "the channels are swapped: check channel_order (RGB or BGR)"
        val affine = (0 until 3).all { c ->
            isAffine(reference.copyOfRange(c * plane, (c + 1) * plane), actual.copyOfRange(c * plane, (c + 1) * plane))
        }
        if (affine) return "the pixels are where they should be but their values are scaled or shifted per channel: check mean, std and rescale_factor"
        return "the values differ from position to position: check the resize (size, resample filter such as bilinear vs bicubic) and the center crop"
    }

    private fun isAffine(x: FloatArray, y: FloatArray): Boolean {
        val n = x.size.toDouble()
        var mx = 0.0
        var my = 0.0
        for (i in x.indices) {
            mx += x[i]
            my += y[i]
        }
        mx /= n
        my /= n
        var sxx = 0.0
        var sxy = 0.0
        for (i in x.indices) {
            sxx += (x[i] - mx) * (x[i] - mx)
            sxy += (x[i] - mx) * (y[i] - my)
        }
        val spread = range(x)
        if (spread == 0.0) return range(y) <= 1e-4
        val slope = sxy / sxx
        val offset = my - slope * mx
        var worst = 0.0
        for (i in x.indices) worst = Math.max(worst, Math.abs(slope * x[i] + offset - y[i]))
        return worst <= 1e-4 * Math.max(1.0, Math.abs(slope) * spread)
    }

    private fun range(values: FloatArray): Double {
        var low = Double.POSITIVE_INFINITY
        var high = Double.NEGATIVE_INFINITY
        for (v in values) {
            low = Math.min(low, v.toDouble())
            high = Math.max(high, v.toDouble())
        }
        return if (values.isEmpty()) 0.0 else high - low
    }

    /** `mean [0.485, 0.456, 0.406] (made with [0.5, 0.5, 0.5])` for each field that differs; empty when none does. */
    fun specChanges(made: PreprocessSpec, used: PreprocessSpec): String {
        val before = fields(made)
        val now = fields(used)
        return before.keys.filter { before[it] != now[it] }.joinToString(", ") { "$it ${now[it]} (made with ${before[it]})" }
    }

    private fun fields(spec: PreprocessSpec): Map<String, String> = linkedMapOf(
        "resize_mode" to spec.resizeMode.manifestName,
        "size" to (spec.size?.let { "[${it.height}, ${it.width}]" } ?: "None"),
        "shortest_edge" to spec.shortestEdge.toString(),
        "resample" to spec.resample.manifestName,
        "crop_size" to (spec.cropSize?.let { "[${it.height}, ${it.width}]" } ?: "None"),
        "rescale_factor" to (spec.rescaleFactor?.let { g(it) } ?: "None"),
        "mean" to (spec.mean?.joinToString(", ", "[", "]") { it.toString() } ?: "None"),
        "std" to (spec.std?.joinToString(", ", "[", "]") { it.toString() } ?: "None"),
        "channel_order" to (if (spec.bgr) "BGR" else "RGB"),
        "layout" to spec.layout.name,
        "normalization_in_model" to spec.normalizationInModel.toString()
    )

    /** Per image, what the model runs on: this app's tensor where it matches, else the recorded spec's when that is the reference. */
    private fun modelInputs(data: SelfCheckData, parities: List<ImageParity>, preprocessor: Preprocessor, decode: (ByteArray) -> RgbImage): List<FloatArray?> {
        val inputs = parities.map { if (it.passed) it.tensor else null }.toMutableList()
        if (inputs.all { it != null } || specChanges(data.preprocess, preprocessor.spec).isEmpty()) return inputs
        val recorded = Preprocessor(data.preprocess)
        for ((i, parity) in parities.withIndex()) {
            if (inputs[i] == null) {
                val again = parity(data, parity.image, recorded, decode)
                if (again.bitIdentical) inputs[i] = again.tensor
            }
        }
        return inputs
    }

    private fun modelVerdict(data: SelfCheckData, inputs: List<FloatArray?>, model: ((FloatArray) -> ModelOutputs)?, isolated: Boolean): Verdict {
        val available = inputs.indices.filter { inputs[it] != null }
        if (available.isEmpty()) {
            return Verdict("model", Status.NOT_CHECKED, "the reference inputs cannot be reproduced here, so the model cannot be checked apart from the preprocessing: fix the preprocessing first")
        }
        if (model == null) return Verdict("model", Status.NOT_CHECKED, "no model runner here (run the app's Self-test)")
        val outputs = available.map { model(inputs[it]!!) }
        val metrics = OutputMetrics.of(available.map { data.logits[it] }, outputs.map { it.logits },
            data.embedding?.let { rows -> available.map { rows[it] } },
            if (outputs.all { it.embedding != null }) outputs.map { it.embedding!! } else null)
        val failures = metrics.judge(data.modelTolerance)
        val where = "${available.size} image(s)" + (if (isolated) " fed the reference inputs" else "") + " vs ${data.reference}"
        if (failures.isNotEmpty()) {
            return Verdict("model", Status.FAILED, "$where: ${failures.joinToString("; ")}; the model's outputs differ on this device (another LiteRT version, delegate or accelerator?)")
        }
        val cleared = if (isolated) "; the model computes what torch did, the preprocessing above is what differs" else ""
        return Verdict("model", Status.PASSED, "$where: ${metrics.text()}$cleared")
    }

    /** Three significant digits, trailing zeros dropped, as Python's `:.3g` prints them (0.5, 1.48, 1e-05). */
    internal fun g(value: Double): String {
        val text = String.format(Locale.US, "%.3g", value)
        val mantissa = text.substringBefore('e')
        val exponent = if ('e' in text) "e" + text.substringAfter('e') else ""
        return (if ('.' in mantissa) mantissa.trimEnd('0').trimEnd('.') else mantissa) + exponent
    }
}

/** Top-1 agreement, min cosines and the largest logits difference relative to the largest reference logit. */
class OutputMetrics(val images: Int, val top1Agreement: Double, val minLogitsCosine: Double, val minEmbeddingCosine: Double?, val maxAbsDiff: Double) {
    /** The metrics that miss [tolerance] (the self-check's `tolerance.model`), as `name value (needs >= limit)`. */
    fun judge(tolerance: Map<String, Double?>): List<String> {
        val failures = ArrayList<String>()
        fun atLeast(name: String, value: Double?, key: String) {
            val limit = tolerance[key]
            if (value != null && limit != null && value < limit) failures.add("$name ${SelfCheck.g(value)} (needs >= $limit)")
        }
        atLeast("top-1 agreement", top1Agreement, "min_top1_agreement")
        atLeast("min logits cosine", minLogitsCosine, "min_logits_cosine")
        atLeast("min embedding cosine", minEmbeddingCosine, "min_embedding_cosine")
        val limit = tolerance["max_abs_diff"]
        if (limit != null && maxAbsDiff > limit) failures.add("max abs logits diff (relative) ${SelfCheck.g(maxAbsDiff)} (needs <= $limit)")
        return failures
    }

    fun text(): String = String.format(Locale.US, "top-1 agreement %.0f%%, min logits cosine %.6f", top1Agreement * 100, minLogitsCosine) +
        (minEmbeddingCosine?.let { String.format(Locale.US, ", min embedding cosine %.6f", it) } ?: "") +
        ", max logits diff ${SelfCheck.g(maxAbsDiff)} of the largest logit"

    companion object {
        fun of(reference: List<FloatArray>, logits: List<FloatArray>, referenceEmbedding: List<FloatArray>?, embedding: List<FloatArray>?): OutputMetrics {
            for ((i, row) in logits.withIndex()) {
                if (row.size != reference[i].size) throw ManifestException("the model gives ${row.size} logits, the self-check has ${reference[i].size}; the self-check belongs to another model")
            }
            var scale = 1.0
            for (row in reference) for (v in row) scale = Math.max(scale, Math.abs(v.toDouble()))
            var diff = 0.0
            for (i in logits.indices) for (j in logits[i].indices) diff = Math.max(diff, Math.abs(logits[i][j].toDouble() - reference[i][j]))
            val agree = logits.indices.count { argmax(logits[it]) == argmax(reference[it]) }
            val embeddingCosine = if (referenceEmbedding != null && embedding != null) {
                embedding.indices.map { cosine(referenceEmbedding[it], embedding[it]) }.fold(Double.POSITIVE_INFINITY) { a, b -> Math.min(a, b) }
            } else {
                null
            }
            val logitsCosine = logits.indices.map { cosine(reference[it], logits[it]) }.fold(Double.POSITIVE_INFINITY) { a, b -> Math.min(a, b) }
            return OutputMetrics(logits.size, agree.toDouble() / logits.size, logitsCosine, embeddingCosine, diff / scale)
        }

        /** The first index of the largest value (ties: the lower index, as numpy's argmax). */
        private fun argmax(values: FloatArray): Int {
            var best = 0
            for (i in values.indices) if (values[i] > values[best]) best = i
            return best
        }

        /** Cosine in double; two zero vectors are identical, one zero vector is orthogonal (as the runtime says). */
        fun cosine(a: FloatArray, b: FloatArray): Double {
            var dot = 0.0
            var na = 0.0
            var nb = 0.0
            for (i in a.indices) {
                dot += a[i].toDouble() * b[i]
                na += a[i].toDouble() * a[i]
                nb += b[i].toDouble() * b[i]
            }
            val norms = Math.sqrt(na) * Math.sqrt(nb)
            return if (norms > 0) dot / norms else if (dot == 0.0) 1.0 else 0.0
        }
    }
}
