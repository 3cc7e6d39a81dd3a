import AVFoundation
import CoreML
import Foundation
import ImageIO
import VitedgeCore

/// The camera, the artifact and the latest result, published to SwiftUI. The classifier and the running
/// average live on the `frames` queue (the camera delegate's); published values change on the main thread.
final class CameraModel: NSObject, ObservableObject {
    @Published var lines: [String] = ["Loading the artifact…"]
    @Published var latency = ""
    @Published var status = ""

    let session = AVCaptureSession()
    private let frames = DispatchQueue(label: "dev.vitedge.demo.frames")
    private var classifier: CoreMLClassifier?
    private var averageInferenceMs = 0.0
    private var count = 0

    @MainActor
    func start() async {
        await load { try await Artifact.openDefault() }
        guard await AVCaptureDevice.requestAccess(for: .video) else {
            status = "Camera permission is needed to classify what the camera sees (Settings > vitedge demo)."
            return
        }
        configureSession()
        frames.async { [session] in session.startRunning() }
    }

    @MainActor
    func importArtifact(_ url: URL) async {
        await load { try await Artifact.importFolder(url) }
    }

    @MainActor
    private func load(_ open: () async throws -> Artifact?) async {
        do {
            guard let artifact = try await open() else {
                status = "No artifact: add a Core ML artifact folder (vitedge convert MODEL --to coreml --out artifact) to the app as the folder reference 'artifact', or tap Open."
                return
            }
            let loaded = try CoreMLClassifier(artifact: artifact)
            frames.sync {
                self.classifier = loaded
                self.averageInferenceMs = 0
                self.count = 0
            }
            let m = artifact.manifest
            status = "\(artifact.name): \(m.format) \(m.precision), \(m.labels.count) labels — \(loaded.pathDescription)"
                + (m.isRandomInit ? "\nrandom-init weights: predictions are meaningless (latency work only)" : "")
        } catch {
            status = "Cannot open the artifact: \(error)"
        }
    }

    /// The Self-test: the artifact's self-check (`vitedge verify` on the phone), from the files the conversion wrote:
    /// checksums, then preprocessing parity (ImageIO decoding + VitedgeCore) and model parity (Core ML) against the
    /// conversion's references and tolerance. Runs on the frames queue; the verdicts replace the top-5 until the next frame.
    @MainActor
    func selfTest() {
        frames.async {
            guard let classifier = self.classifier else { return }
            let artifact = classifier.artifact
            let lines: [String]
            do {
                let folder = artifact.folder
                let read: (String) throws -> Data = { path in try Data(contentsOf: folder.appendingPathComponent(path)) }
                try SelfCheck.verifyFiles(artifact.manifest, size: { path in
                    (try? FileManager.default.attributesOfItem(atPath: folder.appendingPathComponent(path).path))?[.size] as? Int64
                }, read: read)
                let model: (([Float]) throws -> ModelOutputs)? = classifier.isImageInput ? nil : { tensor in
                    guard let outputs = try classifier.outputs(tensor: tensor) else { throw ManifestError("no outputs") }
                    return outputs
                }
                if let report = try SelfCheck.run(artifact.manifest, read: read, decode: ImageDecoding.decode, model: model) {
                    lines = ["Self-test: " + (report.ok ? "PASSED" : "FAILED")] + report.lines
                } else {
                    lines = ["Self-test: " + SelfCheck.noSelfCheck]
                }
            } catch {
                lines = ["Self-test: FAILED: \(error)"]
            }
            DispatchQueue.main.async {
                self.lines = lines
                self.status = "Self-test of \(artifact.name) (\(artifact.manifest.format) \(artifact.manifest.precision))"
            }
        }
    }

    @MainActor
    private func configureSession() {
        session.beginConfiguration()
        session.sessionPreset = .vga640x480
        if let camera = AVCaptureDevice.default(.builtInWideAngleCamera, for: .video, position: .back),
           let input = try? AVCaptureDeviceInput(device: camera), session.canAddInput(input) {
            session.addInput(input)
        }
        let output = AVCaptureVideoDataOutput()
        output.videoSettings = [kCVPixelBufferPixelFormatTypeKey as String: kCVPixelFormatType_32BGRA]
        output.alwaysDiscardsLateVideoFrames = true
        output.setSampleBufferDelegate(self, queue: frames)
        if session.canAddOutput(output) { session.addOutput(output) }
        session.commitConfiguration()
    }
}

extension CameraModel: AVCaptureVideoDataOutputSampleBufferDelegate {
    func captureOutput(_ output: AVCaptureOutput, didOutput sampleBuffer: CMSampleBuffer, from connection: AVCaptureConnection) {
        guard let classifier = classifier, let frame = CMSampleBufferGetImageBuffer(sampleBuffer) else { return }
        do {
            // The back camera's buffers are landscape; in portrait the upright image is the buffer turned 90° clockwise.
            let result = try classifier.classify(frame, orientation: .right, rotationDegrees: 90)
            count += 1
            averageInferenceMs += (result.inferenceMs - averageInferenceMs) / Double(min(count, 20))
            let lines = result.predictions.enumerated().map { rank, p in
                String(format: "%d. %@  %5.1f%%  #%d", rank + 1, String(p.label.prefix(24)), Double(p.score) * 100, p.index)
            }
            let latency = String(format: "inference %.1f ms (avg %.1f)  preprocess %.1f ms", result.inferenceMs, averageInferenceMs, result.preprocessMs)
            DispatchQueue.main.async {
                self.lines = lines
                self.latency = latency
            }
        } catch {
            let message = "\(error)"
            DispatchQueue.main.async { self.status = "Classification failed: \(message)" }
        }
    }
}
