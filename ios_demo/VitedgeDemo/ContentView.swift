import AVFoundation
import SwiftUI
import UniformTypeIdentifiers

/// Camera preview with the top-5 labels and the latency over it.
struct ContentView: View {
    @StateObject private var camera = CameraModel()
    @State private var picking = false

    var body: some View {
        ZStack(alignment: .bottom) {
            CameraPreview(session: camera.session).ignoresSafeArea()
            VStack(alignment: .leading, spacing: 6) {
                ForEach(camera.lines, id: \.self) { line in
                    Text(line).font(.system(.body, design: .monospaced)).foregroundColor(.white)
                }
                Text(camera.latency).font(.system(.caption, design: .monospaced)).foregroundColor(.green)
                Text(camera.status).font(.caption).foregroundColor(.gray)
                HStack {
                    Button("Open artifact folder") { picking = true }
                    Button("Self-test") { camera.selfTest() }
                }
            }
            .padding()
            .frame(maxWidth: .infinity, alignment: .leading)
            .background(Color.black.opacity(0.7))
        }
        .task { await camera.start() }
        .fileImporter(isPresented: $picking, allowedContentTypes: [.folder]) { result in
            if case let .success(url) = result {
                Task { await camera.importArtifact(url) }
            }
        }
    }
}

/// AVCaptureVideoPreviewLayer in SwiftUI.
struct CameraPreview: UIViewRepresentable {
    let session: AVCaptureSession

    final class PreviewView: UIView {
        override class var layerClass: AnyClass { AVCaptureVideoPreviewLayer.self }
        var previewLayer: AVCaptureVideoPreviewLayer { layer as! AVCaptureVideoPreviewLayer }
    }

    func makeUIView(context: Context) -> PreviewView {
        let view = PreviewView()
        view.previewLayer.session = session
        view.previewLayer.videoGravity = .resizeAspectFill
        return view
    }

    func updateUIView(_ uiView: PreviewView, context: Context) {}
}
