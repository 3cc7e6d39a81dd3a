package dev.vitedge.core

import kotlin.math.ceil
import kotlin.math.cos
import kotlin.math.sin

/**
 * `PIL.Image.resize` for 8-bit RGB images, bit for bit: a port of Pillow's `libImaging/Resample.c`
 * (`ImagingResample`: separable convolution, horizontal pass then vertical (Pillow 13 runs the vertical
 * pass first when the height shrinks by more than twice as many pixels as the width), the filter's support
 * widened by the downscale factor (antialiasing), coefficients in 22-bit fixed point, each pass
 * rounded and clipped to 8 bits) and, for NEAREST, of `_resize`'s affine path
 * (`Geometry.c ImagingScaleAffine`). Hugging Face's PIL-backend image processors and the vitedge
 * runtime resize with Pillow, so this is what makes the tensors match.
 */
object PillowResize {
    private const val PRECISION_BITS = 32 - 8 - 2

    /** Resize [image] to [width] x [height] with [filter], as `image.resize((width, height), filter)`. */
    fun resize(image: RgbImage, width: Int, height: Int, filter: Resample): RgbImage {
        require(width > 0 && height > 0) { "target size must be positive, got ${width}x$height" }
        if (width == image.width && height == image.height) return RgbImage(width, height, image.pixels.copyOf())
        if (filter == Resample.NEAREST) return nearest(image, width, height)
        var current = image
        if (verticalFirst(image.width, image.height, width, height)) {
            if (height != image.height) current = vertical(current, height, coefficients(image.height, height, filter))
            if (width != image.width) current = horizontal(current, width, coefficients(image.width, width, filter))
            return current
        }
        if (width != image.width) current = horizontal(current, width, coefficients(image.width, width, filter))
        if (height != image.height) current = vertical(current, height, coefficients(image.height, height, filter))
        return current
    }

    /**
     * Pillow 13's pass order (`ImagingResampleInner`): the vertical pass first when the height shrinks by
     * more than twice as many pixels as the width does. Each pass rounds to 8 bits, so the order shows
     * in the last bit; Pillow 12 and older always ran the horizontal pass first.
     */
    fun verticalFirst(inWidth: Int, inHeight: Int, outWidth: Int, outHeight: Int): Boolean =
        inHeight - outHeight > 0 && inHeight - outHeight > (inWidth - outWidth) * 2

    private fun filterValue(filter: Resample, xIn: Double): Double {
        var x = xIn
        when (filter) {
            Resample.BOX -> return if (x > -0.5 && x <= 0.5) 1.0 else 0.0
            Resample.BILINEAR -> {
                if (x < 0.0) x = -x
                return if (x < 1.0) 1.0 - x else 0.0
            }
            Resample.HAMMING -> {
                if (x < 0.0) x = -x
                if (x == 0.0) return 1.0
                if (x >= 1.0) return 0.0
                x *= Math.PI
                // Pillow writes 0.54f + 0.46f * cos(x): float constants, double arithmetic.
                return sin(x) / x * (0.54f.toDouble() + 0.46f.toDouble() * cos(x))
            }
            Resample.BICUBIC -> {
                val a = -0.5
                if (x < 0.0) x = -x
                if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1
                if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a
                return 0.0
            }
            Resample.LANCZOS -> return if (-3.0 <= x && x < 3.0) sinc(x) * sinc(x / 3) else 0.0
            Resample.NEAREST -> throw IllegalArgumentException("NEAREST has no convolution filter")
        }
    }

    private fun sinc(xIn: Double): Double {
        if (xIn == 0.0) return 1.0
        val x = xIn * Math.PI
        return sin(x) / x
    }

    /** Per output pixel: first input index, count, and ksize fixed-point weights. */
    private class Coefficients(val ksize: Int, val bounds: IntArray, val weights: IntArray)

    /** Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for box (0, inSize). */
    private fun coefficients(inSize: Int, outSize: Int, filter: Resample): Coefficients {
        val in0 = 0.0f
        val in1 = inSize.toFloat()
        val scale = (in1 - in0).toDouble() / outSize
        var filterscale = scale
        if (filterscale < 1.0) filterscale = 1.0
        val support = filter.support * filterscale
        val ksize = ceil(support).toInt() * 2 + 1
        val bounds = IntArray(outSize * 2)
        val weights = IntArray(outSize * ksize)
        val k = DoubleArray(ksize)
        for (xx in 0 until outSize) {
            val center = in0 + (xx + 0.5) * scale
            var ww = 0.0
            val ss = 1.0 / filterscale
            var xmin = (center - support + 0.5).toInt()
            if (xmin < 0) xmin = 0
            var xmax = (center + support + 0.5).toInt()
            if (xmax > inSize) xmax = inSize
            xmax -= xmin
            for (x in 0 until xmax) {
                val w = filterValue(filter, (x + xmin - center + 0.5) * ss)
                k[x] = w
                ww += w
            }
            for (x in 0 until xmax) {
                if (ww != 0.0) k[x] /= ww
            }
            for (x in xmax until ksize) k[x] = 0.0
            for (x in 0 until ksize) {
                val scaled = k[x] * (1 shl PRECISION_BITS)
                weights[xx * ksize + x] = if (k[x] < 0) (-0.5 + scaled).toInt() else (0.5 + scaled).toInt()
            }
            bounds[xx * 2] = xmin
            bounds[xx * 2 + 1] = xmax
        }
        return Coefficients(ksize, bounds, weights)
    }

