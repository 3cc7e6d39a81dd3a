import Foundation

/// RGB image -> model input tensor, exactly as `vitedge.runtime.preprocess.preprocess` and the Kotlin core's
/// `Preprocessor` do: Pillow-exact resize, center crop with zero padding, rescale in double rounded to float,
/// normalize in float, BGR after normalizing, NCHW or NHWC.
public struct Preprocessor {
    public let spec: PreprocessSpec
    /// table[c * 256 + v]: what value v of channel c (RGB order) becomes.
    private let table: [Float]

    public init(spec: PreprocessSpec) {
        self.spec = spec
        let rescale = spec.normalizationInModel ? nil : spec.rescaleFactor
        let normalize = !spec.normalizationInModel && spec.mean != nil && spec.std != nil
        var table = [Float](repeating: 0, count: 3 * 256)
        for c in 0..<3 {
            for v in 0..<256 {
                var x: Float = rescale.map { Float(Double(v) * $0) } ?? Float(v)
                if normalize { x = (x - Float(spec.mean![c])) / Float(spec.std![c]) }
                table[c * 256 + v] = x
            }
        }
        self.table = table
    }

    /// (width, height) after the resize step, with transformers' rounding.
    public func resizedSize(width: Int, height: Int) -> (width: Int, height: Int) {
        switch spec.resizeMode {
        case .exact:
            return (spec.size!.width, spec.size!.height)
        case .shortestEdge:
            let edge = spec.shortestEdge!
            let short = min(width, height)
            let long = width <= height ? height : width
            // Python: int(shortest_edge * long / short), a correctly rounded double division, truncated.
            let newLong = Int(Double(edge * long) / Double(short))
            return width <= height ? (edge, newLong) : (newLong, edge)
        case .none:
            return (width, height)
        }
    }

    /// Step 1: the resized image.
    public func resize(_ image: RGBImage) -> RGBImage {
        let target = resizedSize(width: image.width, height: image.height)
        if target.width == image.width && target.height == image.height { return image }
        return PillowResize.resize(image, width: target.width, height: target.height, filter: spec.resample)
    }

    /// Step 2: the center crop (zero padding where the crop is larger), or the image itself without one.
    public func crop(_ image: RGBImage) -> RGBImage {
        guard let crop = spec.cropSize else { return image }
        let rows = Preprocessor.window(image.height, crop.height)
        let cols = Preprocessor.window(image.width, crop.width)
        var out = [UInt8](repeating: 0, count: crop.width * crop.height * 3)
        for y in 0..<crop.height {
            let sy = y + rows
            if sy < 0 || sy >= image.height { continue }
            for x in 0..<crop.width {
                let sx = x + cols
                if sx < 0 || sx >= image.width { continue }
                let from = (sy * image.width + sx) * 3
                let to = (y * crop.width + x) * 3
                out[to] = image.pixels[from]
                out[to + 1] = image.pixels[from + 1]
                out[to + 2] = image.pixels[from + 2]
            }
        }
        return RGBImage(width: crop.width, height: crop.height, pixels: out)
    }

    /// Offset from output to input index along one axis: `start` when cropping, `-ceil(missing / 2)` when padding.
    static func window(_ length: Int, _ crop: Int) -> Int {
        crop <= length ? (length - crop) / 2 : -((crop - length + 1) / 2)
    }

    /// Steps 1 and 2: the 8-bit pixels the model sees.
    public func pixels(_ image: RGBImage) -> RGBImage { crop(resize(image)) }

    /// The whole pipeline: a float tensor in the spec's layout, no batch dimension (3*H*W values).
    public func tensor(_ image: RGBImage) -> [Float] {
        let pixels = self.pixels(image)
        var out = [Float](repeating: 0, count: pixels.width * pixels.height * 3)
        out.withUnsafeMutableBufferPointer { writeTensor(pixels, into: $0) }
        return out
    }

    /// Step 3 for resized and cropped `pixels`, into `out` (3 * width * height floats; e.g. an MLMultiArray's memory).
    public func writeTensor(_ pixels: RGBImage, into out: UnsafeMutableBufferPointer<Float>) {
        let plane = pixels.width * pixels.height
        precondition(out.count >= plane * 3, "output holds \(out.count) floats, needs \(plane * 3)")
        let src = pixels.pixels
        for i in 0..<plane {
            for c in 0..<3 {
                let from = spec.bgr ? 2 - c : c
                let value = table[from * 256 + Int(src[i * 3 + from])]
                if spec.layout == .NCHW { out[c * plane + i] = value } else { out[i * 3 + c] = value }
            }
        }
    }
}
