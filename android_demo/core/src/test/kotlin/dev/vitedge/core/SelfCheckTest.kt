package dev.vitedge.core

import org.junit.Assert.assertEquals
import org.junit.Assert.assertNotNull
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test
import java.io.File

/**
 * The self-check the demos run from an artifact (the app's Self-test), on the JVM: the golden self-check
 * cases (written by the same writer as every `vitedge convert`), artifacts converted by the Python tests
 * (-Dvitedge.selfcheck.artifacts=DIR:DIR, from tests/test_android_core.py), and planted faults.
 */
class SelfCheckTest {
    private fun manifestOf(folder: File) = Manifest.parse(File(folder, "manifest.json").readText(Charsets.UTF_8), "${folder.name}/manifest.json")

    /** A stand-in model for the golden cases (there is no model file): it answers each reference input with its reference outputs. */
    private fun standIn(folder: File, perturb: (FloatArray) -> FloatArray = { it }): (FloatArray) -> ModelOutputs {
        val manifest = manifestOf(folder)
        val data = SelfCheckData.read(manifest, JvmImages.reader(folder))!!
        val answers = data.images.withIndex().associate { (i, image) -> image.sha256 to ModelOutputs(data.logits[i], data.embedding?.get(i)) }
        return { tensor ->
            val answer = answers[SelfCheck.tensorSha256(tensor)] ?: throw AssertionError("the stand-in model was fed an input it does not know")
            ModelOutputs(perturb(answer.logits), answer.embedding)
        }
    }

    private fun run(folder: File, preprocessor: Preprocessor? = null, model: ((FloatArray) -> ModelOutputs)? = standIn(folder)): SelfCheckReport {
        val manifest = manifestOf(folder)
        return SelfCheck.run(manifest, JvmImages.reader(folder), JvmImages::decode, preprocessor ?: Preprocessor(manifest.preprocess), model)!!
    }

    @Test
    fun goldenSelfChecksPassBitForBit() {
        val cases = Golden.selfcheckCases()
        assertTrue("no self-check cases in ${Golden.dir}", cases.size >= 2)
        for (name in cases) {
            val folder = File(Golden.dir, "selfcheck/$name")
            val manifest = manifestOf(folder)
            ArtifactFiles.verify(manifest, { path -> File(folder, path).let { if (it.isFile) it.length() else if (path == manifest.modelFile) 0L else null } },
                { path -> File(folder, path).let { if (it.isFile) it.inputStream() else java.io.ByteArrayInputStream(ByteArray(0)) } })
            val report = run(folder)
            for (line in report.lines()) println("golden self-check $name: $line")
            assertEquals(report.lines().toString(), Status.PASSED, report.preprocessing.status)
            assertEquals("$name: every tensor bit-identical", report.images, report.bitIdentical)
            assertEquals(report.lines().toString(), Status.PASSED, report.model.status)
        }
        println("golden self-checks: ${cases.size} cases passed")
    }

    @Test
    fun convertedArtifactsSelfCheckOnTheJvm() {
        val folders = (System.getProperty("vitedge.selfcheck.artifacts") ?: "").split(File.pathSeparator).filter { it.isNotEmpty() }
        for (path in folders) {
            val folder = File(path)
            val manifest = manifestOf(folder)
            ArtifactFiles.verify(manifest, { p -> File(folder, p).let { if (it.isFile) it.length() else null } }, { p -> File(folder, p).inputStream() })
            val report = run(folder, model = null) // no LiteRT/onnxruntime on the JVM: the app's Self-test runs the model
            for (line in report.lines()) println("artifact self-check ${folder.name} (${manifest.format} ${manifest.precision}): $line")
            assertEquals(report.lines().toString(), Status.PASSED, report.preprocessing.status)
            assertEquals(report.images, report.bitIdentical)
            assertEquals(Status.NOT_CHECKED, report.model.status)
        }
        println("converted artifacts self-checked on the JVM: ${folders.size}")
    }

    @Test
    fun aPlantedMeanStdFaultIsThePreprocessingNotTheModel() {
        val folder = File(Golden.dir, "selfcheck/vit_bilinear_nchw")
        val spec = manifestOf(folder).preprocess
        val faulty = PreprocessSpec(spec.resizeMode, spec.size, spec.shortestEdge, spec.resample, spec.cropSize, spec.rescaleFactor,
            doubleArrayOf(0.485, 0.456, 0.406), doubleArrayOf(0.229, 0.224, 0.225), spec.bgr, spec.layout, spec.normalizationInModel)
        val report = run(folder, Preprocessor(faulty))
        println("planted mean/std fault: ${report.lines()}")
        assertEquals(Status.FAILED, report.preprocessing.status)
        assertTrue(report.preprocessing.summary, report.preprocessing.summary.contains("preprocessing differs from the conversion's on 7 of 7 images"))
        assertTrue(report.preprocessing.summary, report.preprocessing.summary.contains("mean [0.485, 0.456, 0.406] (made with [0.5, 0.5, 0.5])"))
        assertEquals("the model is judged on the reference inputs", Status.PASSED, report.model.status)
        assertTrue(report.model.summary.contains("the preprocessing above is what differs"))
        assertTrue(!report.ok)
    }

