import CryptoKit
import Foundation

/// What the model gives for one input: the logits, and the embedding when the runner reads it (nil: not compared).
public struct ModelOutputs {
    public let logits: [Float]
    public let embedding: [Float]?

    public init(logits: [Float], embedding: [Float]? = nil) {
        self.logits = logits
        self.embedding = embedding
    }
}

/// A stage's outcome; the raw value is what `vitedge verify` prints.
public enum SelfCheckStatus: String {
    case passed = "OK"
    case failed = "FAILED"
    case notChecked = "not checked"
}

/// One stage's verdict (`preprocessing` or `model`), a line as `vitedge verify` prints it.
public struct Verdict {
    public let stage: String
    public let status: SelfCheckStatus
    public let summary: String

    public var line: String { "\(stage) parity: \(status.rawValue): \(summary)" }
}

/// Both verdicts of a self-check, with the preprocessing numbers behind the first.
public struct SelfCheckReport {
    public let preprocessing: Verdict
    public let model: Verdict
    public let images: Int
    public let bitIdentical: Int
    public let maxAbsDiff: Double

    public var ok: Bool { preprocessing.status != .failed && model.status != .failed }
    public var lines: [String] { [preprocessing.line, model.line] }
}

/// One image of a self-check: its encoded file and its reference tensor (shape, sha256, sample grid).
public struct SelfCheckImage {
    public let name: String
    public let file: String
    public let what: String
    public let encodedAs: String
    public let shape: [Int]
    public let sha256: String
    public let rows: [Int]
    public let cols: [Int]
    public let offset: Int

    public var sampleCount: Int { 3 * rows.count * cols.count }
}

/// An artifact's self-check (`selfcheck/`, schema `vitedge.selfcheck/1`) as `vitedge convert` writes it; the same
/// reader as the Kotlin core's `SelfCheckData` (`vitedge.runtime.selfcheck_files` documents the format).
public struct SelfCheckData {
    public static let schema = "vitedge.selfcheck/1"
    static let regenerate = "re-create the artifact with vitedge convert to write a fresh self-check"

    public let preprocess: PreprocessSpec
    public let images: [SelfCheckImage]
    public let samples: [Float]
    public let logits: [[Float]]
    public let embedding: [[Float]]?
    public let reference: String
    public let tensorTolerance: Double
    public let modelTolerance: [String: Double]
    let folder: String
    let read: (String) throws -> Data

    /// The encoded bytes of `image`, as the artifact holds them.
    public func imageBytes(_ image: SelfCheckImage) throws -> Data { try read(path(image.file)) }

    /// The reference values of `image` at its grid: channel, then row, then column.
    public func referenceSamples(_ image: SelfCheckImage) -> [Float] { Array(samples[image.offset..<(image.offset + image.sampleCount)]) }

    func path(_ name: String) -> String { folder.isEmpty ? name : "\(folder)/\(name)" }

