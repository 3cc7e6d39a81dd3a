import Foundation

/// Tensor layout of the model input.
public enum Layout: String, Decodable, Equatable {
    case NCHW, NHWC
}

/// Pillow's resampling filters, by the names the manifest uses; `support` is Pillow's filter support.
public enum Resample: String, Decodable, CaseIterable, Equatable {
    case nearest, box, bilinear, hamming, bicubic, lanczos

    public var support: Double {
        switch self {
        case .nearest: return 0.0
        case .box: return 0.5
        case .bilinear, .hamming: return 1.0
        case .bicubic: return 2.0
        case .lanczos: return 3.0
        }
    }
}

/// How the resize step works: to an exact size, the shortest edge to a length, or not at all.
public enum ResizeMode: String, Decodable, Equatable {
    case exact
    case shortestEdge = "shortest_edge"
    case none
}

/// A (height, width) pair, in the manifest's order.
public struct Size: Equatable {
    public let height: Int
    public let width: Int
    public init(height: Int, width: Int) {
        self.height = height
        self.width = width
    }
}

/// The manifest's `preprocess` block: how an RGB image becomes the input tensor. Mirrors
/// `vitedge.runtime.preprocess_spec.PreprocessSpec` (validation, defaults, refusal of unknown keys).
public struct PreprocessSpec: Equatable {
    public static let knownKeys: Set<String> = [
        "resize_mode", "size", "shortest_edge", "resample", "crop_size", "rescale_factor", "mean", "std",
        "channel_order", "layout", "normalization_in_model",
    ]

    public var resizeMode: ResizeMode = .exact
    public var size: Size? = Size(height: 224, width: 224)
    public var shortestEdge: Int? = nil
    public var resample: Resample = .bilinear
    public var cropSize: Size? = nil
    public var rescaleFactor: Double? = 1.0 / 255
    public var mean: [Double]? = [0.5, 0.5, 0.5]
    public var std: [Double]? = [0.5, 0.5, 0.5]
    public var bgr = false
    public var layout: Layout = .NCHW
    public var normalizationInModel = false

    public init() {}

    /// (height, width) of the tensor this spec produces, when it is fixed.
    public var outputSize: Size? { cropSize ?? (resizeMode == .exact ? size : nil) }

    /// The runtime's checks; throws ManifestError listing every problem.
    public func validate() throws {
        var problems: [String] = []
        if resizeMode == .exact && size == nil { problems.append("resize_mode 'exact' needs size") }
        if resizeMode == .shortestEdge && (shortestEdge ?? 0) <= 0 { problems.append("resize_mode 'shortest_edge' needs shortest_edge") }
        if let mean = mean, mean.count != 3 { problems.append("mean needs 3 values, got \(mean.count)") }
        if let std = std, std.count != 3 { problems.append("std needs 3 values, got \(std.count)") }
        if let std = std, std.contains(0) { problems.append("std has a zero") }
        for s in [size, cropSize].compactMap({ $0 }) where s.height <= 0 || s.width <= 0 {
            problems.append("sizes must be positive, got \(s.height)x\(s.width)")
        }
        if !problems.isEmpty { throw ManifestError("invalid preprocess spec: " + problems.joined(separator: "; ")) }
    }
}

extension PreprocessSpec: Decodable {
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        let unknown = c.allKeys.map { $0.stringValue }.filter { !PreprocessSpec.knownKeys.contains($0) }.sorted()
        if !unknown.isEmpty { throw ManifestError("preprocess block has unknown keys: \(unknown.joined(separator: ", "))") }
        self.init()
        if let value = try c.field(String.self, "resize_mode") {
            guard let name = value, let mode = ResizeMode(rawValue: name) else {
                throw ManifestError("resize_mode '\(value ?? "null")' is not exact|shortest_edge|none")
            }
            resizeMode = mode
        }
        if let value = try c.field([Int].self, "size") { size = try PreprocessSpec.size(value, "size") }
        if let value = try c.field(Int.self, "shortest_edge") { shortestEdge = value }
        if let value = try c.field(String.self, "resample") {
            guard let name = value, let filter = Resample(rawValue: name) else {
                throw ManifestError("resample '\(value ?? "null")' is not one of \(Resample.allCases.map { $0.rawValue }.joined(separator: ", "))")
            }
            resample = filter
        }
        if let value = try c.field([Int].self, "crop_size") { cropSize = try PreprocessSpec.size(value, "crop_size") }
        if let value = try c.field(Double.self, "rescale_factor") { rescaleFactor = value }
        if let value = try c.field([Double].self, "mean") { mean = value }
        if let value = try c.field([Double].self, "std") { std = value }
        if let value = try c.field(String.self, "channel_order") {
            guard value == "RGB" || value == "BGR" else { throw ManifestError("channel_order '\(value ?? "null")' is not RGB or BGR") }
            bgr = value == "BGR"
        }
        if let value = try c.field(String.self, "layout") {
            guard let name = value, let parsed = Layout(rawValue: name) else {
                throw ManifestError("layout '\(value ?? "null")' is not NCHW or NHWC")
            }
            layout = parsed
        }
        if let value = try c.field(Bool.self, "normalization_in_model") { normalizationInModel = value ?? false }
        try validate()
    }

    private static func size(_ value: [Int]?, _ key: String) throws -> Size? {
        guard let value = value else { return nil }
        guard value.count == 2 else { throw ManifestError("\(key) needs [height, width]") }
        return Size(height: value[0], width: value[1])
    }
}
