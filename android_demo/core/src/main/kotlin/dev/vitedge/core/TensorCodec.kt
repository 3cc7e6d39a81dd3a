package dev.vitedge.core

/**
 * Float tensors to and from a model's integer tensors, as the runtime's TFLite backend does:
 * inputs `clip(rint(x / scale + zero_point))` (raw 0..255 pixels for `normalization_in_model`:
 * no scale), outputs `(q - zero_point) * scale`, all in float arithmetic.
 */
object TensorCodec {
    /** Quantize [values] to [dtype] (`uint8` or `int8`); a null [scale] rounds and clips only. */
    fun quantize(values: FloatArray, dtype: String, scale: Double?, zeroPoint: Int): ByteArray {
        val (low, high) = limits(dtype)
        val scaleF = scale?.toFloat()
        val zeroF = zeroPoint.toFloat()
        return ByteArray(values.size) {
            val v: Float = if (scaleF != null) values[it] / scaleF + zeroF else values[it]
            var q = Math.rint(v.toDouble())
            if (q < low) q = low.toDouble()
            if (q > high) q = high.toDouble()
            q.toInt().toByte()
        }
    }

    /** Dequantize a model's integer output. */
    fun dequantize(values: ByteArray, dtype: String, scale: Double, zeroPoint: Int): FloatArray {
        val unsigned = limits(dtype).first == 0
        val scaleF = scale.toFloat()
        val zeroF = zeroPoint.toFloat()
        return FloatArray(values.size) {
            val q = if (unsigned) values[it].toInt() and 0xFF else values[it].toInt()
            (q.toFloat() - zeroF) * scaleF
        }
    }

    private fun limits(dtype: String): Pair<Int, Int> = when (dtype) {
        "uint8" -> Pair(0, 255)
        "int8" -> Pair(-128, 127)
        else -> throw IllegalArgumentException("no 8-bit codec for dtype '$dtype' (uint8 or int8)")
    }
}