    /// The manifest's self-check, read through `read` (a path relative to the artifact folder -> its bytes), or nil
    /// when the artifact has none. Checksums are `SelfCheck.verifyFiles`' job; files the index names must be listed.
    public static func read(_ manifest: Manifest, read: @escaping (String) throws -> Data) throws -> SelfCheckData? {
        guard let listed = manifest.selfcheck else { return nil }
        let folder = listed.index.contains("/") ? String(listed.index[..<listed.index.lastIndex(of: "/")!]) : ""
        let paths = Set(listed.files.map { $0.path })
        func file(_ name: Any?) throws -> String {
            guard let name = name as? String, paths.contains(folder.isEmpty ? name : "\(folder)/\(name)") else {
                throw ManifestError("\(listed.index): '\(name ?? "null")' is not one of the self-check files the manifest lists; \(regenerate)")
            }
            return name
        }
        func floats(_ entry: Any?) throws -> [Float] {
            guard let entry = entry as? [String: Any] else { throw ManifestError("\(listed.index): malformed; \(regenerate)") }
            let name = try file(entry["file"])
            return SelfCheck.floats(try read(folder.isEmpty ? name : "\(folder)/\(name)"))
        }
        guard let index = try JSONSerialization.jsonObject(with: try read(listed.index), options: []) as? [String: Any],
              index["schema"] as? String == schema else {
            throw ManifestError("\(listed.index): not a \(schema) index; \(regenerate)")
        }
        guard let preprocessObject = index["preprocess"] as? [String: Any],
              let tolerance = index["tolerance"] as? [String: Any],
              let model = tolerance["model"] as? [String: Any],
              let preprocessing = tolerance["preprocessing"] as? [String: Any],
              let tensorTolerance = preprocessing["max_abs_diff"] as? Double,
              let imageEntries = index["images"] as? [[String: Any]],
              let logitsEntry = index["logits"] as? [String: Any] else {
            throw ManifestError("\(listed.index): malformed self-check; \(regenerate)")
        }
        let spec = try JSONDecoder().decode(PreprocessSpec.self, from: JSONSerialization.data(withJSONObject: preprocessObject))
        let images = try imageEntries.map { try image($0, file: file) }
        let logits = try rows(try floats(logitsEntry), logitsEntry["shape"])
        var embedding: [[Float]]? = nil
        if let entry = index["embedding"] as? [String: Any] { embedding = try rows(try floats(entry), entry["shape"]) }
        var modelTolerance: [String: Double] = [:]
        for (key, value) in model { if let limit = value as? Double { modelTolerance[key] = limit } }
        let data = SelfCheckData(
            preprocess: spec, images: images, samples: try floats(index["samples"]), logits: logits, embedding: embedding,
            reference: index["reference"] as? String ?? "torch fp32", tensorTolerance: tensorTolerance,
            modelTolerance: modelTolerance, folder: folder, read: read
        )
        try data.check(listed.index)
        return data
    }

    private static func image(_ json: [String: Any], file: (Any?) throws -> String) throws -> SelfCheckImage {
        guard let tensor = json["tensor"] as? [String: Any], let name = json["name"] as? String,
              let encodedAs = json["encoded_as"] as? String, let shape = tensor["shape"] as? [Int],
              let sha256 = tensor["sha256"] as? String, let rows = tensor["rows"] as? [Int],
              let cols = tensor["cols"] as? [Int], let offset = tensor["offset"] as? Int else {
            throw ManifestError("self-check image entry is malformed; \(regenerate)")
        }
        return SelfCheckImage(name: name, file: try file(json["file"]), what: json["what"] as? String ?? "", encodedAs: encodedAs,
                              shape: shape, sha256: sha256, rows: rows, cols: cols, offset: offset)
    }

    private static func rows(_ values: [Float], _ shape: Any?) throws -> [[Float]] {
        guard let shape = shape as? [Int], shape.count == 2, values.count == shape[0] * shape[1] else {
            throw ManifestError("self-check outputs do not match their shape; \(regenerate)")
        }
        return (0..<shape[0]).map { Array(values[($0 * shape[1])..<(($0 + 1) * shape[1])]) }
    }

    private func check(_ origin: String) throws {
        var problems: [String] = []
        if images.isEmpty { problems.append("no images") }
        if logits.count != images.count { problems.append("\(logits.count) logits rows for \(images.count) images") }
        if let embedding = embedding, embedding.count != images.count { problems.append("\(embedding.count) embedding rows for \(images.count) images") }
        for image in images where image.shape.count != 3 || image.offset < 0 || image.offset + image.sampleCount > samples.count {
            problems.append("\(image.name): tensor shape \(image.shape) or samples out of range")
        }
        if !problems.isEmpty { throw ManifestError("\(origin): inconsistent self-check (\(problems.joined(separator: "; "))); \(SelfCheckData.regenerate)") }
    }
}

