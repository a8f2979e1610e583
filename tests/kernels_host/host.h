// Host build of src/preprocess/kernels/preprocess.cu: the CUDA qualifiers
// as nothing, the built-in thread indices as globals that host.c's grid
// loop sets before each call of a kernel body (one "thread" at a time), and
// FP16 through the compiler's _Float16 (round to nearest even, as the
// device's cvt.rn.f16.f32). C11, built by tests/kernels.rs with `cc`.
#ifndef SC_HOST_H
#define SC_HOST_H
#include <string.h>

#define SC_HOST 1
#define SC_KERNEL void
#define SC_DEVICE static inline
#define SC_RESTRICT __restrict__
typedef unsigned char sc_u8;
typedef unsigned short sc_u16;
typedef long long sc_i64;

typedef struct {
    unsigned x, y, z;
} sc_dim3;
static sc_dim3 blockIdx, threadIdx, blockDim, gridDim;

static inline sc_u16 sc_f2h(float f)
{
    _Float16 h = (_Float16)f;
    sc_u16 bits;
    memcpy(&bits, &h, sizeof bits);
    return bits;
}
#endif
