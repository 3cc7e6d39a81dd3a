package dev.vitedge.core

/** Tensor layout of the model input. */
enum class Layout {
    NCHW, NHWC;

    companion object {
        fun parse(name: String): Layout = values().firstOrNull { it.name == name }
            ?: throw JsonException("layout '$name' is not NCHW or NHWC")
    }
}

/** Pillow's resampling filters, by the names the manifest uses. [support] is Pillow's filter support. */
enum class Resample(val manifestName: String, val support: Double) {
    NEAREST("nearest", 0.0),
    BOX("box", 0.5),
    BILINEAR("bilinear", 1.0),
    HAMMING("hamming", 1.0),
    BICUBIC("bicubic", 2.0),
    LANCZOS("lanczos", 3.0);

    companion object {
        fun parse(name: String): Resample = values().firstOrNull { it.manifestName == name }
            ?: throw JsonException("resample '$name' is not one of ${values().joinToString(", ") { it.manifestName }}")
    }
}

/** How the resize step works: to an exact size, the shortest edge to a length, or not at all. */
enum class ResizeMode(val manifestName: String) {
    EXACT("exact"), SHORTEST_EDGE("shortest_edge"), NONE("none");

    companion object {
        fun parse(name: String): ResizeMode = values().firstOrNull { it.manifestName == name }
            ?: throw JsonException("resize_mode '$name' is not exact|shortest_edge|none")
    }
}

/** A (height, width) pair, in the manifest's order. */
data class Size(val height: Int, val width: Int)

/**
 * The manifest's `preprocess` block: how an RGB image becomes the input tensor. Mirrors
 * `vitedge.runtime.preprocess_spec.PreprocessSpec`, including its validation and its refusal of
 * unknown keys (a newer spec this demo does not understand must not be half-applied).
 */
class PreprocessSpec(
    val resizeMode: ResizeMode = ResizeMode.EXACT,
    val size: Size? = Size(224, 224),
    val shortestEdge: Int? = null,
    val resample: Resample = Resample.BILINEAR,
    val cropSize: Size? = null,
    val rescaleFactor: Double? = 1.0 / 255,
    val mean: DoubleArray? = doubleArrayOf(0.5, 0.5, 0.5),
    val std: DoubleArray? = doubleArrayOf(0.5, 0.5, 0.5),
    val bgr: Boolean = false,
    val layout: Layout = Layout.NCHW,
    val normalizationInModel: Boolean = false
) {
    init {
        val problems = ArrayList<String>()
        if (resizeMode == ResizeMode.EXACT && size == null) problems.add("resize_mode 'exact' needs size")
        if (resizeMode == ResizeMode.SHORTEST_EDGE && (shortestEdge == null || shortestEdge <= 0)) {
            problems.add("resize_mode 'shortest_edge' needs shortest_edge")
        }
        if (mean != null && mean.size != 3) problems.add("mean needs 3 values, got ${mean.size}")
        if (std != null && std.size != 3) problems.add("std needs 3 values, got ${std.size}")
        if (std != null && std.any { it == 0.0 }) problems.add("std has a zero")
        for (s in listOf(size, cropSize)) {
            if (s != null && (s.height <= 0 || s.width <= 0)) problems.add("sizes must be positive, got ${s.height}x${s.width}")
        }
        if (problems.isNotEmpty()) throw JsonException("invalid preprocess spec: " + problems.joinToString("; "))
    }

    /** (height, width) of the tensor this spec produces, when it is fixed. */
    val outputSize: Size?
        get() = cropSize ?: if (resizeMode == ResizeMode.EXACT) size else null

    companion object {
        val KNOWN_KEYS = setOf(
            "resize_mode", "size", "shortest_edge", "resample", "crop_size", "rescale_factor", "mean", "std",
            "channel_order", "layout", "normalization_in_model"
        )

        /** Parse a manifest's `preprocess` object; missing keys take the runtime's defaults. */
        fun fromJson(json: JsonObject): PreprocessSpec {
            val unknown = json.keys.filter { it !in KNOWN_KEYS }.sorted()
            if (unknown.isNotEmpty()) throw JsonException("preprocess block has unknown keys: ${unknown.joinToString(", ")}")
            val defaults = PreprocessSpec()
            val channelOrder = if (json.has("channel_order")) json.string("channel_order") else "RGB"
            if (channelOrder != "RGB" && channelOrder != "BGR") throw JsonException("channel_order '$channelOrder' is not RGB or BGR")
            return PreprocessSpec(
                resizeMode = if (json.has("resize_mode")) ResizeMode.parse(json.string("resize_mode")) else defaults.resizeMode,
                size = if (json.has("size")) sizeOf(json, "size") else defaults.size,
                shortestEdge = if (json.has("shortest_edge")) json.intOrNull("shortest_edge") else null,
                resample = if (json.has("resample")) Resample.parse(json.string("resample")) else defaults.resample,
                cropSize = if (json.has("crop_size")) sizeOf(json, "crop_size") else null,
                rescaleFactor = if (json.has("rescale_factor")) json.doubleOrNull("rescale_factor") else defaults.rescaleFactor,
                mean = if (json.has("mean")) triple(json, "mean") else defaults.mean,
                std = if (json.has("std")) triple(json, "std") else defaults.std,
                bgr = channelOrder == "BGR",
                layout = if (json.has("layout")) Layout.parse(json.string("layout")) else defaults.layout,
                normalizationInModel = json.booleanOr("normalization_in_model", false)
            )
        }

        private fun sizeOf(json: JsonObject, key: String): Size? {
            if (json.isNull(key)) return null
            val values = json.ints(key)
            if (values.size != 2 || values[0] == null || values[1] == null) throw JsonException("$key needs [height, width]")
            return Size(values[0]!!, values[1]!!)
        }

        private fun triple(json: JsonObject, key: String): DoubleArray? =
            if (json.isNull(key)) null else json.doubles(key).toDoubleArray()
    }
}