/// The artifact's self-check as `vitedge verify` and the Kotlin core's `SelfCheck` run it: decode each image with the
/// platform's decoder, preprocess it with this core and compare the tensor with the conversion's (sha256, then the
/// sampled values); then run the model on the reference inputs and judge its outputs by the tolerance the artifact's
/// precision passed at conversion. A preprocessing miss says which image, by how much and what kind of difference.
public enum SelfCheck {
    public static let noSelfCheck = "this artifact has no self-check (made before vitedge wrote them); re-create it with vitedge convert to add one"

    struct ImageParity {
        let image: SelfCheckImage
        let tensor: [Float]?
        let maxAbsDiff: Double?
        let bitIdentical: Bool
        let passed: Bool
        var problem: String? = nil
    }

    /// Run the self-check of `manifest`'s artifact; nil when it has none (`noSelfCheck` says what to do).
    /// - Parameters:
    ///   - read: a path relative to the artifact folder -> its bytes
    ///   - decode: encoded PNG/JPEG bytes -> upright RGB pixels, alpha dropped (the platform's decoder)
    ///   - preprocessor: the preprocessing under test (the app's; default: the manifest's spec)
    ///   - model: runs one input tensor (the manifest's layout, no batch) through the model; nil: not checked
    public static func run(
        _ manifest: Manifest,
        read: @escaping (String) throws -> Data,
        decode: (Data) throws -> RGBImage,
        preprocessor: Preprocessor? = nil,
        model: (([Float]) throws -> ModelOutputs)? = nil
    ) throws -> SelfCheckReport? {
        guard let data = try SelfCheckData.read(manifest, read: read) else { return nil }
        let preprocessor = preprocessor ?? Preprocessor(spec: manifest.preprocess)
        let parities = data.images.map { parity(data, $0, preprocessor, decode) }
        let inputs = modelInputs(data, parities, preprocessor, decode)
        let diffs = parities.compactMap { $0.maxAbsDiff }
        return SelfCheckReport(
            preprocessing: preprocessingVerdict(data, parities, preprocessor.spec),
            model: try modelVerdict(data, inputs, model, isolated: parities.contains { !$0.passed }),
            images: parities.count,
            bitIdentical: parities.filter { $0.bitIdentical }.count,
            maxAbsDiff: diffs.max() ?? .nan
        )
    }

    /// Check every file the manifest lists, the self-check's too: present, right size, right sha256.
    public static func verifyFiles(_ manifest: Manifest, size: (String) -> Int64?, read: (String) throws -> Data) throws {
        for entry in manifest.allFiles {
            let what = manifest.files.contains(entry) ? "model file" : "self-check file"
            guard let actual = size(entry.path) else {
                throw ManifestError("\(entry.path): \(what) missing; the artifact is incomplete, copy the whole folder")
            }
            if actual != entry.bytes {
                throw ManifestError("\(entry.path): size \(actual) bytes differs from the manifest's \(entry.bytes); re-copy the artifact")
            }
            if sha256(try read(entry.path)) != entry.sha256 {
                throw ManifestError("\(entry.path): sha256 checksum mismatch with the manifest; the file was modified or corrupted, re-copy the artifact")
            }
        }
    }

    /// Hex sha256 of some bytes.
    public static func sha256(_ data: Data) -> String {
        SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
    }

    /// sha256 of a tensor's little-endian float32 bytes, as the Python runtime computes it.
    public static func tensorSha256(_ tensor: [Float]) -> String {
        var bytes = Data(capacity: tensor.count * 4)
        for value in tensor {
            var bits = value.bitPattern.littleEndian
            withUnsafeBytes(of: &bits) { bytes.append(contentsOf: $0) }
        }
        return sha256(bytes)
    }

    /// Little-endian float32 bytes as floats.
    public static func floats(_ data: Data) -> [Float] {
        let bytes = [UInt8](data)
        return stride(from: 0, to: bytes.count - 3, by: 4).map { offset in
            let bits = UInt32(bytes[offset]) | UInt32(bytes[offset + 1]) << 8 | UInt32(bytes[offset + 2]) << 16 | UInt32(bytes[offset + 3]) << 24
            return Float(bitPattern: bits)
        }
    }

