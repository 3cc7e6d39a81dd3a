import Foundation
import XCTest
@testable import VitedgeCore

/// The same golden vectors as the Kotlin core's JVM tests: same decoded pixels + same manifest -> the same
/// resized pixels (bit for bit) and tensor (within 1e-5) as the Python runtime; same logits -> same top-5.
final class GoldenTests: XCTestCase {
    func testEveryImageCaseMatchesThePythonRuntime() throws {
        let names = try Golden.cases("images")
        XCTAssertGreaterThanOrEqual(names.count, 6, "no image cases in \(Golden.directory.path)")
        let tolerance = try Golden.tolerance("tensor_abs")
        for name in names {
            let folder = Golden.directory.appendingPathComponent("images").appendingPathComponent(name)
            let info = try Golden.json(folder.appendingPathComponent("case.json"))
            let manifest = try Golden.manifest(folder)
            let preprocessor = Preprocessor(spec: manifest.preprocess)
            let rgb = try Golden.image(folder, info["rgb"] as! [String: Any])

            let expectedResized = try Golden.image(folder, info["resized"] as! [String: Any])
            XCTAssertEqual(preprocessor.resize(rgb), expectedResized, "\(name): resized pixels differ from Pillow's")

            let tensorInfo = info["tensor"] as! [String: Any]
            let expected = try Golden.floats(folder.appendingPathComponent(tensorInfo["file"] as! String))
            XCTAssertEqual((tensorInfo["shape"] as! [Int]).map { Optional($0) }, manifest.input.shape, "\(name): shape vs manifest")
            let tensor = preprocessor.tensor(rgb)
            XCTAssertEqual(tensor.count, expected.count, "\(name): tensor size")
            var maxDiff: Float = 0
            for i in 0..<min(tensor.count, expected.count) { maxDiff = max(maxDiff, abs(tensor[i] - expected[i])) }
            XCTAssertLessThanOrEqual(Double(maxDiff), tolerance, "\(name): max |diff| \(maxDiff)")
        }
    }

    func testEveryTopKCaseMatchesThePythonRuntime() throws {
        let names = try Golden.cases("topk")
        XCTAssertFalse(names.isEmpty)
        let tolerance = try Golden.tolerance("score_abs")
        for name in names {
            let folder = Golden.directory.appendingPathComponent("topk").appendingPathComponent(name)
            let info = try Golden.json(folder.appendingPathComponent("case.json"))
            let manifest = try Golden.manifest(folder)
            let logitsInfo = info["logits"] as! [String: Any]
            let logits = try Golden.floats(folder.appendingPathComponent(logitsInfo["file"] as! String))
            XCTAssertEqual(logits.count, logitsInfo["count"] as? Int)
            let expected = info["expected"] as! [[String: Any]]
            let actual = TopK.topK(logits, k: info["k"] as! Int, manifest: manifest)
            XCTAssertEqual(actual.count, expected.count, "\(name): number of predictions")
            for (rank, want) in expected.enumerated() where rank < actual.count {
                XCTAssertEqual(actual[rank].index, want["index"] as? Int, "\(name) rank \(rank): index")
                XCTAssertEqual(actual[rank].label, want["label"] as? String, "\(name) rank \(rank): label")
                XCTAssertEqual(Double(actual[rank].score), want["score"] as! Double, accuracy: tolerance, "\(name) rank \(rank): score")
            }
        }
    }
}
