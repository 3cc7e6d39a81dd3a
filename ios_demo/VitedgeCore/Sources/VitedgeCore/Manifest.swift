import Foundation

/// A manifest that cannot be used: unknown schema, missing or malformed fields. The message says what to do.
public struct ManifestError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A coding key for any string, to read objects whose keys are data (labels) or must be checked (preprocess).
struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int? { Int(stringValue) }
    init(_ string: String) { stringValue = string }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { stringValue = String(intValue) }
}

extension KeyedDecodingContainer where Key == AnyKey {
    /// nil when the key is absent; `.some(nil)` when it is JSON null; else the value.
    func field<T: Decodable>(_ type: T.Type, _ key: String) throws -> T?? {
        let codingKey = AnyKey(key)
        if !contains(codingKey) { return .none }
        if try decodeNil(forKey: codingKey) { return .some(nil) }
        return .some(try decode(T.self, forKey: codingKey))
    }
}

/// The model's input tensor. `shape` has nil for a dynamic batch; `scale`/`zeroPoint` describe a quantized input.
public struct InputSpec: Decodable, Equatable {
    public let name: String
    public let layout: Layout
    public let dtype: String
    public let shape: [Int?]
    public let dynamicBatch: Bool
    public let scale: Double?
    public let zeroPoint: Int?

    enum CodingKeys: String, CodingKey {
        case name, layout, dtype, shape, scale
        case dynamicBatch = "dynamic_batch"
        case zeroPoint = "zero_point"
    }
}

/// How an output is quantized: real = scale * (q - zeroPoint).
public struct Quantization: Decodable, Equatable {
    public let dtype: String
    public let scale: Double
    public let zeroPoint: Int

    enum CodingKeys: String, CodingKey {
        case dtype, scale
        case zeroPoint = "zero_point"
    }
}

/// The model's outputs: the logits, and the pooled embedding when present.
public struct OutputsSpec: Decodable, Equatable {
    public let logits: String
    public let embedding: String?
    public let embeddingSize: Int?
    public let numClasses: Int?
    public let quantization: [String: Quantization]?

    enum CodingKeys: String, CodingKey {
        case logits, embedding, quantization
        case embeddingSize = "embedding_size"
        case numClasses = "num_classes"
    }
}

/// A file of the artifact, relative to its folder.
public struct FileEntry: Decodable, Equatable {
    public let path: String
    public let sha256: String
    public let bytes: Int64
}

/// The self-check the conversion wrote (`selfcheck/`): its index and every file with its checksum (see `SelfCheck`).
public struct SelfCheckFiles: Decodable, Equatable {
    public let index: String
    public let files: [FileEntry]
}

/// Where the weights came from (the part the demo shows).
public struct SourceInfo: Decodable, Equatable {
    public let model: String
    public let weights: String
}

/// An artifact's `manifest.json` (schema `vitedge.artifact/1`), mirroring `vitedge.runtime.manifest` and the
/// Kotlin core's `Manifest`: the same schema check, required fields, preprocess validation and `LABEL_<i>`.
public struct Manifest: Equatable {
    public static let schemaFamily = "vitedge.artifact"
    public static let schemaVersion = 1
    public static let formats = ["onnx", "tflite", "coreml", "openvino", "executorch"]

    public let schema: String
    public let format: String
    public let precision: String
    public let files: [FileEntry]
    public let input: InputSpec
    public let outputs: OutputsSpec
    public let preprocess: PreprocessSpec
    public let labels: [Int: String]
    public let source: SourceInfo
    public let entry: String?
    public let selfcheck: SelfCheckFiles?

    /// The model's files, then the self-check's: everything `SelfCheck.verifyFiles` checks.
    public var allFiles: [FileEntry] { files + (selfcheck?.files ?? []) }

    /// What the app opens: `entry` (the .mlpackage folder of a Core ML artifact) or the first file.
    public var modelFile: String { entry ?? files[0].path }

    public var isRandomInit: Bool { source.weights == "random-init" }

    /// The label of class `index`, `LABEL_<index>` when the manifest has none (as the runtime says).
    public func label(_ index: Int) -> String { labels[index] ?? "LABEL_\(index)" }

