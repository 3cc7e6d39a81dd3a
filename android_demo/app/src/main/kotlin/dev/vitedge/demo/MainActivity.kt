package dev.vitedge.demo

import android.Manifest.permission.CAMERA
import android.content.pm.PackageManager
import android.os.Bundle
import android.os.SystemClock
import android.util.Log
import android.widget.Button
import android.widget.TextView
import androidx.activity.ComponentActivity
import androidx.activity.result.contract.ActivityResultContracts
import androidx.camera.core.CameraSelector
import androidx.camera.core.ImageAnalysis
import androidx.camera.core.ImageProxy
import androidx.camera.core.Preview
import androidx.camera.lifecycle.ProcessCameraProvider
import androidx.camera.view.PreviewView
import androidx.core.content.ContextCompat
import dev.vitedge.core.RgbImage
import java.util.Locale
import java.util.concurrent.ExecutorService
import java.util.concurrent.Executors

/**
 * Camera preview with the artifact's top-5 labels and latency, updated for every analysed frame.
 *
 * Frames come from CameraX's ImageAnalysis as RGBA (the camera pipeline decodes and converts; the
 * demo starts from RGB pixels, like the golden tests), turned upright by the frame's rotation, then
 * preprocessed by :core exactly as the manifest says (the whole frame is resized as the Python
 * runtime resizes a photo), run with LiteRT, and the top-5 shown.
 */
class MainActivity : ComponentActivity() {
    private lateinit var preview: PreviewView
    private lateinit var results: TextView
    private lateinit var latency: TextView
    private val analysisExecutor: ExecutorService = Executors.newSingleThreadExecutor()
    @Volatile private var classifier: LiteRtClassifier? = null
    @Volatile private var artifact: Artifact? = null
    @Volatile private var selfTestUntil = 0L // frames leave the Self-test's verdicts on screen until then
    private var averageInferenceMs = 0.0
    private var frames = 0

    private val askCamera = registerForActivityResult(ActivityResultContracts.RequestPermission()) { granted ->
        if (granted) startCamera() else results.setText(R.string.no_camera)
    }

    private val pickFolder = registerForActivityResult(ActivityResultContracts.OpenDocumentTree()) { tree ->
        if (tree != null) analysisExecutor.execute { load { Artifact.importTree(this, tree) } }
    }

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContentView(R.layout.activity_main)
        preview = findViewById(R.id.preview)
        results = findViewById(R.id.results)
        latency = findViewById(R.id.latency)
        findViewById<Button>(R.id.open_artifact).setOnClickListener { pickFolder.launch(null) }
        findViewById<Button>(R.id.self_test).setOnClickListener { analysisExecutor.execute { selfTest() } }

        analysisExecutor.execute {
            load {
                Artifact.openDefault(this) ?: throw IllegalStateException(
                    "No artifact: pick a folder made by `vitedge convert MODEL --to tflite --out DIR`, " +
                        "or put one in app/src/main/assets/artifact/ and rebuild"
                )
            }
        }
        if (ContextCompat.checkSelfPermission(this, CAMERA) == PackageManager.PERMISSION_GRANTED) startCamera() else askCamera.launch(CAMERA)
    }

    /** Open an artifact on the analysis thread (so no frame runs half-loaded) and show what happened. */
    private fun load(open: () -> Artifact) {
        try {
            val artifact = open()
            classifier?.close()
            val threads = Runtime.getRuntime().availableProcessors().coerceIn(1, 4)
            classifier = LiteRtClassifier(artifact, threads)
            this.artifact = artifact
            frames = 0
            averageInferenceMs = 0.0
            val m = artifact.manifest
            show(
                "${artifact.name}: ${m.format} ${m.precision}, ${m.labels.size} labels" +
                    (if (m.isRandomInit) "\nrandom-init weights: predictions are meaningless (latency work only)" else ""),
                classifier!!.threadsDescription
            )
        } catch (error: Exception) {
            Log.e(TAG, "cannot open the artifact", error)
            classifier?.close()
            classifier = null
            show(error.message ?: error.toString(), "")
        }
    }

    /** Run the artifact's self-check on the analysis thread and keep its verdicts on screen for a while. */
    private fun selfTest() {
        val model = classifier
        val opened = artifact
        if (model == null || opened == null) {
            show("No artifact to test", "")
            return
        }
        val lines = try {
            SelfTest.run(opened, model)
        } catch (error: Exception) {
            Log.e(TAG, "self-test failed", error)
            listOf("Self-test: FAILED: ${error.message ?: error}")
        }
        selfTestUntil = SystemClock.elapsedRealtime() + SELF_TEST_SHOWN_MS
        show(lines.joinToString("\n"), "preprocessing: decoded with BitmapFactory, :core; model: LiteRT, ${model.threadsDescription}")
    }

    private fun startCamera() {
        val providerFuture = ProcessCameraProvider.getInstance(this)
        providerFuture.addListener({
            val provider = providerFuture.get()
            val previewUseCase = Preview.Builder().build().also { it.setSurfaceProvider(preview.surfaceProvider) }
            val analysis = ImageAnalysis.Builder()
                .setBackpressureStrategy(ImageAnalysis.STRATEGY_KEEP_ONLY_LATEST)
                .setOutputImageFormat(ImageAnalysis.OUTPUT_IMAGE_FORMAT_RGBA_8888)
                .build()
            analysis.setAnalyzer(analysisExecutor) { frame -> analyze(frame) }
            provider.unbindAll()
            provider.bindToLifecycle(this, CameraSelector.DEFAULT_BACK_CAMERA, previewUseCase, analysis)
        }, ContextCompat.getMainExecutor(this))
    }

    private fun analyze(frame: ImageProxy) {
        frame.use {
            val model = classifier ?: return
            if (SystemClock.elapsedRealtime() < selfTestUntil) return
            val plane = it.planes[0]
            val buffer = plane.buffer
            val bytes = ByteArray(buffer.remaining()).also { array -> buffer.get(array) }
            val image = RgbImage.fromRgba(bytes, it.width, it.height, plane.rowStride, plane.pixelStride)
                .rotated(it.imageInfo.rotationDegrees)
            val result = try {
                model.classify(image, 5)
            } catch (error: Exception) {
                Log.e(TAG, "classification failed", error)
                show(error.message ?: error.toString(), "")
                return
            }
            frames++
            averageInferenceMs += (result.inferenceMs - averageInferenceMs) / minOf(frames, 20)
            val top = result.predictions.mapIndexed { rank, p ->
                String.format(Locale.US, "%d. %-24s %5.1f%%  #%d", rank + 1, p.label.take(24), p.score * 100, p.index)
            }.joinToString("\n")
            show(
                top,
                String.format(
                    Locale.US, "inference %.1f ms (avg %.1f)  preprocess %.1f ms  %dx%d frame",
                    result.inferenceMs, averageInferenceMs, result.preprocessMs, image.width, image.height
                )
            )
        }
    }

    private fun show(main: String, detail: String) = runOnUiThread {
        results.text = main
        latency.text = detail
    }

    override fun onDestroy() {
        super.onDestroy()
        analysisExecutor.execute { classifier?.close(); classifier = null }
        analysisExecutor.shutdown()
    }

    companion object {
        private const val TAG = "vitedge"
        private const val SELF_TEST_SHOWN_MS = 15_000L
    }
}
