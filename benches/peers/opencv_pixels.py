"""OpenCV's side of `cargo bench --bench pixels`: the same frames through
cvtColor + INTER_AREA resize (shorter side to SIZE, centre crop) + normalise
to CHW float32, on one thread. MJPEG both with a full decode and with
IMREAD_REDUCED_COLOR_{2,4,8} (the largest reduction that still covers the
resized size, as ours picks).

Prints one line per case: `name milliseconds` (median of RUNS).
usage: opencv_pixels.py SIZE RUNS FILE...   (FILE: name.WxH.{yuyv,nv12,jpg})
"""
import sys, time
import numpy as np
import cv2

cv2.setNumThreads(1)
size, runs = int(sys.argv[1]), int(sys.argv[2])
MEAN = np.array([0.485, 0.456, 0.406], np.float32) * 255
STD = np.array([0.229, 0.224, 0.225], np.float32) * 255


def finish(rgb):
    h, w = rgb.shape[:2]
    s = size / min(w, h)
    rw, rh = max(size, round(w * s)), max(size, round(h * s))
    small = cv2.resize(rgb, (rw, rh), interpolation=cv2.INTER_AREA)
    x, y = (rw - size) // 2, (rh - size) // 2
    crop = small[y:y + size, x:x + size].astype(np.float32)
    return ((crop - MEAN) / STD).transpose(2, 0, 1).copy()


def median_ms(f):
    f()
    t = []
    for _ in range(runs):
        t0 = time.perf_counter()
        f()
        t.append(time.perf_counter() - t0)
    return sorted(t)[len(t) // 2] * 1e3


for path in sys.argv[3:]:
    name, dims, ext = path.rsplit("/", 1)[-1].rsplit(".", 2)
    w, h = map(int, dims.split("x"))
    data = np.fromfile(path, np.uint8)
    if ext == "yuyv":
        f = lambda: finish(cv2.cvtColor(data.reshape(h, w, 2), cv2.COLOR_YUV2RGB_YUYV))
        print(f"{name}.{dims}.yuyv {median_ms(f):.3f}")
    elif ext == "nv12":
        f = lambda: finish(cv2.cvtColor(data.reshape(h * 3 // 2, w), cv2.COLOR_YUV2RGB_NV12))
        print(f"{name}.{dims}.nv12 {median_ms(f):.3f}")
    else:
        full = lambda: finish(cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB))
        print(f"{name}.{dims}.jpg-full {median_ms(full):.3f}")
        need = size / min(w, h)
        flag, n = cv2.IMREAD_COLOR, 1
        for k, fl in [(8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4), (2, cv2.IMREAD_REDUCED_COLOR_2)]:
            if min(w, h) // k >= size:
                flag, n = fl, k
                break
        red = lambda: finish(cv2.cvtColor(cv2.imdecode(data, flag), cv2.COLOR_BGR2RGB))
        print(f"{name}.{dims}.jpg-reduced {median_ms(red):.3f} 1/{n}")
