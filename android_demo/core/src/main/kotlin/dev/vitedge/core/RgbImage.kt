package dev.vitedge.core

/**
 * An 8-bit RGB image: [pixels] holds width * height * 3 bytes, row-major, R G B interleaved.
 *
 * Decoding (JPEG/PNG, EXIF orientation, dropping alpha) is the platform's job; the demos build an
 * RgbImage from what the platform decoded: [fromArgb] takes Android's `Bitmap.getPixels` ints.
 */
class RgbImage(val width: Int, val height: Int, val pixels: ByteArray) {
    init {
        require(width > 0 && height > 0) { "image size must be positive, got ${width}x$height" }
        require(pixels.size == width * height * 3) { "expected ${width * height * 3} bytes for ${width}x$height RGB, got ${pixels.size}" }
    }

    /** Channel [c] (0 = R) of pixel (x, y), 0..255. */
    fun get(x: Int, y: Int, c: Int): Int = pixels[(y * width + x) * 3 + c].toInt() and 0xFF

    /** This image turned clockwise by [degrees] (0, 90, 180 or 270): CameraX's `rotationDegrees` makes it upright. */
    fun rotated(degrees: Int): RgbImage {
        val turns = ((degrees % 360) + 360) % 360
        require(turns % 90 == 0) { "rotation must be a multiple of 90 degrees, got $degrees" }
        if (turns == 0) return this
        val outWidth = if (turns == 180) width else height
        val outHeight = if (turns == 180) height else width
        val out = ByteArray(pixels.size)
        for (y in 0 until height) {
            for (x in 0 until width) {
                val tx: Int
                val ty: Int
                when (turns) {
                    90 -> { tx = height - 1 - y; ty = x }
                    180 -> { tx = width - 1 - x; ty = height - 1 - y }
                    else -> { tx = y; ty = width - 1 - x }
                }
                val from = (y * width + x) * 3
                val to = (ty * outWidth + tx) * 3
                out[to] = pixels[from]
                out[to + 1] = pixels[from + 1]
                out[to + 2] = pixels[from + 2]
            }
        }
        return RgbImage(outWidth, outHeight, out)
    }

    companion object {
        /**
         * From RGBA bytes with a row stride (CameraX `ImageAnalysis.OUTPUT_IMAGE_FORMAT_RGBA_8888`:
         * plane 0's buffer, `rowStride`, `pixelStride` 4). Alpha is dropped.
         */
        fun fromRgba(rgba: ByteArray, width: Int, height: Int, rowStride: Int = width * 4, pixelStride: Int = 4): RgbImage {
            require(pixelStride >= 3 && rowStride >= width * pixelStride) { "bad strides: row $rowStride, pixel $pixelStride for width $width" }
            require(rgba.size >= rowStride * (height - 1) + width * pixelStride) { "buffer too small for ${width}x$height" }
            val bytes = ByteArray(width * height * 3)
            for (y in 0 until height) {
                for (x in 0 until width) {
                    val from = y * rowStride + x * pixelStride
                    val to = (y * width + x) * 3
                    bytes[to] = rgba[from]
                    bytes[to + 1] = rgba[from + 1]
                    bytes[to + 2] = rgba[from + 2]
                }
            }
            return RgbImage(width, height, bytes)
        }

        /**
         * From packed 0xAARRGGBB ints (Android `Bitmap.getPixels`, Java `BufferedImage.getRGB`).
         * Alpha is dropped, not composited, as the Python runtime does; decode with
         * premultiplied alpha off (`BitmapFactory.Options.inPremultiplied = false`) so the colour
         * of translucent pixels is the file's.
         */
        fun fromArgb(argb: IntArray, width: Int, height: Int): RgbImage {
            require(argb.size == width * height) { "expected ${width * height} pixels, got ${argb.size}" }
            val bytes = ByteArray(width * height * 3)
            for (i in argb.indices) {
                val p = argb[i]
                bytes[i * 3] = (p shr 16).toByte()
                bytes[i * 3 + 1] = (p shr 8).toByte()
                bytes[i * 3 + 2] = p.toByte()
            }
            return RgbImage(width, height, bytes)
        }
    }
}