    @Test
    fun aPlantedBicubicResizeSaysCheckTheResize() {
        val folder = File(Golden.dir, "selfcheck/vit_bilinear_nchw")
        val manifest = manifestOf(folder)
        // A port whose "bilinear" resize is bicubic: its spec still says bilinear, its pixels do not.
        val bicubic = Preprocessor(PreprocessSpec(manifest.preprocess.resizeMode, manifest.preprocess.size, resample = Resample.BICUBIC))
        val buggy = object : (ByteArray) -> RgbImage {
            override fun invoke(bytes: ByteArray): RgbImage {
                val rgb = JvmImages.decode(bytes)
                val size = bicubic.resizedSize(rgb.width, rgb.height)
                // resize with bicubic to the target, then let the (bilinear) preprocessor see an image already at size
                return PillowResize.resize(rgb, size.first, size.second, Resample.BICUBIC)
            }
        }
        val report = SelfCheck.run(manifest, JvmImages.reader(folder), buggy, Preprocessor(manifest.preprocess), standIn(folder))!!
        println("planted bicubic resize: ${report.lines()}")
        assertEquals(Status.FAILED, report.preprocessing.status)
        assertTrue(report.preprocessing.summary, report.preprocessing.summary.contains("check the resize (size, resample filter such as bilinear vs bicubic)"))
        assertEquals(Status.NOT_CHECKED, report.model.status)
    }

    @Test
    fun aModelThatDriftsFailsModelParityOnly() {
        val folder = File(Golden.dir, "selfcheck/vit_bilinear_nchw")
        val report = run(folder, model = standIn(folder) { logits -> FloatArray(logits.size) { logits[it] + 0.8f * it } })
        println("drifting model: ${report.lines()}")
        assertEquals(Status.PASSED, report.preprocessing.status)
        assertEquals(Status.FAILED, report.model.status)
        assertTrue(report.model.summary, report.model.summary.contains("min logits cosine"))
    }

    @Test
    fun reducedPrecisionsKeepTheirOwnTolerance() {
        val int8 = SelfCheckData.read(manifestOf(File(Golden.dir, "selfcheck/vit_bilinear_nchw")), JvmImages.reader(File(Golden.dir, "selfcheck/vit_bilinear_nchw")))!!
        val fp32 = SelfCheckData.read(manifestOf(File(Golden.dir, "selfcheck/deit_bicubic_crop_bgr_nhwc")), JvmImages.reader(File(Golden.dir, "selfcheck/deit_bicubic_crop_bgr_nhwc")))!!
        assertEquals(0.99, int8.modelTolerance["min_logits_cosine"]!!, 0.0)
        assertEquals(0.9999, fp32.modelTolerance["min_logits_cosine"]!!, 0.0)
        // A model 0.995 cosine away from torch passes int8's tolerance and misses fp32's.
        val close = OutputMetrics(7, 1.0, 0.995, 0.995, 0.01)
        assertTrue(close.judge(int8.modelTolerance).isEmpty())
        assertEquals(3, close.judge(fp32.modelTolerance).size)
        assertEquals("1e-05", SelfCheck.g(1e-5))
        assertEquals("0.5", SelfCheck.g(0.5))
        assertEquals("1.48", SelfCheck.g(1.4823))
    }

    @Test
    fun pillowThirteensPassOrderIsPorted() {
        // Pillow 13 runs the vertical pass first when the height shrinks by more than twice as many pixels as the width.
        assertTrue(PillowResize.verticalFirst(79, 95, 64, 56))
        assertTrue(!PillowResize.verticalFirst(95, 79, 56, 64))
        assertTrue(!PillowResize.verticalFirst(100, 100, 80, 60)) // 40 > 2 * 20 is false
        assertTrue(PillowResize.verticalFirst(100, 100, 80, 59))
        assertTrue(!PillowResize.verticalFirst(30, 20, 60, 40))
    }

    @Test
    fun aTamperedSelfCheckFileIsRefusedAndAnOldArtifactHasNone() {
        val folder = File(Golden.dir, "selfcheck/vit_bilinear_nchw")
        val manifest = manifestOf(folder)
        val tampered = "selfcheck/samples.f32"
        try {
            ArtifactFiles.verify(manifest, { p -> if (p == manifest.modelFile) 0L else File(folder, p).length() }, { p ->
                val bytes = if (p == manifest.modelFile) ByteArray(0) else File(folder, p).readBytes()
                if (p == tampered) bytes[bytes.size / 2] = (bytes[bytes.size / 2].toInt() xor 1).toByte()
                java.io.ByteArrayInputStream(bytes)
            })
            fail("a tampered self-check file was accepted")
        } catch (error: ManifestException) {
            assertTrue(error.message!!, error.message!!.contains("$tampered: sha256 checksum mismatch"))
        }
        val old = Manifest.parse(File(Golden.dir, "images/lanczos/manifest.json").readText(Charsets.UTF_8))
        assertNull(old.selfcheck)
        assertNull(SelfCheck.run(old, { throw AssertionError("nothing to read") }, JvmImages::decode))
        assertNotNull(manifest.selfcheck)
    }
}
