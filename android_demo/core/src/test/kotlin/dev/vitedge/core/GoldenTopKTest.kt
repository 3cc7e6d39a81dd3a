package dev.vitedge.core

import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Test
import java.io.File

/** Same logits + same labels -> the same top-5 (indices, labels, softmax scores) as Classifier.predict. */
class GoldenTopKTest {
    @Test
    fun everyTopKCaseMatchesThePythonRuntime() {
        val cases = Golden.topkCases()
        assertTrue("no top-k cases in ${Golden.dir}", cases.isNotEmpty())
        var worst = 0.0
        for (name in cases) {
            val folder = File(Golden.dir, "topk/$name")
            val case = Golden.read(File(folder, "case.json"))
            val manifest = Manifest.parse(File(folder, "manifest.json").readText(Charsets.UTF_8), "$name/manifest.json")
            val logits = Golden.floats(File(folder, case.obj("logits").string("file")))
            assertEquals(case.obj("logits").int("count"), logits.size)
            val expected = case.objects("expected")
            val actual = TopK.topK(logits, case.int("k"), manifest)
            assertEquals("$name: number of predictions", expected.size, actual.size)
            for ((rank, want) in expected.withIndex()) {
                val got = actual[rank]
                assertEquals("$name rank $rank: index", want.int("index"), got.index)
                assertEquals("$name rank $rank: label", want.string("label"), got.label)
                val diff = Math.abs(want.double("score") - got.score)
                assertTrue("$name rank $rank: score ${got.score} vs ${want.double("score")}", diff <= Golden.scoreTolerance)
                worst = Math.max(worst, diff)
            }
            println("golden top-k $name: ${actual.joinToString { "${it.index}:${it.score}" }}")
        }
        println("golden top-k: ${cases.size} cases, worst score |diff| $worst (tolerance ${Golden.scoreTolerance})")
    }
}