    /// The values of a tensor (`shape` in `layout`) at the grid: channel, then row, then column.
    public static func sample(_ tensor: [Float], shape: [Int], layout: Layout, rows: [Int], cols: [Int]) -> [Float] {
        let height = layout == .NCHW ? shape[1] : shape[0]
        let width = layout == .NCHW ? shape[2] : shape[1]
        var out: [Float] = []
        out.reserveCapacity(3 * rows.count * cols.count)
        for c in 0..<3 {
            for r in rows {
                for col in cols {
                    out.append(layout == .NCHW ? tensor[(c * height + r) * width + col] : tensor[(r * width + col) * 3 + c])
                }
            }
        }
        return out
    }

    static func parity(_ data: SelfCheckData, _ image: SelfCheckImage, _ preprocessor: Preprocessor, _ decode: (Data) throws -> RGBImage) -> ImageParity {
        let pixels: RGBImage
        do {
            pixels = preprocessor.pixels(try decode(try data.imageBytes(image)))
        } catch {
            return ImageParity(image: image, tensor: nil, maxAbsDiff: nil, bitIdentical: false, passed: false, problem: "cannot be decoded here (\(error))")
        }
        var tensor = [Float](repeating: 0, count: pixels.width * pixels.height * 3)
        tensor.withUnsafeMutableBufferPointer { preprocessor.writeTensor(pixels, into: $0) }
        let shape = preprocessor.spec.layout == .NCHW ? [3, pixels.height, pixels.width] : [pixels.height, pixels.width, 3]
        if shape != image.shape {
            return ImageParity(image: image, tensor: tensor, maxAbsDiff: nil, bitIdentical: false, passed: false,
                               problem: "tensor shape \(shape) instead of \(image.shape): check size, crop_size and layout")
        }
        if tensorSha256(tensor) == image.sha256 {
            return ImageParity(image: image, tensor: tensor, maxAbsDiff: 0, bitIdentical: true, passed: true)
        }
        let actual = sample(tensor, shape: shape, layout: preprocessor.spec.layout, rows: image.rows, cols: image.cols)
        let reference = data.referenceSamples(image)
        var diff = 0.0
        for i in 0..<actual.count { diff = max(diff, abs(Double(actual[i]) - Double(reference[i]))) }
        return ImageParity(image: image, tensor: tensor, maxAbsDiff: diff, bitIdentical: false, passed: diff <= data.tensorTolerance)
    }

    static func preprocessingVerdict(_ data: SelfCheckData, _ parities: [ImageParity], _ spec: PreprocessSpec) -> Verdict {
        let failed = parities.filter { !$0.passed }
        let identical = parities.filter { $0.bitIdentical }.count
        if failed.isEmpty {
            if identical == parities.count {
                return Verdict(stage: "preprocessing", status: .passed, summary: "\(parities.count) images, tensors bit-identical to the conversion's")
            }
            let worst = parities.compactMap { $0.maxAbsDiff }.max() ?? 0
            return Verdict(stage: "preprocessing", status: .passed,
                           summary: "\(parities.count) images, max |diff| \(g(worst)) <= \(g(data.tensorTolerance)) (\(identical) bit-identical)")
        }
        let worst = failed.max { ($0.maxAbsDiff ?? .infinity) < ($1.maxAbsDiff ?? .infinity) }!
        let amount = worst.maxAbsDiff.map { "max |diff| \(g($0)) > \(g(data.tensorTolerance))" } ?? (worst.problem ?? "")
        let about = worst.image.what.isEmpty ? worst.image.encodedAs : worst.image.what
        return Verdict(stage: "preprocessing", status: .failed,
                       summary: "this app's preprocessing differs from the conversion's on \(failed.count) of \(parities.count) images "
                           + "(worst: \(worst.image.file), \(about): \(amount)); \(explain(data, parities, spec))")
    }

