#include "openblas_core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

// OpenBLAS symbols, weak so that Bulwark still links and runs against a BLAS without them
// (a non-DYNAMIC_ARCH OpenBLAS has no gotoblas_dynamic_*; then nothing is changed).
extern char *openblas_get_corename(void) __attribute__((weak));
extern void gotoblas_dynamic_init(void) __attribute__((weak));
extern void gotoblas_dynamic_quit(void) __attribute__((weak));

static char detected[32] = "unknown";
static const char *reason = "not examined";
static char selection_reason[192];

int bulwark_openblas_core_vector_level(const char *name) {
    static const char *const avx512[] = {"SkylakeX", "Cooperlake", "SapphireRapids"};
    static const char *const avx2[] = {"Haswell", "Zen"};
    static const char *const avx[] = {"Sandybridge", "Bulldozer", "Piledriver", "Steamroller", "Excavator"};
    for (size_t i = 0; i < sizeof avx512 / sizeof *avx512; i++) if (!strcasecmp(name, avx512[i])) return 3;
    for (size_t i = 0; i < sizeof avx2 / sizeof *avx2; i++) if (!strcasecmp(name, avx2[i])) return 2;
    for (size_t i = 0; i < sizeof avx / sizeof *avx; i++) if (!strcasecmp(name, avx[i])) return 1;
    return 0;
}

#if defined(__x86_64__)
static unsigned long long xcr0(void) {
    unsigned int eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((unsigned long long)edx << 32) | eax;
}
#endif

int bulwark_cpu_vector_level(void) {
#if defined(__x86_64__)
    unsigned int eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return 0;
    const int osxsave = (ecx >> 27) & 1, avx = (ecx >> 28) & 1, fma = (ecx >> 12) & 1;
    if (!osxsave || !avx) return 0;
    const unsigned long long state = xcr0();
    if ((state & 0x6) != 0x6) return 0;  // the OS does not save XMM and YMM registers
    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return 1;
    const int avx2 = (ebx >> 5) & 1;
    if (!avx2 || !fma) return 1;
    const unsigned int avx512 = (1u << 16) | (1u << 17) | (1u << 28) | (1u << 30) | (1u << 31);  // F DQ CD BW VL
    if ((ebx & avx512) == avx512 && (state & 0xe0) == 0xe0) return 3;  // and the OS saves opmask and ZMM
    return 2;
#else
    return 0;
#endif
}

static int is_intel(void) {
#if defined(__x86_64__)
    unsigned int eax, ebx, ecx, edx;
    if (!__get_cpuid(0, &eax, &ebx, &ecx, &edx)) return 0;
    return ebx == 0x756e6547 && edx == 0x49656e69 && ecx == 0x6c65746e;  // "GenuineIntel"
#else
    return 0;
#endif
}

/// Runs before `main` (after OpenBLAS's own constructor, which every library this one depends on
/// completes first) while the process is still single-threaded apart from OpenBLAS's idle pool.
__attribute__((constructor)) static void bulwark_select_openblas_core(void) {
    if (!openblas_get_corename) { reason = "the BLAS library does not report its kernels"; return; }
    strncpy(detected, openblas_get_corename(), sizeof detected - 1);
    if (getenv("OPENBLAS_CORETYPE")) { reason = "set by OPENBLAS_CORETYPE"; return; }
    if (!gotoblas_dynamic_init || !gotoblas_dynamic_quit) { reason = "OpenBLAS is not built with DYNAMIC_ARCH"; return; }
    const int supported = bulwark_cpu_vector_level(), chosen = bulwark_openblas_core_vector_level(detected);
    if (supported <= chosen) { reason = "OpenBLAS's own choice"; return; }
    // AMD processors keep OpenBLAS's choice unless it fell back to SSE; their AVX2 family is Zen.
    const int target = is_intel() ? supported : (chosen == 0 && supported >= 2 ? 2 : chosen);
    if (target <= chosen) { reason = "OpenBLAS's own choice"; return; }
    static const char *const names[] = {"Prescott", "Sandybridge", "Haswell", "SkylakeX"};
    setenv("OPENBLAS_CORETYPE", names[target], 1);
    gotoblas_dynamic_quit();
    gotoblas_dynamic_init();
    unsetenv("OPENBLAS_CORETYPE");  // child processes make the same choice for themselves
    if (strcasecmp(openblas_get_corename(), names[target]) == 0)
        snprintf(selection_reason, sizeof selection_reason,
                 "selected by Bulwark from the CPU's vector extensions (OpenBLAS chose %s, narrower than the CPU supports)",
                 detected);
    else
        snprintf(selection_reason, sizeof selection_reason,
                 "Bulwark asked OpenBLAS for %s (it chose %s by itself); this OpenBLAS build gave %s",
                 names[target], detected, openblas_get_corename());
    reason = selection_reason;
}

const char *bulwark_openblas_detected_core(void) { return detected; }

const char *bulwark_openblas_core(void) { return openblas_get_corename ? openblas_get_corename() : "unknown"; }

const char *bulwark_openblas_core_reason(void) { return reason; }
