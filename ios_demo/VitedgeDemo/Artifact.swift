import CoreML
import Foundation
import VitedgeCore

/// A vitedge Core ML artifact folder (manifest.json + model.mlpackage): bundled in the app as the folder
/// reference `artifact/`, or imported from Files into the app's Documents. Opening checks the manifest
/// (schema, format) and compiles the .mlpackage with Core ML.
struct Artifact {
    let name: String
    let folder: URL
    let manifest: Manifest
    let compiledModel: URL

    static let bundledFolderName = "artifact"

    static var importedFolder: URL {
        FileManager.default.urls(for: .documentDirectory, in: .userDomainMask)[0].appendingPathComponent("artifact")
    }

    /// The imported artifact if there is one, else the bundled one, else nil.
    static func openDefault() async throws -> Artifact? {
        if FileManager.default.fileExists(atPath: importedFolder.appendingPathComponent("manifest.json").path) {
            return try await open(importedFolder)
        }
        if let bundled = Bundle.main.url(forResource: bundledFolderName, withExtension: nil),
           FileManager.default.fileExists(atPath: bundled.appendingPathComponent("manifest.json").path) {
            return try await open(bundled)
        }
        return nil
    }

    static func open(_ folder: URL) async throws -> Artifact {
        let manifest = try Manifest.parse(Data(contentsOf: folder.appendingPathComponent("manifest.json")), origin: "\(folder.lastPathComponent)/manifest.json")
        guard manifest.format == "coreml" else {
            throw ManifestError("this is a \(manifest.format) artifact; the iOS demo runs Core ML ones: vitedge convert MODEL --to coreml --out DIR")
        }
        let package = folder.appendingPathComponent(manifest.modelFile)
        guard FileManager.default.fileExists(atPath: package.path) else {
            throw ManifestError("\(manifest.modelFile): missing in \(folder.lastPathComponent); copy the whole artifact folder")
        }
        let compiled = try await MLModel.compileModel(at: package)
        return Artifact(name: folder.lastPathComponent, folder: folder, manifest: manifest, compiledModel: compiled)
    }

    /// Copy a folder picked in Files (security-scoped) into Documents/artifact, then open it.
    static func importFolder(_ picked: URL) async throws -> Artifact {
        let scoped = picked.startAccessingSecurityScopedResource()
        defer { if scoped { picked.stopAccessingSecurityScopedResource() } }
        let manager = FileManager.default
        let staging = importedFolder.deletingLastPathComponent().appendingPathComponent("artifact.partial")
        try? manager.removeItem(at: staging)
        try manager.copyItem(at: picked, to: staging)
        let artifact = try await open(staging) // check before replacing the previous artifact
        try? manager.removeItem(at: importedFolder)
        try manager.moveItem(at: staging, to: importedFolder)
        return try await open(importedFolder).withName(artifact.name)
    }

    private func withName(_ name: String) -> Artifact {
        Artifact(name: name, folder: folder, manifest: manifest, compiledModel: compiledModel)
    }
}
