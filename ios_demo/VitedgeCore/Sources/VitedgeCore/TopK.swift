import Foundation

/// One class of the top-k: its label, its index in the logits, its softmax probability.
public struct Prediction: Equatable {
    public let label: String
    public let index: Int
    public let score: Float
}

/// Softmax and top-k as `vitedge.runtime.Classifier.predict` (and the Kotlin core's `TopK`) compute them.
public enum TopK {
    /// Numerically stable softmax: max subtracted in float, exp and sum in double, result rounded to float.
    public static func softmax(_ logits: [Float]) -> [Float] {
        precondition(!logits.isEmpty, "no logits")
        let maximum = logits.max()!
        let exps = logits.map { exp(Double($0 - maximum)) }
        let sum = exps.reduce(0.0, +)
        return exps.map { Float($0 / sum) }
    }

    /// Class indices by descending score; equal scores keep index order (the runtime's stable argsort).
    public static func order(_ scores: [Float]) -> [Int] {
        Array(scores.indices).sorted { a, b in scores[a] != scores[b] ? scores[a] > scores[b] : a < b }
    }

    /// The best `k` classes (fewer when there are fewer classes), best first.
    public static func topK(_ logits: [Float], k: Int, label: (Int) -> String) -> [Prediction] {
        precondition(k >= 1, "k must be at least 1")
        let scores = softmax(logits)
        return order(scores).prefix(k).map { Prediction(label: label($0), index: $0, score: scores[$0]) }
    }

    /// Top-k labelled by the manifest (`LABEL_<i>` where it has no label).
    public static func topK(_ logits: [Float], k: Int, manifest: Manifest) -> [Prediction] {
        topK(logits, k: k) { manifest.label($0) }
    }
}
