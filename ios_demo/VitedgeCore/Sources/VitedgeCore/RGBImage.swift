import Foundation

/// An 8-bit RGB image: `pixels` holds width * height * 3 bytes, row-major, R G B interleaved.
///
/// Decoding (JPEG/PNG, EXIF orientation, dropping alpha) is the platform's job; the app builds an
/// RGBImage from a camera frame's BGRA bytes with `init(bgra:width:height:bytesPerRow:)`.
public struct RGBImage: Equatable {
    public let width: Int
    public let height: Int
    public let pixels: [UInt8]

    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(width > 0 && height > 0, "image size must be positive")
        precondition(pixels.count == width * height * 3, "expected \(width * height * 3) bytes for \(width)x\(height) RGB")
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// From BGRA bytes with a row stride (a `kCVPixelFormatType_32BGRA` CVPixelBuffer); alpha is dropped.
    public init(bgra: UnsafeRawBufferPointer, width: Int, height: Int, bytesPerRow: Int) {
        var out = [UInt8](repeating: 0, count: width * height * 3)
        for y in 0..<height {
            for x in 0..<width {
                let from = y * bytesPerRow + x * 4
                let to = (y * width + x) * 3
                out[to] = bgra[from + 2]
                out[to + 1] = bgra[from + 1]
                out[to + 2] = bgra[from]
            }
        }
        self.init(width: width, height: height, pixels: out)
    }

    /// Channel `c` (0 = R) of pixel (x, y).
    public func get(_ x: Int, _ y: Int, _ c: Int) -> UInt8 { pixels[(y * width + x) * 3 + c] }

    /// This image turned clockwise by `degrees` (0, 90, 180 or 270), as the Kotlin core's `rotated`.
    public func rotated(_ degrees: Int) -> RGBImage {
        let turns = ((degrees % 360) + 360) % 360
        precondition(turns % 90 == 0, "rotation must be a multiple of 90 degrees")
        if turns == 0 { return self }
        let outWidth = turns == 180 ? width : height
        let outHeight = turns == 180 ? height : width
        var out = [UInt8](repeating: 0, count: pixels.count)
        for y in 0..<height {
            for x in 0..<width {
                let tx: Int
                let ty: Int
                switch turns {
                case 90: tx = height - 1 - y; ty = x
                case 180: tx = width - 1 - x; ty = height - 1 - y
                default: tx = y; ty = width - 1 - x
                }
                let from = (y * width + x) * 3
                let to = (ty * outWidth + tx) * 3
                out[to] = pixels[from]
                out[to + 1] = pixels[from + 1]
                out[to + 2] = pixels[from + 2]
            }
        }
        return RGBImage(width: outWidth, height: outHeight, pixels: out)
    }
}
