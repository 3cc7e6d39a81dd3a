import CoreML
import CoreVideo
import Foundation
import Vision
import VitedgeCore

/// One classification: the top-k and where the time went (milliseconds).
struct ClassificationResult {
    let predictions: [Prediction]
    let preprocessMs: Double
    let inferenceMs: Double
    let path: String
}

/// Runs a Core ML artifact on camera frames, by one of two paths:
///
/// - MultiArray input `pixel_values` (vitedge's default): VitedgeCore preprocesses the frame exactly as the
///   manifest says (the arithmetic checked against the Python runtime's golden vectors), the model runs with
///   `MLModel.prediction`, and the top-5 comes from its `logits` output with VitedgeCore's softmax/top-k.
/// - Image input (`vitedge convert --input-type image`): Vision (`VNCoreMLRequest`) scales and center-crops
///   the frame itself and the model normalizes inside; fast, but Vision's resampling is not Pillow's, so the
///   numbers differ slightly from the runtime's. The top-5 is Core ML's own `classLabel_probs`.
final class CoreMLClassifier {
    let artifact: Artifact
    private let model: MLModel
    private let preprocessor: Preprocessor
    private let inputName: String
    private let imageInput: Bool
    private let visionModel: VNCoreMLModel?

    init(artifact: Artifact, computeUnits: MLComputeUnits = .all) throws {
        self.artifact = artifact
        let configuration = MLModelConfiguration()
        configuration.computeUnits = computeUnits
        model = try MLModel(contentsOf: artifact.compiledModel, configuration: configuration)
        preprocessor = Preprocessor(spec: artifact.manifest.preprocess)
        let inputs = model.modelDescription.inputDescriptionsByName
        guard let input = inputs.first(where: { $0.key == artifact.manifest.input.name }) ?? inputs.first else {
            throw ManifestError("the model has no inputs")
        }
        inputName = input.key
        imageInput = input.value.type == .image
        visionModel = try imageInput ? VNCoreMLModel(for: model) : nil
    }

    /// Whether Vision feeds the model images (no tensor input to run the self-check's reference inputs through).
    var isImageInput: Bool { imageInput }

    var pathDescription: String {
        imageInput ? "Core ML image input via Vision (Vision resizes)" : "Core ML MultiArray input, VitedgeCore preprocessing"
    }

    func classify(_ frame: CVPixelBuffer, orientation: CGImagePropertyOrientation, rotationDegrees: Int, k: Int = 5) throws -> ClassificationResult {
        if let visionModel = visionModel {
            return try classifyWithVision(frame, orientation: orientation, model: visionModel, k: k)
        }
        let start = DispatchTime.now()
        let image = CoreMLClassifier.rgbImage(frame).rotated(rotationDegrees)
        let pixels = preprocessor.pixels(image)
        let shape = artifact.manifest.input.layout == .NCHW
            ? [1, 3, pixels.height, pixels.width] : [1, pixels.height, pixels.width, 3]
        let array = try MLMultiArray(shape: shape.map { NSNumber(value: $0) }, dataType: .float32)
        let count = pixels.width * pixels.height * 3
        preprocessor.writeTensor(pixels, into: UnsafeMutableBufferPointer(start: array.dataPointer.bindMemory(to: Float.self, capacity: count), count: count))
        let features = try MLDictionaryFeatureProvider(dictionary: [inputName: MLFeatureValue(multiArray: array)])
        let preprocessed = DispatchTime.now()
        let output = try model.prediction(from: features)
        let done = DispatchTime.now()
        guard let logits = output.featureValue(for: artifact.manifest.outputs.logits)?.multiArrayValue else {
            throw ManifestError("the model has no '\(artifact.manifest.outputs.logits)' output")
        }
        let values = (0..<logits.count).map { Float(truncating: logits[$0]) }
        return ClassificationResult(
            predictions: TopK.topK(values, k: k, manifest: artifact.manifest),
            preprocessMs: milliseconds(start, preprocessed), inferenceMs: milliseconds(preprocessed, done),
            path: pathDescription
        )
    }

    /// The model's outputs for one preprocessed tensor (the self-test's runner); nil for an image-input model,
    /// which Vision feeds (its resampling is not Pillow's, so there is no reference tensor to give it).
    func outputs(tensor: [Float]) throws -> ModelOutputs? {
        if imageInput { return nil }
        let shape = artifact.manifest.input.shape.map { $0 ?? 1 }
        let array = try MLMultiArray(shape: shape.map { NSNumber(value: $0) }, dataType: .float32)
        guard array.count == tensor.count else {
            throw ManifestError("the self-check's tensor has \(tensor.count) values, the model takes \(array.count)")
        }
        let pointer = array.dataPointer.bindMemory(to: Float.self, capacity: tensor.count)
        for i in 0..<tensor.count { pointer[i] = tensor[i] }
        let output = try model.prediction(from: MLDictionaryFeatureProvider(dictionary: [inputName: MLFeatureValue(multiArray: array)]))
        func values(_ name: String?) -> [Float]? {
            guard let name = name, let array = output.featureValue(for: name)?.multiArrayValue else { return nil }
            return (0..<array.count).map { Float(truncating: array[$0]) }
        }
        guard let logits = values(artifact.manifest.outputs.logits) else {
            throw ManifestError("the model has no '\(artifact.manifest.outputs.logits)' output")
        }
        return ModelOutputs(logits: logits, embedding: values(artifact.manifest.outputs.embedding))
    }

    private func classifyWithVision(_ frame: CVPixelBuffer, orientation: CGImagePropertyOrientation, model: VNCoreMLModel, k: Int) throws -> ClassificationResult {
        let request = VNCoreMLRequest(model: model)
        request.imageCropAndScaleOption = artifact.manifest.preprocess.cropSize == nil ? .scaleFill : .centerCrop
        let start = DispatchTime.now()
        try VNImageRequestHandler(cvPixelBuffer: frame, orientation: orientation, options: [:]).perform([request])
        let done = DispatchTime.now()
        let observations = (request.results as? [VNClassificationObservation]) ?? []
        let labelIndex = Dictionary(artifact.manifest.labels.map { ($0.value, $0.key) }, uniquingKeysWith: { first, _ in first })
        let predictions = observations.prefix(k).map {
            Prediction(label: $0.identifier, index: labelIndex[$0.identifier] ?? -1, score: $0.confidence)
        }
        return ClassificationResult(predictions: predictions, preprocessMs: 0, inferenceMs: milliseconds(start, done), path: pathDescription)
    }

    /// The frame's BGRA pixels as RGB (alpha dropped), respecting the buffer's row padding.
    static func rgbImage(_ buffer: CVPixelBuffer) -> RGBImage {
        CVPixelBufferLockBaseAddress(buffer, .readOnly)
        defer { CVPixelBufferUnlockBaseAddress(buffer, .readOnly) }
        let width = CVPixelBufferGetWidth(buffer)
        let height = CVPixelBufferGetHeight(buffer)
        let bytesPerRow = CVPixelBufferGetBytesPerRow(buffer)
        let base = CVPixelBufferGetBaseAddress(buffer)!
        return RGBImage(bgra: UnsafeRawBufferPointer(start: base, count: bytesPerRow * height), width: width, height: height, bytesPerRow: bytesPerRow)
    }

    private func milliseconds(_ from: DispatchTime, _ to: DispatchTime) -> Double {
        Double(to.uptimeNanoseconds - from.uptimeNanoseconds) / 1e6
    }
}
