package dev.vitedge.core

import kotlin.math.exp

/** One class of the top-k: its label, its index in the logits, its softmax probability. */
data class Prediction(val label: String, val index: Int, val score: Float)

/** Softmax and top-k as `vitedge.runtime.Classifier.predict` computes them. */
object TopK {
    /** Numerically stable softmax: max subtracted in float, exp and sum in double, result rounded to float. */
    fun softmax(logits: FloatArray): FloatArray {
        require(logits.isNotEmpty()) { "no logits" }
        var max = logits[0]
        for (v in logits) if (v > max) max = v
        val exps = DoubleArray(logits.size)
        var sum = 0.0
        for (i in logits.indices) {
            val shifted: Float = logits[i] - max
            exps[i] = exp(shifted.toDouble())
            sum += exps[i]
        }
        return FloatArray(logits.size) { (exps[it] / sum).toFloat() }
    }

    /** Class indices by descending score; equal scores keep index order (the runtime's stable argsort). */
    fun order(scores: FloatArray): List<Int> =
        (0 until scores.size).sortedWith(Comparator { a, b ->
            val byScore = java.lang.Float.compare(scores[b], scores[a])
            if (byScore != 0) byScore else a - b
        })

    /** The best [k] classes (fewer when there are fewer classes), best first, labelled by [label]. */
    fun topK(logits: FloatArray, k: Int, label: (Int) -> String): List<Prediction> {
        require(k >= 1) { "k must be at least 1, got $k" }
        val scores = softmax(logits)
        return order(scores).take(k).map { Prediction(label(it), it, scores[it]) }
    }

    /** Top-k labelled by the manifest (`LABEL_<i>` where it has no label). */
    fun topK(logits: FloatArray, k: Int, manifest: Manifest): List<Prediction> = topK(logits, k) { manifest.label(it) }
}
