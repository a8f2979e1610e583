// stylecam preprocessing kernels: one camera frame -> one normalised CHW
// slot of the backend's input, in one pass (conversion, antialiased resize,
// crop or letterbox, mean/std, FP32 or FP16).
//
// Compiled by NVRTC at start-up for the GPU's architecture
// (src/preprocess/nvrtc.rs, src/preprocess/cuda.rs), and as host C by the
// tests through host.h, which defines SC_HOST, the qualifiers as nothing and
// the grid as a loop. So the code is the C subset of CUDA C++: no templates,
// no references, no CUDA headers.
//
// Each thread writes one output pixel (ox, oy) of frame blockIdx.z, all
// three channels. Its taps come from tables the host computes once per
// (source size, model size, resize mode) with the CPU reference's filter
// (src/preprocess/resize.rs, Pillow's BILINEAR): for output column ox,
// xtap[2*ox] is the first source column and xtap[2*ox+1] how many
// (0 = letterbox padding: the pixel is 0 after normalisation), and
// xw[ox*kx ..] the weights; the same for rows. The sum runs in the
// reference's order (rows inside, columns outside) so the host build matches
// it to the last bit and the GPU build to FMA rounding.
//
// The sc_crops_<format> kernels cut many boxes of one frame into
// consecutive slots in one launch (people mode: every person due in a
// frame). They take the same parameters; slot z has tables of its own,
// crop z's at xtap + z*2*out_w, xw + z*out_w*kx, ytap + z*2*out_h and
// yw + z*out_h*ky (kx, ky: the largest of the crops', the rest of a row
// unused), with the crop's origin folded into the first taps, so the
// taps index the whole frame. src_step is 0: every slot reads one frame.
//
// YUYV and NV12 are converted per tap with the reference's BT.601
// limited-range integer formula (src/preprocess/convert.rs); NV12 chroma is
// replicated over each 2x2 block.

#ifndef SC_HOST
#define SC_KERNEL extern "C" __global__ void
#define SC_DEVICE static __device__ __forceinline__
#define SC_RESTRICT __restrict__
typedef unsigned char sc_u8;
typedef unsigned short sc_u16;
typedef long long sc_i64;
SC_DEVICE sc_u16 sc_f2h(float f)
{
    sc_u16 h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
}
#endif

#define SC_RGB 0
#define SC_BGR 1
#define SC_GRAY 2
#define SC_YUYV 3
#define SC_NV12 4

SC_DEVICE int sc_clamp255(int x)
{
    x = (x + 128) >> 8;
    return x < 0 ? 0 : (x > 255 ? 255 : x);
}

// Source pixel (x, y) as RGB in 0..=255.
SC_DEVICE void sc_fetch(int fmt, const sc_u8 *SC_RESTRICT src, int stride, int src_h,
                        int x, int y, float *rgb)
{
    int r, g, b;
    if (fmt == SC_RGB || fmt == SC_BGR) {
        const sc_u8 *p = src + (sc_i64)y * stride + x * 3;
        r = p[fmt == SC_RGB ? 0 : 2];
        g = p[1];
        b = p[fmt == SC_RGB ? 2 : 0];
    } else if (fmt == SC_GRAY) {
        r = g = b = src[(sc_i64)y * stride + x];
    } else {
        int yy, u, v;
        if (fmt == SC_YUYV) {
            const sc_u8 *q = src + (sc_i64)y * stride + (x >> 1) * 4;
            yy = q[(x & 1) * 2];
            u = q[1];
            v = q[3];
        } else {
            const sc_u8 *uv = src + (sc_i64)stride * src_h + (sc_i64)(y >> 1) * stride + (x >> 1) * 2;
            yy = src[(sc_i64)y * stride + x];
            u = uv[0];
            v = uv[1];
        }
        int c = 298 * (yy - 16);
        int d = u - 128;
        int e = v - 128;
        r = sc_clamp255(c + 409 * e);
        g = sc_clamp255(c - 100 * d - 208 * e);
        b = sc_clamp255(c + 516 * d);
    }
    rgb[0] = (float)r;
    rgb[1] = (float)g;
    rgb[2] = (float)b;
}

SC_DEVICE void sc_store(void *out, int half, sc_i64 i, float v)
{
    if (half)
        ((sc_u16 *)out)[i] = sc_f2h(v);
    else
        ((float *)out)[i] = v;
}

