// The preprocessing kernels run on the CPU: each exported sc_run_<format>
// walks the whole grid (blocks, then threads) and calls the kernel once per
// thread, exactly as a launch of <grid, block> would, one thread at a time.
#include "host.h"
#include "preprocess.cu"

#define SC_HOST_LAUNCHER(fmt) SC_HOST_LAUNCHER_OF(sc_run_##fmt, sc_preprocess_##fmt)
#define SC_HOST_CROPS(fmt) SC_HOST_LAUNCHER_OF(sc_run_crops_##fmt, sc_crops_##fmt)

#define SC_HOST_LAUNCHER_OF(name, kernel)                                  \
    void name(unsigned gx, unsigned gy, unsigned gz, unsigned bx,  \
                      unsigned by, SC_PARAMS)                              \
    {                                                                      \
        gridDim.x = gx; gridDim.y = gy; gridDim.z = gz;                    \
        blockDim.x = bx; blockDim.y = by; blockDim.z = 1;                  \
        for (unsigned z = 0; z < gz; z++)                                  \
            for (unsigned b_y = 0; b_y < gy; b_y++)                        \
                for (unsigned b_x = 0; b_x < gx; b_x++)                    \
                    for (unsigned t_y = 0; t_y < by; t_y++)                \
                        for (unsigned t_x = 0; t_x < bx; t_x++) {          \
                            blockIdx.x = b_x; blockIdx.y = b_y;            \
                            blockIdx.z = z;                                \
                            threadIdx.x = t_x; threadIdx.y = t_y;          \
                            threadIdx.z = 0;                               \
                            kernel(SC_ARGS);                               \
                        }                                                  \
    }

SC_HOST_LAUNCHER(rgb)
SC_HOST_LAUNCHER(bgr)
SC_HOST_LAUNCHER(gray)
SC_HOST_LAUNCHER(yuyv)
SC_HOST_LAUNCHER(nv12)
SC_HOST_CROPS(rgb)
SC_HOST_CROPS(bgr)
SC_HOST_CROPS(gray)
SC_HOST_CROPS(yuyv)
SC_HOST_CROPS(nv12)
