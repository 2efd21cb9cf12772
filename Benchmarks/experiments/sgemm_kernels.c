// SGEMM throughput of OpenBLAS's kernel families on one product the size of an attack step's first
// layer (352 × 784 times 784 × 256, 2 threads), with the kernels OpenBLAS chose and with the ones
// OPENBLAS_CORETYPE forces. A plain C program, so Bulwark's own kernel selection is not involved.
// Not part of the package build (the README's Engine section quotes its ratio).
//
//   gcc -O2 Benchmarks/experiments/sgemm_kernels.c -o /tmp/sgemm_kernels -I/usr/include/x86_64-linux-gnu -lopenblas
//   env -u OPENBLAS_CORETYPE /tmp/sgemm_kernels; OPENBLAS_CORETYPE=SkylakeX /tmp/sgemm_kernels
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <cblas.h>
int main(int c, char**v){int M=352,N=256,K=784; float*A=malloc(4*M*K),*B=malloc(4*K*N),*C=malloc(4*M*N);
for(int i=0;i<M*K;i++)A[i]=rand()/(float)RAND_MAX; for(int i=0;i<K*N;i++)B[i]=rand()/(float)RAND_MAX;
struct timespec t0,t1; int reps=2000; cblas_sgemm(CblasRowMajor,CblasNoTrans,CblasTrans,M,N,K,1,A,K,B,K,0,C,N);
clock_gettime(CLOCK_MONOTONIC,&t0); for(int r=0;r<reps;r++) cblas_sgemm(CblasRowMajor,CblasNoTrans,CblasTrans,M,N,K,1,A,K,B,K,0,C,N);
clock_gettime(CLOCK_MONOTONIC,&t1); double s=(t1.tv_sec-t0.tv_sec)+1e-9*(t1.tv_nsec-t0.tv_nsec);
printf("%s GFLOPS %.1f\n", openblas_get_corename(), 2.0*M*N*K*reps/s/1e9);}