    static func explain(_ data: SelfCheckData, _ parities: [ImageParity], _ spec: PreprocessSpec) -> String {
        let changed = specChanges(data.preprocess, spec)
        if !changed.isEmpty { return "the preprocessing in use differs from the one the self-check was made with (\(changed)): restore it" }
        let failed = parities.filter { !$0.passed }
        if failed.allSatisfy({ $0.image.encodedAs == "JPEG" }) && parities.contains(where: { $0.image.encodedAs != "JPEG" }) {
            return "only JPEG images differ: this platform's JPEG decoder differs from Pillow's (libjpeg-turbo)"
        }
        guard let worst = failed.filter({ $0.maxAbsDiff != nil }).max(by: { $0.maxAbsDiff! < $1.maxAbsDiff! }), let tensor = worst.tensor else {
            return failed.first?.problem ?? "check the preprocessing"
        }
        let actual = sample(tensor, shape: worst.image.shape, layout: spec.layout, rows: worst.image.rows, cols: worst.image.cols)
        return kindOfDifference(data.referenceSamples(worst.image), actual)
    }

    /// Swapped channels, a per-channel scale/offset (mean/std/rescale) or a spatial change (resize), as advice.
    public static func kindOfDifference(_ reference: [Float], _ actual: [Float]) -> String {
        let plane = reference.count / 3
        var swapped = true
        for c in 0..<3 {
            for i in 0..<plane where abs(actual[c * plane + i] - reference[(2 - c) * plane + i]) > 1e-5 { swapped = false }
        }
        if swapped { return "the channels are swapped: check channel_order (RGB or BGR)" }
        let affine = (0..<3).allSatisfy { c in
            isAffine(Array(reference[(c * plane)..<((c + 1) * plane)]), Array(actual[(c * plane)..<((c + 1) * plane)]))
        }
        if affine {
            return "the pixels are where they should be but their values are scaled or shifted per channel: check mean, std and rescale_factor"
        }
        return "the values differ from position to position: check the resize (size, resample filter such as bilinear vs bicubic) and the center crop"
    }

    static func isAffine(_ x: [Float], _ y: [Float]) -> Bool {
        let n = Double(x.count)
        let mx = x.reduce(0.0) { $0 + Double($1) } / n
        let my = y.reduce(0.0) { $0 + Double($1) } / n
        var sxx = 0.0
        var sxy = 0.0
        for i in 0..<x.count {
            sxx += (Double(x[i]) - mx) * (Double(x[i]) - mx)
            sxy += (Double(x[i]) - mx) * (Double(y[i]) - my)
        }
        let spread = Double((x.max() ?? 0) - (x.min() ?? 0))
        if spread == 0 { return Double((y.max() ?? 0) - (y.min() ?? 0)) <= 1e-4 }
        let slope = sxy / sxx
        let offset = my - slope * mx
        var worst = 0.0
        for i in 0..<x.count { worst = max(worst, abs(slope * Double(x[i]) + offset - Double(y[i]))) }
        return worst <= 1e-4 * max(1.0, abs(slope) * spread)
    }

    /// `mean [0.485, 0.456, 0.406] (made with [0.5, 0.5, 0.5])` for each field that differs; empty when none does.
    public static func specChanges(_ made: PreprocessSpec, _ used: PreprocessSpec) -> String {
        let now = fields(used)
        return fields(made).filter { $0.1 != value(now, $0.0) }
            .map { "\($0.0) \(value(now, $0.0)) (made with \($0.1))" }
            .joined(separator: ", ")
    }

    private static func value(_ fields: [(String, String)], _ key: String) -> String {
        fields.first { $0.0 == key }?.1 ?? "None"
    }

