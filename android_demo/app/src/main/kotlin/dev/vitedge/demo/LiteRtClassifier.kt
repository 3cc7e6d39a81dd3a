package dev.vitedge.demo

import android.os.SystemClock
import dev.vitedge.core.Layout
import dev.vitedge.core.Prediction
import dev.vitedge.core.Preprocessor
import dev.vitedge.core.RgbImage
import dev.vitedge.core.TensorCodec
import dev.vitedge.core.TopK
import org.tensorflow.lite.DataType
import org.tensorflow.lite.Interpreter
import org.tensorflow.lite.Tensor
import java.io.Closeable
import java.nio.ByteBuffer
import java.nio.ByteOrder

/** One classification: the top-k and where the time went (milliseconds). */
class Result(val predictions: List<Prediction>, val preprocessMs: Double, val inferenceMs: Double)

/**
 * Runs an artifact with LiteRT's Interpreter (XNNPACK on the CPU). The input tensor is built by the
 * pure-Kotlin core exactly as the manifest's `preprocess` says (the same arithmetic as the Python
 * runtime, checked against golden vectors), in the manifest's layout and dtype: float32, raw uint8
 * pixels (`normalization_in_model`), or int8/uint8 quantized with the manifest's scale and zero point.
 * Not thread-safe: call [classify] from one thread (the camera's analysis executor).
 */
class LiteRtClassifier(private val artifact: Artifact, threads: Int) : Closeable {
    private val manifest = artifact.manifest
    private val preprocessor = Preprocessor(manifest.preprocess)
    private val interpreter = Interpreter(artifact.model, Interpreter.Options().setNumThreads(threads))
    private val signature: String? = interpreter.signatureKeys.let { keys ->
        if (keys.contains("serving_default")) "serving_default" else keys.firstOrNull()
    }
    private val inputTensor: Tensor =
        if (signature != null) interpreter.getInputTensorFromSignature(manifest.input.name, signature) else interpreter.getInputTensor(0)
    private val logitsTensor: Tensor =
        if (signature != null) interpreter.getOutputTensorFromSignature(manifest.outputs.logits, signature) else interpreter.getOutputTensor(0)
    private val input: ByteBuffer = ByteBuffer.allocateDirect(inputTensor.numBytes()).order(ByteOrder.nativeOrder())
    private val logits: ByteBuffer = ByteBuffer.allocateDirect(logitsTensor.numBytes()).order(ByteOrder.nativeOrder())
    private val outputSize: Pair<Int, Int> // (height, width) the model takes

    init {
        val shape = inputTensor.shape()
        require(shape.size == 4) { "the model input has shape ${shape.contentToString()}, expected 4 dimensions" }
        outputSize = if (manifest.input.layout == Layout.NCHW) Pair(shape[2], shape[3]) else Pair(shape[1], shape[2])
        val fixed = manifest.preprocess.outputSize
        require(fixed == null || (fixed.height == outputSize.first && fixed.width == outputSize.second)) {
            "the manifest's preprocessing makes ${fixed?.height}x${fixed?.width} but the model takes ${outputSize.first}x${outputSize.second}"
        }
    }

    val threadsDescription = "LiteRT Interpreter, $threads threads, input ${inputTensor.dataType()} ${inputTensor.shape().contentToString()}"

    fun classify(image: RgbImage, k: Int = 5): Result {
        val start = SystemClock.elapsedRealtimeNanos()
        val tensor = preprocessor.tensor(image)
        val preprocessed = SystemClock.elapsedRealtimeNanos()
        val values = logitsOf(tensor)
        val done = SystemClock.elapsedRealtimeNanos()
        return Result(TopK.topK(values, k, manifest), (preprocessed - start) / 1e6, (done - preprocessed) / 1e6)
    }

    /** The model's logits for one preprocessed tensor in the manifest's layout: what [classify] and the Self-test run. */
    fun logitsOf(tensor: FloatArray): FloatArray {
        require(tensor.size == outputSize.first * outputSize.second * 3) {
            "preprocessing made ${tensor.size / 3} pixels; the model takes ${outputSize.first}x${outputSize.second}"
        }
        input.rewind()
        when (inputTensor.dataType()) {
            DataType.FLOAT32 -> input.asFloatBuffer().put(tensor)
            DataType.UINT8 -> input.put(TensorCodec.quantize(tensor, "uint8", manifest.input.scale, manifest.input.zeroPoint ?: 0))
            DataType.INT8 -> input.put(TensorCodec.quantize(tensor, "int8", manifest.input.scale, manifest.input.zeroPoint ?: 0))
            else -> throw IllegalStateException("input dtype ${inputTensor.dataType()} is not supported by the demo")
        }
        input.rewind()
        logits.rewind()
        if (signature != null) {
            interpreter.runSignature(mapOf(manifest.input.name to input), mapOf(manifest.outputs.logits to logits), signature)
        } else {
            interpreter.run(input, logits)
        }
        logits.rewind()
        return when (logitsTensor.dataType()) {
            DataType.FLOAT32 -> FloatArray(logitsTensor.numElements()).also { logits.asFloatBuffer().get(it) }
            DataType.INT8, DataType.UINT8 -> {
                val q = manifest.outputs.logitsQuantization
                    ?: throw IllegalStateException("the logits are ${logitsTensor.dataType()} but the manifest has no quantization for them")
                val bytes = ByteArray(logitsTensor.numElements()).also { logits.get(it) }
                TensorCodec.dequantize(bytes, q.dtype, q.scale, q.zeroPoint)
            }
            else -> throw IllegalStateException("logits dtype ${logitsTensor.dataType()} is not supported by the demo")
        }
    }

    override fun close() = interpreter.close()
}
