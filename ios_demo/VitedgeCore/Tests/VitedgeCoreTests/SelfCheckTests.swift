import Foundation
import XCTest
@testable import VitedgeCore

/// The self-check the app's Self-test runs, on the golden self-check cases (written by the same writer as every
/// `vitedge convert`), with ImageIO decoding the encoded images and a stand-in model (there is no model file);
/// planted faults show that a preprocessing miss is told apart from a model miss. Mirrors the Kotlin core's SelfCheckTest.
final class SelfCheckTests: XCTestCase {
    private func folder(_ name: String) -> URL {
        Golden.directory.appendingPathComponent("selfcheck").appendingPathComponent(name)
    }

    private func reader(_ folder: URL) -> (String) throws -> Data {
        { path in try Data(contentsOf: folder.appendingPathComponent(path)) }
    }

    /// Answers each reference input with its reference outputs (`perturb` changes the logits).
    private func standIn(_ folder: URL, perturb: @escaping ([Float]) -> [Float] = { $0 }) throws -> ([Float]) throws -> ModelOutputs {
        let data = try SelfCheckData.read(try Golden.manifest(folder), read: reader(folder))!
        var answers: [String: ModelOutputs] = [:]
        for (i, image) in data.images.enumerated() {
            answers[image.sha256] = ModelOutputs(logits: data.logits[i], embedding: data.embedding?[i])
        }
        return { tensor in
            guard let answer = answers[SelfCheck.tensorSha256(tensor)] else { throw ManifestError("the stand-in model was fed an input it does not know") }
            return ModelOutputs(logits: perturb(answer.logits), embedding: answer.embedding)
        }
    }

    func testGoldenSelfChecksPassBitForBit() throws {
        let names = try Golden.cases("selfcheck")
        XCTAssertGreaterThanOrEqual(names.count, 2)
        for name in names {
            let folder = self.folder(name)
            let manifest = try Golden.manifest(folder)
            try SelfCheck.verifyFiles(manifest, size: { path in
                let url = folder.appendingPathComponent(path)
                if let size = (try? FileManager.default.attributesOfItem(atPath: url.path))?[.size] as? NSNumber { return size.int64Value }
                return path == manifest.modelFile ? 0 : nil
            }, read: { path in path == manifest.modelFile ? Data() : try Data(contentsOf: folder.appendingPathComponent(path)) })
            let report = try SelfCheck.run(manifest, read: reader(folder), decode: ImageDecoding.decode, model: try standIn(folder))!
            XCTAssertEqual(report.preprocessing.status, .passed, "\(name): \(report.lines)")
            XCTAssertEqual(report.bitIdentical, report.images, "\(name): every tensor bit-identical")
            XCTAssertEqual(report.model.status, .passed, "\(name): \(report.lines)")
        }
    }

    func testAPlantedMeanStdFaultIsThePreprocessingNotTheModel() throws {
        let folder = self.folder("vit_bilinear_nchw")
        let manifest = try Golden.manifest(folder)
        var faulty = manifest.preprocess
        faulty.mean = [0.485, 0.456, 0.406]
        faulty.std = [0.229, 0.224, 0.225]
        let report = try SelfCheck.run(manifest, read: reader(folder), decode: ImageDecoding.decode,
                                       preprocessor: Preprocessor(spec: faulty), model: try standIn(folder))!
        XCTAssertEqual(report.preprocessing.status, .failed)
        XCTAssertTrue(report.preprocessing.summary.contains("preprocessing differs from the conversion's on 7 of 7 images"), report.preprocessing.summary)
        XCTAssertTrue(report.preprocessing.summary.contains("mean [0.485, 0.456, 0.406] (made with [0.5, 0.5, 0.5])"), report.preprocessing.summary)
        XCTAssertEqual(report.model.status, .passed)
        XCTAssertTrue(report.model.summary.contains("the preprocessing above is what differs"))
        XCTAssertFalse(report.ok)
    }

