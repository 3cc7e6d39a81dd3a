package dev.vitedge.core

import org.junit.Assert.assertEquals
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test
import java.io.File

class ManifestTest {
    private val deitManifest: String by lazy { File(Golden.dir, "images/deit_astronaut_jpeg/manifest.json").readText(Charsets.UTF_8) }

    private fun assertRefused(text: String, vararg words: String) {
        try {
            Manifest.parse(text, "m.json")
            fail("accepted: $text")
        } catch (error: ManifestException) {
            for (word in words) assertTrue("'$word' not in: ${error.message}", error.message!!.contains(word))
        }
    }

    @Test
    fun readsEveryFieldTheDemosUse() {
        val manifest = Manifest.parse(deitManifest)
        assertEquals("vitedge.artifact/1", manifest.schema)
        assertEquals("tflite", manifest.format)
        assertEquals("model.tflite", manifest.modelFile)
        assertEquals("pixel_values", manifest.input.name)
        assertEquals(listOf<Int?>(1, 3, 64, 64), manifest.input.shape)
        assertEquals("logits", manifest.outputs.logits)
        assertNull(manifest.outputs.logitsQuantization)
        val spec = manifest.preprocess
        assertEquals(ResizeMode.SHORTEST_EDGE, spec.resizeMode)
        assertEquals(80, spec.shortestEdge)
        assertEquals(Resample.BICUBIC, spec.resample)
        assertEquals(Size(64, 64), spec.cropSize)
        assertEquals(0.485, spec.mean!![0], 0.0)
        assertEquals(1.0 / 255, spec.rescaleFactor!!, 0.0)
        assertTrue(manifest.isRandomInit)
        assertEquals("LABEL_7", manifest.label(7))
    }

    @Test
    fun coreMlEntryIsTheModelFile() {
        val manifest = Manifest.parse(File(Golden.dir, "images/coreml_bicubic_down_up/manifest.json").readText(Charsets.UTF_8))
        assertEquals("coreml", manifest.format)
        assertEquals("model.mlpackage", manifest.modelFile)
    }

    @Test
    fun refusesUnknownOrNewerSchemasAndFormats() {
        assertRefused(deitManifest.replace("vitedge.artifact/1", "vitedge.artifact/2"), "newer", "update the demo")
        assertRefused(deitManifest.replace("vitedge.artifact/1", "other/1"), "unknown manifest schema")
        assertRefused(deitManifest.replace("\"schema\": \"vitedge.artifact/1\",", ""), "no 'schema'")
        assertRefused(deitManifest.replace("\"format\": \"tflite\"", "\"format\": \"pte\""), "unknown format 'pte'")
        assertRefused(deitManifest.replace("\"labels\"", "\"labelz\""), "missing fields labels")
        assertRefused(deitManifest.replace("\"resample\": \"bicubic\"", "\"resample\": \"cubic\""), "resample 'cubic'")
        assertRefused(deitManifest.replace("\"layout\": \"NCHW\",\n    \"normalization", "\"layout\": \"NCHW\",\n    \"gamma\": 2.2,\n    \"normalization"), "unknown keys: gamma")
        assertRefused(deitManifest.replace("\"std\": [", "\"std\": [0.0, "), "std needs 3 values")
        assertRefused("{\"schema\": \"vitedge.artifact/1\", ", "not valid JSON")
        assertRefused("[1, 2]", "not a JSON object")
    }

    @Test
    fun jsonReadsEscapesNumbersAndUnicode() {
        val value = Json.parse("{\"a\": [1, -2.5e-3, 0.00392156862745098, true, null], \"s\": \"q\\\"\\\\\\n\\u00e9\\ud83d\\ude00 caf\u00e9\"}") as Map<*, *>
        val list = value["a"] as List<*>
        assertEquals(1.0, list[0])
        assertEquals(-2.5e-3, list[1])
        assertEquals(1.0 / 255, list[2])
        assertEquals(true, list[3])
        assertNull(list[4])
        assertEquals("q\"\\\n\u00e9\ud83d\ude00 caf\u00e9", value["s"])
        for (bad in listOf("{", "[1,]", "{\"a\" 1}", "01", "\"\\x\"", "1 2", "tru", "\"a\nb\"")) {
            try {
                Json.parse(bad)
                fail("accepted $bad")
            } catch (expected: JsonException) {
            }
        }
    }

    @Test
    fun labelsWithAwkwardCharactersRoundTrip() {
        val manifest = Manifest.parse(File(Golden.dir, "topk/imagenet_like_1000/manifest.json").readText(Charsets.UTF_8))
        assertEquals(1000, manifest.labels.size)
        assertEquals("tabby, tabby cat", manifest.label(0))
        assertEquals("say \"cheese\"", manifest.label(1))
        assertEquals("back\\slash", manifest.label(2))
        assertEquals("tab\there", manifest.label(6))
        assertEquals("class 0999", manifest.label(999))
    }
}
