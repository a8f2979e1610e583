/* Prints the kernel's V4L2 ioctl numbers, struct sizes and field offsets
 * (from the system's linux/videodev2.h) for tests/v4l2.rs to compare with
 * src/capture/v4l2/sys.rs. */
#include <linux/videodev2.h>
#include <stddef.h>
#include <stdio.h>

#define IOCTL(x) printf(#x " %lu\n", (unsigned long)(x))
#define SIZE(x) printf("sizeof." #x " %zu\n", sizeof(struct x))
#define OFF(s, f, name) printf("offsetof." #s "." name " %zu\n", offsetof(struct s, f))

int main(void) {
    IOCTL(VIDIOC_QUERYCAP); IOCTL(VIDIOC_ENUM_FMT); IOCTL(VIDIOC_G_FMT); IOCTL(VIDIOC_S_FMT);
    IOCTL(VIDIOC_REQBUFS); IOCTL(VIDIOC_QUERYBUF); IOCTL(VIDIOC_QBUF); IOCTL(VIDIOC_DQBUF);
    IOCTL(VIDIOC_STREAMON); IOCTL(VIDIOC_STREAMOFF); IOCTL(VIDIOC_G_PARM); IOCTL(VIDIOC_S_PARM);
    IOCTL(VIDIOC_ENUM_FRAMESIZES); IOCTL(VIDIOC_ENUM_FRAMEINTERVALS);
    SIZE(v4l2_capability); SIZE(v4l2_fmtdesc); SIZE(v4l2_format); SIZE(v4l2_requestbuffers);
    SIZE(v4l2_buffer); SIZE(v4l2_streamparm); SIZE(v4l2_frmsizeenum); SIZE(v4l2_frmivalenum);
    SIZE(v4l2_pix_format);
    OFF(v4l2_format, fmt, "fmt");
    OFF(v4l2_buffer, timestamp, "timestamp");
    OFF(v4l2_buffer, sequence, "sequence");
    OFF(v4l2_buffer, m, "m");
    OFF(v4l2_buffer, length, "length");
    OFF(v4l2_frmsizeenum, discrete, "discrete");
    OFF(v4l2_frmivalenum, discrete, "discrete");
    OFF(v4l2_capability, capabilities, "capabilities");
    return 0;
}
