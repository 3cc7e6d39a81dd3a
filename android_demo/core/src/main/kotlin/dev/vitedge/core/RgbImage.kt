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

    companion object {
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
