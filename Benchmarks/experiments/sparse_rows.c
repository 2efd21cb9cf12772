// Does exploiting the sparsity of ReLU activations beat dense SGEMM for the products of an attack
// step on a small MLP? A row-sparse product C[r,:] = Σ_{j: A[r,j] ≠ 0} A[r,j]·B[j,:] against
// cblas_sgemm on the same (dense-stored) matrices, single-threaded, with two sparse kernels: one row
// at a time with 64 columns in 8 AVX2 accumulators, and four rows at a time with 16 columns.
// Not part of the package build (the README's AutoAttack section quotes its ratios).
//
//   clang -O3 -mavx2 -mfma Benchmarks/experiments/sparse_rows.c -o /tmp/sparse_rows -lopenblas -lm
//   /tmp/sparse_rows ROWS K N DENSITY REPS      e.g. 352 256 784 0.27 200, then 352 256 256 0.27 400
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <math.h>
#include <cblas.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
// C[r,:] = sum_{j in nz(A[r,:])} A[r,j] B[j,:]   (B: k x n row-major)
static void sparse_rows(const float*A,size_t rows,size_t k,const float*B,size_t n,float*C,int*idx,float*val,int*cnt){
  for(size_t r=0;r<rows;r++){int c=0;const float*a=A+r*k;for(size_t j=0;j<k;j++) if(a[j]!=0){idx[r*k+c]=j;val[r*k+c]=a[j];c++;} cnt[r]=c;}
  size_t j0=0;
  for(;j0+64<=n;j0+=64){
    for(size_t r=0;r<rows;r++){
      __m256 a0=_mm256_setzero_ps(),a1=a0,a2=a0,a3=a0,a4=a0,a5=a0,a6=a0,a7=a0;
      const int*ix=idx+r*k;const float*v=val+r*k;int c=cnt[r];
      for(int t=0;t<c;t++){const float*b=B+(size_t)ix[t]*n+j0;__m256 s=_mm256_broadcast_ss(v+t);
        a0=_mm256_fmadd_ps(s,_mm256_loadu_ps(b),a0);a1=_mm256_fmadd_ps(s,_mm256_loadu_ps(b+8),a1);
        a2=_mm256_fmadd_ps(s,_mm256_loadu_ps(b+16),a2);a3=_mm256_fmadd_ps(s,_mm256_loadu_ps(b+24),a3);
        a4=_mm256_fmadd_ps(s,_mm256_loadu_ps(b+32),a4);a5=_mm256_fmadd_ps(s,_mm256_loadu_ps(b+40),a5);
        a6=_mm256_fmadd_ps(s,_mm256_loadu_ps(b+48),a6);a7=_mm256_fmadd_ps(s,_mm256_loadu_ps(b+56),a7);}
      float*o=C+r*n+j0;_mm256_storeu_ps(o,a0);_mm256_storeu_ps(o+8,a1);_mm256_storeu_ps(o+16,a2);_mm256_storeu_ps(o+24,a3);
      _mm256_storeu_ps(o+32,a4);_mm256_storeu_ps(o+40,a5);_mm256_storeu_ps(o+48,a6);_mm256_storeu_ps(o+56,a7);
    }
  }
  for(;j0<n;j0+=8){ // tail in 8s (n multiple of 8 here)
    for(size_t r=0;r<rows;r++){__m256 a0=_mm256_setzero_ps();const int*ix=idx+r*k;const float*v=val+r*k;int c=cnt[r];
      for(int t=0;t<c;t++) a0=_mm256_fmadd_ps(_mm256_broadcast_ss(v+t),_mm256_loadu_ps(B+(size_t)ix[t]*n+j0),a0);
      _mm256_storeu_ps(C+r*n+j0,a0);}
  }
}

