import _FuzzTargets

/// libFuzzer entry point: feeds each input to `FuzzTargets.modelSignature`.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    FuzzTargets.modelSignature(data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? [])
    return 0
}
