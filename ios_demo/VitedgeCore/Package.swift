// swift-tools-version:5.7
// VitedgeCore: the iOS demo's pure-Swift core (manifest, Pillow-exact preprocessing, top-k), mirroring the
// Android demo's Kotlin core. `swift test` runs the golden-vector tests against ../../demo_golden.
import PackageDescription

let package = Package(
    name: "VitedgeCore",
    platforms: [.iOS(.v16), .macOS(.v13)],
    products: [
        .library(name: "VitedgeCore", targets: ["VitedgeCore"]),
    ],
    targets: [
        .target(name: "VitedgeCore"),
        .testTarget(name: "VitedgeCoreTests", dependencies: ["VitedgeCore"]),
    ]
)
