package dev.vitedge.core

import java.awt.color.ColorSpace
import java.awt.image.IndexColorModel
import java.io.ByteArrayInputStream
import java.io.File
import javax.imageio.ImageIO

/**
 * The JVM's stand-in for the platform decoder (Android: BitmapFactory; iOS: ImageIO/CGImage): JDK ImageIO
 * decodes the self-check's PNG and JPEG files to RGB pixels, alpha dropped. Grayscale images are read from
 * the raster: `getRGB` would pass them through Java's linear-gray colour space and change the values.
 */
object JvmImages {
    fun decode(bytes: ByteArray): RgbImage {
        val image = ImageIO.read(ByteArrayInputStream(bytes)) ?: throw IllegalArgumentException("ImageIO cannot decode these ${bytes.size} bytes")
        val model = image.colorModel
        if (model !is IndexColorModel && model.colorSpace.type == ColorSpace.TYPE_GRAY) {
            val raster = image.raster
            val out = ByteArray(image.width * image.height * 3)
            for (y in 0 until image.height) for (x in 0 until image.width) {
                val v = raster.getSample(x, y, 0).toByte()
                val at = (y * image.width + x) * 3
                out[at] = v
                out[at + 1] = v
                out[at + 2] = v
            }
            return RgbImage(image.width, image.height, out)
        }
        return RgbImage.fromArgb(image.getRGB(0, 0, image.width, image.height, null, 0, image.width), image.width, image.height)
    }

    /** Reads paths relative to an artifact folder, as [SelfCheck.run] asks. */
    fun reader(folder: File): (String) -> ByteArray = { path -> File(folder, path).readBytes() }
}
