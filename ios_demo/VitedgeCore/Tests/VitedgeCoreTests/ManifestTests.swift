import Foundation
import XCTest
@testable import VitedgeCore

final class ManifestTests: XCTestCase {
    private var deitText: String {
        get throws {
            try String(contentsOf: Golden.directory.appendingPathComponent("images/deit_astronaut_jpeg/manifest.json"), encoding: .utf8)
        }
    }

    private func assertRefused(_ text: String, _ words: String..., line: UInt = #line) {
        XCTAssertThrowsError(try Manifest.parse(Data(text.utf8), origin: "edited manifest"), line: line) { error in
            let message = (error as? ManifestError)?.message ?? "\(error)"
            for word in words { XCTAssertTrue(message.contains(word), "'\(word)' not in: \(message)", line: line) }
        }
    }

    func testReadsEveryFieldTheDemosUse() throws {
        let manifest = try Manifest.parse(Data(try deitText.utf8))
        XCTAssertEqual(manifest.format, "tflite")
        XCTAssertEqual(manifest.input.shape, [1, 3, 64, 64])
        XCTAssertEqual(manifest.preprocess.resizeMode, .shortestEdge)
        XCTAssertEqual(manifest.preprocess.shortestEdge, 80)
        XCTAssertEqual(manifest.preprocess.resample, .bicubic)
        XCTAssertEqual(manifest.preprocess.cropSize, Size(height: 64, width: 64))
        XCTAssertEqual(manifest.preprocess.mean?[0], 0.485)
        XCTAssertEqual(manifest.preprocess.rescaleFactor, 1.0 / 255)
        XCTAssertTrue(manifest.isRandomInit)
        XCTAssertEqual(manifest.label(7), "LABEL_7")
    }

    func testCoreMLEntryIsTheModelFile() throws {
        let manifest = try Golden.manifest(Golden.directory.appendingPathComponent("images/coreml_bicubic_down_up"))
        XCTAssertEqual(manifest.format, "coreml")
        XCTAssertEqual(manifest.modelFile, "model.mlpackage")
    }

    func testRefusesUnknownOrNewerSchemasAndBadSpecs() throws {
        let text = try deitText
        assertRefused(text.replacingOccurrences(of: "vitedge.artifact/1", with: "vitedge.artifact/2"), "newer", "update the demo")
        assertRefused(text.replacingOccurrences(of: "vitedge.artifact/1", with: "other/1"), "unknown manifest schema")
        assertRefused(text.replacingOccurrences(of: "\"format\": \"tflite\"", with: "\"format\": \"pte\""), "unknown format")
        assertRefused(text.replacingOccurrences(of: "\"labels\"", with: "\"labelz\""), "missing fields labels")
        assertRefused(text.replacingOccurrences(of: "\"resample\": \"bicubic\"", with: "\"resample\": \"cubic\""), "resample 'cubic'")
        assertRefused(text.replacingOccurrences(of: "\"resize_mode\"", with: "\"gamma\": 2.2, \"resize_mode\""), "unknown keys: gamma")
        assertRefused(text.replacingOccurrences(of: "\"std\": [", with: "\"std\": [0.0, "), "std needs 3 values")
        assertRefused("[1, 2]", "not a JSON object")
    }

    func testLabelsWithAwkwardCharacters() throws {
        let manifest = try Golden.manifest(Golden.directory.appendingPathComponent("topk/imagenet_like_1000"))
        XCTAssertEqual(manifest.labels.count, 1000)
        XCTAssertEqual(manifest.label(0), "tabby, tabby cat")
        XCTAssertEqual(manifest.label(1), "say \"cheese\"")
        XCTAssertEqual(manifest.label(6), "tab\there")
    }

    func testRotationAndBGRA() {
        let image = RGBImage(width: 3, height: 2, pixels: (0..<18).map { UInt8($0) })
        XCTAssertEqual(image.rotated(90).rotated(270), image)
        XCTAssertEqual(image.rotated(90).get(0, 0, 0), image.get(0, 1, 0))
        let bgra: [UInt8] = [3, 2, 1, 255, 6, 5, 4, 255]
        let rgb = bgra.withUnsafeBytes { RGBImage(bgra: $0, width: 2, height: 1, bytesPerRow: 8) }
        XCTAssertEqual(rgb.pixels, [1, 2, 3, 4, 5, 6])
    }

    func testMobileViTStepsFlipToBGRWithoutNormalizing() {
        // MobileViT's processor: 1/255 only (no mean/std: the same as mean 0, std 1), channels flipped to BGR
        let image = RGBImage(width: 2, height: 1, pixels: [10, 20, 30, 255, 0, 127])
        var unnormalized = PreprocessSpec()
        unnormalized.size = Size(height: 1, width: 2)
        unnormalized.mean = nil
        unnormalized.std = nil
        var zeroOne = unnormalized
        zeroOne.mean = [0, 0, 0]
        zeroOne.std = [1, 1, 1]
        var bgr = unnormalized
        bgr.bgr = true
        func scaled(_ values: [Int]) -> [Float] { values.map { Float(Double($0) * (1.0 / 255)) } }
        let rgbPlanes = scaled([10, 255, 20, 0, 30, 127]) // NCHW: the R plane, then G, then B
        XCTAssertEqual(Preprocessor(spec: unnormalized).tensor(image), rgbPlanes)
        XCTAssertEqual(Preprocessor(spec: zeroOne).tensor(image), rgbPlanes)
        XCTAssertEqual(Preprocessor(spec: bgr).tensor(image), scaled([30, 127, 20, 0, 10, 255]))
    }

    func testSoftmaxAndStableOrder() {
        let top = TopK.topK([1, 3, 3, -1], k: 3) { "c\($0)" }
        XCTAssertEqual(top.map { $0.index }, [1, 2, 0])
        XCTAssertEqual(TopK.softmax([0, 0]).reduce(0, +), 1, accuracy: 1e-6)
    }
}
