#if canImport(ImageIO) && canImport(CoreGraphics)
import CoreGraphics
import Foundation
import ImageIO

/// Encoded PNG/JPEG bytes -> RGB pixels with ImageIO, alpha dropped (not composited), as the Python runtime's
/// `load_rgb` and Android's `BitmapFactory` with `inPremultiplied = false` give them: the decoded 8-bit samples
/// are read as they are (no colour management); other layouts (palette, 16-bit) are drawn into an RGB context,
/// exact for opaque images. EXIF orientation is not applied (the self-check's images have none). The self-check
/// is what tells whether this decoder agrees with Pillow's on a device.
public enum ImageDecoding {
    public static func decode(_ data: Data) throws -> RGBImage {
        guard let source = CGImageSourceCreateWithData(data as CFData, nil),
              let image = CGImageSourceCreateImageAtIndex(source, 0, nil) else {
            throw ManifestError("ImageIO cannot decode these \(data.count) bytes")
        }
        if let rgb = samples(image) { return rgb }
        return try drawn(image)
    }

    /// 8-bit gray or RGB samples with or without (straight, not premultiplied) alpha, in big-endian component order.
    static func samples(_ image: CGImage) -> RGBImage? {
        guard image.bitsPerComponent == 8, let space = image.colorSpace,
              space.model == .monochrome || space.model == .rgb,
              image.bitmapInfo.intersection(.byteOrderMask) == [] || image.bitmapInfo.intersection(.byteOrderMask) == .byteOrder32Big,
              let provided = image.dataProvider?.data else { return nil }
        let alpha = image.alphaInfo
        if alpha == .premultipliedFirst || alpha == .premultipliedLast || alpha == .alphaOnly { return nil }
        let components = image.bitsPerPixel / 8
        let colours = space.model == .monochrome ? 1 : 3
        guard components >= colours else { return nil }
        let skip = (alpha == .first || alpha == .noneSkipFirst) && components > colours ? 1 : 0
        let bytes = [UInt8](provided as Data)
        let width = image.width
        let height = image.height
        let stride = image.bytesPerRow
        guard bytes.count >= stride * (height - 1) + width * components else { return nil }
        var out = [UInt8](repeating: 0, count: width * height * 3)
        for y in 0..<height {
            for x in 0..<width {
                let from = y * stride + x * components + skip
                let to = (y * width + x) * 3
                for c in 0..<3 { out[to + c] = bytes[from + (colours == 1 ? 0 : c)] }
            }
        }
        return RGBImage(width: width, height: height, pixels: out)
    }

    /// Anything else, drawn into an 8-bit RGB context (alpha skipped).
    static func drawn(_ image: CGImage) throws -> RGBImage {
        let width = image.width
        let height = image.height
        var rgbx = [UInt8](repeating: 0, count: width * height * 4)
        let drawnOK: Bool = rgbx.withUnsafeMutableBytes { buffer in
            guard let context = CGContext(data: buffer.baseAddress, width: width, height: height, bitsPerComponent: 8,
                                          bytesPerRow: width * 4, space: CGColorSpaceCreateDeviceRGB(),
                                          bitmapInfo: CGImageAlphaInfo.noneSkipLast.rawValue) else { return false }
            context.draw(image, in: CGRect(x: 0, y: 0, width: width, height: height))
            return true
        }
        guard drawnOK else { throw ManifestError("cannot draw a \(width)x\(height) image into an RGB context") }
        var out = [UInt8](repeating: 0, count: width * height * 3)
        for i in 0..<(width * height) {
            out[i * 3] = rgbx[i * 4]
            out[i * 3 + 1] = rgbx[i * 4 + 1]
            out[i * 3 + 2] = rgbx[i * 4 + 2]
        }
        return RGBImage(width: width, height: height, pixels: out)
    }
}
#endif
