import Foundation

/// `PIL.Image.resize` for 8-bit RGB images, bit for bit: the same port of Pillow's `libImaging/Resample.c`
/// as the Kotlin core's `PillowResize` (separable convolution, horizontal then vertical (vertical first when
/// the height shrinks by more than twice as many pixels as the width, as Pillow 13 does), support widened by
/// the downscale factor, 22-bit fixed-point coefficients, each pass rounded and clipped to 8 bits), and of
/// Pillow's affine NEAREST path. Keep the two ports line for line alike.
public enum PillowResize {
    static let precisionBits = 32 - 8 - 2

    /// Resize `image` to `width` x `height` with `filter`, as `image.resize((width, height), filter)`.
    public static func resize(_ image: RGBImage, width: Int, height: Int, filter: Resample) -> RGBImage {
        precondition(width > 0 && height > 0, "target size must be positive")
        if width == image.width && height == image.height { return image }
        if filter == .nearest { return nearest(image, width: width, height: height) }
        var current = image
        if verticalFirst(inWidth: image.width, inHeight: image.height, outWidth: width, outHeight: height) {
            if height != image.height { current = vertical(current, outHeight: height, coefficients(inSize: image.height, outSize: height, filter: filter)) }
            if width != image.width { current = horizontal(current, outWidth: width, coefficients(inSize: image.width, outSize: width, filter: filter)) }
            return current
        }
        if width != image.width { current = horizontal(current, outWidth: width, coefficients(inSize: image.width, outSize: width, filter: filter)) }
        if height != image.height { current = vertical(current, outHeight: height, coefficients(inSize: image.height, outSize: height, filter: filter)) }
        return current
    }

    /// Pillow 13's pass order (`ImagingResampleInner`): the vertical pass first when the height shrinks by more
    /// than twice as many pixels as the width does. Each pass rounds to 8 bits, so the order shows in the last
    /// bit; Pillow 12 and older always ran the horizontal pass first.
    public static func verticalFirst(inWidth: Int, inHeight: Int, outWidth: Int, outHeight: Int) -> Bool {
        inHeight - outHeight > 0 && inHeight - outHeight > (inWidth - outWidth) * 2
    }

    static func filterValue(_ filter: Resample, _ xIn: Double) -> Double {
        var x = xIn
        switch filter {
        case .box:
            return (x > -0.5 && x <= 0.5) ? 1.0 : 0.0
        case .bilinear:
            if x < 0.0 { x = -x }
            return x < 1.0 ? 1.0 - x : 0.0
        case .hamming:
            if x < 0.0 { x = -x }
            if x == 0.0 { return 1.0 }
            if x >= 1.0 { return 0.0 }
            x *= Double.pi
            // Pillow writes 0.54f + 0.46f * cos(x): float constants, double arithmetic.
            return sin(x) / x * (Double(Float(0.54)) + Double(Float(0.46)) * cos(x))
        case .bicubic:
            let a = -0.5
            if x < 0.0 { x = -x }
            if x < 1.0 { return ((a + 2.0) * x - (a + 3.0)) * x * x + 1 }
            if x < 2.0 { return (((x - 5) * x + 8) * x - 4) * a }
            return 0.0
        case .lanczos:
            return (-3.0 <= x && x < 3.0) ? sinc(x) * sinc(x / 3) : 0.0
        case .nearest:
            preconditionFailure("NEAREST has no convolution filter")
        }
    }

    static func sinc(_ xIn: Double) -> Double {
        if xIn == 0.0 { return 1.0 }
        let x = xIn * Double.pi
        return sin(x) / x
    }

    /// Per output pixel: first input index, count, and ksize fixed-point weights.
    struct Coefficients {
        let ksize: Int
        let bounds: [Int]
        let weights: [Int32]
    }

    /// Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for box (0, inSize).
    static func coefficients(inSize: Int, outSize: Int, filter: Resample) -> Coefficients {
        let in0: Float = 0
        let in1 = Float(inSize)
        let scale = Double(in1 - in0) / Double(outSize)
        var filterscale = scale
        if filterscale < 1.0 { filterscale = 1.0 }
        let support = filter.support * filterscale
        let ksize = Int(support.rounded(.up)) * 2 + 1
        var bounds = [Int](repeating: 0, count: outSize * 2)
        var weights = [Int32](repeating: 0, count: outSize * ksize)
        var k = [Double](repeating: 0, count: ksize)
        for xx in 0..<outSize {
            let center = Double(in0) + (Double(xx) + 0.5) * scale
            var ww = 0.0
            let ss = 1.0 / filterscale
            var xmin = Int(center - support + 0.5)
            if xmin < 0 { xmin = 0 }
            var xmax = Int(center + support + 0.5)
            if xmax > inSize { xmax = inSize }
            xmax -= xmin
            for x in 0..<xmax {
                let w = filterValue(filter, (Double(x + xmin) - center + 0.5) * ss)
                k[x] = w
                ww += w
            }
            for x in 0..<xmax where ww != 0.0 { k[x] /= ww }
            for x in xmax..<ksize { k[x] = 0.0 }
            for x in 0..<ksize {
                let scaled = k[x] * Double(1 << precisionBits)
                weights[xx * ksize + x] = Int32(k[x] < 0 ? -0.5 + scaled : 0.5 + scaled)
            }
            bounds[xx * 2] = xmin
            bounds[xx * 2 + 1] = xmax
        }
        return Coefficients(ksize: ksize, bounds: bounds, weights: weights)
    }

