// The AVX-512 counterpart of sparse_rows.c, with the kernel Bulwark uses for Square's second layer
// (`bulwark_relu_change_update`): per row, the nonzero entries are gathered without branches, then
// C[r,:] = Σ_{j: A[r,j] ≠ 0} A[r,j]·B[j,:] in blocks of 128 columns held in registers. Against
// cblas_sgemm (OpenBLAS's SkylakeX kernels) on 250 rows, the shapes of one shard of an attack step
// on 784-256-256-10, one thread, at densities 0.15, 0.30 and 0.45.
// Not part of the package build (the README's AutoAttack section quotes its ratios).
//
//   /opt/swift/usr/bin/clang -O3 Benchmarks/experiments/sparse_rows_avx512.c -o /tmp/sparse_rows_avx512 \
//       -I/usr/include/x86_64-linux-gnu -lopenblas && OPENBLAS_CORETYPE=SkylakeX /tmp/sparse_rows_avx512
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <cblas.h>
#include <stddef.h>
static double now(){struct timespec t; clock_gettime(CLOCK_MONOTONIC,&t); return t.tv_sec+1e-9*t.tv_nsec;}
__attribute__((target("arch=x86-64-v4")))
static void rows_combine(const size_t *restrict index, const float *restrict coef, size_t k, const float *restrict w, size_t n, float *restrict out) {
    size_t o = 0;
    for (; o + 128 <= n; o += 128) {
        float acc[128];
        for (size_t i = 0; i < 128; i++) acc[i] = 0;
        for (size_t t = 0; t < k; t++) { const float *row = w + index[t] * n + o; const float c = coef[t]; for (size_t i = 0; i < 128; i++) acc[i] += c * row[i]; }
        for (size_t i = 0; i < 128; i++) out[o + i] = acc[i];
    }
    for (; o < n; o++) { float s = 0; for (size_t t = 0; t < k; t++) s += coef[t] * w[index[t]*n+o]; out[o]=s; }
}
int main(int argc,char**argv){ openblas_set_num_threads(1);
 int M=250; int widths[][2]={{256,256},{256,784},{784,256}}; double dens[]={0.15,0.3,0.45};
 for(int s=0;s<3;s++){ int W=widths[s][0], N=widths[s][1];
  float *A=malloc(4*M*W), *B=malloc(4*W*N), *C=malloc(4*M*N); size_t *idx=malloc(8*W); float *cf=malloc(4*W);
  for(int i=0;i<W*N;i++)B[i]=rand()/(float)RAND_MAX;
  for(int di=0;di<3;di++){ double d=dens[di];
   for(int i=0;i<M*W;i++)A[i]= (rand()/(double)RAND_MAX < d) ? rand()/(float)RAND_MAX : 0;
   int reps=200; double t0=now(); for(int r=0;r<reps;r++) cblas_sgemm(CblasRowMajor,CblasNoTrans,CblasNoTrans,M,N,W,1,A,W,B,N,0,C,N); double tg=now()-t0;
   t0=now(); for(int r=0;r<reps;r++) for(int i=0;i<M;i++){ size_t k=0; const float*a=A+i*W; for(int j=0;j<W;j++){ idx[k]=j; cf[k]=a[j]; k+= a[j]!=0; } rows_combine(idx,cf,k,B,N,C+i*N);} double ts=now()-t0;
   printf("W=%d N=%d density %.2f: dense %.3f ms, sparse %.3f ms, speedup %.2fx\n",W,N,d,tg/reps*1e3,ts/reps*1e3,tg/ts);
  }}
}