    /// Parse and validate manifest.json's bytes; `origin` names it in errors.
    public static func parse(_ data: Data, origin: String = "manifest.json") throws -> Manifest {
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: data, options: [])
        } catch {
            throw ManifestError("\(origin): not valid JSON; re-create the artifact with vitedge convert")
        }
        guard let root = object as? [String: Any] else { throw ManifestError("\(origin): not a JSON object") }
        try checkSchema(root["schema"], origin: origin)
        let required = ["format", "precision", "files", "input", "outputs", "preprocess", "labels", "source", "conversion"]
        let missing = required.filter { root[$0] == nil }
        if !missing.isEmpty {
            throw ManifestError("\(origin): missing fields \(missing.joined(separator: ", ")); re-create the artifact with vitedge convert")
        }
        guard let format = root["format"] as? String, formats.contains(format) else {
            throw ManifestError("\(origin): unknown format '\(root["format"] ?? "null")'; this demo knows \(formats.joined(separator: ", ")); update the demo if the artifact is newer")
        }
        do {
            let decoded = try JSONDecoder().decode(Decoded.self, from: data)
            guard !decoded.files.isEmpty || decoded.entry != nil else { throw ManifestError("\(origin): no model file listed") }
            return Manifest(
                schema: decoded.schema, format: format, precision: decoded.precision, files: decoded.files,
                input: decoded.input, outputs: decoded.outputs, preprocess: decoded.preprocess,
                labels: decoded.labels, source: decoded.source, entry: decoded.entry, selfcheck: decoded.selfcheck
            )
        } catch let error as ManifestError {
            throw ManifestError("\(origin): \(error.message)")
        } catch {
            throw ManifestError("\(origin): malformed (\(error)); re-create the artifact with vitedge convert")
        }
    }

    /// Accept this schema version and older ones of the family; refuse anything else clearly.
    public static func checkSchema(_ schema: Any?, origin: String) throws {
        guard let schema = schema as? String, schema.contains("/") else {
            throw ManifestError("\(origin): no 'schema' field naming a vitedge artifact; expected '\(schemaFamily)/\(schemaVersion)'")
        }
        let parts = schema.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        let family = String(parts[0])
        let version = String(parts[1])
        guard family == schemaFamily, !version.isEmpty, version.allSatisfy({ $0 >= "0" && $0 <= "9" }) else {
            throw ManifestError("\(origin): unknown manifest schema '\(schema)'; expected '\(schemaFamily)/\(schemaVersion)'")
        }
        if version.count > 9 || Int(version)! > schemaVersion {
            throw ManifestError("\(origin): manifest schema '\(schema)' is newer than this demo understands; update the demo")
        }
    }

    /// The JSON shape, decoded after the checks above.
    private struct Decoded: Decodable {
        let schema: String
        let precision: String
        let files: [FileEntry]
        let input: InputSpec
        let outputs: OutputsSpec
        let preprocess: PreprocessSpec
        let labels: [Int: String]
        let source: SourceInfo
        let entry: String?
        let selfcheck: SelfCheckFiles?

        enum CodingKeys: String, CodingKey {
            case schema, precision, files, input, outputs, preprocess, labels, source, entry, selfcheck
        }

        init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            schema = try c.decode(String.self, forKey: .schema)
            precision = try c.decode(String.self, forKey: .precision)
            files = try c.decode([FileEntry].self, forKey: .files)
            input = try c.decode(InputSpec.self, forKey: .input)
            outputs = try c.decode(OutputsSpec.self, forKey: .outputs)
            preprocess = try c.decode(PreprocessSpec.self, forKey: .preprocess)
            source = try c.decode(SourceInfo.self, forKey: .source)
            entry = try c.decodeIfPresent(String.self, forKey: .entry)
            selfcheck = try c.decodeIfPresent(SelfCheckFiles.self, forKey: .selfcheck)
            if let selfcheck = selfcheck, !selfcheck.files.contains(where: { $0.path == selfcheck.index }) {
                throw ManifestError("selfcheck.index '\(selfcheck.index)' is not one of its files")
            }
            let raw = try c.decode([String: String].self, forKey: .labels)
            var labels: [Int: String] = [:]
            for (key, value) in raw {
                guard let index = Int(key) else { throw ManifestError("label key '\(key)' is not a class index") }
                labels[index] = value
            }
            self.labels = labels
        }
    }
}