    @inline(__always) static func clip8(_ sum: Int32) -> UInt8 {
        let value = sum >> Int32(precisionBits)
        return UInt8(value < 0 ? 0 : (value > 255 ? 255 : value))
    }

    static func horizontal(_ image: RGBImage, outWidth: Int, _ c: Coefficients) -> RGBImage {
        let src = image.pixels
        var out = [UInt8](repeating: 0, count: outWidth * image.height * 3)
        let half = Int32(1 << (precisionBits - 1))
        for y in 0..<image.height {
            let rowIn = y * image.width * 3
            let rowOut = y * outWidth * 3
            for xx in 0..<outWidth {
                let xmin = c.bounds[xx * 2]
                let xmax = c.bounds[xx * 2 + 1]
                let kOffset = xx * c.ksize
                var ss0 = half, ss1 = half, ss2 = half
                for x in 0..<xmax {
                    let p = rowIn + (x + xmin) * 3
                    let w = c.weights[kOffset + x]
                    ss0 &+= Int32(src[p]) &* w
                    ss1 &+= Int32(src[p + 1]) &* w
                    ss2 &+= Int32(src[p + 2]) &* w
                }
                out[rowOut + xx * 3] = clip8(ss0)
                out[rowOut + xx * 3 + 1] = clip8(ss1)
                out[rowOut + xx * 3 + 2] = clip8(ss2)
            }
        }
        return RGBImage(width: outWidth, height: image.height, pixels: out)
    }

    static func vertical(_ image: RGBImage, outHeight: Int, _ c: Coefficients) -> RGBImage {
        let src = image.pixels
        let stride = image.width * 3
        var out = [UInt8](repeating: 0, count: image.width * outHeight * 3)
        let half = Int32(1 << (precisionBits - 1))
        for yy in 0..<outHeight {
            let ymin = c.bounds[yy * 2]
            let ymax = c.bounds[yy * 2 + 1]
            let kOffset = yy * c.ksize
            for xx in 0..<image.width {
                var ss0 = half, ss1 = half, ss2 = half
                for y in 0..<ymax {
                    let p = (y + ymin) * stride + xx * 3
                    let w = c.weights[kOffset + y]
                    ss0 &+= Int32(src[p]) &* w
                    ss1 &+= Int32(src[p + 1]) &* w
                    ss2 &+= Int32(src[p + 2]) &* w
                }
                let o = yy * stride + xx * 3
                out[o] = clip8(ss0)
                out[o + 1] = clip8(ss1)
                out[o + 2] = clip8(ss2)
            }
        }
        return RGBImage(width: image.width, height: outHeight, pixels: out)
    }

    /// Pillow's NEAREST resize: an affine scale sampling at pixel centres, positions accumulated in doubles.
    static func nearest(_ image: RGBImage, width: Int, height: Int) -> RGBImage {
        let a0 = Double(Float(image.width)) / Double(width)
        let a4 = Double(Float(image.height)) / Double(height)
        var xIn = [Int](repeating: -1, count: width)
        var xo = a0 * 0.5
        for x in 0..<width {
            let xi = xo < 0.0 ? -1 : Int(xo)
            if xi >= 0 && xi < image.width { xIn[x] = xi }
            xo += a0
        }
        var out = [UInt8](repeating: 0, count: width * height * 3) // Pillow fills with 0 where nothing maps
        var yo = a4 * 0.5
        for y in 0..<height {
            let yi = yo < 0.0 ? -1 : Int(yo)
            if yi >= 0 && yi < image.height {
                for x in 0..<width where xIn[x] >= 0 {
                    let from = (yi * image.width + xIn[x]) * 3
                    let to = (y * width + x) * 3
                    out[to] = image.pixels[from]
                    out[to + 1] = image.pixels[from + 1]
                    out[to + 2] = image.pixels[from + 2]
                }
            }
            yo += a4
        }
        return RGBImage(width: width, height: height, pixels: out)
    }
}
