// Which OpenBLAS kernel family ("core") runs Bulwark's GEMMs, and the repair Bulwark makes when
// OpenBLAS does not recognise the CPU.
//
// OpenBLAS built with DYNAMIC_ARCH (Debian's) picks its kernels by CPU family and model number.
// A processor newer than the library (Debian 12's OpenBLAS 0.3.21 on a 5th-generation Xeon, model
// 0xCF, for example) is not in its table, and OpenBLAS falls back to "Prescott": SSE3 kernels,
// about 5× slower SGEMM than the AVX-512 ones the same CPU runs. Before `main`, Bulwark compares
// OpenBLAS's choice with the vector extensions the CPU and operating system actually support
// (CPUID and XGETBV, as OpenBLAS itself checks them) and, when OpenBLAS chose a narrower family,
// re-initialises OpenBLAS with the matching one (SkylakeX for AVX-512, Haswell for AVX2 and FMA,
// Sandybridge for AVX), through OpenBLAS's own `OPENBLAS_CORETYPE` mechanism.
//
// Nothing changes when the user set OPENBLAS_CORETYPE (their choice stands; OPENBLAS_CORETYPE=
// Prescott restores the old behaviour), when OpenBLAS already chose a family at least as wide, or
// when the library is not a DYNAMIC_ARCH OpenBLAS.
#ifndef BULWARK_OPENBLAS_CORE_H
#define BULWARK_OPENBLAS_CORE_H

/// The kernel family OpenBLAS chose by itself at load time ("Prescott", "Haswell", …), or
/// "unknown" when the library does not say.
const char *bulwark_openblas_detected_core(void);

/// The kernel family in use now (after any repair).
const char *bulwark_openblas_core(void);

/// Why the family in use differs from the detected one, or does not: a short sentence.
const char *bulwark_openblas_core_reason(void);

/// The widest vector extension this CPU and OS support, as OpenBLAS ranks them:
/// 0 SSE only, 1 AVX, 2 AVX2 with FMA, 3 AVX-512 (F, CD, BW, DQ, VL).
int bulwark_cpu_vector_level(void);

/// The vector level (as above) of an OpenBLAS x86-64 kernel family: 3 for SkylakeX, Cooperlake and
/// SapphireRapids, 2 for Haswell and Zen, 1 for Sandybridge and AMD's AVX families, 0 otherwise.
int bulwark_openblas_core_vector_level(const char *name);

#endif
