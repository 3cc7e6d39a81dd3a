package dev.vitedge.core

/**
 * RGB image -> model input tensor, exactly as `vitedge.runtime.preprocess.preprocess` does:
 *
 * 1. resize with Pillow's arithmetic ([PillowResize]): to `size`, or the shorter side to
 *    `shortest_edge` and the longer to `(int)(shortest_edge * long / short)`;
 * 2. center crop the 8-bit pixels: `top = (height - crop) / 2`, and where the crop is larger than
 *    the image, zero pixels with `ceil(missing / 2)` rows/columns before;
 * 3. rescale in double (`v * rescale_factor`) rounded to float, then normalize in float
 *    (`(x - mean) / std`), through a 256-entry table per channel; BGR reverses the channels after.
 *
 * The float arithmetic is IEEE single precision on every JVM and on ARM, so the tensor equals the
 * Python runtime's bit for bit (the golden tests allow 1e-5).
 */
class Preprocessor(val spec: PreprocessSpec) {
    /** table[c * 256 + v]: what value v of channel c (RGB order) becomes. */
    private val table = FloatArray(3 * 256)

    init {
        val rescale = if (spec.normalizationInModel) null else spec.rescaleFactor
        val normalize = !spec.normalizationInModel && spec.mean != null && spec.std != null
        for (c in 0 until 3) {
            for (v in 0 until 256) {
                var x = if (rescale != null) (v.toDouble() * rescale).toFloat() else v.toFloat()
                if (normalize) x = (x - spec.mean!![c].toFloat()) / spec.std!![c].toFloat()
                table[c * 256 + v] = x
            }
        }
    }

    /** (width, height) after the resize step, with transformers' rounding. */
    fun resizedSize(width: Int, height: Int): Pair<Int, Int> = when (spec.resizeMode) {
        ResizeMode.EXACT -> Pair(spec.size!!.width, spec.size.height)
        ResizeMode.SHORTEST_EDGE -> {
            val edge = spec.shortestEdge!!
            val short = if (width <= height) width else height
            val long = if (width <= height) height else width
            // Python: int(shortest_edge * long / short), a correctly rounded double division, truncated.
            val newLong = ((edge.toLong() * long).toDouble() / short).toInt()
            if (width <= height) Pair(edge, newLong) else Pair(newLong, edge)
        }
        ResizeMode.NONE -> Pair(width, height)
    }

    /** Step 1: the resized image (the same object when no resize is needed). */
    fun resize(image: RgbImage): RgbImage {
        val (width, height) = resizedSize(image.width, image.height)
        if (width == image.width && height == image.height) return image
        return PillowResize.resize(image, width, height, spec.resample)
    }

    /** Step 2: the center crop (zero padding where the crop is larger), or the image itself without one. */
    fun crop(image: RgbImage): RgbImage {
        val crop = spec.cropSize ?: return image
        val rows = window(image.height, crop.height)
        val cols = window(image.width, crop.width)
        val out = ByteArray(crop.width * crop.height * 3)
        for (y in 0 until crop.height) {
            val sy = y + rows
            if (sy < 0 || sy >= image.height) continue
            for (x in 0 until crop.width) {
                val sx = x + cols
                if (sx < 0 || sx >= image.width) continue
                val from = (sy * image.width + sx) * 3
                val to = (y * crop.width + x) * 3
                out[to] = image.pixels[from]
                out[to + 1] = image.pixels[from + 1]
                out[to + 2] = image.pixels[from + 2]
            }
        }
        return RgbImage(crop.width, crop.height, out)
    }

    /** Offset from output to input index along one axis: `start` when cropping, `-ceil(missing / 2)` when padding. */
    private fun window(length: Int, crop: Int): Int =
        if (crop <= length) (length - crop) / 2 else -((crop - length + 1) / 2)

    /** Steps 1 and 2: the 8-bit pixels the model sees (what a uint8-input model takes). */
    fun pixels(image: RgbImage): RgbImage = crop(resize(image))

    /** The whole pipeline: a float tensor in the spec's layout, no batch dimension (3*H*W values). */
    fun tensor(image: RgbImage): FloatArray {
        val pixels = pixels(image)
        val out = FloatArray(pixels.width * pixels.height * 3)
        writeTensor(pixels, out)
        return out
    }

    /** Steps 3 and on for already resized and cropped [pixels], into [out] (3 * width * height floats). */
    fun writeTensor(pixels: RgbImage, out: FloatArray) {
        val plane = pixels.width * pixels.height
        require(out.size >= plane * 3) { "output holds ${out.size} floats, needs ${plane * 3}" }
        val src = pixels.pixels
        for (i in 0 until plane) {
            for (c in 0 until 3) {
                val from = if (spec.bgr) 2 - c else c
                val value = table[from * 256 + (src[i * 3 + from].toInt() and 0xFF)]
                if (spec.layout == Layout.NCHW) out[c * plane + i] = value else out[i * 3 + c] = value
            }
        }
    }
}