    func testAPlantedBicubicResizeSaysCheckTheResize() throws {
        let folder = self.folder("vit_bilinear_nchw")
        let manifest = try Golden.manifest(folder)
        // A port whose "bilinear" is bicubic: the decoder hands over an image already resized with bicubic.
        let buggy: (Data) throws -> RGBImage = { data in
            let rgb = try ImageDecoding.decode(data)
            let size = Preprocessor(spec: manifest.preprocess).resizedSize(width: rgb.width, height: rgb.height)
            return PillowResize.resize(rgb, width: size.width, height: size.height, filter: .bicubic)
        }
        let report = try SelfCheck.run(manifest, read: reader(folder), decode: buggy, model: try standIn(folder))!
        XCTAssertEqual(report.preprocessing.status, .failed)
        XCTAssertTrue(report.preprocessing.summary.contains("check the resize (size, resample filter such as bilinear vs bicubic)"), report.preprocessing.summary)
        XCTAssertEqual(report.model.status, .notChecked)
    }

    func testAModelThatDriftsFailsModelParityOnly() throws {
        let folder = self.folder("vit_bilinear_nchw")
        let manifest = try Golden.manifest(folder)
        let drifting = try standIn(folder) { logits in logits.enumerated().map { $0.element + 0.8 * Float($0.offset) } }
        let report = try SelfCheck.run(manifest, read: reader(folder), decode: ImageDecoding.decode, model: drifting)!
        XCTAssertEqual(report.preprocessing.status, .passed)
        XCTAssertEqual(report.model.status, .failed)
        XCTAssertTrue(report.model.summary.contains("min logits cosine"), report.model.summary)
    }

    func testReducedPrecisionsKeepTheirOwnTolerance() throws {
        let int8 = try SelfCheckData.read(try Golden.manifest(folder("vit_bilinear_nchw")), read: reader(folder("vit_bilinear_nchw")))!
        let fp32 = try SelfCheckData.read(try Golden.manifest(folder("deit_bicubic_crop_bgr_nhwc")), read: reader(folder("deit_bicubic_crop_bgr_nhwc")))!
        XCTAssertEqual(int8.modelTolerance["min_logits_cosine"], 0.99)
        XCTAssertEqual(fp32.modelTolerance["min_logits_cosine"], 0.9999)
        let close = OutputMetrics(images: 7, top1Agreement: 1, minLogitsCosine: 0.995, minEmbeddingCosine: 0.995, maxAbsDiff: 0.01)
        XCTAssertTrue(close.judge(int8.modelTolerance).isEmpty)
        XCTAssertEqual(close.judge(fp32.modelTolerance).count, 3)
        XCTAssertEqual(SelfCheck.g(1e-5), "1e-05")
        XCTAssertEqual(SelfCheck.g(0.5), "0.5")
    }

    func testATamperedSelfCheckFileIsRefusedAndAnOldArtifactHasNone() throws {
        let folder = self.folder("vit_bilinear_nchw")
        let manifest = try Golden.manifest(folder)
        let tampered = manifest.selfcheck!.files.first { $0.path.hasSuffix("samples.f32") }!.path
        XCTAssertThrowsError(try SelfCheck.verifyFiles(manifest, size: { path in
            path == manifest.modelFile ? 0 : (try? Data(contentsOf: folder.appendingPathComponent(path))).map { Int64($0.count) }
        }, read: { path in
            if path == manifest.modelFile { return Data() }
            var bytes = [UInt8](try Data(contentsOf: folder.appendingPathComponent(path)))
            if path == tampered { bytes[bytes.count / 2] ^= 1 }
            return Data(bytes)
        })) { error in
            XCTAssertTrue("\(error)".contains("\(tampered): sha256 checksum mismatch"), "\(error)")
        }
        let old = try Golden.manifest(Golden.directory.appendingPathComponent("images/lanczos"))
        XCTAssertNil(old.selfcheck)
        XCTAssertNil(try SelfCheck.run(old, read: { _ in Data() }, decode: ImageDecoding.decode))
    }

    func testPillowThirteensPassOrderIsPorted() {
        XCTAssertTrue(PillowResize.verticalFirst(inWidth: 79, inHeight: 95, outWidth: 64, outHeight: 56))
        XCTAssertFalse(PillowResize.verticalFirst(inWidth: 100, inHeight: 100, outWidth: 80, outHeight: 60))
        XCTAssertTrue(PillowResize.verticalFirst(inWidth: 100, inHeight: 100, outWidth: 80, outHeight: 59))
    }
}