// rows in groups of 4, columns in blocks of 16; index lists padded with (0, 0.0) to the group's max count
static void sparse4(const float*A,size_t rows,size_t k,const float*B,size_t n,float*C,int*idx,float*val,int*cnt){
  for(size_t r=0;r<rows;r++){int c=0;const float*a=A+r*k;for(size_t j=0;j<k;j++) if(a[j]!=0){idx[r*k+c]=j;val[r*k+c]=a[j];c++;} cnt[r]=c;}
  for(size_t g=0;g+4<=rows;g+=4){int mx=0;for(int q=0;q<4;q++) if(cnt[g+q]>mx)mx=cnt[g+q];
    for(int q=0;q<4;q++) for(int t=cnt[g+q];t<mx;t++){idx[(g+q)*k+t]=0;val[(g+q)*k+t]=0;} cnt[g]=mx; }
  for(size_t j0=0;j0+16<=n;j0+=16){
    for(size_t g=0;g+4<=rows;g+=4){
      int c=cnt[g];
      const int*i0=idx+g*k,*i1=i0+k,*i2=i1+k,*i3=i2+k;const float*v0=val+g*k,*v1=v0+k,*v2=v1+k,*v3=v2+k;
      __m256 a00=_mm256_setzero_ps(),a01=a00,a10=a00,a11=a00,a20=a00,a21=a00,a30=a00,a31=a00;
      const float*Bj=B+j0;
      for(int t=0;t<c;t++){
        const float*b0=Bj+(size_t)i0[t]*n,*b1=Bj+(size_t)i1[t]*n,*b2=Bj+(size_t)i2[t]*n,*b3=Bj+(size_t)i3[t]*n;
        __m256 s0=_mm256_broadcast_ss(v0+t),s1=_mm256_broadcast_ss(v1+t),s2=_mm256_broadcast_ss(v2+t),s3=_mm256_broadcast_ss(v3+t);
        a00=_mm256_fmadd_ps(s0,_mm256_loadu_ps(b0),a00);a01=_mm256_fmadd_ps(s0,_mm256_loadu_ps(b0+8),a01);
        a10=_mm256_fmadd_ps(s1,_mm256_loadu_ps(b1),a10);a11=_mm256_fmadd_ps(s1,_mm256_loadu_ps(b1+8),a11);
        a20=_mm256_fmadd_ps(s2,_mm256_loadu_ps(b2),a20);a21=_mm256_fmadd_ps(s2,_mm256_loadu_ps(b2+8),a21);
        a30=_mm256_fmadd_ps(s3,_mm256_loadu_ps(b3),a30);a31=_mm256_fmadd_ps(s3,_mm256_loadu_ps(b3+8),a31);}
      float*o=C+g*n+j0;
      _mm256_storeu_ps(o,a00);_mm256_storeu_ps(o+8,a01);o+=n;_mm256_storeu_ps(o,a10);_mm256_storeu_ps(o+8,a11);o+=n;
      _mm256_storeu_ps(o,a20);_mm256_storeu_ps(o+8,a21);o+=n;_mm256_storeu_ps(o,a30);_mm256_storeu_ps(o+8,a31);
    }
  }
}
int main(int argc,char**argv){
  size_t rows=atoi(argv[1]),k=atoi(argv[2]),n=atoi(argv[3]);double dens=atof(argv[4]);int reps=atoi(argv[5]);
  float*A=malloc(rows*k*4),*B=malloc(k*n*4),*C=malloc(rows*n*4),*D=malloc(rows*n*4),*val=malloc(rows*k*4);int*idx=malloc(rows*k*4),*cnt=malloc(rows*4);
  srand(1);for(size_t i=0;i<rows*k;i++)A[i]=(rand()/(double)RAND_MAX<dens)?rand()/(float)RAND_MAX:0;
  for(size_t i=0;i<k*n;i++)B[i]=rand()/(float)RAND_MAX-0.5f;
  openblas_set_num_threads(1);
  double t=now();for(int i=0;i<reps;i++)cblas_sgemm(CblasRowMajor,CblasNoTrans,CblasNoTrans,rows,n,k,1,A,k,B,n,0,D,n);double td=now()-t;
  t=now();for(int i=0;i<reps;i++)sparse_rows(A,rows,k,B,n,C,idx,val,cnt);double ts=now()-t;
  t=now();for(int i=0;i<reps;i++)sparse4(A,rows,k,B,n,C,idx,val,cnt);double t4=now()-t;printf("sparse4 ratio dense/sparse4 %.2f  ",td/t4);
  double err=0;for(size_t i=0;i<rows*n;i++){double e=fabs(C[i]-D[i]);if(e>err)err=e;}
  printf("rows %zu k %zu n %zu dens %.2f: dense %.3f ms (%.1f GFLOPS) sparse %.3f ms ratio dense/sparse %.2f err %g\n",rows,k,n,dens,td/reps*1e3,2.0*rows*k*n*reps/td/1e9,ts/reps*1e3,td/ts,err);
}
