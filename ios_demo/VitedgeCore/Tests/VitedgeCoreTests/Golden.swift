import Foundation
import XCTest
@testable import VitedgeCore

/// The golden vectors the Python runtime writes (`python -m tests.golden_vectors demo_golden`): the
/// repository's demo_golden/, found from this file's path (or the VITEDGE_GOLDEN environment variable).
enum Golden {
    /// From this file to the repository root: Tests/VitedgeCoreTests -> VitedgeCore -> ios_demo -> root.
    static let relativePath = "../../../../demo_golden"

    static var directory: URL {
        if let path = ProcessInfo.processInfo.environment["VITEDGE_GOLDEN"] { return URL(fileURLWithPath: path) }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(relativePath).standardized
    }

    static func json(_ url: URL) throws -> [String: Any] {
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: url), options: [])
        guard let dictionary = object as? [String: Any] else { throw ManifestError("\(url.path): not a JSON object") }
        return dictionary
    }

    static var index: [String: Any] { get throws { try json(directory.appendingPathComponent("index.json")) } }

    static func cases(_ kind: String) throws -> [String] { (try index[kind] as? [String]) ?? [] }

    static func tolerance(_ key: String) throws -> Double {
        ((try index["tolerance"] as? [String: Any])?[key] as? Double) ?? 0
    }

    /// Little-endian float32 values of a .f32 file.
    static func floats(_ url: URL) throws -> [Float] {
        let data = try Data(contentsOf: url)
        return stride(from: 0, to: data.count, by: 4).map { offset in
            let bits = UInt32(data[offset]) | UInt32(data[offset + 1]) << 8 | UInt32(data[offset + 2]) << 16 | UInt32(data[offset + 3]) << 24
            return Float(bitPattern: bits)
        }
    }

    /// An RGBImage from a case.json entry {"file": "rgb.u8", "width": W, "height": H}.
    static func image(_ folder: URL, _ entry: [String: Any]) throws -> RGBImage {
        let pixels = [UInt8](try Data(contentsOf: folder.appendingPathComponent(entry["file"] as! String)))
        return RGBImage(width: entry["width"] as! Int, height: entry["height"] as! Int, pixels: pixels)
    }

    static func manifest(_ folder: URL) throws -> Manifest {
        try Manifest.parse(Data(contentsOf: folder.appendingPathComponent("manifest.json")), origin: folder.lastPathComponent)
    }
}