// The parameters every kernel takes (in this order; src/preprocess/kernels.rs
// builds them).
//   src, src_step: frame z's bytes start at src + z*src_step
//   stride, src_h: bytes per source row (NV12: also of the chroma plane), rows
//   xtap, xw, kx / ytap, yw, ky: the tap tables (see above)
//   out_w, out_h: model input size
//   scale0..2, shift0..2: v*scale - shift per channel (1/(255 std), mean/std)
//   out, out_step, half: frame z's slot starts at element z*out_step of
//     out, FP16 when half != 0, else FP32
#define SC_PARAMS                                                                      \
    const sc_u8 *SC_RESTRICT src, sc_i64 src_step, int stride, int src_h,              \
        const int *SC_RESTRICT xtap, const float *SC_RESTRICT xw, int kx,              \
        const int *SC_RESTRICT ytap, const float *SC_RESTRICT yw, int ky, int out_w,   \
        int out_h, float scale0, float scale1, float scale2, float shift0, float shift1, \
        float shift2, void *out, sc_i64 out_step, int half

#define SC_ARGS                                                                   \
    src, src_step, stride, src_h, xtap, xw, kx, ytap, yw, ky, out_w, out_h, scale0, \
        scale1, scale2, shift0, shift1, shift2, out, out_step, half

// per_slot: slot z has tap tables of its own (the crop kernels).
SC_DEVICE void sc_body(int fmt, int per_slot, SC_PARAMS)
{
    int ox = blockIdx.x * blockDim.x + threadIdx.x;
    int oy = blockIdx.y * blockDim.y + threadIdx.y;
    if (ox >= out_w || oy >= out_h)
        return;
    sc_i64 z = blockIdx.z;
    if (per_slot) {
        xtap += z * 2 * out_w;
        xw += z * out_w * kx;
        ytap += z * 2 * out_h;
        yw += z * out_h * ky;
    }
    const sc_u8 *frame = src + z * src_step;
    sc_i64 plane = (sc_i64)out_w * out_h;
    sc_i64 o = z * out_step + (sc_i64)oy * out_w + ox;
    int x0 = xtap[2 * ox], nx = xtap[2 * ox + 1];
    int y0 = ytap[2 * oy], ny = ytap[2 * oy + 1];
    if (nx == 0 || ny == 0) {
        // Letterbox padding: the mean colour, 0 after normalisation.
        sc_store(out, half, o, 0.0f);
        sc_store(out, half, o + plane, 0.0f);
        sc_store(out, half, o + 2 * plane, 0.0f);
        return;
    }
    const float *wx = xw + (sc_i64)ox * kx;
    const float *wy = yw + (sc_i64)oy * ky;
    float acc[3] = {0.0f, 0.0f, 0.0f};
    for (int i = 0; i < nx; i++) {
        float col[3] = {0.0f, 0.0f, 0.0f};
        for (int j = 0; j < ny; j++) {
            float px[3];
            sc_fetch(fmt, frame, stride, src_h, x0 + i, y0 + j, px);
            col[0] += wy[j] * px[0];
            col[1] += wy[j] * px[1];
            col[2] += wy[j] * px[2];
        }
        acc[0] += wx[i] * col[0];
        acc[1] += wx[i] * col[1];
        acc[2] += wx[i] * col[2];
    }
    sc_store(out, half, o, acc[0] * scale0 - shift0);
    sc_store(out, half, o + plane, acc[1] * scale1 - shift1);
    sc_store(out, half, o + 2 * plane, acc[2] * scale2 - shift2);
}

SC_KERNEL sc_preprocess_rgb(SC_PARAMS) { sc_body(SC_RGB, 0, SC_ARGS); }
SC_KERNEL sc_preprocess_bgr(SC_PARAMS) { sc_body(SC_BGR, 0, SC_ARGS); }
SC_KERNEL sc_preprocess_gray(SC_PARAMS) { sc_body(SC_GRAY, 0, SC_ARGS); }
SC_KERNEL sc_preprocess_yuyv(SC_PARAMS) { sc_body(SC_YUYV, 0, SC_ARGS); }
SC_KERNEL sc_preprocess_nv12(SC_PARAMS) { sc_body(SC_NV12, 0, SC_ARGS); }

SC_KERNEL sc_crops_rgb(SC_PARAMS) { sc_body(SC_RGB, 1, SC_ARGS); }
SC_KERNEL sc_crops_bgr(SC_PARAMS) { sc_body(SC_BGR, 1, SC_ARGS); }
SC_KERNEL sc_crops_gray(SC_PARAMS) { sc_body(SC_GRAY, 1, SC_ARGS); }
SC_KERNEL sc_crops_yuyv(SC_PARAMS) { sc_body(SC_YUYV, 1, SC_ARGS); }
SC_KERNEL sc_crops_nv12(SC_PARAMS) { sc_body(SC_NV12, 1, SC_ARGS); }
