import CTurboJPEG

/// JPEG decoding and encoding through libjpeg-turbo's TurboJPEG API.
///
/// Decoding uses the accurate integer IDCT and fancy chroma upsampling, the settings PIL uses,
/// so decoded pixels equal PIL's on the same file (both run libjpeg-turbo). A file that
/// libjpeg only warns about (truncated data) is an error here, as it is in PIL by default.
///
/// ```swift
/// let image = try JPEG.decode(bytes, name: "images/0042.jpg")
/// let bytes = try JPEG.encode(image, quality: 90)
/// ```
public enum JPEG {
  /// Decodes to RGB (greyscale and CMYK files are converted). `name` labels errors.
  public static func decode(_ bytes: [UInt8], name: String = "<memory>") throws -> RGBImage {
    guard let handle = tjInitDecompress() else { throw error(nil, name, "cannot create a decompressor") }
    defer { tjDestroy(handle) }
    var width: Int32 = 0
    var height: Int32 = 0
    var subsampling: Int32 = 0
    var colorspace: Int32 = 0
    let headerStatus = bytes.withUnsafeBufferPointer {
      tjDecompressHeader3(handle, $0.baseAddress, UInt($0.count), &width, &height, &subsampling, &colorspace)
    }
    if headerStatus != 0 { throw error(handle, name, "not a readable JPEG") }
    guard width > 0, height > 0 else { throw error(nil, name, "JPEG has no pixels (\(width)×\(height))") }
    var pixels = [UInt8](repeating: 0, count: Int(width) * Int(height) * 3)
    let status = bytes.withUnsafeBufferPointer { source in
      pixels.withUnsafeMutableBufferPointer { target in
        tjDecompress2(
          handle, source.baseAddress, UInt(source.count), target.baseAddress, width, 0, height,
          Int32(TJPF_RGB.rawValue), TJFLAG_ACCURATEDCT)
      }
    }
    // TurboJPEG returns -1 for warnings too (e.g. "Premature end of JPEG file"): the image
    // would be partly grey, which is corrupt data, not a usable sample.
    if status != 0 { throw error(handle, name, "cannot decode") }
    return RGBImage(width: Int(width), height: Int(height), pixels: pixels)
  }

  /// Encodes with 4:2:0 chroma subsampling (what cameras and img2dataset write).
  public static func encode(_ image: RGBImage, quality: Int = 90) throws -> [UInt8] {
    guard let handle = tjInitCompress() else { throw error(nil, "<encode>", "cannot create a compressor") }
    defer { tjDestroy(handle) }
    var output: UnsafeMutablePointer<UInt8>? = nil
    var size: UInt = 0
    let status = image.pixels.withUnsafeBufferPointer {
      tjCompress2(
        handle, $0.baseAddress, Int32(image.width), 0, Int32(image.height), Int32(TJPF_RGB.rawValue),
        &output, &size, Int32(TJSAMP_420.rawValue), Int32(quality), TJFLAG_ACCURATEDCT)
    }
    defer { if let output { tjFree(output) } }
    guard status == 0, let output else { throw error(handle, "<encode>", "cannot encode \(image.width)×\(image.height)") }
    return Array(UnsafeBufferPointer(start: output, count: Int(size)))
  }

  private static func error(_ handle: tjhandle?, _ name: String, _ what: String) -> DataError {
    let detail = tjGetErrorStr2(handle).map { String(cString: $0) } ?? ""
    let message = detail.isEmpty || detail == "No error" ? what : "\(what) (libjpeg: \(detail))"
    return DataError(.undecodableImage, file: name, message)
  }
}