    private static func fields(_ spec: PreprocessSpec) -> [(String, String)] {
        func pair(_ size: Size?) -> String { size.map { "[\($0.height), \($0.width)]" } ?? "None" }
        func list(_ values: [Double]?) -> String { values.map { "[" + $0.map { "\($0)" }.joined(separator: ", ") + "]" } ?? "None" }
        return [
            ("resize_mode", spec.resizeMode.rawValue),
            ("size", pair(spec.size)),
            ("shortest_edge", spec.shortestEdge.map { "\($0)" } ?? "None"),
            ("resample", spec.resample.rawValue),
            ("crop_size", pair(spec.cropSize)),
            ("rescale_factor", spec.rescaleFactor.map { g($0) } ?? "None"),
            ("mean", list(spec.mean)),
            ("std", list(spec.std)),
            ("channel_order", spec.bgr ? "BGR" : "RGB"),
            ("layout", spec.layout.rawValue),
            ("normalization_in_model", spec.normalizationInModel ? "true" : "false"),
        ]
    }

    /// Per image, what the model runs on: this app's tensor where it matches, else the recorded spec's when that is the reference.
    static func modelInputs(_ data: SelfCheckData, _ parities: [ImageParity], _ preprocessor: Preprocessor, _ decode: (Data) throws -> RGBImage) -> [[Float]?] {
        var inputs = parities.map { $0.passed ? $0.tensor : nil }
        if inputs.allSatisfy({ $0 != nil }) || specChanges(data.preprocess, preprocessor.spec).isEmpty { return inputs }
        let recorded = Preprocessor(spec: data.preprocess)
        for (i, parity) in parities.enumerated() where inputs[i] == nil {
            let again = self.parity(data, parity.image, recorded, decode)
            if again.bitIdentical { inputs[i] = again.tensor }
        }
        return inputs
    }

    static func modelVerdict(_ data: SelfCheckData, _ inputs: [[Float]?], _ model: (([Float]) throws -> ModelOutputs)?, isolated: Bool) throws -> Verdict {
        let available = inputs.indices.filter { inputs[$0] != nil }
        if available.isEmpty {
            return Verdict(stage: "model", status: .notChecked,
                           summary: "the reference inputs cannot be reproduced here, so the model cannot be checked apart from the preprocessing: fix the preprocessing first")
        }
        guard let model = model else { return Verdict(stage: "model", status: .notChecked, summary: "no model runner here (run the app's Self-test)") }
        let outputs = try available.map { try model(inputs[$0]!) }
        let referenceEmbedding = data.embedding.map { rows in available.map { rows[$0] } }
        let embedding: [[Float]]? = outputs.allSatisfy({ $0.embedding != nil }) ? outputs.map { $0.embedding! } : nil
        let metrics = try OutputMetrics(reference: available.map { data.logits[$0] }, logits: outputs.map { $0.logits },
                                        referenceEmbedding: referenceEmbedding, embedding: embedding)
        let failures = metrics.judge(data.modelTolerance)
        let where_ = "\(available.count) image(s)" + (isolated ? " fed the reference inputs" : "") + " vs \(data.reference)"
        if !failures.isEmpty {
            return Verdict(stage: "model", status: .failed,
                           summary: "\(where_): \(failures.joined(separator: "; ")); the model's outputs differ on this device (another Core ML version or compute unit?)")
        }
        let cleared = isolated ? "; the model computes what torch did, the preprocessing above is what differs" : ""
        return Verdict(stage: "model", status: .passed, summary: "\(where_): \(metrics.text)\(cleared)")
    }

    /// Three significant digits, trailing zeros dropped, as Python's `:.3g` prints them (0.5, 1.48, 1e-05).
    public static func g(_ value: Double) -> String {
        let text = String(format: "%.3g", value)
        let parts = text.split(separator: "e", maxSplits: 1).map(String.init)
        var mantissa = parts[0]
        if mantissa.contains(".") {
            while mantissa.hasSuffix("0") { mantissa.removeLast() }
            if mantissa.hasSuffix(".") { mantissa.removeLast() }
        }
        return parts.count > 1 ? "\(mantissa)e\(parts[1])" : mantissa
    }
}

