import Foundation
import Testing
@testable import TensorCore

/// Bulwark's repair of OpenBLAS's kernel choice on CPUs it does not recognise (`_OpenBLASCore`).
/// GEMMTests check the selected kernels' products against the naive reference.
@Suite("OpenBLAS kernel family")
struct OpenBLASKernelTests {
    let kernels = BLAS.kernels
    let userChoice = ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"]

    @Test("never narrower than OpenBLAS's own choice, and never an SSE fallback on a CPU with AVX2")
    func atLeastTheDetectedFamily() {
        guard userChoice == nil else {
            #expect(kernels.reason == "set by OPENBLAS_CORETYPE")
            return
        }
        let (inUse, detected) = (BLAS.KernelFamily.vectorLevel(of: kernels.inUse), BLAS.KernelFamily.vectorLevel(of: kernels.detectedByOpenBLAS))
        #expect(inUse >= detected, "\(kernels)")
        #if arch(x86_64)
        if BLAS.KernelFamily.cpuVectorLevel >= 2 { #expect(inUse >= 2, "the CPU has AVX2 but GEMMs run \(kernels)") }
        #endif
        if kernels.inUse != kernels.detectedByOpenBLAS {
            #expect(kernels.reason.contains("selected by Bulwark") && kernels.reason.contains(kernels.detectedByOpenBLAS), "\(kernels.reason)")
        } else {
            #expect(kernels.reason == "OpenBLAS's own choice" || kernels.reason.contains("not"), "\(kernels.reason)")
        }
    }

    @Test("the family names rank as OpenBLAS's kernels do")
    func vectorLevels() {
        #expect(BLAS.KernelFamily.vectorLevel(of: "Prescott") == 0)
        #expect(BLAS.KernelFamily.vectorLevel(of: "Nehalem") == 0)
        #expect(BLAS.KernelFamily.vectorLevel(of: "Sandybridge") == 1)
        #expect(BLAS.KernelFamily.vectorLevel(of: "haswell") == 2)
        #expect(BLAS.KernelFamily.vectorLevel(of: "Zen") == 2)
        #expect(BLAS.KernelFamily.vectorLevel(of: "SkylakeX") == 3)
        #expect(BLAS.KernelFamily.vectorLevel(of: "unknown") == 0)
        #expect((0...3).contains(BLAS.KernelFamily.cpuVectorLevel))
    }
}
