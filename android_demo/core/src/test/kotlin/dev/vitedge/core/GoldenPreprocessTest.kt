package dev.vitedge.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Test
import java.io.File

/** Same decoded pixels + same manifest -> the same resized pixels and the same tensor as the Python runtime. */
class GoldenPreprocessTest {
    @Test
    fun everyImageCaseMatchesThePythonRuntime() {
        val cases = Golden.imageCases()
        assertTrue("no image cases in ${Golden.dir}", cases.size >= 6)
        var worst = 0.0
        for (name in cases) {
            val folder = File(Golden.dir, "images/$name")
            val case = Golden.read(File(folder, "case.json"))
            val manifest = Manifest.parse(File(folder, "manifest.json").readText(Charsets.UTF_8), "$name/manifest.json")
            val preprocessor = Preprocessor(manifest.preprocess)
            val rgb = Golden.image(folder, case.obj("rgb"))

            val expectedResized = Golden.image(folder, case.obj("resized"))
            val resized = preprocessor.resize(rgb)
            assertEquals("$name: resized width", expectedResized.width, resized.width)
            assertEquals("$name: resized height", expectedResized.height, resized.height)
            assertArrayEquals("$name: resized pixels differ from Pillow's", expectedResized.pixels, resized.pixels)

            val expected = Golden.floats(File(folder, case.obj("tensor").string("file")))
            val shape = case.obj("tensor").ints("shape")
            assertEquals("$name: tensor shape vs manifest input", shape, manifest.input.shape)
            val tensor = preprocessor.tensor(rgb)
            assertEquals("$name: tensor size", expected.size, tensor.size)
            var maxDiff = 0.0
            for (i in expected.indices) maxDiff = Math.max(maxDiff, Math.abs((expected[i] - tensor[i]).toDouble()))
            assertTrue("$name: max |diff| $maxDiff > ${Golden.tensorTolerance}", maxDiff <= Golden.tensorTolerance)
            worst = Math.max(worst, maxDiff)
            println("golden image $name: ${rgb.width}x${rgb.height} -> ${shape.joinToString("x")}, max |diff| $maxDiff")
        }
        println("golden images: ${cases.size} cases, worst max |diff| $worst (tolerance ${Golden.tensorTolerance})")
    }

    @Test
    fun uint8ModelsGetTheCroppedPixels() {
        val folder = File(Golden.dir, "images/uint8_in_model")
        val case = Golden.read(File(folder, "case.json"))
        val manifest = Manifest.parse(File(folder, "manifest.json").readText(Charsets.UTF_8))
        assertEquals("uint8", manifest.input.dtype)
        val preprocessor = Preprocessor(manifest.preprocess)
        val tensor = preprocessor.tensor(Golden.image(folder, case.obj("rgb")))
        val bytes = TensorCodec.quantize(tensor, "uint8", manifest.input.scale, manifest.input.zeroPoint ?: 0)
        val expected = Golden.floats(File(folder, "tensor.f32"))
        for (i in expected.indices) assertEquals(expected[i].toInt(), bytes[i].toInt() and 0xFF)
    }
}