    private fun clip8(sum: Int): Byte {
        val value = sum shr PRECISION_BITS
        return (if (value < 0) 0 else if (value > 255) 255 else value).toByte()
    }

    private fun horizontal(image: RgbImage, outWidth: Int, c: Coefficients): RgbImage {
        val src = image.pixels
        val out = ByteArray(outWidth * image.height * 3)
        val half = 1 shl (PRECISION_BITS - 1)
        for (y in 0 until image.height) {
            val rowIn = y * image.width * 3
            val rowOut = y * outWidth * 3
            for (xx in 0 until outWidth) {
                val xmin = c.bounds[xx * 2]
                val xmax = c.bounds[xx * 2 + 1]
                val kOffset = xx * c.ksize
                var ss0 = half
                var ss1 = half
                var ss2 = half
                for (x in 0 until xmax) {
                    val p = rowIn + (x + xmin) * 3
                    val w = c.weights[kOffset + x]
                    ss0 += (src[p].toInt() and 0xFF) * w
                    ss1 += (src[p + 1].toInt() and 0xFF) * w
                    ss2 += (src[p + 2].toInt() and 0xFF) * w
                }
                out[rowOut + xx * 3] = clip8(ss0)
                out[rowOut + xx * 3 + 1] = clip8(ss1)
                out[rowOut + xx * 3 + 2] = clip8(ss2)
            }
        }
        return RgbImage(outWidth, image.height, out)
    }

    private fun vertical(image: RgbImage, outHeight: Int, c: Coefficients): RgbImage {
        val src = image.pixels
        val stride = image.width * 3
        val out = ByteArray(image.width * outHeight * 3)
        val half = 1 shl (PRECISION_BITS - 1)
        for (yy in 0 until outHeight) {
            val ymin = c.bounds[yy * 2]
            val ymax = c.bounds[yy * 2 + 1]
            val kOffset = yy * c.ksize
            for (xx in 0 until image.width) {
                var ss0 = half
                var ss1 = half
                var ss2 = half
                for (y in 0 until ymax) {
                    val p = (y + ymin) * stride + xx * 3
                    val w = c.weights[kOffset + y]
                    ss0 += (src[p].toInt() and 0xFF) * w
                    ss1 += (src[p + 1].toInt() and 0xFF) * w
                    ss2 += (src[p + 2].toInt() and 0xFF) * w
                }
                val o = yy * stride + xx * 3
                out[o] = clip8(ss0)
                out[o + 1] = clip8(ss1)
                out[o + 2] = clip8(ss2)
            }
        }
        return RgbImage(image.width, outHeight, out)
    }

    /** Pillow's NEAREST resize: an affine scale sampling at pixel centres, positions accumulated in doubles. */
    private fun nearest(image: RgbImage, width: Int, height: Int): RgbImage {
        val a0 = image.width.toFloat().toDouble() / width
        val a4 = image.height.toFloat().toDouble() / height
        val xIn = IntArray(width) { -1 }
        var xo = a0 * 0.5
        for (x in 0 until width) {
            val xi = if (xo < 0.0) -1 else xo.toInt()
            if (xi >= 0 && xi < image.width) xIn[x] = xi
            xo += a0
        }
        val out = ByteArray(width * height * 3) // Pillow fills with 0 where nothing maps
        var yo = a4 * 0.5
        for (y in 0 until height) {
            val yi = if (yo < 0.0) -1 else yo.toInt()
            if (yi >= 0 && yi < image.height) {
                for (x in 0 until width) {
                    if (xIn[x] < 0) continue
                    val from = (yi * image.width + xIn[x]) * 3
                    val to = (y * width + x) * 3
                    out[to] = image.pixels[from]
                    out[to + 1] = image.pixels[from + 1]
                    out[to + 2] = image.pixels[from + 2]
                }
            }
            yo += a4
        }
        return RgbImage(width, height, out)
    }
}
