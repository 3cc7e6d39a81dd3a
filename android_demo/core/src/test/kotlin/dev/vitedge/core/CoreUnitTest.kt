package dev.vitedge.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Test

class CoreUnitTest {
    @Test
    fun shortestEdgeRoundsLikeTransformers() {
        val spec = PreprocessSpec(resizeMode = ResizeMode.SHORTEST_EDGE, size = null, shortestEdge = 256)
        assertEquals(Pair(256, 384), Preprocessor(spec).resizedSize(200, 300))
        assertEquals(Pair(455, 256), Preprocessor(spec).resizedSize(640, 360)) // int(256 * 640 / 360) = 455
        assertEquals(Pair(256, 256), Preprocessor(spec).resizedSize(7, 7))
    }

    @Test
    fun mobileVitStepsFlipToBgrWithoutNormalizing() {
        // MobileViT's processor: 1/255 only (no mean/std: the same as mean 0, std 1), channels flipped to BGR
        val image = RgbImage(2, 1, byteArrayOf(10, 20, 30, -1, 0, 127))
        val unnormalized = PreprocessSpec(size = Size(1, 2), mean = null, std = null)
        val zeroOne = PreprocessSpec(size = Size(1, 2), mean = doubleArrayOf(0.0, 0.0, 0.0), std = doubleArrayOf(1.0, 1.0, 1.0))
        val bgr = PreprocessSpec(size = Size(1, 2), mean = null, std = null, bgr = true)
        fun scaled(vararg values: Int) = values.map { (it.toDouble() * (1.0 / 255)).toFloat() }.toFloatArray()
        val rgbPlanes = scaled(10, 255, 20, 0, 30, 127) // NCHW: the R plane, then G, then B
        assertArrayEquals(rgbPlanes, Preprocessor(unnormalized).tensor(image), 0f)
        assertArrayEquals(rgbPlanes, Preprocessor(zeroOne).tensor(image), 0f)
        assertArrayEquals(scaled(30, 127, 20, 0, 10, 255), Preprocessor(bgr).tensor(image), 0f)
    }

    @Test
    fun sameSizeResizeIsACopy() {
        val image = RgbImage(2, 1, byteArrayOf(1, 2, 3, 4, 5, 6))
        val copy = PillowResize.resize(image, 2, 1, Resample.BICUBIC)
        assertArrayEquals(image.pixels, copy.pixels)
    }

    @Test
    fun argbDropsAlpha() {
        val image = RgbImage.fromArgb(intArrayOf(0x00FF8001, 0x7F010203), 2, 1)
        assertEquals(255, image.get(0, 0, 0))
        assertEquals(128, image.get(0, 0, 1))
        assertEquals(1, image.get(0, 0, 2))
        assertEquals(3, image.get(1, 0, 2))
    }

    @Test
    fun softmaxSumsToOneAndTopKIsStable() {
        val scores = TopK.softmax(floatArrayOf(1f, 3f, 3f, -1f))
        assertEquals(1.0, scores.map { it.toDouble() }.sum(), 1e-6)
        val top = TopK.topK(floatArrayOf(1f, 3f, 3f, -1f), 3) { "c$it" }
        assertEquals(listOf(1, 2, 0), top.map { it.index })
        assertEquals("c1", top[0].label)
        assertEquals(2, TopK.topK(floatArrayOf(0f, 1f), 5) { "x" }.size)
    }

    @Test
    fun quantizationRoundsHalfToEvenAndClips() {
        val q = TensorCodec.quantize(floatArrayOf(0.25f, 0.75f, -100f, 100f, 0f), "int8", 0.5, 1)
        // 0.25/0.5+1 = 1.5 -> 2; 0.75/0.5+1 = 2.5 -> 2; clipped to -128 and 127; 0 -> 1
        assertArrayEquals(byteArrayOf(2, 2, -128, 127, 1), q)
        val back = TensorCodec.dequantize(byteArrayOf(-128, 0, 127), "int8", 0.5, 1)
        assertArrayEquals(floatArrayOf(-64.5f, -0.5f, 63f), back, 0f)
        assertArrayEquals(floatArrayOf(255f * 0.5f), TensorCodec.dequantize(byteArrayOf(-1), "uint8", 0.5, 0), 0f)
    }
}

class ImageHelpersTest {
    private val image = RgbImage(3, 2, ByteArray(18) { it.toByte() }) // pixel (x, y) starts at byte (y * 3 + x) * 3

    @Test
    fun rotationsTurnClockwise() {
        val r90 = image.rotated(90)
        assertEquals(2, r90.width)
        assertEquals(3, r90.height)
        assertEquals(image.get(0, 1, 0), r90.get(0, 0, 0)) // the bottom-left corner goes to the top-left
        assertEquals(image.get(0, 0, 0), r90.get(1, 0, 0))
        assertArrayEquals(image.pixels, image.rotated(90).rotated(270).pixels)
        assertArrayEquals(image.pixels, image.rotated(180).rotated(180).pixels)
        assertEquals(image.get(2, 1, 2), image.rotated(180).get(0, 0, 2))
    }

    @Test
    fun rgbaWithRowPaddingDropsAlphaAndPadding() {
        val rgba = byteArrayOf(1, 2, 3, 9, 4, 5, 6, 9, 0, 0, 7, 8, 9, 9, 10, 11, 12, 9)
        val rgb = RgbImage.fromRgba(rgba, 2, 2, rowStride = 10)
        assertArrayEquals(byteArrayOf(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12), rgb.pixels)
    }

    @Test
    fun artifactFilesAreCheckedBySizeThenChecksum() {
        val manifest = Manifest.parse(java.io.File(Golden.dir, "images/lanczos/manifest.json").readText(Charsets.UTF_8))
        // the golden manifests list an empty model.tflite
        ArtifactFiles.verify(manifest, { 0L }, { java.io.ByteArrayInputStream(ByteArray(0)) })
        for ((size, bytes, word) in listOf(Triple(null, ByteArray(0), "missing"), Triple(1L, ByteArray(1), "size 1"), Triple(0L, ByteArray(1), "sha256"))) {
            try {
                ArtifactFiles.verify(manifest, { size }, { java.io.ByteArrayInputStream(bytes) })
                org.junit.Assert.fail("accepted $word")
            } catch (error: ManifestException) {
                org.junit.Assert.assertTrue(error.message!!, error.message!!.contains(word))
            }
        }
    }
}
