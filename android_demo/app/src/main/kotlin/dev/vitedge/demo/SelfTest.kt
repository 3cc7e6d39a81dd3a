package dev.vitedge.demo

import android.graphics.Bitmap
import android.graphics.BitmapFactory
import dev.vitedge.core.ModelOutputs
import dev.vitedge.core.RgbImage
import dev.vitedge.core.SelfCheck

/**
 * The Self-test: the artifact's self-check (what `vitedge verify` runs on a Pi), on the phone. The artifact's
 * files were checked (sha256, the self-check's too) when it was opened; this decodes the self-check's PNG/JPEG
 * images with BitmapFactory, preprocesses them with :core and compares the tensors with the conversion's
 * (preprocessing parity), then runs LiteRT on the reference inputs and compares the logits with torch's by
 * the tolerance the artifact's precision passed (model parity). The embedding is not compared here.
 */
object SelfTest {
    /** PNG/JPEG bytes -> RGB pixels, alpha dropped (not composited): unpremultiplied ARGB_8888, as the runtime reads them. */
    fun decode(bytes: ByteArray): RgbImage {
        val options = BitmapFactory.Options().apply {
            inPremultiplied = false
            inPreferredConfig = Bitmap.Config.ARGB_8888
        }
        val bitmap = BitmapFactory.decodeByteArray(bytes, 0, bytes.size, options)
            ?: throw IllegalArgumentException("BitmapFactory cannot decode these ${bytes.size} bytes")
        val argb = IntArray(bitmap.width * bitmap.height)
        bitmap.getPixels(argb, 0, bitmap.width, 0, 0, bitmap.width, bitmap.height)
        return RgbImage.fromArgb(argb, bitmap.width, bitmap.height).also { bitmap.recycle() }
    }

    /** The verdict lines to show: PASSED/FAILED, then preprocessing parity and model parity. */
    fun run(artifact: Artifact, classifier: LiteRtClassifier): List<String> {
        val report = SelfCheck.run(artifact.manifest, artifact.read, ::decode, model = { tensor -> ModelOutputs(classifier.logitsOf(tensor)) })
            ?: return listOf("Self-test: ${SelfCheck.NO_SELFCHECK}")
        return listOf("Self-test of ${artifact.name}: " + (if (report.ok) "PASSED" else "FAILED")) + report.lines()
    }
}