/// Top-1 agreement, min cosines and the largest logits difference relative to the largest reference logit.
public struct OutputMetrics {
    public let images: Int
    public let top1Agreement: Double
    public let minLogitsCosine: Double
    public let minEmbeddingCosine: Double?
    public let maxAbsDiff: Double

    public init(images: Int, top1Agreement: Double, minLogitsCosine: Double, minEmbeddingCosine: Double?, maxAbsDiff: Double) {
        self.images = images
        self.top1Agreement = top1Agreement
        self.minLogitsCosine = minLogitsCosine
        self.minEmbeddingCosine = minEmbeddingCosine
        self.maxAbsDiff = maxAbsDiff
    }

    public init(reference: [[Float]], logits: [[Float]], referenceEmbedding: [[Float]]?, embedding: [[Float]]?) throws {
        for (i, row) in logits.enumerated() where row.count != reference[i].count {
            throw ManifestError("the model gives \(row.count) logits, the self-check has \(reference[i].count); the self-check belongs to another model")
        }
        var scale = 1.0
        for row in reference { for v in row { scale = max(scale, abs(Double(v))) } }
        var diff = 0.0
        for i in 0..<logits.count { for j in 0..<logits[i].count { diff = max(diff, abs(Double(logits[i][j]) - Double(reference[i][j]))) } }
        let agree = logits.indices.filter { OutputMetrics.argmax(logits[$0]) == OutputMetrics.argmax(reference[$0]) }.count
        var embeddingCosine: Double? = nil
        if let referenceEmbedding = referenceEmbedding, let embedding = embedding {
            embeddingCosine = embedding.indices.map { OutputMetrics.cosine(referenceEmbedding[$0], embedding[$0]) }.min()
        }
        self.init(images: logits.count, top1Agreement: Double(agree) / Double(logits.count),
                  minLogitsCosine: logits.indices.map { OutputMetrics.cosine(reference[$0], logits[$0]) }.min() ?? 0,
                  minEmbeddingCosine: embeddingCosine, maxAbsDiff: diff / scale)
    }

    /// The metrics that miss `tolerance` (the self-check's `tolerance.model`), as `name value (needs >= limit)`.
    public func judge(_ tolerance: [String: Double]) -> [String] {
        var failures: [String] = []
        let minima: [(String, Double?, String)] = [
            ("top-1 agreement", top1Agreement, "min_top1_agreement"),
            ("min logits cosine", minLogitsCosine, "min_logits_cosine"),
            ("min embedding cosine", minEmbeddingCosine, "min_embedding_cosine"),
        ]
        for (name, value, key) in minima {
            if let value = value, let limit = tolerance[key], value < limit { failures.append("\(name) \(SelfCheck.g(value)) (needs >= \(limit))") }
        }
        if let limit = tolerance["max_abs_diff"], maxAbsDiff > limit {
            failures.append("max abs logits diff (relative) \(SelfCheck.g(maxAbsDiff)) (needs <= \(limit))")
        }
        return failures
    }

    public var text: String {
        String(format: "top-1 agreement %.0f%%, min logits cosine %.6f", top1Agreement * 100, minLogitsCosine)
            + (minEmbeddingCosine.map { String(format: ", min embedding cosine %.6f", $0) } ?? "")
            + ", max logits diff \(SelfCheck.g(maxAbsDiff)) of the largest logit"
    }

    static func argmax(_ values: [Float]) -> Int {
        var best = 0
        for i in values.indices where values[i] > values[best] { best = i }
        return best
    }

    /// Cosine in double; two zero vectors are identical, one zero vector is orthogonal (as the runtime says).
    public static func cosine(_ a: [Float], _ b: [Float]) -> Double {
        var dot = 0.0
        var na = 0.0
        var nb = 0.0
        for i in 0..<a.count {
            dot += Double(a[i]) * Double(b[i])
            na += Double(a[i]) * Double(a[i])
            nb += Double(b[i]) * Double(b[i])
        }
        let norms = na.squareRoot() * nb.squareRoot()
        return norms > 0 ? dot / norms : (dot == 0 ? 1 : 0)
    }
}
