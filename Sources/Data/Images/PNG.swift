import CPNG

/// PNG decoding and encoding through libpng's simplified `png_image_*` API (no setjmp).
///
/// Alpha is dropped without compositing, as PIL's `convert("RGB")` does (what CLIP's
/// preprocessing calls); grey and palette images are expanded to RGB.
///
/// ```swift
/// let image = try PNG.decode(bytes, name: "mask.png")
/// let bytes = try PNG.encode(image)
/// ```
public enum PNG {
  /// Decodes to RGB. `name` labels errors.
  public static func decode(_ bytes: [UInt8], name: String = "<memory>") throws -> RGBImage {
    var image = png_image()
    image.version = UInt32(PNG_IMAGE_VERSION)
    let begun = bytes.withUnsafeBufferPointer { png_image_begin_read_from_memory(&image, $0.baseAddress, $0.count) }
    guard begun != 0 else { throw error(&image, name, "not a readable PNG") }
    defer { png_image_free(&image) }
    let hasAlpha = image.format & UInt32(PNG_FORMAT_FLAG_ALPHA) != 0
    // Reading RGBA and dropping alpha ourselves keeps the stored colour values; asking
    // libpng for RGB would composite onto a background instead.
    image.format = UInt32(hasAlpha ? PNG_FORMAT_FLAG_COLOR | PNG_FORMAT_FLAG_ALPHA : PNG_FORMAT_FLAG_COLOR)
    let channels = hasAlpha ? 4 : 3
    let width = Int(image.width)
    let height = Int(image.height)
    guard width > 0, height > 0 else { throw error(&image, name, "PNG has no pixels (\(width)×\(height))") }
    var buffer = [UInt8](repeating: 0, count: width * height * channels)
    let finished = buffer.withUnsafeMutableBytes {
      png_image_finish_read(&image, nil, $0.baseAddress, Int32(width * channels), nil)
    }
    guard finished != 0 else { throw error(&image, name, "cannot decode") }
    if !hasAlpha { return RGBImage(width: width, height: height, pixels: buffer) }
    var rgb = [UInt8](repeating: 0, count: width * height * 3)
    for p in 0..<(width * height) {
      rgb[p * 3] = buffer[p * 4]
      rgb[p * 3 + 1] = buffer[p * 4 + 1]
      rgb[p * 3 + 2] = buffer[p * 4 + 2]
    }
    return RGBImage(width: width, height: height, pixels: rgb)
  }

  /// Encodes as 8-bit RGB (lossless: shards and exported scenes keep exact pixels).
  public static func encode(_ image: RGBImage) throws -> [UInt8] {
    var png = png_image()
    png.version = UInt32(PNG_IMAGE_VERSION)
    png.width = UInt32(image.width)
    png.height = UInt32(image.height)
    png.format = UInt32(PNG_FORMAT_FLAG_COLOR)
    let stride = Int32(image.width * 3)
    // First call measures, second writes (the documented two-step use of write_to_memory).
    var size: Int = 0
    let measured = image.pixels.withUnsafeBytes { png_image_write_to_memory(&png, nil, &size, 0, $0.baseAddress, stride, nil) }
    guard measured != 0 else { throw error(&png, "<encode>", "cannot encode \(image.width)×\(image.height)") }
    var output = [UInt8](repeating: 0, count: size)
    let written = output.withUnsafeMutableBytes { target in
      image.pixels.withUnsafeBytes { png_image_write_to_memory(&png, target.baseAddress, &size, 0, $0.baseAddress, stride, nil) }
    }
    guard written != 0 else { throw error(&png, "<encode>", "cannot encode \(image.width)×\(image.height)") }
    return Array(output.prefix(size))
  }

  private static func error(_ image: inout png_image, _ name: String, _ what: String) -> DataError {
    let detail = withUnsafeBytes(of: &image.message) { raw in
      String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
    }
    return DataError(.undecodableImage, file: name, detail.isEmpty ? what : "\(what) (libpng: \(detail))")
  }
}
